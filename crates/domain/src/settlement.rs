//! Insurance settlement (domain.md M7, M8; issue 6): splitting one bill into what the fund
//! pays and what the patient pays, by the rules of the patient's scheme and home region,
//! the tier of the facility, the setting (outpatient, inpatient) and how the patient came
//! (referred up or down, or not).
//!
//! Pure arithmetic in integer fen; rates in basis points (1 bp = 0.01 %). Every number is
//! policy data ([`PolicySet`], loaded from a file users edit); the engine has none of its own.
//!
//! Order of application for one bill (domain.md, the default order):
//! 1. self-pay items → patient (`self_pay`);
//! 2. the class-B first share (`class_b_share_bp` of each class-B line) → patient
//!    (`class_b_share`);
//! 3. the rest is eligible;
//! 4. the deductible still owed for this stay (or visit) is taken from the eligible amount →
//!    patient (`deductible`);
//! 5. (eligible − deductible) × rate → fund; the remainder → patient (`coinsurance`);
//! 6. fund money above the remaining annual ceiling (inpatient) or outpatient pool →
//!    patient (`above_ceiling`).
//!
//! Each part is rounded to the fen half-up; the patient's total is the bill minus the
//! fund's payment, so the parts always add up to the bill.

use time::Date;

use crate::error::{DomainError, Problems};
use crate::facility::Tier;
use crate::patient::Scheme;

/// Outpatient visit or inpatient stay.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Setting {
    Outpatient,
    Inpatient,
}

/// Catalogue class of a line item (甲类 / 乙类 / 丙类·自费).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ItemClass {
    /// 甲类: fully eligible.
    A,
    /// 乙类: the patient first pays a share, the rest is eligible.
    B,
    /// 丙类 / 自费: outside the catalogue, all the patient's.
    SelfPay,
}

/// One line of a bill, already priced: `amount_fen` is the line's total.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BillLine {
    pub class: ItemClass,
    pub amount_fen: i64,
}

/// How the patient came to this facility.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Arrival {
    /// Came on their own.
    SelfReferred,
    /// Referred up. After a stay at a facility of tier `after_stay_at` the deductible is
    /// only the difference between this tier's and that tier's (continuous deductible);
    /// without an earlier stay (referred from a visit) the full deductible applies.
    UpwardReferral { after_stay_at: Option<Tier> },
    /// Referred down after a stay: no new deductible.
    DownwardReferral,
    /// An emergency (counts as referred for the no-referral reduction and as filed out of
    /// region).
    Emergency,
}

/// Where the care is, relative to the insured (home) region.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Place {
    /// Inside the insured region.
    Home,
    /// Outside it, with a long-term filing (home rates).
    FiledLongTerm,
    /// Outside it, with a temporary filing for a referral (or in an emergency).
    FiledTemporary,
    /// Outside it without a filing.
    Unfiled,
}

/// The year-to-date amounts of one insured person, and of the current stay.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Accumulators {
    /// Fund paid this year for inpatient care (toward the annual ceiling).
    pub inpatient_fund_paid_fen: i64,
    /// Fund paid this year from the outpatient pool (toward its annual cap).
    pub outpatient_fund_paid_fen: i64,
    /// Deductible already paid for the current stay (earlier interim bills of the same stay).
    pub stay_deductible_paid_fen: i64,
}

/// The rates of one tier for one setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TierRule {
    pub tier: Tier,
    /// 起付线 per stay (inpatient) or per visit (outpatient), fen.
    pub deductible_fen: i64,
    /// 报销比例, basis points.
    pub rate_bp: u32,
}

/// The policy of one insured region and scheme, from `effective_from`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// A name a clerk can read back, e.g. "岳池县城乡居民医保 2026".
    pub name: String,
    /// GB/T 2260 code of the insured (pooling) region.
    pub insured_region: String,
    pub scheme: Scheme,
    pub effective_from: Date,
    /// Last day in force; `None` while current. A claim dated after it is refused.
    #[serde(default)]
    pub effective_to: Option<Date>,
    /// Inpatient rules per tier; a tier not listed is not covered inpatient.
    pub inpatient: Vec<TierRule>,
    /// Outpatient pooling rules per tier; a tier not listed is not pooled (all patient).
    pub outpatient: Vec<TierRule>,
    /// 封顶线: fund paid for inpatient care per year, fen.
    pub annual_ceiling_fen: i64,
    /// Outpatient pool cap per year, fen.
    pub outpatient_cap_fen: i64,
    /// The patient's first share of class-B lines, basis points.
    pub class_b_share_bp: u32,
    /// Inpatient rate reduction at a tier at or above `no_referral_from_tier` for a patient
    /// who came without a referral (an emergency counts as referred), bp.
    pub no_referral_reduction_bp: u32,
    pub no_referral_from_tier: Tier,
    /// Rate reduction out of the insured region with a temporary filing (referred or
    /// emergency), bp. Replaces the no-referral reduction; never stacks with it.
    pub filed_temporary_reduction_bp: u32,
    /// Rate reduction out of the insured region without a filing, bp.
    pub unfiled_reduction_bp: u32,
}

/// Every policy users have configured: [`PolicySet::find`] picks the one in force.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicySet {
    pub policies: Vec<Policy>,
}

/// What to settle.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Claim {
    pub scheme: Scheme,
    pub insured_region: String,
    pub setting: Setting,
    /// The tier of the facility of care.
    pub tier: Tier,
    pub arrival: Arrival,
    pub place: Place,
    /// The day of care (selects the policy version).
    pub date: Date,
    pub lines: Vec<BillLine>,
    pub accumulators: Accumulators,
}

/// The split of one bill, to the fen, with the rules applied.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Split {
    pub total_fen: i64,
    pub fund_fen: i64,
    /// `total − fund`; equals the sum of the five parts below.
    pub patient_fen: i64,
    pub self_pay_fen: i64,
    pub class_b_share_fen: i64,
    pub deductible_fen: i64,
    pub coinsurance_fen: i64,
    pub above_ceiling_fen: i64,
    /// The rate applied, basis points, after reductions.
    pub rate_bp: u32,
    /// The policy applied (its name and effective date).
    pub policy: String,
    /// Each rule applied, in order, as a sentence a clerk can read to the patient (English;
    /// the UI translates by `code`).
    pub explanation: Vec<Step>,
    /// The accumulators after this bill.
    pub after: Accumulators,
}

/// One rule applied.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Step {
    /// e.g. `self_pay`, `class_b_share`, `deductible`, `rate`, `no_referral_reduction`,
    /// `out_of_region_reduction`, `continuous_deductible`, `no_deductible_after_downward`,
    /// `fund`, `above_ceiling`, `not_pooled`.
    pub code: String,
    pub amount_fen: i64,
    pub message: String,
}

/// The default policy set (domain.md M7/M8), as shipped: TOML, amounts in fen, rates in bp.
/// [`PolicySet::load_toml`] parses and validates it; [`PolicySet::default_set`] is this file.
pub const DEFAULT_POLICY_TOML: &str = include_str!("../data/policy-default.toml");

/// 100 % in basis points.
const BP_FULL: u32 = 10_000;

// ---------------------------------------------------------------------------------------
// Policy selection and validation
// ---------------------------------------------------------------------------------------

impl PolicySet {
    /// Parse a policy file (the form of `data/policy-default.toml`) and [`validate`](Self::validate) it;
    /// a syntax error is `policy.syntax` with the parser's line and column.
    pub fn load_toml(text: &str) -> Result<PolicySet, DomainError> {
        let set: PolicySet = toml::from_str(text).map_err(|e| {
            DomainError::field("policies", "policy.syntax", format!("the policy file is not valid: {e}"))
        })?;
        set.validate()?;
        Ok(set)
    }

    /// The shipped default set ([`DEFAULT_POLICY_TOML`]); empty if it were invalid (the
    /// tests check it is not), so that no settlement would pass on a broken build.
    pub fn default_set() -> PolicySet {
        Self::load_toml(DEFAULT_POLICY_TOML).unwrap_or_default()
    }

    /// The policy in force for `region` and `scheme` on `date`: among the policies of that
    /// region and scheme, the one with the latest `effective_from` ≤ `date`
    /// (`settlement.no_policy` if none); refused with `settlement.policy_expired` if that
    /// one's `effective_to` is before `date`.
    pub fn find(&self, region: &str, scheme: Scheme, date: Date) -> Result<&Policy, DomainError> {
        let mut any = false;
        let mut best: Option<&Policy> = None;
        for p in &self.policies {
            if p.scheme != scheme || p.insured_region != region {
                continue;
            }
            any = true;
            if p.effective_from <= date && best.is_none_or(|b| p.effective_from > b.effective_from) {
                best = Some(p);
            }
        }
        let Some(policy) = best else {
            let (field, why) = if any {
                ("date", format!("no {} policy of region {region} is in force yet on {date}", scheme.as_str()))
            } else {
                ("insured_region", format!("no {} policy is configured for region {region}", scheme.as_str()))
            };
            return Err(DomainError::field(field, "settlement.no_policy", why));
        };
        if let Some(to) = policy.effective_to
            && to < date
        {
            return Err(DomainError::field(
                "date",
                "settlement.policy_expired",
                format!("the policy \"{}\" ended on {to}; the claim is dated {date}", policy.name),
            ));
        }
        Ok(policy)
    }

    /// Every policy valid ([`Policy::validate`], fields prefixed `policies[i].`), and no two
    /// with the same region, scheme and `effective_from` (`policy.duplicate_version`).
    pub fn validate(&self) -> Result<(), DomainError> {
        let mut problems = Problems::default();
        for (i, p) in self.policies.iter().enumerate() {
            p.check(&format!("policies[{i}]."), &mut problems);
            if let Some(j) = self.policies[..i].iter().position(|q| {
                q.insured_region == p.insured_region && q.scheme == p.scheme && q.effective_from == p.effective_from
            }) {
                problems.add(
                    &format!("policies[{i}].effective_from"),
                    "policy.duplicate_version",
                    format!(
                        "policies {j} and {i} are both the {} policy of region {} from {}",
                        p.scheme.as_str(),
                        p.insured_region,
                        p.effective_from
                    ),
                );
            }
        }
        problems.into_result()
    }
}

impl Policy {
    /// Rates at most 10000 bp (`policy.rate_bp`), amounts not negative (`policy.amount`),
    /// no tier twice in one setting (`policy.duplicate_tier`), `effective_to` not before
    /// `effective_from` (`policy.effective_to`).
    pub fn validate(&self) -> Result<(), DomainError> {
        let mut problems = Problems::default();
        self.check("", &mut problems);
        problems.into_result()
    }

    fn check(&self, prefix: &str, problems: &mut Problems) {
        let mut rate = |field: &str, bp: u32| {
            if bp > BP_FULL {
                problems.add(
                    &format!("{prefix}{field}"),
                    "policy.rate_bp",
                    format!("{bp} bp is more than 100 % (10000 bp)"),
                );
            }
        };
        rate("class_b_share_bp", self.class_b_share_bp);
        rate("no_referral_reduction_bp", self.no_referral_reduction_bp);
        rate("filed_temporary_reduction_bp", self.filed_temporary_reduction_bp);
        rate("unfiled_reduction_bp", self.unfiled_reduction_bp);
        for (setting, rules) in [("inpatient", &self.inpatient), ("outpatient", &self.outpatient)] {
            for (i, r) in rules.iter().enumerate() {
                rate(&format!("{setting}[{i}].rate_bp"), r.rate_bp);
            }
        }
        let mut amount = |field: &str, fen: i64| {
            if fen < 0 {
                problems.add(&format!("{prefix}{field}"), "policy.amount", format!("{fen} fen is negative"));
            }
        };
        amount("annual_ceiling_fen", self.annual_ceiling_fen);
        amount("outpatient_cap_fen", self.outpatient_cap_fen);
        for (setting, rules) in [("inpatient", &self.inpatient), ("outpatient", &self.outpatient)] {
            for (i, r) in rules.iter().enumerate() {
                amount(&format!("{setting}[{i}].deductible_fen"), r.deductible_fen);
            }
        }
        for (setting, rules) in [("inpatient", &self.inpatient), ("outpatient", &self.outpatient)] {
            for (i, r) in rules.iter().enumerate() {
                if rules[..i].iter().any(|q| q.tier == r.tier) {
                    problems.add(
                        &format!("{prefix}{setting}[{i}].tier"),
                        "policy.duplicate_tier",
                        format!("tier {} is listed twice in the {setting} rules", r.tier.as_str()),
                    );
                }
            }
        }
        if let Some(to) = self.effective_to
            && to < self.effective_from
        {
            problems.add(
                &format!("{prefix}effective_to"),
                "policy.effective_to",
                format!("effective_to {to} is before effective_from {}", self.effective_from),
            );
        }
    }

    fn rules(&self, setting: Setting) -> &[TierRule] {
        match setting {
            Setting::Inpatient => &self.inpatient,
            Setting::Outpatient => &self.outpatient,
        }
    }

    /// The rule of `tier` in `setting`, if listed.
    pub fn rule(&self, setting: Setting, tier: Tier) -> Option<&TierRule> {
        self.rules(setting).iter().find(|r| r.tier == tier)
    }
}

// ---------------------------------------------------------------------------------------
// Adjudication
// ---------------------------------------------------------------------------------------

/// `round(x · bp / 10000)` half-up, for `0 ≤ x` and `bp ≤ 10000` (so the result ≤ x).
fn share(x: i64, bp: u32) -> i64 {
    let v = (i128::from(x) * i128::from(bp) + 5_000) / 10_000;
    // With bp ≤ 10000 and x ≥ 0, 0 ≤ v ≤ x, so it fits.
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// Split one bill (settlement-rules.md, steps 1–12): select the policy in force, take
/// self-pay items, the class-B first share, the deductible still owed, apply the (reduced)
/// rate, cap the fund at the remaining ceiling or outpatient pool, and update the
/// accumulators. Pure: the caller stores `after` with the settlement.
///
/// Refused (`DomainError::Invalid`, every problem listed) for: no policy in force
/// (`settlement.no_policy`, `settlement.policy_expired`), no lines (`settlement.no_lines`),
/// a negative line amount or a total beyond `i64` (`settlement.amount`), a negative
/// accumulator (`settlement.accumulators`).
///
/// Explanation steps, in order: `self_pay` and `class_b_share` (when the bill has such
/// lines), `eligible`; then either `not_pooled` or [`continuous_deductible` |
/// `no_deductible_after_downward`], `deductible`, `rate`, [`no_referral_reduction` |
/// `out_of_region_reduction`]; then `fund` (the fund's share before the ceiling),
/// `coinsurance`, and `above_ceiling` when the ceiling or pool cut the fund's share.
pub fn adjudicate(policies: &PolicySet, claim: &Claim) -> Result<Split, DomainError> {
    // 1. Policy selection; 2. lines. All problems are reported together.
    let found = policies.find(&claim.insured_region, claim.scheme, claim.date);
    let mut problems = Problems::default();
    let policy = match found {
        Ok(p) => Some(p),
        Err(DomainError::Invalid(errors)) => {
            errors.into_iter().for_each(|e| problems.push(e));
            None
        }
        Err(e) => return Err(e),
    };
    if claim.lines.is_empty() {
        problems.add("lines", "settlement.no_lines", "a bill needs at least one line");
    }
    let mut total: i64 = 0;
    let mut self_pay: i64 = 0;
    let mut class_b_total: i64 = 0;
    let mut class_b_share: i64 = 0;
    let (mut n_self_pay, mut n_class_b) = (0usize, 0usize);
    let class_b_bp = policy.map_or(0, |p| p.class_b_share_bp.min(BP_FULL));
    for (i, line) in claim.lines.iter().enumerate() {
        let a = line.amount_fen;
        if a < 0 {
            problems.add(
                &format!("lines[{i}].amount_fen"),
                "settlement.amount",
                format!("line {i}: the amount {a} fen is negative"),
            );
            continue;
        }
        let Some(t) = total.checked_add(a) else {
            problems.add(&format!("lines[{i}].amount_fen"), "settlement.amount", "the bill's total is too large");
            break;
        };
        total = t;
        match line.class {
            ItemClass::A => {}
            ItemClass::B => {
                n_class_b += 1;
                class_b_total += a;
                class_b_share += share(a, class_b_bp);
            }
            ItemClass::SelfPay => {
                n_self_pay += 1;
                self_pay += a;
            }
        }
    }
    let acc = claim.accumulators;
    for (field, v) in [
        ("accumulators.inpatient_fund_paid_fen", acc.inpatient_fund_paid_fen),
        ("accumulators.outpatient_fund_paid_fen", acc.outpatient_fund_paid_fen),
        ("accumulators.stay_deductible_paid_fen", acc.stay_deductible_paid_fen),
    ] {
        if v < 0 {
            problems.add(field, "settlement.accumulators", format!("{v} fen is negative"));
        }
    }
    problems.into_result()?;
    let Some(policy) = policy else {
        return Err(DomainError::field("insured_region", "settlement.no_policy", "no policy in force"));
    };

    let setting = claim.setting;
    let tier = claim.tier;
    let mut steps: Vec<Step> = Vec::with_capacity(10);
    let mut step = |code: &str, amount_fen: i64, message: String| {
        steps.push(Step { code: code.to_owned(), amount_fen, message });
    };

    // 3. Self-pay; 4. class-B first share.
    if n_self_pay > 0 {
        step(
            "self_pay",
            self_pay,
            msg!["self-pay items (outside the catalogue): ", Yuan(self_pay), " yuan, paid by the patient"],
        );
    }
    if n_class_b > 0 {
        step(
            "class_b_share",
            class_b_share,
            msg![
                "class-B first share: ",
                Pct(class_b_bp),
                " of ",
                Yuan(class_b_total),
                " yuan of class-B items = ",
                Yuan(class_b_share),
                " yuan, paid by the patient"
            ],
        );
    }
    // 5. Eligible.
    let eligible = total - self_pay - class_b_share;
    step(
        "eligible",
        eligible,
        if n_self_pay + n_class_b == 0 {
            msg!["eligible (all class A): ", Yuan(eligible), " yuan"]
        } else {
            msg![
                "eligible: ",
                Yuan(total),
                " − ",
                Yuan(self_pay),
                " − ",
                Yuan(class_b_share),
                " = ",
                Yuan(eligible),
                " yuan"
            ]
        },
    );

    // 6. Tier rule; 7. deductible; 8. rate.
    let (deductible, rate) = match policy.rule(setting, tier) {
        None => {
            step(
                "not_pooled",
                eligible,
                msg![
                    "a ",
                    TierName(tier),
                    " ",
                    Noun(setting),
                    match setting {
                        Setting::Inpatient => " is not covered by ",
                        Setting::Outpatient => " is not pooled by ",
                    },
                    policy.name.as_str(),
                    ": rate 0 %, the eligible ",
                    Yuan(eligible),
                    " yuan is the patient's"
                ],
            );
            (0, 0)
        }
        Some(rule) => {
            let d = rule.deductible_fen.max(0);
            let base = match claim.arrival {
                Arrival::DownwardReferral => {
                    step(
                        "no_deductible_after_downward",
                        0,
                        msg!["no new deductible after a downward referral (instead of ", Yuan(d), " yuan)"],
                    );
                    0
                }
                Arrival::UpwardReferral { after_stay_at: Some(t) } => {
                    let d_t = policy.rule(setting, t).map_or(0, |r| r.deductible_fen.max(0));
                    let base = d.saturating_sub(d_t).max(0);
                    step(
                        "continuous_deductible",
                        base,
                        msg![
                            "continuous deductible after a stay at a ",
                            TierName(t),
                            ": ",
                            Yuan(d),
                            " − ",
                            Yuan(d_t),
                            " = ",
                            Yuan(base),
                            " yuan"
                        ],
                    );
                    base
                }
                _ => d,
            };
            let paid = acc.stay_deductible_paid_fen;
            let owed = base.saturating_sub(paid).max(0);
            let deductible = owed.min(eligible);
            let mut m = msg!["deductible for a ", TierName(tier), " ", Noun(setting), ": ", Yuan(deductible), " yuan"];
            if paid > 0 {
                m = msg![
                    m,
                    " (",
                    Yuan(base),
                    " for the ",
                    Noun(setting),
                    ", ",
                    Yuan(paid),
                    " already paid, ",
                    Yuan(owed),
                    " owed)"
                ];
            }
            if deductible < owed {
                m = msg![m, " (limited to the eligible ", Yuan(eligible), ")"];
            }
            step("deductible", deductible, m);

            let r = rule.rate_bp.min(BP_FULL);
            step("rate", eligible - deductible, msg!["rate for a ", TierName(tier), " ", Noun(setting), ": ", Pct(r)]);
            let reduction = match claim.place {
                Place::FiledLongTerm => None,
                Place::FiledTemporary => Some((
                    "out_of_region_reduction",
                    policy.filed_temporary_reduction_bp,
                    "care out of the insured region with a temporary filing",
                )),
                Place::Unfiled if claim.arrival == Arrival::Emergency => Some((
                    "out_of_region_reduction",
                    policy.filed_temporary_reduction_bp,
                    "emergency care out of the insured region (counts as filed)",
                )),
                Place::Unfiled => Some((
                    "out_of_region_reduction",
                    policy.unfiled_reduction_bp,
                    "care out of the insured region without a filing",
                )),
                Place::Home
                    if setting == Setting::Inpatient
                        && tier >= policy.no_referral_from_tier
                        && claim.arrival == Arrival::SelfReferred =>
                {
                    Some(("no_referral_reduction", policy.no_referral_reduction_bp, "a stay without a referral"))
                }
                Place::Home => None,
            };
            let rate = match reduction {
                None => r,
                Some((code, by, why)) => {
                    let reduced = r.saturating_sub(by);
                    step(code, 0, msg![why, ": rate reduced by ", Points(by), " points to ", Pct(reduced)]);
                    reduced
                }
            };
            (deductible, rate)
        }
    };

    // 9. Fund share and coinsurance.
    let base = eligible - deductible;
    let fund_raw = share(base, rate);
    let coinsurance = base - fund_raw;
    step("fund", fund_raw, msg!["fund: ", Yuan(base), " × ", Pct(rate), " = ", Yuan(fund_raw), " yuan"]);
    step(
        "coinsurance",
        coinsurance,
        msg![
            "coinsurance: ",
            Yuan(base),
            " − ",
            Yuan(fund_raw),
            " = ",
            Yuan(coinsurance),
            " yuan, paid by the patient"
        ],
    );

    // 10. Ceiling or outpatient pool.
    let (limit, used, what) = match setting {
        Setting::Inpatient => {
            (policy.annual_ceiling_fen, acc.inpatient_fund_paid_fen, " yuan left of the annual ceiling of ")
        }
        Setting::Outpatient => {
            (policy.outpatient_cap_fen, acc.outpatient_fund_paid_fen, " yuan left of the outpatient pool cap of ")
        }
    };
    let remaining = limit.saturating_sub(used).max(0);
    let fund = fund_raw.min(remaining);
    let above_ceiling = fund_raw - fund;
    if above_ceiling > 0 {
        step(
            "above_ceiling",
            above_ceiling,
            msg![
                Yuan(remaining),
                what,
                Yuan(limit),
                " yuan: ",
                Yuan(above_ceiling),
                " yuan above it is paid by the patient, the fund pays ",
                Yuan(fund),
                " yuan"
            ],
        );
    }

    // 11. Patient; 12. accumulators.
    let patient = total - fund;
    let mut after = acc;
    match setting {
        Setting::Inpatient => {
            after.inpatient_fund_paid_fen += fund;
            after.stay_deductible_paid_fen += deductible;
        }
        Setting::Outpatient => after.outpatient_fund_paid_fen += fund,
    }
    Ok(Split {
        total_fen: total,
        fund_fen: fund,
        patient_fen: patient,
        self_pay_fen: self_pay,
        class_b_share_fen: class_b_share,
        deductible_fen: deductible,
        coinsurance_fen: coinsurance,
        above_ceiling_fen: above_ceiling,
        rate_bp: rate,
        policy: msg![policy.name.as_str(), " (from ", Day(policy.effective_from), ")"],
        explanation: steps,
        after,
    })
}

impl Split {
    /// The accumulators as they were before this bill, for a reversal (冲正): `after` less
    /// what this bill added (the fund's payment, and for a stay the deductible).
    pub fn reversed(&self, setting: Setting) -> Accumulators {
        let mut acc = self.after;
        match setting {
            Setting::Inpatient => {
                acc.inpatient_fund_paid_fen -= self.fund_fen;
                acc.stay_deductible_paid_fen -= self.deductible_fen;
            }
            Setting::Outpatient => acc.outpatient_fund_paid_fen -= self.fund_fen,
        }
        acc
    }
}

// ---------------------------------------------------------------------------------------
// Message formatting: pieces appended to one `String` without `core::fmt` (adjudication is
// on the hot path of every settlement; see examples/bench_adjudicate.rs).
// ---------------------------------------------------------------------------------------

/// A part of a message.
trait Piece {
    fn put(&self, out: &mut String);
}

impl Piece for &str {
    fn put(&self, out: &mut String) {
        out.push_str(self);
    }
}

/// Concatenates pieces into a new `String`; a `String` first piece is extended in place.
macro_rules! msg {
    ($only:expr $(,)?) => {
        Start::start($only)
    };
    ($first:expr $(, $p:expr)+ $(,)?) => {{
        let mut out = Start::start($first);
        $( Piece::put(&$p, &mut out); )*
        out
    }};
}
use msg;

/// How a message starts: a `String` is reused, anything else starts a new one.
trait Start {
    fn start(self) -> String;
}

impl Start for String {
    fn start(self) -> String {
        self
    }
}

impl<P: Piece> Start for P {
    fn start(self) -> String {
        let mut out = String::with_capacity(128);
        self.put(&mut out);
        out
    }
}

/// Appends the decimal digits of `v`, with a `,` every three digits if `group`.
fn put_digits(out: &mut String, mut v: u64, group: bool) {
    let mut buf = [0u8; 32];
    let mut n = 0;
    loop {
        if group && n % 4 == 3 {
            buf[n] = b',';
            n += 1;
        }
        buf[n] = b'0' + (v % 10) as u8;
        n += 1;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    for &b in buf[..n].iter().rev() {
        out.push(char::from(b));
    }
}

/// Fen as yuan with thousands separators: `1000000` → `10,000.00`.
struct Yuan(i64);

impl Piece for Yuan {
    fn put(&self, out: &mut String) {
        if self.0 < 0 {
            out.push('-');
        }
        let abs = self.0.unsigned_abs();
        put_digits(out, abs / 100, true);
        let fen = (abs % 100) as u8;
        out.push('.');
        out.push(char::from(b'0' + fen / 10));
        out.push(char::from(b'0' + fen % 10));
    }
}

/// Basis points as a percentage: `8000` → `80 %`, `8050` → `80.5 %`.
struct Pct(u32);

impl Piece for Pct {
    fn put(&self, out: &mut String) {
        Points(self.0).put(out);
        out.push_str(" %");
    }
}

/// Basis points as percentage points: `1000` → `10`, `1050` → `10.5`, `1025` → `10.25`.
struct Points(u32);

impl Piece for Points {
    fn put(&self, out: &mut String) {
        let (whole, frac) = (self.0 / 100, self.0 % 100);
        put_digits(out, u64::from(whole), false);
        if frac != 0 {
            out.push('.');
            out.push(char::from(b'0' + (frac / 10) as u8));
            if frac % 10 != 0 {
                out.push(char::from(b'0' + (frac % 10) as u8));
            }
        }
    }
}

/// A date as `YYYY-MM-DD`.
struct Day(Date);

impl Piece for Day {
    fn put(&self, out: &mut String) {
        let d = self.0;
        if d.year() < 0 {
            out.push('-');
        }
        let y = d.year().unsigned_abs();
        for div in [1000, 100, 10, 1] {
            out.push(char::from(b'0' + ((y / div) % 10) as u8));
        }
        for v in [u8::from(d.month()), d.day()] {
            out.push('-');
            out.push(char::from(b'0' + v / 10));
            out.push(char::from(b'0' + v % 10));
        }
    }
}

/// The kind of facility of a tier, for messages.
struct TierName(Tier);

impl Piece for TierName {
    fn put(&self, out: &mut String) {
        out.push_str(match self.0 {
            Tier::Village => "village clinic",
            Tier::Township => "township health centre",
            Tier::County => "county hospital",
            Tier::City => "city hospital",
            Tier::Provincial => "provincial hospital",
            Tier::National => "national medical centre",
        });
    }
}

/// "stay" or "visit".
struct Noun(Setting);

impl Piece for Noun {
    fn put(&self, out: &mut String) {
        out.push_str(match self.0 {
            Setting::Inpatient => "stay",
            Setting::Outpatient => "visit",
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use time::macros::date;

    fn defaults() -> PolicySet {
        toml::from_str(DEFAULT_POLICY_TOML).expect("the default policy file parses")
    }

    #[test]
    fn policy_files_load_validated() {
        assert_eq!(PolicySet::default_set(), defaults());
        assert!(!defaults().policies.is_empty());
        let syntax = PolicySet::load_toml("policies = [").expect_err("refused");
        assert!(matches!(&syntax, DomainError::Invalid(v) if v[0].code == "policy.syntax"), "{syntax:?}");
        let bad = DEFAULT_POLICY_TOML.replacen("rate_bp = 9000", "rate_bp = 19000", 1);
        let invalid = PolicySet::load_toml(&bad).expect_err("refused");
        assert!(matches!(&invalid, DomainError::Invalid(v) if v[0].code == "policy.rate_bp"), "{invalid:?}");
    }

    fn claim(setting: Setting, tier: Tier, arrival: Arrival, lines: Vec<BillLine>) -> Claim {
        Claim {
            scheme: Scheme::Resident,
            insured_region: "511600".into(),
            setting,
            tier,
            arrival,
            place: Place::Home,
            date: date!(2026 - 03 - 01),
            lines,
            accumulators: Accumulators::default(),
        }
    }

    fn a(amount_fen: i64) -> BillLine {
        BillLine { class: ItemClass::A, amount_fen }
    }

    fn codes(e: DomainError) -> Vec<(String, String)> {
        match e {
            DomainError::Invalid(v) => v.into_iter().map(|f| (f.field, f.code)).collect(),
            DomainError::Conflict(m) => panic!("unexpected conflict {m}"),
        }
    }

    #[test]
    fn default_policy_file_parses_and_validates() {
        let set = defaults();
        assert_eq!(set.policies.len(), 4);
        set.validate().expect("valid");
        let emp = set.find("500100", Scheme::Employee, date!(2026 - 01 - 01)).expect("found");
        assert_eq!(emp.rule(Setting::Inpatient, Tier::Township).map(|r| r.rate_bp), Some(9500));
        assert_eq!(emp.annual_ceiling_fen, 50_000_000);
        let res = set.find("511600", Scheme::Resident, date!(2026 - 01 - 01)).expect("found");
        assert!(res.rule(Setting::Inpatient, Tier::Village).is_none());
        assert!(res.rule(Setting::Outpatient, Tier::City).is_none());
    }

    #[test]
    fn worked_example_referred() {
        let c = claim(
            Setting::Inpatient,
            Tier::County,
            Arrival::UpwardReferral { after_stay_at: None },
            vec![a(600_000), a(400_000)],
        );
        let s = adjudicate(&defaults(), &c).expect("settles");
        assert_eq!(s.total_fen, 1_000_000);
        assert_eq!(s.deductible_fen, 50_000);
        assert_eq!(s.fund_fen, 760_000);
        assert_eq!(s.coinsurance_fen, 190_000);
        assert_eq!(s.patient_fen, 240_000);
        assert_eq!((s.self_pay_fen, s.class_b_share_fen, s.above_ceiling_fen), (0, 0, 0));
        assert_eq!(s.rate_bp, 8000);
        assert_eq!(s.after.inpatient_fund_paid_fen, 760_000);
        assert_eq!(s.after.stay_deductible_paid_fen, 50_000);
        let ded = s.explanation.iter().find(|st| st.code == "deductible").expect("deductible step");
        assert_eq!(ded.message, "deductible for a county hospital stay: 500.00 yuan");
        assert_eq!(ded.amount_fen, 50_000);
        let fund = s.explanation.iter().find(|st| st.code == "fund").expect("fund step");
        assert_eq!(fund.message, "fund: 9,500.00 × 80 % = 7,600.00 yuan");
        assert!(s.policy.starts_with("广安市城乡居民医保 2026"));
    }

    #[test]
    fn worked_example_self_referred() {
        let c = claim(Setting::Inpatient, Tier::County, Arrival::SelfReferred, vec![a(1_000_000)]);
        let s = adjudicate(&defaults(), &c).expect("settles");
        assert_eq!(s.rate_bp, 7000);
        assert_eq!(s.deductible_fen, 50_000);
        assert_eq!(s.fund_fen, 665_000);
        assert_eq!(s.patient_fen, 335_000);
        assert!(s.explanation.iter().any(|st| st.code == "no_referral_reduction"));
    }

    #[test]
    fn no_referral_reduction_not_below_its_tier_nor_outpatient() {
        let set = defaults();
        let c = claim(Setting::Inpatient, Tier::Township, Arrival::SelfReferred, vec![a(100_000)]);
        assert_eq!(adjudicate(&set, &c).expect("ok").rate_bp, 9000);
        let c = claim(Setting::Outpatient, Tier::County, Arrival::SelfReferred, vec![a(10_000)]);
        assert_eq!(adjudicate(&set, &c).expect("ok").rate_bp, 5000);
        let c = claim(Setting::Inpatient, Tier::City, Arrival::Emergency, vec![a(100_000)]);
        assert_eq!(adjudicate(&set, &c).expect("ok").rate_bp, 7000);
    }

    #[test]
    fn class_b_self_pay_and_rounding_half_up() {
        // Class B 100.05 yuan: share round(1000.5 fen) = 1001 fen (half up).
        let c = claim(
            Setting::Inpatient,
            Tier::Township,
            Arrival::UpwardReferral { after_stay_at: None },
            vec![
                BillLine { class: ItemClass::B, amount_fen: 10_005 },
                a(30_000),
                BillLine { class: ItemClass::SelfPay, amount_fen: 777 },
            ],
        );
        let s = adjudicate(&defaults(), &c).expect("ok");
        assert_eq!(s.class_b_share_fen, 1_001);
        assert_eq!(s.self_pay_fen, 777);
        // eligible 40_005 − 1_001 = 39_004; deductible 20_000; 19_004 × 90 % = 17_103.6 → 17_104.
        assert_eq!(s.deductible_fen, 20_000);
        assert_eq!(s.fund_fen, 17_104);
        assert_eq!(s.coinsurance_fen, 1_900);
        assert_eq!(s.patient_fen, 40_782 - 17_104);
    }

    #[test]
    fn continuous_and_downward_deductibles() {
        let set = defaults();
        let up = claim(
            Setting::Inpatient,
            Tier::County,
            Arrival::UpwardReferral { after_stay_at: Some(Tier::Township) },
            vec![a(1_000_000)],
        );
        let s = adjudicate(&set, &up).expect("ok");
        assert_eq!(s.deductible_fen, 30_000);
        assert!(s.explanation.iter().any(|st| st.code == "continuous_deductible" && st.amount_fen == 30_000));
        // After a village stay (village not listed inpatient: d_t = 0) the full deductible.
        let up = claim(
            Setting::Inpatient,
            Tier::County,
            Arrival::UpwardReferral { after_stay_at: Some(Tier::Village) },
            vec![a(1_000_000)],
        );
        assert_eq!(adjudicate(&set, &up).expect("ok").deductible_fen, 50_000);
        let down = claim(Setting::Inpatient, Tier::Township, Arrival::DownwardReferral, vec![a(100_000)]);
        let s = adjudicate(&set, &down).expect("ok");
        assert_eq!(s.deductible_fen, 0);
        assert_eq!(s.fund_fen, 90_000);
    }

    #[test]
    fn deductible_already_paid_and_small_bills() {
        let set = defaults();
        let mut c = claim(Setting::Inpatient, Tier::County, Arrival::SelfReferred, vec![a(30_000)]);
        let s = adjudicate(&set, &c).expect("ok");
        assert_eq!((s.deductible_fen, s.fund_fen, s.patient_fen), (30_000, 0, 30_000));
        c.accumulators = s.after;
        c.lines = vec![a(100_000)];
        let s = adjudicate(&set, &c).expect("ok");
        // 200 yuan still owed; (1000 − 200) × 70 % = 560.
        assert_eq!((s.deductible_fen, s.fund_fen), (20_000, 56_000));
        assert_eq!(s.after.stay_deductible_paid_fen, 50_000);
    }

    #[test]
    fn ceiling_and_outpatient_cap() {
        let set = defaults();
        let mut c = claim(Setting::Inpatient, Tier::County, Arrival::DownwardReferral, vec![a(1_000_000)]);
        c.accumulators.inpatient_fund_paid_fen = 30_000_000 - 100_000;
        let s = adjudicate(&set, &c).expect("ok");
        assert_eq!((s.fund_fen, s.above_ceiling_fen), (100_000, 700_000));
        assert_eq!(s.after.inpatient_fund_paid_fen, 30_000_000);
        assert!(s.explanation.iter().any(|st| st.code == "above_ceiling" && st.amount_fen == 700_000));
        let mut c = claim(Setting::Outpatient, Tier::Village, Arrival::SelfReferred, vec![a(10_000)]);
        c.accumulators.outpatient_fund_paid_fen = 38_000;
        c.accumulators.stay_deductible_paid_fen = 123;
        let s = adjudicate(&set, &c).expect("ok");
        assert_eq!((s.fund_fen, s.above_ceiling_fen, s.coinsurance_fen), (2_000, 4_000, 4_000));
        assert_eq!(s.after.outpatient_fund_paid_fen, 40_000);
        assert_eq!(s.after.stay_deductible_paid_fen, 123);
    }

    #[test]
    fn not_pooled_tiers() {
        let set = defaults();
        let c = claim(Setting::Outpatient, Tier::City, Arrival::SelfReferred, vec![a(10_000)]);
        let s = adjudicate(&set, &c).expect("ok");
        assert_eq!((s.fund_fen, s.coinsurance_fen, s.rate_bp, s.deductible_fen), (0, 10_000, 0, 0));
        assert!(s.explanation.iter().any(|st| st.code == "not_pooled"));
        let c = claim(Setting::Inpatient, Tier::Village, Arrival::SelfReferred, vec![a(10_000)]);
        assert_eq!(adjudicate(&set, &c).expect("ok").fund_fen, 0);
    }

    #[test]
    fn out_of_region_reductions_replace_no_referral() {
        let set = defaults();
        let mut c = claim(Setting::Inpatient, Tier::Provincial, Arrival::SelfReferred, vec![a(1_000_000)]);
        for (place, arrival, rate) in [
            (Place::FiledLongTerm, Arrival::SelfReferred, 6000),
            (Place::FiledTemporary, Arrival::SelfReferred, 5000),
            (Place::FiledTemporary, Arrival::UpwardReferral { after_stay_at: None }, 5000),
            (Place::Unfiled, Arrival::Emergency, 5000),
            (Place::Unfiled, Arrival::SelfReferred, 4000),
            (Place::Unfiled, Arrival::UpwardReferral { after_stay_at: None }, 4000),
            (Place::Home, Arrival::SelfReferred, 5000),
        ] {
            c.place = place;
            c.arrival = arrival;
            let s = adjudicate(&set, &c).expect("ok");
            assert_eq!(s.rate_bp, rate, "{place:?} {arrival:?}");
            let n = s
                .explanation
                .iter()
                .filter(|st| st.code == "no_referral_reduction" || st.code == "out_of_region_reduction")
                .count();
            assert!(n <= 1);
        }
    }

    #[test]
    fn rate_floors_at_zero() {
        let mut set = defaults();
        for p in &mut set.policies {
            p.unfiled_reduction_bp = 9_000;
        }
        let mut c = claim(Setting::Inpatient, Tier::City, Arrival::SelfReferred, vec![a(1_000_000)]);
        c.place = Place::Unfiled;
        let s = adjudicate(&set, &c).expect("ok");
        assert_eq!((s.rate_bp, s.fund_fen), (0, 0));
    }

    fn version(from: Date, to: Option<Date>, county_rate: u32) -> Policy {
        let mut p = defaults().policies.remove(0);
        p.name = format!("v{from}");
        p.effective_from = from;
        p.effective_to = to;
        for r in &mut p.inpatient {
            if r.tier == Tier::County {
                r.rate_bp = county_rate;
            }
        }
        p
    }

    #[test]
    fn policy_selection_by_date() {
        let set = PolicySet {
            policies: vec![
                version(date!(2027 - 01 - 01), None, 8500),
                version(date!(2026 - 01 - 01), Some(date!(2026 - 12 - 31)), 8000),
            ],
        };
        set.validate().expect("valid");
        let p = |d| set.find("511600", Scheme::Resident, d).map(|p| p.name.clone());
        assert_eq!(p(date!(2026 - 01 - 01)).expect("ok"), "v2026-01-01");
        assert_eq!(p(date!(2026 - 12 - 31)).expect("ok"), "v2026-01-01");
        assert_eq!(p(date!(2027 - 01 - 01)).expect("ok"), "v2027-01-01");
        assert_eq!(
            codes(p(date!(2025 - 12 - 31)).expect_err("none")),
            vec![("date".into(), "settlement.no_policy".into())]
        );
        assert_eq!(
            codes(set.find("511600", Scheme::Employee, date!(2026 - 06 - 01)).expect_err("none")),
            vec![("insured_region".into(), "settlement.no_policy".into())]
        );
        assert_eq!(
            codes(set.find("110100", Scheme::Resident, date!(2026 - 06 - 01)).expect_err("none")),
            vec![("insured_region".into(), "settlement.no_policy".into())]
        );
        let mut c = claim(Setting::Inpatient, Tier::County, Arrival::DownwardReferral, vec![a(100_000)]);
        c.date = date!(2027 - 02 - 01);
        assert_eq!(adjudicate(&set, &c).expect("ok").rate_bp, 8500);

        // The latest version ended: expired, not the one before.
        let set = PolicySet {
            policies: vec![
                version(date!(2026 - 01 - 01), Some(date!(2026 - 06 - 30)), 8000),
                version(date!(2025 - 01 - 01), None, 7000),
            ],
        };
        assert_eq!(
            codes(set.find("511600", Scheme::Resident, date!(2026 - 07 - 01)).expect_err("expired")),
            vec![("date".into(), "settlement.policy_expired".into())]
        );
        c.date = date!(2026 - 07 - 01);
        assert_eq!(codes(adjudicate(&set, &c).expect_err("expired"))[0].1, "settlement.policy_expired");
    }

    #[test]
    fn input_errors() {
        let set = defaults();
        let c = claim(Setting::Inpatient, Tier::County, Arrival::SelfReferred, vec![]);
        assert_eq!(
            codes(adjudicate(&set, &c).expect_err("no lines")),
            vec![("lines".into(), "settlement.no_lines".into())]
        );
        let c = claim(Setting::Inpatient, Tier::County, Arrival::SelfReferred, vec![a(100), a(-1), a(5), a(-7)]);
        assert_eq!(
            codes(adjudicate(&set, &c).expect_err("negative")),
            vec![
                ("lines[1].amount_fen".into(), "settlement.amount".into()),
                ("lines[3].amount_fen".into(), "settlement.amount".into()),
            ]
        );
        let c = claim(Setting::Inpatient, Tier::County, Arrival::SelfReferred, vec![a(i64::MAX), a(1)]);
        assert_eq!(codes(adjudicate(&set, &c).expect_err("overflow"))[0].1, "settlement.amount");
        let mut c = claim(Setting::Inpatient, Tier::County, Arrival::SelfReferred, vec![a(-1)]);
        c.insured_region = "999999".into();
        c.accumulators.stay_deductible_paid_fen = -5;
        assert_eq!(
            codes(adjudicate(&set, &c).expect_err("all")),
            vec![
                ("insured_region".into(), "settlement.no_policy".into()),
                ("lines[0].amount_fen".into(), "settlement.amount".into()),
                ("accumulators.stay_deductible_paid_fen".into(), "settlement.accumulators".into()),
            ]
        );
        // Zero amounts are fine.
        let c = claim(Setting::Inpatient, Tier::County, Arrival::SelfReferred, vec![a(0)]);
        assert_eq!(adjudicate(&set, &c).expect("ok").patient_fen, 0);
    }

    #[test]
    fn policy_validation() {
        let mut p = defaults().policies.remove(0);
        p.validate().expect("valid");
        p.inpatient[1].rate_bp = 10_001;
        p.outpatient[0].deductible_fen = -1;
        p.annual_ceiling_fen = -1;
        p.class_b_share_bp = 20_000;
        p.outpatient.push(TierRule { tier: Tier::Village, deductible_fen: 0, rate_bp: 0 });
        p.effective_to = Some(date!(2025 - 12 - 31));
        let got = codes(p.validate().expect_err("invalid"));
        for want in [
            ("inpatient[1].rate_bp", "policy.rate_bp"),
            ("class_b_share_bp", "policy.rate_bp"),
            ("outpatient[0].deductible_fen", "policy.amount"),
            ("annual_ceiling_fen", "policy.amount"),
            ("outpatient[3].tier", "policy.duplicate_tier"),
            ("effective_to", "policy.effective_to"),
        ] {
            assert!(got.contains(&(want.0.into(), want.1.into())), "{want:?} in {got:?}");
        }
        assert_eq!(got.len(), 6);

        let mut set = defaults();
        let dup = set.policies[2].clone();
        set.policies.push(dup);
        assert_eq!(
            codes(set.validate().expect_err("dup")),
            vec![("policies[4].effective_from".into(), "policy.duplicate_version".into())]
        );
        set.policies[4].effective_from = date!(2027 - 01 - 01);
        set.policies[4].effective_to = Some(date!(2026 - 12 - 31));
        assert_eq!(
            codes(set.validate().expect_err("to")),
            vec![("policies[4].effective_to".into(), "policy.effective_to".into())]
        );
    }

    #[test]
    fn money_formatting() {
        assert_eq!(msg![Yuan(0)], "0.00");
        assert_eq!(msg![Yuan(5)], "0.05");
        assert_eq!(msg![Yuan(99_999)], "999.99");
        assert_eq!(msg![Yuan(100_000)], "1,000.00");
        assert_eq!(msg![Yuan(123_456_789)], "1,234,567.89");
        assert_eq!(msg![Yuan(-100_050)], "-1,000.50");
        assert_eq!(msg![Yuan(i64::MIN)], "-92,233,720,368,547,758.08");
        assert_eq!(msg![Pct(8000)], "80 %");
        assert_eq!(msg![Pct(8050)], "80.5 %");
        assert_eq!(msg![Pct(8025)], "80.25 %");
        assert_eq!(msg![Pct(5)], "0.05 %");
        assert_eq!(msg![Day(date!(2026 - 03 - 01))], "2026-03-01");
        assert_eq!(msg![String::from("a"), "b", Points(1000)], "ab10");
    }

    // ----- property tests -----

    fn tier() -> impl Strategy<Value = Tier> {
        prop::sample::select(Tier::ALL.to_vec())
    }

    fn arrival() -> impl Strategy<Value = Arrival> {
        prop_oneof![
            Just(Arrival::SelfReferred),
            prop::option::of(tier()).prop_map(|after_stay_at| Arrival::UpwardReferral { after_stay_at }),
            Just(Arrival::DownwardReferral),
            Just(Arrival::Emergency),
        ]
    }

    fn place() -> impl Strategy<Value = Place> {
        prop::sample::select(vec![Place::Home, Place::FiledLongTerm, Place::FiledTemporary, Place::Unfiled])
    }

    fn line() -> impl Strategy<Value = BillLine> {
        (prop::sample::select(vec![ItemClass::A, ItemClass::B, ItemClass::SelfPay]), 0i64..=5_000_000)
            .prop_map(|(class, amount_fen)| BillLine { class, amount_fen })
    }

    fn accumulators() -> impl Strategy<Value = Accumulators> {
        (
            prop_oneof![0i64..=60_000_000, 29_000_000i64..=31_000_000],
            prop_oneof![0i64..=50_000, 35_000i64..=45_000],
            prop_oneof![Just(0i64), 0i64..=150_000],
        )
            .prop_map(|(i, o, d)| Accumulators {
                inpatient_fund_paid_fen: i,
                outpatient_fund_paid_fen: o,
                stay_deductible_paid_fen: d,
            })
    }

    fn claim_strategy() -> impl Strategy<Value = Claim> {
        (
            prop::sample::select(vec![Scheme::Resident, Scheme::Employee]),
            prop::sample::select(vec!["511600", "500100"]),
            prop::sample::select(vec![Setting::Inpatient, Setting::Outpatient]),
            tier(),
            arrival(),
            place(),
            prop::collection::vec(line(), 1..20),
            accumulators(),
        )
            .prop_map(|(scheme, region, setting, tier, arrival, place, lines, accumulators)| Claim {
                scheme,
                insured_region: region.to_owned(),
                setting,
                tier,
                arrival,
                place,
                date: date!(2026 - 05 - 20),
                lines,
                accumulators,
            })
    }

    /// A random valid policy for region 511600, resident, so the properties do not depend
    /// on the default numbers.
    fn policy_strategy() -> impl Strategy<Value = PolicySet> {
        let rules = || {
            prop::collection::vec((any::<bool>(), 0i64..=300_000, 0u32..=10_000), 6).prop_map(|v| {
                Tier::ALL
                    .iter()
                    .zip(v)
                    .filter(|(_, (listed, _, _))| *listed)
                    .map(|(&tier, (_, deductible_fen, rate_bp))| TierRule { tier, deductible_fen, rate_bp })
                    .collect::<Vec<_>>()
            })
        };
        (
            rules(),
            rules(),
            0i64..=40_000_000,
            0i64..=100_000,
            (0u32..=10_000, 0u32..=10_000, tier(), 0u32..=10_000, 0u32..=10_000),
        )
            .prop_map(|(inpatient, outpatient, ceiling, cap, (b, nr, from, ft, uf))| PolicySet {
                policies: vec![Policy {
                    name: "random".into(),
                    insured_region: "511600".into(),
                    scheme: Scheme::Resident,
                    effective_from: date!(2026 - 01 - 01),
                    effective_to: None,
                    inpatient,
                    outpatient,
                    annual_ceiling_fen: ceiling,
                    outpatient_cap_fen: cap,
                    class_b_share_bp: b,
                    no_referral_reduction_bp: nr,
                    no_referral_from_tier: from,
                    filed_temporary_reduction_bp: ft,
                    unfiled_reduction_bp: uf,
                }],
            })
    }

    fn check_invariants(set: &PolicySet, c: &Claim) -> Result<(), TestCaseError> {
        let s = adjudicate(set, c).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let total: i64 = c.lines.iter().map(|l| l.amount_fen).sum();
        prop_assert_eq!(s.total_fen, total);
        prop_assert_eq!(
            s.self_pay_fen + s.class_b_share_fen + s.deductible_fen + s.coinsurance_fen + s.above_ceiling_fen,
            s.patient_fen
        );
        prop_assert_eq!(s.patient_fen, s.total_fen - s.fund_fen);
        for part in [s.self_pay_fen, s.class_b_share_fen, s.deductible_fen, s.coinsurance_fen, s.above_ceiling_fen] {
            prop_assert!(part >= 0);
        }
        prop_assert!(s.fund_fen >= 0);
        let policy = set.find(&c.insured_region, c.scheme, c.date).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let acc = c.accumulators;
        let remaining = match c.setting {
            Setting::Inpatient => (policy.annual_ceiling_fen - acc.inpatient_fund_paid_fen).max(0),
            Setting::Outpatient => (policy.outpatient_cap_fen - acc.outpatient_fund_paid_fen).max(0),
        };
        prop_assert!(s.fund_fen <= remaining);
        let eligible = s.total_fen - s.self_pay_fen - s.class_b_share_fen;
        prop_assert!(i128::from(s.fund_fen) * 10_000 <= i128::from(eligible) * i128::from(s.rate_bp) + 5_000);
        let rule = policy.rule(c.setting, c.tier);
        prop_assert!(s.rate_bp <= rule.map_or(0, |r| r.rate_bp));
        prop_assert!(s.deductible_fen <= rule.map_or(0, |r| r.deductible_fen));
        // Accumulators grow by exactly the fund (and, for a stay, the deductible).
        let mut want = acc;
        match c.setting {
            Setting::Inpatient => {
                want.inpatient_fund_paid_fen += s.fund_fen;
                want.stay_deductible_paid_fen += s.deductible_fen;
            }
            Setting::Outpatient => want.outpatient_fund_paid_fen += s.fund_fen,
        }
        prop_assert_eq!(s.after, want);
        // Reversal restores them.
        prop_assert_eq!(s.reversed(c.setting), acc);
        // Explanation amounts agree with the split.
        let amount = |code: &str| s.explanation.iter().find(|st| st.code == code).map(|st| st.amount_fen);
        prop_assert_eq!(amount("coinsurance"), Some(s.coinsurance_fen));
        prop_assert_eq!(amount("above_ceiling").unwrap_or(0), s.above_ceiling_fen);
        prop_assert_eq!(amount("fund"), Some(s.fund_fen + s.above_ceiling_fen));
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2_000))]

        #[test]
        fn parts_sum_and_accumulators_hold_with_the_defaults(c in claim_strategy()) {
            check_invariants(&defaults(), &c)?;
        }

        #[test]
        fn parts_sum_and_accumulators_hold_with_any_valid_policy(
            set in policy_strategy(),
            mut c in claim_strategy(),
        ) {
            prop_assert!(set.validate().is_ok());
            c.insured_region = "511600".into();
            c.scheme = Scheme::Resident;
            check_invariants(&set, &c)?;
        }

        #[test]
        fn a_sequence_of_bills_never_passes_the_ceiling_and_reverses_exactly(
            bills in prop::collection::vec((claim_strategy(), any::<bool>()), 1..12),
        ) {
            let set = defaults();
            let start = Accumulators::default();
            let mut acc = start;
            let mut settled = Vec::new();
            for (mut c, same_stay) in bills {
                c.insured_region = "511600".into();
                c.scheme = Scheme::Resident;
                if !same_stay { acc.stay_deductible_paid_fen = 0; }
                c.accumulators = acc;
                let s = adjudicate(&set, &c).map_err(|e| TestCaseError::fail(e.to_string()))?;
                prop_assert!(s.after.inpatient_fund_paid_fen <= 30_000_000);
                prop_assert!(s.after.outpatient_fund_paid_fen <= 40_000);
                acc = s.after;
                settled.push((c.setting, c.accumulators, s));
            }
            // Reverse in the opposite order: each reversal gives back the state before it.
            for (setting, before, s) in settled.into_iter().rev() {
                prop_assert_eq!(s.reversed(setting), before);
            }
        }
    }
}
