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
            clinical_a_practitioner_role_is_read_by_its_id,
        );
    };
}

#[allow(unused_imports)]
use super::*;

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
