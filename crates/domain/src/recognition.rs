//! Mutual recognition of lab and imaging results (检验检查结果互认, domain.md M6, issue 5).
//!
//! The rules, as pure functions of their inputs (the caller passes `now`):
//! - a recognition catalogue of items with their validity windows and prices
//!   ([`RecognitionItem`], [`Catalogue`]; *defaults* from domain.md in [`RecognitionDefaults`]);
//! - the scope of an `HR` mark and whether it covers a facility ([`Scope`], [`scope_accepts`]);
//! - lab qualification at the result's report time ([`LabQualification`], [`lab_qualified_at`]);
//! - the tier rule: same level recognise each other, a lower level accepts a higher level's
//!   results ([`tier_accepts`]);
//! - the order-time check: per ordered item the best recognisable prior result or why none
//!   qualifies ([`check_order`]);
//! - repeating a recognisable item needs a recorded reason ([`RepeatReason`], [`repeat_allowed`]);
//! - the savings ledger: tests avoided and money saved per facility and month ([`Savings`],
//!   [`monthly_savings`]).

use std::collections::{BTreeMap, BTreeSet};

use time::{Duration, Month, OffsetDateTime};
use uuid::Uuid;

use crate::error::{DomainError, FieldError, Problems};
use crate::facility::{Facility, Tier};
use crate::referral::china_date;

// ---------------------------------------------------------------------------------------
// Catalogue
// ---------------------------------------------------------------------------------------

code_enum! {
    /// What kind of item: decides the default validity window.
    ItemKind {
        /// Lab items that change fast (e.g. electrolytes, blood count).
        LabDynamic = "lab_dynamic",
        /// Lab items that change slowly (e.g. most chemistry, HbA1c).
        LabStable = "lab_stable",
        /// Imaging (CT, MRI, ultrasound, X-ray, nuclear medicine).
        Imaging = "imaging",
        /// Electrophysiology (ECG, EEG, EMG).
        Electrophysiology = "electrophysiology",
    }
}

impl ItemKind {
    pub fn is_lab(self) -> bool {
        matches!(self, ItemKind::LabDynamic | ItemKind::LabStable)
    }
}

/// Default validity windows in days, per kind. *Defaults* from domain.md M6: dynamic lab
/// items 7 days, stable ones 30, imaging 30–90 (30 unless the item says otherwise).
/// Electrophysiology is grouped with imaging by the national rule and takes its default.
/// Every number is regional configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RecognitionDefaults {
    pub lab_dynamic_days: u32,
    pub lab_stable_days: u32,
    pub imaging_days: u32,
    pub electrophysiology_days: u32,
}

impl Default for RecognitionDefaults {
    fn default() -> Self {
        Self { lab_dynamic_days: 7, lab_stable_days: 30, imaging_days: 30, electrophysiology_days: 30 }
    }
}

impl RecognitionDefaults {
    /// The default validity window of an item of `kind`.
    pub fn validity(&self, kind: ItemKind) -> Duration {
        let days = match kind {
            ItemKind::LabDynamic => self.lab_dynamic_days,
            ItemKind::LabStable => self.lab_stable_days,
            ItemKind::Imaging => self.imaging_days,
            ItemKind::Electrophysiology => self.electrophysiology_days,
        };
        Duration::days(i64::from(days))
    }
}

/// (De)serialises a validity window as whole days (`validity_days` in configuration).
mod days {
    use serde::{Deserialize, Deserializer, Serializer};
    use time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_i64(d.whole_days())
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::days(i64::from(u32::deserialize(d)?)))
    }
}

/// One recognisable item of the regional catalogue.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RecognitionItem {
    /// Local item code, the catalogue key.
    pub code: String,
    /// LOINC code where one exists; results coded in LOINC find the item through it.
    #[serde(default)]
    pub loinc: Option<String>,
    pub name: String,
    pub kind: ItemKind,
    /// How long after the specimen/exam time a result stays recognisable.
    #[serde(with = "days", rename = "validity_days")]
    pub validity: Duration,
    /// Price of the item in fen: what a reused result saves.
    pub price_fen: i64,
    /// Unit of a lab item's value (e.g. `mmol/L`, `%`); `None` for imaging and unitless items.
    #[serde(default)]
    pub unit: Option<String>,
    /// The value must be a number (lab items with a numeric result).
    #[serde(default)]
    pub numeric: bool,
}

impl RecognitionItem {
    /// An item with the default validity of its kind.
    pub fn new(code: &str, name: &str, kind: ItemKind, price_fen: i64, defaults: &RecognitionDefaults) -> Self {
        Self {
            code: code.to_owned(),
            loinc: None,
            name: name.to_owned(),
            kind,
            validity: defaults.validity(kind),
            price_fen,
            unit: None,
            numeric: false,
        }
    }

    /// Check one item; field names are prefixed with `at` (e.g. `items[3]`).
    fn check(&self, at: &str, p: &mut Problems) {
        if !valid_code(&self.code) {
            p.add(
                &format!("{at}.code"),
                "recognition.item_code",
                "an item code is 1-32 letters, digits, '.', '-' or '_'",
            );
        }
        if let Some(l) = &self.loinc
            && !is_loinc(l)
        {
            p.add(
                &format!("{at}.loinc"),
                "recognition.loinc",
                format!("{l} is not a LOINC code (digits, '-', check digit)"),
            );
        }
        if self.name.trim().is_empty() {
            p.add(&format!("{at}.name"), "text.empty", "must not be empty");
        }
        if self.validity <= Duration::ZERO {
            p.add(&format!("{at}.validity_days"), "recognition.validity", "a validity window is at least one day");
        }
        if self.price_fen < 0 {
            p.add(&format!("{at}.price_fen"), "recognition.price", "a price is not negative");
        }
        if !self.kind.is_lab() && (self.numeric || self.unit.is_some()) {
            p.add(&format!("{at}.kind"), "recognition.kind", "only lab items have a unit or a numeric value");
        }
    }
}

fn valid_code(s: &str) -> bool {
    !s.is_empty() && s.len() <= 32 && s.bytes().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'-' | b'_'))
}

/// LOINC: 1-7 digits, '-', the mod-10 check digit.
fn is_loinc(s: &str) -> bool {
    let Some((body, check)) = s.split_once('-') else { return false };
    if body.is_empty()
        || body.len() > 7
        || check.len() != 1
        || !body.bytes().chain(check.bytes()).all(|c| c.is_ascii_digit())
    {
        return false;
    }
    // Luhn (mod 10) over the body: double every second digit from the right, starting with the rightmost.
    let sum: u32 = body
        .bytes()
        .rev()
        .enumerate()
        .map(|(i, c)| {
            let d = u32::from(c - b'0');
            if i % 2 == 0 {
                let x = d * 2;
                x / 10 + x % 10
            } else {
                d
            }
        })
        .sum();
    (10 - sum % 10) % 10 == u32::from(check.as_bytes()[0] - b'0')
}

/// The recognition catalogue of a region: items by local code, LOINC codes mapped to them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Catalogue {
    items: BTreeMap<String, RecognitionItem>,
    loinc: BTreeMap<String, String>,
}

impl Catalogue {
    /// Build from items, refusing invalid items and duplicate codes (local or LOINC).
    pub fn new(items: Vec<RecognitionItem>) -> Result<Self, DomainError> {
        let mut p = Problems::default();
        let mut cat = Catalogue::default();
        for (i, item) in items.into_iter().enumerate() {
            let at = format!("items[{i}]");
            item.check(&at, &mut p);
            if cat.items.contains_key(&item.code) || cat.loinc.contains_key(&item.code) {
                p.add(&format!("{at}.code"), "recognition.duplicate", format!("item {} is listed twice", item.code));
            }
            if let Some(l) = &item.loinc {
                if cat.loinc.contains_key(l) || cat.items.contains_key(l) {
                    p.add(&format!("{at}.loinc"), "recognition.duplicate", format!("LOINC {l} is mapped twice"));
                }
                cat.loinc.insert(l.clone(), item.code.clone());
            }
            cat.items.insert(item.code.clone(), item);
        }
        p.into_result().map(|()| cat)
    }

    /// The item with this local or LOINC code.
    pub fn get(&self, code: &str) -> Option<&RecognitionItem> {
        let code = code.trim();
        self.items.get(code).or_else(|| self.loinc.get(code).and_then(|c| self.items.get(c)))
    }

    pub fn items(&self) -> impl Iterator<Item = &RecognitionItem> {
        self.items.values()
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}

// ---------------------------------------------------------------------------------------
// Scopes, facilities, tiers, qualifications
// ---------------------------------------------------------------------------------------

/// The scope of an `HR` mark: where the result is recognised ("鄂HR", "武汉HR", …).
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Scope {
    /// Inside one county medical community (医共体).
    Community { community_id: Uuid },
    /// Inside one prefecture-level city: a GB/T 2260 code whose first 4 digits name it
    /// (`5116` or `511600`).
    City { region: String },
    /// Inside one province: the 2-digit province code (`51`).
    Province { province: String },
    /// A named cross-region agreement (e.g. 川渝 Chengdu–Chongqing) over whole provinces.
    Agreement { name: String, provinces: BTreeSet<String> },
}

impl Scope {
    /// The mark as printed: `HR` with its scope's prefix.
    pub fn label(&self) -> String {
        match self {
            Scope::Community { .. } => "医共体HR".to_owned(),
            Scope::City { region } => format!("{}HR", prefix(region, 4)),
            Scope::Province { province } => format!("{}HR", prefix(province, 2)),
            Scope::Agreement { name, .. } => format!("{name}HR"),
        }
    }
}

fn prefix(s: &str, n: usize) -> &str {
    s.trim().get(..n).unwrap_or("")
}

/// What the rules need to know about a facility: where it is and its tier.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FacilityContext {
    pub facility_id: Uuid,
    pub community_id: Option<Uuid>,
    /// 6-digit GB/T 2260 code.
    pub region_code: String,
    pub tier: Tier,
}

impl FacilityContext {
    pub fn of(f: &Facility) -> Self {
        Self { facility_id: f.id, community_id: f.community_id, region_code: f.region_code.clone(), tier: f.tier }
    }
}

/// Whether a result with `mark` is recognised at the facility `at`. No mark: never.
/// Community: only inside that community. City: same first 4 region digits. Province: same
/// first 2 digits (so a province mark is accepted at any county hospital of the province).
/// Agreement: in any of its provinces.
pub fn scope_accepts(mark: Option<&Scope>, at: &FacilityContext) -> bool {
    let region = at.region_code.trim();
    match mark {
        None => false,
        Some(Scope::Community { community_id }) => at.community_id == Some(*community_id),
        Some(Scope::City { region: city }) => {
            let c = prefix(city, 4);
            !c.is_empty() && prefix(region, 4) == c
        }
        Some(Scope::Province { province }) => {
            let pr = prefix(province, 2);
            !pr.is_empty() && prefix(region, 2) == pr
        }
        Some(Scope::Agreement { provinces, .. }) => {
            let pr = prefix(region, 2);
            !pr.is_empty() && provinces.iter().any(|p| prefix(p, 2) == pr)
        }
    }
}

/// The level (级别) of a tier for recognition. Provincial and national hospitals are both
/// 三甲 (domain.md §3) and so the same level.
pub fn recognition_level(tier: Tier) -> u8 {
    match tier {
        Tier::Village => 0,
        Tier::Township => 1,
        Tier::County => 2,
        Tier::City => 3,
        Tier::Provincial | Tier::National => 4,
    }
}

/// The tier rule: institutions of the same level recognise each other; a lower level
/// accepts a higher level's results; a higher level need not accept a lower level's.
pub fn tier_accepts(result_tier: Tier, ordering_tier: Tier) -> bool {
    recognition_level(result_tier) >= recognition_level(ordering_tier)
}

/// A period in which a lab (or a facility's lab department) held the quality-control
/// status that lets its results carry the `HR` mark.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LabQualification {
    pub lab_id: Uuid,
    #[serde(with = "time::serde::rfc3339")]
    pub qualified_from: OffsetDateTime,
    /// When the status was lost (exclusive); `None` while it holds.
    #[serde(with = "time::serde::rfc3339::option")]
    pub qualified_to: Option<OffsetDateTime>,
}

impl LabQualification {
    /// Qualified at `t`: `qualified_from ≤ t < qualified_to`.
    pub fn covers(&self, t: OffsetDateTime) -> bool {
        self.qualified_from <= t && self.qualified_to.is_none_or(|to| t < to)
    }
}

/// Whether `lab_id` was qualified at `t` (any of its periods covers `t`).
pub fn lab_qualified_at(qualifications: &[LabQualification], lab_id: Uuid, t: OffsetDateTime) -> bool {
    qualifications.iter().any(|q| q.lab_id == lab_id && q.covers(t))
}

// ---------------------------------------------------------------------------------------
// Results and the order-time check
// ---------------------------------------------------------------------------------------

/// A stored result of a patient, as the order-time check sees it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PriorResult {
    pub id: Uuid,
    /// Local or LOINC code of the item.
    pub item_code: String,
    /// The performing facility.
    pub facility_id: Uuid,
    pub facility_tier: Tier,
    /// The lab or imaging department that issued it.
    pub lab_id: Uuid,
    /// Specimen collection or exam time: the validity window starts here.
    #[serde(with = "time::serde::rfc3339")]
    pub specimen_time: OffsetDateTime,
    /// Report time: the lab's qualification is judged at this moment.
    #[serde(with = "time::serde::rfc3339")]
    pub report_time: OffsetDateTime,
    /// The `HR` mark with its scope; `None` when the result is not marked.
    #[serde(default)]
    pub mark: Option<Scope>,
    /// Value (lab) or conclusion (imaging), as shown.
    pub value: String,
    #[serde(default)]
    pub unit: Option<String>,
}

impl PriorResult {
    /// End of the validity window: specimen time + the item's validity.
    pub fn valid_until(&self, item: &RecognitionItem) -> OffsetDateTime {
        self.specimen_time + item.validity
    }
}

/// Valid at `now` iff `now ≤ valid_until` (exactly at the end is still valid).
pub fn is_valid_at(valid_until: OffsetDateTime, now: OffsetDateTime) -> bool {
    now <= valid_until
}

code_enum! {
    /// Why one prior result is not recognisable here and now.
    NotRecognisedReason {
        /// The validity window ended before `now`.
        Expired = "expired",
        /// The lab was not qualified at the report time.
        LabNotQualified = "lab_not_qualified",
        /// The result carries no `HR` mark.
        NoMark = "no_mark",
        /// The mark's scope does not cover the ordering facility.
        ScopeDoesNotCover = "scope_does_not_cover",
        /// The result comes from a lower level than the ordering facility.
        LowerTier = "lower_tier",
        /// Specimen or report time after `now`: not a usable result yet.
        NotYetReported = "not_yet_reported",
    }
}

/// One prior result of the ordered item and why it does not qualify.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Rejection {
    pub result_id: Uuid,
    #[serde(with = "time::serde::rfc3339")]
    pub valid_until: OffsetDateTime,
    pub reasons: Vec<NotRecognisedReason>,
}

/// The recognisable prior result shown to the clinician.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RecognisedResult {
    pub result_id: Uuid,
    pub facility_id: Uuid,
    #[serde(with = "time::serde::rfc3339")]
    pub specimen_time: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub report_time: OffsetDateTime,
    pub value: String,
    pub unit: Option<String>,
    pub mark: Scope,
    #[serde(with = "time::serde::rfc3339")]
    pub valid_until: OffsetDateTime,
    /// The item's price: what reusing the result saves.
    pub price_fen: i64,
}

/// The answer for one ordered item.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Answer {
    /// A recognisable result exists: the latest valid one.
    Recognised(RecognisedResult),
    /// None qualifies; each prior result of the item with its reasons (empty: no prior result).
    NotRecognised { rejected: Vec<Rejection> },
    /// The code is not in the recognition catalogue.
    UnknownItem,
}

/// Per ordered item: the code as ordered, the catalogue's local code, and the answer.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ItemAnswer {
    pub ordered_code: String,
    pub item_code: Option<String>,
    pub answer: Answer,
}

impl ItemAnswer {
    pub fn recognised(&self) -> Option<&RecognisedResult> {
        match &self.answer {
            Answer::Recognised(r) => Some(r),
            _ => None,
        }
    }
}

/// Why one prior result does not qualify at `at` and `now` (empty: it qualifies).
pub fn reasons_against(
    result: &PriorResult,
    item: &RecognitionItem,
    at: &FacilityContext,
    qualifications: &[LabQualification],
    now: OffsetDateTime,
) -> Vec<NotRecognisedReason> {
    let mut reasons = Vec::new();
    if result.specimen_time > now || result.report_time > now {
        reasons.push(NotRecognisedReason::NotYetReported);
    }
    if !is_valid_at(result.valid_until(item), now) {
        reasons.push(NotRecognisedReason::Expired);
    }
    if !lab_qualified_at(qualifications, result.lab_id, result.report_time) {
        reasons.push(NotRecognisedReason::LabNotQualified);
    }
    match &result.mark {
        None => reasons.push(NotRecognisedReason::NoMark),
        Some(m) if !scope_accepts(Some(m), at) => reasons.push(NotRecognisedReason::ScopeDoesNotCover),
        Some(_) => {}
    }
    if !tier_accepts(result.facility_tier, at.tier) {
        reasons.push(NotRecognisedReason::LowerTier);
    }
    reasons
}

/// The order-time check: for each ordered item (local or LOINC code), the best recognisable
/// prior result — the latest specimen/exam time among those that qualify (ties: latest
/// report, then id) — or every prior result of the item with why it does not qualify.
pub fn check_order(
    items: &[&str],
    prior: &[PriorResult],
    at: &FacilityContext,
    catalogue: &Catalogue,
    qualifications: &[LabQualification],
    now: OffsetDateTime,
) -> Vec<ItemAnswer> {
    items
        .iter()
        .map(|ordered| {
            let ordered_code = ordered.trim().to_owned();
            let Some(item) = catalogue.get(&ordered_code) else {
                return ItemAnswer { ordered_code, item_code: None, answer: Answer::UnknownItem };
            };
            let mut best: Option<&PriorResult> = None;
            let mut rejected = Vec::new();
            for r in prior.iter().filter(|r| catalogue.get(&r.item_code).is_some_and(|i| i.code == item.code)) {
                let reasons = reasons_against(r, item, at, qualifications, now);
                if reasons.is_empty() {
                    let key = |x: &PriorResult| (x.specimen_time, x.report_time, x.id);
                    if best.is_none_or(|b| key(r) > key(b)) {
                        best = Some(r);
                    }
                } else {
                    rejected.push(Rejection { result_id: r.id, valid_until: r.valid_until(item), reasons });
                }
            }
            let answer = match best.and_then(|r| r.mark.clone().map(|m| (r, m))) {
                Some((r, mark)) => Answer::Recognised(RecognisedResult {
                    result_id: r.id,
                    facility_id: r.facility_id,
                    specimen_time: r.specimen_time,
                    report_time: r.report_time,
                    value: r.value.clone(),
                    unit: r.unit.clone(),
                    mark,
                    valid_until: r.valid_until(item),
                    price_fen: item.price_fen,
                }),
                None => Answer::NotRecognised { rejected },
            };
            ItemAnswer { ordered_code, item_code: Some(item.code.clone()), answer }
        })
        .collect()
}

// ---------------------------------------------------------------------------------------
// Bad input at ingestion
// ---------------------------------------------------------------------------------------

/// Check a result before it is stored: known item code, unit compatible with the item, a
/// number for a numeric item, no future specimen time, report not before the specimen, and
/// an `HR` mark only from a lab qualified at the report time. All problems are listed.
pub fn validate_result(
    result: &PriorResult,
    catalogue: &Catalogue,
    qualifications: &[LabQualification],
    now: OffsetDateTime,
) -> Result<(), DomainError> {
    let mut p = Problems::default();
    match catalogue.get(&result.item_code) {
        None => p.add("item_code", "recognition.unknown_item", format!("{} is not in the catalogue", result.item_code)),
        Some(item) => {
            if let Some(u) = &item.unit {
                let ok = result.unit.as_deref().is_some_and(|ru| ru.trim().eq_ignore_ascii_case(u.trim()));
                if !ok {
                    p.add("unit", "recognition.unit", format!("{} is reported in {u}", item.code));
                }
            }
            if item.numeric && !result.value.trim().parse::<f64>().is_ok_and(f64::is_finite) {
                p.add("value", "recognition.not_numeric", format!("{} needs a number", item.code));
            }
        }
    }
    if result.specimen_time > now {
        p.add("specimen_time", "recognition.future", "the specimen time is in the future");
    }
    if result.report_time < result.specimen_time {
        p.add("report_time", "recognition.report_before_specimen", "the report cannot precede the specimen");
    }
    if result.mark.is_some() && !lab_qualified_at(qualifications, result.lab_id, result.report_time) {
        p.push(FieldError::new(
            "mark",
            "recognition.lab_not_qualified",
            "the lab was not qualified for HR at the report time",
        ));
    }
    p.into_result()
}

// ---------------------------------------------------------------------------------------
// Repeats
// ---------------------------------------------------------------------------------------

code_enum! {
    /// Recorded reasons for repeating a recognisable item: the national list, then the local ones.
    RepeatReason {
        /// 病情变化 — the condition has changed.
        ConditionChanged = "condition_changed",
        /// The result changes fast as the disease evolves.
        ChangesFast = "changes_fast",
        /// A major decision (surgery, transfusion).
        MajorDecision = "major_decision",
        /// 急诊, 急救.
        Emergency = "emergency",
        /// Forensic or disability assessment.
        ForensicOrDisability = "forensic_or_disability",
        /// Other genuine clinical need.
        OtherClinicalNeed = "other_clinical_need",
        /// Local: the patient asks.
        PatientRequest = "patient_request",
        /// Local: the issuing lab failed external quality assessment.
        LabFailedExternalQa = "lab_failed_external_qa",
        /// Local: the result is too old.
        ResultTooOld = "result_too_old",
    }
}

impl RepeatReason {
    /// On the national list (the rest are local additions).
    pub fn is_national(self) -> bool {
        !matches!(self, RepeatReason::PatientRequest | RepeatReason::LabFailedExternalQa | RepeatReason::ResultTooOld)
    }
}

/// Ordering an item again when a recognisable result exists needs a recorded reason.
/// Without a recognisable result no reason is needed (a given one is harmless).
pub fn repeat_allowed(answer: &ItemAnswer, reason: Option<RepeatReason>) -> Result<(), DomainError> {
    match (&answer.answer, reason) {
        (Answer::Recognised(r), None) => Err(DomainError::field(
            "repeat_reason",
            "recognition.repeat_reason_required",
            format!(
                "{} has a recognisable result valid until {}; record a reason to repeat it",
                answer.item_code.as_deref().unwrap_or(&answer.ordered_code),
                r.valid_until
            ),
        )),
        _ => Ok(()),
    }
}

// ---------------------------------------------------------------------------------------
// Savings
// ---------------------------------------------------------------------------------------

/// Tests avoided and money saved.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Savings {
    pub count: u64,
    pub fen: i64,
}

impl Savings {
    /// One avoided test of this price.
    pub fn add(&mut self, price_fen: i64) {
        self.count += 1;
        self.fen += price_fen;
    }
}

/// A calendar month (China Standard Time).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub struct YearMonth {
    pub year: i32,
    pub month: u8,
}

impl YearMonth {
    /// The month of `t` in China Standard Time.
    pub fn of(t: OffsetDateTime) -> Self {
        let d = china_date(t);
        Self { year: d.year(), month: u8::from(d.month()) }
    }
    pub fn new(year: i32, month: Month) -> Self {
        Self { year, month: u8::from(month) }
    }
}

/// One reused result in the savings ledger.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SavingRecord {
    /// The ordering facility that did not repeat the test.
    pub facility_id: Uuid,
    pub month: YearMonth,
    pub item_code: String,
    pub price_fen: i64,
}

/// The ledger record for an order that reused a recognised result; `None` when nothing was reused.
pub fn saving_for(answer: &ItemAnswer, ordering_facility: Uuid, now: OffsetDateTime) -> Option<SavingRecord> {
    answer.recognised().map(|r| SavingRecord {
        facility_id: ordering_facility,
        month: YearMonth::of(now),
        item_code: answer.item_code.clone().unwrap_or_else(|| answer.ordered_code.clone()),
        price_fen: r.price_fen,
    })
}

/// Tests avoided and fen saved per facility and month: a fold over the ledger.
pub fn monthly_savings<'a>(
    records: impl IntoIterator<Item = &'a SavingRecord>,
) -> BTreeMap<(Uuid, YearMonth), Savings> {
    records.into_iter().fold(BTreeMap::new(), |mut acc, r| {
        acc.entry((r.facility_id, r.month)).or_insert_with(Savings::default).add(r.price_fen);
        acc
    })
}

// ---------------------------------------------------------------------------------------
// Regional configuration (the catalogue file)
// ---------------------------------------------------------------------------------------

/// The shipped sample configuration (`data/recognition-default.toml`).
pub const DEFAULT_RECOGNITION_TOML: &str = include_str!("../data/recognition-default.toml");

/// A named cross-region agreement: its `HR` mark is recognised in each of its provinces.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Agreement {
    pub name: String,
    /// 2-digit GB/T 2260 province codes.
    pub provinces: BTreeSet<String>,
}

/// One `[[items]]` entry of the file: an item whose window may be left to its kind's default.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ItemEntry {
    code: String,
    #[serde(default)]
    loinc: Option<String>,
    name: String,
    kind: ItemKind,
    #[serde(default)]
    validity_days: Option<u32>,
    price_fen: i64,
    #[serde(default)]
    unit: Option<String>,
    #[serde(default)]
    numeric: bool,
    #[serde(default)]
    reference_low: Option<f64>,
    #[serde(default)]
    reference_high: Option<f64>,
}

#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    #[serde(default)]
    defaults: RecognitionDefaults,
    #[serde(default)]
    agreements: Vec<Agreement>,
    items: Vec<ItemEntry>,
}

/// A reference range `[low, high]` in the item's unit.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ReferenceRange {
    pub low: f64,
    pub high: f64,
}

/// A region's recognition configuration: the catalogue, the agreements, the default reference
/// ranges. Lab qualifications change over time and are data (the store keeps them).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RecognitionConfig {
    pub defaults: RecognitionDefaults,
    pub catalogue: Catalogue,
    pub agreements: Vec<Agreement>,
    reference: BTreeMap<String, ReferenceRange>,
}

impl RecognitionConfig {
    /// Parse and validate a configuration file (see `data/recognition-default.toml`).
    pub fn load_toml(text: &str) -> Result<Self, DomainError> {
        let file: ConfigFile = toml::from_str(text).map_err(|e| {
            DomainError::field("recognition", "recognition.syntax", format!("the recognition file is not valid: {e}"))
        })?;
        let mut p = Problems::default();
        let mut reference = BTreeMap::new();
        let mut items = Vec::with_capacity(file.items.len());
        for (i, e) in file.items.into_iter().enumerate() {
            match (e.reference_low, e.reference_high) {
                (Some(low), Some(high)) if low.is_finite() && high.is_finite() && low <= high => {
                    reference.insert(e.code.clone(), ReferenceRange { low, high });
                }
                (None, None) => {}
                _ => p.add(
                    &format!("items[{i}].reference_low"),
                    "recognition.reference_range",
                    "give both reference_low and reference_high, low ≤ high",
                ),
            }
            let validity = e.validity_days.map_or(file.defaults.validity(e.kind), |d| Duration::days(i64::from(d)));
            let item = RecognitionItem {
                code: e.code,
                loinc: e.loinc,
                name: e.name,
                kind: e.kind,
                validity,
                price_fen: e.price_fen,
                unit: e.unit,
                numeric: e.numeric,
            };
            items.push(item);
        }
        let mut names = BTreeSet::new();
        for (i, a) in file.agreements.iter().enumerate() {
            if a.name.trim().is_empty() || !names.insert(a.name.trim()) {
                p.add(&format!("agreements[{i}].name"), "recognition.agreement", "an agreement has a unique name");
            }
            if a.provinces.is_empty()
                || a.provinces.iter().any(|pr| pr.len() != 2 || !pr.bytes().all(|c| c.is_ascii_digit()))
            {
                p.add(
                    &format!("agreements[{i}].provinces"),
                    "recognition.agreement",
                    "list the agreement's provinces as 2-digit codes",
                );
            }
        }
        let catalogue = match Catalogue::new(items) {
            Ok(c) => Some(c),
            Err(DomainError::Invalid(errs)) => {
                errs.into_iter().for_each(|e| p.push(e));
                None
            }
            Err(e) => return Err(e),
        };
        p.into_result()?;
        Ok(Self {
            defaults: file.defaults,
            catalogue: catalogue.unwrap_or_default(),
            agreements: file.agreements,
            reference,
        })
    }

    /// The shipped sample configuration (checked by the tests; an empty one if it were broken).
    pub fn default_config() -> Self {
        Self::load_toml(DEFAULT_RECOGNITION_TOML).unwrap_or_default()
    }

    /// The agreement of this name.
    pub fn agreement(&self, name: &str) -> Option<&Agreement> {
        self.agreements.iter().find(|a| a.name == name.trim())
    }

    /// The default reference range of the item with this local code.
    pub fn reference(&self, code: &str) -> Option<ReferenceRange> {
        self.reference.get(code).copied()
    }
}

#[cfg(test)]
mod config_tests {
    use super::*;

    #[test]
    fn the_shipped_file_loads_with_domain_md_windows() {
        let c = RecognitionConfig::load_toml(DEFAULT_RECOGNITION_TOML).expect("the default file is valid");
        // domain.md M6: dynamic lab 7 days, stable 30, imaging 30-90; the example region's HbA1c 60
        assert_eq!(c.catalogue.get("K").expect("K").validity, Duration::days(7));
        assert_eq!(c.catalogue.get("CREA").expect("CREA").validity, Duration::days(30));
        assert_eq!(c.catalogue.get("4548-4").expect("HbA1c by LOINC").validity, Duration::days(60));
        assert_eq!(c.catalogue.get("XR-CHEST").expect("XR").validity, Duration::days(30));
        assert_eq!(c.catalogue.get("CT-HEAD").expect("CT").validity, Duration::days(90));
        for item in c.catalogue.items().filter(|i| i.kind == ItemKind::Imaging) {
            assert!((30..=90).contains(&item.validity.whole_days()), "{}", item.code);
        }
        let cc = c.agreement("川渝").expect("the Chengdu–Chongqing agreement");
        assert!(cc.provinces.contains("51") && cc.provinces.contains("50"));
        assert_eq!(c.reference("K"), Some(ReferenceRange { low: 3.5, high: 5.3 }));
    }

    #[test]
    fn a_bad_file_names_each_problem() {
        let text = r#"
            [[agreements]]
            name = "川渝"
            provinces = ["5"]
            [[items]]
            code = "K"
            name = "K"
            kind = "lab_dynamic"
            price_fen = -1
            reference_low = 5.0
            [[items]]
            code = "K"
            name = "K again"
            kind = "lab_dynamic"
            price_fen = 1
        "#;
        let Err(DomainError::Invalid(errs)) = RecognitionConfig::load_toml(text) else { panic!("refused") };
        let fields: Vec<&str> = errs.iter().map(|e| e.field.as_str()).collect();
        assert!(fields.contains(&"agreements[0].provinces"), "{fields:?}");
        assert!(fields.contains(&"items[0].reference_low"), "{fields:?}");
        assert!(fields.contains(&"items[0].price_fen"), "{fields:?}");
        assert!(fields.contains(&"items[1].code"), "{fields:?}");
        assert!(RecognitionConfig::load_toml("items = 3").is_err());
    }
}
