//! DIP on a small hand-computed region (issue 9 item 1, domain.md M9). Every expected value
//! below was computed by hand from the rules (python3 as a calculator), not read back from
//! the code. Default parameters: core threshold 15, year weights 1:2:7, scale 100.
//!
//! History (50 stays, costs in yuan; w = year weight):
//!
//! | key                               | stays (cost × count, year)                      | Σw  | Σw·cost (yuan) | mean   |
//! |-----------------------------------|-------------------------------------------------|-----|----------------|--------|
//! | I63.900 conservative (15 → core)  | 6000×5 y0, 7000×5 y1, 8000×5 y2                  | 50  | 380,000        | 7,600  |
//! | K80.100 51.2300 (16 → core)       | 9000×2 y0, 12000×4 y1, 15000×10 y2               | 80  | 1,164,000      | 14,550 |
//! | K80.100 51.2200 (4 → comp K80/surgery) | 20000×4 y2                                  | 28  | 560,000        | 20,000 |
//! | J18.900 conservative (14 → comp J18/conservative) | 3000×7 y2, 5000×7 y2             | 98  | 392,000        |        |
//! | J18.000 conservative (1 → comp J18/conservative)  | 4000×1 y2                        | 7   | 28,000         |        |
//! | comp J18/conservative (15 cases, still comprehensive) |                              | 105 | 420,000        | 4,000  |
//! | all                               | 50 stays                                        | 263 | 2,524,000      | 2,524,000/263 = 9,596.958… |
//!
//! Scores RW = mean ÷ (2,524,000/263) × 100, in 1/10,000 point, half-up:
//! - I63 core:      7,600 × 263 × 100 / 2,524,000 = 79.19175911… → 791,918
//! - K80 lap core: 14,550 × 263 × 100 / 2,524,000 = 151.61053882… → 1,516,105
//! - K80 surgery comprehensive: 20,000 × 263 × 100 / 2,524,000 = 208.39936608… → 2,083,994
//! - J18 conservative comprehensive: 4,000 × 263 × 100 / 2,524,000 = 41.67987321… → 416,799

use std::collections::HashMap;

use proptest::prelude::*;
use tiercare_domain::DomainError;
use tiercare_domain::dip::{
    ComprehensiveBy, DipParameters, DipStay, HistoricalStay, Outlier, PacketKey, ProcedureKind, build_catalogue,
    classify_procedures, hospital_payment, point_value, score_stay, settle,
};

fn stay(facility: &str, dx: &str, procs: &[&str], kind: ProcedureKind, cost_fen: i64) -> DipStay {
    DipStay {
        facility_id: facility.to_owned(),
        principal_diagnosis: dx.to_owned(),
        procedures: procs.iter().map(|p| (*p).to_owned()).collect(),
        procedure_kind: kind,
        cost_fen,
    }
}

use ProcedureKind::{Conservative as C, Surgery as S};

/// (diagnosis, procedures, kind, cost in yuan, year index, count)
type Row = (&'static str, &'static [&'static str], ProcedureKind, i64, u8, usize);

const HISTORY: &[Row] = &[
    ("I63.900", &[], C, 6_000, 0, 5),
    ("I63.900", &[], C, 7_000, 1, 5),
    ("I63.900", &[], C, 8_000, 2, 5),
    ("K80.100", &["51.2300"], S, 9_000, 0, 2),
    ("K80.100", &["51.2300"], S, 12_000, 1, 4),
    ("K80.100", &["51.2300"], S, 15_000, 2, 10),
    ("K80.100", &["51.2200"], S, 20_000, 2, 4),
    ("J18.900", &[], C, 3_000, 2, 7),
    ("J18.900", &[], C, 5_000, 2, 7),
    ("J18.000", &[], C, 4_000, 2, 1),
];

fn history() -> Vec<HistoricalStay> {
    let mut v = Vec::new();
    for (i, &(dx, procs, kind, yuan, year, n)) in HISTORY.iter().enumerate() {
        for j in 0..n {
            let facility = if (i + j) % 2 == 0 { "H1" } else { "H2" };
            v.push(HistoricalStay { stay: stay(facility, dx, procs, kind, yuan * 100), year_index: year });
        }
    }
    v
}

fn core(dx: &str, procs: &str) -> PacketKey {
    PacketKey::Core { diagnosis: dx.to_owned(), procedures: procs.to_owned() }
}

fn comp(group: &str, kind: ProcedureKind) -> PacketKey {
    PacketKey::Comprehensive { group: group.to_owned(), kind }
}

fn codes(e: &DomainError) -> Vec<String> {
    match e {
        DomainError::Invalid(v) => v.iter().map(|f| f.code.clone()).collect(),
        DomainError::Conflict(m) => vec![m.clone()],
    }
}

#[test]
fn catalogue_core_and_comprehensive_packets() {
    let cat = build_catalogue(&history(), &DipParameters::default()).expect("catalogue");
    assert_eq!(cat.total_cases, 50);
    assert_eq!(cat.total_weight, 263);
    assert_eq!(cat.total_weighted_cost_fen, 252_400_000);
    // 2,524,000 / 263 yuan = 959,695.817… fen → 959,696
    assert_eq!(cat.mean_cost_fen, 959_696);
    assert_eq!(cat.packets.len(), 4);

    // (key, cases, Σw, Σw·cost fen, mean fen, score e4)
    let expected = [
        (core("I63.900", "conservative"), 15, 50, 38_000_000, 760_000, 791_918),
        (core("K80.100", "51.2300"), 16, 80, 116_400_000, 1_455_000, 1_516_105),
        (comp("K80", S), 4, 28, 56_000_000, 2_000_000, 2_083_994),
        (comp("J18", C), 15, 105, 42_000_000, 400_000, 416_799),
    ];
    for (key, cases, w, wc, mean, score) in expected {
        let p = cat.packet(&key).unwrap_or_else(|| panic!("packet {key}"));
        assert_eq!(
            (p.cases, p.weight_sum, p.weighted_cost_fen, p.mean_cost_fen, p.score_e4),
            (cases, w, wc, mean, score),
            "{key}"
        );
    }
    // 14 cases of J18.900 is one short of core; the open cholecystectomy (4) is not core.
    assert!(cat.packet(&core("J18.900", "conservative")).is_none());
    assert!(cat.packet(&core("K80.100", "51.2200")).is_none());
}

#[test]
fn threshold_is_a_parameter() {
    // With a threshold of 14, J18.900 (14 cases) becomes core; J18.000 stays alone in its
    // comprehensive packet. 4,000 × 7 / 7 = 4,000 yuan mean for J18/conservative, and
    // J18.900: (3000×7 + 5000×7)×7 / 98 = 4,000 yuan; both 416,799.
    let params = DipParameters { core_threshold: 14, ..DipParameters::default() };
    let cat = build_catalogue(&history(), &params).expect("catalogue");
    assert_eq!(cat.packet(&core("J18.900", "conservative")).map(|p| (p.cases, p.score_e4)), Some((14, 416_799)));
    assert_eq!(cat.packet(&comp("J18", C)).map(|p| (p.cases, p.score_e4)), Some((1, 416_799)));
}

#[test]
fn comprehensive_by_chapter() {
    // K80 is in chapter XI, J18 in chapter X.
    let params = DipParameters { comprehensive_by: ComprehensiveBy::Chapter, ..DipParameters::default() };
    let cat = build_catalogue(&history(), &params).expect("catalogue");
    assert!(cat.packet(&comp("XI", S)).is_some());
    assert!(cat.packet(&comp("X", C)).is_some());
    assert!(cat.packet(&comp("J18", C)).is_none());
}

/// (facility, coefficient bp, diagnosis, procedures, kind, cost fen,
///  expected packet, outlier, expert review, score e4)
#[allow(clippy::type_complexity)]
fn year_stays() -> Vec<(&'static str, u32, DipStay, PacketKey, Outlier, bool, i64)> {
    use Outlier::{High, Low, Normal};
    let i63 = || core("I63.900", "conservative");
    let k80 = || core("K80.100", "51.2300");
    vec![
        // H1, coefficient 1.0 (10,000 bp)
        // a. at the mean: 791,918
        ("H1", 10_000, stay("H1", "I63.900", &[], C, 760_000), i63(), Normal, false, 791_918),
        // b. exactly 50 % (3,800.00 ÷ 7,600): normal, 791,918
        ("H1", 10_000, stay("H1", "I63.900", &[], C, 380_000), i63(), Normal, false, 791_918),
        // c. 3,799.99 just below 50 %: 791,918 × 379,999 / 760,000 = 395,958.48 → 395,958
        ("H1", 10_000, stay("H1", "I63.900", &[], C, 379_999), i63(), Low, false, 395_958),
        // d. exactly 2 × 14,550 = 29,100.00: normal, 1,516,105
        ("H1", 10_000, stay("H1", "K80.100", &["51.2300"], S, 2_910_000), k80(), Normal, false, 1_516_105),
        // e. 29,100.01 just above: 1,516,105 × ((2,910,001/1,455,000 − 2) + 1)
        //    = 1,516,105 × 1,455,001 / 1,455,000 = 1,516,106.04 → 1,516,106
        ("H1", 10_000, stay("H1", "K80.100", &["51.2300"], S, 2_910_001), k80(), High, false, 1_516_106),
        // f. open cholecystectomy → comprehensive K80 surgery at its mean: 2,083,994
        ("H1", 10_000, stay("H1", "K80.100", &["51.2200"], S, 2_000_000), comp("K80", S), Normal, false, 2_083_994),
        // H2, coefficient 0.85 (8,500 bp)
        // g. J18.900 → comprehensive J18: 416,799 × 0.85 = 354,279.15 → 354,279
        ("H2", 8_500, stay("H2", "J18.900", &[], C, 400_000), comp("J18", C), Normal, false, 354_279),
        // h. 80,000 = 5.498 × mean: 1,516,105 × (8,000,000 − 1,455,000)/1,455,000 × 0.85
        //    = 1,516,105 × 4.4982818 × 0.85 = 5,796,886.87 → 5,796,887, expert review
        ("H2", 8_500, stay("H2", "K80.100", &["51.2300"], S, 8_000_000), k80(), High, true, 5_796_887),
        // i. exactly 5 × = 72,750.00: high, 1,516,105 × 4 × 0.85 = 5,154,757, not flagged
        ("H2", 8_500, stay("H2", "K80.100", &["51.2300"], S, 7_275_000), k80(), High, false, 5_154_757),
        // j. 72,750.01: 1,516,105 × 5,820,001/1,455,000 × 0.85 = 5,154,757.89 → 5,154,758, flagged
        ("H2", 8_500, stay("H2", "K80.100", &["51.2300"], S, 7_275_001), k80(), High, true, 5_154_758),
        // k. J18.000 (category J18), 1,000 yuan = 25 % of 4,000: 416,799 × 0.25 × 0.85
        //    = 88,569.79 → 88,570
        ("H2", 8_500, stay("H2", "J18.000", &[], C, 100_000), comp("J18", C), Low, false, 88_570),
    ]
}

#[test]
fn stay_scores_and_outlier_boundaries() {
    let cat = build_catalogue(&history(), &DipParameters::default()).expect("catalogue");
    let mut failures = Vec::new();
    for (i, (_, coef, s, packet, outlier, review, score)) in year_stays().into_iter().enumerate() {
        let r = score_stay(&cat, &s, coef).expect("score");
        let got = (r.packet.clone(), r.outlier, r.expert_review, r.score_e4);
        let want = (packet, outlier, review, score);
        if got != want {
            failures.push(format!("stay {i}: got {got:?}, want {want:?}"));
        }
        assert!(r.explanation.iter().any(|st| st.code == "packet"));
        assert!(r.explanation.iter().any(|st| st.code == "score"));
        assert_eq!(r.explanation.iter().any(|st| st.code == "expert_review"), review);
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn explanation_says_why_the_packet() {
    let cat = build_catalogue(&history(), &DipParameters::default()).expect("catalogue");
    let r = score_stay(&cat, &stay("H1", "J18.900", &[], C, 400_000), 10_000).expect("score");
    assert!(r.reason.contains("not a core packet"), "{}", r.reason);
    let r = score_stay(&cat, &stay("H1", "I63.900", &[], C, 400_000), 10_000).expect("score");
    assert!(r.reason.starts_with("core packet"), "{}", r.reason);
}

#[test]
fn point_value_and_payments() {
    // Points: H1 = 791,918 × 2 + 395,958 + 1,516,105 + 1,516,106 + 2,083,994 = 7,095,999
    //         H2 = 354,279 + 5,796,887 + 5,154,757 + 5,154,758 + 88,570      = 16,549,251
    //         Σ = 23,645,250 (2,364.5250 points)
    // Fund available 150,000 yuan at a 70 % ratio: 15,000,000 ÷ 0.7 = 21,428,571.428… fen;
    // point value = 21,428,571.428… ÷ 2,364.5250 = 9,062.5269… fen per point.
    // H1 gross = 709.5999 × 9,062.5269… = 6,430,768.3… → 6,430,768; patients paid 30,000 yuan
    //    → payment 6,430,768 − 3,000,000 = 3,430,768 fen
    // H2 gross = 1,654.9251 × 9,062.5269… = 14,997,803.1… → 14,997,803; patients paid 25,000
    //    yuan → payment 14,997,803 − 2,500,000 = 12,497,803 fen
    let cat = build_catalogue(&history(), &DipParameters::default()).expect("catalogue");
    let scores: Vec<_> =
        year_stays().into_iter().map(|(_, coef, s, ..)| score_stay(&cat, &s, coef).expect("score")).collect();
    let paid = HashMap::from([("H1".to_owned(), 3_000_000), ("H2".to_owned(), 2_500_000)]);
    let (pv, pays) = settle(&scores, 15_000_000, 7_000, &paid).expect("settle");
    assert_eq!(pv.total_points_e4, 23_645_250);
    assert_eq!(pv.fen_per_point_e4(), 90_625_269);
    let got: Vec<_> = pays.iter().map(|p| (p.facility_id.as_str(), p.points_e4, p.gross_fen, p.payment_fen)).collect();
    assert_eq!(got, vec![("H1", 7_095_999, 6_430_768, 3_430_768), ("H2", 16_549_251, 14_997_803, 12_497_803)]);
}

#[test]
fn half_up_rounding_of_payment() {
    // 1 point of 2 at a fund of 3 fen, ratio 100 %: 1.5 fen → 2 (half up).
    let pv = point_value(3, 10_000, 20_000).expect("pv");
    assert_eq!(hospital_payment("H", 10_000, &pv, 0).expect("pay").gross_fen, 2);
}

#[test]
fn bad_input_is_refused_with_field_errors() {
    let p = DipParameters::default();
    let e = build_catalogue(&[], &p).expect_err("empty");
    assert_eq!(codes(&e), vec!["dip.history.empty"]);

    let bad = vec![
        HistoricalStay { stay: stay("H1", "  ", &[], C, 100), year_index: 0 },
        HistoricalStay { stay: stay("H1", "I63.900", &[], C, -1), year_index: 3 },
        HistoricalStay { stay: stay("H1", "I63.900", &[], S, 100), year_index: 1 },
    ];
    let e = build_catalogue(&bad, &p).expect_err("bad");
    assert_eq!(
        codes(&e),
        vec![
            "dip.principal_diagnosis.missing",
            "dip.cost.negative",
            "dip.year_index.range",
            "dip.procedure_kind.mismatch"
        ]
    );
    if let DomainError::Invalid(v) = &e {
        assert_eq!(v[0].field, "stays[0].principal_diagnosis");
        assert_eq!(v[1].field, "stays[1].cost_fen");
    }

    let cat = build_catalogue(&history(), &p).expect("catalogue");
    let e = score_stay(&cat, &stay("H1", "", &[], C, 100), 10_000).expect_err("no dx");
    assert_eq!(codes(&e), vec!["dip.principal_diagnosis.missing"]);
    let e = score_stay(&cat, &stay("H1", "I63.900", &[], C, -5), 10_000).expect_err("negative");
    assert_eq!(codes(&e), vec!["dip.cost.negative"]);
    // I63 with thrombolysis: no core packet, no I63 therapeutic comprehensive packet.
    let e = score_stay(&cat, &stay("H1", "I63.900", &["99.1000"], ProcedureKind::Therapeutic, 100), 10_000)
        .expect_err("no packet");
    assert_eq!(codes(&e), vec!["dip.packet.none"]);

    assert_eq!(codes(&point_value(100, 0, 0).expect_err("pv")), vec!["dip.ratio.range", "dip.points.none"]);
}

#[test]
fn default_procedure_classifier() {
    assert_eq!(classify_procedures(&[]), C);
    assert_eq!(classify_procedures(&["51.2300".to_owned()]), S);
    assert_eq!(classify_procedures(&["88.3800".to_owned()]), ProcedureKind::Diagnostic);
    assert_eq!(classify_procedures(&["99.1000".to_owned(), "88.3800".to_owned()]), ProcedureKind::Therapeutic);
}

proptest! {
    #[test]
    fn scores_never_negative_and_payments_add_up(
        costs in proptest::collection::vec((0usize..4, 0i64..20_000_000, 1u32..20_000), 1..40),
        fund in 0i64..1_000_000_000,
        ratio in 1u32..=10_000,
        paid in proptest::collection::vec(0i64..10_000_000, 3),
    ) {
        let cat = build_catalogue(&history(), &DipParameters::default()).expect("catalogue");
        let templates = [
            ("I63.900", &[][..], C),
            ("K80.100", &["51.2300"][..], S),
            ("K80.100", &["51.2200"][..], S),
            ("J18.900", &[][..], C),
        ];
        let facilities = ["H1", "H2", "H3"];
        let mut scores = Vec::new();
        for (i, (t, cost, coef)) in costs.iter().enumerate() {
            let (dx, procs, kind) = templates[*t];
            let s = score_stay(&cat, &stay(facilities[i % 3], dx, procs, kind, *cost), *coef).expect("score");
            prop_assert!(s.score_e4 >= 0);
            scores.push(s);
        }
        let total: i64 = scores.iter().map(|s| s.score_e4).sum();
        prop_assume!(total > 0);
        let paid_map: HashMap<String, i64> =
            facilities.iter().zip(&paid).map(|(f, p)| ((*f).to_owned(), *p)).collect();
        let (_, pays) = settle(&scores, fund, ratio, &paid_map).expect("settle");
        // Σ payments + Σ patients paid = fund ÷ ratio (= Σ points × point value), within one
        // fen per hospital.
        let sum: i64 = pays.iter().map(|p| p.payment_fen + p.patients_paid_fen).sum();
        let exact_x2 = 2 * i128::from(fund) * 10_000;
        let diff_x2 = (i128::from(sum) * 2 * i128::from(ratio) - exact_x2).abs();
        prop_assert!(diff_x2 <= 2 * i128::from(ratio) * pays.len() as i128, "sum {sum}, fund {fund}, ratio {ratio}");
    }

    #[test]
    fn catalogue_scores_never_negative(
        stays in proptest::collection::vec((0usize..4, 0i64..5_000_000, 0u8..3), 1..60),
    ) {
        let dx = ["I63.900", "K80.100", "J18.900", "A01.000"];
        let history: Vec<HistoricalStay> = stays
            .iter()
            .map(|(d, c, y)| HistoricalStay { stay: stay("H1", dx[*d], &[], C, *c), year_index: *y })
            .collect();
        match build_catalogue(&history, &DipParameters { core_threshold: 3, ..DipParameters::default() }) {
            Ok(cat) => {
                for p in &cat.packets {
                    prop_assert!(p.score_e4 >= 0);
                }
                for h in &history {
                    let s = score_stay(&cat, &h.stay, 10_000).expect("every historical stay has a packet");
                    prop_assert!(s.score_e4 >= 0);
                }
            }
            Err(e) => prop_assert_eq!(codes(&e), vec!["dip.history.zero_cost".to_owned()]),
        }
    }
}
