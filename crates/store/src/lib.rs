//! tiercare-store: persistence behind one trait, [`Store`], with two implementations:
//! SQLite (the embedded default) and PostgreSQL. Both run the same SQL text where
//! possible (`queries.rs` is compiled once per backend), their own migrations, and pass
//! the same contract suite ([`contract`], feature `contract`).
//!
//! Architecture invariants:
//! - SQL lives only in this crate. Callers get domain types back.
//! - Every write goes through the backend's `transact` helper, which begins the right kind
//!   of transaction (SQLite `BEGIN IMMEDIATE`, PostgreSQL `SERIALIZABLE`) and retries
//!   serialization failures (SQLSTATE 40001) and SQLite busy errors.
//! - Keys are app-generated UUIDv7; patient-owned tables carry `region_key` first in their
//!   primary key (distribution key for a sharded PostgreSQL).
//! - Migrations are append-only; a changed migration is refused at start.

use async_trait::async_trait;
use time::OffsetDateTime;
use uuid::Uuid;

use tiercare_domain::access::{AccessBasis, AccessFacts};
use tiercare_domain::billing::PricedLine;
use tiercare_domain::encounter::Encounter;
use tiercare_domain::facility::{Alliance, Community, Facility, Practitioner, PractitionerRole, Tier};
use tiercare_domain::filing::Filing;
use tiercare_domain::identity::IdentifierType;
use tiercare_domain::matching::MatchQuery;
use tiercare_domain::patient::{Enrolment, Patient};
use tiercare_domain::referral::{
    Change, Direction, FollowUpTask, Notification, Referral, ReferralEvent, ReferralState, Urgency,
};
use tiercare_domain::role::Role;
use tiercare_domain::settlement::{Accumulators, Claim, PolicySet, Split};

#[cfg(feature = "contract")]
pub mod contract;
mod error;
mod lite;
mod migrate;
pub mod postgres;
pub mod sqlite;

// Capability parts of the store: each declares its records and a part trait that
// [`Store`] requires, implemented per backend in `queries_<part>.rs`.
mod bulk;
mod case_payment;
mod clinical;
mod indicators;
mod results;
pub use bulk::*;
pub use case_payment::*;
pub use clinical::*;
pub use indicators::*;
pub use results::*;

pub use error::StoreError;
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// A new UUIDv7 key.
pub fn new_id() -> Uuid {
    Uuid::now_v7()
}

/// Which backend a store runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Open the store a URL names: `postgres://…` or `postgresql://…` selects PostgreSQL,
/// `sqlite://PATH` or a plain path selects SQLite (created if missing).
pub async fn open(url: &str) -> Result<std::sync::Arc<dyn Store>> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(std::sync::Arc::new(postgres::PgStore::connect(url).await?))
    } else {
        let path = url.strip_prefix("sqlite://").unwrap_or(url);
        Ok(std::sync::Arc::new(sqlite::SqliteStore::open(std::path::Path::new(path)).await?))
    }
}

/// A user account (password hash kept for the server's auth only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: Uuid,
    pub username: String,
    pub display_name: String,
    pub facility_id: Uuid,
    pub roles: Vec<Role>,
    pub password_hash: String,
    pub active: bool,
}

/// Session tokens expire; API tokens (machine clients) last until revoked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    Session,
    Api,
}

impl TokenKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenKind::Session => "session",
            TokenKind::Api => "api",
        }
    }
}

/// A stored token: only its SHA-256 hash is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRecord {
    pub token_hash: Vec<u8>,
    pub user_id: Uuid,
    pub kind: TokenKind,
    pub label: Option<String>,
    pub created_at: OffsetDateTime,
    pub expires_at: Option<OffsetDateTime>,
}

/// One read (or other action) on a patient's record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessLogEntry {
    pub id: Uuid,
    pub region_key: String,
    pub at: OffsetDateTime,
    pub user_id: Uuid,
    pub facility_id: Uuid,
    pub patient_id: Uuid,
    /// e.g. `read_record`, `read_encounters`.
    pub action: String,
    pub basis: AccessBasis,
    /// The break-glass reason, when given.
    pub reason: Option<String>,
    pub client_addr: Option<String>,
}

/// Filter for the access log.
#[derive(Debug, Clone, Default)]
pub struct AccessLogFilter {
    pub patient_id: Option<Uuid>,
    pub user_id: Option<Uuid>,
    /// Only entries that concern this community: read by a user of one of its facilities,
    /// or of a patient registered at one of them (so outsiders' reads of its patients show).
    pub community_id: Option<Uuid>,
    pub basis: Option<AccessBasis>,
    pub from: Option<OffsetDateTime>,
    pub to: Option<OffsetDateTime>,
    pub limit: u32,
}

/// A merge of two patient records and, if undone, its undoing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MergeRecord {
    pub id: Uuid,
    pub survivor_id: Uuid,
    pub merged_id: Uuid,
    pub reason: String,
    pub merged_by: Uuid,
    pub merged_at: OffsetDateTime,
    pub undone_by: Option<Uuid>,
    pub undone_at: Option<OffsetDateTime>,
    pub undo_reason: Option<String>,
}

/// Filter for facility lists.
#[derive(Debug, Clone, Default)]
pub struct FacilityFilter {
    pub community_id: Option<Uuid>,
    pub tier: Option<Tier>,
    pub region_code: Option<String>,
}

/// A bulk-import row that was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowRejection {
    /// 1-based line (or record) number in the source.
    pub line: u64,
    pub code: String,
    pub message: String,
}

/// Result of a bulk patient import.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportOutcome {
    pub inserted: u64,
    pub rejected: Vec<RowRejection>,
}

/// A patient's record as a clinician reads it: the (surviving) patient, the records
/// merged into it, enrolments and encounters of all of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatientRecord {
    pub patient: Patient,
    pub merged_ids: Vec<Uuid>,
    pub enrolments: Vec<Enrolment>,
    pub encounters: Vec<Encounter>,
    /// Referrals of the patient and the records merged in, newest first.
    pub referrals: Vec<Referral>,
    /// Insurance filings (备案), newest first.
    pub filings: Vec<Filing>,
}

/// Filter for referral worklists. Rows come newest first (`requested_at`, then `id`,
/// descending); `before` continues a page (keyset paging).
#[derive(Debug, Clone, Default)]
pub struct ReferralFilter {
    /// The receiver's inbox.
    pub to_facility_id: Option<Uuid>,
    /// The sender's outbox.
    pub from_facility_id: Option<Uuid>,
    /// Either end is a member of this community.
    pub community_id: Option<Uuid>,
    pub patient_ids: Vec<Uuid>,
    /// Any of these states (empty: any state).
    pub states: Vec<ReferralState>,
    pub urgency: Option<Urgency>,
    pub direction: Option<Direction>,
    /// Only green-channel referrals.
    pub green_only: bool,
    pub to_department: Option<String>,
    /// Tier of the sending facility.
    pub from_tier: Option<Tier>,
    /// Tier of the receiving facility.
    pub to_tier: Option<Tier>,
    /// Requested at or after.
    pub requested_from: Option<OffsetDateTime>,
    /// Requested before.
    pub requested_to: Option<OffsetDateTime>,
    /// Open and due (deadline passed) before this time: the overdue worklist.
    pub due_before: Option<OffsetDateTime>,
    /// In state `scheduled` with the scheduled time in `[start, end)`: arriving today.
    pub scheduled_between: Option<(OffsetDateTime, OffsetDateTime)>,
    /// Keyset paging: rows strictly older than `(requested_at, id)`.
    pub before: Option<(OffsetDateTime, Uuid)>,
    /// At most this many (0 means 50; capped at 500).
    pub limit: u32,
    /// `count_referrals` stops counting at this many (answers `min(count, n)`, reading at
    /// most `n` rows: a worklist's total); `None` counts every row. Lists ignore it.
    pub count_at_most: Option<u64>,
    /// Last changed (`updated_at`, FHIR `_lastUpdated`) at or after.
    pub updated_from: Option<OffsetDateTime>,
    /// Last changed before.
    pub updated_to: Option<OffsetDateTime>,
    /// Last changed outside each of these ranges `[from, to)` (a FHIR `ne` date).
    pub updated_except: Vec<(OffsetDateTime, OffsetDateTime)>,
    /// The list's order (FHIR `_sort`), ahead of the default (newest request first, then
    /// id). No index holds `updated_at`: sorting by it sorts every match of the other
    /// conditions. `before` (keyset paging) is for the default order only.
    pub sort: Vec<ReferralSort>,
}

/// A key of a referral list's order (FHIR `_sort`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReferralSortKey {
    /// When it was requested (ServiceRequest.authoredOn, Task.authoredOn).
    RequestedAt,
    /// When it last changed (meta.lastUpdated).
    UpdatedAt,
}

/// One key of a [`ReferralFilter`]'s order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReferralSort {
    pub key: ReferralSortKey,
    pub descending: bool,
}

impl ReferralFilter {
    /// The order of this filter's list ([`Store::list_referrals`] gives rows in it), for
    /// merging lists: the sort keys, then the default (requested at, descending), then the
    /// id in the direction of the requested-at key (descending without one).
    pub fn order(&self, a: &Referral, b: &Referral) -> std::cmp::Ordering {
        let by = |descending: bool, x: std::cmp::Ordering| if descending { x.reverse() } else { x };
        let mut id_descending = true;
        for s in &self.sort {
            let o = match s.key {
                ReferralSortKey::RequestedAt => {
                    id_descending = s.descending;
                    a.requested_at.cmp(&b.requested_at)
                }
                ReferralSortKey::UpdatedAt => a.updated_at.cmp(&b.updated_at),
            };
            if by(s.descending, o).is_ne() {
                return by(s.descending, o);
            }
        }
        b.requested_at.cmp(&a.requested_at).then(by(id_descending, a.id.cmp(&b.id)))
    }
}

/// A referral with its whole history, for bulk loading (the generator, imports).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReferralBundle {
    pub referral: Referral,
    /// Oldest first; versions 1..=referral.version.
    pub events: Vec<ReferralEvent>,
    pub follow_ups: Vec<FollowUpTask>,
    pub filings: Vec<Filing>,
}

/// A referral as a step reads it before acting ([`Store::referral_for_step`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReferralForStep {
    pub referral: Referral,
    /// Oldest first; versions 1..=referral.version.
    pub history: Vec<ReferralEvent>,
    /// An insurance filing names this referral (its accept filed the patient out of region).
    pub filed: bool,
}

/// Filter for the follow-up worklist.
#[derive(Debug, Clone, Default)]
pub struct FollowUpFilter {
    pub facility_id: Option<Uuid>,
    pub referral_id: Option<Uuid>,
    pub patient_ids: Vec<Uuid>,
    /// Only tasks not yet done.
    pub open_only: bool,
    /// Due on or before this day.
    pub due_by: Option<time::Date>,
    /// At most this many (0 means 100; capped at 1,000). Ordered by due date, then id.
    pub limit: u32,
}

/// A message for a gateway outside tiercare (SMS, WeChat), written with the change it
/// reports. The payload names facilities and referrals, never a patient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxMessage {
    pub id: Uuid,
    /// e.g. `referral.notification`
    pub topic: String,
    /// JSON text.
    pub payload: String,
    pub created_at: OffsetDateTime,
    pub delivered_at: Option<OffsetDateTime>,
}

/// A settlement to make (issue 6): the caller's transaction number, who, where, and the
/// bill. The claim's `accumulators` are ignored: the store reads the person's own inside
/// the transaction (the current stay's deductible is taken as 0).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettleRequest {
    /// The new settlement's key (UUIDv7, made by the caller).
    pub id: Uuid,
    /// The patient's region key.
    pub region_key: String,
    /// The facility of care (whose desk settles).
    pub facility_id: Uuid,
    /// The caller's transaction number, unique per facility: a repeated request with it
    /// returns the first result.
    pub txn_no: String,
    pub patient_id: Uuid,
    /// The visit or stay settled, if recorded; it must be the patient's, at this facility.
    pub encounter_id: Option<Uuid>,
    pub claim: Claim,
    /// The priced lines of the bill (item code, quantity, unit price), in the order of
    /// `claim.lines` and as many: stored so a settlement read back shows what was billed.
    /// A different count, or a line whose quantity × unit price is not the claim line's
    /// amount, is refused (`settlement.items`).
    pub items: Vec<PricedLine>,
    /// When the settlement is made (its `created_at`).
    pub at: OffsetDateTime,
}

/// Whether a settlement is in force.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SettlementStatus {
    Settled,
    /// Reversed (冲正): its fund payment was taken back off the accumulators.
    Reversed,
}

impl SettlementStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            SettlementStatus::Settled => "settled",
            SettlementStatus::Reversed => "reversed",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "settled" => Some(SettlementStatus::Settled),
            "reversed" => Some(SettlementStatus::Reversed),
            _ => None,
        }
    }
}

/// A stored settlement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettlementRecord {
    pub id: Uuid,
    pub region_key: String,
    pub facility_id: Uuid,
    pub txn_no: String,
    pub patient_id: Uuid,
    pub encounter_id: Option<Uuid>,
    /// The claim as adjudicated: its `accumulators` are those read in the transaction.
    pub claim: Claim,
    /// The priced lines, one per `claim.lines` entry, in order (empty for settlements
    /// stored before they were kept, migration 0005).
    pub items: Vec<PricedLine>,
    pub split: Split,
    pub status: SettlementStatus,
    pub created_at: OffsetDateTime,
    pub reversed_at: Option<OffsetDateTime>,
    pub reversal_txn_no: Option<String>,
    /// Why it was reversed (trimmed, 1 to 200 characters), when reversed.
    pub reversal_reason: Option<String>,
    /// `true` when this call wrote nothing and answered with the record an earlier call
    /// with the same transaction number made (or reversed); never stored.
    pub replayed: bool,
}

/// Filter for settlement lists (the daily journal). Rows come newest first
/// (`created_at`, then `id`, descending).
#[derive(Debug, Clone, Default)]
pub struct SettlementFilter {
    pub facility_id: Option<Uuid>,
    pub patient_id: Option<Uuid>,
    /// Made at or after.
    pub from: Option<OffsetDateTime>,
    /// Made before.
    pub to: Option<OffsetDateTime>,
    pub status: Option<SettlementStatus>,
    /// At most this many (0 means 100; capped at 1,000).
    pub limit: u32,
    /// Keyset paging: only the rows that come after this one in the list's order (made
    /// earlier, or at the same millisecond with a smaller id); the last row of a page is
    /// where the next page starts. Not used by [`Store::settlement_totals`].
    pub after: Option<SettlementPosition>,
}

/// A row's place in the settlement journal's order: its `created_at` (milliseconds, as
/// stored) and id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SettlementPosition {
    pub created_at: OffsetDateTime,
    pub id: Uuid,
}

impl SettlementPosition {
    pub fn of(r: &SettlementRecord) -> Self {
        SettlementPosition { created_at: r.created_at, id: r.id }
    }
}

/// Totals of the settlements a [`SettlementFilter`] selects (the day's closing figures of
/// the journal): those in force and those reversed apart.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SettlementTotals {
    /// Settlements in force (status `settled`) and the sums of their splits.
    pub count: i64,
    pub total_fen: i64,
    pub fund_fen: i64,
    pub patient_fen: i64,
    /// Reversed settlements and the fund payment they gave back.
    pub reversed_count: i64,
    pub reversed_fund_fen: i64,
}

/// Fund payments of one month and tier (and facility, when asked), from the settlements
/// in force (status `settled`). The month is the Asia/Shanghai calendar month of the
/// service date (dates are stored as the local `YYYY-MM-DD`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FundReportRow {
    /// `YYYY-MM`.
    pub month: String,
    /// The facility of care, when the report is by facility.
    pub facility_id: Option<Uuid>,
    pub tier: Tier,
    pub count: i64,
    pub total_fen: i64,
    pub fund_fen: i64,
    pub patient_fen: i64,
}

/// The out-of-county outflow: settlements in force of persons registered in a county
/// (their `region_key`) at facilities outside it, per month, destination and tier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutflowRow {
    /// `YYYY-MM`.
    pub month: String,
    /// `out_of_county_in_province` or `out_of_province`.
    pub destination: String,
    pub tier: Tier,
    pub count: i64,
    pub total_fen: i64,
    pub fund_fen: i64,
}

/// Cross-province clearing (跨省清算) of one month: settlements in force whose insured
/// region lies in another province than the facility of care.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClearingRow {
    /// `YYYY-MM`.
    pub month: String,
    /// The insured region's province, e.g. `500000`.
    pub insured_province: String,
    /// The facility's province.
    pub treatment_province: String,
    pub count: i64,
    pub total_fen: i64,
    pub fund_fen: i64,
}

/// Everything tiercare keeps. One trait, two backends; the contract suite defines the
/// behaviour both must have.
///
/// The capabilities added after settlement keep their methods in part traits of their own
/// ([`ResultStore`], [`CasePaymentStore`], [`IndicatorStore`]); a `dyn Store` has them all.
#[async_trait]
pub trait Store:
    ResultStore + CasePaymentStore + IndicatorStore + BulkStore + ClinicalStore + Send + Sync + 'static
{
    fn backend(&self) -> Backend;
    /// Apply pending migrations; returns the names applied now.
    async fn migrate(&self) -> Result<Vec<String>>;

    // --- registries
    async fn create_alliance(&self, a: &Alliance) -> Result<()>;
    async fn list_alliances(&self) -> Result<Vec<Alliance>>;
    async fn create_community(&self, c: &Community) -> Result<()>;
    async fn get_community(&self, id: Uuid) -> Result<Option<Community>>;
    async fn list_communities(&self) -> Result<Vec<Community>>;
    async fn create_facility(&self, f: &Facility) -> Result<()>;
    async fn get_facility(&self, id: Uuid) -> Result<Option<Facility>>;
    async fn get_facility_by_code(&self, code: &str) -> Result<Option<Facility>>;
    async fn list_facilities(&self, filter: &FacilityFilter) -> Result<Vec<Facility>>;
    async fn create_practitioner(&self, p: &Practitioner) -> Result<()>;
    async fn get_practitioner(&self, id: Uuid) -> Result<Option<Practitioner>>;
    async fn list_practitioners(&self, facility_id: Option<Uuid>) -> Result<Vec<Practitioner>>;
    async fn create_practitioner_role(&self, r: &PractitionerRole) -> Result<()>;
    async fn list_practitioner_roles(&self, practitioner_id: Uuid) -> Result<Vec<PractitionerRole>>;

    // --- patient index
    /// Register one patient. An identifier already registered is refused with
    /// [`StoreError::Duplicate`] naming the existing patient; nothing is written.
    async fn create_patient(&self, p: &Patient) -> Result<()>;
    /// Bulk registration. `atomic`: any bad row writes nothing; otherwise the good rows land.
    async fn import_patients(&self, rows: &[(u64, Patient)], atomic: bool) -> Result<ImportOutcome>;
    /// The patient with this id, whatever its status.
    async fn get_patient(&self, id: Uuid) -> Result<Option<Patient>>;
    /// The patients with these ids (any status; unknown ids are left out), in no order.
    async fn get_patients(&self, ids: &[Uuid]) -> Result<Vec<Patient>>;
    /// The record a patient id resolves to: itself when active, else the record it was
    /// merged into, followed to the end.
    async fn surviving_patient(&self, id: Uuid) -> Result<Option<Patient>>;
    /// The patient an identifier is registered to (not following merges).
    async fn find_by_identifier(&self, kind: IdentifierType, value: &str) -> Result<Option<Patient>>;
    /// Candidate records for matching (blocking on birth date, name, phone); the domain ranks them.
    async fn match_candidates(&self, q: &MatchQuery, limit: u32) -> Result<Vec<Patient>>;
    /// The record as read by a clinician, following merges to the survivor.
    async fn patient_record(&self, id: Uuid) -> Result<Option<PatientRecord>>;
    async fn count_patients(&self) -> Result<u64>;
    /// Refresh the query planner's statistics after a large load (bulk imports, bench
    /// loaders): PostgreSQL `ANALYZE` (a table bulk-loaded without statistics is planned as
    /// if tiny: a 1,000-id patient look-up took 1.7 s), then `VACUUM indicator_counter` (an
    /// import's counter upserts leave a dead version of every cell they add to); SQLite
    /// `PRAGMA optimize` (analyses only the tables its planner asked about on this connection;
    /// usually nothing: its plans here do not rest on statistics).
    async fn analyze(&self) -> Result<()>;
    /// When each of these patients last changed (FHIR meta.lastUpdated; the record's
    /// `updated_at`), unknown ids left out, in no order.
    async fn patient_updated_at(&self, ids: &[Uuid]) -> Result<Vec<(Uuid, OffsetDateTime)>>;
    /// [`Store::get_patient`] with when it last changed, in one read (a FHIR read's meta).
    async fn get_patient_versioned(&self, id: Uuid) -> Result<Option<(Patient, OffsetDateTime)>>;
    /// Change a patient's demographics and identifiers (FHIR update): `p` as it is to be,
    /// with `p.version` the version it was read at (region key and status are not changed).
    /// Writes version + 1 and answers the change time. A change since that version →
    /// [`StoreError::Conflict`]; an identifier registered to someone else →
    /// [`StoreError::Duplicate`]; an unknown patient → [`StoreError::NotFound`]. Nothing is
    /// written then.
    async fn update_patient(&self, p: &Patient) -> Result<OffsetDateTime>;
    /// Every kept version of a patient record, oldest first, the current one last, each with
    /// when it was made (FHIR `_history`); empty for an unknown patient. A change (update,
    /// merge, unmerge) keeps the version it replaces (migration 0017); versions replaced
    /// before that migration are not kept.
    async fn patient_versions(&self, id: Uuid) -> Result<Vec<(Patient, OffsetDateTime)>>;
    /// Version `version` of a patient record with when it was made (FHIR vread), the
    /// current one included; `None` when it was never made or is not kept.
    async fn get_patient_version(&self, id: Uuid, version: i64) -> Result<Option<(Patient, OffsetDateTime)>>;
    /// Merge `merged_id` into `survivor_id` (domain rules apply); returns the merge.
    async fn merge_patients(
        &self,
        survivor_id: Uuid,
        merged_id: Uuid,
        by: Uuid,
        reason: &str,
        at: OffsetDateTime,
    ) -> Result<MergeRecord>;
    /// Undo a merge: the merged record is active again with everything it had.
    async fn unmerge(&self, merge_id: Uuid, by: Uuid, reason: &str, at: OffsetDateTime) -> Result<MergeRecord>;
    async fn merge_history(&self, patient_id: Uuid) -> Result<Vec<MergeRecord>>;
    async fn get_merge(&self, merge_id: Uuid) -> Result<Option<MergeRecord>>;
    async fn add_enrolment(&self, e: &Enrolment) -> Result<()>;
    /// The enrolments of one patient record (not following merges), oldest first.
    async fn enrolments(&self, patient_id: Uuid) -> Result<Vec<Enrolment>>;
    /// One enrolment by its id (`GET /fhir/Coverage/{id}`); `None` when there is none.
    async fn enrolment(&self, id: Uuid) -> Result<Option<Enrolment>>;
    /// Bulk enrolments in one transaction; every patient must exist, or nothing is written.
    async fn import_enrolments(&self, rows: &[Enrolment]) -> Result<u64>;

    // --- encounters
    async fn create_encounter(&self, e: &Encounter) -> Result<()>;
    /// Bulk encounters in one transaction (loaders, imports). Every patient and facility
    /// must exist, or nothing is written and the first unknown one is named.
    async fn import_encounters(&self, rows: &[Encounter]) -> Result<u64>;

    // --- users, tokens
    async fn create_user(&self, u: &User) -> Result<()>;
    async fn get_user(&self, id: Uuid) -> Result<Option<User>>;
    async fn get_user_by_username(&self, username: &str) -> Result<Option<User>>;
    async fn list_users(&self) -> Result<Vec<User>>;
    async fn create_token(&self, t: &TokenRecord) -> Result<()>;
    /// The token and its user, when the token exists, is not revoked and not expired at `now`.
    async fn find_token(&self, token_hash: &[u8], now: OffsetDateTime) -> Result<Option<(TokenRecord, User)>>;
    async fn revoke_token(&self, token_hash: &[u8], at: OffsetDateTime) -> Result<()>;

    // --- access
    /// Facts for the access rule: does `facility_id` have a relationship with the patient?
    async fn access_facts(&self, facility_id: Uuid, patient_id: Uuid) -> Result<AccessFacts>;
    async fn record_access(&self, e: &AccessLogEntry) -> Result<()>;
    async fn query_access_log(&self, f: &AccessLogFilter) -> Result<Vec<AccessLogEntry>>;

    // --- referrals (issue 4)
    /// Write a new referral (version 1) with its first event, notifications and their
    /// outbox messages, in one transaction. The patient and both facilities must exist.
    async fn create_referral(&self, change: &Change) -> Result<()>;
    /// Write one step of a referral: the referral row, the event, follow-up tasks, the
    /// filing, notifications and outbox messages, in one transaction — only if the stored
    /// referral still has version `change.referral.version - 1`; otherwise
    /// [`StoreError::Conflict`] naming the current state, and nothing is written.
    async fn apply_referral_change(&self, change: &Change) -> Result<()>;
    /// [`Store::create_referral`] with the access-log row of the user's read of the patient
    /// that the answer shows, in the same transaction (both written or neither).
    async fn create_referral_logged(&self, change: &Change, access: &AccessLogEntry) -> Result<()>;
    /// [`Store::apply_referral_change`] with the access-log row of the user's read of the
    /// patient that the step's answer shows, in the same transaction (both written or neither).
    async fn apply_referral_change_logged(&self, change: &Change, access: &AccessLogEntry) -> Result<()>;
    async fn get_referral(&self, id: Uuid) -> Result<Option<Referral>>;
    /// The referral's events, oldest first.
    async fn referral_history(&self, id: Uuid) -> Result<Vec<ReferralEvent>>;
    /// The referral, its events and whether a filing names it, in one statement (one
    /// snapshot: the history ends at the referral's version). `None`: no such referral.
    async fn referral_for_step(&self, id: Uuid) -> Result<Option<ReferralForStep>>;
    async fn list_referrals(&self, f: &ReferralFilter) -> Result<Vec<Referral>>;
    /// How many referrals match (`before` and `limit` ignored), at most `count_at_most`.
    async fn count_referrals(&self, f: &ReferralFilter) -> Result<u64>;
    /// Open referrals whose deadline is at or before `now`, earliest deadline first.
    async fn due_referrals(&self, now: OffsetDateTime, limit: u32) -> Result<Vec<Referral>>;
    /// Bulk load referrals with their histories, tasks and filings, in one transaction
    /// (no notifications). Every patient and facility must exist, or nothing is written.
    async fn import_referrals(&self, rows: &[ReferralBundle]) -> Result<u64>;

    // --- follow-up tasks, filings
    async fn list_follow_ups(&self, f: &FollowUpFilter) -> Result<Vec<FollowUpTask>>;
    async fn get_follow_up(&self, id: Uuid) -> Result<Option<FollowUpTask>>;
    /// Mark a task done; [`StoreError::Conflict`] when it already is.
    async fn complete_follow_up(
        &self,
        id: Uuid,
        by: Uuid,
        at: OffsetDateTime,
        note: Option<&str>,
    ) -> Result<FollowUpTask>;
    /// Filings of these patients, newest first.
    async fn list_filings(&self, patient_ids: &[Uuid]) -> Result<Vec<Filing>>;

    // --- notifications and the outbox
    /// A facility's notifications at or after `since`, newest first.
    async fn list_notifications(
        &self,
        facility_id: Uuid,
        since: Option<OffsetDateTime>,
        limit: u32,
    ) -> Result<Vec<Notification>>;
    /// Up to when the user has read their notifications.
    async fn notifications_seen_until(&self, user_id: Uuid) -> Result<Option<OffsetDateTime>>;
    async fn mark_notifications_seen(&self, user_id: Uuid, until: OffsetDateTime) -> Result<()>;
    /// Messages not yet delivered, oldest first.
    async fn pending_outbox(&self, limit: u32) -> Result<Vec<OutboxMessage>>;
    /// Mark messages delivered; returns how many were pending.
    async fn mark_outbox_delivered(&self, ids: &[Uuid], at: OffsetDateTime) -> Result<u64>;

    // --- settlements (issue 6)
    /// Settle one bill in one write transaction:
    /// 1. idempotency: if the facility already has a settlement with `req.txn_no`, return it
    ///    with `replayed: true` when it is for the same patient and the same lines, else
    ///    [`StoreError::TxnNumberUsed`] (the number was used for another bill);
    /// 2. the patient must exist in `req.region_key` and be active, the facility must exist
    ///    and have the claim's tier ([`StoreError::NotFound`], [`StoreError::Domain`]); the
    ///    encounter, if given, must exist and be the patient's at this facility, and must not
    ///    have a settlement in force ([`StoreError::EncounterSettled`]);
    /// 3. the person's accumulators of the claim's year are read inside the transaction and
    ///    put into the claim, which is adjudicated (a refusal is [`StoreError::Domain`]);
    /// 4. the settlement is written and the accumulators set to the split's `after`.
    ///
    /// Nothing is written when any step fails. Concurrent settlements for one person are
    /// serialised (SQLite's writer lock; PostgreSQL the person's accumulator row locked), so two never
    /// use the same remaining ceiling or pool.
    async fn settle(&self, req: &SettleRequest, policies: &PolicySet) -> Result<SettlementRecord>;
    /// Reverse (冲正) a settlement: subtract exactly its fund payment from the accumulators of
    /// its year and setting and mark it reversed, in one transaction; its encounter may then
    /// be settled again. Idempotent: reversing a reversed settlement with the same
    /// `reversal_txn_no` returns it (`replayed: true`); with another number, or with a number
    /// the facility already used for another reversal, [`StoreError::Conflict`]. An unknown
    /// settlement is [`StoreError::NotFound`].
    /// The `reason` is required (trimmed, 1 to 200 characters, else
    /// `settlement.reversal_reason`, nothing written) and stored; a replay answers the first
    /// reversal's reason.
    async fn reverse_settlement(
        &self,
        settlement_id: Uuid,
        reversal_txn_no: &str,
        reason: &str,
        at: OffsetDateTime,
    ) -> Result<SettlementRecord>;
    async fn get_settlement(&self, id: Uuid) -> Result<Option<SettlementRecord>>;
    async fn find_settlement_by_txn(&self, facility_id: Uuid, txn_no: &str) -> Result<Option<SettlementRecord>>;
    /// The person's fund paid in `year` (zeros when nothing was settled);
    /// `stay_deductible_paid_fen` is always 0 (stays are not tracked across bills).
    async fn accumulators(&self, patient_id: Uuid, year: i32) -> Result<Accumulators>;
    async fn list_settlements(&self, f: &SettlementFilter) -> Result<Vec<SettlementRecord>>;
    /// The totals of every settlement `f` selects, whatever its `after` and `limit` (so a
    /// journal read page by page shows the whole day's figures on each page).
    async fn settlement_totals(&self, f: &SettlementFilter) -> Result<SettlementTotals>;
    /// Fund payments of the settlements in force with a service date in
    /// `[from, to_exclusive)`, per month and tier, and per facility when `by_facility`
    /// (`facility_id` is `None` otherwise); only these facilities when `facility_ids` is
    /// given. Ordered by month, facility, tier.
    async fn fund_report(
        &self,
        from: time::Date,
        to_exclusive: time::Date,
        by_facility: bool,
        facility_ids: Option<&[Uuid]>,
    ) -> Result<Vec<FundReportRow>>;
    /// The outflow of one county (`insured_county` is a GB/T 2260 county code, matched
    /// against the settlement's `region_key`): settlements in force with a service date in
    /// `[from, to_exclusive)` at facilities whose region is not in that county, per month,
    /// destination (same province or not) and tier. Ordered by month, destination, tier.
    async fn outflow_report(
        &self,
        insured_county: &str,
        from: time::Date,
        to_exclusive: time::Date,
    ) -> Result<Vec<OutflowRow>>;
    /// Cross-province clearing per month: settlements in force with a service date in
    /// `[from, to_exclusive)` whose insured region's province differs from the facility's.
    /// Ordered by month, insured province, treatment province.
    async fn clearing_report(&self, from: time::Date, to_exclusive: time::Date) -> Result<Vec<ClearingRow>>;
    /// Bulk load settlements (the generator, imports) in one transaction, and add each
    /// settled one's fund to its person-year accumulator (inpatient or outpatient), so the
    /// accumulator invariant holds afterwards. Every patient (in its region) and facility
    /// must exist, or nothing is written and the first unknown one is named.
    async fn import_settlements(&self, rows: &[SettlementRecord]) -> Result<()>;

    // --- FHIR transactions (issue 7)
    /// Apply `writes` in order in ONE write transaction (a FHIR transaction Bundle's entries,
    /// each prepared and checked by the caller): each write does exactly what its own method
    /// does ([`PreparedWrite`] names them), inside the shared transaction, so a later write
    /// sees the earlier ones (a referral for a patient registered before it in the list).
    /// Any failure rolls back every write: nothing of the list is written, and the error
    /// names the failing write's index. Answers one [`WriteDone`] per write, in order.
    async fn apply_writes(&self, writes: &[PreparedWrite]) -> Result<Vec<WriteDone>, WriteFailed>;
}

/// One write of [`Store::apply_writes`].
#[derive(Debug, Clone)]
pub enum PreparedWrite {
    /// Register a patient ([`Store::create_patient`]).
    CreatePatient(Patient),
    /// Change a registration at the version it was read ([`Store::update_patient`]).
    UpdatePatient(Patient),
    /// A new referral ([`Store::create_referral`]; with `access`, [`Store::create_referral_logged`]).
    CreateReferral { change: Change, access: Option<AccessLogEntry> },
    /// One referral step ([`Store::apply_referral_change`]; with `access`,
    /// [`Store::apply_referral_change_logged`]).
    ReferralStep { change: Change, access: Option<AccessLogEntry> },
    /// Lab and imaging reports ([`ResultStore::insert_results`]).
    Results(Vec<tiercare_domain::results::Report>),
    /// An access-log row ([`Store::record_access`]).
    Access(AccessLogEntry),
}

/// What one write of [`Store::apply_writes`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteDone {
    /// Written as asked (a registration, a referral, a step, an access-log row).
    Written,
    /// A registration changed: when (the stored `updated_at`, to the millisecond).
    PatientUpdated(OffsetDateTime),
    /// Result rows stored (one per observation, or per imaging report).
    Results(u64),
}

/// Why [`Store::apply_writes`] wrote nothing: the error, and the index of the write that
/// failed (`None`: the transaction itself failed, e.g. busy after retries).
#[derive(Debug)]
pub struct WriteFailed {
    pub index: Option<usize>,
    pub error: StoreError,
}

impl From<WriteFailed> for StoreError {
    fn from(w: WriteFailed) -> Self {
        w.error
    }
}
