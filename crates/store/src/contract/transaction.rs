//! Contract cases for FHIR transactions (issue 7): [`Store::apply_writes`] applies a list of
//! prepared writes in one transaction — a mixed list lands whole (later writes seeing earlier
//! ones: a referral and results for a patient registered earlier in the list), and one
//! failing write leaves nothing of the others. Each case is a `pub async fn case(store:
//! Arc<dyn Store>)` like those of the parent module (whose fixtures and helpers it uses
//! through `super::`), listed in [`transaction_contract_tests!`](crate::transaction_contract_tests).

/// Expand one `#[tokio::test]` per FHIR transaction contract case (see [`contract_tests!`](crate::contract_tests)).
#[macro_export]
macro_rules! transaction_contract_tests {
    ($open:expr) => {
        $crate::contract_tests!(@cases_in transaction, $open;
            transaction_mixed_writes_land_whole,
            transaction_one_failing_write_leaves_nothing,
        );
    };
}

#[allow(unused_imports)]
use super::*;

use tiercare_domain::recognition::{LabQualification, RecognitionConfig, Scope};
use tiercare_domain::results::{Category, NewObservation, NewReport, Performer, Report, prepare_report};

use crate::{PreparedWrite, ResultQuery, WriteDone, WriteFailed};

const LAB: Uuid = Uuid::from_u128(0x7AB);

/// A validated lab report of `p` at `f`: potassium 4.1 mmol/L and HbA1c 6.5 % (two rows).
fn report(p: &Patient, f: &Facility) -> Report {
    let obs = |code: &str, value: &str, unit: &str| NewObservation {
        code: code.into(),
        value: value.into(),
        unit: Some(unit.into()),
        reference_low: None,
        reference_high: None,
        reference_text: None,
        flag: None,
    };
    let specimen = NOW - Duration::hours(6);
    let new = NewReport {
        patient_id: p.id,
        facility_id: f.id,
        lab_id: LAB,
        category: Category::Lab,
        specimen_time: specimen,
        report_time: specimen + Duration::hours(2),
        mark: Some(Scope::Province { province: "51".into() }),
        observations: vec![obs("K", "4.1", "mmol/L"), obs("HBA1C", "6.5", "%")],
        imaging: None,
    };
    let quals = [LabQualification { lab_id: LAB, qualified_from: datetime!(2020-01-01 00:00 UTC), qualified_to: None }];
    let performer = Performer { facility_tier: f.tier, region_key: p.region_key.clone() };
    prepare_report(new, &performer, &RecognitionConfig::default_config(), &quals, NOW, new_id).expect("valid report")
}

fn row(p: &Patient, u: &User, action: &str) -> AccessLogEntry {
    AccessLogEntry {
        id: new_id(),
        region_key: p.region_key.clone(),
        at: NOW,
        user_id: u.id,
        facility_id: u.facility_id,
        patient_id: p.id,
        action: action.into(),
        basis: AccessBasis::CareRelationship,
        reason: None,
        client_addr: None,
    }
}

async fn log_of(s: &dyn Store, p: &Patient) -> Vec<AccessLogEntry> {
    let f = AccessLogFilter { patient_id: Some(p.id), limit: 100, ..Default::default() };
    let mut rows = s.query_access_log(&f).await.expect("access log");
    rows.sort_by_key(|e| e.id);
    rows
}

async fn results_of(s: &dyn Store, p: &Patient) -> usize {
    s.find_results(&ResultQuery { patient_ids: vec![p.id], ..Default::default() }).await.expect("results").len()
}

/// The scene: a township (sender) and a county hospital (receiver), a registered patient
/// `a` with a referral in state requested, and a person `b` to register.
struct Scene {
    township: Facility,
    county: Facility,
    clerk: User,
    a: Patient,
    b: Patient,
    a_referral: Change,
}

async fn scene(s: &dyn Store) -> Scene {
    migrated(s).await;
    let township = facility(s, "H51162100002", Tier::Township, YUECHI, None).await;
    let county = facility(s, "H51162100001", Tier::County, YUECHI, None).await;
    let clerk = user(&township, "tdoc", vec![Role::TownshipClinician]);
    s.create_user(&clerk).await.expect("user");
    let a = resident("王秀英", Sex::Female, date!(1962 - 03 - 08), 102);
    s.create_patient(&a).await.expect("patient a");
    let a_referral = requested(referral_input(&a, &county), &a, &township, &county, NOW - Duration::hours(1));
    s.create_referral(&a_referral).await.expect("a's referral");
    let b = Patient {
        home_facility_id: Some(township.id),
        ..resident("李桂兰", Sex::Female, date!(1958 - 07 - 21), 124)
    };
    Scene { township, county, clerk, a, b, a_referral }
}

/// The writes of one Bundle: register `b`, change `a`'s phone (at the version read), refer
/// `b` (registered by the first write), accept `a`'s referral, store `b`'s results, and log
/// a read of `a`.
fn writes(sc: &Scene) -> (Vec<PreparedWrite>, Change, Change, Report) {
    let Scene { township, county, clerk, a, b, a_referral } = sc;
    let changed = Patient { phone: Some("13900005678".into()), ..a.clone() };
    let b_referral = requested(referral_input(b, county), b, township, county, NOW);
    let accepted =
        stepped(&a_referral.referral, accept(), Party::Receiver, township, county, NOW + Duration::minutes(5));
    let results = report(b, county);
    let list = vec![
        PreparedWrite::CreatePatient(b.clone()),
        PreparedWrite::UpdatePatient(changed),
        PreparedWrite::CreateReferral { change: b_referral.clone(), access: Some(row(b, clerk, "create_referral")) },
        PreparedWrite::ReferralStep { change: accepted.clone(), access: Some(row(a, clerk, "act_referral")) },
        PreparedWrite::Results(vec![results.clone()]),
        PreparedWrite::Access(row(a, clerk, "fhir_read_patient")),
    ];
    (list, b_referral, accepted, results)
}

/// A mixed list lands whole: each write as its own method would have written it, the later
/// ones seeing the earlier (the referral and results of the patient registered first).
pub async fn transaction_mixed_writes_land_whole(store: Arc<dyn Store>) {
    let s = &*store;
    let sc = scene(s).await;
    let (list, b_referral, accepted, results) = writes(&sc);
    let before = OffsetDateTime::now_utc() - Duration::seconds(1);
    let done = s.apply_writes(&list).await.expect("the writes land");
    assert_eq!(done.len(), 6, "one answer per write");
    assert_eq!(done[0], WriteDone::Written);
    let WriteDone::PatientUpdated(at) = done[1] else { panic!("the update answers its time: {done:?}") };
    assert!(at >= before, "{at} {before}");
    assert_eq!(&done[2..4], &[WriteDone::Written, WriteDone::Written]);
    assert_eq!(done[4], WriteDone::Results(2), "two observations: two rows");
    assert_eq!(done[5], WriteDone::Written);

    assert_same_patient(s.get_patient(sc.b.id).await.expect("read"), &sc.b, "b registered");
    let (a_now, a_at) = s.get_patient_versioned(sc.a.id).await.expect("read").expect("a");
    assert_eq!((a_now.version, a_now.phone.as_deref(), a_at), (2, Some("13900005678"), at));
    let r = s.get_referral(b_referral.referral.id).await.expect("read").expect("b's referral");
    assert_eq!((r.patient_id, r.version), (sc.b.id, 1));
    assert_eq!(s.get_referral(sc.a_referral.referral.id).await.expect("read"), Some(accepted.referral.clone()));
    assert_eq!(results_of(s, &sc.b).await, 2);
    let stored = s.report_results(results.id).await.expect("report");
    assert_eq!(stored.len(), 2);
    let actions = |rows: Vec<AccessLogEntry>| {
        let mut a: Vec<String> = rows.into_iter().map(|e| e.action).collect();
        a.sort();
        a
    };
    assert_eq!(actions(log_of(s, &sc.a).await), vec!["act_referral", "fhir_read_patient"]);
    assert_eq!(actions(log_of(s, &sc.b).await), vec!["create_referral"]);
    // the referral's notification went out with it (one for a's request, one for b's, one
    // for a's acceptance)
    assert_eq!(s.pending_outbox(0).await.expect("outbox").len(), 3);
    // an empty list is an empty transaction
    assert_eq!(s.apply_writes(&[]).await.expect("nothing"), Vec::new());
}

/// One failing write — wherever it is in the list — rolls back all the others; the error
/// names it by index.
pub async fn transaction_one_failing_write_leaves_nothing(store: Arc<dyn Store>) {
    let s = &*store;
    let sc = scene(s).await;
    let outbox = s.pending_outbox(0).await.expect("outbox").len();
    let a_before = s.get_patient_versioned(sc.a.id).await.expect("read").expect("a");
    let referral_before = s.get_referral(sc.a_referral.referral.id).await.expect("read");

    let nothing_written = |what: &'static str| {
        let sc = &sc;
        let a_before = &a_before;
        let referral_before = &referral_before;
        async move {
            assert_eq!(s.get_patient(sc.b.id).await.expect("read"), None, "{what}: b not registered");
            let b_number = sc.b.identity_number().expect("a number").to_owned();
            let found = s.find_by_identifier(IdentifierType::ResidentId, &b_number).await.expect("find");
            assert_eq!(found, None, "{what}: b's number not claimed");
            assert_eq!(s.get_patient_versioned(sc.a.id).await.expect("read").as_ref(), Some(a_before), "{what}: a");
            assert_eq!(&s.get_referral(sc.a_referral.referral.id).await.expect("read"), referral_before, "{what}");
            let open = s
                .list_referrals(&ReferralFilter { from_facility_id: Some(sc.township.id), ..Default::default() })
                .await
                .expect("list");
            assert_eq!(open.len(), 1, "{what}: no referral for b");
            assert_eq!(results_of(s, &sc.b).await, 0, "{what}: no results");
            assert_eq!(log_of(s, &sc.a).await, Vec::new(), "{what}: no access-log row of a");
            assert_eq!(log_of(s, &sc.b).await, Vec::new(), "{what}: no access-log row of b");
            assert_eq!(s.pending_outbox(0).await.expect("outbox").len(), outbox, "{what}: no notification");
        }
    };

    // a stale patient version (the second write): read at version 1, stored at version 2
    let (mut list, ..) = writes(&sc);
    let PreparedWrite::UpdatePatient(p) = &mut list[1] else { panic!("the update") };
    p.version = 2;
    match s.apply_writes(&list).await {
        Err(WriteFailed { index: Some(1), error: StoreError::Conflict(_) }) => {}
        other => panic!("a stale version: expected a conflict at write 1, got {other:?}"),
    }
    nothing_written("a stale version").await;

    // a referral to a facility that does not exist (the third write, after two good ones)
    let (mut list, ..) = writes(&sc);
    let PreparedWrite::CreateReferral { change, .. } = &mut list[2] else { panic!("the referral") };
    change.referral.to_facility_id = new_id();
    match s.apply_writes(&list).await {
        Err(WriteFailed { index: Some(2), error: StoreError::NotFound { .. } }) => {}
        other => panic!("an unknown receiver: expected not found at write 2, got {other:?}"),
    }
    nothing_written("an unknown receiver").await;

    // the last write fails: a second registration of b's number (under another id)
    let (mut list, ..) = writes(&sc);
    list.push(PreparedWrite::CreatePatient(Patient { id: new_id(), ..sc.b.clone() }));
    let last = list.len() - 1;
    match s.apply_writes(&list).await {
        Err(WriteFailed { index: Some(i), error: StoreError::Duplicate { existing, .. } }) if i == last => {
            assert_eq!(existing, Some(sc.b.id), "the duplicate names the record registered earlier in the list");
        }
        other => panic!("a number registered twice: expected a duplicate at write {last}, got {other:?}"),
    }
    nothing_written("a number registered twice").await;

    // results for a patient neither stored nor registered in the list
    let stranger = resident("陈明", Sex::Male, date!(1962 - 02 - 02), 22);
    let (mut list, ..) = writes(&sc);
    list[4] = PreparedWrite::Results(vec![report(&stranger, &sc.county)]);
    match s.apply_writes(&list).await {
        Err(WriteFailed { index: Some(4), error: StoreError::NotFound { .. } }) => {}
        other => panic!("results of nobody: expected not found at write 4, got {other:?}"),
    }
    nothing_written("results of nobody").await;

    // and the list corrected lands
    let (list, ..) = writes(&sc);
    s.apply_writes(&list).await.expect("the corrected list lands");
    assert_eq!(results_of(s, &sc.b).await, 2);
}
