//! The storage contract: one suite of cases every [`Store`] backend must pass.
//!
//! Each case is a `pub async fn case(store: Arc<dyn Store>)` that starts from a fresh,
//! empty store, migrates it (and checks a second migration applies nothing), writes its
//! own data and asserts what the trait and the domain rules (domain.md §3, §4 M2) say must
//! happen. Cases share nothing, so they can run in parallel, each on its own database.
//!
//! A backend's test file supplies an `async fn open(case: &'static str) -> Option<Fixture>`
//! (returning `None` to skip, e.g. when no server is configured) and expands one
//! `#[tokio::test]` per case with [`contract_tests!`](crate::contract_tests):
//!
//! ```ignore
//! async fn open(case: &'static str) -> Option<tiercare_store::contract::Fixture> { … }
//! tiercare_store::contract_tests!(open);
//! ```
//!
//! Expectations are reasoned from the contract, not copied from what the code returns;
//! where the trait leaves something open (row order of lists, identifier order), the
//! cases compare without depending on it.

use std::collections::BTreeSet;
use std::fmt::Debug;
use std::future::Future;
use std::sync::Arc;

use futures::future::BoxFuture;
use time::macros::{date, datetime};
use time::{Date, Duration, OffsetDateTime};
use uuid::Uuid;

use tiercare_domain::DomainError;
use tiercare_domain::access::{AccessBasis, AccessFacts};
use tiercare_domain::billing::PricedLine;
use tiercare_domain::encounter::{Encounter, EncounterClass, NewEncounter};
use tiercare_domain::facility::{
    Alliance, Capabilities, Community, EmergencyCentre, Facility, Grade, NewFacility, PractitionerRole,
    PractitionerRoleCode, Tier, validate_practitioner,
};
use tiercare_domain::filing::{Filing, FilingCategory};
use tiercare_domain::identity::{IdentifierType, IdentityNumber, Sex};
use tiercare_domain::matching::{MatchGrade, MatchQuery};
use tiercare_domain::patient::{
    Enrolment, FilingStatus, NewEnrolment, NewPatient, OtherIdentifierInput, Patient, PatientStatus, Scheme,
};
use tiercare_domain::referral::{
    self, Change, Command, Context, Direction, FollowUpItem, FollowUpTask, NewReferral, NotificationKind, Party,
    Referral, ReferralState, Timepoint, Urgency,
};
use tiercare_domain::role::Role;
use tiercare_domain::settlement::{
    Accumulators, Arrival, BillLine, Claim, DEFAULT_POLICY_TOML, ItemClass, Place, PolicySet, Setting,
};

use crate::{
    AccessLogEntry, AccessLogFilter, ClearingRow, FacilityFilter, FollowUpFilter, FundReportRow, MergeRecord,
    OutflowRow, ReferralBundle, ReferralFilter, ReferralForStep, Result, RowRejection, SettleRequest, SettlementFilter,
    SettlementRecord, SettlementStatus, Store, StoreError, TokenKind, TokenRecord, User, new_id,
};

/// A store for one case, and how to clean up after it.
pub struct Fixture {
    pub store: Arc<dyn Store>,
    /// Where the case's data lives; printed when the case fails (its data is then kept).
    pub location: String,
    /// Removes the case's data; run only when the case passed.
    pub cleanup: Option<BoxFuture<'static, ()>>,
}

/// Run one case on a fixture (`None`: skipped, the opener said why). The case runs in its
/// own task; a failure is re-raised after printing where the data was kept.
pub async fn run<C, F>(fixture: Option<Fixture>, name: &str, case: C)
where
    C: FnOnce(Arc<dyn Store>) -> F,
    F: Future<Output = ()> + Send + 'static,
{
    let Some(Fixture { store, location, cleanup }) = fixture else { return };
    match tokio::spawn(case(store)).await {
        Ok(()) => {
            if let Some(cleanup) = cleanup {
                cleanup.await;
            }
        }
        Err(e) => {
            eprintln!("contract case {name} failed; its data is kept at {location}");
            if e.is_panic() {
                std::panic::resume_unwind(e.into_panic());
            }
            panic!("contract case {name} did not finish: {e}");
        }
    }
}

/// Expand one `#[tokio::test]` per contract case. `$open` is an
/// `async fn(&'static str) -> Option<Fixture>` (or any expression callable like one).
#[macro_export]
macro_rules! contract_tests {
    ($open:expr) => {
        $crate::contract_tests!(@cases $open;
            registries_round_trip,
            registries_refusals,
            facility_filters,
            practitioners_and_roles,
            patient_round_trip,
            patient_duplicate_identifier,
            patient_unknown_home_facility,
            import_non_atomic,
            import_atomic_bad_row_writes_nothing,
            import_atomic_all_good,
            import_unknown_home_facility,
            match_candidates_blocking,
            match_candidates_exclude_merged,
            merge_and_unmerge,
            merge_refusals,
            unmerge_refusals,
            encounters,
            encounters_in_bulk,
            enrolments,
            enrolments_in_bulk,
            users,
            tokens,
            token_for_unknown_user,
            access_facts_relationships,
            access_facts_follow_merges,
            access_log_queries,
            access_log_by_community,
            concurrent_duplicate_registration,
            concurrent_merges_of_one_record,
            referral_round_trip,
            referral_life_cycle,
            referral_steps_logged,
            referral_stale_change_conflicts,
            referral_concurrent_accepts,
            referral_worklists,
            referral_due_for_the_sweeper,
            referral_downward_follow_ups,
            referral_out_of_region_filing,
            referral_notifications_and_outbox,
            referral_notifications_seen_marker,
            referral_import_all_or_nothing,
            access_facts_referrals,
            settlement_settle_and_replay,
            settlement_refusals,
            settlement_reversal,
            settlement_concurrent_ceiling,
            settlement_concurrent_replays,
            settlement_random_sequence,
            settlement_reports,
            settlement_import_refusals,
            settlement_items_and_reason,
        );
    };
    (@cases $open:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $case() {
                $crate::contract::run(($open)(stringify!($case)).await, stringify!($case), $crate::contract::$case).await;
            }
        )*
    };
    (@cases_in $part:ident, $open:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $case() {
                $crate::contract::run(($open)(stringify!($case)).await, stringify!($case), $crate::contract::$part::$case).await;
            }
        )*
    };
}

// ---------------------------------------------------------------------------------------
// fixtures and helpers

/// The "today" and "now" the cases' data is validated against.
const TODAY: Date = date!(2026 - 11 - 23);
const NOW: OffsetDateTime = datetime!(2026-11-23 12:00 UTC);
/// 四川省广安市岳池县 and 武胜县, 广安区, and 北京市朝阳区.
const YUECHI: &str = "511621";
const WUSHENG: &str = "511622";
const GUANG_AN: &str = "511602";
const CHAOYANG: &str = "110105";

/// Every case starts here: a fresh store migrates, a second migration applies nothing.
async fn migrated(store: &dyn Store) {
    let first = store.migrate().await.expect("migrating a fresh store");
    assert!(!first.is_empty(), "a fresh store applies its migrations, got none applied");
    let second = store.migrate().await.expect("migrating a second time");
    assert!(second.is_empty(), "a second migrate must apply nothing, applied {second:?}");
}

fn expect_duplicate<T: Debug>(r: Result<T>, what: &str) -> Option<Uuid> {
    match r {
        Err(StoreError::Duplicate { existing, .. }) => existing,
        other => panic!("{what}: expected StoreError::Duplicate, got {other:?}"),
    }
}

fn expect_not_found<T: Debug>(r: Result<T>, what: &str) {
    match r {
        Err(StoreError::NotFound { .. }) => {}
        other => panic!("{what}: expected StoreError::NotFound, got {other:?}"),
    }
}

fn expect_conflict<T: Debug>(r: Result<T>, what: &str) {
    match r {
        Err(StoreError::Domain(DomainError::Conflict(_))) => {}
        other => panic!("{what}: expected StoreError::Domain(DomainError::Conflict(_)), got {other:?}"),
    }
}

async fn alliance(s: &dyn Store) -> Alliance {
    let a = Alliance { id: new_id(), name: "广安市城市医疗集团".into(), region_code: "511600".into() };
    s.create_alliance(&a).await.expect("create alliance");
    a
}

async fn community(s: &dyn Store, alliance_id: Option<Uuid>, name: &str, region: &str, wide: bool) -> Community {
    let c = Community {
        id: new_id(),
        alliance_id,
        name: name.into(),
        region_code: region.into(),
        community_wide_read: wide,
    };
    s.create_community(&c).await.expect("create community");
    c
}

fn new_facility(code: &str, name: &str, tier: Tier, region: &str, community_id: Option<Uuid>) -> Facility {
    let grade = match tier {
        Tier::Village => Grade::Ungraded,
        Tier::Township => Grade::Level1,
        Tier::County => Grade::Level2A,
        _ => Grade::Level3A,
    };
    let capabilities = match tier {
        Tier::Village => Capabilities { departments: vec!["全科".into()], beds: 2, emergency_centres: vec![] },
        Tier::Township => Capabilities {
            departments: vec!["全科".into(), "中医科".into(), "预防保健科".into()],
            beds: 60,
            emergency_centres: vec![],
        },
        _ => Capabilities {
            departments: vec!["心血管内科".into(), "神经内科".into(), "急诊医学科".into(), "产科".into()],
            beds: 800,
            emergency_centres: vec![EmergencyCentre::Stroke, EmergencyCentre::ChestPain, EmergencyCentre::Trauma],
        },
    };
    NewFacility {
        code: code.into(),
        name: name.into(),
        tier,
        grade,
        region_code: region.into(),
        insurance_region: region.into(),
        community_id,
        capabilities,
        location: Some(tiercare_domain::facility::GeoPoint { lat: 30.537, lon: 106.440 }),
        referral_policy: Default::default(),
    }
    .validate(new_id())
    .expect("valid facility")
}

async fn facility(s: &dyn Store, code: &str, tier: Tier, region: &str, community_id: Option<Uuid>) -> Facility {
    let f = new_facility(code, &format!("测试机构{code}"), tier, region, community_id);
    s.create_facility(&f).await.expect("create facility");
    f
}

/// A valid GB 11643 number.
fn id_number(region: &str, birth: Date, seq: u16, sex: Sex) -> String {
    IdentityNumber::compose(region, birth, seq, sex).expect("compose identity number").as_str().to_owned()
}

/// A person with a resident identity number (birth date and region from the number).
fn resident(name: &str, sex: Sex, birth: Date, seq: u16) -> Patient {
    NewPatient { identity_number: Some(id_number(YUECHI, birth, seq, sex)), ..NewPatient::new(name, sex) }
        .validate(TODAY, None)
        .expect("valid registration")
        .into_patient(new_id())
}

/// A person without an identity number, registered with another identifier.
fn without_id_number(name: &str, sex: Sex, birth: Date, kind: IdentifierType, value: &str) -> Patient {
    NewPatient {
        birth_date: Some(birth),
        other_identifiers: vec![OtherIdentifierInput { kind, value: value.into() }],
        region_code: Some(YUECHI.into()),
        ..NewPatient::new(name, sex)
    }
    .validate(TODAY, None)
    .expect("valid registration")
    .into_patient(new_id())
}

fn with_phone(mut p: Patient, phone: &str) -> Patient {
    p.phone = Some(phone.into());
    p
}

/// The order of a patient's identifiers carries no meaning: compare them as a set.
fn normalised(mut p: Patient) -> Patient {
    p.identifiers.sort_by(|a, b| (a.kind.as_str(), a.value.as_str()).cmp(&(b.kind.as_str(), b.value.as_str())));
    p
}

fn assert_same_patient(got: Option<Patient>, want: &Patient, what: &str) {
    let got = got.unwrap_or_else(|| panic!("{what}: expected patient {}, got none", want.id));
    assert_eq!(normalised(got), normalised(want.clone()), "{what}");
}

async fn create_patients(s: &dyn Store, ps: &[&Patient]) {
    for p in ps {
        s.create_patient(p).await.expect("create patient");
    }
}

fn encounter(p: &Patient, f: &Facility, started_at: OffsetDateTime, diagnosis: &str) -> Encounter {
    NewEncounter {
        patient_id: p.id,
        facility_id: f.id,
        department: Some("全科".into()),
        practitioner_id: None,
        class: EncounterClass::Outpatient,
        started_at,
        ended_at: Some(started_at + Duration::minutes(20)),
        diagnoses: vec![diagnosis.into()],
        procedures: vec![],
        total_cost_fen: 8_650,
    }
    .validate(new_id(), p.region_key.clone(), NOW)
    .expect("valid encounter")
}

fn sorted_by_id<T: Clone>(v: &[T], id: impl Fn(&T) -> Uuid) -> Vec<T> {
    let mut v = v.to_vec();
    v.sort_by_key(|x| id(x));
    v
}

fn ids(ps: &[Patient]) -> BTreeSet<Uuid> {
    ps.iter().map(|p| p.id).collect()
}

fn user(f: &Facility, username: &str, roles: Vec<Role>) -> User {
    User {
        id: new_id(),
        username: username.into(),
        display_name: format!("用户{username}"),
        facility_id: f.id,
        roles,
        password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo".into(),
        active: true,
    }
}

fn facts(care: bool, same: bool, wide: bool) -> AccessFacts {
    AccessFacts { care_relationship: care, same_community: same, community_wide_read: wide }
}

/// Rows of a bulk import: line `i + 1` is a distinct person born `i` days after 1940-01-01.
fn import_rows(n: usize, first_line: u64) -> Vec<(u64, Patient)> {
    (0..n)
        .map(|i| {
            let sex = if i % 2 == 0 { Sex::Female } else { Sex::Male };
            let birth = date!(1940 - 01 - 01) + Duration::days(i as i64);
            let p = resident(&format!("导入{i}"), sex, birth, (i % 1000) as u16);
            (first_line + i as u64, p)
        })
        .collect()
}

/// A different person (new id, other name) carrying the same identifiers as `p`.
fn same_identifiers_as(p: &Patient) -> Patient {
    Patient { id: new_id(), name: "重复登记".into(), ..p.clone() }
}

// ---------------------------------------------------------------------------------------
// 1. registries

/// Alliance → community → facility (with capabilities) read back equal.
pub async fn registries_round_trip(store: Arc<dyn Store>) {
    let s = &*store;
    migrated(s).await;
    let a = alliance(s).await;
    assert_eq!(s.list_alliances().await.expect("list alliances"), vec![a.clone()]);
    let c = community(s, Some(a.id), "岳池县医共体", YUECHI, true).await;
    assert_eq!(s.get_community(c.id).await.expect("get community"), Some(c.clone()));
    assert_eq!(s.list_communities().await.expect("list communities"), vec![c.clone()]);
    // a community outside any alliance
    let lone = community(s, None, "武胜县医共体", WUSHENG, false).await;
    assert_eq!(s.get_community(lone.id).await.expect("get community"), Some(lone.clone()));

    let f = new_facility("H51162100001", "岳池县人民医院", Tier::County, YUECHI, Some(c.id));
    assert_eq!(f.capabilities.emergency_centres.len(), 3, "fixture has all its centres");
    s.create_facility(&f).await.expect("create facility");
    assert_eq!(s.get_facility(f.id).await.expect("get facility"), Some(f.clone()));
    assert_eq!(s.get_facility_by_code("H51162100001").await.expect("by code"), Some(f.clone()));
    // no community, no capabilities
    let bare = Facility {
        community_id: None,
        capabilities: Capabilities::default(),
        ..new_facility("H11010500001", "朝阳区某诊所", Tier::Village, CHAOYANG, None)
    };
    s.create_facility(&bare).await.expect("create facility without community");
    assert_eq!(s.get_facility(bare.id).await.expect("get facility"), Some(bare.clone()));

    assert_eq!(s.get_community(new_id()).await.expect("get community"), None);
    assert_eq!(s.get_facility(new_id()).await.expect("get facility"), None);
    assert_eq!(s.get_facility_by_code("H00000000000").await.expect("by code"), None);
}

/// Duplicate facility code → Duplicate; unknown community or alliance → NotFound; nothing written.
pub async fn registries_refusals(store: Arc<dyn Store>) {
    let s = &*store;
    migrated(s).await;
    let c = community(s, None, "岳池县医共体", YUECHI, true).await;
    let f = facility(s, "H51162100001", Tier::County, YUECHI, Some(c.id)).await;

    let orphan = Community { id: new_id(), alliance_id: Some(new_id()), ..c.clone() };
    expect_not_found(s.create_community(&orphan).await, "community in an unknown alliance");
    assert_eq!(s.get_community(orphan.id).await.expect("get community"), None, "nothing written");

    let same_code = new_facility("H51162100001", "另一家医院", Tier::Township, YUECHI, Some(c.id));
    expect_duplicate(s.create_facility(&same_code).await, "facility with a taken code");
    assert_eq!(s.get_facility(same_code.id).await.expect("get facility"), None, "nothing written");
    assert_eq!(s.get_facility_by_code("H51162100001").await.expect("by code"), Some(f.clone()), "first one kept");

    let lost = new_facility("H51162100002", "九龙镇卫生院", Tier::Township, YUECHI, Some(new_id()));
    expect_not_found(s.create_facility(&lost).await, "facility in an unknown community");
    assert_eq!(s.get_facility(lost.id).await.expect("get facility"), None, "nothing written");
    assert_eq!(s.get_facility_by_code("H51162100002").await.expect("by code"), None, "nothing written");

    assert_eq!(s.list_facilities(&FacilityFilter::default()).await.expect("list"), vec![f]);
}

/// list_facilities filters by community, tier and region, alone and together.
pub async fn facility_filters(store: Arc<dyn Store>) {
    let s = &*store;
    migrated(s).await;
    let c1 = community(s, None, "岳池县医共体", YUECHI, true).await;
    let c2 = community(s, None, "武胜县医共体", WUSHENG, true).await;
    let county = facility(s, "H51162100001", Tier::County, YUECHI, Some(c1.id)).await;
    let town = facility(s, "H51162100002", Tier::Township, YUECHI, Some(c1.id)).await;
    let village = facility(s, "H51162100003", Tier::Village, YUECHI, Some(c1.id)).await;
    let other_town = facility(s, "H51162200001", Tier::Township, WUSHENG, Some(c2.id)).await;
    let city = facility(s, "H51160200001", Tier::City, GUANG_AN, None).await;

    let list = |f: FacilityFilter| async move {
        let mut v = s.list_facilities(&f).await.expect("list facilities");
        v.sort_by(|a, b| a.code.cmp(&b.code));
        v
    };
    let by_code = |v: Vec<&Facility>| {
        let mut v: Vec<Facility> = v.into_iter().cloned().collect();
        v.sort_by(|a, b| a.code.cmp(&b.code));
        v
    };
    assert_eq!(
        list(FacilityFilter::default()).await,
        by_code(vec![&county, &town, &village, &other_town, &city]),
        "no filter: all"
    );
    assert_eq!(
        list(FacilityFilter { community_id: Some(c1.id), ..Default::default() }).await,
        by_code(vec![&county, &town, &village]),
        "community 1"
    );
    assert_eq!(
        list(FacilityFilter { community_id: Some(c2.id), ..Default::default() }).await,
        by_code(vec![&other_town]),
        "community 2"
    );
    assert_eq!(
        list(FacilityFilter { tier: Some(Tier::Township), ..Default::default() }).await,
        by_code(vec![&town, &other_town]),
        "township tier"
    );
    assert_eq!(
        list(FacilityFilter { region_code: Some(GUANG_AN.into()), ..Default::default() }).await,
        by_code(vec![&city]),
        "region 广安区"
    );
    assert_eq!(
        list(FacilityFilter { region_code: Some(YUECHI.into()), ..Default::default() }).await,
        by_code(vec![&county, &town, &village]),
        "region 岳池县"
    );
    assert_eq!(
        list(FacilityFilter {
            community_id: Some(c1.id),
            tier: Some(Tier::Township),
            region_code: Some(YUECHI.into())
        })
        .await,
        by_code(vec![&town]),
        "community, tier and region together"
    );
    assert_eq!(
        list(FacilityFilter { community_id: Some(c2.id), region_code: Some(YUECHI.into()), ..Default::default() })
            .await,
        vec![],
        "community 2 has nothing in 岳池县"
    );
    assert_eq!(
        list(FacilityFilter { community_id: Some(new_id()), ..Default::default() }).await,
        vec![],
        "unknown community"
    );
}

/// Practitioners and their roles round-trip; a role at an unknown facility writes nothing;
/// a licence number is unique.
pub async fn practitioners_and_roles(store: Arc<dyn Store>) {
    let s = &*store;
    migrated(s).await;
    let c = community(s, None, "岳池县医共体", YUECHI, true).await;
    let county = facility(s, "H51162100001", Tier::County, YUECHI, Some(c.id)).await;
    let town = facility(s, "H51162100002", Tier::Township, YUECHI, Some(c.id)).await;

    let doctor =
        validate_practitioner(new_id(), "李建国", Some("110511621000123"), Some("13800000001")).expect("valid");
    s.create_practitioner(&doctor).await.expect("create practitioner");
    assert_eq!(s.get_practitioner(doctor.id).await.expect("get"), Some(doctor.clone()));
    // older village-doctor certificates have no licence number; several may lack one
    let village_doctor = validate_practitioner(new_id(), "王大伯", None, None).expect("valid");
    let another = validate_practitioner(new_id(), "赵医生", None, None).expect("valid");
    s.create_practitioner(&village_doctor).await.expect("create practitioner without licence");
    s.create_practitioner(&another).await.expect("a second practitioner without licence");
    assert_eq!(s.get_practitioner(village_doctor.id).await.expect("get"), Some(village_doctor.clone()));

    let role = PractitionerRole {
        id: new_id(),
        practitioner_id: doctor.id,
        facility_id: county.id,
        role: PractitionerRoleCode::Physician,
        department: Some("心血管内科".into()),
        active: true,
    };
    s.create_practitioner_role(&role).await.expect("create role");
    let second = PractitionerRole {
        id: new_id(),
        facility_id: town.id,
        role: PractitionerRoleCode::GeneralPractitioner,
        department: None,
        active: false,
        ..role.clone()
    };
    s.create_practitioner_role(&second).await.expect("create second role");
    assert_eq!(
        sorted_by_id(&s.list_practitioner_roles(doctor.id).await.expect("roles"), |r| r.id),
        sorted_by_id(&[role.clone(), second.clone()], |r| r.id)
    );
    assert_eq!(s.list_practitioners(Some(county.id)).await.expect("at county"), vec![doctor.clone()]);

    let nowhere = PractitionerRole {
        id: new_id(),
        practitioner_id: village_doctor.id,
        facility_id: new_id(),
        role: PractitionerRoleCode::VillageDoctor,
        department: None,
        active: true,
    };
    expect_not_found(s.create_practitioner_role(&nowhere).await, "role at an unknown facility");
    assert_eq!(s.list_practitioner_roles(village_doctor.id).await.expect("roles"), vec![], "nothing written");
    let nobody = PractitionerRole { id: new_id(), practitioner_id: new_id(), facility_id: town.id, ..nowhere.clone() };
    expect_not_found(s.create_practitioner_role(&nobody).await, "role of an unknown practitioner");
    assert_eq!(s.list_practitioners(Some(town.id)).await.expect("at town"), vec![doctor.clone()], "nothing written");

    let copy = validate_practitioner(new_id(), "李建国（重复）", Some("110511621000123"), None).expect("valid");
    expect_duplicate(s.create_practitioner(&copy).await, "practitioner with a taken licence number");
    assert_eq!(s.get_practitioner(copy.id).await.expect("get"), None, "nothing written");
    assert_eq!(
        sorted_by_id(&s.list_practitioners(None).await.expect("all"), |p| p.id),
        sorted_by_id(&[doctor, village_doctor, another], |p| p.id)
    );
}

// ---------------------------------------------------------------------------------------
// 2. patients

/// A registration reads back equal, by id and by each identifier.
pub async fn patient_round_trip(store: Arc<dyn Store>) {
    let s = &*store;
    migrated(s).await;
    let c = community(s, None, "岳池县医共体", YUECHI, true).await;
    let town = facility(s, "H51162100002", Tier::Township, YUECHI, Some(c.id)).await;
    let idn = id_number(YUECHI, date!(1958 - 03 - 14), 12, Sex::Female);
    let p = NewPatient {
        identity_number: Some(idn.clone()),
        other_identifiers: vec![OtherIdentifierInput {
            kind: IdentifierType::InsuranceCard,
            value: "yb5116210001".into(),
        }],
        phone: Some("138 0000 0001".into()),
        address: Some("岳池县九龙镇白塔村3组".into()),
        home_facility_id: Some(town.id),
        ..NewPatient::new("王秀英", Sex::Female)
    }
    .validate(TODAY, Some(&town.region_code))
    .expect("valid registration")
    .into_patient(new_id());
    assert_eq!(p.identifiers.len(), 2, "fixture has two identifiers");
    s.create_patient(&p).await.expect("create patient");

    assert_same_patient(s.get_patient(p.id).await.expect("get"), &p, "get_patient");
    // by a list of ids: unknown ones are left out, repeats answered once
    let many = s.get_patients(&[new_id(), p.id, p.id]).await.expect("get_patients");
    assert_eq!(many.len(), 1);
    assert_same_patient(many.into_iter().next(), &p, "get_patients");
    assert_eq!(s.get_patients(&[]).await.expect("no ids"), vec![]);
    assert_same_patient(
        s.find_by_identifier(IdentifierType::ResidentId, &idn).await.expect("find"),
        &p,
        "find_by_identifier(resident id)",
    );
    assert_same_patient(
        s.find_by_identifier(IdentifierType::InsuranceCard, "YB5116210001").await.expect("find"),
        &p,
        "find_by_identifier(insurance card)",
    );
    // the same value under another identifier type is someone else's (or nobody's)
    assert_eq!(s.find_by_identifier(IdentifierType::Passport, "YB5116210001").await.expect("find"), None);
    let unknown = id_number(YUECHI, date!(1958 - 03 - 14), 14, Sex::Female);
    assert_eq!(s.find_by_identifier(IdentifierType::ResidentId, &unknown).await.expect("find"), None);

    // a foreign visitor with a passport only, no home facility, no phone
    let visitor =
        without_id_number("Anna Müller", Sex::Female, date!(1990 - 06 - 30), IdentifierType::Passport, "C01234567");
    s.create_patient(&visitor).await.expect("create visitor");
    assert_same_patient(s.get_patient(visitor.id).await.expect("get"), &visitor, "visitor");
    assert_eq!(s.get_patient(new_id()).await.expect("get"), None);
    assert_eq!(s.count_patients().await.expect("count"), 2);
}

/// A taken identifier is refused naming the patient who has it; nothing is written.
pub async fn patient_duplicate_identifier(store: Arc<dyn Store>) {
    let s = &*store;
    migrated(s).await;
    let first = NewPatient {
        identity_number: Some(id_number(YUECHI, date!(1962 - 07 - 01), 31, Sex::Male)),
        other_identifiers: vec![OtherIdentifierInput {
            kind: IdentifierType::InsuranceCard,
            value: "YB0000000001".into(),
        }],
        ..NewPatient::new("刘德明", Sex::Male)
    }
    .validate(TODAY, None)
    .expect("valid")
    .into_patient(new_id());
    s.create_patient(&first).await.expect("create first");
    let idn = first.identity_number().expect("has number").to_owned();

    let second = NewPatient { identity_number: Some(idn.clone()), ..NewPatient::new("刘德民", Sex::Male) }
        .validate(TODAY, None)
        .expect("valid")
        .into_patient(new_id());
    let existing = expect_duplicate(s.create_patient(&second).await, "second patient with the same identity number");
    assert_eq!(existing, Some(first.id), "Duplicate names the patient holding the number");
    assert_eq!(s.count_patients().await.expect("count"), 1, "nothing written");
    assert_eq!(s.get_patient(second.id).await.expect("get"), None, "nothing written");
    assert_same_patient(s.find_by_identifier(IdentifierType::ResidentId, &idn).await.expect("find"), &first, "kept");

    // a new identity number but a taken insurance card: refused as a whole
    let third = NewPatient {
        identity_number: Some(id_number(YUECHI, date!(1970 - 01 - 02), 33, Sex::Male)),
        other_identifiers: vec![OtherIdentifierInput {
            kind: IdentifierType::InsuranceCard,
            value: "YB0000000001".into(),
        }],
        ..NewPatient::new("陈刚", Sex::Male)
    }
    .validate(TODAY, None)
    .expect("valid")
    .into_patient(new_id());
    let existing = expect_duplicate(s.create_patient(&third).await, "patient with a taken insurance card");
    assert_eq!(existing, Some(first.id));
    let third_idn = third.identity_number().expect("has number");
    assert_eq!(
        s.find_by_identifier(IdentifierType::ResidentId, third_idn).await.expect("find"),
        None,
        "none of the refused patient's identifiers is written"
    );
    assert_eq!(s.count_patients().await.expect("count"), 1);
}

/// A home facility that does not exist: NotFound and nothing written.
pub async fn patient_unknown_home_facility(store: Arc<dyn Store>) {
    let s = &*store;
    migrated(s).await;
    let mut p = resident("周玉兰", Sex::Female, date!(1948 - 09 - 09), 40);
    p.home_facility_id = Some(new_id());
    expect_not_found(s.create_patient(&p).await, "patient with an unknown home facility");
    assert_eq!(s.count_patients().await.expect("count"), 0);
    assert_eq!(s.get_patient(p.id).await.expect("get"), None);
    let idn = p.identity_number().expect("has number");
    assert_eq!(s.find_by_identifier(IdentifierType::ResidentId, idn).await.expect("find"), None);
}

// ---------------------------------------------------------------------------------------
// 3. bulk import

fn lines_and_codes(rejected: &[RowRejection]) -> Vec<(u64, String)> {
    let mut v: Vec<(u64, String)> = rejected.iter().map(|r| (r.line, r.code.clone())).collect();
    v.sort();
    v
}

/// Non-atomic import of 1,200 rows (three internal chunks): in-file duplicates (one in the
/// same chunk as the original, one in a later chunk) and a duplicate of a stored patient
/// are refused by line; every other row lands.
pub async fn import_non_atomic(store: Arc<dyn Store>) {
    let s = &*store;
    migrated(s).await;
    let stored = resident("已登记", Sex::Male, date!(1930 - 05 - 05), 501);
    s.create_patient(&stored).await.expect("create stored patient");

    let mut rows = import_rows(1200, 1);
    rows[299].1 = same_identifiers_as(&rows[9].1); // line 300 repeats line 10 (same chunk)
    rows[899].1 = same_identifiers_as(&rows[19].1); // line 900 repeats line 20 (an earlier chunk)
    rows[1099].1 = same_identifiers_as(&stored); // line 1100 repeats a stored patient
    let out = s.import_patients(&rows, false).await.expect("import");

    assert_eq!(out.inserted, 1197, "every row but the three duplicates lands");
    let lines: Vec<u64> = lines_and_codes(&out.rejected).iter().map(|(l, _)| *l).collect();
    assert_eq!(lines, vec![300, 900, 1100], "exactly the duplicate lines are refused");
    assert_eq!(s.count_patients().await.expect("count"), 1 + 1197);
    for i in [299, 899, 1099] {
        assert_eq!(s.get_patient(rows[i].1.id).await.expect("get"), None, "refused line {} not written", rows[i].0);
    }
    for i in [0, 9, 19, 499, 500, 999, 1000, 1199] {
        let (line, p) = &rows[i];
        assert_same_patient(
            s.find_by_identifier(IdentifierType::ResidentId, p.identity_number().expect("number")).await.expect("find"),
            p,
            &format!("line {line} landed and owns its number"),
        );
    }
    assert_same_patient(s.get_patient(stored.id).await.expect("get"), &stored, "stored patient untouched");
    assert_eq!(
        lines_and_codes(&out.rejected),
        vec![
            (300, "identifier.duplicate_in_file".to_owned()),
            (900, "identifier.duplicate_in_file".to_owned()),
            (1100, "identifier.duplicate".to_owned()),
        ],
        "a repeat of an earlier line of the same file is `identifier.duplicate_in_file`, wherever the chunk \
         boundaries fall; a repeat of a stored patient is `identifier.duplicate`"
    );
}

/// Atomic import with one bad row: nothing written, the bad row reported.
pub async fn import_atomic_bad_row_writes_nothing(store: Arc<dyn Store>) {
    let s = &*store;
    migrated(s).await;
    let stored = resident("已登记", Sex::Male, date!(1930 - 05 - 05), 501);
    s.create_patient(&stored).await.expect("create stored patient");

    // the bad row is in the second chunk, after a whole chunk of good rows
    let mut rows = import_rows(600, 1);
    rows[549].1 = same_identifiers_as(&stored);
    let out = s.import_patients(&rows, true).await.expect("import");
    assert_eq!(out.inserted, 0, "an atomic import with a bad row inserts nothing");
    assert_eq!(lines_and_codes(&out.rejected), vec![(550, "identifier.duplicate".to_owned())]);
    assert_eq!(s.count_patients().await.expect("count"), 1, "nothing written");
    for i in [0, 499, 500, 599] {
        let p = &rows[i].1;
        assert_eq!(s.get_patient(p.id).await.expect("get"), None, "line {} not written", rows[i].0);
        let idn = p.identity_number().expect("number");
        assert_eq!(s.find_by_identifier(IdentifierType::ResidentId, idn).await.expect("find"), None);
    }

    // a repeat inside the file is just as fatal
    let mut rows = import_rows(10, 2);
    rows[5].1 = same_identifiers_as(&rows[1].1);
    let out = s.import_patients(&rows, true).await.expect("import");
    assert_eq!(out.inserted, 0);
    assert_eq!(lines_and_codes(&out.rejected), vec![(7, "identifier.duplicate_in_file".to_owned())]);
    assert_eq!(s.count_patients().await.expect("count"), 1, "nothing written");
}

/// Atomic import of good rows only: everything lands.
pub async fn import_atomic_all_good(store: Arc<dyn Store>) {
    let s = &*store;
    migrated(s).await;
    let stored = resident("已登记", Sex::Male, date!(1930 - 05 - 05), 501);
    s.create_patient(&stored).await.expect("create stored patient");
    let rows = import_rows(700, 2);
    let out = s.import_patients(&rows, true).await.expect("import");
    assert_eq!(out.inserted, 700);
    assert_eq!(out.rejected, vec![]);
    assert_eq!(s.count_patients().await.expect("count"), 701);
    for i in [0, 499, 500, 699] {
        let (line, p) = &rows[i];
        assert_same_patient(s.get_patient(p.id).await.expect("get"), p, &format!("line {line}"));
    }
}

/// Bulk import applies the rule single registration does: a row whose home facility does
/// not exist is refused (not written), the others land.
pub async fn import_unknown_home_facility(store: Arc<dyn Store>) {
    let s = &*store;
    migrated(s).await;
    let c = community(s, None, "岳池县医共体", YUECHI, true).await;
    let town = facility(s, "H51162100002", Tier::Township, YUECHI, Some(c.id)).await;
    let mut rows = import_rows(3, 1);
    rows[0].1.home_facility_id = Some(town.id);
    rows[1].1.home_facility_id = Some(new_id());
    rows[2].1.home_facility_id = Some(town.id);
    let out = s.import_patients(&rows, false).await.expect("import");
    let lines: Vec<u64> = out.rejected.iter().map(|r| r.line).collect();
    assert_eq!(
        (out.inserted, lines),
        (2, vec![2]),
        "line 2 names a facility that does not exist (create_patient refuses it with NotFound)"
    );
    assert_eq!(s.get_patient(rows[1].1.id).await.expect("get"), None, "line 2 not written");
    assert_eq!(s.count_patients().await.expect("count"), 2);
}

// ---------------------------------------------------------------------------------------
// 4. matching

/// Candidates are blocked by birth date, by name, by phone; the identity number finds its owner.
pub async fn match_candidates_blocking(store: Arc<dyn Store>) {
    let s = &*store;
    migrated(s).await;
    let born = date!(1960 - 05 - 01);
    let zhang1 = with_phone(resident("张伟", Sex::Male, born, 11), "13800000001");
    let li = with_phone(resident("李娜", Sex::Female, born, 12), "13900000002");
    let zhang2 = with_phone(resident("张伟", Sex::Male, date!(1975 - 08 - 09), 13), "13700000003");
    let wang = with_phone(resident("王芳", Sex::Female, date!(1982 - 02 - 02), 14), "13800000001");
    let zhao = with_phone(resident("赵磊", Sex::Male, date!(1990 - 12 - 12), 15), "13600000004");
    let qian = resident("钱敏", Sex::Female, date!(1955 - 07 - 07), 16);
    create_patients(s, &[&zhang1, &li, &zhang2, &wang, &zhao, &qian]).await;

    let find = |q: MatchQuery| async move { s.match_candidates(&q, 50).await.expect("match candidates") };
    let set = |ps: &[&Patient]| ps.iter().map(|p| p.id).collect::<BTreeSet<_>>();

    let got = find(MatchQuery { birth_date: Some(born), ..Default::default() }).await;
    assert_eq!(ids(&got), set(&[&zhang1, &li]), "by birth date");
    let got = find(MatchQuery { name: Some("张伟".into()), ..Default::default() }).await;
    assert_eq!(ids(&got), set(&[&zhang1, &zhang2]), "by name");
    let got = find(MatchQuery { phone: Some("13800000001".into()), ..Default::default() }).await;
    assert_eq!(ids(&got), set(&[&wang, &zhang1]), "by phone");

    let qian_idn = qian.identity_number().expect("number").to_owned();
    let q = MatchQuery { identity_number: Some(qian_idn), ..Default::default() };
    let got = find(q.clone()).await;
    assert_eq!(ids(&got), set(&[&qian]), "by identity number");
    // candidates carry their identifiers: the domain ranks an identical number as certain
    let graded = tiercare_domain::matching::score(&q, &got[0]).expect("scored");
    assert_eq!(graded.grade, MatchGrade::Certain);

    let q = MatchQuery {
        name: Some("张伟".into()),
        birth_date: Some(born),
        sex: Some(Sex::Male),
        phone: Some("13800000001".into()),
        ..Default::default()
    };
    let got = find(q).await;
    assert_eq!(ids(&got), set(&[&zhang1, &li, &zhang2, &wang]), "union of the blocks, never 赵磊 or 钱敏");
    assert_eq!(got.len(), 4, "each candidate once");
    for p in &got {
        let want = [&zhang1, &li, &zhang2, &wang].into_iter().find(|w| w.id == p.id).expect("expected candidate");
        assert_eq!(normalised(p.clone()), normalised((*want).clone()), "candidates are whole patients");
    }

    let got =
        find(MatchQuery {
            name: Some("不存在".into()), birth_date: Some(date!(2001 - 01 - 01)), ..Default::default()
        })
        .await;
    assert_eq!(got, vec![], "nothing matches");
}

/// A record merged into another is never a candidate, whichever block would find it.
pub async fn match_candidates_exclude_merged(store: Arc<dyn Store>) {
    let s = &*store;
    migrated(s).await;
    let by = new_id();
    let born = date!(1960 - 05 - 01);
    let a = with_phone(resident("张伟", Sex::Male, born, 11), "13800000001");
    let b = with_phone(
        without_id_number("张伟", Sex::Male, born, IdentifierType::InsuranceCard, "YB0000000001"),
        "13800000001",
    );
    create_patients(s, &[&a, &b]).await;
    s.merge_patients(a.id, b.id, by, "同一人", NOW).await.expect("merge b into a");

    let q = MatchQuery {
        name: Some("张伟".into()),
        birth_date: Some(born),
        phone: Some("13800000001".into()),
        ..Default::default()
    };
    let got = s.match_candidates(&q, 50).await.expect("match");
    assert_eq!(ids(&got), BTreeSet::from([a.id]), "the survivor, not the merged record");

    // the merged record is the one holding the identity number
    let survivor = without_id_number("孙丽", Sex::Female, date!(1970 - 03 - 03), IdentifierType::Passport, "E12345678");
    let holder = resident("孙丽", Sex::Female, date!(1970 - 03 - 03), 22);
    create_patients(s, &[&survivor, &holder]).await;
    s.merge_patients(survivor.id, holder.id, by, "同一人", NOW).await.expect("merge holder into survivor");
    let q =
        MatchQuery { identity_number: Some(holder.identity_number().expect("number").into()), ..Default::default() };
    let got = s.match_candidates(&q, 50).await.expect("match");
    assert!(
        !ids(&got).contains(&holder.id),
        "a merged record is not a candidate, even when the identity number is on it (got {:?})",
        got.iter().map(|p| (p.id, p.status)).collect::<Vec<_>>()
    );
}

// ---------------------------------------------------------------------------------------
// 5. merge and unmerge

/// Merge B into A: B follows A, A's record has both; unmerge separates them again.
pub async fn merge_and_unmerge(store: Arc<dyn Store>) {
    let s = &*store;
    migrated(s).await;
    let c = community(s, None, "岳池县医共体", YUECHI, true).await;
    let county = facility(s, "H51162100001", Tier::County, YUECHI, Some(c.id)).await;
    let town = facility(s, "H51162100002", Tier::Township, YUECHI, Some(c.id)).await;
    let born = date!(1951 - 11 - 11);
    let a = resident("杨桂芳", Sex::Female, born, 52);
    let b = without_id_number("杨桂芳", Sex::Female, born, IdentifierType::InsuranceCard, "YB5116210099");
    create_patients(s, &[&a, &b]).await;
    let ea = encounter(&a, &county, datetime!(2026-10-01 09:00 UTC), "I10.x00");
    let eb = encounter(&b, &town, datetime!(2026-11-01 09:00 UTC), "E11.900");
    s.create_encounter(&ea).await.expect("encounter of a");
    s.create_encounter(&eb).await.expect("encounter of b");

    let (by, at) = (new_id(), datetime!(2026-11-20 10:00 UTC));
    let rec = s.merge_patients(a.id, b.id, by, "同一人：姓名、出生日期一致，医保卡登记", at).await.expect("merge");
    assert_eq!(
        (rec.survivor_id, rec.merged_id, rec.merged_by, rec.merged_at, rec.reason.as_str()),
        (a.id, b.id, by, at, "同一人：姓名、出生日期一致，医保卡登记")
    );
    assert_eq!((rec.undone_by, rec.undone_at, rec.undo_reason.as_deref()), (None, None, None));

    let got_b = s.get_patient(b.id).await.expect("get b").expect("b still exists");
    assert_eq!(got_b.status, PatientStatus::Merged(a.id));
    assert_eq!(got_b.identifiers, b.identifiers, "b keeps its identifiers");
    assert_eq!(s.get_patient(a.id).await.expect("get a").expect("a").status, PatientStatus::Active);
    for id in [a.id, b.id] {
        let survivor = s.surviving_patient(id).await.expect("survivor").expect("exists");
        assert_eq!(survivor.id, a.id, "both ids resolve to the surviving record");
    }
    assert_eq!(s.surviving_patient(new_id()).await.expect("unknown"), None);
    assert_eq!(s.get_merge(rec.id).await.expect("get merge").as_ref(), Some(&rec));
    assert_eq!(s.get_merge(new_id()).await.expect("unknown merge"), None);

    for id in [a.id, b.id] {
        let r = s.patient_record(id).await.expect("record").expect("record exists");
        assert_eq!(r.patient.id, a.id, "the record of either resolves to the survivor");
        assert_eq!(r.patient.status, PatientStatus::Active);
        assert_eq!(r.merged_ids, vec![b.id]);
        assert_eq!(sorted_by_id(&r.encounters, |e| e.id), sorted_by_id(&[ea.clone(), eb.clone()], |e| e.id));
        assert_eq!(s.merge_history(id).await.expect("history"), vec![rec.clone()], "history of {id}");
    }

    let (by2, at2) = (new_id(), datetime!(2026-11-21 08:30 UTC));
    let undone = s.unmerge(rec.id, by2, "误合并：两人同名同生日", at2).await.expect("unmerge");
    let want = MergeRecord {
        undone_by: Some(by2),
        undone_at: Some(at2),
        undo_reason: Some("误合并：两人同名同生日".into()),
        ..rec.clone()
    };
    assert_eq!(undone, want);
    let got_b = s.get_patient(b.id).await.expect("get b").expect("b");
    assert_eq!(got_b.status, PatientStatus::Active, "b is active again");
    assert_eq!(got_b.identifiers, b.identifiers, "with everything it had");
    let rb = s.patient_record(b.id).await.expect("record").expect("record of b");
    assert_eq!((rb.patient.id, rb.merged_ids, rb.encounters), (b.id, vec![], vec![eb.clone()]));
    let ra = s.patient_record(a.id).await.expect("record").expect("record of a");
    assert_eq!((ra.patient.id, ra.merged_ids, ra.encounters), (a.id, vec![], vec![ea.clone()]));
    for id in [a.id, b.id] {
        assert_eq!(s.merge_history(id).await.expect("history"), vec![want.clone()], "history of {id} after undo");
    }

    // reversible means repeatable: merge again, both merges in the history
    let again =
        s.merge_patients(a.id, b.id, by, "复核后确认同一人", datetime!(2026-11-22 09:00 UTC)).await.expect("again");
    assert_eq!(
        sorted_by_id(&s.merge_history(b.id).await.expect("history"), |m| m.id),
        sorted_by_id(&[want, again], |m| m.id),
        "both merges are in the history"
    );
    assert_eq!(s.count_patients().await.expect("count"), 2, "a merge deletes nothing");
}

/// Impossible merges are refused with Conflict (unknown records with NotFound), writing nothing.
pub async fn merge_refusals(store: Arc<dyn Store>) {
    let s = &*store;
    migrated(s).await;
    let by = new_id();
    let born = date!(1966 - 06 - 06);
    let a = resident("黄海", Sex::Male, born, 61);
    let c = resident("黄海", Sex::Male, born, 63); // same name and birth, another number: another man
    let b = without_id_number("黄海", Sex::Male, born, IdentifierType::InsuranceCard, "YB5116210061");
    let d = without_id_number("黄海", Sex::Male, born, IdentifierType::Passport, "E99887766");
    create_patients(s, &[&a, &b, &c, &d]).await;

    expect_conflict(s.merge_patients(a.id, c.id, by, "同名", NOW).await, "two different identity numbers");
    for p in [&a, &c] {
        let got = s.get_patient(p.id).await.expect("get").expect("exists");
        assert_eq!((got.status, got.version), (PatientStatus::Active, p.version), "nothing changed");
        assert_eq!(s.merge_history(p.id).await.expect("history"), vec![]);
    }
    expect_conflict(s.merge_patients(a.id, a.id, by, "自身", NOW).await, "a record into itself");

    let rec = s.merge_patients(a.id, b.id, by, "同一人", NOW).await.expect("merge b into a");
    expect_conflict(s.merge_patients(d.id, b.id, by, "再合并", NOW).await, "merging an already merged record");
    expect_conflict(s.merge_patients(b.id, d.id, by, "并入已合并", NOW).await, "into a merged survivor");
    expect_not_found(s.merge_patients(a.id, new_id(), by, "?", NOW).await, "unknown merged record");
    expect_not_found(s.merge_patients(new_id(), d.id, by, "?", NOW).await, "unknown survivor");

    assert_eq!(s.get_patient(b.id).await.expect("get").expect("b").status, PatientStatus::Merged(a.id));
    assert_eq!(s.get_patient(d.id).await.expect("get").expect("d").status, PatientStatus::Active);
    assert_eq!(s.merge_history(b.id).await.expect("history"), vec![rec]);
    assert_eq!(s.merge_history(d.id).await.expect("history"), vec![]);
}

/// An undone merge cannot be undone again; an unknown merge is NotFound.
pub async fn unmerge_refusals(store: Arc<dyn Store>) {
    let s = &*store;
    migrated(s).await;
    let by = new_id();
    let a = resident("吴强", Sex::Male, date!(1977 - 07 - 17), 71);
    let b = without_id_number("吴强", Sex::Male, date!(1977 - 07 - 17), IdentifierType::InsuranceCard, "YB5116210071");
    create_patients(s, &[&a, &b]).await;
    let rec = s.merge_patients(a.id, b.id, by, "同一人", NOW).await.expect("merge");
    let undone = s.unmerge(rec.id, by, "误合并", NOW + Duration::hours(1)).await.expect("unmerge");
    expect_conflict(s.unmerge(rec.id, by, "再撤销", NOW + Duration::hours(2)).await, "unmerging twice");
    assert_eq!(s.merge_history(b.id).await.expect("history"), vec![undone], "the first undo stands");
    let got = s.get_patient(b.id).await.expect("get").expect("b");
    assert_eq!(got.status, PatientStatus::Active);
    expect_not_found(s.unmerge(new_id(), by, "?", NOW).await, "unknown merge id");
}

// ---------------------------------------------------------------------------------------
// 6. encounters

/// An encounter needs a known facility, patient and practitioner; refused ones write nothing.
pub async fn encounters(store: Arc<dyn Store>) {
    let s = &*store;
    migrated(s).await;
    let c = community(s, None, "岳池县医共体", YUECHI, true).await;
    let county = facility(s, "H51162100001", Tier::County, YUECHI, Some(c.id)).await;
    let doctor = validate_practitioner(new_id(), "李建国", Some("110511621000123"), None).expect("valid");
    s.create_practitioner(&doctor).await.expect("practitioner");
    let p = resident("郑秀兰", Sex::Female, date!(1944 - 04 - 04), 44);
    s.create_patient(&p).await.expect("patient");

    let e = Encounter {
        practitioner_id: Some(doctor.id),
        class: EncounterClass::Inpatient,
        department: Some("神经内科".into()),
        diagnoses: vec!["I63.900".into(), "I10.x00".into()],
        procedures: vec!["88.7100".into()],
        ended_at: Some(datetime!(2026-11-12 10:00 UTC)),
        total_cost_fen: 1_234_567,
        ..encounter(&p, &county, datetime!(2026-11-02 08:30 UTC), "I63.900")
    };
    s.create_encounter(&e).await.expect("create encounter");
    let rec = s.patient_record(p.id).await.expect("record").expect("exists");
    assert_eq!(rec.encounters, vec![e.clone()], "read back equal");

    let nowhere = Encounter { id: new_id(), facility_id: new_id(), ..e.clone() };
    expect_not_found(s.create_encounter(&nowhere).await, "encounter at an unknown facility");
    let nobody_treats = Encounter { id: new_id(), practitioner_id: Some(new_id()), ..e.clone() };
    expect_not_found(s.create_encounter(&nobody_treats).await, "encounter with an unknown practitioner");
    let rec = s.patient_record(p.id).await.expect("record").expect("exists");
    assert_eq!(rec.encounters, vec![e.clone()], "nothing written");

    // unknown patient: then register a patient with that very id, who must have no encounters
    let ghost = resident("未登记", Sex::Male, date!(1980 - 08 - 08), 81);
    let orphan = Encounter { id: new_id(), patient_id: ghost.id, region_key: ghost.region_key.clone(), ..e.clone() };
    expect_not_found(s.create_encounter(&orphan).await, "encounter of an unknown patient");
    s.create_patient(&ghost).await.expect("register the patient afterwards");
    let rec = s.patient_record(ghost.id).await.expect("record").expect("exists");
    assert_eq!(rec.encounters, vec![], "nothing was written for the unknown patient");
    assert_eq!(s.patient_record(new_id()).await.expect("record"), None);
}

// ---------------------------------------------------------------------------------------
// 7. enrolments

/// Enrolments show in the patient's record; an unknown patient is NotFound.
pub async fn enrolments(store: Arc<dyn Store>) {
    let s = &*store;
    migrated(s).await;
    let p = resident("冯玉珍", Sex::Female, date!(1952 - 02 - 29), 52);
    s.create_patient(&p).await.expect("patient");
    let resident_scheme = NewEnrolment {
        scheme: Scheme::Resident,
        insured_region: YUECHI.into(),
        filing_status: FilingStatus::NotFiled,
        filed_region: None,
        valid_from: date!(2026 - 01 - 01),
        valid_to: Some(date!(2026 - 12 - 31)),
    }
    .validate(new_id(), p.id)
    .expect("valid");
    s.add_enrolment(&resident_scheme).await.expect("add enrolment");
    let rec = s.patient_record(p.id).await.expect("record").expect("exists");
    assert_eq!(rec.enrolments, vec![resident_scheme.clone()]);

    let filed = NewEnrolment {
        scheme: Scheme::Employee,
        insured_region: YUECHI.into(),
        filing_status: FilingStatus::LongTerm,
        filed_region: Some(CHAOYANG.into()),
        valid_from: date!(2025 - 07 - 01),
        valid_to: None,
    }
    .validate(new_id(), p.id)
    .expect("valid");
    s.add_enrolment(&filed).await.expect("add filed enrolment");
    let rec = s.patient_record(p.id).await.expect("record").expect("exists");
    assert_eq!(
        sorted_by_id(&rec.enrolments, |e| e.id),
        sorted_by_id(&[resident_scheme.clone(), filed.clone()], |e| e.id)
    );
    // the enrolments alone, oldest first (the employee one began in 2025)
    assert_eq!(s.enrolments(p.id).await.expect("enrolments"), vec![filed.clone(), resident_scheme.clone()]);
    assert_eq!(s.enrolments(new_id()).await.expect("enrolments of nobody"), vec![]);
    // one by its id, each as added; an unknown id is none
    assert_eq!(s.enrolment(filed.id).await.expect("enrolment"), Some(filed));
    assert_eq!(s.enrolment(resident_scheme.id).await.expect("enrolment"), Some(resident_scheme.clone()));
    assert_eq!(s.enrolment(new_id()).await.expect("unknown enrolment"), None);

    let stray = Enrolment { id: new_id(), patient_id: new_id(), ..resident_scheme };
    expect_not_found(s.add_enrolment(&stray).await, "enrolment of an unknown patient");
    assert_eq!(s.enrolment(stray.id).await.expect("refused enrolment"), None, "nothing written");
}

// ---------------------------------------------------------------------------------------
// 8. users and tokens

/// Users round-trip; a taken username is Duplicate, an unknown facility NotFound.
pub async fn users(store: Arc<dyn Store>) {
    let s = &*store;
    migrated(s).await;
    let town = facility(s, "H51162100002", Tier::Township, YUECHI, None).await;
    let u = user(&town, "lijianguo", vec![Role::TownshipClinician, Role::ReferralCentre]);
    s.create_user(&u).await.expect("create user");
    assert_eq!(s.get_user(u.id).await.expect("get"), Some(u.clone()));
    assert_eq!(s.get_user_by_username("lijianguo").await.expect("by name"), Some(u.clone()));
    let admin = User { active: false, ..user(&town, "admin", vec![Role::SystemAdmin]) };
    s.create_user(&admin).await.expect("create admin");
    assert_eq!(s.get_user(admin.id).await.expect("get"), Some(admin.clone()));

    let taken = user(&town, "lijianguo", vec![Role::Lab]);
    expect_duplicate(s.create_user(&taken).await, "taken username");
    assert_eq!(s.get_user(taken.id).await.expect("get"), None, "nothing written");
    let lost = User { facility_id: new_id(), ..user(&town, "wanderer", vec![Role::Specialist]) };
    expect_not_found(s.create_user(&lost).await, "user at an unknown facility");
    assert_eq!(s.get_user(lost.id).await.expect("get"), None, "nothing written");
    assert_eq!(s.get_user_by_username("wanderer").await.expect("by name"), None);

    assert_eq!(sorted_by_id(&s.list_users().await.expect("list"), |u| u.id), sorted_by_id(&[u, admin], |u| u.id));
    assert_eq!(s.get_user(new_id()).await.expect("get"), None);
}

/// Tokens are found until they expire or are revoked; API tokens do not expire.
pub async fn tokens(store: Arc<dyn Store>) {
    let s = &*store;
    migrated(s).await;
    let town = facility(s, "H51162100002", Tier::Township, YUECHI, None).await;
    let u = user(&town, "lijianguo", vec![Role::TownshipClinician]);
    s.create_user(&u).await.expect("create user");

    let session = TokenRecord {
        token_hash: vec![1; 32],
        user_id: u.id,
        kind: TokenKind::Session,
        label: None,
        created_at: NOW - Duration::hours(1),
        expires_at: Some(NOW + Duration::hours(7)),
    };
    let expired = TokenRecord {
        token_hash: vec![2; 32],
        created_at: NOW - Duration::hours(10),
        expires_at: Some(NOW - Duration::minutes(1)),
        ..session.clone()
    };
    let api = TokenRecord {
        token_hash: vec![3; 32],
        kind: TokenKind::Api,
        label: Some("HIS 接口".into()),
        created_at: NOW - Duration::days(30),
        expires_at: None,
        ..session.clone()
    };
    for t in [&session, &expired, &api] {
        s.create_token(t).await.expect("create token");
    }

    assert_eq!(s.find_token(&session.token_hash, NOW).await.expect("find"), Some((session.clone(), u.clone())));
    assert_eq!(s.find_token(&expired.token_hash, NOW).await.expect("find"), None, "expired before now");
    assert_eq!(
        s.find_token(&expired.token_hash, NOW - Duration::hours(2)).await.expect("find"),
        Some((expired.clone(), u.clone())),
        "the same token was valid two hours earlier"
    );
    assert_eq!(s.find_token(&session.token_hash, NOW + Duration::hours(8)).await.expect("find"), None, "expires");
    assert_eq!(s.find_token(&api.token_hash, NOW).await.expect("find"), Some((api.clone(), u.clone())));
    assert_eq!(
        s.find_token(&api.token_hash, NOW + Duration::days(3650)).await.expect("find"),
        Some((api.clone(), u.clone())),
        "an API token lasts until revoked"
    );
    assert_eq!(s.find_token(&[9; 32], NOW).await.expect("find"), None, "unknown token");

    s.revoke_token(&session.token_hash, NOW).await.expect("revoke");
    assert_eq!(s.find_token(&session.token_hash, NOW).await.expect("find"), None, "revoked");
    s.revoke_token(&api.token_hash, NOW).await.expect("revoke api");
    assert_eq!(s.find_token(&api.token_hash, NOW).await.expect("find"), None, "revoked api token");
}

/// A token for a user who does not exist is refused like every other dangling reference
/// (NotFound), and not stored.
pub async fn token_for_unknown_user(store: Arc<dyn Store>) {
    let s = &*store;
    migrated(s).await;
    let t = TokenRecord {
        token_hash: vec![7; 32],
        user_id: new_id(),
        kind: TokenKind::Api,
        label: None,
        created_at: NOW,
        expires_at: None,
    };
    expect_not_found(s.create_token(&t).await, "token of an unknown user");
    assert_eq!(s.find_token(&t.token_hash, NOW).await.expect("find"), None);
}

// ---------------------------------------------------------------------------------------
// 9. access

/// Care relationship (encounter or registration), same community and the community's
/// policy, per facility.
pub async fn access_facts_relationships(store: Arc<dyn Store>) {
    let s = &*store;
    migrated(s).await;
    let open = community(s, None, "岳池县医共体", YUECHI, true).await;
    let other = community(s, None, "武胜县医共体", WUSHENG, false).await;
    let closed = community(s, None, "邻水县医共体", "511623", false).await;
    let f1 = facility(s, "H51162100001", Tier::County, YUECHI, Some(open.id)).await;
    let f2 = facility(s, "H51162100002", Tier::Township, YUECHI, Some(open.id)).await;
    let f3 = facility(s, "H51162200001", Tier::Township, WUSHENG, Some(other.id)).await;
    let f4 = facility(s, "H51162300001", Tier::County, "511623", Some(closed.id)).await;
    let f5 = facility(s, "H51162300002", Tier::Township, "511623", Some(closed.id)).await;
    let f6 = facility(s, "H51160200001", Tier::City, GUANG_AN, None).await;

    let p = resident("何建华", Sex::Male, date!(1959 - 09 - 19), 91);
    let q = Patient { home_facility_id: Some(f2.id), ..resident("何丽", Sex::Female, date!(1988 - 08 - 18), 92) };
    create_patients(s, &[&p, &q]).await;
    s.create_encounter(&encounter(&p, &f1, datetime!(2026-11-01 09:00 UTC), "J18.900")).await.expect("enc f1");
    s.create_encounter(&encounter(&p, &f4, datetime!(2026-11-05 09:00 UTC), "J06.900")).await.expect("enc f4");

    let cases = [
        (&f1, &p, facts(true, true, true), "p treated at f1"),
        (&f2, &p, facts(false, true, true), "p known in f2's open community"),
        (&f3, &p, facts(false, false, false), "another community, p never there"),
        (&f4, &p, facts(true, true, false), "p treated at f4, closed community"),
        (&f5, &p, facts(false, true, false), "p known in f5's closed community"),
        (&f6, &p, facts(false, false, false), "no community, no relationship"),
        (&f2, &q, facts(true, true, true), "q registered at f2"),
        (&f1, &q, facts(false, true, true), "q known in f1's community by registration"),
        (&f4, &q, facts(false, false, false), "q unknown in the closed community"),
    ];
    for (f, pt, want, what) in cases {
        assert_eq!(s.access_facts(f.id, pt.id).await.expect("access facts"), want, "{what}");
    }
}

/// The survivor has the care relationships of the records merged into it, and loses them
/// when the merge is undone.
pub async fn access_facts_follow_merges(store: Arc<dyn Store>) {
    let s = &*store;
    migrated(s).await;
    let c1 = community(s, None, "岳池县医共体", YUECHI, false).await;
    let c2 = community(s, None, "武胜县医共体", WUSHENG, false).await;
    let f1 = facility(s, "H51162100001", Tier::County, YUECHI, Some(c1.id)).await;
    let f2 = facility(s, "H51162200001", Tier::County, WUSHENG, Some(c2.id)).await;
    let born = date!(1949 - 12 - 01);
    let a = resident("罗志明", Sex::Male, born, 19);
    let b = without_id_number("罗志明", Sex::Male, born, IdentifierType::InsuranceCard, "YB5116220019");
    create_patients(s, &[&a, &b]).await;
    s.create_encounter(&encounter(&a, &f1, datetime!(2026-10-10 09:00 UTC), "I10.x00")).await.expect("enc a");
    s.create_encounter(&encounter(&b, &f2, datetime!(2026-11-11 09:00 UTC), "E11.900")).await.expect("enc b");

    let none = facts(false, false, false);
    let care = facts(true, true, false);
    assert_eq!(s.access_facts(f2.id, a.id).await.expect("facts"), none, "before the merge a is unknown at f2");
    assert_eq!(s.access_facts(f1.id, b.id).await.expect("facts"), none, "before the merge b is unknown at f1");

    let rec = s.merge_patients(a.id, b.id, new_id(), "同一人", NOW).await.expect("merge");
    assert_eq!(s.access_facts(f2.id, a.id).await.expect("facts"), care, "b's encounter at f2 counts for a");
    assert_eq!(s.access_facts(f2.id, b.id).await.expect("facts"), care, "b resolves to a");
    assert_eq!(s.access_facts(f1.id, b.id).await.expect("facts"), care, "a's encounter at f1 counts via b");
    assert_eq!(s.access_facts(f1.id, a.id).await.expect("facts"), care);

    s.unmerge(rec.id, new_id(), "误合并", NOW + Duration::hours(1)).await.expect("unmerge");
    assert_eq!(s.access_facts(f2.id, a.id).await.expect("facts"), none, "after the undo a is unknown at f2 again");
    assert_eq!(s.access_facts(f1.id, b.id).await.expect("facts"), none, "after the undo b is unknown at f1 again");
    assert_eq!(s.access_facts(f2.id, b.id).await.expect("facts"), care);
}

/// Bulk enrolments land together; an unknown patient and none do.
pub async fn enrolments_in_bulk(store: Arc<dyn Store>) {
    let s = &*store;
    migrated(s).await;
    let p1 = resident("许文", Sex::Male, date!(1961 - 01 - 01), 1);
    let p2 = resident("许静", Sex::Female, date!(1963 - 03 - 03), 2);
    create_patients(s, &[&p1, &p2]).await;
    let enrol = |p: &Patient, scheme: Scheme| {
        NewEnrolment {
            scheme,
            insured_region: YUECHI.into(),
            filing_status: FilingStatus::NotFiled,
            filed_region: None,
            valid_from: date!(2025 - 01 - 01),
            valid_to: None,
        }
        .validate(new_id(), p.id)
        .expect("valid enrolment")
    };
    let good = vec![enrol(&p1, Scheme::Resident), enrol(&p2, Scheme::Employee)];
    let mut bad = good.clone();
    bad.push(enrol(&resident("无名", Sex::Male, date!(1970 - 01 - 01), 3), Scheme::Resident));
    expect_not_found(s.import_enrolments(&bad).await, "an enrolment of an unregistered patient");
    assert!(s.patient_record(p1.id).await.expect("record").expect("p1").enrolments.is_empty(), "nothing written");
    assert_eq!(s.import_enrolments(&good).await.expect("bulk"), 2);
    assert_eq!(s.patient_record(p2.id).await.expect("record").expect("p2").enrolments, vec![good[1].clone()]);
}

/// Bulk encounters land together; one unknown patient or facility and none do.
pub async fn encounters_in_bulk(store: Arc<dyn Store>) {
    let s = &*store;
    migrated(s).await;
    let f = facility(s, "H51162100001", Tier::County, YUECHI, None).await;
    let p1 = resident("许文", Sex::Male, date!(1961 - 01 - 01), 1);
    let p2 = resident("许静", Sex::Female, date!(1963 - 03 - 03), 2);
    create_patients(s, &[&p1, &p2]).await;
    let rows: Vec<Encounter> = (0..1_500)
        .map(|k| encounter(if k % 2 == 0 { &p1 } else { &p2 }, &f, NOW - Duration::hours(k), "J06.900"))
        .collect();
    let stranger = resident("无名", Sex::Male, date!(1970 - 01 - 01), 3); // never registered
    let mut bad = rows.clone();
    bad.push(encounter(&stranger, &f, NOW, "J06.900"));
    expect_not_found(s.import_encounters(&bad).await, "an encounter of an unregistered patient");
    let other = new_facility("H51162100099", "未登记医院", Tier::County, YUECHI, None);
    let mut bad = rows.clone();
    bad[1_200] = encounter(&p1, &other, NOW, "J06.900");
    expect_not_found(s.import_encounters(&bad).await, "an encounter at an unregistered facility");
    let before = s.patient_record(p1.id).await.expect("record").expect("p1").encounters.len();
    assert_eq!(before, 0, "nothing of the refused batches was written");
    assert_eq!(s.import_encounters(&rows).await.expect("bulk"), 1_500);
    let r1 = s.patient_record(p1.id).await.expect("record").expect("p1");
    assert_eq!(r1.encounters.len(), 750);
    let want: Vec<Encounter> = rows.iter().filter(|e| e.patient_id == p1.id).cloned().collect();
    assert_eq!(r1.encounters, want, "newest first, equal to what went in");
}

/// A community admin sees the reads made by users of their community's facilities, and
/// the reads of patients registered there by anyone.
pub async fn access_log_by_community(store: Arc<dyn Store>) {
    let s = &*store;
    migrated(s).await;
    let c1 = community(s, None, "岳池县医共体", YUECHI, false).await;
    let c2 = community(s, None, "武胜县医共体", WUSHENG, false).await;
    let fa = facility(s, "H51162100001", Tier::County, YUECHI, Some(c1.id)).await;
    let fb = facility(s, "H51162200001", Tier::County, WUSHENG, Some(c2.id)).await;
    let fc = facility(s, "H51162100099", Tier::Township, YUECHI, None).await;
    let (ua, ub, uc) = (
        user(&fa, "doctor_a", vec![Role::Specialist]),
        user(&fb, "doctor_b", vec![Role::Specialist]),
        user(&fc, "doctor_c", vec![Role::TownshipClinician]),
    );
    for u in [&ua, &ub, &uc] {
        s.create_user(u).await.expect("user");
    }
    let p = resident("许文", Sex::Male, date!(1961 - 01 - 01), 1);
    let registered_in_c2 =
        Patient { home_facility_id: Some(fb.id), ..resident("许静", Sex::Female, date!(1963 - 03 - 03), 2) };
    create_patients(s, &[&p, &registered_in_c2]).await;
    let read = |k: i64, u: &User| AccessLogEntry {
        id: new_id(),
        region_key: p.region_key.clone(),
        at: NOW + Duration::minutes(k),
        user_id: u.id,
        facility_id: u.facility_id,
        patient_id: p.id,
        action: "read_record".into(),
        basis: AccessBasis::BreakGlass,
        reason: Some("急诊".into()),
        client_addr: None,
    };
    let (ea, eb, ec) = (read(1, &ua), read(2, &ub), read(3, &uc));
    // an outsider (community-less facility c) reads the patient registered in c2
    let ed = AccessLogEntry {
        patient_id: registered_in_c2.id,
        region_key: registered_in_c2.region_key.clone(),
        ..read(4, &uc)
    };
    for e in [&ea, &eb, &ec, &ed] {
        s.record_access(e).await.expect("record");
    }
    let q = |c: Uuid| AccessLogFilter { community_id: Some(c), limit: 10, ..Default::default() };
    assert_eq!(s.query_access_log(&q(c1.id)).await.expect("query"), vec![ea.clone()]);
    assert_eq!(s.query_access_log(&q(c2.id)).await.expect("query"), vec![ed.clone(), eb.clone()]);
    let all = s.query_access_log(&AccessLogFilter { limit: 10, ..Default::default() }).await.expect("query");
    assert_eq!(all, vec![ed, ec, eb, ea], "without the filter every read, newest first");
}

/// Every read is logged; the log filters by patient, user, basis and time, newest first,
/// and respects the limit.
pub async fn access_log_queries(store: Arc<dyn Store>) {
    let s = &*store;
    migrated(s).await;
    let f = facility(s, "H51162100001", Tier::County, YUECHI, None).await;
    let u1 = user(&f, "doctor1", vec![Role::Specialist]);
    let u2 = user(&f, "doctor2", vec![Role::Specialist]);
    for u in [&u1, &u2] {
        s.create_user(u).await.expect("user");
    }
    let p1 = resident("许文", Sex::Male, date!(1961 - 01 - 01), 1);
    let p2 = resident("许静", Sex::Female, date!(1963 - 03 - 03), 2);
    create_patients(s, &[&p1, &p2]).await;

    let t0 = datetime!(2026-11-20 08:00 UTC);
    let entry =
        |k: i64, u: &User, p: &Patient, action: &str, basis: AccessBasis, reason: Option<&str>| AccessLogEntry {
            id: new_id(),
            region_key: p.region_key.clone(),
            at: t0 + Duration::hours(k),
            user_id: u.id,
            facility_id: u.facility_id,
            patient_id: p.id,
            action: action.into(),
            basis,
            reason: reason.map(str::to_owned),
            client_addr: Some(format!("10.0.0.{k}")),
        };
    let e0 = entry(0, &u1, &p1, "read_record", AccessBasis::CareRelationship, None);
    let e1 = entry(1, &u2, &p1, "read_record", AccessBasis::SameCommunity, None);
    let e2 = entry(2, &u1, &p2, "read_encounters", AccessBasis::CareRelationship, None);
    let e3 = entry(3, &u2, &p2, "read_record", AccessBasis::BreakGlass, Some("急诊昏迷患者，需查既往史"));
    let e4 = AccessLogEntry {
        client_addr: None,
        ..entry(4, &u1, &p1, "read_record", AccessBasis::BreakGlass, Some("夜间急诊会诊"))
    };
    let e5 = entry(5, &u2, &p1, "read_encounters", AccessBasis::CareRelationship, None);
    // logged out of order: the query orders
    for e in [&e3, &e0, &e5, &e1, &e4, &e2] {
        s.record_access(e).await.expect("record access");
    }

    let query = |f: AccessLogFilter| async move { s.query_access_log(&f).await.expect("query access log") };
    let all = AccessLogFilter { limit: 100, ..Default::default() };
    assert_eq!(query(all.clone()).await, vec![e5.clone(), e4.clone(), e3.clone(), e2.clone(), e1.clone(), e0.clone()]);
    assert_eq!(
        query(AccessLogFilter { patient_id: Some(p1.id), ..all.clone() }).await,
        vec![e5.clone(), e4.clone(), e1.clone(), e0.clone()],
        "by patient"
    );
    assert_eq!(
        query(AccessLogFilter { user_id: Some(u2.id), ..all.clone() }).await,
        vec![e5.clone(), e3.clone(), e1.clone()],
        "by user"
    );
    assert_eq!(
        query(AccessLogFilter { basis: Some(AccessBasis::BreakGlass), ..all.clone() }).await,
        vec![e4.clone(), e3.clone()],
        "by basis"
    );
    assert_eq!(
        query(AccessLogFilter {
            from: Some(t0 + Duration::minutes(30)),
            to: Some(t0 + Duration::minutes(210)),
            ..all.clone()
        })
        .await,
        vec![e3.clone(), e2.clone(), e1.clone()],
        "by time window"
    );
    assert_eq!(
        query(AccessLogFilter { from: Some(t0 + Duration::minutes(150)), ..all.clone() }).await,
        vec![e5.clone(), e4.clone(), e3.clone()],
        "from only"
    );
    assert_eq!(
        query(AccessLogFilter { to: Some(t0 + Duration::minutes(90)), ..all.clone() }).await,
        vec![e1.clone(), e0.clone()],
        "to only"
    );
    assert_eq!(
        query(AccessLogFilter { patient_id: Some(p1.id), user_id: Some(u1.id), ..all.clone() }).await,
        vec![e4.clone(), e0.clone()],
        "patient and user"
    );
    assert_eq!(
        query(AccessLogFilter { patient_id: Some(p2.id), basis: Some(AccessBasis::CareRelationship), ..all.clone() })
            .await,
        vec![e2.clone()],
        "patient and basis"
    );
    assert_eq!(query(AccessLogFilter { limit: 2, ..all.clone() }).await, vec![e5.clone(), e4.clone()], "limit");
    assert_eq!(
        query(AccessLogFilter { limit: 3, patient_id: Some(p1.id), ..all.clone() }).await,
        vec![e5.clone(), e4.clone(), e1.clone()],
        "limit with a filter"
    );
    assert_eq!(query(AccessLogFilter { patient_id: Some(new_id()), ..all }).await, vec![], "unknown patient");
}

// ---------------------------------------------------------------------------------------
// 10. concurrency

/// Twenty registrations of one identity number at once: exactly one lands, every other is
/// refused as Duplicate naming it.
pub async fn concurrent_duplicate_registration(store: Arc<dyn Store>) {
    migrated(&*store).await;
    let idn = id_number(YUECHI, date!(1970 - 10 - 10), 101, Sex::Male);
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let store = Arc::clone(&store);
            let p =
                NewPatient { identity_number: Some(idn.clone()), ..NewPatient::new(&format!("并发{i}"), Sex::Male) }
                    .validate(TODAY, None)
                    .expect("valid")
                    .into_patient(new_id());
            tokio::spawn(async move {
                let r = store.create_patient(&p).await;
                (p.id, r)
            })
        })
        .collect();
    let mut created = Vec::new();
    let mut duplicates = Vec::new();
    let mut other = Vec::new();
    for t in tasks {
        match t.await.expect("task") {
            (id, Ok(())) => created.push(id),
            (_, Err(StoreError::Duplicate { existing, .. })) => duplicates.push(existing),
            (_, Err(e)) => other.push(format!("{e:?}")),
        }
    }
    assert_eq!(other, Vec::<String>::new(), "every refusal is StoreError::Duplicate");
    assert_eq!(created.len(), 1, "exactly one registration lands, got {}", created.len());
    assert_eq!(duplicates, vec![Some(created[0]); 19], "the others name the one that landed");
    assert_eq!(store.count_patients().await.expect("count"), 1);
    let owner = store.find_by_identifier(IdentifierType::ResidentId, &idn).await.expect("find").expect("registered");
    assert_eq!(owner.id, created[0]);
}

/// One record merged into eight survivors at once: exactly one merge happens, the others
/// are refused with Conflict.
pub async fn concurrent_merges_of_one_record(store: Arc<dyn Store>) {
    migrated(&*store).await;
    let born = date!(1972 - 12 - 12);
    let b = without_id_number("孟凡", Sex::Male, born, IdentifierType::InsuranceCard, "YB5116210888");
    store.create_patient(&b).await.expect("patient");
    let mut survivors = Vec::new();
    for i in 0..8 {
        let a = resident("孟凡", Sex::Male, born, 200 + 2 * i);
        store.create_patient(&a).await.expect("survivor");
        survivors.push(a.id);
    }
    let tasks: Vec<_> = survivors
        .iter()
        .map(|&a| {
            let store = Arc::clone(&store);
            tokio::spawn(async move { (a, store.merge_patients(a, b.id, new_id(), "并发合并", NOW).await) })
        })
        .collect();
    let mut merged = Vec::new();
    let mut other = Vec::new();
    for t in tasks {
        match t.await.expect("task") {
            (a, Ok(rec)) => merged.push((a, rec)),
            (_, Err(StoreError::Domain(DomainError::Conflict(_)))) => {}
            (_, Err(e)) => other.push(format!("{e:?}")),
        }
    }
    assert_eq!(other, Vec::<String>::new(), "every refusal is a Conflict");
    assert_eq!(merged.len(), 1, "exactly one merge happens");
    let (winner, rec) = merged.pop().expect("one merge");
    assert_eq!(store.get_patient(b.id).await.expect("get").expect("b").status, PatientStatus::Merged(winner));
    assert_eq!(store.merge_history(b.id).await.expect("history"), vec![rec]);
}

// ---------------------------------------------------------------------------------------
// 10. referrals (issue 4): every referral is built by the domain (`referral::request`,
// `referral::apply`), as the server builds them; the cases check what the store keeps.

/// A routine referral of `p` to `to`, for hypertension.
fn referral_input(p: &Patient, to: &Facility) -> NewReferral {
    NewReferral {
        patient_id: p.id,
        from_facility_id: None,
        from_department: None,
        to_facility_id: to.id,
        to_department: None,
        urgency: Urgency::Routine,
        green_channel: None,
        reason: "血压控制不佳，需上级医院调整用药".into(),
        diagnoses: vec!["I10.x00".into()],
        clinical_summary: "收缩压持续高于 160 mmHg".into(),
        discharge_summary: None,
        follow_up_plan: vec![],
        encounter_ids: vec![],
    }
}

/// A downward referral after a stay: discharge summary and a two-step follow-up plan
/// (7 and 30 days after the receiver accepts).
fn downward_input(p: &Patient, to: &Facility) -> NewReferral {
    NewReferral {
        discharge_summary: Some("脑梗死恢复期，病情稳定出院".into()),
        follow_up_plan: vec![
            FollowUpItem { what: "测血压、调整降压药".into(), due_in_days: 7 },
            FollowUpItem { what: "复查空腹血糖".into(), due_in_days: 30 },
        ],
        diagnoses: vec!["I63.900".into()],
        ..referral_input(p, to)
    }
}

/// The request, as the domain builds it (the patient insured in 岳池县).
fn requested(input: NewReferral, p: &Patient, from: &Facility, to: &Facility, at: OffsetDateTime) -> Change {
    referral::request(input, new_id(), p.region_key.clone(), new_id(), from, to, YUECHI, at).expect("valid referral")
}

/// One step by `party`, as the domain computes it from `r`.
fn stepped(
    r: &Referral,
    cmd: Command,
    party: Party,
    sender: &Facility,
    receiver: &Facility,
    at: OffsetDateTime,
) -> Change {
    stepped_to(r, cmd, party, sender, receiver, None, at)
}

fn stepped_to(
    r: &Referral,
    cmd: Command,
    party: Party,
    sender: &Facility,
    receiver: &Facility,
    new_receiver: Option<&Facility>,
    at: OffsetDateTime,
) -> Change {
    let ctx = Context {
        now: at,
        party,
        user_id: Some(new_id()),
        sender,
        receiver,
        new_receiver,
        home_region: YUECHI,
        new_id,
    };
    referral::apply(r, &cmd, ctx).unwrap_or_else(|e| panic!("the domain refused {}: {e}", cmd.code()))
}

/// Create the referral the change describes; returns it as stored.
async fn create(s: &dyn Store, c: &Change) -> Referral {
    s.create_referral(c).await.expect("create referral");
    c.referral.clone()
}

/// Write a step; returns the referral after it.
async fn write(s: &dyn Store, c: &Change) -> Referral {
    s.apply_referral_change(c).await.unwrap_or_else(|e| panic!("apply {}: {e}", c.event.action));
    c.referral.clone()
}

fn accept() -> Command {
    Command::Accept { note: None }
}

fn expect_referral_conflict<T: Debug>(r: Result<T>, what: &str) -> String {
    match r {
        Err(StoreError::Conflict(msg)) => msg,
        other => panic!("{what}: expected StoreError::Conflict, got {other:?}"),
    }
}

/// Worklist order: newest first by `requested_at`, then `id`, both descending.
fn newest_first(rs: &[&Referral]) -> Vec<Referral> {
    let mut v: Vec<Referral> = rs.iter().map(|r| (*r).clone()).collect();
    v.sort_by_key(|r| std::cmp::Reverse((r.requested_at, r.id)));
    v
}

/// A referral with every optional field set reads back equal; its history is the request.
/// Unknown patient or facilities, or a region key other than the patient's, write nothing.
pub async fn referral_round_trip(store: Arc<dyn Store>) {
    let s = &*store;
    migrated(s).await;
    let c = community(s, None, "岳池县医共体", YUECHI, false).await;
    let township = facility(s, "H51162100002", Tier::Township, YUECHI, Some(c.id)).await;
    let county = facility(s, "H51162100001", Tier::County, YUECHI, Some(c.id)).await;
    let p = resident("王德福", Sex::Male, date!(1956 - 06 - 16), 61);
    s.create_patient(&p).await.expect("patient");
    let visit = encounter(&p, &township, NOW - Duration::hours(2), "I63.900");
    s.create_encounter(&visit).await.expect("encounter");

    let input = NewReferral {
        from_department: Some("全科".into()),
        to_department: Some("神经内科".into()),
        green_channel: Some(EmergencyCentre::Stroke),
        diagnoses: vec!["I63.900".into(), "I10.x00".into()],
        encounter_ids: vec![visit.id],
        ..referral_input(&p, &county)
    };
    let change = requested(input, &p, &township, &county, NOW);
    assert_eq!(change.referral.version, 1);
    assert_eq!(s.get_referral(change.referral.id).await.expect("get"), None, "not yet written");

    // refusals first: nothing of them may remain
    let stranger = resident("未登记", Sex::Female, date!(1990 - 01 - 01), 62);
    let of_stranger = requested(referral_input(&stranger, &county), &stranger, &township, &county, NOW);
    expect_not_found(s.create_referral(&of_stranger).await, "a referral of an unregistered patient");
    let nowhere = new_facility("H51162100099", "未登记医院", Tier::County, YUECHI, Some(c.id));
    let to_nowhere = requested(referral_input(&p, &nowhere), &p, &township, &nowhere, NOW);
    expect_not_found(s.create_referral(&to_nowhere).await, "a referral to an unregistered facility");
    let from_nowhere = requested(referral_input(&p, &county), &p, &nowhere, &county, NOW);
    expect_not_found(s.create_referral(&from_nowhere).await, "a referral from an unregistered facility");
    let mut elsewhere = requested(referral_input(&p, &county), &p, &township, &county, NOW);
    elsewhere.referral.region_key = WUSHENG.into();
    elsewhere.event.region_key = WUSHENG.into();
    match s.create_referral(&elsewhere).await {
        Err(StoreError::Corrupt(_)) => {}
        other => panic!("a region key other than the patient's: expected Corrupt, got {other:?}"),
    }
    assert_eq!(s.count_referrals(&ReferralFilter::default()).await.expect("count"), 0, "nothing was written");
    for refused in [&of_stranger, &to_nowhere, &from_nowhere, &elsewhere] {
        assert_eq!(s.get_referral(refused.referral.id).await.expect("get"), None);
        assert_eq!(s.referral_history(refused.referral.id).await.expect("history"), vec![]);
    }
    assert_eq!(s.list_notifications(county.id, None, 0).await.expect("notifications"), vec![]);
    assert_eq!(s.pending_outbox(0).await.expect("outbox"), vec![]);

    let r = create(s, &change).await;
    assert_eq!(s.get_referral(r.id).await.expect("get"), Some(r.clone()), "read back equal");
    assert_eq!(s.referral_history(r.id).await.expect("history"), vec![change.event.clone()], "one event: the request");
    expect_duplicate(s.create_referral(&change).await, "the same referral twice");

    // green-channel clock times (a JSON column) survive a step
    let fmc = stepped(
        &r,
        Command::RecordTimepoint { timepoint: Timepoint::FirstMedicalContact, at: NOW - Duration::minutes(40) },
        Party::Sender,
        &township,
        &county,
        NOW + Duration::minutes(1),
    );
    let r2 = write(s, &fmc).await;
    assert_eq!(r2.timepoints, vec![(Timepoint::FirstMedicalContact, NOW - Duration::minutes(40))]);
    assert_eq!(s.get_referral(r.id).await.expect("get"), Some(r2));
    assert_eq!(s.referral_history(r.id).await.expect("history"), vec![change.event.clone(), fmc.event.clone()]);
    // what a step reads first: the same referral and history in one statement; no filing
    assert_eq!(
        s.referral_for_step(r.id).await.expect("for step"),
        Some(ReferralForStep {
            referral: s.get_referral(r.id).await.expect("get").expect("stored"),
            history: vec![change.event, fmc.event],
            filed: false,
        })
    );
    assert_eq!(s.get_referral(new_id()).await.expect("get"), None);
    assert_eq!(s.referral_history(new_id()).await.expect("history"), vec![]);
    assert_eq!(s.referral_for_step(new_id()).await.expect("for step"), None);
    for refused in [&of_stranger, &to_nowhere, &from_nowhere, &elsewhere] {
        assert_eq!(s.referral_for_step(refused.referral.id).await.expect("for step"), None);
    }
}

/// request → accept → schedule → arrive → complete: five events in order, versions 1..5,
/// and the stored referral is the last step's.
pub async fn referral_life_cycle(store: Arc<dyn Store>) {
    let s = &*store;
    migrated(s).await;
    let c = community(s, None, "岳池县医共体", YUECHI, false).await;
    let township = facility(s, "H51162100002", Tier::Township, YUECHI, Some(c.id)).await;
    let county = facility(s, "H51162100001", Tier::County, YUECHI, Some(c.id)).await;
    let p = resident("刘桂英", Sex::Female, date!(1950 - 05 - 05), 51);
    s.create_patient(&p).await.expect("patient");

    let req = requested(referral_input(&p, &county), &p, &township, &county, NOW);
    let r = create(s, &req).await;
    let (ts, cty) = (&township, &county);
    let acc = stepped(&r, accept(), Party::Receiver, ts, cty, NOW + Duration::minutes(30));
    let r = write(s, &acc).await;
    let at = NOW + Duration::days(1);
    let sch = stepped(
        &r,
        Command::Schedule { at, department: Some("心血管内科".into()), note: None },
        Party::Receiver,
        ts,
        cty,
        NOW + Duration::hours(1),
    );
    let r = write(s, &sch).await;
    let arr = stepped(&r, Command::Arrive, Party::Receiver, ts, cty, at + Duration::minutes(5));
    let r = write(s, &arr).await;
    let done = stepped(
        &r,
        Command::Complete { outcome: "调整用药后血压达标".into() },
        Party::Receiver,
        ts,
        cty,
        at + Duration::days(3),
    );
    let r = write(s, &done).await;

    let stored = s.get_referral(r.id).await.expect("get").expect("stored");
    assert_eq!(stored, r, "the stored referral is the last step's");
    assert_eq!(stored.state, ReferralState::Completed);
    assert_eq!(stored.version, 5);
    assert_eq!(stored.scheduled_at, Some(at));
    assert_eq!(stored.to_department.as_deref(), Some("心血管内科"));
    assert_eq!(stored.outcome.as_deref(), Some("调整用药后血压达标"));
    assert_eq!(stored.due_at, None, "nothing is due on a completed referral");
    let history = s.referral_history(r.id).await.expect("history");
    assert_eq!(history, vec![req.event, acc.event, sch.event, arr.event, done.event], "every step, oldest first");
    assert_eq!(history.iter().map(|e| e.version).collect::<Vec<_>>(), vec![1, 2, 3, 4, 5]);
    let actions: Vec<&str> = history.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(actions, ["request", "accept", "schedule", "arrive", "complete"]);
    use ReferralState::*;
    let states: Vec<(Option<ReferralState>, ReferralState)> =
        history.iter().map(|e| (e.from_state, e.to_state)).collect();
    assert_eq!(
        states,
        [
            (None, Requested),
            (Some(Requested), Accepted),
            (Some(Accepted), Scheduled),
            (Some(Scheduled), Arrived),
            (Some(Arrived), Completed)
        ]
    );
}

/// A referral written with the user's read of the patient logs that read in the same
/// transaction: one row per step written; a refused (stale) step writes neither.
pub async fn referral_steps_logged(store: Arc<dyn Store>) {
    let s = &*store;
    migrated(s).await;
    let township = facility(s, "H51162100002", Tier::Township, YUECHI, None).await;
    let county = facility(s, "H51162100001", Tier::County, YUECHI, None).await;
    let (sender, receiver) =
        (user(&township, "tdoc", vec![Role::TownshipClinician]), user(&county, "spec", vec![Role::Specialist]));
    for u in [&sender, &receiver] {
        s.create_user(u).await.expect("user");
    }
    let p = resident("刘桂英", Sex::Female, date!(1950 - 05 - 05), 52);
    s.create_patient(&p).await.expect("patient");
    let read = |k: i64, u: &User, action: &str| AccessLogEntry {
        id: new_id(),
        region_key: p.region_key.clone(),
        at: NOW + Duration::minutes(k),
        user_id: u.id,
        facility_id: u.facility_id,
        patient_id: p.id,
        action: action.into(),
        basis: AccessBasis::CareRelationship,
        reason: None,
        client_addr: None,
    };
    let req = requested(referral_input(&p, &county), &p, &township, &county, NOW);
    let created = read(0, &sender, "create_referral");
    s.create_referral_logged(&req, &created).await.expect("create logged");
    let acc = stepped(&req.referral, accept(), Party::Receiver, &township, &county, NOW + Duration::minutes(30));
    let accepted = read(30, &receiver, "act_referral");
    s.apply_referral_change_logged(&acc, &accepted).await.expect("accept logged");
    // the same step again, computed from version 1: stale, refused, and its read not logged
    let stale = read(31, &receiver, "act_referral");
    expect_referral_conflict(s.apply_referral_change_logged(&acc, &stale).await, "a stale step");
    let log = s
        .query_access_log(&AccessLogFilter { patient_id: Some(p.id), limit: 10, ..Default::default() })
        .await
        .expect("query");
    assert_eq!(log, vec![accepted, created], "one row per written step, newest first");
    assert_eq!(s.get_referral(req.referral.id).await.expect("get").expect("stored").version, 2);
}

/// A step computed from version 1 after version 2 was written is refused with Conflict
/// naming the current state, and writes nothing; a step of an unknown referral is NotFound.
pub async fn referral_stale_change_conflicts(store: Arc<dyn Store>) {
    let s = &*store;
    migrated(s).await;
    let township = facility(s, "H51162100002", Tier::Township, YUECHI, None).await;
    let county = facility(s, "H51162100001", Tier::County, YUECHI, None).await;
    let p = resident("陈明", Sex::Male, date!(1962 - 02 - 02), 22);
    s.create_patient(&p).await.expect("patient");
    let req = requested(referral_input(&p, &county), &p, &township, &county, NOW);
    let v1 = create(s, &req).await;
    let acc = stepped(&v1, accept(), Party::Receiver, &township, &county, NOW + Duration::minutes(10));
    let v2 = write(s, &acc).await;
    let notes_before = s.list_notifications(township.id, None, 0).await.expect("notifications");
    let outbox_before = s.pending_outbox(0).await.expect("outbox");
    assert_eq!(outbox_before.len(), 2, "request and accept each told one facility");

    let stale = stepped(
        &v1,
        Command::Reject { reason: "本院无床位".into() },
        Party::Receiver,
        &township,
        &county,
        NOW + Duration::minutes(20),
    );
    let msg = expect_referral_conflict(s.apply_referral_change(&stale).await, "a step computed from version 1");
    assert!(msg.contains("accepted") && msg.contains("version 2"), "the conflict names the current state: {msg}");
    let stale_cancel = stepped(
        &v1,
        Command::Cancel { reason: "患者拒绝".into() },
        Party::Sender,
        &township,
        &county,
        NOW + Duration::minutes(20),
    );
    expect_referral_conflict(s.apply_referral_change(&stale_cancel).await, "a cancel computed from version 1");
    // replaying the step that landed is stale too
    expect_referral_conflict(s.apply_referral_change(&acc).await, "the accept a second time");

    assert_eq!(s.get_referral(v1.id).await.expect("get"), Some(v2), "the referral is unchanged");
    assert_eq!(s.referral_history(v1.id).await.expect("history"), vec![req.event, acc.event], "history unchanged");
    assert_eq!(s.list_notifications(township.id, None, 0).await.expect("notifications"), notes_before);
    assert_eq!(s.list_notifications(county.id, None, 0).await.expect("notifications").len(), 1, "only the request's");
    assert_eq!(s.pending_outbox(0).await.expect("outbox"), outbox_before, "no outbox message for a refused step");

    // a step of a referral that was never created
    let ghost = requested(referral_input(&p, &county), &p, &township, &county, NOW);
    let ghost_acc = stepped(&ghost.referral, accept(), Party::Receiver, &township, &county, NOW);
    expect_not_found(s.apply_referral_change(&ghost_acc).await, "a step of an unknown referral");
    assert_eq!(s.referral_history(ghost.referral.id).await.expect("history"), vec![]);
}

/// Two clerks accept the same referral at the same time: exactly one wins, the other gets
/// Conflict, and the history holds the winner's step only.
pub async fn referral_concurrent_accepts(store: Arc<dyn Store>) {
    migrated(&*store).await;
    let s = &*store;
    let township = facility(s, "H51162100002", Tier::Township, YUECHI, None).await;
    let county = facility(s, "H51162100001", Tier::County, YUECHI, None).await;
    let p = resident("赵云", Sex::Male, date!(1966 - 06 - 06), 66);
    s.create_patient(&p).await.expect("patient");
    for round in 0..5 {
        let req = requested(referral_input(&p, &county), &p, &township, &county, NOW + Duration::minutes(round));
        let v1 = create(s, &req).await;
        let at = NOW + Duration::minutes(round) + Duration::seconds(30);
        let a = stepped(&v1, accept(), Party::Receiver, &township, &county, at);
        let b = stepped(&v1, Command::Accept { note: Some("可收治".into()) }, Party::Receiver, &township, &county, at);
        let (sa, sb) = (Arc::clone(&store), Arc::clone(&store));
        let (ca, cb) = (a.clone(), b.clone());
        let (ra, rb) = tokio::join!(
            tokio::spawn(async move { sa.apply_referral_change(&ca).await }),
            tokio::spawn(async move { sb.apply_referral_change(&cb).await }),
        );
        let (ra, rb) = (ra.expect("task a"), rb.expect("task b"));
        let winner = match (&ra, &rb) {
            (Ok(()), Err(StoreError::Conflict(_))) => &a,
            (Err(StoreError::Conflict(_)), Ok(())) => &b,
            other => panic!("round {round}: expected exactly one Ok and one Conflict, got {other:?}"),
        };
        assert_eq!(s.get_referral(v1.id).await.expect("get"), Some(winner.referral.clone()), "round {round}");
        assert_eq!(
            s.referral_history(v1.id).await.expect("history"),
            vec![req.event.clone(), winner.event.clone()],
            "round {round}: the winner's step only"
        );
    }
    let answered = s.list_notifications(township.id, None, 0).await.expect("notifications");
    assert_eq!(answered.len(), 5, "one answer per referral, none from the losers");
}

/// The worklists: inbox by state, outbox, community, patient, overdue, arriving, and the
/// other filters; keyset paging returns every row exactly once; counts equal the lists.
pub async fn referral_worklists(store: Arc<dyn Store>) {
    let s = &*store;
    migrated(s).await;
    let c = community(s, None, "岳池县医共体", YUECHI, false).await;
    let c2 = community(s, None, "武胜县医共体", WUSHENG, false).await;
    let h = facility(s, "H51162100001", Tier::County, YUECHI, Some(c.id)).await;
    let t1 = facility(s, "H51162100002", Tier::Township, YUECHI, Some(c.id)).await;
    let t2 = facility(s, "H51162100003", Tier::Township, YUECHI, Some(c.id)).await;
    let v = facility(s, "H51162100004", Tier::Village, YUECHI, Some(c.id)).await;
    let w = facility(s, "H51162200001", Tier::Township, WUSHENG, Some(c2.id)).await;
    let city = facility(s, "H51160200001", Tier::City, GUANG_AN, None).await;
    let p1 = resident("周建军", Sex::Male, date!(1955 - 05 - 15), 11);
    let p2 = resident("吴秀珍", Sex::Female, date!(1948 - 08 - 18), 12);
    let p3 = resident("郑小龙", Sex::Male, date!(1979 - 09 - 29), 13);
    create_patients(s, &[&p1, &p2, &p3]).await;
    let h_ = |n: i64| NOW - Duration::hours(n);

    // r1, r8: routine t1/t2 → h, requested at the same time (the id breaks the tie); open
    let r1 = create(s, &requested(referral_input(&p1, &h), &p1, &t1, &h, h_(10))).await;
    let r8 = create(s, &requested(referral_input(&p1, &h), &p1, &t2, &h, h_(10))).await;
    // r2: urgent t2 → h, accepted
    let urgent = NewReferral { urgency: Urgency::Urgent, ..referral_input(&p2, &h) };
    let r2 = create(s, &requested(urgent, &p2, &t2, &h, h_(9))).await;
    let r2 = write(s, &stepped(&r2, accept(), Party::Receiver, &t2, &h, h_(8))).await;
    // r4: downward h → t1, accepted and scheduled for two hours from now
    let r4 = create(s, &requested(downward_input(&p1, &t1), &p1, &h, &t1, h_(7))).await;
    let r4 = write(s, &stepped(&r4, accept(), Party::Receiver, &h, &t1, h_(6))).await;
    let sched = Command::Schedule { at: NOW + Duration::hours(2), department: None, note: None };
    let r4 = write(s, &stepped(&r4, sched, Party::Receiver, &h, &t1, h_(5))).await;
    // r5: outside the community: w (武胜) → the city hospital
    let r5 = create(s, &requested(referral_input(&p3, &city), &p3, &w, &city, h_(6))).await;
    // r6: village → township, to the general practice department
    let gp = NewReferral { to_department: Some("全科".into()), ..referral_input(&p3, &t1) };
    let r6 = create(s, &requested(gp, &p3, &v, &t1, h_(5))).await;
    // r7: urgent t2 → city, rejected
    let urgent = NewReferral { urgency: Urgency::Urgent, ..referral_input(&p2, &city) };
    let r7 = create(s, &requested(urgent, &p2, &t2, &city, h_(4))).await;
    let r7 = write(
        s,
        &stepped(
            &r7,
            Command::Reject { reason: "本院无床位".into() },
            Party::Receiver,
            &t2,
            &city,
            h_(3) - Duration::minutes(30),
        ),
    )
    .await;
    // r3: green-channel stroke t1 → h three hours ago, never acknowledged (due 10 min later)
    let stroke = NewReferral {
        green_channel: Some(EmergencyCentre::Stroke),
        diagnoses: vec!["I63.900".into()],
        ..referral_input(&p2, &h)
    };
    let r3 = create(s, &requested(stroke, &p2, &t1, &h, h_(3))).await;
    assert_eq!(r3.due_at, Some(h_(3) + Duration::minutes(10)), "the domain's green-channel deadline");

    let all = [&r1, &r2, &r3, &r4, &r5, &r6, &r7, &r8];
    use ReferralState::*;
    let f = ReferralFilter::default;
    let cases: Vec<(ReferralFilter, Vec<&Referral>, &str)> = vec![
        (f(), all.to_vec(), "everything"),
        (ReferralFilter { to_facility_id: Some(h.id), ..f() }, vec![&r1, &r8, &r2, &r3], "h's inbox"),
        (
            ReferralFilter { to_facility_id: Some(h.id), states: vec![Requested, Redirected], ..f() },
            vec![&r1, &r8, &r3],
            "h's new referrals",
        ),
        (ReferralFilter { to_facility_id: Some(h.id), states: vec![Accepted], ..f() }, vec![&r2], "h: to schedule"),
        (
            ReferralFilter {
                to_facility_id: Some(h.id),
                states: vec![Requested],
                urgency: Some(Urgency::Routine),
                ..f()
            },
            vec![&r1, &r8],
            "h: new routine",
        ),
        (ReferralFilter { from_facility_id: Some(t1.id), ..f() }, vec![&r1, &r3], "t1's outbox"),
        (ReferralFilter { from_facility_id: Some(t2.id), ..f() }, vec![&r2, &r7, &r8], "t2's outbox"),
        (
            ReferralFilter { community_id: Some(c.id), ..f() },
            vec![&r1, &r2, &r3, &r4, &r6, &r7, &r8],
            "either end in the community",
        ),
        (ReferralFilter { community_id: Some(c2.id), ..f() }, vec![&r5], "the other community"),
        (ReferralFilter { patient_ids: vec![p1.id], ..f() }, vec![&r1, &r4, &r8], "p1's referrals"),
        (ReferralFilter { patient_ids: vec![p1.id, p3.id], ..f() }, vec![&r1, &r4, &r5, &r6, &r8], "p1's and p3's"),
        (ReferralFilter { to_facility_id: Some(h.id), due_before: Some(NOW), ..f() }, vec![&r3], "h: overdue now"),
        // r1, r8 are due 48 h after the request (NOW + 38 h); r2 72 h after the accept (NOW + 64 h)
        (
            ReferralFilter { to_facility_id: Some(h.id), due_before: Some(NOW + Duration::hours(40)), ..f() },
            vec![&r1, &r8, &r3],
            "h: due within 40 h",
        ),
        (ReferralFilter { due_before: Some(NOW), ..f() }, vec![&r3], "overdue anywhere"),
        (
            ReferralFilter {
                to_facility_id: Some(t1.id),
                scheduled_between: Some((NOW, NOW + Duration::days(1))),
                ..f()
            },
            vec![&r4],
            "t1: arriving today",
        ),
        (
            ReferralFilter {
                to_facility_id: Some(t1.id),
                scheduled_between: Some((NOW + Duration::hours(2), NOW + Duration::hours(3))),
                ..f()
            },
            vec![&r4],
            "start inclusive",
        ),
        (
            ReferralFilter {
                to_facility_id: Some(t1.id),
                scheduled_between: Some((NOW, NOW + Duration::hours(2))),
                ..f()
            },
            vec![],
            "end exclusive",
        ),
        (
            ReferralFilter {
                to_facility_id: Some(h.id),
                scheduled_between: Some((NOW, NOW + Duration::days(1))),
                ..f()
            },
            vec![],
            "nobody arrives at h",
        ),
        (ReferralFilter { urgency: Some(Urgency::Emergency), ..f() }, vec![&r3], "emergencies"),
        (ReferralFilter { urgency: Some(Urgency::Urgent), ..f() }, vec![&r2, &r7], "urgent"),
        (ReferralFilter { green_only: true, ..f() }, vec![&r3], "green channel"),
        (ReferralFilter { direction: Some(Direction::Downward), ..f() }, vec![&r4], "downward"),
        (ReferralFilter { direction: Some(Direction::Lateral), ..f() }, vec![], "lateral"),
        (ReferralFilter { to_tier: Some(Tier::City), ..f() }, vec![&r5, &r7], "to the city tier"),
        (ReferralFilter { to_tier: Some(Tier::Township), ..f() }, vec![&r4, &r6], "to townships"),
        (ReferralFilter { from_tier: Some(Tier::Village), ..f() }, vec![&r6], "from villages"),
        (ReferralFilter { from_tier: Some(Tier::County), ..f() }, vec![&r4], "from the county"),
        (ReferralFilter { to_department: Some("全科".into()), ..f() }, vec![&r6], "to general practice"),
        (
            ReferralFilter { states: vec![Requested, Accepted, Rejected, Requested], ..f() },
            vec![&r1, &r2, &r3, &r5, &r6, &r7, &r8],
            "several states, one repeated",
        ),
        (ReferralFilter { states: vec![Rejected], ..f() }, vec![&r7], "rejected"),
        (ReferralFilter { states: vec![Scheduled, Completed], ..f() }, vec![&r4], "scheduled or completed"),
        (
            ReferralFilter { requested_from: Some(h_(6)), requested_to: Some(h_(4)), ..f() },
            vec![&r5, &r6],
            "requested in [-6 h, -4 h)",
        ),
        (ReferralFilter { to_facility_id: Some(w.id), ..f() }, vec![], "w's empty inbox"),
        // the worklists' filters combined with a box (each served by its own index)
        (ReferralFilter { to_facility_id: Some(h.id), green_only: true, ..f() }, vec![&r3], "h: green channel"),
        (
            ReferralFilter { to_facility_id: Some(h.id), green_only: true, states: vec![Requested], ..f() },
            vec![&r3],
            "h: new green channel",
        ),
        (
            ReferralFilter { to_facility_id: Some(h.id), green_only: true, states: vec![Accepted, Completed], ..f() },
            vec![],
            "h: no green channel accepted or completed",
        ),
        (
            ReferralFilter { to_facility_id: Some(t1.id), from_tier: Some(Tier::Village), ..f() },
            vec![&r6],
            "t1: from villages",
        ),
        (
            ReferralFilter {
                to_facility_id: Some(t1.id),
                from_tier: Some(Tier::County),
                states: vec![Scheduled],
                ..f()
            },
            vec![&r4],
            "t1: scheduled from the county",
        ),
        (
            ReferralFilter { to_facility_id: Some(h.id), from_tier: Some(Tier::Village), ..f() },
            vec![],
            "h: none from villages",
        ),
        (
            ReferralFilter { from_facility_id: Some(t2.id), to_tier: Some(Tier::City), ..f() },
            vec![&r7],
            "t2: to the city",
        ),
        (
            ReferralFilter { from_facility_id: Some(t2.id), to_tier: Some(Tier::County), ..f() },
            vec![&r2, &r8],
            "t2: to the county",
        ),
        (ReferralFilter { from_facility_id: Some(t2.id), states: vec![Rejected], ..f() }, vec![&r7], "t2: rejected"),
        (
            ReferralFilter { from_facility_id: Some(t2.id), states: vec![Requested, Accepted], ..f() },
            vec![&r2, &r8],
            "t2: open sent",
        ),
        (
            ReferralFilter {
                to_facility_id: Some(h.id),
                states: vec![Requested, Redirected],
                requested_from: Some(h_(10)),
                requested_to: Some(h_(3)),
                ..f()
            },
            vec![&r1, &r8],
            "h: new, requested in [-10 h, -3 h)",
        ),
        (
            ReferralFilter {
                to_facility_id: Some(h.id),
                from_tier: Some(Tier::Township),
                requested_from: Some(h_(9)),
                requested_to: Some(h_(2)),
                ..f()
            },
            vec![&r2, &r3],
            "h: from townships, requested in [-9 h, -2 h)",
        ),
        (
            ReferralFilter {
                to_facility_id: Some(h.id),
                green_only: true,
                from_tier: Some(Tier::Township),
                requested_from: Some(h_(3)),
                ..f()
            },
            vec![&r3],
            "h: green channel from townships in the last 3 h",
        ),
        (
            ReferralFilter { to_facility_id: Some(h.id), green_only: true, requested_to: Some(h_(3)), ..f() },
            vec![],
            "h: green channel before -3 h (end exclusive)",
        ),
    ];
    for (filter, want, what) in cases {
        let want = newest_first(&want);
        assert_eq!(s.list_referrals(&filter).await.expect("list"), want, "{what}");
        assert_eq!(s.count_referrals(&filter).await.expect("count"), want.len() as u64, "count: {what}");
        // a capped count answers min(count, cap); a list ignores the cap
        let n = want.len() as u64;
        for cap in [0, 1, n.saturating_sub(1), n, n + 1] {
            let capped = ReferralFilter { count_at_most: Some(cap), ..filter.clone() };
            assert_eq!(s.count_referrals(&capped).await.expect("count"), n.min(cap), "count at most {cap}: {what}");
        }
        let capped = ReferralFilter { count_at_most: Some(1), ..filter.clone() };
        assert_eq!(s.list_referrals(&capped).await.expect("list"), want, "a list ignores count_at_most: {what}");
    }

    // keyset paging: every row once, in order, whatever the page size
    for (base, what) in [
        (f(), "all"),
        (ReferralFilter { to_facility_id: Some(h.id), ..f() }, "h's inbox"),
        (ReferralFilter { states: vec![Requested, Accepted, Scheduled], ..f() }, "several states"),
    ] {
        let want = s.list_referrals(&base).await.expect("list");
        for size in [1, 2, 3] {
            let mut got: Vec<Referral> = Vec::new();
            let mut before = None;
            loop {
                let page =
                    s.list_referrals(&ReferralFilter { before, limit: size, ..base.clone() }).await.expect("page");
                assert!(page.len() <= size as usize, "{what}: a page holds at most the limit");
                let Some(last) = page.last() else { break };
                before = Some((last.requested_at, last.id));
                got.extend(page);
            }
            assert_eq!(got, want, "{what}, pages of {size}: every row exactly once");
        }
        // the count ignores paging, also when capped
        let paged = ReferralFilter { before: Some((h_(5), Uuid::max())), limit: 1, ..base.clone() };
        assert_eq!(s.count_referrals(&paged).await.expect("count"), want.len() as u64, "{what}: count ignores paging");
        let paged = ReferralFilter { count_at_most: Some(2), ..paged };
        assert_eq!(s.count_referrals(&paged).await.expect("count"), 2, "{what}: capped count ignores paging");
    }
}

/// The deadline sweeper's list: open referrals due at or before `now`, earliest first.
pub async fn referral_due_for_the_sweeper(store: Arc<dyn Store>) {
    let s = &*store;
    migrated(s).await;
    let h = facility(s, "H51162100001", Tier::County, YUECHI, None).await;
    let t = facility(s, "H51162100002", Tier::Township, YUECHI, None).await;
    let p = resident("孙丽", Sex::Female, date!(1970 - 07 - 07), 77);
    s.create_patient(&p).await.expect("patient");
    // routine: due 48 h after the request; urgent: 4 h; green channel: 10 min
    let routine = create(s, &requested(referral_input(&p, &h), &p, &t, &h, NOW)).await;
    let urgent = NewReferral { urgency: Urgency::Urgent, ..referral_input(&p, &h) };
    let urgent = create(s, &requested(urgent, &p, &t, &h, NOW)).await;
    let stroke = NewReferral { green_channel: Some(EmergencyCentre::Stroke), ..referral_input(&p, &h) };
    let green = create(s, &requested(stroke, &p, &t, &h, NOW)).await;
    // rejected: closed, never due
    let gone = create(s, &requested(referral_input(&p, &h), &p, &t, &h, NOW)).await;
    write(s, &stepped(&gone, Command::Reject { reason: "非本院专科".into() }, Party::Receiver, &t, &h, NOW)).await;

    assert_eq!(s.due_referrals(NOW, 10).await.expect("due"), vec![], "nothing is due yet");
    assert_eq!(
        s.due_referrals(NOW + Duration::minutes(10), 10).await.expect("due"),
        vec![green.clone()],
        "due at exactly now counts"
    );
    assert_eq!(s.due_referrals(NOW + Duration::hours(5), 10).await.expect("due"), vec![green.clone(), urgent.clone()]);
    assert_eq!(
        s.due_referrals(NOW + Duration::days(3), 10).await.expect("due"),
        vec![green.clone(), urgent.clone(), routine]
    );
    assert_eq!(s.due_referrals(NOW + Duration::days(3), 1).await.expect("due"), vec![green.clone()], "the limit");
    // the green-channel referral acknowledged: its deadline moves to the urgent answer time (4 h)
    let ack =
        write(s, &stepped(&green, Command::Acknowledge, Party::Receiver, &t, &h, NOW + Duration::minutes(5))).await;
    assert_eq!(s.due_referrals(NOW + Duration::hours(1), 10).await.expect("due"), vec![]);
    let due = s.due_referrals(NOW + Duration::hours(5), 10).await.expect("due");
    assert_eq!(due, vec![urgent, ack], "urgent at +4 h, the acknowledged one at +4 h 5 min");
}

/// Accepting a downward referral writes its follow-up tasks at the receiver, due the
/// accept day (China time) plus each step's days; a task is completed once.
pub async fn referral_downward_follow_ups(store: Arc<dyn Store>) {
    let s = &*store;
    migrated(s).await;
    let h = facility(s, "H51162100001", Tier::County, YUECHI, None).await;
    let t = facility(s, "H51162100002", Tier::Township, YUECHI, None).await;
    let p = resident("黄志强", Sex::Male, date!(1952 - 12 - 02), 32);
    let other = resident("黄小梅", Sex::Female, date!(1985 - 03 - 12), 33);
    create_patients(s, &[&p, &other]).await;
    let r = create(s, &requested(downward_input(&p, &t), &p, &h, &t, NOW)).await;
    assert_eq!(r.direction, Direction::Downward);
    assert_eq!(
        s.list_follow_ups(&FollowUpFilter { facility_id: Some(t.id), ..Default::default() }).await.expect("tasks"),
        vec![],
        "none before the accept"
    );

    // 18:30 UTC on the 23rd is 02:30 on the 24th in China: due 24 Nov + 7 and + 30 days
    let acc = stepped(&r, accept(), Party::Receiver, &h, &t, datetime!(2026-11-23 18:30 UTC));
    write(s, &acc).await;
    let tasks =
        s.list_follow_ups(&FollowUpFilter { facility_id: Some(t.id), ..Default::default() }).await.expect("tasks");
    let due: Vec<(Date, &str)> = tasks.iter().map(|x| (x.due_date, x.what.as_str())).collect();
    assert_eq!(due, vec![(date!(2026 - 12 - 01), "测血压、调整降压药"), (date!(2026 - 12 - 24), "复查空腹血糖")]);
    assert_eq!(tasks, acc.follow_ups, "the tasks as the domain made them, by due date");
    assert!(
        tasks
            .iter()
            .all(|x| x.facility_id == t.id && x.patient_id == p.id && x.referral_id == r.id && x.done_at.is_none())
    );
    let by_day = FollowUpFilter { facility_id: Some(t.id), due_by: Some(date!(2026 - 12 - 01)), ..Default::default() };
    assert_eq!(s.list_follow_ups(&by_day).await.expect("tasks"), vec![tasks[0].clone()], "due by is inclusive");
    let by_referral = FollowUpFilter { referral_id: Some(r.id), limit: 1, ..Default::default() };
    assert_eq!(s.list_follow_ups(&by_referral).await.expect("tasks"), vec![tasks[0].clone()], "limit");
    let of_other = FollowUpFilter { patient_ids: vec![other.id], ..Default::default() };
    assert_eq!(s.list_follow_ups(&of_other).await.expect("tasks"), vec![]);
    let at_h = FollowUpFilter { facility_id: Some(h.id), ..Default::default() };
    assert_eq!(s.list_follow_ups(&at_h).await.expect("tasks"), vec![], "tasks are the receiver's");
    assert_eq!(s.get_follow_up(tasks[1].id).await.expect("get"), Some(tasks[1].clone()));

    // done at 17:00 UTC on 30 Nov, which is 1 Dec in China
    let nurse = new_id();
    let done_at = datetime!(2026-11-30 17:00 UTC);
    let done = s.complete_follow_up(tasks[0].id, nurse, done_at, Some("血压 138/86")).await.expect("complete");
    let want = FollowUpTask {
        done_at: Some(done_at),
        done_by: Some(nurse),
        note: Some("血压 138/86".into()),
        ..tasks[0].clone()
    };
    assert_eq!(done, want);
    assert_eq!(s.get_follow_up(tasks[0].id).await.expect("get"), Some(want.clone()));
    let msg = expect_referral_conflict(
        s.complete_follow_up(tasks[0].id, new_id(), done_at + Duration::days(1), None).await,
        "completing a task twice",
    );
    assert!(msg.contains("2026-12-01"), "the conflict names the day it was done (China time): {msg}");
    assert_eq!(s.get_follow_up(tasks[0].id).await.expect("get"), Some(want.clone()), "unchanged by the refusal");
    expect_not_found(s.complete_follow_up(new_id(), nurse, done_at, None).await, "an unknown task");
    let open = FollowUpFilter { facility_id: Some(t.id), open_only: true, ..Default::default() };
    assert_eq!(s.list_follow_ups(&open).await.expect("tasks"), vec![tasks[1].clone()], "open only");
    let every = FollowUpFilter { patient_ids: vec![p.id, other.id], ..Default::default() };
    assert_eq!(s.list_follow_ups(&every).await.expect("tasks"), vec![want, tasks[1].clone()]);
}

/// Accepting at a receiver in another insurance region files the patient there (备案):
/// temporary, six months from the accept day; newest filing first.
pub async fn referral_out_of_region_filing(store: Arc<dyn Store>) {
    let s = &*store;
    migrated(s).await;
    let county = facility(s, "H51162100001", Tier::County, YUECHI, None).await;
    let township = facility(s, "H51162100002", Tier::Township, YUECHI, None).await;
    let beijing = facility(s, "H11010500001", Tier::Provincial, CHAOYANG, None).await;
    let p = resident("马永福", Sex::Male, date!(1958 - 04 - 14), 41);
    s.create_patient(&p).await.expect("patient");

    // in the same insurance region: no filing
    let near = create(s, &requested(referral_input(&p, &county), &p, &township, &county, NOW)).await;
    let acc = stepped(&near, accept(), Party::Receiver, &township, &county, NOW);
    assert_eq!(acc.filing, None);
    write(s, &acc).await;
    assert_eq!(s.list_filings(&[p.id]).await.expect("filings"), vec![]);

    // to Beijing: accepted at 12:00 UTC (20:00 in China) on 23 Nov
    let far = create(s, &requested(referral_input(&p, &beijing), &p, &county, &beijing, NOW)).await;
    let acc = stepped(&far, accept(), Party::Receiver, &county, &beijing, NOW);
    write(s, &acc).await;
    let first = Filing {
        id: acc.filing.as_ref().expect("the domain files the patient").id,
        region_key: p.region_key.clone(),
        patient_id: p.id,
        category: FilingCategory::Referred,
        insured_region: YUECHI.into(),
        filed_region: CHAOYANG.into(),
        valid_from: date!(2026 - 11 - 23),
        valid_to: Some(date!(2027 - 05 - 23)),
        referral_id: Some(far.id),
        created_at: NOW,
    };
    assert_eq!(s.list_filings(&[p.id]).await.expect("filings"), vec![first.clone()]);
    let read = s.referral_for_step(far.id).await.expect("for step").expect("stored");
    assert!(read.filed, "the filing names the referral");
    assert_eq!(read.history.iter().map(|e| e.version).collect::<Vec<_>>(), vec![1, 2]);

    // an emergency the next day: filed as an emergency, listed first
    let emergency = NewReferral { urgency: Urgency::Emergency, ..referral_input(&p, &beijing) };
    let next = create(s, &requested(emergency, &p, &county, &beijing, NOW + Duration::days(1))).await;
    let acc2 = stepped(&next, accept(), Party::Receiver, &county, &beijing, NOW + Duration::days(1));
    write(s, &acc2).await;
    let filings = s.list_filings(&[p.id, new_id()]).await.expect("filings");
    assert_eq!(filings.len(), 2);
    assert_eq!(
        (filings[0].category, filings[0].valid_from, filings[0].referral_id),
        (FilingCategory::Emergency, date!(2026 - 11 - 24), Some(next.id))
    );
    assert_eq!(filings[1], first);
    assert_eq!(s.patient_record(p.id).await.expect("record").expect("p").filings, filings, "the record shows them");
    assert_eq!(s.list_filings(&[]).await.expect("filings"), vec![]);
}

/// Each step writes its notifications and one outbox message per notification; the
/// payload names facility and referral, never the patient; delivery is marked once.
pub async fn referral_notifications_and_outbox(store: Arc<dyn Store>) {
    let s = &*store;
    migrated(s).await;
    let h = facility(s, "H51162100001", Tier::County, YUECHI, None).await;
    let t = facility(s, "H51162100002", Tier::Township, YUECHI, None).await;
    let p = resident("林秀英", Sex::Female, date!(1946 - 06 - 26), 46);
    s.create_patient(&p).await.expect("patient");

    let req = requested(referral_input(&p, &h), &p, &t, &h, NOW);
    let r = create(s, &req).await;
    let acc = stepped(&r, accept(), Party::Receiver, &t, &h, NOW + Duration::minutes(30));
    let r = write(s, &acc).await;
    let sch = stepped(
        &r,
        Command::Schedule { at: NOW + Duration::days(2), department: None, note: None },
        Party::Receiver,
        &t,
        &h,
        NOW + Duration::hours(1),
    );
    write(s, &sch).await;
    // what the domain says each step tells whom
    assert_eq!(
        req.notifications.iter().map(|n| (n.facility_id, n.kind)).collect::<Vec<_>>(),
        vec![(h.id, NotificationKind::Incoming)]
    );
    assert_eq!(
        acc.notifications.iter().map(|n| (n.facility_id, n.kind)).collect::<Vec<_>>(),
        vec![(t.id, NotificationKind::Answered)]
    );
    assert_eq!(
        sch.notifications.iter().map(|n| (n.facility_id, n.kind)).collect::<Vec<_>>(),
        vec![(t.id, NotificationKind::Answered)]
    );

    assert_eq!(s.list_notifications(h.id, None, 0).await.expect("h"), req.notifications);
    let at_t = s.list_notifications(t.id, None, 0).await.expect("t");
    assert_eq!(at_t, vec![sch.notifications[0].clone(), acc.notifications[0].clone()], "newest first");
    assert_eq!(s.list_notifications(t.id, None, 1).await.expect("t"), vec![sch.notifications[0].clone()], "limit");
    let since = s.list_notifications(t.id, Some(NOW + Duration::hours(1)), 0).await.expect("t");
    assert_eq!(since, vec![sch.notifications[0].clone()], "since is inclusive");
    assert_eq!(s.list_notifications(t.id, Some(NOW + Duration::hours(2)), 0).await.expect("t"), vec![]);

    let pending = s.pending_outbox(0).await.expect("outbox");
    let told: Vec<Uuid> = pending
        .iter()
        .map(|m| {
            assert_eq!(m.topic, "referral.notification");
            assert_eq!(m.delivered_at, None);
            let idn = &p.identifiers[0].value;
            assert!(
                !m.payload.contains(&p.name)
                    && !m.payload.contains(idn.as_str())
                    && !m.payload.contains(&p.id.to_string()),
                "no patient data: {}",
                m.payload
            );
            let v: serde_json::Value = serde_json::from_str(&m.payload).expect("JSON payload");
            let keys: BTreeSet<&str> = v.as_object().expect("an object").keys().map(String::as_str).collect();
            assert_eq!(keys, BTreeSet::from(["notification_id", "facility_id", "referral_id", "kind", "action", "at"]));
            assert_eq!(v["referral_id"], serde_json::json!(r.id.to_string()));
            v["notification_id"].as_str().expect("id").parse().expect("uuid")
        })
        .collect();
    let all_notes = [&req, &acc, &sch].map(|c| c.notifications[0].id);
    assert_eq!(told, all_notes, "one message per notification, oldest first");
    let v: serde_json::Value = serde_json::from_str(&pending[1].payload).expect("JSON");
    assert_eq!(
        (v["facility_id"].as_str(), v["kind"].as_str(), v["action"].as_str()),
        (Some(t.id.to_string().as_str()), Some("answered"), Some("accept"))
    );
    assert_eq!(s.pending_outbox(2).await.expect("outbox"), pending[..2].to_vec(), "limit");

    let sent = NOW + Duration::hours(3);
    assert_eq!(s.mark_outbox_delivered(&[pending[0].id, pending[1].id, new_id()], sent).await.expect("mark"), 2);
    assert_eq!(s.mark_outbox_delivered(&[pending[0].id], sent).await.expect("mark"), 0, "already delivered");
    assert_eq!(s.mark_outbox_delivered(&[], sent).await.expect("mark"), 0);
    assert_eq!(s.pending_outbox(0).await.expect("outbox"), vec![pending[2].clone()]);
}

/// The seen marker never moves back.
pub async fn referral_notifications_seen_marker(store: Arc<dyn Store>) {
    let s = &*store;
    migrated(s).await;
    let (u, other) = (new_id(), new_id());
    assert_eq!(s.notifications_seen_until(u).await.expect("seen"), None);
    s.mark_notifications_seen(u, NOW).await.expect("mark");
    assert_eq!(s.notifications_seen_until(u).await.expect("seen"), Some(NOW));
    s.mark_notifications_seen(u, NOW - Duration::hours(1)).await.expect("mark earlier");
    assert_eq!(s.notifications_seen_until(u).await.expect("seen"), Some(NOW), "never moves back");
    s.mark_notifications_seen(u, NOW + Duration::minutes(5)).await.expect("mark later");
    assert_eq!(s.notifications_seen_until(u).await.expect("seen"), Some(NOW + Duration::minutes(5)));
    assert_eq!(s.notifications_seen_until(other).await.expect("seen"), None, "per user");
}

/// Bulk referrals with their histories, tasks and filings land together; one unknown
/// facility or patient, and none do.
pub async fn referral_import_all_or_nothing(store: Arc<dyn Store>) {
    let s = &*store;
    migrated(s).await;
    let h = facility(s, "H51162100001", Tier::County, YUECHI, None).await;
    let t = facility(s, "H51162100002", Tier::Township, YUECHI, None).await;
    let beijing = facility(s, "H11010500001", Tier::Provincial, CHAOYANG, None).await;
    let p1 = resident("许文", Sex::Male, date!(1961 - 01 - 01), 1);
    let p2 = resident("许静", Sex::Female, date!(1963 - 03 - 03), 2);
    create_patients(s, &[&p1, &p2]).await;
    let bundle = |p: &Patient, from: &Facility, to: &Facility, input: NewReferral, at: OffsetDateTime| {
        let req = requested(input, p, from, to, at);
        let acc = stepped(&req.referral, accept(), Party::Receiver, from, to, at + Duration::hours(1));
        ReferralBundle {
            referral: acc.referral,
            events: vec![req.event, acc.event],
            follow_ups: acc.follow_ups,
            filings: acc.filing.into_iter().collect(),
        }
    };
    // 1,500 referrals: more than one insert chunk; every tenth downward (two tasks), every
    // 100th to Beijing (a filing)
    let rows: Vec<ReferralBundle> = (0..1_500)
        .map(|k| {
            let p = if k % 2 == 0 { &p1 } else { &p2 };
            let at = NOW - Duration::minutes(k);
            if k % 10 == 0 {
                bundle(p, &h, &t, downward_input(p, &t), at)
            } else if k % 100 == 1 {
                bundle(p, &h, &beijing, referral_input(p, &beijing), at)
            } else {
                bundle(p, &t, &h, referral_input(p, &h), at)
            }
        })
        .collect();
    let nowhere = new_facility("H51162100099", "未登记医院", Tier::County, YUECHI, None);
    let mut bad = rows.clone();
    bad[1_200] = bundle(&p1, &t, &nowhere, referral_input(&p1, &nowhere), NOW);
    let unknown = bad[1_200].referral.to_facility_id;
    match s.import_referrals(&bad).await {
        Err(StoreError::NotFound { what }) => {
            assert!(what.contains(&unknown.to_string()), "names the facility: {what}")
        }
        other => panic!("an import with an unregistered facility: expected NotFound, got {other:?}"),
    }
    let stranger = resident("无名", Sex::Male, date!(1970 - 01 - 01), 3);
    let mut bad = rows.clone();
    bad[1_400] = bundle(&stranger, &t, &h, referral_input(&stranger, &h), NOW);
    expect_not_found(s.import_referrals(&bad).await, "an import with an unregistered patient");
    assert_eq!(
        s.count_referrals(&ReferralFilter::default()).await.expect("count"),
        0,
        "nothing of the refused imports"
    );
    assert_eq!(s.referral_history(rows[0].referral.id).await.expect("history"), vec![]);
    assert_eq!(s.list_follow_ups(&FollowUpFilter::default()).await.expect("tasks"), vec![]);
    assert_eq!(s.list_filings(&[p1.id, p2.id]).await.expect("filings"), vec![]);

    assert_eq!(s.import_referrals(&rows).await.expect("import"), 1_500);
    assert_eq!(s.count_referrals(&ReferralFilter::default()).await.expect("count"), 1_500);
    for k in [0, 1, 999, 1_000, 1_499] {
        let b = &rows[k];
        assert_eq!(s.get_referral(b.referral.id).await.expect("get"), Some(b.referral.clone()), "row {k}");
        assert_eq!(s.referral_history(b.referral.id).await.expect("history"), b.events, "row {k}");
    }
    let tasks = s.list_follow_ups(&FollowUpFilter { limit: 1_000, ..Default::default() }).await.expect("tasks");
    assert_eq!(tasks.len(), 300, "150 downward referrals, two tasks each");
    assert_eq!(s.list_filings(&[p1.id, p2.id]).await.expect("filings").len(), 15, "15 transfers to Beijing");
    assert_eq!(s.pending_outbox(0).await.expect("outbox"), vec![], "an import notifies nobody");
    assert_eq!(s.list_notifications(h.id, None, 0).await.expect("notifications"), vec![]);
    let inbox = ReferralFilter { to_facility_id: Some(h.id), ..Default::default() };
    assert_eq!(s.count_referrals(&inbox).await.expect("count"), 1_500 - 150 - 15);
}

/// A referral is a care relationship for its sender and current receiver, and makes the
/// patient known in the communities of both ends.
pub async fn access_facts_referrals(store: Arc<dyn Store>) {
    let s = &*store;
    migrated(s).await;
    let c = community(s, None, "岳池县医共体", YUECHI, true).await;
    let t1 = facility(s, "H51162100002", Tier::Township, YUECHI, Some(c.id)).await;
    let t2 = facility(s, "H51162100003", Tier::Township, YUECHI, Some(c.id)).await;
    let h = facility(s, "H51162100001", Tier::County, YUECHI, Some(c.id)).await;
    let city = facility(s, "H51160200001", Tier::City, GUANG_AN, None).await;
    let p = resident("田志刚", Sex::Male, date!(1957 - 07 - 17), 57);
    s.create_patient(&p).await.expect("patient");
    assert_eq!(s.access_facts(h.id, p.id).await.expect("facts"), facts(false, false, true), "no relationship yet");

    let r = create(s, &requested(referral_input(&p, &h), &p, &t1, &h, NOW)).await;
    let cases = [
        (&h, facts(true, true, true), "the receiver"),
        (&t1, facts(true, true, true), "the sender"),
        (&t2, facts(false, true, true), "another member: known in the community"),
        (&city, facts(false, false, false), "outside, not a party"),
    ];
    for (f, want, what) in cases {
        assert_eq!(s.access_facts(f.id, p.id).await.expect("facts"), want, "{what}");
    }
    // redirected to the city hospital: it is now the receiver, the county no longer
    let redirect = Command::Redirect { to_facility_id: city.id, reason: "需转至上级医院".into() };
    write(s, &stepped_to(&r, redirect, Party::Receiver, &t1, &h, Some(&city), NOW + Duration::minutes(20))).await;
    assert_eq!(s.access_facts(city.id, p.id).await.expect("facts"), facts(true, false, false), "the new receiver");
    assert_eq!(s.access_facts(h.id, p.id).await.expect("facts"), facts(false, true, true), "the former receiver");
    assert_eq!(s.access_facts(t1.id, p.id).await.expect("facts"), facts(true, true, true), "still the sender");
}

// ---------------------------------------------------------------------------------------
// settlements (issue 6). Figures from domain.md M7/M8 and the default policy set
// (广安市 511600, resident scheme): county inpatient deductible 500 yuan, rate 80 %, 70 %
// without a referral; township outpatient 60 %, no deductible; class-B first share 10 %;
// annual ceiling 300,000 yuan; outpatient pool 400 yuan.

/// The pooling region of the county's residents in the default policy set.
const INSURED: &str = "511600";
/// The annual ceiling of the default resident policy, fen.
const CEILING: i64 = 30_000_000;

fn default_policies() -> PolicySet {
    let set: PolicySet = toml::from_str(DEFAULT_POLICY_TOML).expect("the default policy set parses");
    set.validate().expect("the default policy set is valid");
    set
}

fn bill(setting: Setting, tier: Tier, arrival: Arrival, date: Date, lines: Vec<BillLine>) -> Claim {
    Claim {
        scheme: Scheme::Resident,
        insured_region: INSURED.into(),
        setting,
        tier,
        arrival,
        place: Place::Home,
        date,
        lines,
        accumulators: Accumulators::default(),
    }
}

fn class_a(amount_fen: i64) -> Vec<BillLine> {
    vec![BillLine { class: ItemClass::A, amount_fen }]
}

/// domain.md's worked example: resident, county hospital, referred, 10,000 yuan of class A.
fn county_stay(amount_fen: i64) -> Claim {
    bill(
        Setting::Inpatient,
        Tier::County,
        Arrival::UpwardReferral { after_stay_at: None },
        date!(2026 - 11 - 20),
        class_a(amount_fen),
    )
}

/// A township outpatient visit: 80 yuan class A, 10 yuan class B, 10 yuan self-pay.
fn township_visit() -> Claim {
    bill(
        Setting::Outpatient,
        Tier::Township,
        Arrival::SelfReferred,
        date!(2026 - 11 - 21),
        vec![
            BillLine { class: ItemClass::A, amount_fen: 8_000 },
            BillLine { class: ItemClass::B, amount_fen: 1_000 },
            BillLine { class: ItemClass::SelfPay, amount_fen: 1_000 },
        ],
    )
}

fn settle_request(
    p: &Patient,
    f: &Facility,
    txn_no: &str,
    encounter_id: Option<Uuid>,
    claim: Claim,
    at: OffsetDateTime,
) -> SettleRequest {
    SettleRequest {
        id: new_id(),
        region_key: p.region_key.clone(),
        facility_id: f.id,
        txn_no: txn_no.into(),
        patient_id: p.id,
        encounter_id,
        items: items_of(&claim),
        claim,
        at,
    }
}

/// One priced line per claim line: one unit at the line's amount (`T000`, `T001`, …).
fn items_of(claim: &Claim) -> Vec<PricedLine> {
    claim
        .lines
        .iter()
        .enumerate()
        .map(|(i, l)| PricedLine { code: format!("T{i:03}"), quantity: 1, unit_price_fen: l.amount_fen })
        .collect()
}

fn acc(inpatient: i64, outpatient: i64) -> Accumulators {
    Accumulators {
        inpatient_fund_paid_fen: inpatient,
        outpatient_fund_paid_fen: outpatient,
        stay_deductible_paid_fen: 0,
    }
}

fn expect_store_conflict<T: Debug>(r: Result<T>, what: &str) -> String {
    match r {
        Err(StoreError::Conflict(m)) => m,
        other => panic!("{what}: expected StoreError::Conflict, got {other:?}"),
    }
}

fn expect_txn_number_used<T: Debug>(r: Result<T>, what: &str) -> String {
    match r {
        Err(StoreError::TxnNumberUsed(m)) => m,
        other => panic!("{what}: expected StoreError::TxnNumberUsed, got {other:?}"),
    }
}

fn expect_encounter_settled<T: Debug>(r: Result<T>, what: &str) -> String {
    match r {
        Err(StoreError::EncounterSettled(m)) => m,
        other => panic!("{what}: expected StoreError::EncounterSettled, got {other:?}"),
    }
}

/// The machine codes of a domain refusal.
fn domain_codes<T: Debug>(r: Result<T>, what: &str) -> Vec<String> {
    match r {
        Err(StoreError::Domain(DomainError::Invalid(errors))) => errors.into_iter().map(|e| e.code).collect(),
        other => panic!("{what}: expected StoreError::Domain(DomainError::Invalid(_)), got {other:?}"),
    }
}

fn all_settlements(patient_id: Uuid) -> SettlementFilter {
    SettlementFilter { patient_id: Some(patient_id), limit: 1_000, ..Default::default() }
}

/// Σ fund of the person's settlements in force, per year: (inpatient, outpatient).
async fn fund_in_force(s: &dyn Store, patient_id: Uuid, year: i32) -> Accumulators {
    let rows = s.list_settlements(&all_settlements(patient_id)).await.expect("list settlements");
    let mut sum = Accumulators::default();
    for r in rows.iter().filter(|r| r.status == SettlementStatus::Settled && r.claim.date.year() == year) {
        match r.claim.setting {
            Setting::Inpatient => sum.inpatient_fund_paid_fen += r.split.fund_fen,
            Setting::Outpatient => sum.outpatient_fund_paid_fen += r.split.fund_fen,
        }
    }
    sum
}

/// A settlement is stored with its split and moves the accumulators by its fund; the same
/// transaction number again answers the first result and changes nothing; used for another
/// bill, it is refused; a settled encounter cannot be settled twice.
pub async fn settlement_settle_and_replay(store: Arc<dyn Store>) {
    let s = &*store;
    migrated(s).await;
    let policies = default_policies();
    let h = facility(s, "H51162100001", Tier::County, YUECHI, None).await;
    let t = facility(s, "H51162100002", Tier::Township, YUECHI, None).await;
    let p = resident("罗成", Sex::Male, date!(1958 - 05 - 05), 11);
    let other = resident("罗敏", Sex::Female, date!(1960 - 06 - 06), 12);
    create_patients(s, &[&p, &other]).await;
    let e = encounter(&p, &h, NOW - Duration::days(5), "I63.900");
    s.create_encounter(&e).await.expect("encounter");
    assert_eq!(s.accumulators(p.id, 2026).await.expect("accumulators"), acc(0, 0), "nothing settled yet");

    let req = settle_request(&p, &h, "YC20261123-0001", Some(e.id), county_stay(1_000_000), NOW);
    let first = s.settle(&req, &policies).await.expect("settle");
    assert!(!first.replayed, "a first settlement is not a replay");
    assert_eq!(first.status, SettlementStatus::Settled);
    assert_eq!((first.id, first.txn_no.as_str(), first.encounter_id), (req.id, "YC20261123-0001", Some(e.id)));
    assert_eq!((first.created_at, first.reversed_at, first.reversal_txn_no.clone()), (NOW, None, None));
    let split = &first.split;
    // 10,000 yuan: deductible 500; (10,000 − 500) × 80 % = 7,600 fund; coinsurance 1,900
    assert_eq!(
        (split.total_fen, split.fund_fen, split.patient_fen, split.deductible_fen, split.coinsurance_fen),
        (1_000_000, 760_000, 240_000, 50_000, 190_000)
    );
    assert_eq!((split.self_pay_fen, split.class_b_share_fen, split.above_ceiling_fen, split.rate_bp), (0, 0, 0, 8_000));
    assert!(split.policy.contains("广安市城乡居民医保"), "names the policy: {}", split.policy);
    assert!(split.explanation.iter().any(|st| st.code == "deductible"), "explains the deductible");
    assert_eq!(first.claim.lines, req.claim.lines);
    assert_eq!(first.claim.accumulators, acc(0, 0), "adjudicated against the stored (empty) accumulators");
    assert_eq!(
        split.after,
        Accumulators { inpatient_fund_paid_fen: 760_000, stay_deductible_paid_fen: 50_000, ..acc(0, 0) }
    );
    assert_eq!(s.get_settlement(req.id).await.expect("get"), Some(first.clone()), "read back as returned");
    assert_eq!(s.find_settlement_by_txn(h.id, &req.txn_no).await.expect("by txn"), Some(first.clone()));
    assert_eq!(s.find_settlement_by_txn(t.id, &req.txn_no).await.expect("by txn"), None, "numbers are per facility");
    assert_eq!(s.accumulators(p.id, 2026).await.expect("accumulators"), acc(760_000, 0), "moved by the fund");
    assert_eq!(s.accumulators(p.id, 2027).await.expect("accumulators"), acc(0, 0), "another year");
    assert_eq!(s.accumulators(other.id, 2026).await.expect("accumulators"), acc(0, 0), "another person");

    // the same request again (a desk retrying after a timeout), even with a new key
    let again = SettleRequest { id: new_id(), at: NOW + Duration::minutes(1), ..req.clone() };
    let replay = s.settle(&again, &policies).await.expect("replay");
    assert!(replay.replayed, "a repeated transaction number is a replay");
    assert_eq!(SettlementRecord { replayed: false, ..replay }, first, "the first result");
    assert_eq!(s.accumulators(p.id, 2026).await.expect("accumulators"), acc(760_000, 0), "not counted twice");
    assert_eq!(s.get_settlement(again.id).await.expect("get"), None, "the retry's key is not used");

    // the number used for another bill: refused, nothing written
    let other_bill = SettleRequest {
        id: new_id(),
        items: items_of(&county_stay(2_000_000)),
        claim: county_stay(2_000_000),
        ..req.clone()
    };
    let m = expect_txn_number_used(s.settle(&other_bill, &policies).await, "the number with another bill");
    assert!(m.contains("YC20261123-0001"), "names the number: {m}");
    let other_person = SettleRequest {
        id: new_id(),
        patient_id: other.id,
        region_key: other.region_key.clone(),
        encounter_id: None,
        ..req.clone()
    };
    expect_txn_number_used(s.settle(&other_person, &policies).await, "the number for another person");
    // the encounter settled again under a new number
    let twice = settle_request(&p, &h, "YC20261123-0002", Some(e.id), county_stay(1_000_000), NOW);
    let m = expect_encounter_settled(s.settle(&twice, &policies).await, "an encounter settled twice");
    assert!(m.contains(&e.id.to_string()), "names the encounter: {m}");
    assert_eq!(s.find_settlement_by_txn(h.id, "YC20261123-0002").await.expect("by txn"), None);
    assert_eq!(s.list_settlements(&all_settlements(p.id)).await.expect("list").len(), 1, "nothing written");
    assert_eq!(s.list_settlements(&all_settlements(other.id)).await.expect("list").len(), 0, "nothing written");
    assert_eq!(s.accumulators(p.id, 2026).await.expect("accumulators"), acc(760_000, 0), "unchanged");

    // an outpatient visit without an encounter: self-pay 10, class-B share 1 yuan; eligible
    // 89 × 60 % = 53.40 fund; coinsurance 35.60; patient 46.60; counted in the outpatient pool
    let visit = settle_request(&p, &t, "WS-1", None, township_visit(), NOW + Duration::hours(1));
    let v = s.settle(&visit, &policies).await.expect("settle a visit");
    let vs = &v.split;
    assert_eq!(
        (vs.total_fen, vs.self_pay_fen, vs.class_b_share_fen, vs.deductible_fen, vs.fund_fen, vs.coinsurance_fen),
        (10_000, 1_000, 100, 0, 5_340, 3_560)
    );
    assert_eq!(vs.patient_fen, 4_660);
    assert_eq!(v.claim.accumulators, acc(760_000, 0), "adjudicated against the year so far");
    assert_eq!(s.accumulators(p.id, 2026).await.expect("accumulators"), acc(760_000, 5_340));
    assert_eq!(fund_in_force(s, p.id, 2026).await, acc(760_000, 5_340), "the sum of the stored settlements");
}

/// Bad requests are refused with the reason, and write nothing.
pub async fn settlement_refusals(store: Arc<dyn Store>) {
    let s = &*store;
    migrated(s).await;
    let policies = default_policies();
    let h = facility(s, "H51162100001", Tier::County, YUECHI, None).await;
    let t = facility(s, "H51162100002", Tier::Township, YUECHI, None).await;
    let p = resident("唐亮", Sex::Male, date!(1966 - 02 - 02), 21);
    let q = resident("唐丽", Sex::Female, date!(1968 - 08 - 08), 22);
    create_patients(s, &[&p, &q]).await;
    let e = encounter(&p, &h, NOW - Duration::days(2), "J18.900");
    let eq = encounter(&q, &h, NOW - Duration::days(2), "J18.900");
    let et = encounter(&p, &t, NOW - Duration::days(1), "J18.900");
    for x in [&e, &eq, &et] {
        s.create_encounter(x).await.expect("encounter");
    }
    let ok = settle_request(&p, &h, "R-1", Some(e.id), county_stay(1_000_000), NOW);

    let stranger = resident("无名", Sex::Male, date!(1970 - 01 - 01), 23);
    expect_not_found(
        s.settle(&settle_request(&stranger, &h, "R-2", None, county_stay(1_000_000), NOW), &policies).await,
        "an unknown patient",
    );
    expect_not_found(
        s.settle(&SettleRequest { region_key: WUSHENG.into(), ..ok.clone() }, &policies).await,
        "the patient in another region",
    );
    expect_not_found(
        s.settle(&SettleRequest { facility_id: new_id(), ..ok.clone() }, &policies).await,
        "an unknown facility",
    );
    expect_not_found(
        s.settle(&SettleRequest { encounter_id: Some(new_id()), ..ok.clone() }, &policies).await,
        "an unknown encounter",
    );
    let cases = [
        (
            SettleRequest { encounter_id: Some(eq.id), ..ok.clone() },
            "settlement.encounter_patient",
            "another's encounter",
        ),
        (
            SettleRequest { encounter_id: Some(et.id), ..ok.clone() },
            "settlement.encounter_facility",
            "another facility's",
        ),
        (
            SettleRequest { claim: Claim { insured_region: "999999".into(), ..ok.claim.clone() }, ..ok.clone() },
            "settlement.no_policy",
            "no policy for the region (the engine refuses)",
        ),
        (
            SettleRequest { claim: Claim { date: date!(2025 - 12 - 31), ..ok.claim.clone() }, ..ok.clone() },
            "settlement.no_policy",
            "no policy in force yet",
        ),
        (
            SettleRequest { claim: Claim { lines: vec![], ..ok.claim.clone() }, items: vec![], ..ok.clone() },
            "settlement.no_lines",
            "no lines",
        ),
        (
            SettleRequest {
                claim: Claim { lines: class_a(-1), ..ok.claim.clone() },
                items: vec![PricedLine { code: "T000".into(), quantity: 1, unit_price_fen: -1 }],
                ..ok.clone()
            },
            "settlement.amount",
            "a negative line",
        ),
        (
            SettleRequest { claim: Claim { tier: Tier::City, ..ok.claim.clone() }, ..ok.clone() },
            "settlement.tier",
            "a tier other than the facility's",
        ),
        (SettleRequest { txn_no: " ".into(), ..ok.clone() }, "settlement.txn_no", "a blank transaction number"),
    ];
    for (req, code, what) in cases {
        let codes = domain_codes(s.settle(&req, &policies).await, what);
        assert!(codes.iter().any(|c| c == code), "{what}: expected {code}, got {codes:?}");
        assert_eq!(s.find_settlement_by_txn(req.facility_id, &req.txn_no).await.expect("by txn"), None, "{what}");
    }
    assert_eq!(s.list_settlements(&SettlementFilter::default()).await.expect("list"), vec![], "nothing written");
    assert_eq!(s.accumulators(p.id, 2026).await.expect("accumulators"), acc(0, 0), "accumulators untouched");
    expect_not_found(s.reverse_settlement(new_id(), "X-1", "录入错误", NOW).await, "reversing an unknown settlement");

    // after all that, the good request goes through, and its key cannot be reused
    s.settle(&ok, &policies).await.expect("settle");
    let reused = settle_request(&q, &h, "R-3", None, county_stay(1_000), NOW);
    expect_duplicate(s.settle(&SettleRequest { id: ok.id, ..reused }, &policies).await, "a settlement key reused");
    assert_eq!(s.accumulators(q.id, 2026).await.expect("accumulators"), acc(0, 0));
}

/// A reversal takes exactly the settlement's fund off the accumulators, is idempotent under
/// its own number, and frees the encounter to be settled again.
pub async fn settlement_reversal(store: Arc<dyn Store>) {
    let s = &*store;
    migrated(s).await;
    let policies = default_policies();
    let h = facility(s, "H51162100001", Tier::County, YUECHI, None).await;
    let t = facility(s, "H51162100002", Tier::Township, YUECHI, None).await;
    let p = resident("韩梅", Sex::Female, date!(1955 - 09 - 09), 31);
    s.create_patient(&p).await.expect("patient");
    let e = encounter(&p, &h, NOW - Duration::days(3), "K35.800");
    s.create_encounter(&e).await.expect("encounter");

    let visit = s
        .settle(&settle_request(&p, &t, "V-1", None, township_visit(), NOW - Duration::hours(2)), &policies)
        .await
        .expect("a visit");
    let before = s.accumulators(p.id, 2026).await.expect("accumulators");
    assert_eq!(before, acc(0, 5_340));
    let stay = s
        .settle(&settle_request(&p, &h, "S-1", Some(e.id), county_stay(1_000_000), NOW), &policies)
        .await
        .expect("a stay");
    assert_eq!(s.accumulators(p.id, 2026).await.expect("accumulators"), acc(760_000, 5_340));

    let at = NOW + Duration::hours(1);
    let rev = s.reverse_settlement(stay.id, "C-1", "费用录入错误", at).await.expect("reverse");
    assert!(!rev.replayed);
    assert_eq!(rev.status, SettlementStatus::Reversed);
    assert_eq!((rev.reversal_txn_no.as_deref(), rev.reversed_at), (Some("C-1"), Some(at)));
    assert_eq!((rev.split.clone(), rev.claim.clone(), rev.created_at), (stay.split.clone(), stay.claim.clone(), NOW));
    assert_eq!(s.get_settlement(stay.id).await.expect("get"), Some(rev.clone()), "read back as returned");
    assert_eq!(s.accumulators(p.id, 2026).await.expect("accumulators"), before, "exactly as before the stay");

    let again = s
        .reverse_settlement(stay.id, "C-1", "again, other words", at + Duration::minutes(5))
        .await
        .expect("reverse again");
    assert!(again.replayed, "the same reversal again is a replay");
    assert_eq!(SettlementRecord { replayed: false, ..again }, rev, "the first reversal's result");
    assert_eq!(s.accumulators(p.id, 2026).await.expect("accumulators"), before, "not subtracted twice");
    let m = expect_store_conflict(s.reverse_settlement(stay.id, "C-2", "twice", at).await, "another reversal number");
    assert!(m.contains("already reversed"), "says so: {m}");
    assert_eq!(s.accumulators(p.id, 2026).await.expect("accumulators"), before, "unchanged");

    // the settlement's own number still answers with it (now reversed); the encounter is free
    let replay = s
        .settle(&settle_request(&p, &h, "S-1", Some(e.id), county_stay(1_000_000), NOW), &policies)
        .await
        .expect("replay");
    assert!(replay.replayed);
    assert_eq!(replay.status, SettlementStatus::Reversed);
    let resettled = s
        .settle(&settle_request(&p, &h, "S-2", Some(e.id), county_stay(1_000_000), NOW + Duration::hours(2)), &policies)
        .await
        .expect("settle the encounter again");
    assert_eq!(resettled.split.fund_fen, 760_000, "adjudicated against the restored accumulators");
    assert_eq!(resettled.claim.accumulators, acc(0, 5_340));
    assert_eq!(s.accumulators(p.id, 2026).await.expect("accumulators"), acc(760_000, 5_340));
    assert_eq!(fund_in_force(s, p.id, 2026).await, acc(760_000, 5_340));
    expect_store_conflict(
        s.reverse_settlement(resettled.id, "C-1", "reused number", at).await,
        "a reversal number the facility already used",
    );
    assert_eq!(s.get_settlement(resettled.id).await.expect("get"), Some(resettled.clone()), "still in force");
    assert_eq!(s.accumulators(p.id, 2026).await.expect("accumulators"), acc(760_000, 5_340), "unchanged");

    // reversing the visit (outpatient) touches the outpatient pool only
    s.reverse_settlement(visit.id, "C-3", "patient left", at).await.expect("reverse the visit");
    assert_eq!(s.accumulators(p.id, 2026).await.expect("accumulators"), acc(760_000, 0));

    // the journal: newest first, by facility, status, time and count
    let list = |f: SettlementFilter| async move { s.list_settlements(&f).await.expect("list") };
    let ids = |rs: Vec<SettlementRecord>| rs.into_iter().map(|r| r.id).collect::<Vec<_>>();
    assert_eq!(
        ids(list(SettlementFilter { facility_id: Some(h.id), ..Default::default() }).await),
        vec![resettled.id, stay.id]
    );
    assert_eq!(ids(list(SettlementFilter { facility_id: Some(t.id), ..Default::default() }).await), vec![visit.id]);
    assert_eq!(ids(list(all_settlements(p.id)).await), vec![resettled.id, stay.id, visit.id]);
    let settled = SettlementFilter { status: Some(SettlementStatus::Settled), ..all_settlements(p.id) };
    assert_eq!(ids(list(settled).await), vec![resettled.id]);
    let reversed = SettlementFilter { status: Some(SettlementStatus::Reversed), ..all_settlements(p.id) };
    assert_eq!(ids(list(reversed).await), vec![stay.id, visit.id]);
    let window = SettlementFilter {
        from: Some(NOW - Duration::hours(1)),
        to: Some(NOW + Duration::hours(2)),
        ..all_settlements(p.id)
    };
    assert_eq!(ids(list(window).await), vec![stay.id], "from inclusive, to exclusive");
    assert_eq!(ids(list(SettlementFilter { limit: 1, ..all_settlements(p.id) }).await), vec![resettled.id]);
    assert_eq!(list(SettlementFilter { patient_id: Some(new_id()), ..Default::default() }).await, vec![]);
}

/// Earlier settlements leave a person 1,000 yuan below the annual ceiling; 16 settlements at
/// once, each of which alone would take 500 yuan of fund: together they never take more
/// than the 1,000 yuan left, and the accumulator is the sum of what was stored.
pub async fn settlement_concurrent_ceiling(store: Arc<dyn Store>) {
    let s = &*store;
    migrated(s).await;
    let policies = Arc::new(default_policies());
    let h = facility(s, "H51162100001", Tier::County, YUECHI, None).await;
    let p = resident("周强", Sex::Male, date!(1950 - 10 - 10), 41);
    s.create_patient(&p).await.expect("patient");
    // 7,600 yuan (the worked example), then a county stay after a downward referral (no
    // deductible): 364,250 × 80 % = 291,400 yuan; 299,000 yuan in all
    s.settle(&settle_request(&p, &h, "C-0", None, county_stay(1_000_000), NOW), &policies).await.expect("settle");
    let long_stay =
        bill(Setting::Inpatient, Tier::County, Arrival::DownwardReferral, date!(2026 - 06 - 01), class_a(36_425_000));
    let r = s.settle(&settle_request(&p, &h, "C-00", None, long_stay, NOW), &policies).await.expect("settle");
    assert_eq!(r.split.fund_fen, 29_140_000);
    assert_eq!(s.accumulators(p.id, 2026).await.expect("accumulators"), acc(CEILING - 100_000, 0));

    // 625 yuan at 80 %, no deductible: 500 yuan of fund each
    let small =
        bill(Setting::Inpatient, Tier::County, Arrival::DownwardReferral, date!(2026 - 11 - 22), class_a(62_500));
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let (store, policies) = (Arc::clone(&store), Arc::clone(&policies));
            let req = settle_request(&p, &h, &format!("C-{}", i + 1), None, small.clone(), NOW + Duration::seconds(i));
            tokio::spawn(async move { store.settle(&req, &policies).await })
        })
        .collect();
    let mut funds = Vec::new();
    for t in tasks {
        let r = t.await.expect("task").expect("every concurrent settlement lands");
        assert!(!r.replayed);
        assert_eq!(r.split.total_fen, 62_500);
        assert_eq!(r.split.fund_fen + r.split.above_ceiling_fen, 50_000, "the fund's share before the ceiling");
        funds.push(r.split.fund_fen);
    }
    assert_eq!(funds.iter().sum::<i64>(), 100_000, "exactly the 1,000 yuan left, no more");
    assert_eq!(funds.iter().filter(|f| **f == 50_000).count(), 2, "two take 500 yuan, the rest nothing: {funds:?}");
    let stored = fund_in_force(s, p.id, 2026).await;
    assert_eq!(stored, acc(CEILING, 0), "the stored settlements' funds reach the ceiling exactly");
    assert_eq!(s.accumulators(p.id, 2026).await.expect("accumulators"), stored, "the accumulator is their sum");
}

/// Eight desks send the same transaction at once: one settlement, seven replays of it.
pub async fn settlement_concurrent_replays(store: Arc<dyn Store>) {
    let s = &*store;
    migrated(s).await;
    let policies = Arc::new(default_policies());
    let h = facility(s, "H51162100001", Tier::County, YUECHI, None).await;
    let p = resident("郑洁", Sex::Female, date!(1975 - 03 - 13), 51);
    s.create_patient(&p).await.expect("patient");
    let e = encounter(&p, &h, NOW - Duration::days(1), "I10.x00");
    s.create_encounter(&e).await.expect("encounter");
    let req = settle_request(&p, &h, "SAME-1", Some(e.id), county_stay(1_000_000), NOW);
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let (store, policies) = (Arc::clone(&store), Arc::clone(&policies));
            let req = SettleRequest { id: new_id(), ..req.clone() };
            tokio::spawn(async move { store.settle(&req, &policies).await })
        })
        .collect();
    let mut results = Vec::new();
    for t in tasks {
        results.push(t.await.expect("task").expect("settle or replay"));
    }
    let firsts: Vec<_> = results.iter().filter(|r| !r.replayed).collect();
    assert_eq!(firsts.len(), 1, "exactly one settles");
    for r in &results {
        assert_eq!(SettlementRecord { replayed: false, ..r.clone() }, *firsts[0], "the others replay it");
    }
    assert_eq!(s.list_settlements(&all_settlements(p.id)).await.expect("list").len(), 1);
    assert_eq!(s.accumulators(p.id, 2026).await.expect("accumulators"), acc(760_000, 0), "counted once");
}

/// A deterministic random sequence of settlements (two people, two years, both settings,
/// repeated numbers) and reversals (repeated too): after every step, the accumulators of
/// each person and year are the sum of the fund of their settlements in force.
pub async fn settlement_random_sequence(store: Arc<dyn Store>) {
    let s = &*store;
    migrated(s).await;
    let policies = default_policies();
    let h = facility(s, "H51162100001", Tier::County, YUECHI, None).await;
    let t = facility(s, "H51162100002", Tier::Township, YUECHI, None).await;
    let people = [
        resident("吴一", Sex::Male, date!(1949 - 01 - 01), 61),
        resident("吴二", Sex::Female, date!(1952 - 02 - 02), 62),
    ];
    create_patients(s, &[&people[0], &people[1]]).await;
    // SplitMix64: deterministic, no dependency
    let mut state: u64 = 0x5EED_0006;
    let mut next = move |n: u64| {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        (z ^ (z >> 31)) % n
    };
    let mut sent: Vec<SettleRequest> = Vec::new();
    let mut in_force: Vec<Uuid> = Vec::new();
    let mut reversed: Vec<(Uuid, String)> = Vec::new();
    for step in 0..80i64 {
        let at = NOW + Duration::minutes(step);
        match next(10) {
            0..=1 if !in_force.is_empty() => {
                let id = in_force.remove(next(in_force.len() as u64) as usize);
                let no = format!("REV-{step}");
                let r = s.reverse_settlement(id, &no, "concurrency test", at).await.expect("reverse");
                assert!(!r.replayed && r.status == SettlementStatus::Reversed, "step {step}");
                reversed.push((id, no));
            }
            2 if !reversed.is_empty() => {
                let (id, no) = reversed[next(reversed.len() as u64) as usize].clone();
                let r = s.reverse_settlement(id, &no, "concurrency test", at).await.expect("reverse again");
                assert!(r.replayed, "step {step}: a repeated reversal replays");
            }
            3 if !sent.is_empty() => {
                let req = sent[next(sent.len() as u64) as usize].clone();
                let r = s.settle(&SettleRequest { id: new_id(), ..req }, &policies).await.expect("repeat");
                assert!(r.replayed, "step {step}: a repeated settlement replays");
            }
            _ => {
                let p = &people[next(2) as usize];
                let date = if next(2) == 0 { date!(2026 - 05 - 01) } else { date!(2027 - 03 - 01) };
                let (f, setting) = match next(3) {
                    0 => (&t, Setting::Outpatient),
                    1 => (&t, Setting::Inpatient),
                    _ => (&h, Setting::Inpatient),
                };
                let arrival = match next(3) {
                    0 => Arrival::SelfReferred,
                    1 => Arrival::UpwardReferral { after_stay_at: None },
                    _ => Arrival::DownwardReferral,
                };
                let max = if setting == Setting::Outpatient { 30_000 } else { 12_000_000 };
                let lines = (0..=next(3))
                    .map(|_| BillLine {
                        class: [ItemClass::A, ItemClass::B, ItemClass::SelfPay][next(3) as usize],
                        amount_fen: 1 + next(max) as i64,
                    })
                    .collect();
                let claim = bill(setting, f.tier, arrival, date, lines);
                let req = settle_request(p, f, &format!("TX-{step}"), None, claim, at);
                let r = s.settle(&req, &policies).await.expect("settle");
                assert!(!r.replayed, "step {step}");
                assert_eq!(r.split.fund_fen + r.split.patient_fen, r.split.total_fen, "step {step}: the parts add up");
                in_force.push(r.id);
                sent.push(req);
            }
        }
        for p in &people {
            for year in [2026, 2027] {
                let stored = s.accumulators(p.id, year).await.expect("accumulators");
                assert_eq!(stored, fund_in_force(s, p.id, year).await, "step {step}: {} in {year}", p.name);
                assert!(stored.inpatient_fund_paid_fen <= CEILING, "step {step}: within the ceiling");
                assert!(stored.outpatient_fund_paid_fen <= 40_000, "step {step}: within the outpatient pool");
            }
        }
    }
    assert!(!reversed.is_empty() && in_force.len() > 10, "the sequence both settles and reverses");
}

// ---------------------------------------------------------------------------------------
// settlement reports and bulk import. The splits below are given, not adjudicated: the
// reports only add up what is stored, so each expected row is the sum of the listed rows.

/// A person registered in `region` (from the identity number).
fn resident_of(region: &str, name: &str, sex: Sex, birth: Date, seq: u16) -> Patient {
    NewPatient { identity_number: Some(id_number(region, birth, seq, sex)), ..NewPatient::new(name, sex) }
        .validate(TODAY, None)
        .expect("valid registration")
        .into_patient(new_id())
}

/// A stored settlement as an import brings it: one class-A line of `total`, `fund` paid by
/// the fund, the rest by the patient (as coinsurance).
#[allow(clippy::too_many_arguments)]
fn imported(
    p: &Patient,
    f: &Facility,
    insured_region: &str,
    setting: Setting,
    date: Date,
    total: i64,
    fund: i64,
    txn_no: &str,
    status: SettlementStatus,
) -> SettlementRecord {
    let claim = Claim {
        insured_region: insured_region.into(),
        ..bill(setting, f.tier, Arrival::SelfReferred, date, class_a(total))
    };
    let after = match setting {
        Setting::Inpatient => acc(fund, 0),
        Setting::Outpatient => acc(0, fund),
    };
    let reversed = status == SettlementStatus::Reversed;
    SettlementRecord {
        id: new_id(),
        region_key: p.region_key.clone(),
        facility_id: f.id,
        txn_no: txn_no.into(),
        patient_id: p.id,
        encounter_id: None,
        items: items_of(&claim),
        claim,
        split: tiercare_domain::settlement::Split {
            total_fen: total,
            fund_fen: fund,
            patient_fen: total - fund,
            self_pay_fen: 0,
            class_b_share_fen: 0,
            deductible_fen: 0,
            coinsurance_fen: total - fund,
            above_ceiling_fen: 0,
            rate_bp: 8000,
            policy: "广安市城乡居民医保 2026".into(),
            explanation: vec![],
            after,
        },
        status,
        created_at: NOW,
        reversed_at: reversed.then_some(NOW + Duration::hours(1)),
        reversal_txn_no: reversed.then(|| format!("{txn_no}-R")),
        reversal_reason: reversed.then(|| "退费".to_owned()),
        replayed: false,
    }
}

fn fund_row(month: &str, facility_id: Option<Uuid>, tier: Tier, count: i64, total: i64, fund: i64) -> FundReportRow {
    FundReportRow {
        month: month.into(),
        facility_id,
        tier,
        count,
        total_fen: total,
        fund_fen: fund,
        patient_fen: total - fund,
    }
}

fn outflow_row(month: &str, destination: &str, tier: Tier, count: i64, total: i64, fund: i64) -> OutflowRow {
    OutflowRow { month: month.into(), destination: destination.into(), tier, count, total_fen: total, fund_fen: fund }
}

fn clearing_row(month: &str, insured: &str, treatment: &str, count: i64, total: i64, fund: i64) -> ClearingRow {
    ClearingRow {
        month: month.into(),
        insured_province: insured.into(),
        treatment_province: treatment.into(),
        count,
        total_fen: total,
        fund_fen: fund,
    }
}

/// Twelve settlements across a month boundary, three provinces and every report: the fund
/// report by month and tier (and facility), the out-of-county outflow and the cross-province
/// clearing, with reversed settlements and dates outside the range left out; the import
/// adds each settled fund to its person-year accumulator, on top of what was there.
pub async fn settlement_reports(store: Arc<dyn Store>) {
    let s = &*store;
    migrated(s).await;
    let policies = default_policies();
    let hv = facility(s, "H51162100010", Tier::Village, YUECHI, None).await;
    let ht = facility(s, "H51162100011", Tier::Township, YUECHI, None).await;
    let hc = facility(s, "H51162100012", Tier::County, YUECHI, None).await;
    // 广安区 (same province, another county), 重庆市渝中区, 北京市朝阳区
    let hg = facility(s, "H51160200001", Tier::City, GUANG_AN, None).await;
    let hq = facility(s, "H50010300001", Tier::Provincial, "500103", None).await;
    let hb = facility(s, "H11010500001", Tier::National, CHAOYANG, None).await;
    let p1 = resident("田一", Sex::Male, date!(1950 - 01 - 01), 71);
    let p2 = resident("田二", Sex::Female, date!(1951 - 02 - 02), 72);
    let p3 = resident_of(WUSHENG, "田三", Sex::Male, date!(1952 - 03 - 03), 73);
    let p4 = resident_of("500103", "田四", Sex::Female, date!(1953 - 04 - 04), 74);
    create_patients(s, &[&p1, &p2, &p3, &p4]).await;
    assert_eq!((p3.region_key.as_str(), p4.region_key.as_str()), (WUSHENG, "500103"));

    // before the import: one settlement through the desk (a township visit, 53.40 yuan of
    // outpatient fund), dated outside the report range
    s.settle(&settle_request(&p1, &ht, "DESK-1", None, township_visit(), NOW), &policies).await.expect("settle");

    use Setting::{Inpatient as In, Outpatient as Out};
    use SettlementStatus::{Reversed, Settled};
    let cq = "500100";
    let rows = vec![
        /* 1 */ imported(&p1, &hc, INSURED, In, date!(2026 - 01 - 31), 1_000_000, 760_000, "I-1", Settled),
        /* 2 */ imported(&p1, &ht, INSURED, Out, date!(2026 - 01 - 31), 10_000, 5_340, "I-2", Settled),
        /* 3 */ imported(&p2, &hc, INSURED, In, date!(2026 - 02 - 01), 500_000, 360_000, "I-3", Settled),
        /* 4 */ imported(&p2, &hc, INSURED, In, date!(2026 - 02 - 01), 300_000, 200_000, "I-4", Reversed),
        /* 5 */ imported(&p1, &hg, INSURED, In, date!(2026 - 02 - 15), 2_000_000, 1_200_000, "I-5", Settled),
        /* 6 */ imported(&p2, &hq, INSURED, In, date!(2026 - 02 - 20), 3_000_000, 1_500_000, "I-6", Settled),
        /* 7 */ imported(&p3, &hg, INSURED, In, date!(2026 - 02 - 10), 1_000_000, 600_000, "I-7", Settled),
        /* 8 */ imported(&p4, &hc, cq, In, date!(2026 - 01 - 05), 800_000, 500_000, "I-8", Settled),
        /* 9 */ imported(&p1, &hb, INSURED, In, date!(2026 - 03 - 01), 5_000_000, 2_000_000, "I-9", Settled),
        /* 10 */ imported(&p2, &hv, INSURED, Out, date!(2025 - 12 - 31), 5_000, 3_000, "I-10", Settled),
        /* 11 */ imported(&p1, &hv, INSURED, Out, date!(2026 - 02 - 28), 6_000, 3_600, "I-11", Settled),
        /* 12 */ imported(&p4, &ht, cq, Out, date!(2026 - 01 - 20), 20_000, 10_000, "I-12", Reversed),
    ];
    s.import_settlements(&rows).await.expect("import");
    s.import_settlements(&[]).await.expect("an empty import writes nothing");
    for r in &rows {
        assert_eq!(s.get_settlement(r.id).await.expect("get").as_ref(), Some(r), "{} read back as imported", r.txn_no);
    }

    // accumulators: the desk's 5,340 fen plus the imported settled funds, per person-year
    //   p1 2026: inpatient 760,000 (1) + 1,200,000 (5) + 2,000,000 (9); outpatient 5,340
    //            (desk) + 5,340 (2) + 3,600 (11)
    //   p2 2026: inpatient 360,000 (3), not the reversed 200,000 (4); 2025: outpatient 3,000 (10)
    //   p3 2026: inpatient 600,000 (7); p4 2026: inpatient 500,000 (8), not the reversed (12)
    let expected = [
        (&p1, 2026, acc(3_960_000, 14_280)),
        (&p2, 2026, acc(360_000 + 1_500_000, 0)),
        (&p2, 2025, acc(0, 3_000)),
        (&p3, 2026, acc(600_000, 0)),
        (&p4, 2026, acc(500_000, 0)),
        (&p4, 2025, acc(0, 0)),
    ];
    for (p, year, want) in expected {
        let got = s.accumulators(p.id, year).await.expect("accumulators");
        assert_eq!(got, want, "{} in {year}", p.name);
        assert_eq!(got, fund_in_force(s, p.id, year).await, "{} in {year}: the sum of the settled funds", p.name);
    }

    let (jan, mar, apr) = (date!(2026 - 01 - 01), date!(2026 - 03 - 01), date!(2026 - 04 - 01));
    // fund report, January and February (the 2026-03-01 row and the 2025 row are outside):
    //   2026-01 township: (2)            10,000 / 5,340
    //   2026-01 county:   (1) + (8)   1,800,000 / 1,260,000
    //   2026-02 village:  (11)            6,000 / 3,600
    //   2026-02 county:   (3)           500,000 / 360,000 (the reversed (4) left out)
    //   2026-02 city:     (5) + (7)   3,000,000 / 1,800,000
    //   2026-02 provincial: (6)       3,000,000 / 1,500,000
    let by_tier = s.fund_report(jan, mar, false, None).await.expect("fund report");
    assert_eq!(
        by_tier,
        vec![
            fund_row("2026-01", None, Tier::Township, 1, 10_000, 5_340),
            fund_row("2026-01", None, Tier::County, 2, 1_800_000, 1_260_000),
            fund_row("2026-02", None, Tier::Village, 1, 6_000, 3_600),
            fund_row("2026-02", None, Tier::County, 1, 500_000, 360_000),
            fund_row("2026-02", None, Tier::City, 2, 3_000_000, 1_800_000),
            fund_row("2026-02", None, Tier::Provincial, 1, 3_000_000, 1_500_000),
        ]
    );
    let mut want = vec![
        fund_row("2026-01", Some(ht.id), Tier::Township, 1, 10_000, 5_340),
        fund_row("2026-01", Some(hc.id), Tier::County, 2, 1_800_000, 1_260_000),
        fund_row("2026-02", Some(hv.id), Tier::Village, 1, 6_000, 3_600),
        fund_row("2026-02", Some(hc.id), Tier::County, 1, 500_000, 360_000),
        fund_row("2026-02", Some(hg.id), Tier::City, 2, 3_000_000, 1_800_000),
        fund_row("2026-02", Some(hq.id), Tier::Provincial, 1, 3_000_000, 1_500_000),
    ];
    want.sort_by(|a, b| (&a.month, a.facility_id, a.tier).cmp(&(&b.month, b.facility_id, b.tier)));
    assert_eq!(s.fund_report(jan, mar, true, None).await.expect("by facility"), want, "by month, facility, tier");
    // one day either side of the boundary: 31 January alone, 1 February alone
    assert_eq!(
        s.fund_report(date!(2026 - 01 - 31), date!(2026 - 02 - 01), false, None).await.expect("31 January"),
        vec![
            fund_row("2026-01", None, Tier::Township, 1, 10_000, 5_340),
            fund_row("2026-01", None, Tier::County, 1, 1_000_000, 760_000),
        ]
    );
    assert_eq!(
        s.fund_report(date!(2026 - 02 - 01), date!(2026 - 02 - 02), false, None).await.expect("1 February"),
        vec![fund_row("2026-02", None, Tier::County, 1, 500_000, 360_000)]
    );
    assert_eq!(
        s.fund_report(jan, apr, true, Some(&[hg.id, hb.id])).await.expect("two facilities"),
        vec![
            fund_row("2026-02", Some(hg.id), Tier::City, 2, 3_000_000, 1_800_000),
            fund_row("2026-03", Some(hb.id), Tier::National, 1, 5_000_000, 2_000_000),
        ]
    );
    assert_eq!(
        s.fund_report(jan, apr, false, Some(&[hg.id])).await.expect("one facility, not by facility"),
        vec![fund_row("2026-02", None, Tier::City, 2, 3_000_000, 1_800_000)]
    );
    assert_eq!(s.fund_report(jan, apr, true, Some(&[])).await.expect("no facility"), vec![]);
    assert_eq!(s.fund_report(mar, jan, false, None).await.expect("an empty range"), vec![]);

    // outflow of 岳池 (p1, p2): (5) to 广安区 in the province, (6) to 重庆; (9) in March;
    // p3 is 武胜's and p4 重庆's, the county's own facilities are not outflow
    assert_eq!(
        s.outflow_report(YUECHI, jan, mar).await.expect("outflow"),
        vec![
            outflow_row("2026-02", "out_of_county_in_province", Tier::City, 1, 2_000_000, 1_200_000),
            outflow_row("2026-02", "out_of_province", Tier::Provincial, 1, 3_000_000, 1_500_000),
        ]
    );
    assert_eq!(
        s.outflow_report(YUECHI, jan, apr).await.expect("outflow to April"),
        vec![
            outflow_row("2026-02", "out_of_county_in_province", Tier::City, 1, 2_000_000, 1_200_000),
            outflow_row("2026-02", "out_of_province", Tier::Provincial, 1, 3_000_000, 1_500_000),
            outflow_row("2026-03", "out_of_province", Tier::National, 1, 5_000_000, 2_000_000),
        ]
    );
    assert_eq!(
        s.outflow_report(WUSHENG, jan, apr).await.expect("武胜's outflow"),
        vec![outflow_row("2026-02", "out_of_county_in_province", Tier::City, 1, 1_000_000, 600_000)]
    );
    assert_eq!(
        s.outflow_report("500103", jan, apr).await.expect("渝中's outflow: (8) only"),
        vec![outflow_row("2026-01", "out_of_province", Tier::County, 1, 800_000, 500_000)]
    );
    assert_eq!(s.outflow_report(GUANG_AN, jan, apr).await.expect("nobody of 广安区"), vec![]);

    // clearing: (8) 重庆 insured treated in 四川 in January, (6) the reverse in February; the
    // reversed (12) is left out; (9) 四川 → 北京 in March
    assert_eq!(
        s.clearing_report(jan, mar).await.expect("clearing"),
        vec![
            clearing_row("2026-01", "500000", "510000", 1, 800_000, 500_000),
            clearing_row("2026-02", "510000", "500000", 1, 3_000_000, 1_500_000),
        ]
    );
    assert_eq!(
        s.clearing_report(date!(2026 - 02 - 01), apr).await.expect("clearing from February"),
        vec![
            clearing_row("2026-02", "510000", "500000", 1, 3_000_000, 1_500_000),
            clearing_row("2026-03", "510000", "110000", 1, 5_000_000, 2_000_000),
        ]
    );

    // a reversal through the desk takes a settlement out of every report and the accumulator
    s.reverse_settlement(rows[5].id, "I-6-R", "import test", NOW).await.expect("reverse (6)");
    assert_eq!(
        s.clearing_report(jan, mar).await.expect("clearing"),
        vec![clearing_row("2026-01", "500000", "510000", 1, 800_000, 500_000)]
    );
    assert_eq!(s.accumulators(p2.id, 2026).await.expect("accumulators"), acc(360_000, 0));
    assert_eq!(
        s.outflow_report(YUECHI, jan, mar).await.expect("outflow"),
        vec![outflow_row("2026-02", "out_of_county_in_province", Tier::City, 1, 2_000_000, 1_200_000)]
    );
}

/// An import naming an unknown facility, a patient in another region than the row says, or
/// a transaction number already used writes nothing, accumulators included.
pub async fn settlement_import_refusals(store: Arc<dyn Store>) {
    let s = &*store;
    migrated(s).await;
    let hc = facility(s, "H51162100012", Tier::County, YUECHI, None).await;
    let p = resident("石一", Sex::Male, date!(1960 - 01 - 01), 81);
    s.create_patient(&p).await.expect("patient");
    let d = date!(2026 - 05 - 05);
    let good = imported(&p, &hc, INSURED, Setting::Inpatient, d, 100_000, 50_000, "G-1", SettlementStatus::Settled);
    let stranger = new_facility("H51162100099", "未登记机构", Tier::County, YUECHI, None);
    let unknown_facility =
        imported(&p, &stranger, INSURED, Setting::Inpatient, d, 100_000, 50_000, "G-2", SettlementStatus::Settled);
    let wrong_region = SettlementRecord {
        region_key: WUSHENG.into(),
        ..imported(&p, &hc, INSURED, Setting::Inpatient, d, 100_000, 50_000, "G-3", SettlementStatus::Settled)
    };
    let unknown_patient = imported(
        &resident("石二", Sex::Male, date!(1961 - 01 - 01), 82),
        &hc,
        INSURED,
        Setting::Inpatient,
        d,
        100_000,
        50_000,
        "G-4",
        SettlementStatus::Settled,
    );
    expect_not_found(s.import_settlements(&[good.clone(), unknown_facility]).await, "an unknown facility");
    expect_not_found(s.import_settlements(&[good.clone(), wrong_region]).await, "a patient of another region");
    expect_not_found(s.import_settlements(&[good.clone(), unknown_patient]).await, "an unknown patient");
    assert_eq!(s.get_settlement(good.id).await.expect("get"), None, "nothing written");
    assert_eq!(s.accumulators(p.id, 2026).await.expect("accumulators"), acc(0, 0), "accumulators untouched");

    s.import_settlements(std::slice::from_ref(&good)).await.expect("import");
    assert_eq!(s.accumulators(p.id, 2026).await.expect("accumulators"), acc(50_000, 0));
    let again = SettlementRecord { id: new_id(), ..good.clone() };
    let more = imported(&p, &hc, INSURED, Setting::Outpatient, d, 1_000, 500, "G-5", SettlementStatus::Settled);
    assert!(s.import_settlements(&[more.clone(), again]).await.is_err(), "a transaction number used twice");
    assert_eq!(s.get_settlement(more.id).await.expect("get"), None, "nothing of that import written");
    assert_eq!(s.accumulators(p.id, 2026).await.expect("accumulators"), acc(50_000, 0), "accumulators untouched");
}

/// The priced lines of a settlement and a reversal's reason are stored and read back; lines
/// that do not describe the claim's, and a missing or overlong reason, are refused with
/// nothing written; a replay answers the stored lines; an import keeps them.
pub async fn settlement_items_and_reason(store: Arc<dyn Store>) {
    let s = &*store;
    migrated(s).await;
    let policies = default_policies();
    let t = facility(s, "H51162100002", Tier::Township, YUECHI, None).await;
    let p = resident("龚丽", Sex::Female, date!(1970 - 03 - 03), 41);
    s.create_patient(&p).await.expect("patient");

    // township_visit: 80 yuan class A, 10 class B, 10 self-pay, priced as
    // 2 × 40.00, 1 × 10.00 and 4 × 2.50
    let items = vec![
        PricedLine { code: "XJ01CAA040A001010101445".into(), quantity: 2, unit_price_fen: 4_000 },
        PricedLine { code: "XR05DAC140A001010101445".into(), quantity: 1, unit_price_fen: 1_000 },
        PricedLine { code: "ZS-001".into(), quantity: 4, unit_price_fen: 250 },
    ];
    let ok = SettleRequest { items: items.clone(), ..settle_request(&p, &t, "IT-1", None, township_visit(), NOW) };

    // refusals first: nothing written
    let short = SettleRequest { items: items[..2].to_vec(), ..ok.clone() };
    let codes = domain_codes(s.settle(&short, &policies).await, "two priced lines for three");
    assert_eq!(codes, vec!["settlement.items".to_owned()]);
    let mut wrong = items.clone();
    wrong[2].quantity = 5; // 5 × 2.50 = 12.50, the line is 10.00
    let codes = domain_codes(
        s.settle(&SettleRequest { items: wrong, ..ok.clone() }, &policies).await,
        "a priced line not the line's amount",
    );
    assert_eq!(codes, vec!["settlement.items".to_owned()]);
    assert_eq!(s.list_settlements(&all_settlements(p.id)).await.expect("list"), vec![], "nothing written");
    assert_eq!(s.accumulators(p.id, 2026).await.expect("accumulators"), acc(0, 0), "accumulators untouched");

    let first = s.settle(&ok, &policies).await.expect("settle");
    assert_eq!(first.items, items, "answered with the priced lines");
    let read = s.get_settlement(ok.id).await.expect("get").expect("stored");
    assert_eq!(read.items, items, "read back with the priced lines");
    assert_eq!(read.reversal_reason, None);
    let listed = s.list_settlements(&all_settlements(p.id)).await.expect("list");
    assert_eq!(listed[0].items, items, "the journal has them");
    // a replay answers the stored lines; the same number with other items is another bill
    let replay = s.settle(&SettleRequest { id: new_id(), ..ok.clone() }, &policies).await.expect("replay");
    assert!(replay.replayed);
    assert_eq!(replay.items, items);
    let mut other = items.clone();
    other[0] = PricedLine { code: "XJ01CAA040A001010101445".into(), quantity: 4, unit_price_fen: 2_000 };
    expect_txn_number_used(
        s.settle(&SettleRequest { id: new_id(), items: other, ..ok.clone() }, &policies).await,
        "the number with other items",
    );

    // a reversal needs a reason of 1 to 200 characters, trimmed
    let at = NOW + Duration::hours(1);
    for (reason, what) in [("", "empty"), ("   ", "blank"), (&"退".repeat(201)[..], "201 characters")] {
        let codes = domain_codes(s.reverse_settlement(ok.id, "IT-R1", reason, at).await, what);
        assert_eq!(codes, vec!["settlement.reversal_reason".to_owned()], "{what}");
    }
    let still = s.get_settlement(ok.id).await.expect("get").expect("stored");
    assert_eq!((still.status, still.reversal_reason), (SettlementStatus::Settled, None), "nothing written");
    assert_eq!(s.accumulators(p.id, 2026).await.expect("accumulators"), acc(0, 5_340), "accumulators untouched");

    let longest = "退".repeat(200);
    let rev = s.reverse_settlement(ok.id, "IT-R1", &format!("  {longest}\n"), at).await.expect("reverse");
    assert_eq!(rev.reversal_reason.as_deref(), Some(longest.as_str()), "trimmed, 200 characters kept");
    assert_eq!(rev.items, items);
    let read = s.get_settlement(ok.id).await.expect("get").expect("stored");
    assert_eq!(read.reversal_reason.as_deref(), Some(longest.as_str()), "read back");
    assert_eq!(read, rev);
    let again = s.reverse_settlement(ok.id, "IT-R1", "另一个原因", at).await.expect("reverse again");
    assert!(again.replayed);
    assert_eq!(again.reversal_reason.as_deref(), Some(longest.as_str()), "the first reversal's reason");

    // an import keeps the lines and the reason; rows without lines read back with none
    let mut with = imported(
        &p,
        &t,
        INSURED,
        Setting::Outpatient,
        date!(2026 - 10 - 01),
        10_000,
        6_000,
        "IM-1",
        SettlementStatus::Reversed,
    );
    with.items = vec![PricedLine { code: "ZS-002".into(), quantity: 8, unit_price_fen: 1_250 }];
    let without = SettlementRecord {
        items: vec![],
        ..imported(
            &p,
            &t,
            INSURED,
            Setting::Outpatient,
            date!(2026 - 10 - 02),
            10_000,
            6_000,
            "IM-2",
            SettlementStatus::Settled,
        )
    };
    s.import_settlements(&[with.clone(), without.clone()]).await.expect("import");
    assert_eq!(s.get_settlement(with.id).await.expect("get"), Some(with.clone()));
    assert_eq!(s.get_settlement(without.id).await.expect("get"), Some(without.clone()));
    // lines that do not describe the claim's: refused, nothing written
    let bad = SettlementRecord {
        id: new_id(),
        txn_no: "IM-3".into(),
        items: vec![PricedLine { code: "ZS-002".into(), quantity: 1, unit_price_fen: 1 }],
        ..without.clone()
    };
    let codes = domain_codes(s.import_settlements(std::slice::from_ref(&bad)).await, "imported lines not the claim's");
    assert_eq!(codes, vec!["settlement.items".to_owned()]);
    assert_eq!(s.get_settlement(bad.id).await.expect("get"), None, "nothing written");
}

// the capability parts' cases (see each module's macro)
pub mod bulk;
pub mod case_payment;
pub mod clinical;
pub mod fhir_versions;
pub mod indicators;
pub mod patient_history;
pub mod results;
pub mod settlement;
pub mod transaction;
