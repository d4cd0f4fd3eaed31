use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::Value;
use tiercare_domain::FieldError;
use tiercare_domain::error::Problems;
use tiercare_domain::role::{Action, Role};
use tiercare_store::{User, new_id};
use uuid::Uuid;

use super::auth::user_json;
use crate::AppState;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, CurrentUser};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewUser {
    username: String,
    display_name: String,
    facility_id: Uuid,
    roles: Vec<String>,
    password: String,
}

/// Validate a new user's fields (shared with the CLI's `users add`).
pub fn validate_user(
    username: &str,
    display_name: &str,
    roles: &[String],
    password: &str,
) -> Result<(String, String, Vec<Role>, String), tiercare_domain::DomainError> {
    let mut p = Problems::default();
    let username = username.trim().to_lowercase();
    if !(3..=32).contains(&username.len())
        || !username.bytes().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, b'_' | b'.' | b'-'))
    {
        p.add("username", "username.format", "a user name is 3-32 of a-z, 0-9, '_', '.', '-'");
    }
    let display = p.take(tiercare_domain::facility::validate_name("display_name", display_name, 50));
    let mut parsed = Vec::new();
    if roles.is_empty() {
        p.add("roles", "roles.missing", "give at least one role");
    }
    for (i, r) in roles.iter().enumerate() {
        match Role::parse(r.trim()) {
            Some(role) if !parsed.contains(&role) => parsed.push(role),
            Some(_) => {}
            None => p.push(FieldError::new(
                &format!("roles[{i}]"),
                "role.unknown",
                format!(
                    "unknown role {r:?}; roles are {}",
                    Role::ALL.iter().map(|r| r.as_str()).collect::<Vec<_>>().join(", ")
                ),
            )),
        }
    }
    let hash = match crate::auth::hash_password(password) {
        Ok(h) => Some(h),
        Err(m) => {
            p.add("password", "password.weak", m);
            None
        }
    };
    p.into_result()?;
    Ok((username, display.unwrap_or_default(), parsed, hash.unwrap_or_default()))
}

pub(crate) async fn create(
    State(state): State<AppState>,
    me: CurrentUser,
    ApiJson(req): ApiJson<NewUser>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    me.require(Action::ManageUsers)?;
    let (username, display_name, roles, password_hash) =
        validate_user(&req.username, &req.display_name, &req.roles, &req.password)?;
    let facility = state.store.get_facility(req.facility_id).await?.ok_or_else(|| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "reference.unknown",
            format!("unknown facility {}", req.facility_id),
        )
    })?;
    if !me.has_role(Role::SystemAdmin) {
        // a community admin manages users of their own community, and no system admins
        let mine = state.store.get_facility(me.user.facility_id).await?.and_then(|f| f.community_id);
        if mine.is_none() || facility.community_id != mine {
            return Err(ApiError::forbidden(
                "users.other_community",
                "you can add users only to facilities of your own community",
            ));
        }
        if roles.contains(&Role::SystemAdmin) {
            return Err(ApiError::forbidden("users.system_admin", "only a system admin can create a system admin"));
        }
    }
    let user =
        User { id: new_id(), username, display_name, facility_id: facility.id, roles, password_hash, active: true };
    state.store.create_user(&user).await?;
    Ok((StatusCode::CREATED, Json(user_json(&user))))
}

pub(crate) async fn list(State(state): State<AppState>, me: CurrentUser) -> ApiResult<Json<Vec<Value>>> {
    me.require(Action::ManageUsers)?;
    let users = state.store.list_users().await?;
    let Some(community) = crate::extract::admin_scope(&state, &me).await? else {
        return Ok(Json(users.iter().map(user_json).collect()));
    };
    let filter = tiercare_store::FacilityFilter { community_id: Some(community), ..Default::default() };
    let mine: Vec<Uuid> = state.store.list_facilities(&filter).await?.iter().map(|f| f.id).collect();
    Ok(Json(users.iter().filter(|u| mine.contains(&u.facility_id)).map(user_json).collect()))
}
