//! DRG weights, base rate, payment and CMI from history (domain.md M9, issue 9 item 2).
//!
//! Numbers (the style of [`crate::dip`]):
//! - money is `i64` fen;
//! - weights (相对权重 RW) and CMI are `i64` in **1/10,000** (`*_e4`): a weight of 0.3261 is
//!   `3_261`, the overall mean is `10_000`;
//! - ratios are basis points (1 bp = 0.01 %, 10,000 bp = 1.0);
//! - intermediate values are exact rationals in `i128`; a result is rounded once, half-up, when
//!   it is stored (a mean for display, a weight, a base rate, a payment, a CMI). No floats.
//!
//! Rules:
//! 1. The history is a list of `(drg_code, facility_id, cost_fen)`: one grouped stay each. The
//!    DRG code is trimmed and compared verbatim (the grouper's [`super::Grouping`] code).
//! 2. **Trimming** (optional, off by default): per DRG, with m = the DRG's mean over all its
//!    cases (exact), a case with cost < `low_ratio_bp` × m is dropped, and one with cost >
//!    `high_ratio_bp` × m is dropped; a cost exactly at a boundary is kept. `0` turns a side
//!    off (the defaults). When on, `low_ratio_bp` must be ≤ 10,000 and `high_ratio_bp` ≥ 10,000.
//!    If trimming would drop every case of a DRG (e.g. two very different costs), that DRG is
//!    not trimmed ([`DrgWeight::trim_skipped`]). One pass, not iterated.
//! 3. DRG mean = Σ cost ÷ kept cases; overall mean = Σ cost ÷ kept cases over all DRGs (the
//!    kept cases only).
//! 4. **Weight** = DRG mean ÷ overall mean, in 1/10,000, half-up. Hence the case-weighted mean
//!    of the exact weights over the kept cases is exactly 1; of the rounded ones, within
//!    ½ × 1/10,000.
//! 5. A DRG with fewer than `min_cases` kept cases (default 5) is flagged low-volume
//!    ([`DrgWeight::low_volume`]); it still gets a weight — the caller decides (e.g. merge or
//!    use the scheme's published weight).
//! 6. **Base rate** (费率, fen per weight point 1.0000) = budget ÷ Σ expected weights;
//!    **payment** of a stay = weight × base rate, rounded to the fen.
//! 7. **CMI** of a hospital = Σ weights of its stays ÷ its stays, using the table's (rounded,
//!    published) weights.

use std::collections::{BTreeMap, HashMap};

use crate::error::{DomainError, Problems};

/// Weights and CMI are stored in 1/10,000.
pub const WEIGHT_E4: i64 = 10_000;
const BP: i128 = 10_000;

/// Parameters of [`weights`]; every one is data.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WeightParams {
    /// A DRG with fewer kept cases is flagged low-volume (default 5).
    pub min_cases: u64,
    /// Drop a case costing less than this share (bp) of its DRG's mean; 0 = off (default).
    pub low_ratio_bp: u32,
    /// Drop a case costing more than this share (bp) of its DRG's mean; 0 = off (default).
    pub high_ratio_bp: u32,
}

impl Default for WeightParams {
    fn default() -> Self {
        Self { min_cases: 5, low_ratio_bp: 0, high_ratio_bp: 0 }
    }
}

impl WeightParams {
    /// Refuse a low ratio above 1× or a high ratio (when on) below 1×.
    pub fn validate(&self) -> Result<(), DomainError> {
        let mut p = Problems::default();
        if i128::from(self.low_ratio_bp) > BP {
            p.add(
                "low_ratio_bp",
                "drg.weights.low_ratio.range",
                format!("the low trimming ratio must be at most 10,000 bp (1×), not {}", self.low_ratio_bp),
            );
        }
        if self.high_ratio_bp != 0 && i128::from(self.high_ratio_bp) < BP {
            p.add(
                "high_ratio_bp",
                "drg.weights.high_ratio.range",
                format!(
                    "the high trimming ratio must be 0 (off) or at least 10,000 bp (1×), not {}",
                    self.high_ratio_bp
                ),
            );
        }
        p.into_result()
    }
}

/// One DRG of the weight table.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DrgWeight {
    pub drg_code: String,
    /// Historical cases, before trimming.
    pub cases: u64,
    /// Cases the mean is computed from (after trimming).
    pub kept_cases: u64,
    /// Σ cost of the kept cases, fen.
    pub cost_fen: i128,
    /// The mean cost of the kept cases, rounded half-up (display; the weight uses the exact mean).
    pub mean_cost_fen: i64,
    /// RW, 1/10,000.
    pub weight_e4: i64,
    /// Fewer than `min_cases` kept cases.
    pub low_volume: bool,
    /// Trimming would have dropped every case, so none was dropped.
    pub trim_skipped: bool,
}

/// The weight table of a history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WeightTable {
    /// Sorted by DRG code.
    pub groups: Vec<DrgWeight>,
    /// All historical cases.
    pub total_cases: u64,
    /// Cases kept after trimming.
    pub kept_cases: u64,
    /// Σ cost of the kept cases, fen.
    pub total_cost_fen: i128,
    /// The overall mean of the kept cases, rounded half-up (display).
    pub mean_cost_fen: i64,
    pub params: WeightParams,
    index: HashMap<String, usize>,
}

impl WeightTable {
    /// The DRG's entry (code trimmed).
    pub fn group(&self, drg_code: &str) -> Option<&DrgWeight> {
        self.index.get(drg_code.trim()).map(|&i| &self.groups[i])
    }

    /// The DRG's weight, 1/10,000.
    pub fn weight_e4(&self, drg_code: &str) -> Option<i64> {
        self.group(drg_code).map(|g| g.weight_e4)
    }
}

/// `round(n ÷ d)` half-up (towards +∞ at the half), `d > 0`.
fn div_round(n: i128, d: i128) -> i128 {
    (2 * n + d).div_euclid(2 * d)
}

fn to_i64(v: i128) -> i64 {
    i64::try_from(v).unwrap_or(if v < 0 { i64::MIN } else { i64::MAX })
}

/// Build the weight table (rules 1–5).
///
/// Refused (`DomainError::Invalid`, every problem listed) for: an empty history, an empty DRG
/// code, a negative cost, invalid parameters, or a history whose kept costs are all zero (no
/// overall mean to divide by). The facility is not used here (see [`cmi_by_hospital`]).
pub fn weights<D: AsRef<str>, F: AsRef<str>>(
    history: &[(D, F, i64)],
    params: &WeightParams,
) -> Result<WeightTable, DomainError> {
    params.validate()?;
    let mut p = Problems::default();
    if history.is_empty() {
        p.add("history", "drg.weights.history.empty", "weights need at least one historical stay");
    }
    for (i, (drg, _, cost)) in history.iter().enumerate() {
        if drg.as_ref().trim().is_empty() {
            p.add(&format!("history[{i}].drg_code"), "drg.weights.drg_code.missing", "a stay needs its DRG code");
        }
        if *cost < 0 {
            p.add(
                &format!("history[{i}].cost_fen"),
                "drg.weights.cost.negative",
                format!("the cost of a stay cannot be negative ({cost} fen)"),
            );
        }
    }
    p.into_result()?;

    let mut by_drg: BTreeMap<&str, Vec<i64>> = BTreeMap::new();
    for (drg, _, cost) in history {
        by_drg.entry(drg.as_ref().trim()).or_default().push(*cost);
    }

    // Trim per DRG; (code, cases, kept, Σ kept cost, skipped).
    let mut kept_groups: Vec<(&str, u64, u64, i128, bool)> = Vec::with_capacity(by_drg.len());
    for (code, costs) in &by_drg {
        let n = costs.len() as i128;
        let sum: i128 = costs.iter().map(|&c| i128::from(c)).sum();
        let low = i128::from(params.low_ratio_bp);
        let high = i128::from(params.high_ratio_bp);
        // cost < low × sum/n  ⇔  cost·n·BP < low·sum (exact).
        let keep = |c: i64| {
            let scaled = i128::from(c) * n * BP;
            let too_low = low != 0 && scaled < low * sum;
            let too_high = high != 0 && scaled > high * sum;
            !too_low && !too_high
        };
        let kept_n = costs.iter().filter(|&&c| keep(c)).count() as u64;
        let (kept, kept_sum, skipped) = if kept_n == 0 {
            (costs.len() as u64, sum, true)
        } else {
            (kept_n, costs.iter().filter(|&&c| keep(c)).map(|&c| i128::from(c)).sum(), false)
        };
        kept_groups.push((code, costs.len() as u64, kept, kept_sum, skipped));
    }

    let kept_cases: u64 = kept_groups.iter().map(|g| g.2).sum();
    let total_cost: i128 = kept_groups.iter().map(|g| g.3).sum();
    if total_cost == 0 {
        return Err(DomainError::field(
            "history",
            "drg.weights.history.zero_cost",
            "every kept historical stay costs nothing: there is no mean cost to weigh against",
        ));
    }
    let big_n = i128::from(kept_cases);

    let mut groups = Vec::with_capacity(kept_groups.len());
    let mut index = HashMap::with_capacity(kept_groups.len());
    for (code, cases, kept, sum, skipped) in kept_groups {
        let n = i128::from(kept);
        // (sum/n) ÷ (total/N) = sum·N / (n·total).
        let weight = div_round(sum * big_n * i128::from(WEIGHT_E4), n * total_cost);
        index.insert(code.to_owned(), groups.len());
        groups.push(DrgWeight {
            drg_code: code.to_owned(),
            cases,
            kept_cases: kept,
            cost_fen: sum,
            mean_cost_fen: to_i64(div_round(sum, n)),
            weight_e4: to_i64(weight),
            low_volume: kept < params.min_cases,
            trim_skipped: skipped,
        });
    }
    Ok(WeightTable {
        groups,
        total_cases: history.len() as u64,
        kept_cases,
        total_cost_fen: total_cost,
        mean_cost_fen: to_i64(div_round(total_cost, big_n)),
        params: params.clone(),
        index,
    })
}

/// Σ weights (1/10,000) of the expected stays, by DRG code; an unknown code is a field error
/// `stays[i]`.
pub fn weight_sum_e4<S: AsRef<str>>(table: &WeightTable, stays: &[S]) -> Result<i64, DomainError> {
    let mut p = Problems::default();
    let mut sum: i128 = 0;
    for (i, s) in stays.iter().enumerate() {
        match table.weight_e4(s.as_ref()) {
            Some(w) => sum += i128::from(w),
            None => p.add(
                &format!("stays[{i}]"),
                "drg.unknown",
                format!("DRG '{}' is not in the weight table", s.as_ref().trim()),
            ),
        }
    }
    p.into_result()?;
    Ok(to_i64(sum))
}

/// Base rate (fen per weight point 1.0000) = budget ÷ (Σ weights_e4 ÷ 10,000), half-up.
///
/// Refused for a negative budget or a weight sum that is not positive.
pub fn base_rate(total_budget_fen: i64, weight_sum_e4: i64) -> Result<i64, DomainError> {
    let mut p = Problems::default();
    if total_budget_fen < 0 {
        p.add(
            "total_budget_fen",
            "drg.base_rate.budget.negative",
            format!("the budget cannot be negative ({total_budget_fen} fen)"),
        );
    }
    if weight_sum_e4 <= 0 {
        p.add(
            "weight_sum_e4",
            "drg.base_rate.weights.not_positive",
            format!("the expected weights must sum to more than zero ({weight_sum_e4})"),
        );
    }
    p.into_result()?;
    Ok(to_i64(div_round(i128::from(total_budget_fen) * i128::from(WEIGHT_E4), i128::from(weight_sum_e4))))
}

/// Payment of one stay, fen = weight × base rate, half-up.
pub fn payment(weight_e4: i64, base_rate_fen: i64) -> i64 {
    to_i64(div_round(i128::from(weight_e4) * i128::from(base_rate_fen), i128::from(WEIGHT_E4)))
}

/// CMI (1/10,000) of one hospital's stays = Σ weights ÷ stays, half-up.
///
/// Refused for no stays or an unknown DRG (every one listed as `stays[i]`).
pub fn cmi<S: AsRef<str>>(table: &WeightTable, stays: &[S]) -> Result<i64, DomainError> {
    if stays.is_empty() {
        return Err(DomainError::field("stays", "drg.cmi.no_stays", "a CMI needs at least one stay"));
    }
    let sum = weight_sum_e4(table, stays)?;
    Ok(to_i64(div_round(i128::from(sum), stays.len() as i128)))
}

/// One hospital's CMI.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct HospitalCmi {
    pub facility_id: String,
    pub cases: u64,
    /// Σ weights, 1/10,000.
    pub weight_sum_e4: i64,
    /// 1/10,000.
    pub cmi_e4: i64,
}

/// CMI of every hospital of a history (same shape as for [`weights`]; the cost is not used),
/// sorted by facility id. Refused for an empty history or an unknown DRG (`history[i].drg_code`).
pub fn cmi_by_hospital<D: AsRef<str>, F: AsRef<str>>(
    table: &WeightTable,
    history: &[(D, F, i64)],
) -> Result<Vec<HospitalCmi>, DomainError> {
    let mut p = Problems::default();
    if history.is_empty() {
        p.add("history", "drg.cmi.no_stays", "a CMI needs at least one stay");
    }
    let mut by: BTreeMap<&str, (u64, i128)> = BTreeMap::new();
    for (i, (drg, facility, _)) in history.iter().enumerate() {
        match table.weight_e4(drg.as_ref()) {
            Some(w) => {
                let e = by.entry(facility.as_ref().trim()).or_default();
                e.0 += 1;
                e.1 += i128::from(w);
            }
            None => p.add(
                &format!("history[{i}].drg_code"),
                "drg.unknown",
                format!("DRG '{}' is not in the weight table", drg.as_ref().trim()),
            ),
        }
    }
    p.into_result()?;
    Ok(by
        .into_iter()
        .map(|(f, (n, sum))| HospitalCmi {
            facility_id: f.to_owned(),
            cases: n,
            weight_sum_e4: to_i64(sum),
            cmi_e4: to_i64(div_round(sum, i128::from(n))),
        })
        .collect())
}
