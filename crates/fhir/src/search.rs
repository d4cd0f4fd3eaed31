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
}
