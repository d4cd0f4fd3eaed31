//! `tiercare export fhir DIR`: a system-level FHIR Bulk Data export of the store as NDJSON,
//! one file per resource type (`tiercare_fhir::bulk`), written as the store answers.
//!
//! This first part exports the registry (Organization, Practitioner, PractitionerRole): the
//! store has no way yet to walk every patient (Patient, Coverage, Encounter, Condition would
//! need a keyset-paged listing of patients and their records), so those types are not
//! written and the command says so.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Args;
use tiercare_fhir::bulk::NdjsonDir;
use tiercare_store::{FacilityFilter, Store};

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
    let counts = export(store.as_ref(), &args.dir).await?;
    let total: u64 = counts.iter().map(|(_, n)| n).sum();
    let summary: Vec<String> = counts.iter().map(|(t, n)| format!("{n} {t}")).collect();
    let secs = started.elapsed().as_secs_f64();
    println!(
        "wrote {} to {} in {secs:.2} s ({:.0} resources/s)",
        summary.join(", "),
        args.dir.display(),
        total as f64 / secs.max(1e-9)
    );
    println!("not exported yet: Patient, Coverage, Encounter, Condition (the store cannot list every patient)");
    Ok(())
}

/// Write the registry as NDJSON into `dir`; the lines written per resource type.
pub async fn export(store: &dyn Store, dir: &Path) -> Result<Vec<(String, u64)>> {
    let mut out = NdjsonDir::create(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let write_err = || format!("cannot write into {}", dir.display());
    for f in store.list_facilities(&FacilityFilter::default()).await? {
        out.write(&tiercare_fhir::organization(&f)).with_context(write_err)?;
    }
    for p in store.list_practitioners(None).await? {
        out.write(&tiercare_fhir::registry::practitioner(&p)).with_context(write_err)?;
        for r in store.list_practitioner_roles(p.id).await? {
            out.write(&tiercare_fhir::registry::practitioner_role(&r)).with_context(write_err)?;
        }
    }
    out.finish().with_context(write_err)
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
