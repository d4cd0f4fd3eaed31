//! Clinical reads for the FHIR interface (issue 7): the look-ups that the read-only clinical
//! resources (Encounter, Condition and Procedure by id, `tiercare_fhir::clinical`) need beyond
//! what a patient's record gives, and a practitioner's role by its id. Implemented per backend in `queries_clinical.rs`; migration
//! 0016 indexes `encounter (id)` (the key leads with the region, the distribution key).

use async_trait::async_trait;
use tiercare_domain::encounter::Encounter;
use tiercare_domain::facility::PractitionerRole;
use uuid::Uuid;

use crate::Result;

/// Reads of single clinical records by id.
#[async_trait]
pub trait ClinicalStore: Send + Sync {
    /// The encounter with this id, whatever its region (`None` when there is none).
    async fn encounter(&self, id: Uuid) -> Result<Option<Encounter>>;
    /// The practitioner role with this id (`None` when there is none).
    async fn practitioner_role(&self, id: Uuid) -> Result<Option<PractitionerRole>>;
}
