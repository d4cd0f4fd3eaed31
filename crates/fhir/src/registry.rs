//! Practitioners and their roles as FHIR R4 (the facility is [`crate::organization`]).
//! Code systems: `http://tiercare.org/fhir/sid/practitioner-licence` (执业证书编码) and
//! `http://tiercare.org/fhir/CodeSystem/practitioner-role` (village_doctor …); the
//! department travels as the extension `…/StructureDefinition/department` (valueString).

use serde_json::{Value, json};
use tiercare_domain::facility::{Practitioner, PractitionerRole, PractitionerRoleCode};

use crate::{BASE, ext};

/// Identifier system of the practising licence number.
pub fn licence_system() -> String {
    format!("{BASE}/sid/practitioner-licence")
}

/// Code system of the role a practitioner has at a facility.
pub fn role_system() -> String {
    format!("{BASE}/CodeSystem/practitioner-role")
}

/// The role's code (`village_doctor`, as the JSON API writes it).
pub fn role_code(r: PractitionerRoleCode) -> String {
    serde_json::to_value(r).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
}

pub fn practitioner(p: &Practitioner) -> Value {
    let mut v = json!({
        "resourceType": "Practitioner",
        "id": p.id.to_string(),
        "active": true,
        "name": [{ "text": p.name }],
    });
    if let Some(l) = &p.licence_number {
        v["identifier"] = json!([{ "system": licence_system(), "value": l }]);
    }
    if let Some(phone) = &p.phone {
        v["telecom"] = json!([{ "system": "phone", "value": phone, "use": "work" }]);
    }
    v
}

pub fn practitioner_role(r: &PractitionerRole) -> Value {
    let mut v = json!({
        "resourceType": "PractitionerRole",
        "id": r.id.to_string(),
        "active": r.active,
        "practitioner": { "reference": format!("Practitioner/{}", r.practitioner_id) },
        "organization": { "reference": format!("Organization/{}", r.facility_id) },
        "code": [{ "coding": [{ "system": role_system(), "code": role_code(r.role) }] }],
    });
    if let Some(d) = &r.department {
        v["extension"] = json!([{ "url": ext("department"), "valueString": d }]);
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    #[test]
    fn practitioners_and_roles_validate_against_the_official_schema() {
        let Some(dir) = crate::test_support::fhir_data() else { return };
        let schema = crate::test_support::read_json(&dir.join("fhir.schema.json"));
        let p = Practitioner {
            id: Uuid::now_v7(),
            name: "李村医".into(),
            licence_number: Some("110510000012345".into()),
            phone: Some("13800000000".into()),
        };
        let r = PractitionerRole {
            id: Uuid::now_v7(),
            practitioner_id: p.id,
            facility_id: Uuid::now_v7(),
            role: PractitionerRoleCode::VillageDoctor,
            department: Some("全科".into()),
            active: true,
        };
        for v in [practitioner(&p), practitioner_role(&r)] {
            assert_eq!(crate::test_support::schema_errors(&schema, &v), Vec::<String>::new(), "{v}");
        }
        assert_eq!(practitioner_role(&r)["code"][0]["coding"][0]["code"], "village_doctor");
    }
}
