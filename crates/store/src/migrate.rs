//! Append-only migrations, per backend, tracked in `schema_migration` with a checksum.

/// (version, name, sql) of every migration of a backend, in order.
pub(crate) type Migration = (i64, &'static str, &'static str);

pub(crate) const SQLITE: &[Migration] = &[
    (1, "0001_foundation", include_str!("../migrations/sqlite/0001_foundation.sql")),
    (2, "0002_referral", include_str!("../migrations/sqlite/0002_referral.sql")),
    (3, "0003_settlement", include_str!("../migrations/sqlite/0003_settlement.sql")),
    (4, "0004_settlement_reports", include_str!("../migrations/sqlite/0004_settlement_reports.sql")),
    (5, "0005_settlement_items", include_str!("../migrations/sqlite/0005_settlement_items.sql")),
    (6, "0006_write_path", include_str!("../migrations/sqlite/0006_write_path.sql")),
    (7, "0007_results", include_str!("../migrations/sqlite/0007_results.sql")),
    (8, "0008_case_payment", include_str!("../migrations/sqlite/0008_case_payment.sql")),
    (9, "0009_indicators", include_str!("../migrations/sqlite/0009_indicators.sql")),
    (10, "0010_results_fhir", include_str!("../migrations/sqlite/0010_results_fhir.sql")),
    (11, "0011_case_payment_drg", include_str!("../migrations/sqlite/0011_case_payment_drg.sql")),
    (12, "0012_indicator_counter_compact", include_str!("../migrations/sqlite/0012_indicator_counter_compact.sql")),
    (13, "0013_enrolment_by_id", include_str!("../migrations/sqlite/0013_enrolment_by_id.sql")),
    (14, "0014_indicator_counter_shards", include_str!("../migrations/sqlite/0014_indicator_counter_shards.sql")),
    (15, "0015_results_by_patient", include_str!("../migrations/sqlite/0015_results_by_patient.sql")),
    (16, "0016_encounter_by_id", include_str!("../migrations/sqlite/0016_encounter_by_id.sql")),
    (17, "0017_patient_version", include_str!("../migrations/sqlite/0017_patient_version.sql")),
    (18, "0018_patient_by_home", include_str!("../migrations/sqlite/0018_patient_by_home.sql")),
];
pub(crate) const POSTGRES: &[Migration] = &[
    (1, "0001_foundation", include_str!("../migrations/postgres/0001_foundation.sql")),
    (2, "0002_referral", include_str!("../migrations/postgres/0002_referral.sql")),
    (3, "0003_settlement", include_str!("../migrations/postgres/0003_settlement.sql")),
    (4, "0004_settlement_reports", include_str!("../migrations/postgres/0004_settlement_reports.sql")),
    (5, "0005_settlement_items", include_str!("../migrations/postgres/0005_settlement_items.sql")),
    (6, "0006_write_path", include_str!("../migrations/postgres/0006_write_path.sql")),
    (7, "0007_results", include_str!("../migrations/postgres/0007_results.sql")),
    (8, "0008_case_payment", include_str!("../migrations/postgres/0008_case_payment.sql")),
    (9, "0009_indicators", include_str!("../migrations/postgres/0009_indicators.sql")),
    (10, "0010_results_fhir", include_str!("../migrations/postgres/0010_results_fhir.sql")),
    (11, "0011_case_payment_drg", include_str!("../migrations/postgres/0011_case_payment_drg.sql")),
    (12, "0012_indicator_counter_compact", include_str!("../migrations/postgres/0012_indicator_counter_compact.sql")),
    (13, "0013_enrolment_by_id", include_str!("../migrations/postgres/0013_enrolment_by_id.sql")),
    (14, "0014_indicator_counter_shards", include_str!("../migrations/postgres/0014_indicator_counter_shards.sql")),
    (15, "0015_results_by_patient", include_str!("../migrations/postgres/0015_results_by_patient.sql")),
    (16, "0016_encounter_by_id", include_str!("../migrations/postgres/0016_encounter_by_id.sql")),
    (17, "0017_patient_version", include_str!("../migrations/postgres/0017_patient_version.sql")),
    (18, "0018_patient_by_home", include_str!("../migrations/postgres/0018_patient_by_home.sql")),
];

pub(crate) const CREATE_TABLE: &str = "CREATE TABLE IF NOT EXISTS schema_migration (
    version BIGINT PRIMARY KEY, name TEXT NOT NULL, checksum TEXT NOT NULL, applied_at BIGINT NOT NULL)";

/// FNV-1a 64 of the migration text: enough to notice an edited migration.
pub(crate) fn checksum(sql: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in sql.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}
