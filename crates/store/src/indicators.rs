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

/// Shards a counter cell is spread over on PostgreSQL unless [`set_counter_shards`] says otherwise.
/// Eight: 16 settlements in flight at one facility share a row lock in pairs at most
/// (a shard is taken round robin), so about eight of them commit per WAL flush instead of one,
/// while a county-year's scorecard reads at most eight rows a cell (see migration 0014).
pub const DEFAULT_COUNTER_SHARDS: u16 = 8;
/// The most shards a cell may have (more would only lengthen reads).
pub const MAX_COUNTER_SHARDS: u16 = 64;

static COUNTER_SHARDS: std::sync::atomic::AtomicU16 = std::sync::atomic::AtomicU16::new(DEFAULT_COUNTER_SHARDS);
static NEXT_SHARD: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

/// Spread each counter cell over `n` rows on PostgreSQL from now on (clamped to
/// 1..=[`MAX_COUNTER_SHARDS`]; 1 is the unsharded layout). Process-wide; for benchmarks
/// that compare layouts (`tiercare bench settlements --counter-shards`): the numbers read are
/// the same whatever `n` (every read sums a cell's shards), only the row locks differ.
/// SQLite ignores it (one writer: one row a cell).
pub fn set_counter_shards(n: u16) {
    COUNTER_SHARDS.store(n.clamp(1, MAX_COUNTER_SHARDS), std::sync::atomic::Ordering::Relaxed);
}

/// The shards a cell is spread over on PostgreSQL now.
pub fn counter_shards() -> u16 {
    COUNTER_SHARDS.load(std::sync::atomic::Ordering::Relaxed)
}

/// The shard the next hook writes (PostgreSQL): round robin over [`counter_shards`], so the
/// transactions in flight in this process take different rows as long as there are no more
/// of them than shards.
pub(crate) fn next_counter_shard() -> i32 {
    let n = u32::from(counter_shards());
    (NEXT_SHARD.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % n) as i32
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
    /// Stored counter rows (every shard of every cell; a cell is one row on SQLite, at most
    /// [`counter_shards`] on PostgreSQL) and the distinct cells they hold.
    async fn indicator_counter_rows(&self) -> Result<(u64, u64)>;
    /// Fold every cell's shards into one row (shard 0), sums unchanged, so reads go back to one
    /// row a cell; safe while hooks write. Returns the shard rows folded (always 0 on SQLite).
    /// Run after bulk loads by [`crate::Store::analyze`]; a server may run it now and then.
    async fn fold_indicator_shards(&self) -> Result<u64>;
    /// The events of one facility's month behind its counters, oldest first, at most `limit`.
    async fn indicator_records(&self, facility_id: Uuid, month: Month, limit: u32) -> Result<Vec<IndicatorRecord>>;
}
