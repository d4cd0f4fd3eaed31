//! Clinical reads for the FHIR interface (issue 7): the look-ups that the read-only clinical
//! resources (Encounter, Condition and Procedure by id, `tiercare_fhir::clinical`) need beyond
//! what a patient's record gives, one patient's encounters alone (the Encounter, Condition and
//! Procedure searches), and a practitioner's role by its id. Implemented per backend in
//! `queries_clinical.rs`; migration 0016 indexes `encounter (id)` (the key leads with the
//! region, the distribution key), migration 0001 `encounter (patient_id, started_at)`.

use async_trait::async_trait;
use tiercare_domain::encounter::Encounter;
use tiercare_domain::facility::PractitionerRole;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::Result;

/// Bounds on when an encounter started: `from` included, `until` excluded (the half-open
/// `[lo, hi)` of a FHIR date value); `None` leaves that side open.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StartedRange {
    pub from: Option<OffsetDateTime>,
    pub until: Option<OffsetDateTime>,
}

/// Reads of single clinical records by id, and of one patient's encounters.
#[async_trait]
pub trait ClinicalStore: Send + Sync {
    /// The encounter with this id, whatever its region (`None` when there is none).
    async fn encounter(&self, id: Uuid) -> Result<Option<Encounter>>;
    /// The encounters of the patient `id` names, as `patient_record` gathers them (the
    /// surviving record's and those of every record merged into it), that started within
    /// `started`, newest first (`started_at` then `id`, both descending). Empty for an
    /// unknown patient. Reads no referrals, enrolments or filings.
    async fn patient_encounters(&self, id: Uuid, started: StartedRange) -> Result<Vec<Encounter>>;
    /// The practitioner role with this id (`None` when there is none).
    async fn practitioner_role(&self, id: Uuid) -> Result<Option<PractitionerRole>>;
}
