//! What case-based payment needs of the generated stays (issue 9).
//!
//! An inpatient encounter already carries what DIP and DRG grouping read first: the principal
//! diagnosis and the others (ICD-10 医保版), the procedures (ICD-9-CM-3), the total cost, the
//! admission and discharge times, and, through the patient, sex and age. A discharge record
//! (病案首页) adds the discharge status (离院方式) and, for a newborn, the birth weight; this
//! module draws them for each generated stay.
//!
//! Rates assumed (typical county figures, not official): routine discharge 95 %, transfer to a
//! higher hospital 2 %, to a community/township facility 1.5 %, against medical advice 1 %,
//! death 0.5 % — deaths and transfers lean to stroke, myocardial infarction, heart failure and
//! lung cancer. The generator has no newborn stays (births are the mothers' stays), so no
//! birth weight is drawn; a newborn stay (age under 29 days) would get 2,500–4,000 g.
//!
//! Deterministic: drawn from the county seed and the encounter id, so it changes no encounter.

use tiercare_domain::encounter::{Encounter, EncounterClass};
use uuid::Uuid;

use crate::Rng;

/// The discharge record's extra fields of one generated stay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GeneratedStayDetail {
    pub region_key: String,
    pub encounter_id: Uuid,
    /// Birth weight in grams (newborn stays only).
    pub newborn_weight_g: Option<u32>,
    /// `routine`, `transfer`, `transfer_community`, `against_advice` or `died`.
    pub discharge_status: &'static str,
}

/// Diagnoses whose stays end in death or transfer more often.
const SEVERE: [&str; 4] = ["I63.900", "I21.900", "I50.900", "C34.900"];

/// The detail of an inpatient encounter (`None` for other classes). `newborn` says whether the
/// patient was under 29 days old at admission.
pub fn stay_detail(seed: u64, e: &Encounter, newborn: bool) -> Option<GeneratedStayDetail> {
    if e.class != EncounterClass::Inpatient {
        return None;
    }
    Some(detail_of(seed, e.id, &e.region_key, e.diagnoses.first().map(String::as_str), newborn))
}

/// The same detail from what a stored stay says (its id, its patient's region key, its
/// principal diagnosis), without the encounter: the draw depends on nothing else.
pub fn detail_of(
    seed: u64,
    encounter_id: Uuid,
    region_key: &str,
    principal_diagnosis: Option<&str>,
    newborn: bool,
) -> GeneratedStayDetail {
    let (hi, lo) = encounter_id.as_u64_pair();
    let mut rng = Rng::new(seed ^ hi.rotate_left(17) ^ lo);
    let severe = principal_diagnosis.is_some_and(|d| SEVERE.contains(&d));
    let k = if severe { 3.0 } else { 1.0 };
    let weights = [0.95, 0.02 * k, 0.015, 0.01, 0.005 * k];
    let status = ["routine", "transfer", "transfer_community", "against_advice", "died"][rng.weighted(&weights)];
    let weight = newborn.then(|| 2_500 + rng.below(1_501) as u32);
    GeneratedStayDetail {
        region_key: region_key.to_owned(),
        encounter_id,
        newborn_weight_g: weight,
        discharge_status: status,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn stay(dx: &str, class: EncounterClass) -> Encounter {
        Encounter {
            id: Uuid::from_u64_pair(7, 9),
            region_key: "511621".into(),
            patient_id: Uuid::nil(),
            facility_id: Uuid::nil(),
            department: None,
            practitioner_id: None,
            class,
            started_at: datetime!(2025-03-01 08:00 +8),
            ended_at: Some(datetime!(2025-03-05 08:00 +8)),
            diagnoses: vec![dx.into()],
            procedures: vec![],
            total_cost_fen: 500_000,
        }
    }

    #[test]
    fn only_stays_get_a_detail_and_it_is_deterministic() {
        assert!(stay_detail(1, &stay("J06.900", EncounterClass::Outpatient), false).is_none());
        let a = stay_detail(1, &stay("J18.900", EncounterClass::Inpatient), false);
        assert_eq!(a, stay_detail(1, &stay("J18.900", EncounterClass::Inpatient), false));
        let a = a.expect("a stay has a detail");
        assert!(a.newborn_weight_g.is_none());
        let n = stay_detail(1, &stay("P07.300", EncounterClass::Inpatient), true).expect("newborn");
        assert!(n.newborn_weight_g.is_some_and(|w| (2_500..=4_000).contains(&w)));
        // the same draw from the stored stay's fields
        let e = stay("I63.900", EncounterClass::Inpatient);
        assert_eq!(stay_detail(3, &e, true), Some(detail_of(3, e.id, "511621", Some("I63.900"), true)));
    }
}
