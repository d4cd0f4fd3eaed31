//! FHIR transaction Bundles (issue 7, item 4) through a real listening server over a fresh
//! SQLite store: a Patient (`urn:uuid:` fullUrl), a ServiceRequest and a DiagnosticReport with
//! its Observations referring to it land together, references rewritten, readable after; a
//! Bundle with one bad entry is refused whole (the entry named, nothing of the others
//! stored); `ifNoneExist` matching a registered patient takes its id; Claim, DELETE, a
//! resource written twice and wrong roles are refused.
//!
//! Expected values come from the rules: identity numbers with check characters computed by
//! hand (GB 11643: weights 7 9 10 5 8 4 2 1 6 3 7 9 10 5 8 4 2, sum mod 11 → 1 0 X 9 8 7 6 5
//! 4 3 2), the catalogue's LOINC codes (K 2823-3 in mmol/L, HbA1c 4548-4 in %), versions
//! (a new record or referral is version 1, each change + 1).

mod common;

use common::{Resp, TestServer};
use reqwest::Method;
use serde_json::{Value, json};
use tiercare_domain::role::Role;
use tiercare_store::{AccessLogFilter, ReferralFilter, ResultQuery, User, new_id};
use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime, UtcOffset};
use uuid::Uuid;

const RESIDENT_ID: &str = "urn:oid:2.16.156.10011.1.3";
const LOINC: &str = "http://loinc.org";
/// 王秀英, female, born 1962-03-08, 岳池县, sequence 102: sum 236, mod 11 = 5 → "7".
const WANG_ID: &str = "511621196203081027";
/// Sequence 124 (female), born the same day: sum 248, mod 11 = 6 → "6".
const LI_ID: &str = "511621196203081246";
/// WANG_ID with a wrong check character ("8" instead of "7").
const BAD_CHECK_ID: &str = "511621196203081028";

fn ts(t: OffsetDateTime) -> String {
    t.to_offset(UtcOffset::UTC).replace_nanosecond(0).expect("whole seconds").format(&Rfc3339).expect("format")
}

fn urn() -> String {
    format!("urn:uuid:{}", Uuid::now_v7())
}

fn patient(identity: &str, name: &str) -> Value {
    json!({
        "resourceType": "Patient",
        "identifier": [{ "system": RESIDENT_ID, "value": identity }],
        "name": [{ "text": name }],
        "gender": "female",
        "birthDate": "1962-03-08",
    })
}

fn service_request(subject: &str, performer: Uuid) -> Value {
    json!({
        "resourceType": "ServiceRequest", "status": "active", "intent": "order",
        "subject": { "reference": subject },
        "performer": [{ "reference": format!("Organization/{performer}") }],
        "reasonCode": [{ "coding": [{ "system": "http://hl7.org/fhir/sid/icd-10", "code": "I10.x00" }], "text": "血压控制不佳" }],
    })
}

fn observation(subject: &str, loinc: &str, value: f64, unit: &str) -> Value {
    json!({
        "resourceType": "Observation", "status": "final",
        "code": { "coding": [{ "system": LOINC, "code": loinc }] },
        "subject": { "reference": subject },
        "valueQuantity": { "value": value, "unit": unit },
    })
}

fn report(subject: &str, facility: Uuid, specimen: OffsetDateTime, results: &[&str]) -> Value {
    json!({
        "resourceType": "DiagnosticReport", "status": "final",
        "code": { "coding": [{ "system": LOINC, "code": "24323-8" }] },
        "subject": { "reference": subject },
        "effectiveDateTime": ts(specimen),
        "issued": ts(specimen + Duration::hours(2)),
        "performer": [{ "reference": format!("Organization/{facility}") }],
        "result": results.iter().map(|u| json!({ "reference": u })).collect::<Vec<_>>(),
    })
}

fn post_entry(full_url: &str, resource: Value) -> Value {
    let kind = resource["resourceType"].as_str().expect("a type").to_owned();
    json!({ "fullUrl": full_url, "resource": resource, "request": { "method": "POST", "url": kind } })
}

fn bundle(entries: Vec<Value>) -> Value {
    json!({ "resourceType": "Bundle", "type": "transaction", "entry": entries })
}

/// The county hospital's information system: registers, refers and reports results.
async fn his(s: &mut TestServer) -> String {
    let u = User {
        id: new_id(),
        username: "his_county".into(),
        display_name: "县医院信息系统".into(),
        facility_id: s.seed.county_hospital,
        roles: vec![Role::Specialist, Role::Lab],
        password_hash: tiercare_server::auth::hash_password(common::PASSWORD).expect("hash"),
        active: true,
    };
    s.store.create_user(&u).await.expect("user");
    s.login("his_county").await
}

async fn post(s: &TestServer, token: &str, body: &Value) -> Resp {
    s.call(Method::POST, "/fhir", Some(token), Some(body)).await
}

/// A refusal: the status, an OperationOutcome with an issue at `expression` (or under it).
#[track_caller]
fn assert_refused(r: &Resp, status: u16, expression: &str) {
    assert_eq!(r.status.as_u16(), status, "{}", r.text);
    assert_eq!(r.json["resourceType"], "OperationOutcome", "{}", r.text);
    let found = r.json["issue"]
        .as_array()
        .expect("issues")
        .iter()
        .any(|i| i["expression"][0].as_str().is_some_and(|e| e.starts_with(expression)));
    assert!(found, "no issue at {expression}: {}", r.text);
}

/// What the store holds that a Bundle could have written.
#[derive(Debug, PartialEq)]
struct Counts {
    patients: u64,
    referrals: u64,
}

async fn counts(s: &TestServer) -> Counts {
    let referrals = s
        .store
        .count_referrals(&ReferralFilter { from_facility_id: Some(s.seed.county_hospital), ..Default::default() })
        .await
        .expect("count");
    Counts { patients: s.patient_count().await, referrals }
}

/// The results stored for a patient.
async fn results_of(s: &TestServer, patient: &str) -> usize {
    let q = ResultQuery { patient_ids: vec![Uuid::parse_str(patient).expect("an id")], ..Default::default() };
    s.store.find_results(&q).await.expect("results").len()
}

fn locations(r: &Resp) -> Vec<String> {
    r.json["entry"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| e["response"]["location"].as_str().unwrap_or("").to_owned())
        .collect()
}

// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_patient_with_referral_and_results_lands_whole_and_reads_back() {
    let mut s = TestServer::start().await;
    let token = his(&mut s).await;
    let (county, city) = (s.seed.county_hospital, s.seed.city_hospital);
    let before = counts(&s).await;
    let (p, o1, o2) = (urn(), urn(), urn());
    let specimen = s.now() - Duration::hours(5);
    let b = bundle(vec![
        // the referral and the results come first in the Bundle: order does not matter
        post_entry(&urn(), service_request(&p, city)),
        post_entry(&urn(), report(&p, county, specimen, &[&o1, &o2])),
        post_entry(&o1, observation(&p, "2823-3", 4.1, "mmol/L")),
        post_entry(&o2, observation(&p, "4548-4", 6.5, "%")),
        post_entry(&p, patient(WANG_ID, "王秀英")),
        json!({ "request": { "method": "GET", "url": format!("Patient?identifier={RESIDENT_ID}|{WANG_ID}") } }),
    ]);
    let r = post(&s, &token, &b).await;
    r.expect_status(200);
    assert_eq!(r.json["type"], "transaction-response");
    let statuses: Vec<&str> = r.json["entry"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| e["response"]["status"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(statuses, ["201 Created", "201 Created", "201 Created", "201 Created", "201 Created", "200 OK"]);
    let loc = locations(&r);
    assert!(loc[0].starts_with("ServiceRequest/") && loc[1].starts_with("DiagnosticReport/"), "{loc:?}");
    assert!(loc[2].starts_with("Observation/") && loc[3].starts_with("Observation/"), "{loc:?}");
    let patient_id = loc[4].strip_prefix("Patient/").expect("a Patient location").to_owned();
    assert_eq!(r.json["entry"][4]["response"]["etag"], "W/\"1\"", "a new record is version 1");
    assert_eq!(r.json["entry"][0]["response"]["etag"], "W/\"1\"", "a new referral is version 1");
    // the GET ran after the writes: it finds the new patient
    assert_eq!(r.json["entry"][5]["resource"]["total"], 1, "{}", r.text);
    assert_eq!(r.json["entry"][5]["resource"]["entry"][0]["resource"]["id"], patient_id.as_str());
    let after = counts(&s).await;
    assert_eq!(after, Counts { patients: before.patients + 1, referrals: before.referrals + 1 });
    assert_eq!(results_of(&s, &patient_id).await, 2, "two observations stored");

    // readable after, each reference rewritten to the new id
    let subject = json!({ "reference": format!("Patient/{patient_id}") });
    let pt = s.get(&format!("/fhir/{}", loc[4]), &token).await;
    pt.expect_status(200);
    assert_eq!(pt.json["identifier"][0]["value"], WANG_ID);
    let sr = s.get(&format!("/fhir/{}", loc[0]), &token).await;
    sr.expect_status(200);
    assert_eq!(sr.json["subject"]["reference"], subject["reference"]);
    assert_eq!(sr.json["performer"][0]["reference"], format!("Organization/{city}"));
    let dr = s.get(&format!("/fhir/{}", loc[1]), &token).await;
    dr.expect_status(200);
    assert_eq!(dr.json["subject"], subject);
    let results: Vec<&str> =
        dr.json["result"].as_array().expect("result").iter().filter_map(|x| x["reference"].as_str()).collect();
    assert_eq!(results, [loc[2].as_str(), loc[3].as_str()], "the report's Observations are the entries created");
    let k = s.get(&format!("/fhir/{}", loc[2]), &token).await;
    k.expect_status(200);
    assert_eq!(k.json["subject"], subject);
    assert_eq!(k.json["valueQuantity"], json!({ "value": 4.1, "unit": "mmol/L" }));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_refused_entry_refuses_the_bundle_and_nothing_of_the_others_is_stored() {
    let mut s = TestServer::start().await;
    let token = his(&mut s).await;
    let (county, city) = (s.seed.county_hospital, s.seed.city_hospital);
    // a registered patient, for the stale update
    let li = s.call(Method::POST, "/fhir/Patient", Some(&token), Some(&patient(LI_ID, "李桂兰"))).await;
    li.expect_status(201);
    let li_id = li.json["id"].as_str().expect("id").to_owned();
    let before = counts(&s).await;
    let p = urn();
    let specimen = s.now() - Duration::hours(5);
    // entries 0 and 1 are good: a new patient and a referral for it; entry 2 varies
    let with_third = |third: Value| {
        bundle(vec![post_entry(&p, patient(WANG_ID, "王秀英")), post_entry(&urn(), service_request(&p, city)), third])
    };
    let mut stale = patient(LI_ID, "李桂兰");
    stale["id"] = json!(li_id);
    stale["telecom"] = json!([{ "system": "phone", "value": "13900001111" }]);
    let cases: Vec<(&str, Value, u16, &str)> = vec![
        (
            "a bad identity number",
            post_entry(&urn(), patient(BAD_CHECK_ID, "张三")),
            422,
            "Bundle.entry[2].resource.identifier",
        ),
        (
            "an item the catalogue does not know",
            post_entry(&urn(), {
                let mut o = observation(&p, "99999-9", 1.0, "mmol/L");
                o["effectiveDateTime"] = json!(ts(specimen));
                o["issued"] = json!(ts(specimen));
                o["performer"] = json!([{ "reference": format!("Organization/{county}") }]);
                o
            }),
            422,
            "Bundle.entry[2].resource.code",
        ),
        (
            "a stale If-Match",
            json!({ "resource": stale, "request": { "method": "PUT", "url": format!("Patient/{li_id}"), "ifMatch": "W/\"3\"" } }),
            412,
            "Bundle.entry[2].request.ifMatch",
        ),
        (
            "an unresolvable reference",
            post_entry(&urn(), report(&urn(), county, specimen, &[])),
            422,
            "Bundle.entry[2].resource.subject",
        ),
        (
            "a Claim",
            json!({ "resource": { "resourceType": "Claim" }, "request": { "method": "POST", "url": "Claim/$submit" } }),
            422,
            "Bundle.entry[2].request",
        ),
        (
            "a DELETE",
            json!({ "request": { "method": "DELETE", "url": format!("Patient/{li_id}") } }),
            422,
            "Bundle.entry[2].request",
        ),
    ];
    for (what, third, status, expression) in cases {
        let r = post(&s, &token, &with_third(third)).await;
        assert_refused(&r, status, expression);
        assert_eq!(counts(&s).await, before, "{what}: nothing of entries 0 and 1 was stored");
        let found = s.get(&format!("/fhir/Patient?identifier={RESIDENT_ID}|{WANG_ID}"), &token).await;
        assert_eq!(found.json["total"], 0, "{what}: {}", found.text);
    }
    // the same resource written twice
    let put = |version: &str| {
        let mut li = patient(LI_ID, "李桂兰");
        li["id"] = json!(li_id);
        json!({ "resource": li, "request": { "method": "PUT", "url": format!("Patient/{li_id}"), "ifMatch": version } })
    };
    let r = post(&s, &token, &bundle(vec![put("W/\"1\""), put("W/\"1\"")])).await;
    assert_refused(&r, 400, "Bundle.entry[1].request.url");
    // one Observation in the result of two reports (or twice in one) would be stored twice
    let o = urn();
    let twice = bundle(vec![
        post_entry(&p, patient(WANG_ID, "王秀英")),
        post_entry(&o, observation(&p, "2823-3", 4.1, "mmol/L")),
        post_entry(&urn(), report(&p, county, specimen, &[&o])),
        post_entry(&urn(), report(&p, county, specimen, &[&o])),
    ]);
    assert_refused(&post(&s, &token, &twice).await, 400, "Bundle.entry[1]");
    let once_twice = bundle(vec![
        post_entry(&p, patient(WANG_ID, "王秀英")),
        post_entry(&o, observation(&p, "2823-3", 4.1, "mmol/L")),
        post_entry(&urn(), report(&p, county, specimen, &[&o, &o])),
    ]);
    assert_refused(&post(&s, &token, &once_twice).await, 400, "Bundle.entry[1]");
    assert_eq!(counts(&s).await, before, "an Observation referred to twice: nothing stored");
    // more entries than a Bundle may hold
    let many: Vec<Value> = (0..501).map(|_| json!({ "request": { "method": "GET", "url": "metadata" } })).collect();
    assert_refused(&post(&s, &token, &bundle(many)).await, 400, "Bundle.entry");
    assert_eq!(counts(&s).await, before);
    let li_now = s.get(&format!("/fhir/Patient/{li_id}"), &token).await;
    assert_eq!(li_now.json["meta"]["versionId"], "1", "the refused updates changed nothing");

    // and the Bundle corrected lands whole
    let r = post(&s, &token, &with_third(post_entry(&urn(), service_request(&p, s.seed.provincial_hospital)))).await;
    r.expect_status(200);
    assert_eq!(counts(&s).await, Counts { patients: before.patients + 1, referrals: before.referrals + 2 });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn if_none_exist_takes_the_registered_patient_for_the_later_entries() {
    let mut s = TestServer::start().await;
    let token = his(&mut s).await;
    let city = s.seed.city_hospital;
    let wang = s.call(Method::POST, "/fhir/Patient", Some(&token), Some(&patient(WANG_ID, "王秀英"))).await;
    wang.expect_status(201);
    let wang_id = wang.json["id"].as_str().expect("id").to_owned();
    let before = counts(&s).await;
    let p = urn();
    let mut create = post_entry(&p, patient(WANG_ID, "王秀英"));
    create["request"]["ifNoneExist"] = json!(format!("identifier={RESIDENT_ID}|{WANG_ID}"));
    let r = post(&s, &token, &bundle(vec![create, post_entry(&urn(), service_request(&p, city))])).await;
    r.expect_status(200);
    assert_eq!(r.json["entry"][0]["response"]["status"], "200 OK", "{}", r.text);
    assert_eq!(locations(&r)[0], format!("Patient/{wang_id}"));
    assert_eq!(r.json["entry"][1]["response"]["status"], "201 Created");
    let sr = s.get(&format!("/fhir/{}", locations(&r)[1]), &token).await;
    assert_eq!(sr.json["subject"]["reference"], format!("Patient/{wang_id}"));
    assert_eq!(counts(&s).await, Counts { patients: before.patients, referrals: before.referrals + 1 });
    // the match was read (as the standalone conditional create logs it), in the transaction
    let f = AccessLogFilter { patient_id: Uuid::parse_str(&wang_id).ok(), limit: 100, ..Default::default() };
    let log = s.store.query_access_log(&f).await.expect("log");
    assert_eq!(log.iter().filter(|e| e.action == "fhir_read_patient").count(), 1, "{log:?}");
    // a user whose facility may not read her is told where she is, not her version (as the
    // standalone conditional create), and no read is logged for that user
    let clin_b = s.login("clin_b").await;
    let mut again = post_entry(&urn(), patient(WANG_ID, "王秀英"));
    again["request"]["ifNoneExist"] = json!(format!("identifier={RESIDENT_ID}|{WANG_ID}"));
    let r_b = post(&s, &clin_b, &bundle(vec![again])).await;
    r_b.expect_status(200);
    assert_eq!(r_b.json["entry"][0]["response"]["status"], "200 OK", "{}", r_b.text);
    assert_eq!(r_b.json["entry"][0]["response"]["location"], format!("Patient/{wang_id}"));
    assert!(r_b.json["entry"][0]["response"].get("etag").is_none(), "{}", r_b.text);
    assert!(!r_b.text.contains("王秀英") && !r_b.text.contains(WANG_ID), "{}", r_b.text);
    let log = s.store.query_access_log(&f).await.expect("log");
    assert_eq!(log.iter().filter(|e| e.action == "fhir_read_patient").count(), 1, "{log:?}");

    // a Task step in a transaction: the receiver accepts (version 2, its act_referral row)
    let sr_id = locations(&r)[1].strip_prefix("ServiceRequest/").expect("id").to_owned();
    let rc = s.login("rc_city").await;
    let task = s.get(&format!("/fhir/Task/{sr_id}"), &rc).await;
    task.expect_status(200);
    let mut accept = task.json.clone();
    accept["status"] = json!("accepted");
    let step = json!({ "resource": accept, "request": { "method": "PUT", "url": format!("Task/{sr_id}"), "ifMatch": "W/\"1\"" } });
    let r = post(&s, &rc, &bundle(vec![step.clone()])).await;
    r.expect_status(200);
    assert_eq!(r.json["entry"][0]["response"]["etag"], "W/\"2\"", "{}", r.text);
    let acted = s.store.query_access_log(&f).await.expect("log");
    assert_eq!(acted.iter().filter(|e| e.action == "act_referral").count(), 1);
    // the same step again from version 1: 412, nothing written
    assert_refused(&post(&s, &rc, &bundle(vec![step])).await, 412, "Bundle.entry[0].request.ifMatch");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entry_the_user_may_not_write_refuses_the_bundle() {
    let mut s = TestServer::start().await;
    let county = s.seed.county_hospital;
    s.add_user("lab_county", county, Role::Lab).await;
    let lab = s.login("lab_county").await;
    let spec = s.login("spec_a").await;
    let before = counts(&s).await;
    let p = urn();
    let o = urn();
    let specimen = s.now() - Duration::hours(5);
    let mixed = bundle(vec![
        post_entry(&p, patient(WANG_ID, "王秀英")),
        post_entry(&urn(), report(&p, county, specimen, &[&o])),
        post_entry(&o, observation(&p, "2823-3", 4.1, "mmol/L")),
    ]);
    // a lab system does not register patients; a specialist does not report results
    assert_refused(&post(&s, &lab, &mixed).await, 403, "Bundle.entry[0]");
    assert_refused(&post(&s, &spec, &mixed).await, 403, "Bundle.entry[1]");
    // without a sign-in: 401
    let r = s.call(Method::POST, "/fhir", None, Some(&mixed)).await;
    assert_eq!(r.status.as_u16(), 401, "{}", r.text);
    assert_eq!(counts(&s).await, before, "nothing was written");
}
