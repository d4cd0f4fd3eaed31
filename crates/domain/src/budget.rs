//! The community's global budget (医共体总额付费, 结余留用; domain.md M9, issue 9 item 3).
//!
//! The insurance fund pays a community a yearly total for its insured residents' care; what
//! the community saves, it keeps (the retained share, default all of it), and money the fund
//! paid to hospitals outside the county for those residents counts against the community.
//! This module is the arithmetic of one year: spend by month against the budget, the
//! projection to year-end, and the savings (or overspend) and the community's share of it.
//!
//! Money is integer fen, shares in basis points; every division is rounded once, half-up.
//! Two projections: the run rate (spend so far ÷ months elapsed × 12) and the seasonal one
//! (spend so far scaled by last year's share of the same months), because care is seasonal
//! (winter respiratory peaks) and a run rate taken in March overstates the year.

use crate::DomainError;
use crate::error::Problems;

const BP: i128 = 10_000;

/// The terms of one community-year, as data.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BudgetTerms {
    pub year: i32,
    /// The fund's total for the year, fen (> 0).
    pub budget_fen: i64,
    /// Share of the savings the community keeps, bp (default 10,000: "what it saves, it keeps").
    #[serde(default = "full_share")]
    pub savings_retained_bp: u32,
    /// Share of an overspend the community bears, bp (default 10,000; many regions share a
    /// "reasonable" overspend with the fund: set e.g. 5,000).
    #[serde(default = "full_share")]
    pub overspend_borne_bp: u32,
    /// A closed year (settled with the fund) accepts no more changes.
    #[serde(default)]
    pub closed: bool,
}

fn full_share() -> u32 {
    10_000
}

/// The fund's spend for the community's insured residents in one month, fen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MonthSpend {
    /// 1–12.
    pub month: u8,
    /// Paid to the community's own facilities (and other facilities in the county).
    pub in_county_fen: i64,
    /// Paid to hospitals outside the county for its residents (counts against the budget).
    pub out_of_county_fen: i64,
}

/// How to project the year-end spend.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Projection {
    /// Spend so far ÷ months elapsed × 12.
    RunRate,
    /// Spend so far × (last year's total ÷ last year's spend in the same months). `last_year`
    /// holds the 12 monthly totals of the previous year, fen.
    Seasonal { last_year: [i64; 12] },
}

/// One month of the burn-down.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MonthLine {
    pub month: u8,
    pub in_county_fen: i64,
    pub out_of_county_fen: i64,
    pub total_fen: i64,
    /// Spent from January to this month.
    pub cumulative_fen: i64,
    /// Budget − cumulative (negative once overspent).
    pub remaining_fen: i64,
}

/// Where a community stands in its year.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BudgetPosition {
    pub year: i32,
    pub budget_fen: i64,
    /// Months 1..=`through_month`, each present (a month without spend is 0).
    pub months: Vec<MonthLine>,
    pub through_month: u8,
    pub spent_fen: i64,
    pub out_of_county_fen: i64,
    /// Out-of-county share of the spend, bp (0 when nothing was spent).
    pub out_of_county_share_bp: i64,
    /// Spent ÷ budget, bp.
    pub burn_bp: i64,
    /// The expected burn at this point on a straight line (months ÷ 12), bp: a burn above it
    /// is running ahead of the budget.
    pub expected_burn_bp: i64,
    pub projected_fen: i64,
    /// Budget − projected: savings when positive, overspend when negative.
    pub projected_savings_fen: i64,
    /// The community's share: savings × retained share, or −(overspend × borne share).
    pub community_share_fen: i64,
}

/// `round(n ÷ d)` half-up away from zero, `d > 0`.
fn div_round(n: i128, d: i128) -> i128 {
    if n >= 0 { (2 * n + d) / (2 * d) } else { -((-2 * n + d) / (2 * d)) }
}

fn narrow(v: i128) -> i64 {
    i64::try_from(v).unwrap_or(if v < 0 { i64::MIN } else { i64::MAX })
}

impl BudgetTerms {
    /// The terms themselves: a positive budget, shares within 0–100 %.
    pub fn validate(&self) -> Result<(), DomainError> {
        let mut p = Problems::default();
        if !(2000..=2100).contains(&self.year) {
            p.add("year", "budget.year.range", format!("{} is not a budget year (2000–2100)", self.year));
        }
        if self.budget_fen <= 0 {
            p.add("budget_fen", "budget.amount.not_positive", "the budget must be a positive amount");
        }
        for (field, v) in
            [("savings_retained_bp", self.savings_retained_bp), ("overspend_borne_bp", self.overspend_borne_bp)]
        {
            if v > 10_000 {
                p.add(field, "budget.share.range", format!("a share is 0–10,000 bp (0–100 %), not {v}"));
            }
        }
        p.into_result()
    }

    /// Whether `new` may replace these terms: a closed year is never changed, and the year
    /// itself is not changed (a new year is new terms).
    pub fn check_change(&self, new: &BudgetTerms) -> Result<(), DomainError> {
        let mut p = Problems::default();
        if self.closed {
            p.add("year", "budget.year.closed", format!("the budget of {} is closed and cannot be changed", self.year));
        }
        if new.year != self.year {
            p.add(
                "year",
                "budget.year.changed",
                "the year of a budget cannot be changed; create the new year's budget",
            );
        }
        p.into_result()?;
        new.validate()
    }
}

/// The position of the year after `through_month` (1–12) months, from the months' spend.
///
/// Refused: invalid terms, `through_month` outside 1–12, a month outside 1–12, a month given
/// twice, a month after `through_month`, a negative amount, a seasonal projection whose
/// last year is negative or has no spend in the elapsed months.
pub fn position(
    terms: &BudgetTerms,
    spend: &[MonthSpend],
    through_month: u8,
    projection: &Projection,
) -> Result<BudgetPosition, DomainError> {
    let mut p = Problems::default();
    if let Err(DomainError::Invalid(e)) = terms.validate() {
        e.into_iter().for_each(|e| p.push(e));
    }
    if !(1..=12).contains(&through_month) {
        p.add("through_month", "budget.month.range", format!("the reporting month is 1–12, not {through_month}"));
    }
    let mut seen = [false; 13];
    for (i, s) in spend.iter().enumerate() {
        let field = |f: &str| format!("spend[{i}].{f}");
        if !(1..=12).contains(&s.month) {
            p.add(&field("month"), "budget.month.range", format!("a month is 1–12, not {}", s.month));
            continue;
        }
        if seen[usize::from(s.month)] {
            p.add(&field("month"), "budget.month.duplicate", format!("month {} is given twice", s.month));
        }
        seen[usize::from(s.month)] = true;
        if s.month > through_month {
            p.add(
                &field("month"),
                "budget.month.after_report",
                format!("month {} is after the reporting month {through_month}", s.month),
            );
        }
        if s.in_county_fen < 0 || s.out_of_county_fen < 0 {
            p.add(&field("in_county_fen"), "budget.amount.negative", "spend cannot be negative");
        }
    }
    if let Projection::Seasonal { last_year } = projection {
        if last_year.iter().any(|v| *v < 0) {
            p.add("projection.last_year", "budget.amount.negative", "last year's spend cannot be negative");
        } else if (1..=12).contains(&through_month) && last_year[..usize::from(through_month)].iter().sum::<i64>() == 0
        {
            p.add(
                "projection.last_year",
                "budget.seasonal.no_base",
                "last year had no spend in these months; use the run rate",
            );
        }
    }
    p.into_result()?;

    let budget = terms.budget_fen;
    let mut months = Vec::with_capacity(usize::from(through_month));
    let (mut cumulative, mut out) = (0i64, 0i64);
    for m in 1..=through_month {
        let s = spend.iter().find(|s| s.month == m);
        let (inc, outc) = s.map_or((0, 0), |s| (s.in_county_fen, s.out_of_county_fen));
        let total = inc.saturating_add(outc);
        cumulative = cumulative.saturating_add(total);
        out = out.saturating_add(outc);
        months.push(MonthLine {
            month: m,
            in_county_fen: inc,
            out_of_county_fen: outc,
            total_fen: total,
            cumulative_fen: cumulative,
            remaining_fen: budget - cumulative,
        });
    }
    let spent = i128::from(cumulative);
    let projected = match projection {
        Projection::RunRate => div_round(spent * 12, i128::from(through_month)),
        Projection::Seasonal { last_year } => {
            let whole: i128 = last_year.iter().map(|v| i128::from(*v)).sum();
            let part: i128 = last_year[..usize::from(through_month)].iter().map(|v| i128::from(*v)).sum();
            div_round(spent * whole, part)
        }
    };
    let savings = i128::from(budget) - projected;
    let share = if savings >= 0 {
        div_round(savings * i128::from(terms.savings_retained_bp), BP)
    } else {
        div_round(savings * i128::from(terms.overspend_borne_bp), BP)
    };
    Ok(BudgetPosition {
        year: terms.year,
        budget_fen: budget,
        months,
        through_month,
        spent_fen: cumulative,
        out_of_county_fen: out,
        out_of_county_share_bp: if cumulative == 0 { 0 } else { narrow(div_round(i128::from(out) * BP, spent)) },
        burn_bp: narrow(div_round(spent * BP, i128::from(budget))),
        expected_burn_bp: narrow(div_round(i128::from(through_month) * BP, 12)),
        projected_fen: narrow(projected),
        projected_savings_fen: narrow(savings),
        community_share_fen: narrow(share),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn terms(budget_yuan: i64) -> BudgetTerms {
        BudgetTerms {
            year: 2026,
            budget_fen: budget_yuan * 100,
            savings_retained_bp: 10_000,
            overspend_borne_bp: 10_000,
            closed: false,
        }
    }

    fn spend(month: u8, in_yuan: i64, out_yuan: i64) -> MonthSpend {
        MonthSpend { month, in_county_fen: in_yuan * 100, out_of_county_fen: out_yuan * 100 }
    }

    fn codes(e: DomainError) -> Vec<String> {
        match e {
            DomainError::Invalid(v) => v.into_iter().map(|e| e.code).collect(),
            DomainError::Conflict(m) => vec![m],
        }
    }

    // Budget 120,000,000 yuan. Jan 9,000,000 + 1,000,000 out; Feb 8,000,000 + 1,000,000; Mar
    // 9,500,000 + 1,500,000. Spent 30,000,000 yuan in 3 months (out of county 3,500,000 =
    // 11.6667 % → 1,167 bp). Run rate 30,000,000 ÷ 3 × 12 = 120,000,000: savings 0.
    // Burn 30/120 = 2,500 bp, expected 3/12 = 2,500 bp.
    #[test]
    fn run_rate_on_budget() {
        let s = [spend(1, 9_000_000, 1_000_000), spend(2, 8_000_000, 1_000_000), spend(3, 9_500_000, 1_500_000)];
        let p = position(&terms(120_000_000), &s, 3, &Projection::RunRate).expect("position");
        assert_eq!(p.spent_fen, 3_000_000_000);
        assert_eq!(p.out_of_county_fen, 350_000_000);
        assert_eq!(p.out_of_county_share_bp, 1_167);
        assert_eq!(p.burn_bp, 2_500);
        assert_eq!(p.expected_burn_bp, 2_500);
        assert_eq!(p.projected_fen, 12_000_000_000);
        assert_eq!(p.projected_savings_fen, 0);
        assert_eq!(p.community_share_fen, 0);
        let cum: Vec<i64> = p.months.iter().map(|m| m.cumulative_fen).collect();
        assert_eq!(cum, vec![1_000_000_000, 1_900_000_000, 3_000_000_000]);
        assert_eq!(p.months[2].remaining_fen, 9_000_000_000);
    }

    // Seasonal: last year's months (million yuan) 12, 11, 10, 9, 9, 9, 9, 9, 9, 10, 11, 12 =
    // 120; January–March 33. This year's January–March 30 → projected 30 × 120 ÷ 33 =
    // 109.090909… million = 109,090,909.0909… yuan → 10,909,090,909.09 fen → 10,909,090,909
    // fen. Savings 12,000,000,000 − 10,909,090,909 = 1,090,909,091 fen; retained 60 % =
    // 654,545,454.6 → 654,545,455 fen (half-up).
    #[test]
    fn seasonal_projection_and_retained_share() {
        let m = 1_000_000 * 100;
        let last = [12 * m, 11 * m, 10 * m, 9 * m, 9 * m, 9 * m, 9 * m, 9 * m, 9 * m, 10 * m, 11 * m, 12 * m];
        let mut t = terms(120_000_000);
        t.savings_retained_bp = 6_000;
        let s = [spend(1, 10_000_000, 0), spend(2, 10_000_000, 0), spend(3, 10_000_000, 0)];
        let p = position(&t, &s, 3, &Projection::Seasonal { last_year: last }).expect("position");
        assert_eq!(p.projected_fen, 10_909_090_909);
        assert_eq!(p.projected_savings_fen, 1_090_909_091);
        assert_eq!(p.community_share_fen, 654_545_455);
        assert_eq!(p.out_of_county_share_bp, 0);
    }

    // Overspend: budget 100 yuan, 5 months spent 50 yuan (month 4 has none) → run rate
    // 50 × 12 ÷ 5 = 120 yuan; overspend 20 yuan = 2,000 fen; borne 50 % → −1,000 fen.
    // A month without spend shows 0 and carries the cumulative.
    #[test]
    fn overspend_shared_and_missing_month_is_zero() {
        let mut t = terms(100);
        t.overspend_borne_bp = 5_000;
        let s = [spend(1, 10, 0), spend(2, 10, 0), spend(3, 10, 0), spend(5, 15, 5)];
        let p = position(&t, &s, 5, &Projection::RunRate).expect("position");
        assert_eq!(p.projected_fen, 12_000);
        assert_eq!(p.projected_savings_fen, -2_000);
        assert_eq!(p.community_share_fen, -1_000);
        assert_eq!(p.months[3].total_fen, 0);
        assert_eq!(p.months[3].cumulative_fen, 3_000);
        assert_eq!(p.months[4].remaining_fen, 10_000 - 5_000);
        // burn 50 ÷ 100 = 5,000 bp; expected 5/12 = 4,166.67 → 4,167 bp
        assert_eq!(p.burn_bp, 5_000);
        assert_eq!(p.expected_burn_bp, 4_167);
    }

    // Rounding half-up of a negative share: overspend 1 fen × 50 % = −0.5 → −1 fen (away from 0).
    #[test]
    fn half_up_away_from_zero() {
        let mut t = terms(1);
        t.budget_fen = 11;
        t.overspend_borne_bp = 5_000;
        let p =
            position(&t, &[MonthSpend { month: 1, in_county_fen: 1, out_of_county_fen: 0 }], 1, &Projection::RunRate)
                .expect("position");
        assert_eq!(p.projected_fen, 12);
        assert_eq!(p.projected_savings_fen, -1);
        assert_eq!(p.community_share_fen, -1);
    }

    #[test]
    fn refusals_name_the_field() {
        let t = terms(100);
        let e = position(&t, &[spend(13, 1, 0)], 3, &Projection::RunRate).expect_err("refused");
        assert_eq!(codes(e), vec!["budget.month.range"]);
        let e = position(&t, &[spend(2, 1, 0), spend(2, 1, 0)], 3, &Projection::RunRate).expect_err("refused");
        assert_eq!(codes(e), vec!["budget.month.duplicate"]);
        let e = position(&t, &[spend(4, 1, 0)], 3, &Projection::RunRate).expect_err("refused");
        assert_eq!(codes(e), vec!["budget.month.after_report"]);
        let e =
            position(&t, &[MonthSpend { month: 1, in_county_fen: -1, out_of_county_fen: 0 }], 1, &Projection::RunRate)
                .expect_err("refused");
        assert_eq!(codes(e), vec!["budget.amount.negative"]);
        let e = position(&t, &[], 0, &Projection::RunRate).expect_err("refused");
        assert_eq!(codes(e), vec!["budget.month.range"]);
        let mut last = [0; 12];
        last[11] = 5;
        let e = position(&t, &[], 2, &Projection::Seasonal { last_year: last }).expect_err("refused");
        assert_eq!(codes(e), vec!["budget.seasonal.no_base"]);
        let mut bad = terms(0);
        bad.savings_retained_bp = 10_001;
        let e = position(&bad, &[], 1, &Projection::RunRate).expect_err("refused");
        assert_eq!(codes(e), vec!["budget.amount.not_positive", "budget.share.range"]);
    }

    #[test]
    fn a_closed_year_is_not_changed() {
        let mut closed = terms(100);
        closed.closed = true;
        let e = closed.check_change(&terms(200)).expect_err("refused");
        assert_eq!(codes(e), vec!["budget.year.closed"]);
        let mut other_year = terms(100);
        other_year.year = 2027;
        assert_eq!(codes(terms(100).check_change(&other_year).expect_err("refused")), vec!["budget.year.changed"]);
        assert!(terms(100).check_change(&terms(150)).is_ok());
    }
}
