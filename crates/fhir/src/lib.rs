//! tiercare-fhir: domain records as FHIR R4 JSON. Only this crate knows FHIR JSON.
//!
//! This first part writes what the synthetic county generator exports (Organization,
//! Patient, Coverage, Condition, Encounter); the FHIR interface issue adds reading,
//! validation and the other resources. Canonical URLs for what FHIR has no field for:
//! - `http://tiercare.org/fhir/StructureDefinition/facility-tier` (valueCode: village …
//!   national), `…/facility-grade`, `…/insured-region` (valueCode: GB/T 2260),
//!   `…/total-cost` (valueMoney, CNY)
//! - code systems `http://tiercare.org/fhir/CodeSystem/insurance-scheme` (employee,
//!   resident)
//! - the resident identity number (居民身份证号) as identifier system
//!   `urn:oid:2.16.156.10011.1.3`; the insurance facility code as
//!   `http://tiercare.org/fhir/sid/facility-code`.
//! - referrals (ServiceRequest + Task): the extensions and code systems are listed in
//!   [`referral`]; OperationOutcome issue details use
//!   `http://tiercare.org/fhir/CodeSystem/error` ([`outcome`]).

pub mod apportion;
pub mod bulk;
pub mod bundle;
pub mod capability;
pub mod claim;
pub mod clinical;
pub mod coverage;
pub mod ingest;
pub mod outcome;
mod read;
pub mod referral;
pub mod registration;
pub mod registry;
pub mod results;
pub mod search;
pub mod stored_claim;
#[cfg(test)]
#[path = "../tests/support/mod.rs"]
mod test_support;

use serde_json::{Value, json};
use tiercare_domain::encounter::{Encounter, EncounterClass};
use tiercare_domain::facility::Facility;
use tiercare_domain::identity::{IdentifierType, Sex};
use tiercare_domain::patient::{Enrolment, Patient, PatientStatus};
use time::format_description::well_known::Rfc3339;

pub const BASE: &str = "http://tiercare.org/fhir";
pub const RESIDENT_ID_SYSTEM: &str = "urn:oid:2.16.156.10011.1.3";
const ICD10: &str = "http://hl7.org/fhir/sid/icd-10";
const ICD9CM: &str = "http://hl7.org/fhir/sid/icd-9-cm";

pub(crate) fn ext(name: &str) -> String {
    format!("{BASE}/StructureDefinition/{name}")
}

/// The identifier system of an identifier type (the resident identity number: its OID).
pub fn identifier_system(kind: IdentifierType) -> String {
    match kind {
        IdentifierType::ResidentId => RESIDENT_ID_SYSTEM.to_owned(),
        other => format!("{BASE}/sid/{}", other.as_str().replace('_', "-")),
    }
}

/// Money in fen as a FHIR Money (yuan, two decimals at most).
pub fn money(fen: i64) -> Value {
    json!({ "value": fen as f64 / 100.0, "currency": "CNY" })
}

pub fn organization(f: &Facility) -> Value {
    json!({
        "resourceType": "Organization",
        "id": f.id.to_string(),
        "extension": [
            { "url": ext("facility-tier"), "valueCode": f.tier.as_str() },
            { "url": ext("facility-grade"), "valueCode": f.grade.as_str() },
        ],
        "identifier": [{ "system": format!("{BASE}/sid/facility-code"), "value": f.code }],
        "active": true,
        "type": [{ "coding": [{ "system": "http://terminology.hl7.org/CodeSystem/organization-type", "code": "prov", "display": "Healthcare Provider" }] }],
        "name": f.name,
        "address": [{ "district": f.region_code, "country": "CN" }],
    })
}

pub fn patient(p: &Patient) -> Value {
    let mut v = json!({
        "resourceType": "Patient",
        "id": p.id.to_string(),
        "identifier": p.identifiers.iter().map(|i| json!({ "system": identifier_system(i.kind), "value": i.value })).collect::<Vec<_>>(),
        "active": p.status == PatientStatus::Active,
        "name": [{ "text": p.name }],
        "gender": match p.sex { Sex::Male => "male", Sex::Female => "female" },
        "birthDate": p.birth_date.to_string(),
    });
    if let Some(phone) = &p.phone {
        v["telecom"] = json!([{ "system": "phone", "value": phone, "use": "mobile" }]);
    }
    let mut address = json!({ "district": p.region_key, "country": "CN" });
    if let Some(a) = &p.address {
        address["text"] = json!(a);
    }
    v["address"] = json!([address]);
    if let Some(f) = p.home_facility_id {
        v["managingOrganization"] = json!({ "reference": format!("Organization/{f}") });
    }
    if let PatientStatus::Merged(into) = p.status {
        v["link"] = json!([{ "other": { "reference": format!("Patient/{into}") }, "type": "replaced-by" }]);
    }
    v
}

pub fn coverage(e: &Enrolment) -> Value {
    let mut v = json!({
        "resourceType": "Coverage",
        "id": e.id.to_string(),
        "extension": [{ "url": ext("insured-region"), "valueCode": e.insured_region }],
        "status": "active",
        "type": { "coding": [{ "system": format!("{BASE}/CodeSystem/insurance-scheme"), "code": e.scheme.as_str() }] },
        "beneficiary": { "reference": format!("Patient/{}", e.patient_id) },
        "payor": [{ "display": format!("{} 医疗保障局", e.insured_region) }],
        "period": { "start": e.valid_from.to_string() },
    });
    if let Some(to) = e.valid_to {
        v["period"]["end"] = json!(to.to_string());
    }
    v
}

/// A long-standing diagnosis (hypertension, diabetes) as an active Condition.
pub fn chronic_condition(p: &Patient, icd10: &str) -> Value {
    json!({
        "resourceType": "Condition",
        "id": format!("{}-{}", p.id, icd10.replace('.', "")),
        "clinicalStatus": { "coding": [{ "system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active" }] },
        "category": [{ "coding": [{ "system": "http://terminology.hl7.org/CodeSystem/condition-category", "code": "problem-list-item" }] }],
        "code": { "coding": [coding(ICD10, icd10, tiercare_domain::codes::diagnosis_name(icd10))] },
        "subject": { "reference": format!("Patient/{}", p.id) },
    })
}

fn coding(system: &str, code: &str, display: Option<&str>) -> Value {
    let mut c = json!({ "system": system, "code": code });
    if let Some(d) = display {
        c["display"] = json!(d);
    }
    c
}

pub fn encounter(e: &Encounter) -> Value {
    let (code, display) = match e.class {
        EncounterClass::Outpatient => ("AMB", "ambulatory"),
        EncounterClass::Inpatient => ("IMP", "inpatient encounter"),
        EncounterClass::Emergency => ("EMER", "emergency"),
    };
    let fmt = |t: time::OffsetDateTime| t.format(&Rfc3339).unwrap_or_default();
    let mut period = json!({ "start": fmt(e.started_at) });
    if let Some(end) = e.ended_at {
        period["end"] = json!(fmt(end));
    }
    let mut v = json!({
        "resourceType": "Encounter",
        "id": e.id.to_string(),
        "extension": [{ "url": ext("total-cost"), "valueMoney": money(e.total_cost_fen) }],
        "status": if e.ended_at.is_some() { "finished" } else { "in-progress" },
        "class": { "system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": code, "display": display },
        "subject": { "reference": format!("Patient/{}", e.patient_id) },
        "period": period,
        "reasonCode": e.diagnoses.iter().map(|d| json!({ "coding": [coding(ICD10, d, tiercare_domain::codes::diagnosis_name(d))] })).collect::<Vec<_>>(),
        "serviceProvider": { "reference": format!("Organization/{}", e.facility_id) },
    });
    if let Some(p) = e.practitioner_id {
        v["participant"] = json!([{ "individual": { "reference": format!("Practitioner/{p}") } }]);
    }
    if !e.procedures.is_empty() {
        // procedures travel as their own resources in the FHIR issue; here they are noted
        if let Some(a) = v["extension"].as_array_mut() {
            a.extend(e.procedures.iter().map(|p| {
                json!({ "url": ext("procedure-code"), "valueCoding": coding(ICD9CM, p, tiercare_domain::codes::procedure_name(p)) })
            }));
        }
    }
    v
}
