//! Patient (read, search) and Encounter (search by patient) as FHIR. The rule is the JSON
//! API's: the role must allow reading patient records, and the user's facility needs a care
//! relationship with the patient or the community's read policy (`access::decide`; FHIR
//! has no break-glass, that stays in the JSON API). Every patient answered writes an
//! access-log row (`routes::patients::access_entry`) before it is served: `fhir_read_patient`,
//! `fhir_search_patient`, `read_encounters`. A search shows only the patients the user may
//! read; a Patient read or an Encounter search of someone else's patient answers 403.
//!
//! The store finds patients by id, identifier or exact name (no list of all patients), so a
//! Patient search needs one of `_id`, `identifier`, `name`; `birthdate` and `gender` narrow it.

use std::collections::HashMap;
use std::net::SocketAddr;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::get;
use serde_json::Value;
use tiercare_domain::access::{self, AccessBasis};
use tiercare_domain::identity::{IdentifierType, Sex};
use tiercare_domain::matching::MatchQuery;
use tiercare_domain::patient::Patient;
use tiercare_domain::patient::PatientStatus;
use tiercare_domain::referral::CHINA_TIME;
use tiercare_domain::role::Action;
use tiercare_fhir::outcome::{Issue, IssueType, Severity, operation_outcome};
use tiercare_fhir::registration::{ParsedPatient, parse_patient};
use tiercare_fhir::search::{DateParam, parse_token, token_matches};
use tiercare_store::StoreError;
use tiercare_store::new_id;
use time::OffsetDateTime;
use uuid::Uuid;

use super::versions::{check_version, header_error, if_match, versioned, with_meta};
use super::{
    FhirError, FhirResult, Params, china_today, fhir_json, issue_type, json_body, log_read, not_allowed, path_id,
    refused, with_location,
};
use crate::AppState;
use crate::error::ApiError;
use crate::extract::CurrentUser;

type RawQuery = Result<Query<Vec<(String, String)>>, QueryRejection>;

const ACT_CODE: &str = "http://terminology.hl7.org/CodeSystem/v3-ActCode";
/// The most candidates one name search reads from the store.
const NAME_CANDIDATES: u32 = 500;

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/fhir/Patient", get(search_patients).post(create_patient).fallback(not_allowed("GET, POST")))
        .route("/fhir/Patient/{id}", get(read_patient).put(update_patient).fallback(not_allowed("GET, PUT")))
        .route("/fhir/Encounter", get(search_encounters).fallback(not_allowed("GET")))
}

/// On what basis this user may read the patient's record, if at all.
async fn basis(state: &AppState, me: &CurrentUser, patient_id: Uuid) -> FhirResult<Option<AccessBasis>> {
    let facts = state.store.access_facts(me.user.facility_id, patient_id).await.map_err(ApiError::from)?;
    Ok(access::decide(facts, None).ok())
}

fn no_relationship() -> FhirError {
    ApiError::forbidden(
        "access.no_relationship",
        "your facility has no care relationship with this patient (the JSON API offers break-glass reading)",
    )
    .into()
}

/// When the patient last changed (meta.lastUpdated).
async fn updated_at(state: &AppState, id: Uuid) -> FhirResult<OffsetDateTime> {
    let found = state.store.patient_updated_at(&[id]).await.map_err(ApiError::from)?;
    found.first().map(|(_, t)| *t).ok_or_else(not_found)
}

fn not_found() -> FhirError {
    FhirError::new(StatusCode::NOT_FOUND, IssueType::NotFound, "Patient not found")
}

/// A patient as answered: the Patient with its meta, `ETag` and `Last-Modified`.
pub(super) fn answer(status: StatusCode, p: &Patient, at: OffsetDateTime) -> Response {
    let body = with_meta(tiercare_fhir::patient(p), p.version, at);
    versioned(fhir_json(status, &body), p.version, at)
}

/// The patient `id` and when it last changed, if this user may read the record (logged as
/// `action`).
pub(super) async fn read_logged(
    state: &AppState,
    me: &CurrentUser,
    id: Uuid,
    action: &str,
    addr: SocketAddr,
) -> FhirResult<(Patient, OffsetDateTime)> {
    me.require(Action::ReadPatientRecord)?;
    let (p, at) = state.store.get_patient_versioned(id).await.map_err(ApiError::from)?.ok_or_else(not_found)?;
    let basis = basis(state, me, id).await?.ok_or_else(no_relationship)?;
    log_read(state, me, (&p.region_key, id), action, basis, addr).await?;
    Ok((p, at))
}

async fn read_patient(
    State(state): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    me: Result<CurrentUser, ApiError>,
    Path(id): Path<String>,
) -> FhirResult<Response> {
    let me = me?;
    let id = path_id(&id, "Patient")?;
    let (p, at) = read_logged(&state, &me, id, "fhir_read_patient", addr).await?;
    Ok(answer(StatusCode::OK, &p, at))
}

/// `PUT /fhir/Patient/{id}`: change the registration (name, gender, birth date, phone,
/// address, identifiers, home facility) by the rules of registering (the identity number's
/// checks, one record per number), `If-Match` required (428 without it, 412 when the record
/// changed since). The user registers patients and may read this one; the answer shows the
/// record, so it is logged (`fhir_update_patient`). A merged record is not changed (409:
/// change the surviving one).
async fn update_patient(
    State(state): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    me: Result<CurrentUser, ApiError>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> FhirResult<Response> {
    let me = me?;
    me.require(Action::RegisterPatient)?;
    let id = path_id(&id, "Patient")?;
    let wanted = if_match(&headers)?;
    let v = json_body(&headers, body)?;
    let u = prepare_update(&state, &me, id, wanted, &v).await?;
    let at = match state.store.update_patient(&u.changed).await {
        Ok(at) => at,
        Err(e) => return Err(u.refused(&state, e).await),
    };
    log_read(&state, &me, (&u.changed.region_key, id), "fhir_update_patient", u.basis, addr).await?;
    let stored = Patient { version: u.changed.version + 1, ..u.changed };
    Ok(answer(StatusCode::OK, &stored, at))
}

/// A Patient update checked, not written ([`prepare_update`]).
pub(super) struct PatientUpdate {
    /// The record as it is to be, at the version it was read (`Store::update_patient`).
    pub(super) changed: Patient,
    /// Why this user may read the record (the answer shows it: `fhir_update_patient`).
    pub(super) basis: AccessBasis,
    wanted: i64,
    parsed: ParsedPatient,
}

impl PatientUpdate {
    /// The store's refusal of the write as the route answers it: a change since the check
    /// 412, a number registered to someone else 409 at its identifier.
    pub(super) async fn refused(&self, state: &AppState, e: StoreError) -> FhirError {
        match e {
            StoreError::Conflict(_) => {
                let id = self.changed.id;
                match state.store.get_patient(id).await {
                    Ok(now) => {
                        let now = now.map_or(0, |p| p.version);
                        check_version(self.wanted, now, "Patient").err().unwrap_or_else(not_found)
                    }
                    Err(e) => ApiError::from(e).into(),
                }
            }
            e => registration_error(e.into(), &self.parsed),
        }
    }
}

/// Everything of `PUT /fhir/Patient/{id}` but the write: the role, the body's id, the
/// Patient read strictly, `If-Match` (`wanted`; 428 without it, 412 when stale), the record
/// (404, 409 when merged), this user's right to read it, the rules of registering.
pub(super) async fn prepare_update(
    state: &AppState,
    me: &CurrentUser,
    id: Uuid,
    wanted: Option<i64>,
    v: &Value,
) -> FhirResult<PatientUpdate> {
    me.require(Action::RegisterPatient)?;
    if v.get("id").and_then(Value::as_str) != Some(id.to_string().as_str()) {
        return Err(FhirError {
            status: StatusCode::BAD_REQUEST,
            issues: vec![Issue::error(
                IssueType::Invalid,
                Some("Patient.id"),
                "an update carries the resource's id, the same as in the URL",
            )],
        });
    }
    let parsed = parse_patient(v).map_err(refused)?;
    let Some(wanted) = wanted else {
        return Err(header_error(
            StatusCode::PRECONDITION_REQUIRED,
            IssueType::Required,
            "If-Match",
            "an update names the version it changes: If-Match: W/\"<versionId>\" (the ETag of a read)",
        ));
    };
    let current = state.store.get_patient(id).await.map_err(ApiError::from)?.ok_or_else(not_found)?;
    let basis = basis(state, me, id).await?.ok_or_else(no_relationship)?;
    if let PatientStatus::Merged(into) = current.status {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "patient.merged",
            format!("this record was merged into Patient/{into}: change the surviving record"),
        )
        .into());
    }
    check_version(wanted, current.version, "Patient")?;
    let home = parsed.patient.home_facility_id.or(current.home_facility_id).unwrap_or(me.user.facility_id);
    let facility = home_facility(state, home, &parsed).await?;
    let input = tiercare_domain::patient::NewPatient { home_facility_id: Some(home), ..parsed.patient.clone() };
    let valid = input
        .validate(china_today(state), Some(&facility.region_code))
        .map_err(|e| registration_error(e.into(), &parsed))?;
    let changed = Patient {
        region_key: current.region_key.clone(),
        status: current.status,
        version: current.version,
        ..valid.into_patient(id)
    };
    Ok(PatientUpdate { changed, basis, wanted, parsed })
}

/// The home facility a Patient names (or the user's), 422 at managingOrganization if unknown.
async fn home_facility(
    state: &AppState,
    home: Uuid,
    parsed: &ParsedPatient,
) -> FhirResult<tiercare_domain::facility::Facility> {
    let unknown =
        || ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "reference.unknown", format!("unknown facility {home}"));
    let f = state.store.get_facility(home).await.map_err(ApiError::from)?.ok_or_else(|| {
        let mut e = unknown();
        e.details = vec![tiercare_domain::error::FieldError::new(
            "home_facility_id",
            "reference.unknown",
            "no such Organization",
        )];
        registration_error(e, parsed)
    })?;
    Ok(f)
}

/// The JSON API's refusal of a registration, each field detail at its element of the Patient.
fn registration_error(e: ApiError, parsed: &ParsedPatient) -> FhirError {
    let status = e.status;
    let code_of = |code: &str| {
        if code.ends_with(".missing") {
            IssueType::Required
        } else if code == "reference.unknown" {
            IssueType::Value
        } else {
            issue_type(status)
        }
    };
    super::api_error_outcome(e, code_of, |field| parsed.expression(field))
}

/// Conditional create: the patients `If-None-Exist` names (a Patient search's parameters,
/// read strictly: `identifier=system|value`, `_id`, `name`, narrowed by `birthdate`,
/// `gender`), whoever may read them. `None`: the header is absent or nothing matches
/// (create). One match: 200 with the existing Patient when this user may read it (logged
/// as `fhir_read_patient`), else 200 with an OperationOutcome naming it (as a plain create
/// would answer 409 naming it); several: 412.
async fn if_none_exist(
    state: &AppState,
    me: &CurrentUser,
    headers: &HeaderMap,
    addr: SocketAddr,
) -> FhirResult<Option<Response>> {
    let Some((one, basis)) = find_existing(state, me, headers).await? else { return Ok(None) };
    let location = format!("/fhir/Patient/{}", one.id);
    let resp = match basis {
        Some(b) => {
            let at = updated_at(state, one.id).await?;
            log_read(state, me, (&one.region_key, one.id), "fhir_read_patient", b, addr).await?;
            answer(StatusCode::OK, &one, at)
        }
        None => fhir_json(
            StatusCode::OK,
            &operation_outcome(&[Issue {
                severity: Severity::Information,
                ..Issue::error(
                    IssueType::Conflict,
                    Some("http.If-None-Exist"),
                    format!(
                        "not created: {location} matches If-None-Exist (your facility has no care \
                         relationship with this patient, so the record is not shown)"
                    ),
                )
            }]),
        ),
    };
    Ok(Some(with_location(resp, &location)))
}

/// The one patient the `If-None-Exist` of `headers` names, with the basis on which this
/// user may read it (`None`: no care relationship; the record is then not shown); `None`
/// when the header is absent or nothing matches; 412 when several match. Nothing is
/// logged here: the caller logs what it shows.
pub(super) async fn find_existing(
    state: &AppState,
    me: &CurrentUser,
    headers: &HeaderMap,
) -> FhirResult<Option<(Patient, Option<AccessBasis>)>> {
    let Some(criteria) = super::conditional::criteria(headers, "Patient")? else { return Ok(None) };
    let p = criteria.params;
    let births = p.dates("birthdate")?;
    let updated = p.dates("_lastUpdated")?;
    if !updated.is_empty() {
        return Err(header_error(
            StatusCode::BAD_REQUEST,
            IssueType::Invalid,
            "If-None-Exist",
            "If-None-Exist names a patient by identifier, _id or name (birthdate, gender)",
        ));
    }
    let sexes = genders(&p)?;
    let found: Vec<Patient> = candidates(state, &p)
        .await?
        .into_iter()
        .filter(|pt| patient_matches(&p, pt, &births, sexes.as_deref()))
        .collect();
    match found.as_slice() {
        [] => Ok(None),
        [one] => Ok(Some((one.clone(), basis(state, me, one.id).await?))),
        several => Err(super::conditional::several(
            &several.len().to_string(),
            "Patient",
            "name one (identifier=<system>|<value>)",
        )),
    }
}

/// `POST /fhir/Patient`: register a person, by the JSON API's rules (the role, the home
/// facility, the identity number's checks, no second record for the same number): 201
/// with the stored Patient and `Location`. With `If-None-Exist`, nothing is created when a
/// patient matches ([`if_none_exist`]).
async fn create_patient(
    State(state): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    me: Result<CurrentUser, ApiError>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> FhirResult<Response> {
    let me = me?;
    me.require(Action::RegisterPatient)?;
    let v = json_body(&headers, body)?;
    let parsed = parse_patient(&v).map_err(refused)?;
    if let Some(found) = if_none_exist(&state, &me, &headers, addr).await? {
        return Ok(found);
    }
    let c = prepare_create(&state, &me, parsed).await?;
    state.store.create_patient(&c.patient).await.map_err(|e| c.refused(e))?;
    let at = updated_at(&state, c.patient.id).await?;
    Ok(with_location(answer(StatusCode::CREATED, &c.patient, at), &format!("/fhir/Patient/{}", c.patient.id)))
}

/// A registration checked, not written ([`prepare_create`]).
pub(super) struct PatientCreate {
    /// The person to register (a new id).
    pub(super) patient: Patient,
    parsed: ParsedPatient,
}

impl PatientCreate {
    /// The store's refusal of the write as the route answers it (a number registered to
    /// someone else: 409 at its identifier).
    pub(super) fn refused(&self, e: StoreError) -> FhirError {
        registration_error(e.into(), &self.parsed)
    }
}

/// Everything of `POST /fhir/Patient` after the conditional check but the write: the role,
/// the home facility (422 unknown), the rules of registering; the new record's id.
pub(super) async fn prepare_create(
    state: &AppState,
    me: &CurrentUser,
    parsed: ParsedPatient,
) -> FhirResult<PatientCreate> {
    me.require(Action::RegisterPatient)?;
    let home = parsed.patient.home_facility_id.unwrap_or(me.user.facility_id);
    let facility = home_facility(state, home, &parsed).await?;
    let input = tiercare_domain::patient::NewPatient { home_facility_id: Some(home), ..parsed.patient.clone() };
    let valid = input
        .validate(china_today(state), Some(&facility.region_code))
        .map_err(|e| registration_error(e.into(), &parsed))?;
    Ok(PatientCreate { patient: valid.into_patient(new_id()), parsed })
}

/// The identifier types a token's system names (any, without a system).
fn identifier_kinds(system: Option<&str>) -> Vec<IdentifierType> {
    IdentifierType::ALL
        .into_iter()
        .filter(|k| system.is_none_or(|s| tiercare_fhir::identifier_system(*k) == s))
        .collect()
}

/// The patients the search's `_id`, `identifier` or `name` names (before narrowing).
async fn candidates(state: &AppState, p: &Params) -> FhirResult<Vec<Patient>> {
    let store = &state.store;
    if let Some(ids) = p.ids() {
        return Ok(store.get_patients(&ids).await.map_err(ApiError::from)?);
    }
    if let Some(tokens) = p.list("identifier") {
        let mut out: Vec<Patient> = Vec::new();
        for t in tokens {
            let (system, value) = parse_token(t);
            for kind in identifier_kinds(system) {
                let value = if kind == IdentifierType::ResidentId { value.to_ascii_uppercase() } else { value.into() };
                if let Some(found) = store.find_by_identifier(kind, &value).await.map_err(ApiError::from)?
                    && out.iter().all(|o| o.id != found.id)
                {
                    out.push(found);
                }
            }
        }
        return Ok(out);
    }
    if let Some(name) = p.get("name") {
        let q = MatchQuery { name: Some(name.to_owned()), ..MatchQuery::default() };
        return Ok(store.match_candidates(&q, NAME_CANDIDATES).await.map_err(ApiError::from)?);
    }
    Err(FhirError::bad_search(
        IssueType::Required,
        "search Patient by _id, identifier or name (birthdate and gender narrow)",
    ))
}

/// The `gender` codes asked for (administrative-gender; no patient of ours is other or unknown).
fn genders(p: &Params) -> FhirResult<Option<Vec<Option<Sex>>>> {
    let Some(list) = p.list("gender") else { return Ok(None) };
    list.iter()
        .map(|g| match *g {
            "male" => Ok(Some(Sex::Male)),
            "female" => Ok(Some(Sex::Female)),
            "other" | "unknown" => Ok(None),
            other => Err(FhirError::bad_search(
                IssueType::CodeInvalid,
                format!("search parameter \"gender\": {other:?} is not male, female, other or unknown"),
            )),
        })
        .collect::<FhirResult<Vec<_>>>()
        .map(Some)
}

fn patient_matches(p: &Params, pt: &Patient, births: &[DateParam], sexes: Option<&[Option<Sex>]>) -> bool {
    p.list("identifier").is_none_or(|l| {
        l.iter().any(|t| {
            pt.identifiers
                .iter()
                .any(|i| token_matches(t, &tiercare_fhir::identifier_system(i.kind), &i.value.to_ascii_uppercase()))
        })
    }) && p.get("name").is_none_or(|n| pt.name == n)
        && births.iter().all(|b| b.matches_day(pt.birth_date, CHINA_TIME))
        && sexes.is_none_or(|s| s.contains(&Some(pt.sex)))
}

async fn search_patients(
    State(state): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    me: Result<CurrentUser, ApiError>,
    headers: HeaderMap,
    query: RawQuery,
) -> FhirResult<Response> {
    let me = me?;
    me.require(Action::ReadPatientRecord)?;
    let p = Params::read(query, &headers, "Patient")?;
    let births = p.dates("birthdate")?;
    let updated = p.dates("_lastUpdated")?;
    let sexes = genders(&p)?;
    let matching: Vec<Patient> = candidates(&state, &p)
        .await?
        .into_iter()
        .filter(|pt| patient_matches(&p, pt, &births, sexes.as_deref()))
        .collect();
    let ids: Vec<Uuid> = matching.iter().map(|pt| pt.id).collect();
    let times: HashMap<Uuid, OffsetDateTime> =
        state.store.patient_updated_at(&ids).await.map_err(ApiError::from)?.into_iter().collect();
    let mut found = Vec::new();
    for pt in matching {
        let Some(&at) = times.get(&pt.id) else { continue };
        if updated.iter().all(|d| d.matches(at, Some(at)))
            && let Some(b) = basis(&state, &me, pt.id).await?
        {
            found.push((pt, b, at));
        }
    }
    found.sort_by_key(|(pt, _, _)| pt.id);
    let page = p.page(found)?;
    let mut entries = Vec::with_capacity(page.items.len());
    for (pt, b, at) in &page.items {
        log_read(&state, &me, (&pt.region_key, pt.id), "fhir_search_patient", *b, addr).await?;
        entries.push(with_meta(tiercare_fhir::patient(pt), pt.version, *at));
    }
    Ok(fhir_json(StatusCode::OK, &page.bundle(&p, entries)))
}

fn class_code(c: tiercare_domain::encounter::EncounterClass) -> &'static str {
    use tiercare_domain::encounter::EncounterClass::*;
    match c {
        Outpatient => "AMB",
        Inpatient => "IMP",
        Emergency => "EMER",
    }
}

async fn search_encounters(
    State(state): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    me: Result<CurrentUser, ApiError>,
    headers: HeaderMap,
    query: RawQuery,
) -> FhirResult<Response> {
    let me = me?;
    me.require(Action::ReadPatientRecord)?;
    let p = Params::read(query, &headers, "Encounter")?;
    let dates = p.dates("date")?;
    let Some(patient) = p.reference("patient", "Patient")? else {
        return Err(FhirError::bad_search(IssueType::Required, "search Encounter by patient: ?patient=Patient/<id>"));
    };
    // the store reads the encounters alone (not the whole record), within the started-at
    // range the dates allow; every value is still applied below
    let started = super::clinical::started_range(&dates, false);
    let mut all = Vec::new();
    if let Some(pt) = state.store.get_patient(patient).await.map_err(ApiError::from)? {
        let b = basis(&state, &me, patient).await?.ok_or_else(no_relationship)?;
        let found = state.store.patient_encounters(patient, started).await.map_err(ApiError::from)?;
        log_read(&state, &me, (&pt.region_key, patient), "read_encounters", b, addr).await?;
        all = found;
    }
    let ids = p.ids();
    // newest first: the store's order (`started_at`, then `id`, both descending)
    all.retain(|e| {
        ids.as_ref().is_none_or(|ids| ids.contains(&e.id))
            && dates.iter().all(|d| d.matches(e.started_at, e.ended_at))
            && p.list("class").is_none_or(|l| l.iter().any(|t| token_matches(t, ACT_CODE, class_code(e.class))))
    });
    let page = p.page(all)?;
    let entries = page.items.iter().map(tiercare_fhir::encounter).collect();
    Ok(fhir_json(StatusCode::OK, &page.bundle(&p, entries)))
}
