//! Results and mutual recognition (issue 5): the JSON API routes of this part and their OpenAPI rows.
//!
//! A lab system (role `lab`) posts reports of its own facility; they are validated against the
//! recognition catalogue and the lab's qualification at the report time
//! (`domain::results::prepare_report`) and stored whole or not at all. Clinicians read a
//! patient's results (access rule and access-log row as for the patient record), check an
//! order against the stored results (`domain::recognition::check_order`) and record it:
//! each item reused, repeated with a national reason, or performed; reused items are the
//! savings ledger, reported per facility and month. A referral's receiver reads the
//! patient's results recognisable at their facility now.
//!
//! The recognition configuration is the shipped sample (`data/recognition-default.toml`)
//! until the server's settings carry a region's own file.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use tiercare_domain::FieldError;
use tiercare_domain::facility::Facility;
use tiercare_domain::patient::Patient;
use tiercare_domain::recognition::{
    Answer, FacilityContext, ItemAnswer, LabQualification, PriorResult, RecognitionConfig, RepeatReason, check_order,
    reasons_against,
};
use tiercare_domain::results::{Choice, Decision, NewReport, Outcome, Performer, Report, prepare_report};
use tiercare_domain::role::{Action, Role};
use tiercare_store::{OrderRecord, ResultQuery, ResultRecord, new_id};
use time::OffsetDateTime;
use uuid::Uuid;

use super::referrals::facility;
use super::referrals::view::rfc3339;
use crate::AppState;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, CurrentUser};
use crate::openapi::RouteDoc;
use crate::routes::parse_id;
use crate::routes::patients::{log_access, readable_patient};

/// Most items in one order.
const MAX_ORDER_ITEMS: usize = 50;
/// Most results one read of a patient's results answers.
const READ_LIMIT: u32 = 2_000;

/// This part's routes (merged into the API router).
pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/results", post(create))
        .route("/api/v1/results/catalogue", get(catalogue))
        .route("/api/v1/results/order-check", post(order_check))
        .route("/api/v1/results/orders", post(record_order))
        .route("/api/v1/results/savings", get(savings))
        .route("/api/v1/results/labs/{id}/qualification", get(lab_status).post(qualify_lab))
        .route("/api/v1/patients/{id}/results", get(patient_results))
        .route("/api/v1/patients/{id}/results/recognisable", get(recognisable))
}

/// This part's rows of the OpenAPI table (see [`crate::openapi::all_routes`]).
pub(crate) const OPENAPI: &[RouteDoc] = &[
    (
        "post",
        "/api/v1/results",
        "A lab or imaging report from a lab system (role lab) of the user's facility; refused with a reason per field",
        &[
            ("patient_id", "string"),
            ("facility_id", "string"),
            ("lab_id", "string"),
            ("category", "string"),
            ("specimen_time", "string"),
            ("report_time", "string"),
            ("mark", "object"),
            ("observations", "array"),
            ("imaging", "object"),
        ],
        true,
    ),
    ("get", "/api/v1/results/catalogue", "The recognition catalogue, agreements and repeat reasons", &[], true),
    (
        "post",
        "/api/v1/results/order-check",
        "Per ordered item: the recognisable prior result or why none qualifies (logged as a read)",
        &[("patient_id", "string"), ("items", "array")],
        true,
    ),
    (
        "post",
        "/api/v1/results/orders",
        "Record an order: each item reused, repeated with a reason, or performed",
        &[("patient_id", "string"), ("items", "array")],
        true,
    ),
    (
        "get",
        "/api/v1/results/savings",
        "Tests avoided and money saved per facility and month (from, to: YYYY-MM)",
        &[],
        true,
    ),
    ("get", "/api/v1/results/labs/{id}/qualification", "A lab's qualification periods", &[], true),
    (
        "post",
        "/api/v1/results/labs/{id}/qualification",
        "Grant (from) or revoke (at) a lab's HR qualification",
        &[("action", "string"), ("at", "string"), ("note", "string")],
        true,
    ),
    ("get", "/api/v1/patients/{id}/results", "A patient's results with trends (item, since); logged", &[], true),
    (
        "get",
        "/api/v1/patients/{id}/results/recognisable",
        "A patient's results recognisable at the user's facility now (the referral receiver's view); logged",
        &[],
        true,
    ),
];

/// The recognition configuration in force (`serve --recognition FILE`, else the embedded
/// sample).
pub(crate) fn config(state: &AppState) -> &RecognitionConfig {
    &state.recognition
}

/// The recognition configuration `config` names: the file given (TOML, the form of
/// crates/domain/data/recognition-default.toml), else the embedded sample. An unreadable or
/// invalid file is an error naming the file and each problem (`items[3].unit: …`).
pub fn load_recognition(config: &crate::ServerConfig) -> Result<RecognitionConfig, String> {
    let Some(path) = &config.recognition_file else { return Ok(RecognitionConfig::default_config()) };
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    RecognitionConfig::load_toml(&text).map_err(|e| match e {
        tiercare_domain::DomainError::Invalid(errs) => {
            let problems: Vec<String> = errs.iter().map(|f| format!("{}: {}", f.field, f.message)).collect();
            format!("recognition file {}: {}", path.display(), problems.join("; "))
        }
        other => format!("recognition file {}: {other}", path.display()),
    })
}

fn invalid(field: &str, code: &str, message: impl Into<String>) -> ApiError {
    ApiError::invalid(vec![FieldError::new(field, code, message)])
}

fn query_error(field: &str, message: impl Into<String>) -> ApiError {
    ApiError::query(field, "query.invalid", message)
}

pub(crate) async fn user_facility(state: &AppState, me: &CurrentUser) -> ApiResult<Arc<Facility>> {
    facility(state, me.user.facility_id).await?.ok_or_else(|| ApiError::not_found("facility of the user"))
}

/// The record ids whose results are `patient`'s: the record and those merged into it.
pub(crate) async fn record_ids(state: &AppState, patient: Uuid) -> ApiResult<Vec<Uuid>> {
    let mut ids = vec![patient];
    ids.extend(state.store.merged_patient_ids(patient).await?);
    Ok(ids)
}

/// The stored results of `patient` (and the records merged into it) for these items (all items when empty) and the
/// qualification periods of their labs.
async fn prior_of(
    state: &AppState,
    patient: Uuid,
    items: Vec<String>,
    limit: u32,
) -> ApiResult<(Vec<ResultRecord>, Vec<LabQualification>)> {
    let q = ResultQuery {
        patient_ids: record_ids(state, patient).await?,
        item_codes: items,
        limit,
        ..ResultQuery::default()
    };
    let found = state.store.find_results(&q).await?;
    let mut labs: Vec<Uuid> = found.iter().map(|r| r.lab_id).collect();
    labs.sort_unstable();
    labs.dedup();
    let quals = state.store.lab_qualifications(&labs).await?;
    Ok((found, quals))
}

// ---------------------------------------------------------------------------------------
// Ingestion
// ---------------------------------------------------------------------------------------

/// The checks of a report from a lab system, nothing stored: the role (lab), its own
/// facility, a known patient, the rules of `prepare_report` (the lab's qualification at the
/// report time). The JSON API and FHIR (`fhir::results`) both store what this returns.
pub(crate) async fn prepare(state: &AppState, me: &CurrentUser, new: NewReport) -> ApiResult<(Report, Arc<Facility>)> {
    prepare_with(state, me, new, None).await
}

/// [`prepare`], with `known`: a patient not stored yet (registered earlier in the same FHIR
/// transaction, written with the report), taken instead of the store's when it is the report's.
pub(crate) async fn prepare_with(
    state: &AppState,
    me: &CurrentUser,
    new: NewReport,
    known: Option<&Patient>,
) -> ApiResult<(Report, Arc<Facility>)> {
    if !me.has_role(Role::Lab) {
        return Err(ApiError::forbidden("role.forbidden", "only a lab system (role lab) reports results"));
    }
    if new.facility_id != me.user.facility_id {
        return Err(invalid("facility_id", "results.other_facility", "a lab reports results of its own facility only"));
    }
    let performing = user_facility(state, me).await?;
    let patient = match known.filter(|p| p.id == new.patient_id) {
        Some(p) => p.clone(),
        None => state
            .store
            .get_patient(new.patient_id)
            .await?
            .ok_or_else(|| invalid("patient_id", "reference.unknown", "no patient with this id"))?,
    };
    let quals = state.store.lab_qualifications(&[new.lab_id]).await?;
    let performer = Performer { facility_tier: performing.tier, region_key: patient.region_key.clone() };
    let report = prepare_report(new, &performer, config(state), &quals, state.now(), new_id)?;
    Ok((report, performing))
}

/// POST /api/v1/results — one report from a lab system.
async fn create(
    State(state): State<AppState>,
    me: CurrentUser,
    ApiJson(new): ApiJson<NewReport>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let (report, performing) = prepare(&state, &me, new).await?;
    state.store.insert_results(std::slice::from_ref(&report)).await?;
    let rows: Vec<Value> =
        ResultRecord::of_report(&report).map(|r| result_json(config(&state), &r, &performing.name, None)).collect();
    Ok((StatusCode::CREATED, Json(json!({ "id": report.id, "entries": rows }))))
}

// ---------------------------------------------------------------------------------------
// Reading
// ---------------------------------------------------------------------------------------

/// A stored result as JSON; with the recognition verdict at the reader's facility when given.
fn result_json(
    cfg: &RecognitionConfig,
    r: &ResultRecord,
    facility_name: &str,
    verdict: Option<(OffsetDateTime, Vec<&str>)>,
) -> Value {
    let item = cfg.catalogue.get(&r.entry.item_code);
    let mut v = json!({
        "id": r.entry.id,
        "report_id": r.report_id,
        "category": r.category.as_str(),
        "item_code": r.entry.item_code,
        "item_name": item.map(|i| i.name.clone()),
        "kind": item.map(|i| i.kind.as_str()),
        "sent_code": r.entry.sent_code,
        "value": r.entry.value,
        "value_num": r.entry.value_num,
        "unit": r.entry.unit,
        "reference": r.entry.reference,
        "reference_text": r.entry.reference_text,
        "flag": r.entry.flag.map(|f| f.as_str()),
        "imaging": r.imaging,
        "facility_id": r.facility_id,
        "facility_name": facility_name,
        "facility_tier": r.facility_tier.as_str(),
        "lab_id": r.lab_id,
        "specimen_time": rfc3339(r.specimen_time),
        "report_time": rfc3339(r.report_time),
        "mark": r.mark,
        "mark_label": r.mark.as_ref().map(|m| m.label()),
    });
    if let Some(item) = item {
        v["valid_until"] = json!(rfc3339(r.specimen_time + item.validity));
    }
    if let Some((_, reasons)) = verdict {
        v["recognisable_here"] = json!(reasons.is_empty());
        v["reasons"] = json!(reasons);
    }
    v
}

/// Facility names of the results, read once each (cached).
async fn facility_names(state: &AppState, rows: &[ResultRecord]) -> ApiResult<HashMap<Uuid, String>> {
    let mut names = HashMap::new();
    for r in rows {
        if let std::collections::hash_map::Entry::Vacant(slot) = names.entry(r.facility_id) {
            slot.insert(facility(state, r.facility_id).await?.map(|f| f.name.clone()).unwrap_or_default());
        }
    }
    Ok(names)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ResultsQuery {
    /// Local or LOINC code of one item.
    item: Option<String>,
    /// RFC 3339 time; results with a specimen time at or after it.
    since: Option<String>,
}

/// GET /api/v1/patients/{id}/results — a patient's results, newest first, each with whether it
/// is recognisable at the reader's facility now; numeric items grouped as trend series.
async fn patient_results(
    State(state): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    me: CurrentUser,
    Path(id): Path<String>,
    Query(q): Query<ResultsQuery>,
) -> ApiResult<Json<Value>> {
    let id = parse_id(&id, "patient")?;
    let items = match q.item.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        None => Vec::new(),
        Some(code) => vec![
            config(&state)
                .catalogue
                .get(code)
                .map(|i| i.code.clone())
                .ok_or_else(|| query_error("item", "not an item of the recognition catalogue"))?,
        ],
    };
    let since = match q.since.as_deref() {
        None => None,
        Some(s) => Some(
            OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
                .map_err(|_| query_error("since", "an RFC 3339 time, e.g. 2026-01-01T00:00:00+08:00"))?,
        ),
    };
    let (patient, basis) = readable_patient(&state, &me, id, None).await?;
    let here = FacilityContext::of(&*user_facility(&state, &me).await?);
    log_access(&state, &me, &patient, "read_results", basis, None, addr).await?;
    let rq = ResultQuery {
        patient_ids: record_ids(&state, id).await?,
        item_codes: items,
        since,
        limit: READ_LIMIT,
        ..ResultQuery::default()
    };
    let rows = state.store.find_results(&rq).await?;
    let mut labs: Vec<Uuid> = rows.iter().map(|r| r.lab_id).collect();
    labs.sort_unstable();
    labs.dedup();
    let quals = state.store.lab_qualifications(&labs).await?;
    let names = facility_names(&state, &rows).await?;
    let now = state.now();
    let mut series: BTreeMap<&str, Vec<Value>> = BTreeMap::new();
    let mut out = Vec::with_capacity(rows.len());
    for r in &rows {
        let verdict = verdict(config(&state), r, &here, &quals, now);
        if let Some(v) = r.entry.value_num {
            series.entry(r.entry.item_code.as_str()).or_default().push(json!({
                "t": rfc3339(r.specimen_time), "v": v, "flag": r.entry.flag.map(|f| f.as_str()),
            }));
        }
        out.push(result_json(config(&state), r, names.get(&r.facility_id).map_or("", String::as_str), verdict));
    }
    let trends: Vec<Value> = series
        .into_iter()
        .map(|(code, mut points)| {
            points.reverse(); // oldest first
            let item = config(&state).catalogue.get(code);
            json!({
                "item_code": code,
                "item_name": item.map(|i| i.name.clone()),
                "unit": item.and_then(|i| i.unit.clone()),
                "reference": config(&state).reference(code),
                "points": points,
            })
        })
        .collect();
    Ok(Json(json!({ "patient_id": id, "results": out, "trends": trends, "access": { "basis": basis } })))
}

/// Why `r` is not recognisable at `here` now (empty: it is), with its validity end.
fn verdict(
    cfg: &RecognitionConfig,
    r: &ResultRecord,
    here: &FacilityContext,
    quals: &[LabQualification],
    now: OffsetDateTime,
) -> Option<(OffsetDateTime, Vec<&'static str>)> {
    let item = cfg.catalogue.get(&r.entry.item_code)?;
    let prior: PriorResult = r.prior();
    let reasons = reasons_against(&prior, item, here, quals, now).into_iter().map(|x| x.as_str()).collect();
    Some((prior.valid_until(item), reasons))
}

/// GET /api/v1/patients/{id}/results/recognisable — for a referral's receiver: the latest
/// recognisable result of each item at the user's facility now.
async fn recognisable(
    State(state): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    me: CurrentUser,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let id = parse_id(&id, "patient")?;
    let (patient, basis) = readable_patient(&state, &me, id, None).await?;
    let here = FacilityContext::of(&*user_facility(&state, &me).await?);
    log_access(&state, &me, &patient, "read_recognisable_results", basis, None, addr).await?;
    let (rows, quals) = prior_of(&state, id, Vec::new(), READ_LIMIT).await?;
    let prior: Vec<PriorResult> = rows.iter().map(ResultRecord::prior).collect();
    let mut codes: Vec<&str> = prior.iter().map(|r| r.item_code.as_str()).collect();
    codes.sort_unstable();
    codes.dedup();
    let answers = check_order(&codes, &prior, &here, &config(&state).catalogue, &quals, state.now());
    let by_id: HashMap<Uuid, &ResultRecord> = rows.iter().map(|r| (r.entry.id, r)).collect();
    let names = facility_names(&state, &rows).await?;
    let mut out = Vec::new();
    let mut total = 0i64;
    for a in &answers {
        if let Some(rec) = a.recognised() {
            total += rec.price_fen;
            let row = by_id[&rec.result_id];
            let mut v = result_json(config(&state), row, names.get(&row.facility_id).map_or("", String::as_str), None);
            v["valid_until"] = json!(rfc3339(rec.valid_until));
            v["price_fen"] = json!(rec.price_fen);
            out.push(v);
        }
    }
    Ok(Json(json!({ "patient_id": id, "results": out, "reusable_value_fen": total })))
}

// ---------------------------------------------------------------------------------------
// Order-time check and orders
// ---------------------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CheckRequest {
    patient_id: Uuid,
    items: Vec<String>,
}

/// The answers for an order at the user's facility, after the role and access checks; the
/// read is logged.
async fn check(
    state: &AppState,
    me: &CurrentUser,
    patient_id: Uuid,
    items: &[String],
    action: &str,
    addr: SocketAddr,
) -> ApiResult<(Patient, Arc<Facility>, Vec<ItemAnswer>)> {
    me.require(Action::RecordEncounter)?;
    if items.is_empty() || items.len() > MAX_ORDER_ITEMS {
        return Err(invalid("items", "results.order_items", format!("order 1 to {MAX_ORDER_ITEMS} items")));
    }
    let (patient, basis) = readable_patient(state, me, patient_id, None).await?;
    let here = user_facility(state, me).await?;
    log_access(state, me, &patient, action, basis, None, addr).await?;
    let codes: Vec<String> =
        items.iter().filter_map(|c| config(state).catalogue.get(c).map(|i| i.code.clone())).collect();
    let prior = state.store.prior_results(&record_ids(state, patient_id).await?, &codes).await?;
    let mut labs: Vec<Uuid> = prior.iter().map(|r| r.lab_id).collect();
    labs.sort_unstable();
    labs.dedup();
    let quals = state.store.lab_qualifications(&labs).await?;
    let refs: Vec<&str> = items.iter().map(String::as_str).collect();
    let answers =
        check_order(&refs, &prior, &FacilityContext::of(&here), &config(state).catalogue, &quals, state.now());
    Ok((patient, here, answers))
}

async fn answer_json(state: &AppState, a: &ItemAnswer) -> ApiResult<Value> {
    let item = a.item_code.as_deref().and_then(|c| config(state).catalogue.get(c));
    let mut v = serde_json::to_value(a).unwrap_or(Value::Null);
    v["item_name"] = json!(item.map(|i| i.name.clone()));
    v["price_fen"] = json!(item.map(|i| i.price_fen));
    if let Answer::Recognised(r) = &a.answer {
        v["answer"]["facility_name"] = json!(facility(state, r.facility_id).await?.map(|f| f.name.clone()));
        v["answer"]["mark_label"] = json!(r.mark.label());
    }
    Ok(v)
}

/// POST /api/v1/results/order-check — what the clinician sees before ordering.
async fn order_check(
    State(state): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    me: CurrentUser,
    ApiJson(req): ApiJson<CheckRequest>,
) -> ApiResult<Json<Value>> {
    let (_, _, answers) = check(&state, &me, req.patient_id, &req.items, "order_check", addr).await?;
    let mut out = Vec::with_capacity(answers.len());
    for a in &answers {
        out.push(answer_json(&state, a).await?);
    }
    let reusable: i64 = answers.iter().filter_map(|a| a.recognised().map(|r| r.price_fen)).sum();
    Ok(Json(json!({ "patient_id": req.patient_id, "items": out, "reusable_value_fen": reusable })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OrderItem {
    code: String,
    choice: Choice,
    #[serde(default)]
    repeat_reason: Option<RepeatReason>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OrderRequest {
    patient_id: Uuid,
    items: Vec<OrderItem>,
}

/// POST /api/v1/results/orders — record an order after the check: every item is decided
/// against the check as it is now (a result may have expired since the dialog opened);
/// any item refused refuses the whole order, nothing written.
async fn record_order(
    State(state): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    me: CurrentUser,
    ApiJson(req): ApiJson<OrderRequest>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let codes: Vec<String> = req.items.iter().map(|i| i.code.clone()).collect();
    let (patient, here, answers) = check(&state, &me, req.patient_id, &codes, "order_record", addr).await?;
    let mut problems = Vec::new();
    let mut decisions: Vec<Decision> = Vec::with_capacity(answers.len());
    for (i, (item, answer)) in req.items.iter().zip(&answers).enumerate() {
        let at = format!("items[{i}]");
        let Some(cat) = answer.item_code.as_deref().and_then(|c| config(&state).catalogue.get(c)) else {
            problems.push(FieldError::new(
                &format!("{at}.code"),
                "recognition.unknown_item",
                format!("{} is not in the catalogue", item.code),
            ));
            continue;
        };
        match tiercare_domain::results::decide(answer, item.choice, item.repeat_reason, cat.price_fen, &at) {
            Ok(d) => decisions.push(d),
            Err(tiercare_domain::DomainError::Invalid(errs)) => problems.extend(errs),
            Err(e) => return Err(e.into()),
        }
    }
    if !problems.is_empty() {
        return Err(ApiError::invalid(problems));
    }
    let order_id = new_id();
    let at = state.now();
    let rows: Vec<OrderRecord> = decisions
        .into_iter()
        .map(|decision| OrderRecord {
            id: new_id(),
            order_id,
            region_key: patient.region_key.clone(),
            patient_id: patient.id,
            facility_id: here.id,
            ordered_by: Some(me.user.id),
            ordered_at: at,
            decision,
        })
        .collect();
    state.store.record_orders(&rows).await?;
    let saved: i64 = rows.iter().filter(|r| r.decision.outcome == Outcome::Reused).map(|r| r.decision.price_fen).sum();
    let items: Vec<Value> = rows
        .iter()
        .map(|r| {
            json!({
                "id": r.id, "item_code": r.decision.item_code, "outcome": r.decision.outcome.as_str(),
                "result_id": r.decision.result_id, "repeat_reason": r.decision.repeat_reason.map(|x| x.as_str()),
                "price_fen": r.decision.price_fen,
            })
        })
        .collect();
    Ok((StatusCode::CREATED, Json(json!({ "id": order_id, "items": items, "saved_fen": saved }))))
}

// ---------------------------------------------------------------------------------------
// Savings, catalogue, lab qualification
// ---------------------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SavingsQuery {
    from: Option<String>,
    to: Option<String>,
}

/// A `YYYY-MM` parameter, as the settlement reports read it.
fn parse_month(field: &str, raw: &str) -> ApiResult<String> {
    let first = super::settlements::parse_month(field, raw)?;
    Ok(format!("{:04}-{:02}", first.year(), u8::from(first.month())))
}

/// GET /api/v1/results/savings — per facility and month: tests avoided and fen saved,
/// repeats by reason, items performed. Officers see all; a community admin their community.
async fn savings(
    State(state): State<AppState>,
    me: CurrentUser,
    Query(q): Query<SavingsQuery>,
) -> ApiResult<Json<Value>> {
    me.require(Action::ReadSettlementReports)?;
    let this = tiercare_domain::recognition::YearMonth::of(state.now());
    let to = match q.to.as_deref() {
        Some(t) => parse_month("to", t)?,
        None => format!("{:04}-{:02}", this.year, this.month),
    };
    let from = match q.from.as_deref() {
        Some(f) => parse_month("from", f)?,
        None => format!("{}-01", &to[..4]),
    };
    if from > to {
        return Err(query_error("from", "the period starts after it ends"));
    }
    let ids = super::settlements::report_facility_scope(&state, &me).await?;
    let ledger = state.store.results_ledger(&from, &to, ids.as_deref()).await?;
    let mut rows: BTreeMap<(String, Uuid), Value> = BTreeMap::new();
    for l in &ledger {
        let row = rows.entry((l.month.clone(), l.facility_id)).or_insert_with(|| {
            json!({"month": l.month, "facility_id": l.facility_id, "reused": 0, "saved_fen": 0,
                   "repeated": 0, "repeat_reasons": {}, "performed": 0})
        });
        let add = |v: &mut Value, n: i64| *v = json!(v.as_i64().unwrap_or(0) + n);
        match l.outcome {
            Outcome::Reused => {
                add(&mut row["reused"], l.count);
                add(&mut row["saved_fen"], l.price_fen);
            }
            Outcome::Repeated => {
                add(&mut row["repeated"], l.count);
                let reason = l.repeat_reason.map_or("unknown", |r| r.as_str());
                add(&mut row["repeat_reasons"][reason], l.count);
            }
            Outcome::Performed => add(&mut row["performed"], l.count),
        }
    }
    let mut out = Vec::with_capacity(rows.len());
    for ((_, fid), mut v) in rows {
        v["facility_name"] = json!(facility(&state, fid).await?.map(|f| f.name.clone()));
        out.push(v);
    }
    let reused: i64 = out.iter().map(|v| v["reused"].as_i64().unwrap_or(0)).sum();
    let saved: i64 = out.iter().map(|v| v["saved_fen"].as_i64().unwrap_or(0)).sum();
    Ok(Json(json!({ "from": from, "to": to, "rows": out, "total": { "reused": reused, "saved_fen": saved } })))
}

/// GET /api/v1/results/catalogue — items, agreements and the repeat reasons (for the UI).
async fn catalogue(State(state): State<AppState>, _me: CurrentUser) -> Json<Value> {
    let c = config(&state);
    let items: Vec<Value> = c
        .catalogue
        .items()
        .map(|i| {
            json!({"code": i.code, "loinc": i.loinc, "name": i.name, "kind": i.kind.as_str(),
                   "validity_days": i.validity.whole_days(), "price_fen": i.price_fen, "unit": i.unit,
                   "numeric": i.numeric, "reference": c.reference(&i.code)})
        })
        .collect();
    let reasons: Vec<Value> =
        RepeatReason::ALL.iter().map(|r| json!({"code": r.as_str(), "national": r.is_national()})).collect();
    Json(json!({ "items": items, "agreements": c.agreements, "repeat_reasons": reasons }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct QualifyRequest {
    /// `grant` (qualified from `at`) or `revoke` (status lost at `at`).
    action: String,
    /// Default now.
    #[serde(default, with = "time::serde::rfc3339::option")]
    at: Option<OffsetDateTime>,
    #[serde(default)]
    note: Option<String>,
}

/// GET /api/v1/results/labs/{id}/qualification.
async fn lab_status(State(state): State<AppState>, me: CurrentUser, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    me.require(Action::ManageRegistry)?;
    let id = parse_id(&id, "lab")?;
    let periods = state.store.lab_qualifications(&[id]).await?;
    let now = state.now();
    let qualified = tiercare_domain::recognition::lab_qualified_at(&periods, id, now);
    Ok(Json(json!({ "lab_id": id, "qualified_now": qualified, "periods": periods })))
}

/// POST /api/v1/results/labs/{id}/qualification — the quality-control status that lets a
/// lab's results carry HR (administrators). A revoked status stops new results being
/// recognised; results reported before stay recognised within their window.
async fn qualify_lab(
    State(state): State<AppState>,
    me: CurrentUser,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<QualifyRequest>,
) -> ApiResult<Json<Value>> {
    me.require(Action::ManageRegistry)?;
    let id = parse_id(&id, "lab")?;
    let at = req.at.unwrap_or_else(|| state.now());
    if req.note.as_ref().is_some_and(|n| n.chars().count() > 200) {
        return Err(invalid("note", "text.too_long", "at most 200 characters"));
    }
    match req.action.as_str() {
        "grant" => {
            let q = LabQualification { lab_id: id, qualified_from: at, qualified_to: None };
            state.store.add_lab_qualification(&q, req.note.as_deref()).await?;
        }
        "revoke" => {
            if !state.store.end_lab_qualification(id, at).await? {
                return Err(ApiError::new(
                    StatusCode::CONFLICT,
                    "results.not_qualified",
                    "this lab holds no open qualification to revoke",
                ));
            }
        }
        _ => return Err(invalid("action", "results.qualification_action", "action is grant or revoke")),
    }
    let periods = state.store.lab_qualifications(&[id]).await?;
    Ok(Json(json!({ "lab_id": id, "periods": periods })))
}
