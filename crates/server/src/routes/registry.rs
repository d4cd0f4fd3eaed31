//! Alliances, communities, facilities, practitioners and their roles.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};
use tiercare_domain::error::Problems;
use tiercare_domain::facility::{
    Alliance, Community, Facility, NewFacility, Practitioner, PractitionerRole, PractitionerRoleCode, Tier,
};
use tiercare_domain::role::Action;
use tiercare_store::{FacilityFilter, new_id};
use uuid::Uuid;

use super::parse_id;
use crate::AppState;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, CurrentUser, admin_scope};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewAlliance {
    name: String,
    region_code: String,
}

pub(crate) async fn create_alliance(
    State(state): State<AppState>,
    me: CurrentUser,
    ApiJson(req): ApiJson<NewAlliance>,
) -> ApiResult<(StatusCode, Json<Alliance>)> {
    require_system_admin(&me)?;
    let mut p = Problems::default();
    let name = p.take(non_empty("name", &req.name));
    let region = p.take(tiercare_domain::region::validate_region_code("region_code", &req.region_code));
    p.into_result()?;
    let a = Alliance { id: new_id(), name: name.unwrap_or_default(), region_code: region.unwrap_or_default() };
    state.store.create_alliance(&a).await?;
    Ok((StatusCode::CREATED, Json(a)))
}

pub(crate) async fn list_alliances(State(state): State<AppState>, _me: CurrentUser) -> ApiResult<Json<Vec<Alliance>>> {
    Ok(Json(state.store.list_alliances().await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewCommunity {
    name: String,
    region_code: String,
    alliance_id: Option<Uuid>,
    #[serde(default)]
    community_wide_read: bool,
}

pub(crate) async fn create_community(
    State(state): State<AppState>,
    me: CurrentUser,
    ApiJson(req): ApiJson<NewCommunity>,
) -> ApiResult<(StatusCode, Json<Community>)> {
    require_system_admin(&me)?;
    let mut p = Problems::default();
    let name = p.take(non_empty("name", &req.name));
    let region = p.take(tiercare_domain::region::validate_region_code("region_code", &req.region_code));
    p.into_result()?;
    let c = Community {
        id: new_id(),
        alliance_id: req.alliance_id,
        name: name.unwrap_or_default(),
        region_code: region.unwrap_or_default(),
        community_wide_read: req.community_wide_read,
    };
    state.store.create_community(&c).await?;
    Ok((StatusCode::CREATED, Json(c)))
}

pub(crate) async fn list_communities(
    State(state): State<AppState>,
    _me: CurrentUser,
) -> ApiResult<Json<Vec<Community>>> {
    Ok(Json(state.store.list_communities().await?))
}

pub(crate) async fn create_facility(
    State(state): State<AppState>,
    me: CurrentUser,
    ApiJson(req): ApiJson<NewFacility>,
) -> ApiResult<(StatusCode, Json<Facility>)> {
    me.require(Action::ManageRegistry)?;
    if let Some(mine) = admin_scope(&state, &me).await?
        && req.community_id != Some(mine)
    {
        return Err(other_community());
    }
    let f = req.validate(new_id())?;
    state.store.create_facility(&f).await?;
    Ok((StatusCode::CREATED, Json(f)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FacilityQuery {
    community_id: Option<Uuid>,
    tier: Option<String>,
    region_code: Option<String>,
}

pub(crate) async fn list_facilities(
    State(state): State<AppState>,
    _me: CurrentUser,
    Query(q): Query<FacilityQuery>,
) -> ApiResult<Json<Vec<Facility>>> {
    let tier = match q.tier.as_deref() {
        Some(t) => Some(Tier::parse(t).ok_or_else(|| {
            ApiError::bad_request(
                "tier.unknown",
                format!("unknown tier {t:?}; use village, township, county, city, provincial or national"),
            )
        })?),
        None => None,
    };
    let filter = FacilityFilter { community_id: q.community_id, tier, region_code: q.region_code };
    Ok(Json(state.store.list_facilities(&filter).await?))
}

pub(crate) async fn get_facility(
    State(state): State<AppState>,
    _me: CurrentUser,
    Path(id): Path<String>,
) -> ApiResult<Json<Facility>> {
    let id = parse_id(&id, "facility")?;
    state.store.get_facility(id).await?.map(Json).ok_or_else(|| ApiError::not_found("facility"))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewPractitioner {
    name: String,
    licence_number: Option<String>,
    phone: Option<String>,
}

pub(crate) async fn create_practitioner(
    State(state): State<AppState>,
    me: CurrentUser,
    ApiJson(req): ApiJson<NewPractitioner>,
) -> ApiResult<(StatusCode, Json<Practitioner>)> {
    me.require(Action::ManageRegistry)?;
    let p = tiercare_domain::facility::validate_practitioner(
        new_id(),
        &req.name,
        req.licence_number.as_deref(),
        req.phone.as_deref(),
    )?;
    state.store.create_practitioner(&p).await?;
    Ok((StatusCode::CREATED, Json(p)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PractitionerQuery {
    facility_id: Option<Uuid>,
}

pub(crate) async fn list_practitioners(
    State(state): State<AppState>,
    _me: CurrentUser,
    Query(q): Query<PractitionerQuery>,
) -> ApiResult<Json<Vec<Practitioner>>> {
    Ok(Json(state.store.list_practitioners(q.facility_id).await?))
}

pub(crate) async fn get_practitioner(
    State(state): State<AppState>,
    _me: CurrentUser,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let id = parse_id(&id, "practitioner")?;
    let p = state.store.get_practitioner(id).await?.ok_or_else(|| ApiError::not_found("practitioner"))?;
    let roles = state.store.list_practitioner_roles(id).await?;
    Ok(Json(json!({ "practitioner": p, "roles": roles })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewRole {
    facility_id: Uuid,
    role: PractitionerRoleCode,
    department: Option<String>,
}

pub(crate) async fn add_practitioner_role(
    State(state): State<AppState>,
    me: CurrentUser,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<NewRole>,
) -> ApiResult<(StatusCode, Json<PractitionerRole>)> {
    me.require(Action::ManageRegistry)?;
    let practitioner_id = parse_id(&id, "practitioner")?;
    if let Some(mine) = admin_scope(&state, &me).await? {
        let facility = state.store.get_facility(req.facility_id).await?;
        if facility.is_some_and(|f| f.community_id != Some(mine)) {
            return Err(other_community());
        }
    }
    let r = PractitionerRole {
        id: new_id(),
        practitioner_id,
        facility_id: req.facility_id,
        role: req.role,
        department: req.department.map(|d| d.trim().to_owned()).filter(|d| !d.is_empty()),
        active: true,
    };
    state.store.create_practitioner_role(&r).await?;
    Ok((StatusCode::CREATED, Json(r)))
}

fn require_system_admin(me: &CurrentUser) -> Result<(), ApiError> {
    me.require(Action::ManageRegistry)?;
    if me.has_role(tiercare_domain::role::Role::SystemAdmin) {
        Ok(())
    } else {
        Err(ApiError::forbidden("registry.system_admin", "only a system admin creates alliances and communities"))
    }
}

fn other_community() -> ApiError {
    ApiError::forbidden(
        "registry.other_community",
        "a community admin registers facilities and roles only in their own community",
    )
}

fn non_empty(field: &str, s: &str) -> Result<String, tiercare_domain::FieldError> {
    tiercare_domain::facility::validate_name(field, s, 100)
}
