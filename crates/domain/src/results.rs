//! Lab and imaging results (issue 5): reports, observations and their validation, and the
//! clinician's decision on each ordered item (reuse a recognised result, repeat it with a
//! reason, or perform it when nothing is recognisable).
//!
//! A lab report carries observations (item code, value with unit, reference range, abnormal
//! flag); an imaging or electrophysiology report carries one exam (modality, body site,
//! findings, conclusion). Each observation, and each exam, is one *entry*: the unit the
//! order-time check ([`crate::recognition::check_order`]) recognises or not. The rules of
//! recognition themselves live in [`crate::recognition`]; this module turns what a lab system
//! sends into entries, refusing bad input with a reason per field.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::error::{DomainError, FieldError, Problems};
use crate::facility::Tier;
use crate::recognition::{
    Answer, ItemAnswer, ItemKind, LabQualification, PriorResult, RecognitionConfig, RecognitionItem, ReferenceRange,
    RepeatReason, Scope, repeat_allowed, validate_result,
};

/// Most observations one report may carry.
pub const MAX_OBSERVATIONS: usize = 200;
/// Longest free text (findings, conclusion, reference text) in characters.
pub const MAX_TEXT: usize = 4_000;

code_enum! {
    /// Lab report or imaging/exam report.
    Category {
        Lab = "lab",
        Imaging = "imaging",
    }
}

code_enum! {
    /// The abnormal flag of an observation (HL7 v2 table 0078, reduced).
    AbnormalFlag {
        Normal = "normal",
        Low = "low",
        High = "high",
        /// Abnormal without a direction (e.g. a qualitative result).
        Abnormal = "abnormal",
        /// Critical value (危急值).
        Critical = "critical",
    }
}

code_enum! {
    /// Imaging and electrophysiology modalities (DICOM modality codes, reduced).
    Modality {
        Ct = "ct",
        Mr = "mr",
        Us = "us",
        Xr = "xr",
        Nm = "nm",
        Ecg = "ecg",
        Other = "other",
    }
}

/// One observation of a lab report as the lab system sends it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewObservation {
    /// Local item code or LOINC.
    pub code: String,
    /// The value as reported (a number for numeric items).
    pub value: String,
    #[serde(default)]
    pub unit: Option<String>,
    #[serde(default)]
    pub reference_low: Option<f64>,
    #[serde(default)]
    pub reference_high: Option<f64>,
    /// Free-text range for qualitative items ("阴性").
    #[serde(default)]
    pub reference_text: Option<String>,
    /// The lab's flag; when absent it is computed from the reference range.
    #[serde(default)]
    pub flag: Option<AbnormalFlag>,
}

/// An imaging or electrophysiology exam as the department sends it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImagingReport {
    /// Local item code or LOINC of the exam.
    pub code: String,
    pub modality: Modality,
    pub body_site: String,
    pub findings: String,
    pub conclusion: String,
}

/// A report as a lab system sends it (the JSON body of `POST /api/v1/results`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewReport {
    pub patient_id: Uuid,
    /// The performing facility.
    pub facility_id: Uuid,
    /// The lab or imaging department (its qualification decides whether `HR` may be carried).
    pub lab_id: Uuid,
    pub category: Category,
    /// Specimen collection (lab) or exam time.
    #[serde(with = "time::serde::rfc3339")]
    pub specimen_time: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub report_time: OffsetDateTime,
    /// The `HR` mark and its scope; `None`: not marked.
    #[serde(default)]
    pub mark: Option<Scope>,
    #[serde(default)]
    pub observations: Vec<NewObservation>,
    #[serde(default)]
    pub imaging: Option<ImagingReport>,
}

/// One recognisable unit of a stored report: an observation or the exam of an imaging report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    pub id: Uuid,
    /// The catalogue's local code.
    pub item_code: String,
    /// The code as the lab sent it (local or LOINC).
    pub sent_code: String,
    /// The value (lab) or the conclusion (imaging).
    pub value: String,
    /// The value as a number, for numeric items (trends).
    pub value_num: Option<f64>,
    pub unit: Option<String>,
    pub reference: Option<ReferenceRange>,
    pub reference_text: Option<String>,
    pub flag: Option<AbnormalFlag>,
}

/// A validated report, ready to store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub id: Uuid,
    /// The patient's region key (the store's distribution key).
    pub region_key: String,
    pub patient_id: Uuid,
    pub facility_id: Uuid,
    pub facility_tier: Tier,
    pub lab_id: Uuid,
    pub category: Category,
    #[serde(with = "time::serde::rfc3339")]
    pub specimen_time: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub report_time: OffsetDateTime,
    pub mark: Option<Scope>,
    pub imaging: Option<ImagingReport>,
    pub entries: Vec<Entry>,
}

impl Report {
    /// The report's entries as the order-time check sees them.
    pub fn prior_results(&self) -> impl Iterator<Item = PriorResult> + '_ {
        self.entries.iter().map(|e| self.prior(e))
    }

    /// One entry as the order-time check sees it.
    pub fn prior(&self, e: &Entry) -> PriorResult {
        PriorResult {
            id: e.id,
            item_code: e.item_code.clone(),
            facility_id: self.facility_id,
            facility_tier: self.facility_tier,
            lab_id: self.lab_id,
            specimen_time: self.specimen_time,
            report_time: self.report_time,
            mark: self.mark.clone(),
            value: e.value.clone(),
            unit: e.unit.clone(),
        }
    }
}

/// Who performed the report: the facility's tier and the patient's region key, looked up by
/// the caller.
#[derive(Debug, Clone)]
pub struct Performer {
    pub facility_tier: Tier,
    pub region_key: String,
}

/// Validate a report and build it: known item codes of the right kind (lab items in a lab
/// report, an imaging or electrophysiology item in an imaging report), units compatible with
/// the item, numbers for numeric items, no future specimen time, the report not before the
/// specimen, an `HR` mark only from a lab qualified at the report time and with a known
/// scope. Every problem is listed with its field (`observations[2].unit`, `mark`, …).
pub fn prepare_report(
    new: NewReport,
    performer: &Performer,
    config: &RecognitionConfig,
    qualifications: &[LabQualification],
    now: OffsetDateTime,
    mut next_id: impl FnMut() -> Uuid,
) -> Result<Report, DomainError> {
    let mut p = Problems::default();
    let mark = new.mark.as_ref().and_then(|m| p.take(resolve_mark(m, config)));
    let entries = match new.category {
        Category::Lab => lab_entries(&new, config, &mut p, &mut next_id),
        Category::Imaging => imaging_entry(&new, config, &mut p, &mut next_id).into_iter().collect(),
    };
    // the rules of recognition::validate_result, per entry; report-level problems once
    let mut seen_report_level = false;
    for (i, e) in entries.iter().enumerate() {
        let prior = PriorResult {
            id: e.id,
            item_code: e.item_code.clone(),
            facility_id: new.facility_id,
            facility_tier: performer.facility_tier,
            lab_id: new.lab_id,
            specimen_time: new.specimen_time,
            report_time: new.report_time,
            mark: mark.clone(),
            value: e.value.clone(),
            unit: e.unit.clone(),
        };
        if let Err(DomainError::Invalid(errs)) = validate_result(&prior, &config.catalogue, qualifications, now) {
            for err in errs {
                match entry_field(new.category, i, &err.field) {
                    Some(field) => p.push(FieldError { field, ..err }),
                    None if !seen_report_level => p.push(err),
                    None => {}
                }
            }
            seen_report_level = true;
        }
    }
    if entries.is_empty() && new.specimen_time > now {
        p.add("specimen_time", "recognition.future", "the specimen time is in the future");
    }
    if new.report_time > now {
        p.add("report_time", "recognition.future", "the report time is in the future");
    }
    p.into_result()?;
    Ok(Report {
        id: next_id(),
        region_key: performer.region_key.clone(),
        patient_id: new.patient_id,
        facility_id: new.facility_id,
        facility_tier: performer.facility_tier,
        lab_id: new.lab_id,
        category: new.category,
        specimen_time: new.specimen_time,
        report_time: new.report_time,
        mark,
        imaging: new.imaging,
        entries,
    })
}

/// The field of an entry-level problem (`validate_result` names `item_code`, `unit`, `value`);
/// `None` for report-level fields (times, mark).
fn entry_field(category: Category, i: usize, field: &str) -> Option<String> {
    let leaf = match field {
        "item_code" => "code",
        "unit" | "value" => field,
        _ => return None,
    };
    Some(match category {
        Category::Lab => format!("observations[{i}].{leaf}"),
        Category::Imaging => format!("imaging.{leaf}"),
    })
}

/// A mark as stored: an agreement takes its provinces from the configuration (a lab names
/// the agreement, the region decides what it covers); codes must be digits.
pub fn resolve_mark(mark: &Scope, config: &RecognitionConfig) -> Result<Scope, FieldError> {
    let digits = |s: &str, n: usize| s.len() >= n && s.len() <= 6 && s.bytes().all(|c| c.is_ascii_digit());
    match mark {
        Scope::Agreement { name, .. } => match config.agreement(name) {
            Some(a) => Ok(Scope::Agreement { name: a.name.clone(), provinces: a.provinces.clone() }),
            None => Err(FieldError::new(
                "mark.name",
                "recognition.unknown_agreement",
                format!("{name} is not a recognition agreement of this region"),
            )),
        },
        Scope::City { region } if !digits(region.trim(), 4) => Err(FieldError::new(
            "mark.region",
            "recognition.mark_region",
            "a city mark names the city by its GB/T 2260 code (4 or 6 digits)",
        )),
        Scope::Province { province } if !digits(province.trim(), 2) => Err(FieldError::new(
            "mark.province",
            "recognition.mark_region",
            "a province mark names the province by its 2-digit code",
        )),
        other => Ok(other.clone()),
    }
}

fn lab_entries(
    new: &NewReport,
    config: &RecognitionConfig,
    p: &mut Problems,
    next_id: &mut impl FnMut() -> Uuid,
) -> Vec<Entry> {
    if new.imaging.is_some() {
        p.add("imaging", "results.category", "a lab report carries observations, not an imaging exam");
    }
    if new.observations.is_empty() || new.observations.len() > MAX_OBSERVATIONS {
        p.add(
            "observations",
            "results.observations",
            format!("a lab report carries 1 to {MAX_OBSERVATIONS} observations (got {})", new.observations.len()),
        );
    }
    let mut out = Vec::with_capacity(new.observations.len());
    for (i, o) in new.observations.iter().enumerate() {
        let item = config.catalogue.get(&o.code);
        if let Some(item) = item
            && !item.kind.is_lab()
        {
            p.add(
                &format!("observations[{i}].code"),
                "results.not_a_lab_item",
                format!("{} is an exam; send it as an imaging report", item.code),
            );
        }
        if o.reference_text.as_ref().is_some_and(|t| t.chars().count() > MAX_TEXT) {
            p.add(&format!("observations[{i}].reference_text"), "text.too_long", "at most 4,000 characters");
        }
        let reference = reference_of(o, item, config, p, i);
        let value_num =
            item.filter(|it| it.numeric).and_then(|_| o.value.trim().parse::<f64>().ok()).filter(|v| v.is_finite());
        let flag = o.flag.or_else(|| value_num.zip(reference).map(|(v, r)| flag_of(v, r)));
        out.push(Entry {
            id: next_id(),
            item_code: item.map_or_else(|| o.code.trim().to_owned(), |it| it.code.clone()),
            sent_code: o.code.trim().to_owned(),
            value: o.value.trim().to_owned(),
            value_num,
            unit: o.unit.as_ref().map(|u| u.trim().to_owned()),
            reference,
            reference_text: o.reference_text.clone(),
            flag,
        });
    }
    out
}

/// The reference range sent, else the catalogue's; a half-given or inverted range is refused.
fn reference_of(
    o: &NewObservation,
    item: Option<&RecognitionItem>,
    config: &RecognitionConfig,
    p: &mut Problems,
    i: usize,
) -> Option<ReferenceRange> {
    match (o.reference_low, o.reference_high) {
        (Some(low), Some(high)) if low.is_finite() && high.is_finite() && low <= high => {
            Some(ReferenceRange { low, high })
        }
        (None, None) => item.and_then(|it| config.reference(&it.code)),
        _ => {
            p.add(
                &format!("observations[{i}].reference_low"),
                "results.reference_range",
                "give both reference_low and reference_high, low ≤ high",
            );
            None
        }
    }
}

/// Low below the range, high above it, normal inside (both ends inside).
pub fn flag_of(value: f64, range: ReferenceRange) -> AbnormalFlag {
    if value < range.low {
        AbnormalFlag::Low
    } else if value > range.high {
        AbnormalFlag::High
    } else {
        AbnormalFlag::Normal
    }
}

fn imaging_entry(
    new: &NewReport,
    config: &RecognitionConfig,
    p: &mut Problems,
    next_id: &mut impl FnMut() -> Uuid,
) -> Option<Entry> {
    if !new.observations.is_empty() {
        p.add("observations", "results.category", "an imaging report carries one exam, not observations");
    }
    let Some(img) = &new.imaging else {
        p.add(
            "imaging",
            "results.imaging_missing",
            "an imaging report needs its exam (code, modality, findings, conclusion)",
        );
        return None;
    };
    let item = config.catalogue.get(&img.code);
    if let Some(item) = item
        && item.kind.is_lab()
    {
        p.add("imaging.code", "results.not_an_exam", format!("{} is a lab item; send it as a lab report", item.code));
    }
    for (field, text) in [
        ("imaging.body_site", &img.body_site),
        ("imaging.findings", &img.findings),
        ("imaging.conclusion", &img.conclusion),
    ] {
        let n = text.trim().chars().count();
        if n == 0 {
            p.add(field, "text.empty", "must not be empty");
        } else if n > MAX_TEXT {
            p.add(field, "text.too_long", "at most 4,000 characters");
        }
    }
    Some(Entry {
        id: next_id(),
        item_code: item.map_or_else(|| img.code.trim().to_owned(), |it| it.code.clone()),
        sent_code: img.code.trim().to_owned(),
        value: img.conclusion.trim().to_owned(),
        value_num: None,
        unit: None,
        reference: None,
        reference_text: None,
        flag: None,
    })
}

// ---------------------------------------------------------------------------------------
// The clinician's decision on an ordered item
// ---------------------------------------------------------------------------------------

/// What the clinician chose for one ordered item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Choice {
    /// Use the recognised result instead of testing.
    Reuse,
    /// Perform the test (a reason is needed when a recognisable result exists).
    Perform,
}

code_enum! {
    /// How an ordered item was settled.
    Outcome {
        /// A recognised result was reused: the test was avoided (the savings ledger).
        Reused = "reused",
        /// A recognisable result existed and the test was repeated, for the recorded reason.
        Repeated = "repeated",
        /// Nothing recognisable existed (or the item is not in the catalogue): tested.
        Performed = "performed",
    }
}

/// The decision on one ordered item, ready to record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    pub item_code: String,
    pub outcome: Outcome,
    /// The result reused, or the recognisable one that was repeated.
    pub result_id: Option<Uuid>,
    pub repeat_reason: Option<RepeatReason>,
    /// The item's price; for a reuse, what was saved.
    pub price_fen: i64,
}

/// Decide an ordered item from the order-time check's answer: reusing needs a recognised
/// result; performing a recognisable item needs a reason (domain.md M6); otherwise the item
/// is simply performed. `at` names the field of the item in the request.
pub fn decide(
    answer: &ItemAnswer,
    choice: Choice,
    reason: Option<RepeatReason>,
    price_fen: i64,
    at: &str,
) -> Result<Decision, DomainError> {
    let item_code = answer.item_code.clone().unwrap_or_else(|| answer.ordered_code.clone());
    let recognised = answer.recognised();
    match choice {
        Choice::Reuse => match recognised {
            Some(r) => Ok(Decision {
                item_code,
                outcome: Outcome::Reused,
                result_id: Some(r.result_id),
                repeat_reason: None,
                price_fen: r.price_fen,
            }),
            None => Err(DomainError::field(
                &format!("{at}.choice"),
                "recognition.nothing_to_reuse",
                format!("{} has no recognisable result to reuse; perform it", answer.ordered_code),
            )),
        },
        Choice::Perform => {
            repeat_allowed(answer, reason).map_err(|e| prefix(e, at))?;
            let outcome = if recognised.is_some() { Outcome::Repeated } else { Outcome::Performed };
            Ok(Decision {
                item_code,
                outcome,
                result_id: recognised.map(|r| r.result_id),
                repeat_reason: if matches!(answer.answer, Answer::Recognised(_)) { reason } else { None },
                price_fen,
            })
        }
    }
}

fn prefix(e: DomainError, at: &str) -> DomainError {
    match e {
        DomainError::Invalid(errs) => DomainError::Invalid(
            errs.into_iter().map(|f| FieldError { field: format!("{at}.{}", f.field), ..f }).collect(),
        ),
        other => other,
    }
}

/// The kind of an item code, when the catalogue knows it (the UI groups by it).
pub fn kind_of(config: &RecognitionConfig, code: &str) -> Option<ItemKind> {
    config.catalogue.get(code).map(|i| i.kind)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recognition::{FacilityContext, check_order};
    use time::Duration;
    use time::macros::datetime;

    const LAB: Uuid = Uuid::from_u128(0x1AB);
    const NOW: OffsetDateTime = datetime!(2026-11-20 10:00 +08:00);

    fn config() -> RecognitionConfig {
        RecognitionConfig::default_config()
    }

    fn quals(from: OffsetDateTime, to: Option<OffsetDateTime>) -> Vec<LabQualification> {
        vec![LabQualification { lab_id: LAB, qualified_from: from, qualified_to: to }]
    }

    fn obs(code: &str, value: &str, unit: &str) -> NewObservation {
        NewObservation {
            code: code.into(),
            value: value.into(),
            unit: Some(unit.into()),
            reference_low: None,
            reference_high: None,
            reference_text: None,
            flag: None,
        }
    }

    fn lab_report(observations: Vec<NewObservation>) -> NewReport {
        NewReport {
            patient_id: Uuid::from_u128(1),
            facility_id: Uuid::from_u128(2),
            lab_id: LAB,
            category: Category::Lab,
            specimen_time: NOW - Duration::hours(3),
            report_time: NOW - Duration::hours(1),
            mark: Some(Scope::Province { province: "51".into() }),
            observations,
            imaging: None,
        }
    }

    fn performer() -> Performer {
        Performer { facility_tier: Tier::County, region_key: "511621".into() }
    }

    fn ids() -> impl FnMut() -> Uuid {
        let mut n = 100u128;
        move || {
            n += 1;
            Uuid::from_u128(n)
        }
    }

    fn fields(e: DomainError) -> Vec<(String, String)> {
        match e {
            DomainError::Invalid(errs) => errs.into_iter().map(|f| (f.field, f.code)).collect(),
            DomainError::Conflict(m) => panic!("conflict {m}"),
        }
    }

    #[test]
    fn a_good_lab_report_gets_flags_from_the_catalogue_range() {
        // K range 3.5–5.3 mmol/L (recognition-default.toml): 5.9 > 5.3 → high; 3.5 is the low end → normal
        let r = lab_report(vec![obs("2823-3", "5.9", "mmol/L"), obs("NA", "140", "mmol/L"), obs("K", "3.5", "mmol/L")]);
        let rep = prepare_report(r, &performer(), &config(), &quals(NOW - Duration::days(400), None), NOW, ids())
            .expect("valid");
        assert_eq!(rep.entries.len(), 3);
        assert_eq!(rep.entries[0].item_code, "K");
        assert_eq!(rep.entries[0].sent_code, "2823-3");
        assert_eq!(rep.entries[0].flag, Some(AbnormalFlag::High));
        assert_eq!(rep.entries[1].flag, Some(AbnormalFlag::Normal));
        assert_eq!(rep.entries[2].flag, Some(AbnormalFlag::Normal));
        assert_eq!(rep.entries[0].value_num, Some(5.9));
    }

    #[test]
    fn every_bad_field_is_named() {
        // unit incompatible, non-numeric value, unknown code, an exam in a lab report, future
        // specimen, HR from a lab not qualified (qualified only from tomorrow)
        let mut r = lab_report(vec![
            obs("K", "4.1", "mg/dL"),
            obs("HBA1C", "high", "%"),
            obs("NOPE", "1", "x"),
            obs("CT-HEAD", "ok", "x"),
        ]);
        r.specimen_time = NOW + Duration::seconds(1);
        r.report_time = NOW + Duration::hours(1);
        let q = quals(NOW + Duration::days(1), None);
        let f = fields(prepare_report(r, &performer(), &config(), &q, NOW, ids()).expect_err("refused"));
        let has = |field: &str, code: &str| f.iter().any(|(a, b)| a == field && b == code);
        assert!(has("observations[0].unit", "recognition.unit"), "{f:?}");
        assert!(has("observations[1].value", "recognition.not_numeric"), "{f:?}");
        assert!(has("observations[2].code", "recognition.unknown_item"), "{f:?}");
        assert!(has("observations[3].code", "results.not_a_lab_item"), "{f:?}");
        assert!(has("specimen_time", "recognition.future"), "{f:?}");
        assert!(has("report_time", "recognition.future"), "{f:?}");
        assert!(has("mark", "recognition.lab_not_qualified"), "{f:?}");
        // report-level problems once, not once per observation
        assert_eq!(f.iter().filter(|(a, _)| a == "mark").count(), 1);
    }

    #[test]
    fn agreement_marks_take_their_provinces_from_the_region() {
        let m = Scope::Agreement { name: "川渝".into(), provinces: Default::default() };
        let Scope::Agreement { provinces, .. } = resolve_mark(&m, &config()).expect("known") else { panic!() };
        assert_eq!(provinces.into_iter().collect::<Vec<_>>(), vec!["50".to_owned(), "51".to_owned()]);
        let unknown = Scope::Agreement { name: "京津冀".into(), provinces: Default::default() };
        assert_eq!(resolve_mark(&unknown, &config()).expect_err("unknown").code, "recognition.unknown_agreement");
        // a Chongqing county hospital (500229, 城口县) accepts a 川渝 mark
        let at = FacilityContext {
            facility_id: Uuid::nil(),
            community_id: None,
            region_code: "500229".into(),
            tier: Tier::County,
        };
        let m = resolve_mark(&m, &config()).expect("known");
        assert!(crate::recognition::scope_accepts(Some(&m), &at));
    }

    #[test]
    fn imaging_reports_carry_one_exam() {
        let mut r = lab_report(vec![]);
        r.category = Category::Imaging;
        r.imaging = Some(ImagingReport {
            code: "CT-HEAD".into(),
            modality: Modality::Ct,
            body_site: "头颅".into(),
            findings: "脑实质未见明显异常密度影".into(),
            conclusion: "头颅CT平扫未见异常".into(),
        });
        let rep = prepare_report(r.clone(), &performer(), &config(), &quals(NOW - Duration::days(1), None), NOW, ids())
            .expect("valid");
        assert_eq!(rep.entries.len(), 1);
        assert_eq!(rep.entries[0].value, "头颅CT平扫未见异常");
        r.imaging.as_mut().expect("exam").code = "K".into();
        r.imaging.as_mut().expect("exam").conclusion = " ".into();
        let f = fields(prepare_report(r, &performer(), &config(), &quals(NOW, None), NOW, ids()).expect_err("bad"));
        assert!(f.contains(&("imaging.code".into(), "results.not_an_exam".into())), "{f:?}");
        assert!(f.contains(&("imaging.conclusion".into(), "text.empty".into())), "{f:?}");
    }

    #[test]
    fn decisions_follow_the_repeat_reason_rule() {
        let cfg = config();
        let r = lab_report(vec![obs("HBA1C", "7.2", "%")]);
        let rep =
            prepare_report(r, &performer(), &cfg, &quals(NOW - Duration::days(400), None), NOW, ids()).expect("ok");
        let priors: Vec<PriorResult> = rep.prior_results().collect();
        let at = FacilityContext {
            facility_id: Uuid::from_u128(9),
            community_id: None,
            region_code: "511621".into(),
            tier: Tier::Township,
        };
        let q = quals(NOW - Duration::days(400), None);
        let answers = check_order(&["HBA1C", "K"], &priors, &at, &cfg.catalogue, &q, NOW);
        // reuse the recognised HbA1c: saves its price, 3,500 fen
        let d = decide(&answers[0], Choice::Reuse, None, 3_500, "items[0]").expect("reuse");
        assert_eq!((d.outcome, d.price_fen, d.result_id), (Outcome::Reused, 3_500, Some(rep.entries[0].id)));
        // repeat it without a reason: refused, naming the item's field
        let e = fields(decide(&answers[0], Choice::Perform, None, 3_500, "items[0]").expect_err("reason needed"));
        assert_eq!(e, vec![("items[0].repeat_reason".into(), "recognition.repeat_reason_required".into())]);
        let d = decide(&answers[0], Choice::Perform, Some(RepeatReason::Emergency), 3_500, "items[0]").expect("ok");
        assert_eq!((d.outcome, d.repeat_reason), (Outcome::Repeated, Some(RepeatReason::Emergency)));
        // K has no prior result: performed, no reason kept, and nothing to reuse
        let d = decide(&answers[1], Choice::Perform, Some(RepeatReason::Emergency), 400, "items[1]").expect("ok");
        assert_eq!((d.outcome, d.repeat_reason), (Outcome::Performed, None));
        let e = fields(decide(&answers[1], Choice::Reuse, None, 400, "items[1]").expect_err("nothing"));
        assert_eq!(e, vec![("items[1].choice".into(), "recognition.nothing_to_reuse".into())]);
    }
}
