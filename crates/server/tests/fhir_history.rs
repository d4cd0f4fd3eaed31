//! FHIR history (issue 7) through a real listening server over a fresh SQLite store:
//! every kept version of a Patient (vread, `_history`, migration 0017), the one version of
//! the types never changed once stored (a lab report and its observation, a facility), a
//! settlement's two versions (settled, reversed) as Claim and ClaimResponse, and
//! `_lastUpdated` / `_sort` on the referral searches. Expected values come from the requests
//! made here (what each answer served then), the R4 history-bundle rules (newest first;
//! POST for the creation, PUT after; `201 Created` / `200 OK`; the etag of each version) and
//! the order the test made things in (the clock moved between them).

mod common;

use common::{Resp, TestServer, YUECHI};
use reqwest::Method;
use serde_json::{Value, json};
use tiercare_domain::role::Role;
use tiercare_store::AccessLogFilter;
use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

const RESIDENT_ID: &str = "urn:oid:2.16.156.10011.1.3";
const LOINC: &str = "http://loinc.org";

/// A GB 11643 number: the 17 digits and their check character (weights 7 9 10 5 8 4 2 1 6 3
/// 7 9 10 5 8 4 2, sum mod 11 → 1 0 X 9 8 7 6 5 4 3 2).
fn with_check(body17: &str) -> String {
    const W: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    let sum: u32 = body17.chars().zip(W).map(|(c, w)| c.to_digit(10).expect("digit") * w).sum();
    let check = ['1', '0', 'X', '9', '8', '7', '6', '5', '4', '3', '2'][(sum % 11) as usize];
    format!("{body17}{check}")
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

fn etag(r: &Resp) -> Option<&str> {
    r.headers.get("etag").and_then(|v| v.to_str().ok())
}

#[track_caller]
fn assert_outcome(r: &Resp, status: u16, code: &str) {
    assert_eq!(r.status.as_u16(), status, "{}", r.text);
    assert_eq!(r.json["resourceType"], "OperationOutcome", "{}", r.text);
    assert_eq!(r.json["issue"][0]["code"], code, "{}", r.text);
}

/// A resource answered at version `n`: 200, `meta.versionId` and the `ETag` agree.
#[track_caller]
fn assert_at(r: &Resp, n: u32) {
    assert_eq!(r.status.as_u16(), 200, "{}", r.text);
    assert_eq!(r.json["meta"]["versionId"], n.to_string(), "{}", r.text);
    assert_eq!(etag(r), Some(format!("W/\"{n}\"").as_str()), "{}", r.text);
}

async fn logged(s: &TestServer, patient: Uuid, action: &str) -> usize {
    let f = AccessLogFilter { patient_id: Some(patient), limit: 500, ..AccessLogFilter::default() };
    s.store.query_access_log(&f).await.expect("the access log").iter().filter(|e| e.action == action).count()
}

/// A history Bundle's entries, checked against the R4 rules: type history, `total` the
/// number of entries, versions strictly newest first, the creation a POST of the type
/// (201) and each later version a PUT of the instance (200), `fullUrl` the instance, the
/// etag and lastModified those of the entry's resource.
#[track_caller]
fn history_entries(s: &TestServer, r: &Resp, kind: &str, id: &str) -> Vec<Value> {
    assert_eq!(r.status.as_u16(), 200, "{}", r.text);
    assert_eq!((r.json["resourceType"].as_str(), r.json["type"].as_str()), (Some("Bundle"), Some("history")));
    let entries = r.json["entry"].as_array().expect("entries").clone();
    assert_eq!(r.json["total"], entries.len());
    let versions: Vec<u64> = entries
        .iter()
        .map(|e| e["resource"]["meta"]["versionId"].as_str().and_then(|v| v.parse().ok()).expect("a versionId"))
        .collect();
    assert!(versions.windows(2).all(|w| w[0] > w[1]), "newest first: {versions:?}");
    for (e, n) in entries.iter().zip(&versions) {
        assert_eq!(e["fullUrl"], s.url(&format!("/fhir/{kind}/{id}")));
        assert_eq!(e["resource"]["resourceType"], kind);
        assert_eq!(e["resource"]["id"], id);
        assert_eq!(e["response"]["etag"], format!("W/\"{n}\""));
        if *n == 1 {
            assert_eq!((e["request"]["method"].as_str(), e["request"]["url"].as_str()), (Some("POST"), Some(kind)));
            assert_eq!(e["response"]["status"], "201 Created");
        } else {
            assert_eq!(e["request"]["method"], "PUT");
            assert_eq!(e["request"]["url"], format!("{kind}/{id}"));
            assert_eq!(e["response"]["status"], "200 OK");
        }
        if let Some(at) = e["resource"]["meta"]["lastUpdated"].as_str() {
            assert_eq!(e["response"]["lastModified"], at);
        }
    }
    entries
}

// ---------------------------------------------------------------------------------------
// Patient: every version kept

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_version_of_a_patient_is_read_back_as_it_was() {
    let s = TestServer::start().await;
    let vdoc = s.login("vdoc_a").await;
    let number = with_check("51162119620308102");
    let created =
        send(&s, Method::POST, "/fhir/Patient", &vdoc, &[], Some(&wang(s.seed.village_clinic, &number))).await;
    created.expect_status(201);
    let id = created.json["id"].as_str().expect("an id").to_owned();
    let pid: Uuid = id.parse().expect("a uuid");
    let path = format!("/fhir/Patient/{id}");

    // two updates: a new phone (version 2), then the name (version 3)
    let mut v2 = created.json.clone();
    v2["telecom"][0]["value"] = json!("13900005678");
    let u2 = send(&s, Method::PUT, &path, &vdoc, &[("if-match", "W/\"1\"")], Some(&v2)).await;
    assert_at(&u2, 2);
    let mut v3 = u2.json.clone();
    v3["name"][0]["text"] = json!("王秀兰");
    let u3 = send(&s, Method::PUT, &path, &vdoc, &[("if-match", "W/\"2\"")], Some(&v3)).await;
    assert_at(&u3, 3);

    // each version as it was answered then; each vread is a logged read of the record
    let before = logged(&s, pid, "fhir_read_patient").await;
    for (n, then) in [(1, &created), (2, &u2), (3, &u3)] {
        let r = s.get(&format!("{path}/_history/{n}"), &vdoc).await;
        assert_at(&r, n);
        assert_eq!(r.json, then.json, "version {n}");
    }
    assert_eq!(logged(&s, pid, "fhir_read_patient").await, before + 3);
    let old = s.get(&format!("{path}/_history/1"), &vdoc).await;
    assert_eq!(
        (old.json["name"][0]["text"].as_str(), old.json["telecom"][0]["value"].as_str()),
        (Some("王秀英"), Some("13800001234"))
    );
    let mid = s.get(&format!("{path}/_history/2"), &vdoc).await;
    assert_eq!(
        (mid.json["name"][0]["text"].as_str(), mid.json["telecom"][0]["value"].as_str()),
        (Some("王秀英"), Some("13900005678"))
    );
    assert_eq!(s.get(&path, &vdoc).await.json, u3.json, "the read is the newest version");

    // the history: three entries, newest first, the same resources; logged once
    let before = logged(&s, pid, "fhir_read_patient").await;
    let h = s.get(&format!("{path}/_history"), &vdoc).await;
    let entries = history_entries(&s, &h, "Patient", &id);
    assert_eq!(logged(&s, pid, "fhir_read_patient").await, before + 1);
    let resources: Vec<&Value> = entries.iter().map(|e| &e["resource"]).collect();
    assert_eq!(resources, [&u3.json, &u2.json, &created.json]);

    // If-Match naming an old version: 412, nothing written (still three versions)
    let mut stale = u3.json.clone();
    stale["telecom"][0]["value"] = json!("13700000000");
    let r = send(&s, Method::PUT, &path, &vdoc, &[("if-match", "W/\"1\"")], Some(&stale)).await;
    assert_outcome(&r, 412, "conflict");
    assert_eq!(r.json["issue"][0]["expression"][0], "http.If-Match");
    assert_eq!(s.get(&format!("{path}/_history"), &vdoc).await.json["total"], 3);

    // versions never made: 404 OperationOutcomes; an unknown patient too
    for unknown in ["4", "0", "-1", "x"] {
        assert_outcome(&s.get(&format!("{path}/_history/{unknown}"), &vdoc).await, 404, "not-found");
    }
    let nobody = Uuid::now_v7();
    assert_outcome(&s.get(&format!("/fhir/Patient/{nobody}/_history"), &vdoc).await, 404, "not-found");
    assert_outcome(&s.get(&format!("/fhir/Patient/{nobody}/_history/1"), &vdoc).await, 404, "not-found");
    // no sign-in: 401
    let r = s.send(s.client.get(s.url(&format!("{path}/_history")))).await;
    assert_outcome(&r, 401, "login");
}

// ---------------------------------------------------------------------------------------
// results and registries: one version

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_result_and_a_facility_have_one_version() {
    let mut s = TestServer::start().await;
    let county = s.seed.county_hospital;
    s.add_user("lab_county", county, Role::Lab).await;
    let admin = s.login("sysadmin").await;
    let granted = (s.now() - Duration::days(365)).format(&Rfc3339).expect("format");
    s.post(&format!("/api/v1/results/labs/{county}/qualification"), &admin, json!({"action": "grant", "at": granted}))
        .await
        .expect_status(200);
    let lab = s.login("lab_county").await;
    let spec = s.login("spec_a").await;
    let number = with_check("51162119610308222");
    let p =
        s.post("/api/v1/patients", &spec, json!({"name": "王芳", "sex": "female", "identity_number": number})).await;
    p.expect_status(201);
    let p = p.id();
    let specimen = (s.now() - Duration::days(3)).format(&Rfc3339).expect("format");
    let obs_url = format!("urn:uuid:{}", Uuid::now_v7());
    let bundle = json!({ "resourceType": "Bundle", "type": "transaction", "entry": [
        { "fullUrl": format!("urn:uuid:{}", Uuid::now_v7()), "request": { "method": "POST", "url": "DiagnosticReport" },
          "resource": { "resourceType": "DiagnosticReport", "status": "final",
            "code": { "coding": [{ "system": LOINC, "code": "24323-8" }] },
            "subject": { "reference": format!("Patient/{p}") }, "effectiveDateTime": specimen, "issued": specimen,
            "performer": [{ "reference": format!("Organization/{county}") }], "result": [{ "reference": obs_url }] } },
        { "fullUrl": obs_url, "request": { "method": "POST", "url": "Observation" },
          "resource": { "resourceType": "Observation", "status": "final",
            "code": { "coding": [{ "system": LOINC, "code": "2823-3" }] },
            "subject": { "reference": format!("Patient/{p}") }, "valueQuantity": { "value": 4.1, "unit": "mmol/L" } } },
    ]});
    let r = s.call(Method::POST, "/fhir", Some(&lab), Some(&bundle)).await;
    r.expect_status(200);
    let located = |i: usize| -> String {
        let l = r.json["entry"][i]["response"]["location"].as_str().expect("a location");
        l.split("/_history").next().unwrap_or(l).to_owned()
    };
    let (report, observation) = (located(0), located(1));
    assert!(
        report.starts_with("DiagnosticReport/") && observation.starts_with("Observation/"),
        "{report} {observation}"
    );

    for path in [report.as_str(), observation.as_str()] {
        let (kind, id) = path.split_once('/').expect("Kind/id");
        let read = s.get(&format!("/fhir/{path}"), &spec).await;
        read.expect_status(200);
        assert_eq!(etag(&read), Some("W/\"1\""), "{path}: the read names its version");
        let mut as_v1 = read.json.clone();
        as_v1["meta"]["versionId"] = json!("1");
        let before = logged(&s, p, "fhir_read_results").await;
        let v1 = s.get(&format!("/fhir/{path}/_history/1"), &spec).await;
        assert_at(&v1, 1);
        assert_eq!(v1.json, as_v1, "{path}: version 1 is what a read answers");
        let h = s.get(&format!("/fhir/{path}/_history"), &spec).await;
        let entries = history_entries(&s, &h, kind, id);
        assert_eq!(entries.len(), 1, "{path}");
        assert_eq!(entries[0]["resource"], as_v1);
        // vread and history are the read: its rule and its access-log row
        assert_eq!(logged(&s, p, "fhir_read_results").await, before + 2, "{path}");
        assert_outcome(&s.get(&format!("/fhir/{path}/_history/2"), &spec).await, 404, "not-found");
        let clin_b = s.login("clin_b").await;
        let other = s.get(&format!("/fhir/{path}/_history/1"), &clin_b).await;
        assert_eq!(other.status.as_u16(), read_status(&s, path, &clin_b).await, "{path}: the read's rule");
    }
    assert_outcome(&s.get(&format!("/fhir/Observation/{}/_history", Uuid::now_v7()), &spec).await, 404, "not-found");
    // an id that is not a FHIR id (a decoded `/`) names nothing: no nested history
    for bad in ["x%2F_history/_history", "x%2F_history/_history/1", "a%2Fb/_history"] {
        assert_outcome(&s.get(&format!("/fhir/Observation/{bad}"), &spec).await, 404, "not-found");
    }

    // a facility: one version too
    let org = format!("Organization/{county}");
    let read = s.get(&format!("/fhir/{org}"), &spec).await;
    assert_eq!(etag(&read), Some("W/\"1\""));
    let h = s.get(&format!("/fhir/{org}/_history"), &spec).await;
    let entries = history_entries(&s, &h, "Organization", &county.to_string());
    assert_eq!(entries.len(), 1);
    let mut as_v1 = read.json.clone();
    as_v1["meta"]["versionId"] = json!("1");
    assert_eq!(entries[0]["resource"], as_v1);
    assert_at(&s.get(&format!("/fhir/{org}/_history/1"), &spec).await, 1);
}

async fn read_status(s: &TestServer, path: &str, token: &str) -> u16 {
    s.get(&format!("/fhir/{path}"), token).await.status.as_u16()
}

// ---------------------------------------------------------------------------------------
// a settlement: settled (1), reversed (2)

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reversed_settlement_has_two_versions() {
    let mut s = TestServer::start().await;
    s.add_user("clerk_county", s.seed.county_hospital, Role::SettlementClerk).await;
    let clerk = s.login("clerk_county").await;
    let number = with_check("51162119620308102");
    let p =
        s.post("/api/v1/patients", &clerk, json!({"name": "王秀英", "sex": "female", "identity_number": number})).await;
    p.expect_status(201);
    let p = p.id();
    let e = json!({"scheme": "resident", "insured_region": YUECHI, "valid_from": "2026-01-01"});
    s.post(&format!("/api/v1/patients/{p}/enrolments"), &clerk, e).await.expect_status(201);
    // 床位费 4 × 35.00 (class A)
    let bill = json!({"txn_no": "HIS-H1", "patient_id": p, "setting": "inpatient", "date": "2026-11-20",
        "lines": [{"code": "001107000010000", "quantity": 4, "unit_price_fen": 3_500}]});
    let done = s.post("/api/v1/settlements", &clerk, bill).await;
    done.expect_status(201);
    let id = done.id().to_string();

    let settled: Vec<Resp> = {
        let mut v = Vec::new();
        for kind in ["Claim", "ClaimResponse"] {
            let r = s.get(&format!("/fhir/{kind}/{id}"), &clerk).await;
            assert_at(&r, 1);
            assert_eq!(r.json["status"], "active");
            v.push(r);
        }
        v
    };
    s.advance(Duration::minutes(30));
    s.post(&format!("/api/v1/settlements/{id}/reversal"), &clerk, json!({"txn_no": "R-H1", "reason": "录入错误"}))
        .await
        .expect_status(200);

    for (kind, then) in ["Claim", "ClaimResponse"].into_iter().zip(&settled) {
        let now = s.get(&format!("/fhir/{kind}/{id}"), &clerk).await;
        assert_at(&now, 2);
        assert_eq!(now.json["status"], "cancelled", "{kind}");
        assert!(now.json["meta"]["lastUpdated"].as_str() > then.json["meta"]["lastUpdated"].as_str(), "{kind}");
        // version 1 is the settlement as it was answered before the reversal
        let v1 = s.get(&format!("/fhir/{kind}/{id}/_history/1"), &clerk).await;
        assert_at(&v1, 1);
        assert_eq!(v1.json, then.json, "{kind}");
        let v2 = s.get(&format!("/fhir/{kind}/{id}/_history/2"), &clerk).await;
        assert_eq!(v2.json, now.json, "{kind}");
        assert_outcome(&s.get(&format!("/fhir/{kind}/{id}/_history/3"), &clerk).await, 404, "not-found");
        let h = s.get(&format!("/fhir/{kind}/{id}/_history"), &clerk).await;
        let entries = history_entries(&s, &h, kind, &id);
        let resources: Vec<&Value> = entries.iter().map(|e| &e["resource"]).collect();
        assert_eq!(resources, [&now.json, &then.json], "{kind}");
    }
    // a reader without the settlement role reads no version of it
    let vdoc = s.login("vdoc_a").await;
    assert_outcome(&s.get(&format!("/fhir/Claim/{id}/_history"), &vdoc).await, 403, "forbidden");
}

// ---------------------------------------------------------------------------------------
// the referral searches: _lastUpdated and _sort

async fn search(s: &TestServer, token: &str, kind: &str, q: String) -> Resp {
    s.get(&format!("/fhir/{kind}?{q}"), token).await
}

fn ids(r: &Resp) -> Vec<String> {
    assert_eq!(r.status.as_u16(), 200, "{}", r.text);
    r.json["entry"]
        .as_array()
        .map(|es| es.iter().filter_map(|e| e["resource"]["id"].as_str().map(str::to_owned)).collect())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn referral_searches_filter_and_sort_by_last_updated_and_authored() {
    let s = TestServer::start().await;
    let vdoc = s.login("vdoc_a").await;
    let spec = s.login("spec_a").await;
    let number = with_check("51162119620308102");
    let p =
        s.post("/api/v1/patients", &vdoc, json!({"name": "王秀英", "sex": "female", "identity_number": number})).await;
    p.expect_status(201);
    let p = p.id();
    let sr = json!({
        "resourceType": "ServiceRequest", "status": "active", "intent": "order", "priority": "routine",
        "subject": { "reference": format!("Patient/{p}") },
        "performer": [{ "reference": format!("Organization/{}", s.seed.county_hospital) }],
        "reasonCode": [{ "coding": [{ "system": "http://hl7.org/fhir/sid/icd-10", "code": "I10.x00" }], "text": "血压控制不佳" }],
    });
    // A requested first, B an hour later; then A accepted a day later (its last change)
    let a = send(&s, Method::POST, "/fhir/ServiceRequest", &vdoc, &[], Some(&sr)).await;
    a.expect_status(201);
    s.advance(Duration::hours(1));
    let b = send(&s, Method::POST, "/fhir/ServiceRequest", &vdoc, &[], Some(&sr)).await;
    b.expect_status(201);
    let (a, b) = (a.json["id"].as_str().expect("id").to_owned(), b.json["id"].as_str().expect("id").to_owned());
    s.advance(Duration::days(1));
    s.post(&format!("/api/v1/referrals/{a}/transitions"), &spec, json!({ "action": "accept", "note": "同意接收" }))
        .await
        .expect_status(200);
    let task_a = s.get(&format!("/fhir/Task/{a}"), &vdoc).await;
    let task_b = s.get(&format!("/fhir/Task/{b}"), &vdoc).await;
    let at = |r: &Resp| {
        OffsetDateTime::parse(r.json["meta"]["lastUpdated"].as_str().expect("lastUpdated"), &Rfc3339)
            .expect("an instant")
    };
    let (at_a, at_b) = (at(&task_a), at(&task_b));
    assert!(at_a > at_b + Duration::hours(23), "{at_a} {at_b}");
    // B's last change, to the second (a search value's precision), in China time
    let b_second = (at_b.to_offset(time::macros::offset!(+8))).replace_nanosecond(0).expect("whole seconds");
    let b_text = b_second.format(&Rfc3339).expect("format").replace('+', "%2B");
    let mid = (at_b + Duration::hours(12)).format(&Rfc3339).expect("format").replace('+', "%2B");
    let mine = format!("patient=Patient/{p}");

    // _lastUpdated on Task: after the step, only A; up to B's change, only B; ne B's second
    assert_eq!(ids(&search(&s, &vdoc, "Task", format!("{mine}&_lastUpdated=gt{mid}")).await), [a.as_str()]);
    assert_eq!(ids(&search(&s, &vdoc, "Task", format!("{mine}&_lastUpdated=le{b_text}")).await), [b.as_str()]);
    assert_eq!(ids(&search(&s, &vdoc, "Task", format!("{mine}&_lastUpdated={b_text}")).await), [b.as_str()]);
    assert_eq!(ids(&search(&s, &vdoc, "Task", format!("{mine}&_lastUpdated=ne{b_text}")).await), [a.as_str()]);
    assert_eq!(
        ids(&search(&s, &vdoc, "Task", format!("{mine}&_lastUpdated=ge{b_text}&_lastUpdated=lt{mid}")).await),
        [b.as_str()]
    );
    assert_eq!(ids(&search(&s, &vdoc, "ServiceRequest", format!("{mine}&_lastUpdated=gt{mid}")).await), [a.as_str()]);
    // one referral by focus: the same filter applies
    assert_eq!(
        ids(&search(&s, &vdoc, "Task", format!("focus=ServiceRequest/{a}&_lastUpdated=gt{mid}")).await),
        [a.as_str()]
    );
    assert!(ids(&search(&s, &vdoc, "Task", format!("focus=ServiceRequest/{b}&_lastUpdated=gt{mid}")).await).is_empty());
    // the count honours it too
    let n = search(&s, &vdoc, "Task", format!("{mine}&_lastUpdated=gt{mid}&_summary=count")).await;
    assert_eq!(n.json["total"], 1, "{}", n.text);
    // no patient named: the user's inbox and outbox (vdoc's facility sent both)
    assert_eq!(ids(&search(&s, &vdoc, "Task", format!("_lastUpdated=gt{mid}")).await), [a.as_str()]);

    // _sort: default newest request first (B, A); by authored ascending (A, B); by last
    // change (B, A) and descending (A, B)
    let both = |r: Resp| ids(&r);
    assert_eq!(both(search(&s, &vdoc, "Task", mine.clone()).await), [b.as_str(), a.as_str()]);
    assert_eq!(both(search(&s, &vdoc, "Task", format!("{mine}&_sort=authored-on")).await), [a.as_str(), b.as_str()]);
    assert_eq!(both(search(&s, &vdoc, "Task", format!("{mine}&_sort=-authored-on")).await), [b.as_str(), a.as_str()]);
    assert_eq!(both(search(&s, &vdoc, "Task", format!("{mine}&_sort=_lastUpdated")).await), [b.as_str(), a.as_str()]);
    assert_eq!(both(search(&s, &vdoc, "Task", format!("{mine}&_sort=-_lastUpdated")).await), [a.as_str(), b.as_str()]);
    assert_eq!(
        both(search(&s, &vdoc, "ServiceRequest", format!("{mine}&_sort=authored")).await),
        [a.as_str(), b.as_str()]
    );
    assert_eq!(
        both(search(&s, &vdoc, "ServiceRequest", format!("{mine}&_sort=-_lastUpdated")).await),
        [a.as_str(), b.as_str()]
    );
    // without a patient: the inbox and outbox merged in the sort's order, cut at _count
    assert_eq!(both(search(&s, &vdoc, "Task", "_sort=-_lastUpdated&_count=1".into()).await), [a.as_str()]);
    assert_eq!(both(search(&s, &vdoc, "Task", "_sort=_lastUpdated&_count=1".into()).await), [b.as_str()]);

    // a key not offered: 400 naming the keys that are
    for (kind, key, offered) in
        [("Task", "priority", "authored-on, _lastUpdated"), ("ServiceRequest", "authored-on", "authored, _lastUpdated")]
    {
        let r = search(&s, &vdoc, kind, format!("{mine}&_sort={key}")).await;
        assert_outcome(&r, 400, "not-supported");
        let text = r.json["issue"][0]["diagnostics"].as_str().unwrap_or_default();
        assert!(text.contains(offered) && text.contains(key), "{kind}: {text}");
    }
    // a bad date: 400
    assert_outcome(&search(&s, &vdoc, "Task", format!("{mine}&_lastUpdated=yesterday")).await, 400, "value");
}
