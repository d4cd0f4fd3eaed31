//! The patient index over HTTP: register, look up, match, read (access-controlled and
//! logged), break-glass, merge and unmerge, enrolments.

use std::net::SocketAddr;

use axum::Json;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};
use tiercare_domain::access::{self, AccessBasis};
use tiercare_domain::identity::{IdentifierType, IdentityNumber, mask_identifier};
use tiercare_domain::matching::{self, MatchQuery};
use tiercare_domain::patient::{NewEnrolment, NewPatient, Patient, PatientStatus};
use tiercare_domain::role::Action;
use tiercare_store::{AccessLogEntry, MergeRecord, PatientRecord, new_id};
use time::OffsetDateTime;
use uuid::Uuid;

use super::parse_id;
use crate::AppState;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, CurrentUser, require_patient_in_scope};

fn today() -> time::Date {
    OffsetDateTime::now_utc().date()
}

pub(crate) fn patient_json(p: &Patient) -> Value {
    let (status, merged_into) = match p.status {
        PatientStatus::Active => ("active", None),
        PatientStatus::Merged(into) => ("merged", Some(into)),
    };
    json!({
        "id": p.id,
        "region_key": p.region_key,
        "name": p.name,
        "sex": p.sex,
        "birth_date": p.birth_date.to_string(),
        "age": p.age_on(today()),
        "phone": p.phone,
        "address": p.address,
        "home_facility_id": p.home_facility_id,
        "identifiers": p.identifiers,
        "status": status,
        "merged_into": merged_into,
        "version": p.version,
    })
}

/// What an identity lookup shows: who the person is, to confirm at the desk; contact
/// details and other identifiers masked (the record itself is behind the access rule).
fn identity_json(p: &Patient) -> Value {
    json!({
        "id": p.id,
        "name": p.name,
        "sex": p.sex,
        "birth_date": p.birth_date.to_string(),
        "age": p.age_on(today()),
        "phone_masked": p.phone.as_deref().map(mask_identifier),
        "identifiers": p.identifiers.iter().map(|i| json!({"type": i.kind, "value_masked": mask_identifier(&i.value)})).collect::<Vec<_>>(),
        "home_facility_id": p.home_facility_id,
        "status": if p.status == PatientStatus::Active { "active" } else { "merged" },
    })
}

/// What a match reviewer sees of a candidate: enough to tell people apart, numbers masked.
fn candidate_json(p: &Patient, c: &matching::MatchCandidate) -> Value {
    json!({
        "patient_id": p.id,
        "score": c.score,
        "grade": c.grade,
        "agreements": c.agreements,
        "name": p.name,
        "sex": p.sex,
        "birth_date": p.birth_date.to_string(),
        "identity_number_masked": p.identity_number().map(mask_identifier),
        "phone_masked": p.phone.as_deref().map(mask_identifier),
        "home_facility_id": p.home_facility_id,
    })
}

fn merge_json(m: &MergeRecord) -> Value {
    let fmt = |t: OffsetDateTime| t.format(&time::format_description::well_known::Rfc3339).unwrap_or_default();
    json!({
        "id": m.id,
        "survivor_id": m.survivor_id,
        "merged_id": m.merged_id,
        "reason": m.reason,
        "merged_by": m.merged_by,
        "merged_at": fmt(m.merged_at),
        "undone_by": m.undone_by,
        "undone_at": m.undone_at.map(fmt),
        "undo_reason": m.undo_reason,
    })
}

async fn record_json(state: &AppState, r: &PatientRecord, basis: AccessBasis) -> ApiResult<Value> {
    let referrals = super::referrals::view::rows_json(state, &r.referrals, Some(&r.patient), false).await?;
    Ok(json!({
        "patient": patient_json(&r.patient),
        "merged_ids": r.merged_ids,
        "enrolments": r.enrolments,
        "encounters": r.encounters,
        "referrals": referrals,
        "filings": r.filings,
        "access": { "basis": basis },
    }))
}

/// The access-log row of `me` reading patient `patient_id` (of `region_key`) now, on
/// `basis`; every read of patient data writes one before anything is served.
pub(crate) fn access_entry(
    me: &CurrentUser,
    region_key: &str,
    patient_id: uuid::Uuid,
    action: &str,
    basis: AccessBasis,
    client_addr: Option<String>,
) -> AccessLogEntry {
    AccessLogEntry {
        id: new_id(),
        region_key: region_key.to_owned(),
        at: OffsetDateTime::now_utc(),
        user_id: me.user.id,
        facility_id: me.user.facility_id,
        patient_id,
        action: action.to_owned(),
        basis,
        reason: None,
        client_addr,
    }
}

/// Write the access-log entry; a read that cannot be logged is not served.
pub(crate) async fn log_access(
    state: &AppState,
    me: &CurrentUser,
    patient: &Patient,
    action: &str,
    basis: AccessBasis,
    reason: Option<&str>,
    addr: SocketAddr,
) -> ApiResult<()> {
    state
        .store
        .record_access(&AccessLogEntry {
            reason: reason.map(str::to_owned),
            ..access_entry(me, &patient.region_key, patient.id, action, basis, Some(addr.ip().to_string()))
        })
        .await?;
    Ok(())
}

pub(crate) async fn register(
    State(state): State<AppState>,
    me: CurrentUser,
    ApiJson(mut req): ApiJson<NewPatient>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    me.require(Action::RegisterPatient)?;
    let home = req.home_facility_id.unwrap_or(me.user.facility_id);
    req.home_facility_id = Some(home);
    let facility = state.store.get_facility(home).await?.ok_or_else(|| {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "reference.unknown", format!("unknown facility {home}"))
    })?;
    let valid = req.validate(today(), Some(&facility.region_code))?;
    let patient = valid.into_patient(new_id());
    state.store.create_patient(&patient).await?;
    Ok((StatusCode::CREATED, Json(patient_json(&patient))))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LookupRequest {
    #[serde(rename = "type")]
    kind: IdentifierType,
    value: String,
}

fn require_identify(me: &CurrentUser) -> ApiResult<()> {
    if me.may(Action::RegisterPatient) || me.may(Action::ReadPatientRecord) {
        Ok(())
    } else {
        me.require(Action::ReadPatientRecord)
    }
}

/// "Who has this identifier?" Answers the surviving record's demographics; logged.
pub(crate) async fn lookup(
    State(state): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    me: CurrentUser,
    ApiJson(req): ApiJson<LookupRequest>,
) -> ApiResult<Json<Value>> {
    require_identify(&me)?;
    let value = match req.kind {
        IdentifierType::ResidentId => IdentityNumber::parse(&req.value, today())
            .map_err(|e| ApiError::invalid(vec![e.to_field_error("value")]))?
            .as_str()
            .to_owned(),
        kind => {
            tiercare_domain::identity::Identifier::other(kind, &req.value, "value")
                .map_err(|e| ApiError::invalid(vec![e]))?
                .value
        }
    };
    let found = state.store.find_by_identifier(req.kind, &value).await?;
    let Some(found) = found else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "patient.not_registered",
            "no patient is registered with this identifier",
        ));
    };
    let via = found.id;
    let p = state.store.surviving_patient(via).await?.ok_or_else(|| ApiError::not_found("surviving record"))?;
    log_access(&state, &me, &p, "lookup", AccessBasis::Identification, None, addr).await?;
    let mut body = identity_json(&p);
    if via != p.id {
        body["found_via_merged_record"] = json!(via);
    }
    Ok(Json(body))
}

/// "Who matches this?" Ranked candidates; creates nothing.
pub(crate) async fn find_matches(
    State(state): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    me: CurrentUser,
    ApiJson(q): ApiJson<MatchQuery>,
) -> ApiResult<Json<Value>> {
    require_identify(&me)?;
    let given = [q.name.as_deref().is_some_and(|n| !n.trim().is_empty()), q.birth_date.is_some(), q.phone.is_some()]
        .iter()
        .filter(|b| **b)
        .count();
    if q.identity_number.is_none() && given < 2 {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "match.too_little",
            "give an identity number, or at least two of name, birth_date and phone",
        ));
    }
    let candidates = state.store.match_candidates(&q, 200).await?;
    let ranked = matching::rank(&q, candidates.iter(), 20);
    let mut out = Vec::new();
    for c in &ranked {
        if let Some(p) = candidates.iter().find(|p| p.id == c.patient_id) {
            log_access(&state, &me, p, "match", AccessBasis::Identification, None, addr).await?;
            out.push(candidate_json(p, c));
        }
    }
    Ok(Json(json!({ "candidates": out })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SearchRequest {
    name: Option<String>,
    phone: Option<String>,
}

/// The most patients one search answers.
const SEARCH_LIMIT: usize = 50;

/// What a search result shows: enough to pick the person, numbers masked.
fn search_json(p: &Patient) -> Value {
    json!({
        "patient_id": p.id,
        "name": p.name,
        "sex": p.sex,
        "birth_date": p.birth_date.to_string(),
        "age": p.age_on(today()),
        "identity_number_masked": p.identity_number().map(mask_identifier),
        "phone_masked": p.phone.as_deref().map(mask_identifier),
        "home_facility_id": p.home_facility_id,
        "status": "active",
    })
}

/// "Who is called this / has this phone?" Active records with the exact name and/or phone
/// (both must agree when both are given); each one answered is logged as identification.
pub(crate) async fn search(
    State(state): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    me: CurrentUser,
    ApiJson(req): ApiJson<SearchRequest>,
) -> ApiResult<Json<Value>> {
    require_identify(&me)?;
    let name = req.name.as_deref().map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned);
    let phone = req.phone.as_deref().map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned);
    if name.is_none() && phone.is_none() {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "search.too_little",
            "give a name or a phone number",
        ));
    }
    let q = MatchQuery { name: name.clone(), phone: phone.clone(), ..MatchQuery::default() };
    let candidates = state.store.match_candidates(&q, 200).await?;
    let mut out = Vec::new();
    for p in candidates.iter().filter(|p| {
        p.status == PatientStatus::Active
            && name.as_deref().is_none_or(|n| p.name == n)
            && phone.as_deref().is_none_or(|ph| p.phone.as_deref() == Some(ph))
    }) {
        if out.len() == SEARCH_LIMIT {
            break;
        }
        log_access(&state, &me, p, "search", AccessBasis::Identification, None, addr).await?;
        out.push(search_json(p));
    }
    Ok(Json(json!({ "patients": out })))
}

/// The patient, if this user may read their record (the role, then a care relationship, the
/// community's read policy or — with a `reason` — break-glass), and the basis to log.
pub(crate) async fn readable_patient(
    state: &AppState,
    me: &CurrentUser,
    id: Uuid,
    reason: Option<&str>,
) -> ApiResult<(Patient, AccessBasis)> {
    me.require(Action::ReadPatientRecord)?;
    let patient = state.store.get_patient(id).await?.ok_or_else(|| ApiError::not_found("patient"))?;
    let facts = state.store.access_facts(me.user.facility_id, id).await?;
    let basis = access::decide(facts, reason).map_err(|e| {
        let code = match e {
            access::AccessDenied::NoRelationship => "access.no_relationship",
            access::AccessDenied::ReasonTooShort(_) => "access.reason_too_short",
        };
        ApiError::forbidden(code, e.to_string())
    })?;
    Ok((patient, basis))
}

async fn read_with(
    state: &AppState,
    me: &CurrentUser,
    id: Uuid,
    reason: Option<&str>,
    addr: SocketAddr,
) -> ApiResult<Json<Value>> {
    let (_, basis) = readable_patient(state, me, id, reason).await?;
    let record = state.store.patient_record(id).await?.ok_or_else(|| ApiError::not_found("patient"))?;
    let action = if basis == AccessBasis::BreakGlass { "break_glass_read" } else { "read_record" };
    let logged_reason = if basis == AccessBasis::BreakGlass { reason } else { None };
    log_access(state, me, &record.patient, action, basis, logged_reason, addr).await?;
    Ok(Json(record_json(state, &record, basis).await?))
}

pub(crate) async fn read_record(
    State(state): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    me: CurrentUser,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let id = parse_id(&id, "patient")?;
    read_with(&state, &me, id, None, addr).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReasonRequest {
    reason: String,
}

/// Read a record without a care relationship, stating why; the reason is logged.
pub(crate) async fn break_glass(
    State(state): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    me: CurrentUser,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<ReasonRequest>,
) -> ApiResult<Json<Value>> {
    let id = parse_id(&id, "patient")?;
    if req.reason.trim().chars().count() > 500 {
        return Err(ApiError::bad_request("reason.length", "a break-glass reason is at most 500 characters"));
    }
    if req.reason.trim().chars().count() < access::MIN_BREAK_GLASS_REASON {
        return Err(ApiError::forbidden(
            "access.reason_too_short",
            access::AccessDenied::ReasonTooShort(access::MIN_BREAK_GLASS_REASON).to_string(),
        ));
    }
    // break-glass means no ordinary basis: skip straight to the reason
    me.require(Action::ReadPatientRecord)?;
    if state.store.get_patient(id).await?.is_none() {
        return Err(ApiError::not_found("patient"));
    }
    let record = state.store.patient_record(id).await?.ok_or_else(|| ApiError::not_found("patient"))?;
    let reason = req.reason.trim();
    log_access(&state, &me, &record.patient, "break_glass_read", AccessBasis::BreakGlass, Some(reason), addr).await?;
    tracing::warn!(target: "tiercare::audit", user = %me.user.id, "break-glass read");
    Ok(Json(record_json(&state, &record, AccessBasis::BreakGlass).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct MergeRequest {
    merged_id: Uuid,
    reason: String,
}

fn check_reason(reason: &str) -> ApiResult<String> {
    let r = reason.trim();
    if r.chars().count() < 4 || r.chars().count() > 500 {
        return Err(ApiError::invalid(vec![tiercare_domain::FieldError::new(
            "reason",
            "reason.length",
            "say why, in 4-500 characters",
        )]));
    }
    Ok(r.to_owned())
}

pub(crate) async fn merge(
    State(state): State<AppState>,
    me: CurrentUser,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<MergeRequest>,
) -> ApiResult<Json<Value>> {
    me.require(Action::MergePatients)?;
    let survivor_id = parse_id(&id, "patient")?;
    let reason = check_reason(&req.reason)?;
    for pid in [survivor_id, req.merged_id] {
        if state.store.get_patient(pid).await?.is_some() {
            require_patient_in_scope(&state, &me, pid).await?;
        }
    }
    let rec =
        state.store.merge_patients(survivor_id, req.merged_id, me.user.id, &reason, OffsetDateTime::now_utc()).await?;
    Ok(Json(merge_json(&rec)))
}

pub(crate) async fn unmerge(
    State(state): State<AppState>,
    me: CurrentUser,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<ReasonRequest>,
) -> ApiResult<Json<Value>> {
    me.require(Action::MergePatients)?;
    let merge_id = parse_id(&id, "merge")?;
    let reason = check_reason(&req.reason)?;
    if let Some(m) = state.store.get_merge(merge_id).await? {
        require_patient_in_scope(&state, &me, m.merged_id).await?;
    }
    let rec =
        state.store.unmerge(merge_id, me.user.id, &reason, OffsetDateTime::now_utc()).await.map_err(|e| match e {
            tiercare_store::StoreError::NotFound { what } => ApiError::not_found(&what),
            other => other.into(),
        })?;
    Ok(Json(merge_json(&rec)))
}

pub(crate) async fn merge_history(
    State(state): State<AppState>,
    me: CurrentUser,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    me.require(Action::MergePatients)?;
    let id = parse_id(&id, "patient")?;
    require_patient_in_scope(&state, &me, id).await?;
    let list = state.store.merge_history(id).await?;
    Ok(Json(json!({ "merges": list.iter().map(merge_json).collect::<Vec<_>>() })))
}

pub(crate) async fn add_enrolment(
    State(state): State<AppState>,
    me: CurrentUser,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<NewEnrolment>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    me.require(Action::ManageEnrolment)?;
    let patient_id = parse_id(&id, "patient")?;
    if state.store.get_patient(patient_id).await?.is_none() {
        return Err(ApiError::not_found("patient"));
    }
    let e = req.validate(new_id(), patient_id)?;
    state.store.add_enrolment(&e).await?;
    Ok((StatusCode::CREATED, Json(json!(e))))
}
