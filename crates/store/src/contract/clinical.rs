//! Contract cases for the clinical reads of the FHIR interface (issue 7). Each case is a
//! `pub async fn case(store: Arc<dyn Store>)` like those of the parent module (whose fixtures
//! and helpers it uses through `super::`), listed in
//! [`clinical_contract_tests!`](crate::clinical_contract_tests). Case names start with the
//! part's name so they never clash with the other suites'.

/// Expand one `#[tokio::test]` per clinical (issue 7) contract case (see [`contract_tests!`](crate::contract_tests)).
#[macro_export]
macro_rules! clinical_contract_tests {
    ($open:expr) => {
        $crate::contract_tests!(@cases_in clinical, $open;
            clinical_an_encounter_is_read_by_its_id_alone,
            clinical_a_patients_encounters_are_read_alone_newest_first_within_a_range,
            clinical_a_practitioner_role_is_read_by_its_id,
        );
    };
}

#[allow(unused_imports)]
use super::*;
use crate::StartedRange;

/// An encounter reads back whole by its id, whatever the patient's region; an unknown id
/// (or another table's id) reads nothing.
pub async fn clinical_an_encounter_is_read_by_its_id_alone(store: Arc<dyn Store>) {
    let s = &*store;
    migrated(s).await;
    let f = facility(s, "H51162100001", Tier::County, YUECHI, None).await;
    let p1 = resident("许文", Sex::Male, date!(1961 - 01 - 01), 1);
    // the other county's resident: another region key, so the read cannot lean on the key
    let p2 = NewPatient {
        identity_number: Some(id_number(WUSHENG, date!(1963 - 03 - 03), 2, Sex::Female)),
        ..NewPatient::new("许静", Sex::Female)
    }
    .validate(TODAY, None)
    .expect("valid registration")
    .into_patient(new_id());
    assert_eq!(p2.region_key, WUSHENG);
    create_patients(s, &[&p1, &p2]).await;
    let mut stay = encounter(&p2, &f, NOW - Duration::days(10), "I10.x00");
    stay.class = EncounterClass::Inpatient;
    stay.diagnoses.push("E11.900".into());
    stay.procedures = vec!["88.7201".into(), "36.0601".into()];
    stay.ended_at = Some(NOW - Duration::days(3));
    let visit = encounter(&p1, &f, NOW - Duration::days(1), "J06.900");
    s.create_encounter(&stay).await.expect("stay");
    s.create_encounter(&visit).await.expect("visit");
    assert_eq!(s.encounter(stay.id).await.expect("read"), Some(stay.clone()));
    assert_eq!(s.encounter(visit.id).await.expect("read"), Some(visit.clone()));
    assert_eq!(s.encounter(new_id()).await.expect("read"), None);
    assert_eq!(s.encounter(p1.id).await.expect("read"), None, "a patient's id is not an encounter's");
}

/// One patient's encounters: newest first (a tie on the start broken by id, descending),
/// with those of a record merged into it (read by either id), none of another patient's;
/// the range keeps `from` and drops `until` (the half-open `[lo, hi)` of a FHIR date value).
pub async fn clinical_a_patients_encounters_are_read_alone_newest_first_within_a_range(store: Arc<dyn Store>) {
    let s = &*store;
    migrated(s).await;
    let f = facility(s, "H51162100001", Tier::County, YUECHI, None).await;
    let born = date!(1958 - 06 - 06);
    let p = resident("陈秀英", Sex::Female, born, 31);
    // the same person registered twice: merged into `p` below
    let twin = without_id_number("陈秀英", Sex::Female, born, IdentifierType::InsuranceCard, "YB5116210031");
    let other = resident("陈国强", Sex::Male, date!(1957 - 07 - 07), 33);
    create_patients(s, &[&p, &twin, &other]).await;
    let edge = datetime!(2026-11-01 00:00 UTC);
    let oct = encounter(&p, &f, datetime!(2026-10-01 09:00 UTC), "I10.x00");
    let at_edge = encounter(&p, &f, edge, "I10.x00");
    let just_before = encounter(&twin, &f, edge - Duration::milliseconds(1), "E11.900");
    let mut late = [
        encounter(&p, &f, datetime!(2026-11-15 08:00 UTC), "J06.900"),
        encounter(&p, &f, datetime!(2026-11-15 08:00 UTC), "K29.700"),
    ];
    late.sort_by_key(|e| std::cmp::Reverse(e.id));
    let others = encounter(&other, &f, datetime!(2026-11-05 10:00 UTC), "I10.x00");
    for e in [&oct, &late[1], &others, &at_edge, &just_before, &late[0]] {
        s.create_encounter(e).await.expect("encounter");
    }
    let ids = |v: Vec<Encounter>| v.into_iter().map(|e| e.id).collect::<Vec<_>>();
    let read = |id: Uuid, from: Option<OffsetDateTime>, until: Option<OffsetDateTime>| async move {
        s.patient_encounters(id, StartedRange { from, until }).await.expect("patient encounters")
    };

    // before the merge: p's own, whole, newest first
    let own = read(p.id, None, None).await;
    assert_eq!(own, vec![late[0].clone(), late[1].clone(), at_edge.clone(), oct.clone()]);
    assert_eq!(ids(read(twin.id, None, None).await), vec![just_before.id]);
    assert_eq!(ids(read(other.id, None, None).await), vec![others.id]);

    s.merge_patients(p.id, twin.id, new_id(), "同一人", NOW).await.expect("merge");
    let all = vec![late[0].id, late[1].id, at_edge.id, just_before.id, oct.id];
    assert_eq!(ids(read(p.id, None, None).await), all, "the merged record's encounters count for p");
    assert_eq!(ids(read(twin.id, None, None).await), all, "the merged id reads the survivor's");

    // `from` included, `until` excluded, to the millisecond
    let from_edge = vec![late[0].id, late[1].id, at_edge.id];
    assert_eq!(ids(read(p.id, Some(edge), None).await), from_edge);
    assert_eq!(ids(read(p.id, None, Some(edge)).await), vec![just_before.id, oct.id]);
    assert_eq!(ids(read(p.id, Some(edge), Some(edge)).await), Vec::<Uuid>::new(), "an empty range");
    assert_eq!(ids(read(p.id, Some(edge), Some(edge + Duration::milliseconds(1))).await), vec![at_edge.id]);
    let nov_day = (datetime!(2026-11-15 00:00 UTC), datetime!(2026-11-16 00:00 UTC));
    assert_eq!(ids(read(p.id, Some(nov_day.0), Some(nov_day.1)).await), vec![late[0].id, late[1].id]);
    assert_eq!(
        ids(read(p.id, Some(edge - Duration::milliseconds(1)), Some(datetime!(2026-11-15 08:00 UTC))).await),
        vec![at_edge.id, just_before.id],
        "a start at `until` is out"
    );
    assert_eq!(ids(read(other.id, Some(edge), None).await), vec![others.id]);
    assert_eq!(read(new_id(), None, None).await, Vec::<Encounter>::new(), "an unknown patient has none");
}

/// A practitioner's role reads back by its id, among the practitioner's other roles; an
/// unknown id (or the practitioner's own id) reads nothing.
pub async fn clinical_a_practitioner_role_is_read_by_its_id(store: Arc<dyn Store>) {
    let s = &*store;
    migrated(s).await;
    let county = facility(s, "H51162100001", Tier::County, YUECHI, None).await;
    let town = facility(s, "H51162100201", Tier::Township, YUECHI, None).await;
    let doctor = validate_practitioner(new_id(), "李建国", Some("110511621000123"), None).expect("valid");
    s.create_practitioner(&doctor).await.expect("practitioner");
    let role = PractitionerRole {
        id: new_id(),
        practitioner_id: doctor.id,
        facility_id: county.id,
        role: PractitionerRoleCode::Physician,
        department: Some("心血管内科".into()),
        active: true,
    };
    let second = PractitionerRole {
        id: new_id(),
        facility_id: town.id,
        role: PractitionerRoleCode::GeneralPractitioner,
        department: None,
        active: false,
        ..role.clone()
    };
    s.create_practitioner_role(&role).await.expect("role");
    s.create_practitioner_role(&second).await.expect("second role");
    assert_eq!(s.practitioner_role(role.id).await.expect("read"), Some(role.clone()));
    assert_eq!(s.practitioner_role(second.id).await.expect("read"), Some(second.clone()));
    assert_eq!(s.practitioner_role(new_id()).await.expect("read"), None);
    assert_eq!(s.practitioner_role(doctor.id).await.expect("read"), None);
}
