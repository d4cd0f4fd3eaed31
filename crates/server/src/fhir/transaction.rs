//! Transaction Bundles (issue 7): `POST /fhir` with a Bundle of type `transaction`, all or
//! nothing across resource types (a `batch` is answered by the layer in `batch`).
//!
//! Every entry is **prepared** first by the same function its standalone route uses — the
//! role, the access rule, the strict reading, the domain's rules, everything that can refuse
//! (`patients::prepare_create`/`prepare_update`, `routes::referrals::prepare_create`,
//! `versions::prepare_task_update`, `results::prepare_one`) — then every write is
//! **committed** through `Store::apply_writes`, one store transaction: the records and the
//! access-log rows their standalone routes write (`fhir_update_patient`, `act_referral`, and
//! `fhir_read_patient` for a patient an `ifNoneExist` matched and this user may read). Any
//! refusal refuses the whole Bundle, nothing written: an OperationOutcome with every entry's
//! problems, each issue's expression in the entry (`Bundle.entry[2].resource.birthDate`,
//! `Bundle.entry[1].request.ifMatch`), the status the first refused entry would get alone
//! (400, 403, 404, 409, 412, 422). The answer is a `transaction-response` Bundle: per entry, in
//! the Bundle's order, `response.status`, `location`, `etag` (and `lastModified`).
//!
//! Order (R4 http.html#trules): DELETE (none is offered), POST, PUT, GET. Patient POSTs are
//! prepared before the other POSTs, so an entry may refer to a Patient the Bundle registers,
//! wherever it stands: a reference to an entry's `fullUrl` (`urn:uuid:…`) is rewritten to
//! `Patient/<id>` (the new id, or the existing one `ifNoneExist` found) before the entry is
//! read, and the later entry's rules see the prepared, not yet stored, patient (a
//! ServiceRequest or results for a new patient). A DiagnosticReport's `result` refers to its
//! Observations' fullUrls. Any other `urn:uuid:` reference is refused. GET entries run after
//! the commit, through the server's own routes (`include::Internal`, as a batch entry: their
//! own rules and access-log rows, in their own transactions); a GET that fails is answered in
//! its entry's `outcome`, the writes stand.
//!
//! Supported: POST Patient (`request.ifNoneExist`), PUT Patient/{id} (`request.ifMatch`),
//! POST ServiceRequest, PUT Task/{id} (`ifMatch`), POST DiagnosticReport and Observation, GET.
//! Refused, nothing done: Claim entries — settlement is `Claim/$submit`, its own operation
//! with its own idempotency (the caller's transaction number; a replay answers the first
//! settlement), which a Bundle's all-or-nothing would blur: submit each claim alone —;
//! DELETE (nothing is deleted through FHIR), PATCH, other types; two entries writing the same
//! resource; a `urn:uuid:` reference no entry resolves; more than `batch::MAX_ENTRIES` entries.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::Response;
use axum::routing::post;
use serde_json::{Map, Value, json};
use tiercare_domain::access::AccessBasis;
use tiercare_domain::patient::Patient;
use tiercare_domain::referral::Change;
use tiercare_domain::results::Report;
use tiercare_domain::role::Action;
use tiercare_fhir::outcome::{Issue, IssueType};
use tiercare_fhir::results as fhir_results;
use tiercare_store::{AccessLogEntry, PreparedWrite, StoreError, WriteDone};
use uuid::Uuid;

use super::batch::MAX_ENTRIES;
use super::include::Internal;
use super::patients::{PatientCreate, PatientUpdate, find_existing, prepare_create, prepare_update};
use super::versions::{TaskUpdate, etag, if_match, instant, prepare_task_update, task_refused};
use super::{FhirError, FhirResult, fhir_json, json_body, refused};
use crate::AppState;
use crate::error::ApiError;
use crate::extract::CurrentUser;
use crate::routes::patients::access_entry;
use crate::routes::referrals;

pub(super) fn router() -> Router<AppState> {
    // other methods on /fhir stay with the catch-all (unknown endpoint)
    Router::new().route("/fhir", post(transaction))
}

/// What an entry asks.
#[derive(Debug, Clone)]
enum Op {
    CreatePatient {
        if_none_exist: Option<String>,
    },
    UpdatePatient {
        id: Uuid,
        if_match: Option<i64>,
    },
    CreateServiceRequest,
    UpdateTask {
        id: Uuid,
        if_match: Option<i64>,
    },
    /// A DiagnosticReport or an Observation.
    CreateResult,
    Get {
        url: String,
    },
}

/// An entry prepared: what it writes and answers.
enum Ready {
    NewPatient(Box<PatientCreate>),
    /// `ifNoneExist` matched this patient: nothing created. `readable`: this user may read
    /// the record (else the answer names it only, as the standalone route: no version).
    Existing {
        patient: Patient,
        readable: bool,
    },
    Update(Box<PatientUpdate>),
    Referral(Box<Change>),
    Step {
        step: Box<referrals::PreparedStep>,
        wanted: i64,
    },
    Unchanged(Box<tiercare_domain::referral::Referral>),
    /// Report `k` of the results, the report itself (`None`) or its observation `j`.
    Result {
        report: usize,
        observation: Option<usize>,
    },
    Get,
}

/// The Bundle being processed.
struct Tx<'a> {
    state: &'a AppState,
    me: &'a CurrentUser,
    addr: SocketAddr,
    entries: Vec<&'a Value>,
    ops: Vec<Option<Op>>,
    /// `urn:uuid:` fullUrl → entry.
    urls: HashMap<&'a str, usize>,
    /// Refused entries, by index.
    failed: BTreeMap<usize, FhirError>,
    ready: BTreeMap<usize, Ready>,
    /// The patient each Patient POST stands for (new or found), by entry.
    patients: HashMap<usize, Patient>,
    /// The registrations not yet stored, by id (what later entries' rules see).
    new_patients: HashMap<Uuid, Patient>,
    reports: Vec<Report>,
    /// The writes, each with the entry it belongs to.
    writes: Vec<(usize, PreparedWrite)>,
}

fn issue(status: StatusCode, code: IssueType, expression: String, text: impl Into<String>) -> FhirError {
    FhirError { status, issues: vec![Issue::error(code, Some(&expression), text)] }
}

/// `e`'s issues located in entry `k` (whose resource is a `kind`): the resource's elements
/// under `Bundle.entry[k].resource`, the request headers under `Bundle.entry[k].request`.
fn relocate(mut e: FhirError, k: usize, kind: &str) -> FhirError {
    let at = format!("Bundle.entry[{k}]");
    for i in &mut e.issues {
        let moved = match i.expression.as_deref() {
            None => at.clone(),
            Some("http.If-Match") => format!("{at}.request.ifMatch"),
            Some("http.If-None-Exist") => format!("{at}.request.ifNoneExist"),
            Some(x) if x.starts_with("Bundle.") => continue,
            Some(x) if x == kind => format!("{at}.resource"),
            Some(x) => match x.strip_prefix(kind).filter(|r| r.starts_with('.')) {
                Some(rest) => format!("{at}.resource{rest}"),
                None => format!("{at}.resource.{x}"),
            },
        };
        i.expression = Some(moved);
    }
    e
}

/// The entry an issue names (`Bundle.entry[3]…`).
fn entry_of(i: &Issue) -> Option<usize> {
    let rest = i.expression.as_deref()?.strip_prefix("Bundle.entry[")?;
    rest.split(']').next()?.parse().ok()
}

/// `201 Created` and the like.
fn status_line(s: StatusCode) -> String {
    format!("{} {}", s.as_u16(), s.canonical_reason().unwrap_or(""))
}

/// Every `reference` holding a `urn:uuid:` in `v`, with the FHIRPath of its Reference.
fn urn_references(v: &Value, path: &str, out: &mut Vec<(String, String)>) {
    match v {
        Value::Object(o) => {
            if let Some(r) = o.get("reference").and_then(Value::as_str).filter(|r| r.starts_with("urn:uuid:")) {
                out.push((path.to_owned(), r.to_owned()));
            }
            for (k, x) in o {
                urn_references(x, &format!("{path}.{k}"), out);
            }
        }
        Value::Array(l) => l.iter().enumerate().for_each(|(i, x)| urn_references(x, &format!("{path}[{i}]"), out)),
        _ => {}
    }
}

/// Replace each `reference` equal to a key of `to` by its value.
fn rewrite(v: &mut Value, to: &HashMap<String, String>) {
    match v {
        Value::Object(o) => {
            if let Some(Value::String(r)) = o.get_mut("reference")
                && let Some(new) = to.get(r.as_str())
            {
                *r = new.clone();
            }
            o.values_mut().for_each(|x| rewrite(x, to));
        }
        Value::Array(l) => l.iter_mut().for_each(|x| rewrite(x, to)),
        _ => {}
    }
}

/// The Bundle itself: a transaction with 1 to [`MAX_ENTRIES`] entries.
fn bundle_entries(v: &Value) -> FhirResult<Vec<&Value>> {
    let bad = |status, code, at: &str, text: &str| Err(issue(status, code, at.into(), text));
    let Some(b) = v.as_object() else {
        return bad(StatusCode::BAD_REQUEST, IssueType::Structure, "Bundle", "expected a JSON object");
    };
    if b.get("resourceType").and_then(Value::as_str) != Some("Bundle") {
        return bad(StatusCode::BAD_REQUEST, IssueType::Invalid, "Bundle.resourceType", "POST /fhir takes a Bundle");
    }
    const KEYS: &[&str] =
        &["resourceType", "id", "meta", "implicitRules", "language", "identifier", "type", "timestamp", "entry"];
    if let Some(k) = b.keys().find(|k| !KEYS.contains(&k.as_str())) {
        return bad(StatusCode::BAD_REQUEST, IssueType::Structure, &format!("Bundle.{k}"), "unknown element");
    }
    match b.get("type").and_then(Value::as_str) {
        Some("transaction") => {}
        Some(other) => {
            return Err(issue(
                StatusCode::UNPROCESSABLE_ENTITY,
                IssueType::NotSupported,
                "Bundle.type".into(),
                format!("POST /fhir processes a transaction or a batch Bundle (type {other:?})"),
            ));
        }
        None => return bad(StatusCode::UNPROCESSABLE_ENTITY, IssueType::Required, "Bundle.type", "type is required"),
    }
    let entries: Vec<&Value> = match b.get("entry") {
        Some(Value::Array(l)) => l.iter().collect(),
        Some(_) => return bad(StatusCode::BAD_REQUEST, IssueType::Structure, "Bundle.entry", "entry is a list"),
        None => Vec::new(),
    };
    if entries.is_empty() {
        return bad(StatusCode::UNPROCESSABLE_ENTITY, IssueType::Required, "Bundle.entry", "the Bundle has no entries");
    }
    if entries.len() > MAX_ENTRIES {
        return Err(issue(
            StatusCode::BAD_REQUEST,
            IssueType::TooLong,
            "Bundle.entry".into(),
            format!("a transaction holds at most {MAX_ENTRIES} entries ({} sent): split it", entries.len()),
        ));
    }
    Ok(entries)
}

/// `POST /fhir`: a transaction Bundle, whole or not at all.
async fn transaction(
    State(state): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    me: Result<CurrentUser, ApiError>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> FhirResult<Response> {
    let me = me?;
    let v = json_body(&headers, body)?;
    let entries = bundle_entries(&v)?;
    let mut tx = Tx {
        state: &state,
        me: &me,
        addr,
        ops: Vec::with_capacity(entries.len()),
        entries,
        urls: HashMap::new(),
        failed: BTreeMap::new(),
        ready: BTreeMap::new(),
        patients: HashMap::new(),
        new_patients: HashMap::new(),
        reports: Vec::new(),
        writes: Vec::new(),
    };
    tx.read_requests(&headers);
    tx.prepare().await;
    if let Some(e) = tx.refusal() {
        return Err(e);
    }
    let done = tx.commit().await?;
    let answer = tx.answer(&headers, &done).await?;
    Ok(fhir_json(StatusCode::OK, &answer))
}

impl<'a> Tx<'a> {
    fn fail(&mut self, k: usize, e: FhirError) {
        match self.failed.get_mut(&k) {
            Some(f) => f.issues.extend(e.issues),
            None => {
                self.failed.insert(k, e);
            }
        }
    }

    /// The whole Bundle refused: every entry's issues, the first refused entry's status.
    fn refusal(&mut self) -> Option<FhirError> {
        let mut failed = std::mem::take(&mut self.failed).into_values();
        let mut first = failed.next()?;
        for e in failed {
            first.issues.extend(e.issues);
        }
        Some(first)
    }

    /// Each entry's request: what it asks, its fullUrl; refusals of what is not offered.
    fn read_requests(&mut self, headers: &HeaderMap) {
        let base = super::params::base_url(headers);
        let mut written: HashMap<(String, Uuid), usize> = HashMap::new();
        for k in 0..self.entries.len() {
            let e = self.entries[k];
            let op = match self.read_request(k, e, &base, &mut written) {
                Ok(op) => Some(op),
                Err(err) => {
                    self.fail(k, err);
                    None
                }
            };
            self.ops.push(op);
            match e.get("fullUrl").map(|u| (u, u.as_str())) {
                Some((_, Some(u))) if u.starts_with("urn:uuid:") => {
                    if let Some(j) = self.urls.insert(u, k) {
                        let text = format!("Bundle.entry[{j}] has this fullUrl too: each entry's is its own");
                        self.fail(k, issue(StatusCode::BAD_REQUEST, IssueType::Invalid, at(k, "fullUrl"), text));
                    }
                }
                Some((_, Some(_))) | None => {}
                Some((_, None)) => {
                    self.fail(k, issue(StatusCode::BAD_REQUEST, IssueType::Structure, at(k, "fullUrl"), "a uri"));
                }
            }
        }
    }

    fn read_request(
        &self,
        k: usize,
        e: &Value,
        base: &str,
        written: &mut HashMap<(String, Uuid), usize>,
    ) -> FhirResult<Op> {
        let bad = |status, code, what: &str, text: String| Err(issue(status, code, at(k, what), text));
        let Some(o) = e.as_object() else {
            return bad(StatusCode::BAD_REQUEST, IssueType::Structure, "", "an entry is an object".into());
        };
        const KEYS: &[&str] = &["id", "extension", "link", "fullUrl", "resource", "request"];
        if let Some(key) = o.keys().find(|x| !KEYS.contains(&x.as_str())) {
            return bad(StatusCode::BAD_REQUEST, IssueType::Structure, key, format!("unknown element {key:?}"));
        }
        let req = o.get("request");
        let (Some(method), Some(url)) = (
            req.and_then(|r| r.get("method")).and_then(Value::as_str),
            req.and_then(|r| r.get("url")).and_then(Value::as_str),
        ) else {
            return bad(
                StatusCode::BAD_REQUEST,
                IssueType::Required,
                "request",
                "an entry needs request.method and request.url".into(),
            );
        };
        let text = |field: &str| req.and_then(|r| r.get(field)).and_then(Value::as_str).map(str::to_owned);
        let rel = url.strip_prefix(base).unwrap_or(url).trim_start_matches('/');
        let (path, query) = rel.split_once('?').map_or((rel, None), |(p, q)| (p, Some(q)));
        let parts: Vec<&str> = path.trim_end_matches('/').split('/').collect();
        let sent = o.get("resource").and_then(|r| r.get("resourceType")).and_then(Value::as_str);
        let not_offered =
            |text: String| bad(StatusCode::UNPROCESSABLE_ENTITY, IssueType::NotSupported, "request", text);
        if parts.first() == Some(&"Claim") {
            return not_offered(
                "a Claim is not taken in a transaction: settlement is the operation POST Claim/$submit, with its own \
                 idempotency (the transaction number); submit each claim alone"
                    .into(),
            );
        }
        let versioned = |field: &str| -> FhirResult<Option<i64>> {
            let mut h = HeaderMap::new();
            if let Some(v) = text(field) {
                let v = HeaderValue::from_str(&v).map_err(|_| {
                    issue(StatusCode::BAD_REQUEST, IssueType::Invalid, at(k, "request.ifMatch"), "not readable")
                })?;
                h.insert(header::IF_MATCH, v);
            }
            if_match(&h).map_err(|e| relocate(e, k, ""))
        };
        match method {
            "GET" => {
                if rel.contains("://") || rel.is_empty() || rel.starts_with('?') {
                    return bad(
                        StatusCode::BAD_REQUEST,
                        IssueType::Value,
                        "request.url",
                        "a GET entry reads a resource or searches: Type/<id> or Type?…, relative to the base".into(),
                    );
                }
                return Ok(Op::Get { url: rel.to_owned() });
            }
            "POST" | "PUT" => {}
            "DELETE" => {
                let kind = parts.first().copied().unwrap_or("");
                return not_offered(format!(
                    "nothing is deleted through FHIR: {}",
                    tiercare_fhir::capability::no_delete_reason(kind)
                ));
            }
            "PATCH" | "HEAD" => return not_offered(format!("{method} is not offered in a transaction")),
            other => {
                return bad(
                    StatusCode::BAD_REQUEST,
                    IssueType::CodeInvalid,
                    "request.method",
                    format!("{other:?} is not an HTTP verb of FHIR (GET, HEAD, POST, PUT, PATCH, DELETE)"),
                );
            }
        }
        let Some(resource) = o.get("resource") else {
            return bad(
                StatusCode::BAD_REQUEST,
                IssueType::Required,
                "resource",
                format!("a {method} carries its resource"),
            );
        };
        let kind = parts.first().copied().unwrap_or("");
        if !resource.is_object() || sent != Some(kind) {
            return bad(
                StatusCode::BAD_REQUEST,
                IssueType::Invalid,
                "resource",
                format!("the request {method}s a {kind}, the resource is {}", sent.unwrap_or("not one")),
            );
        }
        if query.is_some() {
            return not_offered("conditional updates are not offered (name the resource: Type/<id>)".into());
        }
        if method == "POST" {
            if parts.len() != 1 {
                return bad(StatusCode::BAD_REQUEST, IssueType::Value, "request.url", format!("POST {kind}, no id"));
            }
            if text("ifNoneExist").is_some() && kind != "Patient" {
                return not_offered(format!(
                    "request.ifNoneExist in a transaction is offered on Patient entries (a {kind} is created or the \
                     Bundle refused; a conditional create of a {kind} is sent alone)"
                ));
            }
            return match kind {
                "Patient" => Ok(Op::CreatePatient { if_none_exist: text("ifNoneExist") }),
                "ServiceRequest" => Ok(Op::CreateServiceRequest),
                "DiagnosticReport" | "Observation" => Ok(Op::CreateResult),
                _ => not_offered(format!(
                    "a {kind} is not created through FHIR (a transaction creates Patient, ServiceRequest, \
                     DiagnosticReport and Observation)"
                )),
            };
        }
        let [_, raw_id] = parts.as_slice() else {
            return bad(StatusCode::BAD_REQUEST, IssueType::Value, "request.url", format!("PUT {kind}/<id>"));
        };
        let id = super::path_id(raw_id, kind).map_err(|e| relocate(e, k, kind))?;
        if let Some(j) = written.insert((kind.to_owned(), id), k) {
            return bad(
                StatusCode::BAD_REQUEST,
                IssueType::Invalid,
                "request.url",
                format!("Bundle.entry[{j}] writes {kind}/{id} too: a transaction writes each resource once"),
            );
        }
        let if_match = versioned("ifMatch")?;
        match kind {
            "Patient" => Ok(Op::UpdatePatient { id, if_match }),
            "Task" => Ok(Op::UpdateTask { id, if_match }),
            _ => not_offered(format!(
                "PUT of a {kind} is not offered: {}",
                tiercare_fhir::capability::no_update_reason(kind)
            )),
        }
    }

    /// Entry `k`'s resource with its `urn:uuid:` references resolved: to the Patient an
    /// earlier-prepared entry stands for; a DiagnosticReport's `result` to an Observation
    /// entry is left for the results reader. `None`: refused (noted).
    fn resolved(&mut self, k: usize) -> Option<Value> {
        let mut v = self.entries[k]["resource"].clone();
        let mut refs = Vec::new();
        urn_references(&v, &at(k, "resource"), &mut refs);
        let mut to = HashMap::new();
        let mut ok = true;
        let report = v["resourceType"] == "DiagnosticReport";
        for (path, r) in refs {
            let target = self.urls.get(r.as_str()).copied();
            let problem = match target.map(|j| (j, self.ops[j].as_ref())) {
                Some((j, Some(Op::CreatePatient { .. }))) => match self.patients.get(&j) {
                    Some(p) => {
                        to.insert(r.clone(), format!("Patient/{}", p.id));
                        continue;
                    }
                    None => format!("refers to Bundle.entry[{j}], a Patient that is refused"),
                },
                Some((j, Some(Op::CreateResult)))
                    if report
                        && path.starts_with(&at(k, "resource.result["))
                        && self.entries[j]["resource"]["resourceType"] == "Observation" =>
                {
                    continue;
                }
                Some((j, _)) => format!(
                    "refers to Bundle.entry[{j}]: a reference between entries names a Patient the Bundle creates \
                     (or, from a DiagnosticReport's result, an Observation)"
                ),
                None => "no entry of this Bundle has this fullUrl: the reference cannot be resolved".into(),
            };
            ok = false;
            self.fail(k, issue(StatusCode::UNPROCESSABLE_ENTITY, IssueType::Value, path, problem));
        }
        rewrite(&mut v, &to);
        ok.then_some(v)
    }

    /// The entries of `pick`, in Bundle order.
    fn entries_where(&self, pick: impl Fn(&Op) -> bool) -> Vec<usize> {
        (0..self.ops.len()).filter(|&k| self.ops[k].as_ref().is_some_and(&pick)).collect()
    }

    /// Prepare every entry: Patient POSTs, the other POSTs, the PUTs.
    async fn prepare(&mut self) {
        for k in self.entries_where(|o| matches!(o, Op::CreatePatient { .. })) {
            if let Err(e) = self.prepare_patient(k).await {
                self.fail(k, relocate(e, k, "Patient"));
            }
        }
        for k in self.entries_where(|o| matches!(o, Op::CreateServiceRequest)) {
            if let Err(e) = self.prepare_service_request(k).await {
                self.fail(k, relocate(e, k, "ServiceRequest"));
            }
        }
        self.prepare_results().await;
        for k in self.entries_where(|o| matches!(o, Op::UpdatePatient { .. } | Op::UpdateTask { .. })) {
            let (kind, r) = match self.ops[k].clone() {
                Some(Op::UpdatePatient { id, if_match }) => {
                    ("Patient", self.prepare_patient_update(k, id, if_match).await)
                }
                Some(Op::UpdateTask { id, if_match }) => ("Task", self.prepare_task(k, id, if_match).await),
                _ => continue,
            };
            if let Err(e) = r {
                self.fail(k, relocate(e, k, kind));
            }
        }
        for k in self.entries_where(|o| matches!(o, Op::Get { .. })) {
            self.ready.insert(k, Ready::Get);
        }
    }

    fn log(&self, p: &Patient, action: &str, basis: AccessBasis) -> AccessLogEntry {
        access_entry(self.me, &p.region_key, p.id, action, basis, Some(self.addr.ip().to_string()))
    }

    async fn prepare_patient(&mut self, k: usize) -> FhirResult<()> {
        self.me.require(Action::RegisterPatient)?;
        let Some(v) = self.resolved(k) else { return Ok(()) };
        let parsed = tiercare_fhir::registration::parse_patient(&v).map_err(refused)?;
        if let Some(Op::CreatePatient { if_none_exist: Some(criteria) }) = &self.ops[k] {
            let mut h = HeaderMap::new();
            let value = HeaderValue::from_str(criteria).map_err(|_| {
                issue(StatusCode::BAD_REQUEST, IssueType::Invalid, at(k, "request.ifNoneExist"), "not readable text")
            })?;
            h.insert("if-none-exist", value);
            if let Some((p, basis)) = find_existing(self.state, self.me, &h).await? {
                let readable = basis.is_some();
                if let Some(b) = basis {
                    // as the standalone route: the match is read (and would be shown)
                    self.writes.push((k, PreparedWrite::Access(self.log(&p, "fhir_read_patient", b))));
                }
                self.patients.insert(k, p.clone());
                self.ready.insert(k, Ready::Existing { patient: p, readable });
                return Ok(());
            }
        }
        let c = prepare_create(self.state, self.me, parsed).await?;
        // one record per number, within the Bundle too
        if let Some(other) =
            self.new_patients.values().find(|o| o.identifiers.iter().any(|i| c.patient.identifiers.contains(i)))
        {
            let j = self.patients.iter().find(|(_, p)| p.id == other.id).map_or(0, |(j, _)| *j);
            return Err(issue(
                StatusCode::CONFLICT,
                IssueType::Conflict,
                at(k, "resource.identifier"),
                format!("Bundle.entry[{j}] registers a patient with this identifier: one record per person"),
            ));
        }
        self.patients.insert(k, c.patient.clone());
        self.new_patients.insert(c.patient.id, c.patient.clone());
        self.writes.push((k, PreparedWrite::CreatePatient(c.patient.clone())));
        self.ready.insert(k, Ready::NewPatient(Box::new(c)));
        Ok(())
    }

    async fn prepare_service_request(&mut self, k: usize) -> FhirResult<()> {
        let Some(v) = self.resolved(k) else { return Ok(()) };
        let input = tiercare_fhir::referral::parse_service_request(&v).map_err(refused)?;
        let known = self.new_patients.get(&input.patient_id);
        let (change, _) = referrals::prepare_create(self.state, self.me, input, known).await?;
        // the standalone FHIR create shows no patient data, so it logs no read: nor here
        self.writes.push((k, PreparedWrite::CreateReferral { change: change.clone(), access: None }));
        self.ready.insert(k, Ready::Referral(Box::new(change)));
        Ok(())
    }

    async fn prepare_results(&mut self) {
        let ks = self.entries_where(|o| matches!(o, Op::CreateResult));
        if ks.is_empty() {
            return;
        }
        let mut resolved = Vec::with_capacity(ks.len());
        for &k in &ks {
            if let Some(v) = self.resolved(k) {
                let mut e = self.entries[k].clone();
                e["resource"] = v;
                resolved.push((k, e));
            }
        }
        let given: Vec<(usize, &Value)> = resolved.iter().map(|(k, e)| (*k, e)).collect();
        let parsed =
            match fhir_results::parse_result_entries(&given, &crate::routes::results::config(self.state).catalogue) {
                Ok(t) => t,
                Err(issues) => {
                    for i in issues {
                        let k = entry_of(&i).unwrap_or(ks[0]);
                        self.fail(k, refused(vec![i]));
                    }
                    return;
                }
            };
        let mut reports = Vec::with_capacity(parsed.reports.len());
        for p in &parsed.reports {
            let owner = p.report_entry.or(p.observation_entries.first().copied()).unwrap_or(ks[0]);
            let known = self.new_patients.get(&p.report.patient_id);
            match super::results::prepare_one(self.state, self.me, p, known).await {
                Ok(r) => reports.push(Some(r)),
                Err(e) => {
                    reports.push(None);
                    self.fail(owner, relocate(e, owner, ""));
                }
            }
        }
        if reports.iter().all(Option::is_some) {
            self.reports = reports.into_iter().flatten().collect();
            let owner = parsed.entries.first().map_or(ks[0], |e| e.0);
            self.writes.push((owner, PreparedWrite::Results(self.reports.clone())));
            for (k, _, report, observation) in parsed.entries {
                self.ready.insert(k, Ready::Result { report, observation });
            }
        }
    }

    async fn prepare_patient_update(&mut self, k: usize, id: Uuid, wanted: Option<i64>) -> FhirResult<()> {
        let Some(v) = self.resolved(k) else { return Ok(()) };
        let u = prepare_update(self.state, self.me, id, wanted, &v).await?;
        self.writes.push((k, PreparedWrite::UpdatePatient(u.changed.clone())));
        self.writes.push((k, PreparedWrite::Access(self.log(&u.changed, "fhir_update_patient", u.basis))));
        self.ready.insert(k, Ready::Update(Box::new(u)));
        Ok(())
    }

    async fn prepare_task(&mut self, k: usize, id: Uuid, wanted: Option<i64>) -> FhirResult<()> {
        let Some(v) = self.resolved(k) else { return Ok(()) };
        match prepare_task_update(self.state, self.me, id, wanted, &v, self.addr).await? {
            TaskUpdate::Unchanged(r, _) => {
                self.ready.insert(k, Ready::Unchanged(r));
            }
            TaskUpdate::Step { step, wanted } => {
                let write =
                    PreparedWrite::ReferralStep { change: step.change.clone(), access: Some(step.access.clone()) };
                self.writes.push((k, write));
                self.ready.insert(k, Ready::Step { step, wanted });
            }
        }
        Ok(())
    }

    /// Write everything in one store transaction; a refusal there is the entry's, as its
    /// route would answer it.
    async fn commit(&mut self) -> FhirResult<Vec<(usize, WriteDone)>> {
        let writes: Vec<PreparedWrite> = self.writes.iter().map(|(_, w)| w.clone()).collect();
        match self.state.store.apply_writes(&writes).await {
            Ok(done) => Ok(self.writes.iter().map(|(k, _)| *k).zip(done).collect()),
            Err(f) => {
                let Some(k) = f.index.map(|i| self.writes[i].0) else { return Err(ApiError::from(f.error).into()) };
                let e = self.store_refusal(k, f.error).await;
                let kind = self.entries[k]["resource"]["resourceType"].as_str().unwrap_or("").to_owned();
                Err(relocate(e, k, &kind))
            }
        }
    }

    async fn store_refusal(&self, k: usize, e: StoreError) -> FhirError {
        match self.ready.get(&k) {
            Some(Ready::NewPatient(c)) => c.refused(e),
            Some(Ready::Update(u)) => u.refused(self.state, e).await,
            Some(Ready::Step { step, wanted }) => {
                task_refused(self.state, step.change.referral.id, *wanted, ApiError::from(e)).await
            }
            _ => ApiError::from(e).into(),
        }
    }

    /// The transaction-response: per entry, in order, what it did; GET entries run now.
    async fn answer(&mut self, headers: &HeaderMap, done: &[(usize, WriteDone)]) -> FhirResult<Value> {
        let created: Vec<Uuid> = self.new_patients.keys().copied().collect();
        // everything is stored by now: a failed read of the new records' times costs only their
        // `lastModified`, never an error answer that would invite the caller to send it all again
        let times: HashMap<Uuid, time::OffsetDateTime> = match self.state.store.patient_updated_at(&created).await {
            Ok(t) => t.into_iter().collect(),
            Err(e) => {
                tracing::warn!(error = %e, "transaction stored; the new patients' change times could not be read");
                HashMap::new()
            }
        };
        let updated: HashMap<usize, time::OffsetDateTime> = done
            .iter()
            .filter_map(|(k, d)| match d {
                WriteDone::PatientUpdated(t) => Some((*k, *t)),
                _ => None,
            })
            .collect();
        // GET urls may name a Patient the Bundle registered by its fullUrl
        let names: Vec<(&str, String)> = self
            .urls
            .iter()
            .filter_map(|(u, j)| self.patients.get(j).map(|p| (*u, format!("Patient/{}", p.id))))
            .collect();
        // the server's own routes, built only when an entry reads
        let reads = self.ready.values().any(|r| matches!(r, Ready::Get));
        let internal = reads.then(|| Internal::new(self.state, headers, Some(ConnectInfo(self.addr))));
        let mut out = Vec::with_capacity(self.entries.len());
        for k in 0..self.entries.len() {
            // `version`: `None` for a record this user may not read (its place only)
            let response =
                |status: StatusCode, location: String, version: Option<i64>, at: Option<time::OffsetDateTime>| {
                    let mut r = json!({ "status": status_line(status), "location": location });
                    if let Some(v) = version {
                        r["etag"] = json!(etag(v));
                    }
                    if let Some(t) = at {
                        r["lastModified"] = json!(instant(t));
                    }
                    json!({ "response": r })
                };
            let entry = match self.ready.get(&k) {
                Some(Ready::NewPatient(c)) => {
                    let p = &c.patient;
                    response(
                        StatusCode::CREATED,
                        format!("Patient/{}", p.id),
                        Some(p.version),
                        times.get(&p.id).copied(),
                    )
                }
                // as `POST /fhir/Patient` answers a match this user may not read: its place only
                Some(Ready::Existing { patient: p, readable }) => {
                    response(StatusCode::OK, format!("Patient/{}", p.id), readable.then_some(p.version), None)
                }
                Some(Ready::Update(u)) => {
                    let p = &u.changed;
                    response(StatusCode::OK, format!("Patient/{}", p.id), Some(p.version + 1), updated.get(&k).copied())
                }
                Some(Ready::Referral(c)) => {
                    let r = &c.referral;
                    response(
                        StatusCode::CREATED,
                        format!("ServiceRequest/{}", r.id),
                        Some(r.version),
                        Some(r.updated_at),
                    )
                }
                Some(Ready::Step { step, .. }) => {
                    let r = &step.change.referral;
                    response(StatusCode::OK, format!("Task/{}", r.id), Some(r.version), Some(r.updated_at))
                }
                Some(Ready::Unchanged(r)) => {
                    response(StatusCode::OK, format!("Task/{}", r.id), Some(r.version), Some(r.updated_at))
                }
                Some(Ready::Result { report, observation }) => {
                    let r = &self.reports[*report];
                    let location = match observation {
                        None => format!("DiagnosticReport/{}", r.id),
                        Some(j) => format!("Observation/{}", r.entries[*j].id),
                    };
                    response(StatusCode::CREATED, location, None, None)
                }
                Some(Ready::Get) => {
                    let (Some(Op::Get { url }), Some(internal)) = (&self.ops[k], &internal) else { continue };
                    let mut url = url.clone();
                    for (u, to) in &names {
                        url = url.replace(u, to);
                    }
                    get_entry(internal, &url).await
                }
                None => json!({ "response": { "status": status_line(StatusCode::OK) } }),
            };
            out.push(entry);
        }
        let mut b = Map::new();
        b.insert("resourceType".into(), json!("Bundle"));
        b.insert("type".into(), json!("transaction-response"));
        b.insert("entry".into(), Value::Array(out));
        Ok(Value::Object(b))
    }
}

fn at(k: usize, what: &str) -> String {
    if what.is_empty() { format!("Bundle.entry[{k}]") } else { format!("Bundle.entry[{k}].{what}") }
}

/// A GET entry through the server's own routes (their rules and access-log rows).
async fn get_entry(internal: &Internal, url: &str) -> Value {
    let a = internal.call(Method::GET, url, None, &[]).await;
    let mut response = json!({ "status": status_line(a.status) });
    if let Some(v) = a.headers.get(header::ETAG).and_then(|v| v.to_str().ok()) {
        response["etag"] = json!(v);
    }
    if let Some(t) = a.body["meta"]["lastUpdated"].as_str() {
        response["lastModified"] = json!(t);
    }
    if !a.status.is_success() {
        response["outcome"] = a.body;
        return json!({ "response": response });
    }
    json!({ "resource": a.body, "response": response })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn issues_move_into_their_entry() {
        let e = FhirError {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            issues: vec![
                Issue::error(IssueType::Value, Some("Patient.birthDate"), "x"),
                Issue::error(IssueType::Value, Some("http.If-Match"), "x"),
                Issue::error(IssueType::Value, Some("http.If-None-Exist"), "x"),
                Issue::error(IssueType::Value, None, "x"),
                Issue::error(IssueType::Value, Some("Bundle.entry[4].resource.code"), "x"),
                Issue::error(IssueType::Value, Some("PatientX.y"), "x"),
            ],
        };
        let moved: Vec<Option<String>> = relocate(e, 2, "Patient").issues.into_iter().map(|i| i.expression).collect();
        let want = [
            "Bundle.entry[2].resource.birthDate",
            "Bundle.entry[2].request.ifMatch",
            "Bundle.entry[2].request.ifNoneExist",
            "Bundle.entry[2]",
            "Bundle.entry[4].resource.code",
            "Bundle.entry[2].resource.PatientX.y",
        ];
        assert_eq!(moved, want.iter().map(|s| Some((*s).to_owned())).collect::<Vec<_>>());
        assert_eq!(entry_of(&Issue::error(IssueType::Value, Some("Bundle.entry[13].resource"), "x")), Some(13));
        assert_eq!(entry_of(&Issue::error(IssueType::Value, Some("Patient.id"), "x")), None);
    }

    #[test]
    fn urn_references_are_found_and_rewritten() {
        let mut v = json!({
            "subject": { "reference": "urn:uuid:a" },
            "result": [{ "reference": "urn:uuid:b" }, { "reference": "Observation/1" }],
        });
        let mut found = Vec::new();
        urn_references(&v, "R", &mut found);
        found.sort();
        assert_eq!(
            found,
            vec![
                ("R.result[0]".to_owned(), "urn:uuid:b".to_owned()),
                ("R.subject".to_owned(), "urn:uuid:a".to_owned())
            ]
        );
        let to: HashMap<String, String> = [("urn:uuid:a".to_owned(), "Patient/x".to_owned())].into();
        rewrite(&mut v, &to);
        assert_eq!(v["subject"]["reference"], "Patient/x");
        assert_eq!(v["result"][0]["reference"], "urn:uuid:b", "only the named references change");
    }

    #[test]
    fn several_references_to_one_entry_are_each_seen() {
        let v = json!([{ "reference": "urn:uuid:a" }, { "x": { "reference": "urn:uuid:a" } }]);
        let mut found = Vec::new();
        urn_references(&v, "R", &mut found);
        assert_eq!(found.len(), 2);
        let set: HashSet<String> = found.into_iter().map(|(p, _)| p).collect();
        assert!(set.contains("R[0]") && set.contains("R[1].x"));
    }
}
