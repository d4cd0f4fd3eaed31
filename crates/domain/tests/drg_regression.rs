//! DRG grouper: regression against the independent CHS-DRG 1.1 grouper's answers
//! (`shared/data/drg-regression/chsdrg11_dev.csv`), every rule type and every validation error on a
//! small hand-written sample scheme, and a property test (total and deterministic).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use proptest::prelude::*;
use tiercare_domain::drg::{Grouping, GroupingStatus, Scheme, SchemeErrorKind, Stay};

fn shared_data() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/data"))
}

fn num(s: &str) -> Option<u32> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    s.parse::<f64>().ok().filter(|f| f.is_finite() && *f >= 0.0).map(|f| f.trunc() as u32)
}

fn codes(s: &str) -> Vec<String> {
    s.split(['|', ',']).map(str::trim).filter(|c| !c.is_empty()).map(str::to_owned).collect()
}

/// Load `scheme.json` and every table it names from `dir`.
fn load_chs(dir: &Path) -> Scheme {
    let json = std::fs::read_to_string(dir.join("scheme.json")).expect("scheme.json");
    let v: serde_json::Value = serde_json::from_str(&json).expect("json");
    let mut tables = HashMap::new();
    for (_, file) in v["files"].as_object().expect("files") {
        let file = file.as_str().expect("file name");
        tables.insert(file.to_owned(), std::fs::read_to_string(dir.join(file)).expect("table"));
    }
    Scheme::load(&json, &tables).expect("scheme loads")
}

#[test]
fn chs_drg_11_regression() {
    let data = shared_data();
    let dir = data.join("chs-drg-1.1");
    let csv = data.join("drg-regression/chsdrg11_dev.csv");
    if !dir.join("scheme.json").exists() || !csv.exists() {
        eprintln!("SKIP chs_drg_11_regression: {} not found (../shared absent)", data.display());
        return;
    }
    let scheme = load_chs(&dir);
    let text = std::fs::read_to_string(&csv).expect("csv");
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().expect("header").split(',').collect();
    let col = |name: &str| header.iter().position(|h| *h == name).expect("column");
    let (ig, ia, iad, iw, izd, iss) =
        (col("gender"), col("age"), col("ageDay"), col("weight"), col("zdList"), col("ssList"));
    let (ist, imdc, iadrg, idrg, iidx) = (col("status"), col("mdc"), col("adrg"), col("drg"), col("Index"));
    let mut total = 0;
    let mut mismatches = Vec::new();
    for line in lines.filter(|l| !l.trim().is_empty()) {
        let f: Vec<&str> = line.split(',').collect();
        assert_eq!(f.len(), header.len(), "row {line}");
        let stay = Stay {
            sex: f[ig].trim().parse().unwrap_or(0),
            age: num(f[ia]),
            age_days: num(f[iad]),
            weight_g: num(f[iw]),
            diagnoses: codes(f[izd]),
            procedures: codes(f[iss]),
        };
        let g = scheme.group(&stay);
        total += 1;
        let got = (
            scheme.outcome_label(&g.status).to_owned(),
            g.mdc.clone().unwrap_or_else(|| "0000".into()),
            g.adrg.clone().unwrap_or_else(|| "00".into()),
            g.drg.clone().unwrap_or_else(|| "0000".into()),
        );
        let want = (f[ist].to_owned(), f[imdc].to_owned(), f[iadrg].to_owned(), f[idrg].to_owned());
        if got != want {
            mismatches
                .push(format!("{}: want {want:?} got {got:?}\n    stay {stay:?}\n    trace {:?}", f[iidx], g.trace));
        }
    }
    for m in mismatches.iter().take(20) {
        eprintln!("{m}");
    }
    eprintln!("CHS-DRG 1.1 regression: {} of {total} match", total - mismatches.len());
    assert_eq!(total, 3000);
    assert!(mismatches.is_empty(), "{} of {total} stays differ", mismatches.len());
}

// ---------------------------------------------------------------------------------------------
// A small sample scheme written for these tests (not taken from CHS-DRG): codes are made up.

const SAMPLE: &str = r#"{
  "scheme": "sample", "format": "chs-drg-scheme/1",
  "files": {"MCC": "MCC.dat", "CC": "CC.dat", "CCE": "CCE.dat", "SS_VALID": "SS_VALID.dat", "DRG_NAMES": "DRG.dat"},
  "outcomes": {"grouped": "ok", "ungroupable": "none", "check_failed": "bad"},
  "checks": ["sex_is_1_or_2", "age_present", "age0_needs_ageday", "newborn_needs_weight", "dx_present"],
  "mdc_order": ["MDCA", "MDCP", "MDCZ", "MDCM", "MDCF", "MDCX"],
  "mdcs": {
    "MDCA": {"entry": {"principal_proc_in": "@SS_VALID"}, "adrgs": [
      {"code": "AA1", "rule": "principal_proc_in", "proc": ["T1"], "drgs": [["AA19", "always"]]},
      {"code": "AC1", "rule": "two_procs_intersect", "proc": ["T2"], "proc2": ["T3"], "drgs": [["AC19", "always"]]}]},
    "MDCP": {"entry": {"principal_dx_in": ["P1", "P2", "P3"], "age_years": 0}, "adrgs": [
      {"code": "PB1", "rule": "principal_proc_in_newborn", "proc": ["NP1"], "drgs": [["PB19", "always"]]},
      {"code": "PR1", "rule": "principal_dx_in_newborn", "dx": ["P2"], "drgs": [["PR11", "has_mcc"], ["PR15", "always"]]},
      {"code": "PS1", "rule": "any_dx_in_newborn_weight", "dx": ["P3"], "weight_max": 1500, "drgs": [["PS19", "always"]]},
      {"code": "PS2", "rule": "any_dx_in_newborn_weight", "dx": ["P3"], "weight_min": 1500, "drgs": [["PS29", "always"]]}]},
    "MDCZ": {"entry": {"principal_dx_in": ["S1", "S2", "S3"], "trauma_regions": {"head": ["S1"], "leg": ["S2", "S3"]},
             "min_regions": 2}, "adrgs": [
      {"code": "ZB1", "rule": "has_valid_or_proc", "drgs": [["ZB19", "always"]]},
      {"code": "ZZ1", "rule": "no_valid_or_proc", "drgs": [["ZZ19", "always"]]}]},
    "MDCM": {"entry": {"principal_dx_in": ["M1"], "sex": 1}, "adrgs": [
      {"code": "MA1", "rule": "principal_dx_and_proc_groups", "dx": ["M1"],
       "proc_groups": {"1": ["G1"], "2": ["G2"], "3": ["G3"]}, "require_any": [["1"], ["2", "3"]],
       "drgs": [["MA19", "always"]]}]},
    "MDCF": {"entry": {"principal_dx_in": ["F1", "F2", "F3"]}, "adrgs": [
      {"code": "FB1", "rule": "principal_dx_and_two_procs_intersect", "dx": ["F1"], "proc": ["V1"], "proc2": ["V2"],
       "drgs": [["FB19", "always"]]},
      {"code": "FC1", "rule": "principal_dx_and_principal_proc", "dx": ["F1", "F2"], "proc": ["V3"],
       "drgs": [["FC11", "has_mcc"], ["FC13", "has_mcc_or_cc"], ["FC15", "always"]]},
      {"code": "FD1", "rule": "any_dx_in_and_valid_or_proc", "dx": ["F3"], "drgs": [["FD19", "always"]]},
      {"code": "FR1", "rule": "principal_dx_in", "dx": ["F1", "F2"],
       "drgs": [["FR11", "has_mcc"], ["FR13", "has_mcc_or_cc"], ["FR15", "always"]]}]},
    "MDCX": {"entry": {"principal_dx_in": ["X1"]}, "adrgs": [
      {"code": "XR1", "rule": "always", "drgs": [["XR19", "always"]]}]}
  }
}"#;

fn sample_tables() -> HashMap<String, String> {
    [
        ("SS_VALID.dat", "T1 op one\nT2 op two\nV3 op three\nZ9 op nine\n"),
        ("MCC.dat", "C1 10\nC2 20\n"),
        ("CC.dat", "K1 10\nK2 30\n"),
        ("CCE.dat", "F1 10\nF2 99\n"),
        ("DRG.dat", "FR11 sample with MCC\n"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

fn sample() -> Scheme {
    Scheme::load(SAMPLE, &sample_tables()).expect("sample scheme loads")
}

fn stay(sex: u8, age: u32, dx: &[&str], px: &[&str]) -> Stay {
    Stay {
        sex,
        age: Some(age),
        age_days: None,
        weight_g: None,
        diagnoses: dx.iter().map(|s| (*s).to_owned()).collect(),
        procedures: px.iter().map(|s| (*s).to_owned()).collect(),
    }
}

fn drg(g: &Grouping) -> &str {
    g.drg.as_deref().unwrap_or("-")
}

#[test]
fn entry_by_principal_procedure_and_continue_to_next_mdc() {
    let s = sample();
    assert_eq!(drg(&s.group(&stay(1, 40, &["F1"], &["T1"]))), "AA19");
    // principal procedure T2 valid -> MDCA; AC1 needs T2 and T3 (any position).
    assert_eq!(drg(&s.group(&stay(1, 40, &["F1"], &["T2", "T3"]))), "AC19");
    // V3 is valid so MDCA is entered, but no MDCA ADRG holds: continues to MDCF -> FC1.
    let g = s.group(&stay(1, 40, &["F1"], &["V3"]));
    assert_eq!(drg(&g), "FC15");
    assert!(g.trace[0].contains("trying the next MDC"), "{:?}", g.trace);
    assert_eq!(g.mdc.as_deref(), Some("MDCF"));
    assert_eq!(g.adrg.as_deref(), Some("FC1"));
}

#[test]
fn newborn_rules() {
    let s = sample();
    let nb = |dx: &[&str], px: &[&str], days: u32, w: u32| Stay {
        age_days: Some(days),
        weight_g: Some(w),
        ..stay(2, 0, dx, px)
    };
    assert_eq!(drg(&s.group(&nb(&["P1"], &["NP1"], 3, 3000))), "PB19");
    assert_eq!(drg(&s.group(&nb(&["P2"], &[], 3, 3000))), "PR15");
    assert_eq!(drg(&s.group(&nb(&["P2", "C2"], &[], 3, 3000))), "PR11");
    assert_eq!(drg(&s.group(&nb(&["P3"], &[], 3, 1499))), "PS19");
    assert_eq!(drg(&s.group(&nb(&["P3"], &[], 3, 1500))), "PS29");
    // any_dx_in_newborn_weight looks at every diagnosis.
    assert_eq!(drg(&s.group(&nb(&["P1", "P3"], &[], 3, 1000))), "PS19");
    // Older than 28 days: no newborn ADRG -> MDCP yields nothing -> ungroupable.
    let g = s.group(&nb(&["P3"], &[], 40, 1000));
    assert!(matches!(g.status, GroupingStatus::Ungroupable { .. }), "{g:?}");
    assert_eq!(s.outcome_label(&g.status), "none");
    // age 1 year: MDCP not entered.
    assert!(matches!(s.group(&stay(1, 1, &["P2"], &[])).status, GroupingStatus::Ungroupable { .. }));
}

#[test]
fn trauma_regions_and_operating_room_rules() {
    let s = sample();
    // Two regions: enters MDCZ; no OR procedure -> ZZ1; OR principal procedure -> ZB1.
    assert_eq!(drg(&s.group(&stay(1, 30, &["S1", "S2"], &[]))), "ZZ19");
    assert_eq!(drg(&s.group(&stay(1, 30, &["S1", "S3"], &["Z9"]))), "ZB19");
    // One region only (S2 and S3 both `leg`): not MDCZ and nothing else -> ungroupable.
    let g = s.group(&stay(1, 30, &["S2", "S3"], &[]));
    assert!(matches!(g.status, GroupingStatus::Ungroupable { .. }), "{g:?}");
    assert!(s.group(&stay(1, 30, &["S1", "S2"], &[])).trace[0].contains("2 regions"));
}

#[test]
fn sex_and_procedure_groups() {
    let s = sample();
    assert_eq!(drg(&s.group(&stay(1, 50, &["M1"], &["G1"]))), "MA19");
    assert_eq!(drg(&s.group(&stay(1, 50, &["M1"], &["X", "G3", "G2"]))), "MA19");
    // Only group 2 of the alternative [2, 3]: no ADRG.
    assert!(matches!(s.group(&stay(1, 50, &["M1"], &["G2"])).status, GroupingStatus::Ungroupable { .. }));
    // Wrong sex: MDCM not entered.
    assert!(matches!(s.group(&stay(2, 50, &["M1"], &["G1"])).status, GroupingStatus::Ungroupable { .. }));
}

#[test]
fn two_procs_with_principal_dx_and_any_dx_with_or_proc() {
    let s = sample();
    assert_eq!(drg(&s.group(&stay(1, 50, &["F1"], &["V2", "V1"]))), "FB19");
    assert_eq!(drg(&s.group(&stay(1, 50, &["F3"], &["Z9"]))), "FD19");
    // F3 without an OR principal procedure: no FD1, FR1 does not list F3 -> ungroupable.
    assert!(matches!(s.group(&stay(1, 50, &["F3"], &["V1"])).status, GroupingStatus::Ungroupable { .. }));
    assert_eq!(drg(&s.group(&stay(1, 50, &["X1"], &[]))), "XR19");
}

#[test]
fn mcc_cc_and_exclusions() {
    let s = sample();
    assert_eq!(drg(&s.group(&stay(1, 50, &["F2"], &[]))), "FR15");
    assert_eq!(drg(&s.group(&stay(1, 50, &["F2", "C1"], &[]))), "FR11");
    assert_eq!(drg(&s.group(&stay(1, 50, &["F2", "K1"], &[]))), "FR13");
    // F1's exclusion group is 10: C1 (MCC, group 10) and K1 (CC, group 10) are excluded.
    let g = s.group(&stay(1, 50, &["F1", "C1", "K1"], &[]));
    assert_eq!(drg(&g), "FR15");
    assert!(g.trace[2].contains("MCC C1 excluded by principal's exclusion group 10"), "{:?}", g.trace);
    assert!(g.trace[2].contains("CC K1 excluded"), "{:?}", g.trace);
    assert_eq!(drg(&s.group(&stay(1, 50, &["F1", "C1", "K2"], &[]))), "FR13");
    assert_eq!(drg(&s.group(&stay(1, 50, &["F1", "C1", "C2"], &[]))), "FR11");
    // The principal itself never counts as a complication.
    assert_eq!(drg(&s.group(&stay(1, 50, &["F1"], &[]))), "FR15");
    assert_eq!(s.drg_name("FR11"), Some("sample with MCC"));
}

#[test]
fn checks_fail_in_order() {
    let s = sample();
    let failed = |st: &Stay| match s.group(st).status {
        GroupingStatus::CheckFailed { check, .. } => check,
        other => panic!("expected check failure, got {other:?}"),
    };
    assert_eq!(failed(&stay(3, 50, &["F1"], &[])), "sex_is_1_or_2");
    assert_eq!(failed(&Stay { age: None, ..stay(1, 50, &["F1"], &[]) }), "age_present");
    assert_eq!(failed(&stay(1, 0, &["P1"], &[])), "age0_needs_ageday");
    assert_eq!(failed(&Stay { age_days: Some(5), ..stay(1, 0, &["P1"], &[]) }), "newborn_needs_weight");
    assert_eq!(failed(&stay(1, 50, &[], &[])), "dx_present");
    let g = s.group(&stay(1, 50, &[], &[]));
    assert_eq!(s.outcome_label(&g.status), "bad");
    assert_eq!((g.mdc, g.adrg, g.drg), (None, None, None));
}

fn load_err(json: &str) -> (String, SchemeErrorKind) {
    let e = Scheme::load(json, &sample_tables()).expect_err("must be rejected");
    eprintln!("{e}");
    (e.path, e.kind)
}

#[test]
fn validation_errors_name_the_element() {
    let bad_rule = SAMPLE.replace("\"rule\": \"no_valid_or_proc\"", "\"rule\": \"no_such_rule\"");
    assert_eq!(
        load_err(&bad_rule),
        ("mdcs.MDCZ.adrgs[1].rule".into(), SchemeErrorKind::UnknownRule("no_such_rule".into()))
    );
    let bad_split = SAMPLE.replace("[\"PR11\", \"has_mcc\"]", "[\"PR11\", \"has_cc\"]");
    assert_eq!(
        load_err(&bad_split),
        ("mdcs.MDCP.adrgs[1].drgs[0][1]".into(), SchemeErrorKind::UnknownSplit("has_cc".into()))
    );
    let undeclared = SAMPLE.replace("\"@SS_VALID\"", "\"@NOPE\"");
    assert_eq!(
        load_err(&undeclared),
        ("mdcs.MDCA.entry.principal_proc_in".into(), SchemeErrorKind::UndeclaredTable("NOPE".into()))
    );
    let mut tables = sample_tables();
    tables.remove("CCE.dat");
    let e = Scheme::load(SAMPLE, &tables).expect_err("missing table");
    assert_eq!(e.path, "files.CCE");
    assert!(matches!(e.kind, SchemeErrorKind::MissingTable { .. }));
    let undefined = SAMPLE.replace("\"MDCF\", \"MDCX\"]", "\"MDCF\", \"MDCX\", \"MDCQ\"]");
    assert_eq!(load_err(&undefined), ("mdc_order[6]".into(), SchemeErrorKind::UndefinedMdc("MDCQ".into())));
    let unreachable_mdc = SAMPLE.replace("\"MDCF\", \"MDCX\"]", "\"MDCF\"]");
    assert_eq!(load_err(&unreachable_mdc), ("mdcs.MDCX".into(), SchemeErrorKind::UnreachableMdc("MDCX".into())));
    let dup = SAMPLE.replace("\"MDCF\", \"MDCX\"]", "\"MDCF\", \"MDCX\", \"MDCA\"]");
    assert!(matches!(load_err(&dup), (p, SchemeErrorKind::Duplicate(_)) if p == "mdc_order[6]"));
    let after_always = SAMPLE.replace(
        "{\"code\": \"XR1\", \"rule\": \"always\", \"drgs\": [[\"XR19\", \"always\"]]}",
        "{\"code\": \"XR1\", \"rule\": \"always\", \"drgs\": [[\"XR19\", \"always\"]]}, \
         {\"code\": \"XR2\", \"rule\": \"always\", \"drgs\": [[\"XR29\", \"always\"]]}",
    );
    assert!(matches!(load_err(&after_always), (p, SchemeErrorKind::Unreachable(_)) if p == "mdcs.MDCX.adrgs[1]"));
    let drg_after_always =
        SAMPLE.replace("[[\"XR19\", \"always\"]]", "[[\"XR19\", \"always\"], [\"XR11\", \"has_mcc\"]]");
    assert!(
        matches!(load_err(&drg_after_always), (p, SchemeErrorKind::Unreachable(_)) if p == "mdcs.MDCX.adrgs[0].drgs[1]")
    );
    let no_fallback = SAMPLE.replace("[[\"PR11\", \"has_mcc\"], [\"PR15\", \"always\"]]", "[[\"PR11\", \"has_mcc\"]]");
    assert!(matches!(load_err(&no_fallback), (p, SchemeErrorKind::Invalid(_)) if p == "mdcs.MDCP.adrgs[1].drgs[0]"));
    let dup_drg = SAMPLE.replace("[[\"XR19\", \"always\"]]", "[[\"FR15\", \"always\"]]");
    assert!(matches!(load_err(&dup_drg), (p, SchemeErrorKind::Duplicate(_)) if p == "mdcs.MDCX.adrgs[0].drgs[0]"));
    let bad_check = SAMPLE.replace("\"dx_present\"", "\"dx_presnt\"");
    assert_eq!(load_err(&bad_check), ("checks[4]".into(), SchemeErrorKind::UnknownCheck("dx_presnt".into())));
    let bad_label = SAMPLE.replace("[[\"1\"], [\"2\", \"3\"]]", "[[\"1\"], [\"2\", \"4\"]]");
    assert!(
        matches!(load_err(&bad_label), (p, SchemeErrorKind::Invalid(_)) if p == "mdcs.MDCM.adrgs[0].require_any[1][1]")
    );
    let missing_list = SAMPLE.replace("\"proc2\": [\"T3\"], ", "");
    assert_eq!(load_err(&missing_list), ("mdcs.MDCA.adrgs[1].proc2".into(), SchemeErrorKind::Missing));
    let typo = SAMPLE.replace("\"proc2\": [\"T3\"]", "\"proc3\": [\"T3\"]");
    assert_eq!(load_err(&typo), ("mdcs.MDCA.adrgs[1].proc3".into(), SchemeErrorKind::UnknownKey("proc3".into())));
    let format = SAMPLE.replace("chs-drg-scheme/1", "chs-drg-scheme/9");
    assert!(matches!(load_err(&format), (p, SchemeErrorKind::UnsupportedFormat(_)) if p == "format"));
    assert!(matches!(load_err("{not json"), (p, SchemeErrorKind::Json(_)) if p == "$"));
}

proptest! {
    #[test]
    fn grouping_is_total_and_deterministic(
        sex in 0u8..4,
        age in proptest::option::of(0u32..120),
        age_days in proptest::option::of(0u32..400),
        weight in proptest::option::of(0u32..6000),
        dx in proptest::collection::vec(
            prop_oneof![
                proptest::sample::select(vec!["F1", "F2", "F3", "P1", "P2", "P3", "S1", "S2", "S3", "M1", "X1",
                                              "C1", "C2", "K1", "K2", "T1", ""]).prop_map(str::to_owned),
                "\\PC{0,12}",
            ], 0..8),
        px in proptest::collection::vec(
            prop_oneof![
                proptest::sample::select(vec!["T1", "T2", "T3", "V1", "V2", "V3", "Z9", "NP1", "G1", "G2", "G3", "F1"])
                    .prop_map(str::to_owned),
                "\\PC{0,12}",
            ], 0..6),
    ) {
        let s = sample();
        let st = Stay { sex, age, age_days, weight_g: weight, diagnoses: dx, procedures: px };
        let a = s.group(&st);
        let b = s.group(&st);
        prop_assert_eq!(&a, &b);
        let grouped = a.status == GroupingStatus::Grouped;
        prop_assert_eq!(grouped, a.mdc.is_some() && a.adrg.is_some() && a.drg.is_some());
        prop_assert!(grouped || (a.mdc.is_none() && a.adrg.is_none() && a.drg.is_none()));
        prop_assert!(!a.trace.is_empty());
    }
}
