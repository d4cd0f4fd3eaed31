//! Insurance enrolment (参保) as an R4 `Coverage` (issue 6, part 8).
//!
//! | enrolment | Coverage |
//! |---|---|
//! | id | `id` (the same id the county export uses) |
//! | valid_to before today | `status` `cancelled`; otherwise `active` (the dates are in `period`) |
//! | scheme | `type` (system `http://tiercare.org/fhir/CodeSystem/insurance-scheme`: `employee` 职工基本医疗保险, `resident` 城乡居民基本医疗保险) and `class[0]` (type `plan`, value the scheme code, name the scheme's Chinese name) |
//! | patient | `beneficiary` = `Patient/{id}`; `relationship` `self` |
//! | insured region (参保地) | `payor[0].display` = its 医疗保障局 (四川省广安市医疗保障局), and the extension `insured-region` (valueCode, GB/T 2260) |
//! | valid_from, valid_to | `period.start`, `period.end` |
//! | filing status (异地就医备案) | extension `filing-status` (valueCode `not_filed` \| `long_term` \| `temporary`) |
//! | filed region (就医地) | extension `filed-region` (valueCode, GB/T 2260), when filed |
//!
//! The extensions are `http://tiercare.org/fhir/StructureDefinition/{insured-region,
//! filing-status,filed-region}`.

use serde_json::{Value, json};
use tiercare_domain::patient::{Enrolment, Scheme};
use time::Date;

use crate::ext;

pub const SCHEME_SYSTEM: &str = "http://tiercare.org/fhir/CodeSystem/insurance-scheme";
pub const COVERAGE_CLASS_SYSTEM: &str = "http://terminology.hl7.org/CodeSystem/coverage-class";
pub const RELATIONSHIP_SYSTEM: &str = "http://terminology.hl7.org/CodeSystem/subscriber-relationship";
pub const EXT_INSURED_REGION: &str = "insured-region";
pub const EXT_FILING_STATUS: &str = "filing-status";
pub const EXT_FILED_REGION: &str = "filed-region";

/// The R4 Coverage.status value set.
pub const COVERAGE_STATUSES: [&str; 4] = ["active", "cancelled", "draft", "entered-in-error"];

/// The Chinese name of a scheme.
pub fn scheme_name(s: Scheme) -> &'static str {
    match s {
        Scheme::Employee => "职工基本医疗保险",
        Scheme::Resident => "城乡居民基本医疗保险",
    }
}

/// Coverage.status of an enrolment on `today`.
pub fn status(e: &Enrolment, today: Date) -> &'static str {
    match e.valid_to {
        Some(to) if to < today => "cancelled",
        _ => "active",
    }
}

/// The Coverage of an enrolment, as seen on `today`.
pub fn coverage(e: &Enrolment, today: Date) -> Value {
    let mut extension = vec![
        json!({ "url": ext(EXT_INSURED_REGION), "valueCode": e.insured_region }),
        json!({ "url": ext(EXT_FILING_STATUS), "valueCode": e.filing_status.as_str() }),
    ];
    if let Some(r) = &e.filed_region {
        extension.push(json!({ "url": ext(EXT_FILED_REGION), "valueCode": r }));
    }
    let scheme = e.scheme.as_str();
    let mut period = json!({ "start": e.valid_from.to_string() });
    if let Some(to) = e.valid_to {
        period["end"] = json!(to.to_string());
    }
    json!({
        "resourceType": "Coverage",
        "id": e.id.to_string(),
        "extension": extension,
        "status": status(e, today),
        "type": {
            "coding": [{ "system": SCHEME_SYSTEM, "code": scheme, "display": scheme_name(e.scheme) }],
            "text": scheme_name(e.scheme),
        },
        "beneficiary": { "reference": format!("Patient/{}", e.patient_id) },
        "relationship": { "coding": [{ "system": RELATIONSHIP_SYSTEM, "code": "self" }] },
        "period": period,
        "payor": [{ "display": crate::claim::insurer_display(&e.insured_region) }],
        "class": [{
            "type": { "coding": [{ "system": COVERAGE_CLASS_SYSTEM, "code": "plan" }] },
            "value": scheme,
            "name": scheme_name(e.scheme),
        }],
    })
}
