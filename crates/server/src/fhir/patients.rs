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

use std::net::SocketAddr;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use axum::routing::get;
use tiercare_domain::access::{self, AccessBasis};
use tiercare_domain::identity::{IdentifierType, Sex};
use tiercare_domain::matching::MatchQuery;
use tiercare_domain::patient::Patient;
use tiercare_domain::referral::CHINA_TIME;
use tiercare_domain::role::Action;
use tiercare_fhir::outcome::IssueType;
use tiercare_fhir::registration::{ParsedPatient, parse_patient};
use tiercare_fhir::search::{DateParam, parse_token, token_matches};
use tiercare_store::new_id;
use uuid::Uuid;

use super::{
    FhirError, FhirResult, Params, china_today, fhir_json, issue_type, json_body, log_read, not_allowed, path_id,
    refused,
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
        .route("/fhir/Patient/{id}", get(read_patient).fallback(not_allowed("GET")))
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

async fn read_patient(
    State(state): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    me: Result<CurrentUser, ApiError>,
    Path(id): Path<String>,
) -> FhirResult<Response> {
    let me = me?;
    me.require(Action::ReadPatientRecord)?;
    let id = path_id(&id, "Patient")?;
    let Some(p) = state.store.get_patient(id).await.map_err(ApiError::from)? else {
        return Err(FhirError::new(StatusCode::NOT_FOUND, IssueType::NotFound, "Patient not found"));
    };
    let basis = basis(&state, &me, id).await?.ok_or_else(no_relationship)?;
    log_read(&state, &me, (&p.region_key, id), "fhir_read_patient", basis, addr).await?;
    Ok(fhir_json(StatusCode::OK, &tiercare_fhir::patient(&p)))
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

/// `POST /fhir/Patient`: register a person, by the JSON API's rules (the role, the home
/// facility, the identity number's checks, no second record for the same number): 201
/// with the stored Patient and `Location`.
async fn create_patient(
    State(state): State<AppState>,
    me: Result<CurrentUser, ApiError>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> FhirResult<Response> {
    let me = me?;
    me.require(Action::RegisterPatient)?;
    let v = json_body(&headers, body)?;
    let parsed = parse_patient(&v).map_err(refused)?;
    let home = parsed.patient.home_facility_id.unwrap_or(me.user.facility_id);
    let unknown =
        || ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "reference.unknown", format!("unknown facility {home}"));
    let facility = state.store.get_facility(home).await.map_err(ApiError::from)?.ok_or_else(|| {
        let mut e = unknown();
        e.details = vec![tiercare_domain::error::FieldError::new(
            "home_facility_id",
            "reference.unknown",
            "no such Organization",
        )];
        registration_error(e, &parsed)
    })?;
    let input = tiercare_domain::patient::NewPatient { home_facility_id: Some(home), ..parsed.patient.clone() };
    let valid = input
        .validate(china_today(&state), Some(&facility.region_code))
        .map_err(|e| registration_error(e.into(), &parsed))?;
    let patient = valid.into_patient(new_id());
    state.store.create_patient(&patient).await.map_err(|e| registration_error(e.into(), &parsed))?;
    let mut resp = fhir_json(StatusCode::CREATED, &tiercare_fhir::patient(&patient));
    if let Ok(loc) = HeaderValue::from_str(&format!("/fhir/Patient/{}", patient.id)) {
        resp.headers_mut().insert(header::LOCATION, loc);
    }
    Ok(resp)
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
    let sexes = genders(&p)?;
    let mut found = Vec::new();
    for pt in candidates(&state, &p).await? {
        if patient_matches(&p, &pt, &births, sexes.as_deref())
            && let Some(b) = basis(&state, &me, pt.id).await?
        {
            found.push((pt, b));
        }
    }
    found.sort_by_key(|(pt, _)| pt.id);
    let page = p.page(found)?;
    let mut entries = Vec::with_capacity(page.items.len());
    for (pt, b) in &page.items {
        log_read(&state, &me, (&pt.region_key, pt.id), "fhir_search_patient", *b, addr).await?;
        entries.push(tiercare_fhir::patient(pt));
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
    let mut all = Vec::new();
    if let Some(pt) = state.store.get_patient(patient).await.map_err(ApiError::from)? {
        let b = basis(&state, &me, patient).await?.ok_or_else(no_relationship)?;
        let record = state.store.patient_record(patient).await.map_err(ApiError::from)?;
        log_read(&state, &me, (&pt.region_key, patient), "read_encounters", b, addr).await?;
        all = record.map(|r| r.encounters).unwrap_or_default();
    }
    let ids = p.ids();
    all.retain(|e| {
        ids.as_ref().is_none_or(|ids| ids.contains(&e.id))
            && dates.iter().all(|d| d.matches(e.started_at, e.ended_at))
            && p.list("class").is_none_or(|l| l.iter().any(|t| token_matches(t, ACT_CODE, class_code(e.class))))
    });
    // newest first
    all.sort_by_key(|e| std::cmp::Reverse((e.started_at, e.id)));
    let page = p.page(all)?;
    let entries = page.items.iter().map(tiercare_fhir::encounter).collect();
    Ok(fhir_json(StatusCode::OK, &page.bundle(&p, entries)))
}
