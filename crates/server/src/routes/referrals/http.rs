//! The referral JSON API (api.md): handlers translate JSON ⇄ domain and call the shared
//! functions of the parent module.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::net::SocketAddr;

use axum::Json;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use tiercare_domain::FieldError;
use tiercare_domain::facility::{EmergencyCentre, Tier};
use tiercare_domain::referral::{
    CHINA_TIME, Command, Direction, NewReferral, Party, ReferralState, Urgency, china_date, propose_receivers,
};
use tiercare_domain::role::{Action, Role};
use tiercare_store::{FollowUpFilter, ReferralFilter};
use time::{Date, Duration, OffsetDateTime, Time};
use uuid::Uuid;

use super::view::{detail, rfc3339, rows_json, task_json};
use super::{all_facilities, facility, party_of};
use crate::AppState;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, CurrentUser, redact_values};
use crate::routes::parse_id;

fn bad_query(field: &str, message: impl Into<String>) -> ApiError {
    ApiError::invalid(vec![FieldError::new(field, "query.invalid", message)])
}

/// POST /api/v1/referrals
pub(crate) async fn create(
    State(state): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    me: CurrentUser,
    ApiJson(input): ApiJson<NewReferral>,
) -> ApiResult<Response> {
    let (change, patient) = super::create_change(&state, &me, input, Some(Some(addr.ip().to_string()))).await?;
    let history = std::slice::from_ref(&change.event);
    let body = detail(&state, &change.referral, history, Some(Party::Sender), Some(patient), true).await?;
    json_response(StatusCode::CREATED, &body)
}

/// `value` serialised as the JSON body of a `status` answer (what `Json` does, for answers
/// that borrow what the handler holds).
fn json_response(status: StatusCode, value: &impl serde::Serialize) -> ApiResult<Response> {
    let body = serde_json::to_vec(value).map_err(|e| {
        tracing::error!(error = %e, "an answer could not be serialised");
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "an internal error occurred; it has been logged")
    })?;
    Ok((status, [(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], body).into_response())
}

/// GET /api/v1/referrals/{id}
pub(crate) async fn read(
    State(state): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    me: CurrentUser,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let id = parse_id(&id, "referral")?;
    let (r, history) = super::read_logged(&state, &me, id, Some(addr.ip().to_string())).await?;
    let party = party_of(&me, &r)?;
    json_response(StatusCode::OK, &detail(&state, &r, &history, Some(party), None, true).await?)
}

/// Split a transition body into the optional `version` and the command.
pub(crate) fn parse_transition(body: Value) -> ApiResult<(Command, Option<i64>)> {
    let Value::Object(mut fields) = body else {
        return Err(json_data("the body must be a JSON object with an \"action\""));
    };
    let version = match fields.remove("version") {
        None | Some(Value::Null) => None,
        Some(v) => Some(v.as_i64().ok_or_else(|| json_data("version must be an integer"))?),
    };
    if let Some(Value::String(a)) = fields.get("action")
        && (a == "expire" || a == "escalate")
    {
        return Err(ApiError::forbidden(
            "referral.system_action",
            format!("{a} is done by the deadline sweeper, not by a user"),
        ));
    }
    let cmd: Command =
        serde_json::from_value(Value::Object(fields)).map_err(|e| json_data(&redact_values(&e.to_string())))?;
    Ok((cmd, version))
}

fn json_data(msg: &str) -> ApiError {
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "json.data", format!("the JSON has a wrong field or type: {msg}"))
}

/// POST /api/v1/referrals/{id}/transitions
pub(crate) async fn transitions(
    State(state): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    me: CurrentUser,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<Response> {
    let id = parse_id(&id, "referral")?;
    let (cmd, version) = parse_transition(body)?;
    let step = super::transition(&state, &me, id, cmd, version, Some(addr.ip().to_string())).await?;
    let r = &step.change.referral;
    // after a redirect the user's facility is no longer a party
    let party = party_of(&me, r).ok();
    json_response(StatusCode::OK, &detail(&state, r, &step.history, party, None, step.filed).await?)
}

/// Which worklist.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Box_ {
    Inbox,
    Outbox,
    Community,
}

const LIST_PARAMS: &[&str] = &[
    "box",
    "category",
    "state",
    "urgency",
    "direction",
    "green",
    "department",
    "tier",
    "from",
    "to",
    "limit",
    "before",
];

fn param<'a>(q: &'a HashMap<String, String>, name: &str) -> Option<&'a str> {
    q.get(name).map(|s| s.trim()).filter(|s| !s.is_empty())
}

fn parse_date(field: &str, s: &str) -> ApiResult<Date> {
    Date::parse(s, time::macros::format_description!("[year]-[month]-[day]"))
        .map_err(|_| bad_query(field, format!("{field} must be a date YYYY-MM-DD")))
}

/// Midnight starting `d` in China time.
fn china_midnight(d: Date) -> OffsetDateTime {
    d.with_time(Time::MIDNIGHT).assume_offset(CHINA_TIME)
}

/// Today in China time as `[start, end)`.
fn china_today(now: OffsetDateTime) -> (OffsetDateTime, OffsetDateTime) {
    let start = china_midnight(china_date(now));
    (start, start + Duration::days(1))
}

fn open_states() -> Vec<ReferralState> {
    ReferralState::ALL.iter().copied().filter(|s| s.is_open()).collect()
}

/// Apply a worklist category to a filter.
fn category(f: &mut ReferralFilter, name: &str, now: OffsetDateTime) -> ApiResult<()> {
    match name {
        "new" => f.states = vec![ReferralState::Requested, ReferralState::Redirected],
        "awaiting_scheduling" => f.states = vec![ReferralState::Accepted],
        "arriving_today" => {
            f.states = vec![ReferralState::Scheduled];
            f.scheduled_between = Some(china_today(now));
        }
        "overdue" => {
            f.states = open_states();
            f.due_before = Some(now);
        }
        "open" => f.states = open_states(),
        "closed" => f.states = ReferralState::ALL.iter().copied().filter(|s| !s.is_open()).collect(),
        other => {
            return Err(bad_query(
                "category",
                format!(
                    "unknown category {other:?}: new, awaiting_scheduling, arriving_today, overdue, open or closed"
                ),
            ));
        }
    }
    Ok(())
}

/// The cursor of the next page: `<requested_at in Unix ms>_<id>`.
fn cursor(r: &tiercare_domain::referral::Referral) -> String {
    format!("{}_{}", r.requested_at.unix_timestamp_nanos() / 1_000_000, r.id)
}

fn parse_cursor(s: &str) -> ApiResult<(OffsetDateTime, Uuid)> {
    let bad = || bad_query("before", "before must be the \"next\" value of an earlier page");
    let (ms, id) = s.split_once('_').ok_or_else(bad)?;
    let ms: i128 = ms.parse().map_err(|_| bad())?;
    let at = OffsetDateTime::from_unix_timestamp_nanos(ms * 1_000_000).map_err(|_| bad())?;
    Ok((at, Uuid::parse_str(id).map_err(|_| bad())?))
}

/// GET /api/v1/referrals
pub(crate) async fn list(
    State(state): State<AppState>,
    me: CurrentUser,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Json<Value>> {
    if let Some(unknown) = q.keys().find(|k| !LIST_PARAMS.contains(&k.as_str())) {
        return Err(bad_query(unknown, format!("unknown parameter {unknown:?}; known: {}", LIST_PARAMS.join(", "))));
    }
    let now = state.now();
    let which = match param(&q, "box").unwrap_or("inbox") {
        "inbox" => Box_::Inbox,
        "outbox" => Box_::Outbox,
        "community" => Box_::Community,
        other => return Err(bad_query("box", format!("unknown box {other:?}: inbox, outbox or community"))),
    };
    let mut f = ReferralFilter::default();
    match which {
        Box_::Inbox => {
            me.require(Action::Refer)?;
            f.to_facility_id = Some(me.user.facility_id);
        }
        Box_::Outbox => {
            me.require(Action::Refer)?;
            f.from_facility_id = Some(me.user.facility_id);
        }
        Box_::Community => {
            if !me.has_role(Role::CommunityAdmin) {
                return Err(ApiError::forbidden(
                    "role.forbidden",
                    "the community worklist is for the community's administrators",
                ));
            }
            let community = facility(&state, me.user.facility_id).await?.and_then(|fac| fac.community_id);
            f.community_id =
                Some(community.ok_or_else(|| {
                    ApiError::forbidden("admin.no_community", "your facility belongs to no community")
                })?);
        }
    }
    if let Some(c) = param(&q, "category") {
        category(&mut f, c, now)?;
    }
    if let Some(list) = param(&q, "state") {
        f.states = list
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| ReferralState::parse(s).ok_or_else(|| bad_query("state", format!("unknown state {s:?}"))))
            .collect::<ApiResult<_>>()?;
        f.due_before = None;
        f.scheduled_between = None;
    }
    if let Some(u) = param(&q, "urgency") {
        f.urgency =
            Some(Urgency::parse(u).ok_or_else(|| bad_query("urgency", "urgency is routine, urgent or emergency"))?);
    }
    if let Some(d) = param(&q, "direction") {
        f.direction = Some(
            Direction::parse(d).ok_or_else(|| bad_query("direction", "direction is upward, downward or lateral"))?,
        );
    }
    if let Some(g) = param(&q, "green") {
        f.green_only = match g {
            "true" => true,
            "false" => false,
            _ => return Err(bad_query("green", "green is true or false")),
        };
    }
    f.to_department = param(&q, "department").map(str::to_owned);
    if let Some(t) = param(&q, "tier") {
        let tier = Tier::parse(t).ok_or_else(|| bad_query("tier", format!("unknown tier {t:?}")))?;
        // the other party's tier
        match which {
            Box_::Inbox => f.from_tier = Some(tier),
            Box_::Outbox | Box_::Community => f.to_tier = Some(tier),
        }
    }
    let from = param(&q, "from").map(|s| parse_date("from", s)).transpose()?;
    let to = param(&q, "to").map(|s| parse_date("to", s)).transpose()?;
    if let (Some(a), Some(b)) = (from, to)
        && a > b
    {
        return Err(bad_query("from", "from is after to"));
    }
    f.requested_from = from.map(china_midnight);
    f.requested_to = to.map(|d| china_midnight(d) + Duration::days(1));
    f.limit = match param(&q, "limit") {
        None => 50,
        Some(l) => l
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=500).contains(n))
            .ok_or_else(|| bad_query("limit", "limit is 1 to 500"))?,
    };
    f.before = param(&q, "before").map(parse_cursor).transpose()?;

    let rows = state.store.list_referrals(&f).await?;
    let next = if rows.len() >= f.limit as usize { rows.last().map(cursor) } else { None };
    let (total, capped) = if f.before.is_none() && next.is_none() {
        // the first page is the whole list
        (rows.len() as u64, false)
    } else {
        let n =
            state.store.count_referrals(&ReferralFilter { count_at_most: Some(TOTAL_CAP + 1), ..f.clone() }).await?;
        (n.min(TOTAL_CAP), n > TOTAL_CAP)
    };
    let items = rows_json(&state, &rows, None, which == Box_::Community).await?;
    Ok(Json(json!({ "items": items, "next": next, "total": total, "total_capped": capped })))
}

/// A worklist's `total` counts at most this many rows; past it the answer says
/// `"total_capped": true` (the count's cost grows with the rows it reads).
const TOTAL_CAP: u64 = 1000;

/// GET /api/v1/referrals/summary
pub(crate) async fn summary(State(state): State<AppState>, me: CurrentUser) -> ApiResult<Json<Value>> {
    me.require(Action::Refer)?;
    let now = state.now();
    let mine = me.user.facility_id;
    let inbox =
        |states: Vec<ReferralState>| ReferralFilter { to_facility_id: Some(mine), states, ..Default::default() };
    let new = state.store.count_referrals(&inbox(vec![ReferralState::Requested, ReferralState::Redirected])).await?;
    let awaiting = state.store.count_referrals(&inbox(vec![ReferralState::Accepted])).await?;
    let arriving = state
        .store
        .count_referrals(&ReferralFilter {
            scheduled_between: Some(china_today(now)),
            ..inbox(vec![ReferralState::Scheduled])
        })
        .await?;
    let overdue =
        state.store.count_referrals(&ReferralFilter { due_before: Some(now), ..inbox(open_states()) }).await?;
    let outbox_open = state
        .store
        .count_referrals(&ReferralFilter { from_facility_id: Some(mine), states: open_states(), ..Default::default() })
        .await?;
    let due = state
        .store
        .list_follow_ups(&FollowUpFilter {
            facility_id: Some(mine),
            open_only: true,
            due_by: Some(china_date(now)),
            limit: 1000,
            ..Default::default()
        })
        .await?
        .len();
    let (_, unseen) = notifications_of(&state, &me, 1000).await?;
    Ok(Json(json!({
        "new": new,
        "awaiting_scheduling": awaiting,
        "arriving_today": arriving,
        "overdue": overdue,
        "outbox_open": outbox_open,
        "follow_ups_due": due,
        "notifications_unseen": unseen,
    })))
}

/// GET /api/v1/referrals/proposals
pub(crate) async fn proposals(
    State(state): State<AppState>,
    me: CurrentUser,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Json<Value>> {
    me.require(Action::Refer)?;
    if let Some(unknown) = q.keys().find(|k| k.as_str() != "green_channel") {
        return Err(bad_query(unknown, format!("unknown parameter {unknown:?}; known: green_channel")));
    }
    let need = match param(&q, "green_channel") {
        None => None,
        Some(c) => Some(EmergencyCentre::parse(c).ok_or_else(|| {
            bad_query(
                "green_channel",
                "green_channel is chest_pain, stroke, trauma, critical_maternal or critical_newborn",
            )
        })?),
    };
    let from = facility(&state, me.user.facility_id).await?.ok_or_else(|| ApiError::not_found("your facility"))?;
    let all = all_facilities(&state).await?;
    let mut items = propose_receivers(&from, need, &all, &[]);
    items.truncate(20);
    Ok(Json(json!({ "items": items })))
}

/// A user's notifications (their facility's) and how many are unseen.
async fn notifications_of(state: &AppState, me: &CurrentUser, limit: u32) -> ApiResult<(Vec<Value>, usize)> {
    let seen = state.store.notifications_seen_until(me.user.id).await?;
    let list = state.store.list_notifications(me.user.facility_id, None, limit).await?;
    let is_unseen = |at: OffsetDateTime| seen.is_none_or(|s| at > s);
    let unseen = if list.len() < limit as usize {
        list.iter().filter(|n| is_unseen(n.at)).count()
    } else {
        state
            .store
            .list_notifications(me.user.facility_id, seen, 1000)
            .await?
            .iter()
            .filter(|n| is_unseen(n.at))
            .count()
    };
    let items = list
        .iter()
        .map(|n| {
            json!({
                "id": n.id,
                "kind": n.kind,
                "action": n.action,
                "referral_id": n.referral_id,
                "at": rfc3339(n.at),
                "unseen": is_unseen(n.at),
            })
        })
        .collect();
    Ok((items, unseen))
}

fn parse_limit(q: &HashMap<String, String>, default: u32, max: u32) -> ApiResult<u32> {
    match param(q, "limit") {
        None => Ok(default),
        Some(l) => l
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=max).contains(n))
            .ok_or_else(|| bad_query("limit", format!("limit is 1 to {max}"))),
    }
}

/// GET /api/v1/notifications
pub(crate) async fn notifications(
    State(state): State<AppState>,
    me: CurrentUser,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Json<Value>> {
    me.require(Action::Refer)?;
    if let Some(unknown) = q.keys().find(|k| k.as_str() != "limit") {
        return Err(bad_query(unknown, format!("unknown parameter {unknown:?}; known: limit")));
    }
    let limit = parse_limit(&q, 50, 500)?;
    let (items, unseen) = notifications_of(&state, &me, limit).await?;
    Ok(Json(json!({ "items": items, "unseen": unseen })))
}

/// POST /api/v1/notifications/seen
pub(crate) async fn notifications_seen(State(state): State<AppState>, me: CurrentUser) -> ApiResult<StatusCode> {
    me.require(Action::Refer)?;
    state.store.mark_notifications_seen(me.user.id, state.now()).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// GET /api/v1/follow-ups
pub(crate) async fn follow_ups(
    State(state): State<AppState>,
    me: CurrentUser,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Json<Value>> {
    me.require(Action::Refer)?;
    if let Some(unknown) = q.keys().find(|k| !["status", "due_by", "limit"].contains(&k.as_str())) {
        return Err(bad_query(unknown, format!("unknown parameter {unknown:?}; known: status, due_by, limit")));
    }
    let status = param(&q, "status").unwrap_or("open");
    if !["open", "done", "all"].contains(&status) {
        return Err(bad_query("status", "status is open, done or all"));
    }
    let limit = parse_limit(&q, 100, 1000)?;
    let due_by = param(&q, "due_by").map(|s| parse_date("due_by", s)).transpose()?;
    let tasks = state
        .store
        .list_follow_ups(&FollowUpFilter {
            facility_id: Some(me.user.facility_id),
            open_only: status == "open",
            due_by,
            limit: if status == "done" { 1000 } else { limit },
            ..Default::default()
        })
        .await?;
    let today = china_date(state.now());
    let mut patients = HashMap::new();
    let mut items = Vec::new();
    for t in tasks.iter().filter(|t| status != "done" || t.done_at.is_some()).take(limit as usize) {
        if let Entry::Vacant(e) = patients.entry(t.patient_id) {
            e.insert(state.store.get_patient(t.patient_id).await?);
        }
        items.push(task_json(t, patients.get(&t.patient_id).and_then(Option::as_ref), today));
    }
    Ok(Json(json!({ "items": items })))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct CompleteRequest {
    #[serde(default)]
    note: Option<String>,
}

/// POST /api/v1/follow-ups/{id}/complete
pub(crate) async fn complete_follow_up(
    State(state): State<AppState>,
    me: CurrentUser,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<CompleteRequest>,
) -> ApiResult<Json<Value>> {
    me.require(Action::Refer)?;
    let id = parse_id(&id, "follow-up task")?;
    let task = state.store.get_follow_up(id).await?.ok_or_else(|| ApiError::not_found("follow-up task"))?;
    if task.facility_id != me.user.facility_id {
        return Err(ApiError::forbidden(
            "follow_up.other_facility",
            "this task belongs to another facility's worklist",
        ));
    }
    let note = req.note.as_deref().map(str::trim).filter(|s| !s.is_empty());
    if note.is_some_and(|n| n.chars().count() > 500) {
        return Err(ApiError::invalid(vec![FieldError::new("note", "text.length", "must be at most 500 characters")]));
    }
    if task.done_at.is_some() {
        return Err(ApiError::new(StatusCode::CONFLICT, "follow_up.done", "this task is already done"));
    }
    let now = state.now();
    let done = state.store.complete_follow_up(id, me.user.id, now, note).await.map_err(|e| match e {
        tiercare_store::StoreError::Conflict(m) => ApiError::new(StatusCode::CONFLICT, "follow_up.done", m),
        other => other.into(),
    })?;
    let patient = state.store.get_patient(done.patient_id).await?;
    Ok(Json(task_json(&done, patient.as_ref(), china_date(now))))
}

/// POST /api/v1/referrals/sweep
pub(crate) async fn sweep(State(state): State<AppState>, me: CurrentUser) -> ApiResult<Json<Value>> {
    if !me.has_role(Role::CommunityAdmin) && !me.has_role(Role::SystemAdmin) {
        return Err(ApiError::forbidden("role.forbidden", "running the deadline sweeper is for administrators"));
    }
    let report = crate::sweeper::sweep_referrals(&state).await?;
    Ok(Json(json!({ "escalated": report.escalated, "expired": report.expired })))
}
