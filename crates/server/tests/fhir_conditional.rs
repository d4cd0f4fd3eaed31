//! Conditional create (`If-None-Exist`, issue 7) of ServiceRequest, DiagnosticReport and
//! Observation through a real listening server over a fresh SQLite store: the criteria are
//! run as the type's own search by the same user, so 0 matches create (201), 1 answers the
//! existing resource (200, `Location`, nothing written), more answer 412; bad criteria (a
//! parameter the search does not declare, a modifier, a result parameter, a search the type
//! refuses) answer 400 at `http.If-None-Exist`, nothing written. Counts are of what each
//! test itself wrote.

mod common;

use common::{Resp, TestServer};
use reqwest::Method;
use serde_json::{Value, json};
use tiercare_domain::role::Role;
use tiercare_store::{AccessLogFilter, ResultQuery};
use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

const LOINC: &str = "http://loinc.org";
const ICD10: &str = "http://hl7.org/fhir/sid/icd-10";

fn ts(t: OffsetDateTime) -> String {
    t.replace_nanosecond(0).expect("whole seconds").format(&Rfc3339).expect("an instant")
}

/// GB 11643: the check character of the first 17 characters.
fn with_check(body17: &str) -> String {
    const W: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    let sum: u32 = body17.chars().zip(W).map(|(c, w)| c.to_digit(10).expect("digit") * w).sum();
    let check = ['1', '0', 'X', '9', '8', '7', '6', '5', '4', '3', '2'][(sum % 11) as usize];
    format!("{body17}{check}")
}

async fn post(s: &TestServer, path: &str, token: &str, body: &Value, criteria: Option<&str>) -> Resp {
    let mut rb = s
        .client
        .request(Method::POST, s.url(path))
        .bearer_auth(token)
        .header("content-type", "application/fhir+json")
        .body(body.to_string());
    if let Some(c) = criteria {
        rb = rb.header("if-none-exist", c);
    }
    s.send(rb).await
}

#[track_caller]
fn assert_outcome(r: &Resp, status: u16, code: &str, text: &str) {
    assert_eq!(r.status.as_u16(), status, "{}", r.text);
    assert_eq!(r.json["resourceType"], "OperationOutcome", "{}", r.text);
    let issue = &r.json["issue"][0];
    assert_eq!(issue["code"], code, "{}", r.text);
    assert_eq!(issue["expression"][0], "http.If-None-Exist", "{}", r.text);
    assert!(issue["diagnostics"].as_str().is_some_and(|d| d.contains(text)), "{text:?} in {}", r.text);
}

fn location(r: &Resp) -> Option<String> {
    r.headers.get("location").and_then(|v| v.to_str().ok()).map(str::to_owned)
}

// ---------------------------------------------------------------------------------------
// results

/// A patient registered at the county hospital by its specialist (a care relationship there,
/// so the county hospital's lab may search her results).
async fn patient(s: &TestServer) -> Uuid {
    let t = s.login("spec_a").await;
    let number = with_check("51162119610308222");
    let r = s.post("/api/v1/patients", &t, json!({"name": "王芳", "sex": "female", "identity_number": number})).await;
    r.expect_status(201);
    r.id()
}

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

async fn stored(s: &TestServer, patient: Uuid) -> usize {
    s.store.find_results(&ResultQuery { patient_ids: vec![patient], ..Default::default() }).await.expect("read").len()
}

/// Potassium (LOINC 2823-3, mmol/L in the sample catalogue), specimen at `at`.
fn potassium(patient: Uuid, at: OffsetDateTime, value: f64) -> Value {
    json!({
        "resourceType": "Observation", "status": "final",
        "code": { "coding": [{ "system": LOINC, "code": "2823-3" }] },
        "subject": { "reference": format!("Patient/{patient}") },
        "effectiveDateTime": ts(at), "issued": ts(at + Duration::hours(1)),
        "valueQuantity": { "value": value, "unit": "mmol/L" },
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_observation_is_created_once_by_its_criteria() {
    let mut s = TestServer::start().await;
    let lab = county_lab(&mut s).await;
    let p = patient(&s).await;
    let day = s.now() - Duration::days(2);
    let body = potassium(p, day, 4.1);
    let criteria = format!("patient=Patient/{p}&code={LOINC}|2823-3&date={}", ts(day));
    // nothing matches: created
    let first = post(&s, "/fhir/Observation", &lab, &body, Some(&criteria)).await;
    first.expect_status(201);
    let id = first.json["id"].as_str().expect("an id").to_owned();
    assert_eq!(stored(&s, p).await, 1);
    // again: 200 with the stored one, where it is; nothing written
    let again = post(&s, "/fhir/Observation", &lab, &body, Some(&criteria)).await;
    again.expect_status(200);
    assert_eq!(again.json["resourceType"], "Observation", "{}", again.text);
    assert_eq!(again.json["id"], id.as_str());
    assert_eq!(location(&again).as_deref(), Some(format!("/fhir/Observation/{id}").as_str()));
    assert_eq!(stored(&s, p).await, 1);
    // the criteria ran as the lab's own search: its read is logged like a search's
    let f = AccessLogFilter { patient_id: Some(p), limit: 500, ..AccessLogFilter::default() };
    let reads = s.store.query_access_log(&f).await.expect("log");
    assert!(reads.iter().any(|e| e.action == "fhir_read_results"), "the search's access-log row");
    // a second potassium a day later (no criteria): now patient + code names two → 412
    post(&s, "/fhir/Observation", &lab, &potassium(p, day + Duration::days(1), 4.4), None).await.expect_status(201);
    let both = format!("patient=Patient/{p}&code={LOINC}|2823-3");
    let r = post(&s, "/fhir/Observation", &lab, &body, Some(&both)).await;
    assert_outcome(&r, 412, "conflict", "matches 2 Observation");
    assert_eq!(stored(&s, p).await, 2, "nothing written");
    // bad criteria: 400 at the header, nothing written
    let r = post(&s, "/fhir/Observation", &lab, &body, Some(&format!("patient=Patient/{p}&colour=blue"))).await;
    assert_outcome(&r, 400, "not-supported", "supported: patient, code, date");
    let r = post(&s, "/fhir/Observation", &lab, &body, Some(&format!("patient=Patient/{p}&code:text=K"))).await;
    assert_outcome(&r, 400, "not-supported", "modifiers");
    let r = post(&s, "/fhir/Observation", &lab, &body, Some(&format!("patient=Patient/{p}&_count=1"))).await;
    assert_outcome(&r, 400, "invalid", "no criterion");
    let r = post(&s, "/fhir/Observation", &lab, &body, Some(&format!("patient=Patient/{p}&date=yesterday"))).await;
    assert_outcome(&r, 400, "value", "date");
    // criteria the type's search refuses (Observation is searched by patient): its refusal
    let r = post(&s, "/fhir/Observation", &lab, &body, Some(&format!("code={LOINC}|2823-3"))).await;
    assert_eq!(r.status.as_u16(), 400, "{}", r.text);
    assert_eq!(r.json["issue"][0]["expression"][0], "http.If-None-Exist", "{}", r.text);
    assert!(r.text.contains("run as a Observation search"), "{}", r.text);
    let r = post(&s, "/fhir/Observation", &lab, &body, Some("")).await;
    assert_outcome(&r, 400, "invalid", "no criteria");
    assert_eq!(stored(&s, p).await, 2, "nothing written by a refused condition");
    // a body that is not a valid Observation is refused before the criteria are looked at
    // (a body the domain refuses but that names an existing one is answered by it, as a
    // conditional create answers before creating: only the FHIR reading comes first)
    let mut wrong = body.clone();
    wrong["colour"] = json!("blue");
    let r = post(&s, "/fhir/Observation", &lab, &wrong, Some(&criteria)).await;
    assert_eq!(r.status.as_u16(), 400, "{}", r.text);
    assert_eq!(stored(&s, p).await, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_imaging_report_is_created_once_by_its_criteria() {
    let mut s = TestServer::start().await;
    let lab = county_lab(&mut s).await;
    let p = patient(&s).await;
    let exam = ts(s.now() - Duration::days(2));
    let ct = json!({
        "resourceType": "DiagnosticReport", "status": "final",
        "contained": [{
            "resourceType": "ImagingStudy", "id": "s1", "status": "available",
            "subject": { "reference": format!("Patient/{p}") },
            "modality": [{ "system": "http://dicom.nema.org/resources/ontology/DCM", "code": "CT" }],
            "series": [{ "uid": "2.25.1", "modality": { "system": "http://dicom.nema.org/resources/ontology/DCM", "code": "CT" },
                         "bodySite": { "display": "头颅" } }],
        }],
        "extension": [{ "url": "http://tiercare.org/fhir/StructureDefinition/imaging-findings", "valueString": "脑实质未见明显异常密度影" }],
        "category": [{ "coding": [{ "system": "http://terminology.hl7.org/CodeSystem/v2-0074", "code": "RAD" }] }],
        "code": { "coding": [{ "system": LOINC, "code": "24725-4" }] },
        "subject": { "reference": format!("Patient/{p}") },
        "effectiveDateTime": exam, "issued": exam,
        "imagingStudy": [{ "reference": "#s1" }],
        "conclusion": "头颅CT平扫未见异常",
    });
    let criteria = format!("patient=Patient/{p}&code={LOINC}|24725-4");
    let first = post(&s, "/fhir/DiagnosticReport", &lab, &ct, Some(&criteria)).await;
    first.expect_status(201);
    let id = first.json["id"].as_str().expect("an id").to_owned();
    let again = post(&s, "/fhir/DiagnosticReport", &lab, &ct, Some(&criteria)).await;
    again.expect_status(200);
    assert_eq!(
        (again.json["resourceType"].as_str(), again.json["id"].as_str()),
        (Some("DiagnosticReport"), Some(id.as_str()))
    );
    assert_eq!(location(&again).as_deref(), Some(format!("/fhir/DiagnosticReport/{id}").as_str()));
    assert_eq!(stored(&s, p).await, 1, "one report of one entry");
    // a parameter DiagnosticReport does not search by
    let r = post(&s, "/fhir/DiagnosticReport", &lab, &ct, Some(&format!("patient=Patient/{p}&identifier=x"))).await;
    assert_outcome(&r, 400, "not-supported", "\"identifier\"");
    assert_eq!(stored(&s, p).await, 1);
}

// ---------------------------------------------------------------------------------------
// referrals

fn service_request(patient: Uuid, performer: Uuid) -> Value {
    json!({
        "resourceType": "ServiceRequest", "status": "active", "intent": "order", "priority": "routine",
        "category": [{ "coding": [{ "system": "http://snomed.info/sct", "code": "3457005" }] }],
        "subject": { "reference": format!("Patient/{patient}") },
        "performer": [{ "reference": format!("Organization/{performer}") }],
        "reasonCode": [{ "coding": [{ "system": ICD10, "code": "I10.x00" }], "text": "血压控制不佳" }],
    })
}

async fn referrals_of(s: &TestServer, patient: Uuid) -> usize {
    let filter = tiercare_store::ReferralFilter { patient_ids: vec![patient], limit: 100, ..Default::default() };
    s.store.list_referrals(&filter).await.expect("referrals").len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_referral_is_created_once_by_its_criteria() {
    let s = TestServer::start().await;
    let vdoc = s.login("vdoc_a").await;
    let number = with_check("51162119620308102");
    let r =
        s.post("/api/v1/patients", &vdoc, json!({"name": "王秀英", "sex": "female", "identity_number": number})).await;
    r.expect_status(201);
    let p = r.id();
    let county = s.seed.county_hospital;
    let body = service_request(p, county);
    // (the sender's own referrals: requester is the user's facility)
    let criteria = format!("patient=Patient/{p}&requester=Organization/{}&status=active", s.seed.village_clinic);
    let first = post(&s, "/fhir/ServiceRequest", &vdoc, &body, Some(&criteria)).await;
    first.expect_status(201);
    let id = first.json["id"].as_str().expect("an id").to_owned();
    let again = post(&s, "/fhir/ServiceRequest", &vdoc, &body, Some(&criteria)).await;
    again.expect_status(200);
    assert_eq!(again.json["id"], id.as_str(), "{}", again.text);
    assert_eq!(location(&again).as_deref(), Some(format!("/fhir/ServiceRequest/{id}").as_str()));
    assert_eq!(referrals_of(&s, p).await, 1);
    // a second referral to the same hospital: the criteria name two now (412), a narrower
    // status (none is completed) none — so that one is created
    post(&s, "/fhir/ServiceRequest", &vdoc, &body, None).await.expect_status(201);
    let r = post(&s, "/fhir/ServiceRequest", &vdoc, &body, Some(&criteria)).await;
    assert_outcome(&r, 412, "conflict", "ServiceRequest");
    assert_eq!(referrals_of(&s, p).await, 2);
    // ServiceRequest is not searched by identifier: 400 with what it is searched by
    let r = post(&s, "/fhir/ServiceRequest", &vdoc, &body, Some("identifier=urn:x|1")).await;
    assert_outcome(&r, 400, "not-supported", "supported:");
    assert!(r.text.contains("patient") && r.text.contains("performer"), "{}", r.text);
    let done = format!("patient=Patient/{p}&status=completed");
    post(&s, "/fhir/ServiceRequest", &vdoc, &body, Some(&done)).await.expect_status(201);
    assert_eq!(referrals_of(&s, p).await, 3);
}
