//! Clinical resources derived from the domain's records (issue 7), read and search only:
//! Encounter read by id, Condition (an encounter's diagnoses), Procedure (its ICD-9-CM-3
//! procedures), Appointment (a referral's scheduling step), CarePlan (a downward referral's
//! follow-up plan and tasks) and Location (a facility's site); and PractitionerRole read by id. The mapping and the ids are
//! `tiercare_fhir::clinical`; nothing here writes but the access log.
//!
//! Patient data follows the record's access rule (`routes::patients::readable_patient`: the
//! role must read records, the facility needs a care relationship or the community's policy),
//! and every read or search writes an access-log row before anything is served
//! (`fhir_read_clinical`; an Encounter read `read_encounters`, as the Encounter search). A
//! search needs the patient (`patient` or `subject`); an unknown patient has nothing. Location
//! and PractitionerRole are registry data: any signed-in user reads them.

use std::cmp::Reverse;
use std::net::SocketAddr;

use axum::Router;
use axum::extract::rejection::QueryRejection;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::get;
use serde_json::Value;
use tiercare_domain::encounter::Encounter;
use tiercare_domain::referral::{FollowUpTask, Referral};
use tiercare_domain::role::Action;
use tiercare_fhir::clinical::{self as fhir_clinical, Part};
use tiercare_fhir::outcome::IssueType;
use tiercare_fhir::search::{DateParam, Prefix, parse_token, string_matches, token_matches};
use tiercare_store::{FacilityFilter, FollowUpFilter, PatientRecord, StartedRange};
use time::OffsetDateTime;
use uuid::Uuid;

use super::params::Sortable;
use super::{FhirError, FhirResult, Params, fhir_json, not_allowed, path_id};
use crate::AppState;
use crate::error::ApiError;
use crate::extract::CurrentUser;
use crate::routes::patients::{log_access, readable_patient};

type RawQuery = Result<Query<Vec<(String, String)>>, QueryRejection>;

/// The access-log action of the clinical reads.
const READ_ACTION: &str = "fhir_read_clinical";
const ICD10: &str = "http://hl7.org/fhir/sid/icd-10";
const ICD9CM: &str = "http://hl7.org/fhir/sid/icd-9-cm";
const EVENT_STATUS: &str = "http://hl7.org/fhir/event-status";
const APPOINTMENT_STATUS: &str = "http://hl7.org/fhir/appointmentstatus";
const REQUEST_STATUS: &str = "http://hl7.org/fhir/request-status";
/// The R4 Procedure.status value set (event-status).
const PROCEDURE_STATUSES: [&str; 8] =
    ["preparation", "in-progress", "not-done", "on-hold", "stopped", "completed", "entered-in-error", "unknown"];
/// Most follow-up tasks of one referral read.
const TASKS_PER_REFERRAL: u32 = 1_000;

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/fhir/Encounter/{id}", get(read_encounter).fallback(not_allowed("GET")))
        .route("/fhir/Condition", get(search_conditions).fallback(not_allowed("GET")))
        .route("/fhir/Condition/{id}", get(read_condition).fallback(not_allowed("GET")))
        .route("/fhir/Procedure", get(search_procedures).fallback(not_allowed("GET")))
        .route("/fhir/Procedure/{id}", get(read_procedure).fallback(not_allowed("GET")))
        .route("/fhir/Appointment", get(search_appointments).fallback(not_allowed("GET")))
        .route("/fhir/Appointment/{id}", get(read_appointment).fallback(not_allowed("GET")))
        .route("/fhir/CarePlan", get(search_care_plans).fallback(not_allowed("GET")))
        .route("/fhir/CarePlan/{id}", get(read_care_plan).fallback(not_allowed("GET")))
        .route("/fhir/Location", get(search_locations).fallback(not_allowed("GET")))
        .route("/fhir/Location/{id}", get(read_location).fallback(not_allowed("GET")))
        .route("/fhir/PractitionerRole/{id}", get(read_practitioner_role).fallback(not_allowed("GET")))
}

fn not_found(kind: &str) -> FhirError {
    FhirError::new(StatusCode::NOT_FOUND, IssueType::NotFound, format!("{kind} not found"))
}

fn api(e: tiercare_store::StoreError) -> FhirError {
    ApiError::from(e).into()
}

/// This user may read the patient's record: log the read (before anything is served).
async fn logged_read(
    state: &AppState,
    me: &CurrentUser,
    patient_id: Uuid,
    action: &str,
    addr: SocketAddr,
) -> FhirResult<()> {
    let (patient, basis) = readable_patient(state, me, patient_id, None).await?;
    log_access(state, me, &patient, action, basis, None, addr).await?;
    Ok(())
}

/// The patient a search is about (`patient`, or `subject` where the type has it; both given
/// and different: `Ok(None)`, nothing matches both).
fn searched_patient(p: &Params, kind: &str, subject: bool) -> FhirResult<Option<Uuid>> {
    let a = p.reference("patient", "Patient")?;
    let b = if subject { p.reference("subject", "Patient")? } else { None };
    match (a, b) {
        (Some(a), Some(b)) if a != b => Ok(None),
        (Some(x), _) | (None, Some(x)) => Ok(Some(x)),
        (None, None) => Err(FhirError::bad_search(
            IssueType::Required,
            format!("search {kind} by patient: ?patient=Patient/<id>{}", if subject { " (or subject)" } else { "" }),
        )),
    }
}

/// The searched patient, after the access rule and its log row (`None`: an unknown patient,
/// or `patient` and `subject` that differ).
async fn searched_and_logged(
    state: &AppState,
    me: &CurrentUser,
    p: &Params,
    kind: &str,
    subject: bool,
    addr: SocketAddr,
) -> FhirResult<Option<Uuid>> {
    me.require(Action::ReadPatientRecord)?;
    let Some(patient) = searched_patient(p, kind, subject)? else { return Ok(None) };
    match readable_patient(state, me, patient, None).await {
        Ok((person, basis)) => log_access(state, me, &person, READ_ACTION, basis, None, addr).await?,
        Err(e) if e.status == StatusCode::NOT_FOUND => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    Ok(Some(patient))
}

/// The record of the searched patient, after the access rule and its log row (`None`: an
/// unknown patient, or `patient` and `subject` that differ).
async fn searched_record(
    state: &AppState,
    me: &CurrentUser,
    p: &Params,
    kind: &str,
    subject: bool,
    addr: SocketAddr,
) -> FhirResult<Option<PatientRecord>> {
    let Some(patient) = searched_and_logged(state, me, p, kind, subject, addr).await? else { return Ok(None) };
    state.store.patient_record(patient).await.map_err(api)
}

/// The range of `started_at` outside which no encounter matches every one of `dates` (as
/// `DateParam::matches` applies them: to the period `[started_at, ended_at]`, or with
/// `instant` to `started_at` alone, as a Condition's recorded date), for the store to read
/// only that range; the search still applies each value to what it reads. `eq` bounds the
/// start (`[lo, hi)`), `lt` and `le` its end (`lo`, `hi`); on a period `gt`, `ge` and `ne`
/// bound nothing (a long stay that started before the value may still match), on an instant
/// `gt` starts the range at `hi` and `ge` at `lo`. A period's `eq` relies on no encounter
/// ending before it starts (`encounter.period`, checked on every write and import).
pub(super) fn started_range(dates: &[DateParam], instant: bool) -> StartedRange {
    let mut r = StartedRange::default();
    for d in dates {
        let (from, until) = match d.prefix {
            Prefix::Eq => (Some(d.lo), Some(d.hi)),
            Prefix::Lt => (None, Some(d.lo)),
            Prefix::Le => (None, Some(d.hi)),
            Prefix::Gt if instant => (Some(d.hi), None),
            Prefix::Ge if instant => (Some(d.lo), None),
            Prefix::Gt | Prefix::Ge | Prefix::Ne => (None, None),
        };
        // every value must match: the latest start and the earliest end
        r.from = r.from.max(from);
        r.until = match (r.until, until) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
    }
    r
}

/// The codes of a token parameter whose values are codes of one value set (`system|code` or
/// `code`): an unknown code or another system is refused (400), so a typo does not read as
/// "nothing matches".
fn status_codes(p: &Params, name: &str, system: &str, allowed: &[&str]) -> FhirResult<Option<Vec<String>>> {
    let Some(list) = p.list(name) else { return Ok(None) };
    list.iter()
        .map(|t| {
            let (sys, code) = parse_token(t);
            if sys.is_some_and(|s| !s.is_empty() && s != system) || !allowed.contains(&code) {
                Err(FhirError::bad_search(
                    IssueType::CodeInvalid,
                    format!("search parameter {name:?}: {t:?} is not one of {} ({system})", allowed.join(", ")),
                ))
            } else {
                Ok(code.to_owned())
            }
        })
        .collect::<FhirResult<Vec<_>>>()
        .map(Some)
}

/// Whether the comma list `name` is absent or one of its tokens matches (`system`, `code`).
fn any_token(p: &Params, name: &str, codes: &[(&str, &str)]) -> bool {
    p.list(name).is_none_or(|l| l.iter().any(|t| codes.iter().any(|(s, c)| token_matches(t, s, c))))
}

/// Whether `_id` is absent or names `id`.
fn id_matches(p: &Params, id: &str) -> bool {
    p.list("_id").is_none_or(|l| l.contains(&id))
}

/// One match of a search: the built resource (these types have no `_sort` keys).
struct Found(Value);

impl Sortable for Found {}

fn bundle(p: &Params, found: Vec<Found>) -> FhirResult<Response> {
    let page = p.page(found)?;
    let entries = page.items.iter().map(|f| f.0.clone()).collect();
    Ok(fhir_json(StatusCode::OK, &page.bundle(p, entries)))
}

// ---------------------------------------------------------------------------------------
// Encounter read, Condition, Procedure

async fn read_encounter(
    State(state): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    me: Result<CurrentUser, ApiError>,
    Path(id): Path<String>,
) -> FhirResult<Response> {
    let me = me?;
    me.require(Action::ReadPatientRecord)?;
    let id = path_id(&id, "Encounter")?;
    let e = state.store.encounter(id).await.map_err(api)?.ok_or_else(|| not_found("Encounter"))?;
    logged_read(&state, &me, e.patient_id, "read_encounters", addr).await?;
    Ok(fhir_json(StatusCode::OK, &tiercare_fhir::encounter(&e)))
}

/// The encounter and rank a Condition or Procedure id names, if it exists.
async fn part_of(state: &AppState, raw: &str, part: Part, kind: &str) -> FhirResult<(Encounter, usize)> {
    let (enc, rank) = fhir_clinical::parse_part_id(raw, part).ok_or_else(|| not_found(kind))?;
    let e = state.store.encounter(enc).await.map_err(api)?.ok_or_else(|| not_found(kind))?;
    let len = match part {
        Part::Diagnosis => e.diagnoses.len(),
        Part::Procedure => e.procedures.len(),
    };
    if rank > len {
        return Err(not_found(kind));
    }
    Ok((e, rank))
}

async fn read_condition(
    State(state): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    me: Result<CurrentUser, ApiError>,
    Path(id): Path<String>,
) -> FhirResult<Response> {
    let me = me?;
    me.require(Action::ReadPatientRecord)?;
    let (e, rank) = part_of(&state, &id, Part::Diagnosis, "Condition").await?;
    logged_read(&state, &me, e.patient_id, READ_ACTION, addr).await?;
    let body = fhir_clinical::condition(&e, rank).ok_or_else(|| not_found("Condition"))?;
    Ok(fhir_json(StatusCode::OK, &body))
}

async fn read_procedure(
    State(state): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    me: Result<CurrentUser, ApiError>,
    Path(id): Path<String>,
) -> FhirResult<Response> {
    let me = me?;
    me.require(Action::ReadPatientRecord)?;
    let (e, rank) = part_of(&state, &id, Part::Procedure, "Procedure").await?;
    logged_read(&state, &me, e.patient_id, READ_ACTION, addr).await?;
    let body = fhir_clinical::procedure(&e, rank).ok_or_else(|| not_found("Procedure"))?;
    Ok(fhir_json(StatusCode::OK, &body))
}

/// The searched patient's encounters that started within `started`, narrowed by
/// `encounter`, newest first (the store's order, as the Encounter search's; empty when the
/// patient is unknown). Reads the encounters alone, not the whole record.
async fn searched_encounters(
    state: &AppState,
    me: &CurrentUser,
    p: &Params,
    kind: &str,
    started: StartedRange,
    addr: SocketAddr,
) -> FhirResult<Vec<Encounter>> {
    let encounter = p.reference("encounter", "Encounter")?;
    let Some(patient) = searched_and_logged(state, me, p, kind, true, addr).await? else { return Ok(Vec::new()) };
    let mut all = state.store.patient_encounters(patient, started).await.map_err(api)?;
    all.retain(|e| encounter.is_none_or(|id| id == e.id));
    Ok(all)
}

async fn search_conditions(
    State(state): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    me: Result<CurrentUser, ApiError>,
    headers: HeaderMap,
    query: RawQuery,
) -> FhirResult<Response> {
    let me = me?;
    let p = Params::read(query, &headers, "Condition")?;
    let dates = p.dates("recorded-date")?;
    let category = [(fhir_clinical::CONDITION_CATEGORY, "encounter-diagnosis")];
    let started = started_range(&dates, true);
    let encounters = searched_encounters(&state, &me, &p, "Condition", started, addr).await?;
    let mut found = Vec::new();
    if any_token(&p, "category", &category) {
        for e in &encounters {
            if !dates.iter().all(|d| d.matches(e.started_at, Some(e.started_at))) {
                continue;
            }
            for (i, code) in e.diagnoses.iter().enumerate() {
                let id = fhir_clinical::part_id(e.id, Part::Diagnosis, i + 1);
                if id_matches(&p, &id) && any_token(&p, "code", &[(ICD10, code)]) {
                    found.extend(fhir_clinical::condition(e, i + 1).map(Found));
                }
            }
        }
    }
    bundle(&p, found)
}

async fn search_procedures(
    State(state): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    me: Result<CurrentUser, ApiError>,
    headers: HeaderMap,
    query: RawQuery,
) -> FhirResult<Response> {
    let me = me?;
    let p = Params::read(query, &headers, "Procedure")?;
    let dates = p.dates("date")?;
    let statuses = status_codes(&p, "status", EVENT_STATUS, &PROCEDURE_STATUSES)?;
    let started = started_range(&dates, false);
    let encounters = searched_encounters(&state, &me, &p, "Procedure", started, addr).await?;
    let mut found = Vec::new();
    for e in &encounters {
        let status = fhir_clinical::procedure_status(e);
        if !dates.iter().all(|d| d.matches(e.started_at, e.ended_at))
            || statuses.as_ref().is_some_and(|s| !s.iter().any(|c| c == status))
        {
            continue;
        }
        for (i, code) in e.procedures.iter().enumerate() {
            let id = fhir_clinical::part_id(e.id, Part::Procedure, i + 1);
            if id_matches(&p, &id) && any_token(&p, "code", &[(ICD9CM, code)]) {
                found.extend(fhir_clinical::procedure(e, i + 1).map(Found));
            }
        }
    }
    bundle(&p, found)
}

// ---------------------------------------------------------------------------------------
// Appointment

async fn read_appointment(
    State(state): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    me: Result<CurrentUser, ApiError>,
    Path(id): Path<String>,
) -> FhirResult<Response> {
    let me = me?;
    me.require(Action::ReadPatientRecord)?;
    let id = path_id(&id, "Appointment")?;
    let r = state.store.get_referral(id).await.map_err(api)?.ok_or_else(|| not_found("Appointment"))?;
    let body = fhir_clinical::appointment(&r).ok_or_else(|| not_found("Appointment"))?;
    logged_read(&state, &me, r.patient_id, READ_ACTION, addr).await?;
    Ok(fhir_json(StatusCode::OK, &body))
}

async fn search_appointments(
    State(state): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    me: Result<CurrentUser, ApiError>,
    headers: HeaderMap,
    query: RawQuery,
) -> FhirResult<Response> {
    let me = me?;
    let p = Params::read(query, &headers, "Appointment")?;
    let dates = p.dates("date")?;
    let statuses = status_codes(&p, "status", APPOINTMENT_STATUS, &fhir_clinical::APPOINTMENT_STATUSES)?;
    let based_on = p.reference("based-on", "ServiceRequest")?;
    let location = p.reference("location", "Location")?;
    let record = searched_record(&state, &me, &p, "Appointment", false, addr).await?;
    let mut referrals: Vec<(OffsetDateTime, Referral)> = record
        .map(|r| r.referrals)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|r| r.scheduled_at.map(|at| (at, r)))
        .filter(|(at, r)| {
            let status = fhir_clinical::appointment_status(r).unwrap_or_default();
            id_matches(&p, &r.id.to_string())
                && dates.iter().all(|d| d.matches(*at, Some(*at)))
                && statuses.as_ref().is_none_or(|s| s.iter().any(|c| c == status))
                && based_on.is_none_or(|id| id == r.id)
                && location.is_none_or(|id| id == r.to_facility_id)
                && p.list("reason-code")
                    .is_none_or(|l| l.iter().any(|t| r.diagnoses.iter().any(|d| token_matches(t, ICD10, d))))
        })
        .collect();
    // latest scheduled time first
    referrals.sort_by_key(|(at, r)| Reverse((*at, r.id)));
    let found = referrals.iter().filter_map(|(_, r)| fhir_clinical::appointment(r).map(Found)).collect();
    bundle(&p, found)
}

// ---------------------------------------------------------------------------------------
// CarePlan

/// A downward referral's follow-up tasks and when it was accepted (from its history).
async fn plan_facts(state: &AppState, r: &Referral) -> FhirResult<(Vec<FollowUpTask>, Option<OffsetDateTime>)> {
    let f = FollowUpFilter { referral_id: Some(r.id), limit: TASKS_PER_REFERRAL, ..FollowUpFilter::default() };
    let tasks = state.store.list_follow_ups(&f).await.map_err(api)?;
    let accepted_at = if tasks.is_empty() && !r.state.is_open() && r.scheduled_at.is_none() {
        // closed before anyone accepted it (no tasks, never scheduled): no period to find
        None
    } else {
        let history = state.store.referral_history(r.id).await.map_err(api)?;
        history.iter().filter(|e| e.action == "accept").map(|e| e.at).min()
    };
    Ok((tasks, accepted_at))
}

async fn read_care_plan(
    State(state): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    me: Result<CurrentUser, ApiError>,
    Path(id): Path<String>,
) -> FhirResult<Response> {
    let me = me?;
    me.require(Action::ReadPatientRecord)?;
    let id = path_id(&id, "CarePlan")?;
    let r = state.store.get_referral(id).await.map_err(api)?.ok_or_else(|| not_found("CarePlan"))?;
    if !fhir_clinical::has_care_plan(&r, &[]) {
        return Err(not_found("CarePlan"));
    }
    logged_read(&state, &me, r.patient_id, READ_ACTION, addr).await?;
    let (tasks, accepted_at) = plan_facts(&state, &r).await?;
    let body = fhir_clinical::care_plan(&r, &tasks, accepted_at).ok_or_else(|| not_found("CarePlan"))?;
    Ok(fhir_json(StatusCode::OK, &body))
}

/// Whether a CarePlan's period (`None`: not yet accepted) matches every date value.
fn period_matches(dates: &[DateParam], accepted_at: Option<OffsetDateTime>, tasks: &[FollowUpTask]) -> bool {
    if dates.is_empty() {
        return true;
    }
    let Some(period) = fhir_clinical::care_plan_period(accepted_at, tasks) else { return false };
    let (start, end) = fhir_clinical::period_instants(period);
    dates.iter().all(|d| d.matches(start, Some(end)))
}

async fn search_care_plans(
    State(state): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    me: Result<CurrentUser, ApiError>,
    headers: HeaderMap,
    query: RawQuery,
) -> FhirResult<Response> {
    let me = me?;
    let p = Params::read(query, &headers, "CarePlan")?;
    let dates = p.dates("date")?;
    let statuses = status_codes(&p, "status", REQUEST_STATUS, &fhir_clinical::CARE_PLAN_STATUSES)?;
    let category = [(fhir_clinical::CARE_PLAN_CATEGORY, fhir_clinical::DOWNWARD_FOLLOW_UP)];
    let record = searched_record(&state, &me, &p, "CarePlan", true, addr).await?;
    let mut referrals: Vec<Referral> = record
        .map(|r| r.referrals)
        .unwrap_or_default()
        .into_iter()
        .filter(|r| fhir_clinical::has_care_plan(r, &[]) && id_matches(&p, &r.id.to_string()))
        .collect();
    if !any_token(&p, "category", &category) {
        referrals.clear();
    }
    // newest referral first
    referrals.sort_by_key(|r| Reverse((r.requested_at, r.id)));
    let mut found = Vec::new();
    for r in &referrals {
        let (tasks, accepted_at) = plan_facts(&state, r).await?;
        let status = fhir_clinical::care_plan_status(r, &tasks);
        if statuses.as_ref().is_none_or(|s| s.iter().any(|c| c == status))
            && period_matches(&dates, accepted_at, &tasks)
        {
            found.extend(fhir_clinical::care_plan(r, &tasks, accepted_at).map(Found));
        }
    }
    bundle(&p, found)
}

// ---------------------------------------------------------------------------------------
// Location (registry data)

async fn read_location(
    State(state): State<AppState>,
    me: Result<CurrentUser, ApiError>,
    Path(id): Path<String>,
) -> FhirResult<Response> {
    me?;
    let id = path_id(&id, "Location")?;
    let f = state.store.get_facility(id).await.map_err(api)?.ok_or_else(|| not_found("Location"))?;
    Ok(fhir_json(StatusCode::OK, &fhir_clinical::location(&f)))
}

async fn search_locations(
    State(state): State<AppState>,
    me: Result<CurrentUser, ApiError>,
    headers: HeaderMap,
    query: RawQuery,
) -> FhirResult<Response> {
    me?;
    let p = Params::read(query, &headers, "Location")?;
    let ids = p.ids();
    let org = p.reference("organization", "Organization")?;
    let mut all = state.store.list_facilities(&FacilityFilter::default()).await.map_err(api)?;
    all.retain(|f| {
        ids.as_ref().is_none_or(|ids| ids.contains(&f.id))
            && org.is_none_or(|o| o == f.id)
            && p.get("name").is_none_or(|n| string_matches(n, &f.name))
    });
    all.sort_by(|a, b| (&a.code, a.id).cmp(&(&b.code, b.id)));
    let found = all.iter().map(|f| Found(fhir_clinical::location(f))).collect();
    bundle(&p, found)
}

async fn read_practitioner_role(
    State(state): State<AppState>,
    me: Result<CurrentUser, ApiError>,
    Path(id): Path<String>,
) -> FhirResult<Response> {
    me?;
    let id = path_id(&id, "PractitionerRole")?;
    let r = state.store.practitioner_role(id).await.map_err(api)?.ok_or_else(|| not_found("PractitionerRole"))?;
    Ok(fhir_json(StatusCode::OK, &tiercare_fhir::registry::practitioner_role(&r)))
}

#[cfg(test)]
mod tests {
    use tiercare_fhir::search::parse_date;
    use time::macros::{datetime, offset};
    use time::{Duration, UtcOffset};

    use super::*;

    const CHINA: UtcOffset = offset!(+8);

    fn dates(raw: &[&str]) -> Vec<DateParam> {
        raw.iter().map(|r| parse_date(r, CHINA).expect("a date value")).collect()
    }

    fn range(raw: &[&str], instant: bool) -> (Option<OffsetDateTime>, Option<OffsetDateTime>) {
        let r = started_range(&dates(raw), instant);
        (r.from, r.until)
    }

    /// The bounds, computed by hand from the days in China time.
    #[test]
    fn started_range_bounds_by_prefix() {
        let (nov1, dec1) = (datetime!(2026-10-31 16:00 UTC), datetime!(2026-11-30 16:00 UTC));
        for instant in [false, true] {
            assert_eq!(range(&["2026-11"], instant), (Some(nov1), Some(dec1)));
            assert_eq!(range(&["eq2026-11"], instant), (Some(nov1), Some(dec1)));
            assert_eq!(range(&["lt2026-11"], instant), (None, Some(nov1)));
            assert_eq!(range(&["le2026-11"], instant), (None, Some(dec1)));
            assert_eq!(range(&["ne2026-11"], instant), (None, None));
            assert_eq!(range(&[], instant), (None, None));
        }
        // a stay that started before the value may end after it
        assert_eq!(range(&["gt2026-11"], false), (None, None));
        assert_eq!(range(&["ge2026-11"], false), (None, None));
        assert_eq!(range(&["gt2026-11"], true), (Some(dec1), None));
        assert_eq!(range(&["ge2026-11"], true), (Some(nov1), None));
        // every value must match: the narrowest of them
        let nov15 = datetime!(2026-11-14 16:00 UTC);
        assert_eq!(range(&["ge2026-11-15", "lt2026-12", "le2026"], true), (Some(nov15), Some(dec1)));
        assert_eq!(range(&["2026", "lt2026-11-15"], false), (Some(datetime!(2025-12-31 16:00 UTC)), Some(nov15)));
    }

    /// The range never drops an encounter that every value matches: each prefix at each
    /// precision, against starts and ends around its edges (ends never before starts, or none).
    #[test]
    fn started_range_keeps_every_match() {
        let values = ["2026", "2026-11", "2026-11-15", "2026-11-15T09:30:00+08:00"];
        let prefixes = ["", "eq", "ne", "gt", "ge", "lt", "le"];
        let mut raws = Vec::new();
        for v in values {
            for p in prefixes {
                raws.push(format!("{p}{v}"));
            }
        }
        let mut times = Vec::new();
        for d in dates(&values) {
            for edge in [d.lo, d.hi] {
                for step in [-Duration::DAY, -Duration::SECOND, Duration::ZERO, Duration::SECOND, Duration::DAY] {
                    times.push(edge + step);
                }
            }
        }
        let (mut checked, mut kept) = (0, 0);
        for a in &raws {
            for b in &raws {
                let ds = dates(&[a.as_str(), b.as_str()]);
                for instant in [false, true] {
                    let r = started_range(&ds, instant);
                    for &start in &times {
                        let ends: Vec<Option<OffsetDateTime>> = if instant {
                            vec![Some(start)]
                        } else {
                            times.iter().filter(|&&e| e >= start).map(|&e| Some(e)).chain([None]).collect()
                        };
                        for end in ends {
                            checked += 1;
                            if ds.iter().all(|d| d.matches(start, end)) {
                                kept += 1;
                                assert!(
                                    r.from.is_none_or(|f| f <= start) && r.until.is_none_or(|u| start < u),
                                    "{a} & {b} (instant {instant}): [{start}, {end:?}] matches outside {r:?}"
                                );
                            }
                        }
                    }
                }
            }
        }
        assert!(kept > 0 && kept < checked, "the grid has matches and misses ({kept} of {checked})");
    }
}
