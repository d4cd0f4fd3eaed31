//! A FHIR Bulk Data export of the store as NDJSON, one file per resource type
//! (`tiercare_fhir::bulk::NdjsonDir`), written as the store answers: the pipeline behind both
//! `tiercare export fhir DIR` and the server's `$export` jobs.
//!
//! Written, in this order: the registry (Organization, Practitioner, PractitionerRole), then
//! the patients (Patient), their enrolments (Coverage, in the form `tiercare generate` writes)
//! and encounters (Encounter), each walked in key order a page at a time (`BulkStore`,
//! keyset paging), so memory stays flat whatever the size. A [`Spec`] narrows this: the types
//! (`_type`), the changes after an instant (`_since`: a patient's `updated_at`, an enrolment's or
//! encounter's creation — they are never changed; the registry keeps no change time in its
//! resources and is always written whole) and the patients (a Group: those registered at a set
//! of facilities). Not written: referrals (ServiceRequest/Task are read per referral through
//! `/fhir`), settlements (ClaimResponse, through `/fhir/Claim`), results and the
//! chronic-condition problem list (no store yet).
//!
//! With an [`Audit`], every patient whose data is written gets an access-log row (one per
//! patient and export, written page by page before the page reaches the file).

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use tiercare_domain::access::AccessBasis;
use tiercare_fhir::bulk::NdjsonDir;
use tiercare_store::{AccessLogEntry, FacilityFilter, RegionKey, Store};
use time::OffsetDateTime;
use uuid::Uuid;

use super::{BulkError, BulkResult, Cancel, Context, Progress};

/// Every type a system-level export writes, in the order written.
pub const SYSTEM_TYPES: [&str; 6] =
    ["Organization", "Practitioner", "PractitionerRole", "Patient", "Coverage", "Encounter"];
/// The types of the Patient compartment we keep (patient- and group-level exports).
pub const PATIENT_TYPES: [&str; 3] = ["Patient", "Coverage", "Encounter"];

/// Rows per page of the walks.
const PAGE: u32 = 10_000;

/// What to export.
#[derive(Debug, Clone, Default)]
pub struct Spec {
    /// The types to write; empty: [`SYSTEM_TYPES`].
    pub types: Vec<String>,
    /// Only what changed after this instant (`_since`).
    pub since: Option<OffsetDateTime>,
    /// Only these facilities' registered patients (`Patient.managingOrganization`) and their
    /// data (a Group); `None`: every patient.
    pub home_facilities: Option<HashSet<Uuid>>,
}

impl Spec {
    fn wants(&self, kind: &str) -> bool {
        if self.types.is_empty() { SYSTEM_TYPES.contains(&kind) } else { self.types.iter().any(|t| t == kind) }
    }
}

/// Who reads the records (the access-log rows of an export over HTTP).
#[derive(Debug, Clone)]
pub struct Audit {
    pub user_id: Uuid,
    pub facility_id: Uuid,
    pub client_addr: Option<String>,
    /// The reason written into each row (the job, its level and types).
    pub reason: String,
    pub action: String,
}

/// How a run is watched and stopped.
#[derive(Clone, Default)]
pub struct Control {
    pub progress: Option<Arc<dyn Progress>>,
    pub cancel: Option<Cancel>,
    pub audit: Option<Audit>,
}

/// One file written: its type, lines and the seconds its walk took.
#[derive(Debug, Clone, PartialEq)]
pub struct Written {
    pub kind: String,
    pub count: u64,
    pub seconds: f64,
}

/// The access-log rows of the patients of a page not logged yet, written before the page.
struct Logger<'a> {
    store: &'a dyn Store,
    audit: Option<&'a Audit>,
    logged: HashSet<Uuid>,
}

impl Logger<'_> {
    async fn log(&mut self, patients: impl Iterator<Item = (&str, Uuid)>) -> BulkResult<()> {
        let Some(a) = self.audit else { return Ok(()) };
        let at = OffsetDateTime::now_utc();
        let rows: Vec<AccessLogEntry> = patients
            .filter(|(_, id)| self.logged.insert(*id))
            .map(|(region, id)| AccessLogEntry {
                id: tiercare_store::new_id(),
                region_key: region.to_owned(),
                at,
                user_id: a.user_id,
                facility_id: a.facility_id,
                patient_id: id,
                action: a.action.clone(),
                // no care relationship: an administrator's bulk export, the job in the reason
                basis: AccessBasis::BulkExport,
                reason: Some(a.reason.clone()),
                client_addr: a.client_addr.clone(),
            })
            .collect();
        Ok(self.store.record_bulk_access(&rows).await?)
    }
}

/// Write the store as NDJSON into `dir` as `spec` says; the files written, in the order of
/// [`SYSTEM_TYPES`] (a type with no resources has no file).
pub async fn export(store: &dyn Store, dir: &Path, spec: &Spec, control: &Control) -> BulkResult<Vec<Written>> {
    let mut out = NdjsonDir::create(dir).context(|| format!("cannot create {}", dir.display()))?;
    let write_err = || format!("cannot write into {}", dir.display());
    let mut log = Logger { store, audit: control.audit.as_ref(), logged: HashSet::new() };
    let mut seconds: Vec<(&str, f64)> = Vec::new();
    let cancelled = || control.cancel.as_ref().is_some_and(Cancel::is_cancelled);
    let progress = |kind: &str| {
        if let Some(p) = &control.progress {
            p.start(kind, 0);
        }
    };
    let at = |n: u64| {
        if let Some(p) = &control.progress {
            p.at(n);
        }
    };
    let mut t = Instant::now();
    let mut lap = |kind: &'static str, seconds: &mut Vec<(&str, f64)>| {
        seconds.push((kind, t.elapsed().as_secs_f64()));
        t = Instant::now();
    };
    if spec.wants("Organization") {
        progress("Organization");
        for f in store.list_facilities(&FacilityFilter::default()).await? {
            out.write(&tiercare_fhir::organization(&f)).context(write_err)?;
        }
        lap("Organization", &mut seconds);
    }
    if spec.wants("Practitioner") || spec.wants("PractitionerRole") {
        progress("Practitioner");
        for p in store.list_practitioners(None).await? {
            if spec.wants("Practitioner") {
                out.write(&tiercare_fhir::registry::practitioner(&p)).context(write_err)?;
            }
            if spec.wants("PractitionerRole") {
                for r in store.list_practitioner_roles(p.id).await? {
                    out.write(&tiercare_fhir::registry::practitioner_role(&r)).context(write_err)?;
                }
            }
        }
        lap("Practitioner", &mut seconds);
    }
    // a Group's facilities, in a stable order
    let group: Option<Vec<Uuid>> = spec.home_facilities.as_ref().map(|f| {
        let mut v: Vec<Uuid> = f.iter().copied().collect();
        v.sort();
        v
    });
    // a Group's members: the patients registered at its facilities (all of them, changed or
    // not, since their new enrolments and encounters count too), read facility by facility
    // from the store (`patients_registered_at`); only needed for the enrolments and encounters
    let members: Option<HashSet<Uuid>> = match &group {
        Some(facilities) if spec.wants("Coverage") || spec.wants("Encounter") => {
            let mut set = HashSet::new();
            for f in facilities {
                let mut after = None;
                loop {
                    let page = store.patients_registered_at(*f, after, None, PAGE).await?;
                    let Some(last) = page.last() else { break };
                    after = Some(last.id);
                    set.extend(page.iter().map(|p| p.id));
                    if cancelled() {
                        return Err(BulkError::Cancelled);
                    }
                }
            }
            Some(set)
        }
        Some(_) => Some(HashSet::new()),
        None => None,
    };
    let member = |id: &Uuid| members.as_ref().is_none_or(|m| m.contains(id));
    let mut written = 0u64;
    if spec.wants("Patient")
        && let Some(facilities) = &group
    {
        // a Group's Patient file: its members changed after `_since` (all without), by facility
        progress("Patient");
        for f in facilities {
            let mut after = None;
            loop {
                let page = store.patients_registered_at(*f, after, spec.since, PAGE).await?;
                let Some(last) = page.last() else { break };
                after = Some(last.id);
                log.log(page.iter().map(|p| (p.region_key.as_str(), p.id))).await?;
                for p in &page {
                    out.write(&tiercare_fhir::patient(p)).context(write_err)?;
                }
                written += page.len() as u64;
                at(written);
                if cancelled() {
                    return Err(BulkError::Cancelled);
                }
            }
        }
        lap("Patient", &mut seconds);
    } else if spec.wants("Patient") {
        progress("Patient");
        let mut after = None;
        loop {
            let page = match spec.since {
                None => store.patients_after(after, PAGE).await?,
                Some(since) => store.patients_changed_after(after, since, PAGE).await?,
            };
            let Some(last) = page.last() else { break };
            after = Some(last.id);
            let page: Vec<_> = page.into_iter().filter(|p| member(&p.id)).collect();
            log.log(page.iter().map(|p| (p.region_key.as_str(), p.id))).await?;
            for p in &page {
                out.write(&tiercare_fhir::patient(p)).context(write_err)?;
            }
            written += page.len() as u64;
            at(written);
            if cancelled() {
                return Err(BulkError::Cancelled);
            }
        }
        lap("Patient", &mut seconds);
    }
    if spec.wants("Coverage") {
        progress("Coverage");
        let (mut after, mut written): (Option<RegionKey>, u64) = (None, 0);
        loop {
            let page = match spec.since {
                None => store.enrolments_after(after.as_ref(), PAGE).await?,
                Some(since) => store.enrolments_created_after(after.as_ref(), since, PAGE).await?,
            };
            let Some((region, last)) = page.last() else { break };
            after = Some((region.clone(), last.id));
            let page: Vec<_> = page.into_iter().filter(|(_, e)| member(&e.patient_id)).collect();
            log.log(page.iter().map(|(r, e)| (r.as_str(), e.patient_id))).await?;
            for (_, e) in &page {
                out.write(&tiercare_fhir::coverage(e)).context(write_err)?;
            }
            written += page.len() as u64;
            at(written);
            if cancelled() {
                return Err(BulkError::Cancelled);
            }
        }
        lap("Coverage", &mut seconds);
    }
    if spec.wants("Encounter") {
        progress("Encounter");
        let (mut after, mut written): (Option<RegionKey>, u64) = (None, 0);
        loop {
            let page = match spec.since {
                None => store.encounters_after(after.as_ref(), PAGE).await?,
                Some(since) => store.encounters_created_after(after.as_ref(), since, PAGE).await?,
            };
            let Some(last) = page.last() else { break };
            after = Some((last.region_key.clone(), last.id));
            let page: Vec<_> = page.into_iter().filter(|e| member(&e.patient_id)).collect();
            log.log(page.iter().map(|e| (e.region_key.as_str(), e.patient_id))).await?;
            for e in &page {
                out.write(&tiercare_fhir::encounter(e)).context(write_err)?;
            }
            written += page.len() as u64;
            at(written);
            if cancelled() {
                return Err(BulkError::Cancelled);
            }
        }
        lap("Encounter", &mut seconds);
    }
    if let Some(p) = &control.progress {
        p.finish();
    }
    let counts = out.finish().context(write_err)?;
    let secs = |kind: &str| seconds.iter().find(|(k, _)| *k == kind).map(|(_, s)| *s).unwrap_or(0.0);
    let rank = |k: &str| SYSTEM_TYPES.iter().position(|t| *t == k).unwrap_or(SYSTEM_TYPES.len());
    let mut files: Vec<Written> = counts
        .into_iter()
        .map(|(kind, count)| {
            // practitioners and their roles are walked together: the time is the Practitioner's
            let seconds = if kind == "PractitionerRole" { 0.0 } else { secs(&kind) };
            Written { kind, count, seconds }
        })
        .collect();
    files.sort_by_key(|w| rank(&w.kind));
    Ok(files)
}
