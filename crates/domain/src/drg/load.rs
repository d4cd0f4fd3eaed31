//! Parsing and validation of a `chs-drg-scheme/1` document and its tables.

use std::collections::{HashMap, HashSet};

use serde_json::{Map, Value};

use super::{Adrg, Check, CodeSet, EntryCond, FxMap, Mdc, NONE, Outcomes, ProcGroups, Rule, Scheme, Split};

/// The supported `format` value.
pub const FORMAT: &str = "chs-drg-scheme/1";

/// Why a scheme was rejected, with the JSON path of the offending element (e.g.
/// `mdcs.MDCF.adrgs[3].rule`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("scheme error at {path}: {kind}")]
pub struct SchemeError {
    /// Path of the offending element (`$` is the document root; `files.MCC` for a table).
    pub path: String,
    /// What is wrong.
    pub kind: SchemeErrorKind,
}

/// The kinds of scheme errors.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SchemeErrorKind {
    #[error("invalid JSON: {0}")]
    Json(String),
    #[error("unsupported format `{0}` (expected `{FORMAT}`)")]
    UnsupportedFormat(String),
    #[error("required key is missing")]
    Missing,
    #[error("expected {0}")]
    WrongType(&'static str),
    #[error("unknown key `{0}`")]
    UnknownKey(String),
    #[error("unknown rule type `{0}`")]
    UnknownRule(String),
    #[error("unknown split condition `{0}`")]
    UnknownSplit(String),
    #[error("unknown check `{0}`")]
    UnknownCheck(String),
    #[error("table `{0}` is not declared in `files`")]
    UndeclaredTable(String),
    #[error("table `{name}` (file `{file}`) was not supplied")]
    MissingTable { name: String, file: String },
    #[error("MDC `{0}` is listed in mdc_order but not defined in mdcs")]
    UndefinedMdc(String),
    #[error("MDC `{0}` is defined in mdcs but not listed in mdc_order, so it can never be reached")]
    UnreachableMdc(String),
    #[error("duplicate {0}")]
    Duplicate(String),
    #[error("unreachable: {0}")]
    Unreachable(String),
    #[error("{0}")]
    Invalid(String),
}

fn err(path: impl Into<String>, kind: SchemeErrorKind) -> SchemeError {
    SchemeError { path: path.into(), kind }
}

type R<T> = Result<T, SchemeError>;

fn as_obj<'v>(v: &'v Value, path: &str) -> R<&'v Map<String, Value>> {
    v.as_object().ok_or_else(|| err(path, SchemeErrorKind::WrongType("an object")))
}

fn as_arr<'v>(v: &'v Value, path: &str) -> R<&'v Vec<Value>> {
    v.as_array().ok_or_else(|| err(path, SchemeErrorKind::WrongType("an array")))
}

fn as_str<'v>(v: &'v Value, path: &str) -> R<&'v str> {
    v.as_str().ok_or_else(|| err(path, SchemeErrorKind::WrongType("a string")))
}

fn as_u32(v: &Value, path: &str) -> R<u32> {
    v.as_u64()
        .and_then(|n| u32::try_from(n).ok())
        .ok_or_else(|| err(path, SchemeErrorKind::WrongType("a non-negative integer")))
}

fn get<'v>(obj: &'v Map<String, Value>, key: &str, path: &str) -> R<&'v Value> {
    obj.get(key).ok_or_else(|| err(format!("{path}.{key}"), SchemeErrorKind::Missing))
}

fn check_keys(obj: &Map<String, Value>, allowed: &[&str], path: &str) -> R<()> {
    match obj.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(k) => Err(err(format!("{path}.{k}"), SchemeErrorKind::UnknownKey(k.clone()))),
        None => Ok(()),
    }
}

/// Parse a `.dat` table: `CODE<space>VALUE` per line (value may be empty).
fn parse_table(text: &str) -> Vec<(&str, &str)> {
    text.lines()
        .map(|l| l.trim_start_matches('\u{feff}').trim())
        .filter(|l| !l.is_empty())
        .map(|l| match l.split_once(' ') {
            Some((k, v)) => (k, v.trim()),
            None => (l, ""),
        })
        .collect()
}

struct Builder<'a> {
    files: FxMap<String, String>,
    supplied: &'a HashMap<String, String>,
    codes: FxMap<Box<str>, u32>,
    /// Loaded tables: name -> (code id, value), in file order.
    tables: FxMap<String, Vec<(u32, String)>>,
    excl_groups: Vec<String>,
    excl_index: FxMap<String, u32>,
}

impl Builder<'_> {
    fn intern(&mut self, code: &str) -> u32 {
        if let Some(&id) = self.codes.get(code) {
            return id;
        }
        let id = u32::try_from(self.codes.len()).unwrap_or(NONE - 1);
        self.codes.insert(code.into(), id);
        id
    }

    fn table(&mut self, name: &str, path: &str) -> R<&[(u32, String)]> {
        if !self.tables.contains_key(name) {
            let file = self
                .files
                .get(name)
                .ok_or_else(|| err(path, SchemeErrorKind::UndeclaredTable(name.to_owned())))?
                .clone();
            let text = self.supplied.get(name).or_else(|| self.supplied.get(&file)).ok_or_else(|| {
                err(
                    format!("files.{name}"),
                    SchemeErrorKind::MissingTable { name: name.to_owned(), file: file.clone() },
                )
            })?;
            let rows: Vec<(u32, String)> =
                parse_table(text).into_iter().map(|(k, v)| (self.intern(k), v.to_owned())).collect();
            self.tables.insert(name.to_owned(), rows);
        }
        Ok(self.tables.get(name).map_or(&[], Vec::as_slice))
    }

    /// A list value: an array of code strings or `"@NAME"` (the key set of a table).
    fn code_list(&mut self, v: &Value, path: &str) -> R<CodeSet> {
        if let Some(s) = v.as_str() {
            let Some(name) = s.strip_prefix('@') else {
                return Err(err(path, SchemeErrorKind::WrongType("an array of codes or \"@TABLE\"")));
            };
            let ids = self.table(name, path)?.iter().map(|&(id, _)| id).collect();
            return Ok(CodeSet::new(ids));
        }
        let arr =
            v.as_array().ok_or_else(|| err(path, SchemeErrorKind::WrongType("an array of codes or \"@TABLE\"")))?;
        let mut ids = Vec::with_capacity(arr.len());
        for (i, c) in arr.iter().enumerate() {
            ids.push(self.intern(as_str(c, &format!("{path}[{i}]"))?));
        }
        Ok(CodeSet::new(ids))
    }

    /// A per-code dense table of exclusion groups (or NONE).
    fn dense_groups(&mut self, name: &str, path: &str) -> R<Vec<(u32, u32)>> {
        let rows: Vec<(u32, String)> = self.table(name, path)?.to_vec();
        let mut out = Vec::with_capacity(rows.len());
        for (id, v) in rows {
            let g = match self.excl_index.get(&v) {
                Some(&g) => g,
                None => {
                    let g = u32::try_from(self.excl_groups.len()).unwrap_or(NONE - 1);
                    self.excl_index.insert(v.clone(), g);
                    self.excl_groups.push(v);
                    g
                }
            };
            out.push((id, g));
        }
        Ok(out)
    }
}

const ADRG_KEYS: &[&str] =
    &["code", "name", "rule", "dx", "proc", "proc2", "proc_groups", "require_any", "weight_min", "weight_max", "drgs"];

pub(super) fn load(json: &str, supplied: &HashMap<String, String>) -> R<Scheme> {
    let root: Value = serde_json::from_str(json).map_err(|e| err("$", SchemeErrorKind::Json(e.to_string())))?;
    let obj = as_obj(&root, "$")?;
    check_keys(obj, &["scheme", "format", "source", "files", "outcomes", "checks", "mdc_order", "mdcs"], "$")?;
    if let Some(f) = obj.get("format") {
        let f = as_str(f, "format")?;
        if f != FORMAT {
            return Err(err("format", SchemeErrorKind::UnsupportedFormat(f.to_owned())));
        }
    }
    let name = match obj.get("scheme") {
        Some(v) => as_str(v, "scheme")?.to_owned(),
        None => String::new(),
    };
    let mut files = FxMap::default();
    if let Some(v) = obj.get("files") {
        for (k, f) in as_obj(v, "files")? {
            files.insert(k.clone(), as_str(f, &format!("files.{k}"))?.to_owned());
        }
    }
    let mut outcomes = Outcomes {
        grouped: "grouped".to_owned(),
        ungroupable: "ungroupable".to_owned(),
        check_failed: "check_failed".to_owned(),
    };
    if let Some(v) = obj.get("outcomes") {
        let o = as_obj(v, "outcomes")?;
        check_keys(o, &["grouped", "ungroupable", "check_failed", "ambiguous"], "outcomes")?;
        for (key, slot) in [
            ("grouped", &mut outcomes.grouped),
            ("ungroupable", &mut outcomes.ungroupable),
            ("check_failed", &mut outcomes.check_failed),
        ] {
            if let Some(s) = o.get(key) {
                *slot = as_str(s, &format!("outcomes.{key}"))?.to_owned();
            }
        }
    }
    let mut checks = Vec::new();
    if let Some(v) = obj.get("checks") {
        for (i, c) in as_arr(v, "checks")?.iter().enumerate() {
            let path = format!("checks[{i}]");
            let s = as_str(c, &path)?;
            checks.push(Check::parse(s).ok_or_else(|| err(path, SchemeErrorKind::UnknownCheck(s.to_owned())))?);
        }
    }

    let mut b = Builder {
        files,
        supplied,
        codes: FxMap::default(),
        tables: FxMap::default(),
        excl_groups: Vec::new(),
        excl_index: FxMap::default(),
    };

    let order = as_arr(get(obj, "mdc_order", "$")?, "mdc_order")?;
    let defs = as_obj(get(obj, "mdcs", "$")?, "mdcs")?;
    let mut seen_mdc = HashSet::new();
    let mut seen_adrg: HashMap<String, String> = HashMap::new();
    let mut seen_drg: HashMap<String, String> = HashMap::new();
    let mut uses_mcc = false;
    let mut uses_cc = false;
    let mut uses_valid = false;
    let mut mdcs = Vec::with_capacity(order.len());
    let mut catch_all: Option<String> = None;
    for (i, m) in order.iter().enumerate() {
        let opath = format!("mdc_order[{i}]");
        let code = as_str(m, &opath)?;
        if !seen_mdc.insert(code.to_owned()) {
            return Err(err(opath, SchemeErrorKind::Duplicate(format!("MDC `{code}` in mdc_order"))));
        }
        if let Some(prev) = &catch_all {
            return Err(err(
                opath,
                SchemeErrorKind::Unreachable(format!(
                    "MDC `{code}` comes after `{prev}`, which has no entry condition and an `always` ADRG"
                )),
            ));
        }
        let def = defs.get(code).ok_or_else(|| err(opath.clone(), SchemeErrorKind::UndefinedMdc(code.to_owned())))?;
        let mpath = format!("mdcs.{code}");
        let mobj = as_obj(def, &mpath)?;
        check_keys(mobj, &["name", "entry", "adrgs"], &mpath)?;
        let entry = match mobj.get("entry") {
            Some(e) => parse_entry(&mut b, e, &format!("{mpath}.entry"))?,
            None => Vec::new(),
        };
        let adrg_vals = as_arr(get(mobj, "adrgs", &mpath)?, &format!("{mpath}.adrgs"))?;
        let mut adrgs = Vec::with_capacity(adrg_vals.len());
        let mut after_always: Option<String> = None;
        for (j, a) in adrg_vals.iter().enumerate() {
            let apath = format!("{mpath}.adrgs[{j}]");
            let adrg = parse_adrg(&mut b, a, &apath)?;
            if let Some(prev) = &after_always {
                return Err(err(
                    apath,
                    SchemeErrorKind::Unreachable(format!(
                        "ADRG `{}` comes after `{prev}`, whose rule is `always`",
                        adrg.code
                    )),
                ));
            }
            if let Some(other) = seen_adrg.insert(adrg.code.clone(), apath.clone()) {
                return Err(err(apath, SchemeErrorKind::Duplicate(format!("ADRG `{}` (also at {other})", adrg.code))));
            }
            for (k, (drg, split)) in adrg.drgs.iter().enumerate() {
                let dpath = format!("{apath}.drgs[{k}]");
                if let Some(other) = seen_drg.insert(drg.clone(), dpath.clone()) {
                    return Err(err(dpath, SchemeErrorKind::Duplicate(format!("DRG `{drg}` (also at {other})"))));
                }
                uses_mcc |= *split != Split::Always;
                uses_cc |= *split == Split::HasMccOrCc;
            }
            uses_valid |=
                matches!(adrg.rule, Rule::HasValidOrProc | Rule::AnyDxInAndValidOrProc(_) | Rule::NoValidOrProc);
            if matches!(adrg.rule, Rule::Always) {
                after_always = Some(adrg.code.clone());
            }
            adrgs.push(adrg);
        }
        if entry.is_empty() && after_always.is_some() {
            catch_all = Some(code.to_owned());
        }
        mdcs.push(Mdc { code: code.to_owned(), entry, adrgs });
    }
    if let Some(code) = defs.keys().find(|k| !seen_mdc.contains(k.as_str())) {
        return Err(err(format!("mdcs.{code}"), SchemeErrorKind::UnreachableMdc(code.clone())));
    }

    let mcc_rows = if uses_mcc { b.dense_groups("MCC", "$ (has_mcc)")? } else { Vec::new() };
    let cce_rows = if uses_mcc { b.dense_groups("CCE", "$ (has_mcc)")? } else { Vec::new() };
    let cc_rows = if uses_cc { b.dense_groups("CC", "$ (has_mcc_or_cc)")? } else { Vec::new() };
    let valid_ids: Vec<u32> = if uses_valid {
        b.table("SS_VALID", "$ (operating-room rules)")?.iter().map(|&(id, _)| id).collect()
    } else {
        Vec::new()
    };
    let mut drg_names = FxMap::default();
    if b.files.contains_key("DRG_NAMES") {
        let file = b.files.get("DRG_NAMES").cloned().unwrap_or_default();
        if let Some(text) = supplied.get("DRG_NAMES").or_else(|| supplied.get(&file)) {
            for (k, v) in parse_table(text) {
                drg_names.insert(k.to_owned(), v.to_owned());
            }
        }
    }

    let n = b.codes.len();
    let fill = |rows: &[(u32, u32)]| {
        let mut v = vec![NONE; n];
        for &(id, g) in rows {
            if let Some(slot) = v.get_mut(id as usize) {
                *slot = g;
            }
        }
        v
    };
    let mcc = fill(&mcc_rows);
    let cc = fill(&cc_rows);
    let cce = fill(&cce_rows);
    let mut ss_valid = vec![false; n];
    for id in valid_ids {
        if let Some(slot) = ss_valid.get_mut(id as usize) {
            *slot = true;
        }
    }
    Ok(Scheme {
        name,
        outcomes,
        checks,
        mdcs,
        codes: b.codes,
        mcc,
        cc,
        cce,
        ss_valid,
        excl_groups: b.excl_groups,
        drg_names,
    })
}

fn parse_entry(b: &mut Builder<'_>, v: &Value, path: &str) -> R<Vec<EntryCond>> {
    let obj = as_obj(v, path)?;
    check_keys(
        obj,
        &["principal_dx_in", "principal_proc_in", "sex", "age_years", "trauma_regions", "min_regions"],
        path,
    )?;
    let mut out = Vec::new();
    if let Some(v) = obj.get("principal_dx_in") {
        out.push(EntryCond::PrincipalDxIn(b.code_list(v, &format!("{path}.principal_dx_in"))?));
    }
    if let Some(v) = obj.get("principal_proc_in") {
        out.push(EntryCond::PrincipalProcIn(b.code_list(v, &format!("{path}.principal_proc_in"))?));
    }
    if let Some(v) = obj.get("sex") {
        let p = format!("{path}.sex");
        let s = as_u32(v, &p)?;
        if s != 1 && s != 2 {
            return Err(err(p, SchemeErrorKind::Invalid(format!("sex must be 1 or 2, got {s}"))));
        }
        out.push(EntryCond::Sex(u8::try_from(s).unwrap_or(0)));
    }
    if let Some(v) = obj.get("age_years") {
        out.push(EntryCond::AgeYears(as_u32(v, &format!("{path}.age_years"))?));
    }
    match (obj.get("trauma_regions"), obj.get("min_regions")) {
        (None, None) => {}
        (Some(_), None) => return Err(err(format!("{path}.min_regions"), SchemeErrorKind::Missing)),
        (None, Some(_)) => return Err(err(format!("{path}.trauma_regions"), SchemeErrorKind::Missing)),
        (Some(r), Some(m)) => {
            let rpath = format!("{path}.trauma_regions");
            let regions = as_obj(r, &rpath)?;
            if regions.len() > 128 {
                return Err(err(rpath, SchemeErrorKind::Invalid("at most 128 trauma regions".to_owned())));
            }
            let min = as_u32(m, &format!("{path}.min_regions"))? as usize;
            let mut map = Vec::new();
            let mut names = Vec::new();
            let mut owner: HashMap<u32, String> = HashMap::new();
            for (ri, (rname, codes)) in regions.iter().enumerate() {
                let cpath = format!("{rpath}.{rname}");
                for (ci, c) in as_arr(codes, &cpath)?.iter().enumerate() {
                    let id = b.intern(as_str(c, &format!("{cpath}[{ci}]"))?);
                    if let Some(other) = owner.insert(id, rname.clone())
                        && other != *rname
                    {
                        return Err(err(
                            format!("{cpath}[{ci}]"),
                            SchemeErrorKind::Duplicate(format!("code listed under regions `{other}` and `{rname}`")),
                        ));
                    }
                    map.push((id, u16::try_from(ri).unwrap_or(0)));
                }
                names.push(rname.clone());
            }
            map.sort_unstable();
            map.dedup();
            out.push(EntryCond::TraumaRegions { map, names, min });
        }
    }
    Ok(out)
}

fn parse_adrg(b: &mut Builder<'_>, v: &Value, path: &str) -> R<Adrg> {
    let obj = as_obj(v, path)?;
    check_keys(obj, ADRG_KEYS, path)?;
    let code = as_str(get(obj, "code", path)?, &format!("{path}.code"))?.to_owned();
    let rule_name = as_str(get(obj, "rule", path)?, &format!("{path}.rule"))?;
    let mut list = |key: &str| -> R<CodeSet> {
        let v = get(obj, key, path)?;
        b.code_list(v, &format!("{path}.{key}"))
    };
    let rule = match rule_name {
        "always" => Rule::Always,
        "principal_dx_in" => Rule::PrincipalDxIn(list("dx")?),
        "principal_proc_in" => Rule::PrincipalProcIn(list("proc")?),
        "principal_dx_and_principal_proc" => Rule::PrincipalDxAndPrincipalProc(list("dx")?, list("proc")?),
        "two_procs_intersect" => Rule::TwoProcsIntersect(list("proc")?, list("proc2")?),
        "principal_dx_and_two_procs_intersect" => {
            Rule::PrincipalDxAndTwoProcsIntersect(list("dx")?, list("proc")?, list("proc2")?)
        }
        "principal_dx_and_proc_groups" => {
            let dx = list("dx")?;
            Rule::PrincipalDxAndProcGroups(dx, parse_proc_groups(b, obj, path)?)
        }
        "principal_proc_in_newborn" => Rule::PrincipalProcInNewborn(list("proc")?),
        "principal_dx_in_newborn" => Rule::PrincipalDxInNewborn(list("dx")?),
        "any_dx_in_newborn_weight" => {
            let dx = list("dx")?;
            let min = obj.get("weight_min").map(|v| as_u32(v, &format!("{path}.weight_min"))).transpose()?;
            let max = obj.get("weight_max").map(|v| as_u32(v, &format!("{path}.weight_max"))).transpose()?;
            if let (Some(a), Some(z)) = (min, max)
                && a >= z
            {
                return Err(err(
                    format!("{path}.weight_max"),
                    SchemeErrorKind::Invalid(format!("empty weight range [{a}, {z})")),
                ));
            }
            Rule::AnyDxInNewbornWeight { dx, min, max }
        }
        "has_valid_or_proc" => Rule::HasValidOrProc,
        "any_dx_in_and_valid_or_proc" => Rule::AnyDxInAndValidOrProc(list("dx")?),
        "no_valid_or_proc" => Rule::NoValidOrProc,
        other => return Err(err(format!("{path}.rule"), SchemeErrorKind::UnknownRule(other.to_owned()))),
    };
    let dpath = format!("{path}.drgs");
    let drg_vals = as_arr(get(obj, "drgs", path)?, &dpath)?;
    if drg_vals.is_empty() {
        return Err(err(dpath, SchemeErrorKind::Invalid(format!("ADRG `{code}` has no DRG"))));
    }
    let mut drgs = Vec::with_capacity(drg_vals.len());
    for (k, d) in drg_vals.iter().enumerate() {
        let p = format!("{dpath}[{k}]");
        let pair = as_arr(d, &p)?;
        let [drg, split] = pair.as_slice() else {
            return Err(err(p, SchemeErrorKind::WrongType("a [DRG, split] pair")));
        };
        let drg = as_str(drg, &format!("{p}[0]"))?.to_owned();
        let split_name = as_str(split, &format!("{p}[1]"))?;
        let split = match split_name {
            "always" => Split::Always,
            "has_mcc" => Split::HasMcc,
            "has_mcc_or_cc" => Split::HasMccOrCc,
            other => return Err(err(format!("{p}[1]"), SchemeErrorKind::UnknownSplit(other.to_owned()))),
        };
        if let Some((prev, Split::Always)) = drgs.last() {
            return Err(err(
                p,
                SchemeErrorKind::Unreachable(format!("DRG `{drg}` comes after `{prev}`, whose split is `always`")),
            ));
        }
        drgs.push((drg, split));
    }
    if let Some((last, s)) = drgs.last()
        && *s != Split::Always
    {
        return Err(err(
            format!("{dpath}[{}]", drgs.len() - 1),
            SchemeErrorKind::Invalid(format!(
                "the last DRG `{last}` of ADRG `{code}` must be `always`, or some stays would get no DRG"
            )),
        ));
    }
    Ok(Adrg { code, rule, drgs })
}

fn parse_proc_groups(b: &mut Builder<'_>, obj: &Map<String, Value>, path: &str) -> R<ProcGroups> {
    let gpath = format!("{path}.proc_groups");
    let groups = as_obj(get(obj, "proc_groups", path)?, &gpath)?;
    if groups.len() > 64 {
        return Err(err(gpath, SchemeErrorKind::Invalid("at most 64 procedure groups".to_owned())));
    }
    let mut labels = Vec::new();
    let mut map = Vec::new();
    let mut owner: HashMap<u32, usize> = HashMap::new();
    for (li, (label, codes)) in groups.iter().enumerate() {
        let cpath = format!("{gpath}.{label}");
        for (ci, c) in as_arr(codes, &cpath)?.iter().enumerate() {
            let id = b.intern(as_str(c, &format!("{cpath}[{ci}]"))?);
            if let Some(other) = owner.insert(id, li)
                && other != li
            {
                return Err(err(
                    format!("{cpath}[{ci}]"),
                    SchemeErrorKind::Duplicate("code listed in two procedure groups".to_owned()),
                ));
            }
            map.push((id, u8::try_from(li).unwrap_or(0)));
        }
        labels.push(label.clone());
    }
    map.sort_unstable();
    map.dedup();
    let rpath = format!("{path}.require_any");
    let mut require_any = Vec::new();
    for (i, alt) in as_arr(get(obj, "require_any", path)?, &rpath)?.iter().enumerate() {
        let apath = format!("{rpath}[{i}]");
        let mut mask = 0u64;
        for (j, l) in as_arr(alt, &apath)?.iter().enumerate() {
            let lp = format!("{apath}[{j}]");
            let l = as_str(l, &lp)?;
            let idx = labels
                .iter()
                .position(|x| x == l)
                .ok_or_else(|| err(lp, SchemeErrorKind::Invalid(format!("label `{l}` is not a key of proc_groups"))))?;
            mask |= 1u64 << idx;
        }
        if mask == 0 {
            return Err(err(apath, SchemeErrorKind::Invalid("empty alternative".to_owned())));
        }
        require_any.push(mask);
    }
    if require_any.is_empty() {
        return Err(err(rpath, SchemeErrorKind::Invalid("no alternative".to_owned())));
    }
    Ok(ProcGroups { map, labels, require_any })
}
