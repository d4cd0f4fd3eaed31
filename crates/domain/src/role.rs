//! User roles and what each may do. The server checks `Role::may` before every action;
//! reading a patient's record is further limited by [`crate::access`].

/// The roles a user can hold at their facility.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// 乡村医生
    VillageDoctor,
    /// 乡镇卫生院医生
    TownshipClinician,
    /// 转诊中心
    ReferralCentre,
    /// 专科医生
    Specialist,
    /// 检验检查科室
    Lab,
    /// 医保窗口结算员
    SettlementClerk,
    /// 医保局经办
    InsuranceOfficer,
    /// 医共体管理员 / 卫健委
    CommunityAdmin,
    /// 系统管理员
    SystemAdmin,
}

/// Actions guarded by roles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    RegisterPatient,
    ReadPatientRecord,
    MergePatients,
    ManageEnrolment,
    RecordEncounter,
    /// Send, answer and track referrals.
    Refer,
    ManageRegistry,
    ManageUsers,
    ReadAccessLog,
    /// Price, pre-settle, settle and reverse bills at the user's facility (医保结算).
    Settle,
    /// Read settlement journals and fund, outflow and clearing reports.
    ReadSettlementReports,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::RegisterPatient => "register patients",
            Action::ReadPatientRecord => "read patient records",
            Action::MergePatients => "merge patient records",
            Action::ManageEnrolment => "manage insurance enrolment",
            Action::RecordEncounter => "record encounters",
            Action::Refer => "send and answer referrals",
            Action::ManageRegistry => "manage facilities, communities and practitioners",
            Action::ManageUsers => "manage users",
            Action::ReadAccessLog => "read the access log",
            Action::Settle => "settle insurance bills",
            Action::ReadSettlementReports => "read settlement journals and reports",
        }
    }
}

impl Role {
    pub const ALL: [Role; 9] = [
        Role::VillageDoctor,
        Role::TownshipClinician,
        Role::ReferralCentre,
        Role::Specialist,
        Role::Lab,
        Role::SettlementClerk,
        Role::InsuranceOfficer,
        Role::CommunityAdmin,
        Role::SystemAdmin,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            Role::VillageDoctor => "village_doctor",
            Role::TownshipClinician => "township_clinician",
            Role::ReferralCentre => "referral_centre",
            Role::Specialist => "specialist",
            Role::Lab => "lab",
            Role::SettlementClerk => "settlement_clerk",
            Role::InsuranceOfficer => "insurance_officer",
            Role::CommunityAdmin => "community_admin",
            Role::SystemAdmin => "system_admin",
        }
    }
    pub fn parse(s: &str) -> Option<Role> {
        Self::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// May a user with this role perform `action` at all? (Record-level rules come on top.)
    pub fn may(self, action: Action) -> bool {
        use Action::*;
        use Role::*;
        match action {
            RegisterPatient => matches!(
                self,
                VillageDoctor | TownshipClinician | ReferralCentre | Specialist | SettlementClerk | CommunityAdmin
            ),
            ReadPatientRecord => matches!(
                self,
                VillageDoctor
                    | TownshipClinician
                    | ReferralCentre
                    | Specialist
                    | Lab
                    | SettlementClerk
                    | InsuranceOfficer
            ),
            RecordEncounter | Refer => matches!(self, VillageDoctor | TownshipClinician | ReferralCentre | Specialist),
            ManageEnrolment => matches!(self, SettlementClerk | InsuranceOfficer | SystemAdmin),
            Settle => matches!(self, SettlementClerk),
            ReadSettlementReports => matches!(self, InsuranceOfficer | CommunityAdmin | SystemAdmin),
            MergePatients | ManageRegistry | ManageUsers | ReadAccessLog => {
                matches!(self, CommunityAdmin | SystemAdmin)
            }
        }
    }
}

/// Does any of `roles` allow `action`?
pub fn any_may(roles: &[Role], action: Action) -> bool {
    roles.iter().any(|r| r.may(action))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for r in Role::ALL {
            assert_eq!(Role::parse(r.as_str()), Some(r));
        }
        assert_eq!(Role::parse("doctor"), None);
    }

    #[test]
    fn separation_of_duties() {
        // a system admin manages users but does not read clinical records
        assert!(Role::SystemAdmin.may(Action::ManageUsers));
        assert!(!Role::SystemAdmin.may(Action::ReadPatientRecord));
        // a village doctor reads and registers but cannot merge or read the access log
        assert!(Role::VillageDoctor.may(Action::ReadPatientRecord));
        assert!(!Role::VillageDoctor.may(Action::MergePatients));
        assert!(!Role::VillageDoctor.may(Action::ReadAccessLog));
        // a settlement clerk does not record clinical encounters
        assert!(!Role::SettlementClerk.may(Action::RecordEncounter));
    }

    #[test]
    fn only_the_clerk_settles_and_officers_read_the_reports() {
        for r in Role::ALL {
            assert_eq!(r.may(Action::Settle), r == Role::SettlementClerk, "{r:?}");
            assert_eq!(
                r.may(Action::ReadSettlementReports),
                matches!(r, Role::InsuranceOfficer | Role::CommunityAdmin | Role::SystemAdmin),
                "{r:?}"
            );
        }
        // clinicians never settle
        assert!(!Role::Specialist.may(Action::Settle));
        assert!(!Role::VillageDoctor.may(Action::Settle));
    }
}
