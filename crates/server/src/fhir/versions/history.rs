//! Earlier versions and instance history (issue 7) of the types other than the referral's:
//!
//! - Patient: every change (update, merge, unmerge) keeps the version it replaces
//!   (`Store::patient_versions`, migration 0017): `GET /fhir/Patient/{id}/_history/{n}` and
//!   `GET /fhir/Patient/{id}/_history`, by the read's rule and log (`fhir_read_patient`).
//! - Claim and ClaimResponse: a settlement is version 1 as settled and version 2 once
//!   reversed, both rebuilt from the stored settlement (its `reversed_at`); read, vread and
//!   history carry the version (the read's rule and log, `read_settlement`).
//! - the types whose records never change once stored (`capability::NEVER_CHANGED`): one
//!   version, `1`. One generic layer for all of them: vread and history call the type's own
//!   read through the server's router as the same user (`include::Internal`), so the read's
//!   rule and access-log row are exactly the read's, and the resource is the read's with
//!   `meta.versionId` `1`; [`layer`] gives their reads `ETag: W/"1"`.
//!
//! A history Bundle ([`history_bundle`]) lists the versions newest first, each with its
//! `fullUrl`, the resource (with its meta), `request` (POST of the type for version 1, PUT of
//! the instance for each later one) and `response` (status, `etag`, `lastModified` when the
//! version's time is known).

use std::net::SocketAddr;

use axum::Router;
use axum::extract::{ConnectInfo, Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::middleware::Next;
use axum::response::Response;
use axum::routing::get;
use serde_json::{Value, json};
use tiercare_fhir::capability::NEVER_CHANGED;
use tiercare_store::{SettlementRecord, SettlementStatus};
use time::OffsetDateTime;

use super::super::include::Internal;
use super::super::{FhirResult, fhir_json, not_allowed, path_id};
use super::{etag, instant, no_version, version_id, versioned, with_meta};
use crate::AppState;
use crate::error::ApiError;
use crate::extract::CurrentUser;

pub(super) fn router() -> Router<AppState> {
    let mut r = Router::new()
        .route("/fhir/Patient/{id}/_history", get(patient_history).fallback(not_allowed("GET")))
        .route("/fhir/Patient/{id}/_history/{vid}", get(vread_patient).fallback(not_allowed("GET")));
    for kind in ["Claim", "ClaimResponse"] {
        r = r
            .route(&format!("/fhir/{kind}/{{id}}/_history"), get(settlement_history).fallback(not_allowed("GET")))
            .route(
                &format!("/fhir/{kind}/{{id}}/_history/{{vid}}"),
                get(vread_settlement).fallback(not_allowed("GET")),
            );
    }
    for kind in NEVER_CHANGED {
        r = r
            .route(&format!("/fhir/{kind}/{{id}}/_history"), get(unchanged_history).fallback(not_allowed("GET")))
            .route(&format!("/fhir/{kind}/{{id}}/_history/{{vid}}"), get(vread_unchanged).fallback(not_allowed("GET")));
    }
    r
}

/// One version of a resource, for a history Bundle.
pub(super) struct Version {
    pub(super) n: i64,
    pub(super) resource: Value,
    /// When this version was made, if known.
    pub(super) at: Option<OffsetDateTime>,
}

/// The history Bundle of resource `kind`/`id`: `versions` newest first.
pub(super) fn history_bundle(headers: &HeaderMap, kind: &str, id: &str, mut versions: Vec<Version>) -> Response {
    versions.sort_by_key(|v| std::cmp::Reverse(v.n));
    let base = super::super::params::base_url(headers);
    let entries: Vec<Value> = versions
        .into_iter()
        .map(|v| {
            let (method, url, status) = if v.n == 1 {
                ("POST", kind.to_owned(), "201 Created")
            } else {
                ("PUT", format!("{kind}/{id}"), "200 OK")
            };
            let mut response = json!({ "status": status, "etag": etag(v.n) });
            if let Some(at) = v.at {
                response["lastModified"] = json!(instant(at));
            }
            json!({
                "fullUrl": format!("{base}/{kind}/{id}"),
                "resource": v.resource,
                "request": { "method": method, "url": url },
                "response": response,
            })
        })
        .collect();
    let bundle = json!({
        "resourceType": "Bundle",
        "type": "history",
        "total": entries.len(),
        "link": [{ "relation": "self", "url": format!("{base}/{kind}/{id}/_history") }],
        "entry": entries,
    });
    fhir_json(StatusCode::OK, &bundle)
}

/// The type named by a `/fhir/{kind}/…` path, among `kinds`.
fn kind_of(uri: &Uri, kinds: &[&'static str]) -> Option<&'static str> {
    let first = uri.path().strip_prefix("/fhir/")?.split('/').next()?;
    kinds.iter().copied().find(|k| *k == first)
}

// ---------------------------------------------------------------------------------------
// Patient

/// `GET /fhir/Patient/{id}/_history/{vid}`: any kept version, by the read's rule and log;
/// one never made or not kept (replaced before migration 0017): 404.
async fn vread_patient(
    State(state): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    me: Result<CurrentUser, ApiError>,
    Path((id, vid)): Path<(String, String)>,
) -> FhirResult<Response> {
    let me = me?;
    let id = path_id(&id, "Patient")?;
    let n = version_id(&vid, "Patient")?;
    let (current, at) = super::super::patients::read_logged(&state, &me, id, "fhir_read_patient", addr).await?;
    if n == current.version {
        return Ok(super::super::patients::answer(StatusCode::OK, &current, at));
    }
    let (p, at) = state.store.get_patient_version(id, n).await.map_err(ApiError::from)?.ok_or_else(|| {
        if n < current.version {
            super::super::FhirError::new(
                StatusCode::NOT_FOUND,
                tiercare_fhir::outcome::IssueType::NotFound,
                format!(
                    "version {n} of this patient record is not kept (it was replaced before versions were kept); \
                     GET Patient/{id}/_history lists those that are"
                ),
            )
        } else {
            no_version("Patient", &vid)
        }
    })?;
    Ok(super::super::patients::answer(StatusCode::OK, &p, at))
}

/// `GET /fhir/Patient/{id}/_history`: every kept version, newest first, by the read's rule
/// and log.
async fn patient_history(
    State(state): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    me: Result<CurrentUser, ApiError>,
    headers: HeaderMap,
    Path(raw): Path<String>,
) -> FhirResult<Response> {
    let me = me?;
    let id = path_id(&raw, "Patient")?;
    super::super::patients::read_logged(&state, &me, id, "fhir_read_patient", addr).await?;
    let versions = state.store.patient_versions(id).await.map_err(ApiError::from)?;
    let versions = versions
        .into_iter()
        .map(|(p, at)| Version {
            n: p.version,
            resource: with_meta(tiercare_fhir::patient(&p), p.version, at),
            at: Some(at),
        })
        .collect();
    Ok(history_bundle(&headers, "Patient", &id.to_string(), versions))
}

// ---------------------------------------------------------------------------------------
// Claim, ClaimResponse: as settled, then reversed

/// The versions of a stored settlement, oldest first: as settled (at `created_at`), and
/// once reversed (at `reversed_at`) the record as it is.
fn settlement_versions(rec: &SettlementRecord) -> Vec<(i64, SettlementRecord, OffsetDateTime)> {
    let settled = SettlementRecord {
        status: SettlementStatus::Settled,
        reversed_at: None,
        reversal_txn_no: None,
        reversal_reason: None,
        ..rec.clone()
    };
    let mut out = vec![(1, settled, rec.created_at)];
    if rec.status == SettlementStatus::Reversed {
        out.push((2, rec.clone(), rec.reversed_at.unwrap_or(rec.created_at)));
    }
    out
}

/// The current version of a stored settlement and its time.
pub(crate) fn settlement_version(rec: &SettlementRecord) -> (i64, OffsetDateTime) {
    settlement_versions(rec).last().map_or((1, rec.created_at), |(n, _, at)| (*n, *at))
}

/// A stored settlement's Claim or ClaimResponse as answered (a read, `$submit`): with its
/// meta, `ETag` and `Last-Modified`.
pub(crate) fn settlement_answer(status: StatusCode, body: Value, rec: &SettlementRecord) -> Response {
    let (n, at) = settlement_version(rec);
    versioned(fhir_json(status, &with_meta(body, n, at)), n, at)
}

/// The resource `kind` (Claim or ClaimResponse) of settlement `rec`.
async fn settlement_resource(state: &AppState, kind: &str, rec: &SettlementRecord) -> FhirResult<Value> {
    if kind == "Claim" {
        super::super::stored_claim_of(state, rec).await
    } else {
        super::super::claim_response_of(state, rec, false).await
    }
}

/// `GET /fhir/Claim/{id}/_history/{vid}` (and ClaimResponse): version 1 as settled, 2 once
/// reversed; the read's rule and log (`read_settlement`).
async fn vread_settlement(
    State(state): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    me: Result<CurrentUser, ApiError>,
    uri: Uri,
    Path((id, vid)): Path<(String, String)>,
) -> FhirResult<Response> {
    let kind = kind_of(&uri, &["Claim", "ClaimResponse"]).unwrap_or("Claim");
    let n = version_id(&vid, kind)?;
    let rec = super::super::read_settlement(&state, me, &id, kind, addr).await?;
    let (_, r, at) =
        settlement_versions(&rec).into_iter().find(|(m, _, _)| *m == n).ok_or_else(|| no_version(kind, &vid))?;
    let body = settlement_resource(&state, kind, &r).await?;
    Ok(versioned(fhir_json(StatusCode::OK, &with_meta(body, n, at)), n, at))
}

/// `GET /fhir/Claim/{id}/_history` (and ClaimResponse): one or two versions.
async fn settlement_history(
    State(state): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    me: Result<CurrentUser, ApiError>,
    headers: HeaderMap,
    uri: Uri,
    Path(id): Path<String>,
) -> FhirResult<Response> {
    let kind = kind_of(&uri, &["Claim", "ClaimResponse"]).unwrap_or("Claim");
    let rec = super::super::read_settlement(&state, me, &id, kind, addr).await?;
    let mut versions = Vec::new();
    for (n, r, at) in settlement_versions(&rec) {
        let body = settlement_resource(&state, kind, &r).await?;
        versions.push(Version { n, resource: with_meta(body, n, at), at: Some(at) });
    }
    Ok(history_bundle(&headers, kind, &rec.id.to_string(), versions))
}

// ---------------------------------------------------------------------------------------
// the types never changed once stored: one version

/// The type's own read of `kind`/`id` as this request's user: the resource (200) or the
/// read's refusal as it answered it.
async fn read_through(
    state: &AppState,
    headers: &HeaderMap,
    addr: SocketAddr,
    kind: &str,
    id: &str,
) -> Result<Value, Response> {
    use axum::response::IntoResponse;
    // an id is FHIR's [A-Za-z0-9-.]{1,64}: anything else (a decoded `/`, say) names nothing,
    // and must not become another path of the internal call
    let fhir_id =
        !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
    if !fhir_id {
        return Err(super::super::FhirError::new(
            StatusCode::NOT_FOUND,
            tiercare_fhir::outcome::IssueType::NotFound,
            format!("{kind} not found"),
        )
        .into_response());
    }
    let internal = Internal::new(state, headers, Some(ConnectInfo(addr)));
    let a = internal.call(Method::GET, &format!("{kind}/{id}"), None, &[]).await;
    if a.status == StatusCode::OK { Ok(a.body) } else { Err(fhir_json(a.status, &a.body)) }
}

/// An answer of version 1 of a never changed resource: `ETag: W/"1"`.
fn version_one(mut resp: Response) -> Response {
    resp.headers_mut().insert(header::ETAG, HeaderValue::from_static("W/\"1\""));
    resp
}

/// A never changed resource as its version 1: the read's resource with `meta.versionId` `1`.
fn as_version_one(mut body: Value) -> Value {
    if body.is_object() {
        body["meta"]["versionId"] = json!("1");
    }
    body
}

/// `GET /fhir/{kind}/{id}/_history/{vid}` of a type never changed: version 1 is the read.
async fn vread_unchanged(
    State(state): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    uri: Uri,
    Path((id, vid)): Path<(String, String)>,
) -> Result<Response, Response> {
    use axum::response::IntoResponse;
    let kind = kind_of(&uri, NEVER_CHANGED).unwrap_or("Resource");
    let n = version_id(&vid, kind).map_err(IntoResponse::into_response)?;
    let body = read_through(&state, &headers, addr, kind, &id).await?;
    if n != 1 {
        return Err(no_version(kind, &vid).into_response());
    }
    Ok(version_one(fhir_json(StatusCode::OK, &as_version_one(body))))
}

/// `GET /fhir/{kind}/{id}/_history` of a type never changed: one entry, its creation.
async fn unchanged_history(
    State(state): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    uri: Uri,
    Path(id): Path<String>,
) -> Result<Response, Response> {
    let kind = kind_of(&uri, NEVER_CHANGED).unwrap_or("Resource");
    let body = read_through(&state, &headers, addr, kind, &id).await?;
    let id = body["id"].as_str().unwrap_or(&id).to_owned();
    Ok(history_bundle(&headers, kind, &id, vec![Version { n: 1, resource: as_version_one(body), at: None }]))
}

/// Whether `path` is the read of an instance of a type never changed (`/fhir/{kind}/{id}`).
fn unchanged_read(path: &str) -> bool {
    let Some(rest) = path.strip_prefix("/fhir/") else { return false };
    let mut parts = rest.split('/');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(kind), Some(id), None) => NEVER_CHANGED.contains(&kind) && !id.is_empty() && !id.starts_with(['$', '_']),
        _ => false,
    }
}

/// The layer giving the reads of the types never changed their version: `ETag: W/"1"`
/// (the body as the read wrote it: searches and reads stay as they were, and no body is
/// parsed again; vread and history carry `meta.versionId`). Every other answer passes.
pub(in crate::fhir) async fn layer(req: Request, next: Next) -> Response {
    let wanted = req.method() == Method::GET && unchanged_read(req.uri().path());
    let resp = next.run(req).await;
    if wanted && resp.status() == StatusCode::OK { version_one(resp) } else { resp }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_instance_reads_of_the_unchanged_types_are_versioned_by_the_layer() {
        let id = "0190a1b2-0000-7000-8000-000000000001";
        assert!(unchanged_read(&format!("/fhir/Observation/{id}")));
        assert!(unchanged_read(&format!("/fhir/Condition/{id}-dx-1")));
        for not in [
            format!("/fhir/Patient/{id}"),
            format!("/fhir/Claim/{id}"),
            format!("/fhir/Observation/{id}/_history/1"),
            "/fhir/Observation".to_owned(),
            "/fhir/Observation/".to_owned(),
            "/fhir/Observation/$export".to_owned(),
            "/fhir/Observation/_search".to_owned(),
        ] {
            assert!(!unchanged_read(&not), "{not}");
        }
    }
}
