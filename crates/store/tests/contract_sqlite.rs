//! The storage contract on SQLite: every case on a fresh database file in the temp dir.

use std::sync::Arc;

use tiercare_store::contract::Fixture;
use tiercare_store::sqlite::SqliteStore;

async fn open(case: &'static str) -> Option<Fixture> {
    let dir = std::env::temp_dir().join(format!("tiercare-contract-{case}-{}", tiercare_store::new_id().simple()));
    let path = dir.join("tiercare.db");
    let store =
        SqliteStore::open(&path).await.unwrap_or_else(|e| panic!("open SQLite store at {}: {e}", path.display()));
    let location = path.display().to_string();
    let cleanup = Box::pin(async move {
        // best effort: a leftover temp dir is harmless
        let _ = tokio::fs::remove_dir_all(&dir).await;
    });
    Some(Fixture { store: Arc::new(store), location, cleanup: Some(cleanup) })
}

tiercare_store::contract_tests!(open);
tiercare_store::results_contract_tests!(open);
tiercare_store::case_payment_contract_tests!(open);
tiercare_store::indicators_contract_tests!(open);
tiercare_store::bulk_contract_tests!(open);
tiercare_store::fhir_versions_contract_tests!(open);
tiercare_store::patient_history_contract_tests!(open);
tiercare_store::clinical_contract_tests!(open);
tiercare_store::settlement_contract_tests!(open);
tiercare_store::transaction_contract_tests!(open);
