//! FHIR Bulk Data Access (issue 7): the asynchronous `$export` and `$import` of the Bulk Data
//! IG's request pattern, over the pipelines of `crate::bulk` (the same as `tiercare export
//! fhir` / `tiercare import fhir`).
//!
//! - Kick-off: `GET|POST /fhir/$export` (system: the registry, patients, enrolments,
//!   encounters), `/fhir/Patient/$export` (every patient's Patient, Coverage, Encounter),
//!   `/fhir/Group/{id}/$export` (a Group is a facility — the patients registered there,
//!   `Patient.managingOrganization` — or a community — the patients registered at any of its
//!   facilities; there is no Group resource to read). Parameters (query, or a Parameters body
//!   on POST): `_outputFormat` (NDJSON only), `_type` (a comma list, may repeat), `_since` (an
//!   instant). Another parameter is refused (400) unless `Prefer: handling=lenient`.
//!   `POST /fhir/$import`: a Parameters resource (`inputFormat`, `input` with parts `type` and
//!   `url`) or the Bulk Data import "ping" (`{"inputFormat", "inputSource", "input": [{"type",
//!   "url"}]}`) naming files or directories under the server's import directory (relative
//!   paths; `..`, URLs and anything resolving outside it are refused), or NDJSON itself
//!   (`Content-Type: application/fhir+ndjson`, streamed to the job's directory, at most
//!   `ServerConfig::max_import_bytes`), whose lines may be of several resource types: each
//!   line's `resourceType` decides (`import::split_by_type`), the types are imported in
//!   dependency order, and a refused line is named `upload.ndjson` with its line in the body.
//!   Every kick-off needs `Prefer: respond-async` (else 400) and a system administrator
//!   (else 403); the answer is 202 with `Content-Location` (the status URL).
//! - Status `GET /fhir/bulk/{job}`: 202 with `X-Progress` and `Retry-After` while running;
//!   200 with the manifest when done (export: `output[]` type, url, count; import: counts per
//!   input file, `lineErrors` — the first 1,000 refused lines with file, line, expression, code,
//!   message — and `error[]` an NDJSON of OperationOutcomes, one per refused line); the error
//!   status with an OperationOutcome when the job failed. `DELETE` cancels (202; an import
//!   keeps the chunks it committed) and removes the files. Only the user who asked sees a job.
//! - Expiry: a finished job's files are kept `ServerConfig::bulk_retention` (default 24 h)
//!   from when it finished; the status answer and the downloads carry `Expires` (and the
//!   manifest the same instant as the extension [`EXPIRES_EXTENSION`]). After it the files
//!   are removed and the status URL answers 404 saying the job expired (`bulk::jobs`: the
//!   sweeper, or the first access after the instant).
//! - Files `GET /fhir/bulk/{job}/{file}`: the NDJSON the manifest names, with the same bearer
//!   token (`Accept` may be `application/fhir+ndjson`: this route is outside JSON negotiation).
//!
//! An export writes an access-log row (`bulk_export`, basis break-glass, the reason naming the
//! job) for every patient whose data it writes, before the data reaches the file.

use std::net::SocketAddr;
use std::path::{Component, Path as FsPath, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};

use axum::Router;
use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use tiercare_domain::role::Role;
use tiercare_fhir::outcome::{Issue, IssueType, operation_outcome};
use tiercare_store::FacilityFilter;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio::io::{AsyncRead, AsyncWriteExt, ReadBuf};
use uuid::Uuid;

use super::{FhirError, FhirResult, not_allowed, path_id};
use crate::AppState;
use crate::bulk::jobs::{self, Job, Kind, Refusal, State as JobState};
use crate::bulk::{BulkError, export, import};
use crate::error::ApiError;
use crate::extract::CurrentUser;

/// Refused lines listed in an import's status (all of them are in its errors file).
const LISTED_ERRORS: usize = 1000;
/// The name an uploaded NDJSON body is kept (and reported) under.
const UPLOAD: &str = "upload.ndjson";
const NDJSON: &str = "application/fhir+ndjson";
/// The manifest's `extension` key of the instant its files expire.
pub(crate) const EXPIRES_EXTENSION: &str = "http://tiercare.org/fhir/StructureDefinition/bulk-expires";

/// The manifest's expiry extension for a job finishing at `now`.
fn expiry_extension(state: &AppState, now: OffsetDateTime) -> Value {
    json!({ EXPIRES_EXTENSION: stamp(now + state.bulk.retention()) })
}

/// The kick-off and status routes (inside the JSON negotiation of `/fhir`).
pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/fhir/$export", get(export_system).post(export_system).fallback(not_allowed("GET, POST")))
        .route("/fhir/%24export", get(export_system).post(export_system).fallback(not_allowed("GET, POST")))
        .route("/fhir/Patient/$export", get(export_patients).post(export_patients).fallback(not_allowed("GET, POST")))
        .route("/fhir/Patient/%24export", get(export_patients).post(export_patients).fallback(not_allowed("GET, POST")))
        .route("/fhir/Group/{id}/$export", get(export_group).post(export_group).fallback(not_allowed("GET, POST")))
        .route("/fhir/Group/{id}/%24export", get(export_group).post(export_group).fallback(not_allowed("GET, POST")))
        .route("/fhir/$import", post(import_kick_off).fallback(not_allowed("POST")))
        .route("/fhir/%24import", post(import_kick_off).fallback(not_allowed("POST")))
        .route("/fhir/bulk/{job}", get(status).delete(cancel).fallback(not_allowed("GET, DELETE")))
}

/// The file downloads: NDJSON, so outside the JSON negotiation.
pub(crate) fn files_router() -> Router<AppState> {
    Router::new().route("/fhir/bulk/{job}/{file}", get(download).fallback(not_allowed("GET")))
}

// ---------------------------------------------------------------------------------------
// common checks

fn outcome(status: StatusCode, code: IssueType, expression: Option<&str>, text: impl Into<String>) -> FhirError {
    FhirError { status, issues: vec![Issue::error(code, expression, text)] }
}

/// A system administrator, else 403.
fn require_admin(me: &CurrentUser) -> FhirResult<()> {
    if me.user.roles.contains(&Role::SystemAdmin) {
        return Ok(());
    }
    Err(FhirError {
        status: StatusCode::FORBIDDEN,
        issues: vec![
            Issue::error(
                IssueType::Forbidden,
                None,
                "bulk export and import read and write every record: a system administrator's task",
            )
            .with_detail_code("bulk.forbidden"),
        ],
    })
}

/// The `Prefer` header's tokens.
fn prefer(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all("prefer")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split([',', ';']).map(|t| t.trim().to_ascii_lowercase()).collect::<Vec<_>>())
        .collect()
}

/// `Prefer: respond-async`, else 400; answers whether `handling=lenient` was asked for too.
fn require_async(headers: &HeaderMap) -> FhirResult<bool> {
    let tokens = prefer(headers);
    if !tokens.iter().any(|t| t == "respond-async") {
        return Err(FhirError {
            status: StatusCode::BAD_REQUEST,
            issues: vec![
                Issue::error(
                    IssueType::Required,
                    None,
                    "bulk operations are asynchronous: send the header Prefer: respond-async",
                )
                .with_detail_code("bulk.prefer_async"),
            ],
        });
    }
    Ok(tokens.iter().any(|t| t == "handling=lenient"))
}

/// This server's base as the client reached it (for the status and file URLs).
fn base(headers: &HeaderMap) -> String {
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or_default();
    if host.is_empty() || !host.bytes().all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b)) {
        return String::new();
    }
    let proto = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .filter(|p| *p == "https" || *p == "http")
        .unwrap_or("http");
    format!("{proto}://{host}")
}

fn busy(r: Refusal) -> FhirError {
    match r {
        Refusal::Busy => outcome(
            StatusCode::TOO_MANY_REQUESTS,
            IssueType::Transient,
            None,
            format!("{} bulk jobs are running: wait for one to finish, or cancel one", jobs::MAX_RUNNING),
        ),
        Refusal::SameCheckpoint => outcome(
            StatusCode::CONFLICT,
            IssueType::Conflict,
            None,
            "an import of these files is running: poll its status, or cancel it first",
        ),
        Refusal::Io(m) => outcome(StatusCode::INTERNAL_SERVER_ERROR, IssueType::Exception, None, m),
    }
}

/// 202 Accepted with the status URL (and no body).
fn accepted(headers: &HeaderMap, job: &Job) -> Response {
    let url = format!("{}/fhir/bulk/{}", base(headers), job.id);
    let mut resp = StatusCode::ACCEPTED.into_response();
    if let Ok(v) = HeaderValue::from_str(&url) {
        resp.headers_mut().insert(header::CONTENT_LOCATION, v);
    }
    resp
}

// ---------------------------------------------------------------------------------------
// $export

/// Which patients an export covers.
enum Level {
    System,
    Patient,
    Group(Uuid),
}

impl Level {
    fn name(&self) -> String {
        match self {
            Level::System => "system".into(),
            Level::Patient => "patient".into(),
            Level::Group(id) => format!("Group/{id}"),
        }
    }
    fn types(&self) -> &'static [&'static str] {
        match self {
            Level::System => &export::SYSTEM_TYPES,
            _ => &export::PATIENT_TYPES,
        }
    }
}

/// The kick-off's parameters: the query's, or (POST) a Parameters resource's.
fn export_params(
    query: &[(String, String)],
    headers: &HeaderMap,
    body: &Bytes,
) -> FhirResult<Vec<(String, String, String)>> {
    // (name, value, expression)
    let mut out: Vec<(String, String, String)> = query
        .iter()
        .map(|(k, v)| (k.clone(), v.clone(), k.clone()))
        .filter(|(k, _, _)| k != "_pretty" && k != "_format")
        .collect();
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(out);
    }
    let v = super::json_body(headers, Ok(body.clone()))?;
    if v == json!({}) {
        return Ok(out);
    }
    if v["resourceType"] != "Parameters" {
        return Err(outcome(
            StatusCode::BAD_REQUEST,
            IssueType::Invalid,
            None,
            "POST a Parameters resource (or no body): the export's parameters",
        ));
    }
    for (i, p) in v["parameter"].as_array().map(Vec::as_slice).unwrap_or_default().iter().enumerate() {
        let name = p["name"].as_str().unwrap_or_default().to_owned();
        let found = ["valueString", "valueCode", "valueInstant", "valueDateTime", "valueUri"]
            .iter()
            .find_map(|k| p[*k].as_str().map(|s| (k, s.to_owned())));
        let Some((key, value)) = found else {
            return Err(outcome(
                StatusCode::BAD_REQUEST,
                IssueType::Invalid,
                Some(&format!("Parameters.parameter[{i}]")),
                "each parameter needs a name and a string value (valueString, valueCode, valueInstant)",
            ));
        };
        out.push((name, value, format!("Parameters.parameter[{i}].{key}")));
    }
    Ok(out)
}

/// Read the parameters into a spec for `level`.
fn export_spec(params: &[(String, String, String)], level: &Level, lenient: bool) -> FhirResult<export::Spec> {
    let mut spec = export::Spec::default();
    for (name, value, at) in params {
        match name.as_str() {
            "_outputFormat" => {
                if !["application/fhir+ndjson", "application/ndjson", "ndjson"].contains(&value.as_str()) {
                    return Err(outcome(
                        StatusCode::BAD_REQUEST,
                        IssueType::NotSupported,
                        Some(at),
                        format!("_outputFormat {value:?}: this server writes application/fhir+ndjson only"),
                    ));
                }
            }
            "_type" => {
                for t in value.split(',').map(str::trim).filter(|t| !t.is_empty()) {
                    if !level.types().contains(&t) {
                        return Err(outcome(
                            StatusCode::BAD_REQUEST,
                            IssueType::NotSupported,
                            Some(at),
                            format!("_type {t}: a {} export writes {}", level.name(), level.types().join(", ")),
                        ));
                    }
                    if !spec.types.iter().any(|x| x == t) {
                        spec.types.push(t.to_owned());
                    }
                }
            }
            "_since" => match OffsetDateTime::parse(value, &Rfc3339) {
                Ok(t) => spec.since = Some(t),
                Err(_) => {
                    return Err(outcome(
                        StatusCode::BAD_REQUEST,
                        IssueType::Value,
                        Some(at),
                        "_since is an instant with its time zone: 2026-01-01T00:00:00+08:00",
                    ));
                }
            },
            _ if lenient => {}
            other => {
                return Err(outcome(
                    StatusCode::BAD_REQUEST,
                    IssueType::NotSupported,
                    Some(at),
                    format!(
                        "{other}: unsupported export parameter (supported: _outputFormat, _type, _since; \
                         Prefer: handling=lenient ignores the others)"
                    ),
                ));
            }
        }
    }
    if spec.types.is_empty() {
        spec.types = level.types().iter().map(|t| (*t).to_owned()).collect();
    }
    Ok(spec)
}

#[allow(clippy::too_many_arguments)]
async fn kick_off_export(
    state: AppState,
    me: Result<CurrentUser, ApiError>,
    addr: SocketAddr,
    uri: &axum::http::Uri,
    headers: &HeaderMap,
    query: &[(String, String)],
    body: Bytes,
    level: Level,
) -> FhirResult<Response> {
    let me = me?;
    require_admin(&me)?;
    let lenient = require_async(headers)?;
    let params = export_params(query, headers, &body)?;
    let mut spec = export_spec(&params, &level, lenient)?;
    if let Level::Group(id) = level {
        spec.home_facilities = Some(group_facilities(&state, id).await?);
    }
    let request = format!("{}{}", base(headers), uri);
    let job = state.bulk.start(Kind::Export, me.user.id, request, None, state.now()).map_err(busy)?;
    let audit = export::Audit {
        user_id: me.user.id,
        facility_id: me.user.facility_id,
        client_addr: Some(addr.ip().to_string()),
        reason: format!("FHIR bulk export {} ({} level: {})", job.id, level.name(), spec.types.join(", ")),
        action: "bulk_export".into(),
    };
    let base = base(headers);
    let task_job = job.clone();
    let (store, app) = (state.store.clone(), state.clone());
    run_job(async move {
        let job = task_job;
        let control =
            export::Control { progress: Some(job.reporter()), cancel: Some(job.cancel.clone()), audit: Some(audit) };
        let result = export::export(store.as_ref(), &job.dir, &spec, &control).await;
        let now = app.now();
        let finished = match result {
            Ok(files) => {
                let output: Vec<Value> = files
                    .iter()
                    .map(|w| {
                        json!({
                            "type": w.kind,
                            "url": format!("{base}/fhir/bulk/{}/{}.ndjson", job.id, w.kind),
                            "count": w.count,
                        })
                    })
                    .collect();
                JobState::Done {
                    manifest: json!({
                        "transactionTime": stamp(job.transaction_time),
                        "request": job.request,
                        "requiresAccessToken": true,
                        "output": output,
                        "error": [],
                        "extension": expiry_extension(&app, now),
                    }),
                    files: files.iter().map(|w| format!("{}.ndjson", w.kind)).collect(),
                }
            }
            Err(e) => failed(e),
        };
        job.finish(finished, now);
        if job.cancel.is_cancelled() {
            jobs::remove_dir(&job.dir);
        }
    });
    Ok(accepted(headers, &job))
}

fn failed(e: BulkError) -> JobState {
    match e {
        BulkError::Input(m) => JobState::Failed { status: 422, message: m },
        BulkError::Cancelled => JobState::Failed { status: 404, message: "the job was cancelled".into() },
        BulkError::Store(e) => {
            tracing::error!(error = %e, "a bulk job failed in the store");
            JobState::Failed { status: 500, message: "the store failed; see the server's log".into() }
        }
    }
}

fn stamp(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_default()
}

/// The facilities of Group `id`: a facility (itself) or a community (its facilities).
async fn group_facilities(state: &AppState, id: Uuid) -> FhirResult<std::collections::HashSet<Uuid>> {
    if let Some(f) = state.store.get_facility(id).await.map_err(ApiError::from)? {
        return Ok([f.id].into());
    }
    if state.store.get_community(id).await.map_err(ApiError::from)?.is_some() {
        let filter = FacilityFilter { community_id: Some(id), ..Default::default() };
        let list = state.store.list_facilities(&filter).await.map_err(ApiError::from)?;
        return Ok(list.iter().map(|f| f.id).collect());
    }
    Err(outcome(
        StatusCode::NOT_FOUND,
        IssueType::NotFound,
        None,
        "Group not found: a Group here is a facility (its registered patients) or a community (the patients \
         registered at its facilities), by id",
    ))
}

async fn export_system(
    State(state): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    uri: axum::http::Uri,
    me: Result<CurrentUser, ApiError>,
    headers: HeaderMap,
    Query(query): Query<Vec<(String, String)>>,
    body: Bytes,
) -> FhirResult<Response> {
    kick_off_export(state, me, addr, &uri, &headers, &query, body, Level::System).await
}

async fn export_patients(
    State(state): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    uri: axum::http::Uri,
    me: Result<CurrentUser, ApiError>,
    headers: HeaderMap,
    Query(query): Query<Vec<(String, String)>>,
    body: Bytes,
) -> FhirResult<Response> {
    kick_off_export(state, me, addr, &uri, &headers, &query, body, Level::Patient).await
}

#[allow(clippy::too_many_arguments)]
async fn export_group(
    State(state): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    uri: axum::http::Uri,
    me: Result<CurrentUser, ApiError>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Query(query): Query<Vec<(String, String)>>,
    body: Bytes,
) -> FhirResult<Response> {
    let me = me?;
    require_admin(&me)?;
    let id = path_id(&id, "Group")?;
    kick_off_export(state, Ok(me), addr, &uri, &headers, &query, body, Level::Group(id)).await
}

// ---------------------------------------------------------------------------------------
// $import

/// One named input: its text, and where it was named (the FHIRPath of its url).
struct Input {
    url: String,
    kind: Option<String>,
    at: String,
}

/// The inputs of a Parameters resource or of a Bulk Data import ping.
fn import_inputs(v: &Value) -> FhirResult<Vec<Input>> {
    let bad = |at: &str, text: &str| outcome(StatusCode::BAD_REQUEST, IssueType::Invalid, Some(at), text);
    let format_ok = |f: &str| ["application/fhir+ndjson", "application/ndjson", "ndjson"].contains(&f);
    let mut inputs = Vec::new();
    if v["resourceType"] == "Parameters" {
        for (i, p) in v["parameter"].as_array().map(Vec::as_slice).unwrap_or_default().iter().enumerate() {
            let at = format!("Parameters.parameter[{i}]");
            match p["name"].as_str() {
                Some("inputFormat") => {
                    let f = p["valueCode"].as_str().or(p["valueString"].as_str()).unwrap_or_default();
                    if !format_ok(f) {
                        return Err(bad(&format!("{at}.valueCode"), "inputFormat: application/fhir+ndjson only"));
                    }
                }
                Some("input") => {
                    let (mut url, mut kind) = (None, None);
                    for (j, part) in p["part"].as_array().map(Vec::as_slice).unwrap_or_default().iter().enumerate() {
                        let pat = format!("{at}.part[{j}]");
                        match part["name"].as_str() {
                            Some("url") => {
                                let key = ["valueUri", "valueUrl", "valueString"]
                                    .into_iter()
                                    .find(|k| part[*k].is_string())
                                    .ok_or_else(|| bad(&pat, "url: a valueUri"))?;
                                url = Some((part[key].as_str().unwrap_or_default().to_owned(), format!("{pat}.{key}")));
                            }
                            Some("type") => {
                                kind = part["valueCode"].as_str().or(part["valueString"].as_str()).map(str::to_owned)
                            }
                            _ => {}
                        }
                    }
                    let Some((url, at)) = url else { return Err(bad(&at, "an input needs a part url")) };
                    inputs.push(Input { url, kind, at });
                }
                _ => {}
            }
        }
    } else if v.get("input").is_some() {
        if let Some(f) = v["inputFormat"].as_str()
            && !format_ok(f)
        {
            return Err(bad("inputFormat", "inputFormat: application/fhir+ndjson only"));
        }
        for (i, input) in v["input"].as_array().map(Vec::as_slice).unwrap_or_default().iter().enumerate() {
            let Some(url) = input["url"].as_str() else {
                return Err(bad(&format!("input[{i}]"), "an input needs a url"));
            };
            inputs.push(Input {
                url: url.to_owned(),
                kind: input["type"].as_str().map(str::to_owned),
                at: format!("input[{i}].url"),
            });
        }
    } else {
        return Err(bad(
            "Parameters",
            "POST a Parameters resource naming the inputs (input: type, url), a Bulk Data import request, or \
             NDJSON (Content-Type: application/fhir+ndjson)",
        ));
    }
    if inputs.is_empty() {
        return Err(bad("Parameters.parameter", "no input named"));
    }
    Ok(inputs)
}

/// The file or directory `url` names under `root`: a relative path without `..` (or an
/// absolute one inside `root`), that exists.
fn resolve(root: &FsPath, input: &Input) -> FhirResult<PathBuf> {
    let refuse = |text: String| outcome(StatusCode::BAD_REQUEST, IssueType::Value, Some(&input.at), text);
    let url = input.url.strip_prefix("file://").unwrap_or(&input.url);
    if url.contains("://") {
        return Err(refuse(
            "the server fetches no URLs (an offline intranet): name a file or directory under its import directory, \
             or send the NDJSON in the request body"
                .into(),
        ));
    }
    let path = FsPath::new(url);
    if url.is_empty() || path.components().any(|c| matches!(c, Component::ParentDir)) {
        return Err(refuse("a path under the import directory, without ..".into()));
    }
    let root = root.canonicalize().map_err(|_| refuse("the import directory cannot be read".into()))?;
    let full = if path.is_absolute() { path.to_owned() } else { root.join(path) };
    let full = full
        .canonicalize()
        .map_err(|_| refuse(format!("{url}: no such file or directory under the import directory")))?;
    if !full.starts_with(&root) {
        return Err(refuse(format!("{url} is outside the import directory")));
    }
    if let Some(k) = &input.kind
        && full.is_file()
        && import::file_type(&full).map_err(|e| refuse(e.to_string()))? != *k
    {
        return Err(refuse(format!("{url} does not hold {k} resources (its file name or first line says otherwise)")));
    }
    Ok(full)
}

fn ndjson_type(headers: &HeaderMap) -> Option<bool> {
    let ct = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
    let m = ct.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    match m.as_str() {
        "application/fhir+ndjson" | "application/ndjson" | "application/x-ndjson" => Some(true),
        "application/fhir+json" | "application/json" => Some(false),
        _ => None,
    }
}

async fn import_kick_off(
    State(state): State<AppState>,
    uri: axum::http::Uri,
    me: Result<CurrentUser, ApiError>,
    headers: HeaderMap,
    body: Body,
) -> FhirResult<Response> {
    let me = me?;
    require_admin(&me)?;
    require_async(&headers)?;
    let request = format!("{}{}", base(&headers), uri);
    let Some(upload) = ndjson_type(&headers) else {
        return Err(outcome(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            IssueType::NotSupported,
            None,
            "send a Parameters resource (application/fhir+json) or NDJSON (application/fhir+ndjson)",
        ));
    };
    let (job, paths) = if upload {
        let job = state.bulk.start(Kind::Import, me.user.id, request, None, state.now()).map_err(busy)?;
        let path = job.dir.join(UPLOAD);
        if let Err(e) = receive(body, &path, state.config.max_import_bytes).await {
            state.bulk.delete(&job);
            jobs::remove_dir(&job.dir);
            return Err(e);
        }
        (job, vec![path])
    } else {
        let bytes = axum::body::to_bytes(body, state.config.max_body_bytes).await.map_err(|_| {
            outcome(StatusCode::PAYLOAD_TOO_LARGE, IssueType::TooLong, None, "the request body is too large")
        })?;
        let v = super::json_body(&headers, Ok(bytes))?;
        let inputs = import_inputs(&v)?;
        let Some(root) = &state.config.import_dir else {
            return Err(outcome(
                StatusCode::UNPROCESSABLE_ENTITY,
                IssueType::NotSupported,
                Some(&inputs[0].at),
                "this server has no import directory (TIERCARE_IMPORT_DIR): send the NDJSON in the body instead",
            ));
        };
        let paths = inputs.iter().map(|i| resolve(root, i)).collect::<FhirResult<Vec<_>>>()?;
        // every input is readable NDJSON of a known type before the job starts
        import::files(&paths)
            .map_err(|e| outcome(StatusCode::UNPROCESSABLE_ENTITY, IssueType::Invalid, None, e.to_string()))?;
        let checkpoint = import::default_checkpoint(&paths);
        let job = state.bulk.start(Kind::Import, me.user.id, request, Some(checkpoint), state.now()).map_err(busy)?;
        (job, paths)
    };
    let base = base(&headers);
    let (task_job, store, app) = (job.clone(), state.store.clone(), state.clone());
    run_job(async move {
        let job = task_job;
        let options = import::Options {
            chunk: 50_000,
            progress: Some(job.reporter()),
            cancel: Some(job.cancel.clone()),
            ..Default::default()
        };
        let result = if upload {
            // the upload's lines may mix types: one part per type, imported in dependency order
            match import::split_by_type(&paths[0], &job.dir.join("parts")) {
                Ok(split) => {
                    let _ = std::fs::remove_file(&paths[0]);
                    let options =
                        import::Options { checkpoint: Some(job.dir.join(".tiercare-import.json")), ..options };
                    import::import_parts(&store, &split, &options).await
                }
                Err(e) => Err(e),
            }
        } else {
            import::import(&store, &paths, &options).await
        };
        let now = app.now();
        let finished = match result {
            Ok(report) if report.stopped => JobState::Failed { status: 404, message: "the job was cancelled".into() },
            Ok(report) => match import_manifest(&job, &report, &base, expiry_extension(&app, now)) {
                Ok(s) => s,
                Err(e) => failed(e),
            },
            Err(e) => failed(e),
        };
        job.finish(finished, now);
        if job.cancel.is_cancelled() {
            jobs::remove_dir(&job.dir);
        }
    });
    Ok(accepted(&headers, &job))
}

/// Stream `body` into `path`, at most `limit` bytes (413 beyond, 400 when empty).
async fn receive(mut body: Body, path: &FsPath, limit: u64) -> FhirResult<()> {
    let io = |e: std::io::Error| {
        outcome(StatusCode::INTERNAL_SERVER_ERROR, IssueType::Exception, None, format!("cannot keep the upload: {e}"))
    };
    let mut file = tokio::io::BufWriter::with_capacity(1 << 20, tokio::fs::File::create(path).await.map_err(io)?);
    let mut total = 0u64;
    while let Some(frame) = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await {
        let frame = frame.map_err(|_| {
            outcome(StatusCode::BAD_REQUEST, IssueType::Structure, None, "the request body could not be read")
        })?;
        let Ok(data) = frame.into_data() else { continue };
        total += data.len() as u64;
        if total > limit {
            return Err(outcome(
                StatusCode::PAYLOAD_TOO_LARGE,
                IssueType::TooLong,
                None,
                format!(
                    "an uploaded import is at most {limit} bytes (max_import_bytes); name server-side files instead"
                ),
            ));
        }
        file.write_all(&data).await.map_err(io)?;
    }
    file.flush().await.map_err(io)?;
    if total == 0 {
        return Err(outcome(StatusCode::BAD_REQUEST, IssueType::Required, None, "the body holds no NDJSON"));
    }
    Ok(())
}

/// Run a job's future on a thread of the blocking pool (SQLite statements run on the calling
/// thread: a 50,000-line chunk would otherwise hold one of the server's few async workers for
/// a second or two).
fn run_job(job: impl std::future::Future<Output = ()> + Send + 'static) {
    let handle = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || handle.block_on(job));
}

/// The completed import's status: counts per input file, the refused lines (the first
/// [`LISTED_ERRORS`] inline, all of them in `errors.ndjson` as OperationOutcomes).
fn import_manifest(job: &Job, report: &import::Report, base: &str, extension: Value) -> Result<JobState, BulkError> {
    use crate::bulk::Context;
    let mut files = Vec::new();
    let mut error = Vec::new();
    if !report.errors.is_empty() {
        let path = job.dir.join("errors.ndjson");
        let what = || format!("cannot write {}", path.display());
        let mut w = std::io::BufWriter::new(std::fs::File::create(&path).context(what)?);
        let mut refused_lines = 0u64;
        // one OperationOutcome per refused line (the errors of a line are consecutive)
        for line in report.errors.chunk_by(|a, b| a.file == b.file && a.line == b.line) {
            let issues: Vec<Issue> = line
                .iter()
                .map(|e| {
                    let mut issue = Issue::error(
                        issue_code(&e.code),
                        e.expression.as_deref(),
                        format!("{}:{}: {}", e.file, e.line, e.message),
                    );
                    issue = issue.with_detail_code(&e.code);
                    issue
                })
                .collect();
            let mut v = operation_outcome(&issues);
            for (i, e) in line.iter().enumerate() {
                v["issue"][i]["location"] = json!([format!("{}:{}", e.file, e.line)]);
            }
            serde_json::to_writer(&mut w, &v).context(what)?;
            std::io::Write::write_all(&mut w, b"\n").context(what)?;
            refused_lines += 1;
        }
        std::io::Write::flush(&mut w).context(what)?;
        files.push("errors.ndjson".to_owned());
        error.push(json!({
            "type": "OperationOutcome",
            "url": format!("{base}/fhir/bulk/{}/errors.ndjson", job.id),
            "count": refused_lines,
        }));
    }
    let output: Vec<Value> = report
        .files
        .iter()
        .map(|f| {
            let s = &f.state;
            let mut v = json!({
                "type": s.kind,
                "inputUrl": f.name,
                "count": s.imported,
                "resources": s.resources,
                "existing": s.existing,
                "refused": s.rejected,
            });
            if let Some(why) = f.skipped {
                v["skipped"] = json!(why);
            }
            v
        })
        .collect();
    let listed: Vec<Value> = report
        .errors
        .iter()
        .take(LISTED_ERRORS)
        .map(|e| json!({ "file": e.file, "line": e.line, "expression": e.expression, "code": e.code, "message": e.message }))
        .collect();
    Ok(JobState::Done {
        manifest: json!({
            "transactionTime": stamp(job.transaction_time),
            "request": job.request,
            "requiresAccessToken": true,
            "output": output,
            "error": error,
            "lineErrors": listed,
            "lineErrorsTotal": report.errors.len(),
            "extension": extension,
        }),
        files,
    })
}

fn issue_code(code: &str) -> IssueType {
    match code {
        "json.syntax" | "fhir.structure" => IssueType::Structure,
        "fhir.not-found" => IssueType::NotFound,
        "fhir.not-supported" => IssueType::NotSupported,
        c if c.starts_with("fhir.") => IssueType::Invalid,
        _ => IssueType::BusinessRule,
    }
}

// ---------------------------------------------------------------------------------------
// status, cancel, files

/// The user's job `id` (404 when there is none, or when it expired: saying so).
async fn job_of(state: &AppState, me: Result<CurrentUser, ApiError>, id: &str) -> FhirResult<Arc<Job>> {
    let me = me?;
    let id = path_id(id, "bulk job")?;
    let job = state
        .bulk
        .get(id, me.user.id, state.now())
        .ok_or_else(|| outcome(StatusCode::NOT_FOUND, IssueType::NotFound, None, "no such bulk job (of yours)"))?;
    if let JobState::Expired { at } = job.state() {
        let hours = state.bulk.retention().whole_minutes() as f64 / 60.0;
        return Err(FhirError {
            status: StatusCode::NOT_FOUND,
            issues: vec![
                Issue::error(
                    IssueType::NotFound,
                    None,
                    format!(
                        "this bulk job expired at {}: its files are kept {hours} h after it finishes \
                         (bulk retention); start the {} again",
                        stamp(at),
                        if job.kind == Kind::Export { "export" } else { "import" }
                    ),
                )
                .with_detail_code("bulk.expired"),
            ],
        });
    }
    Ok(job)
}

/// `resp` with `Expires` (HTTP-date) when the job's files expire.
fn with_expires(state: &AppState, job: &Job, mut resp: Response) -> Response {
    if let Some(at) = job.expires_at(state.bulk.retention())
        && let Ok(v) = HeaderValue::from_str(&super::versions::http_date(at))
    {
        resp.headers_mut().insert(header::EXPIRES, v);
    }
    resp
}

async fn status(
    State(state): State<AppState>,
    me: Result<CurrentUser, ApiError>,
    Path(id): Path<String>,
) -> FhirResult<Response> {
    let job = job_of(&state, me, &id).await?;
    let resp = match job.state() {
        JobState::Running => {
            let mut resp = StatusCode::ACCEPTED.into_response();
            let h = resp.headers_mut();
            if let Ok(v) = HeaderValue::from_str(&job.progress()) {
                h.insert("x-progress", v);
            }
            h.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            resp
        }
        JobState::Done { manifest, .. } => {
            let mut resp = (StatusCode::OK, manifest.to_string()).into_response();
            resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
            resp
        }
        JobState::Failed { status, message } => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let code = if status.is_server_error() { IssueType::Exception } else { IssueType::Invalid };
            outcome(status, code, None, message).into_response()
        }
        // job_of answers an expired job
        JobState::Expired { .. } => StatusCode::NOT_FOUND.into_response(),
    };
    Ok(with_expires(&state, &job, resp))
}

async fn cancel(
    State(state): State<AppState>,
    me: Result<CurrentUser, ApiError>,
    Path(id): Path<String>,
) -> FhirResult<Response> {
    let job = job_of(&state, me, &id).await?;
    state.bulk.delete(&job);
    Ok(StatusCode::ACCEPTED.into_response())
}

async fn download(
    State(state): State<AppState>,
    me: Result<CurrentUser, ApiError>,
    Path((id, file)): Path<(String, String)>,
) -> FhirResult<Response> {
    let job = job_of(&state, me, &id).await?;
    let not_found = || outcome(StatusCode::NOT_FOUND, IssueType::NotFound, None, "no such file in this job's output");
    // only a name the manifest lists, never a path from the request
    let JobState::Done { files, .. } = job.state() else { return Err(not_found()) };
    let Some(name) = files.iter().find(|f| **f == file) else { return Err(not_found()) };
    let f = tokio::fs::File::open(job.dir.join(name)).await.map_err(|_| not_found())?;
    let mut resp = Body::from_stream(FileStream { file: f, buf: vec![0; 1 << 16] }).into_response();
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(NDJSON));
    Ok(with_expires(&state, &job, resp))
}

/// A file as a stream of chunks (the download's body: never whole in memory).
struct FileStream {
    file: tokio::fs::File,
    buf: Vec<u8>,
}

impl futures_core::Stream for FileStream {
    type Item = std::io::Result<Bytes>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        let mut rb = ReadBuf::new(&mut this.buf);
        match Pin::new(&mut this.file).poll_read(cx, &mut rb) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Err(e)) => Poll::Ready(Some(Err(e))),
            Poll::Ready(Ok(())) if rb.filled().is_empty() => Poll::Ready(None),
            Poll::Ready(Ok(())) => Poll::Ready(Some(Ok(Bytes::copy_from_slice(rb.filled())))),
        }
    }
}
