//! `tiercare import patients FILE`: CSV or NDJSON, validated by the domain rules, each bad
//! row reported with its line and reason. Default: the good rows land. `--atomic`: any bad
//! row and nothing is written. An NDJSON line is either a registration object (as
//! `POST /api/v1/patients` takes) or, when it has a `resourceType`, a FHIR R4 Patient read
//! by `tiercare_fhir::registration::parse_patient` (as `POST /fhir/Patient` reads it); a FHIR
//! line's problems are reported at their FHIRPath (`Patient.identifier[0].value`).

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use tiercare_domain::DomainError;
use tiercare_domain::identity::{Identifier, IdentifierType, Sex};
use tiercare_domain::patient::{NewPatient, OtherIdentifierInput, Patient};
use tiercare_fhir::registration::{ParsedPatient, parse_patient};
use tiercare_store::{RowRejection, Store};
use time::OffsetDateTime;

use crate::StoreArgs;
use crate::config::Settings;

#[derive(Args)]
pub struct ImportPatientsArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// CSV (header: name,sex,birth_date,identity_number,phone,address,region_code[,other_id_type,other_id_value])
    /// or NDJSON (one registration object per line, as POST /api/v1/patients takes, or one FHIR R4
    /// Patient per line, as POST /fhir/Patient takes: a line with a resourceType).
    pub file: PathBuf,
    /// All or nothing: if any row is bad, write nothing (default: the good rows land).
    #[arg(long)]
    pub atomic: bool,
    /// Code of the registering facility (home facility; its region is the default region).
    #[arg(long)]
    pub facility: Option<String>,
    /// Hide the progress bar.
    #[arg(long)]
    pub quiet: bool,
}

/// What an import did.
#[derive(Debug, Default)]
pub struct ImportStats {
    pub rows: u64,
    pub inserted: u64,
    pub rejected: Vec<RowRejection>,
    pub seconds: f64,
}

pub async fn run(args: ImportPatientsArgs, settings: &Settings) -> Result<()> {
    let store = crate::open_store(&args.store, settings).await?;
    let stats = import_file(&store, &args.file, args.atomic, args.facility.as_deref(), !args.quiet).await?;
    for r in stats.rejected.iter().take(1000) {
        eprintln!("line {}: {}: {}", r.line, r.code, r.message);
    }
    if stats.rejected.len() > 1000 {
        eprintln!("… and {} more rejected rows", stats.rejected.len() - 1000);
    }
    println!(
        "{} rows read, {} patients imported, {} rows rejected{} in {:.2} s",
        stats.rows,
        stats.inserted,
        stats.rejected.len(),
        if args.atomic && !stats.rejected.is_empty() { " (atomic: nothing written)" } else { "" },
        stats.seconds
    );
    if !stats.rejected.is_empty() {
        std::process::exit(2);
    }
    Ok(())
}

#[derive(serde::Deserialize)]
struct CsvRow {
    name: String,
    sex: String,
    #[serde(default)]
    birth_date: String,
    #[serde(default)]
    identity_number: String,
    #[serde(default)]
    phone: String,
    #[serde(default)]
    address: String,
    #[serde(default)]
    region_code: String,
    #[serde(default)]
    other_id_type: String,
    #[serde(default)]
    other_id_value: String,
}

fn opt(s: String) -> Option<String> {
    let t = s.trim();
    (!t.is_empty()).then(|| t.to_owned())
}

fn csv_to_new(row: CsvRow) -> Result<NewPatient, RowRejectionReason> {
    let sex = Sex::parse(row.sex.trim())
        .ok_or_else(|| RowRejectionReason("sex.unknown", format!("sex {:?} is not male/female/男/女", row.sex)))?;
    let birth_date = match opt(row.birth_date) {
        Some(b) => Some(
            time::Date::parse(&b, time::macros::format_description!("[year]-[month]-[day]"))
                .map_err(|_| RowRejectionReason("birth_date.format", format!("birth_date {b:?} is not YYYY-MM-DD")))?,
        ),
        None => None,
    };
    let mut other = Vec::new();
    if let Some(t) = opt(row.other_id_type) {
        let kind = IdentifierType::parse(&t)
            .ok_or_else(|| RowRejectionReason("identifier.type", format!("unknown identifier type {t:?}")))?;
        other.push(OtherIdentifierInput { kind, value: row.other_id_value });
    }
    Ok(NewPatient {
        birth_date,
        identity_number: opt(row.identity_number),
        other_identifiers: other,
        phone: opt(row.phone),
        address: opt(row.address),
        region_code: opt(row.region_code),
        ..NewPatient::new(&row.name, sex)
    })
}

struct RowRejectionReason(&'static str, String);

/// One row read from the file: a registration, or a FHIR Patient read as one (with the
/// FHIRPath of each domain field).
enum Parsed {
    Plain(NewPatient),
    Fhir(Box<ParsedPatient>),
}

impl From<NewPatient> for Parsed {
    fn from(n: NewPatient) -> Self {
        Parsed::Plain(n)
    }
}

/// Rows per store call (one transaction) in the streaming mode: large, because with
/// random keys every transaction rewrites most index pages once.
const BATCH: usize = 100_000;

/// Import a file into `store`. Used by the CLI and by `tiercare bench import`.
pub async fn import_file(
    store: &Arc<dyn Store>,
    path: &Path,
    atomic: bool,
    facility_code: Option<&str>,
    progress: bool,
) -> Result<ImportStats> {
    let (home, default_region) = match facility_code {
        Some(code) => {
            let f = store.get_facility_by_code(code).await?.with_context(|| format!("no facility with code {code}"))?;
            (Some(f.id), Some(f.region_code))
        }
        None => (None, None),
    };
    let file = std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let size = file.metadata().map(|m| m.len()).unwrap_or(0);
    let bar = if progress { ProgressBar::new(size) } else { ProgressBar::hidden() };
    bar.set_style(
        ProgressStyle::with_template("{spinner} importing [{bar:40}] {bytes}/{total_bytes} {per_sec} eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let reader = bar.wrap_read(file);
    let ndjson = path.extension().is_some_and(|e| e == "ndjson" || e == "jsonl");
    let today = OffsetDateTime::now_utc().date();
    let started = Instant::now();

    // Parsing and validation run on their own thread while the store writes the previous
    // batch: the two overlap on two cores.
    let (sender, mut receiver) = tokio::sync::mpsc::channel::<Vec<(u64, Patient)>>(2);
    let producer = std::thread::spawn(move || {
        let rows: Box<dyn Iterator<Item = (u64, Result<Parsed, RowRejectionReason>)>> =
            if ndjson { Box::new(ndjson_rows(reader)) } else { Box::new(csv_rows(reader)) };
        let mut count = 0u64;
        let mut rejected = Vec::new();
        let mut batch = Vec::with_capacity(BATCH);
        // identifiers seen earlier in the file, across batches (the store checks within one)
        let mut seen: HashSet<Identifier> = HashSet::new();
        for (line, parsed) in rows {
            count += 1;
            let Some(row) = validate_row(line, parsed, home, default_region.as_deref(), today, &mut rejected) else {
                continue;
            };
            if let Some(dup) = row.1.identifiers.iter().find(|i| seen.contains(*i)) {
                rejected.push(RowRejection {
                    line,
                    code: "identifier.duplicate_in_file".into(),
                    message: format!("this {} appears on an earlier line of the file", dup.kind.as_str()),
                });
                continue;
            }
            seen.extend(row.1.identifiers.iter().cloned());
            batch.push(row);
            if batch.len() >= BATCH && sender.blocking_send(std::mem::take(&mut batch)).is_err() {
                break; // the writer stopped on an error: stop reading
            }
        }
        if !batch.is_empty() {
            let _ = sender.blocking_send(batch);
        }
        (count, rejected)
    });

    let mut stats = ImportStats::default();
    let mut held: Vec<(u64, Patient)> = Vec::new();
    let mut store_rejections = Vec::new();
    let mut write_error = None;
    while let Some(batch) = receiver.recv().await {
        if atomic {
            held.extend(batch);
            continue;
        }
        match store.import_patients(&batch, false).await {
            Ok(out) => {
                stats.inserted += out.inserted;
                store_rejections.extend(out.rejected);
            }
            Err(e) => {
                write_error = Some(e);
                break;
            }
        }
    }
    drop(receiver);
    let (rows, rejected) = producer.join().map_err(|_| anyhow::anyhow!("the import reader thread panicked"))?;
    if let Some(e) = write_error {
        return Err(e).context(format!("writing patients (after {} were imported)", stats.inserted));
    }
    stats.rows = rows;
    stats.rejected = rejected;
    if atomic && stats.rejected.is_empty() {
        let out = store.import_patients(&held, true).await?;
        stats.inserted = out.inserted;
        store_rejections.extend(out.rejected);
    }
    if stats.inserted > 0 {
        // planner statistics for the rows just loaded (PostgreSQL plans a bulk-loaded table as empty otherwise)
        store.analyze().await?;
    }
    stats.rejected.extend(store_rejections);
    stats.rejected.sort_by_key(|r| r.line);
    bar.finish_and_clear();
    stats.seconds = started.elapsed().as_secs_f64();
    if stats.rows == 0 {
        bail!("{} holds no rows", path.display());
    }
    Ok(stats)
}

/// Apply the registration rules to one parsed row; a bad row is recorded in `rejected`.
fn validate_row(
    line: u64,
    parsed: Result<Parsed, RowRejectionReason>,
    home: Option<uuid::Uuid>,
    default_region: Option<&str>,
    today: time::Date,
    rejected: &mut Vec<RowRejection>,
) -> Option<(u64, Patient)> {
    let (mut new, fhir) = match parsed {
        Ok(Parsed::Plain(n)) => (n, None),
        Ok(Parsed::Fhir(p)) => (p.patient.clone(), Some(p)),
        Err(RowRejectionReason(code, message)) => {
            rejected.push(RowRejection { line, code: code.into(), message });
            return None;
        }
    };
    // a FHIR line's problems are named by their FHIRPath, a registration's by their field
    let place = |field: &str| fhir.as_ref().and_then(|p| p.expression(field)).unwrap_or_else(|| field.to_owned());
    if new.home_facility_id.is_none() {
        new.home_facility_id = home;
    }
    match new.validate(today, default_region) {
        Ok(v) => Some((line, v.into_patient(tiercare_store::new_id()))),
        Err(DomainError::Invalid(errs)) => {
            for e in errs {
                rejected.push(RowRejection {
                    line,
                    code: e.code,
                    message: format!("{}: {}", place(&e.field), e.message),
                });
            }
            None
        }
        Err(DomainError::Conflict(m)) => {
            rejected.push(RowRejection { line, code: "conflict".into(), message: m });
            None
        }
    }
}

fn csv_rows(reader: impl Read + Send + 'static) -> impl Iterator<Item = (u64, Result<Parsed, RowRejectionReason>)> {
    let mut r = csv::ReaderBuilder::new().trim(csv::Trim::All).flexible(false).from_reader(reader);
    let headers = r.headers().cloned().unwrap_or_default();
    r.into_records().map(move |rec| match rec {
        Ok(rec) => {
            let line = rec.position().map(|p| p.line()).unwrap_or(0);
            match rec.deserialize::<CsvRow>(Some(&headers)) {
                Ok(row) => (line, csv_to_new(row).map(Parsed::from)),
                Err(e) => (line, Err(RowRejectionReason("csv.row", format!("row does not fit the header: {e}")))),
            }
        }
        Err(e) => {
            let line = e.position().map(|p| p.line()).unwrap_or(0);
            (line, Err(RowRejectionReason("csv.syntax", format!("unreadable CSV row: {e}"))))
        }
    })
}

fn ndjson_rows(reader: impl Read + Send + 'static) -> impl Iterator<Item = (u64, Result<Parsed, RowRejectionReason>)> {
    BufReader::new(reader)
        .lines()
        .enumerate()
        .filter(|(_, l)| l.as_ref().map(|s| !s.trim().is_empty()).unwrap_or(true))
        .map(|(i, l)| {
            let line = i as u64 + 1;
            match l {
                Ok(text) => (line, ndjson_row(&text)),
                Err(e) => (line, Err(RowRejectionReason("io", format!("unreadable line: {e}")))),
            }
        })
}

/// One NDJSON line: a FHIR Patient when it has a `resourceType`, else a registration
/// object. A registration is read straight from the text (the fast path of large files).
fn ndjson_row(text: &str) -> Result<Parsed, RowRejectionReason> {
    let not_json = |e: serde_json::Error| RowRejectionReason("json.syntax", format!("not JSON: {e}"));
    let not_registration =
        |e: serde_json::Error| RowRejectionReason("json.data", format!("not a patient registration: {e}"));
    if !text.contains("\"resourceType\"") {
        return serde_json::from_str::<NewPatient>(text)
            .map(Parsed::Plain)
            // serde's own category is not enough (an enum given a number is "syntax"): the
            // line is JSON or it is not
            .map_err(|e| match serde_json::from_str::<serde::de::IgnoredAny>(text) {
                Ok(_) => not_registration(e),
                Err(e) => not_json(e),
            });
    }
    let v: serde_json::Value = serde_json::from_str(text).map_err(not_json)?;
    if v.get("resourceType").is_none() {
        return serde_json::from_value::<NewPatient>(v).map(Parsed::Plain).map_err(not_registration);
    }
    parse_patient(&v).map(|p| Parsed::Fhir(Box::new(p))).map_err(|issues| {
        let problems: Vec<String> = issues
            .iter()
            .map(|i| match &i.expression {
                Some(at) => format!("{at}: {}", i.diagnostics),
                None => i.diagnostics.clone(),
            })
            .collect();
        RowRejectionReason("fhir.patient", format!("not a registrable FHIR Patient: {}", problems.join("; ")))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use tiercare_store::sqlite::SqliteStore;

    /// 王秀英, 1962-03-08, 岳池县: check character "7" (GB 11643: the weighted sum of the first
    /// 17 digits is 236; 236 mod 11 = 5 → "10X98765432"[5] = "7").
    const WANG_ID: &str = "511621196203081027";
    /// 110101199003071233 is valid (weighted sum 174; 174 mod 11 = 9 → "3"): a final 4 is not.
    const BAD_ID: &str = "110101199003071234";
    const ZHANG_ID: &str = "110101199003071233";

    fn fhir_patient(name: (&str, &str), gender: &str, id: &str) -> String {
        json!({
            "resourceType": "Patient",
            "identifier": [{ "system": "urn:oid:2.16.156.10011.1.3", "value": id }],
            "address": [{ "district": &id[..6], "country": "CN" }],
            "name": [{ "family": name.0, "given": [name.1] }],
            "gender": gender,
        })
        .to_string()
    }

    /// Five lines: a good FHIR Patient (1), one with a bad identity number (2), a line that is
    /// not JSON (3), a blank line (4, skipped) and a good registration object (5).
    async fn import(atomic: bool) -> (ImportStats, Arc<dyn Store>) {
        let tmp = std::env::temp_dir().join(format!("tiercare-import-{}", tiercare_store::new_id()));
        std::fs::create_dir_all(&tmp).expect("a temp dir");
        let store = SqliteStore::open(&tmp.join("t.db")).await.expect("a store");
        store.migrate().await.expect("migrated");
        let store: Arc<dyn Store> = Arc::new(store);
        let lines = [
            fhir_patient(("王", "秀英"), "female", WANG_ID),
            fhir_patient(("张", "伟"), "male", BAD_ID),
            "王秀英,female,1962-03-08".to_owned(),
            String::new(),
            json!({ "name": "张伟", "sex": "male", "identity_number": ZHANG_ID }).to_string(),
        ];
        let file = tmp.join("patients.ndjson");
        std::fs::write(&file, lines.join("\n")).expect("written");
        let stats = import_file(&store, &file, atomic, None, false).await.expect("imported");
        let _ = std::fs::remove_dir_all(&tmp);
        (stats, store)
    }

    #[tokio::test]
    async fn fhir_patients_and_registrations_land_and_bad_lines_are_reported_by_number() {
        let (stats, store) = import(false).await;
        assert_eq!(stats.rows, 4, "the blank line is not a row");
        let lines: Vec<u64> = stats.rejected.iter().map(|r| r.line).collect();
        assert_eq!(lines, vec![2, 3], "{:?}", stats.rejected);
        assert!(stats.rejected[0].message.starts_with("Patient.identifier[0].value: "), "{:?}", stats.rejected[0]);
        assert!(!stats.rejected[0].message.contains(BAD_ID), "no identity number in a report");
        assert_eq!(stats.rejected[1].code, "json.syntax");
        assert_eq!(stats.inserted, 2);
        assert_eq!(store.count_patients().await.expect("count"), 2);
        let wang = store.find_by_identifier(IdentifierType::ResidentId, WANG_ID).await.expect("found");
        let wang = wang.expect("王秀英 imported from FHIR");
        assert_eq!(
            (wang.name.as_str(), wang.sex, wang.birth_date.to_string()),
            ("王秀英", Sex::Female, "1962-03-08".into())
        );
        assert!(store.find_by_identifier(IdentifierType::ResidentId, ZHANG_ID).await.expect("found").is_some());
    }

    #[tokio::test]
    async fn atomic_writes_nothing_when_a_line_is_bad() {
        let (stats, store) = import(true).await;
        let lines: Vec<u64> = stats.rejected.iter().map(|r| r.line).collect();
        assert_eq!(lines, vec![2, 3]);
        assert_eq!(stats.inserted, 0);
        assert_eq!(store.count_patients().await.expect("count"), 0);
    }

    #[test]
    fn a_fhir_line_the_reader_refuses_names_its_element() {
        let Err(RowRejectionReason(code, message)) = ndjson_row(r#"{"resourceType":"Patient","gender":"f"}"#) else {
            panic!("refused")
        };
        assert_eq!(code, "fhir.patient");
        assert!(message.contains("Patient.gender"), "{message}");
        let Err(RowRejectionReason(code, _)) = ndjson_row(r#"{"resourceType":"Observation"}"#) else {
            panic!("refused")
        };
        assert_eq!(code, "fhir.patient");
        // a registration with a field of the wrong type is data, not syntax
        let Err(RowRejectionReason(code, _)) = ndjson_row(r#"{"name":"张伟","sex":7}"#) else { panic!("refused") };
        assert_eq!(code, "json.data");
    }
}
