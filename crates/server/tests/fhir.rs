//! FHIR R4 referral tests (issue 4): ServiceRequest + Task through a real listening server
//! over a fresh SQLite store. Expected values come from the issue's mapping (one referral
//! = one ServiceRequest + one Task with the same id; Task.status follows the life cycle;
//! Task.output carries the outcome), the FHIR R4 specification (value sets, HTTP
//! statuses, OperationOutcome) and the seeded facilities — not from the server's output.

mod common;
#[path = "../../fhir/tests/support/mod.rs"]
mod support;

use common::{Resp, TestServer};
use reqwest::Method;
use serde_json::{Value, json};
use tiercare_server::ServerConfig;
use tiercare_store::ReferralFilter;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use uuid::Uuid;

/// 王秀英, female, 1962-03-08, 岳池县 (check character computed by hand in tests/http.rs).
const WANG_ID: &str = "511621196203081027";
const ICD10: &str = "http://hl7.org/fhir/sid/icd-10";

// ---------------------------------------------------------------------------------------
// helpers

async fn register(s: &TestServer, token: &str) -> Uuid {
    let r = s
        .post("/api/v1/patients", token, json!({ "name": "王秀英", "sex": "female", "identity_number": WANG_ID }))
        .await;
    r.expect_status(201);
    r.id()
}

/// A referral for hypertension that two drugs do not control, as a hospital system sends it.
fn service_request(patient: &str, performer: Uuid) -> Value {
    json!({
        "resourceType": "ServiceRequest",
        "status": "active",
        "intent": "order",
        "category": [{ "coding": [{ "system": "http://snomed.info/sct", "code": "3457005" }] }],
        "priority": "routine",
        "subject": { "reference": patient },
        "performer": [{ "reference": format!("Organization/{performer}") }],
        "reasonCode": [{
            "coding": [{ "system": ICD10, "code": "I10.x00" }],
            "text": "血压控制不佳，需上级医院调整治疗"
        }],
        "note": [{ "text": "收缩压持续170以上，两种降压药联用无效" }]
    })
}

async fn post_raw(s: &TestServer, token: Option<&str>, content_type: &str, body: String) -> Resp {
    let mut rb = s.client.post(s.url("/fhir/ServiceRequest")).header("content-type", content_type).body(body);
    if let Some(t) = token {
        rb = rb.bearer_auth(t);
    }
    s.send(rb).await
}

async fn post_fhir(s: &TestServer, token: &str, body: &Value) -> Resp {
    post_raw(s, Some(token), "application/fhir+json", body.to_string()).await
}

#[track_caller]
fn assert_fhir_json(r: &Resp) {
    let ct = r.headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("");
    assert!(ct.starts_with("application/fhir+json"), "content type {ct:?}; body {}", r.text);
}

/// Assert an OperationOutcome with `status` and an issue of type `code` (at `expression`,
/// when given).
#[track_caller]
fn assert_outcome(r: &Resp, status: u16, code: &str, expression: Option<&str>) {
    assert_eq!(r.status.as_u16(), status, "status; body: {}", r.text);
    assert_fhir_json(r);
    assert_eq!(r.json["resourceType"], "OperationOutcome", "{}", r.text);
    let issues = r.json["issue"].as_array().expect("issues");
    let found = issues.iter().any(|i| {
        i["code"] == code
            && i["severity"] == "error"
            && expression.is_none_or(|e| i["expression"].as_array().is_some_and(|x| x.iter().any(|x| x == e)))
    });
    assert!(found, "expected a {code} issue at {expression:?}: {}", r.text);
}

fn parse_time(v: &Value) -> OffsetDateTime {
    OffsetDateTime::parse(v.as_str().unwrap_or_else(|| panic!("a time, got {v}")), &Rfc3339).expect("RFC 3339")
}

async fn act(s: &TestServer, token: &str, id: &str, body: Value) {
    s.post(&format!("/api/v1/referrals/{id}/transitions"), token, body).await.expect_status(200);
}

async fn stored(s: &TestServer) -> u64 {
    s.store.count_referrals(&ReferralFilter::default()).await.expect("count referrals")
}

fn entry_ids(bundle: &Value) -> Vec<String> {
    bundle["entry"]
        .as_array()
        .map(|a| a.iter().map(|e| e["resource"]["id"].as_str().unwrap_or_default().to_owned()).collect())
        .unwrap_or_default()
}

#[track_caller]
fn assert_searchset(r: &Resp, ids: &[&str]) {
    r.expect_status(200);
    assert_fhir_json(r);
    assert_eq!(r.json["resourceType"], "Bundle");
    assert_eq!(r.json["type"], "searchset");
    assert_eq!(entry_ids(&r.json), ids, "{}", r.text);
    assert_eq!(r.json["total"], ids.len(), "every match fits one page");
}

// ---------------------------------------------------------------------------------------
// the life cycle

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn created_through_fhir_read_searched_and_followed_to_completion() {
    let s = TestServer::start().await;
    let (village, county) = (s.seed.village_clinic, s.seed.county_hospital);
    let vdoc = s.login("vdoc_a").await; // village doctor: the sender
    let spec = s.login("spec_a").await; // county specialist: the receiver
    let p = register(&s, &vdoc).await;

    let created = post_fhir(&s, &vdoc, &service_request(&format!("Patient/{p}"), county)).await;
    created.expect_status(201);
    assert_fhir_json(&created);
    let sr = created.json.clone();
    let id = sr["id"].as_str().expect("an id").to_owned();
    assert_eq!(
        created.headers.get("location").and_then(|v| v.to_str().ok()),
        Some(format!("/fhir/ServiceRequest/{id}").as_str())
    );
    assert_eq!(sr["resourceType"], "ServiceRequest");
    assert_eq!(sr["status"], "active");
    assert_eq!(sr["intent"], "order");
    assert_eq!(sr["priority"], "routine");
    assert_eq!(sr["subject"]["reference"], format!("Patient/{p}"));
    // the sender is the user's facility; the receiver as asked
    assert_eq!(sr["requester"]["reference"], format!("Organization/{village}"));
    assert_eq!(sr["requester"]["display"], "岳池县九龙镇白庙村卫生室");
    assert_eq!(sr["performer"][0]["reference"], format!("Organization/{county}"));
    assert_eq!(sr["reasonCode"][0]["coding"][0]["code"], "I10.x00");
    assert_eq!(sr["reasonCode"][0]["coding"][0]["display"], "特发性（原发性）高血压");
    assert_eq!(sr["reasonCode"][0]["text"], "血压控制不佳，需上级医院调整治疗");
    assert_eq!(sr["note"][0]["text"], "收缩压持续170以上，两种降压药联用无效");
    let direction = sr["extension"]
        .as_array()
        .and_then(|a| a.iter().find(|e| e["url"] == "http://tiercare.org/fhir/StructureDefinition/referral-direction"))
        .map(|e| e["valueCode"].clone());
    assert_eq!(direction, Some(json!("upward")), "village → county");
    assert_eq!(stored(&s).await, 1);

    // both ends read the same ServiceRequest back
    for token in [&vdoc, &spec] {
        let r = s.get(&format!("/fhir/ServiceRequest/{id}"), token).await;
        r.expect_status(200);
        assert_fhir_json(&r);
        assert_eq!(r.json, sr);
    }
    // the Task has the same id and tracks the request
    let t = s.get(&format!("/fhir/Task/{id}"), &spec).await;
    t.expect_status(200);
    assert_fhir_json(&t);
    assert_eq!(t.json["resourceType"], "Task");
    assert_eq!(t.json["id"], id);
    assert_eq!(t.json["status"], "requested");
    assert_eq!(t.json["businessStatus"]["coding"][0]["code"], "requested");
    assert_eq!(t.json["focus"]["reference"], format!("ServiceRequest/{id}"));
    assert_eq!(t.json["basedOn"][0]["reference"], format!("ServiceRequest/{id}"));
    assert_eq!(t.json["for"]["reference"], format!("Patient/{p}"));
    assert_eq!(t.json["owner"]["reference"], format!("Organization/{county}"));
    assert_eq!(t.json["requester"]["reference"], format!("Organization/{village}"));
    assert_eq!(t.json["intent"], "order");

    // search: by patient (reference or bare id), by performer, by status
    let ids = [id.as_str()];
    assert_searchset(&s.get(&format!("/fhir/ServiceRequest?patient=Patient/{p}"), &vdoc).await, &ids);
    assert_searchset(&s.get(&format!("/fhir/ServiceRequest?patient={p}"), &spec).await, &ids);
    let by_performer = s.get(&format!("/fhir/ServiceRequest?performer=Organization/{county}"), &spec).await;
    assert_searchset(&by_performer, &ids);
    let full_url = by_performer.json["entry"][0]["fullUrl"].as_str().unwrap_or_default();
    assert_eq!(full_url, s.url(&format!("/fhir/ServiceRequest/{id}")));
    assert_eq!(by_performer.json["entry"][0]["search"]["mode"], "match");
    let other = s.seed.township_b;
    assert_searchset(&s.get(&format!("/fhir/ServiceRequest?performer=Organization/{other}"), &spec).await, &[]);
    assert_searchset(&s.get(&format!("/fhir/ServiceRequest?requester={village}&status=active"), &vdoc).await, &ids);
    assert_searchset(&s.get("/fhir/ServiceRequest?status=completed,revoked", &vdoc).await, &[]);
    assert_searchset(&s.get(&format!("/fhir/Task?owner=Organization/{county}&status=requested"), &spec).await, &ids);
    assert_searchset(&s.get(&format!("/fhir/Task?focus=ServiceRequest/{id}"), &vdoc).await, &ids);
    assert_searchset(&s.get(&format!("/fhir/Task?patient=Patient/{p}&_count=10"), &vdoc).await, &ids);

    // the life cycle through the JSON API shows in Task.status
    act(&s, &spec, &id, json!({ "action": "accept" })).await;
    let t = s.get(&format!("/fhir/Task/{id}"), &vdoc).await;
    assert_eq!(t.json["status"], "accepted");
    assert_eq!(t.json["businessStatus"]["coding"][0]["code"], "accepted");

    let at = OffsetDateTime::now_utc().replace_nanosecond(0).expect("whole seconds") + time::Duration::days(1);
    act(&s, &spec, &id, json!({ "action": "schedule", "at": at.format(&Rfc3339).expect("format") })).await;
    let t = s.get(&format!("/fhir/Task/{id}"), &vdoc).await;
    assert_eq!(t.json["status"], "accepted", "scheduled is still accepted in FHIR");
    assert_eq!(t.json["businessStatus"]["coding"][0]["code"], "scheduled");
    assert_eq!(parse_time(&t.json["restriction"]["period"]["start"]), at);
    assert_searchset(&s.get("/fhir/Task?business-status=scheduled", &vdoc).await, &ids);

    act(&s, &spec, &id, json!({ "action": "arrive" })).await;
    let t = s.get(&format!("/fhir/Task/{id}"), &vdoc).await;
    assert_eq!(t.json["status"], "in-progress");
    assert!(t.json.get("executionPeriod").is_some_and(|p| p.get("end").is_none()), "still running");

    let outcome = "调整为三联降压方案，血压降至135/85，回村随访";
    act(&s, &spec, &id, json!({ "action": "complete", "outcome": outcome })).await;
    let t = s.get(&format!("/fhir/Task/{id}"), &vdoc).await;
    assert_eq!(t.json["status"], "completed");
    assert_eq!(t.json["businessStatus"]["coding"][0]["code"], "completed");
    let outputs = t.json["output"].as_array().expect("outputs");
    let result = outputs.iter().find(|o| o["type"]["text"] == "outcome").expect("the outcome output");
    assert_eq!(result["valueString"], outcome);
    // arrival recorded the door time
    assert!(outputs.iter().any(|o| o["type"]["coding"][0]["code"] == "door" && o.get("valueDateTime").is_some()));
    assert!(t.json["executionPeriod"].get("end").is_some(), "finished");
    assert_eq!(t.json["meta"]["versionId"], "5", "request, accept, schedule, arrive, complete");
    assert_eq!(t.headers.get("etag").and_then(|v| v.to_str().ok()), Some("W/\"5\""));
    let sr = s.get(&format!("/fhir/ServiceRequest/{id}"), &vdoc).await;
    assert_eq!(sr.json["status"], "completed");
    assert_searchset(&s.get("/fhir/Task?status=completed", &spec).await, &ids);
    assert_searchset(&s.get("/fhir/ServiceRequest?status=active", &spec).await, &[]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejection_shows_as_rejected_with_its_reason() {
    let s = TestServer::start().await;
    let vdoc = s.login("vdoc_a").await;
    let spec = s.login("spec_a").await;
    let p = register(&s, &vdoc).await;
    let created = post_fhir(&s, &vdoc, &service_request(&format!("Patient/{p}"), s.seed.county_hospital)).await;
    created.expect_status(201);
    let id = created.json["id"].as_str().expect("an id").to_owned();

    act(&s, &spec, &id, json!({ "action": "reject", "reason": "本院心内科床位已满" })).await;
    let t = s.get(&format!("/fhir/Task/{id}"), &vdoc).await;
    assert_eq!(t.json["status"], "rejected");
    assert_eq!(t.json["statusReason"]["text"], "本院心内科床位已满");
    assert!(t.json.get("output").is_none(), "no result without completion");
    let sr = s.get(&format!("/fhir/ServiceRequest/{id}"), &vdoc).await;
    assert_eq!(sr.json["status"], "revoked");
    assert_searchset(&s.get("/fhir/ServiceRequest?status=revoked", &vdoc).await, &[id.as_str()]);
    assert_searchset(&s.get("/fhir/Task?status=rejected", &vdoc).await, &[id.as_str()]);
}

// ---------------------------------------------------------------------------------------
// errors

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_answer_operation_outcomes_and_nothing_is_written() {
    let s = TestServer::start().await;
    let county = s.seed.county_hospital;
    let vdoc = s.login("vdoc_a").await;
    let p = register(&s, &vdoc).await;
    let good = service_request(&format!("Patient/{p}"), county);

    // unreadable JSON
    let r = post_raw(&s, Some(&vdoc), "application/fhir+json", "{\"resourceType\": \"ServiceRequest\",".into()).await;
    assert_outcome(&r, 400, "structure", None);
    // not a ServiceRequest
    let r = post_fhir(&s, &vdoc, &json!({ "resourceType": "Patient", "gender": "female" })).await;
    assert_outcome(&r, 400, "invalid", None);
    // an element R4 does not have
    let mut v = good.clone();
    v["referralNote"] = json!("x");
    assert_outcome(&post_fhir(&s, &vdoc, &v).await, 400, "structure", Some("ServiceRequest.referralNote"));
    // a wrong JSON type
    let mut v = good.clone();
    v["performer"] = json!(format!("Organization/{county}"));
    assert_outcome(&post_fhir(&s, &vdoc, &v).await, 400, "structure", Some("ServiceRequest.performer"));
    // a patient reference that is no id of ours (here an identity number: not echoed)
    let mut v = good.clone();
    v["subject"]["reference"] = json!(format!("Patient/{WANG_ID}"));
    let r = post_fhir(&s, &vdoc, &v).await;
    assert_outcome(&r, 422, "value", Some("ServiceRequest.subject"));
    assert!(!r.text.contains(WANG_ID), "the identity number is not echoed: {}", r.text);
    // a patient id nobody registered (the API's reference.unknown on patient_id)
    let r = post_fhir(&s, &vdoc, &service_request(&format!("Patient/{}", Uuid::now_v7()), county)).await;
    assert_outcome(&r, 422, "value", Some("ServiceRequest.subject"));
    assert_eq!(r.json["issue"][0]["details"]["coding"][0]["code"], "reference.unknown");
    // an ICD-10 code that is not in ICD-10 医保版 2.0
    let mut v = good.clone();
    v["reasonCode"][0]["coding"][0]["code"] = json!("X99.999");
    assert_outcome(
        &post_fhir(&s, &vdoc, &v).await,
        422,
        "code-invalid",
        Some("ServiceRequest.reasonCode[0].coding[0].code"),
    );
    // a receiver without a stroke centre for a stroke green channel: the domain's
    // referral.capability on to_facility_id, mapped to the performer
    let mut v = service_request(&format!("Patient/{p}"), s.seed.township_b);
    v["extension"] =
        json!([{ "url": "http://tiercare.org/fhir/StructureDefinition/green-channel", "valueCode": "stroke" }]);
    let r = post_fhir(&s, &vdoc, &v).await;
    assert_outcome(&r, 422, "business-rule", Some("ServiceRequest.performer[0]"));
    assert!(r.text.contains("referral.capability"), "{}", r.text);
    // sending in another facility's name
    let mut v = good.clone();
    v["requester"] = json!({ "reference": format!("Organization/{county}") });
    assert_outcome(&post_fhir(&s, &vdoc, &v).await, 403, "forbidden", None);
    // not JSON at all
    let r = post_raw(&s, Some(&vdoc), "text/plain", good.to_string()).await;
    assert_outcome(&r, 415, "not-supported", None);
    // no token, a bad token
    let r = post_raw(&s, None, "application/fhir+json", good.to_string()).await;
    assert_outcome(&r, 401, "login", None);
    assert_eq!(r.headers.get("www-authenticate").and_then(|v| v.to_str().ok()), Some("Bearer"));
    let r = post_raw(&s, Some("not-a-token"), "application/fhir+json", good.to_string()).await;
    assert_outcome(&r, 401, "login", None);

    assert_eq!(stored(&s).await, 0, "nothing was written");

    // application/json is accepted too
    let r = post_raw(&s, Some(&vdoc), "application/json; charset=utf-8", good.to_string()).await;
    r.expect_status(201);
    let id = r.json["id"].as_str().expect("an id").to_owned();
    assert_eq!(stored(&s).await, 1);

    // reading: no token, an uninvolved facility, unknown ids
    let r = s.call(Method::GET, &format!("/fhir/ServiceRequest/{id}"), None, None).await;
    assert_outcome(&r, 401, "login", None);
    let outsider = s.login("clin_b").await; // 武胜县沿口镇中心卫生院: neither sender nor receiver
    assert_outcome(&s.get(&format!("/fhir/ServiceRequest/{id}"), &outsider).await, 403, "forbidden", None);
    assert_outcome(&s.get(&format!("/fhir/Task/{id}"), &outsider).await, 403, "forbidden", None);
    // searching does not show it to them either
    assert_searchset(&s.get(&format!("/fhir/ServiceRequest?patient={p}"), &outsider).await, &[]);
    assert_searchset(&s.get(&format!("/fhir/Task?focus={id}"), &outsider).await, &[]);
    assert_outcome(&s.get(&format!("/fhir/Task/{}", Uuid::now_v7()), &vdoc).await, 404, "not-found", None);
    assert_outcome(&s.get("/fhir/ServiceRequest/not-an-id", &vdoc).await, 404, "not-found", None);

    // strict search (Prefer: handling=strict): unknown parameters, modifiers, repeats and
    // bad values are refused
    for (query, named) in [
        ("/fhir/ServiceRequest?subject=Patient/x", "subject"),
        ("/fhir/ServiceRequest?patient:missing=true", "patient:missing"),
        ("/fhir/Task?code=fulfill", "code"),
        ("/fhir/Task?status=requested&status=accepted", "status"),
        ("/fhir/ServiceRequest?status=open", "status"),
        ("/fhir/ServiceRequest?performer=Practitioner/1", "performer"),
        ("/fhir/Task?_count=0", "_count"),
    ] {
        let r = s.send(s.client.get(s.url(query)).bearer_auth(&vdoc).header("prefer", "handling=strict")).await;
        assert_eq!(r.status.as_u16(), 400, "{query}: {}", r.text);
        assert_fhir_json(&r);
        assert_eq!(r.json["resourceType"], "OperationOutcome");
        let diagnostics = r.json["issue"][0]["diagnostics"].as_str().unwrap_or_default();
        assert!(diagnostics.contains(named), "{query}: {diagnostics}");
    }
    assert_outcome(&s.call(Method::GET, "/fhir/Task", None, None).await, 401, "login", None);

    // what this server does not offer: a type it does not serve, an id that is none of ours,
    // an interaction it does not have
    assert_outcome(&s.get("/fhir/MedicationRequest/123", &vdoc).await, 404, "not-found", None);
    assert_outcome(&s.get("/fhir/Patient/123", &vdoc).await, 404, "not-found", None);
    let r = s.call(Method::DELETE, &format!("/fhir/ServiceRequest/{id}"), Some(&vdoc), None).await;
    assert_outcome(&r, 405, "not-supported", None);
    assert_eq!(stored(&s).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_body_is_refused() {
    let s = TestServer::start_with(ServerConfig { max_body_bytes: 4096, ..ServerConfig::default() }).await;
    let vdoc = s.login("vdoc_a").await;
    let p = register(&s, &vdoc).await;
    let mut v = service_request(&format!("Patient/{p}"), s.seed.county_hospital);
    v["note"][0]["text"] = json!("血".repeat(4000));
    assert_outcome(&post_fhir(&s, &vdoc, &v).await, 413, "too-long", None);
    assert_eq!(stored(&s).await, 0);
}

// ---------------------------------------------------------------------------------------
// insurance (issue 6, part 8): Coverage, Claim/$submit → ClaimResponse

const ITEM: &str = "http://tiercare.org/fhir/CodeSystem/nhsa-item";
const ADJ: &str = "http://terminology.hl7.org/CodeSystem/adjudication";
const SPLIT: &str = "http://tiercare.org/fhir/CodeSystem/settlement-split";

/// A clerk at 岳池县人民医院 (county tier), a patient registered there (so the desk has a
/// relationship) and enrolled in 广安市城乡居民医保 (resident, pooling region 511600).
async fn insured(s: &mut TestServer) -> (String, Uuid, Uuid) {
    s.add_user("clerk_county", s.seed.county_hospital, tiercare_domain::role::Role::SettlementClerk).await;
    let clerk = s.login("clerk_county").await;
    let p = register(s, &clerk).await;
    let e = s
        .post(
            &format!("/api/v1/patients/{p}/enrolments"),
            &clerk,
            json!({ "scheme": "resident", "insured_region": "511600", "valid_from": "2026-01-01" }),
        )
        .await;
    e.expect_status(201);
    (clerk, p, e.id())
}

/// An inpatient stay at the county hospital, referred up (not after a stay): six lines
/// from the Sichuan sample catalogue. The bill, by hand (default resident policy: county
/// inpatient deductible 500.00, rate 80 %, class-B first share 10 %):
///   class A: 床位费 3 × 35.00 = 105.00; 住院诊查费 3 × 15.00 = 45.00          → 150.00
///   class B: 头孢曲松 10 × 15.85 = 158.50; 胸部 CT 1 × 149.90; 白蛋白 4 × 450.00 = 1,800.00
///            → 2,108.40, first share 10 % = 210.84
///   self-pay: 胸腺法新 2 × 120.00 = 240.00
///   total 2,498.40; eligible 2,498.40 − 240.00 − 210.84 = 2,047.56; deductible 500.00;
///   fund (2,047.56 − 500.00) × 80 % = 1,238.048 → 1,238.05; coinsurance 1,547.56 −
///   1,238.05 = 309.51; patient 2,498.40 − 1,238.05 = 1,260.35
///   (= 240.00 + 210.84 + 500.00 + 309.51).
const LINES: [(&str, i64, f64); 6] = [
    ("001107000010000", 3, 35.0),
    ("001103000010000", 3, 15.0),
    ("XJ01DDT098B001010100000", 10, 15.85),
    ("210300001000000", 1, 149.9),
    ("XB05AAR051B002010100000", 4, 450.0),
    ("XL03AXX045B001010100000", 2, 120.0),
];
const FUND_FEN: i64 = 123_805;

fn fhir_claim(patient: Uuid, txn: &str, use_: &str) -> Value {
    json!({
        "resourceType": "Claim",
        "extension": [{ "url": "http://tiercare.org/fhir/StructureDefinition/settlement-arrival", "valueCode": "upward_referral" }],
        "identifier": [{ "system": "urn:his:yuechi-county-hospital", "value": txn }],
        "status": "active",
        "type": { "coding": [{ "system": "http://terminology.hl7.org/CodeSystem/claim-type", "code": "institutional" }] },
        "use": use_,
        "patient": { "reference": format!("Patient/{patient}") },
        "created": "2026-12-03T10:15:00+08:00",
        "item": LINES.iter().enumerate().map(|(i, (code, q, price))| json!({
            "sequence": i + 1,
            "productOrService": { "coding": [{ "system": ITEM, "code": code }] },
            "quantity": { "value": q },
            "unitPrice": { "value": price, "currency": "CNY" }
        })).collect::<Vec<_>>()
    })
}

async fn submit(s: &TestServer, token: &str, body: &Value) -> Resp {
    let rb = s
        .client
        .post(s.url("/fhir/Claim/$submit"))
        .header("content-type", "application/fhir+json")
        .bearer_auth(token)
        .body(body.to_string());
    s.send(rb).await
}

async fn settlements_of(s: &TestServer, patient: Uuid) -> usize {
    let f = tiercare_store::SettlementFilter { patient_id: Some(patient), ..Default::default() };
    s.store.list_settlements(&f).await.expect("list settlements").len()
}

fn total(r: &Value, system: &str, code: &str) -> Value {
    r["total"]
        .as_array()
        .and_then(|a| {
            a.iter()
                .find(|t| t["category"]["coding"][0]["system"] == system && t["category"]["coding"][0]["code"] == code)
        })
        .map(|t| {
            assert_eq!(t["amount"]["currency"], "CNY");
            t["amount"]["value"].clone()
        })
        .unwrap_or_else(|| panic!("a {code} total in {r}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_is_settled_into_a_claim_response_with_the_split() {
    let mut s = TestServer::start().await;
    let (clerk, p, enrolment) = insured(&mut s).await;

    // the JSON API's pre-settlement of the same bill pays the fund what the hand says
    let bill = json!({
        "patient_id": p,
        "setting": "inpatient",
        "arrival": { "kind": "upward_referral", "after_stay_at": null },
        "lines": LINES.iter().map(|(code, q, price)| json!({
            "code": code, "quantity": q, "unit_price_fen": (price * 100.0).round() as i64
        })).collect::<Vec<_>>()
    });
    let preview = s.post("/api/v1/settlements/preview", &clerk, bill).await;
    preview.expect_status(200);
    assert_eq!(preview.json["fund_fen"], FUND_FEN, "{}", preview.text);

    // FHIR preview: 200, nothing stored
    let r = submit(&s, &clerk, &fhir_claim(p, "HIS-0001", "preauthorization")).await;
    r.expect_status(200);
    assert_fhir_json(&r);
    assert_eq!(r.json["resourceType"], "ClaimResponse");
    assert_eq!(r.json["use"], "preauthorization");
    assert!(r.json.get("id").is_none(), "a preview has no id: {}", r.text);
    assert_eq!(total(&r.json, ADJ, "benefit"), json!(1238.05));
    assert_eq!(settlements_of(&s, p).await, 0);

    // settle
    let mut claim = fhir_claim(p, "HIS-0001", "claim");
    claim["provider"] = json!({ "reference": format!("Organization/{}", s.seed.county_hospital) });
    claim["insurance"] =
        json!([{ "sequence": 1, "focal": true, "coverage": { "reference": format!("Coverage/{enrolment}") } }]);
    let r = submit(&s, &clerk, &claim).await;
    r.expect_status(201);
    assert_fhir_json(&r);
    let cr = r.json.clone();
    let id = cr["id"].as_str().expect("an id").to_owned();
    assert_eq!(
        r.headers.get("location").and_then(|v| v.to_str().ok()),
        Some(format!("/fhir/ClaimResponse/{id}").as_str())
    );
    assert_eq!(cr["status"], "active");
    assert_eq!(cr["use"], "claim");
    assert_eq!(cr["outcome"], "complete");
    assert_eq!(cr["type"]["coding"][0]["code"], "institutional");
    assert_eq!(cr["patient"]["reference"], format!("Patient/{p}"));
    assert_eq!(cr["request"]["reference"], format!("Claim/{id}"));
    assert_eq!(cr["requestor"]["reference"], format!("Organization/{}", s.seed.county_hospital));
    assert_eq!(cr["insurer"]["display"], "四川省广安市医疗保障局");
    assert_eq!(cr["identifier"][0]["value"], "HIS-0001");
    assert_eq!(total(&cr, ADJ, "submitted"), json!(2498.4));
    assert_eq!(total(&cr, ADJ, "benefit"), json!(1238.05));
    assert_eq!(total(&cr, ADJ, "copay"), json!(309.51));
    assert_eq!(total(&cr, ADJ, "deductible"), json!(500.0));
    assert_eq!(total(&cr, SPLIT, "self_pay"), json!(240.0));
    assert_eq!(total(&cr, SPLIT, "class_b_share"), json!(210.84));
    assert_eq!(total(&cr, SPLIT, "above_ceiling"), json!(0.0));
    assert_eq!(total(&cr, SPLIT, "patient_total"), json!(1260.35));
    let items = cr["item"].as_array().expect("items");
    assert_eq!(items.len(), 6);
    assert_eq!(items[2]["itemSequence"], 3);
    assert_eq!(items[2]["adjudication"][0]["amount"]["value"], json!(158.5), "头孢曲松 10 × 15.85");
    assert!(cr["processNote"].as_array().is_some_and(|n| !n.is_empty()), "the explanation");
    assert_eq!(settlements_of(&s, p).await, 1);
    // the JSON API agrees
    let stored = s.get(&format!("/api/v1/settlements/{id}"), &clerk).await;
    stored.expect_status(200);
    assert_eq!(stored.json["fund_fen"], FUND_FEN);

    // read back
    let back = s.get(&format!("/fhir/ClaimResponse/{id}"), &clerk).await;
    back.expect_status(200);
    assert_fhir_json(&back);
    assert_eq!(back.json, cr);

    // the same identifier and bill again: the first answer, nothing more stored
    let again = submit(&s, &clerk, &claim).await;
    again.expect_status(200);
    assert_eq!(again.json["id"], json!(id));
    assert_eq!(total(&again.json, ADJ, "benefit"), json!(1238.05));
    assert_eq!(settlements_of(&s, p).await, 1);
    // the same identifier for another bill: a conflict
    let mut other = claim.clone();
    other["item"][0]["quantity"]["value"] = json!(4);
    assert_outcome(&submit(&s, &clerk, &other).await, 409, "conflict", None);
    assert_eq!(settlements_of(&s, p).await, 1);

    // reversed through the JSON API: cancelled
    let rev = s
        .post(
            &format!("/api/v1/settlements/{id}/reversal"),
            &clerk,
            json!({ "txn_no": "R-0001", "reason": "录入错误" }),
        )
        .await;
    rev.expect_status(200);
    let back = s.get(&format!("/fhir/ClaimResponse/{id}"), &clerk).await;
    assert_eq!(back.json["status"], "cancelled");

    // who may read: not a clinician, not another facility's clerk
    let spec = s.login("spec_a").await;
    assert_outcome(&s.get(&format!("/fhir/ClaimResponse/{id}"), &spec).await, 403, "forbidden", None);
    s.add_user("clerk_city", s.seed.city_hospital, tiercare_domain::role::Role::SettlementClerk).await;
    let city = s.login("clerk_city").await;
    assert_outcome(&s.get(&format!("/fhir/ClaimResponse/{id}"), &city).await, 403, "forbidden", None);
    assert_outcome(&s.get(&format!("/fhir/ClaimResponse/{}", Uuid::now_v7()), &clerk).await, 404, "not-found", None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_claims_answer_operation_outcomes_and_nothing_is_settled() {
    let mut s = TestServer::start().await;
    let (clerk, p, _) = insured(&mut s).await;
    let good = fhir_claim(p, "HIS-0002", "claim");

    // not a clerk: 403 before anything else
    let spec = s.login("spec_a").await;
    assert_outcome(&submit(&s, &spec, &good).await, 403, "forbidden", None);
    let vdoc = s.login("vdoc_a").await;
    assert_outcome(&submit(&s, &vdoc, &good).await, 403, "forbidden", None);

    type Edit = Box<dyn Fn(&mut Value)>;
    let cases: Vec<(&str, Edit, u16, &str, &str)> = vec![
        (
            "three decimals",
            Box::new(|v| v["item"][2]["unitPrice"]["value"] = json!(15.855)),
            422,
            "value",
            "Claim.item[2].unitPrice",
        ),
        (
            "negative price",
            Box::new(|v| v["item"][2]["unitPrice"]["value"] = json!(-15.85)),
            422,
            "value",
            "Claim.item[2].unitPrice",
        ),
        (
            "dollars",
            Box::new(|v| v["item"][2]["unitPrice"]["currency"] = json!("USD")),
            422,
            "value",
            "Claim.item[2].unitPrice",
        ),
        (
            "quantity 0",
            Box::new(|v| v["item"][1]["quantity"]["value"] = json!(0)),
            422,
            "value",
            "Claim.item[1].quantity",
        ),
        // refused by the settlement rules, mapped back onto the Claim
        (
            "unknown item",
            Box::new(|v| v["item"][0]["productOrService"]["coding"][0]["code"] = json!("001107999999999")),
            422,
            "code-invalid",
            "Claim.item[0].productOrService",
        ),
        (
            "above the price limit (16.00)",
            Box::new(|v| v["item"][2]["unitPrice"]["value"] = json!(16.01)),
            422,
            "business-rule",
            "Claim.item[2].unitPrice",
        ),
        (
            "a future day of care",
            Box::new(|v| v["billablePeriod"] = json!({ "start": "2099-01-01" })),
            422,
            "business-rule",
            "Claim.billablePeriod.start",
        ),
        (
            "not enrolled then",
            Box::new(|v| v["billablePeriod"] = json!({ "start": "2025-12-31" })),
            422,
            "business-rule",
            "Claim.billablePeriod.start",
        ),
        (
            "unknown patient",
            Box::new(|v| v["patient"]["reference"] = json!(format!("Patient/{}", Uuid::now_v7()))),
            422,
            "value",
            "Claim.patient",
        ),
        (
            "a coverage that is not theirs",
            Box::new(
                |v| v["insurance"] = json!([{ "sequence": 1, "focal": true, "coverage": { "reference": format!("Coverage/{}", Uuid::now_v7()) } }]),
            ),
            422,
            "business-rule",
            "Claim.insurance[0].coverage",
        ),
        (
            "no transaction number",
            Box::new(|v| {
                v.as_object_mut().map(|o| o.remove("identifier"));
            }),
            422,
            "required",
            "Claim.identifier",
        ),
        ("an unknown element", Box::new(|v| v["bill"] = json!(1)), 400, "structure", "Claim.bill"),
        (
            "another facility as provider",
            Box::new(|v| v["provider"] = json!({ "reference": "Organization/0193a1b2-0000-7000-8000-000000000003" })),
            403,
            "forbidden",
            "Claim.provider",
        ),
    ];
    for (name, edit, status, code, expression) in cases {
        let mut v = good.clone();
        edit(&mut v);
        let r = submit(&s, &clerk, &v).await;
        assert_eq!(r.status.as_u16(), status, "{name}: {}", r.text);
        assert_outcome(&r, status, code, Some(expression));
    }
    // unreadable JSON, not JSON
    let rb = s
        .client
        .post(s.url("/fhir/Claim/$submit"))
        .header("content-type", "application/fhir+json")
        .bearer_auth(&clerk)
        .body("{");
    assert_outcome(&s.send(rb).await, 400, "structure", None);
    let rb = s
        .client
        .post(s.url("/fhir/Claim/$submit"))
        .header("content-type", "text/plain")
        .bearer_auth(&clerk)
        .body(good.to_string());
    assert_outcome(&s.send(rb).await, 415, "not-supported", None);
    let r = s.call(Method::GET, "/fhir/Claim/$submit", Some(&clerk), None).await;
    assert_outcome(&r, 405, "not-supported", None);

    assert_eq!(settlements_of(&s, p).await, 0, "nothing was settled");
    // and the good one still goes through, also with the `$` percent-encoded
    submit(&s, &clerk, &good).await.expect_status(201);
    assert_eq!(settlements_of(&s, p).await, 1);
    let rb = s
        .client
        .post(s.url("/fhir/Claim/%24submit"))
        .header("content-type", "application/fhir+json")
        .bearer_auth(&clerk)
        .body(good.to_string());
    let r = s.send(rb).await;
    r.expect_status(200);
    assert_eq!(settlements_of(&s, p).await, 1, "a replay");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enrolments_are_coverages_searched_by_patient() {
    let mut s = TestServer::start().await;
    let (clerk, p, enrolment) = insured(&mut s).await;
    let r = s.get(&format!("/fhir/Coverage?patient=Patient/{p}"), &clerk).await;
    assert_searchset(&r, &[enrolment.to_string().as_str()]);
    let c = &r.json["entry"][0]["resource"];
    assert_eq!(c["resourceType"], "Coverage");
    assert_eq!(c["status"], "active");
    assert_eq!(c["type"]["coding"][0]["code"], "resident");
    assert_eq!(c["beneficiary"]["reference"], format!("Patient/{p}"));
    assert_eq!(c["payor"][0]["display"], "四川省广安市医疗保障局");
    assert_eq!(c["period"]["start"], "2026-01-01");
    assert!(c["period"].get("end").is_none());
    // by bare id and as beneficiary
    assert_searchset(
        &s.get(&format!("/fhir/Coverage?beneficiary={p}"), &clerk).await,
        &[enrolment.to_string().as_str()],
    );
    // an unknown patient: no match
    assert_searchset(&s.get(&format!("/fhir/Coverage?patient={}", Uuid::now_v7()), &clerk).await, &[]);
    // the read is logged
    let log = s
        .store
        .query_access_log(&tiercare_store::AccessLogFilter { patient_id: Some(p), limit: 100, ..Default::default() })
        .await;
    assert!(log.expect("access log").iter().any(|e| e.action == "read_coverage"));
    // no relationship: 403; no patient: 400; no token: 401
    let outsider = s.login("clin_b").await;
    assert_outcome(&s.get(&format!("/fhir/Coverage?patient={p}"), &outsider).await, 403, "forbidden", None);
    // a desk elsewhere that identified the patient (the patient is there) may see it, as it
    // may settle
    s.add_user("clerk_city", s.seed.city_hospital, tiercare_domain::role::Role::SettlementClerk).await;
    let city = s.login("clerk_city").await;
    assert_outcome(&s.get(&format!("/fhir/Coverage?patient={p}"), &city).await, 403, "forbidden", None);
    s.post("/api/v1/patients/lookup", &city, json!({ "type": "resident_id", "value": WANG_ID }))
        .await
        .expect_status(200);
    assert_searchset(&s.get(&format!("/fhir/Coverage?patient={p}"), &city).await, &[enrolment.to_string().as_str()]);
    let r = s.get("/fhir/Coverage", &clerk).await;
    assert_eq!(r.status.as_u16(), 400, "{}", r.text);
    assert_outcome(&s.call(Method::GET, &format!("/fhir/Coverage?patient={p}"), None, None).await, 401, "login", None);
}

/// `GET /fhir/Coverage/{id}`: the enrolment the search lists, read alone, with the search's
/// rule and an access-log row; an unknown or malformed id is 404.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_coverage_is_read_by_its_id() {
    let mut s = TestServer::start().await;
    let (clerk, p, enrolment) = insured(&mut s).await;
    let reads = |s: &TestServer| {
        let store = s.store.clone();
        async move {
            store
                .query_access_log(&tiercare_store::AccessLogFilter {
                    patient_id: Some(p),
                    limit: 100,
                    ..Default::default()
                })
                .await
                .expect("access log")
                .iter()
                .filter(|e| e.action == "read_coverage")
                .count()
        }
    };
    let r = s.get(&format!("/fhir/Coverage/{enrolment}"), &clerk).await;
    assert_eq!(r.status.as_u16(), 200, "{}", r.text);
    let c = &r.json;
    // the enrolment `insured` made: resident scheme of 岳池 from 2026-01-01, open-ended
    assert_eq!(c["resourceType"], "Coverage");
    assert_eq!(c["id"], enrolment.to_string());
    assert_eq!(c["status"], "active");
    assert_eq!(c["type"]["coding"][0]["code"], "resident");
    assert_eq!(c["beneficiary"]["reference"], format!("Patient/{p}"));
    assert_eq!(c["payor"][0]["display"], "四川省广安市医疗保障局");
    assert_eq!(c["period"]["start"], "2026-01-01");
    assert!(c["period"].get("end").is_none());
    // the same resource as the search's entry
    let found = s.get(&format!("/fhir/Coverage?patient=Patient/{p}"), &clerk).await;
    assert_eq!(&found.json["entry"][0]["resource"], c);
    assert_eq!(reads(&s).await, 2, "each read is logged");
    // no relationship: 403, not logged; unknown or malformed id: 404; no token: 401; POST: 405
    let outsider = s.login("clin_b").await;
    assert_outcome(&s.get(&format!("/fhir/Coverage/{enrolment}"), &outsider).await, 403, "forbidden", None);
    assert_eq!(reads(&s).await, 2, "a refused read writes no row");
    assert_outcome(&s.get(&format!("/fhir/Coverage/{}", Uuid::now_v7()), &clerk).await, 404, "not-found", None);
    assert_outcome(&s.get("/fhir/Coverage/not-an-id", &clerk).await, 404, "not-found", None);
    assert_outcome(&s.call(Method::GET, &format!("/fhir/Coverage/{enrolment}"), None, None).await, 401, "login", None);
    let r = s.call(Method::POST, &format!("/fhir/Coverage/{enrolment}"), Some(&clerk), None).await;
    assert_outcome(&r, 405, "not-supported", None);
}

/// The amount (fen) of category `code` of `system` in one adjudication list.
fn adjudicated(list: &Value, system: &str, code: &str) -> i64 {
    let a = list
        .as_array()
        .and_then(|a| {
            a.iter()
                .find(|x| x["category"]["coding"][0]["system"] == system && x["category"]["coding"][0]["code"] == code)
        })
        .unwrap_or_else(|| panic!("{code} in {list}"));
    tiercare_fhir::claim::fen_from_yuan(&a["amount"]["value"]).expect("yuan")
}

/// The bill of [`LINES`], settled, read back as its Claim and its ClaimResponse. Per line
/// (fen), by the apportioning rule (tiercare_fhir::apportion: line k gets
/// round(X·cum_k/W) − round(X·cum_{k−1}/W), half-up), for 床位费 (line 1, class A, 10,500)
/// and 胸腺法新 (line 6, self-pay, 24,000):
///   eligible: 10,500; the others' 4,500 + (15,850 − 1,585) + (14,990 − 1,499) +
///   (180,000 − 18,000) → W = 204,756 (the bill's eligible 2,047.56).
///   deductible 50,000 × 10,500 / 204,756 = 2,564.03 → 2,564; base 10,500 − 2,564 = 7,936.
///   fund 123,805 over the bases (W = 204,756 − 50,000 = 154,756): 123,805 × 7,936 /
///   154,756 = 6,348.81 → 6,349; copay 7,936 − 6,349 = 1,587; patient 10,500 − 6,349 = 4,151.
///   line 6: all self-pay, the patient's 24,000; nothing eligible.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_settled_claim_reads_back_with_its_split_per_line() {
    let mut s = TestServer::start().await;
    let (clerk, p, enrolment) = insured(&mut s).await;
    let mut claim = fhir_claim(p, "HIS-0002", "claim");
    claim["insurance"] =
        json!([{ "sequence": 1, "focal": true, "coverage": { "reference": format!("Coverage/{enrolment}") } }]);
    let r = submit(&s, &clerk, &claim).await;
    r.expect_status(201);
    let id = r.json["id"].as_str().expect("an id").to_owned();

    // the Claim as stored: the bill that was sent, against the enrolment in force
    let c = s.get(&format!("/fhir/Claim/{id}"), &clerk).await;
    c.expect_status(200);
    assert_fhir_json(&c);
    assert_eq!(c.json["resourceType"], "Claim");
    assert_eq!(c.json["id"], json!(id));
    assert_eq!(c.json["status"], "active");
    assert_eq!(c.json["identifier"][0]["value"], "HIS-0002");
    assert_eq!(c.json["provider"]["reference"], format!("Organization/{}", s.seed.county_hospital));
    assert_eq!(c.json["insurance"][0]["coverage"]["reference"], format!("Coverage/{enrolment}"));
    assert_eq!(c.json["total"], json!({ "value": 2498.4, "currency": "CNY" }));
    let items = c.json["item"].as_array().expect("items");
    assert_eq!(items.len(), LINES.len());
    for (item, (code, q, price)) in items.iter().zip(LINES) {
        assert_eq!(item["productOrService"]["coding"][0]["code"], code);
        assert_eq!(item["quantity"]["value"], q);
        assert_eq!(item["unitPrice"]["value"], json!(price));
    }
    // read back through $submit's reader, it is the same bill
    let input = tiercare_fhir::claim::parse_claim(&c.json).unwrap_or_else(|e| panic!("{e:#?}"));
    assert_eq!(input.txn_no.as_deref(), Some("HIS-0002"));
    assert_eq!(input.coverage_id, Some(enrolment));
    assert_eq!(input.lines.len(), LINES.len());

    // the ClaimResponse: each line's split; each category's items add up to its total
    let cr = s.get(&format!("/fhir/ClaimResponse/{id}"), &clerk).await;
    cr.expect_status(200);
    let items = cr.json["item"].as_array().expect("items");
    let line = |i: usize, system: &str, code: &str| adjudicated(&items[i]["adjudication"], system, code);
    let want1 =
        [("submitted", 10_500), ("eligible", 10_500), ("deductible", 2_564), ("copay", 1_587), ("benefit", 6_349)];
    for (code, fen) in want1 {
        assert_eq!(line(0, ADJ, code), fen, "line 1 {code}");
    }
    assert_eq!(line(0, SPLIT, "patient_total"), 4_151);
    assert_eq!(line(5, SPLIT, "self_pay"), 24_000);
    assert_eq!(line(5, SPLIT, "patient_total"), 24_000);
    assert_eq!(line(5, ADJ, "eligible"), 0);
    for (system, code) in [
        (ADJ, "submitted"),
        (ADJ, "deductible"),
        (ADJ, "copay"),
        (ADJ, "benefit"),
        (SPLIT, "self_pay"),
        (SPLIT, "class_b_share"),
        (SPLIT, "above_ceiling"),
        (SPLIT, "patient_total"),
    ] {
        let sum: i64 = (0..items.len()).map(|i| line(i, system, code)).sum();
        let total = tiercare_fhir::claim::fen_from_yuan(&total(&cr.json, system, code)).expect("yuan");
        assert_eq!(sum, total, "{code}");
    }
    assert_eq!((0..items.len()).map(|i| line(i, ADJ, "benefit")).sum::<i64>(), FUND_FEN);

    // both conform to the R4 schema
    if let Some(dir) = support::medplum_r4() {
        let mut oracle = support::Oracle::new(&support::read_json(&dir.join("fhir.schema.json")));
        for r in [&c.json, &cr.json] {
            assert_eq!(oracle.errors(r), Vec::<String>::new(), "{r}");
        }
    }
    // both reads are logged
    let log = s
        .store
        .query_access_log(&tiercare_store::AccessLogFilter { patient_id: Some(p), limit: 100, ..Default::default() })
        .await
        .expect("access log");
    assert_eq!(log.iter().filter(|e| e.action == "read_settlement").count(), 2, "{log:?}");

    // who may read: not a clinician, not another facility's clerk; an unknown id: 404
    let spec = s.login("spec_a").await;
    assert_outcome(&s.get(&format!("/fhir/Claim/{id}"), &spec).await, 403, "forbidden", None);
    s.add_user("clerk_city", s.seed.city_hospital, tiercare_domain::role::Role::SettlementClerk).await;
    let city = s.login("clerk_city").await;
    assert_outcome(&s.get(&format!("/fhir/Claim/{id}"), &city).await, 403, "forbidden", None);
    assert_outcome(&s.get(&format!("/fhir/Claim/{}", Uuid::now_v7()), &clerk).await, 404, "not-found", None);
    assert_outcome(&s.get("/fhir/Claim/not-an-id", &clerk).await, 404, "not-found", None);

    // reversed: the Claim is cancelled
    s.post(&format!("/api/v1/settlements/{id}/reversal"), &clerk, json!({ "txn_no": "R-0002", "reason": "录入错误" }))
        .await
        .expect_status(200);
    assert_eq!(s.get(&format!("/fhir/Claim/{id}"), &clerk).await.json["status"], "cancelled");
}
