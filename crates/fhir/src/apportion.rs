//! The split of a bill per line (issue 6, part 8: `ClaimResponse.item.adjudication`). The
//! settlement engine (`tiercare_domain::settlement::adjudicate`) splits the whole bill; a
//! hospital system that posts the split back onto its own lines needs it per line, and the
//! per-line amounts must add up to the bill's, to the fen. This module derives them from the
//! stored claim (each line's class and amount) and split, with no policy number of its own:
//!
//! 1. `submitted` is the line's amount; a self-pay line's amount is its `self_pay`;
//! 2. the bill's class-B first share is apportioned over the class-B lines by amount;
//! 3. a line's `eligible` is what is left (the engine's eligible amount, per line);
//! 4. the deductible is apportioned over the eligible amounts; the rest of each line is its
//!    base;
//! 5. the fund's share before the ceiling (fund + above the ceiling) is apportioned over the
//!    bases; the rest of each base is its coinsurance (`copay`);
//! 6. the fund's payment is apportioned over those shares; the rest is `above_ceiling`;
//! 7. the patient's part of a line is its amount less the fund's payment.
//!
//! Apportioning X over weights w₁…wₙ (sum W, 0 ≤ X ≤ W): line k gets
//! round(X·(w₁+…+w_k)/W) − round(X·(w₁+…+w_{k−1})/W), rounded half-up. The parts add up to
//! X exactly, and each is between 0 and its weight, so no line's part is negative or
//! larger than the line.

use tiercare_domain::settlement::{Claim, ItemClass, Split};

/// One line's share of each part of the split, in fen.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LineSplit {
    pub submitted_fen: i64,
    pub self_pay_fen: i64,
    pub class_b_share_fen: i64,
    pub eligible_fen: i64,
    pub deductible_fen: i64,
    /// Coinsurance (the patient's share of the base after the rate).
    pub copay_fen: i64,
    /// The fund's payment.
    pub benefit_fen: i64,
    pub above_ceiling_fen: i64,
    /// What the patient pays for this line.
    pub patient_fen: i64,
}

/// `x` apportioned over `weights` (see the module notes); `x` is kept within 0..=Σweights.
pub fn apportion(x: i64, weights: &[i64]) -> Vec<i64> {
    let w_total: i128 = weights.iter().map(|w| i128::from((*w).max(0))).sum();
    if w_total == 0 {
        return vec![0; weights.len()];
    }
    let x = i128::from(x).clamp(0, w_total);
    // round(x · cum / W) half-up, exact in integers
    let upto = |cum: i128| (2 * x * cum + w_total) / (2 * w_total);
    let mut cum = 0i128;
    let mut given = 0i128;
    weights
        .iter()
        .map(|w| {
            cum += i128::from((*w).max(0));
            let now = upto(cum);
            let part = now - given;
            given = now;
            part as i64
        })
        .collect()
}

/// The split of `claim`'s bill per line, in the order of `claim.lines`.
pub fn line_splits(claim: &Claim, split: &Split) -> Vec<LineSplit> {
    let lines = &claim.lines;
    let class_b: Vec<i64> =
        lines.iter().map(|l| if l.class == ItemClass::B { l.amount_fen.max(0) } else { 0 }).collect();
    let class_b_share = apportion(split.class_b_share_fen, &class_b);
    let mut out: Vec<LineSplit> = lines
        .iter()
        .zip(&class_b_share)
        .map(|(l, b)| {
            let self_pay = if l.class == ItemClass::SelfPay { l.amount_fen } else { 0 };
            LineSplit {
                submitted_fen: l.amount_fen,
                self_pay_fen: self_pay,
                class_b_share_fen: *b,
                eligible_fen: l.amount_fen - self_pay - b,
                ..LineSplit::default()
            }
        })
        .collect();
    let eligible: Vec<i64> = out.iter().map(|l| l.eligible_fen).collect();
    let deductible = apportion(split.deductible_fen, &eligible);
    let base: Vec<i64> = eligible.iter().zip(&deductible).map(|(e, d)| e - d).collect();
    let fund_raw = apportion(split.fund_fen + split.above_ceiling_fen, &base);
    let benefit = apportion(split.fund_fen, &fund_raw);
    for (i, l) in out.iter_mut().enumerate() {
        l.deductible_fen = deductible[i];
        l.copay_fen = base[i] - fund_raw[i];
        l.benefit_fen = benefit[i];
        l.above_ceiling_fen = fund_raw[i] - benefit[i];
        l.patient_fen = l.submitted_fen - benefit[i];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apportioning_adds_up_and_stays_within_each_weight() {
        // 100 over 100, 100, 100: cumulative 33.3 → 33, 66.7 → 67, 100 → 100: 33, 34, 33
        assert_eq!(apportion(100, &[100, 100, 100]), vec![33, 34, 33]);
        // more than the weights hold is cut to them (a stored split never asks for it)
        assert_eq!(apportion(100, &[1, 1, 1]), vec![1, 1, 1]);
        // 5 over 3, 7 (W 10): 1.5 → 2 (half-up), 5 → 5: 2, 3
        assert_eq!(apportion(5, &[3, 7]), vec![2, 3]);
        // a zero weight gets nothing; nothing to share: all zero
        assert_eq!(apportion(10, &[0, 10, 0]), vec![0, 10, 0]);
        assert_eq!(apportion(0, &[4, 5]), vec![0, 0]);
        assert_eq!(apportion(7, &[0, 0]), vec![0, 0]);
    }

    proptest::proptest! {
        #[test]
        fn apportioned_parts_sum_to_the_whole(
            weights in proptest::collection::vec(0i64..1_000_000_000, 1..40),
            frac in 0.0f64..=1.0,
        ) {
            let w: i64 = weights.iter().sum();
            let x = (w as f64 * frac) as i64;
            let parts = apportion(x, &weights);
            proptest::prop_assert_eq!(parts.iter().sum::<i64>(), if w == 0 { 0 } else { x });
            for (p, w) in parts.iter().zip(&weights) {
                proptest::prop_assert!(0 <= *p && p <= w, "{} of {}", p, w);
            }
        }
    }
}
