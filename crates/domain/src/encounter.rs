//! Encounters: the outpatient visit, inpatient stay or emergency visit that results,
//! referrals and settlements hang on.

use time::OffsetDateTime;
use uuid::Uuid;

use crate::error::{DomainError, Problems};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EncounterClass {
    /// 门诊
    Outpatient,
    /// 住院
    Inpatient,
    /// 急诊
    Emergency,
}

impl EncounterClass {
    pub fn as_str(self) -> &'static str {
        match self {
            EncounterClass::Outpatient => "outpatient",
            EncounterClass::Inpatient => "inpatient",
            EncounterClass::Emergency => "emergency",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        [Self::Outpatient, Self::Inpatient, Self::Emergency].into_iter().find(|c| c.as_str() == s)
    }
}

/// A recorded encounter. `diagnoses[0]` is the principal diagnosis.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Encounter {
    pub id: Uuid,
    /// The patient's region key (co-locates encounters with their patient).
    pub region_key: String,
    pub patient_id: Uuid,
    pub facility_id: Uuid,
    pub department: Option<String>,
    pub practitioner_id: Option<Uuid>,
    pub class: EncounterClass,
    #[serde(with = "time::serde::rfc3339")]
    pub started_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub ended_at: Option<OffsetDateTime>,
    /// ICD-10 医保版 codes, principal first.
    pub diagnoses: Vec<String>,
    /// ICD-9-CM-3 医保版 codes, principal first.
    pub procedures: Vec<String>,
    /// Total cost in fen.
    pub total_cost_fen: i64,
}

/// Input for an encounter.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewEncounter {
    pub patient_id: Uuid,
    pub facility_id: Uuid,
    pub department: Option<String>,
    pub practitioner_id: Option<Uuid>,
    pub class: EncounterClass,
    #[serde(with = "time::serde::rfc3339")]
    pub started_at: OffsetDateTime,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub ended_at: Option<OffsetDateTime>,
    pub diagnoses: Vec<String>,
    #[serde(default)]
    pub procedures: Vec<String>,
    pub total_cost_fen: i64,
}

/// Largest cost accepted for one encounter: 100 million yuan, in fen.
pub const MAX_COST_FEN: i64 = 10_000_000_000;

impl NewEncounter {
    /// Validate codes, times and cost. `now` bounds the times (no future encounters).
    pub fn validate(self, id: Uuid, region_key: String, now: OffsetDateTime) -> Result<Encounter, DomainError> {
        let mut p = Problems::default();
        if self.diagnoses.is_empty() {
            p.add("diagnoses", "diagnoses.missing", "an encounter needs at least the principal diagnosis (ICD-10)");
        }
        let diagnoses: Vec<String> = self
            .diagnoses
            .iter()
            .enumerate()
            .filter_map(|(i, c)| p.take(crate::codes::validate_diagnosis(&format!("diagnoses[{i}]"), c)))
            .collect();
        let procedures: Vec<String> = self
            .procedures
            .iter()
            .enumerate()
            .filter_map(|(i, c)| p.take(crate::codes::validate_procedure(&format!("procedures[{i}]"), c)))
            .collect();
        if self.started_at > now + time::Duration::minutes(5) {
            p.add("started_at", "encounter.future", "an encounter cannot start in the future");
        }
        if let Some(end) = self.ended_at
            && end < self.started_at
        {
            p.add("ended_at", "encounter.period", "ended_at is before started_at");
        }
        if !(0..=MAX_COST_FEN).contains(&self.total_cost_fen) {
            p.add("total_cost_fen", "money.range", "total cost is in fen, from 0 to 10,000,000,000");
        }
        let department = self.department.map(|d| d.trim().to_owned()).filter(|d| !d.is_empty());
        p.into_result()?;
        Ok(Encounter {
            id,
            region_key,
            patient_id: self.patient_id,
            facility_id: self.facility_id,
            department,
            practitioner_id: self.practitioner_id,
            class: self.class,
            started_at: self.started_at,
            ended_at: self.ended_at,
            diagnoses,
            procedures,
            total_cost_fen: self.total_cost_fen,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn input() -> NewEncounter {
        NewEncounter {
            patient_id: Uuid::nil(),
            facility_id: Uuid::nil(),
            department: Some("全科".into()),
            practitioner_id: None,
            class: EncounterClass::Outpatient,
            started_at: datetime!(2026-11-01 09:00 UTC),
            ended_at: Some(datetime!(2026-11-01 09:20 UTC)),
            diagnoses: vec!["I10.x00".into(), "E11.900".into()],
            procedures: vec![],
            total_cost_fen: 8_650,
        }
    }

    #[test]
    fn validates_codes_times_and_money() {
        let now = datetime!(2026-11-23 12:00 UTC);
        assert!(input().validate(Uuid::nil(), "511621".into(), now).is_ok());
        let mut bad = input();
        bad.diagnoses.push("X99.999".into());
        bad.procedures.push("99.9999".into());
        bad.ended_at = Some(datetime!(2026-10-01 00:00 UTC));
        bad.total_cost_fen = -1;
        let Err(DomainError::Invalid(errs)) = bad.validate(Uuid::nil(), "511621".into(), now) else { panic!() };
        let codes: Vec<_> = errs.iter().map(|e| (e.field.as_str(), e.code.as_str())).collect();
        assert_eq!(
            codes,
            vec![
                ("diagnoses[2]", "diagnosis.unknown"),
                ("procedures[0]", "procedure.unknown"),
                ("ended_at", "encounter.period"),
                ("total_cost_fen", "money.range")
            ]
        );
    }
}
