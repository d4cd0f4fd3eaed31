//! Results and mutual recognition over HTTP (issue 5, domain.md M6) through a real listening
//! server over a fresh SQLite store. Expected answers come from the rules of domain.md M6 and
//! the sample catalogue (crates/domain/data/recognition-default.toml: HbA1c 60 days, 3,500
//! fen; K 7 days, 400 fen; head CT 90 days, 28,000 fen; ECG 30 days, 2,500 fen), worked by
//! hand in the comments.
//!
//! The seed (tests/common): 岳池县人民医院 (county, 511621, community A), 罗渡镇卫生院
//! (township, 511621, community A), 沿口镇卫生院 (township, 511622 武胜县, community B),
//! 四川省人民医院 (provincial, 510104, no community). All in province 51 (四川).

mod common;

use common::TestServer;
use serde_json::{Value, json};
use tiercare_domain::encounter::{EncounterClass, NewEncounter};
use tiercare_domain::role::Role;
use tiercare_store::{AccessLogFilter, ResultQuery, new_id};
use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime, UtcOffset};
use uuid::Uuid;

fn ts(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).expect("format")
}

/// GB 11643 check character (ISO 7064 MOD 11-2), computed here from the standard.
fn with_check(body17: &str) -> String {
    const W: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    let sum: u32 = body17.chars().zip(W).map(|(c, w)| c.to_digit(10).expect("digit") * w).sum();
    let check = ['1', '0', 'X', '9', '8', '7', '6', '5', '4', '3', '2'][(sum % 11) as usize];
    format!("{body17}{check}")
}

/// A patient registered at the county hospital by its specialist (a care relationship there).
async fn patient(s: &TestServer) -> Uuid {
    let t = s.login("spec_a").await;
    let number = with_check("51162119610308222");
    let r = s.post("/api/v1/patients", &t, json!({"name": "王芳", "sex": "female", "identity_number": number})).await;
    r.expect_status(201);
    r.id()
}

/// An outpatient encounter of `patient` at `facility` (gives that facility a care relationship).
async fn seen_at(s: &TestServer, patient: Uuid, facility: Uuid) {
    let e = NewEncounter {
        patient_id: patient,
        facility_id: facility,
        department: None,
        practitioner_id: None,
        class: EncounterClass::Outpatient,
        started_at: s.now() - Duration::days(1),
        ended_at: None,
        diagnoses: vec!["I10.x00".into()],
        procedures: vec![],
        total_cost_fen: 5_000,
    }
    .validate(new_id(), common::YUECHI.into(), s.now())
    .expect("valid encounter");
    s.store.create_encounter(&e).await.expect("encounter");
}

/// Qualify `lab` for HR since a year ago (as the system admin).
async fn qualify(s: &TestServer, lab: Uuid) {
    let t = s.login("sysadmin").await;
    let at = ts(s.now() - Duration::days(365));
    s.post(&format!("/api/v1/results/labs/{lab}/qualification"), &t, json!({"action": "grant", "at": at}))
        .await
        .expect_status(200);
}

fn province_mark() -> Value {
    json!({"kind": "province", "province": "51"})
}

fn lab_body(patient: Uuid, facility: Uuid, specimen: OffsetDateTime, mark: Value, obs: Vec<Value>) -> Value {
    json!({
        "patient_id": patient, "facility_id": facility, "lab_id": facility, "category": "lab",
        "specimen_time": ts(specimen), "report_time": ts(specimen + Duration::hours(2)),
        "mark": mark, "observations": obs,
    })
}

fn ob(code: &str, value: &str, unit: &str) -> Value {
    json!({"code": code, "value": value, "unit": unit})
}

fn ct_body(patient: Uuid, facility: Uuid, exam: OffsetDateTime, mark: Value) -> Value {
    json!({
        "patient_id": patient, "facility_id": facility, "lab_id": facility, "category": "imaging",
        "specimen_time": ts(exam), "report_time": ts(exam + Duration::hours(1)), "mark": mark,
        "imaging": {"code": "CT-HEAD", "modality": "ct", "body_site": "头颅",
                    "findings": "脑实质未见明显异常密度影", "conclusion": "头颅CT平扫未见异常"},
    })
}

async fn stored_results(s: &TestServer, patient: Uuid) -> usize {
    s.store.find_results(&ResultQuery { patient_ids: vec![patient], ..Default::default() }).await.expect("read").len()
}

/// The answers of an order check, by ordered code.
async fn check(s: &TestServer, user: &str, patient: Uuid, items: &[&str]) -> Vec<Value> {
    let t = s.login(user).await;
    let r = s.post("/api/v1/results/order-check", &t, json!({"patient_id": patient, "items": items})).await;
    r.expect_status(200);
    r.json["items"].as_array().expect("items").clone()
}

fn outcome(a: &Value) -> &str {
    a["answer"]["outcome"].as_str().unwrap_or("")
}

fn reasons(a: &Value) -> Vec<String> {
    a["answer"]["rejected"]
        .as_array()
        .map(|v| {
            v.iter()
                .flat_map(|r| r["reasons"].as_array().cloned().unwrap_or_default())
                .filter_map(|x| x.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// A county lab posts a report; the specialist reads it (one access-log row per read), with
/// trends oldest first; a clinician without any relationship is refused and nothing is logged
/// for them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_are_stored_and_read_with_an_access_log_row() {
    let mut s = TestServer::start().await;
    let county = s.seed.county_hospital;
    let lab = s.add_user("lab_county", county, Role::Lab).await;
    let _ = lab;
    let p = patient(&s).await;
    qualify(&s, county).await;
    let t = s.login("lab_county").await;
    let now = s.now();
    for (days, v) in [(200, "8.4"), (100, "7.6"), (10, "6.9")] {
        let body = lab_body(p, county, now - Duration::days(days), province_mark(), vec![ob("HBA1C", v, "%")]);
        s.post("/api/v1/results", &t, body).await.expect_status(201);
    }
    // K 5.9 mmol/L, above the 3.5–5.3 range: flagged high by the catalogue's range
    let r = s
        .post(
            "/api/v1/results",
            &t,
            lab_body(p, county, now - Duration::days(1), province_mark(), vec![ob("2823-3", "5.9", "mmol/L")]),
        )
        .await;
    r.expect_status(201);
    assert_eq!(r.json["entries"][0]["item_code"], "K");
    assert_eq!(r.json["entries"][0]["flag"], "high");

    let spec = s.login("spec_a").await;
    let before = s
        .store
        .query_access_log(&AccessLogFilter { patient_id: Some(p), limit: 100, ..Default::default() })
        .await
        .expect("log")
        .len();
    let r = s.get(&format!("/api/v1/patients/{p}/results"), &spec).await;
    r.expect_status(200);
    assert_eq!(r.json["results"].as_array().expect("results").len(), 4);
    let trend = r.json["trends"]
        .as_array()
        .expect("trends")
        .iter()
        .find(|t| t["item_code"] == "HBA1C")
        .expect("HbA1c trend")
        .clone();
    let values: Vec<f64> =
        trend["points"].as_array().expect("points").iter().map(|p| p["v"].as_f64().expect("v")).collect();
    assert_eq!(values, vec![8.4, 7.6, 6.9], "oldest first");
    let log = s
        .store
        .query_access_log(&AccessLogFilter { patient_id: Some(p), limit: 100, ..Default::default() })
        .await
        .expect("log");
    assert_eq!(log.len(), before + 1, "one row for the read");
    assert!(log.iter().any(|e| e.action == "read_results" && e.user_id == s.user_id("spec_a")));

    // 沿口镇 (community B) has no relationship with the patient: refused, not logged
    let other = s.login("clin_b").await;
    s.get(&format!("/api/v1/patients/{p}/results"), &other).await.expect_error(403, "access.no_relationship");
    let log = s
        .store
        .query_access_log(&AccessLogFilter {
            patient_id: Some(p),
            user_id: Some(s.user_id("clin_b")),
            limit: 10,
            ..Default::default()
        })
        .await
        .expect("log");
    assert!(log.is_empty());
    // the lab role may not read a record it has no relationship with either; a settlement
    // admin has no clinical read at all
    let admin = s.login("sysadmin").await;
    s.get(&format!("/api/v1/patients/{p}/results"), &admin).await.expect_error(403, "role.forbidden");
}

/// Bad input: each refused with its field, nothing written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_reports_are_refused_with_field_errors_and_nothing_is_written() {
    let mut s = TestServer::start().await;
    let county = s.seed.county_hospital;
    s.add_user("lab_county", county, Role::Lab).await;
    let p = patient(&s).await;
    let t = s.login("lab_county").await;
    let now = s.now();
    let fields = |r: &common::Resp| -> Vec<(String, String)> {
        r.json["error"]["details"]
            .as_array()
            .map(|d| {
                d.iter()
                    .map(|x| {
                        (x["field"].as_str().unwrap_or("").to_owned(), x["code"].as_str().unwrap_or("").to_owned())
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    // one report with every kind of bad observation; the lab is not qualified, yet marks HR
    let body = lab_body(
        p,
        county,
        now - Duration::hours(3),
        province_mark(),
        vec![ob("K", "4.1", "mg/dL"), ob("HBA1C", "偏高", "%"), ob("XYZ-1", "1", "g/L")],
    );
    let r = s.post("/api/v1/results", &t, body).await;
    r.expect_error(422, "validation");
    let f = fields(&r);
    for want in [
        ("observations[0].unit", "recognition.unit"),
        ("observations[1].value", "recognition.not_numeric"),
        ("observations[2].code", "recognition.unknown_item"),
        ("mark", "recognition.lab_not_qualified"),
    ] {
        assert!(f.contains(&(want.0.into(), want.1.into())), "{want:?} in {f:?}");
    }
    // a future specimen time (one hour ahead of the server's clock)
    let r = s
        .post(
            "/api/v1/results",
            &t,
            lab_body(p, county, now + Duration::hours(1), Value::Null, vec![ob("K", "4.1", "mmol/L")]),
        )
        .await;
    r.expect_error(422, "validation");
    assert!(fields(&r).contains(&("specimen_time".into(), "recognition.future".into())), "{}", r.text);
    // an agreement this region does not know
    let r = s
        .post(
            "/api/v1/results",
            &t,
            lab_body(
                p,
                county,
                now - Duration::hours(1),
                json!({"kind": "agreement", "name": "京津冀", "provinces": []}),
                vec![ob("K", "4.1", "mmol/L")],
            ),
        )
        .await;
    assert!(fields(&r).contains(&("mark.name".into(), "recognition.unknown_agreement".into())), "{}", r.text);
    // another facility's results
    let r = s
        .post(
            "/api/v1/results",
            &t,
            lab_body(p, s.seed.city_hospital, now - Duration::hours(1), Value::Null, vec![ob("K", "4.1", "mmol/L")]),
        )
        .await;
    r.expect_error(422, "validation");
    assert_eq!(r.detail_code(0), "results.other_facility");
    // unknown patient
    let r = s
        .post(
            "/api/v1/results",
            &t,
            lab_body(Uuid::now_v7(), county, now - Duration::hours(1), Value::Null, vec![ob("K", "4.1", "mmol/L")]),
        )
        .await;
    r.expect_error(422, "validation");
    assert_eq!(r.detail_field(0), "patient_id");
    // malformed JSON, wrong type, unknown field
    let raw = s
        .client
        .post(s.url("/api/v1/results"))
        .bearer_auth(&t)
        .header("content-type", "application/json")
        .body("{\"patient_id\":");
    s.send(raw).await.expect_error(400, "json.syntax");
    let mut wrong = lab_body(p, county, now - Duration::hours(1), Value::Null, vec![ob("K", "4.1", "mmol/L")]);
    wrong["observations"] = json!("K=4.1");
    s.post("/api/v1/results", &t, wrong).await.expect_error(422, "json.data");
    let mut extra = lab_body(p, county, now - Duration::hours(1), Value::Null, vec![ob("K", "4.1", "mmol/L")]);
    extra["colour"] = json!("red");
    s.post("/api/v1/results", &t, extra).await.expect_error(422, "json.data");
    // a clinician is not a lab system
    let spec = s.login("spec_a").await;
    s.post(
        "/api/v1/results",
        &spec,
        lab_body(p, county, now - Duration::hours(1), Value::Null, vec![ob("K", "4.1", "mmol/L")]),
    )
    .await
    .expect_error(403, "role.forbidden");
    assert_eq!(stored_results(&s, p).await, 0, "nothing was written");
    // bad orders: unknown item, too many, repeat without reason covered below
    let r = s.post("/api/v1/results/order-check", &spec, json!({"patient_id": p, "items": []})).await;
    r.expect_error(422, "validation");
    assert_eq!(r.detail_field(0), "items");
    s.get("/api/v1/results/savings?from=2026-13", &s.login("admin_a").await).await.expect_error(400, "query.invalid");
}

/// Scope and tier rules, a qualification change, the repeat-reason rule and the savings
/// arithmetic, end to end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn order_check_scope_qualification_repeats_and_savings() {
    let mut s = TestServer::start().await;
    let county = s.seed.county_hospital;
    let prov = s.seed.provincial_hospital;
    s.add_user("lab_county", county, Role::Lab).await;
    s.add_user("lab_prov", prov, Role::Lab).await;
    let p = patient(&s).await;
    qualify(&s, county).await;
    qualify(&s, prov).await;
    for f in [s.seed.township_a, s.seed.township_b] {
        seen_at(&s, p, f).await;
    }
    let now = s.now();
    let lab_c = s.login("lab_county").await;
    let lab_p = s.login("lab_prov").await;
    // the county lab: HbA1c and K marked 川HR (province 51), 3 days ago; a head CT marked for
    // community A only, 5 days ago
    s.post(
        "/api/v1/results",
        &lab_c,
        lab_body(
            p,
            county,
            now - Duration::days(3),
            province_mark(),
            vec![ob("HBA1C", "7.1", "%"), ob("K", "4.2", "mmol/L")],
        ),
    )
    .await
    .expect_status(201);
    let community = json!({"kind": "community", "community_id": s.seed.community_a});
    s.post("/api/v1/results", &lab_c, ct_body(p, county, now - Duration::days(5), community)).await.expect_status(201);
    // the provincial lab: TSH marked 川HR
    s.post(
        "/api/v1/results",
        &lab_p,
        lab_body(p, prov, now - Duration::days(2), province_mark(), vec![ob("TSH", "2.1", "mIU/L")]),
    )
    .await
    .expect_status(201);

    // 罗渡镇 (township, community A): everything recognised; ECG has no prior result
    let a = check(&s, "clin_a", p, &["HBA1C", "K", "CT-HEAD", "TSH", "ECG"]).await;
    assert_eq!(
        a.iter().map(outcome).collect::<Vec<_>>(),
        ["recognised", "recognised", "recognised", "recognised", "not_recognised"]
    );
    assert_eq!(a[0]["answer"]["value"], "7.1");
    assert_eq!(a[2]["answer"]["mark_label"], "医共体HR");
    // a province mark is accepted at the county hospital: the provincial TSH, at 岳池县人民医院
    let c = check(&s, "spec_a", p, &["TSH"]).await;
    assert_eq!(outcome(&c[0]), "recognised");
    // 沿口镇 (community B, same province): the province marks yes, the community-A CT no
    let b = check(&s, "clin_b", p, &["HBA1C", "CT-HEAD"]).await;
    assert_eq!(outcome(&b[0]), "recognised");
    assert_eq!(outcome(&b[1]), "not_recognised");
    assert_eq!(reasons(&b[1]), vec!["scope_does_not_cover"]);
    // the provincial hospital does not have to accept the county's HbA1c (lower level)
    seen_at(&s, p, prov).await;
    let pv = check(&s, "rc_prov", p, &["HBA1C", "TSH"]).await;
    assert_eq!(reasons(&pv[0]), vec!["lower_tier"]);
    assert_eq!(outcome(&pv[1]), "recognised");

    // the county lab loses its status now: its new HR reports are refused, an unmarked new
    // report is stored but not recognised, the old ones stay recognised within their window
    let admin = s.login("sysadmin").await;
    s.post(
        &format!("/api/v1/results/labs/{county}/qualification"),
        &admin,
        json!({"action": "revoke", "at": ts(s.now())}),
    )
    .await
    .expect_status(200);
    // three hours on: specimen 2 h 1 min ago, reported (specimen + 2 h) a minute ago
    s.advance(Duration::hours(3));
    let later = s.now() - Duration::hours(2) - Duration::minutes(1);
    let r = s
        .post("/api/v1/results", &lab_c, lab_body(p, county, later, province_mark(), vec![ob("GLU", "6.0", "mmol/L")]))
        .await;
    r.expect_error(422, "validation");
    assert_eq!(r.detail_field(0), "mark");
    s.post("/api/v1/results", &lab_c, lab_body(p, county, later, Value::Null, vec![ob("GLU", "6.0", "mmol/L")]))
        .await
        .expect_status(201);
    let a = check(&s, "clin_a", p, &["HBA1C", "GLU"]).await;
    assert_eq!(outcome(&a[0]), "recognised", "reported while qualified: still recognised");
    assert_eq!(outcome(&a[1]), "not_recognised");
    let mut r1 = reasons(&a[1]);
    r1.sort();
    assert_eq!(r1, vec!["lab_not_qualified", "no_mark"]);

    // the repeat-reason rule: repeating the recognisable HbA1c without a reason refuses the
    // whole order, nothing written
    let clin = s.login("clin_a").await;
    let order = |items: Value| json!({"patient_id": p, "items": items});
    let r = s
        .post(
            "/api/v1/results/orders",
            &clin,
            order(json!([
                {"code": "CT-HEAD", "choice": "reuse"},
                {"code": "HBA1C", "choice": "perform"},
            ])),
        )
        .await;
    r.expect_error(422, "validation");
    assert_eq!(r.detail_field(0), "items[1].repeat_reason");
    assert_eq!(r.detail_code(0), "recognition.repeat_reason_required");
    let r = s.post("/api/v1/results/orders", &clin, order(json!([{"code": "ECG", "choice": "reuse"}]))).await;
    assert_eq!(r.detail_code(0), "recognition.nothing_to_reuse");
    let r = s
        .post(
            "/api/v1/results/orders",
            &clin,
            order(json!([{"code": "K", "choice": "perform", "repeat_reason": "because"}])),
        )
        .await;
    r.expect_error(422, "json.data");
    assert!(s.store.patient_orders(p, 0).await.expect("orders").is_empty(), "refused orders wrote nothing");
    // reuse the CT (28,000) and the HbA1c (3,500); repeat K for an emergency (400); ECG performed (2,500)
    let r = s
        .post(
            "/api/v1/results/orders",
            &clin,
            order(json!([
                {"code": "CT-HEAD", "choice": "reuse"},
                {"code": "4548-4", "choice": "reuse"},
                {"code": "K", "choice": "perform", "repeat_reason": "emergency"},
                {"code": "ECG", "choice": "perform"},
            ])),
        )
        .await;
    r.expect_status(201);
    // saved: 28,000 + 3,500 = 31,500 fen
    assert_eq!(r.json["saved_fen"], 31_500);
    let outcomes: Vec<&str> =
        r.json["items"].as_array().expect("items").iter().map(|i| i["outcome"].as_str().unwrap_or("")).collect();
    assert_eq!(outcomes, ["reused", "reused", "repeated", "performed"]);

    // savings report (community A's admin): 罗渡镇, this China month: 2 avoided, 31,500 fen;
    // 1 repeat (emergency); 1 performed
    let month = {
        let d = s.now().to_offset(UtcOffset::from_hms(8, 0, 0).expect("+8")).date();
        format!("{:04}-{:02}", d.year(), u8::from(d.month()))
    };
    let admin_a = s.login("admin_a").await;
    let r = s.get(&format!("/api/v1/results/savings?from={month}&to={month}"), &admin_a).await;
    r.expect_status(200);
    let rows = r.json["rows"].as_array().expect("rows");
    assert_eq!(rows.len(), 1, "{}", r.text);
    let row = &rows[0];
    assert_eq!(row["facility_id"], json!(s.seed.township_a));
    assert_eq!((row["reused"].as_i64(), row["saved_fen"].as_i64()), (Some(2), Some(31_500)));
    assert_eq!(row["repeated"], 1);
    assert_eq!(row["repeat_reasons"]["emergency"], 1);
    assert_eq!(row["performed"], 1);
    assert_eq!(r.json["total"]["saved_fen"], 31_500);
    // community B's admin sees none of community A's facilities
    let r = s.get(&format!("/api/v1/results/savings?from={month}&to={month}"), &s.login("admin_b").await).await;
    assert_eq!(r.json["rows"].as_array().map(Vec::len), Some(0));
    // clinicians do not read the report
    s.get("/api/v1/results/savings", &clin).await.expect_error(403, "role.forbidden");
}

/// The referral receiver's view: the latest recognisable result of each item at the
/// receiving facility, and their prices' sum.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_sees_the_recognisable_results_at_a_glance() {
    let mut s = TestServer::start().await;
    let town = s.seed.township_a;
    s.add_user("lab_town", town, Role::Lab).await;
    let p = patient(&s).await;
    qualify(&s, town).await;
    seen_at(&s, p, town).await;
    let t = s.login("lab_town").await;
    let now = s.now();
    // the township lab (community A mark): HbA1c 6.8 (20 days ago), HbA1c 7.0 (5 days ago),
    // K 8 days ago (past its 7-day window)
    let mark = json!({"kind": "community", "community_id": s.seed.community_a});
    for (days, obs) in [(20, ob("HBA1C", "6.8", "%")), (5, ob("HBA1C", "7.0", "%")), (8, ob("K", "4.0", "mmol/L"))] {
        s.post("/api/v1/results", &t, lab_body(p, town, now - Duration::days(days), mark.clone(), vec![obs]))
            .await
            .expect_status(201);
    }
    // the county hospital (community A, higher tier) does not have to accept a township's
    // result; the other township of community A does: seen from 罗渡镇 itself (same level)
    let rc = s.login("clin_a").await;
    let r = s.get(&format!("/api/v1/patients/{p}/results/recognisable"), &rc).await;
    r.expect_status(200);
    let results = r.json["results"].as_array().expect("results");
    assert_eq!(results.len(), 1, "{}", r.text);
    assert_eq!(results[0]["value"], "7.0", "the latest HbA1c");
    assert_eq!(r.json["reusable_value_fen"], 3_500);
    let spec = s.login("spec_a").await;
    let r = s.get(&format!("/api/v1/patients/{p}/results/recognisable"), &spec).await;
    assert_eq!(
        r.json["results"].as_array().map(Vec::len),
        Some(0),
        "a county hospital need not accept a township's result"
    );
    let log = s
        .store
        .query_access_log(&AccessLogFilter { patient_id: Some(p), limit: 100, ..Default::default() })
        .await
        .expect("log");
    assert_eq!(log.iter().filter(|e| e.action == "read_recognisable_results").count(), 2);
}

/// The validity window over HTTP with the server's clock: potassium is valid 7 days from the
/// specimen time (domain.md M6, dynamic lab item). Specimen 7 days minus 30 s ago: still
/// recognised; a minute later (the clock moved on 60 s) it has expired. The exact second is
/// tested in the domain (tests/recognition_cases.rs: at the end, one second after).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_window_ends_seven_days_after_the_specimen() {
    let mut s = TestServer::start().await;
    let county = s.seed.county_hospital;
    s.add_user("lab_county", county, Role::Lab).await;
    let p = patient(&s).await;
    qualify(&s, county).await;
    let t = s.login("lab_county").await;
    // whole seconds: times are stored to the millisecond
    let specimen = (s.now() - Duration::days(7) + Duration::seconds(30)).replace_nanosecond(0).expect("ns");
    s.post("/api/v1/results", &t, lab_body(p, county, specimen, province_mark(), vec![ob("K", "4.4", "mmol/L")]))
        .await
        .expect_status(201);
    let a = check(&s, "spec_a", p, &["K"]).await;
    assert_eq!(outcome(&a[0]), "recognised");
    let until =
        OffsetDateTime::parse(a[0]["answer"]["valid_until"].as_str().expect("valid_until"), &Rfc3339).expect("time");
    assert_eq!(until, specimen + Duration::days(7), "specimen + 7 days");
    s.advance(Duration::seconds(60));
    let a = check(&s, "spec_a", p, &["K"]).await;
    assert_eq!(reasons(&a[0]), vec!["expired"]);
}

/// The embedded recognition catalogue with HbA1c's 60-day window changed to `days`.
fn recognition_with_hba1c_window(days: u32) -> String {
    let text = include_str!("../../domain/data/recognition-default.toml");
    let (head, tail) = text.split_once("code = \"HBA1C\"").expect("the sample lists HbA1c");
    let tail = tail.replacen("validity_days = 60", &format!("validity_days = {days}"), 1);
    format!("{head}code = \"HBA1C\"{tail}")
}

fn temp_file(name: &str, text: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("tiercare-recognition-{}", Uuid::now_v7()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write the file");
    path
}

/// `serve --recognition FILE`: a region's own catalogue is the one in force (HbA1c valid 10
/// days there instead of the sample's 60: a 20-day-old HbA1c is recognised with the sample and
/// expired with the region's file); a file that cannot be used stops the server at start with
/// the file and the problem named.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_regions_recognition_file_is_in_force_and_a_bad_one_stops_the_start() {
    let path = temp_file("recognition.toml", &recognition_with_hba1c_window(10));
    let config = tiercare_server::ServerConfig { recognition_file: Some(path), ..Default::default() };
    for (mut s, window, want) in
        [(TestServer::start().await, 60, "recognised"), (TestServer::start_with(config).await, 10, "not_recognised")]
    {
        let county = s.seed.county_hospital;
        s.add_user("lab_county", county, Role::Lab).await;
        let p = patient(&s).await;
        qualify(&s, county).await;
        let t = s.login("lab_county").await;
        let body = lab_body(p, county, s.now() - Duration::days(20), province_mark(), vec![ob("HBA1C", "6.9", "%")]);
        s.post("/api/v1/results", &t, body).await.expect_status(201);
        let spec = s.login("spec_a").await;
        let cat = s.get("/api/v1/results/catalogue", &spec).await;
        cat.expect_status(200);
        let hba1c = cat.json["items"].as_array().expect("items").iter().find(|i| i["code"] == "HBA1C").cloned();
        assert_eq!(hba1c.expect("HbA1c")["validity_days"], window);
        let a = check(&s, "spec_a", p, &["HBA1C"]).await;
        assert_eq!(outcome(&a[0]), want, "a {window}-day window, a 20-day-old result");
    }

    // bad files: each refused at start, naming the file and the problem
    let store_dir = std::env::temp_dir().join(format!("tiercare-recognition-store-{}", Uuid::now_v7()));
    let store: std::sync::Arc<dyn tiercare_store::Store> =
        std::sync::Arc::new(tiercare_store::sqlite::SqliteStore::open(&store_dir.join("t.db")).await.expect("store"));
    let start = |path: std::path::PathBuf| {
        let config = tiercare_server::ServerConfig { recognition_file: Some(path), ..Default::default() };
        tiercare_server::AppState::try_new(store.clone(), config).err().expect("the start is refused")
    };
    let zero = temp_file("zero.toml", &recognition_with_hba1c_window(0));
    let e = start(zero.clone());
    assert!(e.contains(&zero.display().to_string()) && e.contains("validity_days"), "{e}");
    let syntax = temp_file("syntax.toml", "[[items]\ncode = ");
    let e = start(syntax.clone());
    assert!(e.contains(&syntax.display().to_string()) && e.contains("not valid"), "{e}");
    let missing = std::env::temp_dir().join(format!("no-such-recognition-{}.toml", Uuid::now_v7()));
    let e = start(missing.clone());
    assert!(e.contains("cannot read") && e.contains(&missing.display().to_string()), "{e}");
}
