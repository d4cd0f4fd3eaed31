//! Bulk FHIR import and export (issue 7): the part of the [`Store`](crate::Store) trait that
//! walks every patient, enrolment and encounter in key order (keyset paging, so an export
//! streams in pages whatever the size) and answers the look-ups a chunked, resumable import
//! needs. Implemented per backend in `queries_bulk.rs`; the writes are the store's existing
//! bulk paths (`import_patients`, `import_enrolments`, `import_encounters`).

use std::collections::{HashMap, HashSet};

use async_trait::async_trait;
use tiercare_domain::encounter::Encounter;
use tiercare_domain::patient::{Enrolment, Patient};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::{AccessLogEntry, Result};

/// A patient-owned table whose keys are `(region_key, id)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BulkTable {
    Patient,
    Enrolment,
    Encounter,
}

/// Keyset position of a page walk over a `(region_key, id)`-keyed table: the last row seen.
pub type RegionKey = (String, Uuid);

/// Walks and look-ups for bulk import and export.
#[async_trait]
pub trait BulkStore: Send + Sync {
    /// Up to `limit` patients (any status) with `id` greater than `after`, in `id` order.
    async fn patients_after(&self, after: Option<Uuid>, limit: u32) -> Result<Vec<Patient>>;
    /// Up to `limit` enrolments after `after`, in `(region_key, id)` order; each with the
    /// region key of its row (its patient's).
    async fn enrolments_after(&self, after: Option<&RegionKey>, limit: u32) -> Result<Vec<(String, Enrolment)>>;
    /// Up to `limit` encounters after `after`, in `(region_key, id)` order.
    async fn encounters_after(&self, after: Option<&RegionKey>, limit: u32) -> Result<Vec<Encounter>>;
    /// The region key of each of `ids` that is a stored patient (unknown ids are left out).
    async fn patient_regions(&self, ids: &[Uuid]) -> Result<HashMap<Uuid, String>>;
    /// Which of `keys` (region key, id) are stored in `table`.
    async fn stored_ids(&self, table: BulkTable, keys: &[RegionKey]) -> Result<HashSet<Uuid>>;
    /// As [`BulkStore::patients_after`], only the patients changed (`updated_at`) after `since`
    /// (FHIR Bulk Data `_since`); walk until an empty page.
    async fn patients_changed_after(
        &self,
        after: Option<Uuid>,
        since: OffsetDateTime,
        limit: u32,
    ) -> Result<Vec<Patient>>;
    /// As [`BulkStore::enrolments_after`], only the enrolments created after `since`
    /// (enrolments are never changed once stored).
    async fn enrolments_created_after(
        &self,
        after: Option<&RegionKey>,
        since: OffsetDateTime,
        limit: u32,
    ) -> Result<Vec<(String, Enrolment)>>;
    /// As [`BulkStore::encounters_after`], only the encounters recorded after `since`
    /// (encounters are never changed once stored).
    async fn encounters_created_after(
        &self,
        after: Option<&RegionKey>,
        since: OffsetDateTime,
        limit: u32,
    ) -> Result<Vec<Encounter>>;
    /// Up to `limit` patients (any status) registered at `facility` (their home facility,
    /// FHIR `Patient.managingOrganization`) with `id` greater than `after`, in `id` order;
    /// with `since`, only those changed (`updated_at`) after it. A Group export's members,
    /// read on the index `patient_by_home (home_facility_id, id)` (migration 0018): one
    /// index range a page, however many patients other facilities have.
    async fn patients_registered_at(
        &self,
        facility: Uuid,
        after: Option<Uuid>,
        since: Option<OffsetDateTime>,
        limit: u32,
    ) -> Result<Vec<Patient>>;
    /// Write many access-log rows in one transaction (a bulk export's reads: one row per
    /// patient whose data it wrote), all or none.
    async fn record_bulk_access(&self, entries: &[AccessLogEntry]) -> Result<()>;
}
