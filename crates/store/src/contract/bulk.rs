//! Contract cases for bulk FHIR import and export (issue 7). Each case is a `pub async fn
//! case(store: Arc<dyn Store>)` like those of the parent module (whose fixtures and helpers it
//! uses through `super::`), listed in [`bulk_contract_tests!`](crate::bulk_contract_tests).
//! Case names start with the part's name so they never clash with the other suites'.

/// Expand one `#[tokio::test]` per bulk (issue 7) contract case (see [`contract_tests!`](crate::contract_tests)).
#[macro_export]
macro_rules! bulk_contract_tests {
    ($open:expr) => {
        $crate::contract_tests!(@cases_in bulk, $open;
            bulk_walks_visit_every_row_once_in_key_order,
            bulk_lookups_name_what_is_stored,
            bulk_since_walks_and_access_rows,
            bulk_group_members_by_home_facility,
        );
    };
}

#[allow(unused_imports)]
use super::*;

use crate::{BulkTable, RegionKey};

/// Seven residents in two counties (岳池 and 武胜), each with an enrolment and two encounters.
async fn small_county(s: &dyn Store) -> (Vec<Patient>, Vec<Enrolment>, Vec<Encounter>) {
    let f = facility(s, "H51162100001", Tier::County, YUECHI, None).await;
    let mut patients = Vec::new();
    for k in 0..7u16 {
        let region = if k % 2 == 0 { YUECHI } else { WUSHENG };
        let p = NewPatient {
            identity_number: Some(id_number(
                region,
                date!(1960 - 01 - 01) + Duration::days(i64::from(k)),
                k + 1,
                Sex::Male,
            )),
            ..NewPatient::new(&format!("测试{k}"), Sex::Male)
        }
        .validate(TODAY, None)
        .expect("valid registration")
        .into_patient(new_id());
        patients.push(p);
    }
    let rows: Vec<(u64, Patient)> = patients.iter().enumerate().map(|(i, p)| (i as u64 + 1, p.clone())).collect();
    assert_eq!(s.import_patients(&rows, true).await.expect("import").inserted, 7);
    let enrolments: Vec<Enrolment> = patients
        .iter()
        .map(|p| {
            NewEnrolment {
                scheme: Scheme::Resident,
                insured_region: p.region_key.clone(),
                filing_status: FilingStatus::NotFiled,
                filed_region: None,
                valid_from: date!(2025 - 01 - 01),
                valid_to: None,
            }
            .validate(new_id(), p.id)
            .expect("valid enrolment")
        })
        .collect();
    s.import_enrolments(&enrolments).await.expect("enrolments");
    let mut encounters = Vec::new();
    for p in &patients {
        encounters.push(encounter(p, &f, NOW - Duration::days(30), "J06.900"));
        encounters.push(encounter(p, &f, NOW - Duration::days(3), "I10.x00"));
    }
    s.import_encounters(&encounters).await.expect("encounters");
    (patients, enrolments, encounters)
}

/// Every row comes once, in key order, whatever the page size (1, 2, 3, 50: pages that end on
/// a region boundary and pages that do not).
pub async fn bulk_walks_visit_every_row_once_in_key_order(store: Arc<dyn Store>) {
    let s = &*store;
    migrated(s).await;
    assert!(s.patients_after(None, 10).await.expect("empty walk").is_empty());
    let (patients, enrolments, encounters) = small_county(s).await;
    for limit in [1u32, 2, 3, 50] {
        let mut got = Vec::new();
        let mut after = None;
        loop {
            let page = s.patients_after(after, limit).await.expect("a patient page");
            assert!(page.len() <= limit as usize);
            let Some(last) = page.last() else { break };
            after = Some(last.id);
            got.extend(page);
        }
        let mut want = patients.clone();
        want.sort_by_key(|p| p.id);
        assert_eq!(
            got.into_iter().map(normalised).collect::<Vec<_>>(),
            want.into_iter().map(normalised).collect::<Vec<_>>(),
            "patients by {limit}"
        );

        let mut got = Vec::new();
        let mut after: Option<RegionKey> = None;
        loop {
            let page = s.enrolments_after(after.as_ref(), limit).await.expect("an enrolment page");
            let Some((region, last)) = page.last() else { break };
            after = Some((region.clone(), last.id));
            got.extend(page);
        }
        let region_of = |id: Uuid| patients.iter().find(|p| p.id == id).map(|p| p.region_key.clone()).expect("known");
        let mut want: Vec<(String, Enrolment)> =
            enrolments.iter().map(|e| (region_of(e.patient_id), e.clone())).collect();
        want.sort_by(|a, b| (&a.0, a.1.id).cmp(&(&b.0, b.1.id)));
        assert_eq!(got, want, "enrolments by {limit}");

        let mut got = Vec::new();
        let mut after: Option<RegionKey> = None;
        loop {
            let page = s.encounters_after(after.as_ref(), limit).await.expect("an encounter page");
            let Some(last) = page.last() else { break };
            after = Some((last.region_key.clone(), last.id));
            got.extend(page);
        }
        let mut want = encounters.clone();
        want.sort_by(|a, b| (&a.region_key, a.id).cmp(&(&b.region_key, b.id)));
        assert_eq!(got, want, "encounters by {limit}");
    }
}

/// Look-ups answer what is stored and leave the rest out: an unknown id, a known id under the
/// wrong region key, an id of another table.
pub async fn bulk_lookups_name_what_is_stored(store: Arc<dyn Store>) {
    let s = &*store;
    migrated(s).await;
    let (patients, enrolments, encounters) = small_county(s).await;
    let stranger = new_id();
    let regions =
        s.patient_regions(&[patients[0].id, patients[1].id, stranger, patients[0].id]).await.expect("regions");
    assert_eq!(regions.len(), 2);
    assert_eq!(regions[&patients[0].id], YUECHI);
    assert_eq!(regions[&patients[1].id], WUSHENG);

    let key = |region: &str, id: Uuid| (region.to_owned(), id);
    let p = &patients[1];
    let asked = [
        key(&p.region_key, p.id),
        key(YUECHI, p.id),
        key(&p.region_key, stranger),
        key(&p.region_key, encounters[2].id),
    ];
    let got = s.stored_ids(BulkTable::Patient, &asked).await.expect("patients");
    assert_eq!(got, [p.id].into_iter().collect(), "only the patient under its own region key");
    let e = &encounters[2];
    let asked =
        [key(&e.region_key, e.id), key(&e.region_key, encounters[3].id), key(&e.region_key, p.id), key(GUANG_AN, e.id)];
    let got = s.stored_ids(BulkTable::Encounter, &asked).await.expect("encounters");
    assert_eq!(got, [e.id, encounters[3].id].into_iter().collect());
    let en = &enrolments[0];
    let got =
        s.stored_ids(BulkTable::Enrolment, &[key(YUECHI, en.id), key(YUECHI, stranger)]).await.expect("enrolments");
    assert_eq!(got, [en.id].into_iter().collect());
    assert!(s.stored_ids(BulkTable::Encounter, &[]).await.expect("nothing asked").is_empty());
}

/// `_since` walks answer only what changed (patients) or was created (enrolments, encounters)
/// after the instant, in key order whatever the page; the bulk access-log rows are written all
/// together and read back as written.
pub async fn bulk_since_walks_and_access_rows(store: Arc<dyn Store>) {
    let s = &*store;
    migrated(s).await;
    let before = OffsetDateTime::now_utc() - Duration::minutes(1);
    let (patients, enrolments, encounters) = small_county(s).await;
    // stored times are milliseconds: leave a few between the two batches
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let since = OffsetDateTime::now_utc();
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let late = NewPatient {
        identity_number: Some(id_number(YUECHI, date!(1961 - 05 - 05), 31, Sex::Male)),
        ..NewPatient::new("后来", Sex::Male)
    }
    .validate(TODAY, None)
    .expect("valid")
    .into_patient(new_id());
    assert_eq!(s.import_patients(&[(1, late.clone())], true).await.expect("import").inserted, 1);
    let f = s.list_facilities(&FacilityFilter::default()).await.expect("facilities").remove(0);
    let late_enrolment = NewEnrolment {
        scheme: Scheme::Resident,
        insured_region: YUECHI.into(),
        filing_status: FilingStatus::NotFiled,
        filed_region: None,
        valid_from: date!(2025 - 01 - 01),
        valid_to: None,
    }
    .validate(new_id(), late.id)
    .expect("valid");
    s.import_enrolments(std::slice::from_ref(&late_enrolment)).await.expect("enrolment");
    let late_encounters =
        vec![encounter(&late, &f, NOW - Duration::days(2), "J06.900"), encounter(&late, &f, NOW, "I10.x00")];
    s.import_encounters(&late_encounters).await.expect("encounters");
    for (at, want_patients, want_enrolments, want_encounters) in
        [(since, 1, 1, 2), (before, patients.len() + 1, enrolments.len() + 1, encounters.len() + 2)]
    {
        for limit in [1u32, 50] {
            let mut got = Vec::new();
            let mut after = None;
            loop {
                let page = s.patients_changed_after(after, at, limit).await.expect("page");
                let Some(last) = page.last() else { break };
                after = Some(last.id);
                got.extend(page.into_iter().map(|p| p.id));
            }
            assert_eq!(got.len(), want_patients, "patients since, by {limit}");
            assert!(got.windows(2).all(|w| w[0] < w[1]), "in id order");
            let mut got = Vec::new();
            let mut after: Option<RegionKey> = None;
            loop {
                let page = s.enrolments_created_after(after.as_ref(), at, limit).await.expect("page");
                let Some((region, last)) = page.last() else { break };
                after = Some((region.clone(), last.id));
                got.extend(page.into_iter().map(|(_, e)| e.id));
            }
            assert_eq!(got.len(), want_enrolments, "enrolments since, by {limit}");
            let mut got = Vec::new();
            let mut after: Option<RegionKey> = None;
            loop {
                let page = s.encounters_created_after(after.as_ref(), at, limit).await.expect("page");
                let Some(last) = page.last() else { break };
                after = Some((last.region_key.clone(), last.id));
                got.extend(page.into_iter().map(|e| e.id));
            }
            assert_eq!(got.len(), want_encounters, "encounters since, by {limit}");
            if at == since {
                assert_eq!(
                    got.iter().copied().collect::<BTreeSet<_>>(),
                    late_encounters.iter().map(|e| e.id).collect()
                );
            }
        }
    }
    // the access-log rows of an export: all written, each as given
    let admin = user(&f, "bulk_admin", vec![Role::SystemAdmin]);
    s.create_user(&admin).await.expect("user");
    let rows: Vec<AccessLogEntry> = patients
        .iter()
        .map(|p| AccessLogEntry {
            id: new_id(),
            region_key: p.region_key.clone(),
            at: NOW,
            user_id: admin.id,
            facility_id: f.id,
            patient_id: p.id,
            action: "bulk_export".into(),
            basis: AccessBasis::BreakGlass,
            reason: Some("FHIR bulk export".into()),
            client_addr: None,
        })
        .collect();
    s.record_bulk_access(&rows).await.expect("rows");
    s.record_bulk_access(&[]).await.expect("nothing to write");
    let mut got =
        s.query_access_log(&AccessLogFilter { user_id: Some(admin.id), ..Default::default() }).await.expect("log");
    got.sort_by_key(|e| e.id);
    let mut want = rows.clone();
    want.sort_by_key(|e| e.id);
    assert_eq!(got, want);
}

/// A Group's members: the patients registered at one facility (their home facility), any
/// status, in id order whatever the page, none of another facility's or of no facility; with
/// `since`, only those changed (registered or updated) after the instant.
pub async fn bulk_group_members_by_home_facility(store: Arc<dyn Store>) {
    let s = &*store;
    migrated(s).await;
    let a = facility(s, "H51162100011", Tier::Township, YUECHI, None).await;
    let b = facility(s, "H51162100012", Tier::Township, YUECHI, None).await;
    let person = |k: u16, home: Option<Uuid>| {
        NewPatient {
            identity_number: Some(id_number(
                YUECHI,
                date!(1970 - 01 - 01) + Duration::days(i64::from(k)),
                k + 1,
                Sex::Female,
            )),
            home_facility_id: home,
            ..NewPatient::new(&format!("成员{k}"), Sex::Female)
        }
        .validate(TODAY, None)
        .expect("valid registration")
        .into_patient(new_id())
    };
    // four at A, two at B, one registered nowhere
    let homes = [Some(a.id), Some(b.id), Some(a.id), None, Some(a.id), Some(b.id), Some(a.id)];
    let patients: Vec<Patient> = homes.iter().enumerate().map(|(k, h)| person(k as u16, *h)).collect();
    let rows: Vec<(u64, Patient)> = patients.iter().enumerate().map(|(i, p)| (i as u64 + 1, p.clone())).collect();
    assert_eq!(s.import_patients(&rows, true).await.expect("import").inserted, 7);
    let walk = |f: Uuid, since: Option<OffsetDateTime>, limit: u32| async move {
        let mut got = Vec::new();
        let mut after = None;
        loop {
            let page = s.patients_registered_at(f, after, since, limit).await.expect("a page");
            assert!(page.len() <= limit as usize, "a page holds at most the limit");
            let Some(last) = page.last() else { break };
            after = Some(last.id);
            got.extend(page);
        }
        got
    };
    let of = |f: Uuid| {
        let mut want: Vec<Patient> =
            patients.iter().filter(|p| p.home_facility_id == Some(f)).cloned().map(normalised).collect();
        want.sort_by_key(|p| p.id);
        want
    };
    for limit in [1u32, 3, 50] {
        let got: Vec<Patient> = walk(a.id, None, limit).await.into_iter().map(normalised).collect();
        assert_eq!(got, of(a.id), "A's four by {limit}");
        let got: Vec<Patient> = walk(b.id, None, limit).await.into_iter().map(normalised).collect();
        assert_eq!(got, of(b.id), "B's two by {limit}");
    }
    assert_eq!(of(a.id).len(), 4);
    assert!(walk(new_id(), None, 10).await.is_empty(), "a facility nobody is registered at");
    // since: one of A's changed and one newly registered at A after the instant
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let since = OffsetDateTime::now_utc();
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let changed = Patient { phone: Some("13800009999".into()), ..patients[2].clone() };
    s.update_patient(&changed).await.expect("update");
    let late = person(20, Some(a.id));
    assert_eq!(s.import_patients(&[(1, late.clone())], true).await.expect("import").inserted, 1);
    for limit in [1u32, 50] {
        let mut got: Vec<Uuid> = walk(a.id, Some(since), limit).await.iter().map(|p| p.id).collect();
        assert!(got.windows(2).all(|w| w[0] < w[1]), "in id order");
        got.sort();
        let mut want = vec![changed.id, late.id];
        want.sort();
        assert_eq!(got, want, "A's changed since, by {limit}");
        assert!(walk(b.id, Some(since), limit).await.is_empty(), "nothing of B changed");
    }
    // without since the late one is a member too
    assert_eq!(walk(a.id, None, 2).await.len(), 5);
}
