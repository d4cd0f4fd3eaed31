//! Extractors: JSON bodies with clear errors, and the signed-in user.

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;
use tiercare_domain::role::{Action, Role};
use tiercare_store::User;

use crate::AppState;
use crate::error::ApiError;

/// A JSON body; malformed JSON, wrong types, a missing content type or an oversized body
/// answer with an [`ApiError`] that says which.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(ApiJson(v)),
            Err(rej) => Err(json_rejection(rej)),
        }
    }
}

fn json_rejection(rej: JsonRejection) -> ApiError {
    match rej {
        JsonRejection::JsonDataError(e) => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "json.data",
            format!(
                "the JSON has a wrong field or type: {}",
                redact_values(
                    e.body_text().trim_start_matches("Failed to deserialize the JSON body into the target type: ")
                )
            ),
        ),
        JsonRejection::JsonSyntaxError(e) => ApiError::new(
            StatusCode::BAD_REQUEST,
            "json.syntax",
            format!(
                "the body is not valid JSON: {}",
                e.body_text().trim_start_matches("Failed to parse the request body as JSON: ")
            ),
        ),
        JsonRejection::MissingJsonContentType(_) => ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "json.content_type",
            "send the body as JSON with the header Content-Type: application/json",
        ),
        JsonRejection::BytesRejection(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body.too_large",
            "the request body is larger than the server accepts (see max_body_bytes)",
        ),
        other => ApiError::new(other.status(), "body.unreadable", other.body_text()),
    }
}

/// serde quotes the offending value ("invalid type: integer `5113…`"); a value may be an
/// identity number or a name, so it is replaced by `…` before the message leaves.
pub(crate) fn redact_values(msg: &str) -> String {
    let mut out = String::with_capacity(msg.len());
    let mut rest = msg;
    while let Some(start) = rest.find("invalid type: ").or_else(|| rest.find("invalid value: ")) {
        let (head, tail) = rest.split_at(start);
        out.push_str(head);
        // keep "invalid type: integer " and drop the backtick-quoted value after it
        match (tail.find('`'), tail.find(',')) {
            (Some(open), comma) if comma.is_none_or(|c| open < c) => {
                out.push_str(&tail[..open]);
                let after = &tail[open + 1..];
                let close = after.find('`').map_or(after.len(), |c| c + 1);
                out.push('…');
                rest = &after[close..];
            }
            _ => {
                out.push_str(&tail[..14]);
                rest = &tail[14..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// The signed-in user of a request (from `Authorization: Bearer <token>`).
#[derive(Debug, Clone)]
pub struct CurrentUser {
    pub user: User,
    pub token_hash: Vec<u8>,
}

impl CurrentUser {
    pub fn may(&self, action: Action) -> bool {
        tiercare_domain::role::any_may(&self.user.roles, action)
    }
    /// 403 unless one of the user's roles allows `action`.
    pub fn require(&self, action: Action) -> Result<(), ApiError> {
        if self.may(action) {
            Ok(())
        } else {
            let roles: Vec<&str> = self.user.roles.iter().map(|r| r.as_str()).collect();
            Err(ApiError::forbidden(
                "role.forbidden",
                format!("your roles ({}) may not {}", roles.join(", "), action.as_str()),
            ))
        }
    }
    pub fn has_role(&self, role: Role) -> bool {
        self.user.roles.contains(&role)
    }
}

impl FromRequestParts<AppState> for CurrentUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .ok_or_else(|| ApiError::unauthorized("sign in first: send Authorization: Bearer <token>"))?;
        let token = header
            .to_str()
            .ok()
            .and_then(|h| h.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token)
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| ApiError::unauthorized("the Authorization header must be 'Bearer <token>'"))?;
        let hash = crate::auth::token_hash(token);
        let now = time::OffsetDateTime::now_utc();
        let found = match state.cache.tokens.get(&hash) {
            // a cached token still expires on time
            Some(hit) if hit.0.expires_at.is_none_or(|t| t > now) => Some(hit),
            Some(_) => None,
            None => {
                let found = state.store.find_token(&hash, now).await?.map(std::sync::Arc::new);
                if let Some(f) = &found {
                    state.cache.tokens.put(hash.clone(), f.clone());
                }
                found
            }
        };
        match found.as_deref() {
            Some((_, user)) if user.active => Ok(CurrentUser { user: user.clone(), token_hash: hash }),
            Some(_) => Err(ApiError::unauthorized("this account is disabled")),
            None => Err(ApiError::unauthorized("the token is unknown, expired or revoked; sign in again")),
        }
    }
}

/// The community an administrator acts within: `None` for a system admin (everywhere),
/// the community of their facility for a community admin.
pub async fn admin_scope(state: &AppState, me: &CurrentUser) -> Result<Option<uuid::Uuid>, ApiError> {
    if me.has_role(Role::SystemAdmin) {
        return Ok(None);
    }
    let community = state.store.get_facility(me.user.facility_id).await?.and_then(|f| f.community_id);
    community.map(Some).ok_or_else(|| {
        ApiError::forbidden(
            "admin.no_community",
            "your facility belongs to no community, so there is nothing for you to manage",
        )
    })
}

/// 403 unless the patient is known in the admin's community (or the admin is a system admin).
pub async fn require_patient_in_scope(
    state: &AppState,
    me: &CurrentUser,
    patient_id: uuid::Uuid,
) -> Result<(), ApiError> {
    if admin_scope(state, me).await?.is_none() {
        return Ok(());
    }
    let facts = state.store.access_facts(me.user.facility_id, patient_id).await?;
    if facts.care_relationship || facts.same_community {
        Ok(())
    } else {
        Err(ApiError::forbidden("admin.other_community", "this patient is not known in your community"))
    }
}

#[cfg(test)]
mod tests {
    use super::redact_values;

    #[test]
    fn values_are_redacted_from_serde_messages() {
        assert_eq!(
            redact_values(
                "identity_number: invalid type: integer `511621196203081131`, expected a string at line 1 column 40"
            ),
            "identity_number: invalid type: integer …, expected a string at line 1 column 40"
        );
        assert_eq!(
            redact_values("invalid value: string \"王\", expected x"),
            "invalid value: string \"王\", expected x"
        );
        assert_eq!(redact_values("missing field `name`"), "missing field `name`");
        assert_eq!(
            redact_values("sex: unknown variant `x`, expected `male` or `female`"),
            "sex: unknown variant `x`, expected `male` or `female`"
        );
    }
}
