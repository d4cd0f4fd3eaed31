//! FHIR R4 routes under `/fhir` (issue 4: referrals as ServiceRequest + Task). The JSON
//! shapes live in `tiercare-fhir`; this module only speaks HTTP and calls the same
//! functions as the JSON API (`routes::referrals`), so the rules, the party check and the
//! access log are the same.
//!
//! - `GET /fhir/ServiceRequest/{id}`, `GET /fhir/Task/{id}` (the same id: one referral)
//! - `GET /fhir/ServiceRequest?patient=&status=&requester=&performer=&_count=`
//! - `GET /fhir/Task?focus=&owner=&requester=&status=&business-status=&patient=&_count=`
//! - `POST /fhir/ServiceRequest` (create: 201, `Location: /fhir/ServiceRequest/{id}`)
//! - issue 6: `POST /fhir/Claim/$submit` (settle: 201 + `Location: /fhir/ClaimResponse/{id}`,
//!   a replay 200; `use` preauthorization/predetermination previews: 200, nothing stored),
//!   `GET /fhir/ClaimResponse/{id}` (the settlement id; its items carry the split per line,
//!   `tiercare_fhir::apportion`), `GET /fhir/Claim/{id}` (the same id: the claim as stored,
//!   `tiercare_fhir::stored_claim`), `GET /fhir/Coverage?patient=`
//!   (the patient's enrolments; logged as `read_coverage`) and `GET /fhir/Coverage/{id}`
//!   (one enrolment, the same rule and log). The Claim is read by
//!   `tiercare_fhir::claim::parse_claim` and settled by `routes::settlements::settle_bill`,
//!   the function behind `POST /api/v1/settlements`; its field errors are mapped onto the
//!   Claim by `tiercare_fhir::claim::field_expression`.
//!
//! - issue 7: `GET /fhir/metadata` (the CapabilityStatement, written from
//!   `tiercare_fhir::capability::RESOURCES`, the same table the searches take their
//!   parameters from); Patient (read, search, create: `patients`), Encounter (search by
//!   patient), Organization and Practitioner (read, search), PractitionerRole (search:
//!   `registry`).
//! - issue 7, versions (`versions`): `ETag`/`Last-Modified` and meta on read, vread, create,
//!   update; `GET /fhir/Task/{id}/_history[/{n}]` (rebuilt from the referral's steps),
//!   `GET /fhir/ServiceRequest/{id}/_history/{n}` (the current version),
//!   `GET /fhir/Patient/{id}/_history[/{n}]` (every kept version), Claim/ClaimResponse (settled,
//!   reversed) and the types never changed (version 1) (`versions/history.rs`); `_lastUpdated`
//!   and `_sort` on the referral searches; `PUT /fhir/Task/{id}` (one life-cycle step) and
//!   `PUT /fhir/Patient/{id}` (`patients`), both with `If-Match`; `If-None-Exist` on Patient
//!   create, and on ServiceRequest, DiagnosticReport and Observation create (`conditional`:
//!   the criteria run as the type's own search by the same user). PUT and DELETE elsewhere answer 405 with the reason (`not_allowed`).
//!
//! Answers are `application/fhir+json` (`format`: `_format`, `Accept` → 406 unless JSON;
//! `_pretty=true` indents); a POST body may be `application/fhir+json` or
//! `application/json` (else 415). Reference parameters take `Type/{id}` or the bare id;
//! tokens and `status` take a comma list (any of). Search parameters (`params`): one the
//! type does not declare is ignored and reported in the Bundle (an OperationOutcome entry)
//! unless the request says `Prefer: handling=strict` (then 400); a modifier, a repeated
//! parameter (dates may repeat) or a bad value answers 400. `_count` is 1..=500 (default
//! 50). The referral searches do not page yet, and give `Bundle.total` only when the page
//! holds every match; the others page with `_offset` (`next`/`previous` links), always give
//! the total, and take `_summary=count`. Referral searches list only referrals where the
//! user's facility is the sender or the current receiver.
//!
//! Every error is an OperationOutcome: 400 unreadable JSON, a body that is not an R4
//! ServiceRequest (wrong resourceType, unknown element, wrong JSON type: issue types
//! `invalid` / `structure`) or a bad search; 401 (`login`) without a valid token; 403
//! (`forbidden`); 404 (`not-found`) for an unknown id or endpoint (the latter with the
//! detail code `fhir.unknown_endpoint`); 405; 406; 409 (`conflict`);
//! 413 (`too-long`); 415; 422 for valid FHIR that our rules refuse (unsupported elements,
//! unknown codes, the domain's checks), each issue with its FHIRPath `expression` where
//! one element is at fault (the domain's field names are mapped by
//! `tiercare_fhir::referral::field_expression`).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, any, get, post};
use serde_json::Value;
use tiercare_domain::access::{self, AccessBasis};
use tiercare_domain::billing::PricedLine;
use tiercare_domain::facility::Facility;
use tiercare_domain::referral::{CHINA_TIME, Referral, ReferralState};
use tiercare_domain::role::Action;
use tiercare_fhir::capability;
use tiercare_fhir::claim::{self as fhir_claim, SettlementView, claim_response};
use tiercare_fhir::outcome::{Issue, IssueType, operation_outcome};
use tiercare_fhir::referral as fhir;
use tiercare_store::{SettlementRecord, SettlementStatus};
use uuid::Uuid;

use crate::AppState;
use crate::error::ApiError;
use crate::extract::CurrentUser;
use crate::routes::encounters::require_presence;
use crate::routes::referrals::{self, ReferralFilter};
use crate::routes::settlements::{BillRequest, settle_bill};

mod batch;
mod bulk;
mod claims;
mod clinical;
mod conditional;
mod format;
mod include;
mod params;
mod patients;
mod registry;
mod results;
mod transaction;
mod versions;

use params::Params;

const FHIR_JSON: &str = "application/fhir+json; charset=utf-8";

pub(crate) fn router(state: &AppState) -> Router<AppState> {
    Router::new()
        .route(
            "/fhir/ServiceRequest",
            get(search_service_requests).post(create_service_request).fallback(not_allowed("GET, POST")),
        )
        .route("/fhir/ServiceRequest/{id}", get(read_service_request).fallback(not_allowed("GET")))
        .route("/fhir/Task", get(search_tasks).fallback(not_allowed("GET")))
        .route("/fhir/Task/{id}", get(read_task).put(versions::update_task).fallback(not_allowed("GET, PUT")))
        .route("/fhir/Coverage", get(search_coverage).fallback(not_allowed("GET")))
        .route("/fhir/Coverage/{id}", get(read_coverage).fallback(not_allowed("GET")))
        .route("/fhir/ClaimResponse/{id}", get(read_claim_response).fallback(not_allowed("GET")))
        .route("/fhir/Claim/$submit", post(submit_claim).fallback(not_allowed("POST")))
        .route("/fhir/Claim/{id}", get(read_claim).fallback(not_allowed("GET")))
        // the same operation with its `$` percent-encoded, as some clients send it
        .route("/fhir/Claim/%24submit", post(submit_claim).fallback(not_allowed("POST")))
        .merge(registry::router())
        .merge(patients::router())
        .merge(results::router())
        .merge(versions::router())
        .merge(claims::router())
        .merge(bulk::router())
        .merge(clinical::router())
        .merge(transaction::router())
        .route("/fhir", any(unknown_endpoint))
        .route("/fhir/{*rest}", any(unknown_endpoint))
        // issue 7: version 1 of the types never changed (meta.versionId, ETag) on their reads
        .layer(axum::middleware::from_fn(versions::layer))
        // issue 7: _include/_revinclude on searches, batch Bundles on POST /fhir
        .layer(axum::middleware::from_fn_with_state(state.clone(), include::layer))
        .layer(axum::middleware::from_fn_with_state(state.clone(), batch::layer))
        .layer(axum::middleware::from_fn(format::negotiate))
        // issue 7: bulk output files are NDJSON (outside the JSON negotiation)
        .merge(bulk::files_router())
}

// ---------------------------------------------------------------------------------------
// errors

/// An error answer: an OperationOutcome with `status`.
#[derive(Debug)]
pub(crate) struct FhirError {
    status: StatusCode,
    issues: Vec<Issue>,
}

impl FhirError {
    fn new(status: StatusCode, code: IssueType, diagnostics: impl Into<String>) -> Self {
        FhirError { status, issues: vec![Issue::error(code, None, diagnostics)] }
    }
    fn bad_search(code: IssueType, diagnostics: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, diagnostics)
    }
}

type FhirResult<T> = Result<T, FhirError>;

impl IntoResponse for FhirError {
    fn into_response(self) -> Response {
        let mut resp = fhir_json(self.status, &operation_outcome(&self.issues));
        if self.status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        resp
    }
}

/// The issue type that stands for an HTTP status.
fn issue_type(status: StatusCode) -> IssueType {
    match status.as_u16() {
        401 => IssueType::Login,
        403 => IssueType::Forbidden,
        404 => IssueType::NotFound,
        409 => IssueType::Conflict,
        413 => IssueType::TooLong,
        415 => IssueType::NotSupported,
        422 => IssueType::BusinessRule,
        429 | 503 => IssueType::Transient,
        400..=499 => IssueType::Invalid,
        _ => IssueType::Exception,
    }
}

/// The JSON API's error (status, code, message, field details) as an OperationOutcome:
/// each field detail becomes an issue whose expression is the field's FHIRPath.
impl From<ApiError> for FhirError {
    fn from(e: ApiError) -> Self {
        let issues = if e.details.is_empty() {
            vec![Issue::error(issue_type(e.status), None, e.message).with_detail_code(&e.code)]
        } else {
            e.details
                .iter()
                .map(|d| {
                    let code = match d.code.as_str() {
                        "diagnosis.unknown" => IssueType::CodeInvalid,
                        "text.empty" | "diagnoses.missing" => IssueType::Required,
                        "reference.unknown" => IssueType::Value,
                        _ => issue_type(e.status),
                    };
                    let expression = fhir::field_expression(&d.field);
                    let diagnostics = match expression {
                        Some(_) => d.message.clone(),
                        None => format!("{}: {}", d.field, d.message),
                    };
                    Issue::error(code, expression.as_deref(), diagnostics).with_detail_code(&d.code)
                })
                .collect()
        };
        FhirError { status: e.status, issues }
    }
}

fn bytes_rejection(rej: BytesRejection) -> FhirError {
    if rej.status() == StatusCode::PAYLOAD_TOO_LARGE {
        FhirError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            IssueType::TooLong,
            "the request body is larger than the server accepts (see max_body_bytes)",
        )
    } else {
        FhirError::new(StatusCode::BAD_REQUEST, IssueType::Structure, "the request body could not be read")
    }
}

/// 405 for a method an endpoint does not answer; a PUT or DELETE of a resource says why the
/// type is not updated or deleted (`capability::no_update_reason`, `no_delete_reason`).
pub(crate) fn not_allowed(allow: &'static str) -> MethodRouter<AppState> {
    any(move |method: axum::http::Method, uri: axum::http::Uri| async move {
        let parts: Vec<&str> = uri.path().trim_start_matches("/fhir/").split('/').collect();
        let why = match (&method, parts.as_slice()) {
            (&axum::http::Method::DELETE, [kind, _]) => Some((*kind, capability::no_delete_reason(kind))),
            (&axum::http::Method::PUT, [kind, _]) => Some((*kind, capability::no_update_reason(kind))),
            _ => None,
        };
        let text = match why {
            Some((kind, why)) => format!("{method} of a {kind} is not offered: {why} (this endpoint answers {allow})"),
            None => format!("this endpoint answers {allow} only"),
        };
        let mut resp = FhirError::new(StatusCode::METHOD_NOT_ALLOWED, IssueType::NotSupported, text).into_response();
        resp.headers_mut().insert(header::ALLOW, HeaderValue::from_static(allow));
        resp
    })
}

/// The detail code of a request to an endpoint the CapabilityStatement does not declare
/// (as opposed to a resource that is not found).
pub(crate) const UNKNOWN_ENDPOINT: &str = "fhir.unknown_endpoint";

async fn unknown_endpoint() -> FhirError {
    FhirError {
        status: StatusCode::NOT_FOUND,
        issues: vec![
            Issue::error(
                IssueType::NotFound,
                None,
                "no such FHIR endpoint: GET /fhir/metadata lists what this server offers",
            )
            .with_detail_code(UNKNOWN_ENDPOINT),
        ],
    }
}

// ---------------------------------------------------------------------------------------
// answers

pub(crate) fn fhir_json(status: StatusCode, body: &Value) -> Response {
    let mut resp = (status, body.to_string()).into_response();
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(FHIR_JSON));
    resp
}

/// A resource of `r` with its version as a weak ETag and its last change as `Last-Modified`.
fn resource(status: StatusCode, r: &Referral, body: &Value) -> Response {
    versions::versioned(fhir_json(status, body), r.version, r.updated_at)
}

/// The facilities of the referrals being answered (looked up once each).
#[derive(Default)]
struct Facilities(HashMap<Uuid, Arc<Facility>>);

impl Facilities {
    async fn get(&mut self, state: &AppState, id: Uuid) -> FhirResult<Arc<Facility>> {
        if let Some(f) = self.0.get(&id) {
            return Ok(f.clone());
        }
        let f = referrals::facility(state, id).await?.ok_or_else(|| referrals::missing_facility(id))?;
        self.0.insert(id, f.clone());
        Ok(f)
    }

    async fn service_request(&mut self, state: &AppState, r: &Referral) -> FhirResult<Value> {
        let from = self.get(state, r.from_facility_id).await?;
        let to = self.get(state, r.to_facility_id).await?;
        Ok(fhir::service_request(r, &from, &to))
    }
}

pub(crate) fn path_id(raw: &str, kind: &str) -> FhirResult<Uuid> {
    Uuid::parse_str(raw)
        .map_err(|_| FhirError::new(StatusCode::NOT_FOUND, IssueType::NotFound, format!("{kind} not found")))
}

// ---------------------------------------------------------------------------------------
// read

async fn read_service_request(
    State(state): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    me: Result<CurrentUser, ApiError>,
    Path(id): Path<String>,
) -> FhirResult<Response> {
    let me = me?;
    let id = path_id(&id, "ServiceRequest")?;
    let (r, _) = referrals::read_logged(&state, &me, id, Some(addr.ip().to_string())).await?;
    let sr = Facilities::default().service_request(&state, &r).await?;
    Ok(resource(StatusCode::OK, &r, &sr))
}

async fn read_task(
    State(state): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    me: Result<CurrentUser, ApiError>,
    Path(id): Path<String>,
) -> FhirResult<Response> {
    let me = me?;
    let id = path_id(&id, "Task")?;
    let (r, history) = referrals::read_logged(&state, &me, id, Some(addr.ip().to_string())).await?;
    Ok(resource(StatusCode::OK, &r, &fhir::task(&r, &history)))
}

// ---------------------------------------------------------------------------------------
// create

/// `application/fhir+json` or `application/json`, parameters (charset, fhirVersion) aside.
fn json_content_type(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|m| m.trim().to_ascii_lowercase())
        .is_some_and(|m| m == "application/fhir+json" || m == "application/json")
}

/// The posted resource as JSON: 415 unless the content type is JSON, 400 when the body is
/// not JSON (or too large).
fn json_body(headers: &HeaderMap, body: Result<Bytes, BytesRejection>) -> FhirResult<Value> {
    if !json_content_type(headers) {
        return Err(FhirError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            IssueType::NotSupported,
            "send the resource as JSON: Content-Type: application/fhir+json",
        ));
    }
    let body = body.map_err(bytes_rejection)?;
    serde_json::from_slice(&body).map_err(|e| {
        // serde_json's syntax messages give the position, never the content
        FhirError::new(StatusCode::BAD_REQUEST, IssueType::Structure, format!("the body is not valid JSON: {e}"))
    })
}

/// A resource the strict reader refused: 400 when it is malformed, 422 when it is well
/// formed but its values are not acceptable.
fn refused(issues: Vec<Issue>) -> FhirError {
    let malformed = issues.iter().any(|i| matches!(i.code, IssueType::Structure | IssueType::Invalid));
    let status = if malformed { StatusCode::BAD_REQUEST } else { StatusCode::UNPROCESSABLE_ENTITY };
    FhirError { status, issues }
}

/// `POST /fhir/ServiceRequest`: a referral; with `If-None-Exist`, nothing is created when the
/// criteria match one (`conditional::if_none_exist`).
async fn create_service_request(
    State(state): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    me: Result<CurrentUser, ApiError>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> FhirResult<Response> {
    let me = me?;
    let v = json_body(&headers, body)?;
    let input = fhir::parse_service_request(&v).map_err(refused)?;
    if let Some(found) = conditional::if_none_exist(&state, &headers, addr, "ServiceRequest").await? {
        return Ok(found);
    }
    let r = referrals::create_referral(&state, &me, input).await?;
    let sr = Facilities::default().service_request(&state, &r).await?;
    Ok(with_location(resource(StatusCode::CREATED, &r, &sr), &format!("/fhir/ServiceRequest/{}", r.id)))
}

/// `resp` with a `Location` header (a created resource's URL; every id we make is a valid
/// header value, so one that is not is left out rather than failing the answer).
pub(crate) fn with_location(mut resp: Response, location: &str) -> Response {
    if let Ok(loc) = HeaderValue::from_str(location) {
        resp.headers_mut().insert(header::LOCATION, loc);
    }
    resp
}

// ---------------------------------------------------------------------------------------
// search

/// Intersect a state list from `status` with one from another parameter.
fn both(a: Option<Vec<ReferralState>>, b: Option<Vec<ReferralState>>) -> Option<Vec<ReferralState>> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.into_iter().filter(|s| b.contains(s)).collect()),
        (a, None) => a,
        (None, b) => b,
    }
}

/// Run a filter: `None` states mean any; an empty list matches nothing.
async fn run(
    state: &AppState,
    me: &CurrentUser,
    mut filter: ReferralFilter,
    states: Option<Vec<ReferralState>>,
) -> FhirResult<Vec<Referral>> {
    match states {
        Some(s) if s.is_empty() => {
            // a valid status no referral has; still only for those allowed to search
            me.require(tiercare_domain::role::Action::Refer)?;
            Ok(Vec::new())
        }
        s => {
            filter.states = s.unwrap_or_default();
            Ok(referrals::list_for_party(state, me, filter).await?)
        }
    }
}

/// How many referrals [`run`] finds without a limit (`_summary=count`): the store counts the
/// user's inbox and outbox (a referral never goes from a facility to itself).
async fn count_for_party(
    state: &AppState,
    me: &CurrentUser,
    mut filter: ReferralFilter,
    states: Option<Vec<ReferralState>>,
) -> FhirResult<u64> {
    me.require(Action::Refer)?;
    match states {
        Some(s) if s.is_empty() => return Ok(0),
        s => filter.states = s.unwrap_or_default(),
    }
    let mine = me.user.facility_id;
    let (to, from) = (filter.to_facility_id, filter.from_facility_id);
    let count = |f: ReferralFilter| async move { state.store.count_referrals(&f).await.map_err(ApiError::from) };
    if to == Some(mine) || from == Some(mine) {
        return Ok(count(filter).await?);
    }
    if to.is_some() || from.is_some() {
        return Ok(0);
    }
    let inbox = count(ReferralFilter { to_facility_id: Some(mine), ..filter.clone() }).await?;
    Ok(inbox + count(ReferralFilter { from_facility_id: Some(mine), ..filter }).await?)
}

fn total(found: usize, count: u32) -> Option<u64> {
    (found < count as usize).then_some(found as u64)
}

async fn search_service_requests(
    State(state): State<AppState>,
    me: Result<CurrentUser, ApiError>,
    headers: HeaderMap,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> FhirResult<Response> {
    let me = me?;
    let p = Params::read(query, &headers, "ServiceRequest")?;
    let count = p.count()?;
    let mut filter = ReferralFilter {
        patient_ids: p.reference("patient", "Patient")?.into_iter().collect(),
        from_facility_id: p.reference("requester", "Organization")?,
        to_facility_id: p.reference("performer", "Organization")?,
        limit: count,
        ..ReferralFilter::default()
    };
    versions::referral_search(&p, &mut filter)?;
    let states = p.states("status", fhir::states_for_service_request_status)?;
    if p.summary_count()? {
        let n = count_for_party(&state, &me, filter, states).await?;
        return Ok(fhir_json(StatusCode::OK, &p.bundle(Vec::new(), Some(n), None)));
    }
    let found = run(&state, &me, filter, states).await?;
    let mut facilities = Facilities::default();
    let mut entries = Vec::with_capacity(found.len());
    for r in &found {
        entries.push(facilities.service_request(&state, r).await?);
    }
    let bundle = p.bundle(entries, total(found.len(), count), None);
    Ok(fhir_json(StatusCode::OK, &bundle))
}

async fn search_tasks(
    State(state): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    me: Result<CurrentUser, ApiError>,
    headers: HeaderMap,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> FhirResult<Response> {
    let me = me?;
    let p = Params::read(query, &headers, "Task")?;
    let count = p.count()?;
    let patient = p.reference("patient", "Patient")?;
    let mut filter = ReferralFilter {
        patient_ids: patient.into_iter().collect(),
        from_facility_id: p.reference("requester", "Organization")?,
        to_facility_id: p.reference("owner", "Organization")?,
        limit: count,
        ..ReferralFilter::default()
    };
    let updated = versions::referral_search(&p, &mut filter)?;
    let states = both(
        p.states("status", fhir::states_for_task_status)?,
        p.states("business-status", |c| ReferralState::parse(c).map(|s| vec![s]))?,
    );
    let tasks = match p.reference("focus", "ServiceRequest")? {
        // one referral: read it (party check, access log), then apply the other parameters
        Some(id) => match referrals::read_logged(&state, &me, id, Some(addr.ip().to_string())).await {
            Ok((r, history)) => {
                let wanted = states.as_ref().is_none_or(|s| s.contains(&r.state))
                    && filter.patient_ids.iter().all(|p| *p == r.patient_id)
                    && filter.from_facility_id.is_none_or(|f| f == r.from_facility_id)
                    && filter.to_facility_id.is_none_or(|f| f == r.to_facility_id)
                    && updated.contains(r.updated_at);
                if wanted { vec![fhir::task(&r, &history)] } else { Vec::new() }
            }
            // searching does not reveal whether someone else's referral exists
            Err(e)
                if matches!(e.status, StatusCode::NOT_FOUND | StatusCode::FORBIDDEN) && e.code != "role.forbidden" =>
            {
                Vec::new()
            }
            Err(e) => return Err(e.into()),
        },
        None if p.summary_count()? => {
            let n = count_for_party(&state, &me, filter, states).await?;
            return Ok(fhir_json(StatusCode::OK, &p.bundle(Vec::new(), Some(n), None)));
        }
        None => {
            let found = run(&state, &me, filter, states).await?;
            let mut tasks = Vec::with_capacity(found.len());
            for r in &found {
                let history = state.store.referral_history(r.id).await.map_err(ApiError::from)?;
                tasks.push(fhir::task(r, &history));
            }
            tasks
        }
    };
    let n = tasks.len();
    let bundle = p.bundle(tasks, total(n, count), None);
    Ok(fhir_json(StatusCode::OK, &bundle))
}

// ---------------------------------------------------------------------------------------
// insurance (issue 6, part 8): Coverage, ClaimResponse, Claim/$submit

/// Today in China (the day an enrolment is judged current on).
fn china_today(state: &AppState) -> time::Date {
    (state.clock)().to_offset(CHINA_TIME).date()
}

/// Write an access-log row for reading the insurance data of `patient_id` (of `region_key`).
pub(crate) async fn log_read(
    state: &AppState,
    me: &CurrentUser,
    (region_key, patient_id): (&str, Uuid),
    action: &str,
    basis: AccessBasis,
    addr: SocketAddr,
) -> FhirResult<()> {
    let entry =
        crate::routes::patients::access_entry(me, region_key, patient_id, action, basis, Some(addr.ip().to_string()));
    state.store.record_access(&entry).await.map_err(ApiError::from)?;
    Ok(())
}

/// `GET /fhir/Coverage?patient=Patient/{id}`: the patient's enrolments, oldest first. The
/// rule of reading the patient's record (a care relationship or the community's policy),
/// or, as for settling, the patient is at the desk (this user identified them within the
/// last 24 hours); the read is logged (`read_coverage`).
async fn search_coverage(
    State(state): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    me: Result<CurrentUser, ApiError>,
    headers: HeaderMap,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> FhirResult<Response> {
    let me = me?;
    let p = Params::read(query, &headers, "Coverage")?;
    me.require(Action::ReadPatientRecord)?;
    let patient = match (p.reference("patient", "Patient")?, p.reference("beneficiary", "Patient")?) {
        (Some(a), Some(b)) if a != b => Vec::new(),
        (Some(a), _) | (None, Some(a)) => vec![a],
        (None, None) => {
            return Err(FhirError::bad_search(
                IssueType::Required,
                "search Coverage by patient: ?patient=Patient/<id> (or beneficiary)",
            ));
        }
    };
    let mut entries = Vec::new();
    if let Some(&id) = patient.first()
        && let Some(person) = state.store.get_patient(id).await.map_err(ApiError::from)?
    {
        let basis = coverage_access(&state, &me, id).await?;
        let today = china_today(&state);
        let enrolments = state.store.enrolments(id).await.map_err(ApiError::from)?;
        log_read(&state, &me, (&person.region_key, id), "read_coverage", basis, addr).await?;
        entries = enrolments.iter().map(|e| tiercare_fhir::coverage::coverage(e, today)).collect();
    }
    let n = entries.len() as u64;
    let bundle = p.bundle(entries, Some(n), None);
    Ok(fhir_json(StatusCode::OK, &bundle))
}

/// Why `me` may read the insurance data of patient `id`: the rule of reading the record,
/// or the patient is at the desk (identified by this user within the last day), as for
/// settling; else 403 `access.no_relationship`.
async fn coverage_access(state: &AppState, me: &CurrentUser, id: Uuid) -> FhirResult<AccessBasis> {
    let facts = state.store.access_facts(me.user.facility_id, id).await.map_err(ApiError::from)?;
    Ok(match access::decide(facts, None) {
        Ok(b) => b,
        Err(_) => {
            require_presence(state, me, id, "access.no_relationship").await?;
            AccessBasis::Identification
        }
    })
}

/// `GET /fhir/Coverage/{id}`: one enrolment (the `id` of the Coverage search's entries),
/// with the search's rule and access-log row (`read_coverage`); 404 when there is none.
async fn read_coverage(
    State(state): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    me: Result<CurrentUser, ApiError>,
    Path(id): Path<String>,
) -> FhirResult<Response> {
    let me = me?;
    let id = path_id(&id, "Coverage")?;
    me.require(Action::ReadPatientRecord)?;
    let not_found = || FhirError::new(StatusCode::NOT_FOUND, IssueType::NotFound, "Coverage not found");
    let enrolment = state.store.enrolment(id).await.map_err(ApiError::from)?.ok_or_else(not_found)?;
    let person = state.store.get_patient(enrolment.patient_id).await.map_err(ApiError::from)?.ok_or_else(not_found)?;
    let basis = coverage_access(&state, &me, person.id).await?;
    log_read(&state, &me, (&person.region_key, person.id), "read_coverage", basis, addr).await?;
    let body = tiercare_fhir::coverage::coverage(&enrolment, china_today(&state));
    Ok(fhir_json(StatusCode::OK, &body))
}

/// The ClaimResponse of a stored settlement (`preview`: of a pre-settlement, nothing stored).
async fn claim_response_of(state: &AppState, rec: &SettlementRecord, preview: bool) -> FhirResult<Value> {
    let f = referrals::facility(state, rec.facility_id).await?;
    Ok(claim_response(&SettlementView {
        id: (!preview).then_some(rec.id),
        txn_no: (!preview).then_some(rec.txn_no.as_str()).filter(|t| !t.is_empty()),
        reversed: rec.status == SettlementStatus::Reversed,
        patient_id: rec.patient_id,
        facility_id: rec.facility_id,
        facility_name: f.as_deref().map(|f| f.name.as_str()),
        claim: &rec.claim,
        split: &rec.split,
        created_at: rec.created_at,
    }))
}

/// `GET /fhir/ClaimResponse/{id}` (the settlement id), read by [`read_settlement`]'s rule.
async fn read_claim_response(
    State(state): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    me: Result<CurrentUser, ApiError>,
    Path(id): Path<String>,
) -> FhirResult<Response> {
    let rec = read_settlement(&state, me, &id, "ClaimResponse", addr).await?;
    let body = claim_response_of(&state, &rec, false).await?;
    Ok(versions::settlement_answer(StatusCode::OK, body, &rec))
}

/// `GET /fhir/Claim/{id}` (the settlement id): the claim as submitted and stored, with the
/// same rule and log as its ClaimResponse (`read_settlement`). `insurance[0].coverage` is
/// the patient's enrolment of the claim's scheme and insured region valid on the day of care.
async fn read_claim(
    State(state): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    me: Result<CurrentUser, ApiError>,
    Path(id): Path<String>,
) -> FhirResult<Response> {
    let rec = read_settlement(&state, me, &id, "Claim", addr).await?;
    let body = stored_claim_of(&state, &rec).await?;
    Ok(versions::settlement_answer(StatusCode::OK, body, &rec))
}

/// The Claim of a stored settlement (as `GET /fhir/Claim/{id}` and the Claim search answer it).
pub(crate) async fn stored_claim_of(state: &AppState, rec: &SettlementRecord) -> FhirResult<Value> {
    let c = &rec.claim;
    let enrolments = state.store.enrolments(rec.patient_id).await.map_err(ApiError::from)?;
    let coverage_id = enrolments
        .iter()
        .filter(|e| e.scheme == c.scheme && e.insured_region == c.insured_region)
        .filter(|e| e.valid_from <= c.date && e.valid_to.is_none_or(|to| c.date <= to))
        .max_by_key(|e| e.valid_from)
        .map(|e| e.id);
    let f = referrals::facility(state, rec.facility_id).await?;
    Ok(tiercare_fhir::stored_claim::claim(&tiercare_fhir::stored_claim::StoredClaim {
        id: rec.id,
        txn_no: &rec.txn_no,
        reversed: rec.status == SettlementStatus::Reversed,
        patient_id: rec.patient_id,
        facility_id: rec.facility_id,
        facility_name: f.as_deref().map(|f| f.name.as_str()),
        encounter_id: rec.encounter_id,
        coverage_id,
        claim: c,
        items: &rec.items,
        created_at: rec.created_at,
    }))
}

/// A stored settlement read as `kind` (Claim, ClaimResponse): a settlement clerk reads its
/// own facility's settlements; insurance officers and system administrators any; community
/// administrators those of their community's facilities (the JSON API's rule,
/// `routes::settlements::may_read_facility`). The read is logged (`read_settlement`).
async fn read_settlement(
    state: &AppState,
    me: Result<CurrentUser, ApiError>,
    id: &str,
    kind: &str,
    addr: SocketAddr,
) -> FhirResult<SettlementRecord> {
    let me = me?;
    let id = path_id(id, kind)?;
    if !me.may(Action::Settle) && !me.may(Action::ReadSettlementReports) {
        me.require(Action::Settle)?;
    }
    let Some(rec) = state.store.get_settlement(id).await.map_err(ApiError::from)? else {
        return Err(FhirError::new(StatusCode::NOT_FOUND, IssueType::NotFound, format!("{kind} not found")));
    };
    let basis = crate::routes::settlements::may_read_facility(state, &me, rec.facility_id).await?;
    log_read(state, &me, (&rec.region_key, rec.patient_id), "read_settlement", basis, addr).await?;
    Ok(rec)
}

/// The JSON API's refusal of a bill as an OperationOutcome: each field detail at its
/// place in the Claim (`lines[2].unit_price_fen` → `Claim.item[2].unitPrice`).
fn claim_error(e: ApiError) -> FhirError {
    let status = e.status;
    let code_of = |code: &str| match code {
        "settlement.unknown_item" | "settlement.unknown_code" | "catalogue.unknown" => IssueType::CodeInvalid,
        "settlement.txn_conflict" | "settlement.encounter_settled" => IssueType::Conflict,
        "reference.unknown" => IssueType::Value,
        _ => issue_type(status),
    };
    api_error_outcome(e, code_of, fhir_claim::field_expression)
}

/// A JSON API refusal as an OperationOutcome: one issue per field detail (or one for the
/// whole refusal), typed by `code_of` (the detail's code), at the element `expression_of`
/// names for the detail's JSON field (the field is kept in the text when it names none).
pub(crate) fn api_error_outcome(
    e: ApiError,
    code_of: impl Fn(&str) -> IssueType,
    expression_of: impl Fn(&str) -> Option<String>,
) -> FhirError {
    let issues = if e.details.is_empty() {
        vec![Issue::error(code_of(&e.code), None, e.message).with_detail_code(&e.code)]
    } else {
        e.details
            .iter()
            .map(|d| {
                let expression = expression_of(&d.field);
                let diagnostics = match expression {
                    Some(_) => d.message.clone(),
                    None => format!("{}: {}", d.field, d.message),
                };
                Issue::error(code_of(&d.code), expression.as_deref(), diagnostics).with_detail_code(&d.code)
            })
            .collect()
    };
    FhirError { status: e.status, issues }
}

/// `POST /fhir/Claim/$submit`: settle a bill (`use` `claim`: 201 with the new
/// ClaimResponse and `Location`, or 200 with the first one when the identifier was used for
/// the same bill before) or preview it (`use` `preauthorization`/`predetermination`: 200,
/// nothing stored). The same function as `POST /api/v1/settlements` (and `/preview`), so
/// the rules, the role, the relationship check and the idempotency are the same.
async fn submit_claim(
    State(state): State<AppState>,
    me: Result<CurrentUser, ApiError>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> FhirResult<Response> {
    let me = me?;
    me.require(Action::Settle)?;
    let v = json_body(&headers, body)?;
    let input = fhir_claim::parse_claim(&v).map_err(refused)?;
    if input.provider_id.is_some_and(|p| p != me.user.facility_id) {
        return Err(FhirError {
            status: StatusCode::FORBIDDEN,
            issues: vec![
                Issue::error(
                    IssueType::Forbidden,
                    Some("Claim.provider"),
                    "a claim is submitted by the facility of care: yours",
                )
                .with_detail_code("settlement.other_facility"),
            ],
        });
    }
    if let Some(cov) = input.coverage_id
        && state.store.get_patient(input.patient_id).await.map_err(ApiError::from)?.is_some()
    {
        // the enrolments are the patient's data: the desk's relationship first (an unknown
        // patient is left to the settlement's own check, which names Claim.patient)
        require_presence(&state, &me, input.patient_id, "settlement.no_relationship").await?;
        let day = input.date.unwrap_or_else(|| china_today(&state));
        let enrolments = state.store.enrolments(input.patient_id).await.map_err(ApiError::from)?;
        let valid =
            enrolments.iter().any(|e| e.id == cov && e.valid_from <= day && e.valid_to.is_none_or(|to| day <= to));
        if !valid {
            return Err(FhirError {
                status: StatusCode::UNPROCESSABLE_ENTITY,
                issues: vec![
                    Issue::error(
                        IssueType::BusinessRule,
                        Some("Claim.insurance[0].coverage"),
                        "this Coverage is not the patient's enrolment valid on the day of care (see GET /fhir/Coverage?patient=…)",
                    )
                    .with_detail_code("settlement.coverage"),
                ],
            });
        }
    }
    let bill = BillRequest {
        txn_no: input.txn_no,
        patient_id: input.patient_id,
        encounter_id: input.encounter_id,
        setting: input.setting,
        date: input.date,
        arrival: input.arrival,
        lines: input
            .lines
            .into_iter()
            .map(|l| PricedLine { code: l.code, quantity: l.quantity, unit_price_fen: l.unit_price_fen })
            .collect(),
    };
    let settled = settle_bill(&state, &me, &bill, !input.preview).await.map_err(claim_error)?;
    let body = claim_response_of(&state, &settled.record, input.preview).await?;
    if input.preview {
        return Ok(fhir_json(StatusCode::OK, &body));
    }
    // the stored settlement's current version (meta, ETag), as a read answers it
    if settled.replayed {
        return Ok(versions::settlement_answer(StatusCode::OK, body, &settled.record));
    }
    let created = versions::settlement_answer(StatusCode::CREATED, body, &settled.record);
    Ok(with_location(created, &format!("/fhir/ClaimResponse/{}", settled.record.id)))
}
