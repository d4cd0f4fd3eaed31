//! Mutual recognition of results (issue 5, domain.md M6): hand-computed cases for the
//! validity boundaries, scope rules, qualification changes, the tier rule, the repeat-reason
//! rule and the savings arithmetic. All times are China Standard Time (+08:00).
//!
//! Catalogue used throughout (default windows: dynamic lab 7 days, stable lab 30, imaging 30):
//!
//! | code     | LOINC  | kind        | validity | price (fen) | unit   | numeric |
//! |----------|--------|-------------|----------|-------------|--------|---------|
//! | K        | 2823-3 | lab_dynamic | 7 d      | 1,200       | mmol/L | yes     |
//! | HBA1C    | 4548-4 | lab_stable  | 30 d     | 3,500       | %      | yes     |
//! | CT-HEAD  | —      | imaging     | 90 d     | 28,000      | —      | no      |
//! | ECG      | —      | electrophys | 30 d     | 2,500       | —      | no      |

use std::collections::BTreeSet;

use tiercare_domain::DomainError;
use tiercare_domain::facility::Tier;
use tiercare_domain::recognition::{
    Answer, Catalogue, FacilityContext, ItemKind, LabQualification, NotRecognisedReason, PriorResult,
    RecognitionDefaults, RecognitionItem, RepeatReason, SavingRecord, Savings, Scope, YearMonth, check_order,
    lab_qualified_at, monthly_savings, repeat_allowed, saving_for, scope_accepts, tier_accepts, validate_result,
};
use time::macros::datetime;
use time::{Duration, Month, OffsetDateTime};
use uuid::Uuid;

fn id(n: u128) -> Uuid {
    Uuid::from_u128(n)
}

const COMMUNITY_A: Uuid = Uuid::from_u128(0xA);
const COMMUNITY_B: Uuid = Uuid::from_u128(0xB);
const LAB_PROV: Uuid = Uuid::from_u128(0x1AB1);
const LAB_TOWN: Uuid = Uuid::from_u128(0x1AB2);
const LAB_COUNTY: Uuid = Uuid::from_u128(0x1AB3);

fn catalogue() -> Catalogue {
    let d = RecognitionDefaults::default();
    let mut k = RecognitionItem::new("K", "Potassium", ItemKind::LabDynamic, 1_200, &d);
    k.loinc = Some("2823-3".into());
    k.unit = Some("mmol/L".into());
    k.numeric = true;
    let mut a1c = RecognitionItem::new("HBA1C", "HbA1c", ItemKind::LabStable, 3_500, &d);
    a1c.loinc = Some("4548-4".into());
    a1c.unit = Some("%".into());
    a1c.numeric = true;
    let mut ct = RecognitionItem::new("CT-HEAD", "Head CT", ItemKind::Imaging, 28_000, &d);
    ct.validity = Duration::days(90);
    let ecg = RecognitionItem::new("ECG", "12-lead ECG", ItemKind::Electrophysiology, 2_500, &d);
    Catalogue::new(vec![k, a1c, ct, ecg]).expect("catalogue")
}

/// The county hospital of 射洪 (510922, Suining 5109, Sichuan 51), in community A.
fn county_hospital() -> FacilityContext {
    FacilityContext {
        facility_id: id(100),
        community_id: Some(COMMUNITY_A),
        region_code: "510922".into(),
        tier: Tier::County,
    }
}

fn township(n: u128, community: Uuid) -> FacilityContext {
    FacilityContext {
        facility_id: id(n),
        community_id: Some(community),
        region_code: "510922".into(),
        tier: Tier::Township,
    }
}

/// Labs qualified since 2024-01-01, with no end.
fn qualifications() -> Vec<LabQualification> {
    [LAB_PROV, LAB_TOWN, LAB_COUNTY]
        .into_iter()
        .map(|lab_id| LabQualification {
            lab_id,
            qualified_from: datetime!(2024-01-01 00:00 +08:00),
            qualified_to: None,
        })
        .collect()
}

fn province_mark() -> Option<Scope> {
    Some(Scope::Province { province: "51".into() })
}

/// A result from the provincial hospital in Chengdu (510107), marked 川HR.
fn result(n: u128, code: &str, specimen: OffsetDateTime) -> PriorResult {
    PriorResult {
        id: id(n),
        item_code: code.into(),
        facility_id: id(900),
        facility_tier: Tier::Provincial,
        lab_id: LAB_PROV,
        specimen_time: specimen,
        report_time: specimen + Duration::hours(4),
        mark: province_mark(),
        value: "7.1".into(),
        unit: Some("%".into()),
    }
}

fn only(answers: &[tiercare_domain::recognition::ItemAnswer]) -> &Answer {
    assert_eq!(answers.len(), 1);
    &answers[0].answer
}

fn reasons(a: &Answer) -> Vec<Vec<NotRecognisedReason>> {
    match a {
        Answer::NotRecognised { rejected } => rejected.iter().map(|r| r.reasons.clone()).collect(),
        other => panic!("expected not recognised, got {other:?}"),
    }
}

// --- defaults and catalogue ------------------------------------------------------------

#[test]
fn default_windows_come_from_domain_md() {
    let cat = catalogue();
    let days = |c: &str| cat.get(c).expect("item").validity.whole_days();
    assert_eq!(days("K"), 7);
    assert_eq!(days("HBA1C"), 30);
    assert_eq!(days("CT-HEAD"), 90, "item-specific imaging window");
    assert_eq!(days("ECG"), 30);
    // LOINC codes find the local item.
    assert_eq!(cat.get("4548-4").map(|i| i.code.as_str()), Some("HBA1C"));
    assert_eq!(cat.len(), 4);
}

#[test]
fn catalogue_refuses_bad_items_and_duplicates() {
    let d = RecognitionDefaults::default();
    let a = RecognitionItem::new("X1", "X", ItemKind::LabStable, 100, &d);
    let err = Catalogue::new(vec![a.clone(), a]).expect_err("duplicate");
    assert!(err.to_string().contains("listed twice"), "{err}");

    let mut bad = RecognitionItem::new("X2", "X", ItemKind::Imaging, -1, &d);
    bad.loinc = Some("4548-5".into()); // wrong check digit (is 4)
    bad.numeric = true;
    bad.validity = Duration::ZERO;
    let Err(DomainError::Invalid(errs)) = Catalogue::new(vec![bad]) else { panic!("expected invalid") };
    let codes: BTreeSet<&str> = errs.iter().map(|e| e.code.as_str()).collect();
    assert_eq!(
        codes,
        BTreeSet::from(["recognition.loinc", "recognition.price", "recognition.kind", "recognition.validity"])
    );
}

#[test]
fn item_configuration_uses_validity_days() {
    let json = r#"{"code":"TSH","loinc":"3016-3","name":"TSH","kind":"lab_stable","validity_days":60,
                   "price_fen":4000,"unit":"mIU/L","numeric":true}"#;
    let item: RecognitionItem = serde_json::from_str(json).expect("item");
    assert_eq!(item.validity, Duration::days(60));
    let back = serde_json::to_value(&item).expect("json");
    assert_eq!(back["validity_days"], 60);
    assert_eq!(back["kind"], "lab_stable");
}

// --- validity boundary -----------------------------------------------------------------

#[test]
fn validity_exactly_at_the_end_and_one_second_after() {
    // HbA1c specimen 2025-03-01 08:00 + 30 days = valid until 2025-03-31 08:00.
    let cat = catalogue();
    let prior = [result(1, "HBA1C", datetime!(2025-03-01 08:00 +08:00))];
    let at = county_hospital();
    let q = qualifications();

    let end = datetime!(2025-03-31 08:00 +08:00);
    let answers = check_order(&["HBA1C"], &prior, &at, &cat, &q, end);
    let Answer::Recognised(r) = only(&answers) else { panic!("valid at the end: {answers:?}") };
    assert_eq!(r.valid_until, end);
    assert_eq!(r.result_id, id(1));
    assert_eq!(r.price_fen, 3_500);

    let after = end + Duration::seconds(1);
    let answers = check_order(&["HBA1C"], &prior, &at, &cat, &q, after);
    assert_eq!(reasons(only(&answers)), vec![vec![NotRecognisedReason::Expired]]);

    // Potassium: 7-day window, 2025-03-01 08:00 → 2025-03-08 08:00.
    let prior = [result(2, "K", datetime!(2025-03-01 08:00 +08:00))];
    let ok = check_order(&["2823-3"], &prior, &at, &cat, &q, datetime!(2025-03-08 08:00 +08:00));
    assert!(ok[0].recognised().is_some(), "{ok:?}");
    assert_eq!(ok[0].item_code.as_deref(), Some("K"));
    let late = check_order(&["K"], &prior, &at, &cat, &q, datetime!(2025-03-08 08:00:01 +08:00));
    assert_eq!(reasons(only(&late)), vec![vec![NotRecognisedReason::Expired]]);
}

#[test]
fn the_latest_valid_result_is_shown_and_unknown_items_are_named() {
    let cat = catalogue();
    let at = county_hospital();
    let prior = [
        result(1, "CT-HEAD", datetime!(2025-01-10 09:00 +08:00)),
        result(2, "CT-HEAD", datetime!(2025-02-20 09:00 +08:00)),
        result(3, "CT-HEAD", datetime!(2024-10-01 09:00 +08:00)), // expired (valid until 2024-12-30)
        result(4, "HBA1C", datetime!(2025-03-01 09:00 +08:00)),
    ];
    let now = datetime!(2025-03-05 10:00 +08:00);
    let answers = check_order(&["CT-HEAD", "XYZ", "ECG"], &prior, &at, &cat, &qualifications(), now);
    assert_eq!(answers.len(), 3);
    let ct = answers[0].recognised().expect("ct");
    assert_eq!(ct.result_id, id(2));
    assert_eq!(ct.valid_until, datetime!(2025-05-21 09:00 +08:00)); // 2025-02-20 + 90 days
    assert_eq!(answers[1].answer, Answer::UnknownItem);
    assert_eq!(answers[1].item_code, None);
    assert_eq!(answers[2].answer, Answer::NotRecognised { rejected: vec![] }, "no prior ECG");
}

// --- scope rules -----------------------------------------------------------------------

#[test]
fn province_mark_is_accepted_at_a_county_hospital_of_that_province() {
    let at = county_hospital();
    assert!(scope_accepts(province_mark().as_ref(), &at));
    let chongqing = FacilityContext { region_code: "500101".into(), ..county_hospital() };
    assert!(!scope_accepts(province_mark().as_ref(), &chongqing));

    // The whole check: a provincial hospital's HbA1c (川HR) at the county hospital.
    let prior = [result(1, "HBA1C", datetime!(2025-03-01 08:00 +08:00))];
    let answers =
        check_order(&["HBA1C"], &prior, &at, &catalogue(), &qualifications(), datetime!(2025-03-02 08:00 +08:00));
    let r = answers[0].recognised().expect("recognised");
    assert_eq!(r.mark, Scope::Province { province: "51".into() });
    assert_eq!(r.mark.label(), "51HR");
}

#[test]
fn community_mark_is_not_accepted_outside_the_community() {
    let mark = Some(Scope::Community { community_id: COMMUNITY_A });
    assert!(scope_accepts(mark.as_ref(), &township(201, COMMUNITY_A)));
    assert!(!scope_accepts(mark.as_ref(), &township(202, COMMUNITY_B)));
    let no_community = FacilityContext { community_id: None, ..township(203, COMMUNITY_A) };
    assert!(!scope_accepts(mark.as_ref(), &no_community));

    // A township result with a community-A mark, ordered at a township of the same level.
    let mut r = result(1, "HBA1C", datetime!(2025-03-01 08:00 +08:00));
    r.facility_id = id(201);
    r.facility_tier = Tier::Township;
    r.lab_id = LAB_TOWN;
    r.mark = mark;
    let now = datetime!(2025-03-02 08:00 +08:00);
    let (cat, q) = (catalogue(), qualifications());
    let inside = check_order(&["HBA1C"], std::slice::from_ref(&r), &township(204, COMMUNITY_A), &cat, &q, now);
    assert!(inside[0].recognised().is_some());
    let outside = check_order(&["HBA1C"], std::slice::from_ref(&r), &township(202, COMMUNITY_B), &cat, &q, now);
    assert_eq!(reasons(only(&outside)), vec![vec![NotRecognisedReason::ScopeDoesNotCover]]);
}

#[test]
fn city_and_agreement_marks_and_no_mark() {
    let city = Some(Scope::City { region: "510900".into() }); // 遂宁
    assert!(scope_accepts(city.as_ref(), &county_hospital())); // 510922
    let chengdu = FacilityContext { region_code: "510107".into(), ..county_hospital() };
    assert!(!scope_accepts(city.as_ref(), &chengdu));

    let chuanyu =
        Some(Scope::Agreement { name: "川渝".into(), provinces: BTreeSet::from(["50".into(), "51".into()]) });
    assert!(scope_accepts(chuanyu.as_ref(), &chengdu));
    assert!(scope_accepts(chuanyu.as_ref(), &FacilityContext { region_code: "500101".into(), ..county_hospital() }));
    assert!(!scope_accepts(chuanyu.as_ref(), &FacilityContext { region_code: "420100".into(), ..county_hospital() }));

    assert!(!scope_accepts(None, &county_hospital()));
    let mut r = result(1, "HBA1C", datetime!(2025-03-01 08:00 +08:00));
    r.mark = None;
    let a = check_order(
        &["HBA1C"],
        &[r],
        &county_hospital(),
        &catalogue(),
        &qualifications(),
        datetime!(2025-03-02 08:00 +08:00),
    );
    assert_eq!(reasons(only(&a)), vec![vec![NotRecognisedReason::NoMark]]);
}

// --- qualification changes -------------------------------------------------------------

#[test]
fn a_lab_losing_its_status_stops_new_results_not_old_ones() {
    // The county lab was qualified 2024-01-01 .. 2025-03-10 00:00 (lost then).
    let lost = datetime!(2025-03-10 00:00 +08:00);
    let q = vec![LabQualification {
        lab_id: LAB_COUNTY,
        qualified_from: datetime!(2024-01-01 00:00 +08:00),
        qualified_to: Some(lost),
    }];
    assert!(lab_qualified_at(&q, LAB_COUNTY, lost - Duration::seconds(1)));
    assert!(!lab_qualified_at(&q, LAB_COUNTY, lost));
    assert!(!lab_qualified_at(&q, LAB_PROV, lost - Duration::days(1)), "another lab");

    let county = |n: u128, specimen: OffsetDateTime| PriorResult {
        facility_id: id(100),
        facility_tier: Tier::County,
        lab_id: LAB_COUNTY,
        ..result(n, "HBA1C", specimen)
    };
    // Old: specimen 03-05 08:00, reported 12:00 (qualified) → valid until 04-04 08:00.
    // New: specimen 03-12 08:00, reported 12:00 (status lost).
    let prior = [county(1, datetime!(2025-03-05 08:00 +08:00)), county(2, datetime!(2025-03-12 08:00 +08:00))];
    let at = township(201, COMMUNITY_A); // lower level accepts the county's results
    let cat = catalogue();

    let a = check_order(&["HBA1C"], &prior, &at, &cat, &q, datetime!(2025-03-15 08:00 +08:00));
    assert_eq!(a[0].recognised().map(|r| r.result_id), Some(id(1)), "the old result still counts: {a:?}");

    let at_end = check_order(&["HBA1C"], &prior, &at, &cat, &q, datetime!(2025-04-04 08:00 +08:00));
    assert_eq!(at_end[0].recognised().map(|r| r.result_id), Some(id(1)));

    let later = check_order(&["HBA1C"], &prior, &at, &cat, &q, datetime!(2025-04-04 08:00:01 +08:00));
    assert_eq!(
        reasons(only(&later)),
        vec![vec![NotRecognisedReason::Expired], vec![NotRecognisedReason::LabNotQualified]]
    );

    // Re-qualified later: results reported from then on count again; the gap still does not.
    let mut q2 = q.clone();
    q2.push(LabQualification {
        lab_id: LAB_COUNTY,
        qualified_from: datetime!(2025-03-20 00:00 +08:00),
        qualified_to: None,
    });
    assert!(!lab_qualified_at(&q2, LAB_COUNTY, datetime!(2025-03-12 12:00 +08:00)));
    assert!(lab_qualified_at(&q2, LAB_COUNTY, datetime!(2025-03-20 00:00 +08:00)));
}

// --- tier rule -------------------------------------------------------------------------

#[test]
fn tier_rule_both_ways() {
    // Same level recognise each other.
    assert!(tier_accepts(Tier::County, Tier::County));
    assert!(tier_accepts(Tier::Provincial, Tier::National));
    assert!(tier_accepts(Tier::National, Tier::Provincial));
    // A lower level accepts a higher level's results.
    assert!(tier_accepts(Tier::County, Tier::Township));
    assert!(tier_accepts(Tier::Provincial, Tier::County));
    // A higher level need not accept a lower level's.
    assert!(!tier_accepts(Tier::Township, Tier::County));
    assert!(!tier_accepts(Tier::County, Tier::City));
    assert!(!tier_accepts(Tier::Village, Tier::Township));

    // In the check: a township result (same community, in scope) ordered at the county hospital.
    let r = PriorResult {
        facility_id: id(201),
        facility_tier: Tier::Township,
        lab_id: LAB_TOWN,
        mark: Some(Scope::Community { community_id: COMMUNITY_A }),
        ..result(1, "HBA1C", datetime!(2025-03-01 08:00 +08:00))
    };
    let now = datetime!(2025-03-02 08:00 +08:00);
    let (cat, q) = (catalogue(), qualifications());
    let up = check_order(&["HBA1C"], std::slice::from_ref(&r), &county_hospital(), &cat, &q, now);
    assert_eq!(reasons(only(&up)), vec![vec![NotRecognisedReason::LowerTier]]);
    let same = check_order(&["HBA1C"], std::slice::from_ref(&r), &township(204, COMMUNITY_A), &cat, &q, now);
    assert!(same[0].recognised().is_some());
}

// --- repeat reasons --------------------------------------------------------------------

#[test]
fn repeating_a_recognisable_item_needs_a_reason() {
    let prior = [result(1, "HBA1C", datetime!(2025-03-01 08:00 +08:00))];
    let (cat, q, at) = (catalogue(), qualifications(), county_hospital());
    let now = datetime!(2025-03-02 08:00 +08:00);
    let a = check_order(&["HBA1C", "K"], &prior, &at, &cat, &q, now);

    let err = repeat_allowed(&a[0], None).expect_err("reason required");
    let DomainError::Invalid(errs) = err else { panic!("invalid expected") };
    assert_eq!(errs[0].field, "repeat_reason");
    assert_eq!(errs[0].code, "recognition.repeat_reason_required");
    for reason in RepeatReason::ALL {
        assert_eq!(repeat_allowed(&a[0], Some(*reason)), Ok(()), "{reason:?}");
    }
    // Nothing recognisable (no prior potassium): no reason needed.
    assert_eq!(repeat_allowed(&a[1], None), Ok(()));
    // An expired result does not need a reason either.
    let old = check_order(&["HBA1C"], &prior, &at, &cat, &q, datetime!(2025-04-01 08:00 +08:00));
    assert_eq!(repeat_allowed(&old[0], None), Ok(()));
}

#[test]
fn repeat_reason_lists() {
    let national: Vec<&str> = RepeatReason::ALL.iter().filter(|r| r.is_national()).map(|r| r.as_str()).collect();
    assert_eq!(
        national,
        [
            "condition_changed",
            "changes_fast",
            "major_decision",
            "emergency",
            "forensic_or_disability",
            "other_clinical_need"
        ]
    );
    let local: Vec<RepeatReason> = RepeatReason::ALL.iter().copied().filter(|r| !r.is_national()).collect();
    assert_eq!(local, [RepeatReason::PatientRequest, RepeatReason::LabFailedExternalQa, RepeatReason::ResultTooOld]);
    for r in RepeatReason::ALL {
        assert_eq!(RepeatReason::parse(r.as_str()), Some(*r));
        assert_eq!(serde_json::to_value(r).expect("json"), serde_json::json!(r.as_str()));
    }
}

// --- savings ---------------------------------------------------------------------------

#[test]
fn savings_arithmetic() {
    let mut s = Savings::default();
    s.add(3_500);
    s.add(28_000);
    assert_eq!(s, Savings { count: 2, fen: 31_500 });

    let (f1, f2) = (id(100), id(201));
    let march = YearMonth::new(2025, Month::March);
    let april = YearMonth::new(2025, Month::April);
    let rec = |facility_id, month, price_fen| SavingRecord { facility_id, month, item_code: "X".into(), price_fen };
    let ledger = [
        rec(f1, march, 3_500),
        rec(f1, march, 3_500),
        rec(f1, march, 28_000),
        rec(f1, april, 1_200),
        rec(f2, march, 28_000),
    ];
    let m = monthly_savings(&ledger);
    assert_eq!(m.len(), 3);
    assert_eq!(m[&(f1, march)], Savings { count: 3, fen: 35_000 });
    assert_eq!(m[&(f1, april)], Savings { count: 1, fen: 1_200 });
    assert_eq!(m[&(f2, march)], Savings { count: 1, fen: 28_000 });
    assert!(monthly_savings(&[]).is_empty());
}

#[test]
fn savings_records_come_from_recognised_answers_in_china_months() {
    // 2025-03-31 17:00 UTC is 2025-04-01 01:00 in China: April.
    let now = datetime!(2025-03-31 17:00 UTC);
    assert_eq!(YearMonth::of(now), YearMonth::new(2025, Month::April));
    let prior = [result(1, "HBA1C", datetime!(2025-03-20 08:00 +08:00))];
    let at = county_hospital();
    let a = check_order(&["HBA1C", "K"], &prior, &at, &catalogue(), &qualifications(), now);
    let rec = saving_for(&a[0], at.facility_id, now).expect("reused");
    assert_eq!(
        rec,
        SavingRecord {
            facility_id: id(100),
            month: YearMonth::new(2025, Month::April),
            item_code: "HBA1C".into(),
            price_fen: 3_500
        }
    );
    assert_eq!(saving_for(&a[1], at.facility_id, now), None);
}

// --- bad input -------------------------------------------------------------------------

#[test]
fn bad_results_are_refused_with_reasons() {
    let cat = catalogue();
    let now = datetime!(2025-03-02 08:00 +08:00);
    let q = qualifications();
    let good = result(1, "4548-4", datetime!(2025-03-01 08:00 +08:00));
    assert_eq!(validate_result(&good, &cat, &q, now), Ok(()));

    let codes = |r: &PriorResult, q: &[LabQualification]| -> BTreeSet<String> {
        match validate_result(r, &cat, q, now) {
            Err(DomainError::Invalid(errs)) => errs.into_iter().map(|e| e.code).collect(),
            other => panic!("expected invalid, got {other:?}"),
        }
    };
    let wrong_unit = PriorResult { unit: Some("mmol/mol".into()), ..good.clone() };
    assert_eq!(codes(&wrong_unit, &q), BTreeSet::from(["recognition.unit".into()]));
    let not_a_number = PriorResult { value: "high".into(), ..good.clone() };
    assert_eq!(codes(&not_a_number, &q), BTreeSet::from(["recognition.not_numeric".into()]));
    let future = result(2, "HBA1C", now + Duration::seconds(1));
    assert_eq!(codes(&future, &q), BTreeSet::from(["recognition.future".into()]));
    let unknown = PriorResult { item_code: "NOPE".into(), ..good.clone() };
    assert_eq!(codes(&unknown, &q), BTreeSet::from(["recognition.unknown_item".into()]));
    assert_eq!(codes(&good, &[]), BTreeSet::from(["recognition.lab_not_qualified".into()]));
    let unmarked = PriorResult { mark: None, ..good.clone() };
    assert_eq!(validate_result(&unmarked, &cat, &[], now), Ok(()), "an unmarked result needs no qualification");
}
