//! FHIR R4 routes under `/fhir` (issue 4: referrals as ServiceRequest + Task). The JSON
//! shapes live in `tiercare-fhir`; this module only speaks HTTP and calls the same
//! functions as the JSON API (`routes::referrals`), so the rules, the party check and the
//! access log are the same.
//!
//! - `GET /fhir/ServiceRequest/{id}`, `GET /fhir/Task/{id}` (the same id: one referral)
//! - `GET /fhir/ServiceRequest?patient=&status=&requester=&performer=&_count=`
//! - `GET /fhir/Task?focus=&owner=&requester=&status=&business-status=&patient=&_count=`
//! - `POST /fhir/ServiceRequest` (create: 201, `Location: /fhir/ServiceRequest/{id}`)
//!
//! Answers are `application/fhir+json`; a POST body may be `application/fhir+json` or
//! `application/json` (else 415). Reference parameters take `Type/{id}` or the bare id;
//! `status` takes a comma list (any of). Search is strict: an unknown parameter, a
//! modifier, a repeated parameter or a bad value answers 400. `_count` is 1..=500 (default
//! 50); there is no paging yet, and `Bundle.total` is given only when the page holds every
//! match. Searches list only referrals where the user's facility is the sender or the
//! current receiver.
//!
//! Every error is an OperationOutcome: 400 unreadable JSON, a body that is not an R4
//! ServiceRequest (wrong resourceType, unknown element, wrong JSON type: issue types
//! `invalid` / `structure`) or a bad search; 401 (`login`) without a valid token; 403
//! (`forbidden`); 404 (`not-found`) for an unknown id or endpoint; 405; 409 (`conflict`);
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
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, any, get};
use serde_json::Value;
use tiercare_domain::facility::Facility;
use tiercare_domain::referral::{Referral, ReferralState};
use tiercare_fhir::outcome::{Issue, IssueType, operation_outcome};
use tiercare_fhir::referral as fhir;
use uuid::Uuid;

use crate::AppState;
use crate::error::ApiError;
use crate::extract::CurrentUser;
use crate::routes::referrals::{self, ReferralFilter};

const FHIR_JSON: &str = "application/fhir+json; charset=utf-8";
const DEFAULT_COUNT: u32 = 50;
const MAX_COUNT: u32 = 500;

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/fhir/ServiceRequest",
            get(search_service_requests).post(create_service_request).fallback(not_allowed("GET, POST")),
        )
        .route("/fhir/ServiceRequest/{id}", get(read_service_request).fallback(not_allowed("GET")))
        .route("/fhir/Task", get(search_tasks).fallback(not_allowed("GET")))
        .route("/fhir/Task/{id}", get(read_task).fallback(not_allowed("GET")))
        .route("/fhir", any(unknown_endpoint))
        .route("/fhir/{*rest}", any(unknown_endpoint))
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

fn not_allowed(allow: &'static str) -> MethodRouter<AppState> {
    any(move || async move {
        let mut resp = FhirError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            IssueType::NotSupported,
            format!("this endpoint answers {allow} only"),
        )
        .into_response();
        resp.headers_mut().insert(header::ALLOW, HeaderValue::from_static(allow));
        resp
    })
}

async fn unknown_endpoint() -> FhirError {
    FhirError::new(
        StatusCode::NOT_FOUND,
        IssueType::NotFound,
        "no such FHIR endpoint: this server offers ServiceRequest (read, search, create) and Task (read, search)",
    )
}

// ---------------------------------------------------------------------------------------
// answers

fn fhir_json(status: StatusCode, body: &Value) -> Response {
    let mut resp = (status, body.to_string()).into_response();
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(FHIR_JSON));
    resp
}

/// A resource of `r` with its version as a weak ETag.
fn resource(status: StatusCode, r: &Referral, body: &Value) -> Response {
    let mut resp = fhir_json(status, body);
    if let Ok(etag) = HeaderValue::from_str(&format!("W/\"{}\"", r.version)) {
        resp.headers_mut().insert(header::ETAG, etag);
    }
    resp
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

fn path_id(raw: &str, kind: &str) -> FhirResult<Uuid> {
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

async fn create_service_request(
    State(state): State<AppState>,
    me: Result<CurrentUser, ApiError>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> FhirResult<Response> {
    let me = me?;
    if !json_content_type(&headers) {
        return Err(FhirError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            IssueType::NotSupported,
            "send the resource as JSON: Content-Type: application/fhir+json",
        ));
    }
    let body = body.map_err(bytes_rejection)?;
    let v: Value = serde_json::from_slice(&body).map_err(|e| {
        // serde_json's syntax messages give the position, never the content
        FhirError::new(StatusCode::BAD_REQUEST, IssueType::Structure, format!("the body is not valid JSON: {e}"))
    })?;
    let input = fhir::parse_service_request(&v).map_err(|issues| {
        let malformed = issues.iter().any(|i| matches!(i.code, IssueType::Structure | IssueType::Invalid));
        let status = if malformed { StatusCode::BAD_REQUEST } else { StatusCode::UNPROCESSABLE_ENTITY };
        FhirError { status, issues }
    })?;
    let r = referrals::create_referral(&state, &me, input).await?;
    let sr = Facilities::default().service_request(&state, &r).await?;
    let mut resp = resource(StatusCode::CREATED, &r, &sr);
    if let Ok(loc) = HeaderValue::from_str(&format!("/fhir/ServiceRequest/{}", r.id)) {
        resp.headers_mut().insert(header::LOCATION, loc);
    }
    Ok(resp)
}

// ---------------------------------------------------------------------------------------
// search

/// The parameters of a search, each at most once.
struct Params(Vec<(String, String)>);

impl Params {
    fn read(query: Result<Query<Vec<(String, String)>>, QueryRejection>, allowed: &[&str]) -> FhirResult<Params> {
        let Query(pairs) = query.map_err(|e| {
            FhirError::bad_search(IssueType::Structure, format!("the query string cannot be read: {}", e.body_text()))
        })?;
        for (i, (k, v)) in pairs.iter().enumerate() {
            if !allowed.contains(&k.as_str()) {
                return Err(FhirError::bad_search(
                    IssueType::NotSupported,
                    format!("unsupported search parameter {k:?}; supported: {}", allowed.join(", ")),
                ));
            }
            if pairs[..i].iter().any(|(p, _)| p == k) {
                return Err(FhirError::bad_search(
                    IssueType::NotSupported,
                    format!("search parameter {k:?} is given twice; give it once (a comma list means any of)"),
                ));
            }
            if v.trim().is_empty() {
                return Err(FhirError::bad_search(IssueType::Value, format!("search parameter {k:?} has no value")));
            }
        }
        Ok(Params(pairs))
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == name).map(|(_, v)| v.trim())
    }

    /// A reference parameter: `Kind/{id}` or the bare id.
    fn reference(&self, name: &str, kind: &str) -> FhirResult<Option<Uuid>> {
        let Some(v) = self.get(name) else { return Ok(None) };
        let raw = v.strip_prefix(kind).and_then(|r| r.strip_prefix('/')).unwrap_or(v);
        Uuid::parse_str(raw).map(Some).map_err(|_| {
            FhirError::bad_search(IssueType::Value, format!("search parameter {name:?}: expected {kind}/<id> or <id>"))
        })
    }

    /// `status`-like parameters: a comma list of codes, each mapped to states.
    fn states(
        &self,
        name: &str,
        map: impl Fn(&str) -> Option<Vec<ReferralState>>,
    ) -> FhirResult<Option<Vec<ReferralState>>> {
        let Some(v) = self.get(name) else { return Ok(None) };
        let mut states = Vec::new();
        for code in v.split(',').map(str::trim) {
            let s = map(code).ok_or_else(|| {
                FhirError::bad_search(
                    IssueType::CodeInvalid,
                    format!("search parameter {name:?}: unknown code {code:?}"),
                )
            })?;
            states.extend(s.into_iter().filter(|s| !states.contains(s)).collect::<Vec<_>>());
        }
        Ok(Some(states))
    }

    fn count(&self) -> FhirResult<u32> {
        match self.get("_count") {
            None => Ok(DEFAULT_COUNT),
            Some(v) => match v.parse::<u32>() {
                Ok(n) if n >= 1 => Ok(n.min(MAX_COUNT)),
                _ => Err(FhirError::bad_search(
                    IssueType::Value,
                    "_count is a whole number from 1 (at most 500 are given)",
                )),
            },
        }
    }

    fn check_format(&self) -> FhirResult<()> {
        match self.get("_format") {
            None | Some("json" | "application/json" | "application/fhir+json") => Ok(()),
            Some(_) => Err(FhirError::bad_search(IssueType::NotSupported, "_format: this server answers JSON only")),
        }
    }
}

/// The absolute URL of this request (the Bundle's self link and the base of `fullUrl`).
fn self_link(headers: &HeaderMap, uri: &Uri) -> String {
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("localhost");
    let scheme = match headers.get("x-forwarded-proto").and_then(|h| h.to_str().ok()) {
        Some("https") => "https",
        _ => "http",
    };
    format!("{scheme}://{host}{uri}")
}

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

fn total(found: usize, count: u32) -> Option<u64> {
    (found < count as usize).then_some(found as u64)
}

async fn search_service_requests(
    State(state): State<AppState>,
    me: Result<CurrentUser, ApiError>,
    headers: HeaderMap,
    uri: Uri,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> FhirResult<Response> {
    let me = me?;
    let p = Params::read(query, &["patient", "status", "requester", "performer", "_count", "_format"])?;
    p.check_format()?;
    let count = p.count()?;
    let filter = ReferralFilter {
        patient_ids: p.reference("patient", "Patient")?.into_iter().collect(),
        from_facility_id: p.reference("requester", "Organization")?,
        to_facility_id: p.reference("performer", "Organization")?,
        limit: count,
        ..ReferralFilter::default()
    };
    let states = p.states("status", fhir::states_for_service_request_status)?;
    let found = run(&state, &me, filter, states).await?;
    let mut facilities = Facilities::default();
    let mut entries = Vec::with_capacity(found.len());
    for r in &found {
        entries.push(facilities.service_request(&state, r).await?);
    }
    let bundle = tiercare_fhir::bundle::searchset(entries, total(found.len(), count), &self_link(&headers, &uri));
    Ok(fhir_json(StatusCode::OK, &bundle))
}

async fn search_tasks(
    State(state): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    me: Result<CurrentUser, ApiError>,
    headers: HeaderMap,
    uri: Uri,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> FhirResult<Response> {
    let me = me?;
    let p = Params::read(
        query,
        &["focus", "owner", "requester", "status", "business-status", "patient", "_count", "_format"],
    )?;
    p.check_format()?;
    let count = p.count()?;
    let patient = p.reference("patient", "Patient")?;
    let filter = ReferralFilter {
        patient_ids: patient.into_iter().collect(),
        from_facility_id: p.reference("requester", "Organization")?,
        to_facility_id: p.reference("owner", "Organization")?,
        limit: count,
        ..ReferralFilter::default()
    };
    let states = both(
        p.states("status", fhir::states_for_task_status)?,
        p.states("business-status", |c| ReferralState::parse(c).map(|s| vec![s]))?,
    );
    let link = self_link(&headers, &uri);
    let tasks = match p.reference("focus", "ServiceRequest")? {
        // one referral: read it (party check, access log), then apply the other parameters
        Some(id) => match referrals::read_logged(&state, &me, id, Some(addr.ip().to_string())).await {
            Ok((r, history)) => {
                let wanted = states.as_ref().is_none_or(|s| s.contains(&r.state))
                    && filter.patient_ids.iter().all(|p| *p == r.patient_id)
                    && filter.from_facility_id.is_none_or(|f| f == r.from_facility_id)
                    && filter.to_facility_id.is_none_or(|f| f == r.to_facility_id);
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
    let bundle = tiercare_fhir::bundle::searchset(tasks, total(n, count), &link);
    Ok(fhir_json(StatusCode::OK, &bundle))
}
