//! FHIR Bulk Data (issue 7), loose ends, through a real listening server over a fresh SQLite
//! store: a finished job's expiry (the `Expires` header on the status answer and the
//! downloads, the manifest's expiry extension, 404 saying it expired once the server's clock
//! passes the retention, its files removed — on access, or by the background sweeper without
//! any access), and an `$import` upload mixing resource types (imported in dependency order,
//! every refused line named by the upload and its line in the body). The clock is the test
//! server's (moved, never waited for); the only waits are polls of at most a second.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{Resp, TestServer};
use reqwest::Method;
use serde_json::{Value, json};
use tiercare_domain::encounter::{Encounter, EncounterClass};
use tiercare_domain::identity::Sex;
use tiercare_domain::patient::{FilingStatus, NewEnrolment, NewPatient, Patient, Scheme};
use tiercare_server::ServerConfig;
use tiercare_store::new_id;
use time::OffsetDateTime;
use time::format_description::well_known::{Rfc2822, Rfc3339};
use uuid::Uuid;

const YUECHI: &str = "511621";
const EXPIRES: &str = "http://tiercare.org/fhir/StructureDefinition/bulk-expires";

/// GB 11643: the check character of the first 17 characters.
fn with_check(body17: &str) -> String {
    const W: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    let sum: u32 = body17.chars().zip(W).map(|(c, w)| c.to_digit(10).expect("digit") * w).sum();
    let check = ['1', '0', 'X', '9', '8', '7', '6', '5', '4', '3', '2'][(sum % 11) as usize];
    format!("{body17}{check}")
}

fn temp(what: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("tiercare-bulk-expiry-{what}-{}", Uuid::now_v7()));
    std::fs::create_dir_all(&d).expect("a temp dir");
    d
}

/// A server keeping finished jobs `retention`, its sweeper every `sweep` (zero: none).
async fn server(retention: Duration, sweep: Duration) -> (TestServer, PathBuf) {
    let bulk = temp("out");
    let config = ServerConfig {
        sweep_interval: sweep,
        bulk_dir: Some(bulk.clone()),
        bulk_retention: retention,
        ..ServerConfig::default()
    };
    (TestServer::start_with(config).await, bulk)
}

fn person(k: u32, home: Uuid) -> Patient {
    NewPatient {
        identity_number: Some(with_check(&format!("5116211975031{k}{:03}", 31 + 2 * k))),
        home_facility_id: Some(home),
        ..NewPatient::new(&format!("过期{k}"), Sex::Male)
    }
    .validate(OffsetDateTime::now_utc().date(), Some(YUECHI))
    .expect("a valid registration")
    .into_patient(new_id())
}

async fn kick_off(s: &TestServer, path: &str, token: &str) -> Resp {
    let rb = s
        .client
        .request(Method::GET, s.url(path))
        .bearer_auth(token)
        .header("accept", "application/fhir+json")
        .header("prefer", "respond-async");
    s.send(rb).await
}

/// The `Expires` header as an instant (an HTTP-date: RFC 2822's form, in GMT).
fn expires(r: &Resp) -> OffsetDateTime {
    let raw = r.headers.get("expires").and_then(|v| v.to_str().ok()).unwrap_or_else(|| panic!("Expires: {}", r.text));
    assert!(raw.ends_with(" GMT"), "an HTTP-date: {raw}");
    OffsetDateTime::parse(&raw.replace(" GMT", " +0000"), &Rfc2822).unwrap_or_else(|e| panic!("{raw}: {e}"))
}

/// The job's directory under the bulk directory (the last segment of its status URL).
fn job_dir(bulk: &Path, status: &str) -> PathBuf {
    bulk.join(status.rsplit('/').next().expect("a job id"))
}

#[track_caller]
fn assert_expired(r: &Resp) {
    assert_eq!(r.status.as_u16(), 404, "{}", r.text);
    assert_eq!(r.json["resourceType"], "OperationOutcome", "{}", r.text);
    assert_eq!(r.json["issue"][0]["code"], "not-found", "{}", r.text);
    let text = r.json["issue"][0]["diagnostics"].as_str().unwrap_or("");
    assert!(text.contains("expired"), "says it expired: {text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_finished_export_expires_after_the_retention_and_says_so() {
    // one hour's retention, no background sweeper: expiry on access
    let (s, bulk) = server(Duration::from_secs(3600), Duration::ZERO).await;
    s.store.import_patients(&[(1, person(0, s.seed.village_clinic))], true).await.expect("a patient");
    let admin = s.login("sysadmin").await;
    let r = kick_off(&s, "/fhir/Patient/$export?_type=Patient", &admin).await;
    let status = s.bulk_status_path(&r);
    let done = s.poll_bulk_job(&status, &admin, |_| {}).await;
    let finished = s.now();
    done.expect_status(200);
    // Expires: when it finished (the poll that saw it done, within its last 50 ms) plus an hour
    let at = expires(&done);
    let want = finished + time::Duration::hours(1);
    assert!((at - want).abs() <= time::Duration::seconds(2), "Expires {at} is an hour after it finished ({finished})");
    // the manifest states the same instant (to the second an HTTP-date carries)
    let stated = done.json["extension"][EXPIRES].as_str().expect("the expiry extension");
    let stated = OffsetDateTime::parse(stated, &Rfc3339).expect("an instant");
    assert_eq!(stated.unix_timestamp(), at.unix_timestamp(), "{}", done.text);
    // a download carries it too, and the file is there
    let url = done.json["output"][0]["url"].as_str().expect("a file url").to_owned();
    let path = url.strip_prefix(&s.base).expect("this server").to_owned();
    let file = s.get(&path, &admin).await;
    file.expect_status(200);
    assert_eq!(expires(&file), at);
    let dir = job_dir(&bulk, &status);
    assert!(dir.join("Patient.ndjson").is_file(), "the file is kept meanwhile");
    // a minute before the hour: still there
    s.advance(time::Duration::minutes(59));
    s.poll_bulk_job(&status, &admin, |_| {}).await.expect_status(200);
    assert!(dir.is_dir());
    // past it: 404 saying it expired, for the status and the file; the files are gone
    s.advance(time::Duration::minutes(2));
    let r = s.get(&status, &admin).await;
    assert_expired(&r);
    assert_eq!(r.json["issue"][0]["details"]["coding"][0]["code"], "bulk.expired", "{}", r.text);
    assert!(!dir.exists(), "the job's directory is removed");
    assert_expired(&s.get(&path, &admin).await);
    // another user's view of it is no different from a job that never was
    let vdoc = s.login("vdoc_a").await;
    let other = s.get(&status, &vdoc).await;
    assert_eq!(other.status.as_u16(), 404);
    assert!(!other.text.contains("expired"), "{}", other.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sweeper_removes_expired_jobs_files_without_any_access() {
    // the sweeper every 50 ms; a retention of an hour, passed by moving the clock
    let (s, bulk) = server(Duration::from_secs(3600), Duration::from_millis(50)).await;
    s.store.import_patients(&[(1, person(1, s.seed.township_b))], true).await.expect("a patient");
    let admin = s.login("sysadmin").await;
    let r = kick_off(&s, "/fhir/$export?_type=Organization,Patient", &admin).await;
    let status = s.bulk_status_path(&r);
    s.poll_bulk_job(&status, &admin, |_| {}).await.expect_status(200);
    let dir = job_dir(&bulk, &status);
    assert!(dir.join("Organization.ndjson").is_file() && dir.join("Patient.ndjson").is_file());
    // a running job never expires; a finished one only after its hour: passes meanwhile keep it
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(dir.is_dir(), "the sweeper keeps a job within its retention");
    s.advance(time::Duration::minutes(61));
    let mut gone = false;
    for _ in 0..20 {
        if !dir.exists() {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(gone, "the sweeper removed the directory within a second, nobody asking");
    assert_expired(&s.get(&status, &admin).await);
}

// ---------------------------------------------------------------------------------------
// $import: an upload of several types

fn ndjson(lines: &[String]) -> String {
    lines.iter().map(|l| format!("{l}\n")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_mixing_types_imports_each_in_dependency_order_with_its_line_numbers() {
    let (s, _) = server(Duration::from_secs(3600), Duration::ZERO).await;
    let admin = s.login("sysadmin").await;
    let p = person(2, s.seed.village_clinic);
    let enrolment = NewEnrolment {
        scheme: Scheme::Resident,
        insured_region: YUECHI.into(),
        filing_status: FilingStatus::NotFiled,
        filed_region: None,
        valid_from: time::macros::date!(2025 - 01 - 01),
        valid_to: None,
    }
    .validate(new_id(), p.id)
    .expect("a valid enrolment");
    let day = time::macros::datetime!(2025-06-01 09:00 +08:00);
    let encounter = Encounter {
        id: new_id(),
        region_key: p.region_key.clone(),
        patient_id: p.id,
        facility_id: s.seed.county_hospital,
        department: None,
        practitioner_id: None,
        class: EncounterClass::Outpatient,
        started_at: day,
        ended_at: Some(day + time::Duration::hours(1)),
        diagnoses: vec!["J18.900".into()],
        procedures: Vec::new(),
        total_cost_fen: 12_000,
    };
    // a second person whose identity number has a wrong check character
    let mut bad = tiercare_fhir::patient(&person(3, s.seed.village_clinic));
    let number = bad["identifier"][0]["value"].as_str().expect("a number").to_owned();
    let wrong = format!("{}{}", &number[..17], if number.ends_with('0') { '1' } else { '0' });
    bad["identifier"][0]["value"] = json!(wrong);
    // the dependants first: the import orders the types, not the lines
    let lines = vec![
        tiercare_fhir::encounter(&encounter).to_string(),               // 1
        tiercare_fhir::coverage(&enrolment).to_string(),                // 2
        "{not json".to_owned(),                                         // 3
        tiercare_fhir::patient(&p).to_string(),                         // 4
        json!({ "resourceType": "Condition", "id": "c1" }).to_string(), // 5: a type not imported
        bad.to_string(),                                                // 6
        String::new(),                                                  // 7: blank
        json!({ "id": "no-type" }).to_string(),                         // 8
        json!({ "resourceType": "../Patient" }).to_string(),            // 9: not a type's name
    ];
    let rb = s
        .client
        .post(s.url("/fhir/$import"))
        .bearer_auth(&admin)
        .header("prefer", "respond-async")
        .header("content-type", "application/fhir+ndjson")
        .body(ndjson(&lines));
    let r = s.send(rb).await;
    let done = s.poll_bulk_job(&s.bulk_status_path(&r), &admin, |_| {}).await;
    done.expect_status(200);
    let m = &done.json;
    let out = |kind: &str| {
        m["output"].as_array().expect("output").iter().find(|o| o["type"] == kind).cloned().unwrap_or(Value::Null)
    };
    // one entry per type, named by the upload; each line counted once, under its own type
    let types: Vec<&str> = m["output"].as_array().expect("output").iter().filter_map(|o| o["type"].as_str()).collect();
    assert_eq!(types, ["Patient", "Coverage", "Encounter", "Condition"], "dependency order, then skipped: {m}");
    assert!(m["output"].as_array().expect("output").iter().all(|o| o["inputUrl"] == "upload.ndjson"), "{m}");
    let counted =
        |kind: &str| (out(kind)["resources"].as_u64(), out(kind)["count"].as_u64(), out(kind)["refused"].as_u64());
    assert_eq!(counted("Patient"), (Some(2), Some(1), Some(1)), "{m}");
    assert_eq!(counted("Coverage"), (Some(1), Some(1), Some(0)), "{m}");
    assert_eq!(counted("Encounter"), (Some(1), Some(1), Some(0)), "{m}");
    assert!(out("Condition")["skipped"].is_string(), "{m}");
    // the refused lines, each at its line in the body, in order
    let listed = m["lineErrors"].as_array().expect("line errors");
    assert!(listed.iter().all(|e| e["file"] == "upload.ndjson"), "{m}");
    let mut refused: Vec<u64> = listed.iter().filter_map(|e| e["line"].as_u64()).collect();
    refused.dedup();
    assert_eq!(refused, [3, 6, 8, 9], "{m}");
    let first = |line: u64| listed.iter().find(|e| e["line"] == line).cloned().expect("listed");
    assert_eq!(first(3)["code"], "json.syntax");
    assert_eq!(first(6)["code"], "identity_number.check_character");
    assert_eq!(first(6)["expression"], "Patient.identifier[0].value");
    assert_eq!(first(8)["code"], "fhir.structure");
    assert_eq!(first(9)["code"], "fhir.structure");
    assert_eq!(m["error"][0]["count"], 4, "one OperationOutcome per refused line");
    // stored: the person, her enrolment and her encounter (though they came before her)
    assert!(s.store.get_patient(p.id).await.expect("read").is_some());
    assert_eq!(s.store.enrolments(p.id).await.expect("enrolments").len(), 1);
    assert_eq!(s.encounter_count(p.id).await, 1);
    assert_eq!(s.patient_count().await, 1, "nothing of the bad line");
    assert!(!done.text.contains(&wrong), "no identity number in the status");
}
