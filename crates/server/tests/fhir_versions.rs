//! FHIR versions (issue 7, item 2) through a real listening server over a fresh SQLite
//! store: meta.versionId/meta.lastUpdated, `ETag`/`Last-Modified`, vread, Patient update
//! with `If-Match`, conditional create (`If-None-Exist`), Task instance history rebuilt
//! from a referral's steps, `_lastUpdated`, and each refusal (stale or malformed
//! `If-Match`, no `If-Match`, an unknown version, update or delete of a type that has none).
//! Expected values: the versions each step makes (the referral life cycle of domain.md:
//! request = 1, one per step), the Task served at each step (captured then, compared with
//! the vread later), identity numbers whose check characters were computed by hand
//! (GB 11643: weights 7 9 10 5 8 4 2 1 6 3 7 9 10 5 8 4 2, sum mod 11 → 1 0 X 9 8 7 6 5 4 3 2).

mod common;

use common::{Resp, TestServer};
use reqwest::Method;
use serde_json::{Value, json};
use tiercare_store::AccessLogFilter;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use uuid::Uuid;

const RESIDENT_ID: &str = "urn:oid:2.16.156.10011.1.3";
/// 王秀英, female, born 1962-03-08, 岳池县: 5·7+1·9+…+2·2 = 236, 236 mod 11 = 5 → "7".
const WANG_ID: &str = "511621196203081027";
/// The same person with sequence 104 (even: female): sum 240, mod 11 = 9 → "3".
const WANG_ID_CORRECTED: &str = "511621196203081043";
/// Sequence 124 (female), born the same day: sum 248, mod 11 = 6 → "6".
const OTHER_ID: &str = "511621196203081246";
/// WANG_ID with a wrong check character ("8" instead of "7").
const BAD_CHECK_ID: &str = "511621196203081028";

fn wang(village: Uuid, identity: &str) -> Value {
    json!({
        "resourceType": "Patient",
        "identifier": [{ "system": RESIDENT_ID, "value": identity }],
        "active": true,
        "name": [{ "text": "王秀英" }],
        "gender": "female",
        "birthDate": "1962-03-08",
        "telecom": [{ "system": "phone", "value": "13800001234", "use": "mobile" }],
        "address": [{ "text": "九龙镇白庙村3组", "district": "511621", "country": "CN" }],
        "managingOrganization": { "reference": format!("Organization/{village}") },
    })
}

async fn send(
    s: &TestServer,
    method: Method,
    path: &str,
    token: &str,
    headers: &[(&str, &str)],
    body: Option<&Value>,
) -> Resp {
    let mut rb = s.client.request(method, s.url(path)).bearer_auth(token);
    for (k, v) in headers {
        rb = rb.header(*k, *v);
    }
    if let Some(b) = body {
        rb = rb.header("content-type", "application/fhir+json").body(b.to_string());
    }
    s.send(rb).await
}

fn header<'a>(r: &'a Resp, name: &str) -> Option<&'a str> {
    r.headers.get(name).and_then(|v| v.to_str().ok())
}

/// An OperationOutcome with this status whose first issue has `code` (and `expression`).
#[track_caller]
fn assert_outcome(r: &Resp, status: u16, code: &str, expression: Option<&str>) {
    assert_eq!(r.status.as_u16(), status, "{}", r.text);
    assert!(header(r, "content-type").is_some_and(|c| c.starts_with("application/fhir+json")), "{:?}", r.headers);
    assert_eq!(r.json["resourceType"], "OperationOutcome", "{}", r.text);
    assert_eq!(r.json["issue"][0]["code"], code, "{}", r.text);
    if let Some(e) = expression {
        assert_eq!(r.json["issue"][0]["expression"][0], e, "{}", r.text);
    }
}

fn last_updated(v: &Value) -> OffsetDateTime {
    OffsetDateTime::parse(v["meta"]["lastUpdated"].as_str().expect("meta.lastUpdated"), &Rfc3339).expect("an instant")
}

/// `ETag`, `Last-Modified` and meta agree: version `n`, and the HTTP date is
/// meta.lastUpdated to the second.
#[track_caller]
fn assert_version(r: &Resp, n: u32) {
    assert_eq!(r.json["meta"]["versionId"], n.to_string(), "{}", r.text);
    assert_eq!(header(r, "etag"), Some(format!("W/\"{n}\"").as_str()));
    let at = last_updated(&r.json);
    let http = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    assert_eq!(header(r, "last-modified"), Some(at.format(&http).expect("a date").as_str()));
}

async fn logged(s: &TestServer, patient: Uuid, action: &str) -> usize {
    let f = AccessLogFilter { patient_id: Some(patient), ..AccessLogFilter::default() };
    s.store.query_access_log(&f).await.expect("the access log").iter().filter(|e| e.action == action).count()
}

async fn create_wang(s: &TestServer, token: &str) -> Resp {
    let r = send(s, Method::POST, "/fhir/Patient", token, &[], Some(&wang(s.seed.village_clinic, WANG_ID))).await;
    r.expect_status(201);
    r
}

// ---------------------------------------------------------------------------------------
// Patient: versions, update, If-Match

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_patient_is_versioned_and_updated_by_the_registration_rules() {
    let s = TestServer::start().await;
    let vdoc = s.login("vdoc_a").await;
    let before = OffsetDateTime::now_utc().replace_nanosecond(0).expect("whole seconds");
    let created = create_wang(&s, &vdoc).await;
    assert_version(&created, 1);
    let id = created.json["id"].as_str().expect("an id").to_owned();
    let at1 = last_updated(&created.json);
    assert!(at1 >= before && at1 <= OffsetDateTime::now_utc(), "{at1}");
    // read and vread of the current version answer what create answered
    let read = s.get(&format!("/fhir/Patient/{id}"), &vdoc).await;
    read.expect_status(200);
    assert_version(&read, 1);
    assert_eq!(read.json, created.json);
    let v1 = s.get(&format!("/fhir/Patient/{id}/_history/1"), &vdoc).await;
    v1.expect_status(200);
    assert_version(&v1, 1);
    assert_eq!(v1.json, created.json);
    for unknown in ["2", "0", "abc"] {
        assert_outcome(&s.get(&format!("/fhir/Patient/{id}/_history/{unknown}"), &vdoc).await, 404, "not-found", None);
    }

    // update: the phone, the address and a corrected identity number, at version 1
    let mut changed = wang(s.seed.village_clinic, WANG_ID_CORRECTED);
    changed["id"] = json!(id);
    changed["meta"] = created.json["meta"].clone();
    changed["telecom"][0]["value"] = json!("13900005678");
    changed["address"][0]["text"] = json!("九龙镇白庙村5组");
    let path = format!("/fhir/Patient/{id}");
    let r = send(&s, Method::PUT, &path, &vdoc, &[("if-match", "W/\"1\"")], Some(&changed)).await;
    r.expect_status(200);
    assert_version(&r, 2);
    assert!(last_updated(&r.json) >= at1);
    let mut expected = changed.clone();
    expected["meta"] = r.json["meta"].clone();
    assert_eq!(r.json, expected, "the record as sent, with its new version");
    let back = s.get(&path, &vdoc).await;
    assert_version(&back, 2);
    assert_eq!(back.json, r.json);
    assert_eq!(logged(&s, id.parse().expect("a uuid"), "fhir_update_patient").await, 1);
    // the identifiers moved with it: the corrected number finds her, the old one nobody
    let by = |n: &str| format!("/fhir/Patient?identifier={RESIDENT_ID}|{n}");
    assert_eq!(s.get(&by(WANG_ID_CORRECTED), &vdoc).await.json["total"], 1);
    assert_eq!(s.get(&by(WANG_ID), &vdoc).await.json["total"], 0);
    // the earlier version is kept (migration 0017): vread answers it as created
    let r = s.get(&format!("/fhir/Patient/{id}/_history/1"), &vdoc).await;
    assert_version(&r, 1);
    assert_eq!(r.json, created.json);
    assert_eq!(s.get(&format!("/fhir/Patient/{id}/_history/2"), &vdoc).await.json, back.json);

    // stale If-Match: 412, nothing changed
    let mut stale = changed.clone();
    stale["telecom"][0]["value"] = json!("13700000000");
    let r = send(&s, Method::PUT, &path, &vdoc, &[("if-match", "W/\"1\"")], Some(&stale)).await;
    assert_outcome(&r, 412, "conflict", Some("http.If-Match"));
    // malformed ETags: 400; none: 428
    for bad in ["1", "W/1", "W/\"one\"", "*"] {
        let r = send(&s, Method::PUT, &path, &vdoc, &[("if-match", bad)], Some(&stale)).await;
        assert_outcome(&r, 400, "invalid", Some("http.If-Match"));
    }
    assert_outcome(
        &send(&s, Method::PUT, &path, &vdoc, &[], Some(&stale)).await,
        428,
        "required",
        Some("http.If-Match"),
    );
    // an invalid identity number is refused as registering refuses it, at the same element
    let mut bad = changed.clone();
    bad["identifier"][0]["value"] = json!(BAD_CHECK_ID);
    let put = send(&s, Method::PUT, &path, &vdoc, &[("if-match", "W/\"2\"")], Some(&bad)).await;
    let mut new_bad = wang(s.seed.village_clinic, BAD_CHECK_ID);
    new_bad["telecom"][0]["value"] = json!("13900005678");
    let post = send(&s, Method::POST, "/fhir/Patient", &vdoc, &[], Some(&new_bad)).await;
    assert_outcome(
        &put,
        422,
        post.json["issue"][0]["code"].as_str().unwrap_or("?"),
        Some("Patient.identifier[0].value"),
    );
    assert_eq!(put.json["issue"][0]["details"], post.json["issue"][0]["details"], "{} / {}", put.text, post.text);
    // the id in the body must be the URL's; an unknown id is not created
    let mut other = changed.clone();
    other["id"] = json!(Uuid::now_v7().to_string());
    let r = send(&s, Method::PUT, &path, &vdoc, &[("if-match", "W/\"2\"")], Some(&other)).await;
    assert_outcome(&r, 400, "invalid", Some("Patient.id"));
    let unknown = format!("/fhir/Patient/{}", other["id"].as_str().unwrap_or_default());
    let r = send(&s, Method::PUT, &unknown, &vdoc, &[("if-match", "W/\"1\"")], Some(&other)).await;
    assert_outcome(&r, 404, "not-found", None);
    // another patient's number: 409, as registering it twice
    let second =
        send(&s, Method::POST, "/fhir/Patient", &vdoc, &[], Some(&wang(s.seed.village_clinic, OTHER_ID))).await;
    second.expect_status(201);
    let mut taken = changed.clone();
    taken["identifier"][0]["value"] = json!(OTHER_ID);
    let r = send(&s, Method::PUT, &path, &vdoc, &[("if-match", "W/\"2\"")], Some(&taken)).await;
    assert_outcome(&r, 409, "conflict", None);
    // after all the refusals, still version 2 as updated
    let back = s.get(&path, &vdoc).await;
    assert_version(&back, 2);
    assert_eq!(back.json["telecom"][0]["value"], "13900005678");
    assert_eq!(back.json["identifier"][0]["value"], WANG_ID_CORRECTED);
    // who may not read her may not change her: a township clinician of the other community
    let clin_b = s.login("clin_b").await;
    let r = send(&s, Method::PUT, &path, &clin_b, &[("if-match", "W/\"2\"")], Some(&changed)).await;
    assert_outcome(&r, 403, "forbidden", None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patients_are_searched_by_last_updated() {
    let s = TestServer::start().await;
    let vdoc = s.login("vdoc_a").await;
    let created = create_wang(&s, &vdoc).await;
    let at = last_updated(&created.json);
    let second = at.replace_nanosecond(0).expect("whole seconds").to_offset(time::UtcOffset::UTC);
    let fmt = |t: OffsetDateTime| t.format(&Rfc3339).expect("format").replace('+', "%2B");
    let search = |q: String| format!("/fhir/Patient?identifier={RESIDENT_ID}|{WANG_ID}&_lastUpdated={q}");
    let total = |r: &Resp| r.json["total"].as_u64();
    // eq a second: the range [second, second + 1 s) holds the instant
    assert_eq!(total(&s.get(&search(fmt(second)), &vdoc).await), Some(1));
    assert_eq!(total(&s.get(&search(format!("ge{}", fmt(second))), &vdoc).await), Some(1));
    // lt that second: the instant is not before it; gt the next second: not after it
    assert_eq!(total(&s.get(&search(format!("lt{}", fmt(second))), &vdoc).await), Some(0));
    let next = second + time::Duration::SECOND;
    assert_eq!(total(&s.get(&search(format!("gt{}", fmt(next))), &vdoc).await), Some(0));
    // a range (both must hold) around it, and a day (China time) that holds it
    let range = format!("ge{}&_lastUpdated=lt{}", fmt(second - time::Duration::HOUR), fmt(next));
    assert_eq!(total(&s.get(&search(range), &vdoc).await), Some(1));
    let day = at.to_offset(time::macros::offset!(+8)).date();
    assert_eq!(total(&s.get(&search(day.to_string()), &vdoc).await), Some(1));
    assert_eq!(total(&s.get(&search((day + time::Duration::DAY).to_string()), &vdoc).await), Some(0));
    // the search's entries carry the meta of a read
    let r = s.get(&search(fmt(second)), &vdoc).await;
    assert_eq!(r.json["entry"][0]["resource"]["meta"], created.json["meta"]);
    // a bad date: 400
    assert_outcome(&s.get(&search("yesterday".into()), &vdoc).await, 400, "value", None);
}

// ---------------------------------------------------------------------------------------
// conditional create

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conditional_create_answers_the_existing_patient_or_creates() {
    let s = TestServer::start().await;
    let vdoc = s.login("vdoc_a").await;
    let body = wang(s.seed.village_clinic, WANG_ID);
    let cond = format!("identifier={RESIDENT_ID}|{WANG_ID}");
    // nobody matches: created (201)
    let r = send(&s, Method::POST, "/fhir/Patient", &vdoc, &[("if-none-exist", &cond)], Some(&body)).await;
    r.expect_status(201);
    assert_version(&r, 1);
    let id = r.json["id"].as_str().expect("an id").to_owned();
    // again: 200 with the existing one, nothing written, the read logged
    let reads = logged(&s, id.parse().expect("a uuid"), "fhir_read_patient").await;
    let again = send(&s, Method::POST, "/fhir/Patient", &vdoc, &[("if-none-exist", &cond)], Some(&body)).await;
    again.expect_status(200);
    assert_eq!(again.json, r.json);
    assert_eq!(header(&again, "location"), Some(format!("/fhir/Patient/{id}").as_str()));
    assert_eq!(s.patient_count().await, 1);
    assert_eq!(logged(&s, id.parse().expect("a uuid"), "fhir_read_patient").await, reads + 1);
    // the bare number (any system) finds her too
    let bare = format!("identifier={WANG_ID}");
    let r = send(&s, Method::POST, "/fhir/Patient", &vdoc, &[("if-none-exist", &bare)], Some(&body)).await;
    assert_eq!((r.status.as_u16(), r.json["id"].as_str()), (200, Some(id.as_str())), "{}", r.text);
    // a user whose facility may not read her is told it exists, not shown the record
    let clin_b = s.login("clin_b").await;
    let r = send(&s, Method::POST, "/fhir/Patient", &clin_b, &[("if-none-exist", &cond)], Some(&body)).await;
    assert_eq!(r.status.as_u16(), 200, "{}", r.text);
    assert_eq!(r.json["resourceType"], "OperationOutcome");
    assert_eq!(r.json["issue"][0]["severity"], "information");
    assert!(!r.text.contains("王秀英") && !r.text.contains(WANG_ID), "{}", r.text);
    assert_eq!(s.patient_count().await, 1);
    // two patients match (a comma list means any of): 412, nothing written
    let other = wang(s.seed.village_clinic, OTHER_ID);
    send(&s, Method::POST, "/fhir/Patient", &vdoc, &[], Some(&other)).await.expect_status(201);
    let both = format!("identifier={RESIDENT_ID}|{WANG_ID},{RESIDENT_ID}|{OTHER_ID}");
    let r = send(&s, Method::POST, "/fhir/Patient", &vdoc, &[("if-none-exist", &both)], Some(&body)).await;
    assert_outcome(&r, 412, "conflict", Some("http.If-None-Exist"));
    assert_eq!(s.patient_count().await, 2);
    // what a search would refuse: an unknown parameter (strict), a modifier
    for bad in ["phone=13800001234", "identifier:missing=true"] {
        let r = send(&s, Method::POST, "/fhir/Patient", &vdoc, &[("if-none-exist", bad)], Some(&body)).await;
        assert_outcome(&r, 400, "not-supported", Some("http.If-None-Exist"));
    }
    // a condition that names nobody specific: 400 (a search needs _id, identifier or name)
    let r = send(&s, Method::POST, "/fhir/Patient", &vdoc, &[("if-none-exist", "gender=female")], Some(&body)).await;
    assert_outcome(&r, 400, "required", None);
    assert_eq!(s.patient_count().await, 2);
}

// ---------------------------------------------------------------------------------------
// Task: every version from the referral's steps

async fn register(s: &TestServer, token: &str) -> Uuid {
    let r = s
        .post("/api/v1/patients", token, json!({ "name": "王秀英", "sex": "female", "identity_number": WANG_ID }))
        .await;
    r.expect_status(201);
    r.id()
}

async fn put_task(s: &TestServer, path: &str, token: &str, etag: Option<&str>, body: &Value) -> Resp {
    let headers: Vec<(&str, &str)> = etag.map(|e| ("if-match", e)).into_iter().collect();
    send(s, Method::PUT, path, token, &headers, Some(body)).await
}

async fn act(s: &TestServer, token: &str, id: &str, body: Value) {
    s.post(&format!("/api/v1/referrals/{id}/transitions"), token, body).await.expect_status(200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_task_version_is_read_back_as_it_was_served() {
    let s = TestServer::start().await;
    let vdoc = s.login("vdoc_a").await;
    let spec = s.login("spec_a").await;
    let p = register(&s, &vdoc).await;
    let sr = json!({
        "resourceType": "ServiceRequest",
        "status": "active",
        "intent": "order",
        "priority": "routine",
        "subject": { "reference": format!("Patient/{p}") },
        "performer": [{ "reference": format!("Organization/{}", s.seed.county_hospital) }],
        "reasonCode": [{
            "coding": [{ "system": "http://hl7.org/fhir/sid/icd-10", "code": "I10.x00" }],
            "text": "血压控制不佳，需上级医院调整治疗"
        }],
    });
    let created = send(&s, Method::POST, "/fhir/ServiceRequest", &vdoc, &[], Some(&sr)).await;
    created.expect_status(201);
    assert_version(&created, 1);
    let id = created.json["id"].as_str().expect("an id").to_owned();
    let path = format!("/fhir/Task/{id}");
    // the Task served after each step: request (1), accept (2), schedule (3), arrive (4)
    let mut served = vec![s.get(&path, &vdoc).await];
    act(&s, &spec, &id, json!({ "action": "accept", "note": "同意接收" })).await;
    served.push(s.get(&path, &vdoc).await);
    let at = (OffsetDateTime::now_utc() + time::Duration::days(1)).replace_nanosecond(0).expect("whole seconds");
    act(&s, &spec, &id, json!({ "action": "schedule", "at": at.format(&Rfc3339).expect("format") })).await;
    served.push(s.get(&path, &vdoc).await);
    act(&s, &spec, &id, json!({ "action": "arrive" })).await;
    served.push(s.get(&path, &vdoc).await);
    for (k, r) in served.iter().enumerate() {
        r.expect_status(200);
        assert_version(r, k as u32 + 1);
    }
    assert_eq!(
        served.iter().map(|r| r.json["status"].as_str().unwrap_or("?")).collect::<Vec<_>>(),
        ["requested", "accepted", "accepted", "in-progress"]
    );
    // vread of each version answers the Task as it was served then, by either party
    for (k, r) in served.iter().enumerate() {
        let v = s.get(&format!("/fhir/Task/{id}/_history/{}", k + 1), &spec).await;
        v.expect_status(200);
        assert_version(&v, k as u32 + 1);
        assert_eq!(v.json, r.json, "version {}", k + 1);
    }
    // history: a Bundle of type history, newest first, the same resources
    let h = s.get(&format!("/fhir/Task/{id}/_history"), &vdoc).await;
    h.expect_status(200);
    assert_eq!(h.json["resourceType"], "Bundle");
    assert_eq!(h.json["type"], "history");
    assert_eq!(h.json["total"], 4);
    let entries = h.json["entry"].as_array().expect("entries");
    assert_eq!(entries.len(), 4);
    for (e, r) in entries.iter().zip(served.iter().rev()) {
        assert_eq!(e["resource"], r.json);
        assert_eq!(e["response"]["etag"], format!("W/\"{}\"", r.json["meta"]["versionId"].as_str().unwrap_or("?")));
        assert_eq!(e["response"]["lastModified"], r.json["meta"]["lastUpdated"]);
        assert_eq!(e["fullUrl"], s.url(&format!("/fhir/Task/{id}")));
    }
    assert_eq!(entries[3]["request"]["method"], "POST");
    assert_eq!(entries[0]["request"]["method"], "PUT");
    // unknown versions: 404
    for unknown in ["5", "0", "x"] {
        assert_outcome(&s.get(&format!("/fhir/Task/{id}/_history/{unknown}"), &vdoc).await, 404, "not-found", None);
    }
    // the ServiceRequest: its current version by vread; earlier ones are not kept
    let now = s.get(&format!("/fhir/ServiceRequest/{id}"), &vdoc).await;
    assert_version(&now, 4);
    let v4 = s.get(&format!("/fhir/ServiceRequest/{id}/_history/4"), &vdoc).await;
    assert_version(&v4, 4);
    assert_eq!(v4.json, now.json);
    let r = s.get(&format!("/fhir/ServiceRequest/{id}/_history/1"), &vdoc).await;
    assert_outcome(&r, 404, "not-found", None);
    assert!(r.json["issue"][0]["diagnostics"].as_str().is_some_and(|d| d.contains("_history")), "{}", r.text);
    // no ServiceRequest history (its earlier versions are not kept)
    let r = s.get(&format!("/fhir/ServiceRequest/{id}/_history"), &vdoc).await;
    assert_eq!(r.status.as_u16(), 404, "{}", r.text);
    // a facility that is not a party reads no version of it
    let clin_b = s.login("clin_b").await;
    assert_outcome(&s.get(&format!("/fhir/Task/{id}/_history"), &clin_b).await, 403, "forbidden", None);
    assert_outcome(&s.get(&format!("/fhir/Task/{id}/_history/1"), &clin_b).await, 403, "forbidden", None);
}

// ---------------------------------------------------------------------------------------
// Task update: one step of the life cycle

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_update_takes_one_step_of_the_life_cycle() {
    let s = TestServer::start().await;
    let vdoc = s.login("vdoc_a").await; // the sender
    let spec = s.login("spec_a").await; // the receiver (county hospital)
    let p = register(&s, &vdoc).await;
    let sr = json!({
        "resourceType": "ServiceRequest",
        "status": "active",
        "intent": "order",
        "subject": { "reference": format!("Patient/{p}") },
        "performer": [{ "reference": format!("Organization/{}", s.seed.county_hospital) }],
        "reasonCode": [{ "coding": [{ "system": "http://hl7.org/fhir/sid/icd-10", "code": "I10.x00" }], "text": "血压控制不佳" }],
    });
    let created = send(&s, Method::POST, "/fhir/ServiceRequest", &vdoc, &[], Some(&sr)).await;
    created.expect_status(201);
    let id = created.json["id"].as_str().expect("an id").to_owned();
    let path = format!("/fhir/Task/{id}");
    let v1 = s.get(&path, &spec).await;
    assert_version(&v1, 1);
    let mut accept = v1.json.clone();
    accept["status"] = json!("accepted");
    // refusals first, nothing written: no If-Match (428), the sender accepting (not its turn),
    // an element of the referral changed (422 at it)
    assert_outcome(&put_task(&s, &path, &spec, None, &accept).await, 428, "required", Some("http.If-Match"));
    let r = put_task(&s, &path, &vdoc, Some("W/\"1\""), &accept).await;
    assert_outcome(&r, 403, "forbidden", None);
    assert_eq!(r.json["issue"][0]["details"]["coding"][0]["code"], "referral.not_your_turn", "{}", r.text);
    let mut other = accept.clone();
    other["priority"] = json!("stat");
    assert_outcome(
        &put_task(&s, &path, &spec, Some("W/\"1\""), &other).await,
        422,
        "not-supported",
        Some("Task.priority"),
    );
    assert_version(&s.get(&path, &spec).await, 1);
    // the receiver accepts: version 2, as the JSON API's accept would make it
    let r = put_task(&s, &path, &spec, Some("W/\"1\""), &accept).await;
    r.expect_status(200);
    assert_version(&r, 2);
    assert_eq!(r.json["status"], "accepted");
    assert_eq!(r.json["businessStatus"]["coding"][0]["code"], "accepted");
    let api = s.get(&format!("/api/v1/referrals/{id}"), &spec).await;
    assert_eq!((api.json["state"].as_str(), api.json["version"].as_i64()), (Some("accepted"), Some(2)), "{}", api.text);
    assert_eq!(s.get(&path, &spec).await.json, r.json);
    // the same change again, at the old version: 412
    assert_outcome(&put_task(&s, &path, &spec, Some("W/\"1\""), &accept).await, 412, "conflict", Some("http.If-Match"));
    // schedule through businessStatus and restriction
    let at = (OffsetDateTime::now_utc() + time::Duration::days(2)).replace_nanosecond(0).expect("whole seconds");
    let mut schedule = r.json.clone();
    schedule["businessStatus"]["coding"][0]["code"] = json!("scheduled");
    schedule["restriction"] = json!({ "period": { "start": at.format(&Rfc3339).expect("format") } });
    let r = put_task(&s, &path, &spec, Some("W/\"2\""), &schedule).await;
    r.expect_status(200);
    assert_version(&r, 3);
    assert_eq!(r.json["businessStatus"]["coding"][0]["code"], "scheduled");
    let start = OffsetDateTime::parse(r.json["restriction"]["period"]["start"].as_str().unwrap_or("?"), &Rfc3339);
    assert_eq!(start.ok(), Some(at));
    // completing before arrival: the life cycle refuses it, nothing written
    let mut early = r.json.clone();
    early["status"] = json!("completed");
    early["output"] = json!([{
        "type": { "coding": [{ "system": "http://tiercare.org/fhir/CodeSystem/referral-output", "code": "outcome" }] },
        "valueString": "好转",
    }]);
    let bad = put_task(&s, &path, &spec, Some("W/\"3\""), &early).await;
    assert_outcome(&bad, 409, "conflict", None);
    assert_eq!(bad.json["issue"][0]["details"]["coding"][0]["code"], "referral.transition", "{}", bad.text);
    assert_version(&s.get(&path, &spec).await, 3);
    // a cancellation without its reason: 422 at statusReason.text
    let mut cancel = r.json.clone();
    cancel["status"] = json!("cancelled");
    assert_outcome(
        &put_task(&s, &path, &vdoc, Some("W/\"3\""), &cancel).await,
        422,
        "required",
        Some("Task.statusReason.text"),
    );
    cancel["statusReason"] = json!({ "text": "患者放弃转诊" });
    let r = put_task(&s, &path, &vdoc, Some("W/\"3\""), &cancel).await;
    r.expect_status(200);
    assert_version(&r, 4);
    assert_eq!(r.json["status"], "cancelled");
    assert_eq!(r.json["statusReason"]["text"], "患者放弃转诊");
    // each step is in the history, and was logged as the JSON API's steps are
    let h = s.get(&format!("/fhir/Task/{id}/_history"), &spec).await;
    assert_eq!(h.json["total"], 4);
    let f = AccessLogFilter { patient_id: Some(p), ..AccessLogFilter::default() };
    let log = s.store.query_access_log(&f).await.expect("the access log");
    assert_eq!(log.iter().filter(|e| e.action == "act_referral").count(), 3);
}

// ---------------------------------------------------------------------------------------
// what is not offered

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deletes_and_updates_of_other_types_are_refused_with_the_reason() {
    let s = TestServer::start().await;
    let vdoc = s.login("vdoc_a").await;
    let created = create_wang(&s, &vdoc).await;
    let id = created.json["id"].as_str().expect("an id").to_owned();
    let county = s.seed.county_hospital;
    let cases = [
        (Method::DELETE, format!("/fhir/Patient/{id}"), "merged"),
        (Method::DELETE, format!("/fhir/Task/{id}"), "cancelled"),
        (Method::DELETE, format!("/fhir/Organization/{county}"), "not deleted"),
        (Method::PUT, format!("/fhir/ServiceRequest/{id}"), "transitions"),
        (Method::PUT, format!("/fhir/ClaimResponse/{id}"), "reversed"),
        // If-Match on a type without versions changes nothing: still no update
        (Method::PUT, format!("/fhir/Organization/{county}"), "not updated"),
    ];
    for (method, path, why) in cases {
        let r = send(&s, method.clone(), &path, &vdoc, &[("if-match", "W/\"1\"")], Some(&json!({}))).await;
        assert_outcome(&r, 405, "not-supported", None);
        let text = r.json["issue"][0]["diagnostics"].as_str().unwrap_or_default();
        assert!(text.contains(why), "{method} {path}: {text}");
        assert!(header(&r, "allow").is_some(), "{method} {path}");
    }
    // nothing was deleted
    let back = s.get(&format!("/fhir/Patient/{id}"), &vdoc).await;
    assert_version(&back, 1);
    assert_eq!(s.patient_count().await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_statement_tells_each_type_s_versioning() {
    let s = TestServer::start().await;
    let r = s.call(Method::GET, "/fhir/metadata", None, None).await;
    r.expect_status(200);
    let resources = r.json["rest"][0]["resource"].as_array().expect("resources").clone();
    let of = |kind: &str| resources.iter().find(|x| x["type"] == kind).cloned().unwrap_or(Value::Null);
    let codes = |x: &Value| -> Vec<String> {
        x["interaction"].as_array().into_iter().flatten().filter_map(|i| i["code"].as_str().map(Into::into)).collect()
    };
    // (type, versioning, readHistory, conditionalCreate, interactions it must list)
    let expected = [
        ("Patient", "versioned-update", true, true, vec!["read", "vread", "update", "history-instance", "create"]),
        ("ServiceRequest", "versioned", false, true, vec!["read", "vread", "create"]),
        ("Task", "versioned-update", true, false, vec!["read", "vread", "update", "history-instance"]),
        ("Organization", "versioned", true, false, vec!["read", "vread", "history-instance"]),
        ("Claim", "versioned", true, false, vec!["read", "vread", "history-instance"]),
        ("Coverage", "no-version", false, false, vec!["read"]),
    ];
    for (kind, versioning, history, conditional, must) in expected {
        let x = of(kind);
        assert_eq!(x["versioning"], versioning, "{kind}");
        assert_eq!(x["readHistory"], history, "{kind}");
        assert_eq!(x["conditionalCreate"], conditional, "{kind}");
        assert_eq!(x["updateCreate"], false, "{kind}");
        assert_eq!(x["conditionalUpdate"], false, "{kind}");
        assert_eq!(x["conditionalDelete"], "not-supported", "{kind}");
        let listed = codes(&x);
        for m in must {
            assert!(listed.iter().any(|c| c == m), "{kind} {m}: {listed:?}");
        }
        assert!(!listed.iter().any(|c| c == "delete"), "{kind}");
    }
}
