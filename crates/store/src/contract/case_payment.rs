//! Contract cases for case-based payment (issue 9). Each case is a `pub async fn case(store: Arc<dyn Store>)`
//! like those of the parent module (whose fixtures and helpers it may use through `super::`),
//! and is listed in [`case_payment_contract_tests!`](crate::case_payment_contract_tests). Case names start with
//! the part's name so they never clash with the other suites' in a backend's test file.

/// Expand one `#[tokio::test]` per case-based payment (issue 9) contract case (see [`contract_tests!`](crate::contract_tests)).
#[macro_export]
macro_rules! case_payment_contract_tests {
    ($open:expr) => {
        $crate::contract_tests!(@cases_in case_payment, $open;
            case_payment_stays_and_year_round_trip,
            case_payment_stay_detail_refusals,
            case_payment_budget_and_spend,
            case_payment_drg_weights_cmi_and_payment,
        );
    };
}

#[allow(unused_imports)]
use super::*;

use tiercare_domain::budget::{BudgetTerms, MonthSpend};
use tiercare_domain::dip::{DipParameters, DrgTerms, YearTerms, settle_year};

use crate::{CasePaymentYear, StayDetail};

/// An inpatient stay of `p` at `f`, admitted on `started_at`, four days long.
fn inpatient(p: &Patient, f: &Facility, started_at: OffsetDateTime, dx: &str, fen: i64) -> Encounter {
    Encounter {
        class: EncounterClass::Inpatient,
        ended_at: Some(started_at + Duration::days(4)),
        diagnoses: vec![dx.into()],
        total_cost_fen: fen,
        ..encounter(p, f, started_at, dx)
    }
}

/// Two pneumonia stays (J18.900) at a county hospital of 广安 discharged in 2026, one outpatient
/// visit, and one stay at a Beijing hospital (outside the region prefix 5116).
pub async fn case_payment_stays_and_year_round_trip(store: Arc<dyn Store>) {
    let s = &*store;
    migrated(s).await;
    let hc = facility(s, "H51162100001", Tier::County, YUECHI, None).await;
    let hb = facility(s, "H11010500001", Tier::Provincial, CHAOYANG, None).await;
    let p = resident("王大山", Sex::Male, date!(1960 - 03 - 15), 123);
    create_patients(s, &[&p]).await;
    let a = inpatient(&p, &hc, datetime!(2026-03-01 08:00 +8), "J18.900", 300_000);
    let b = inpatient(&p, &hc, datetime!(2026-05-01 08:00 +8), "J18.900", 500_000);
    let visit = encounter(&p, &hc, datetime!(2026-05-20 08:00 +8), "J06.900");
    let beijing = inpatient(&p, &hb, datetime!(2026-06-01 08:00 +8), "J18.900", 900_000);
    // discharged 2025-12-31 23:00 China time: year 2025, not 2026
    let late = Encounter {
        ended_at: Some(datetime!(2025-12-31 23:00 +8)),
        ..inpatient(&p, &hc, datetime!(2025-12-27 08:00 +8), "J18.900", 700_000)
    };
    s.import_encounters(&[a.clone(), b.clone(), visit, beijing, late]).await.expect("encounters");
    let detail = StayDetail {
        region_key: p.region_key.clone(),
        encounter_id: b.id,
        newborn_weight_g: None,
        discharge_status: "transfer".into(),
    };
    assert_eq!(s.import_stay_details(std::slice::from_ref(&detail)).await.expect("details"), 1);
    // a repeat replaces
    assert_eq!(
        s.import_stay_details(&[StayDetail { newborn_weight_g: Some(3_100), ..detail }]).await.expect("again"),
        1
    );

    let stays = s.case_stays("5116", &[2026]).await.expect("stays");
    assert_eq!(stays.iter().map(|x| x.id.clone()).collect::<Vec<_>>(), {
        let mut v = vec![a.id.to_string(), b.id.to_string()];
        v.sort();
        v
    });
    let sb = stays.iter().find(|x| x.id == b.id.to_string()).expect("b");
    assert_eq!((sb.grouping.sex, sb.grouping.age, sb.grouping.weight_g), (1, Some(66), Some(3_100)));
    assert_eq!(sb.grouping.diagnoses, vec!["J18.900".to_owned()]);
    assert_eq!((sb.year, sb.cost_fen, sb.patient_paid_fen), (2026, 500_000, 0));
    assert_eq!(s.case_stays("5116", &[2025]).await.expect("2025").len(), 1, "the stay discharged on 31 December");
    assert!(s.case_stays("5116", &[]).await.expect("no years").is_empty());

    // the year from itself, threshold 1: one core packet J18.900 / conservative, mean
    // (300,000 + 500,000) ÷ 2 = 400,000 = the mean of all → 100 points; ratios 0.75 and 1.25
    // are normal → 200 points; fund 1,000,000 at 100 % → 5,000 fen per point → 1,000,000 fen.
    let terms = YearTerms {
        year: 2026,
        history_years: vec![2026],
        params: DipParameters { core_threshold: 1, ..DipParameters::default() },
        fund_available_fen: 1_000_000,
        reimbursement_ratio_bp: 10_000,
        facility_coefficients_bp: Default::default(),
        drg: Default::default(),
    };
    let scheme = tiercare_domain::drg::sample_scheme().expect("sample scheme");
    let outcome = settle_year(&terms, &stays, &stays, &scheme).expect("settle");
    let year = CasePaymentYear::of("511600", &terms, scheme.name(), &outcome, None, NOW);
    s.replace_case_payment_year(&year, &outcome).await.expect("write");
    s.replace_case_payment_year(&year, &outcome).await.expect("a rebuild replaces");
    let got = s.case_payment_year("511600", 2026).await.expect("read").expect("stored");
    assert_eq!(got, year);
    assert_eq!((got.total_points_e4, got.fen_per_point_e4), (2_000_000, 50_000_000));
    assert_eq!(s.case_payment_years().await.expect("years"), vec![("511600".to_owned(), 2026)]);
    let packets = s.dip_packets("511600", 2026, Some("j18"), 0, 0).await.expect("packets");
    assert_eq!(packets, outcome.catalogue.packets);
    assert_eq!((packets.len(), packets[0].mean_cost_fen, packets[0].score_e4), (1, 400_000, 1_000_000));
    assert!(s.dip_packets("511600", 2026, Some("K80"), 0, 0).await.expect("none").is_empty());
    let positions = s.hospital_positions("511600", 2026, Some(hc.id)).await.expect("positions");
    assert_eq!(positions.len(), 1);
    assert_eq!((positions[0].points_e4, positions[0].payment_fen), (2_000_000, 1_000_000));
    assert!(s.hospital_positions("511600", 2026, Some(hb.id)).await.expect("none").is_empty());
    let r = s.stay_result(b.id).await.expect("read").expect("result");
    assert_eq!((r.patient_id, r.facility_id, r.region_code.as_str(), r.year), (p.id, hc.id, "511600", 2026));
    assert_eq!(r.result.drg.as_deref(), Some("ES25"));
    assert_eq!(s.stay_results("511600", 2026, hc.id, 0).await.expect("list").len(), 2);
    assert!(s.stay_result(new_id()).await.expect("unknown").is_none());
}

/// Details name inpatient encounters of their region with a known status, or nothing is written.
pub async fn case_payment_stay_detail_refusals(store: Arc<dyn Store>) {
    let s = &*store;
    migrated(s).await;
    let hc = facility(s, "H51162100001", Tier::County, YUECHI, None).await;
    let p = resident("王大山", Sex::Male, date!(1960 - 03 - 15), 123);
    create_patients(s, &[&p]).await;
    let stay = inpatient(&p, &hc, datetime!(2026-03-01 08:00 +8), "J18.900", 300_000);
    let visit = encounter(&p, &hc, datetime!(2026-05-20 08:00 +8), "J06.900");
    s.import_encounters(&[stay.clone(), visit.clone()]).await.expect("encounters");
    let good = StayDetail {
        region_key: p.region_key.clone(),
        encounter_id: stay.id,
        newborn_weight_g: None,
        discharge_status: "routine".into(),
    };
    let bad_status = StayDetail { discharge_status: "escaped".into(), ..good.clone() };
    assert!(matches!(s.import_stay_details(&[good.clone(), bad_status]).await, Err(StoreError::Domain(_))));
    expect_not_found(
        s.import_stay_details(&[good.clone(), StayDetail { encounter_id: visit.id, ..good.clone() }]).await,
        "an outpatient visit",
    );
    expect_not_found(
        s.import_stay_details(&[good.clone(), StayDetail { region_key: WUSHENG.into(), ..good.clone() }]).await,
        "another region's key",
    );
    // nothing was written: the stay has no weight or status yet (a later good import works)
    let st = s.case_stays("5116", &[2026]).await.expect("stays");
    assert_eq!(st[0].grouping.weight_g, None);
    assert_eq!(s.import_stay_details(&[good]).await.expect("good"), 1);
}

/// The community's spend by month from the settlements in force of its residents, in county
/// and out; budgets of a closed year refuse changes.
pub async fn case_payment_budget_and_spend(store: Arc<dyn Store>) {
    let s = &*store;
    migrated(s).await;
    let c = community(s, None, "岳池县医共体", YUECHI, false).await;
    let hc = facility(s, "H51162100001", Tier::County, YUECHI, Some(c.id)).await;
    let hg = facility(s, "H51160200001", Tier::City, GUANG_AN, None).await;
    let p = resident("王大山", Sex::Male, date!(1960 - 03 - 15), 123);
    create_patients(s, &[&p]).await;
    use Setting::Inpatient as In;
    use SettlementStatus::{Reversed, Settled};
    let rows = vec![
        imported(&p, &hc, "511600", In, date!(2026 - 01 - 31), 1_000_000, 760_000, "B-1", Settled),
        imported(&p, &hg, "511600", In, date!(2026 - 02 - 15), 2_000_000, 1_200_000, "B-2", Settled),
        imported(&p, &hc, "511600", In, date!(2026 - 02 - 20), 300_000, 200_000, "B-3", Reversed),
        imported(&p, &hc, "511600", In, date!(2026 - 02 - 25), 100_000, 50_000, "B-4", Settled),
        imported(&p, &hc, "511600", In, date!(2025 - 12 - 31), 500_000, 400_000, "B-5", Settled),
    ];
    s.import_settlements(&rows).await.expect("import");
    // January: 760,000 in county; February: 50,000 in county (B-3 reversed) and 1,200,000 at
    // the city hospital (511602 ≠ 511621: out of county); December 2025 is another year
    assert_eq!(
        s.community_spend(c.id, 2026).await.expect("spend"),
        vec![
            MonthSpend { month: 1, in_county_fen: 760_000, out_of_county_fen: 0 },
            MonthSpend { month: 2, in_county_fen: 50_000, out_of_county_fen: 1_200_000 },
        ]
    );
    expect_not_found(s.community_spend(new_id(), 2026).await, "an unknown community");

    let terms = BudgetTerms {
        year: 2026,
        budget_fen: 30_000_000,
        savings_retained_bp: 10_000,
        overspend_borne_bp: 5_000,
        closed: false,
    };
    s.put_budget(c.id, &terms, None, NOW).await.expect("create");
    let closed = BudgetTerms { budget_fen: 31_000_000, closed: true, ..terms.clone() };
    s.put_budget(c.id, &closed, None, NOW).await.expect("close");
    let refused = s.put_budget(c.id, &BudgetTerms { budget_fen: 99, ..terms.clone() }, None, NOW).await;
    assert!(
        matches!(refused, Err(StoreError::Domain(DomainError::Invalid(ref e))) if e[0].code == "budget.year.closed"),
        "{refused:?}"
    );
    assert_eq!(s.budget(c.id, 2026).await.expect("read").expect("budget").terms, closed);
    assert!(matches!(
        s.put_budget(c.id, &BudgetTerms { budget_fen: 0, year: 2027, ..terms.clone() }, None, NOW).await,
        Err(StoreError::Domain(_))
    ));
    assert!(s.budget(c.id, 2027).await.expect("read").is_none());
    expect_not_found(s.put_budget(new_id(), &terms, None, NOW).await, "an unknown community");
}

/// DRG weights from the history, the base rate, each stay's DRG payment and each hospital's CMI
/// and DRG payment, written and read back. A small region, computed by hand (sample scheme;
/// the patient is a man born 1960, no secondary diagnoses, so no CC):
///
/// History 2025 (DRG: weights are unweighted by year):
///   county J18.900 200,000 and 400,000 fen → ES25, mean 300,000
///   city   K80.200 + 51.2300 900,000 fen   → HC25, mean 900,000
///   city   I63.900 1,500,000 fen           → BR25, mean 1,500,000
///   mean of all grouped stays = 3,000,000 ÷ 4 = 750,000
///   weights: ES25 300,000 ÷ 750,000 = 0.4; HC25 1.2; BR25 2.0
/// Year 2026: county ES25 (350,000 fen) and HC25 (800,000); city BR25 (1,000,000) and ES25 (300,000)
///   Σ weights = 0.4 + 1.2 + 2.0 + 0.4 = 4.0
///   CMI county = (0.4 + 1.2) ÷ 2 = 0.8; city = (2.0 + 0.4) ÷ 2 = 1.2
///   base rate given as 250,000 fen: payments ES25 100,000, HC25 300,000, BR25 500,000;
///     county 400,000, city 600,000 (patients paid nothing)
///   default base rate (budget-neutral): fund 1,000,000 at 80 % → 1,250,000 ÷ 4.0 = 312,500 fen;
///     ES25 125,000, HC25 375,000, BR25 625,000; county 500,000, city 750,000
pub async fn case_payment_drg_weights_cmi_and_payment(store: Arc<dyn Store>) {
    let s = &*store;
    migrated(s).await;
    let hc = facility(s, "H51162100001", Tier::County, YUECHI, None).await;
    let hg = facility(s, "H51160200001", Tier::City, GUANG_AN, None).await;
    let p = resident("王大山", Sex::Male, date!(1960 - 03 - 15), 123);
    create_patients(s, &[&p]).await;
    let h25 = datetime!(2025-03-01 08:00 +8);
    let y26 = datetime!(2026-03-01 08:00 +8);
    let chole = |f: &Facility, at, fen| Encounter {
        procedures: vec!["51.2300".into()],
        ..inpatient(&p, f, at, "K80.200", fen)
    };
    let year = [
        inpatient(&p, &hc, y26, "J18.900", 350_000),
        chole(&hc, y26, 800_000),
        inpatient(&p, &hg, y26, "I63.900", 1_000_000),
        inpatient(&p, &hg, y26, "J18.900", 300_000),
    ];
    let mut all = vec![
        inpatient(&p, &hc, h25, "J18.900", 200_000),
        inpatient(&p, &hc, h25, "J18.900", 400_000),
        chole(&hg, h25, 900_000),
        inpatient(&p, &hg, h25, "I63.900", 1_500_000),
    ];
    all.extend(year.iter().cloned());
    s.import_encounters(&all).await.expect("encounters");
    let history = s.case_stays("5116", &[2025]).await.expect("history");
    let stays = s.case_stays("5116", &[2026]).await.expect("year");
    assert_eq!((history.len(), stays.len()), (4, 4));
    let scheme = tiercare_domain::drg::sample_scheme().expect("sample scheme");
    let mut terms = YearTerms {
        year: 2026,
        history_years: vec![2025],
        params: DipParameters::default(),
        fund_available_fen: 1_000_000,
        reimbursement_ratio_bp: 8_000,
        facility_coefficients_bp: Default::default(),
        drg: DrgTerms { base_rate_fen: Some(250_000), ..DrgTerms::default() },
    };
    let hospital = |h: &[tiercare_domain::dip::HospitalPosition], id: Uuid| {
        let h = h.iter().find(|h| h.facility_id == id.to_string()).expect("position");
        (h.drg_weighted, h.drg_weight_sum_e4, h.cmi_e4, h.drg_gross_fen, h.drg_payment_fen)
    };
    for (rate, es, hcp, br, county, city) in [
        (Some(250_000), 100_000, 300_000, 500_000, 400_000, 600_000),
        (None, 125_000, 375_000, 625_000, 500_000, 750_000),
    ] {
        terms.drg.base_rate_fen = rate;
        let outcome = settle_year(&terms, &history, &stays, &scheme).expect("settle");
        let y = CasePaymentYear::of("511600", &terms, scheme.name(), &outcome, None, NOW);
        s.replace_case_payment_year(&y, &outcome).await.expect("write");
        let got = s.case_payment_year("511600", 2026).await.expect("read").expect("stored");
        assert_eq!(got, y);
        assert_eq!(
            (got.drg_base_rate_fen, got.drg_weight_sum_e4, got.drg_groups),
            (Some(rate.unwrap_or(312_500)), 40_000, 3)
        );

        let w: Vec<(String, u64, i64, i64, bool)> = s
            .drg_weights("511600", 2026)
            .await
            .expect("weights")
            .into_iter()
            .map(|w| (w.drg_code, w.cases, w.mean_cost_fen, w.weight_e4, w.low_volume))
            .collect();
        assert_eq!(
            w,
            vec![
                ("BR25".into(), 1, 1_500_000, 20_000, true),
                ("ES25".into(), 2, 300_000, 4_000, true),
                ("HC25".into(), 1, 900_000, 12_000, true),
            ]
        );
        assert!(s.drg_weights("511600", 2025).await.expect("none").is_empty());

        let expect = [
            (&year[0], "ES25", 4_000, es),
            (&year[1], "HC25", 12_000, hcp),
            (&year[2], "BR25", 20_000, br),
            (&year[3], "ES25", 4_000, es),
        ];
        for (e, drg, weight, pay) in expect {
            let r = s.stay_result(e.id).await.expect("read").expect("result").result;
            assert_eq!(
                (r.drg.as_deref(), r.drg_weight_e4, r.drg_payment_fen),
                (Some(drg), Some(weight), Some(pay)),
                "{}",
                e.id
            );
        }
        let all = s.hospital_positions("511600", 2026, None).await.expect("positions");
        assert_eq!(hospital(&all, hc.id), (2, 16_000, Some(8_000), Some(county), Some(county)));
        assert_eq!(hospital(&all, hg.id), (2, 24_000, Some(12_000), Some(city), Some(city)));
    }
}
