//! `tiercare import fhir DIR|FILE…`: a FHIR Bulk Data NDJSON import (the files `tiercare
//! generate`, `tiercare export fhir` and `$export` write, `<Type>.ndjson`, one resource per
//! line). The pipeline is `tiercare_server::bulk::import` (shared with `POST /fhir/$import`):
//! dependency order Organization → Patient → Coverage → Encounter (the other types skipped with
//! the reason printed), streaming, one transaction per `--chunk` lines, refused lines reported
//! as `File.ndjson:LINE: FHIRPath: code: message` (and with `--errors FILE` as NDJSON; exit
//! status 2), resumable from the checkpoint file (`DIR/.tiercare-import.json`, `--checkpoint`,
//! `--restart`).

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Args;
use indicatif::ProgressBar;
use tiercare_server::bulk::Progress;
#[cfg(test)]
pub(crate) use tiercare_server::bulk::import::{IMPORTED, Report};
pub(crate) use tiercare_server::bulk::import::{Options, import};

use crate::StoreArgs;
use crate::config::Settings;

#[derive(Args)]
pub struct ImportFhirArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// A directory of `<Type>.ndjson` files, or NDJSON files (named `<Type>.ndjson`, or typed
    /// by their first line's resourceType).
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// Lines per chunk (one store transaction each).
    #[arg(long, default_value_t = 50_000)]
    pub chunk: usize,
    /// The checkpoint file (default: `.tiercare-import.json` in the directory, or beside the first file).
    #[arg(long)]
    pub checkpoint: Option<PathBuf>,
    /// Ignore an existing checkpoint and start from the first line of every file.
    #[arg(long)]
    pub restart: bool,
    /// Also write every refused line to FILE as NDJSON (file, line, expression, code, message).
    #[arg(long, value_name = "FILE")]
    pub errors: Option<PathBuf>,
    /// Test hook: stop (exit status 3) after this many committed chunks, as a crash would.
    #[arg(long, hide = true)]
    pub stop_after_chunks: Option<u64>,
    #[arg(long)]
    pub quiet: bool,
}

/// The command's progress bar, one per file.
struct Bar(std::sync::Mutex<Option<ProgressBar>>, bool);

impl Progress for Bar {
    fn start(&self, kind: &str, size: u64) {
        if let Ok(mut b) = self.0.lock() {
            let bar = crate::county::bar(size, kind, self.1);
            *b = Some(bar);
        }
    }
    fn at(&self, position: u64) {
        if let Ok(b) = self.0.lock()
            && let Some(b) = b.as_ref()
        {
            b.set_position(position);
        }
    }
    fn finish(&self) {
        if let Ok(mut b) = self.0.lock()
            && let Some(b) = b.take()
        {
            b.finish_and_clear();
        }
    }
}

pub async fn run(args: ImportFhirArgs, settings: &Settings) -> Result<()> {
    let store = crate::open_store(&args.store, settings).await?;
    let options = Options {
        chunk: args.chunk.max(1),
        checkpoint: args.checkpoint.clone(),
        restart: args.restart,
        stop_after_chunks: args.stop_after_chunks,
        progress: Some(Arc::new(Bar(std::sync::Mutex::new(None), !args.quiet))),
        cancel: None,
    };
    let started = Instant::now();
    let report = import(&store, &args.paths, &options).await?;
    let secs = started.elapsed().as_secs_f64();
    for e in report.errors.iter().take(1000) {
        eprintln!("{e}");
    }
    if report.errors.len() > 1000 {
        eprintln!("… and {} more refused lines", report.errors.len() - 1000);
    }
    if let Some(path) = &args.errors {
        let mut w = std::io::BufWriter::new(
            std::fs::File::create(path).with_context(|| format!("cannot write {}", path.display()))?,
        );
        for e in &report.errors {
            serde_json::to_writer(&mut w, e)?;
            w.write_all(b"\n")?;
        }
        w.flush()?;
    }
    println!(
        "{:<16} {:>10} {:>10} {:>9} {:>9} {:>8} {:>12}",
        "type", "resources", "imported", "existing", "refused", "seconds", "resources/s"
    );
    let (mut total_read, mut total_secs) = (0u64, 0f64);
    for f in &report.files {
        let s = &f.state;
        if let Some(why) = f.skipped {
            println!("{:<16} {:>10} skipped: {why}", s.kind, s.resources);
            continue;
        }
        total_read += f.read_now;
        total_secs += f.seconds;
        println!(
            "{:<16} {:>10} {:>10} {:>9} {:>9} {:>8.2} {:>12.0}",
            s.kind,
            s.resources,
            s.imported,
            s.existing,
            s.rejected,
            f.seconds,
            f.read_now as f64 / f.seconds.max(1e-9)
        );
    }
    println!(
        "total: {total_read} resources read in this run, imported types {total_secs:.2} s ({:.0} resources/s); {secs:.2} s in all; checkpoint {}",
        total_read as f64 / total_secs.max(1e-9),
        report.checkpoint.display()
    );
    if report.stopped {
        eprintln!("stopped by --stop-after-chunks: rerun to continue from the checkpoint");
        std::process::exit(3);
    }
    if report.files.iter().any(|f| f.state.rejected > 0) {
        std::process::exit(2);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{BTreeMap, HashSet};
    use std::path::Path;

    use serde_json::Value;
    use serde_json::json;
    use tiercare_server::bulk::import::{Checkpoint, FileState, LineError};
    use tiercare_store::sqlite::SqliteStore;
    use tiercare_store::{FacilityFilter, RegionKey, Store};

    fn temp(what: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("tiercare-{what}-{}", tiercare_store::new_id()));
        std::fs::create_dir_all(&dir).expect("a temp dir");
        dir
    }

    async fn store_in(dir: &Path) -> Arc<dyn Store> {
        let store = SqliteStore::open(&dir.join("t.db")).await.expect("a store");
        store.migrate().await.expect("migrated");
        Arc::new(store)
    }

    /// A small generated county as NDJSON in `dir/ndjson`; its lines per type.
    fn generated(dir: &Path, residents: usize) -> (PathBuf, BTreeMap<String, u64>) {
        let county = tiercare_sim::County::generate(tiercare_sim::Config { seed: 11, residents, year: 2025 });
        let out = dir.join("ndjson");
        let counts = crate::county::write_ndjson(&county, &out, false).expect("written");
        (out, counts.into_iter().collect())
    }

    fn options(chunk: usize) -> Options {
        Options { chunk, ..Options::default() }
    }

    /// What the store holds, per type, walked through the bulk part.
    async fn held(store: &Arc<dyn Store>) -> (u64, u64, u64, u64) {
        let facilities = store.list_facilities(&FacilityFilter::default()).await.expect("facilities").len() as u64;
        let (mut enrolments, mut encounters) = (0u64, 0u64);
        let mut after: Option<RegionKey> = None;
        loop {
            let page = store.enrolments_after(after.as_ref(), 1000).await.expect("page");
            let Some((r, e)) = page.last() else { break };
            after = Some((r.clone(), e.id));
            enrolments += page.len() as u64;
        }
        let mut after: Option<RegionKey> = None;
        loop {
            let page = store.encounters_after(after.as_ref(), 1000).await.expect("page");
            let Some(e) = page.last() else { break };
            after = Some((e.region_key.clone(), e.id));
            encounters += page.len() as u64;
        }
        (facilities, store.count_patients().await.expect("count"), enrolments, encounters)
    }

    fn by_kind(report: &Report) -> BTreeMap<String, FileState> {
        report.files.iter().map(|f| (f.state.kind.clone(), f.state.clone())).collect()
    }

    /// Every line of each imported type lands; the skipped types are named with a reason.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_generated_county_imports_whole() {
        let dir = temp("fhir-import");
        let (ndjson, lines) = generated(&dir, 400);
        let store = store_in(&dir).await;
        let report = import(&store, std::slice::from_ref(&ndjson), &options(250)).await.expect("imported");
        assert!(report.errors.is_empty(), "{:?}", &report.errors[..report.errors.len().min(5)]);
        let got = by_kind(&report);
        for kind in IMPORTED {
            let s = &got[kind];
            assert_eq!((s.resources, s.imported, s.existing, s.rejected), (lines[kind], lines[kind], 0, 0), "{kind}");
            assert!(s.done);
        }
        for kind in ["Condition", "ServiceRequest", "Task"] {
            let f = report.files.iter().find(|f| f.state.kind == kind).expect("listed");
            assert!(f.skipped.is_some(), "{kind} is skipped");
            assert_eq!(f.state.resources, lines[kind]);
        }
        // the order of dependencies: registry, patients, coverage, encounters, then the skipped
        let order: Vec<&str> = report.files.iter().map(|f| f.state.kind.as_str()).collect();
        assert_eq!(&order[..4], &IMPORTED);
        let want = (lines["Organization"], lines["Patient"], lines["Coverage"], lines["Encounter"]);
        assert_eq!(held(&store).await, want);
        // a rerun finds the checkpoint: nothing read, nothing written twice
        let again = import(&store, std::slice::from_ref(&ndjson), &options(250)).await.expect("rerun");
        assert!(again.files.iter().all(|f| f.read_now == 0));
        assert_eq!(held(&store).await, want);
        // --restart without the checkpoint: every resource is found stored, none written twice
        let restart = Options { restart: true, ..options(250) };
        let third = import(&store, std::slice::from_ref(&ndjson), &restart).await.expect("restart");
        assert!(third.errors.is_empty(), "{:?}", &third.errors[..third.errors.len().min(5)]);
        for kind in IMPORTED {
            assert_eq!((by_kind(&third)[kind].imported, by_kind(&third)[kind].existing), (0, lines[kind]), "{kind}");
        }
        assert_eq!(held(&store).await, want);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A crash between chunks: the run stops after 3 committed chunks (the test hook), then a
    /// second "crash" loses the checkpoint of its last committed chunk (the window between a
    /// commit and the checkpoint's rename); the reruns end with the counts of a clean import.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_interrupted_import_resumes_without_duplicates() {
        let dir = temp("fhir-resume");
        let (ndjson, lines) = generated(&dir, 300);
        let store = store_in(&dir).await;
        let stop = |n| Options { stop_after_chunks: Some(n), ..options(200) };
        let first = import(&store, std::slice::from_ref(&ndjson), &stop(3)).await.expect("first run");
        assert!(first.stopped);
        let checkpoint = ndjson.join(".tiercare-import.json");
        let saved = std::fs::read(&checkpoint).expect("a checkpoint after 3 chunks");
        let second = import(&store, std::slice::from_ref(&ndjson), &stop(4)).await.expect("second run");
        assert!(second.stopped);
        // the second run's last chunk was committed, but its checkpoint is lost
        let lost: Checkpoint = serde_json::from_slice(&std::fs::read(&checkpoint).expect("read")).expect("json");
        let mut older = lost;
        let kept: Checkpoint = serde_json::from_slice(&saved).expect("json");
        // step back one chunk: the second run's last file as the first run had left it (or absent)
        let (last_key, rewound) = older
            .files
            .iter()
            .find(|(_, s)| !s.done)
            .map(|(k, s)| (k.clone(), s.kind.clone()))
            .expect("a file in progress");
        match kept.files.get(&last_key) {
            Some(s) if s.line > 0 && !s.done => {
                older.files.insert(last_key.clone(), s.clone());
            }
            _ => {
                older.files.remove(&last_key);
            }
        }
        std::fs::write(&checkpoint, serde_json::to_vec(&older).expect("json")).expect("rewound");
        let third = import(&store, std::slice::from_ref(&ndjson), &options(200)).await.expect("third run");
        assert!(!third.stopped);
        assert!(third.errors.is_empty(), "{:?}", &third.errors[..third.errors.len().min(5)]);
        let want = (lines["Organization"], lines["Patient"], lines["Coverage"], lines["Encounter"]);
        assert_eq!(held(&store).await, want, "the counts of a clean import");
        // the chunk whose checkpoint was lost was read again and found stored: counted as
        // existing, so over the runs imported + existing is every line of each type
        let states = by_kind(&third);
        for kind in IMPORTED {
            let s = &states[kind];
            assert_eq!(s.resources, lines[kind], "{kind}: every line counted once over the runs");
            assert_eq!(s.imported + s.existing, lines[kind], "{kind}");
            assert_eq!(s.existing > 0, kind == rewound, "{kind}: only the rewound file met stored resources");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Bad lines are reported with file, line and FHIRPath and skipped; the good ones land;
    /// an invalid identity number is refused as the JSON API refuses it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn bad_lines_are_reported_and_skipped() {
        let dir = temp("fhir-bad");
        let (ndjson, lines) = generated(&dir, 20);
        let store = store_in(&dir).await;
        // Patient.ndjson: line 2 gets a wrong check character, line 3 is not JSON, line 4 an Observation
        let path = ndjson.join("Patient.ndjson");
        let text = std::fs::read_to_string(&path).expect("patients");
        let mut rows: Vec<String> = text.lines().map(str::to_owned).collect();
        let mut v: Value = serde_json::from_str(&rows[1]).expect("json");
        let id_at = v["identifier"]
            .as_array()
            .expect("identifiers")
            .iter()
            .position(|i| i["system"] == tiercare_fhir::RESIDENT_ID_SYSTEM)
            .expect("an identity number");
        let number = v["identifier"][id_at]["value"].as_str().expect("a number").to_owned();
        // GB 11643: the 18th character is the check character; any other one is wrong
        let last = number.chars().last().expect("18 characters");
        let wrong = if last == '0' { '1' } else { '0' };
        v["identifier"][id_at]["value"] = json!(format!("{}{wrong}", &number[..17]));
        rows[1] = v.to_string();
        rows[2] = "{\"resourceType\": \"Patient\",".into();
        rows[3] = json!({ "resourceType": "Observation", "id": tiercare_store::new_id().to_string() }).to_string();
        let refused_patient = [
            serde_json::from_str::<Value>(text.lines().nth(1).expect("line 2")).expect("json")["id"].clone(),
            serde_json::from_str::<Value>(text.lines().nth(2).expect("line 3")).expect("json")["id"].clone(),
            serde_json::from_str::<Value>(text.lines().nth(3).expect("line 4")).expect("json")["id"].clone(),
        ];
        std::fs::write(&path, rows.join("\n") + "\n").expect("written");
        let report = import(&store, std::slice::from_ref(&ndjson), &options(7)).await.expect("imported");
        let patient_errors: Vec<&LineError> = report.errors.iter().filter(|e| e.file == "Patient.ndjson").collect();
        let at: Vec<u64> = patient_errors.iter().map(|e| e.line).collect();
        assert_eq!(at, vec![2, 3, 4], "{patient_errors:#?}");
        assert_eq!(
            patient_errors[0].expression.as_deref(),
            Some(format!("Patient.identifier[{id_at}].value").as_str())
        );
        assert_eq!(patient_errors[0].code, "identity_number.check_character");
        assert!(!patient_errors[0].to_string().contains(&number[..17]), "no identity number in a report");
        assert_eq!(patient_errors[1].code, "json.syntax");
        assert_eq!(patient_errors[2].code, "fhir.invalid");
        let states = by_kind(&report);
        assert_eq!((states["Patient"].imported, states["Patient"].rejected), (lines["Patient"] - 3, 3));
        // the refused patients' coverage and encounters are refused in turn, at their subject
        let coverage_errors: Vec<&LineError> = report.errors.iter().filter(|e| e.file == "Coverage.ndjson").collect();
        assert_eq!(coverage_errors.len(), 3);
        assert!(coverage_errors.iter().all(|e| e.expression.as_deref() == Some("Coverage.beneficiary")));
        let refused: HashSet<String> =
            refused_patient.iter().map(|v| format!("Patient/{}", v.as_str().expect("id"))).collect();
        let encounter_text = std::fs::read_to_string(ndjson.join("Encounter.ndjson")).expect("encounters");
        let orphans = encounter_text
            .lines()
            .filter(|l| {
                refused.contains(
                    serde_json::from_str::<Value>(l).expect("json")["subject"]["reference"].as_str().unwrap_or(""),
                )
            })
            .count();
        assert_eq!(states["Encounter"].rejected, orphans as u64);
        assert_eq!(states["Encounter"].imported, lines["Encounter"] - orphans as u64);
        assert_eq!(store.count_patients().await.expect("count"), lines["Patient"] - 3);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
