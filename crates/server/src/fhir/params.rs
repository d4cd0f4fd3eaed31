//! The parameters of a FHIR search, checked against what the CapabilityStatement declares
//! for the type (`tiercare_fhir::capability`): a parameter it does not declare is refused
//! when the client asks `Prefer: handling=strict` (400), otherwise ignored and reported in
//! the Bundle as an OperationOutcome entry. A modifier, a repeated parameter (other than a
//! date, which may repeat to give a range) or an empty value is refused either way.
//!
//! Every search takes `_summary=count`; `_sort` where `tiercare_fhir::search::SORTS` lists
//! keys for the type (an unknown key: 400), applied by [`Params::page`] before the page is
//! cut. `_include`/`_revinclude` are taken off the query before the search runs
//! (`super::include`).

use axum::extract::Query;
use axum::extract::rejection::QueryRejection;
use axum::http::{HeaderMap, header};
use serde_json::Value;
use tiercare_domain::access::AccessBasis;
use tiercare_domain::encounter::Encounter;
use tiercare_domain::facility::{Facility, Practitioner, PractitionerRole};
use tiercare_domain::patient::Patient;
use tiercare_domain::referral::{CHINA_TIME, ReferralState};
use tiercare_domain::results::Report;
use tiercare_fhir::capability;
use tiercare_fhir::outcome::{Issue, IssueType, Severity, operation_outcome};
use tiercare_fhir::search::{DateParam, Sort, parse_date, parse_sort, sort_keys};
use tiercare_store::SettlementRecord;
use time::OffsetDateTime;
use uuid::Uuid;

use super::{FhirError, FhirResult};

const DEFAULT_COUNT: u32 = 50;
const MAX_COUNT: u32 = 500;

/// The parameters of one search of `kind`.
pub(crate) struct Params {
    kind: &'static str,
    pairs: Vec<(String, String)>,
    /// Parameters a lenient search ignored.
    ignored: Vec<String>,
    /// `http://host/fhir`.
    base: String,
    /// `_sort`, in order of precedence (empty: the search's own order).
    sort: Vec<Sort>,
}

/// Whether the client asked for strict handling (`Prefer: handling=strict`).
pub(crate) fn prefers_strict(headers: &HeaderMap) -> bool {
    headers
        .get_all("prefer")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.split([',', ';']).any(|p| p.trim().replace(' ', "").eq_ignore_ascii_case("handling=strict")))
}

/// `http://host/fhir`, as the client addressed us.
pub(crate) fn base_url(headers: &HeaderMap) -> String {
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("localhost");
    let scheme = match headers.get("x-forwarded-proto").and_then(|h| h.to_str().ok()) {
        Some("https") => "https",
        _ => "http",
    };
    format!("{scheme}://{host}/fhir")
}

/// Percent-encode a query component (RFC 3986 unreserved characters, and `:`, `/`, `|`
/// and `,`, which FHIR values use, are kept).
pub(crate) fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~:/|,".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Chained parameters a search takes (R4 declares no chain in a CapabilityStatement's
/// `searchParam`): DiagnosticReport `result.code`, the lab reports with an observation of an
/// item (issue 5).
const CHAINS: &[(&str, &str)] = &[("DiagnosticReport", "result.code")];

impl Params {
    pub(crate) fn read(
        query: Result<Query<Vec<(String, String)>>, QueryRejection>,
        headers: &HeaderMap,
        kind: &'static str,
    ) -> FhirResult<Params> {
        let Query(all) = query.map_err(|e| {
            FhirError::bad_search(IssueType::Structure, format!("the query string cannot be read: {}", e.body_text()))
        })?;
        let strict = prefers_strict(headers);
        let mut p = Params { kind, pairs: Vec::new(), ignored: Vec::new(), base: base_url(headers), sort: Vec::new() };
        for (k, v) in all {
            let (name, modifier) = match k.split_once(':') {
                Some((n, m)) => (n, Some(m)),
                None => (k.as_str(), None),
            };
            let declared = capability::search_param(kind, name);
            // every search counts; some sort
            let taken = name == "_summary"
                || (name == "_sort" && !sort_keys(kind).is_empty())
                || CHAINS.contains(&(kind, name));
            if declared.is_none() && !capability::is_result_param(kind, name) && !taken {
                if strict {
                    return Err(FhirError::bad_search(
                        IssueType::NotSupported,
                        format!("unsupported search parameter {k:?}; supported: {}", p.supported()),
                    ));
                }
                p.ignored.push(k);
                continue;
            }
            if modifier.is_some() {
                return Err(FhirError::bad_search(
                    IssueType::NotSupported,
                    format!("search parameter {k:?}: modifiers are not supported"),
                ));
            }
            if p.pairs.iter().any(|(n, _)| *n == k) && declared.is_none_or(|d| d.kind != "date") {
                return Err(FhirError::bad_search(
                    IssueType::NotSupported,
                    format!("search parameter {k:?} is given twice; give it once (a comma list means any of)"),
                ));
            }
            if v.trim().is_empty() {
                return Err(FhirError::bad_search(IssueType::Value, format!("search parameter {k:?} has no value")));
            }
            if k == "_sort" {
                p.sort = parse_sort(kind, &v).map_err(|e| FhirError::bad_search(IssueType::NotSupported, e))?;
            }
            p.pairs.push((k, v));
        }
        Ok(p)
    }

    fn supported(&self) -> String {
        let mut names: Vec<&str> =
            capability::support(self.kind).map(|r| r.search.iter().map(|s| s.name).collect()).unwrap_or_default();
        names.extend(capability::RESULT_PARAMS);
        if capability::support(self.kind).is_some_and(|r| r.paged) {
            names.extend(capability::PAGING_PARAMS);
        }
        if !names.contains(&"_summary") {
            names.push("_summary");
        }
        if !sort_keys(self.kind).is_empty() {
            names.push("_sort");
        }
        names.join(", ")
    }

    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.trim())
    }

    /// A comma list (any of).
    pub(crate) fn list(&self, name: &str) -> Option<Vec<&str>> {
        self.get(name).map(|v| v.split(',').map(str::trim).filter(|s| !s.is_empty()).collect())
    }

    /// Every value of a date parameter (all must match: `ge2024&date=lt2025` is a range).
    pub(crate) fn dates(&self, name: &str) -> FhirResult<Vec<DateParam>> {
        self.pairs
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| {
                parse_date(v, CHINA_TIME)
                    .map_err(|e| FhirError::bad_search(IssueType::Value, format!("search parameter {name:?}: {e}")))
            })
            .collect()
    }

    /// A reference parameter: `Kind/{id}` or the bare id.
    pub(crate) fn reference(&self, name: &str, kind: &str) -> FhirResult<Option<Uuid>> {
        let Some(v) = self.get(name) else { return Ok(None) };
        let raw = v.strip_prefix(kind).and_then(|r| r.strip_prefix('/')).unwrap_or(v);
        Uuid::parse_str(raw).map(Some).map_err(|_| {
            FhirError::bad_search(IssueType::Value, format!("search parameter {name:?}: expected {kind}/<id> or <id>"))
        })
    }

    /// `_id`: the ids asked for (`None`: not given); a value that is not a UUID names no
    /// resource of ours.
    pub(crate) fn ids(&self) -> Option<Vec<Uuid>> {
        self.list("_id").map(|l| l.iter().filter_map(|s| Uuid::parse_str(s).ok()).collect())
    }

    /// `status`-like parameters: a comma list of codes, each mapped to states.
    pub(crate) fn states(
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

    pub(crate) fn count(&self) -> FhirResult<u32> {
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

    /// `_offset`: how many matches the page skips.
    pub(crate) fn offset(&self) -> FhirResult<usize> {
        match self.get("_offset") {
            None => Ok(0),
            Some(v) => v
                .parse::<usize>()
                .map_err(|_| FhirError::bad_search(IssueType::Value, "_offset is a whole number from 0")),
        }
    }

    /// `_summary=count` (only the total); `_summary=false` is the default.
    pub(crate) fn summary_count(&self) -> FhirResult<bool> {
        match self.get("_summary") {
            None | Some("false") => Ok(false),
            Some("count") => Ok(true),
            Some(other) => Err(FhirError::bad_search(
                IssueType::NotSupported,
                format!("_summary={other}: only _summary=count (or false) is supported"),
            )),
        }
    }

    /// The URL of this search (the parameters it used), at `offset` when given.
    pub(crate) fn link(&self, offset: Option<usize>) -> String {
        let mut q: Vec<String> = self
            .pairs
            .iter()
            .filter(|(k, _)| k != "_offset")
            .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
            .collect();
        if let Some(o) = offset.filter(|o| *o > 0) {
            q.push(format!("_offset={o}"));
        }
        let path = format!("{}/{}", self.base, self.kind);
        if q.is_empty() { path } else { format!("{path}?{}", q.join("&")) }
    }

    /// A searchset of `entries` (none for `_summary=count`), with what a lenient search
    /// ignored as an outcome entry.
    pub(crate) fn bundle(&self, mut entries: Vec<Value>, total: Option<u64>, self_offset: Option<usize>) -> Value {
        if matches!(self.get("_summary"), Some("count")) {
            entries.clear();
        }
        let mut b = tiercare_fhir::bundle::searchset(entries, total, &self.link(self_offset));
        if !self.ignored.is_empty() {
            let issues: Vec<Issue> = self
                .ignored
                .iter()
                .map(|k| Issue {
                    severity: Severity::Warning,
                    ..Issue::error(
                        IssueType::NotSupported,
                        None,
                        format!(
                            "search parameter {k:?} is not supported and was ignored; supported: {}",
                            self.supported()
                        ),
                    )
                })
                .collect();
            tiercare_fhir::bundle::add_outcome(&mut b, operation_outcome(&issues));
        }
        b
    }

    /// `_sort`, in order of precedence (empty: the search's own order), for a search that
    /// sorts and pages in the store.
    pub(crate) fn sort(&self) -> &[Sort] {
        &self.sort
    }

    /// The page a search cut in the store (`items`: at most [`Self::count`] matches from
    /// [`Self::offset`], in the order [`Self::page`] gives) of `total` matches, as
    /// [`Self::page`] would give it (no items for `_summary=count`).
    pub(crate) fn paged<T>(&self, items: Vec<T>, total: u64) -> FhirResult<Page<T>> {
        let items = if self.summary_count()? { Vec::new() } else { items };
        let total = usize::try_from(total).unwrap_or(usize::MAX);
        Ok(Page { items, total, offset: self.offset()?, count: self.count()? as usize })
    }

    /// One page of `all` matches (in a stable order; `_sort` reorders them first, stably,
    /// matches without the sorted element last): the page's items, and a function that
    /// makes the Bundle of their entries with `total` and the `self`/`next`/`previous` links.
    /// `_summary=count` gives no items.
    pub(crate) fn page<T: Sortable>(&self, mut all: Vec<T>) -> FhirResult<Page<T>> {
        if !self.sort.is_empty() {
            all.sort_by(|a, b| {
                self.sort
                    .iter()
                    .map(|s| {
                        let (x, y) = (a.sort_date(s.key), b.sort_date(s.key));
                        match (x, y) {
                            (Some(x), Some(y)) if s.descending => y.cmp(&x),
                            (Some(x), Some(y)) => x.cmp(&y),
                            // the element missing: last either way
                            (x, y) => x.is_none().cmp(&y.is_none()),
                        }
                    })
                    .find(|o| o.is_ne())
                    .unwrap_or(std::cmp::Ordering::Equal)
            });
        }
        let count = self.count()? as usize;
        let offset = self.offset()?;
        let total = all.len();
        let items = if self.summary_count()? {
            Vec::new()
        } else {
            let end = total.min(offset.saturating_add(count));
            all.truncate(end);
            all.drain(..offset.min(end)).for_each(drop);
            all
        };
        Ok(Page { items, total, offset, count })
    }
}

/// What a search's matches are sorted by (`_sort`, keys of `tiercare_fhir::search::SORTS`):
/// the date-like element `key` of the match, if it has one. A type without sort keys
/// implements it with the default.
pub(crate) trait Sortable {
    fn sort_date(&self, _key: &str) -> Option<OffsetDateTime> {
        None
    }
}

impl Sortable for (Patient, AccessBasis) {
    fn sort_date(&self, key: &str) -> Option<OffsetDateTime> {
        (key == "birthdate").then(|| self.0.birth_date.midnight().assume_offset(CHINA_TIME))
    }
}

/// A Patient match with its last change (the search's `_lastUpdated`).
impl Sortable for (Patient, AccessBasis, OffsetDateTime) {
    fn sort_date(&self, key: &str) -> Option<OffsetDateTime> {
        (key == "birthdate").then(|| self.0.birth_date.midnight().assume_offset(CHINA_TIME))
    }
}

impl Sortable for Encounter {
    fn sort_date(&self, key: &str) -> Option<OffsetDateTime> {
        (key == "date").then_some(self.started_at)
    }
}

impl Sortable for Report {
    fn sort_date(&self, key: &str) -> Option<OffsetDateTime> {
        match key {
            "date" => Some(self.specimen_time),
            "issued" => Some(self.report_time),
            _ => None,
        }
    }
}

impl Sortable for (SettlementRecord, AccessBasis) {
    fn sort_date(&self, key: &str) -> Option<OffsetDateTime> {
        (key == "created").then_some(self.0.created_at)
    }
}

impl Sortable for Facility {}
impl Sortable for Practitioner {}
impl Sortable for PractitionerRole {}

/// A page of matches ([`Params::page`]).
pub(crate) struct Page<T> {
    pub(crate) items: Vec<T>,
    total: usize,
    offset: usize,
    count: usize,
}

impl<T> Page<T> {
    /// The Bundle of this page's `entries`.
    pub(crate) fn bundle(&self, p: &Params, entries: Vec<Value>) -> Value {
        let mut b = p.bundle(entries, Some(self.total as u64), Some(self.offset));
        if self.offset + self.count < self.total && !self.items.is_empty() {
            tiercare_fhir::bundle::add_link(&mut b, "next", &p.link(Some(self.offset + self.count)));
        }
        if self.offset > 0 {
            tiercare_fhir::bundle::add_link(&mut b, "previous", &p.link(Some(self.offset.saturating_sub(self.count))));
        }
        b
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefer_strict_is_read_among_other_preferences() {
        let mut h = HeaderMap::new();
        assert!(!prefers_strict(&h));
        h.insert("prefer", "return=minimal, handling=strict".parse().expect("a header value"));
        assert!(prefers_strict(&h));
        h.insert("prefer", "handling=lenient".parse().expect("a header value"));
        assert!(!prefers_strict(&h));
    }

    #[test]
    fn query_components_are_encoded() {
        assert_eq!(encode("urn:oid:2.16|51 16+x"), "urn:oid:2.16|51%2016%2Bx");
        assert_eq!(encode("王"), "%E7%8E%8B");
    }
}
