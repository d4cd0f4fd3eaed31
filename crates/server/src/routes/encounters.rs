use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use tiercare_domain::encounter::{Encounter, NewEncounter};
use tiercare_domain::patient::PatientStatus;
use tiercare_domain::role::Action;
use tiercare_store::new_id;
use time::OffsetDateTime;

use crate::AppState;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, CurrentUser};

/// How recent an identity lookup must be to open a first encounter or send a first referral.
const PRESENCE_WINDOW: time::Duration = time::Duration::hours(24);

/// Recording an encounter or sending a referral creates a care relationship, so neither may
/// be a way around the access rule: the facility already has access, or this user
/// identified the patient (an identity lookup, which is logged) within the last 24 hours —
/// the patient is at the desk. Refused with `code` otherwise.
pub(crate) async fn require_presence(
    state: &AppState,
    me: &CurrentUser,
    patient_id: uuid::Uuid,
    code: &str,
) -> ApiResult<()> {
    let facts = state.store.access_facts(me.user.facility_id, patient_id).await?;
    if tiercare_domain::access::decide(facts, None).is_ok() {
        return Ok(());
    }
    let recent = state
        .store
        .query_access_log(&tiercare_store::AccessLogFilter {
            patient_id: Some(patient_id),
            user_id: Some(me.user.id),
            community_id: None,
            basis: Some(tiercare_domain::access::AccessBasis::Identification),
            // access-log rows carry the wall-clock time
            from: Some(OffsetDateTime::now_utc() - PRESENCE_WINDOW),
            to: None,
            limit: 1,
        })
        .await?;
    if recent.iter().any(|e| e.action == "lookup") {
        return Ok(());
    }
    Err(ApiError::forbidden(
        code,
        "your facility has no care relationship with this patient: look the patient up by their identity document first",
    ))
}

/// Record an encounter at the user's own facility.
pub(crate) async fn create(
    State(state): State<AppState>,
    me: CurrentUser,
    ApiJson(req): ApiJson<NewEncounter>,
) -> ApiResult<(StatusCode, Json<Encounter>)> {
    me.require(Action::RecordEncounter)?;
    if req.facility_id != me.user.facility_id {
        return Err(ApiError::forbidden(
            "encounter.other_facility",
            "you can record encounters only at your own facility",
        ));
    }
    let patient = state.store.get_patient(req.patient_id).await?.ok_or_else(|| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "reference.unknown",
            format!("unknown patient {}", req.patient_id),
        )
    })?;
    require_presence(&state, &me, patient.id, "encounter.no_relationship").await?;
    if let PatientStatus::Merged(into) = patient.status {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "patient.merged",
            format!("this record was merged into {into}; record the encounter on the surviving record"),
        ));
    }
    let e = req.validate(new_id(), patient.region_key, OffsetDateTime::now_utc())?;
    state.store.create_encounter(&e).await?;
    Ok((StatusCode::CREATED, Json(e)))
}
