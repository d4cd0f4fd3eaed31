//! A Patient a client sends (`POST /fhir/Patient`) read as a registration
//! ([`NewPatient`]), so it goes through the same rules as the JSON API's (a wrong identity
//! number is refused the same way). The reverse of [`crate::patient`]: what that writes
//! reads back to the same record, and nothing is dropped silently — an R4 element we do not
//! keep is refused (422 `not-supported`), an element R4 does not have is malformed (400
//! `structure`). The domain's field names are mapped to the Patient's FHIRPath by
//! [`ParsedPatient::expression`] (`identity_number` → `Patient.identifier[0].value`).

use serde_json::{Map, Value};
use tiercare_domain::identity::{IdentifierType, Sex};
use tiercare_domain::patient::{NewPatient, OtherIdentifierInput};
use time::Date;
use time::macros::format_description;
use uuid::Uuid;

use crate::outcome::{Issue, IssueType};
use crate::read::Reader;
use crate::{RESIDENT_ID_SYSTEM, identifier_system};

/// Elements we read.
const USED: &[&str] = &[
    "resourceType",
    "identifier",
    "active",
    "name",
    "telecom",
    "gender",
    "birthDate",
    "address",
    "managingOrganization",
];
/// R4 elements the server assigns or that change nothing: accepted and ignored.
const IGNORED: &[&str] = &["id", "meta", "text", "language"];
/// The other R4 Patient elements: valid FHIR we do not keep.
const UNSUPPORTED: &[&str] = &[
    "implicitRules",
    "contained",
    "extension",
    "modifierExtension",
    "deceasedBoolean",
    "deceasedDateTime",
    "maritalStatus",
    "multipleBirthBoolean",
    "multipleBirthInteger",
    "photo",
    "contact",
    "communication",
    "generalPractitioner",
    "link",
];
const IDENTIFIER_KEYS: &[&str] = &["id", "extension", "use", "type", "system", "value", "period", "assigner"];
const NAME_KEYS: &[&str] = &["id", "extension", "use", "text", "family", "given", "prefix", "suffix", "period"];
const CONTACT_POINT_KEYS: &[&str] = &["id", "extension", "system", "value", "use", "rank", "period"];
const ADDRESS_KEYS: &[&str] =
    &["id", "extension", "use", "type", "text", "line", "city", "district", "state", "postalCode", "country", "period"];
const GENDERS: [&str; 4] = ["male", "female", "other", "unknown"];

/// A Patient read as a registration, with where each domain field came from.
#[derive(Debug, Clone)]
pub struct ParsedPatient {
    pub patient: NewPatient,
    /// Index in `Patient.identifier` of the identity number.
    identity_at: Option<usize>,
    /// Index in `Patient.identifier` of each of `other_identifiers`.
    others_at: Vec<usize>,
    /// Index in `Patient.telecom` of the phone.
    phone_at: Option<usize>,
}

impl ParsedPatient {
    /// The FHIRPath of a domain field (`identity_number`, `other_identifiers[1]`, `birth_date`).
    pub fn expression(&self, field: &str) -> Option<String> {
        let path = match field {
            "name" => "Patient.name[0]".to_owned(),
            "sex" => "Patient.gender".to_owned(),
            "birth_date" => "Patient.birthDate".to_owned(),
            "identity_number" => match self.identity_at {
                Some(i) => format!("Patient.identifier[{i}].value"),
                None => "Patient.identifier".to_owned(),
            },
            "phone" => format!("Patient.telecom[{}].value", self.phone_at?),
            "address" => "Patient.address[0].text".to_owned(),
            "region_code" => "Patient.address[0].district".to_owned(),
            "home_facility_id" => "Patient.managingOrganization".to_owned(),
            other => {
                let k: usize = other.strip_prefix("other_identifiers[")?.split(']').next()?.parse().ok()?;
                format!("Patient.identifier[{}].value", self.others_at.get(k)?)
            }
        };
        Some(path)
    }
}

/// What [`read_identifiers`] found.
#[derive(Default)]
struct Identifiers {
    identity: Option<(usize, String)>,
    others: Vec<(usize, OtherIdentifierInput)>,
}

impl Reader {
    /// Only the `supported` keys of an object whose keys are all `allowed` (R4's).
    fn supported_only<'a>(
        &mut self,
        v: &'a Value,
        path: &str,
        allowed: &[&str],
        supported: &[&str],
    ) -> Option<&'a Map<String, Value>> {
        let o = self.object(v, path, allowed)?;
        for k in o.keys().filter(|k| allowed.contains(&k.as_str()) && !supported.contains(&k.as_str())) {
            self.add(IssueType::NotSupported, &format!("{path}.{k}"), format!("{k} is not kept by this server"));
        }
        Some(o)
    }

    fn read_identifiers(&mut self, v: &Value) -> Identifiers {
        let mut out = Identifiers::default();
        for (i, id) in self.array(v, "Patient.identifier").unwrap_or_default().iter().enumerate() {
            let path = format!("Patient.identifier[{i}]");
            let Some(o) = self.supported_only(id, &path, IDENTIFIER_KEYS, &["system", "value"]) else { continue };
            let system = o.get("system").and_then(|s| self.string(s, &format!("{path}.system")));
            let value = o.get("value").and_then(|s| self.string(s, &format!("{path}.value")));
            let (Some(system), Some(value)) = (system, value) else {
                self.add(IssueType::Required, &path, "an identifier needs a system and a value");
                continue;
            };
            if system == RESIDENT_ID_SYSTEM {
                if out.identity.is_some() {
                    self.add(IssueType::NotSupported, &path, "a person has one resident identity number");
                } else {
                    out.identity = Some((i, value.to_owned()));
                }
            } else if let Some(kind) = IdentifierType::ALL.into_iter().find(|k| identifier_system(*k) == system) {
                out.others.push((i, OtherIdentifierInput { kind, value: value.to_owned() }));
            } else {
                let known: Vec<String> = IdentifierType::ALL.into_iter().map(identifier_system).collect();
                self.add(
                    IssueType::CodeInvalid,
                    &format!("{path}.system"),
                    format!("an identifier system this server does not know; known: {}", known.join(", ")),
                );
            }
        }
        out
    }

    /// The one name: its text, or family name and given names written together (Chinese order).
    fn read_name(&mut self, v: &Value) -> Option<String> {
        let list = self.array(v, "Patient.name")?;
        if list.len() > 1 {
            self.add(IssueType::NotSupported, "Patient.name[1]", "one name is kept");
        }
        let o =
            self.supported_only(list.first()?, "Patient.name[0]", NAME_KEYS, &["use", "text", "family", "given"])?;
        if let Some(t) = o.get("text") {
            return self.string(t, "Patient.name[0].text").map(str::to_owned);
        }
        let mut name =
            o.get("family").and_then(|f| self.string(f, "Patient.name[0].family")).unwrap_or_default().to_owned();
        if let Some(g) = o.get("given") {
            for (j, g) in self.array(g, "Patient.name[0].given").unwrap_or_default().iter().enumerate() {
                name.push_str(self.string(g, &format!("Patient.name[0].given[{j}]")).unwrap_or_default());
            }
        }
        Some(name)
    }

    /// The phone (the one ContactPoint, system `phone`) and its index.
    fn read_phone(&mut self, v: &Value) -> Option<(usize, String)> {
        let list = self.array(v, "Patient.telecom")?;
        let mut phone = None;
        for (i, c) in list.iter().enumerate() {
            let path = format!("Patient.telecom[{i}]");
            let Some(o) = self.supported_only(c, &path, CONTACT_POINT_KEYS, &["system", "value", "use"]) else {
                continue;
            };
            match o.get("system").and_then(Value::as_str) {
                Some("phone") if phone.is_none() => {
                    let value = o.get("value").and_then(|s| self.string(s, &format!("{path}.value")));
                    phone = value.map(|s| (i, s.to_owned()));
                }
                _ => self.add(IssueType::NotSupported, &path, "one phone number is kept (system phone)"),
            }
        }
        phone
    }

    /// The address: its text and its district (a GB/T 2260 county code).
    fn read_address(&mut self, v: &Value) -> (Option<String>, Option<String>) {
        let Some(list) = self.array(v, "Patient.address") else { return (None, None) };
        if list.len() > 1 {
            self.add(IssueType::NotSupported, "Patient.address[1]", "one address is kept");
        }
        let Some(first) = list.first() else { return (None, None) };
        let supported = ["text", "district", "country"];
        let Some(o) = self.supported_only(first, "Patient.address[0]", ADDRESS_KEYS, &supported) else {
            return (None, None);
        };
        if let Some(c) = o.get("country").and_then(|c| self.string(c, "Patient.address[0].country"))
            && c != "CN"
        {
            self.add(IssueType::NotSupported, "Patient.address[0].country", "addresses in China (CN) are kept");
        }
        let text = o.get("text").and_then(|t| self.string(t, "Patient.address[0].text")).map(str::to_owned);
        let district = o.get("district").and_then(|d| self.string(d, "Patient.address[0].district")).map(str::to_owned);
        (text, district)
    }

    fn read_birth_date(&mut self, v: &Value) -> Option<Date> {
        let s = self.string(v, "Patient.birthDate")?;
        match Date::parse(s, format_description!("[year]-[month]-[day]")) {
            Ok(d) if s.len() == 10 => Some(d),
            _ if s.len() < 10 && s.bytes().all(|b| b.is_ascii_digit() || b == b'-') => {
                self.add(IssueType::NotSupported, "Patient.birthDate", "a birth date is kept to the day (YYYY-MM-DD)");
                None
            }
            _ => {
                self.add(IssueType::Invalid, "Patient.birthDate", "not a date: YYYY-MM-DD");
                None
            }
        }
    }
}

/// Read a Patient as a registration. Every problem is reported at once, each at its element.
pub fn parse_patient(v: &Value) -> Result<ParsedPatient, Vec<Issue>> {
    let Some(o) = v.as_object() else {
        return Err(vec![Issue::error(IssueType::Structure, None, "the body is not a JSON object (a FHIR resource)")]);
    };
    match o.get("resourceType").and_then(Value::as_str) {
        Some("Patient") => {}
        Some(other) => {
            return Err(vec![Issue::error(IssueType::Invalid, None, format!("expected a Patient, got a {other}"))]);
        }
        None => return Err(vec![Issue::error(IssueType::Structure, None, "resourceType is missing")]),
    }
    let mut rd = Reader::default();
    for k in o.keys().filter(|k| !USED.contains(&k.as_str()) && !IGNORED.contains(&k.as_str())) {
        let path = format!("Patient.{k}");
        if UNSUPPORTED.contains(&k.as_str()) {
            rd.add(IssueType::NotSupported, &path, format!("{k} is not kept by this server"));
        } else if k.starts_with('_') {
            rd.add(IssueType::NotSupported, &path, "extensions on primitive values are not supported");
        } else {
            rd.add(IssueType::Structure, &path, format!("unknown element {k:?}: not part of an R4 Patient"));
        }
    }
    if let Some(a) = o.get("active")
        && a != &Value::Bool(true)
    {
        rd.add(IssueType::NotSupported, "Patient.active", "a new record is active (true)");
    }
    let ids = o.get("identifier").map(|v| rd.read_identifiers(v)).unwrap_or_default();
    let name = match o.get("name") {
        Some(n) => rd.read_name(n),
        None => {
            rd.add(IssueType::Required, "Patient.name", "the name is required");
            None
        }
    };
    let sex = match o.get("gender").map(|g| rd.code(g, "Patient.gender", &GENDERS)) {
        None => {
            rd.add(IssueType::Required, "Patient.gender", "gender is required (male or female)");
            None
        }
        Some(Some("male")) => Some(Sex::Male),
        Some(Some("female")) => Some(Sex::Female),
        Some(Some(_)) => {
            rd.add(IssueType::NotSupported, "Patient.gender", "the registry records male or female");
            None
        }
        Some(None) => None,
    };
    let birth_date = o.get("birthDate").and_then(|b| rd.read_birth_date(b));
    let phone = o.get("telecom").and_then(|t| rd.read_phone(t));
    let (address, region_code) = o.get("address").map(|a| rd.read_address(a)).unwrap_or_default();
    let home: Option<Uuid> =
        o.get("managingOrganization").and_then(|m| rd.reference(m, "Patient.managingOrganization", "Organization"));
    if !rd.issues.is_empty() {
        return Err(rd.issues);
    }
    let (Some(name), Some(sex)) = (name, sex) else {
        return Err(vec![Issue::error(IssueType::Required, Some("Patient"), "name and gender are required")]);
    };
    let patient = NewPatient {
        birth_date,
        identity_number: ids.identity.as_ref().map(|(_, v)| v.clone()),
        other_identifiers: ids.others.iter().map(|(_, o)| o.clone()).collect(),
        phone: phone.as_ref().map(|(_, p)| p.clone()),
        address,
        region_code,
        home_facility_id: home,
        ..NewPatient::new(&name, sex)
    };
    Ok(ParsedPatient {
        patient,
        identity_at: ids.identity.map(|(i, _)| i),
        others_at: ids.others.iter().map(|(i, _)| *i).collect(),
        phone_at: phone.map(|(i, _)| i),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use time::macros::date;

    const WANG_ID: &str = "511621196203081027";

    fn wang() -> Value {
        json!({
            "resourceType": "Patient",
            "identifier": [
                { "system": "http://tiercare.org/fhir/sid/insurance-card", "value": "YB5116210001" },
                { "system": RESIDENT_ID_SYSTEM, "value": WANG_ID },
            ],
            "name": [{ "family": "王", "given": ["秀英"] }],
            "gender": "female",
            "birthDate": "1962-03-08",
            "telecom": [{ "system": "phone", "value": "13800001234", "use": "mobile" }],
            "address": [{ "text": "九龙镇白庙村3组", "district": "511621", "country": "CN" }],
        })
    }

    #[test]
    fn a_patient_reads_as_a_registration_with_its_paths() {
        let p = parse_patient(&wang()).expect("reads");
        assert_eq!(p.patient.name, "王秀英", "family then given, no space");
        assert_eq!(p.patient.sex, Sex::Female);
        assert_eq!(p.patient.birth_date, Some(date!(1962 - 03 - 08)));
        assert_eq!(p.patient.identity_number.as_deref(), Some(WANG_ID));
        assert_eq!(p.patient.other_identifiers[0].kind, IdentifierType::InsuranceCard);
        assert_eq!(p.patient.region_code.as_deref(), Some("511621"));
        // the identity number is the second identifier
        assert_eq!(p.expression("identity_number").as_deref(), Some("Patient.identifier[1].value"));
        assert_eq!(p.expression("other_identifiers[0]").as_deref(), Some("Patient.identifier[0].value"));
        assert_eq!(p.expression("phone").as_deref(), Some("Patient.telecom[0].value"));
        assert_eq!(p.expression("birth_date").as_deref(), Some("Patient.birthDate"));
        assert_eq!(p.expression("other_identifiers[3]"), None);
    }

    #[test]
    fn each_problem_is_named_at_its_element() {
        type Change = Box<dyn Fn(&mut Value)>;
        let cases: Vec<(&str, Change, IssueType, &str)> = vec![
            ("unknown element", Box::new(|v| v["nickname"] = json!("英")), IssueType::Structure, "Patient.nickname"),
            ("kept nowhere", Box::new(|v| v["photo"] = json!([])), IssueType::NotSupported, "Patient.photo"),
            (
                "one name is a list",
                Box::new(|v| v["name"] = json!({ "text": "王秀英" })),
                IssueType::Structure,
                "Patient.name",
            ),
            ("gender code", Box::new(|v| v["gender"] = json!("f")), IssueType::CodeInvalid, "Patient.gender"),
            ("gender other", Box::new(|v| v["gender"] = json!("other")), IssueType::NotSupported, "Patient.gender"),
            ("bad date", Box::new(|v| v["birthDate"] = json!("1962-13-08")), IssueType::Invalid, "Patient.birthDate"),
            ("a year only", Box::new(|v| v["birthDate"] = json!("1962")), IssueType::NotSupported, "Patient.birthDate"),
            (
                "unknown system",
                Box::new(|v| v["identifier"][0]["system"] = json!("http://example.org/mrn")),
                IssueType::CodeInvalid,
                "Patient.identifier[0].system",
            ),
            (
                "identifier period",
                Box::new(|v| v["identifier"][1]["period"] = json!({ "start": "2000-01-01" })),
                IssueType::NotSupported,
                "Patient.identifier[1].period",
            ),
            (
                "email",
                Box::new(|v| v["telecom"][0]["system"] = json!("email")),
                IssueType::NotSupported,
                "Patient.telecom[0]",
            ),
            (
                "organization ref",
                Box::new(|v| v["managingOrganization"] = json!({ "reference": "Organization/1" })),
                IssueType::Value,
                "Patient.managingOrganization",
            ),
            ("inactive", Box::new(|v| v["active"] = json!(false)), IssueType::NotSupported, "Patient.active"),
        ];
        for (what, change, code, path) in cases {
            let mut v = wang();
            change(&mut v);
            let issues = parse_patient(&v).expect_err(what);
            assert!(
                issues.iter().any(|i| i.code == code && i.expression.as_deref() == Some(path)),
                "{what}: {issues:#?}"
            );
        }
        let issues = parse_patient(&json!({ "resourceType": "Organization" })).expect_err("not a Patient");
        assert_eq!(issues[0].code, IssueType::Invalid);
    }

    #[test]
    fn what_we_write_reads_back_to_the_same_registration() {
        use tiercare_domain::identity::Identifier;
        use tiercare_domain::patient::{Patient, PatientStatus};
        let p = Patient {
            id: Uuid::now_v7(),
            region_key: "511621".into(),
            name: "王秀英".into(),
            sex: Sex::Female,
            birth_date: date!(1962 - 03 - 08),
            phone: Some("13800001234".into()),
            address: Some("九龙镇白庙村3组".into()),
            home_facility_id: Some(Uuid::now_v7()),
            identifiers: vec![Identifier { kind: IdentifierType::ResidentId, value: WANG_ID.into() }],
            status: PatientStatus::Active,
            version: 1,
        };
        let back = parse_patient(&crate::patient(&p)).expect("our own Patient reads").patient;
        assert_eq!(
            (back.name.as_str(), back.sex, back.birth_date, back.identity_number.as_deref()),
            (p.name.as_str(), p.sex, Some(p.birth_date), Some(WANG_ID))
        );
        assert_eq!((back.phone, back.address, back.home_facility_id), (p.phone, p.address, p.home_facility_id));
        assert_eq!(back.region_code.as_deref(), Some("511621"));
    }
}
