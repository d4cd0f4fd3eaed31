//! Indicator API tests (issue 8) through a real listening server over a fresh SQLite store.
//! The small county below is written as data; every expected number is computed by hand
//! from it in the comments (definitions: domain.md §4 M14, `indicators-default.toml`).

mod common;

use common::{TestServer, WUSHENG, YUECHI};
use serde_json::Value;
use tiercare_domain::encounter::{EncounterClass, NewEncounter};
use tiercare_domain::identity::{IdentityNumber, Sex};
use tiercare_domain::patient::{NewPatient, Patient};
use tiercare_store::new_id;
use time::macros::{date, datetime};
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

fn person(region: &str, name: &str, seq: u16) -> Patient {
    let number = IdentityNumber::compose(region, date!(1970 - 01 - 01), seq, Sex::Female).expect("number");
    NewPatient { identity_number: Some(number.as_str().to_owned()), ..NewPatient::new(name, Sex::Female) }
        .validate(date!(2026 - 11 - 01), None)
        .expect("valid patient")
        .into_patient(new_id())
}

fn enc(
    p: &Patient,
    f: Uuid,
    class: EncounterClass,
    at: OffsetDateTime,
    cost: i64,
) -> tiercare_domain::encounter::Encounter {
    NewEncounter {
        patient_id: p.id,
        facility_id: f,
        department: None,
        practitioner_id: None,
        class,
        started_at: at,
        ended_at: Some(at + Duration::hours(1)),
        diagnoses: vec!["J06.900".into()],
        procedures: vec![],
        total_cost_fen: cost,
    }
    .validate(new_id(), p.region_key.clone(), datetime!(2026-11-01 00:00 UTC))
    .expect("valid encounter")
}

/// The small county, May 2026 (community A = 岳池县 511621):
///
/// | who | where | what | cost (fen) |
/// |---|---|---|---|
/// | r1 (岳池) | township A | 3 visits | 5,000 each |
/// | r1 | village clinic | 1 visit | 2,000 |
/// | r2 (岳池) | county hospital | 2 visits | 20,000 each |
/// | r2 | city hospital (广安区, outside) | 2 visits | 30,000 each |
/// | r2 | county hospital | 1 stay | 600,000 |
/// | r1 | city hospital | 1 stay | 800,000 |
/// | n1 (武胜) | township A | 1 visit | 4,000 |
/// | r1 | township A | 1 visit at 2026-05-31T16:00Z = 06-01 00:00 China: June | 1,000 |
async fn small_county(s: &TestServer) {
    let (r1, r2, n1) = (person(YUECHI, "甲", 11), person(YUECHI, "乙", 13), person(WUSHENG, "丙", 15));
    for p in [&r1, &r2, &n1] {
        s.store.create_patient(p).await.expect("patient");
    }
    let seed = &s.seed;
    let may = |d: i64| datetime!(2026-05-01 02:00 UTC) + Duration::days(d);
    let visit = EncounterClass::Outpatient;
    let mut rows = Vec::new();
    for d in 0..3 {
        rows.push(enc(&r1, seed.township_a, visit, may(d), 5_000));
    }
    rows.push(enc(&r1, seed.village_clinic, visit, may(4), 2_000));
    rows.push(enc(&r2, seed.county_hospital, visit, may(5), 20_000));
    rows.push(enc(&r2, seed.county_hospital, visit, may(6), 20_000));
    rows.push(enc(&r2, seed.city_hospital, visit, may(7), 30_000));
    rows.push(enc(&r2, seed.city_hospital, visit, may(8), 30_000));
    rows.push(enc(&r2, seed.county_hospital, EncounterClass::Inpatient, may(9), 600_000));
    rows.push(enc(&r1, seed.city_hospital, EncounterClass::Inpatient, may(10), 800_000));
    rows.push(enc(&n1, seed.township_a, visit, may(11), 4_000));
    s.store.import_encounters(&rows).await.expect("import");
    s.store
        .create_encounter(&enc(&r1, seed.township_a, visit, datetime!(2026-05-31 16:00 UTC), 1_000))
        .await
        .expect("the June visit");
}

fn by_id<'a>(indicators: &'a Value, id: &str) -> &'a Value {
    indicators.as_array().and_then(|a| a.iter().find(|i| i["id"] == id)).unwrap_or_else(|| panic!("{id} missing"))
}

fn nd(v: &Value) -> (i64, Option<i64>) {
    (v["numerator"].as_i64().expect("numerator"), v["denominator"].as_i64())
}

#[tokio::test]
async fn scorecard_trend_drilldown_flow_by_hand() {
    let s = TestServer::start().await;
    small_county(&s).await;
    let token = s.login("admin_a").await;
    let c = s.seed.community_a;
    let r = s.get(&format!("/api/v1/indicators/scorecard?community_id={c}&from=2026-05&to=2026-05"), &token).await;
    r.expect_status(200);
    let ind = &r.json["indicators"];
    // residents' visits in the area: township A 3 + village 1 + county hospital 2 = 6; with the city's 2: 8
    let rate = by_id(ind, "in_county_visit_rate");
    assert_eq!(nd(rate), (6, Some(8)));
    // 6/8 = 75% is below the amber band (85%): red
    assert_eq!(rate["rag"], "red");
    // visits in the area by anyone: township A 3 + n1's 1 = 4, village 1, county hospital 2 = 7; grassroots 5
    let share = by_id(ind, "grassroots_visit_share");
    assert_eq!(nd(share), (5, Some(7)));
    // 5/7 = 71.4% ≥ 65%: green
    assert_eq!(share["rag"], "green");
    // residents' stays: county hospital 1 of 1 + city 1 = 2
    assert_eq!(nd(by_id(ind, "in_county_inpatient_share")), (1, Some(2)));
    // cost per visit in the area: 3 × 5,000 + 2,000 + 2 × 20,000 + 4,000 = 61,000 fen over 7
    assert_eq!(nd(by_id(ind, "cost_per_visit")), (61_000, Some(7)));
    // no data a year earlier: a trend target has no colour
    assert_eq!(by_id(ind, "cost_per_visit")["rag"], "none");

    // trend: May 6 of 8; June only r1's visit at 00:00 China on 06-01: 1 of 1
    let r = s
        .get(
            &format!(
                "/api/v1/indicators/trend?community_id={c}&indicator=in_county_visit_rate&from=2026-05&to=2026-06"
            ),
            &token,
        )
        .await;
    r.expect_status(200);
    let months = r.json["months"].as_array().expect("months");
    assert_eq!(months.len(), 2);
    assert_eq!((months[0]["month"].as_str(), nd(&months[0])), (Some("2026-05"), (6, Some(8))));
    assert_eq!((months[1]["month"].as_str(), nd(&months[1])), (Some("2026-06"), (1, Some(1))));

    // drill-down: township A's part of the grassroots share is its 4 visits of its own 4
    let r = s
        .get(
            &format!(
                "/api/v1/indicators/drilldown?community_id={c}&indicator=in_county_visit_rate&from=2026-05&to=2026-05"
            ),
            &token,
        )
        .await;
    r.expect_status(200);
    let fs = r.json["facilities"].as_array().expect("facilities");
    let of = |id: Uuid| fs.iter().find(|f| f["facility_id"] == id.to_string()).expect("facility row");
    // residents' visits at each facility over all residents' visits (8)
    assert_eq!(nd(of(s.seed.township_a)), (3, Some(8)));
    assert_eq!(nd(of(s.seed.county_hospital)), (2, Some(8)));
    assert_eq!(nd(of(s.seed.village_clinic)), (1, Some(8)));
    assert!(fs.iter().all(|f| f["facility_id"] != s.seed.city_hospital.to_string()), "the city hospital is outside");

    // records behind township A's May: r1's 3 visits and n1's 1
    let r = s.get(&format!("/api/v1/indicators/records?facility_id={}&month=2026-05", s.seed.township_a), &token).await;
    r.expect_status(200);
    assert_eq!(r.json["records"].as_array().map(Vec::len), Some(4));
    assert!(!r.text.contains("甲") && !r.text.contains("丙"), "no names in the records");

    // flow: residents by tier in and out of the area
    let r = s.get(&format!("/api/v1/indicators/flow?community_id={c}&from=2026-05&to=2026-05"), &token).await;
    r.expect_status(200);
    let flows = r.json["flows"].as_array().expect("flows");
    let flow = |tier: &str, inside: bool, resident: bool| {
        flows
            .iter()
            .find(|f| f["tier"] == tier && f["in_area"] == inside && f["resident"] == resident)
            .map(|f| (f["visits"].as_i64().unwrap_or(0), f["stays"].as_i64().unwrap_or(0)))
    };
    assert_eq!(flow("township", true, true), Some((3, 0)));
    assert_eq!(flow("village", true, true), Some((1, 0)));
    assert_eq!(flow("county", true, true), Some((2, 1)));
    assert_eq!(flow("city", false, true), Some((2, 1)));
    assert_eq!(flow("township", true, false), Some((1, 0)), "n1 from 武胜 treated inside");

    // comparison: the area's one township: 4 of the area's 7 visits
    let r = s.get(&format!("/api/v1/indicators/comparison?community_id={c}&from=2026-05&to=2026-05"), &token).await;
    r.expect_status(200);
    assert_eq!(r.json["area_visits"], 7);
    let ts = r.json["townships"].as_array().expect("townships");
    assert_eq!(ts.len(), 1);
    assert_eq!(ts[0]["visits"], 4);

    // CSV: 14 indicators × (1 month + the period) rows after the header
    let r = s.get(&format!("/api/v1/indicators/export.csv?community_id={c}&from=2026-05&to=2026-05"), &token).await;
    r.expect_status(200);
    assert!(r.headers[reqwest::header::CONTENT_TYPE].to_str().unwrap_or("").starts_with("text/csv"));
    let lines: Vec<&str> = r.text.lines().collect();
    assert_eq!(lines.len(), 1 + 14 * 2);
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("in_county_visit_rate,县域内就诊率,") && l.contains(",2026-05,6,8,0.75,red"))
    );

    // the printable sheet
    let r = s.get(&format!("/api/v1/indicators/sheet?community_id={c}&month=2026-05"), &token).await;
    r.expect_status(200);
    assert!(r.text.contains("县域内就诊率") && r.text.contains("75.0%") && r.text.contains("月度考核表"));

    // the counters equal a rebuild from the events
    let before = s.store.all_indicator_counters().await.expect("counters");
    assert_eq!(before, s.store.indicator_counters_from_events().await.expect("from events"));
}

#[tokio::test]
async fn bad_input_and_scope_are_refused() {
    let s = TestServer::start().await;
    let admin = s.login("admin_a").await;
    let sys = s.login("sysadmin").await;
    let clin = s.login("clin_a").await;
    let (a, b) = (s.seed.community_a, s.seed.community_b);
    let card = "/api/v1/indicators/scorecard";
    let detail = |r: &common::Resp| r.json["error"]["details"][0]["code"].as_str().unwrap_or("").to_owned();

    // unknown community
    let r = s.get(&format!("{card}?community_id={}&from=2026-01&to=2026-03", Uuid::now_v7()), &sys).await;
    r.expect_error(404, "not_found");
    let r = s.get(&format!("{card}?community_id=abc&from=2026-01&to=2026-03"), &sys).await;
    r.expect_error(400, "query.invalid");
    assert_eq!(detail(&r), "query.uuid");
    // inverted and open-ended periods, a bad month
    let r = s.get(&format!("{card}?community_id={a}&from=2026-03&to=2026-01"), &admin).await;
    r.expect_error(400, "query.invalid");
    assert_eq!(detail(&r), "period.inverted");
    let r = s.get(&format!("{card}?community_id={a}&from=2026-03"), &admin).await;
    assert_eq!((r.status.as_u16(), detail(&r)), (400, "period.open".into()));
    let r = s.get(&format!("{card}?community_id={a}&from=2026-3&to=2026-04"), &admin).await;
    assert_eq!((r.status.as_u16(), detail(&r)), (400, "period.month".into()));
    // unknown parameter, unknown indicator, unknown tier
    let r = s.get(&format!("{card}?community_id={a}&from=2026-01&to=2026-03&colour=red"), &admin).await;
    assert_eq!((r.status.as_u16(), detail(&r)), (400, "query.unknown".into()));
    let r = s
        .get(&format!("/api/v1/indicators/trend?community_id={a}&from=2026-01&to=2026-03&indicator=bogus"), &admin)
        .await;
    assert_eq!((r.status.as_u16(), detail(&r)), (400, "indicator.unknown".into()));
    let r = s.get(&format!("{card}?community_id={a}&from=2026-01&to=2026-03&tier=hamlet"), &admin).await;
    assert_eq!((r.status.as_u16(), detail(&r)), (400, "query.tier".into()));
    // a facility outside the community's area
    let r = s
        .get(&format!("{card}?community_id={a}&from=2026-01&to=2026-03&facility_id={}", s.seed.township_b), &sys)
        .await;
    r.expect_error(422, "indicators.facility_outside");
    // a community admin reads only their own community
    let r = s.get(&format!("{card}?community_id={b}&from=2026-01&to=2026-03"), &admin).await;
    r.expect_error(403, "indicators.other_community");
    s.get(&format!("{card}?community_id={a}&from=2026-01&to=2026-03"), &admin).await.expect_status(200);
    // a clinician reads only their own facility, and only the facility-level indicators
    let r = s.get(&format!("{card}?community_id={a}&from=2026-01&to=2026-03"), &clin).await;
    r.expect_error(403, "indicators.facility_scope");
    let r = s
        .get(&format!("{card}?community_id={a}&from=2026-01&to=2026-03&facility_id={}", s.seed.county_hospital), &clin)
        .await;
    r.expect_error(403, "indicators.facility_scope");
    let r = s
        .get(&format!("{card}?community_id={a}&from=2026-01&to=2026-03&facility_id={}", s.seed.township_a), &clin)
        .await;
    r.expect_status(200);
    let ids: Vec<&str> =
        r.json["indicators"].as_array().expect("list").iter().filter_map(|i| i["id"].as_str()).collect();
    assert!(ids.contains(&"cost_per_visit") && !ids.contains(&"in_county_visit_rate"), "{ids:?}");
    let r =
        s.get(&format!("/api/v1/indicators/records?facility_id={}&month=2026-05", s.seed.county_hospital), &clin).await;
    r.expect_error(403, "indicators.facility_scope");
    // records need a month and a sensible limit
    let r = s
        .get(&format!("/api/v1/indicators/records?facility_id={}&month=2026-05&limit=0", s.seed.township_a), &clin)
        .await;
    assert_eq!((r.status.as_u16(), detail(&r)), (400, "query.limit".into()));
    // signed out
    let r = s.call(reqwest::Method::GET, &format!("{card}?community_id={a}&from=2026-01&to=2026-03"), None, None).await;
    assert_eq!(r.status.as_u16(), 401);
}
