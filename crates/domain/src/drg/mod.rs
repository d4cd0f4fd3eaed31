//! A table-driven DRG grouper (payment reform, domain.md M9; issue 9 item 2).
//!
//! The grouping procedure is data: a scheme JSON document (format `chs-drg-scheme/1`, defined in
//! `shared/data/chs-drg-1.1/SCHEME.md`) plus the code tables it names in `files` (`MCC`, `CC`,
//! `CCE`, `SS_VALID`, optionally `DRG_NAMES`). The caller reads the files; this module only parses,
//! validates and groups, so it does no I/O. CHS-DRG 1.1, 2.0 and local variants are different data.
//!
//! # Table format (summary of SCHEME.md)
//! * Each table text has one entry per line, `CODE<space>VALUE`; the key is the text before the
//!   first space. `MCC`/`CC` values are exclusion-group ids, `CCE` maps a principal diagnosis to its
//!   exclusion group, `SS_VALID` lists operating-room procedures, `DRG_NAMES` gives labels.
//! * `checks` (data checks, in order), `mdc_order`, `mdcs[MDC] = {entry, adrgs}`; an MDC is entered
//!   when every key of its `entry` holds (`principal_dx_in`, `principal_proc_in`, `sex`,
//!   `age_years`, `trauma_regions` + `min_regions`). Inside an entered MDC the first ADRG whose
//!   `rule` holds is taken; if none holds the next MDC is tried. Inside the ADRG the first `drgs`
//!   pair whose split (`always`, `has_mcc`, `has_mcc_or_cc`) holds gives the DRG.
//! * A code list is a JSON array of strings or `"@NAME"` (the key set of table `NAME`).
//!
//! [`Scheme::load`] validates everything it can (unknown rule types, keys and checks, tables that
//! are referenced but not declared or not supplied, MDCs in `mdc_order` without a definition,
//! defined MDCs that are never tried, ADRGs/DRGs placed after an `always` one, an ADRG whose last
//! split is not `always`, duplicates) and reports the JSON path of the offending element.
//! [`Scheme::group`] is total and deterministic: every [`Stay`] gets exactly one [`Grouping`].

mod load;
pub mod weights;

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

pub use load::{SchemeError, SchemeErrorKind};

/// One inpatient stay as the grouper sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stay {
    /// 1 male, 2 female (anything else fails the `sex_is_1_or_2` check).
    pub sex: u8,
    /// Whole years; `None` when the record has no usable age (fails `age_present`).
    pub age: Option<u32>,
    /// Age in days (needed for newborns).
    pub age_days: Option<u32>,
    /// Birth weight in grams (needed for newborns).
    pub weight_g: Option<u32>,
    /// Diagnosis codes, principal first.
    pub diagnoses: Vec<String>,
    /// Procedure codes, principal first (may be empty).
    pub procedures: Vec<String>,
}

/// How a stay came out of the grouper.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupingStatus {
    /// Placed in an MDC, ADRG and DRG.
    Grouped,
    /// A data check of the scheme failed (`checks`); no group.
    CheckFailed {
        /// The check's name in the scheme, e.g. `age0_needs_ageday`.
        check: String,
        /// Why it failed.
        reason: String,
    },
    /// The record is valid but no MDC yielded an ADRG.
    Ungroupable {
        /// Why.
        reason: String,
    },
}

impl GroupingStatus {
    /// The key of this status in the scheme's `outcomes` (`grouped`, `check_failed`, `ungroupable`).
    pub fn outcome_key(&self) -> &'static str {
        match self {
            GroupingStatus::Grouped => "grouped",
            GroupingStatus::CheckFailed { .. } => "check_failed",
            GroupingStatus::Ungroupable { .. } => "ungroupable",
        }
    }
}

/// The result of grouping one stay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grouping {
    /// Grouped, or why not.
    pub status: GroupingStatus,
    /// e.g. `MDCF` (only when grouped).
    pub mdc: Option<String>,
    /// e.g. `FM1` (only when grouped).
    pub adrg: Option<String>,
    /// e.g. `FM13` (only when grouped).
    pub drg: Option<String>,
    /// The rules that placed (or failed to place) the case, in order.
    pub trace: Vec<String>,
}

// ---------------------------------------------------------------------------------------------
// internals shared with the loader

/// FxHash: a fast, deterministic hasher for short code strings (no DoS concern: scheme data).
#[derive(Default, Clone, Copy)]
pub(crate) struct FxHasher {
    hash: u64,
}

const FX_SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl FxHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        self.hash = (self.hash.rotate_left(5) ^ word).wrapping_mul(FX_SEED);
    }
}

impl Hasher for FxHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            self.add(c.iter().fold(0u64, |a, &b| (a << 8) | u64::from(b)));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            self.add(rest.iter().fold(0u64, |a, &b| (a << 8) | u64::from(b)));
        }
    }
    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }
    #[inline]
    fn finish(&self) -> u64 {
        self.hash
    }
}

pub(crate) type FxMap<K, V> = HashMap<K, V, BuildHasherDefault<FxHasher>>;

/// "No value" in the dense per-code tables.
pub(crate) const NONE: u32 = u32::MAX;

/// A set of interned code ids (sorted, deduplicated).
#[derive(Debug, Clone, Default)]
pub(crate) struct CodeSet {
    ids: Vec<u32>,
}

impl CodeSet {
    pub(crate) fn new(mut ids: Vec<u32>) -> Self {
        ids.sort_unstable();
        ids.dedup();
        CodeSet { ids }
    }
    #[inline]
    fn contains(&self, id: Option<u32>) -> bool {
        id.is_some_and(|id| self.ids.binary_search(&id).is_ok())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Check {
    SexIs1Or2,
    AgePresent,
    Age0NeedsAgeday,
    NewbornNeedsWeight,
    DxPresent,
}

impl Check {
    pub(crate) fn parse(name: &str) -> Option<Check> {
        Some(match name {
            "sex_is_1_or_2" => Check::SexIs1Or2,
            "age_present" => Check::AgePresent,
            "age0_needs_ageday" => Check::Age0NeedsAgeday,
            "newborn_needs_weight" => Check::NewbornNeedsWeight,
            "dx_present" => Check::DxPresent,
            _ => return None,
        })
    }
    fn name(self) -> &'static str {
        match self {
            Check::SexIs1Or2 => "sex_is_1_or_2",
            Check::AgePresent => "age_present",
            Check::Age0NeedsAgeday => "age0_needs_ageday",
            Check::NewbornNeedsWeight => "newborn_needs_weight",
            Check::DxPresent => "dx_present",
        }
    }
    fn failure(self, stay: &Stay) -> Option<String> {
        match self {
            Check::SexIs1Or2 => (stay.sex != 1 && stay.sex != 2).then(|| format!("sex is {}, not 1 or 2", stay.sex)),
            Check::AgePresent => stay.age.is_none().then(|| "age is missing".to_owned()),
            Check::Age0NeedsAgeday => (stay.age == Some(0) && stay.age_days.is_none())
                .then(|| "age is 0 but age in days is missing".to_owned()),
            Check::NewbornNeedsWeight => {
                (stay.age == Some(0) && stay.age_days.is_some_and(|d| d <= 28) && stay.weight_g.is_none())
                    .then(|| "newborn (age in days <= 28) without birth weight".to_owned())
            }
            Check::DxPresent => stay.diagnoses.is_empty().then(|| "no diagnosis".to_owned()),
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) enum EntryCond {
    PrincipalDxIn(CodeSet),
    PrincipalProcIn(CodeSet),
    Sex(u8),
    AgeYears(u32),
    /// code id -> region index (sorted by code id); region names; minimum distinct regions.
    TraumaRegions {
        map: Vec<(u32, u16)>,
        names: Vec<String>,
        min: usize,
    },
}

#[derive(Debug, Clone)]
pub(crate) struct ProcGroups {
    /// code id -> label index, sorted by code id.
    pub(crate) map: Vec<(u32, u8)>,
    pub(crate) labels: Vec<String>,
    /// Each alternative as a bit mask of label indices.
    pub(crate) require_any: Vec<u64>,
}

#[derive(Debug, Clone)]
pub(crate) enum Rule {
    Always,
    PrincipalDxIn(CodeSet),
    PrincipalProcIn(CodeSet),
    PrincipalDxAndPrincipalProc(CodeSet, CodeSet),
    TwoProcsIntersect(CodeSet, CodeSet),
    PrincipalDxAndTwoProcsIntersect(CodeSet, CodeSet, CodeSet),
    PrincipalDxAndProcGroups(CodeSet, ProcGroups),
    PrincipalProcInNewborn(CodeSet),
    PrincipalDxInNewborn(CodeSet),
    AnyDxInNewbornWeight { dx: CodeSet, min: Option<u32>, max: Option<u32> },
    HasValidOrProc,
    AnyDxInAndValidOrProc(CodeSet),
    NoValidOrProc,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Split {
    Always,
    HasMcc,
    HasMccOrCc,
}

#[derive(Debug, Clone)]
pub(crate) struct Adrg {
    pub(crate) code: String,
    pub(crate) rule: Rule,
    pub(crate) drgs: Vec<(String, Split)>,
}

#[derive(Debug, Clone)]
pub(crate) struct Mdc {
    pub(crate) code: String,
    pub(crate) entry: Vec<EntryCond>,
    pub(crate) adrgs: Vec<Adrg>,
}

#[derive(Debug, Clone)]
pub(crate) struct Outcomes {
    pub(crate) grouped: String,
    pub(crate) ungroupable: String,
    pub(crate) check_failed: String,
}

/// A loaded, validated grouping scheme. Build it with [`Scheme::load`].
#[derive(Debug, Clone)]
pub struct Scheme {
    pub(crate) name: String,
    pub(crate) outcomes: Outcomes,
    pub(crate) checks: Vec<Check>,
    pub(crate) mdcs: Vec<Mdc>,
    pub(crate) codes: FxMap<Box<str>, u32>,
    /// Dense per-code-id tables (`NONE` = absent).
    pub(crate) mcc: Vec<u32>,
    pub(crate) cc: Vec<u32>,
    pub(crate) cce: Vec<u32>,
    pub(crate) ss_valid: Vec<bool>,
    /// Exclusion-group id strings, indexed by the values stored in `mcc`/`cc`/`cce`.
    pub(crate) excl_groups: Vec<String>,
    pub(crate) drg_names: FxMap<String, String>,
}

/// A stay with its codes interned.
struct Ctx<'a> {
    stay: &'a Stay,
    dx: Vec<Option<u32>>,
    px: Vec<Option<u32>>,
}

impl Ctx<'_> {
    #[inline]
    fn dx0(&self) -> Option<u32> {
        self.dx.first().copied().flatten()
    }
    #[inline]
    fn px0(&self) -> Option<u32> {
        self.px.first().copied().flatten()
    }
    fn newborn(&self) -> bool {
        self.stay.age_days.is_some_and(|d| d <= 28)
    }
    fn dx_name(&self, i: usize) -> &str {
        self.stay.diagnoses.get(i).map_or("", String::as_str)
    }
    fn px_name(&self, i: usize) -> &str {
        self.stay.procedures.get(i).map_or("", String::as_str)
    }
    fn first_dx_in(&self, set: &CodeSet) -> Option<usize> {
        self.dx.iter().position(|&id| set.contains(id))
    }
    fn first_px_in(&self, set: &CodeSet) -> Option<usize> {
        self.px.iter().position(|&id| set.contains(id))
    }
}

/// What the secondary diagnoses contribute (indices into `dx`).
#[derive(Default)]
struct Complications {
    principal_group: Option<u32>,
    mcc: Option<usize>,
    mcc_excluded: Option<usize>,
    cc: Option<usize>,
    cc_excluded: Option<usize>,
}

/// tiercare's own small sample scheme (`data/drg-sample/`): shaped like CHS-DRG but written by us
/// for tests and the demo (its groups cover the generated county's stays). The real CHS-DRG tables
/// are loaded by users.
pub const SAMPLE_SCHEME_JSON: &str = include_str!("../../data/drg-sample/scheme.json");

/// The sample scheme's tables, by file name.
pub const SAMPLE_TABLES: [(&str, &str); 5] = [
    ("MCC.dat", include_str!("../../data/drg-sample/MCC.dat")),
    ("CC.dat", include_str!("../../data/drg-sample/CC.dat")),
    ("CCE.dat", include_str!("../../data/drg-sample/CCE.dat")),
    ("SS_VALID.dat", include_str!("../../data/drg-sample/SS_VALID.dat")),
    ("DRG.dat", include_str!("../../data/drg-sample/DRG.dat")),
];

/// Load the embedded sample scheme ([`SAMPLE_SCHEME_JSON`]).
pub fn sample_scheme() -> Result<Scheme, SchemeError> {
    let tables = SAMPLE_TABLES.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
    Scheme::load(SAMPLE_SCHEME_JSON, &tables)
}

impl Scheme {
    /// Parse and validate a scheme; `tables` maps a table's name (`MCC`) or its file name
    /// (`MCC.dat`, as given in the scheme's `files`) to the file's text.
    pub fn load(scheme_json: &str, tables: &HashMap<String, String>) -> Result<Scheme, SchemeError> {
        load::load(scheme_json, tables)
    }

    /// The scheme's name (`scheme` key), e.g. `CHS-DRG 1.1`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The scheme's label for a status (`outcomes`), e.g. `分组成功` for grouped.
    pub fn outcome_label(&self, status: &GroupingStatus) -> &str {
        match status {
            GroupingStatus::Grouped => &self.outcomes.grouped,
            GroupingStatus::CheckFailed { .. } => &self.outcomes.check_failed,
            GroupingStatus::Ungroupable { .. } => &self.outcomes.ungroupable,
        }
    }

    /// The DRG's name from the `DRG_NAMES` table, if it was supplied.
    pub fn drg_name(&self, drg: &str) -> Option<&str> {
        self.drg_names.get(drg).map(String::as_str)
    }

    /// Number of distinct codes the scheme knows (lists and tables).
    pub fn code_count(&self) -> usize {
        self.codes.len()
    }

    #[inline]
    fn id(&self, code: &str) -> Option<u32> {
        self.codes.get(code).copied()
    }

    #[inline]
    fn valid_or(&self, id: Option<u32>) -> bool {
        id.and_then(|i| self.ss_valid.get(i as usize).copied()).unwrap_or(false)
    }

    #[inline]
    fn dense(table: &[u32], id: Option<u32>) -> Option<u32> {
        id.and_then(|i| table.get(i as usize).copied()).filter(|&v| v != NONE)
    }

    /// Group one stay. Never panics; every stay gets exactly one result.
    pub fn group(&self, stay: &Stay) -> Grouping {
        let mut trace = Vec::new();
        for &check in &self.checks {
            if let Some(reason) = check.failure(stay) {
                trace.push(format!("check {} failed: {reason}", check.name()));
                return Grouping {
                    status: GroupingStatus::CheckFailed { check: check.name().to_owned(), reason },
                    mdc: None,
                    adrg: None,
                    drg: None,
                    trace,
                };
            }
        }
        let ctx = Ctx {
            stay,
            dx: stay.diagnoses.iter().map(|c| self.id(c)).collect(),
            px: stay.procedures.iter().map(|c| self.id(c)).collect(),
        };
        for mdc in &self.mdcs {
            if !mdc.entry.iter().all(|c| self.entry_holds(c, &ctx)) {
                continue;
            }
            let Some(adrg) = mdc.adrgs.iter().find(|a| self.rule_holds(&a.rule, &ctx)) else {
                trace.push(format!(
                    "{}: entered ({}) but none of its {} ADRG rules held; trying the next MDC",
                    mdc.code,
                    self.explain_entry(mdc, &ctx),
                    mdc.adrgs.len()
                ));
                continue;
            };
            trace.push(format!("{}: {}", mdc.code, self.explain_entry(mdc, &ctx)));
            trace.push(format!("ADRG {}: {}", adrg.code, self.explain_rule(&adrg.rule, &ctx)));
            let comp = self.complications(&ctx);
            let chosen = adrg
                .drgs
                .iter()
                .find(|(_, split)| match split {
                    Split::Always => true,
                    Split::HasMcc => comp.mcc.is_some(),
                    Split::HasMccOrCc => comp.mcc.is_some() || comp.cc.is_some(),
                })
                .or(adrg.drgs.last());
            let Some((drg, split)) = chosen else {
                // The loader rejects an ADRG without DRGs; stay total anyway.
                trace.push(format!("ADRG {} has no DRG", adrg.code));
                return Grouping {
                    status: GroupingStatus::Ungroupable { reason: format!("ADRG {} has no DRG", adrg.code) },
                    mdc: None,
                    adrg: None,
                    drg: None,
                    trace,
                };
            };
            trace.push(format!("DRG {drg}: {}", self.explain_split(*split, &comp, &ctx)));
            return Grouping {
                status: GroupingStatus::Grouped,
                mdc: Some(mdc.code.clone()),
                adrg: Some(adrg.code.clone()),
                drg: Some(drg.clone()),
                trace,
            };
        }
        let reason = match stay.diagnoses.first() {
            Some(dx) if ctx.dx0().is_none() => format!("principal diagnosis {dx} is not a code of this scheme"),
            Some(dx) => format!("no MDC accepted principal diagnosis {dx} with an ADRG"),
            None => "no principal diagnosis".to_owned(),
        };
        trace.push(reason.clone());
        Grouping { status: GroupingStatus::Ungroupable { reason }, mdc: None, adrg: None, drg: None, trace }
    }

    fn entry_holds(&self, cond: &EntryCond, ctx: &Ctx<'_>) -> bool {
        match cond {
            EntryCond::PrincipalDxIn(set) => set.contains(ctx.dx0()),
            EntryCond::PrincipalProcIn(set) => set.contains(ctx.px0()),
            EntryCond::Sex(s) => ctx.stay.sex == *s,
            EntryCond::AgeYears(a) => ctx.stay.age == Some(*a),
            EntryCond::TraumaRegions { map, min, .. } => Self::trauma_regions(map, ctx).count_ones() as usize >= *min,
        }
    }

    /// Bit mask of the distinct body regions of the stay's diagnoses (regions beyond 128 fold).
    fn trauma_regions(map: &[(u32, u16)], ctx: &Ctx<'_>) -> u128 {
        let mut mask = 0u128;
        for id in ctx.dx.iter().flatten() {
            if let Some(&(_, r)) = map.binary_search_by_key(id, |&(c, _)| c).ok().and_then(|i| map.get(i)) {
                mask |= 1u128 << (r % 128);
            }
        }
        mask
    }

    fn explain_entry(&self, mdc: &Mdc, ctx: &Ctx<'_>) -> String {
        let parts: Vec<String> = mdc
            .entry
            .iter()
            .map(|c| match c {
                EntryCond::PrincipalDxIn(_) => format!("principal diagnosis {} in entry list", ctx.dx_name(0)),
                EntryCond::PrincipalProcIn(_) => format!("principal procedure {} in entry list", ctx.px_name(0)),
                EntryCond::Sex(s) => format!("sex {s}"),
                EntryCond::AgeYears(a) => format!("age {a} years"),
                EntryCond::TraumaRegions { map, names, min } => {
                    let mask = Self::trauma_regions(map, ctx);
                    let regions: Vec<&str> = names
                        .iter()
                        .enumerate()
                        .filter(|(i, _)| mask & (1u128 << (i % 128)) != 0)
                        .map(|(_, n)| n.as_str())
                        .collect();
                    format!("trauma in {} regions ({}) >= {min}", regions.len(), regions.join(", "))
                }
            })
            .collect();
        if parts.is_empty() { "no entry condition".to_owned() } else { parts.join(", ") }
    }

    fn rule_holds(&self, rule: &Rule, ctx: &Ctx<'_>) -> bool {
        match rule {
            Rule::Always => true,
            Rule::PrincipalDxIn(dx) => dx.contains(ctx.dx0()),
            Rule::PrincipalProcIn(px) => px.contains(ctx.px0()),
            Rule::PrincipalDxAndPrincipalProc(dx, px) => dx.contains(ctx.dx0()) && px.contains(ctx.px0()),
            Rule::TwoProcsIntersect(p1, p2) => ctx.first_px_in(p1).is_some() && ctx.first_px_in(p2).is_some(),
            Rule::PrincipalDxAndTwoProcsIntersect(dx, p1, p2) => {
                dx.contains(ctx.dx0()) && ctx.first_px_in(p1).is_some() && ctx.first_px_in(p2).is_some()
            }
            Rule::PrincipalDxAndProcGroups(dx, groups) => {
                dx.contains(ctx.dx0()) && {
                    let got = Self::proc_group_mask(groups, ctx);
                    groups.require_any.iter().any(|&need| need & !got == 0)
                }
            }
            Rule::PrincipalProcInNewborn(px) => px.contains(ctx.px0()) && ctx.newborn(),
            Rule::PrincipalDxInNewborn(dx) => dx.contains(ctx.dx0()) && ctx.newborn(),
            Rule::AnyDxInNewbornWeight { dx, min, max } => {
                ctx.first_dx_in(dx).is_some()
                    && ctx.newborn()
                    && ctx
                        .stay
                        .weight_g
                        .is_some_and(|w| w != 0 && min.is_none_or(|m| m <= w) && max.is_none_or(|m| w < m))
            }
            Rule::HasValidOrProc => self.valid_or(ctx.px0()),
            Rule::AnyDxInAndValidOrProc(dx) => ctx.first_dx_in(dx).is_some() && self.valid_or(ctx.px0()),
            Rule::NoValidOrProc => !ctx.px.iter().any(|&id| self.valid_or(id)),
        }
    }

    fn proc_group_mask(groups: &ProcGroups, ctx: &Ctx<'_>) -> u64 {
        let mut got = 0u64;
        for id in ctx.px.iter().flatten() {
            if let Some(&(_, l)) = groups.map.binary_search_by_key(id, |&(c, _)| c).ok().and_then(|i| groups.map.get(i))
            {
                got |= 1u64 << (l % 64);
            }
        }
        got
    }

    fn explain_rule(&self, rule: &Rule, ctx: &Ctx<'_>) -> String {
        let dx0 = || format!("principal diagnosis {} in dx list", ctx.dx_name(0));
        let px0 = || format!("principal procedure {} in proc list", ctx.px_name(0));
        let any_px = |set: &CodeSet, list: &str| {
            let i = ctx.first_px_in(set).unwrap_or(0);
            format!("procedure {} in {list} list", ctx.px_name(i))
        };
        let newborn = || format!("newborn (age {} days)", ctx.stay.age_days.unwrap_or_default());
        match rule {
            Rule::Always => "always".to_owned(),
            Rule::PrincipalDxIn(_) => dx0(),
            Rule::PrincipalProcIn(_) => px0(),
            Rule::PrincipalDxAndPrincipalProc(_, _) => format!("{} and {}", dx0(), px0()),
            Rule::TwoProcsIntersect(p1, p2) => format!("{} and {}", any_px(p1, "proc"), any_px(p2, "proc2")),
            Rule::PrincipalDxAndTwoProcsIntersect(_, p1, p2) => {
                format!("{}, {} and {}", dx0(), any_px(p1, "proc"), any_px(p2, "proc2"))
            }
            Rule::PrincipalDxAndProcGroups(_, groups) => {
                let got = Self::proc_group_mask(groups, ctx);
                let labels: Vec<&str> = groups
                    .labels
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| got & (1u64 << (i % 64)) != 0)
                    .map(|(_, l)| l.as_str())
                    .collect();
                format!("{} and procedures cover groups [{}]", dx0(), labels.join(", "))
            }
            Rule::PrincipalProcInNewborn(_) => format!("{} and {}", px0(), newborn()),
            Rule::PrincipalDxInNewborn(_) => format!("{} and {}", dx0(), newborn()),
            Rule::AnyDxInNewbornWeight { dx, min, max } => {
                let i = ctx.first_dx_in(dx).unwrap_or(0);
                let range = match (min, max) {
                    (Some(a), Some(b)) => format!("in [{a}, {b}) g"),
                    (Some(a), None) => format!(">= {a} g"),
                    (None, Some(b)) => format!("< {b} g"),
                    (None, None) => "present".to_owned(),
                };
                format!(
                    "diagnosis {} in dx list, {}, birth weight {} g {range}",
                    ctx.dx_name(i),
                    newborn(),
                    ctx.stay.weight_g.unwrap_or_default()
                )
            }
            Rule::HasValidOrProc => format!("principal procedure {} is an operating-room procedure", ctx.px_name(0)),
            Rule::AnyDxInAndValidOrProc(dx) => {
                let i = ctx.first_dx_in(dx).unwrap_or(0);
                format!(
                    "diagnosis {} in dx list and principal procedure {} is an operating-room procedure",
                    ctx.dx_name(i),
                    ctx.px_name(0)
                )
            }
            Rule::NoValidOrProc => "no operating-room procedure".to_owned(),
        }
    }

    fn complications(&self, ctx: &Ctx<'_>) -> Complications {
        let principal_group = Self::dense(&self.cce, ctx.dx0());
        let mut c = Complications { principal_group, ..Complications::default() };
        for (i, &id) in ctx.dx.iter().enumerate().skip(1) {
            if let Some(g) = Self::dense(&self.mcc, id) {
                if principal_group == Some(g) {
                    c.mcc_excluded.get_or_insert(i);
                } else {
                    c.mcc.get_or_insert(i);
                }
            }
            if let Some(g) = Self::dense(&self.cc, id) {
                if principal_group == Some(g) {
                    c.cc_excluded.get_or_insert(i);
                } else {
                    c.cc.get_or_insert(i);
                }
            }
        }
        c
    }

    fn explain_split(&self, split: Split, comp: &Complications, ctx: &Ctx<'_>) -> String {
        let group = comp.principal_group.and_then(|g| self.excl_groups.get(g as usize)).map_or("-", String::as_str);
        let excluded = |kind: &str, i: Option<usize>| {
            i.map(|i| format!(" ({kind} {} excluded by principal's exclusion group {group})", ctx.dx_name(i)))
                .unwrap_or_default()
        };
        let mcc = match comp.mcc {
            Some(i) => format!("MCC {}", ctx.dx_name(i)),
            None => format!("no MCC{}", excluded("MCC", comp.mcc_excluded)),
        };
        let cc = match comp.cc {
            Some(i) => format!("CC {}", ctx.dx_name(i)),
            None => format!("no CC{}", excluded("CC", comp.cc_excluded)),
        };
        match split {
            Split::HasMcc => format!("has MCC: {mcc}"),
            Split::HasMccOrCc if comp.mcc.is_some() => format!("has MCC or CC: {mcc}"),
            Split::HasMccOrCc => format!("has MCC or CC: {cc}"),
            Split::Always => format!("always ({mcc}; {cc})"),
        }
    }
}

#[cfg(test)]
mod sample_tests {
    use super::*;

    fn stay(dx: &[&str], px: &[&str]) -> Stay {
        Stay {
            sex: 1,
            age: Some(60),
            age_days: None,
            weight_g: None,
            diagnoses: dx.iter().map(|s| (*s).to_owned()).collect(),
            procedures: px.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    #[test]
    fn sample_scheme_groups_the_generated_stays() -> Result<(), SchemeError> {
        let s = sample_scheme()?;
        // K80.200 enters MDCH; 51.2300 is HC2's procedure; I10.x00 is a CC (group 10) and
        // K80.200 has no exclusion group, so the CC counts: HC23.
        let g = s.group(&stay(&["K80.200", "I10.x00"], &["51.2300"]));
        assert_eq!((g.mdc.as_deref(), g.adrg.as_deref(), g.drg.as_deref()), (Some("MDCH"), Some("HC2"), Some("HC23")));
        // I25.100's exclusion group is 10, the same as the CC I10.x00's: excluded, so FU15.
        let g = s.group(&stay(&["I25.100", "I10.x00"], &[]));
        assert_eq!(g.drg.as_deref(), Some("FU15"));
        // E11.900 (group 11) is not excluded for I25.100: FU13.
        let g = s.group(&stay(&["I25.100", "E11.900"], &[]));
        assert_eq!(g.drg.as_deref(), Some("FU13"));
        // No MDC takes Z99.999: an explicit ungroupable result, not a group.
        let g = s.group(&stay(&["Z99.999"], &[]));
        assert!(matches!(g.status, GroupingStatus::Ungroupable { .. }) && g.drg.is_none(), "{g:?}");
        Ok(())
    }
}
