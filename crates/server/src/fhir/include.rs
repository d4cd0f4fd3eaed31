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
//!
//! `_include:iterate` / `_revinclude:iterate` (any include of the tables, whatever the searched
//! type: `Task?_include=Task:focus&_include:iterate=ServiceRequest:patient`) apply to the
//! matches and then, level by level, to what the previous level included, until a level adds
//! nothing (a fixed point). Bounded: at most [`MAX_DEPTH`] levels and [`MAX_INCLUDED`]
//! resources in all; either limit reached is one warning in the Bundle's OperationOutcome,
//! and nothing beyond it is read (so no access-log row is written for a resource not served).
//! Every level's resources are fetched like the first's (their own read or search, rule and
//! log row). An `:iterate` naming no include of the tables is treated like an unknown include
//! (strict: 400 with the list of those offered).

use std::net::SocketAddr;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tiercare_fhir::outcome::{Issue, IssueType, Severity};
use tiercare_fhir::search::{INCLUDES, Include, REVINCLUDES, parse_include, referenced_ids};
use tower_service::Service;

use super::params::{encode, prefers_strict};
use super::{FhirError, fhir_json};
use crate::AppState;

/// Most included resources one search answers (beyond: left out, with a warning).
pub(crate) const MAX_INCLUDED: usize = 1_000;
/// Most levels `:iterate` follows (the first level, of the matches, included).
pub(crate) const MAX_DEPTH: usize = 5;

/// How far includes are followed: levels, and resources in all.
#[derive(Debug, Clone, Copy)]
struct Limits {
    depth: usize,
    total: usize,
}

/// What an include is fetched through: a `GET` of the server's own routes ([`Internal`]).
trait Fetch {
    async fn get(&self, path_and_query: &str) -> Answer;
}

impl Fetch for Internal {
    async fn get(&self, path_and_query: &str) -> Answer {
        self.call(Method::GET, path_and_query, None, &[]).await
    }
}

/// One include asked for: `_revinclude` or not, which, the query text it was asked with, and
/// whether it iterates.
struct Asked {
    rev: bool,
    include: &'static Include,
    query: String,
    iterate: bool,
}

/// An `:iterate` include: any of the tables, whatever the searched type (`Source:param` or
/// `Source:param:Target`); the error lists every one offered.
fn parse_iterate(raw: &str, rev: bool) -> Result<&'static Include, String> {
    let table = if rev { REVINCLUDES } else { INCLUDES };
    let mut parts = raw.trim().splitn(3, ':');
    let (source, param, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""), parts.next());
    table.iter().find(|i| i.source == source && i.param == param && target.is_none_or(|t| t == i.target)).ok_or_else(
        || {
            let name = if rev { "_revinclude:iterate" } else { "_include:iterate" };
            let offered: Vec<String> = table.iter().map(Include::value).collect();
            format!("{name}={raw:?} is not a chain this server follows; supported: {}", offered.join(", "))
        },
    )
}

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
    let mut asked: Vec<Asked> = Vec::new();
    let mut warnings = Vec::new();
    for (k, v) in pairs {
        let (rev, iterate) = match k.as_str() {
            "_include" => (false, false),
            "_revinclude" => (true, false),
            "_include:iterate" => (false, true),
            "_revinclude:iterate" => (true, true),
            n if n.starts_with("_include:") || n.starts_with("_revinclude:") => {
                let text = format!("{k}: the only modifier of _include/_revinclude offered is :iterate");
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
        let parsed = if iterate { parse_iterate(&v, rev) } else { parse_include(&kind, &v, rev) };
        match parsed {
            Ok(i) => match asked.iter_mut().find(|a| a.rev == rev && a.include == i) {
                // the same include asked with and without :iterate: it iterates
                Some(a) => {
                    if iterate && !a.iterate {
                        a.iterate = true;
                        a.query = format!("{k}={}", encode(&v));
                    }
                }
                None => asked.push(Asked { rev, include: i, query: format!("{k}={}", encode(&v)), iterate }),
            },
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
        let limits = Limits { depth: MAX_DEPTH, total: MAX_INCLUDED };
        let included = include(&internal, &bundle, &asked, limits, &mut warnings).await;
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
        let used: Vec<&str> = asked.iter().map(|a| a.query.as_str()).collect();
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

/// What the includes `asked` name for the matches of `bundle`, and (`:iterate`) for what
/// they include, level by level to a fixed point within [`MAX_DEPTH`] levels and
/// [`MAX_INCLUDED`] resources: each resource once, none that is a match; what could not be
/// included is added to `warnings`.
async fn include(
    internal: &impl Fetch,
    bundle: &Value,
    asked: &[Asked],
    limits: Limits,
    warnings: &mut Vec<Issue>,
) -> Vec<Value> {
    let matches: Vec<Value> = bundle["entry"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["search"]["mode"] == "match")
        .map(|e| e["resource"].clone())
        .collect();
    let mut got =
        Collected { seen: matches.iter().map(key).collect(), out: Vec::new(), left_out: 0, max: limits.total };
    let mut level: Vec<Value> = matches;
    for depth in 0.. {
        // the first level applies every include to the matches; the next ones, the iterating
        // includes to what the level before added
        let now: Vec<&Asked> = asked.iter().filter(|a| depth == 0 || a.iterate).collect();
        let applies =
            |a: &Asked, r: &Value| r["resourceType"] == if a.rev { a.include.target } else { a.include.source };
        if level.is_empty() || !now.iter().any(|a| level.iter().any(|r| applies(a, r))) {
            break;
        }
        if depth == limits.depth {
            warnings.push(warning(format!(
                "_include:iterate stopped after {} levels: what the last level included was not followed further",
                limits.depth
            )));
            break;
        }
        let first = got.out.len();
        for a in now {
            let sources: Vec<&Value> = level.iter().filter(|r| applies(a, r)).collect();
            one_include(internal, a, &sources, &mut got, warnings).await;
        }
        level = got.out[first..].to_vec();
    }
    if got.left_out > 0 {
        warnings.push(warning(format!(
            "{} more resources were not included: at most {} resources are included in one answer",
            got.left_out, limits.total
        )));
    }
    got.out
}

/// Apply one include to `sources` (resources of its source type, or of its target type for a
/// `_revinclude`), adding what it finds to `got`.
async fn one_include(
    internal: &impl Fetch,
    a: &Asked,
    sources: &[&Value],
    got: &mut Collected,
    warnings: &mut Vec<Issue>,
) {
    let inc = a.include;
    if a.rev {
        // the sources whose `param` references each resource
        for m in sources {
            let Some(id) = m["id"].as_str() else { continue };
            if got.full() {
                got.left_out += 1;
                continue;
            }
            let q = format!("{}?{}={}/{id}&_count=500", inc.source, inc.param, inc.target);
            let ans = internal.get(&q).await;
            if ans.status != StatusCode::OK {
                warnings.push(warning(format!(
                    "{} of {}/{id} were not included: {} {}",
                    inc.source,
                    inc.target,
                    ans.status.as_u16(),
                    diagnostics(&ans)
                )));
                continue;
            }
            for e in ans.body["entry"].as_array().into_iter().flatten() {
                if e["search"]["mode"] == "match" {
                    got.add(e["resource"].clone());
                }
            }
        }
    } else {
        let mut ids: Vec<String> = Vec::new();
        for m in sources {
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
            if got.full() {
                // not read at all: a read would write an access-log row for what is not served
                got.left_out += 1;
                continue;
            }
            let ans = internal.get(&format!("{}/{id}", inc.target)).await;
            if ans.status == StatusCode::OK {
                got.add(ans.body);
            } else {
                warnings.push(warning(format!(
                    "{}/{id} was not included: {} {}",
                    inc.target,
                    ans.status.as_u16(),
                    diagnostics(&ans)
                )));
            }
        }
    }
}

/// `Type/id` of a resource.
fn key(r: &Value) -> String {
    format!("{}/{}", r["resourceType"].as_str().unwrap_or(""), r["id"].as_str().unwrap_or(""))
}

/// The included resources so far, every `Type/id` answered (matches too), and how many were
/// left out over [`MAX_INCLUDED`].
struct Collected {
    seen: Vec<String>,
    out: Vec<Value>,
    left_out: usize,
    max: usize,
}

impl Collected {
    fn full(&self) -> bool {
        self.out.len() >= self.max
    }

    fn add(&mut self, r: Value) {
        let k = key(&r);
        if self.seen.contains(&k) {
            return;
        }
        if self.full() {
            self.left_out += 1;
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

#[cfg(test)]
mod tests {
    use std::cell::RefCell;

    use super::*;

    /// A referral world: Task t{n} focuses ServiceRequest s{n}, whose subject is Patient p;
    /// Patient p is readable. Every GET is recorded.
    struct World {
        asked: RefCell<Vec<String>>,
        tasks: usize,
    }

    impl Fetch for World {
        async fn get(&self, path: &str) -> Answer {
            self.asked.borrow_mut().push(path.to_owned());
            let ok = |body: Value| Answer { status: StatusCode::OK, headers: HeaderMap::new(), body };
            if let Some(id) = path.strip_prefix("ServiceRequest/") {
                return ok(
                    json!({ "resourceType": "ServiceRequest", "id": id, "subject": { "reference": "Patient/p" } }),
                );
            }
            if path == "Patient/p" {
                return ok(json!({ "resourceType": "Patient", "id": "p" }));
            }
            if let Some(rest) = path.strip_prefix("Task?focus=ServiceRequest/") {
                let sr = rest.split('&').next().unwrap_or("");
                let n = sr.trim_start_matches('s');
                return ok(json!({ "resourceType": "Bundle", "entry": [
                    { "resource": task(n), "search": { "mode": "match" } } ] }));
            }
            answer_error(StatusCode::NOT_FOUND, IssueType::NotFound, "no such thing")
        }
    }

    fn task(n: &str) -> Value {
        json!({ "resourceType": "Task", "id": format!("t{n}"), "focus": { "reference": format!("ServiceRequest/s{n}") } })
    }

    fn bundle(w: &World) -> Value {
        let entries: Vec<Value> =
            (0..w.tasks).map(|n| json!({ "resource": task(&n.to_string()), "search": { "mode": "match" } })).collect();
        json!({ "resourceType": "Bundle", "entry": entries })
    }

    fn asked(list: &[(&str, bool)]) -> Vec<Asked> {
        list.iter()
            .map(|(q, iterate)| {
                let (k, v) = q.split_once('=').expect("k=v");
                let rev = k.starts_with("_revinclude");
                let include = if *iterate { parse_iterate(v, rev) } else { parse_include("Task", v, rev) };
                Asked { rev, include: include.expect("offered"), query: (*q).to_owned(), iterate: *iterate }
            })
            .collect()
    }

    fn keys(v: &[Value]) -> Vec<String> {
        v.iter().map(key).collect()
    }

    const WIDE: Limits = Limits { depth: MAX_DEPTH, total: MAX_INCLUDED };

    #[tokio::test]
    async fn iterate_follows_the_chain_to_a_fixed_point_and_plain_includes_do_not() {
        let w = World { asked: RefCell::new(Vec::new()), tasks: 2 };
        let mut warnings = Vec::new();
        // without :iterate the patient of the included referrals is not followed
        let got = include(&w, &bundle(&w), &asked(&[("_include=Task:focus", false)]), WIDE, &mut warnings).await;
        assert_eq!(keys(&got), ["ServiceRequest/s0", "ServiceRequest/s1"]);
        // with it: level 1 the referrals, level 2 their (one) patient, level 3 adds nothing
        let a = asked(&[("_include=Task:focus", false), ("_include:iterate=ServiceRequest:patient", true)]);
        let got = include(&w, &bundle(&w), &a, WIDE, &mut warnings).await;
        assert_eq!(keys(&got), ["ServiceRequest/s0", "ServiceRequest/s1", "Patient/p"]);
        assert!(warnings.is_empty(), "{warnings:?}");
        // the patient was read once, though both referrals name her
        assert_eq!(w.asked.borrow().iter().filter(|p| *p == "Patient/p").count(), 1);
        // a revinclude back to the Tasks finds only matches: nothing more, and it stops
        let a = asked(&[
            ("_include:iterate=Task:focus", true),
            ("_revinclude:iterate=Task:focus", true),
            ("_include:iterate=ServiceRequest:patient", true),
        ]);
        let got = include(&w, &bundle(&w), &a, WIDE, &mut warnings).await;
        assert_eq!(keys(&got), ["ServiceRequest/s0", "ServiceRequest/s1", "Patient/p"]);
        assert!(warnings.is_empty(), "{warnings:?}");
    }

    #[tokio::test]
    async fn the_depth_and_total_caps_stop_with_one_warning_and_read_nothing_beyond() {
        let a = asked(&[("_include=Task:focus", false), ("_include:iterate=ServiceRequest:patient", true)]);
        // one level: the referrals, not their patient (a warning says where it stopped)
        let w = World { asked: RefCell::new(Vec::new()), tasks: 3 };
        let mut warnings = Vec::new();
        let got = include(&w, &bundle(&w), &a, Limits { depth: 1, total: 100 }, &mut warnings).await;
        assert_eq!(keys(&got), ["ServiceRequest/s0", "ServiceRequest/s1", "ServiceRequest/s2"]);
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].diagnostics.contains("stopped after 1 levels"), "{warnings:?}");
        assert_eq!(warnings[0].severity, Severity::Warning);
        assert!(!w.asked.borrow().iter().any(|p| p == "Patient/p"), "the patient was not read");
        // two resources in all: the third referral and the patient are left out, never read
        let w = World { asked: RefCell::new(Vec::new()), tasks: 3 };
        let mut warnings = Vec::new();
        let got = include(&w, &bundle(&w), &a, Limits { depth: 5, total: 2 }, &mut warnings).await;
        assert_eq!(keys(&got), ["ServiceRequest/s0", "ServiceRequest/s1"]);
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].diagnostics.contains("2 more resources were not included"), "{warnings:?}");
        assert_eq!(*w.asked.borrow(), ["ServiceRequest/s0", "ServiceRequest/s1"], "nothing read beyond the cap");
    }

    #[test]
    fn iterate_on_a_chain_not_offered_lists_those_offered() {
        let e = parse_iterate("Encounter:subject", false).expect_err("not offered");
        assert!(e.contains("Task:focus") && e.contains("ServiceRequest:patient"), "{e}");
        let e = parse_iterate("Task:patient", true).expect_err("not a revinclude");
        assert!(e.contains("supported: Task:focus, ClaimResponse:request"), "{e}");
        assert_eq!(
            parse_iterate("ServiceRequest:patient:Patient", false).map(Include::value).ok().as_deref(),
            Some("ServiceRequest:patient")
        );
        assert!(parse_iterate("ServiceRequest:patient:Organization", false).is_err(), "the target must be ours");
    }
}
