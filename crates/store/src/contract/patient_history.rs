//! Contract cases for FHIR history (issue 7): the kept versions of a patient record
//! (migration 0017: every change — an update of the registration, a merge, an unmerge —
//! keeps the version it replaces, in its own transaction, and a refused change keeps
//! nothing), and the referral lists by last change (`ReferralFilter`'s `updated_*` range
//! and `sort`, FHIR `_lastUpdated` and `_sort`). Each case is a `pub async fn case(store: Arc<dyn Store>)` like those of the
//! parent module (whose fixtures and helpers it uses through `super::`), listed in
//! [`patient_history_contract_tests!`](crate::patient_history_contract_tests).

/// Expand one `#[tokio::test]` per patient history contract case (see [`contract_tests!`](crate::contract_tests)).
#[macro_export]
macro_rules! patient_history_contract_tests {
    ($open:expr) => {
        $crate::contract_tests!(@cases_in patient_history, $open;
            patient_history_keeps_every_version_of_updates,
            patient_history_keeps_the_versions_of_merges,
            referral_lists_by_last_change,
        );
    };
}

#[allow(unused_imports)]
use super::*;
use crate::{ReferralSort, ReferralSortKey};

/// The versions as (version, name, phone, status), in the store's order.
fn summary(vs: &[(Patient, OffsetDateTime)]) -> Vec<(i64, String, Option<String>, PatientStatus)> {
    vs.iter().map(|(p, _)| (p.version, p.name.clone(), p.phone.clone(), p.status)).collect()
}

pub async fn patient_history_keeps_every_version_of_updates(store: Arc<dyn Store>) {
    let s = &*store;
    migrated(s).await;
    let village = facility(s, "H51162100101", Tier::Village, YUECHI, None).await;
    let born = date!(1962 - 03 - 08);
    let a = Patient { phone: Some("13800001111".into()), ..resident("王秀英", Sex::Female, born, 102) };
    let b = resident("李桂兰", Sex::Female, born, 124);
    create_patients(s, &[&a, &b]).await;
    assert_eq!(a.version, 1, "a registration is version 1");
    let (_, t1) = s.get_patient_versioned(a.id).await.expect("read").expect("a");

    // only the current version before any change
    let vs = s.patient_versions(a.id).await.expect("versions");
    assert_eq!(vs.len(), 1);
    assert_eq!((normalised(vs[0].0.clone()), vs[0].1), (normalised(a.clone()), t1));
    assert_eq!(s.get_patient_version(a.id, 1).await.expect("v1").map(|(p, t)| (p.version, t)), Some((1, t1)));

    // two updates: the phone, then the name and the home facility
    let v2 = Patient { phone: Some("13900002222".into()), ..a.clone() };
    let t2 = s.update_patient(&v2).await.expect("update to version 2");
    let v3 = Patient { name: "王秀兰".into(), home_facility_id: Some(village.id), version: 2, ..v2.clone() };
    let t3 = s.update_patient(&v3).await.expect("update to version 3");
    assert!(t1 <= t2 && t2 <= t3, "{t1} {t2} {t3}");

    let vs = s.patient_versions(a.id).await.expect("versions");
    assert_eq!(
        summary(&vs),
        vec![
            (1, "王秀英".into(), Some("13800001111".into()), PatientStatus::Active),
            (2, "王秀英".into(), Some("13900002222".into()), PatientStatus::Active),
            (3, "王秀兰".into(), Some("13900002222".into()), PatientStatus::Active),
        ],
        "oldest first, each as it was"
    );
    assert_eq!(vs.iter().map(|(_, t)| *t).collect::<Vec<_>>(), vec![t1, t2, t3], "each version's own time");
    assert_eq!(normalised(vs[0].0.clone()), normalised(a.clone()), "version 1 is the registration, whole");
    assert_eq!(vs[1].0.home_facility_id, a.home_facility_id);
    assert_eq!(vs[2].0.home_facility_id, Some(village.id));
    for (p, t) in &vs {
        let got = s.get_patient_version(a.id, p.version).await.expect("vread").expect("kept");
        assert_eq!((normalised(got.0), got.1), (normalised(p.clone()), *t), "version {}", p.version);
    }
    for never in [0, 4, 99, -1] {
        assert_eq!(s.get_patient_version(a.id, never).await.expect("vread"), None, "version {never}");
    }
    assert_eq!(s.get_patient_version(new_id(), 1).await.expect("vread"), None);
    assert!(s.patient_versions(new_id()).await.expect("versions").is_empty());

    // refused changes keep nothing: a stale version, another patient's number
    let stale = Patient { phone: Some("13700000000".into()), version: 1, ..v3.clone() };
    assert!(matches!(s.update_patient(&stale).await, Err(StoreError::Conflict(_))));
    let taken = Patient { identifiers: b.identifiers.clone(), version: 3, ..v3.clone() };
    assert!(matches!(s.update_patient(&taken).await, Err(StoreError::Duplicate { .. })));
    assert_eq!(summary(&s.patient_versions(a.id).await.expect("versions")), summary(&vs));
    // the other patient's versions are their own
    assert_eq!(summary(&s.patient_versions(b.id).await.expect("versions")).len(), 1);
}

pub async fn patient_history_keeps_the_versions_of_merges(store: Arc<dyn Store>) {
    let s = &*store;
    migrated(s).await;
    let born = date!(1951 - 11 - 11);
    let a = resident("杨桂芳", Sex::Female, born, 52);
    let b = without_id_number("杨桂芳", Sex::Female, born, IdentifierType::InsuranceCard, "YB5116210099");
    create_patients(s, &[&a, &b]).await;
    let (by, at) = (new_id(), datetime!(2026-11-20 10:00 UTC));
    let rec = s.merge_patients(a.id, b.id, by, "同一人", at).await.expect("merge");
    s.unmerge(rec.id, by, "不是同一人", at + Duration::hours(1)).await.expect("unmerge");

    // the merged record: active, merged into a (FHIR: active false, link replaced-by), active
    let vs = s.patient_versions(b.id).await.expect("versions");
    let statuses: Vec<(i64, PatientStatus)> = vs.iter().map(|(p, _)| (p.version, p.status)).collect();
    assert_eq!(
        statuses,
        vec![(1, PatientStatus::Active), (2, PatientStatus::Merged(a.id)), (3, PatientStatus::Active)]
    );
    assert!(vs.windows(2).all(|w| w[0].1 <= w[1].1), "times in order");
    for (p, _) in &vs {
        assert_eq!(normalised(Patient { status: b.status, version: b.version, ..p.clone() }), normalised(b.clone()));
    }
    // the survivor did not change
    assert_eq!(summary(&s.patient_versions(a.id).await.expect("versions")).len(), 1);
    let merged = s.get_patient_version(b.id, 2).await.expect("vread").expect("kept");
    assert_eq!(merged.0.status, PatientStatus::Merged(a.id));
}

pub async fn referral_lists_by_last_change(store: Arc<dyn Store>) {
    let s = &*store;
    migrated(s).await;
    let h = facility(s, "H51162100001", Tier::County, YUECHI, None).await;
    let t1 = facility(s, "H51162100002", Tier::Township, YUECHI, None).await;
    let p1 = resident("周建军", Sex::Male, date!(1955 - 05 - 15), 11);
    create_patients(s, &[&p1]).await;
    let h_ = |n: i64| NOW - Duration::hours(n);
    // requested 10, 9 and 8 hours ago; the first accepted 2 hours ago (its last change)
    let r1 = create(s, &requested(referral_input(&p1, &h), &p1, &t1, &h, h_(10))).await;
    let r2 = create(s, &requested(referral_input(&p1, &h), &p1, &t1, &h, h_(9))).await;
    let r3 = create(s, &requested(referral_input(&p1, &h), &p1, &t1, &h, h_(8))).await;
    let r1 = write(s, &stepped(&r1, accept(), Party::Receiver, &t1, &h, h_(2))).await;
    assert_eq!(r1.updated_at, h_(2));

    let inbox = ReferralFilter { to_facility_id: Some(h.id), ..ReferralFilter::default() };
    let by = |key, descending| vec![ReferralSort { key, descending }];
    let cases: Vec<(&str, ReferralFilter, Vec<Uuid>)> = vec![
        ("default: newest request first", inbox.clone(), vec![r3.id, r2.id, r1.id]),
        ("changed since 5 h", ReferralFilter { updated_from: Some(h_(5)), ..inbox.clone() }, vec![r1.id]),
        ("changed before 5 h", ReferralFilter { updated_to: Some(h_(5)), ..inbox.clone() }, vec![r3.id, r2.id]),
        (
            "not changed in r2's second",
            ReferralFilter { updated_except: vec![(h_(9), h_(9) + Duration::SECOND)], ..inbox.clone() },
            vec![r3.id, r1.id],
        ),
        (
            "last change, oldest first",
            ReferralFilter { sort: by(ReferralSortKey::UpdatedAt, false), ..inbox.clone() },
            vec![r2.id, r3.id, r1.id],
        ),
        (
            "last change, newest first, two",
            ReferralFilter { sort: by(ReferralSortKey::UpdatedAt, true), limit: 2, ..inbox.clone() },
            vec![r1.id, r3.id],
        ),
        (
            "requested, oldest first",
            ReferralFilter { sort: by(ReferralSortKey::RequestedAt, false), ..inbox.clone() },
            vec![r1.id, r2.id, r3.id],
        ),
        (
            // two states: one page per state, merged in the sort's order
            "two states, last change newest first",
            ReferralFilter {
                states: vec![ReferralState::Requested, ReferralState::Accepted],
                sort: by(ReferralSortKey::UpdatedAt, true),
                ..inbox.clone()
            },
            vec![r1.id, r3.id, r2.id],
        ),
        (
            "a patient's, last change newest first",
            ReferralFilter {
                patient_ids: vec![p1.id],
                sort: by(ReferralSortKey::UpdatedAt, true),
                ..ReferralFilter::default()
            },
            vec![r1.id, r3.id, r2.id],
        ),
    ];
    for (what, f, want) in cases {
        let got = s.list_referrals(&f).await.expect("list");
        assert_eq!(got.iter().map(|r| r.id).collect::<Vec<_>>(), want, "{what}");
        // the filter's own order (for merging lists) is the store's
        let mut merged = got.clone();
        merged.reverse();
        merged.sort_by(|a, b| f.order(a, b));
        assert_eq!(merged, got, "{what}: ReferralFilter::order");
    }
    let n = s.count_referrals(&ReferralFilter { updated_from: Some(h_(5)), ..inbox.clone() }).await.expect("count");
    assert_eq!(n, 1);
    let n = s.count_referrals(&ReferralFilter { updated_to: Some(h_(5)), ..inbox }).await.expect("count");
    assert_eq!(n, 2);
}
