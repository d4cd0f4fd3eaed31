//! Lab and imaging results (issue 5) as FHIR R4: DiagnosticReport and Observation read,
//! search (by patient, code, date) and create. The JSON shapes are `tiercare_fhir::results`;
//! the checks are the JSON API's (`routes::results::prepare_with`: the lab role posting for
//! its own facility, a known patient, `domain::results::prepare_report`), so a result refused
//! there is refused here, each domain field error at its FHIRPath ([`prepare_one`]). The
//! transaction Bundle a lab system pushes (`POST /fhir`, reports with their Observations) is
//! the general one (`super::transaction`), which checks each report with [`prepare_one`]
//! before anything is stored: one bad entry writes nothing.
//!
//! Reads follow the patient record's access rule (`routes::patients::readable_patient`) and
//! write an access-log row (`fhir_read_results`) before anything is served; a search needs
//! `patient`. Searches filter, sort (`_sort`), page (`_offset`, `_count`) and count (the
//! Bundle's `total`, `_summary=count`) in the store, so any number of matches pages;
//! DiagnosticReport pages by report, never splitting one over two pages.

use std::collections::HashMap;
use std::net::SocketAddr;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::get;
use serde_json::Value;
use tiercare_domain::recognition::{Catalogue, RecognitionItem};
use tiercare_domain::results::{Category, Report};
use tiercare_fhir::outcome::IssueType;
use tiercare_fhir::results::{self as fhir_results, ITEM_SYSTEM, LOINC, ParsedReport};
use tiercare_fhir::search::{DateParam, Prefix, token_matches};
use tiercare_store::{ResultQuery, ResultRecord, ResultSort, ResultSortKey};
use time::OffsetDateTime;
use uuid::Uuid;

use super::{
    FhirError, FhirResult, Params, api_error_outcome, fhir_json, issue_type, json_body, not_allowed, path_id, refused,
    with_location,
};
use crate::AppState;
use crate::error::ApiError;
use crate::extract::CurrentUser;
use crate::routes::patients::{log_access, readable_patient};
use crate::routes::results::{config, prepare_with, record_ids};

type RawQuery = Result<Query<Vec<(String, String)>>, QueryRejection>;

/// The code of every lab report (LOINC "Laboratory report").
const LAB_REPORT: &str = "11502-2";
/// The access-log action of every read here.
const READ_ACTION: &str = "fhir_read_results";

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/fhir/DiagnosticReport", get(search_reports).post(create_report).fallback(not_allowed("GET, POST")))
        .route("/fhir/DiagnosticReport/{id}", get(read_report).fallback(not_allowed("GET")))
        .route(
            "/fhir/Observation",
            get(search_observations).post(create_observation).fallback(not_allowed("GET, POST")),
        )
        .route("/fhir/Observation/{id}", get(read_observation).fallback(not_allowed("GET")))
}

fn catalogue(state: &AppState) -> &Catalogue {
    &config(state).catalogue
}

/// Stored rows as reports (rows of one report share its fields), in the order of their
/// first row.
fn reports_of(rows: Vec<ResultRecord>) -> Vec<Report> {
    let mut order: Vec<Uuid> = Vec::new();
    let mut by_id: HashMap<Uuid, Report> = HashMap::new();
    for r in rows {
        let report = by_id.entry(r.report_id).or_insert_with(|| {
            order.push(r.report_id);
            Report {
                id: r.report_id,
                region_key: r.region_key.clone(),
                patient_id: r.patient_id,
                facility_id: r.facility_id,
                facility_tier: r.facility_tier,
                lab_id: r.lab_id,
                category: r.category,
                specimen_time: r.specimen_time,
                report_time: r.report_time,
                mark: r.mark.clone(),
                imaging: r.imaging.clone(),
                entries: Vec::new(),
            }
        });
        report.entries.push(r.entry);
    }
    order.into_iter().filter_map(|id| by_id.remove(&id)).collect()
}

fn not_found(kind: &str) -> FhirError {
    FhirError::new(StatusCode::NOT_FOUND, IssueType::NotFound, format!("{kind} not found"))
}

/// The patient's record may be read by this user: log the read (before anything is served).
async fn logged_read(state: &AppState, me: &CurrentUser, patient_id: Uuid, addr: SocketAddr) -> FhirResult<()> {
    let (patient, basis) = readable_patient(state, me, patient_id, None).await?;
    log_access(state, me, &patient, READ_ACTION, basis, None, addr).await?;
    Ok(())
}

// ---------------------------------------------------------------------------------------
// read

async fn read_report(
    State(state): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    me: Result<CurrentUser, ApiError>,
    Path(id): Path<String>,
) -> FhirResult<Response> {
    let me = me?;
    let id = path_id(&id, "DiagnosticReport")?;
    let rows = state.store.report_results(id).await.map_err(ApiError::from)?;
    let Some(report) = reports_of(rows).pop() else { return Err(not_found("DiagnosticReport")) };
    logged_read(&state, &me, report.patient_id, addr).await?;
    Ok(fhir_json(StatusCode::OK, &fhir_results::diagnostic_report(&report, catalogue(&state))))
}

async fn read_observation(
    State(state): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    me: Result<CurrentUser, ApiError>,
    Path(id): Path<String>,
) -> FhirResult<Response> {
    let me = me?;
    let id = path_id(&id, "Observation")?;
    let rows = state.store.results_by_ids(&[id]).await.map_err(ApiError::from)?;
    // an imaging exam is its DiagnosticReport, not an Observation
    let rows: Vec<ResultRecord> = rows.into_iter().filter(|r| r.category == Category::Lab).collect();
    let Some(report) = reports_of(rows).pop() else { return Err(not_found("Observation")) };
    logged_read(&state, &me, report.patient_id, addr).await?;
    Ok(fhir_json(StatusCode::OK, &fhir_results::observation(&report, &report.entries[0], catalogue(&state))))
}

// ---------------------------------------------------------------------------------------
// search

/// The catalogue's items a `code` token list names (LOINC or the catalogue's local code),
/// of the kind `want` takes.
fn items_named(cat: &Catalogue, tokens: &[&str], want: impl Fn(&RecognitionItem) -> bool) -> Vec<String> {
    cat.items()
        .filter(|i| want(i))
        .filter(|i| {
            tokens.iter().any(|t| {
                token_matches(t, ITEM_SYSTEM, &i.code) || i.loinc.as_deref().is_some_and(|l| token_matches(t, LOINC, l))
            })
        })
        .map(|i| i.code.clone())
        .collect()
}

/// The date parameters as the store's specimen-time range: every value must match, each on
/// the instant the specimen was taken (its implicit range `[t, t]`), as
/// [`tiercare_fhir::search::DateParam::matches`] reads the prefixes.
fn date_filters(q: &mut ResultQuery, dates: &[DateParam]) {
    let later = |a: Option<OffsetDateTime>, b| Some(a.map_or(b, |a: OffsetDateTime| a.max(b)));
    let earlier = |a: Option<OffsetDateTime>, b| Some(a.map_or(b, |a: OffsetDateTime| a.min(b)));
    for d in dates {
        match d.prefix {
            Prefix::Eq => {
                q.since = later(q.since, d.lo);
                q.until = earlier(q.until, d.hi);
            }
            Prefix::Ne => q.except.push((d.lo, d.hi)),
            Prefix::Gt => q.since = later(q.since, d.hi),
            Prefix::Ge => q.since = later(q.since, d.lo),
            Prefix::Lt => q.until = earlier(q.until, d.lo),
            Prefix::Le => q.until = earlier(q.until, d.hi),
        }
    }
}

/// The page of `q`'s matches and their number, both cut and counted in the store: `_sort`
/// as the query's order (ahead of its own: newest specimen first), `_offset` and `_count`
/// as its offset and limit (entries; with `whole_reports`, reports); `_summary=count` reads
/// only the number.
async fn store_page(state: &AppState, p: &Params, mut q: ResultQuery) -> FhirResult<(Vec<ResultRecord>, u64)> {
    q.sort = p
        .sort()
        .iter()
        .map(|s| {
            // `Params` takes only the keys `tiercare_fhir::search::SORTS` lists for the type
            let key = if s.key == "issued" { ResultSortKey::ReportTime } else { ResultSortKey::SpecimenTime };
            ResultSort { key, descending: s.descending }
        })
        .collect();
    let total = state.store.count_results(&q).await.map_err(ApiError::from)?;
    q.offset = p.offset()? as u64;
    q.limit = p.count()?;
    if p.summary_count()? || q.offset >= total {
        return Ok((Vec::new(), total));
    }
    Ok((state.store.find_results(&q).await.map_err(ApiError::from)?, total))
}

/// The searched patient's record ids (the record and those merged into it), after the access
/// rule and its log row; `None`: no such patient (no results).
async fn searched_patient(
    state: &AppState,
    me: &CurrentUser,
    p: &Params,
    kind: &str,
    addr: SocketAddr,
) -> FhirResult<Option<Vec<Uuid>>> {
    let Some(patient) = p.reference("patient", "Patient")? else {
        return Err(FhirError::bad_search(
            IssueType::Required,
            format!("search {kind} by patient: ?patient=Patient/<id> (code and date narrow it)"),
        ));
    };
    match readable_patient(state, me, patient, None).await {
        Ok((person, basis)) => log_access(state, me, &person, READ_ACTION, basis, None, addr).await?,
        // an unknown patient has no results
        Err(e) if e.status == StatusCode::NOT_FOUND => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    Ok(Some(record_ids(state, patient).await?))
}

/// `DiagnosticReport?patient=…&code=…&result.code=…&date=…`. `code` is the report's own code
/// (R4: "the code for the report, as opposed to codes for the atomic results"): a lab
/// report's is LOINC 11502-2, an imaging report's its exam item. `result.code` (the chain
/// `result` → Observation.code) finds the lab reports with an observation of those items.
/// The store reads the matching reports whole (every observation of each).
async fn search_reports(
    State(state): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    me: Result<CurrentUser, ApiError>,
    headers: HeaderMap,
    query: RawQuery,
) -> FhirResult<Response> {
    let me = me?;
    let p = Params::read(query, &headers, "DiagnosticReport")?;
    let dates = p.dates("date")?;
    let codes = p.list("code");
    let in_results = p.list("result.code");
    let ids = searched_patient(&state, &me, &p, "DiagnosticReport", addr).await?;
    let mut q = ResultQuery { whole_reports: true, ..ResultQuery::default() };
    date_filters(&mut q, &dates);
    let lab_code = codes.as_ref().is_none_or(|c| c.iter().any(|t| token_matches(t, LOINC, LAB_REPORT)));
    let searched = match (codes.as_ref(), in_results.as_ref()) {
        (None, None) => true,
        // reports with an observation of these items: lab reports only
        (_, Some(obs)) => {
            q.item_codes = items_named(catalogue(&state), obs, |i| i.kind.is_lab());
            lab_code && !q.item_codes.is_empty()
        }
        (Some(c), None) => {
            q.item_codes = items_named(catalogue(&state), c, |i| !i.kind.is_lab());
            if lab_code {
                q.categories = vec![Category::Lab];
            }
            !q.item_codes.is_empty() || !q.categories.is_empty()
        }
    };
    let (rows, total) = match ids {
        Some(ids) if searched => {
            q.patient_ids = ids;
            store_page(&state, &p, q).await?
        }
        // no such patient, or codes that name nothing
        _ => (Vec::new(), 0),
    };
    // the store pages by report: a report's entries are all on its page
    let page = p.paged(reports_of(rows), total)?;
    let entries = page.items.iter().map(|r| fhir_results::diagnostic_report(r, catalogue(&state))).collect();
    Ok(fhir_json(StatusCode::OK, &page.bundle(&p, entries)))
}

/// `Observation?patient=…&code=…&date=…`: lab results (an imaging exam is its
/// DiagnosticReport), filtered in the store.
async fn search_observations(
    State(state): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    me: Result<CurrentUser, ApiError>,
    headers: HeaderMap,
    query: RawQuery,
) -> FhirResult<Response> {
    let me = me?;
    let p = Params::read(query, &headers, "Observation")?;
    let dates = p.dates("date")?;
    let codes = p.list("code");
    let ids = searched_patient(&state, &me, &p, "Observation", addr).await?;
    let mut q = ResultQuery::default();
    date_filters(&mut q, &dates);
    match &codes {
        None => q.categories = vec![Category::Lab],
        Some(c) => q.item_codes = items_named(catalogue(&state), c, |i| i.kind.is_lab()),
    }
    let (rows, total) = match ids {
        Some(ids) if !q.item_codes.is_empty() || !q.categories.is_empty() => {
            q.patient_ids = ids;
            store_page(&state, &p, q).await?
        }
        _ => (Vec::new(), 0),
    };
    // one report per row: each Observation is served with its report's fields
    let matches: Vec<Report> = rows.into_iter().flat_map(|r| reports_of(vec![r])).collect();
    let page = p.paged(matches, total)?;
    let entries = page.items.iter().map(|r| fhir_results::observation(r, &r.entries[0], catalogue(&state))).collect();
    Ok(fhir_json(StatusCode::OK, &page.bundle(&p, entries)))
}

// ---------------------------------------------------------------------------------------
// create

/// Check every parsed report by the JSON API's rules ([`prepare_one`]); all problems of all
/// reports, each at its element (the status of the first refused report); nothing is stored
/// here. A refusal by role (403) is answered alone.
async fn check_all(state: &AppState, me: &CurrentUser, parsed: Vec<ParsedReport>) -> FhirResult<Vec<Report>> {
    let mut reports = Vec::with_capacity(parsed.len());
    let mut refused: Option<FhirError> = None;
    for p in &parsed {
        match prepare_one(state, me, p, None).await {
            Ok(report) => reports.push(report),
            Err(e) if e.status == StatusCode::FORBIDDEN => return Err(e),
            Err(e) => match &mut refused {
                Some(first) => first.issues.extend(e.issues),
                None => refused = Some(e),
            },
        }
    }
    match refused {
        None => Ok(reports),
        Some(e) => Err(e),
    }
}

/// One parsed report checked by the JSON API's rules (`routes::results::prepare_with`: the
/// lab role, its own facility — the caller's when the resource names none —, a known patient
/// or `known`, the one registered earlier in the same transaction), each domain field error
/// at its element; nothing is stored.
pub(super) async fn prepare_one(
    state: &AppState,
    me: &CurrentUser,
    p: &ParsedReport,
    known: Option<&tiercare_domain::patient::Patient>,
) -> FhirResult<Report> {
    let mut new = p.report.clone();
    if !p.facility_named {
        new.facility_id = me.user.facility_id;
        new.lab_id = me.user.facility_id;
    }
    match prepare_with(state, me, new, known).await {
        Ok((report, _)) => Ok(report),
        // the role: nothing else to say
        Err(e) if e.status == StatusCode::FORBIDDEN => Err(e.into()),
        Err(e) => {
            let st = e.status;
            let code_of = move |code: &str| match code {
                "recognition.unknown_item" | "results.not_a_lab_item" | "results.not_an_exam" => IssueType::CodeInvalid,
                "reference.unknown" => IssueType::Value,
                c if c.ends_with(".missing") || c == "text.empty" => IssueType::Required,
                _ => issue_type(st),
            };
            Err(api_error_outcome(e, code_of, |f| p.expression(f)))
        }
    }
}

/// Store checked reports in one transaction.
async fn store(state: &AppState, reports: &[Report]) -> FhirResult<()> {
    state.store.insert_results(reports).await.map_err(ApiError::from)?;
    Ok(())
}

fn created(body: &Value, location: String) -> Response {
    with_location(fhir_json(StatusCode::CREATED, body), &location)
}

/// `POST /fhir/DiagnosticReport`: an imaging report, or a lab report with its Observations
/// contained; with `If-None-Exist`, nothing is created when the criteria match one
/// (`conditional::if_none_exist`, as for Observation).
async fn create_report(
    State(state): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    me: Result<CurrentUser, ApiError>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> FhirResult<Response> {
    let me = me?;
    let v = json_body(&headers, body)?;
    let parsed = fhir_results::parse_diagnostic_report(&v, catalogue(&state)).map_err(refused)?;
    if let Some(found) = super::conditional::if_none_exist(&state, &headers, addr, "DiagnosticReport").await? {
        return Ok(found);
    }
    let reports = check_all(&state, &me, vec![parsed]).await?;
    store(&state, &reports).await?;
    let r = &reports[0];
    Ok(created(&fhir_results::diagnostic_report(r, catalogue(&state)), format!("/fhir/DiagnosticReport/{}", r.id)))
}

/// `POST /fhir/Observation`: a lab report of one observation.
async fn create_observation(
    State(state): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    me: Result<CurrentUser, ApiError>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> FhirResult<Response> {
    let me = me?;
    let v = json_body(&headers, body)?;
    let parsed = fhir_results::parse_observation(&v, catalogue(&state)).map_err(refused)?;
    if let Some(found) = super::conditional::if_none_exist(&state, &headers, addr, "Observation").await? {
        return Ok(found);
    }
    let reports = check_all(&state, &me, vec![parsed]).await?;
    store(&state, &reports).await?;
    let r = &reports[0];
    let e = &r.entries[0];
    Ok(created(&fhir_results::observation(r, e, catalogue(&state)), format!("/fhir/Observation/{}", e.id)))
}
