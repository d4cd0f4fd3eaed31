//! Batch Bundles (issue 7): `POST /fhir` with a Bundle of type `batch`, as a layer on the
//! `/fhir` route (a `transaction` goes on to its handler, `super::transaction`, all or nothing). Each entry is
//! its own request through the server's own routes ([`Internal`]: the same user, address
//! and rules, each route's own store transaction and access-log rows), one after another
//! in the Bundle's order; one entry failing does not stop or undo the others. The answer is a
//! `batch-response` Bundle (200) with, per entry in order, `response.status` ("201
//! Created"), `location`, `etag`, the resource answered, or `response.outcome` (the
//! entry's OperationOutcome).
//!
//! Refused whole (401 without a valid sign-in; 400/422, nothing done): a Bundle that is not one (structure), more than
//! [`MAX_ENTRIES`] entries, and entries that reference each other's `fullUrl` — a batch's
//! entries are independent (R4 Bundle: no interdependencies), so such a Bundle must be sent
//! as a transaction (expression `Bundle.type`). An entry without `request`, with an unknown
//! method, or that is itself a batch or transaction gets a 400 outcome of its own.

use std::net::SocketAddr;

use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
use tiercare_fhir::outcome::{Issue, IssueType, operation_outcome};

use super::include::Internal;
use super::{FhirError, bytes_rejection, fhir_json, json_content_type};
use crate::AppState;
use crate::extract::CurrentUser;

/// Most entries one batch may hold.
pub(crate) const MAX_ENTRIES: usize = 500;

/// The layer: a `batch` Bundle posted to `/fhir` is processed here; anything else passes on.
pub(crate) async fn layer(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if req.method() != Method::POST || req.uri().path().trim_end_matches('/') != "/fhir" {
        return next.run(req).await;
    }
    if !json_content_type(req.headers()) {
        return next.run(req).await;
    }
    let (parts, body) = req.into_parts();
    // read as the handler would (the server's body limit holds)
    let bytes = match Bytes::from_request(Request::from_parts(parts.clone(), body), &()).await {
        Ok(b) => b,
        Err(rej) => return bytes_rejection(rej).into_response(),
    };
    let is_batch =
        serde_json::from_slice::<Value>(&bytes).ok().filter(|v| v["resourceType"] == "Bundle" && v["type"] == "batch");
    let Some(bundle) = is_batch else {
        return next.run(Request::from_parts(parts, Body::from(bytes))).await;
    };
    // signed in first (each entry is then checked by its own route)
    let mut auth = parts.clone();
    if let Err(e) = CurrentUser::from_request_parts(&mut auth, &state).await {
        return FhirError::from(e).into_response();
    }
    let addr = parts.extensions.get::<ConnectInfo<SocketAddr>>().copied();
    match batch(&state, &parts.headers, addr, &bundle).await {
        Ok(v) => fhir_json(StatusCode::OK, &v),
        Err(e) => e.into_response(),
    }
}

fn refuse(status: StatusCode, code: IssueType, expression: &str, text: impl Into<String>) -> FhirError {
    FhirError { status, issues: vec![Issue::error(code, Some(expression), text)] }
}

/// Every string value in `v` (the references of a resource among them).
fn strings<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
    match v {
        Value::String(s) => out.push(s),
        Value::Array(l) => l.iter().for_each(|x| strings(x, out)),
        Value::Object(o) => o.values().for_each(|x| strings(x, out)),
        _ => {}
    }
}

/// Check the batch as a whole: entries are objects, not too many, none refers to another.
fn check(bundle: &Value) -> Result<Vec<&Value>, FhirError> {
    let entries: Vec<&Value> = match bundle.get("entry") {
        None => Vec::new(),
        Some(Value::Array(l)) => l.iter().collect(),
        Some(_) => {
            return Err(refuse(StatusCode::BAD_REQUEST, IssueType::Structure, "Bundle.entry", "entry is a list"));
        }
    };
    if entries.len() > MAX_ENTRIES {
        return Err(refuse(
            StatusCode::BAD_REQUEST,
            IssueType::TooLong,
            "Bundle.entry",
            format!("a batch holds at most {MAX_ENTRIES} entries ({} sent): split it", entries.len()),
        ));
    }
    if let Some(k) = entries.iter().position(|e| !e.is_object()) {
        return Err(refuse(
            StatusCode::BAD_REQUEST,
            IssueType::Structure,
            &format!("Bundle.entry[{k}]"),
            "an entry is an object",
        ));
    }
    let urls: Vec<(usize, &str)> =
        entries.iter().enumerate().filter_map(|(k, e)| e["fullUrl"].as_str().map(|u| (k, u))).collect();
    for (k, e) in entries.iter().enumerate() {
        let mut found = Vec::new();
        strings(&e["resource"], &mut found);
        if let Some((j, u)) = urls.iter().find(|(j, u)| *j != k && found.contains(u)) {
            return Err(refuse(
                StatusCode::UNPROCESSABLE_ENTITY,
                IssueType::BusinessRule,
                "Bundle.type",
                format!(
                    "Bundle.entry[{k}] refers to Bundle.entry[{j}] ({u}): a batch's entries are processed \
                     independently, so references between them are not resolved; send the Bundle as type \
                     transaction"
                ),
            ));
        }
    }
    Ok(entries)
}

/// `201 Created` and the like.
fn status_line(s: StatusCode) -> String {
    format!("{} {}", s.as_u16(), s.canonical_reason().unwrap_or(""))
}

/// An entry answered by an outcome only.
fn entry_error(status: StatusCode, code: IssueType, expression: String, text: &str) -> Value {
    let outcome = operation_outcome(&[Issue::error(code, Some(&expression), text)]);
    json!({ "response": { "status": status_line(status), "outcome": outcome } })
}

/// Process the entries, each on its own; the batch-response Bundle.
async fn batch(
    state: &AppState,
    headers: &axum::http::HeaderMap,
    addr: Option<ConnectInfo<SocketAddr>>,
    bundle: &Value,
) -> Result<Value, FhirError> {
    let entries = check(bundle)?;
    let base = super::params::base_url(headers);
    let internal = Internal::new(state, headers, addr);
    let mut out = Vec::with_capacity(entries.len());
    for (k, e) in entries.iter().enumerate() {
        out.push(one(&internal, &base, k, e).await);
    }
    let mut b = Map::new();
    b.insert("resourceType".into(), json!("Bundle"));
    b.insert("type".into(), json!("batch-response"));
    b.insert("entry".into(), Value::Array(out));
    Ok(Value::Object(b))
}

/// The request headers an entry's `request` may carry.
const CONDITIONAL: [(&str, header::HeaderName); 4] = [
    ("ifNoneExist", header::HeaderName::from_static("if-none-exist")),
    ("ifMatch", header::IF_MATCH),
    ("ifNoneMatch", header::IF_NONE_MATCH),
    ("ifModifiedSince", header::IF_MODIFIED_SINCE),
];

/// Process entry `k`.
async fn one(internal: &Internal, base: &str, k: usize, e: &Value) -> Value {
    let at = |what: &str| format!("Bundle.entry[{k}].{what}");
    let (Some(method), Some(url)) = (e["request"]["method"].as_str(), e["request"]["url"].as_str()) else {
        return entry_error(
            StatusCode::BAD_REQUEST,
            IssueType::Required,
            at("request"),
            "an entry needs request.method and request.url",
        );
    };
    let method = match method {
        "GET" => Method::GET,
        "HEAD" => Method::HEAD,
        "POST" => Method::POST,
        "PUT" => Method::PUT,
        "PATCH" => Method::PATCH,
        "DELETE" => Method::DELETE,
        other => {
            return entry_error(
                StatusCode::BAD_REQUEST,
                IssueType::CodeInvalid,
                at("request.method"),
                &format!("{other:?} is not an HTTP verb of FHIR (GET, HEAD, POST, PUT, PATCH, DELETE)"),
            );
        }
    };
    // relative to the base; an absolute URL must be on this server's base
    let rel = url.strip_prefix(base).unwrap_or(url).trim_start_matches('/');
    if rel.contains("://") {
        return entry_error(
            StatusCode::BAD_REQUEST,
            IssueType::Value,
            at("request.url"),
            "request.url is relative to the FHIR base (Patient/<id>, Patient?identifier=…)",
        );
    }
    if rel.is_empty() || rel.starts_with('?') {
        return entry_error(
            StatusCode::BAD_REQUEST,
            IssueType::NotSupported,
            at("request.url"),
            "a batch entry cannot itself be a batch or a transaction",
        );
    }
    let body = match (&method, e.get("resource")) {
        (&Method::POST | &Method::PUT | &Method::PATCH, Some(r)) => Some(r),
        (&Method::POST | &Method::PUT | &Method::PATCH, None) => {
            return entry_error(
                StatusCode::BAD_REQUEST,
                IssueType::Required,
                at("resource"),
                "a POST or PUT entry carries its resource",
            );
        }
        _ => None,
    };
    let extra: Vec<(header::HeaderName, String)> = CONDITIONAL
        .iter()
        .filter_map(|(field, name)| e["request"][*field].as_str().map(|v| (name.clone(), v.to_owned())))
        .collect();
    let a = internal.call(method, rel, body, &extra).await;
    let mut response = json!({ "status": status_line(a.status) });
    if let Some(t) = a.body["meta"]["lastUpdated"].as_str() {
        // an instant, as FHIR wants it (the Last-Modified header is an HTTP date)
        response["lastModified"] = json!(t);
    }
    for (name, field) in [(header::LOCATION, "location"), (header::ETAG, "etag")] {
        if let Some(v) = a.headers.get(name).and_then(|v| v.to_str().ok()) {
            // our Location headers are /fhir/Type/id: the entry's is relative to the base
            response[field] = json!(v.strip_prefix("/fhir/").unwrap_or(v));
        }
    }
    if !a.status.is_success() {
        if a.body["resourceType"] == "OperationOutcome" {
            response["outcome"] = a.body;
        }
        return json!({ "response": response });
    }
    let mut entry = Map::new();
    if a.body.is_object() {
        if let (Some(t), Some(id)) = (a.body["resourceType"].as_str(), a.body["id"].as_str())
            && t != "Bundle"
        {
            entry.insert("fullUrl".into(), json!(format!("{base}/{t}/{id}")));
        }
        entry.insert("resource".into(), a.body);
    }
    entry.insert("response".into(), response);
    Value::Object(entry)
}
