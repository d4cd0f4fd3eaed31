//! Who may read a patient's record (domain.md M2; issue 2 §6).
//!
//! A user may read when their facility has a care relationship with the patient (an
//! encounter, and later a referral or contract), or, where the community's policy allows,
//! when the patient is known in the user's community. Otherwise only by break-glass with a
//! stated reason. Every read is logged, whatever the basis.

/// Facts about the user's facility and the patient, gathered by the store.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AccessFacts {
    /// The user's facility has an encounter (referral, contract…) with the patient,
    /// or registered the patient.
    pub care_relationship: bool,
    /// The patient is known in the user's community (registered at or treated by a member).
    pub same_community: bool,
    /// The user's community lets members read records of patients known in it.
    pub community_wide_read: bool,
}

/// On what ground a read was allowed; written to the access log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccessBasis {
    CareRelationship,
    SameCommunity,
    BreakGlass,
    /// Identity lookup or matching at registration: the user presented the person's
    /// identifier or demographics and sees only who they are, not the record.
    Identification,
    /// A system administrator's FHIR Bulk Data export (`$export`): every patient of the
    /// export is logged with this basis and the job named in the reason.
    BulkExport,
}

impl AccessBasis {
    pub fn as_str(self) -> &'static str {
        match self {
            AccessBasis::CareRelationship => "care_relationship",
            AccessBasis::SameCommunity => "same_community",
            AccessBasis::BreakGlass => "break_glass",
            AccessBasis::Identification => "identification",
            AccessBasis::BulkExport => "bulk_export",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        [Self::CareRelationship, Self::SameCommunity, Self::BreakGlass, Self::Identification, Self::BulkExport]
            .into_iter()
            .find(|b| b.as_str() == s)
    }
}

/// Why a read was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccessDenied {
    #[error(
        "your facility has no care relationship with this patient; to read the record in an emergency, use break-glass with a reason"
    )]
    NoRelationship,
    #[error("a break-glass reason must be at least {0} characters and say why you need the record")]
    ReasonTooShort(usize),
}

/// Minimum length (characters) of a break-glass reason.
pub const MIN_BREAK_GLASS_REASON: usize = 4;

/// Decide whether a read is allowed, and on what basis.
pub fn decide(facts: AccessFacts, break_glass_reason: Option<&str>) -> Result<AccessBasis, AccessDenied> {
    if facts.care_relationship {
        return Ok(AccessBasis::CareRelationship);
    }
    if facts.same_community && facts.community_wide_read {
        return Ok(AccessBasis::SameCommunity);
    }
    match break_glass_reason.map(str::trim) {
        Some(r) if r.chars().count() >= MIN_BREAK_GLASS_REASON => Ok(AccessBasis::BreakGlass),
        Some(_) => Err(AccessDenied::ReasonTooShort(MIN_BREAK_GLASS_REASON)),
        None => Err(AccessDenied::NoRelationship),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules() {
        let care = AccessFacts { care_relationship: true, ..Default::default() };
        assert_eq!(decide(care, None), Ok(AccessBasis::CareRelationship));
        let community_open = AccessFacts { same_community: true, community_wide_read: true, ..Default::default() };
        assert_eq!(decide(community_open, None), Ok(AccessBasis::SameCommunity));
        let community_closed = AccessFacts { same_community: true, community_wide_read: false, ..Default::default() };
        assert_eq!(decide(community_closed, None), Err(AccessDenied::NoRelationship));
        let stranger = AccessFacts::default();
        assert_eq!(decide(stranger, None), Err(AccessDenied::NoRelationship));
        assert_eq!(decide(stranger, Some("  急 ")), Err(AccessDenied::ReasonTooShort(4)));
        assert_eq!(decide(stranger, Some("急诊昏迷患者")), Ok(AccessBasis::BreakGlass));
    }
}
