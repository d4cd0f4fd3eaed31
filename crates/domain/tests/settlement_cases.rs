//! The settlement case table (issue 6): every case of `settlement_cases.toml` — expected values
//! computed by hand from the rules (`/work/notes/settlement-rules.md`, domain.md M7/M8) — run
//! through `adjudicate` with the default policy set. All mismatches are reported at once.

use serde::Deserialize;
use tiercare_domain::settlement::{Accumulators, Claim, PolicySet, adjudicate};

const CASES: &str = include_str!("settlement_cases.toml");
const POLICIES: &str = include_str!("../data/policy-default.toml");

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Table {
    case: Vec<Case>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    name: String,
    claim: Claim,
    #[serde(default)]
    expect: Option<Expected>,
    #[serde(default)]
    error: Option<String>,
    /// Explanation step codes that must appear (as named in settlement-rules.md).
    #[serde(default)]
    steps_include: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Expected {
    total_fen: i64,
    fund_fen: i64,
    patient_fen: i64,
    self_pay_fen: i64,
    class_b_share_fen: i64,
    deductible_fen: i64,
    coinsurance_fen: i64,
    above_ceiling_fen: i64,
    rate_bp: u32,
    after: Accumulators,
}

/// Does the debug rendering of an error carry `code` as a whole token?
fn carries_code(rendered: &str, code: &str) -> bool {
    rendered.match_indices(code).any(|(i, _)| {
        let next = rendered[i + code.len()..].chars().next();
        let prev = rendered[..i].chars().next_back();
        let is_word = |c: char| c.is_alphanumeric() || c == '_' || c == '.';
        !next.is_some_and(is_word) && !prev.is_some_and(is_word)
    })
}

#[test]
fn settlement_case_table() {
    let table: Table = toml::from_str(CASES).expect("settlement_cases.toml parses");
    let policies: PolicySet = toml::from_str(POLICIES).expect("policy-default.toml parses");
    assert!(table.case.len() >= 40, "the table has {} cases, want at least 40", table.case.len());

    let mut failures: Vec<String> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for case in &table.case {
        let name = &case.name;
        if !seen.insert(name.clone()) {
            failures.push(format!("{name}: duplicate case name"));
        }
        // The table itself must be consistent: exactly one of expect / error, parts add up.
        match (&case.expect, &case.error) {
            (Some(e), None) => {
                let parts =
                    e.self_pay_fen + e.class_b_share_fen + e.deductible_fen + e.coinsurance_fen + e.above_ceiling_fen;
                if e.patient_fen != e.total_fen - e.fund_fen || e.patient_fen != parts {
                    failures.push(format!(
                        "{name}: TABLE ERROR: patient {} ≠ total − fund {} or ≠ parts {parts}",
                        e.patient_fen,
                        e.total_fen - e.fund_fen
                    ));
                }
            }
            (None, Some(_)) => {}
            _ => {
                failures.push(format!("{name}: TABLE ERROR: give exactly one of expect / error"));
                continue;
            }
        }

        let result = adjudicate(&policies, &case.claim);
        match (&case.expect, &case.error, result) {
            (Some(e), _, Ok(got)) => {
                let mut field = |f: &str, want: i64, have: i64| {
                    if want != have {
                        failures.push(format!("{name}: {f}: expected {want}, got {have}"));
                    }
                };
                field("total_fen", e.total_fen, got.total_fen);
                field("fund_fen", e.fund_fen, got.fund_fen);
                field("patient_fen", e.patient_fen, got.patient_fen);
                field("self_pay_fen", e.self_pay_fen, got.self_pay_fen);
                field("class_b_share_fen", e.class_b_share_fen, got.class_b_share_fen);
                field("deductible_fen", e.deductible_fen, got.deductible_fen);
                field("coinsurance_fen", e.coinsurance_fen, got.coinsurance_fen);
                field("above_ceiling_fen", e.above_ceiling_fen, got.above_ceiling_fen);
                field("rate_bp", i64::from(e.rate_bp), i64::from(got.rate_bp));
                field(
                    "after.inpatient_fund_paid_fen",
                    e.after.inpatient_fund_paid_fen,
                    got.after.inpatient_fund_paid_fen,
                );
                field(
                    "after.outpatient_fund_paid_fen",
                    e.after.outpatient_fund_paid_fen,
                    got.after.outpatient_fund_paid_fen,
                );
                field(
                    "after.stay_deductible_paid_fen",
                    e.after.stay_deductible_paid_fen,
                    got.after.stay_deductible_paid_fen,
                );
                // The engine's own split must add up whatever the table says.
                let parts = got.self_pay_fen
                    + got.class_b_share_fen
                    + got.deductible_fen
                    + got.coinsurance_fen
                    + got.above_ceiling_fen;
                if got.patient_fen != got.total_fen - got.fund_fen || got.patient_fen != parts {
                    failures.push(format!(
                        "{name}: engine split does not add up: patient {}, total − fund {}, parts {parts}",
                        got.patient_fen,
                        got.total_fen - got.fund_fen
                    ));
                }
                for code in &case.steps_include {
                    if !got.explanation.iter().any(|s| &s.code == code) {
                        let codes: Vec<&str> = got.explanation.iter().map(|s| s.code.as_str()).collect();
                        failures.push(format!("{name}: explanation: expected a step {code:?}, got steps {codes:?}"));
                    }
                }
            }
            (Some(_), _, Err(err)) => {
                failures.push(format!("{name}: expected a split, got error {err:?}"));
            }
            (None, Some(code), Ok(got)) => {
                failures.push(format!(
                    "{name}: expected error {code}, got a split (fund {}, patient {})",
                    got.fund_fen, got.patient_fen
                ));
            }
            (None, Some(code), Err(err)) => {
                let rendered = format!("{err:?}");
                if !carries_code(&rendered, code) {
                    failures.push(format!("{name}: error: expected code {code}, got {rendered}"));
                }
            }
            (None, None, _) => {}
        }
    }

    assert!(
        failures.is_empty(),
        "{} mismatch(es) in {} cases:\n{}",
        failures.len(),
        table.case.len(),
        failures.join("\n")
    );
}
