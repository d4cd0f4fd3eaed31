//! FHIR R4 referral tests (issue 4): ServiceRequest + Task through a real listening server
//! over a fresh SQLite store. Expected values come from the issue's mapping (one referral
//! = one ServiceRequest + one Task with the same id; Task.status follows the life cycle;
//! Task.output carries the outcome), the FHIR R4 specification (value sets, HTTP
//! statuses, OperationOutcome) and the seeded facilities — not from the server's output.

mod common;

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

    // strict search: unknown parameters, modifiers, repeats and bad values are refused
    for (query, named) in [
        ("/fhir/ServiceRequest?subject=Patient/x", "subject"),
        ("/fhir/ServiceRequest?patient:missing=true", "patient:missing"),
        ("/fhir/Task?code=fulfill", "code"),
        ("/fhir/Task?status=requested&status=accepted", "status"),
        ("/fhir/ServiceRequest?status=open", "status"),
        ("/fhir/ServiceRequest?performer=Practitioner/1", "performer"),
        ("/fhir/Task?_count=0", "_count"),
    ] {
        let r = s.get(query, &vdoc).await;
        assert_eq!(r.status.as_u16(), 400, "{query}: {}", r.text);
        assert_fhir_json(&r);
        assert_eq!(r.json["resourceType"], "OperationOutcome");
        let diagnostics = r.json["issue"][0]["diagnostics"].as_str().unwrap_or_default();
        assert!(diagnostics.contains(named), "{query}: {diagnostics}");
    }
    assert_outcome(&s.call(Method::GET, "/fhir/Task", None, None).await, 401, "login", None);

    // what this server does not offer
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
