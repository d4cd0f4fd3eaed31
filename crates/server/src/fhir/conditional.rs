//! Conditional create (`If-None-Exist`, issue 7): the header holds a search's query of the
//! type being created. [`criteria`] reads it strictly (a parameter the type's search does not
//! declare, a modifier or a result parameter such as `_count` is 400 at `http.If-None-Exist`),
//! and [`several`] is the 412 when it names more than one resource. Patient decides the
//! matches itself (`patients::if_none_exist`: a person is one record whoever may read it);
//! ServiceRequest, DiagnosticReport and Observation run the criteria through the server's own
//! search of that type as the same user ([`if_none_exist`]), so exactly the search's rules,
//! its access rule and its access-log rows apply: 0 matches → create, 1 → 200 with the
//! existing resource and its `Location` (nothing written), more → 412.
//!
//! **Not atomic.** The check and the create are two steps (the search, then the create's own
//! transaction): two requests with the same criteria at the same moment can both find nothing
//! and both create. Only Patient has a key that refuses the second (one record per identity
//! number: 409); a client that retries a result or a referral should send it once at a time.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Query};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::Response;
use serde_json::Value;
use tiercare_fhir::outcome::{Issue, IssueType, Severity};

use super::include::Internal;
use super::params::encode;
use super::versions::header_error;
use super::{FhirError, FhirResult, Params, fhir_json, with_location};
use crate::AppState;

/// The header as an issue's expression.
const EXPRESSION: &str = "http.If-None-Exist";

/// Parameters that shape a search's answer rather than select (not criteria).
const NOT_CRITERIA: &[&str] = &["_count", "_offset", "_sort", "_summary", "_format", "_pretty", "_elements"];

/// The criteria of an `If-None-Exist` header: the search parameters (read strictly as a
/// search of `kind`), and the same as a query string to run.
pub(super) struct Criteria {
    pub(super) params: Params,
    pub(super) query: String,
}

fn bad(text: impl Into<String>) -> FhirError {
    header_error(StatusCode::BAD_REQUEST, IssueType::Invalid, "If-None-Exist", text.into())
}

/// Every issue of `e` located at the header (an issue that names an element keeps it).
fn at_header(e: FhirError) -> FhirError {
    FhirError {
        issues: e
            .issues
            .into_iter()
            .map(|i| Issue { expression: i.expression.or_else(|| Some(EXPRESSION.into())), ..i })
            .collect(),
        ..e
    }
}

/// The `If-None-Exist` criteria of a create of `kind` (`None`: no header). 400 when the
/// header is not a query, names no criterion, names a result parameter or `_include`, or a
/// parameter the type's search does not declare (with the supported list).
pub(super) fn criteria(headers: &HeaderMap, kind: &'static str) -> FhirResult<Option<Criteria>> {
    let Some(raw) = headers.get("if-none-exist") else { return Ok(None) };
    let raw = raw.to_str().map_err(|_| bad("If-None-Exist is not readable text"))?;
    let query = raw.trim();
    // a full URL or `Type?…` is accepted for the query it carries
    let query = query.split_once('?').map_or(query, |(_, q)| q);
    let uri: axum::http::Uri = format!("/?{query}")
        .parse()
        .map_err(|_| bad(format!("If-None-Exist is a search's query of {kind}: <parameter>=<value>&…")))?;
    let pairs = Query::<Vec<(String, String)>>::try_from_uri(&uri)
        .map_err(|_| bad(format!("If-None-Exist is a search's query of {kind}: <parameter>=<value>&…")))?;
    if pairs.0.is_empty() {
        return Err(bad(format!("If-None-Exist names no criteria: give a search's query of {kind}")));
    }
    for (k, _) in &pairs.0 {
        let name = k.split(':').next().unwrap_or(k);
        if NOT_CRITERIA.contains(&name) || name == "_include" || name == "_revinclude" {
            return Err(bad(format!("If-None-Exist: {k:?} shapes a search's answer and is no criterion")));
        }
    }
    let text: Vec<String> = pairs.0.iter().map(|(k, v)| format!("{}={}", encode(k), encode(v))).collect();
    let mut strict = HeaderMap::new();
    strict.insert("prefer", HeaderValue::from_static("handling=strict"));
    let params = Params::read(Ok(pairs), &strict, kind).map_err(at_header)?;
    Ok(Some(Criteria { params, query: text.join("&") }))
}

/// The issue type of an answered issue's `code` (by the status when it is not one of ours).
fn issue_code(code: &str, status: StatusCode) -> IssueType {
    use IssueType::*;
    [Invalid, Structure, Required, Value, NotSupported, CodeInvalid, Login, Forbidden, NotFound, Conflict, BusinessRule]
        .into_iter()
        .find(|t| t.as_str() == code)
        .unwrap_or_else(|| super::issue_type(status))
}

/// 412: the criteria match `n` resources of `kind` (`hint`: how to name one).
pub(super) fn several(n: &str, kind: &str, hint: &str) -> FhirError {
    header_error(
        StatusCode::PRECONDITION_FAILED,
        IssueType::Conflict,
        "If-None-Exist",
        format!("If-None-Exist matches {n} {kind} resources: nothing was created; {hint}"),
    )
}

/// Conditional create of `kind` by the type's own search: `None` when the request has no
/// `If-None-Exist` or its criteria match nothing (create); `Some(200)` with the one match
/// (as the search served it, `Location` its URL); 412 when several match. The search runs as
/// the user of `headers` (from `addr`), strictly, through the server's routes: its refusal
/// (400 a bad value or a missing required parameter, 403 the role) is answered as is, each
/// issue at the header.
pub(super) async fn if_none_exist(
    state: &AppState,
    headers: &HeaderMap,
    addr: SocketAddr,
    kind: &'static str,
) -> FhirResult<Option<Response>> {
    let Some(c) = criteria(headers, kind)? else { return Ok(None) };
    let internal = Internal::new(state, headers, Some(ConnectInfo(addr)));
    // two matches are enough to refuse; the total, where the search gives it, says how many
    let url = format!("{kind}?{}&_count=2", c.query);
    let a = internal
        .call(Method::GET, &url, None, &[(header::HeaderName::from_static("prefer"), "handling=strict".into())])
        .await;
    if a.status != StatusCode::OK {
        let issues = match serde_json::from_value::<Vec<Value>>(a.body["issue"].clone()) {
            Ok(list) if !list.is_empty() => list
                .iter()
                .map(|i| Issue {
                    severity: Severity::Error,
                    ..Issue::error(
                        issue_code(i["code"].as_str().unwrap_or(""), a.status),
                        Some(EXPRESSION),
                        format!(
                            "If-None-Exist, run as a {kind} search: {}",
                            i["diagnostics"].as_str().unwrap_or("refused")
                        ),
                    )
                })
                .collect(),
            _ => vec![Issue::error(IssueType::Exception, Some(EXPRESSION), format!("the {kind} search failed"))],
        };
        return Err(FhirError { status: a.status, issues });
    }
    let matches: Vec<&Value> = a.body["entry"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["search"]["mode"] == "match")
        .map(|e| &e["resource"])
        .collect();
    match matches.as_slice() {
        [] => Ok(None),
        [one] => {
            let location = format!("/fhir/{kind}/{}", one["id"].as_str().unwrap_or(""));
            Ok(Some(with_location(fhir_json(StatusCode::OK, one), &location)))
        }
        _ => {
            let n = a.body["total"].as_u64().map_or_else(|| "more than one".to_owned(), |t| t.to_string());
            Err(several(&n, kind, "narrow the criteria"))
        }
    }
}
