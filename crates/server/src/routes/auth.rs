use std::net::SocketAddr;

use axum::Json;
use axum::extract::{ConnectInfo, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};
use tiercare_store::{TokenKind, TokenRecord};
use time::OffsetDateTime;

use crate::AppState;
use crate::auth::{new_token, token_hash, verify_password};
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, CurrentUser};

/// Verified against when the user name is unknown, so both cases take the same time.
static DUMMY_HASH: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| crate::auth::hash_password("no-such-user-password").unwrap_or_default());

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LoginRequest {
    username: String,
    password: String,
}

pub(crate) fn user_json(u: &tiercare_store::User) -> Value {
    json!({
        "id": u.id,
        "username": u.username,
        "display_name": u.display_name,
        "facility_id": u.facility_id,
        "roles": u.roles,
        "active": u.active,
    })
}

pub(crate) async fn login(
    State(state): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    ApiJson(req): ApiJson<LoginRequest>,
) -> ApiResult<Json<Value>> {
    let username = req.username.trim().to_lowercase();
    let user_key = format!("user:{username}");
    let addr_key = format!("addr:{}", addr.ip());
    // an address (a whole clinic behind one NAT) gets ten times a user's allowance
    let addr_blocked = state.login_limiter.blocked_for_scaled(&addr_key, 10);
    if let Some(secs) = state.login_limiter.blocked_for(&user_key).or(addr_blocked) {
        return Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "auth.rate_limited",
            format!("too many failed sign-ins; try again in {secs} seconds"),
        ));
    }
    let user = state.store.get_user_by_username(&username).await?;
    // verify even for unknown users, so timing does not reveal which names exist
    let ok = match &user {
        Some(u) => verify_password(&req.password, &u.password_hash) && u.active,
        None => {
            let _ = verify_password(&req.password, &DUMMY_HASH);
            false
        }
    };
    let Some(user) = user.filter(|_| ok) else {
        state.login_limiter.record_failure(&user_key);
        state.login_limiter.record_failure(&addr_key);
        tracing::info!(target: "tiercare::auth", "failed sign-in");
        return Err(ApiError::new(StatusCode::UNAUTHORIZED, "auth.invalid", "wrong user name or password"));
    };
    state.login_limiter.clear(&user_key);
    let token = new_token();
    let now = OffsetDateTime::now_utc();
    let expires = now + state.config.session_ttl;
    state
        .store
        .create_token(&TokenRecord {
            token_hash: token_hash(&token),
            user_id: user.id,
            kind: TokenKind::Session,
            label: None,
            created_at: now,
            expires_at: Some(expires),
        })
        .await?;
    Ok(Json(json!({
        "token": token,
        "expires_at": expires.format(&time::format_description::well_known::Rfc3339).unwrap_or_default(),
        "user": user_json(&user),
    })))
}

pub(crate) async fn logout(State(state): State<AppState>, me: CurrentUser) -> ApiResult<StatusCode> {
    state.store.revoke_token(&me.token_hash, OffsetDateTime::now_utc()).await?;
    state.cache.tokens.remove(&me.token_hash);
    Ok(StatusCode::NO_CONTENT)
}

pub(crate) async fn me(me: CurrentUser) -> Json<Value> {
    Json(user_json(&me.user))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ApiTokenRequest {
    label: String,
}

/// An API token for a machine client acting as the signed-in user; shown once.
pub(crate) async fn create_api_token(
    State(state): State<AppState>,
    me: CurrentUser,
    ApiJson(req): ApiJson<ApiTokenRequest>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let label = req.label.trim();
    if label.is_empty() || label.chars().count() > 100 {
        return Err(ApiError::bad_request(
            "token.label",
            "give the token a label of 1-100 characters (e.g. the lab system's name)",
        ));
    }
    let token = new_token();
    state
        .store
        .create_token(&TokenRecord {
            token_hash: token_hash(&token),
            user_id: me.user.id,
            kind: TokenKind::Api,
            label: Some(label.to_owned()),
            created_at: OffsetDateTime::now_utc(),
            expires_at: None,
        })
        .await?;
    Ok((StatusCode::CREATED, Json(json!({ "token": token, "label": label }))))
}
