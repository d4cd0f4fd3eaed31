//! Search values as FHIR R4 defines them (<http://hl7.org/fhir/R4/search.html>): a date
//! with a prefix and its implicit range, a token (`system|code`), and a string (starts
//! with, case-insensitive). Pure functions; the server applies them to what the store
//! gives back.

use time::format_description::well_known::Rfc3339;
use time::{Date, Duration, Month, OffsetDateTime, PrimitiveDateTime, Time, UtcOffset};

/// A date search prefix. `sa`, `eb` and `ap` are not offered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prefix {
    Eq,
    Ne,
    Gt,
    Lt,
    Ge,
    Le,
}

/// A date search value: the prefix and the range `[lo, hi)` the value stands for at its
/// precision (`2024` is the whole year, `2024-03-08` the whole day in `zone`,
/// `2024-03-08T09:30:00+08:00` that second).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DateParam {
    pub prefix: Prefix,
    pub lo: OffsetDateTime,
    pub hi: OffsetDateTime,
}

fn month(m: &str) -> Option<Month> {
    Month::try_from(m.parse::<u8>().ok()?).ok()
}

fn day_start(d: Date, zone: UtcOffset) -> OffsetDateTime {
    PrimitiveDateTime::new(d, Time::MIDNIGHT).assume_offset(zone)
}

/// The range `[lo, hi)` of a date or dateTime value; dates without a time are days in `zone`.
fn range(v: &str, zone: UtcOffset) -> Option<(OffsetDateTime, OffsetDateTime)> {
    let bytes_ok = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_digit());
    match v.len() {
        4 if bytes_ok(v, 4) => {
            let y: i32 = v.parse().ok()?;
            let lo = day_start(Date::from_calendar_date(y, Month::January, 1).ok()?, zone);
            let hi = day_start(Date::from_calendar_date(y + 1, Month::January, 1).ok()?, zone);
            Some((lo, hi))
        }
        7 if bytes_ok(&v[..4], 4) && &v[4..5] == "-" && bytes_ok(&v[5..], 2) => {
            let y: i32 = v[..4].parse().ok()?;
            let m = month(&v[5..])?;
            let lo = day_start(Date::from_calendar_date(y, m, 1).ok()?, zone);
            let (ny, nm) = if m == Month::December { (y + 1, Month::January) } else { (y, m.next()) };
            Some((lo, day_start(Date::from_calendar_date(ny, nm, 1).ok()?, zone)))
        }
        10 if bytes_ok(&v[..4], 4) && &v[4..5] == "-" && &v[7..8] == "-" => {
            let d = Date::from_calendar_date(v[..4].parse().ok()?, month(&v[5..7])?, v[8..].parse().ok()?).ok()?;
            let lo = day_start(d, zone);
            Some((lo, lo + Duration::DAY))
        }
        _ => {
            let t = OffsetDateTime::parse(v, &Rfc3339).ok()?;
            let lo = t.replace_nanosecond(0).ok()?;
            Some((lo, lo + Duration::SECOND))
        }
    }
}

/// Read a date search value (`ge2024-01-01`, `2024-03`, `lt2024-03-08T09:30:00+08:00`).
/// The error says what is wrong, for a person.
pub fn parse_date(raw: &str, zone: UtcOffset) -> Result<DateParam, String> {
    let raw = raw.trim();
    let (prefix, value) = match raw.get(..2) {
        Some("eq") => (Prefix::Eq, &raw[2..]),
        Some("ne") => (Prefix::Ne, &raw[2..]),
        Some("gt") => (Prefix::Gt, &raw[2..]),
        Some("lt") => (Prefix::Lt, &raw[2..]),
        Some("ge") => (Prefix::Ge, &raw[2..]),
        Some("le") => (Prefix::Le, &raw[2..]),
        Some(p @ ("sa" | "eb" | "ap")) => {
            return Err(format!("the prefix {p} is not supported (use eq, ne, gt, lt, ge, le)"));
        }
        _ => (Prefix::Eq, raw),
    };
    let (lo, hi) = range(value, zone).ok_or_else(|| {
        "expected a date: YYYY, YYYY-MM, YYYY-MM-DD or YYYY-MM-DDThh:mm:ss+08:00, after an optional prefix \
         (eq, ne, gt, lt, ge, le)"
            .to_owned()
    })?;
    Ok(DateParam { prefix, lo, hi })
}

impl DateParam {
    /// Whether a target period `[start, end]` (both ends included; `end` `None`: still
    /// going) matches. As R4 defines the prefixes on ranges: `eq` the search range holds the
    /// whole target; `gt`/`ge` some of the target lies after / at or after the search value;
    /// `lt`/`le` some of it before / at or before.
    pub fn matches(&self, start: OffsetDateTime, end: Option<OffsetDateTime>) -> bool {
        let within = self.lo <= start && end.is_some_and(|e| e < self.hi);
        match self.prefix {
            Prefix::Eq => within,
            Prefix::Ne => !within,
            Prefix::Gt => end.is_none_or(|e| e >= self.hi),
            Prefix::Ge => end.is_none_or(|e| e >= self.lo),
            Prefix::Lt => start < self.lo,
            Prefix::Le => start < self.hi,
        }
    }

    /// Whether a whole day (a birth date) in `zone` matches.
    pub fn matches_day(&self, day: Date, zone: UtcOffset) -> bool {
        let start = day_start(day, zone);
        self.matches(start, Some(start + Duration::DAY - Duration::NANOSECOND))
    }
}

/// A token search value: `system|code` (`Some(system)`; `|code` gives `Some("")`, "no
/// system") or a bare `code` (`None`: any system).
pub fn parse_token(raw: &str) -> (Option<&str>, &str) {
    match raw.split_once('|') {
        Some((system, code)) => (Some(system), code),
        None => (None, raw),
    }
}

/// Whether a token value matches a coded value (`system`, `code`).
pub fn token_matches(raw: &str, system: &str, code: &str) -> bool {
    match parse_token(raw) {
        (None, c) => c == code,
        (Some(s), c) => s == system && (c.is_empty() || c == code),
    }
}

/// The default string search: the value starts with the text, ignoring case. Chinese names
/// have no word boundaries, so a text inside the name also matches (`秀英` finds `王秀英`).
pub fn string_matches(text: &str, value: &str) -> bool {
    let (t, v) = (text.trim().to_lowercase(), value.to_lowercase());
    !t.is_empty() && v.contains(&t)
}

/// The `_sort` keys a type's search takes: date-like elements only (`-` before a key sorts
/// descending). Types not listed take no `_sort`.
pub const SORTS: &[(&str, &[SortKey])] = &[
    ("Patient", &[SortKey { name: "birthdate", doc: "Patient.birthDate" }]),
    ("Encounter", &[SortKey { name: "date", doc: "Encounter.period.start" }]),
    (
        "DiagnosticReport",
        &[
            SortKey { name: "date", doc: "DiagnosticReport.effectiveDateTime (the specimen or exam time)" },
            SortKey { name: "issued", doc: "DiagnosticReport.issued (the report time)" },
        ],
    ),
    ("Observation", &[SortKey { name: "date", doc: "Observation.effectiveDateTime (the specimen time)" }]),
    ("Claim", &[SortKey { name: "created", doc: "Claim.created (when it was settled)" }]),
    ("ClaimResponse", &[SortKey { name: "created", doc: "ClaimResponse.created" }]),
    // the referral searches sort in the store (`ReferralFilter::sort`), not when a page is cut
    (
        "ServiceRequest",
        &[
            SortKey { name: "authored", doc: "ServiceRequest.authoredOn (when it was requested)" },
            SortKey { name: "_lastUpdated", doc: "meta.lastUpdated (the referral's last step)" },
        ],
    ),
    (
        "Task",
        &[
            SortKey { name: "authored-on", doc: "Task.authoredOn (when the referral was requested)" },
            SortKey { name: "_lastUpdated", doc: "meta.lastUpdated (the referral's last step)" },
        ],
    ),
];

/// Types whose `_sort` is applied by the store's query rather than when a page is cut.
pub const STORE_SORTED: &[&str] = &["ServiceRequest", "Task"];

/// An instant's search range from date values (all must match, each as
/// [`DateParam::matches`] reads its prefix on an instant `[t, t]`): `t` is in
/// `[from, until)` and outside each `except` range (`ne`). Exact, not a superset.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InstantRange {
    pub from: Option<OffsetDateTime>,
    pub until: Option<OffsetDateTime>,
    pub except: Vec<(OffsetDateTime, OffsetDateTime)>,
}

/// The [`InstantRange`] of date values.
pub fn instant_range(dates: &[DateParam]) -> InstantRange {
    let mut r = InstantRange::default();
    let mut later = |t: OffsetDateTime| r.from = Some(r.from.map_or(t, |f| f.max(t)));
    let mut until = None::<OffsetDateTime>;
    let mut earlier = |t: OffsetDateTime| until = Some(until.map_or(t, |u| u.min(t)));
    let mut except = Vec::new();
    for d in dates {
        match d.prefix {
            Prefix::Eq => {
                later(d.lo);
                earlier(d.hi);
            }
            Prefix::Ne => except.push((d.lo, d.hi)),
            Prefix::Gt => later(d.hi),
            Prefix::Ge => later(d.lo),
            Prefix::Lt => earlier(d.lo),
            Prefix::Le => earlier(d.hi),
        }
    }
    InstantRange { until, except, ..r }
}

impl InstantRange {
    pub fn contains(&self, t: OffsetDateTime) -> bool {
        self.from.is_none_or(|f| f <= t)
            && self.until.is_none_or(|u| t < u)
            && self.except.iter().all(|(lo, hi)| t < *lo || t >= *hi)
    }
}

/// A `_sort` key and the element it sorts by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SortKey {
    pub name: &'static str,
    pub doc: &'static str,
}

/// The `_sort` keys of `kind` (empty: no `_sort`).
pub fn sort_keys(kind: &str) -> &'static [SortKey] {
    SORTS.iter().find(|(k, _)| *k == kind).map_or(&[], |(_, keys)| keys)
}

/// One key of a `_sort` value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sort {
    pub key: &'static str,
    pub descending: bool,
}

/// Read a `_sort` value of a search of `kind` (`-date`, `date,-issued`); the error names the
/// key and the keys offered.
pub fn parse_sort(kind: &str, raw: &str) -> Result<Vec<Sort>, String> {
    let keys = sort_keys(kind);
    let offered = || {
        if keys.is_empty() {
            format!("{kind} searches take no _sort")
        } else {
            let names: Vec<&str> = keys.iter().map(|k| k.name).collect();
            format!("{kind} sorts by {} (a leading - sorts descending)", names.join(", "))
        }
    };
    let mut out: Vec<Sort> = Vec::new();
    for part in raw.split(',').map(str::trim) {
        let (descending, name) = match part.strip_prefix('-') {
            Some(n) => (true, n),
            None => (false, part),
        };
        let Some(k) = keys.iter().find(|k| k.name == name) else {
            return Err(format!("_sort key {part:?} is not supported: {}", offered()));
        };
        if out.iter().any(|s| s.key == k.name) {
            return Err(format!("_sort names {name:?} twice"));
        }
        out.push(Sort { key: k.name, descending });
    }
    Ok(out)
}

/// An `_include` (`source:param`, from a match of type `source` to the `target` it
/// references at `path`) or, read from the other side, a `_revinclude` (the `source`
/// resources whose `param` references a match of type `target`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Include {
    pub source: &'static str,
    pub param: &'static str,
    pub target: &'static str,
    /// The element of `source` holding the reference (a list or one).
    pub path: &'static str,
}

const fn inc(source: &'static str, param: &'static str, target: &'static str, path: &'static str) -> Include {
    Include { source, param, target, path }
}

/// The includes we serve: the referral (ServiceRequest ↔ Task, and the patient), result
/// (DiagnosticReport → Observation, and the patient) and claim (ClaimResponse → Claim) chains.
/// A search of `source` takes `_include=source:param`; a search of `target` takes
/// `_revinclude=source:param` when [`REVINCLUDES`] lists it.
pub const INCLUDES: &[Include] = &[
    inc("ServiceRequest", "patient", "Patient", "subject"),
    inc("ServiceRequest", "subject", "Patient", "subject"),
    inc("Task", "focus", "ServiceRequest", "focus"),
    inc("Task", "patient", "Patient", "for"),
    inc("DiagnosticReport", "result", "Observation", "result"),
    inc("DiagnosticReport", "patient", "Patient", "subject"),
    inc("DiagnosticReport", "subject", "Patient", "subject"),
    inc("ClaimResponse", "request", "Claim", "request"),
    inc("ClaimResponse", "patient", "Patient", "patient"),
];

/// The `_revinclude`s we serve (each also a search parameter of its source type, through
/// which the included resources are found).
pub const REVINCLUDES: &[Include] =
    &[inc("Task", "focus", "ServiceRequest", "focus"), inc("ClaimResponse", "request", "Claim", "request")];

/// The `_include` values a search of `kind` takes (`ServiceRequest:patient`).
pub fn includes_of(kind: &str) -> impl Iterator<Item = &'static Include> + '_ {
    INCLUDES.iter().filter(move |i| i.source == kind)
}

/// The `_revinclude` values a search of `kind` takes (`Task:focus`).
pub fn revincludes_of(kind: &str) -> impl Iterator<Item = &'static Include> + '_ {
    REVINCLUDES.iter().filter(move |i| i.target == kind)
}

impl Include {
    /// `Source:param`, as written in `_include` and the CapabilityStatement.
    pub fn value(&self) -> String {
        format!("{}:{}", self.source, self.param)
    }
}

/// Read an `_include` (`rev` false) or `_revinclude` value of a search of `kind`:
/// `Source:param` or `Source:param:Target` (the target must be ours). The error says what
/// is offered.
pub fn parse_include(kind: &str, raw: &str, rev: bool) -> Result<&'static Include, String> {
    let name = if rev { "_revinclude" } else { "_include" };
    let mut parts = raw.trim().splitn(3, ':');
    let (source, param, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""), parts.next());
    let mut offered: Vec<String> = if rev {
        revincludes_of(kind).map(Include::value).collect()
    } else {
        includes_of(kind).map(Include::value).collect()
    };
    let found = if rev {
        revincludes_of(kind).find(|i| i.source == source && i.param == param)
    } else {
        includes_of(kind).find(|i| i.source == source && i.param == param)
    };
    match found {
        Some(i) if target.is_none_or(|t| t == i.target) => Ok(i),
        _ => {
            if offered.is_empty() {
                offered.push("none".into());
            }
            Err(format!("{name}={raw:?} is not supported on {kind}; supported: {}", offered.join(", ")))
        }
    }
}

/// The ids a resource references at `path` as `Target/{id}` (one reference or a list).
pub fn referenced_ids<'a>(resource: &'a serde_json::Value, path: &str, target: &str) -> Vec<&'a str> {
    let one = |v: &'a serde_json::Value| {
        v.get("reference")
            .and_then(serde_json::Value::as_str)
            .and_then(|r| r.strip_prefix(target))
            .and_then(|r| r.strip_prefix('/'))
            .filter(|id| !id.is_empty() && !id.contains('/'))
    };
    match resource.get(path) {
        Some(serde_json::Value::Array(list)) => list.iter().filter_map(one).collect(),
        Some(v) => one(v).into_iter().collect(),
        None => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::{date, datetime, offset};

    const CN: UtcOffset = offset!(+8);

    #[test]
    fn a_date_stands_for_its_whole_precision_in_china_time() {
        let d = parse_date("2024", CN).expect("a date");
        assert_eq!((d.prefix, d.lo, d.hi), (Prefix::Eq, datetime!(2024-01-01 0:00 +8), datetime!(2025-01-01 0:00 +8)));
        let d = parse_date("le2024-12", CN).expect("a date");
        assert_eq!((d.prefix, d.lo, d.hi), (Prefix::Le, datetime!(2024-12-01 0:00 +8), datetime!(2025-01-01 0:00 +8)));
        // 2024 is a leap year: the day after 02-28 is 02-29
        let d = parse_date("ge2024-02-28", CN).expect("a date");
        assert_eq!(d.hi, datetime!(2024-02-29 0:00 +8));
        let d = parse_date("gt2024-03-08T09:30:00Z", CN).expect("a date");
        assert_eq!((d.lo, d.hi), (datetime!(2024-03-08 9:30 UTC), datetime!(2024-03-08 9:30:01 UTC)));
        for bad in ["2024-13", "2024-02-30", "24-01-01", "ap2024", "sa2024", "yesterday", "2024-03-08T09:30"] {
            assert!(parse_date(bad, CN).is_err(), "{bad}");
        }
    }

    #[test]
    fn prefixes_compare_ranges_as_r4_defines_them() {
        // a stay from 2024-03-08 10:00 to 2024-03-12 09:00 (China time)
        let (s, e) = (datetime!(2024-03-08 10:00 +8), Some(datetime!(2024-03-12 9:00 +8)));
        let m = |q: &str| parse_date(q, CN).expect("a date").matches(s, e);
        assert!(m("2024-03") && m("eq2024") && !m("2024-03-08"), "eq: the search range must hold the whole stay");
        assert!(m("ne2024-03-08") && !m("ne2024-03"));
        assert!(m("ge2024-03-12") && !m("ge2024-03-13"), "ge: some of the stay is on or after the day");
        assert!(m("gt2024-03-11") && !m("gt2024-03-12"), "gt: some of it after the whole day");
        assert!(m("le2024-03-08") && !m("le2024-03-07"));
        assert!(m("lt2024-03-09") && !m("lt2024-03-08"), "lt: some of it before the day begins");
        // a visit still going matches every later ge/gt
        let open = parse_date("gt2030-01-01", CN).expect("a date");
        assert!(open.matches(s, None));
        // a birth date is a whole day
        let b = date!(1962 - 03 - 08);
        assert!(parse_date("1962-03-08", CN).expect("a date").matches_day(b, CN));
        assert!(parse_date("ge1962-03-08", CN).expect("a date").matches_day(b, CN));
        assert!(!parse_date("gt1962-03-08", CN).expect("a date").matches_day(b, CN));
        assert!(!parse_date("lt1962-03-08", CN).expect("a date").matches_day(b, CN));
        assert!(parse_date("le1962-03", CN).expect("a date").matches_day(b, CN));
    }

    /// The range is exactly the instants every value matches: each prefix at each precision,
    /// pairs of them, against instants around every edge.
    #[test]
    fn instant_ranges_are_exact() {
        let values = ["2026", "2026-11", "2026-11-15", "2026-11-15T09:30:00+08:00"];
        let raws: Vec<String> =
            values.iter().flat_map(|v| ["", "eq", "ne", "gt", "ge", "lt", "le"].map(|p| format!("{p}{v}"))).collect();
        let parsed: Vec<DateParam> = raws.iter().map(|r| parse_date(r, CN).expect("a date")).collect();
        let steps = [-Duration::DAY, -Duration::SECOND, -Duration::MILLISECOND, Duration::ZERO, Duration::SECOND];
        let times: Vec<OffsetDateTime> =
            parsed.iter().flat_map(|d| [d.lo, d.hi]).flat_map(|e| steps.map(|s| e + s)).collect();
        let mut checked = 0;
        for a in &parsed {
            for b in &parsed {
                let r = instant_range(&[*a, *b]);
                for &t in &times {
                    let want = a.matches(t, Some(t)) && b.matches(t, Some(t));
                    assert_eq!(r.contains(t), want, "{a:?} & {b:?} at {t}");
                    checked += 1;
                }
            }
        }
        assert!(checked > 10_000, "{checked}");
        // by hand: ge the 15th (China time) and lt December, not the 20th
        let r = instant_range(&[
            parse_date("ge2026-11-15", CN).expect("a date"),
            parse_date("lt2026-12", CN).expect("a date"),
            parse_date("ne2026-11-20", CN).expect("a date"),
        ]);
        assert_eq!(r.from, Some(datetime!(2026-11-14 16:00 UTC)));
        assert_eq!(r.until, Some(datetime!(2026-11-30 16:00 UTC)));
        assert_eq!(r.except, vec![(datetime!(2026-11-19 16:00 UTC), datetime!(2026-11-20 16:00 UTC))]);
    }

    #[test]
    fn tokens_and_strings() {
        assert_eq!(parse_token("urn:oid:2.16.156.10011.1.3|511621196203081027").0, Some("urn:oid:2.16.156.10011.1.3"));
        assert!(token_matches("AMB", "http://x", "AMB"));
        assert!(token_matches("http://x|AMB", "http://x", "AMB"));
        assert!(!token_matches("http://y|AMB", "http://x", "AMB"));
        assert!(token_matches("http://x|", "http://x", "IMP"), "system| matches any code of the system");
        assert!(string_matches("秀英", "王秀英") && string_matches("county", "County Hospital"));
        assert!(!string_matches("", "王秀英") && !string_matches("李", "王秀英"));
    }

    #[test]
    fn sort_values_name_declared_keys_only() {
        let s = parse_sort("DiagnosticReport", "-date,issued").expect("a sort");
        assert_eq!(s, vec![Sort { key: "date", descending: true }, Sort { key: "issued", descending: false }]);
        let e = parse_sort("Encounter", "-name").expect_err("not a key");
        assert!(e.contains("\"-name\"") && e.contains("Encounter sorts by date"), "{e}");
        assert!(parse_sort("Organization", "date").expect_err("no sort").contains("take no _sort"));
        assert!(parse_sort("Encounter", "date,-date").is_err(), "a key twice");
        assert!(parse_sort("Encounter", "").is_err());
    }

    #[test]
    fn includes_follow_the_three_chains() {
        assert_eq!(parse_include("ServiceRequest", "ServiceRequest:patient", false).map(|i| i.target), Ok("Patient"));
        assert_eq!(parse_include("Task", "Task:focus:ServiceRequest", false).map(|i| i.path), Ok("focus"));
        assert_eq!(parse_include("ServiceRequest", "Task:focus", true).map(|i| i.source), Ok("Task"));
        assert_eq!(parse_include("Claim", "ClaimResponse:request", true).map(|i| i.path), Ok("request"));
        assert_eq!(
            parse_include("DiagnosticReport", "DiagnosticReport:result", false).map(|i| i.target),
            Ok("Observation")
        );
        // the wrong side, a wrong target, another type's include
        assert!(parse_include("ServiceRequest", "Task:focus", false).is_err());
        assert!(parse_include("Task", "Task:focus:Patient", false).is_err());
        let e = parse_include("Encounter", "Encounter:subject", false).expect_err("none");
        assert!(e.contains("supported: none"), "{e}");
        let r = serde_json::json!({"result": [{"reference": "Observation/a"}, {"reference": "Patient/b"}], "subject": {"reference": "Patient/p"}});
        assert_eq!(referenced_ids(&r, "result", "Observation"), vec!["a"]);
        assert_eq!(referenced_ids(&r, "subject", "Patient"), vec!["p"]);
        assert!(referenced_ids(&r, "focus", "Task").is_empty());
    }

    #[test]
    fn the_tables_agree_with_the_capability_statement() {
        use crate::capability::{Interaction, search_param, support};
        let searched = |k: &str| support(k).is_some_and(|r| r.interactions.contains(&Interaction::SearchType));
        for i in INCLUDES {
            assert!(searched(i.source), "{}: _include on a type not searched", i.value());
            assert!(support(i.target).is_some_and(|r| r.interactions.contains(&Interaction::Read)), "{}", i.value());
        }
        // a _revinclude is served by a search of its source by `param`
        for i in REVINCLUDES {
            assert!(searched(i.target) && search_param(i.source, i.param).is_some(), "{}", i.value());
        }
        // _sort is applied when a page is cut: only types that page (or sort in the store)
        for (kind, _) in SORTS {
            assert!(
                support(kind).is_some_and(|r| r.paged) || STORE_SORTED.contains(kind),
                "{kind} sorts but does not page"
            );
        }
    }
}
