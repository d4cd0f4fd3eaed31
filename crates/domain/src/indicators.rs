//! Reform indicators (issue 8, domain.md §4 M14 and M13): definitions as data, computed from
//! the counters tiercare keeps per facility × month × patient's home county.
//!
//! The definitions are `data/indicators-default.toml` (its header documents every term);
//! [`Definitions::parse`] validates them, every problem named with its path. Counters are kept
//! per calendar month in Asia/Shanghai (UTC+8, no daylight saving since 1991):
//! [`Month::of_millis`]. [`compute`] sums the counters a definition's terms select over a
//! period and scope, and [`colour`] judges the value against the target (red, amber, green).

use std::collections::HashSet;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::{DomainError, FieldError, Problems};
use crate::facility::Tier;

/// The default definitions (embedded).
pub const DEFAULT_TOML: &str = include_str!("../data/indicators-default.toml");

/// Offset of China Standard Time from UTC, in milliseconds.
const CHINA_OFFSET_MS: i64 = 8 * 3_600_000;
/// Longest period an indicator may be read for, in months (ten years).
pub const MAX_PERIOD_MONTHS: i32 = 120;

code_enum! {
    /// Which event a measure is counted from.
    Source { Encounter = "encounter", Settlement = "settlement", Referral = "referral", ResultReuse = "result_reuse" }
}

code_enum! {
    /// One counter kept per facility × month × home county.
    Measure {
        Visits = "visits",
        VisitCostFen = "visit_cost_fen",
        Stays = "stays",
        StayCostFen = "stay_cost_fen",
        FundFen = "fund_fen",
        SettledFen = "settled_fen",
        DrugFen = "drug_fen",
        UpReferrals = "up_referrals",
        DownReferrals = "down_referrals",
        ResultsReused = "results_reused",
        ResultsSavedFen = "results_saved_fen",
    }
}

impl Measure {
    /// Number of measures (the width of [`Counters`]).
    pub const COUNT: usize = 11;

    /// The event this measure is counted from.
    pub fn source(self) -> Source {
        use Measure::*;
        match self {
            Visits | VisitCostFen | Stays | StayCostFen => Source::Encounter,
            FundFen | SettledFen | DrugFen => Source::Settlement,
            UpReferrals | DownReferrals => Source::Referral,
            ResultsReused | ResultsSavedFen => Source::ResultReuse,
        }
    }
    fn index(self) -> usize {
        Measure::ALL.iter().position(|m| *m == self).unwrap_or(0)
    }
}

/// The counters of one cell (or of a sum of cells), indexed by [`Measure`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Counters(pub [i64; Measure::COUNT]);

impl Counters {
    pub fn get(&self, m: Measure) -> i64 {
        self.0[m.index()]
    }
    pub fn add(&mut self, m: Measure, v: i64) {
        self.0[m.index()] += v;
    }
    /// Add every counter of `o`.
    pub fn absorb(&mut self, o: &Counters) {
        for (a, b) in self.0.iter_mut().zip(o.0.iter()) {
            *a += *b;
        }
    }
    pub fn is_zero(&self) -> bool {
        self.0.iter().all(|v| *v == 0)
    }
}

/// Is this national insurance item code a drug? Western drugs start "X", Chinese patent
/// medicines "Z" (国家医保信息业务编码, domain.md §5); consumables ("C") and services are not.
pub fn is_drug_code(code: &str) -> bool {
    code.starts_with('X') || code.starts_with('Z')
}

/// The prefix of GB/T 2260 codes inside an area: a county `511621` is itself, a city
/// `511600` is `5116`, a province `510000` is `51`.
pub fn area_prefix(code: &str) -> &str {
    let mut p = code;
    while p.len() > 2 && p.ends_with("00") {
        p = &p[..p.len() - 2];
    }
    p
}

/// A calendar month (in Asia/Shanghai when derived from an instant).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Month {
    pub year: i32,
    /// 1–12.
    pub month: u8,
}

impl Month {
    /// The month in China of an instant given as Unix milliseconds.
    pub fn of_millis(ms: i64) -> Month {
        Month::of_day_number((ms + CHINA_OFFSET_MS).div_euclid(86_400_000))
    }
    /// The month of a day counted from 1970-01-01 (China days: `(ms + 8 h) / 1 day`).
    pub fn of_day_number(day: i64) -> Month {
        let date = time::Date::from_julian_day(2_440_588 + day as i32).unwrap_or(time::Date::MIN);
        Month { year: date.year(), month: date.month() as u8 }
    }
    /// The month of a date.
    pub fn of_date(d: time::Date) -> Month {
        Month { year: d.year(), month: d.month() as u8 }
    }
    /// `YYYY-MM`, refusing anything else.
    pub fn parse(s: &str) -> Option<Month> {
        let (y, m) = s.split_once('-')?;
        if y.len() != 4 || m.len() != 2 || !y.bytes().chain(m.bytes()).all(|b| b.is_ascii_digit()) {
            return None;
        }
        let (year, month) = (y.parse().ok()?, m.parse().ok()?);
        (1..=12).contains(&month).then_some(Month { year, month })
    }
    /// Months since year 0 (for arithmetic).
    pub fn ordinal(self) -> i32 {
        self.year * 12 + i32::from(self.month) - 1
    }
    pub fn from_ordinal(n: i32) -> Month {
        Month { year: n.div_euclid(12), month: (n.rem_euclid(12) + 1) as u8 }
    }
    pub fn plus(self, months: i32) -> Month {
        Month::from_ordinal(self.ordinal() + months)
    }
}

impl fmt::Display for Month {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}", self.year, self.month)
    }
}

/// A range of whole months, both ends included.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Period {
    pub from: Month,
    pub to: Month,
}

impl Period {
    /// From the query's `from` and `to` (`YYYY-MM`): both required, `from ≤ to`, at most
    /// [`MAX_PERIOD_MONTHS`] months. Every problem is reported.
    pub fn parse(from: Option<&str>, to: Option<&str>) -> Result<Period, DomainError> {
        let mut p = Problems::default();
        let mut month = |field: &str, v: Option<&str>| match v.map(str::trim) {
            None | Some("") => {
                p.add(field, "period.open", format!("{field} is required (YYYY-MM): a period has two ends"));
                None
            }
            Some(s) => Month::parse(s).or_else(|| {
                p.add(field, "period.month", format!("{field} must be a month written YYYY-MM, e.g. 2025-07"));
                None
            }),
        };
        let (f, t) = (month("from", from), month("to", to));
        if let (Some(f), Some(t)) = (f, t) {
            if f > t {
                p.add("to", "period.inverted", format!("the period ends ({t}) before it starts ({f})"));
            } else if t.ordinal() - f.ordinal() + 1 > MAX_PERIOD_MONTHS {
                p.add("to", "period.too_long", format!("a period is at most {MAX_PERIOD_MONTHS} months"));
            }
        }
        p.into_result()?;
        match (f, t) {
            (Some(from), Some(to)) => Ok(Period { from, to }),
            _ => Err(DomainError::field("from", "period.open", "a period has two ends")),
        }
    }
    pub fn months(self) -> impl Iterator<Item = Month> {
        (self.from.ordinal()..=self.to.ordinal()).map(Month::from_ordinal)
    }
    pub fn len(self) -> i32 {
        self.to.ordinal() - self.from.ordinal() + 1
    }
    pub fn is_empty(self) -> bool {
        self.len() <= 0
    }
    /// The same months a year earlier.
    pub fn year_earlier(self) -> Period {
        Period { from: self.from.plus(-12), to: self.to.plus(-12) }
    }
    pub fn contains(self, m: Month) -> bool {
        self.from <= m && m <= self.to
    }
}

code_enum! {
    /// Which patients a term counts.
    PatientSel { Any = "any", Resident = "resident" }
}
code_enum! {
    /// Which facilities a term counts.
    FacilitySel { Any = "any", InCounty = "in_county" }
}
code_enum! {
    /// How an indicator is formed from its terms.
    Kind { Ratio = "ratio", Count = "count", Mean = "mean", Growth = "growth" }
}
code_enum! {
    /// Is a higher value better or a lower one?
    Direction { Higher = "higher", Lower = "lower" }
}
code_enum! {
    /// The period the indicator is usually read for (the reading may be any range of months).
    PeriodUnit { Month = "month", Quarter = "quarter", Year = "year" }
}
code_enum! {
    /// How the value is shown.
    Unit { Percent = "percent", Count = "count", Fen = "fen", Ratio = "ratio" }
}
code_enum! {
    /// The judgement against the target.
    Rag { Red = "red", Amber = "amber", Green = "green", None = "none" }
}

/// One sum of a counter over the cells it selects.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Term {
    pub measure: Measure,
    pub patient: PatientSel,
    pub facility: FacilitySel,
    /// Only facilities of these tiers; empty: every tier.
    pub tiers: Vec<Tier>,
}

/// The target and its colour thresholds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Target {
    /// Green at or above `green`, amber at or above `amber`, red below.
    AtLeast { green: f64, amber: f64 },
    /// Green at or below `green`, amber at or below `amber`, red above.
    AtMost { green: f64, amber: f64 },
    /// Judged against the same months a year earlier, in the definition's direction.
    Trend,
}

/// One indicator, validated.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Definition {
    pub id: String,
    pub zh: String,
    pub en: String,
    pub kind: Kind,
    pub numerator: Term,
    pub denominator: Option<Term>,
    pub period: PeriodUnit,
    pub direction: Direction,
    pub unit: Unit,
    pub target: Target,
    /// Is the indicator meaningful for one facility (shown in the facility drill-down)?
    pub facility_level: bool,
    /// The rule it comes from (domain.md).
    pub source: String,
}

/// The validated set, in file order.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Definitions(pub Vec<Definition>);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    indicator: Vec<RawDefinition>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDefinition {
    id: String,
    zh: String,
    en: String,
    kind: String,
    numerator: RawTerm,
    denominator: Option<RawTerm>,
    period: String,
    direction: String,
    unit: String,
    target: RawTarget,
    facility_level: bool,
    source: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTerm {
    measure: String,
    patient: Option<String>,
    facility: Option<String>,
    tiers: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTarget {
    at_least: Option<f64>,
    amber_at_least: Option<f64>,
    at_most: Option<f64>,
    amber_at_most: Option<f64>,
    trend: Option<bool>,
}

/// Parse `s` as one of `parse`'s codes, or record why not.
fn code<T>(
    p: &mut Problems,
    field: &str,
    what: &str,
    s: &str,
    parse: fn(&str) -> Option<T>,
    all: &[&str],
) -> Option<T> {
    let v = parse(s);
    if v.is_none() {
        p.add(field, &format!("indicator.{what}"), format!("unknown {what} '{s}' (one of: {})", all.join(", ")));
    }
    v
}

fn names<T: Copy>(all: &[T], f: fn(T) -> &'static str) -> Vec<&'static str> {
    all.iter().map(|x| f(*x)).collect()
}

fn term(p: &mut Problems, at: &str, t: &RawTerm) -> Option<Term> {
    let measure =
        code(p, &format!("{at}.measure"), "measure", &t.measure, Measure::parse, &names(Measure::ALL, Measure::as_str));
    let patient = code(
        p,
        &format!("{at}.patient"),
        "patient",
        t.patient.as_deref().unwrap_or("any"),
        PatientSel::parse,
        &names(PatientSel::ALL, PatientSel::as_str),
    );
    let facility = code(
        p,
        &format!("{at}.facility"),
        "facility",
        t.facility.as_deref().unwrap_or("any"),
        FacilitySel::parse,
        &names(FacilitySel::ALL, FacilitySel::as_str),
    );
    let tier_names: Vec<&str> = Tier::ALL.iter().map(|t| t.as_str()).collect();
    let tiers: Vec<Option<Tier>> = t
        .tiers
        .iter()
        .flatten()
        .map(|s| code(p, &format!("{at}.tiers"), "tier", s, Tier::parse, &tier_names))
        .collect();
    let tiers: Option<Vec<Tier>> = tiers.into_iter().collect();
    Some(Term { measure: measure?, patient: patient?, facility: facility?, tiers: tiers? })
}

fn target(p: &mut Problems, at: &str, t: &RawTarget, direction: Option<Direction>) -> Option<Target> {
    let field = format!("{at}.target");
    let out = match (t.at_least, t.amber_at_least, t.at_most, t.amber_at_most, t.trend) {
        (Some(green), Some(amber), None, None, None) if amber <= green => Some(Target::AtLeast { green, amber }),
        (None, None, Some(green), Some(amber), None) if amber >= green => Some(Target::AtMost { green, amber }),
        (None, None, None, None, Some(true)) => Some(Target::Trend),
        _ => None,
    };
    match (out, direction) {
        (None, _) => p.add(&field, "indicator.target", "a target is { at_least, amber_at_least ≤ at_least }, { at_most, amber_at_most ≥ at_most } or { trend = true }"),
        (Some(Target::AtLeast { .. }), Some(Direction::Lower)) | (Some(Target::AtMost { .. }), Some(Direction::Higher)) => {
            p.add(&field, "indicator.target_direction", "the target's bound contradicts the direction (at_least needs higher, at_most lower)")
        }
        _ => {}
    }
    out
}

fn definition(p: &mut Problems, k: usize, r: &RawDefinition) -> Option<Definition> {
    let at = format!("indicator[{k}]");
    if r.id.is_empty() || !r.id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_') {
        p.add(&format!("{at}.id"), "indicator.id", "an id is lower-case letters, digits and _");
    }
    for (f, v) in [("zh", &r.zh), ("en", &r.en), ("source", &r.source)] {
        if v.trim().is_empty() {
            p.add(&format!("{at}.{f}"), "indicator.required", format!("{f} must not be empty"));
        }
    }
    let kind = code(p, &format!("{at}.kind"), "kind", &r.kind, Kind::parse, &names(Kind::ALL, Kind::as_str));
    let direction = code(
        p,
        &format!("{at}.direction"),
        "direction",
        &r.direction,
        Direction::parse,
        &names(Direction::ALL, Direction::as_str),
    );
    let period = code(
        p,
        &format!("{at}.period"),
        "period",
        &r.period,
        PeriodUnit::parse,
        &names(PeriodUnit::ALL, PeriodUnit::as_str),
    );
    let unit = code(p, &format!("{at}.unit"), "unit", &r.unit, Unit::parse, &names(Unit::ALL, Unit::as_str));
    let numerator = term(p, &format!("{at}.numerator"), &r.numerator);
    let denominator = r.denominator.as_ref().map(|d| term(p, &format!("{at}.denominator"), d));
    match (kind, &denominator) {
        (Some(Kind::Count), Some(_)) => {
            p.add(&format!("{at}.denominator"), "indicator.denominator", "a count has no denominator")
        }
        (Some(Kind::Ratio | Kind::Mean | Kind::Growth), None) => {
            p.add(&format!("{at}.denominator"), "indicator.denominator", "a ratio, mean or growth needs a denominator")
        }
        _ => {}
    }
    let target = target(p, &at, &r.target, direction);
    Some(Definition {
        id: r.id.clone(),
        zh: r.zh.clone(),
        en: r.en.clone(),
        kind: kind?,
        numerator: numerator?,
        denominator: match denominator {
            Some(d) => Some(d?),
            None => None,
        },
        period: period?,
        direction: direction?,
        unit: unit?,
        target: target?,
        facility_level: r.facility_level,
        source: r.source.clone(),
    })
}

impl Definitions {
    /// Parse and validate a definitions file; every problem is reported with its path.
    pub fn parse(text: &str) -> Result<Definitions, DomainError> {
        let raw: RawFile = toml::from_str(text)
            .map_err(|e| DomainError::Invalid(vec![FieldError::new("indicator", "indicator.toml", e.message())]))?;
        let mut p = Problems::default();
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        for (k, r) in raw.indicator.iter().enumerate() {
            if !seen.insert(r.id.as_str()) {
                p.add(&format!("indicator[{k}].id"), "indicator.duplicate", format!("id '{}' is defined twice", r.id));
            }
            out.extend(definition(&mut p, k, r));
        }
        if raw.indicator.is_empty() {
            p.add("indicator", "indicator.empty", "no indicator is defined");
        }
        p.into_result()?;
        Ok(Definitions(out))
    }
    /// The embedded default set.
    pub fn default_set() -> Definitions {
        // validated by a test; an invalid embedded file is a build defect
        Definitions::parse(DEFAULT_TOML).unwrap_or(Definitions(Vec::new()))
    }
    pub fn get(&self, id: &str) -> Option<&Definition> {
        self.0.iter().find(|d| d.id == id)
    }
}

/// One cell of counters as read for a scope: a facility's month for one home county, with
/// what the terms select on already decided.
#[derive(Debug, Clone, PartialEq)]
pub struct Cell {
    pub tier: Tier,
    /// The facility is in the community's county and inside the scope read.
    pub in_scope: bool,
    /// The patients' home county is the community's county.
    pub resident: bool,
    pub month: Month,
    pub counters: Counters,
}

impl Term {
    fn selects(&self, c: &Cell) -> bool {
        (self.patient == PatientSel::Any || c.resident)
            && (self.facility == FacilitySel::Any || c.in_scope)
            && (self.tiers.is_empty() || self.tiers.contains(&c.tier))
    }
    /// The sum of this term's counter over the cells of the period it selects.
    pub fn sum(&self, cells: &[Cell], period: Period) -> i64 {
        cells.iter().filter(|c| period.contains(c.month) && self.selects(c)).map(|c| c.counters.get(self.measure)).sum()
    }
}

/// An indicator's value for one period: the exact sums and the value they give.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Value {
    pub numerator: i64,
    /// `None` for a count.
    pub denominator: Option<i64>,
    /// The value (a fraction for percent, fen for a mean); `None` when the denominator is 0.
    pub value: Option<f64>,
}

fn mean(num: i64, den: i64) -> Option<f64> {
    (den != 0).then(|| num as f64 / den as f64)
}

/// The value of `d` over `period` from `cells` (which must include the year-earlier months
/// for a growth).
pub fn compute(d: &Definition, cells: &[Cell], period: Period) -> Value {
    let num = d.numerator.sum(cells, period);
    let den = d.denominator.as_ref().map(|t| t.sum(cells, period));
    let value = match (d.kind, den) {
        (Kind::Count, _) => Some(num as f64),
        (Kind::Growth, Some(den)) => {
            let before = Period::year_earlier(period);
            let (pn, pd) = (d.numerator.sum(cells, before), d.denominator.as_ref().map_or(0, |t| t.sum(cells, before)));
            match (mean(num, den), mean(pn, pd)) {
                (Some(now), Some(then)) if then != 0.0 => Some(now / then - 1.0),
                _ => None,
            }
        }
        (_, Some(den)) => mean(num, den),
        (_, None) => None,
    };
    Value { numerator: num, denominator: den, value }
}

/// Does `d` need the year-earlier months to be judged or computed?
pub fn needs_year_earlier(d: &Definition) -> bool {
    d.kind == Kind::Growth || d.target == Target::Trend
}

/// Red, amber or green for `value`, against the same indicator a year earlier (`before`)
/// when the target is a trend. No value: no colour.
pub fn colour(d: &Definition, value: Option<f64>, before: Option<f64>) -> Rag {
    let Some(v) = value else { return Rag::None };
    match d.target {
        Target::AtLeast { green, amber } => {
            if v >= green {
                Rag::Green
            } else if v >= amber {
                Rag::Amber
            } else {
                Rag::Red
            }
        }
        Target::AtMost { green, amber } => {
            if v <= green {
                Rag::Green
            } else if v <= amber {
                Rag::Amber
            } else {
                Rag::Red
            }
        }
        Target::Trend => match before {
            None => Rag::None,
            Some(b) => {
                let better = match d.direction {
                    Direction::Higher => v - b,
                    Direction::Lower => b - v,
                };
                // equal within a part in ten thousand of the earlier value: amber
                if better.abs() <= b.abs() * 1e-4 {
                    Rag::Amber
                } else if better > 0.0 {
                    Rag::Green
                } else {
                    Rag::Red
                }
            }
        },
    }
}

/// One indicator as read: its value, the year-earlier value when relevant, and the colour.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Reading {
    pub id: String,
    pub current: Value,
    pub year_earlier: Option<Value>,
    pub rag: Rag,
}

/// Read `d` over `period`: value, the year-earlier value (for trends and growth) and colour.
pub fn read(d: &Definition, cells: &[Cell], period: Period) -> Reading {
    let current = compute(d, cells, period);
    let year_earlier = (d.target == Target::Trend).then(|| compute(d, cells, period.year_earlier()));
    let rag = colour(d, current.value, year_earlier.as_ref().and_then(|v| v.value));
    Reading { id: d.id.clone(), current, year_earlier, rag }
}

#[cfg(test)]
mod tests;
