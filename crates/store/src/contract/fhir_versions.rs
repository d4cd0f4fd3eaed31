//! Contract cases for FHIR versions (issue 7): a patient's last change time and the version-
//! checked update of its registration. Each case is a `pub async fn case(store: Arc<dyn
//! Store>)` like those of the parent module (whose fixtures and helpers it uses through
//! `super::`), listed in [`fhir_versions_contract_tests!`](crate::fhir_versions_contract_tests).

/// Expand one `#[tokio::test]` per FHIR versions contract case (see [`contract_tests!`](crate::contract_tests)).
#[macro_export]
macro_rules! fhir_versions_contract_tests {
    ($open:expr) => {
        $crate::contract_tests!(@cases_in fhir_versions, $open;
            fhir_versions_patient_update_checks_the_version_and_moves_identifiers,
        );
    };
}

#[allow(unused_imports)]
use super::*;

pub async fn fhir_versions_patient_update_checks_the_version_and_moves_identifiers(store: Arc<dyn Store>) {
    let s = &*store;
    migrated(s).await;
    let village = facility(s, "H51162100101", Tier::Village, YUECHI, None).await;
    let born = date!(1962 - 03 - 08);
    let a = resident("王秀英", Sex::Female, born, 102);
    let b = resident("李桂兰", Sex::Female, born, 124);
    create_patients(s, &[&a, &b]).await;
    let before = OffsetDateTime::now_utc();

    // the last change time: one read with the record, or several by id (unknown ids left out)
    let (got, t1) = s.get_patient_versioned(a.id).await.expect("read").expect("a");
    assert_eq!(normalised(got), normalised(a.clone()));
    assert!(t1 <= before, "{t1} {before}");
    let mut times = s.patient_updated_at(&[a.id, b.id, new_id()]).await.expect("times");
    times.sort();
    let mut want = vec![(a.id, t1), (b.id, s.get_patient_versioned(b.id).await.expect("b").expect("b").1)];
    want.sort();
    assert_eq!(times, want);
    assert_eq!(s.get_patient_versioned(new_id()).await.expect("read"), None);

    // an update at the version read: the fields, a new identity number, version + 1
    let corrected = resident("王秀英", Sex::Female, born, 104);
    let changed = Patient {
        id: a.id,
        region_key: a.region_key.clone(),
        phone: Some("13900005678".into()),
        address: Some("九龙镇白庙村5组".into()),
        home_facility_id: Some(village.id),
        status: a.status,
        version: a.version,
        ..corrected.clone()
    };
    let t2 = s.update_patient(&changed).await.expect("update");
    assert!(t2 >= t1, "{t2} {t1}");
    let (got, at) = s.get_patient_versioned(a.id).await.expect("read").expect("a");
    assert_eq!(at, t2, "the answered time is the stored one");
    assert_eq!(normalised(got.clone()), normalised(Patient { version: a.version + 1, ..changed.clone() }));
    let new_number = corrected.identity_number().expect("a number").to_owned();
    let old_number = a.identity_number().expect("a number").to_owned();
    let found = s.find_by_identifier(IdentifierType::ResidentId, &new_number).await.expect("find");
    assert_eq!(found.map(|p| p.id), Some(a.id));
    assert_eq!(s.find_by_identifier(IdentifierType::ResidentId, &old_number).await.expect("find"), None);

    // at the old version: a conflict, nothing written
    let stale = Patient { phone: Some("13700000000".into()), ..changed.clone() };
    match s.update_patient(&stale).await {
        Err(StoreError::Conflict(m)) => assert!(m.contains("version 2, not 1"), "{m}"),
        other => panic!("an update from an old version: expected StoreError::Conflict, got {other:?}"),
    }
    // another patient's number: a duplicate naming them, nothing written
    let taken = Patient { version: a.version + 1, ..b.clone() };
    let taken = Patient { id: a.id, region_key: a.region_key.clone(), ..taken };
    match s.update_patient(&taken).await {
        Err(StoreError::Duplicate { existing, .. }) => assert_eq!(existing, Some(b.id)),
        other => panic!("expected a duplicate, got {other:?}"),
    }
    let (now, at) = s.get_patient_versioned(a.id).await.expect("read").expect("a");
    assert_eq!((normalised(now), at), (normalised(got), t2), "the refused updates changed nothing");
    let found = s.find_by_identifier(IdentifierType::ResidentId, &new_number).await.expect("find");
    assert_eq!(found.map(|p| p.id), Some(a.id));
    let b_number = b.identity_number().expect("a number").to_owned();
    let found = s.find_by_identifier(IdentifierType::ResidentId, &b_number).await.expect("find");
    assert_eq!(found.map(|p| p.id), Some(b.id));
    // an unknown patient
    let nobody = Patient { id: new_id(), ..changed };
    assert!(matches!(s.update_patient(&nobody).await, Err(StoreError::NotFound { .. })));
}
