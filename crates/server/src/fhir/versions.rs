//! Versions (issue 7): `meta.versionId`/`meta.lastUpdated`, `ETag: W/"n"` and
//! `Last-Modified` on read, vread, create and update, `If-Match` on update, vread and
//! instance history. Versions come from the domain records' own counters and events, and
//! only a patient record's changes keep a copy of the row they replace
//! (`tiercare_fhir::capability::VERSIONS` says which types have them and what they come from):
//!
//! - a referral (ServiceRequest, Task) has a version per step (`Referral::version`,
//!   `updated_at`); each step's event is kept, so every earlier Task is rebuilt from them
//!   (`tiercare_fhir::referral::task_at_version`): `GET /fhir/Task/{id}/_history/{n}` and
//!   `GET /fhir/Task/{id}/_history` (a Bundle of type history, newest first). A
//!   ServiceRequest's vread answers its current version only (the steps do not record the
//!   department and reach they changed).
//! - a patient record has a version counter bumped by every change (update, merge,
//!   unmerge) and its last change time; each change keeps the version it replaces
//!   (migration 0017: the one snapshot table, because a patient's changes cannot be rebuilt
//!   from anything else): vread of any kept version and `_history` (`history`). Its read,
//!   update and create are in `patients`.
//! - Claim and ClaimResponse: version 1 as settled, 2 once reversed; the types never changed
//!   once stored (`capability::NEVER_CHANGED`): version 1 only (`history`, one generic
//!   layer over their reads).
//! - the referral searches take `_lastUpdated` and `_sort` into the store's filter
//!   ([`referral_search`]).
//!
//! `If-Match` takes `W/"n"` or `"n"`; anything else answers 400 (expression `http.If-Match`).
//! Nothing is deleted and only Patient is updated: the other methods answer 405 with the
//! reason (`super::not_allowed`, from `capability::no_delete_reason`/`no_update_reason`).

use std::net::SocketAddr;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use axum::routing::get;
use serde_json::{Value, json};
use tiercare_domain::referral::{Referral, ReferralEvent};
use tiercare_domain::role::Action;
use tiercare_fhir::outcome::{Issue, IssueType};
use tiercare_fhir::referral as fhir;
use tiercare_store::ReferralForStep;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::{Facilities, FhirError, FhirResult, fhir_json, json_body, not_allowed, path_id};
use crate::AppState;
use crate::error::ApiError;
use crate::extract::CurrentUser;
use crate::routes::referrals;

mod history;

pub(super) use history::{layer, settlement_answer};

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/fhir/ServiceRequest/{id}/_history/{vid}", get(vread_service_request).fallback(not_allowed("GET")))
        .route("/fhir/Task/{id}/_history", get(task_history).fallback(not_allowed("GET")))
        .route("/fhir/Task/{id}/_history/{vid}", get(vread_task).fallback(not_allowed("GET")))
        .merge(history::router())
}

// ---------------------------------------------------------------------------------------
// headers and meta

/// A FHIR instant in UTC, to the millisecond (what the stores keep).
pub(crate) fn instant(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    let t = t.replace_nanosecond(t.nanosecond() / 1_000_000 * 1_000_000).unwrap_or(t);
    t.format(&Rfc3339).unwrap_or_default()
}

/// An HTTP-date (RFC 9110, IMF-fixdate): `Thu, 03 Dec 2026 14:11:44 GMT`.
pub(crate) fn http_date(t: OffsetDateTime) -> String {
    let f = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    t.to_offset(time::UtcOffset::UTC).format(&f).unwrap_or_default()
}

/// The weak ETag of version `n`.
pub(crate) fn etag(version: i64) -> String {
    format!("W/\"{version}\"")
}

/// Set `meta.versionId` and `meta.lastUpdated` of a resource.
pub(crate) fn with_meta(mut v: Value, version: i64, updated_at: OffsetDateTime) -> Value {
    v["meta"] = json!({ "versionId": version.to_string(), "lastUpdated": instant(updated_at) });
    v
}

/// An answer carrying a version: `ETag` and `Last-Modified`.
pub(crate) fn versioned(mut resp: Response, version: i64, updated_at: OffsetDateTime) -> Response {
    if let Ok(v) = HeaderValue::from_str(&etag(version)) {
        resp.headers_mut().insert(header::ETAG, v);
    }
    if let Ok(v) = HeaderValue::from_str(&http_date(updated_at)) {
        resp.headers_mut().insert(header::LAST_MODIFIED, v);
    }
    resp
}

/// The version an `If-Match` header names (`W/"3"` or `"3"`), `None` without the header.
pub(crate) fn if_match(headers: &HeaderMap) -> FhirResult<Option<i64>> {
    let Some(raw) = headers.get(header::IF_MATCH) else { return Ok(None) };
    let parsed = raw.to_str().ok().map(str::trim).and_then(|s| {
        let quoted = s.strip_prefix("W/").unwrap_or(s);
        quoted.strip_prefix('"')?.strip_suffix('"')?.parse::<i64>().ok().filter(|n| *n >= 1)
    });
    match parsed {
        Some(n) => Ok(Some(n)),
        None => Err(header_error(
            StatusCode::BAD_REQUEST,
            IssueType::Invalid,
            "If-Match",
            "If-Match must name one version as an ETag: W/\"<versionId>\" (as the ETag header of a read gives it)",
        )),
    }
}

/// An error about a request header, located at `http.<name>` (the R4 convention for HTTP
/// headers in OperationOutcome locations).
pub(crate) fn header_error(status: StatusCode, code: IssueType, name: &str, msg: impl Into<String>) -> FhirError {
    FhirError { status, issues: vec![Issue::error(code, Some(&format!("http.{name}")), msg)] }
}

/// `If-Match` against the current version: 412 when it names another one.
pub(crate) fn check_version(wanted: i64, current: i64, kind: &str) -> FhirResult<()> {
    if wanted == current {
        return Ok(());
    }
    Err(FhirError {
        status: StatusCode::PRECONDITION_FAILED,
        issues: vec![
            Issue::error(
                IssueType::Conflict,
                Some("http.If-Match"),
                format!(
                    "the {kind} is at version {current}, not {wanted}: it changed since it was read; read it again \
                     and apply the change to the current version"
                ),
            )
            .with_detail_code("version.stale"),
        ],
    })
}

/// A version id from a vread path: a positive integer, else no such version (404).
pub(crate) fn version_id(raw: &str, kind: &str) -> FhirResult<i64> {
    raw.parse::<i64>().ok().filter(|n| *n >= 1).ok_or_else(|| no_version(kind, raw))
}

pub(crate) fn no_version(kind: &str, vid: &str) -> FhirError {
    FhirError::new(StatusCode::NOT_FOUND, IssueType::NotFound, format!("{kind} has no version {vid:?}"))
}

// ---------------------------------------------------------------------------------------
// referrals

/// When version `n` of referral `r` was made (its step's time).
fn version_time(r: &Referral, history: &[ReferralEvent], n: i64) -> OffsetDateTime {
    if n == r.version {
        return r.updated_at;
    }
    history.iter().find(|e| e.referral_id == r.id && e.version == n).map_or(r.updated_at, |e| e.at)
}

/// `GET /fhir/ServiceRequest/{id}/_history/{vid}`: the current version (the read's rule
/// and log); an earlier one is not kept (404 saying where the history is).
async fn vread_service_request(
    State(state): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    me: Result<CurrentUser, ApiError>,
    Path((id, vid)): Path<(String, String)>,
) -> FhirResult<Response> {
    let me = me?;
    let id = path_id(&id, "ServiceRequest")?;
    let n = version_id(&vid, "ServiceRequest")?;
    let (r, _) = referrals::read_logged(&state, &me, id, Some(addr.ip().to_string())).await?;
    if n != r.version {
        return Err(if n < r.version {
            FhirError::new(
                StatusCode::NOT_FOUND,
                IssueType::NotFound,
                format!(
                    "earlier versions of a ServiceRequest are not kept (this one is at version {}); its steps are \
                     in Task/{id}/_history",
                    r.version
                ),
            )
        } else {
            no_version("ServiceRequest", &vid)
        });
    }
    let sr = Facilities::default().service_request(&state, &r).await?;
    Ok(versioned(fhir_json(StatusCode::OK, &sr), r.version, r.updated_at))
}

/// `GET /fhir/Task/{id}/_history/{vid}`: the Task as it was at that version, rebuilt from
/// the referral's steps (the read's rule and log).
async fn vread_task(
    State(state): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    me: Result<CurrentUser, ApiError>,
    Path((id, vid)): Path<(String, String)>,
) -> FhirResult<Response> {
    let me = me?;
    let id = path_id(&id, "Task")?;
    let n = version_id(&vid, "Task")?;
    let (r, history) = referrals::read_logged(&state, &me, id, Some(addr.ip().to_string())).await?;
    let task = fhir::task_at_version(&r, &history, n).ok_or_else(|| no_version("Task", &vid))?;
    Ok(versioned(fhir_json(StatusCode::OK, &task), n, version_time(&r, &history, n)))
}

/// `GET /fhir/Task/{id}/_history`: every version of the referral's Task, newest first (a
/// Bundle of type history; the request that made version 1 is the ServiceRequest's
/// create, shown as a POST; each later step as a PUT of the Task).
async fn task_history(
    State(state): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    me: Result<CurrentUser, ApiError>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> FhirResult<Response> {
    let me = me?;
    let id = path_id(&id, "Task")?;
    let (r, history) = referrals::read_logged(&state, &me, id, Some(addr.ip().to_string())).await?;
    let versions = (1..=r.version)
        .filter_map(|n| {
            let task = fhir::task_at_version(&r, &history, n)?;
            Some(history::Version { n, resource: task, at: Some(version_time(&r, &history, n)) })
        })
        .collect();
    Ok(history::history_bundle(&headers, "Task", &id.to_string(), versions))
}

/// `_lastUpdated` (the referral's `updated_at`, prefixes as Patient's) and `_sort`
/// (`authored`/`authored-on`: when requested; `_lastUpdated`) of a referral search, into
/// the store's filter; the range is answered for a search that reads one referral itself.
pub(super) fn referral_search(
    p: &super::Params,
    filter: &mut tiercare_store::ReferralFilter,
) -> FhirResult<tiercare_fhir::search::InstantRange> {
    use tiercare_store::{ReferralSort, ReferralSortKey};
    let range = tiercare_fhir::search::instant_range(&p.dates("_lastUpdated")?);
    filter.updated_from = range.from;
    filter.updated_to = range.until;
    filter.updated_except = range.except.clone();
    filter.sort = p
        .sort()
        .iter()
        .map(|s| ReferralSort {
            key: if s.key == "_lastUpdated" { ReferralSortKey::UpdatedAt } else { ReferralSortKey::RequestedAt },
            descending: s.descending,
        })
        .collect();
    Ok(range)
}

/// `PUT /fhir/Task/{id}`: one step of the referral's life cycle, read from the changed Task
/// (`tiercare_fhir::referral::task_step`) and taken by the JSON API's transition (the party,
/// the life cycle's rules, the access-log row `act_referral`). `If-Match` is required (428
/// without it, 412 when the referral moved on since); a Task sent back unchanged changes
/// nothing (200, the same version).
pub(super) async fn update_task(
    State(state): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    me: Result<CurrentUser, ApiError>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> FhirResult<Response> {
    let me = me?;
    let id = path_id(&id, "Task")?;
    let wanted = if_match(&headers)?;
    let v = json_body(&headers, body)?;
    let step = match prepare_task_update(&state, &me, id, wanted, &v, addr).await? {
        TaskUpdate::Unchanged(r, history) => {
            return Ok(versioned(fhir_json(StatusCode::OK, &fhir::task(&r, &history)), r.version, r.updated_at));
        }
        TaskUpdate::Step { step, wanted } => match (*step).commit(&state).await {
            Ok(step) => step,
            Err(e) => return Err(task_refused(&state, id, wanted, e).await),
        },
    };
    let r = &step.change.referral;
    Ok(versioned(fhir_json(StatusCode::OK, &fhir::task(r, &step.history)), r.version, r.updated_at))
}

/// A Task update checked, not written ([`prepare_task_update`]).
pub(super) enum TaskUpdate {
    /// The Task came back unchanged: nothing to write; the referral and its history as read.
    Unchanged(Box<Referral>, Vec<ReferralEvent>),
    /// One life-cycle step, computed from version `wanted`.
    Step { step: Box<referrals::PreparedStep>, wanted: i64 },
}

/// Everything of `PUT /fhir/Task/{id}` but the write: the body's id, `If-Match` (`wanted`;
/// 428 without it, 412 when stale), the role, the party, the step the changed Task asks
/// (`task_step`) and the life cycle's rules (`routes::referrals::prepare_step`).
pub(super) async fn prepare_task_update(
    state: &AppState,
    me: &CurrentUser,
    id: uuid::Uuid,
    wanted: Option<i64>,
    v: &Value,
    addr: SocketAddr,
) -> FhirResult<TaskUpdate> {
    if v.get("id").and_then(Value::as_str) != Some(id.to_string().as_str()) {
        return Err(FhirError {
            status: StatusCode::BAD_REQUEST,
            issues: vec![Issue::error(
                IssueType::Invalid,
                Some("Task.id"),
                "an update carries the resource's id, the same as in the URL",
            )],
        });
    }
    let Some(wanted) = wanted else {
        return Err(header_error(
            StatusCode::PRECONDITION_REQUIRED,
            IssueType::Required,
            "If-Match",
            "an update names the version it changes: If-Match: W/\"<versionId>\" (the ETag of a read)",
        ));
    };
    me.require(Action::Refer)?;
    let ReferralForStep { referral: r, history, .. } = state
        .store
        .referral_for_step(id)
        .await
        .map_err(ApiError::from)?
        .ok_or_else(|| FhirError::new(StatusCode::NOT_FOUND, IssueType::NotFound, "Task not found"))?;
    referrals::party_of(me, &r)?;
    check_version(wanted, r.version, "Task")?;
    let current = fhir::task(&r, &history);
    let Some(cmd) = fhir::task_step(&current, v).map_err(super::refused)? else {
        return Ok(TaskUpdate::Unchanged(Box::new(r), history));
    };
    match referrals::prepare_step(state, me, id, cmd, Some(wanted), Some(addr.ip().to_string())).await {
        Ok(step) => Ok(TaskUpdate::Step { step: Box::new(step), wanted }),
        Err(e) => Err(task_refused(state, id, wanted, e).await),
    }
}

/// A refused step as `PUT /fhir/Task/{id}` answers it: another step came between the read
/// and the write → 412 naming the current version; else the refusal at the Task's elements.
pub(super) async fn task_refused(state: &AppState, id: uuid::Uuid, wanted: i64, e: ApiError) -> FhirError {
    if e.status == StatusCode::CONFLICT && e.code == "conflict" {
        let now = match state.store.referral_for_step(id).await {
            Ok(found) => found.map_or(0, |s| s.referral.version),
            Err(e) => return ApiError::from(e).into(),
        };
        return check_version(wanted, now, "Task").err().unwrap_or_else(|| e.into());
    }
    let status = e.status;
    super::api_error_outcome(e, |_| super::issue_type(status), fhir::task_field_expression)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn http_dates_and_instants_are_utc() {
        // 2026-12-03 22:11:44.123456 in China is 14:11:44.123 UTC, a Thursday
        let t = datetime!(2026-12-03 22:11:44.123456 +08:00);
        assert_eq!(http_date(t), "Thu, 03 Dec 2026 14:11:44 GMT");
        assert_eq!(instant(t), "2026-12-03T14:11:44.123Z");
    }

    #[test]
    fn if_match_takes_one_weak_or_strong_version() {
        let with = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::IF_MATCH, HeaderValue::from_str(v).expect("a header"));
            if_match(&h).map_err(|e| e.status)
        };
        assert_eq!(if_match(&HeaderMap::new()).map_err(|e| e.status), Ok(None));
        assert_eq!(with("W/\"3\""), Ok(Some(3)));
        assert_eq!(with("\"12\""), Ok(Some(12)));
        for bad in ["3", "W/3", "W/\"x\"", "\"0\"", "*", "W/\"1\", W/\"2\"", "\"-1\""] {
            assert_eq!(with(bad), Err(StatusCode::BAD_REQUEST), "{bad}");
        }
    }
}
