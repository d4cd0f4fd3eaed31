//! Case-based payment: DIP, DRG and the global budget (issue 9): the JSON API routes of this part and their OpenAPI rows.
//!
//! An insurance officer builds (or rebuilds) a region-year: the store reads the region's
//! inpatient stays, `domain::dip::settle_year` builds the DIP catalogue from the history years,
//! scores and groups the year's stays and settles the point value and each hospital's
//! position, and the store replaces the region-year as a whole. The DRG scheme is tiercare's
//! embedded sample unless the request carries one (`drg_scheme`: the scheme JSON and its
//! tables, validated before anything is read or written). Readers: insurance officers and
//! system admins everything; community admins their community's facilities and budget;
//! anyone else their own facility's position and stays. A stay's result is a patient's data:
//! reading it writes an access-log row first.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::OnceLock;

use axum::extract::{ConnectInfo, Path, Query, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use tiercare_domain::DomainError;
use tiercare_domain::FieldError;
use tiercare_domain::access::AccessBasis;
use tiercare_domain::budget::{self, BudgetTerms, Projection};
use tiercare_domain::codes;
use tiercare_domain::dip::{self, YearTerms};
use tiercare_domain::drg::{self, Scheme};
use tiercare_domain::referral::china_date;
use tiercare_domain::role::Role;
use tiercare_store::{CasePaymentYear, StoredStayResult};
use uuid::Uuid;

use super::referrals::facility;
use crate::AppState;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, CurrentUser, admin_scope};
use crate::openapi::RouteDoc;
use crate::routes::parse_id;

/// This part's routes (merged into the API router).
pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/case-payment/years", get(years).post(build_year))
        .route("/api/v1/case-payment/dip/packets", get(packets))
        .route("/api/v1/case-payment/drg/weights", get(drg_weights))
        .route("/api/v1/case-payment/hospitals", get(hospitals))
        .route("/api/v1/case-payment/hospitals/{id}", get(hospital))
        .route("/api/v1/case-payment/stays/{id}", get(stay))
        .route("/api/v1/case-payment/drg/group", post(group_one))
        .route("/api/v1/case-payment/budgets", post(put_budget))
        .route("/api/v1/case-payment/budgets/{id}", get(budget_position))
}

/// This part's rows of the OpenAPI table (see [`crate::openapi::all_routes`]).
pub(crate) const OPENAPI: &[RouteDoc] = &[
    ("get", "/api/v1/case-payment/years", "Region-years settled (DIP catalogue, point value), newest first", &[], true),
    (
        "post",
        "/api/v1/case-payment/years",
        "Build or rebuild a region-year: DIP catalogue from history, scores, DRG groups, point value, payments (insurance officer)",
        &[("region_code", "string"), ("terms", "object"), ("drg_scheme", "object")],
        true,
    ),
    (
        "get",
        "/api/v1/case-payment/dip/packets",
        "The DIP packet catalogue of a region-year (region, year, q, limit, offset)",
        &[],
        true,
    ),
    (
        "get",
        "/api/v1/case-payment/drg/weights",
        "The DRG weight table of a region-year, computed from its history (region, year)",
        &[],
        true,
    ),
    (
        "get",
        "/api/v1/case-payment/hospitals",
        "Hospitals' DIP/DRG positions of a region-year (region, year)",
        &[],
        true,
    ),
    (
        "get",
        "/api/v1/case-payment/hospitals/{id}",
        "A hospital's DIP/DRG position with its outlier stays (region, year)",
        &[],
        true,
    ),
    (
        "get",
        "/api/v1/case-payment/stays/{id}",
        "A stay's DIP score and DRG group with their explanation (encounter id)",
        &[],
        true,
    ),
    (
        "post",
        "/api/v1/case-payment/drg/group",
        "Group one stay with the sample scheme and explain it (nothing stored)",
        &[("sex", "integer"), ("age", "integer"), ("diagnoses", "array"), ("procedures", "array")],
        true,
    ),
    (
        "post",
        "/api/v1/case-payment/budgets",
        "Set a community's yearly global budget (insurance officer; a closed year is refused)",
        &[("community_id", "uuid"), ("year", "integer"), ("budget_fen", "integer"), ("closed", "boolean")],
        true,
    ),
    (
        "get",
        "/api/v1/case-payment/budgets/{id}",
        "A community's budget burn-down and projection (year, through_month, projection)",
        &[],
        true,
    ),
];

/// The embedded sample scheme, loaded once.
fn sample_scheme() -> ApiResult<&'static Scheme> {
    static SAMPLE: OnceLock<Option<Scheme>> = OnceLock::new();
    SAMPLE
        .get_or_init(|| drg::sample_scheme().ok())
        .as_ref()
        .ok_or_else(|| ApiError::new(axum::http::StatusCode::INTERNAL_SERVER_ERROR, "drg.sample", "sample scheme"))
}

/// A bad parameter, answered under its own code (not `query.invalid`).
fn query_error(field: &str, code: &str, message: impl Into<String>) -> ApiError {
    ApiError { code: code.to_owned(), ..ApiError::query(field, code, message) }
}

fn officer(me: &CurrentUser) -> bool {
    me.has_role(Role::InsuranceOfficer) || me.has_role(Role::SystemAdmin)
}

/// The facility-code prefix of a region: a province `510000` → `51`, a city `511600` →
/// `5116`, a county as it is.
fn region_prefix(code: &str) -> ApiResult<&str> {
    if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) || code.starts_with("00") {
        return Err(query_error("region_code", "region.invalid", format!("'{code}' is not a GB/T 2260 code")));
    }
    Ok(if code.ends_with("0000") {
        &code[..2]
    } else if code.ends_with("00") {
        &code[..4]
    } else {
        code
    })
}

/// May the user see `facility_id`'s position and stays? Returns the access-log basis.
async fn may_see_facility(state: &AppState, me: &CurrentUser, facility_id: Uuid) -> ApiResult<AccessBasis> {
    if officer(me) {
        return Ok(AccessBasis::SameCommunity);
    }
    if me.user.facility_id == facility_id {
        return Ok(AccessBasis::CareRelationship);
    }
    if me.has_role(Role::CommunityAdmin) {
        let scope = admin_scope(state, me).await?;
        let theirs = facility(state, facility_id).await?.and_then(|f| f.community_id);
        if theirs.is_some() && theirs == scope {
            return Ok(AccessBasis::SameCommunity);
        }
    }
    Err(ApiError::forbidden("case_payment.other_facility", "this hospital is outside your scope"))
}

fn year_json(y: &CasePaymentYear) -> Value {
    json!({
        "region_code": y.region_code, "year": y.year, "terms": y.terms, "scheme": y.scheme,
        "history_cases": y.total_cases, "mean_cost_fen": y.mean_cost_fen, "packets": y.packets,
        "core_packets": y.core_packets, "stays": y.stays, "fund_available_fen": y.fund_available_fen,
        "reimbursement_ratio_bp": y.reimbursement_ratio_bp, "total_points_e4": y.total_points_e4,
        "fen_per_point_e4": y.fen_per_point_e4, "drg_base_rate_fen": y.drg_base_rate_fen,
        "drg_weight_sum_e4": y.drg_weight_sum_e4, "drg_groups": y.drg_groups,
        "built_at": super::referrals::view::rfc3339(y.built_at),
    })
}

/// GET /api/v1/case-payment/years
async fn years(State(state): State<AppState>, _me: CurrentUser) -> ApiResult<Json<Value>> {
    let mut out = Vec::new();
    for (region, year) in state.store.case_payment_years().await? {
        if let Some(y) = state.store.case_payment_year(&region, year).await? {
            out.push(year_json(&y));
        }
    }
    Ok(Json(json!({ "years": out })))
}

/// A scheme sent with a build: the scheme JSON and its tables by file name.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SchemeUpload {
    scheme: Value,
    #[serde(default)]
    tables: HashMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BuildRequest {
    region_code: String,
    terms: YearTerms,
    #[serde(default)]
    drg_scheme: Option<SchemeUpload>,
}

fn load_scheme(upload: &SchemeUpload) -> ApiResult<Scheme> {
    Scheme::load(&upload.scheme.to_string(), &upload.tables).map_err(|e| {
        // the loader's paths are `$` (the document) or relative (`mdcs.MDCF.adrgs[3].rule`)
        let path = e.path.trim_start_matches('$').trim_start_matches('.');
        let field = if path.is_empty() { "drg_scheme.scheme".to_owned() } else { format!("drg_scheme.scheme.{path}") };
        ApiError::invalid(vec![FieldError::new(&field, "drg.scheme.invalid", e.to_string())])
    })
}

/// POST /api/v1/case-payment/years — build or rebuild a region-year (insurance officer).
async fn build_year(
    State(state): State<AppState>,
    me: CurrentUser,
    ApiJson(req): ApiJson<BuildRequest>,
) -> ApiResult<Json<Value>> {
    if !officer(&me) {
        return Err(ApiError::forbidden("role.forbidden", "only insurance officers build the DIP catalogue"));
    }
    let prefix = region_prefix(&req.region_code)?;
    let uploaded = req.drg_scheme.as_ref().map(load_scheme).transpose()?;
    let scheme = match &uploaded {
        Some(s) => s,
        None => sample_scheme()?,
    };
    let history_years = req.terms.history()?;
    let history = state.store.case_stays(prefix, &history_years).await?;
    let year = state.store.case_stays(prefix, &[req.terms.year]).await?;
    if year.is_empty() {
        return Err(DomainError::field(
            "terms.year",
            "dip.year.no_stays",
            format!("no inpatient stays of {} were discharged in region {}", req.terms.year, req.region_code),
        )
        .into());
    }
    let outcome = dip::settle_year(&req.terms, &history, &year, scheme)?;
    let summary =
        CasePaymentYear::of(&req.region_code, &req.terms, scheme.name(), &outcome, Some(me.user.id), state.now());
    state.store.replace_case_payment_year(&summary, &outcome).await?;
    Ok(Json(year_json(&summary)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct YearQuery {
    region: String,
    year: i32,
    #[serde(default)]
    q: Option<String>,
    #[serde(default)]
    limit: Option<u32>,
    #[serde(default)]
    offset: Option<u32>,
}

async fn stored_year(state: &AppState, region: &str, year: i32) -> ApiResult<CasePaymentYear> {
    region_prefix(region)?;
    state.store.case_payment_year(region, year).await?.ok_or_else(|| {
        ApiError::new(
            axum::http::StatusCode::NOT_FOUND,
            "case_payment.year.not_built",
            format!("no DIP catalogue has been built for region {region}, {year}"),
        )
    })
}

/// GET /api/v1/case-payment/dip/packets?region=&year=&q=
async fn packets(
    State(state): State<AppState>,
    _me: CurrentUser,
    Query(q): Query<YearQuery>,
) -> ApiResult<Json<Value>> {
    let y = stored_year(&state, &q.region, q.year).await?;
    let rows =
        state.store.dip_packets(&q.region, q.year, q.q.as_deref(), q.limit.unwrap_or(0), q.offset.unwrap_or(0)).await?;
    let packets: Vec<Value> = rows
        .iter()
        .map(|p| {
            let (class, code, detail) = match &p.key {
                dip::PacketKey::Core { diagnosis, procedures } => ("core", diagnosis.clone(), procedures.clone()),
                dip::PacketKey::Comprehensive { group, kind } => {
                    ("comprehensive", group.clone(), kind.as_str().to_owned())
                }
            };
            json!({
                "class": class, "code": code, "detail": detail,
                "name": codes::diagnosis_name(&code).or_else(|| codes::diagnosis_name(&code.replace('X', "x"))),
                "cases": p.cases, "mean_cost_fen": p.mean_cost_fen, "score_e4": p.score_e4,
            })
        })
        .collect();
    Ok(Json(json!({ "year": year_json(&y), "packets": packets })))
}

/// GET /api/v1/case-payment/drg/weights?region=&year= — the DRG weight table, by DRG code.
async fn drg_weights(
    State(state): State<AppState>,
    _me: CurrentUser,
    Query(q): Query<YearQuery>,
) -> ApiResult<Json<Value>> {
    let y = stored_year(&state, &q.region, q.year).await?;
    let rows = state.store.drg_weights(&q.region, q.year).await?;
    // names from the embedded sample when the year was grouped with it (an uploaded scheme's
    // names are not kept)
    let names = sample_scheme().ok().filter(|s| s.name() == y.scheme);
    let weights: Vec<Value> = rows
        .iter()
        .map(|w| {
            json!({
                "drg": w.drg_code, "name": names.and_then(|s| s.drg_name(&w.drg_code)),
                "cases": w.cases, "kept_cases": w.kept_cases, "mean_cost_fen": w.mean_cost_fen,
                "weight_e4": w.weight_e4, "low_volume": w.low_volume, "trim_skipped": w.trim_skipped,
            })
        })
        .collect();
    Ok(Json(json!({ "year": year_json(&y), "weights": weights })))
}

async fn position_json(state: &AppState, h: &dip::HospitalPosition) -> ApiResult<Value> {
    let id = Uuid::parse_str(&h.facility_id).ok();
    let name = match id {
        Some(id) => facility(state, id).await?.map(|f| f.name.clone()),
        None => None,
    };
    let mut v = serde_json::to_value(h).map_err(|e| ApiError::bad_request("internal", e.to_string()))?;
    v["facility_name"] = json!(name);
    Ok(v)
}

/// GET /api/v1/case-payment/hospitals?region=&year= — the positions the user may see.
async fn hospitals(
    State(state): State<AppState>,
    me: CurrentUser,
    Query(q): Query<YearQuery>,
) -> ApiResult<Json<Value>> {
    let y = stored_year(&state, &q.region, q.year).await?;
    let all = state.store.hospital_positions(&q.region, q.year, None).await?;
    let mut out = Vec::new();
    for h in &all {
        let Ok(id) = Uuid::parse_str(&h.facility_id) else { continue };
        if may_see_facility(&state, &me, id).await.is_ok() {
            out.push(position_json(&state, h).await?);
        }
    }
    Ok(Json(json!({ "year": year_json(&y), "hospitals": out })))
}

fn stay_json(s: &StoredStayResult) -> Value {
    json!({
        "encounter_id": s.result.id, "facility_id": s.facility_id, "region_code": s.region_code, "year": s.year,
        "cost_fen": s.result.cost_fen, "dip": s.result.dip, "dip_refusal": s.result.dip_refusal,
        "drg": {
            "status": s.result.drg_status, "mdc": s.result.mdc, "adrg": s.result.adrg, "drg": s.result.drg,
            "name": s.result.drg.as_deref().and_then(|d| sample_scheme().ok()?.drg_name(d)),
            "weight_e4": s.result.drg_weight_e4, "payment_fen": s.result.drg_payment_fen, "trace": s.result.drg_trace,
        },
    })
}

/// GET /api/v1/case-payment/hospitals/{id}?region=&year= — one hospital's position, the point
/// value and its flagged stays (outliers first).
async fn hospital(
    State(state): State<AppState>,
    me: CurrentUser,
    Path(id): Path<String>,
    Query(q): Query<YearQuery>,
) -> ApiResult<Json<Value>> {
    let id = parse_id(&id, "facility")?;
    may_see_facility(&state, &me, id).await?;
    let y = stored_year(&state, &q.region, q.year).await?;
    let Some(h) = state.store.hospital_positions(&q.region, q.year, Some(id)).await?.into_iter().next() else {
        return Err(ApiError::not_found("hospital position"));
    };
    let stays = state.store.stay_results(&q.region, q.year, id, q.limit.unwrap_or(20).min(200)).await?;
    let stays: Vec<Value> = stays
        .iter()
        .map(|s| {
            let d = s.result.dip.as_ref();
            json!({
                "encounter_id": s.result.id, "cost_fen": s.result.cost_fen,
                "packet": d.map(|d| d.packet.to_string()), "score_e4": d.map(|d| d.score_e4),
                "outlier": d.map(|d| d.outlier), "expert_review": d.map(|d| d.expert_review),
                "drg": s.result.drg, "drg_weight_e4": s.result.drg_weight_e4,
                "drg_payment_fen": s.result.drg_payment_fen,
            })
        })
        .collect();
    Ok(Json(json!({ "year": year_json(&y), "position": position_json(&state, &h).await?, "stays": stays })))
}

/// GET /api/v1/case-payment/stays/{id} — a stay's result with its explanation (access-logged).
async fn stay(
    State(state): State<AppState>,
    me: CurrentUser,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let id = parse_id(&id, "encounter")?;
    let Some(s) = state.store.stay_result(id).await? else {
        return Err(ApiError::not_found("stay result"));
    };
    let basis = may_see_facility(&state, &me, s.facility_id).await?;
    let entry = super::patients::access_entry(
        &me,
        &s.region_key,
        s.patient_id,
        "case_payment.stay",
        basis,
        Some(addr.ip().to_string()),
    );
    state.store.record_access(&entry).await?;
    Ok(Json(stay_json(&s)))
}

/// A stay to group (nothing is stored).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct GroupRequest {
    sex: u8,
    age: Option<u32>,
    #[serde(default)]
    age_days: Option<u32>,
    #[serde(default)]
    weight_g: Option<u32>,
    diagnoses: Vec<String>,
    #[serde(default)]
    procedures: Vec<String>,
}

/// Refuse a stay without a principal diagnosis or with a code the national tables do not know.
fn check_codes(r: &GroupRequest) -> Result<(), ApiError> {
    let mut details = Vec::new();
    if r.diagnoses.first().is_none_or(|d| d.trim().is_empty()) {
        details.push(FieldError::new(
            "diagnoses[0]",
            "stay.principal_diagnosis.missing",
            "a stay needs a principal diagnosis (ICD-10 医保版)",
        ));
    }
    for (i, d) in r.diagnoses.iter().enumerate().filter(|(_, d)| !d.trim().is_empty()) {
        if codes::diagnosis_name(d.trim()).is_none() {
            details.push(FieldError::new(
                &format!("diagnoses[{i}]"),
                "code.diagnosis.unknown",
                format!("'{d}' is not an ICD-10 医保版 2.0 code"),
            ));
        }
    }
    for (i, p) in r.procedures.iter().enumerate() {
        if codes::procedure_name(p.trim()).is_none() {
            details.push(FieldError::new(
                &format!("procedures[{i}]"),
                "code.procedure.unknown",
                format!("'{p}' is not an ICD-9-CM-3 医保版 code"),
            ));
        }
    }
    if details.is_empty() { Ok(()) } else { Err(ApiError::invalid(details)) }
}

/// POST /api/v1/case-payment/drg/group — group one stay with the sample scheme and explain it.
async fn group_one(
    State(_state): State<AppState>,
    _me: CurrentUser,
    ApiJson(r): ApiJson<GroupRequest>,
) -> ApiResult<Json<Value>> {
    check_codes(&r)?;
    let scheme = sample_scheme()?;
    let stay = drg::Stay {
        sex: r.sex,
        age: r.age,
        age_days: r.age_days,
        weight_g: r.weight_g,
        diagnoses: r.diagnoses.iter().map(|d| d.trim().to_owned()).collect(),
        procedures: r.procedures.iter().map(|p| p.trim().to_owned()).collect(),
    };
    let g = scheme.group(&stay);
    Ok(Json(json!({
        "scheme": scheme.name(), "status": g.status.outcome_key(), "label": scheme.outcome_label(&g.status),
        "mdc": g.mdc, "adrg": g.adrg, "drg": g.drg,
        "name": g.drg.as_deref().and_then(|d| scheme.drg_name(d)), "trace": g.trace,
    })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BudgetRequest {
    community_id: Uuid,
    year: i32,
    budget_fen: i64,
    /// Default 10,000 bp: "what it saves, it keeps".
    #[serde(default = "all_bp")]
    savings_retained_bp: u32,
    #[serde(default = "all_bp")]
    overspend_borne_bp: u32,
    #[serde(default)]
    closed: bool,
}

fn all_bp() -> u32 {
    10_000
}

/// POST /api/v1/case-payment/budgets — set a community's budget of a year (insurance officer).
async fn put_budget(
    State(state): State<AppState>,
    me: CurrentUser,
    ApiJson(req): ApiJson<BudgetRequest>,
) -> ApiResult<Json<Value>> {
    if !officer(&me) {
        return Err(ApiError::forbidden("role.forbidden", "only insurance officers set a community's budget"));
    }
    let terms = BudgetTerms {
        year: req.year,
        budget_fen: req.budget_fen,
        savings_retained_bp: req.savings_retained_bp,
        overspend_borne_bp: req.overspend_borne_bp,
        closed: req.closed,
    };
    let b = state.store.put_budget(req.community_id, &terms, Some(me.user.id), state.now()).await?;
    Ok(Json(json!({ "community_id": b.community_id, "terms": b.terms })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BudgetQuery {
    year: i32,
    #[serde(default)]
    through_month: Option<u8>,
    /// `run_rate` (default) or `seasonal` (last year's months as the base).
    #[serde(default)]
    projection: Option<String>,
}

/// GET /api/v1/case-payment/budgets/{id}?year= — the burn-down of a community's budget.
async fn budget_position(
    State(state): State<AppState>,
    me: CurrentUser,
    Path(id): Path<String>,
    Query(q): Query<BudgetQuery>,
) -> ApiResult<Json<Value>> {
    let id = parse_id(&id, "community")?;
    if !officer(&me) {
        let scope = if me.has_role(Role::CommunityAdmin) { admin_scope(&state, &me).await? } else { None };
        if scope != Some(id) {
            return Err(ApiError::forbidden(
                "case_payment.budget.scope",
                "insurance officers and the community's administrators read its budget",
            ));
        }
    }
    let Some(b) = state.store.budget(id, q.year).await? else {
        return Err(ApiError::not_found("budget"));
    };
    let today = china_date(state.now());
    let through = q.through_month.unwrap_or(if today.year() > q.year { 12 } else { u8::from(today.month()) });
    let spend: Vec<_> =
        state.store.community_spend(id, q.year).await?.into_iter().filter(|m| m.month <= through).collect();
    let projection = match q.projection.as_deref() {
        None | Some("run_rate") => Projection::RunRate,
        Some("seasonal") => {
            let mut last_year = [0i64; 12];
            for m in state.store.community_spend(id, q.year - 1).await? {
                last_year[usize::from(m.month - 1)] = m.in_county_fen + m.out_of_county_fen;
            }
            Projection::Seasonal { last_year }
        }
        Some(_) => return Err(query_error("projection", "query.invalid", "projection is run_rate or seasonal")),
    };
    let p = budget::position(&b.terms, &spend, through, &projection)?;
    let community = state.store.get_community(id).await?.map(|c| c.name);
    Ok(Json(json!({ "community_id": id, "community_name": community, "terms": b.terms, "position": p })))
}
