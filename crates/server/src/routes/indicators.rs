//! Reform indicators (issue 8): the JSON API routes of this part and their OpenAPI rows.
//!
//! Every read sums the indicator counters (`IndicatorStore::indicator_counters`, one query of
//! a few thousand rows for a county-year) and computes the definitions
//! (`domain::indicators`) over them; no event is scanned, except the drill-down's last level
//! (the records of one facility's month).
//!
//! Who reads what: insurance officers and system admins any community; a community admin
//! their own community; any other signed-in user only their own facility (`facility_id`).
//! A community's *area* is its region code's prefix (a county, or a city's counties): its
//! residents are people whose home county is in it, its facilities those located in it.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use axum::Json;
use axum::Router;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};
use tiercare_domain::facility::{Community, Facility, Tier};
use tiercare_domain::indicators::{
    self as ind, Cell, Definition, Definitions, Measure, Month, Period, Rag, Target, area_prefix,
};
use tiercare_domain::role::{Action, Role};
use tiercare_store::{CellQuery, CounterQuery, CounterRow, FacilityFilter};
use uuid::Uuid;

use crate::AppState;
use crate::error::{ApiError, ApiResult};
use crate::extract::CurrentUser;
use crate::openapi::RouteDoc;

/// Most records the drill-down's last level answers.
const MAX_RECORDS: u32 = 500;

/// This part's routes (merged into the API router).
pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/indicators/definitions", get(definitions))
        .route("/api/v1/indicators/scorecard", get(scorecard))
        .route("/api/v1/indicators/trend", get(trend))
        .route("/api/v1/indicators/drilldown", get(drilldown))
        .route("/api/v1/indicators/records", get(records))
        .route("/api/v1/indicators/comparison", get(comparison))
        .route("/api/v1/indicators/flow", get(flow))
        .route("/api/v1/indicators/export.csv", get(export_csv))
        .route("/api/v1/indicators/sheet", get(sheet))
}

/// This part's rows of the OpenAPI table (see [`crate::openapi::all_routes`]).
pub(crate) const OPENAPI: &[RouteDoc] = &[
    ("get", "/api/v1/indicators/definitions", "Indicator definitions: formulas, targets, sources", &[], true),
    (
        "get",
        "/api/v1/indicators/scorecard",
        "A community's (or facility's, tier's) indicators against targets, red/amber/green (community_id, from, to: YYYY-MM; facility_id, tier)",
        &[],
        true,
    ),
    (
        "get",
        "/api/v1/indicators/trend",
        "One indicator month by month (indicator, community_id, from, to, facility_id, tier)",
        &[],
        true,
    ),
    (
        "get",
        "/api/v1/indicators/drilldown",
        "One indicator per facility of the community (indicator, community_id, from, to)",
        &[],
        true,
    ),
    (
        "get",
        "/api/v1/indicators/records",
        "The events behind one facility's month (facility_id, month, limit)",
        &[],
        true,
    ),
    (
        "get",
        "/api/v1/indicators/comparison",
        "The community's townships side by side (community_id, from, to)",
        &[],
        true,
    ),
    (
        "get",
        "/api/v1/indicators/flow",
        "Where the community's residents were treated: by tier, in and out of the area",
        &[],
        true,
    ),
    ("get", "/api/v1/indicators/export.csv", "The scorecard month by month as CSV (community_id, from, to)", &[], true),
    (
        "get",
        "/api/v1/indicators/sheet",
        "The printable monthly assessment sheet, HTML (community_id, month)",
        &[],
        true,
    ),
];

/// The definitions in force (the embedded default set).
fn defs() -> &'static Definitions {
    static DEFS: OnceLock<Definitions> = OnceLock::new();
    DEFS.get_or_init(Definitions::default_set)
}

/// The query's parameters, refusing any not in `allowed` and any given twice.
struct Params(HashMap<String, String>);

impl Params {
    fn parse(raw: Vec<(String, String)>, allowed: &[&str]) -> ApiResult<Params> {
        let mut out = HashMap::new();
        for (k, v) in raw {
            if !allowed.contains(&k.as_str()) {
                return Err(ApiError::query(
                    &k,
                    "query.unknown",
                    format!("unknown parameter (known: {})", allowed.join(", ")),
                ));
            }
            if out.insert(k.clone(), v).is_some() {
                return Err(ApiError::query(&k, "query.repeated", "given more than once"));
            }
        }
        Ok(Params(out))
    }
    fn get(&self, k: &str) -> Option<&str> {
        self.0.get(k).map(|v| v.trim()).filter(|v| !v.is_empty())
    }
    fn uuid(&self, k: &str) -> ApiResult<Option<Uuid>> {
        self.get(k)
            .map(|v| {
                Uuid::parse_str(v).map_err(|_| ApiError::query(k, "query.uuid", format!("{v:?} is not an id (UUID)")))
            })
            .transpose()
    }
    fn period(&self) -> ApiResult<Period> {
        // a bad period is a bad query (400), every problem listed
        Period::parse(self.get("from"), self.get("to")).map_err(|e| match e {
            tiercare_domain::DomainError::Invalid(details) if !details.is_empty() => {
                let mut err = ApiError::query(&details[0].field, &details[0].code, details[0].message.clone());
                err.details = details;
                err
            }
            other => other.into(),
        })
    }
    fn month(&self, k: &str) -> ApiResult<Month> {
        let v = self.get(k).ok_or_else(|| ApiError::query(k, "period.open", format!("{k} is required (YYYY-MM)")))?;
        Month::parse(v)
            .ok_or_else(|| ApiError::query(k, "period.month", format!("{k} must be a month written YYYY-MM")))
    }
    fn tier(&self) -> ApiResult<Option<Tier>> {
        self.get("tier")
            .map(|v| Tier::parse(v).ok_or_else(|| ApiError::query("tier", "query.tier", format!("unknown tier {v:?}"))))
            .transpose()
    }
    fn indicator(&self) -> ApiResult<&'static Definition> {
        let id = self
            .get("indicator")
            .ok_or_else(|| ApiError::query("indicator", "query.required", "indicator is required"))?;
        defs()
            .get(id)
            .ok_or_else(|| ApiError::query("indicator", "indicator.unknown", format!("unknown indicator {id:?}")))
    }
}

/// What a request reads: a community's area, narrowed to a facility or a tier.
struct Scope {
    community: Community,
    prefix: String,
    /// Every registered facility (a small registry), by id.
    facilities: Arc<HashMap<Uuid, Facility>>,
    facility: Option<Uuid>,
    tier: Option<Tier>,
}

impl Scope {
    fn in_area(&self, f: &Facility) -> bool {
        f.region_code.starts_with(&self.prefix)
    }
    /// The area's facilities the scope selects.
    fn selects(&self, f: &Facility) -> bool {
        self.in_area(f) && self.facility.is_none_or(|id| id == f.id) && self.tier.is_none_or(|t| t == f.tier)
    }
    /// The area's facilities, sorted by tier (county first) and name.
    fn area_facilities(&self) -> Vec<&Facility> {
        let mut v: Vec<&Facility> = self.facilities.values().filter(|f| self.in_area(f)).collect();
        v.sort_by(|a, b| b.tier.cmp(&a.tier).then_with(|| a.name.cmp(&b.name)));
        v
    }
    fn narrowed(&self, facility: Option<Uuid>, tier: Option<Tier>) -> Scope {
        Scope {
            community: self.community.clone(),
            prefix: self.prefix.clone(),
            facilities: self.facilities.clone(),
            facility,
            tier,
        }
    }
}

/// Resolve and authorise the scope of a request (`community_id`, `facility_id`, `tier`).
async fn scope(state: &AppState, me: &CurrentUser, p: &Params) -> ApiResult<Scope> {
    let own = state.store.get_facility(me.user.facility_id).await?;
    let community_id = match p.uuid("community_id")? {
        Some(id) => id,
        None => own.as_ref().and_then(|f| f.community_id).ok_or_else(|| {
            ApiError::query(
                "community_id",
                "query.required",
                "community_id is required (your facility is in no community)",
            )
        })?,
    };
    let community = state
        .store
        .get_community(community_id)
        .await?
        .ok_or_else(|| ApiError::not_found(&format!("community {community_id}")))?;
    let facility = p.uuid("facility_id")?;
    let tier = p.tier()?;
    let wide = me.has_role(Role::InsuranceOfficer) || me.has_role(Role::SystemAdmin);
    if !wide {
        if me.may(Action::ReadSettlementReports) {
            if own.as_ref().and_then(|f| f.community_id) != Some(community_id) {
                return Err(ApiError::forbidden(
                    "indicators.other_community",
                    "you may read the indicators of your own community only",
                ));
            }
        } else if facility != Some(me.user.facility_id) {
            return Err(ApiError::forbidden(
                "indicators.facility_scope",
                "you may read the indicators of your own facility only: give facility_id of your facility",
            ));
        }
    }
    let prefix = area_prefix(&community.region_code).to_owned();
    if let Some(id) = facility {
        match state.store.get_facility(id).await? {
            None => return Err(ApiError::not_found(&format!("facility {id}"))),
            Some(f) if !f.region_code.starts_with(&prefix) => {
                return Err(ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "indicators.facility_outside",
                    format!("facility {} is not in the area of community {}", f.name, community.name),
                ));
            }
            Some(_) => {}
        }
    }
    let s = Scope { community, prefix, facilities: Arc::new(HashMap::new()), facility, tier };
    Ok(s)
}

/// The scope with the facility registry (for the per-facility reads: drill-down, comparison).
async fn with_facilities(state: &AppState, s: Scope) -> ApiResult<Scope> {
    let all = state.store.list_facilities(&FacilityFilter::default()).await?;
    Ok(Scope { facilities: Arc::new(all.into_iter().map(|f| (f.id, f)).collect()), ..s })
}

/// The counter rows of `period` and of the 12 months before it (for trends and growth):
/// the area's facilities, and the area's residents anywhere (`s` with its facilities).
async fn rows(state: &AppState, s: &Scope, period: Period) -> ApiResult<Vec<CounterRow>> {
    let q = CounterQuery {
        from: period.from.plus(-12),
        to: period.to,
        facility_ids: s.facilities.values().filter(|f| s.in_area(f)).map(|f| f.id).collect(),
        home_prefix: Some(s.prefix.clone()),
    };
    Ok(state.store.indicator_counters(&q).await?)
}

/// The rows as cells of the scope `s`.
fn to_cells(rows: &[CounterRow], s: &Scope) -> Vec<Cell> {
    rows.iter()
        .filter_map(|r| {
            let f = s.facilities.get(&r.facility_id)?;
            Some(Cell {
                tier: f.tier,
                in_scope: s.selects(f),
                resident: r.home_region.starts_with(&s.prefix),
                month: r.month,
                counters: r.counters,
            })
        })
        .collect()
}

/// The cells of `period` and of the 12 months before it, summed in the database.
async fn cells(state: &AppState, s: &Scope, period: Period) -> ApiResult<Vec<Cell>> {
    let q = CellQuery {
        from: period.from.plus(-12),
        to: period.to,
        area_prefix: s.prefix.clone(),
        facility_id: s.facility,
        tier: s.tier,
    };
    Ok(state.store.indicator_cells(&q).await?)
}

fn target_json(t: Target) -> Value {
    serde_json::to_value(t).unwrap_or(Value::Null)
}

fn definition_json(d: &Definition) -> Value {
    json!({
        "id": d.id, "zh": d.zh, "en": d.en, "kind": d.kind, "unit": d.unit, "direction": d.direction,
        "period": d.period, "target": target_json(d.target), "facility_level": d.facility_level, "source": d.source,
        "numerator": d.numerator, "denominator": d.denominator,
    })
}

fn reading_json(d: &Definition, r: &ind::Reading) -> Value {
    json!({
        "id": d.id, "zh": d.zh, "en": d.en, "unit": d.unit, "direction": d.direction, "target": target_json(d.target),
        "numerator": r.current.numerator, "denominator": r.current.denominator, "value": r.current.value,
        "year_earlier": r.year_earlier.as_ref().and_then(|v| v.value), "rag": r.rag,
    })
}

fn scope_json(s: &Scope, period: Period) -> Value {
    json!({
        "community": {"id": s.community.id, "name": s.community.name, "region_code": s.community.region_code},
        "facility_id": s.facility, "tier": s.tier, "from": period.from.to_string(), "to": period.to.to_string(),
    })
}

/// The definitions that apply to the scope (one facility: the facility-level ones).
fn applicable(s: &Scope) -> impl Iterator<Item = &'static Definition> + '_ {
    defs().0.iter().filter(move |d| s.facility.is_none() || d.facility_level)
}

/// GET /api/v1/indicators/definitions
async fn definitions(_me: CurrentUser) -> ApiResult<Json<Value>> {
    let out: Vec<Value> = defs().0.iter().map(definition_json).collect();
    Ok(Json(json!({"indicators": out})))
}

/// GET /api/v1/indicators/scorecard
async fn scorecard(
    State(state): State<AppState>,
    me: CurrentUser,
    Query(raw): Query<Vec<(String, String)>>,
) -> ApiResult<Json<Value>> {
    let started = Instant::now();
    let p = Params::parse(raw, &["community_id", "facility_id", "tier", "from", "to"])?;
    let period = p.period()?;
    let s = scope(&state, &me, &p).await?;
    let cells = cells(&state, &s, period).await?;
    let out: Vec<Value> = applicable(&s).map(|d| reading_json(d, &ind::read(d, &cells, period))).collect();
    let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
    Ok(Json(json!({"scope": scope_json(&s, period), "indicators": out, "server_ms": elapsed_ms})))
}

/// GET /api/v1/indicators/trend
async fn trend(
    State(state): State<AppState>,
    me: CurrentUser,
    Query(raw): Query<Vec<(String, String)>>,
) -> ApiResult<Json<Value>> {
    let p = Params::parse(raw, &["community_id", "facility_id", "tier", "from", "to", "indicator"])?;
    let period = p.period()?;
    let d = p.indicator()?;
    let s = scope(&state, &me, &p).await?;
    let cells = cells(&state, &s, period).await?;
    let months: Vec<Value> = period
        .months()
        .map(|m| {
            let r = ind::read(d, &cells, Period { from: m, to: m });
            json!({"month": m.to_string(), "numerator": r.current.numerator, "denominator": r.current.denominator,
                   "value": r.current.value, "rag": r.rag})
        })
        .collect();
    Ok(Json(json!({"scope": scope_json(&s, period), "indicator": definition_json(d), "months": months})))
}

/// GET /api/v1/indicators/drilldown — one indicator for each facility of the area: the
/// facility's part of the numerator and denominator (terms over the whole area, such as
/// "all residents' visits", keep their whole-area value).
async fn drilldown(
    State(state): State<AppState>,
    me: CurrentUser,
    Query(raw): Query<Vec<(String, String)>>,
) -> ApiResult<Json<Value>> {
    let p = Params::parse(raw, &["community_id", "from", "to", "indicator", "tier"])?;
    let period = p.period()?;
    let d = p.indicator()?;
    let s = with_facilities(&state, scope(&state, &me, &p).await?).await?;
    let rows = rows(&state, &s, period).await?;
    let area = ind::read(d, &to_cells(&rows, &s), period);
    let mut out = Vec::new();
    for f in s.area_facilities().into_iter().filter(|f| s.selects(f)) {
        let r = ind::read(d, &to_cells(&rows, &s.narrowed(Some(f.id), s.tier)), period);
        let rag = if d.facility_level { r.rag } else { Rag::None };
        out.push(json!({
            "facility_id": f.id, "name": f.name, "tier": f.tier, "numerator": r.current.numerator,
            "denominator": r.current.denominator, "value": r.current.value, "rag": rag,
        }));
    }
    Ok(Json(json!({
        "scope": scope_json(&s, period), "indicator": definition_json(d),
        "area": {"numerator": area.current.numerator, "denominator": area.current.denominator,
                 "value": area.current.value, "rag": area.rag},
        "facilities": out,
    })))
}

/// GET /api/v1/indicators/records — the events of one facility's month (no patient names
/// or identifiers: ids, kinds, times, amounts, home county).
async fn records(
    State(state): State<AppState>,
    me: CurrentUser,
    Query(raw): Query<Vec<(String, String)>>,
) -> ApiResult<Json<Value>> {
    let p = Params::parse(raw, &["community_id", "facility_id", "month", "limit"])?;
    let month = p.month("month")?;
    if p.get("facility_id").is_none() {
        return Err(ApiError::query("facility_id", "query.required", "facility_id is required"));
    }
    let limit = match p.get("limit") {
        None => 100,
        Some(v) => v
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=MAX_RECORDS).contains(n))
            .ok_or_else(|| ApiError::query("limit", "query.limit", format!("limit is 1 to {MAX_RECORDS}")))?,
    };
    let s = scope(&state, &me, &p).await?;
    let facility = s.facility.unwrap_or(me.user.facility_id);
    let rows = state.store.indicator_records(facility, month, limit).await?;
    Ok(Json(json!({"facility_id": facility, "month": month.to_string(), "records": rows})))
}

/// GET /api/v1/indicators/comparison — the area's townships side by side.
async fn comparison(
    State(state): State<AppState>,
    me: CurrentUser,
    Query(raw): Query<Vec<(String, String)>>,
) -> ApiResult<Json<Value>> {
    let p = Params::parse(raw, &["community_id", "from", "to"])?;
    let period = p.period()?;
    let s = with_facilities(&state, scope(&state, &me, &p).await?).await?;
    let rows = rows(&state, &s, period).await?;
    let visits = |cells: &[Cell]| -> i64 {
        cells.iter().filter(|c| c.in_scope && period.contains(c.month)).map(|c| c.counters.get(Measure::Visits)).sum()
    };
    let total_visits = visits(&to_cells(&rows, &s));
    let mut out = Vec::new();
    for f in s.area_facilities().into_iter().filter(|f| f.tier == Tier::Township) {
        let cells = to_cells(&rows, &s.narrowed(Some(f.id), None));
        let n = visits(&cells);
        let readings: Vec<Value> = defs()
            .0
            .iter()
            .filter(|d| d.facility_level)
            .map(|d| reading_json(d, &ind::read(d, &cells, period)))
            .collect();
        out.push(json!({"facility_id": f.id, "name": f.name, "visits": n,
                        "visit_share": (total_visits > 0).then(|| n as f64 / total_visits as f64),
                        "indicators": readings}));
    }
    Ok(Json(json!({"scope": scope_json(&s, period), "area_visits": total_visits, "townships": out})))
}

/// GET /api/v1/indicators/flow — where the area's residents were treated (visits, stays,
/// fund) by tier, inside and outside the area; and non-residents treated inside.
async fn flow(
    State(state): State<AppState>,
    me: CurrentUser,
    Query(raw): Query<Vec<(String, String)>>,
) -> ApiResult<Json<Value>> {
    let p = Params::parse(raw, &["community_id", "from", "to"])?;
    let period = p.period()?;
    let s = scope(&state, &me, &p).await?;
    let all = cells(&state, &s, period).await?;
    let mut by: std::collections::BTreeMap<(Tier, bool, bool), ind::Counters> = Default::default();
    for c in all.iter().filter(|c| period.contains(c.month)) {
        by.entry((c.tier, c.in_scope, c.resident)).or_default().absorb(&c.counters);
    }
    let out: Vec<Value> = by
        .into_iter()
        .filter(|((_, inside, resident), _)| *inside || *resident)
        .map(|((tier, inside, resident), c)| {
            json!({"tier": tier, "in_area": inside, "resident": resident, "visits": c.get(Measure::Visits),
                   "stays": c.get(Measure::Stays), "fund_fen": c.get(Measure::FundFen)})
        })
        .collect();
    Ok(Json(json!({"scope": scope_json(&s, period), "flows": out})))
}

fn csv_field(v: &str) -> String {
    if v.contains([',', '"', '\n']) { format!("\"{}\"", v.replace('"', "\"\"")) } else { v.to_owned() }
}

fn opt<T: ToString>(v: Option<T>) -> String {
    v.map(|x| x.to_string()).unwrap_or_default()
}

/// GET /api/v1/indicators/export.csv — one row per indicator and month, then the period.
async fn export_csv(
    State(state): State<AppState>,
    me: CurrentUser,
    Query(raw): Query<Vec<(String, String)>>,
) -> ApiResult<Response> {
    let p = Params::parse(raw, &["community_id", "facility_id", "tier", "from", "to"])?;
    let period = p.period()?;
    let s = scope(&state, &me, &p).await?;
    let cells = cells(&state, &s, period).await?;
    let mut out = String::from("indicator,zh,en,month,numerator,denominator,value,rag\n");
    for d in applicable(&s) {
        let months = period.months().map(|m| (m.to_string(), Period { from: m, to: m }));
        let whole = std::iter::once((format!("{}..{}", period.from, period.to), period));
        for (label, pp) in months.chain(whole) {
            let r = ind::read(d, &cells, pp);
            let _ = writeln!(
                out,
                "{},{},{},{},{},{},{},{}",
                d.id,
                csv_field(&d.zh),
                csv_field(&d.en),
                label,
                r.current.numerator,
                opt(r.current.denominator),
                opt(r.current.value),
                r.rag.as_str()
            );
        }
    }
    let name = format!("indicators-{}-{}.csv", period.from, period.to);
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (header::CONTENT_DISPOSITION, format!("attachment; filename=\"{name}\"")),
        ],
        out,
    )
        .into_response())
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

fn shown(d: &Definition, v: Option<f64>) -> String {
    match (v, d.unit) {
        (None, _) => "—".into(),
        (Some(v), ind::Unit::Percent) => format!("{:.1}%", v * 100.0),
        (Some(v), ind::Unit::Fen) => format!("¥{:.2}", v / 100.0),
        (Some(v), ind::Unit::Ratio) => format!("{v:.2}"),
        (Some(v), ind::Unit::Count) => format!("{v:.0}"),
    }
}

fn target_text(d: &Definition) -> String {
    match d.target {
        Target::AtLeast { green, .. } => format!("≥ {}", shown(d, Some(green))),
        Target::AtMost { green, .. } => format!("≤ {}", shown(d, Some(green))),
        Target::Trend => match d.direction {
            ind::Direction::Higher => "上升 rising".into(),
            ind::Direction::Lower => "下降 falling".into(),
        },
    }
}

/// GET /api/v1/indicators/sheet — the monthly assessment sheet (考核表), printable HTML.
async fn sheet(
    State(state): State<AppState>,
    me: CurrentUser,
    Query(raw): Query<Vec<(String, String)>>,
) -> ApiResult<Response> {
    let p = Params::parse(raw, &["community_id", "month"])?;
    let m = p.month("month")?;
    let period = Period { from: m, to: m };
    let s = scope(&state, &me, &p).await?;
    let cells = cells(&state, &s, period).await?;
    let mut rows = String::new();
    for d in defs().0.iter() {
        let r = ind::read(d, &cells, period);
        let before = ind::compute(d, &cells, period.year_earlier()).value;
        let _ = write!(
            rows,
            "<tr data-rag=\"{rag}\"><td>{zh}<br><small>{en}</small></td><td><small>{src}</small></td><td>{target}</td>\
             <td>{num} / {den}</td><td><b>{value}</b></td><td>{before}</td><td bgcolor=\"{colour}\">{rag_zh}</td></tr>",
            rag = r.rag.as_str(),
            colour = match r.rag {
                Rag::Green => "#cfe8cf",
                Rag::Amber => "#f6e3b4",
                Rag::Red => "#f2c4c4",
                Rag::None => "#ffffff",
            },
            zh = html_escape(&d.zh),
            en = html_escape(&d.en),
            src = html_escape(&d.source),
            target = html_escape(&target_text(d)),
            num = r.current.numerator,
            den = opt(r.current.denominator),
            value = shown(d, r.current.value),
            before = shown(d, before),
            rag_zh = match r.rag {
                Rag::Green => "达标 green",
                Rag::Amber => "接近 amber",
                Rag::Red => "未达标 red",
                Rag::None => "—",
            },
        );
    }
    let title = format!("{} {} 月度考核表 Monthly assessment sheet", html_escape(&s.community.name), m);
    // presentational attributes only: the server's CSP allows no inline style
    let html = format!(
        "<!doctype html><html lang=\"zh\"><head><meta charset=\"utf-8\"><title>{title}</title></head><body>\
         <h1>{title}</h1><p>地区 Area: {region} · 期间 Period: {m}</p>\
         <table border=\"1\" cellpadding=\"4\" cellspacing=\"0\" width=\"100%\"><thead><tr><th>指标 Indicator</th><th>定义 Definition</th>\
         <th>目标 Target</th><th>分子/分母 Numerator/denominator</th><th>本月 This month</th>\
         <th>去年同月 A year earlier</th><th>评价 Rating</th></tr></thead><tbody>{rows}</tbody></table>\
         <p>签字 Signature: ____________ 日期 Date: ____________</p></body></html>",
        region = html_escape(&s.community.region_code),
    );
    Ok(([(header::CONTENT_TYPE, "text/html; charset=utf-8")], html).into_response())
}
