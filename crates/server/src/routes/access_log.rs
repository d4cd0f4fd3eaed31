use axum::Json;
use axum::extract::{Query, State};
use serde::Deserialize;
use serde_json::{Value, json};
use tiercare_domain::access::AccessBasis;
use tiercare_domain::role::Action;
use tiercare_store::AccessLogFilter;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use uuid::Uuid;

use crate::AppState;
use crate::error::{ApiError, ApiResult};
use crate::extract::{CurrentUser, admin_scope};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AccessLogQuery {
    patient_id: Option<Uuid>,
    user_id: Option<Uuid>,
    basis: Option<String>,
    from: Option<String>,
    to: Option<String>,
    limit: Option<u32>,
}

fn parse_time(field: &str, s: Option<&str>) -> ApiResult<Option<OffsetDateTime>> {
    s.map(|v| {
        OffsetDateTime::parse(v, &Rfc3339).map_err(|_| {
            ApiError::bad_request(
                "time.format",
                format!("{field} must be an RFC 3339 time, e.g. 2026-11-01T00:00:00+08:00"),
            )
        })
    })
    .transpose()
}

/// Who read which record, when, on what basis, from where. Admins only.
pub(crate) async fn query(
    State(state): State<AppState>,
    me: CurrentUser,
    Query(q): Query<AccessLogQuery>,
) -> ApiResult<Json<Value>> {
    me.require(Action::ReadAccessLog)?;
    let basis = match q.basis.as_deref() {
        Some(b) => Some(AccessBasis::parse(b).ok_or_else(|| {
            ApiError::bad_request(
                "basis.unknown",
                "basis is care_relationship, same_community, break_glass or identification",
            )
        })?),
        None => None,
    };
    let filter = AccessLogFilter {
        patient_id: q.patient_id,
        user_id: q.user_id,
        // a community admin sees the reads of their own community's users
        community_id: admin_scope(&state, &me).await?,
        basis,
        from: parse_time("from", q.from.as_deref())?,
        to: parse_time("to", q.to.as_deref())?,
        limit: q.limit.unwrap_or(100),
    };
    let entries = state.store.query_access_log(&filter).await?;
    let list: Vec<Value> = entries
        .iter()
        .map(|e| {
            json!({
                "id": e.id,
                "at": e.at.format(&Rfc3339).unwrap_or_default(),
                "user_id": e.user_id,
                "facility_id": e.facility_id,
                "patient_id": e.patient_id,
                "action": e.action,
                "basis": e.basis,
                "reason": e.reason,
                "client_addr": e.client_addr,
            })
        })
        .collect();
    Ok(Json(json!({ "entries": list })))
}
