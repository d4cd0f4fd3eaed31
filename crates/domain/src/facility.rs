//! The facility network: alliances, communities, facilities with tiers, practitioners.

use uuid::Uuid;

use crate::error::{DomainError, FieldError, Problems};

/// Tier of a facility, lowest first. `Ord` follows the referral direction: a referral
/// from a lower to a higher tier is upward.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Tier {
    /// 村卫生室
    Village,
    /// 乡镇卫生院 / 社区卫生服务中心
    Township,
    /// 县医院, 县中医院, 县妇幼保健院
    County,
    /// 市级医院
    City,
    /// 省级医院 / 省级区域医疗中心
    Provincial,
    /// 国家医学中心 / 国家区域医疗中心
    National,
}

impl Tier {
    pub const ALL: [Tier; 6] =
        [Tier::Village, Tier::Township, Tier::County, Tier::City, Tier::Provincial, Tier::National];
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Village => "village",
            Tier::Township => "township",
            Tier::County => "county",
            Tier::City => "city",
            Tier::Provincial => "provincial",
            Tier::National => "national",
        }
    }
    pub fn parse(s: &str) -> Option<Tier> {
        Self::ALL.into_iter().find(|t| t.as_str() == s)
    }
    /// Village and township: the grassroots (基层).
    pub fn is_grassroots(self) -> bool {
        matches!(self, Tier::Village | Tier::Township)
    }
}

/// Hospital grade (医院等级), e.g. 二级甲等 = `Grade { level: 2, class: Some('甲') }`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Grade {
    Ungraded,
    Level1,
    Level2,
    Level2A,
    Level3,
    Level3A,
}

impl Grade {
    pub const ALL: [Grade; 6] =
        [Grade::Ungraded, Grade::Level1, Grade::Level2, Grade::Level2A, Grade::Level3, Grade::Level3A];
    pub fn as_str(self) -> &'static str {
        match self {
            Grade::Ungraded => "ungraded",
            Grade::Level1 => "level1",
            Grade::Level2 => "level2",
            Grade::Level2A => "level2a",
            Grade::Level3 => "level3",
            Grade::Level3A => "level3a",
        }
    }
    pub fn parse(s: &str) -> Option<Grade> {
        Self::ALL.into_iter().find(|g| g.as_str() == s)
    }
}

/// The five national emergency centres (五大中心).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EmergencyCentre {
    /// 胸痛中心
    ChestPain,
    /// 卒中中心
    Stroke,
    /// 创伤中心
    Trauma,
    /// 危重孕产妇救治中心
    CriticalMaternal,
    /// 危重儿童和新生儿救治中心
    CriticalNewborn,
}

impl EmergencyCentre {
    pub const ALL: [EmergencyCentre; 5] = [
        EmergencyCentre::ChestPain,
        EmergencyCentre::Stroke,
        EmergencyCentre::Trauma,
        EmergencyCentre::CriticalMaternal,
        EmergencyCentre::CriticalNewborn,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            EmergencyCentre::ChestPain => "chest_pain",
            EmergencyCentre::Stroke => "stroke",
            EmergencyCentre::Trauma => "trauma",
            EmergencyCentre::CriticalMaternal => "critical_maternal",
            EmergencyCentre::CriticalNewborn => "critical_newborn",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

/// A city medical alliance (城市医联体) or other grouping of communities.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Alliance {
    pub id: Uuid,
    pub name: String,
    pub region_code: String,
}

/// A (county) medical community (医共体).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Community {
    pub id: Uuid,
    pub alliance_id: Option<Uuid>,
    pub name: String,
    /// GB/T 2260 code of the county or city the community serves.
    pub region_code: String,
    /// Community policy: may any member facility read the record of a patient known in
    /// the community, without a care relationship of its own?
    pub community_wide_read: bool,
}

/// Beds and departments: what a facility can do.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Capabilities {
    #[serde(default)]
    pub departments: Vec<String>,
    #[serde(default)]
    pub beds: u32,
    #[serde(default)]
    pub emergency_centres: Vec<EmergencyCentre>,
}

/// Where a facility is (WGS-84 degrees): the emergency network estimates travel time from it.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct GeoPoint {
    pub lat: f64,
    pub lon: f64,
}

// validation refuses NaN and out-of-range values, so equality is total
impl Eq for GeoPoint {}

impl GeoPoint {
    /// Great-circle distance in kilometres (haversine, mean Earth radius 6,371 km).
    pub fn distance_km(self, other: GeoPoint) -> f64 {
        let (la1, la2) = (self.lat.to_radians(), other.lat.to_radians());
        let dla = la2 - la1;
        let dlo = (other.lon - self.lon).to_radians();
        let a = (dla / 2.0).sin().powi(2) + la1.cos() * la2.cos() * (dlo / 2.0).sin().powi(2);
        2.0 * 6371.0 * a.sqrt().asin()
    }

    pub fn validate(self, field: &str) -> Result<GeoPoint, FieldError> {
        let in_range = (-90.0..=90.0).contains(&self.lat) && (-180.0..=180.0).contains(&self.lon);
        if !in_range {
            return Err(FieldError::new(
                field,
                "location.range",
                "latitude is -90..90 and longitude -180..180 degrees",
            ));
        }
        Ok(self)
    }
}

/// A medical institution (医疗机构).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Facility {
    pub id: Uuid,
    /// Insurance facility code (定点医药机构编码, "H" + 11 digits) or a local code.
    pub code: String,
    pub name: String,
    pub tier: Tier,
    pub grade: Grade,
    /// GB/T 2260 code of where the facility is.
    pub region_code: String,
    /// Insurance pooling region (统筹区) code.
    pub insurance_region: String,
    pub community_id: Option<Uuid>,
    pub capabilities: Capabilities,
    /// Where it is; `None` when unknown (travel time is then not estimated).
    #[serde(default)]
    pub location: Option<GeoPoint>,
    /// Deadlines for answering referrals sent to this facility.
    #[serde(default)]
    pub referral_policy: crate::referral::ReferralPolicy,
}

/// Input to register a facility.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct NewFacility {
    pub code: String,
    pub name: String,
    pub tier: Tier,
    pub grade: Grade,
    pub region_code: String,
    pub insurance_region: String,
    pub community_id: Option<Uuid>,
    #[serde(default)]
    pub capabilities: Capabilities,
    #[serde(default)]
    pub location: Option<GeoPoint>,
    #[serde(default)]
    pub referral_policy: crate::referral::ReferralPolicy,
}

impl NewFacility {
    /// Validate and build the facility with a fresh id.
    pub fn validate(self, id: Uuid) -> Result<Facility, DomainError> {
        let mut p = Problems::default();
        let code = self.code.trim().to_owned();
        if code.is_empty() || code.len() > 32 || !code.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-') {
            p.add("code", "facility.code", "a facility code is 1-32 letters, digits or '-' (e.g. H51162100001)");
        }
        let name = p.take(validate_name("name", &self.name, 100));
        let region = p.take(crate::region::validate_region_code("region_code", &self.region_code));
        let insurance_region = p.take(crate::region::validate_region_code("insurance_region", &self.insurance_region));
        if self.tier == Tier::Village && self.capabilities.beds > 20 {
            p.add("capabilities.beds", "facility.beds", "a village clinic has at most 20 observation beds");
        }
        let mut caps = self.capabilities;
        caps.departments =
            caps.departments.into_iter().map(|d| d.trim().to_owned()).filter(|d| !d.is_empty()).collect();
        caps.departments.dedup();
        caps.emergency_centres.sort();
        caps.emergency_centres.dedup();
        let location = match self.location {
            Some(l) => p.take(l.validate("location")),
            None => None,
        };
        if let Err(e) = self.referral_policy.validate("referral_policy") {
            p.push(e);
        }
        p.into_result()?;
        Ok(Facility {
            id,
            code,
            name: name.unwrap_or_default(),
            tier: self.tier,
            grade: self.grade,
            region_code: region.unwrap_or_default(),
            insurance_region: insurance_region.unwrap_or_default(),
            community_id: self.community_id,
            capabilities: caps,
            location,
            referral_policy: self.referral_policy,
        })
    }
}

/// A clinician or other health worker (医务人员).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Practitioner {
    pub id: Uuid,
    pub name: String,
    /// Practising licence number (执业证书编码), optional for village doctors' older certificates.
    pub licence_number: Option<String>,
    pub phone: Option<String>,
}

/// What a practitioner does at a facility (PractitionerRole).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PractitionerRole {
    pub id: Uuid,
    pub practitioner_id: Uuid,
    pub facility_id: Uuid,
    /// e.g. `village_doctor`, `general_practitioner`, `physician`, `nurse`, `technician`.
    pub role: PractitionerRoleCode,
    pub department: Option<String>,
    pub active: bool,
}

/// The kinds of role a practitioner has at a facility.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PractitionerRoleCode {
    VillageDoctor,
    GeneralPractitioner,
    Physician,
    Surgeon,
    Nurse,
    Technician,
    Pharmacist,
}

pub fn validate_name(field: &str, raw: &str, max_chars: usize) -> Result<String, FieldError> {
    let s = raw.trim();
    let n = s.chars().count();
    if n == 0 {
        return Err(FieldError::new(field, "name.empty", "must not be empty"));
    }
    if n > max_chars {
        return Err(FieldError::new(field, "name.length", format!("must be at most {max_chars} characters")));
    }
    if s.chars().any(char::is_control) {
        return Err(FieldError::new(field, "name.characters", "must not contain control characters"));
    }
    Ok(s.to_owned())
}

/// Validate a practitioner's input.
pub fn validate_practitioner(
    id: Uuid,
    name: &str,
    licence_number: Option<&str>,
    phone: Option<&str>,
) -> Result<Practitioner, DomainError> {
    let mut p = Problems::default();
    let name = p.take(validate_name("name", name, 50));
    let licence_number = licence_number.map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned);
    if let Some(l) = &licence_number
        && (l.len() > 30 || !l.bytes().all(|c| c.is_ascii_alphanumeric()))
    {
        p.add("licence_number", "practitioner.licence", "a licence number is up to 30 letters and digits");
    }
    let phone = match phone.map(str::trim).filter(|s| !s.is_empty()) {
        Some(ph) => p.take(crate::patient::validate_phone("phone", ph)),
        None => None,
    };
    p.into_result()?;
    Ok(Practitioner { id, name: name.unwrap_or_default(), licence_number, phone })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new_facility() -> NewFacility {
        NewFacility {
            code: "H51162100001".into(),
            name: "岳池县人民医院".into(),
            tier: Tier::County,
            grade: Grade::Level2A,
            region_code: "511621".into(),
            insurance_region: "511621".into(),
            community_id: None,
            capabilities: Capabilities {
                departments: vec!["心内科".into(), " ".into()],
                beds: 800,
                emergency_centres: vec![EmergencyCentre::Stroke, EmergencyCentre::ChestPain, EmergencyCentre::Stroke],
            },
            location: Some(GeoPoint { lat: 30.537, lon: 106.440 }),
            referral_policy: Default::default(),
        }
    }

    #[test]
    fn tiers_order_upward() {
        assert!(Tier::Village < Tier::Township && Tier::Township < Tier::County && Tier::City < Tier::National);
        assert!(Tier::Township.is_grassroots() && !Tier::County.is_grassroots());
    }

    #[test]
    fn facility_validation_normalises_and_reports_all_problems() {
        let f = new_facility().validate(Uuid::nil()).expect("valid");
        assert_eq!(f.capabilities.departments, vec!["心内科".to_owned()]);
        assert_eq!(f.capabilities.emergency_centres, vec![EmergencyCentre::ChestPain, EmergencyCentre::Stroke]);
        let mut bad = new_facility();
        bad.region_code = "999999".into();
        bad.name = "".into();
        bad.code = "H 1".into();
        let Err(DomainError::Invalid(errs)) = bad.validate(Uuid::nil()) else { panic!("expected invalid") };
        let fields: Vec<_> = errs.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, vec!["code", "name", "region_code"]);
    }
}
