//! Generated results and orders with realistic repeat behaviour (issue 5).
//!
//! For each encounter of a resident's year at a facility with a lab (township and up) a few
//! items are ordered: diabetics HbA1c, glucose and creatinine; hypertensives potassium,
//! sodium, creatinine and cholesterol; a stay a blood count, electrolytes, liver and kidney
//! function and a chest X-ray; an emergency at a county hospital a head CT; other visits now
//! and then a blood count or CRP. Each ordered item is checked against the resident's earlier
//! results with the recognition rules ([`check_order`]) at the ordering facility: a
//! recognisable result is reused about 70 % of the time and otherwise repeated with a reason
//! (condition changed, fast-changing, the patient asks, …; an emergency in an emergency);
//! an item with nothing recognisable is performed and its result reported by the facility's
//! lab, with its `HR` mark: community (township centres), province 51 (county hospitals and
//! Chengdu), the city (广安), the 川渝 agreement (Chongqing).
//!
//! Every lab is qualified from the year before; the first township centre's lab loses its
//! status on 1 July, so its later results carry no mark and are not recognised (the rule of
//! domain.md M6 seen in the demo). Deterministic per resident (own stream).

use std::collections::HashMap;

use tiercare_domain::encounter::{Encounter, EncounterClass};
use tiercare_domain::facility::{Facility, Tier};
use tiercare_domain::recognition::{
    FacilityContext, LabQualification, PriorResult, RecognitionConfig, RepeatReason, Scope, check_order,
};
use tiercare_domain::results::{
    Category, Choice, Decision, ImagingReport, Modality, NewObservation, NewReport, Performer, Report, decide,
    prepare_report,
};
use time::{Date, Duration, Month, OffsetDateTime};
use uuid::Uuid;

use crate::{County, Rng, uuid_v7};

/// One ordered item of a generated order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GeneratedOrder {
    pub id: Uuid,
    pub order_id: Uuid,
    pub region_key: String,
    pub patient_id: Uuid,
    pub facility_id: Uuid,
    pub ordered_at: OffsetDateTime,
    pub decision: Decision,
}

/// A resident's year of results and orders.
#[derive(Debug, Clone, Default)]
pub struct YearResults {
    pub reports: Vec<Report>,
    pub orders: Vec<GeneratedOrder>,
}

/// What the generator needs once: the catalogue, the labs' qualifications, each facility.
pub struct ResultsGenerator<'a> {
    county: &'a County,
    config: RecognitionConfig,
    qualifications: Vec<LabQualification>,
    facilities: HashMap<Uuid, &'a Facility>,
}

/// Share of recognisable items reused rather than repeated.
const REUSE_SHARE: f64 = 0.7;

impl<'a> ResultsGenerator<'a> {
    pub fn new(county: &'a County) -> Self {
        Self {
            county,
            config: RecognitionConfig::default_config(),
            qualifications: qualifications(county),
            facilities: county.facilities.iter().map(|f| (f.id, f)).collect(),
        }
    }

    /// The labs' qualification periods (a lab is its facility: `lab_id` = facility id).
    pub fn qualifications(&self) -> &[LabQualification] {
        &self.qualifications
    }

    /// Resident `i`'s results and orders over their encounters (in time order).
    pub fn year_of(&self, i: usize, encounters: &[Encounter]) -> YearResults {
        let seed = self.county.config.seed ^ 0x4E5C_7A11 ^ (i as u64).wrapping_mul(0x2545_F491_4F6C_DD1D);
        let mut rng = Rng::new(seed);
        let resident = &self.county.residents[i];
        let mut out = YearResults::default();
        let mut prior: Vec<PriorResult> = Vec::new();
        for e in encounters {
            let Some(f) = self.facilities.get(&e.facility_id).copied() else { continue };
            if f.tier == Tier::Village {
                continue;
            }
            let items = self.items_for(e, f, resident.diabetes, resident.hypertension, &mut rng);
            if items.is_empty() {
                continue;
            }
            let at = e.started_at;
            let ctx = FacilityContext::of(f);
            let answers = check_order(&items, &prior, &ctx, &self.config.catalogue, &self.qualifications, at);
            let order_id = uuid_v7(ms(at), &mut rng);
            let mut performed = Vec::new();
            for (code, answer) in items.iter().zip(&answers) {
                let Some(item) = self.config.catalogue.get(code) else { continue };
                let (choice, reason) = match answer.recognised() {
                    Some(_) if rng.chance(REUSE_SHARE) => (Choice::Reuse, None),
                    Some(_) => (Choice::Perform, Some(repeat_reason(e.class, &mut rng))),
                    None => (Choice::Perform, None),
                };
                let Ok(decision) = decide(answer, choice, reason, item.price_fen, "item") else { continue };
                if choice == Choice::Perform {
                    performed.push(*code);
                }
                out.orders.push(GeneratedOrder {
                    id: uuid_v7(ms(at), &mut rng),
                    order_id,
                    region_key: resident.patient.region_key.clone(),
                    patient_id: resident.patient.id,
                    facility_id: f.id,
                    ordered_at: at,
                    decision,
                });
            }
            for report in self.reports_for(&performed, e, f, resident, &mut rng) {
                prior.extend(report.prior_results());
                out.reports.push(report);
            }
        }
        out
    }

    /// The items ordered at one encounter.
    fn items_for(
        &self,
        e: &Encounter,
        f: &Facility,
        diabetes: bool,
        hypertension: bool,
        rng: &mut Rng,
    ) -> Vec<&'static str> {
        let mut items: Vec<&'static str> = Vec::new();
        if diabetes && rng.chance(0.6) {
            items.extend(["HBA1C", "GLU", "CREA"]);
        }
        if hypertension && rng.chance(0.5) {
            items.extend(["K", "NA", "CREA", "TC"]);
        }
        match e.class {
            EncounterClass::Inpatient => items.extend(["WBC", "HGB", "PLT", "K", "NA", "ALT", "CREA", "XR-CHEST"]),
            EncounterClass::Emergency if f.tier >= Tier::County => items.extend(["CT-HEAD", "GLU", "K"]),
            _ if rng.chance(0.25) => items.extend(["WBC", "HGB", "CRP"]),
            _ => {}
        }
        let mut seen = std::collections::HashSet::new();
        items.retain(|c| seen.insert(*c));
        items
    }

    /// The reports of the performed items: lab items in one report, each exam in its own.
    fn reports_for(
        &self,
        codes: &[&str],
        e: &Encounter,
        f: &Facility,
        resident: &crate::Resident,
        rng: &mut Rng,
    ) -> Vec<Report> {
        let specimen = e.started_at + Duration::minutes(30);
        let report_time = specimen + Duration::hours(2);
        let mark = self.mark_of(f, report_time);
        let performer = Performer { facility_tier: f.tier, region_key: resident.patient.region_key.clone() };
        let base = |category, observations, imaging| NewReport {
            patient_id: resident.patient.id,
            facility_id: f.id,
            lab_id: f.id,
            category,
            specimen_time: specimen,
            report_time,
            mark: mark.clone(),
            observations,
            imaging,
        };
        let mut news = Vec::new();
        let observations: Vec<NewObservation> = codes
            .iter()
            .filter_map(|c| self.config.catalogue.get(c).filter(|i| i.kind.is_lab()))
            .map(|item| NewObservation {
                code: item.code.clone(),
                value: value_of(&item.code, resident.diabetes, rng),
                unit: item.unit.clone(),
                reference_low: None,
                reference_high: None,
                reference_text: None,
                flag: None,
            })
            .collect();
        if !observations.is_empty() {
            news.push(base(Category::Lab, observations, None));
        }
        for code in codes.iter().filter(|c| self.config.catalogue.get(c).is_some_and(|i| !i.kind.is_lab())) {
            news.push(base(Category::Imaging, Vec::new(), Some(exam(code))));
        }
        let now = self.county.today();
        let mut next = || uuid_v7(ms(report_time), rng);
        news.into_iter()
            .filter_map(|n| prepare_report(n, &performer, &self.config, &self.qualifications, now, &mut next).ok())
            .collect()
    }

    /// The `HR` mark a facility's lab puts on a result reported at `at` (none when the lab
    /// is not qualified then).
    fn mark_of(&self, f: &Facility, at: OffsetDateTime) -> Option<Scope> {
        if !tiercare_domain::recognition::lab_qualified_at(&self.qualifications, f.id, at) {
            return None;
        }
        let region = f.region_code.as_str();
        Some(match f.tier {
            Tier::Village | Tier::Township => Scope::Community { community_id: f.community_id? },
            Tier::City => Scope::City { region: region.get(..4)?.to_owned() },
            _ if region.starts_with("50") => Scope::Agreement { name: "川渝".into(), provinces: Default::default() },
            _ => Scope::Province { province: region.get(..2)?.to_owned() },
        })
        .and_then(|m| tiercare_domain::results::resolve_mark(&m, &self.config).ok())
    }
}

/// Every lab (facility of township tier and up) qualified from 1 January of the year before;
/// the first township centre's lab loses its status on 1 July of the year.
pub fn qualifications(county: &County) -> Vec<LabQualification> {
    let year = county.config.year;
    let jan = |y: i32, m: Month| {
        Date::from_calendar_date(y, m, 1).unwrap_or(Date::MIN).midnight().assume_offset(crate::china())
    };
    let first_township = county.facilities.iter().find(|f| f.tier == Tier::Township).map(|f| f.id);
    county
        .facilities
        .iter()
        .filter(|f| f.tier != Tier::Village)
        .map(|f| LabQualification {
            lab_id: f.id,
            qualified_from: jan(year - 1, Month::January),
            qualified_to: (Some(f.id) == first_township).then(|| jan(year, Month::July)),
        })
        .collect()
}

fn ms(t: OffsetDateTime) -> u64 {
    u64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap_or(0)
}

/// A repeat's reason: an emergency in an emergency; otherwise mostly a changed condition.
fn repeat_reason(class: EncounterClass, rng: &mut Rng) -> RepeatReason {
    if class == EncounterClass::Emergency {
        return RepeatReason::Emergency;
    }
    const REASONS: [RepeatReason; 5] = [
        RepeatReason::ConditionChanged,
        RepeatReason::ChangesFast,
        RepeatReason::PatientRequest,
        RepeatReason::OtherClinicalNeed,
        RepeatReason::MajorDecision,
    ];
    REASONS[rng.weighted(&[0.4, 0.2, 0.15, 0.15, 0.1])]
}

/// A plausible value (mean and spread per item; diabetics' glucose and HbA1c higher), one
/// decimal.
fn value_of(code: &str, diabetic: bool, rng: &mut Rng) -> String {
    let (mean, sd) = match (code, diabetic) {
        ("HBA1C", true) => (7.6, 1.0),
        ("HBA1C", false) => (5.4, 0.3),
        ("GLU", true) => (8.5, 2.0),
        ("GLU", false) => (5.2, 0.6),
        ("K", _) => (4.2, 0.4),
        ("NA", _) => (140.0, 2.5),
        ("CL", _) => (103.0, 2.5),
        ("WBC", _) => (6.5, 2.0),
        ("HGB", _) => (135.0, 15.0),
        ("PLT", _) => (230.0, 50.0),
        ("CRP", _) => (6.0, 5.0),
        ("CREA", _) => (80.0, 20.0),
        ("UREA", _) => (5.5, 1.5),
        ("ALT", _) | ("AST", _) => (25.0, 10.0),
        ("TC", _) => (4.9, 0.9),
        ("TG", _) => (1.6, 0.6),
        ("LDL", _) => (2.9, 0.7),
        ("TSH", _) => (2.0, 0.8),
        _ => (1.0, 0.1),
    };
    // Box–Muller
    let (u1, u2) = (rng.unit().max(1e-12), rng.unit());
    let z = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
    format!("{:.1}", (mean + sd * z).max(0.1))
}

fn exam(code: &str) -> ImagingReport {
    let (modality, site, findings, conclusion) = match code {
        "CT-HEAD" => (Modality::Ct, "头颅", "脑实质未见明显异常密度影，脑室系统未见扩大。", "头颅CT平扫未见明显异常"),
        "CT-CHEST" => (Modality::Ct, "胸部", "双肺纹理清晰，未见明确结节及实变影。", "胸部CT平扫未见明显异常"),
        "XR-CHEST" => (Modality::Xr, "胸部", "双肺纹理稍增多，心影不大，膈面光整。", "心肺膈未见明显异常"),
        "US-ABD" => (Modality::Us, "腹部", "肝胆胰脾肾形态大小正常，回声均匀。", "腹部超声未见明显异常"),
        _ => (Modality::Ecg, "心脏", "窦性心律，心率72次/分，各导联ST-T未见明显异常。", "正常心电图"),
    };
    ImagingReport {
        code: code.into(),
        modality,
        body_site: site.into(),
        findings: findings.into(),
        conclusion: conclusion.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Config;
    use tiercare_domain::results::Outcome;

    #[test]
    fn a_small_county_has_results_reuses_and_repeats_with_reasons() {
        let county = County::generate(Config { seed: 7, residents: 2_000, year: 2025 });
        let g = ResultsGenerator::new(&county);
        let (mut reports, mut orders) = (0, Vec::new());
        for i in 0..county.residents.len() {
            let y = g.year_of(i, &county.encounters_of(i));
            reports += y.reports.len();
            orders.extend(y.orders);
        }
        assert!(reports > 0, "results were generated");
        let count = |o: Outcome| orders.iter().filter(|x| x.decision.outcome == o).count();
        assert!(count(Outcome::Reused) > 0 && count(Outcome::Repeated) > 0 && count(Outcome::Performed) > 0);
        // every repeat carries a reason, nothing else does (the rule of domain.md M6)
        for o in &orders {
            assert_eq!(o.decision.repeat_reason.is_some(), o.decision.outcome == Outcome::Repeated, "{o:?}");
        }
        // deterministic
        let again = g.year_of(5, &county.encounters_of(5));
        let first = g.year_of(5, &county.encounters_of(5));
        assert_eq!(again.orders, first.orders);
    }
}
