//! `_include` and `_revinclude` (issue 7) for the referral, result and claim chains
//! (`tiercare_fhir::search::INCLUDES`, `REVINCLUDES`), as a layer on every `/fhir` route:
//! a `GET /fhir/{Type}?…` that names them runs the search without them, then fetches what
//! they name through the server's own routes ([`Internal`]) — a read `GET /fhir/{Target}/{id}`
//! for each referenced id (`_include`), a search `GET /fhir/{Source}?{param}={Target}/{id}`
//! for each match (`_revinclude`) — as the same user from the same address. So an included
//! resource passes the rule of its own read or search and writes the access-log row that
//! read writes (a Patient: `fhir_read_patient`; a referral: `read_referral`; results:
//! `fhir_read_results`; a settlement: `read_settlement`); one the user may not read is left
//! out and named in the Bundle's OperationOutcome entry (a warning).
//!
//! Included resources are entries with `search.mode` `include` after the matches, each
//! once (a resource that is a match is not repeated). An include the type does not offer is
//! refused (400) under `Prefer: handling=strict`, else ignored and reported; the links
//! (`self`, `next`, `previous`) carry the includes that were used, only.

use std::net::SocketAddr;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tiercare_fhir::outcome::{Issue, IssueType, Severity};
use tiercare_fhir::search::{Include, parse_include, referenced_ids};
use tower_service::Service;

use super::params::{encode, prefers_strict};
use super::{FhirError, fhir_json};
use crate::AppState;

/// Most included resources one search answers (beyond: left out, with a warning).
const MAX_INCLUDED: usize = 1_000;

/// The server's own FHIR routes, called as the user of one request (its `Authorization`,
/// `Host` and client address): what an `_include` or a batch entry is answered by.
pub(crate) struct Internal {
    router: Router,
    headers: HeaderMap,
    addr: Option<ConnectInfo<SocketAddr>>,
}

/// One internal answer: status, headers and the body as JSON (`Null` when not JSON).
pub(crate) struct Answer {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Value,
}

impl Internal {
    pub(crate) fn new(state: &AppState, headers: &HeaderMap, addr: Option<ConnectInfo<SocketAddr>>) -> Internal {
        let mut kept = HeaderMap::new();
        for name in [header::AUTHORIZATION, header::HOST] {
            if let Some(v) = headers.get(&name) {
                kept.insert(name, v.clone());
            }
        }
        Internal { router: super::router(state).with_state(state.clone()), headers: kept, addr }
    }

    /// `method` `path_and_query` (under `/fhir/`), with a JSON `body` and extra `headers`.
    pub(crate) async fn call(
        &self,
        method: Method,
        path_and_query: &str,
        body: Option<&Value>,
        extra: &[(header::HeaderName, String)],
    ) -> Answer {
        let mut req = Request::new(body.map_or_else(Body::empty, |b| Body::from(b.to_string())));
        *req.method_mut() = method;
        match uri_safe(&format!("/fhir/{}", path_and_query.trim_start_matches('/'))).parse::<Uri>() {
            Ok(uri) => *req.uri_mut() = uri,
            Err(_) => {
                return answer_error(StatusCode::BAD_REQUEST, IssueType::Invalid, "the request url cannot be read");
            }
        }
        *req.headers_mut() = self.headers.clone();
        if body.is_some() {
            req.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/fhir+json"));
        }
        for (name, value) in extra {
            if let Ok(v) = HeaderValue::from_str(value) {
                req.headers_mut().insert(name.clone(), v);
            }
        }
        if let Some(a) = self.addr {
            req.extensions_mut().insert(a);
        }
        let resp = match self.router.clone().call(req).await {
            Ok(r) => r,
            Err(never) => match never {},
        };
        let (parts, body) = resp.into_parts();
        let bytes = axum::body::to_bytes(body, usize::MAX).await.unwrap_or_default();
        Answer {
            status: parts.status,
            headers: parts.headers,
            body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        }
    }
}

/// `raw` with what a URI may not hold as is (spaces, `|`, non-ASCII…) percent-encoded; `%`
/// escapes and the delimiters `/?&=:,` are kept (an entry's url is written by hand).
fn uri_safe(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    for b in raw.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/?&=:,%+;@!$'()*".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn answer_error(status: StatusCode, code: IssueType, text: &str) -> Answer {
    let body = tiercare_fhir::outcome::operation_outcome(&[Issue::error(code, None, text)]);
    Answer { status, headers: HeaderMap::new(), body }
}

/// The first diagnostics of an OperationOutcome answer (for a warning).
pub(crate) fn diagnostics(a: &Answer) -> String {
    a.body["issue"][0]["diagnostics"].as_str().unwrap_or("").to_owned()
}

fn warning(text: String) -> Issue {
    Issue { severity: Severity::Warning, ..Issue::error(IssueType::NotSupported, None, text) }
}

/// The layer: searches naming `_include`/`_revinclude` get them; everything else passes.
pub(crate) async fn layer(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let wanted = req.method() == Method::GET
        && req.uri().query().is_some_and(|q| q.contains("_include") || q.contains("_revinclude"));
    let kind = req.uri().path().strip_prefix("/fhir/").filter(|k| !k.is_empty() && !k.contains('/'));
    let (Some(kind), true) = (kind.map(str::to_owned), wanted) else { return next.run(req).await };
    let Ok(Query(pairs)) = Query::<Vec<(String, String)>>::try_from_uri(req.uri()) else {
        // the search itself says what is wrong with the query
        return next.run(req).await;
    };
    let strict = prefers_strict(req.headers());
    let mut rest = Vec::new();
    let mut asked: Vec<(bool, &'static Include, String)> = Vec::new();
    let mut warnings = Vec::new();
    for (k, v) in pairs {
        let rev = match k.as_str() {
            "_include" => false,
            "_revinclude" => true,
            n if n.starts_with("_include:") || n.starts_with("_revinclude:") => {
                let text = format!("{k}: modifiers of _include/_revinclude (:iterate) are not supported");
                if strict {
                    return FhirError::bad_search(IssueType::NotSupported, text).into_response();
                }
                warnings.push(warning(format!("{text}; ignored")));
                continue;
            }
            _ => {
                rest.push((k, v));
                continue;
            }
        };
        match parse_include(&kind, &v, rev) {
            Ok(i) if asked.iter().any(|(r, a, _)| *r == rev && *a == i) => {}
            Ok(i) => asked.push((rev, i, format!("{k}={}", encode(&v)))),
            Err(e) if strict => return FhirError::bad_search(IssueType::NotSupported, e).into_response(),
            Err(e) => warnings.push(warning(format!("{e}; ignored"))),
        }
    }
    let (mut parts, body) = req.into_parts();
    let query: Vec<String> = rest.iter().map(|(k, v)| format!("{}={}", encode(k), encode(v))).collect();
    let path = parts.uri.path().to_owned();
    let uri = if query.is_empty() { path } else { format!("{path}?{}", query.join("&")) };
    match uri_safe(&uri).parse::<Uri>() {
        Ok(u) => parts.uri = u,
        Err(_) => {
            return FhirError::bad_search(IssueType::Structure, "the query string cannot be read").into_response();
        }
    }
    let headers = parts.headers.clone();
    let addr = parts.extensions.get::<ConnectInfo<SocketAddr>>().copied();
    let resp = next.run(Request::from_parts(parts, body)).await;
    if resp.status() != StatusCode::OK {
        return resp;
    }
    let (rparts, rbody) = resp.into_parts();
    let bytes = axum::body::to_bytes(rbody, usize::MAX).await.unwrap_or_default();
    let Ok(mut bundle) = serde_json::from_slice::<Value>(&bytes) else {
        return Response::from_parts(rparts, Body::from(bytes));
    };
    if bundle["resourceType"] != "Bundle" {
        return Response::from_parts(rparts, Body::from(bytes));
    }
    if !asked.is_empty() {
        let internal = Internal::new(&state, &headers, addr);
        let included = include(&internal, &bundle, &asked, &mut warnings).await;
        let base = super::params::base_url(&headers);
        let entries = bundle["entry"].as_array_mut();
        let list = match entries {
            Some(l) => l,
            None => {
                bundle["entry"] = json!([]);
                bundle["entry"].as_array_mut().expect("just set")
            }
        };
        for r in included {
            let url = format!("{base}/{}/{}", r["resourceType"].as_str().unwrap_or(""), r["id"].as_str().unwrap_or(""));
            list.push(json!({ "fullUrl": url, "resource": r, "search": { "mode": "include" } }));
        }
        if list.is_empty() {
            bundle.as_object_mut().map(|o| o.remove("entry"));
        }
        let used: Vec<&str> = asked.iter().map(|(_, _, q)| q.as_str()).collect();
        for link in bundle["link"].as_array_mut().into_iter().flatten() {
            if let Some(url) = link["url"].as_str() {
                let sep = if url.contains('?') { '&' } else { '?' };
                link["url"] = json!(format!("{url}{sep}{}", used.join("&")));
            }
        }
    }
    if !warnings.is_empty() {
        add_warnings(&mut bundle, &warnings);
    }
    fhir_json(StatusCode::OK, &bundle)
}

/// What the includes `asked` name for the matches of `bundle`: each resource once, none that
/// is a match; what could not be included is added to `warnings`.
async fn include(
    internal: &Internal,
    bundle: &Value,
    asked: &[(bool, &'static Include, String)],
    warnings: &mut Vec<Issue>,
) -> Vec<Value> {
    let matches: Vec<&Value> = bundle["entry"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["search"]["mode"] == "match")
        .map(|e| &e["resource"])
        .collect();
    let mut got = Collected { seen: matches.iter().map(|r| key(r)).collect(), out: Vec::new() };
    for (rev, inc, _) in asked {
        if *rev {
            // the sources whose `param` references each match
            for m in &matches {
                let Some(id) = m["id"].as_str() else { continue };
                let q = format!("{}?{}={}/{id}&_count=500", inc.source, inc.param, inc.target);
                let a = internal.call(Method::GET, &q, None, &[]).await;
                if a.status != StatusCode::OK {
                    warnings.push(warning(format!(
                        "{} of {}/{id} were not included: {} {}",
                        inc.source,
                        inc.target,
                        a.status.as_u16(),
                        diagnostics(&a)
                    )));
                    continue;
                }
                for e in a.body["entry"].as_array().into_iter().flatten() {
                    if e["search"]["mode"] == "match" {
                        got.add(e["resource"].clone(), warnings);
                    }
                }
            }
        } else {
            let mut ids: Vec<String> = Vec::new();
            for m in &matches {
                for id in referenced_ids(m, inc.path, inc.target) {
                    if !ids.iter().any(|i| i == id) {
                        ids.push(id.to_owned());
                    }
                }
            }
            for id in ids {
                if got.seen.contains(&format!("{}/{id}", inc.target)) {
                    continue;
                }
                let a = internal.call(Method::GET, &format!("{}/{id}", inc.target), None, &[]).await;
                if a.status == StatusCode::OK {
                    got.add(a.body, warnings);
                } else {
                    warnings.push(warning(format!(
                        "{}/{id} was not included: {} {}",
                        inc.target,
                        a.status.as_u16(),
                        diagnostics(&a)
                    )));
                }
            }
        }
    }
    got.out
}

/// `Type/id` of a resource.
fn key(r: &Value) -> String {
    format!("{}/{}", r["resourceType"].as_str().unwrap_or(""), r["id"].as_str().unwrap_or(""))
}

/// The included resources so far, and every `Type/id` answered (matches too).
struct Collected {
    seen: Vec<String>,
    out: Vec<Value>,
}

impl Collected {
    fn add(&mut self, r: Value, warnings: &mut Vec<Issue>) {
        let k = key(&r);
        if self.seen.contains(&k) {
            return;
        }
        if self.out.len() >= MAX_INCLUDED {
            warnings.push(warning(format!("{k} was not included: at most {MAX_INCLUDED} resources are included")));
            return;
        }
        self.seen.push(k);
        self.out.push(r);
    }
}

/// Add `issues` to the Bundle's OperationOutcome entry (made when there is none).
fn add_warnings(bundle: &mut Value, issues: &[Issue]) {
    let outcome = tiercare_fhir::outcome::operation_outcome(issues);
    let first = bundle["entry"].as_array_mut().and_then(|l| l.first_mut());
    match first {
        Some(e) if e["search"]["mode"] == "outcome" => {
            if let (Some(have), Some(new)) = (e["resource"]["issue"].as_array_mut(), outcome["issue"].as_array()) {
                have.extend(new.iter().cloned());
            }
        }
        _ => tiercare_fhir::bundle::add_outcome(bundle, outcome),
    }
}
