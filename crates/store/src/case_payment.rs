//! Case-based payment: DIP scoring, CHS-DRG grouping and the global budget (issue 9): the records and the part of the [`Store`](crate::Store)
//! trait for them. Implemented per backend in `queries_case_payment.rs`.
//!
//! A region-year's settlement is computed by the domain (`dip::settle_year`) from the stays the
//! store reads ([`CasePaymentStore::case_stays`]) and written as a whole
//! ([`CasePaymentStore::replace_case_payment_year`]): the catalogue's packets, each stay's DIP and
//! DRG result with its explanation, the DRG weight table, each hospital's position. A rebuild replaces the previous one
//! in the same transaction, so readers see the old year or the new one, never a mix.

use async_trait::async_trait;
use time::OffsetDateTime;
use uuid::Uuid;

use tiercare_domain::budget::{BudgetTerms, MonthSpend};
use tiercare_domain::dip::{CaseStay, HospitalPosition, Packet, StayResult, YearOutcome, YearTerms};
use tiercare_domain::drg::weights::DrgWeight;

use crate::Result;

/// What grouping needs of an inpatient stay beyond its encounter (the generator's and a hospital
/// system's discharge record): newborn weight and discharge status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StayDetail {
    pub region_key: String,
    pub encounter_id: Uuid,
    /// Birth weight in grams (newborn stays).
    pub newborn_weight_g: Option<u32>,
    /// 离院方式: `routine`, `transfer`, `transfer_community`, `against_advice`, `died`, `other`.
    pub discharge_status: String,
}

/// The discharge statuses a [`StayDetail`] may carry.
pub const DISCHARGE_STATUSES: [&str; 6] =
    ["routine", "transfer", "transfer_community", "against_advice", "died", "other"];

/// The stored summary of a region-year's settlement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CasePaymentYear {
    /// The pooling region (GB/T 2260), e.g. `511600`.
    pub region_code: String,
    pub year: i32,
    pub terms: YearTerms,
    /// The DRG scheme's name.
    pub scheme: String,
    /// Historical cases the catalogue was built from, and their weighted mean cost.
    pub total_cases: u64,
    pub mean_cost_fen: i64,
    pub packets: u64,
    pub core_packets: u64,
    /// Stays of the year settled.
    pub stays: u64,
    pub fund_available_fen: i64,
    pub reimbursement_ratio_bp: u32,
    pub total_points_e4: i64,
    /// Fen per point, in 1/10,000.
    pub fen_per_point_e4: i64,
    /// The DRG base rate used (fen per weight 1.0000); `None` without DRG weights.
    pub drg_base_rate_fen: Option<i64>,
    /// Σ DRG weights of the year's stays that have one (1/10,000).
    pub drg_weight_sum_e4: i64,
    /// DRGs of the weight table.
    pub drg_groups: u64,
    pub built_by: Option<Uuid>,
    pub built_at: OffsetDateTime,
}

impl CasePaymentYear {
    /// The summary of a computed outcome.
    pub fn of(
        region_code: &str,
        terms: &YearTerms,
        scheme: &str,
        outcome: &YearOutcome,
        built_by: Option<Uuid>,
        built_at: OffsetDateTime,
    ) -> Self {
        let core = outcome
            .catalogue
            .packets
            .iter()
            .filter(|p| matches!(p.key, tiercare_domain::dip::PacketKey::Core { .. }))
            .count();
        CasePaymentYear {
            region_code: region_code.to_owned(),
            year: terms.year,
            terms: terms.clone(),
            scheme: scheme.to_owned(),
            total_cases: outcome.catalogue.total_cases,
            mean_cost_fen: outcome.catalogue.mean_cost_fen,
            packets: outcome.catalogue.packets.len() as u64,
            core_packets: core as u64,
            stays: outcome.stays.len() as u64,
            fund_available_fen: outcome.value.fund_available_fen,
            reimbursement_ratio_bp: outcome.value.reimbursement_ratio_bp,
            total_points_e4: outcome.value.total_points_e4,
            fen_per_point_e4: outcome.value.fen_per_point_e4(),
            drg_base_rate_fen: outcome.drg.base_rate_fen,
            drg_weight_sum_e4: outcome.drg.weight_sum_e4,
            drg_groups: outcome.drg.table.as_ref().map_or(0, |t| t.groups.len() as u64),
            built_by,
            built_at,
        }
    }
}

/// A stay's stored result, with where it belongs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredStayResult {
    pub region_key: String,
    /// The patient of the stay (for the access log).
    pub patient_id: Uuid,
    pub region_code: String,
    pub year: i32,
    pub facility_id: Uuid,
    pub result: StayResult,
}

/// A community's budget year as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredBudget {
    pub community_id: Uuid,
    pub terms: BudgetTerms,
    pub updated_by: Option<Uuid>,
    pub updated_at: OffsetDateTime,
}

/// Case-based payment: DIP scoring, CHS-DRG grouping and the global budget (issue 9).
#[async_trait]
pub trait CasePaymentStore: Send + Sync {
    /// Bulk stay details in one transaction; each must name an inpatient encounter of its
    /// region key, or nothing is written. A repeated encounter replaces its detail.
    async fn import_stay_details(&self, rows: &[StayDetail]) -> Result<u64>;

    /// The inpatient stays discharged in `years` at facilities whose region code starts with
    /// `region_prefix` (`5116` for the city 511600), with what grouping needs: the patient's
    /// sex and age at admission, the stay detail, and what the patient paid (the settlement in
    /// force of the encounter, 0 if none). Years are China (UTC+8) calendar years. Ordered by
    /// encounter id.
    async fn case_stays(&self, region_prefix: &str, years: &[i32]) -> Result<Vec<CaseStay>>;

    /// Replace the region-year's settlement by `outcome` in one transaction.
    async fn replace_case_payment_year(&self, year: &CasePaymentYear, outcome: &YearOutcome) -> Result<()>;

    /// The stored summary of a region-year.
    async fn case_payment_year(&self, region_code: &str, year: i32) -> Result<Option<CasePaymentYear>>;

    /// The region-years stored, newest first.
    async fn case_payment_years(&self) -> Result<Vec<(String, i32)>>;

    /// The catalogue's packets, core first then comprehensive, each by key; `query` filters by
    /// code (prefix, case-insensitive); at most `limit` (0 means 200; capped at 2,000) from `offset`.
    async fn dip_packets(
        &self,
        region_code: &str,
        year: i32,
        query: Option<&str>,
        limit: u32,
        offset: u32,
    ) -> Result<Vec<Packet>>;

    /// The DRG weight table of a region-year (computed from its history years), by DRG code.
    async fn drg_weights(&self, region_code: &str, year: i32) -> Result<Vec<DrgWeight>>;

    /// Hospitals' positions of a region-year (one facility, or all), by facility id.
    async fn hospital_positions(
        &self,
        region_code: &str,
        year: i32,
        facility_id: Option<Uuid>,
    ) -> Result<Vec<HospitalPosition>>;

    /// A stay's latest result (by encounter id), if a settlement covered it.
    async fn stay_result(&self, encounter_id: Uuid) -> Result<Option<StoredStayResult>>;

    /// A facility's stay results of a region-year, outliers and expert reviews first, then by
    /// cost descending; at most `limit` (0 means 100; capped at 1,000).
    async fn stay_results(
        &self,
        region_code: &str,
        year: i32,
        facility_id: Uuid,
        limit: u32,
    ) -> Result<Vec<StoredStayResult>>;

    /// Set a community's budget of a year: a new year is created; an existing one changes only
    /// if open (`BudgetTerms::check_change`), else [`crate::StoreError::Domain`] and nothing
    /// is written. The community must exist.
    async fn put_budget(
        &self,
        community_id: Uuid,
        terms: &BudgetTerms,
        by: Option<Uuid>,
        at: OffsetDateTime,
    ) -> Result<StoredBudget>;

    /// A community's budget of a year.
    async fn budget(&self, community_id: Uuid, year: i32) -> Result<Option<StoredBudget>>;

    /// The fund paid by month of the year for the community's insured residents (settlements
    /// in force of persons whose region key is the community's region code): at the
    /// community's own facilities (in county) and anywhere else (out of county). Months with
    /// no spend are left out; ordered by month.
    async fn community_spend(&self, community_id: Uuid, year: i32) -> Result<Vec<MonthSpend>>;
}
