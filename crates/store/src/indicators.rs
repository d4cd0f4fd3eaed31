//! Reform indicators with incremental aggregates (issue 8): the records and the part of the [`Store`](crate::Store)
//! trait for them. Implemented per backend in `queries_indicators.rs`.
//!
//! Counters are kept per facility × month (Asia/Shanghai) × the patient's home county
//! (`indicator_counter`, migration 0009), updated in the transaction of each event that
//! changes them (encounters, settlements and their reversals, referrals, results reused).
//! A scorecard reads these rows only, never the events; [`IndicatorStore::rebuild_indicator_counters`]
//! recomputes them from the events and must give the same numbers.

use async_trait::async_trait;
use tiercare_domain::facility::Tier;
use tiercare_domain::indicators::{Cell, Counters, Month};
use uuid::Uuid;

use crate::Result;

tokio::task_local! {
    /// Set (to `false`) only inside [`without_counter_hooks`].
    static COUNTER_HOOKS: bool;
}

/// Run `fut` with the counter updates of the event writers turned off, for the writes it
/// makes itself (a task-local switch: other tasks, such as the server's requests, are not
/// affected). For benchmarks only (`tiercare bench indicators hooks` measures what the
/// updates cost): events written inside are missing from the counters until
/// [`IndicatorStore::rebuild_indicator_counters`].
pub async fn without_counter_hooks<F: std::future::Future>(fut: F) -> F::Output {
    COUNTER_HOOKS.scope(false, fut).await
}

/// Are the counter updates on here (everywhere but inside [`without_counter_hooks`])?
pub fn counter_hooks() -> bool {
    COUNTER_HOOKS.try_with(|on| *on).unwrap_or(true)
}

/// One row of counters: a facility's month for the patients of one home county.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CounterRow {
    pub facility_id: Uuid,
    pub month: Month,
    /// The patients' home county (GB/T 2260, their `region_key`).
    pub home_region: String,
    pub counters: Counters,
}

/// Which counter rows a scorecard reads: the months `from..=to` of the facilities named,
/// and of every facility for the patients whose home county code starts with `home_prefix`
/// (the community's area: `511621` a county, `5116` a city; residents treated elsewhere).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CounterQuery {
    pub from: Month,
    pub to: Month,
    pub facility_ids: Vec<Uuid>,
    pub home_prefix: Option<String>,
}

/// A scorecard's cells, summed in the database: the months `from..=to` of the area whose
/// GB/T 2260 codes start with `area_prefix` (its facilities, and its residents anywhere),
/// grouped by tier, month, "in scope" (a facility of the area, narrowed to `facility_id` and
/// `tier` when given) and "resident" (home county in the area). A few hundred rows a year.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CellQuery {
    pub from: Month,
    pub to: Month,
    pub area_prefix: String,
    pub facility_id: Option<Uuid>,
    pub tier: Option<Tier>,
}

/// One event behind a facility's month (the drill-down's last level): no patient name or
/// identifier, only what the counters count.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct IndicatorRecord {
    /// `encounter`, `settlement` or `referral`.
    pub source: &'static str,
    pub id: Uuid,
    /// Encounter class, settlement setting or referral direction.
    pub kind: String,
    /// Unix milliseconds (encounter start, referral request) or the service date at 00:00 China time.
    pub at_ms: i64,
    pub home_region: String,
    /// Total cost or bill total, fen (0 for a referral).
    pub amount_fen: i64,
    /// Fund payment, fen (settlements only).
    pub fund_fen: i64,
}

/// Reform indicators with incremental aggregates (issue 8).
#[async_trait]
pub trait IndicatorStore: Send + Sync {
    /// The counter rows a scorecard needs (see [`CounterQuery`]); reads no event.
    async fn indicator_counters(&self, q: &CounterQuery) -> Result<Vec<CounterRow>>;
    /// The cells a scorecard computes from (see [`CellQuery`]); reads no event.
    async fn indicator_cells(&self, q: &CellQuery) -> Result<Vec<Cell>>;
    /// Every counter row, sorted (for comparison with [`Self::indicator_counters_from_events`]).
    async fn all_indicator_counters(&self) -> Result<Vec<CounterRow>>;
    /// The counters as the events give them, computed now without writing (sorted, zero rows left out).
    async fn indicator_counters_from_events(&self) -> Result<Vec<CounterRow>>;
    /// Replace the counters with those computed from the events, in one transaction. Returns rows written.
    async fn rebuild_indicator_counters(&self) -> Result<u64>;
    /// The events of one facility's month behind its counters, oldest first, at most `limit`.
    async fn indicator_records(&self, facility_id: Uuid, month: Month, limit: u32) -> Result<Vec<IndicatorRecord>>;
}
