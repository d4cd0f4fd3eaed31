//! Hand-computed cases for the indicator definitions, periods and colours (domain.md §4 M14).

use super::*;

fn defs() -> Definitions {
    Definitions::parse(DEFAULT_TOML).expect("the default definitions are valid")
}

fn cell(tier: Tier, in_scope: bool, resident: bool, month: &str, values: &[(Measure, i64)]) -> Cell {
    let mut counters = Counters::default();
    for (m, v) in values {
        counters.add(*m, *v);
    }
    Cell { tier, in_scope, resident, month: Month::parse(month).expect("month"), counters }
}

fn period(from: &str, to: &str) -> Period {
    Period::parse(Some(from), Some(to)).expect("period")
}

fn codes(e: DomainError) -> Vec<String> {
    match e {
        DomainError::Invalid(v) => v.into_iter().map(|f| format!("{} {}", f.field, f.code)).collect(),
        DomainError::Conflict(m) => vec![m],
    }
}

#[test]
fn the_default_set_has_the_core_indicators_of_m14() {
    let d = defs();
    for id in [
        "in_county_visit_rate",
        "in_county_inpatient_share",
        "grassroots_visit_share",
        "down_referrals",
        "down_up_ratio",
        "fund_in_county_share",
        "grassroots_fund_share",
        "results_reused",
        "results_saved",
        "cost_per_visit",
        "cost_per_visit_growth",
        "cost_per_stay",
        "cost_per_stay_growth",
        "drug_share",
    ] {
        assert!(d.get(id).is_some(), "{id} missing");
    }
    // M14: in-area visit rate ≥ 90%, grassroots share ≥ 65%
    assert_eq!(d.get("in_county_visit_rate").map(|x| x.target), Some(Target::AtLeast { green: 0.90, amber: 0.85 }));
    assert!(
        matches!(d.get("grassroots_visit_share").map(|x| x.target), Some(Target::AtLeast { green, .. }) if green == 0.65)
    );
}

#[test]
fn bad_definitions_are_refused_with_their_path() {
    let bad = r#"
[[indicator]]
id = "x"
zh = "甲"
en = "x"
kind = "ratio"
numerator = { measure = "operations", facility = "in_county" }
period = "week"
direction = "up"
unit = "percent"
target = { at_least = 0.9, amber_at_least = 0.8 }
facility_level = true
source = "M14"

[[indicator]]
id = "x"
zh = "乙"
en = "y"
kind = "count"
numerator = { measure = "visits", patient = "visitor", tiers = ["hamlet"] }
denominator = { measure = "visits" }
period = "month"
direction = "lower"
unit = "count"
target = { at_least = 0.9, amber_at_least = 0.8 }
facility_level = true
source = ""
"#;
    let got = codes(Definitions::parse(bad).expect_err("invalid"));
    for want in [
        "indicator[0].numerator.measure indicator.measure",
        "indicator[0].period indicator.period",
        "indicator[0].direction indicator.direction",
        "indicator[0].denominator indicator.denominator",
        "indicator[1].id indicator.duplicate",
        "indicator[1].numerator.patient indicator.patient",
        "indicator[1].numerator.tiers indicator.tier",
        "indicator[1].denominator indicator.denominator",
        "indicator[1].target indicator.target_direction",
        "indicator[1].source indicator.required",
    ] {
        assert!(got.contains(&want.to_string()), "missing {want} in {got:?}");
    }
    // an unknown key is a TOML error, not ignored
    assert!(Definitions::parse("[[indicator]]\nid = \"a\"\nsource_rule = 1\n").is_err());
    // an inverted amber band is refused
    let inverted = DEFAULT_TOML.replacen("amber_at_least = 0.85", "amber_at_least = 0.95", 1);
    assert!(codes(Definitions::parse(&inverted).expect_err("band")).iter().any(|c| c.ends_with("indicator.target")));
}

#[test]
fn months_are_counted_in_china_time() {
    // 2025-01-31T16:00:00Z is 2025-02-01 00:00 in Beijing: February
    let feb_start_utc = 1_738_339_200_000; // 2025-01-31T16:00:00Z
    assert_eq!(Month::of_millis(feb_start_utc).to_string(), "2025-02");
    // one millisecond earlier is 2025-01-31 23:59:59.999 in Beijing: January
    assert_eq!(Month::of_millis(feb_start_utc - 1).to_string(), "2025-01");
    // New Year: 2024-12-31T16:00:00Z = 2025-01-01 00:00 +08
    assert_eq!(Month::of_millis(1_735_660_800_000).to_string(), "2025-01");
    assert_eq!(Month::of_millis(1_735_660_800_000 - 1).to_string(), "2024-12");
    assert_eq!(Month::parse("2025-12").map(|m| m.plus(1).to_string()), Some("2026-01".into()));
    assert_eq!(Month::parse("2025-01").map(|m| m.plus(-12).to_string()), Some("2024-01".into()));
}

#[test]
fn periods_must_be_closed_ordered_and_bounded() {
    assert_eq!(period("2025-01", "2025-12").len(), 12);
    let e = |f: Option<&str>, t: Option<&str>| codes(Period::parse(f, t).expect_err("bad"));
    assert_eq!(e(Some("2025-03"), Some("2025-01")), vec!["to period.inverted"]);
    assert_eq!(e(Some("2025-03"), None), vec!["to period.open"]);
    assert_eq!(e(None, None), vec!["from period.open", "to period.open"]);
    assert_eq!(e(Some("2025-13"), Some("2025-1")), vec!["from period.month", "to period.month"]);
    assert_eq!(e(Some("2000-01"), Some("2010-01")), vec!["to period.too_long"]);
    assert!(Period::parse(Some("2000-01"), Some("2009-12")).is_ok());
}

/// A small county, one month (2025-03), written as cells:
/// residents at the county hospital 60 visits, at township A 100, at the village 40,
/// at a city hospital outside the county 25; non-residents at township A 10.
fn small_county() -> Vec<Cell> {
    use Measure::*;
    vec![
        cell(
            Tier::County,
            true,
            true,
            "2025-03",
            &[
                (Visits, 60),
                (VisitCostFen, 60 * 20_000),
                (Stays, 8),
                (FundFen, 900_000),
                (SettledFen, 1_500_000),
                (DrugFen, 450_000),
                (UpReferrals, 2),
                (DownReferrals, 3),
            ],
        ),
        cell(
            Tier::Township,
            true,
            true,
            "2025-03",
            &[
                (Visits, 100),
                (VisitCostFen, 100 * 8_000),
                (Stays, 4),
                (FundFen, 300_000),
                (SettledFen, 400_000),
                (DrugFen, 160_000),
                (UpReferrals, 6),
            ],
        ),
        cell(
            Tier::Village,
            true,
            true,
            "2025-03",
            &[
                (Visits, 40),
                (VisitCostFen, 40 * 3_000),
                (FundFen, 50_000),
                (SettledFen, 100_000),
                (DrugFen, 60_000),
                (UpReferrals, 1),
            ],
        ),
        cell(
            Tier::City,
            false,
            true,
            "2025-03",
            &[(Visits, 25), (Stays, 4), (FundFen, 750_000), (SettledFen, 1_000_000)],
        ),
        cell(Tier::Township, true, false, "2025-03", &[(Visits, 10), (VisitCostFen, 10 * 8_000)]),
    ]
}

fn value(id: &str, cells: &[Cell], p: Period) -> Value {
    compute(defs().get(id).expect("defined"), cells, p)
}

#[test]
fn each_indicator_by_hand_on_the_small_county() {
    let c = small_county();
    let p = period("2025-03", "2025-03");
    // in-area visit rate: resident visits in county 60 + 100 + 40 = 200; all resident visits 200 + 25 = 225
    let v = value("in_county_visit_rate", &c, p);
    assert_eq!((v.numerator, v.denominator), (200, Some(225)));
    // inpatient share: 8 + 4 = 12 of 12 + 4 = 16 → 0.75
    let v = value("in_county_inpatient_share", &c, p);
    assert_eq!((v.numerator, v.denominator, v.value), (12, Some(16), Some(0.75)));
    // grassroots share: township 100 + 10 (any patient) + village 40 = 150 of all in county 60 + 150 = 210
    let v = value("grassroots_visit_share", &c, p);
    assert_eq!((v.numerator, v.denominator), (150, Some(210)));
    // down-referrals 3; up-referrals 2 + 6 + 1 = 9 → 3/9
    assert_eq!(value("down_referrals", &c, p).numerator, 3);
    assert_eq!(value("down_up_ratio", &c, p).denominator, Some(9));
    // fund in county for residents: 900,000 + 300,000 + 50,000 = 1,250,000 of 1,250,000 + 750,000 = 2,000,000 → 0.625
    let v = value("fund_in_county_share", &c, p);
    assert_eq!((v.numerator, v.denominator, v.value), (1_250_000, Some(2_000_000), Some(0.625)));
    // grassroots fund: 300,000 + 50,000 = 350,000 of 1,250,000 → 0.28
    let v = value("grassroots_fund_share", &c, p);
    assert_eq!((v.numerator, v.denominator, v.value), (350_000, Some(1_250_000), Some(0.28)));
    // cost per visit: (1,200,000 + 800,000 + 120,000 + 80,000) = 2,200,000 fen ÷ 210 visits
    let v = value("cost_per_visit", &c, p);
    assert_eq!((v.numerator, v.denominator), (2_200_000, Some(210)));
    // drug share: 450,000 + 160,000 + 60,000 = 670,000 ÷ (1,500,000 + 400,000 + 100,000) = 2,000,000 → 0.335
    let v = value("drug_share", &c, p);
    assert_eq!((v.numerator, v.denominator, v.value), (670_000, Some(2_000_000), Some(0.335)));
}

#[test]
fn growth_compares_with_the_same_months_a_year_earlier() {
    use Measure::*;
    // 2024-03: 100 visits for 1,000,000 fen (10,000 a visit); 2025-03: 50 for 550,000 (11,000): +10%
    let c = vec![
        cell(Tier::County, true, true, "2024-03", &[(Visits, 100), (VisitCostFen, 1_000_000)]),
        cell(Tier::County, true, true, "2025-03", &[(Visits, 50), (VisitCostFen, 550_000)]),
    ];
    let d = defs();
    let g = d.get("cost_per_visit_growth").expect("defined");
    let r = read(g, &c, period("2025-03", "2025-03"));
    let v = r.current.value.expect("value");
    assert!((v - 0.10).abs() < 1e-12, "{v}");
    // 10% is above the amber band (8%): red
    assert_eq!(r.rag, Rag::Red);
    // no earlier year: no value, no colour
    assert_eq!(read(g, &c, period("2024-03", "2024-03")).rag, Rag::None);
}

#[test]
fn colours_follow_the_targets() {
    let d = defs();
    let rate = d.get("in_county_visit_rate").expect("defined");
    assert_eq!(colour(rate, Some(0.90), None), Rag::Green);
    assert_eq!(colour(rate, Some(0.8999), None), Rag::Amber);
    assert_eq!(colour(rate, Some(0.85), None), Rag::Amber);
    assert_eq!(colour(rate, Some(0.8499), None), Rag::Red);
    assert_eq!(colour(rate, None, None), Rag::None);
    let drug = d.get("drug_share").expect("defined"); // falling is better
    assert_eq!(colour(drug, Some(0.30), Some(0.32)), Rag::Green);
    assert_eq!(colour(drug, Some(0.33), Some(0.32)), Rag::Red);
    assert_eq!(colour(drug, Some(0.32), Some(0.32)), Rag::Amber);
    assert_eq!(colour(drug, Some(0.32), None), Rag::None);
}

#[test]
fn drug_codes_are_western_and_chinese_patent_medicines() {
    assert!(is_drug_code("XJ01CAA040A001010100000"));
    assert!(is_drug_code("ZA01AAA0001010100000000"));
    assert!(!is_drug_code("C01020304050607080900"));
    assert!(!is_drug_code("001202000010000"));
}

proptest::proptest! {
    /// A month's cells summed one by one or as one cell give the same value (the counters add).
    #[test]
    fn splitting_cells_does_not_change_a_value(a in 0i64..1000, b in 0i64..1000, c in 1i64..1000) {
        use Measure::*;
        let p = period("2025-03", "2025-03");
        let split = vec![
            cell(Tier::Township, true, true, "2025-03", &[(Visits, a)]),
            cell(Tier::Township, true, true, "2025-03", &[(Visits, b)]),
            cell(Tier::City, false, true, "2025-03", &[(Visits, c)]),
        ];
        let joined = vec![
            cell(Tier::Township, true, true, "2025-03", &[(Visits, a + b)]),
            cell(Tier::City, false, true, "2025-03", &[(Visits, c)]),
        ];
        let d = defs();
        let rate = d.get("in_county_visit_rate").expect("defined");
        proptest::prop_assert_eq!(compute(rate, &split, p), compute(rate, &joined, p));
        proptest::prop_assert_eq!(compute(rate, &split, p).denominator, Some(a + b + c));
    }
}

#[test]
fn areas_are_code_prefixes() {
    assert_eq!(area_prefix("511621"), "511621");
    assert_eq!(area_prefix("511600"), "5116");
    assert_eq!(area_prefix("510000"), "51");
}
