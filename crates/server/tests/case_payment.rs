//! Case-based payment API tests (issue 9) through a real listening server over a fresh SQLite
//! store. The expected numbers are computed by hand in the comments from domain.md M9's rules
//! (packet score = packet mean ÷ mean of all cases × 100; below 50 % of the packet mean score ×
//! cost ÷ mean, above 200 % score × ((cost ÷ mean − 2) + 1); settlement point value = (fund
//! available ÷ reimbursement ratio) ÷ Σ points; DRG weight = group mean ÷ overall mean), not
//! from the engine's output.

mod common;

use common::TestServer;
use serde_json::{Value, json};
use tiercare_domain::encounter::{Encounter, EncounterClass};
use tiercare_domain::role::Role;
use tiercare_store::{AccessLogFilter, new_id};
use time::macros::datetime;
use uuid::Uuid;

/// GB 11643 check character (ISO 7064 MOD 11-2), computed here from the standard.
fn with_check(body17: &str) -> String {
    const W: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    let sum: u32 = body17.chars().zip(W).map(|(c, w)| c.to_digit(10).expect("digit") * w).sum();
    let check = ['1', '0', 'X', '9', '8', '7', '6', '5', '4', '3', '2'][(sum % 11) as usize];
    format!("{body17}{check}")
}

/// One inpatient stay of the patient, discharged on the given day.
fn stay(
    p: &tiercare_domain::patient::Patient,
    facility: Uuid,
    day: time::OffsetDateTime,
    dx: &str,
    px: &[&str],
    fen: i64,
) -> Encounter {
    Encounter {
        id: new_id(),
        region_key: p.region_key.clone(),
        patient_id: p.id,
        facility_id: facility,
        department: None,
        practitioner_id: None,
        class: EncounterClass::Inpatient,
        started_at: day - time::Duration::days(4),
        ended_at: Some(day),
        diagnoses: vec![dx.to_owned()],
        procedures: px.iter().map(|s| (*s).to_owned()).collect(),
        total_cost_fen: fen,
    }
}

/// The hand-computed region (the pooling region 511600, 广安市):
///
/// History 2024, all at the county hospital (year weight 7 each, so weights cancel):
///   K80.200 + 51.2300: 1,000,000 and 1,400,000 fen → core packet (2 cases ≥ threshold 2), mean 1,200,000
///   J18.900, no procedure: 300,000 and 500,000 fen  → core packet, mean 400,000
///   mean of all cases = 3,200,000 ÷ 4 = 800,000 fen
///   scores: 1,200,000 ÷ 800,000 × 100 = 150 points; 400,000 ÷ 800,000 × 100 = 50 points
///
/// Year 2025:
///   Y1 county   K80.200 + 51.2300, 1,200,000 fen: 1.0 × mean → 150 points
///   Y2 county   J18.900, 900,000 fen: 2.25 × mean > 2 → high outlier, 50 × ((2.25 − 2) + 1) = 62.5 points
///   Y3 township J18.900, 400,000 fen: 1.0 × mean → 50 points
///   Y4 township J18.900, 800,000 fen: exactly 2.0 × mean, not above → 50 points (normal)
///   Y5 county   I63.900, 600,000 fen: no packet (no history) → no points
///   Σ points = 150 + 62.5 + 50 + 50 = 312.5
///   fund 2,500,000 fen at a ratio of 80 %: (2,500,000 ÷ 0.8) ÷ 312.5 = 10,000 fen per point
///   county: 212.5 × 10,000 = 2,125,000 fen; township: 100 × 10,000 = 1,000,000 fen
///   (no settlements: patients paid 0, so payment = gross)
///
/// DRG, sample scheme: history HC25 (K80.200 + 51.2300, no CC) mean 1,200,000, ES25 (J18.900)
/// mean 400,000, overall 800,000 → weights 1.5 and 0.5; Y5 groups to BR25, which has no
/// history and so no weight. County CMI = (1.5 + 0.5) ÷ 2 = 1.0; township (0.5 + 0.5) ÷ 2 = 0.5.
/// Σ weights of the year = 1.5 + 0.5 + 0.5 + 0.5 = 3.0. Default base rate (budget-neutral with
/// DIP) = (2,500,000 ÷ 0.8) ÷ 3.0 = 1,041,666.67 → 1,041,667 fen. Stay payments: HC25 1.5 ×
/// 1,041,667 = 1,562,500.5 → 1,562,501; ES25 0.5 × 1,041,667 = 520,833.5 → 520,834. County DRG
/// payment 1,562,501 + 520,834 = 2,083,335; township 2 × 520,834 = 1,041,668 (rounding makes the
/// sum 3 fen over 3,125,000). With a base rate of 1,000,000 fen given as data: county 1,500,000 +
/// 500,000 = 2,000,000; township 1,000,000.
struct Region {
    stays: [Uuid; 5],
    patient: Uuid,
}

async fn region(s: &TestServer) -> Region {
    let token = s.login("spec_a").await;
    let number = with_check("51162119600315123");
    let r =
        s.post("/api/v1/patients", &token, json!({"name": "王大山", "sex": "male", "identity_number": number})).await;
    r.expect_status(201);
    let p = s.store.get_patient(r.id()).await.expect("read").expect("patient");
    let (county, town) = (s.seed.county_hospital, s.seed.township_a);
    let d24 = datetime!(2024-06-10 10:00 +8);
    let d25 = datetime!(2025-05-10 10:00 +8);
    let history = [
        stay(&p, county, d24, "K80.200", &["51.2300"], 1_000_000),
        stay(&p, county, d24, "K80.200", &["51.2300"], 1_400_000),
        stay(&p, county, d24, "J18.900", &[], 300_000),
        stay(&p, county, d24, "J18.900", &[], 500_000),
    ];
    let year = [
        stay(&p, county, d25, "K80.200", &["51.2300"], 1_200_000),
        stay(&p, county, d25, "J18.900", &[], 900_000),
        stay(&p, town, d25, "J18.900", &[], 400_000),
        stay(&p, town, d25, "J18.900", &[], 800_000),
        stay(&p, county, d25, "I63.900", &[], 600_000),
    ];
    s.store.import_encounters(&history).await.expect("history");
    s.store.import_encounters(&year).await.expect("year");
    Region { stays: year.map(|e| e.id), patient: p.id }
}

fn build_body() -> Value {
    json!({
        "region_code": "511600",
        "terms": {
            "year": 2025, "history_years": [2024], "params": {"core_threshold": 2},
            "fund_available_fen": 2_500_000, "reimbursement_ratio_bp": 8_000
        }
    })
}

async fn officer(s: &mut TestServer) -> String {
    s.add_user("officer", s.seed.county_hospital, Role::InsuranceOfficer).await;
    s.login("officer").await
}

fn q(year: i32) -> String {
    format!("region=511600&year={year}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_region_year_is_scored_settled_and_explained() {
    let mut s = TestServer::start_without_sweeper().await;
    let reg = region(&s).await;
    let off = officer(&mut s).await;

    let r = s.post("/api/v1/case-payment/years", &off, build_body()).await;
    r.expect_status(200);
    let y = &r.json;
    assert_eq!(y["packets"], 2, "{y}");
    assert_eq!(y["core_packets"], 2);
    assert_eq!(y["history_cases"], 4);
    assert_eq!(y["mean_cost_fen"], 800_000);
    assert_eq!(y["stays"], 5);
    assert_eq!(y["total_points_e4"], 3_125_000); // 312.5 points
    assert_eq!(y["fen_per_point_e4"], 100_000_000); // 10,000 fen per point
    assert_eq!(y["drg_base_rate_fen"], 1_041_667);
    assert_eq!(y["drg_weight_sum_e4"], 30_000);
    assert_eq!(y["drg_groups"], 2);

    // the DRG weight table from the history, by code
    let w = s.get(&format!("/api/v1/case-payment/drg/weights?{}", q(2025)), &off).await;
    w.expect_status(200);
    let weights: Vec<(String, i64, i64, i64)> = w.json["weights"]
        .as_array()
        .expect("weights")
        .iter()
        .map(|x| {
            (
                x["drg"].as_str().unwrap_or("").to_owned(),
                x["cases"].as_i64().unwrap_or(0),
                x["mean_cost_fen"].as_i64().unwrap_or(0),
                x["weight_e4"].as_i64().unwrap_or(0),
            )
        })
        .collect();
    assert_eq!(weights, vec![("ES25".into(), 2, 400_000, 5_000), ("HC25".into(), 2, 1_200_000, 15_000)]);

    // the catalogue: core first, by code
    let c = s.get(&format!("/api/v1/case-payment/dip/packets?{}", q(2025)), &off).await;
    c.expect_status(200);
    let packets: Vec<(String, i64, i64)> = c.json["packets"]
        .as_array()
        .expect("packets")
        .iter()
        .map(|p| {
            (
                p["code"].as_str().unwrap_or("").to_owned(),
                p["mean_cost_fen"].as_i64().unwrap_or(0),
                p["score_e4"].as_i64().unwrap_or(0),
            )
        })
        .collect();
    assert_eq!(packets, vec![("J18.900".into(), 400_000, 500_000), ("K80.200".into(), 1_200_000, 1_500_000)]);

    // positions
    let h = s.get(&format!("/api/v1/case-payment/hospitals?{}", q(2025)), &off).await;
    h.expect_status(200);
    let by = |id: Uuid| -> Value {
        h.json["hospitals"]
            .as_array()
            .expect("list")
            .iter()
            .find(|x| x["facility_id"] == json!(id.to_string()))
            .cloned()
            .expect("hospital")
    };
    let county = by(s.seed.county_hospital);
    assert_eq!(county["points_e4"], 2_125_000); // 150 + 62.5
    assert_eq!(county["gross_fen"], 2_125_000);
    assert_eq!(county["payment_fen"], 2_125_000);
    assert_eq!(county["outliers_high"], 1);
    assert_eq!(county["unscored"], 1); // I63.900
    assert_eq!(county["cmi_e4"], 10_000);
    assert_eq!(county["drg_weighted"], 2); // BR25 has no weight
    assert_eq!(county["drg_gross_fen"], 2_083_335);
    assert_eq!(county["drg_payment_fen"], 2_083_335);
    let town = by(s.seed.township_a);
    assert_eq!(town["points_e4"], 1_000_000);
    assert_eq!(town["payment_fen"], 1_000_000);
    assert_eq!(town["outliers_high"], 0); // exactly 2× is not above 2×
    assert_eq!(town["cmi_e4"], 5_000);
    assert_eq!(town["drg_payment_fen"], 1_041_668);
    // the hospital page's stays carry their DRG weight and payment
    let one = s.get(&format!("/api/v1/case-payment/hospitals/{}?{}", s.seed.township_a, q(2025)), &off).await;
    one.expect_status(200);
    assert_eq!(one.json["position"]["drg_payment_fen"], 1_041_668);
    let pays: Vec<i64> =
        one.json["stays"].as_array().expect("stays").iter().filter_map(|x| x["drg_payment_fen"].as_i64()).collect();
    assert_eq!(pays, vec![520_834, 520_834]);

    // one stay, explained; the read is access-logged
    let before = s
        .store
        .query_access_log(&AccessLogFilter { patient_id: Some(reg.patient), limit: 100, ..Default::default() })
        .await
        .expect("log")
        .len();
    let st = s.get(&format!("/api/v1/case-payment/stays/{}", reg.stays[1]), &off).await;
    st.expect_status(200);
    assert_eq!(st.json["dip"]["outlier"], "high");
    assert_eq!(st.json["dip"]["score_e4"], 625_000); // 62.5 points
    assert_eq!(st.json["dip"]["cost_ratio_bp"], 22_500); // 900,000 ÷ 400,000
    assert_eq!(st.json["drg"]["drg"], "ES25");
    assert_eq!(st.json["drg"]["weight_e4"], 5_000);
    assert_eq!(st.json["drg"]["payment_fen"], 520_834);
    assert!(st.json["drg"]["trace"].as_array().is_some_and(|t| !t.is_empty()));
    let codes: Vec<&str> =
        st.json["dip"]["explanation"].as_array().expect("steps").iter().filter_map(|x| x["code"].as_str()).collect();
    assert!(codes.contains(&"outlier_high"), "{codes:?}");
    let after = s
        .store
        .query_access_log(&AccessLogFilter { patient_id: Some(reg.patient), limit: 100, ..Default::default() })
        .await
        .expect("log")
        .len();
    assert_eq!(after, before + 1);
    let unscored = s.get(&format!("/api/v1/case-payment/stays/{}", reg.stays[4]), &off).await;
    assert!(unscored.json["dip"].is_null() && unscored.json["dip_refusal"].is_string(), "{}", unscored.text);
    assert_eq!(unscored.json["drg"]["drg"], "BR25");
    assert!(unscored.json["drg"]["weight_e4"].is_null());
    assert!(unscored.json["drg"]["payment_fen"].is_null());

    // a rebuild replaces the year (no duplicates); this one with a base rate given as data
    let mut b = build_body();
    b["terms"]["drg"] = json!({"base_rate_fen": 1_000_000});
    let r = s.post("/api/v1/case-payment/years", &off, b).await;
    r.expect_status(200);
    assert_eq!(r.json["drg_base_rate_fen"], 1_000_000);
    let c2 = s.get(&format!("/api/v1/case-payment/dip/packets?{}", q(2025)), &off).await;
    assert_eq!(c2.json["packets"].as_array().map(Vec::len), Some(2));
    let w2 = s.get(&format!("/api/v1/case-payment/drg/weights?{}", q(2025)), &off).await;
    assert_eq!(w2.json["weights"].as_array().map(Vec::len), Some(2));
    let h2 = s.get(&format!("/api/v1/case-payment/hospitals?{}", q(2025)), &off).await;
    let pays: Vec<i64> =
        h2.json["hospitals"].as_array().expect("list").iter().filter_map(|x| x["drg_payment_fen"].as_i64()).collect();
    let mut expect = vec![2_000_000, 1_000_000];
    if s.seed.township_a < s.seed.county_hospital {
        expect.reverse(); // listed by facility id
    }
    assert_eq!(pays, expect);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hospitals_see_their_own_position_and_admins_their_community() {
    let mut s = TestServer::start_without_sweeper().await;
    region(&s).await;
    let off = officer(&mut s).await;
    s.post("/api/v1/case-payment/years", &off, build_body()).await.expect_status(200);
    let (county, town) = (s.seed.county_hospital, s.seed.township_a);

    let spec = s.login("spec_a").await; // county hospital
    s.get(&format!("/api/v1/case-payment/hospitals/{county}?{}", q(2025)), &spec).await.expect_status(200);
    s.get(&format!("/api/v1/case-payment/hospitals/{town}?{}", q(2025)), &spec)
        .await
        .expect_error(403, "case_payment.other_facility");
    let list = s.get(&format!("/api/v1/case-payment/hospitals?{}", q(2025)), &spec).await;
    assert_eq!(list.json["hospitals"].as_array().map(Vec::len), Some(1));

    let admin_a = s.login("admin_a").await; // community A: both hospitals
    let list = s.get(&format!("/api/v1/case-payment/hospitals?{}", q(2025)), &admin_a).await;
    assert_eq!(list.json["hospitals"].as_array().map(Vec::len), Some(2));
    let admin_b = s.login("admin_b").await; // community B: neither
    s.get(&format!("/api/v1/case-payment/hospitals/{county}?{}", q(2025)), &admin_b)
        .await
        .expect_error(403, "case_payment.other_facility");

    // only insurance officers build
    s.post("/api/v1/case-payment/years", &admin_a, build_body()).await.expect_error(403, "role.forbidden");
    // a year never built
    s.get(&format!("/api/v1/case-payment/hospitals?{}", q(2023)), &off)
        .await
        .expect_error(404, "case_payment.year.not_built");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_builds_are_refused_and_write_nothing() {
    let mut s = TestServer::start_without_sweeper().await;
    region(&s).await;
    let off = officer(&mut s).await;
    let nothing = |s: &TestServer| {
        let store = s.store.clone();
        async move { store.case_payment_year("511600", 2025).await.expect("read").is_none() }
    };

    // no stays in the history years
    let mut b = build_body();
    b["terms"]["history_years"] = json!([2020]);
    s.post("/api/v1/case-payment/years", &off, b).await.expect_error(422, "validation");
    assert!(nothing(&s).await);

    // a scheme with an MDC that is defined but never tried (unreachable)
    let mut scheme: Value = serde_json::from_str(tiercare_domain::drg::SAMPLE_SCHEME_JSON).expect("json");
    scheme["mdcs"]["MDCX"] = json!({"entry": {"principal_dx_in": ["Z99.999"]}, "adrgs": [{"code": "XR1", "rule": "always", "drgs": [["XR19", "always"]]}]});
    let tables: serde_json::Map<String, Value> =
        tiercare_domain::drg::SAMPLE_TABLES.iter().map(|(k, v)| ((*k).to_owned(), json!(v))).collect();
    let mut b = build_body();
    b["drg_scheme"] = json!({"scheme": scheme, "tables": tables});
    let r = s.post("/api/v1/case-payment/years", &off, b).await;
    r.expect_error(422, "validation");
    assert_eq!(r.detail_code(0), "drg.scheme.invalid");
    assert_eq!(r.detail_field(0), "drg_scheme.scheme.mdcs.MDCX", "{}", r.text);
    assert!(nothing(&s).await);

    // a scheme whose traversal would come back to an MDC (listed twice in mdc_order: the only
    // loop the format can express, as groups never reference groups)
    let mut scheme: Value = serde_json::from_str(tiercare_domain::drg::SAMPLE_SCHEME_JSON).expect("json");
    let first = scheme["mdc_order"][0].clone();
    scheme["mdc_order"].as_array_mut().expect("order").push(first);
    let n = scheme["mdc_order"].as_array().map_or(0, Vec::len);
    let mut b = build_body();
    b["drg_scheme"] = json!({"scheme": scheme, "tables": tables});
    let r = s.post("/api/v1/case-payment/years", &off, b).await;
    r.expect_error(422, "validation");
    assert_eq!(r.detail_code(0), "drg.scheme.invalid");
    assert_eq!(r.detail_field(0), format!("drg_scheme.scheme.mdc_order[{}]", n - 1), "{}", r.text);
    assert!(nothing(&s).await);

    // bad terms: ratio 0, history after the year
    let mut b = build_body();
    b["terms"]["reimbursement_ratio_bp"] = json!(0);
    s.post("/api/v1/case-payment/years", &off, b).await.expect_error(422, "validation");
    let mut b = build_body();
    b["terms"]["history_years"] = json!([2026]);
    s.post("/api/v1/case-payment/years", &off, b).await.expect_error(422, "validation");
    // a DRG base rate of 0, an unknown DRG term
    let mut b = build_body();
    b["terms"]["drg"] = json!({"base_rate_fen": 0});
    let r = s.post("/api/v1/case-payment/years", &off, b).await;
    r.expect_error(422, "validation");
    assert_eq!(r.detail_code(0), "drg.base_rate.not_positive");
    let mut b = build_body();
    b["terms"]["drg"] = json!({"rate": 1});
    let r = s.post("/api/v1/case-payment/years", &off, b).await;
    assert_eq!(r.status.as_u16() / 100, 4, "{}", r.text);
    // unknown field, malformed JSON, bad region
    let mut b = build_body();
    b["terms"]["fund"] = json!(1);
    let r = s.post("/api/v1/case-payment/years", &off, b).await;
    assert_eq!(r.status.as_u16() / 100, 4, "{}", r.text);
    let r = s
        .send(
            s.client
                .post(s.url("/api/v1/case-payment/years"))
                .bearer_auth(&off)
                .header("content-type", "application/json")
                .body("{\"region_code\":"),
        )
        .await;
    assert_eq!(r.status.as_u16(), 400, "{}", r.text);
    let mut b = build_body();
    b["region_code"] = json!("51");
    s.post("/api/v1/case-payment/years", &off, b).await.expect_error(400, "region.invalid");
    assert!(nothing(&s).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grouping_one_stay_explains_and_refuses_bad_codes() {
    let s = TestServer::start_without_sweeper().await;
    let t = s.login("spec_a").await;
    // K80.200 + 51.2300 with the CC I10.x00 (K80.200 has no exclusion group): HC23
    let r = s
        .post(
            "/api/v1/case-payment/drg/group",
            &t,
            json!({"sex": 1, "age": 60, "diagnoses": ["K80.200", "I10.x00"], "procedures": ["51.2300"]}),
        )
        .await;
    r.expect_status(200);
    assert_eq!(
        (r.json["mdc"].as_str(), r.json["adrg"].as_str(), r.json["drg"].as_str()),
        (Some("MDCH"), Some("HC2"), Some("HC23"))
    );
    assert!(r.json["trace"].as_array().is_some_and(|t| t.len() >= 3), "{}", r.text);

    let r = s.post("/api/v1/case-payment/drg/group", &t, json!({"sex": 1, "age": 60, "diagnoses": []})).await;
    r.expect_error(422, "validation");
    assert_eq!(r.detail_code(0), "stay.principal_diagnosis.missing");
    let r = s
        .post(
            "/api/v1/case-payment/drg/group",
            &t,
            json!({"sex": 1, "age": 60, "diagnoses": ["K80.2QQ"], "procedures": ["99.9999"]}),
        )
        .await;
    r.expect_error(422, "validation");
    assert_eq!((r.detail_field(0), r.detail_code(0)), ("diagnoses[0]", "code.diagnosis.unknown"));
    assert_eq!((r.detail_field(1), r.detail_code(1)), ("procedures[0]", "code.procedure.unknown"));
    let r = s.post("/api/v1/case-payment/drg/group", &t, json!({"sex": "x", "diagnoses": ["K80.200"]})).await;
    assert_eq!(r.status.as_u16() / 100, 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_budget_year_is_refused_and_unchanged() {
    let mut s = TestServer::start_without_sweeper().await;
    let off = officer(&mut s).await;
    let c = s.seed.community_a;
    let body = |fen: i64, closed: bool| json!({"community_id": c, "year": 2025, "budget_fen": fen, "savings_retained_bp": 5_000, "closed": closed});
    s.post("/api/v1/case-payment/budgets", &off, body(10_000_000, false)).await.expect_status(200);
    s.post("/api/v1/case-payment/budgets", &off, body(12_000_000, true)).await.expect_status(200);
    let r = s.post("/api/v1/case-payment/budgets", &off, body(99_000_000, false)).await;
    r.expect_error(422, "validation");
    assert_eq!(r.detail_code(0), "budget.year.closed");
    let stored = s.store.budget(c, 2025).await.expect("read").expect("budget");
    assert_eq!((stored.terms.budget_fen, stored.terms.closed), (12_000_000, true));

    // no spend in 2025: through December the savings are the whole budget, 12,000,000 fen,
    // of which the community keeps 50 % = 6,000,000 fen
    let admin_a = s.login("admin_a").await;
    let p = s.get(&format!("/api/v1/case-payment/budgets/{c}?year=2025&through_month=12"), &admin_a).await;
    p.expect_status(200);
    assert_eq!(p.json["position"]["projected_savings_fen"], 12_000_000, "{}", p.text);
    assert_eq!(p.json["position"]["community_share_fen"], 6_000_000);
    // another community's admin, a clinician, and bad input
    let admin_b = s.login("admin_b").await;
    s.get(&format!("/api/v1/case-payment/budgets/{c}?year=2025"), &admin_b)
        .await
        .expect_error(403, "case_payment.budget.scope");
    s.post("/api/v1/case-payment/budgets", &admin_b, body(1, false)).await.expect_error(403, "role.forbidden");
    let r =
        s.post("/api/v1/case-payment/budgets", &off, json!({"community_id": c, "year": 2026, "budget_fen": -5})).await;
    r.expect_error(422, "validation");
    assert!(s.store.budget(c, 2026).await.expect("read").is_none());
    s.post("/api/v1/case-payment/budgets", &off, json!({"community_id": Uuid::nil(), "year": 2026, "budget_fen": 5}))
        .await
        .expect_error(422, "reference.unknown");
}
