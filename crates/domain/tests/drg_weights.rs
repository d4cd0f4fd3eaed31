//! DRG weights, base rate, payments and CMI on a small hand-computed history (issue 9 item 2,
//! domain.md M9). Every expected value was computed by hand from the rules (python3 as a
//! calculator), not read back from the code. Half-up rounding: round(n ÷ d) = ⌊(2n + d) ÷ 2d⌋.
//!
//! History: 12 stays, 3 DRGs, two hospitals (costs in yuan; × 100 = fen):
//!
//! | DRG  | costs (yuan)                     | cases | Σ (yuan) | mean   | county | township |
//! |------|----------------------------------|-------|----------|--------|--------|----------|
//! | ES31 | 4000, 5000, 6000, 5000, 5000     | 5     | 25,000   | 5,000  | 1      | 4        |
//! | GB25 | 12000, 15000, 18000, 15000       | 4     | 60,000   | 15,000 | 2      | 2        |
//! | IC29 | 30000, 36000, 33000              | 3     | 99,000   | 33,000 | 3      | 0        |
//! | all  |                                  | 12    | 184,000  | 184,000/12 = 15,333.333… |  |  |
//!
//! Weights = DRG mean ÷ overall mean = Σ_g × 12 ÷ (n_g × 184,000), in 1/10,000, half-up:
//! - ES31: 25,000 × 12 / (5 × 184,000) = 0.326086956… → 3,261
//! - GB25: 60,000 × 12 / (4 × 184,000) = 0.978260869… → 9,783
//! - IC29: 99,000 × 12 / (3 × 184,000) = 2.152173913… → 21,522
//! - case-weighted: 5 × 3,261 + 4 × 9,783 + 3 × 21,522 = 16,305 + 39,132 + 64,566 = 120,003
//!   → mean 10,000.25 (1.0000 within rounding).
//!
//! Base rate for a budget of 200,000 yuan = 20,000,000 fen over the same 12 expected stays:
//! 20,000,000 × 10,000 / 120,003 = 1,666,625.00104… → 1,666,625 fen per weight point.
//! Payments = weight × rate / 10,000, half-up:
//! - ES31: 3,261 × 1,666,625 / 10,000 = 543,486.4125 → 543,486
//! - GB25: 9,783 × 1,666,625 / 10,000 = 1,630,459.2375 → 1,630,459
//! - IC29: 21,522 × 1,666,625 / 10,000 = 3,586,910.325 → 3,586,910
//! - all 12: 5 × 543,486 + 4 × 1,630,459 + 3 × 3,586,910 = 19,999,996 (budget − 4 fen of rounding)
//!
//! CMI (published weights):
//! - county:   3,261 + 2 × 9,783 + 3 × 21,522 = 87,393; ÷ 6 = 14,565.5 → 14,566 (half-up)
//! - township: 4 × 3,261 + 2 × 9,783 = 32,610; ÷ 6 = 5,435

use proptest::prelude::*;
use tiercare_domain::drg::weights::{WeightParams, base_rate, cmi, cmi_by_hospital, payment, weight_sum_e4, weights};
use tiercare_domain::error::DomainError;

const COUNTY: &str = "county-hospital";
const TOWNSHIP: &str = "township-a";

fn yuan(y: i64) -> i64 {
    y * 100
}

fn history() -> Vec<(&'static str, &'static str, i64)> {
    vec![
        ("ES31", COUNTY, yuan(4000)),
        ("ES31", TOWNSHIP, yuan(5000)),
        ("ES31", TOWNSHIP, yuan(6000)),
        ("ES31", TOWNSHIP, yuan(5000)),
        ("ES31", TOWNSHIP, yuan(5000)),
        ("GB25", COUNTY, yuan(12000)),
        ("GB25", TOWNSHIP, yuan(15000)),
        ("GB25", COUNTY, yuan(18000)),
        ("GB25", TOWNSHIP, yuan(15000)),
        ("IC29", COUNTY, yuan(30000)),
        ("IC29", COUNTY, yuan(36000)),
        ("IC29", COUNTY, yuan(33000)),
    ]
}

fn codes(e: &DomainError) -> Vec<(String, String)> {
    match e {
        DomainError::Invalid(v) => v.iter().map(|f| (f.field.clone(), f.code.clone())).collect(),
        other => panic!("expected field errors, got {other:?}"),
    }
}

#[test]
fn weights_of_the_hand_computed_history() {
    let t = weights(&history(), &WeightParams::default()).expect("valid input");
    assert_eq!(t.total_cases, 12);
    assert_eq!(t.kept_cases, 12);
    assert_eq!(t.total_cost_fen, 18_400_000);
    assert_eq!(t.mean_cost_fen, 1_533_333); // 15,333.333… yuan
    let got: Vec<(&str, u64, i64, i64, bool)> =
        t.groups.iter().map(|g| (g.drg_code.as_str(), g.cases, g.mean_cost_fen, g.weight_e4, g.low_volume)).collect();
    assert_eq!(
        got,
        vec![
            ("ES31", 5, 500_000, 3_261, false),
            ("GB25", 4, 1_500_000, 9_783, true), // 4 < min_cases 5
            ("IC29", 3, 3_300_000, 21_522, true),
        ]
    );
    assert_eq!(t.weight_e4(" GB25 "), Some(9_783));
    assert_eq!(t.weight_e4("XX99"), None);
}

#[test]
fn base_rate_and_payments() {
    let t = weights(&history(), &WeightParams::default()).expect("valid input");
    let expected: Vec<&str> = history().iter().map(|h| h.0).collect();
    let sum = weight_sum_e4(&t, &expected).expect("valid input");
    assert_eq!(sum, 120_003);
    let rate = base_rate(20_000_000, sum).expect("valid input");
    assert_eq!(rate, 1_666_625);
    assert_eq!(payment(3_261, rate), 543_486);
    assert_eq!(payment(9_783, rate), 1_630_459);
    assert_eq!(payment(21_522, rate), 3_586_910);
    let total: i64 = expected.iter().map(|c| payment(t.weight_e4(c).expect("DRG in the table"), rate)).sum();
    assert_eq!(total, 19_999_996);
    // Half-up at exactly .5: 5 × 1 / 10,000 → 0.0005 → 0; 5,000 × 1 → 0.5 → 1.
    assert_eq!(payment(5_000, 1), 1);
    assert_eq!(payment(4_999, 1), 0);
}

#[test]
fn cmi_per_hospital() {
    let t = weights(&history(), &WeightParams::default()).expect("valid input");
    let county = ["ES31", "GB25", "GB25", "IC29", "IC29", "IC29"];
    let township = ["ES31", "ES31", "ES31", "ES31", "GB25", "GB25"];
    assert_eq!(cmi(&t, &county).expect("valid input"), 14_566);
    assert_eq!(cmi(&t, &township).expect("valid input"), 5_435);

    let by = cmi_by_hospital(&t, &history()).expect("valid input");
    let got: Vec<(&str, u64, i64, i64)> =
        by.iter().map(|h| (h.facility_id.as_str(), h.cases, h.weight_sum_e4, h.cmi_e4)).collect();
    assert_eq!(got, vec![(COUNTY, 6, 87_393, 14_566), (TOWNSHIP, 6, 32_610, 5_435)]);
}

/// The ES31 stay of 5,000 yuan at the township becomes 30,000 yuan: ES31 Σ = 50,000, mean
/// 10,000; with high 20,000 bp (2×) the 30,000 > 20,000 is dropped; low 3,000 bp: 4,000 ≥ 3,000
/// is kept. Kept: 11 stays, Σ = 179,000 yuan, overall mean 16,272.7272… → 1,627,273 fen.
/// - ES31: 20,000 × 11 / (4 × 179,000) = 0.307262569… → 3,073 (4 kept < 5: low-volume)
/// - GB25: 60,000 × 11 / (4 × 179,000) = 0.921787709… → 9,218
/// - IC29: 99,000 × 11 / (3 × 179,000) = 2.027932960… → 20,279
#[test]
fn trimming_drops_outliers_before_the_means() {
    let mut h = history();
    h[1].2 = yuan(30000);
    let params = WeightParams { min_cases: 5, low_ratio_bp: 3_000, high_ratio_bp: 20_000 };
    let t = weights(&h, &params).expect("valid input");
    assert_eq!((t.total_cases, t.kept_cases), (12, 11));
    assert_eq!(t.total_cost_fen, 17_900_000);
    assert_eq!(t.mean_cost_fen, 1_627_273);
    let es = t.group("ES31").expect("DRG in the table");
    assert_eq!((es.cases, es.kept_cases, es.mean_cost_fen, es.weight_e4, es.low_volume), (5, 4, 500_000, 3_073, true));
    assert_eq!(t.weight_e4("GB25"), Some(9_218));
    assert_eq!(t.weight_e4("IC29"), Some(20_279));

    // Off by default: the outlier counts. ES31 mean 10,000; overall 209,000/12.
    // 50,000 × 12 / (5 × 209,000) = 0.574162679… → 5,742.
    let t = weights(&h, &WeightParams::default()).expect("valid input");
    assert_eq!(t.kept_cases, 12);
    assert_eq!(t.weight_e4("ES31"), Some(5_742));
}

/// One DRG, costs 100, 100, 100, 500 fen: mean 200. 500 = 2.5 × mean, 100 = 0.5 × mean.
#[test]
fn trimming_boundaries_are_kept() {
    let h = [("X", "f", 100), ("X", "f", 100), ("X", "f", 100), ("X", "f", 500)];
    let kept = |low, high| {
        let t =
            weights(&h, &WeightParams { min_cases: 1, low_ratio_bp: low, high_ratio_bp: high }).expect("valid input");
        t.group("X").expect("DRG in the table").kept_cases
    };
    assert_eq!(kept(0, 25_000), 4); // exactly 2.5×: kept
    assert_eq!(kept(0, 24_999), 3); // just below: 500 dropped
    assert_eq!(kept(5_000, 0), 4); // exactly 0.5×: kept
    assert_eq!(kept(5_001, 0), 1); // the three 100s dropped
    // A single DRG always weighs 1.0000.
    let t = weights(&h, &WeightParams { min_cases: 1, low_ratio_bp: 0, high_ratio_bp: 24_999 }).expect("valid input");
    assert_eq!(t.weight_e4("X"), Some(10_000));
}

/// Costs 0 and 100: mean 50; low 5,000 bp drops 0 (< 25), high 15,000 bp drops 100 (> 75).
/// Every case would go, so the DRG is not trimmed.
#[test]
fn trimming_that_would_empty_a_group_is_skipped() {
    let h = [("Y", "f", 0), ("Y", "f", 100), ("Z", "f", 300)];
    let t =
        weights(&h, &WeightParams { min_cases: 5, low_ratio_bp: 5_000, high_ratio_bp: 15_000 }).expect("valid input");
    let y = t.group("Y").expect("DRG in the table");
    assert!(y.trim_skipped);
    assert_eq!(y.kept_cases, 2);
    // Y mean 50, overall 400/3: 100 × 3 / (2 × 400) = 0.375 → 3,750; Z 300 × 3 / 400 = 2.25.
    assert_eq!(y.weight_e4, 3_750);
    assert_eq!(t.weight_e4("Z"), Some(22_500));
}

#[test]
fn bad_input_is_refused_with_field_errors() {
    let empty: [(&str, &str, i64); 0] = [];
    let e = weights(&empty, &WeightParams::default()).expect_err("must be refused");
    assert_eq!(codes(&e), vec![("history".into(), "drg.weights.history.empty".into())]);

    let e = weights(&[("ES31", "f", 100), ("ES31", "f", -1), (" ", "f", 5)], &WeightParams::default())
        .expect_err("must be refused");
    assert_eq!(
        codes(&e),
        vec![
            ("history[1].cost_fen".into(), "drg.weights.cost.negative".into()),
            ("history[2].drg_code".into(), "drg.weights.drg_code.missing".into()),
        ]
    );

    let e = weights(&[("ES31", "f", 0)], &WeightParams::default()).expect_err("must be refused");
    assert_eq!(codes(&e), vec![("history".into(), "drg.weights.history.zero_cost".into())]);

    let e = weights(&history(), &WeightParams { min_cases: 5, low_ratio_bp: 10_001, high_ratio_bp: 9_999 })
        .expect_err("must be refused");
    assert_eq!(
        codes(&e),
        vec![
            ("low_ratio_bp".into(), "drg.weights.low_ratio.range".into()),
            ("high_ratio_bp".into(), "drg.weights.high_ratio.range".into()),
        ]
    );

    let t = weights(&history(), &WeightParams::default()).expect("valid input");
    let e = cmi(&t, &["ES31", "ZZ99", "GB25", "AA11"]).expect_err("must be refused");
    assert_eq!(codes(&e), vec![("stays[1]".into(), "drg.unknown".into()), ("stays[3]".into(), "drg.unknown".into())]);
    let none: [&str; 0] = [];
    assert_eq!(codes(&cmi(&t, &none).expect_err("must be refused")), vec![("stays".into(), "drg.cmi.no_stays".into())]);
    let e = cmi_by_hospital(&t, &[("ES31", COUNTY, 0), ("QQ11", COUNTY, 0)]).expect_err("must be refused");
    assert_eq!(codes(&e), vec![("history[1].drg_code".into(), "drg.unknown".into())]);

    assert_eq!(
        codes(&base_rate(-1, 0).expect_err("must be refused")),
        vec![
            ("total_budget_fen".into(), "drg.base_rate.budget.negative".into()),
            ("weight_sum_e4".into(), "drg.base_rate.weights.not_positive".into()),
        ]
    );
}

proptest! {
    /// Σ kept_cases × weight ÷ kept cases = 1.0000 within rounding: each weight is off by at
    /// most ½ (1/10,000), so the case-weighted sum is within kept ÷ 2 of kept × 10,000.
    #[test]
    fn case_weighted_mean_weight_is_one(
        stays in prop::collection::vec((0u8..6, 0i64..5_000_000), 1..80),
        low in prop::sample::select(vec![0u32, 3_000, 5_000]),
        high in prop::sample::select(vec![0u32, 15_000, 20_000]),
    ) {
        let h: Vec<(String, &str, i64)> = stays.iter().map(|&(g, c)| (format!("G{g}"), "f", c)).collect();
        let t = match weights(&h, &WeightParams { min_cases: 5, low_ratio_bp: low, high_ratio_bp: high }) {
            Ok(t) => t,
            // Every kept cost zero (e.g. all costs 0, or trimming kept only the zeros).
            Err(e) => {
                prop_assert_eq!(codes(&e), vec![("history".to_owned(), "drg.weights.history.zero_cost".to_owned())]);
                return Ok(());
            }
        };
        let kept: i128 = t.groups.iter().map(|g| i128::from(g.kept_cases)).sum();
        prop_assert_eq!(kept, i128::from(t.kept_cases));
        let weighted: i128 = t.groups.iter().map(|g| i128::from(g.kept_cases) * i128::from(g.weight_e4)).sum();
        prop_assert!(2 * (weighted - kept * 10_000).abs() <= kept, "Σ n·w = {weighted}, n = {kept}");
    }
}
