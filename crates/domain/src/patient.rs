//! The patient index (EMPI): registration, identifiers, insurance enrolment, merge.

use time::Date;
use uuid::Uuid;

use crate::error::{DomainError, FieldError, Problems};
use crate::facility::validate_name;
use crate::identity::{Identifier, IdentifierType, IdentityNumber, Sex};

/// Record status in the index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case", tag = "status", content = "into")]
pub enum PatientStatus {
    Active,
    /// Merged into another record, which survives; reads follow the link.
    Merged(Uuid),
}

/// A person in the index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Patient {
    pub id: Uuid,
    /// Distribution key: the GB/T 2260 county code the person was registered in. Part of
    /// the primary key of every patient-owned table; never changes.
    pub region_key: String,
    pub name: String,
    pub sex: Sex,
    pub birth_date: Date,
    pub phone: Option<String>,
    pub address: Option<String>,
    /// The facility that registered the person (village clinic, township centre…).
    pub home_facility_id: Option<Uuid>,
    pub identifiers: Vec<Identifier>,
    pub status: PatientStatus,
    /// Optimistic-concurrency version, bumped on every change.
    pub version: i64,
}

impl Patient {
    pub fn identity_number(&self) -> Option<&str> {
        self.identifiers.iter().find(|i| i.kind == IdentifierType::ResidentId).map(|i| i.value.as_str())
    }
    /// Age in whole years on `on`.
    pub fn age_on(&self, on: Date) -> i32 {
        let mut age = on.year() - self.birth_date.year();
        if (on.month() as u8, on.day()) < (self.birth_date.month() as u8, self.birth_date.day()) {
            age -= 1;
        }
        age
    }
}

/// Registration input, as it comes from a form, an API call or an import row.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewPatient {
    pub name: String,
    pub sex: Sex,
    /// Required unless an identity number gives it; must agree with it when both are given.
    pub birth_date: Option<Date>,
    pub identity_number: Option<String>,
    #[serde(default)]
    pub other_identifiers: Vec<OtherIdentifierInput>,
    pub phone: Option<String>,
    pub address: Option<String>,
    /// GB/T 2260 county of residence; defaults to the home facility's region.
    pub region_code: Option<String>,
    pub home_facility_id: Option<Uuid>,
}

#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OtherIdentifierInput {
    #[serde(rename = "type")]
    pub kind: IdentifierType,
    pub value: String,
}

/// A registration that passed every rule, ready to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidPatient {
    pub region_key: String,
    pub name: String,
    pub sex: Sex,
    pub birth_date: Date,
    pub phone: Option<String>,
    pub address: Option<String>,
    pub home_facility_id: Option<Uuid>,
    pub identifiers: Vec<Identifier>,
}

impl ValidPatient {
    pub fn identity_number(&self) -> Option<&str> {
        self.identifiers.iter().find(|i| i.kind == IdentifierType::ResidentId).map(|i| i.value.as_str())
    }
    pub fn into_patient(self, id: Uuid) -> Patient {
        Patient {
            id,
            region_key: self.region_key,
            name: self.name,
            sex: self.sex,
            birth_date: self.birth_date,
            phone: self.phone,
            address: self.address,
            home_facility_id: self.home_facility_id,
            identifiers: self.identifiers,
            status: PatientStatus::Active,
            version: 1,
        }
    }
}

/// Mobile (11 digits starting 1) or landline (digits and '-', 7-20 characters).
pub fn validate_phone(field: &str, raw: &str) -> Result<String, FieldError> {
    let s: String = raw.chars().filter(|c| !c.is_whitespace()).collect();
    let mobile = s.len() == 11 && s.starts_with('1') && s.bytes().all(|c| c.is_ascii_digit());
    let landline = (7..=20).contains(&s.len())
        && s.bytes().all(|c| c.is_ascii_digit() || c == b'-')
        && s.bytes().next().is_some_and(|c| c.is_ascii_digit());
    if mobile || landline {
        Ok(s)
    } else {
        Err(FieldError::new(
            field,
            "phone.format",
            "a phone number is 11 mobile digits or a landline like 0826-1234567",
        ))
    }
}

impl NewPatient {
    /// A registration with only name and sex; set the other fields as needed.
    pub fn new(name: &str, sex: Sex) -> Self {
        NewPatient {
            name: name.to_owned(),
            sex,
            birth_date: None,
            identity_number: None,
            other_identifiers: Vec::new(),
            phone: None,
            address: None,
            region_code: None,
            home_facility_id: None,
        }
    }

    /// Apply every registration rule; all problems are reported together.
    /// `default_region` is the home facility's region, used when `region_code` is absent.
    pub fn validate(self, today: Date, default_region: Option<&str>) -> Result<ValidPatient, DomainError> {
        let mut p = Problems::default();
        let name = p.take(validate_name("name", &self.name, 50));
        let mut identifiers = Vec::new();
        let mut birth_date = self.birth_date;
        let mut id_region = None;
        if let Some(raw) = self.identity_number.as_deref().filter(|s| !s.trim().is_empty()) {
            match IdentityNumber::parse_for(raw, self.sex, today) {
                Ok(id) => {
                    match birth_date {
                        Some(b) if b != id.birth_date() => p.add(
                            "birth_date",
                            "birth_date.mismatch",
                            format!("birth date {b} disagrees with the identity number's {}", id.birth_date()),
                        ),
                        _ => birth_date = Some(id.birth_date()),
                    }
                    id_region = Some(id.region_code().to_owned());
                    identifiers.push(Identifier { kind: IdentifierType::ResidentId, value: id.as_str().to_owned() });
                }
                Err(e) => p.push(e.to_field_error("identity_number")),
            }
        }
        for (i, o) in self.other_identifiers.iter().enumerate() {
            let field = format!("other_identifiers[{i}]");
            if o.kind == IdentifierType::ResidentId {
                p.add(&field, "identifier.type", "put a resident identity number in identity_number");
                continue;
            }
            if let Some(id) = p.take(Identifier::other(o.kind, &o.value, &field)) {
                if identifiers.iter().any(|x: &Identifier| x.kind == id.kind && x.value == id.value) {
                    p.add(&field, "identifier.duplicate", "the same identifier is given twice");
                } else {
                    identifiers.push(id);
                }
            }
        }
        if identifiers.is_empty() && p.is_empty() {
            p.add(
                "identity_number",
                "identifiers.missing",
                "give an identity number, or another identifier (passport, birth certificate, insurance card)",
            );
        }
        let id_given = self.identity_number.as_deref().is_some_and(|s| !s.trim().is_empty());
        match birth_date {
            None if id_given => {} // the identity number's own error says what is wrong
            None => {
                p.add("birth_date", "birth_date.missing", "a birth date is needed when there is no identity number")
            }
            Some(b) if b > today => p.add("birth_date", "birth_date.future", "the birth date is in the future"),
            Some(b) if today.year() - b.year() > 130 => {
                p.add("birth_date", "birth_date.too_old", "the birth date is more than 130 years ago")
            }
            _ => {}
        }
        let phone = match self.phone.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
            Some(ph) => p.take(validate_phone("phone", ph)),
            None => None,
        };
        let address = self.address.map(|a| a.trim().to_owned()).filter(|a| !a.is_empty());
        if address.as_ref().is_some_and(|a| a.chars().count() > 200) {
            p.add("address", "address.length", "an address is at most 200 characters");
        }
        let region_raw = self.region_code.or(default_region.map(str::to_owned)).or(id_region.clone());
        let region = match region_raw {
            Some(r) => p.take(crate::region::validate_region_code("region_code", &r)),
            None => {
                p.add("region_code", "region_code.missing", "give the county of residence (GB/T 2260 code)");
                None
            }
        };
        p.into_result()?;
        Ok(ValidPatient {
            region_key: region.unwrap_or_default(),
            name: name.unwrap_or_default(),
            sex: self.sex,
            birth_date: birth_date.unwrap_or(today),
            phone,
            address,
            home_facility_id: self.home_facility_id,
            identifiers,
        })
    }
}

/// Insurance scheme (险种).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scheme {
    /// 职工基本医疗保险
    Employee,
    /// 城乡居民基本医疗保险
    Resident,
}

impl Scheme {
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Employee => "employee",
            Scheme::Resident => "resident",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "employee" => Some(Scheme::Employee),
            "resident" => Some(Scheme::Resident),
            _ => None,
        }
    }
}

/// Out-of-region filing (异地就医备案) status of an enrolment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FilingStatus {
    NotFiled,
    /// 长期异地 (relocated retirees, long-term residents, posted staff)
    LongTerm,
    /// 临时外出 (referred, emergency, other)
    Temporary,
}

impl FilingStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            FilingStatus::NotFiled => "not_filed",
            FilingStatus::LongTerm => "long_term",
            FilingStatus::Temporary => "temporary",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        [Self::NotFiled, Self::LongTerm, Self::Temporary].into_iter().find(|f| f.as_str() == s)
    }
}

/// A person's insurance enrolment (参保).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Enrolment {
    pub id: Uuid,
    pub patient_id: Uuid,
    pub scheme: Scheme,
    /// 参保地: GB/T 2260 code of the insured (pooling) region.
    pub insured_region: String,
    pub filing_status: FilingStatus,
    /// Where the person is filed to be treated (就医地), when filed.
    pub filed_region: Option<String>,
    pub valid_from: Date,
    pub valid_to: Option<Date>,
}

/// Input for an enrolment.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewEnrolment {
    pub scheme: Scheme,
    pub insured_region: String,
    #[serde(default = "not_filed")]
    pub filing_status: FilingStatus,
    pub filed_region: Option<String>,
    pub valid_from: Date,
    pub valid_to: Option<Date>,
}

fn not_filed() -> FilingStatus {
    FilingStatus::NotFiled
}

impl NewEnrolment {
    pub fn validate(self, id: Uuid, patient_id: Uuid) -> Result<Enrolment, DomainError> {
        let mut p = Problems::default();
        let insured_region = p.take(crate::region::validate_region_code("insured_region", &self.insured_region));
        let filed_region = match (&self.filing_status, self.filed_region.as_deref()) {
            (FilingStatus::NotFiled, Some(_)) => {
                p.add("filed_region", "enrolment.filed_region", "a filed region is only given with a filing status");
                None
            }
            (FilingStatus::NotFiled, None) => None,
            (_, None) => {
                p.add(
                    "filed_region",
                    "enrolment.filed_region",
                    "a filing names the region where the person is treated",
                );
                None
            }
            (_, Some(r)) => p.take(crate::region::validate_region_code("filed_region", r)),
        };
        if let Some(to) = self.valid_to
            && to < self.valid_from
        {
            p.add("valid_to", "enrolment.period", "valid_to is before valid_from");
        }
        p.into_result()?;
        Ok(Enrolment {
            id,
            patient_id,
            scheme: self.scheme,
            insured_region: insured_region.unwrap_or_default(),
            filing_status: self.filing_status,
            filed_region,
            valid_from: self.valid_from,
            valid_to: self.valid_to,
        })
    }
}

/// May `merged` be merged into `survivor`? Two records with two different identity numbers
/// are two people and are never merged.
pub fn check_merge(survivor: &Patient, merged: &Patient) -> Result<(), DomainError> {
    if survivor.id == merged.id {
        return Err(DomainError::Conflict("a record cannot be merged into itself".into()));
    }
    if survivor.status != PatientStatus::Active {
        return Err(DomainError::Conflict("the surviving record is itself merged; merge into its survivor".into()));
    }
    if merged.status != PatientStatus::Active {
        return Err(DomainError::Conflict("the record to merge is already merged".into()));
    }
    if let (Some(a), Some(b)) = (survivor.identity_number(), merged.identity_number())
        && a != b
    {
        return Err(DomainError::Conflict(
            "the two records carry different identity numbers: they are two people and are not merged".into(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    const TODAY: Date = date!(2026 - 11 - 23);

    fn input() -> NewPatient {
        NewPatient { identity_number: Some("11010519491231002X".into()), ..NewPatient::new(" 王秀英 ", Sex::Female) }
    }

    #[test]
    fn registration_takes_birth_date_and_region_from_the_identity_number() {
        let v = input().validate(TODAY, None).expect("valid");
        assert_eq!(v.name, "王秀英");
        assert_eq!(v.birth_date, date!(1949 - 12 - 31));
        assert_eq!(v.region_key, "110105");
        // the home facility's region wins over the number's
        let v = input().validate(TODAY, Some("511621")).expect("valid");
        assert_eq!(v.region_key, "511621");
    }

    #[test]
    fn registration_reports_each_problem() {
        let mut bad = input();
        bad.sex = Sex::Male;
        bad.phone = Some("12345".into());
        let Err(DomainError::Invalid(errs)) = bad.validate(TODAY, None) else { panic!("invalid expected") };
        let codes: Vec<_> = errs.iter().map(|e| e.code.as_str()).collect();
        assert_eq!(codes, vec!["identity_number.sex_mismatch", "phone.format", "region_code.missing"]);

        let mut mismatch = input();
        mismatch.birth_date = Some(date!(1950 - 01 - 01));
        let Err(DomainError::Invalid(errs)) = mismatch.validate(TODAY, None) else { panic!("invalid expected") };
        assert_eq!(errs[0].code, "birth_date.mismatch");

        let nothing = NewPatient::new("李明", Sex::Male);
        let Err(DomainError::Invalid(errs)) = nothing.validate(TODAY, Some("511621")) else { panic!() };
        assert_eq!(errs[0].code, "identifiers.missing");
    }

    #[test]
    fn infant_with_birth_certificate() {
        let baby = NewPatient {
            birth_date: Some(date!(2026 - 11 - 01)),
            other_identifiers: vec![OtherIdentifierInput {
                kind: IdentifierType::BirthCertificate,
                value: "r510123456".into(),
            }],
            region_code: Some("511621".into()),
            ..NewPatient::new("张小宝", Sex::Male)
        };
        let v = baby.validate(TODAY, None).expect("valid");
        assert_eq!(v.identifiers[0].value, "R510123456");
        assert_eq!(v.identity_number(), None);
    }

    #[test]
    fn merge_rules() {
        let a = input().validate(TODAY, None).expect("valid").into_patient(Uuid::from_u128(1));
        let mut b = a.clone();
        b.id = Uuid::from_u128(2);
        assert!(check_merge(&a, &b).is_ok());
        assert!(check_merge(&a, &a).is_err());
        b.identifiers[0].value = "440524188001010014".into();
        assert!(check_merge(&a, &b).is_err());
        b.identifiers.clear();
        b.status = PatientStatus::Merged(a.id);
        assert!(check_merge(&a, &b).is_err());
    }

    #[test]
    fn age() {
        let p = input().validate(TODAY, None).expect("valid").into_patient(Uuid::nil());
        assert_eq!(p.age_on(date!(2026 - 12 - 30)), 76);
        assert_eq!(p.age_on(date!(2026 - 12 - 31)), 77);
    }
}
