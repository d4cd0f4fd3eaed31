// Reform indicators with incremental aggregates (issue 8): included into `mod indicators` inside `queries.rs`, so it is
// compiled once per backend like the rest. SQL here must be valid on both SQLite and
// PostgreSQL.
//
// Invariant (what the contract suite checks): every `indicator_counter` row holds, for its
// facility, month (Asia/Shanghai) and home county, the sums the events give — encounters by
// start month, settlements in force by service month, referrals by sending facility and
// request month — because each event's write calls a hook here inside its own transaction
// (`on_*`), and `rebuild` recomputes the same sums from the events (results reused: the results
// part's `result_order` rows with outcome 'reused', by ordering facility and order month).
//
// Hooks: one upsert per event (`ON CONFLICT … DO UPDATE SET c = c + excluded.c`), or per
// distinct cell of a bulk import, cells in sorted order so concurrent writers take their
// rows in one order.
//
// Shards (migration 0014): a cell is stored in up to `counter_shards()` rows on PostgreSQL,
// keyed by `shard`, so concurrent transactions of one facility and month do not queue on one
// row lock held until their WAL flush. A single event adds to the lowest shard no other
// transaction holds (`hook_one`: a new shard only when all are held, so rows follow actual
// contention); a bulk import adds all its cells to one shard taken round robin (`shard()`;
// the loaders fold them back afterwards, `fold_shards` via `Store::analyze`). Every read sums a
// cell's shards; a rebuild writes shard 0. SQLite writes shard 0 only (a single writer:
// nothing to spread).

#[allow(unused_imports)]
use super::*;

use std::collections::BTreeMap;

use tiercare_domain::indicators::{Counters, Measure, Month, is_drug_code};
use tiercare_domain::referral::Direction;

use tiercare_domain::facility::Tier;
use tiercare_domain::indicators::Cell;

use crate::{CellQuery, CounterQuery, CounterRow, IndicatorRecord, SettlementRecord};

/// A cell's key: facility, month, home county.
type Key = (Uuid, Month, String);
type Cells = BTreeMap<Key, Counters>;

/// Milliseconds of the China offset (UTC+8) and of a day, for day numbers in SQL.
const CHINA_OFFSET_MS: i64 = 8 * 3_600_000;
const DAY_MS: i64 = 86_400_000;
/// Cells per multi-row upsert (14 columns).
const CELL_CHUNK: usize = 500;
/// Settlements read per page when rebuilding the drug counters.
const REBUILD_PAGE: i64 = 20_000;

fn measure_cols() -> String {
    Measure::ALL.iter().map(|m| m.as_str()).collect::<Vec<_>>().join(", ")
}

/// Every measure summed over a group's rows (a cell's shards), named as the measure.
fn measure_sums() -> String {
    Measure::ALL.iter().map(|m| format!("CAST(SUM({0}) AS BIGINT) AS {0}", m.as_str())).collect::<Vec<_>>().join(", ")
}

/// The shard a hook writes: round robin on PostgreSQL, always 0 on SQLite.
fn shard() -> i32 {
    if matches!(BACKEND, Backend::Postgres) { crate::next_counter_shard() } else { 0 }
}

/// The key of the counter table, as the upserts' conflict target.
const COUNTER_KEY: &str = "facility_id, month, home_region, shard";

/// `ON CONFLICT … DO UPDATE SET` adding every measure.
fn add_on_conflict() -> String {
    let set = Measure::ALL
        .iter()
        .map(|m| format!("{0} = indicator_counter.{0} + excluded.{0}", m.as_str()))
        .collect::<Vec<_>>()
        .join(", ");
    format!(" ON CONFLICT ({COUNTER_KEY}) DO UPDATE SET {set}")
}

/// The one-cell upsert of the measures in `mask` (bit `i` = `Measure::ALL[i]`): the others
/// are 0 in a new row and left alone in an existing one, so an encounter binds five values
/// and updates two columns. One text per mask, built once, so the driver's statement cache
/// prepares each once (an event kind uses one or two masks).
fn upsert_one_sql(mask: usize) -> &'static str {
    static SQL: [std::sync::OnceLock<String>; 1 << Measure::COUNT] =
        [const { std::sync::OnceLock::new() }; 1 << Measure::COUNT];
    SQL[mask].get_or_init(|| {
        let mut k = 4;
        let values = Measure::ALL
            .iter()
            .enumerate()
            .map(|(i, _)| {
                if mask & (1 << i) == 0 {
                    "0".to_owned()
                } else {
                    k += 1;
                    format!("${k}")
                }
            })
            .collect::<Vec<_>>()
            .join(", ");
        let set = Measure::ALL
            .iter()
            .enumerate()
            .filter(|(i, _)| mask & (1 << i) != 0)
            .map(|(_, m)| format!("{0} = indicator_counter.{0} + excluded.{0}", m.as_str()))
            .collect::<Vec<_>>()
            .join(", ");
        format!(
            "INSERT INTO indicator_counter ({COUNTER_KEY}, {}) VALUES ($1, $2, $3, $4, {values})
             ON CONFLICT ({COUNTER_KEY}) DO UPDATE SET {set}",
            measure_cols()
        )
    })
}

/// Add `c` to one stored cell's shard `shard`: one statement, binding only its non-zero measures.
async fn upsert_one(tx: &mut Tx, facility: Uuid, month: Month, home: &str, shard: i32, c: &Counters) -> Result<()> {
    let mask = c.0.iter().enumerate().filter(|(_, v)| **v != 0).fold(0, |m, (i, _)| m | (1 << i));
    if mask == 0 {
        return Ok(());
    }
    let mut q =
        query(AssertSqlSafe(upsert_one_sql(mask))).bind(facility).bind(month.to_string()).bind(home).bind(shard);
    for v in c.0.iter().filter(|v| **v != 0) {
        q = q.bind(*v);
    }
    q.execute(&mut **tx).await?;
    Ok(())
}

/// Add `c` to the stored cells' shard `shard`: one statement for one cell, else one multi-row
/// upsert per chunk.
async fn upsert(tx: &mut Tx, cells: &Cells, shard: i32) -> Result<()> {
    let cells: Vec<(&Key, &Counters)> = cells.iter().filter(|(_, c)| !c.is_zero()).collect();
    if let [((facility, month, home), c)] = cells.as_slice() {
        return upsert_one(tx, *facility, *month, home, shard, c).await;
    }
    let set = add_on_conflict();
    for chunk in cells.chunks(CELL_CHUNK) {
        let mut qb: QueryBuilder<Db> =
            QueryBuilder::new(format!("INSERT INTO indicator_counter ({COUNTER_KEY}, {}) ", measure_cols()));
        qb.push_values(chunk, |mut b, ((facility, month, home), c)| {
            b.push_bind(*facility).push_bind(month.to_string()).push_bind(home.clone()).push_bind(shard);
            for v in c.0 {
                b.push_bind(v);
            }
        });
        qb.push(set.as_str());
        qb.build().execute(&mut **tx).await?;
    }
    Ok(())
}

/// A hook's update: `upsert`, unless a benchmark turned the hooks off for its task.
async fn hook(tx: &mut Tx, cells: &Cells) -> Result<()> {
    if !crate::counter_hooks() {
        return Ok(());
    }
    upsert(tx, cells, shard()).await
}

/// PostgreSQL: the update of the measures in `mask` into the first shard of a cell that no
/// other transaction holds (`FOR UPDATE SKIP LOCKED`); no row when every shard is held (or the
/// cell has none yet). One text per mask, like `upsert_one_sql`.
fn update_free_shard_sql(mask: usize) -> &'static str {
    static SQL: [std::sync::OnceLock<String>; 1 << Measure::COUNT] =
        [const { std::sync::OnceLock::new() }; 1 << Measure::COUNT];
    SQL[mask].get_or_init(|| {
        let mut k = 3;
        let set = Measure::ALL
            .iter()
            .enumerate()
            .filter(|(i, _)| mask & (1 << i) != 0)
            .map(|(_, m)| {
                k += 1;
                format!("{0} = {0} + ${k}", m.as_str())
            })
            .collect::<Vec<_>>()
            .join(", ");
        format!(
            "UPDATE indicator_counter SET {set}
             WHERE facility_id = $1 AND month = $2 AND home_region = $3 AND shard = (
               SELECT shard FROM indicator_counter WHERE facility_id = $1 AND month = $2 AND home_region = $3
               ORDER BY shard LIMIT 1 FOR UPDATE SKIP LOCKED)"
        )
    })
}

/// A hook's update of one cell (no map), unless turned off. SQLite: `upsert_one` into shard 0.
/// PostgreSQL: add to the lowest shard no other transaction holds; only when all are held
/// (or the cell is new) upsert shard `shard()` (round robin), so a cell has as many rows as
/// writers ever overlapped on it (at most `counter_shards()`): one for most cells, a few for
/// a busy desk's month.
async fn hook_one(tx: &mut Tx, facility: Uuid, month: Month, home: &str, c: &Counters) -> Result<()> {
    if !crate::counter_hooks() {
        return Ok(());
    }
    if !matches!(BACKEND, Backend::Postgres) || crate::counter_shards() == 1 {
        // SQLite, or the unsharded layout (a benchmark's baseline): the cell's one row
        return upsert_one(tx, facility, month, home, 0, c).await;
    }
    let mask = c.0.iter().enumerate().filter(|(_, v)| **v != 0).fold(0, |m, (i, _)| m | (1 << i));
    if mask == 0 {
        return Ok(());
    }
    let mut q = query(AssertSqlSafe(update_free_shard_sql(mask))).bind(facility).bind(month.to_string()).bind(home);
    for v in c.0.iter().filter(|v| **v != 0) {
        q = q.bind(*v);
    }
    if q.execute(&mut **tx).await?.rows_affected() == 1 {
        return Ok(());
    }
    // every shard held (or a new cell): a shard taken round robin, made if missing
    upsert_one(tx, facility, month, home, shard(), c).await
}

fn encounter_cell(cells: &mut Cells, e: &Encounter) {
    let c = cells.entry((e.facility_id, Month::of_millis(ms(e.started_at)), e.region_key.clone())).or_default();
    encounter_counts(c, e.class, 1, e.total_cost_fen);
}

fn encounter_counts(c: &mut Counters, class: EncounterClass, n: i64, cost: i64) {
    match class {
        EncounterClass::Inpatient => {
            c.add(Measure::Stays, n);
            c.add(Measure::StayCostFen, cost);
        }
        EncounterClass::Outpatient | EncounterClass::Emergency => {
            c.add(Measure::Visits, n);
            c.add(Measure::VisitCostFen, cost);
        }
    }
}

fn drug_fen(items: &[tiercare_domain::billing::PricedLine]) -> i64 {
    items.iter().filter(|l| is_drug_code(&l.code)).map(|l| l.quantity * l.unit_price_fen).sum()
}

/// `sign` +1 for a settlement taking effect, −1 for its reversal.
fn settlement_cell(cells: &mut Cells, r: &SettlementRecord, sign: i64) {
    let c = cells.entry((r.facility_id, Month::of_date(r.claim.date), r.region_key.clone())).or_default();
    c.absorb(&settlement_counts(r, sign));
}

fn settlement_counts(r: &SettlementRecord, sign: i64) -> Counters {
    let mut c = Counters::default();
    c.add(Measure::FundFen, sign * r.split.fund_fen);
    c.add(Measure::SettledFen, sign * r.split.total_fen);
    c.add(Measure::DrugFen, sign * drug_fen(&r.items));
    c
}

fn referral_measure(d: Direction) -> Option<Measure> {
    match d {
        Direction::Upward => Some(Measure::UpReferrals),
        Direction::Downward => Some(Measure::DownReferrals),
        Direction::Lateral => None,
    }
}

fn referral_cell(cells: &mut Cells, r: &Referral, d: Direction, sign: i64) {
    if let Some(m) = referral_measure(d) {
        cells
            .entry((r.from_facility_id, Month::of_millis(ms(r.requested_at)), r.region_key.clone()))
            .or_default()
            .add(m, sign);
    }
}

// ---------------------------------------------------------------------------------------
// Hooks: called by the event writers inside their transaction.
// ---------------------------------------------------------------------------------------

/// An encounter was recorded (`create_encounter`).
pub(super) async fn on_encounter(tx: &mut Tx, e: &Encounter) -> Result<()> {
    let mut c = Counters::default();
    encounter_counts(&mut c, e.class, 1, e.total_cost_fen);
    hook_one(tx, e.facility_id, Month::of_millis(ms(e.started_at)), &e.region_key, &c).await
}

/// Encounters were imported (`import_encounters`).
pub(super) async fn on_encounters_imported(tx: &mut Tx, rows: &[Encounter]) -> Result<()> {
    let mut cells = Cells::new();
    rows.iter().for_each(|e| encounter_cell(&mut cells, e));
    hook(tx, &cells).await
}

/// A settlement took effect (`settle`, after its row is written; not for a replay).
pub(super) async fn on_settled(tx: &mut Tx, r: &SettlementRecord) -> Result<()> {
    hook_one(tx, r.facility_id, Month::of_date(r.claim.date), &r.region_key, &settlement_counts(r, 1)).await
}

/// A settlement was reversed (`reverse_settlement`): its sums leave its service month.
pub(super) async fn on_reversed(tx: &mut Tx, r: &SettlementRecord) -> Result<()> {
    hook_one(tx, r.facility_id, Month::of_date(r.claim.date), &r.region_key, &settlement_counts(r, -1)).await
}

/// Settlements were imported (`import_settlements`): those in force count.
pub(super) async fn on_settlements_imported(tx: &mut Tx, rows: &[SettlementRecord]) -> Result<()> {
    let mut cells = Cells::new();
    rows.iter()
        .filter(|r| r.status == crate::SettlementStatus::Settled)
        .for_each(|r| settlement_cell(&mut cells, r, 1));
    hook(tx, &cells).await
}

/// A referral was requested (`create_referral`).
pub(super) async fn on_referral_created(tx: &mut Tx, r: &Referral) -> Result<()> {
    let mut cells = Cells::new();
    referral_cell(&mut cells, r, r.direction, 1);
    hook(tx, &cells).await
}

/// Referrals were imported (`import_referrals`).
pub(super) async fn on_referrals_imported(tx: &mut Tx, rows: &[&Referral]) -> Result<()> {
    let mut cells = Cells::new();
    rows.iter().for_each(|r| referral_cell(&mut cells, r, r.direction, 1));
    hook(tx, &cells).await
}

/// A referral step (`apply_referral_change`, before its UPDATE): a redirect or escalation
/// may change the direction (a new receiver of another tier); the count moves with it.
pub(super) async fn on_referral_change(tx: &mut Tx, c: &tiercare_domain::referral::Change) -> Result<()> {
    if c.event.to_facility_id.is_none() || !crate::counter_hooks() {
        return Ok(());
    }
    let r = &c.referral;
    let row = query("SELECT direction FROM referral WHERE region_key = $1 AND id = $2")
        .bind(r.region_key.as_str())
        .bind(r.id)
        .fetch_optional(&mut **tx)
        .await?;
    let Some(row) = row else { return Ok(()) };
    let stored: String = row.try_get("direction")?;
    let Some(before) = Direction::parse(&stored) else { return Ok(()) };
    if before == r.direction {
        return Ok(());
    }
    let mut cells = Cells::new();
    referral_cell(&mut cells, r, before, -1);
    referral_cell(&mut cells, r, r.direction, 1);
    hook(tx, &cells).await
}

/// A recognized result was reused instead of repeating the test (issue 5's hook): one
/// repeat avoided at `facility_id` (the ordering facility), `saved_fen` its price.
pub(super) async fn on_result_reused(
    tx: &mut Tx,
    facility_id: Uuid,
    home_region: &str,
    at: OffsetDateTime,
    saved_fen: i64,
) -> Result<()> {
    let mut c = Counters::default();
    c.add(Measure::ResultsReused, 1);
    c.add(Measure::ResultsSavedFen, saved_fen);
    hook_one(tx, facility_id, Month::of_millis(ms(at)), home_region, &c).await
}

// ---------------------------------------------------------------------------------------
// Reads
// ---------------------------------------------------------------------------------------

fn counter_row(r: &DbRow) -> Result<CounterRow> {
    let month: String = r.try_get("month")?;
    let month = Month::parse(&month).ok_or_else(|| StoreError::Corrupt(format!("indicator month '{month}'")))?;
    let mut counters = Counters::default();
    for m in Measure::ALL {
        counters.add(*m, r.try_get(m.as_str())?);
    }
    Ok(CounterRow { facility_id: r.try_get("facility_id")?, month, home_region: r.try_get("home_region")?, counters })
}

/// The first text after every text starting with `prefix` (digits: the last one plus one).
fn prefix_end(prefix: &str) -> String {
    let mut b = prefix.as_bytes().to_vec();
    match b.last_mut() {
        Some(last) => *last += 1,
        None => b.push(0x7f),
    }
    String::from_utf8_lossy(&b).into_owned()
}

pub(super) async fn counters(s: &This, q: &CounterQuery) -> Result<Vec<CounterRow>> {
    if q.facility_ids.is_empty() && q.home_prefix.is_none() {
        return Ok(Vec::new());
    }
    let mut qb: QueryBuilder<Db> = QueryBuilder::new(format!(
        "SELECT facility_id, month, home_region, {} FROM indicator_counter WHERE month >= ",
        measure_sums()
    ));
    qb.push_bind(q.from.to_string()).push(" AND month <= ").push_bind(q.to.to_string()).push(" AND (");
    if let Some(prefix) = &q.home_prefix {
        // the codes starting with the prefix: [prefix, prefix with its last digit + 1)
        qb.push("(home_region >= ")
            .push_bind(prefix.clone())
            .push(" AND home_region < ")
            .push_bind(prefix_end(prefix))
            .push(")");
        if !q.facility_ids.is_empty() {
            qb.push(" OR ");
        }
    }
    if !q.facility_ids.is_empty() {
        qb.push("facility_id IN (");
        let mut b = qb.separated(", ");
        for id in &q.facility_ids {
            b.push_bind(*id);
        }
        qb.push(")");
    }
    qb.push(") GROUP BY facility_id, month, home_region");
    let rows = qb.build().fetch_all(s.read()).await?;
    rows.iter().map(counter_row).collect()
}

pub(super) async fn cells(s: &This, q: &CellQuery) -> Result<Vec<Cell>> {
    let sums = Measure::ALL
        .iter()
        .map(|m| format!("CAST(SUM(c.{0}) AS BIGINT) AS {0}", m.as_str()))
        .collect::<Vec<_>>()
        .join(", ");
    // $1, $2: the area's code range; $3, $4: the months; $5, $6: the facility and tier narrowing
    let in_area = "f.region_code >= $1 AND f.region_code < $2";
    let resident = "c.home_region >= $1 AND c.home_region < $2";
    let sql = format!(
        "SELECT f.tier AS tier, c.month AS month,
           CAST(CASE WHEN {in_area} AND ($5 IS NULL OR f.id = $5) AND ($6 IS NULL OR f.tier = $6) THEN 1 ELSE 0 END AS BIGINT)
             AS in_scope,
           CAST(CASE WHEN {resident} THEN 1 ELSE 0 END AS BIGINT) AS resident, {sums}
         FROM indicator_counter c JOIN facility f ON f.id = c.facility_id
         WHERE c.month >= $3 AND c.month <= $4 AND (({in_area}) OR ({resident}))
         GROUP BY f.tier, c.month, in_scope, resident"
    );
    let rows = query(AssertSqlSafe(sql))
        .bind(q.area_prefix.clone())
        .bind(prefix_end(&q.area_prefix))
        .bind(q.from.to_string())
        .bind(q.to.to_string())
        .bind(q.facility_id)
        .bind(q.tier.map(Tier::as_str))
        .fetch_all(s.read())
        .await?;
    rows.iter()
        .map(|r| {
            let tier: String = r.try_get("tier")?;
            let month: String = r.try_get("month")?;
            let mut counters = Counters::default();
            for m in Measure::ALL {
                counters.add(*m, r.try_get(m.as_str())?);
            }
            Ok(Cell {
                tier: Tier::parse(&tier).ok_or_else(|| StoreError::Corrupt(format!("facility tier '{tier}'")))?,
                month: Month::parse(&month).ok_or_else(|| StoreError::Corrupt(format!("indicator month '{month}'")))?,
                in_scope: r.try_get::<i64, _>("in_scope")? == 1,
                resident: r.try_get::<i64, _>("resident")? == 1,
                counters,
            })
        })
        .collect()
}

pub(super) async fn all_counters(s: &This) -> Result<Vec<CounterRow>> {
    let rows = query(AssertSqlSafe(format!(
        "SELECT facility_id, month, home_region, {} FROM indicator_counter GROUP BY facility_id, month, home_region",
        measure_sums()
    )))
    .fetch_all(s.read())
    .await?;
    let mut out = rows.iter().map(counter_row).collect::<Result<Vec<_>>>()?;
    out.retain(|r| !r.counters.is_zero());
    out.sort_by(|a, b| (a.facility_id, a.month, &a.home_region).cmp(&(b.facility_id, b.month, &b.home_region)));
    Ok(out)
}

// ---------------------------------------------------------------------------------------
// Rebuild from the events
// ---------------------------------------------------------------------------------------

/// Encounters grouped by facility, China day and home county in SQL (a few rows per
/// facility-day), then folded into months here.
async fn encounter_cells<'e, E: Executor<'e, Database = Db>>(e: E, cells: &mut Cells) -> Result<()> {
    let sql = format!(
        "SELECT facility_id, (started_at + {CHINA_OFFSET_MS}) / {DAY_MS} AS day, region_key, class, COUNT(*) AS n,
           CAST(SUM(total_cost_fen) AS BIGINT) AS cost
         FROM encounter GROUP BY facility_id, (started_at + {CHINA_OFFSET_MS}) / {DAY_MS}, region_key, class"
    );
    for r in query(AssertSqlSafe(sql)).fetch_all(e).await? {
        let class: String = r.try_get("class")?;
        let class =
            EncounterClass::parse(&class).ok_or_else(|| StoreError::Corrupt(format!("encounter class '{class}'")))?;
        let key = (r.try_get("facility_id")?, Month::of_day_number(r.try_get("day")?), r.try_get("region_key")?);
        encounter_counts(cells.entry(key).or_default(), class, r.try_get("n")?, r.try_get("cost")?);
    }
    Ok(())
}

/// Referrals by sending facility, China day of the request and home county.
async fn referral_cells<'e, E: Executor<'e, Database = Db>>(e: E, cells: &mut Cells) -> Result<()> {
    let sql = format!(
        "SELECT from_facility_id, (requested_at + {CHINA_OFFSET_MS}) / {DAY_MS} AS day, region_key, direction, COUNT(*) AS n
         FROM referral GROUP BY from_facility_id, (requested_at + {CHINA_OFFSET_MS}) / {DAY_MS}, region_key, direction"
    );
    for r in query(AssertSqlSafe(sql)).fetch_all(e).await? {
        let d: String = r.try_get("direction")?;
        let Some(m) = Direction::parse(&d).and_then(referral_measure) else { continue };
        let key = (r.try_get("from_facility_id")?, Month::of_day_number(r.try_get("day")?), r.try_get("region_key")?);
        cells.entry(key).or_default().add(m, r.try_get("n")?);
    }
    Ok(())
}

fn service_month(r: &DbRow) -> Result<Month> {
    let month: String = r.try_get("month")?;
    Month::parse(&month).ok_or_else(|| StoreError::Corrupt(format!("service month '{month}'")))
}

/// Settlements in force: fund and bill sums by facility, service month and home county.
async fn settlement_cells<'e, E: Executor<'e, Database = Db>>(e: E, cells: &mut Cells) -> Result<()> {
    let rows = query(
        "SELECT facility_id, substr(service_date, 1, 7) AS month, region_key,
           CAST(SUM(fund_fen) AS BIGINT) AS fund, CAST(SUM(total_fen) AS BIGINT) AS total
         FROM settlement WHERE status = 'settled'
         GROUP BY facility_id, substr(service_date, 1, 7), region_key",
    )
    .fetch_all(e)
    .await?;
    for r in rows {
        let c = cells.entry((r.try_get("facility_id")?, service_month(&r)?, r.try_get("region_key")?)).or_default();
        c.add(Measure::FundFen, r.try_get("fund")?);
        c.add(Measure::SettledFen, r.try_get("total")?);
    }
    Ok(())
}

/// One page (in key order after `after`) of the drug lines of settlements in force, from
/// their stored items; the key of the last row when the page was full.
async fn drug_page<'e, E: Executor<'e, Database = Db>>(
    e: E,
    after: &Option<(String, Uuid)>,
    cells: &mut Cells,
) -> Result<Option<(String, Uuid)>> {
    let mut qb: QueryBuilder<Db> = QueryBuilder::new(
        "SELECT region_key, id, facility_id, substr(service_date, 1, 7) AS month, items FROM settlement
         WHERE status = 'settled' AND items IS NOT NULL",
    );
    if let Some((region, id)) = after {
        qb.push(" AND (region_key > ").push_bind(region.clone());
        qb.push(" OR (region_key = ").push_bind(region.clone()).push(" AND id > ").push_bind(*id).push("))");
    }
    qb.push(" ORDER BY region_key, id LIMIT ").push_bind(REBUILD_PAGE);
    let rows = qb.build().fetch_all(e).await?;
    for r in &rows {
        let items: String = r.try_get("items")?;
        let lines: Vec<(String, i64, i64)> =
            serde_json::from_str(&items).map_err(|err| StoreError::Corrupt(format!("settlement items: {err}")))?;
        let drug: i64 = lines.iter().filter(|(code, _, _)| is_drug_code(code)).map(|(_, q, p)| q * p).sum();
        cells
            .entry((r.try_get("facility_id")?, service_month(r)?, r.try_get("region_key")?))
            .or_default()
            .add(Measure::DrugFen, drug);
    }
    match rows.last() {
        Some(r) if rows.len() as i64 == REBUILD_PAGE => Ok(Some((r.try_get("region_key")?, r.try_get("id")?))),
        _ => Ok(None),
    }
}

fn sorted_rows(cells: Cells) -> Vec<CounterRow> {
    cells
        .into_iter()
        .filter(|(_, c)| !c.is_zero())
        .map(|((facility_id, month, home_region), counters)| CounterRow { facility_id, month, home_region, counters })
        .collect()
}

/// Results reused (the results part's `result_order` rows with outcome `reused`), by
/// ordering facility, China day of the order and home county.
async fn reuse_cells<'e, E: Executor<'e, Database = Db>>(e: E, cells: &mut Cells) -> Result<()> {
    let sql = format!(
        "SELECT facility_id, (ordered_at + {CHINA_OFFSET_MS}) / {DAY_MS} AS day, region_key, COUNT(*) AS n,
           CAST(SUM(price_fen) AS BIGINT) AS saved
         FROM result_order WHERE outcome = 'reused'
         GROUP BY facility_id, (ordered_at + {CHINA_OFFSET_MS}) / {DAY_MS}, region_key"
    );
    for r in query(AssertSqlSafe(sql)).fetch_all(e).await? {
        let key = (r.try_get("facility_id")?, Month::of_day_number(r.try_get("day")?), r.try_get("region_key")?);
        let c = cells.entry(key).or_default();
        c.add(Measure::ResultsReused, r.try_get("n")?);
        c.add(Measure::ResultsSavedFen, r.try_get("saved")?);
    }
    Ok(())
}

pub(super) async fn counters_from_events(s: &This) -> Result<Vec<CounterRow>> {
    let mut cells = Cells::new();
    encounter_cells(s.read(), &mut cells).await?;
    referral_cells(s.read(), &mut cells).await?;
    settlement_cells(s.read(), &mut cells).await?;
    let mut after = None;
    while let Some(next) = drug_page(s.read(), &after, &mut cells).await? {
        after = Some(next);
    }
    reuse_cells(s.read(), &mut cells).await?;
    Ok(sorted_rows(cells))
}

async fn rebuild_tx(tx: &mut Tx) -> Result<u64> {
    let mut cells = Cells::new();
    encounter_cells(&mut **tx, &mut cells).await?;
    referral_cells(&mut **tx, &mut cells).await?;
    settlement_cells(&mut **tx, &mut cells).await?;
    let mut after = None;
    while let Some(next) = drug_page(&mut **tx, &after, &mut cells).await? {
        after = Some(next);
    }
    reuse_cells(&mut **tx, &mut cells).await?;
    query("DELETE FROM indicator_counter").execute(&mut **tx).await?;
    upsert(tx, &cells, 0).await?;
    Ok(cells.values().filter(|c| !c.is_zero()).count() as u64)
}

pub(super) async fn rebuild(s: &This) -> Result<u64> {
    let rows = s.transact(&(), |tx, ()| Box::pin(rebuild_tx(tx))).await?;
    if matches!(BACKEND, Backend::Postgres) {
        // every old row is now dead: reclaim them before the next scorecard scans the table
        raw_sql("VACUUM ANALYZE indicator_counter").execute(s.read()).await?;
    }
    Ok(rows)
}

/// PostgreSQL: move every shard's counts into shard 0 of its cell, in one statement (the
/// shards' rows deleted, their sums added to shard 0). Exact whatever runs at the same time:
/// the sums are those of the row versions the DELETE removed (READ COMMITTED: a version a
/// concurrent hook commits meanwhile is the one deleted and returned), and a hook that adds to
/// a deleted shard afterwards makes a new row. Returns the shard rows folded.
async fn fold_tx(tx: &mut Tx) -> Result<u64> {
    let cols = measure_cols();
    let sql = format!(
        "WITH gone AS (DELETE FROM indicator_counter WHERE shard <> 0 RETURNING facility_id, month, home_region, {cols}),
           n AS (SELECT COUNT(*) AS n FROM gone),
           folded AS (INSERT INTO indicator_counter ({COUNTER_KEY}, {cols})
             SELECT facility_id, month, home_region, 0, {} FROM gone GROUP BY facility_id, month, home_region
             ORDER BY facility_id, month, home_region{})
         SELECT n FROM n",
        measure_sums(),
        add_on_conflict()
    );
    let n: i64 = query(AssertSqlSafe(sql)).fetch_one(&mut **tx).await?.try_get("n")?;
    Ok(n as u64)
}

pub(super) async fn fold_shards(s: &This) -> Result<u64> {
    if !matches!(BACKEND, Backend::Postgres) {
        return Ok(0); // SQLite writes shard 0 only
    }
    s.transact_row_locking(&(), |tx, ()| Box::pin(fold_tx(tx))).await
}

// ---------------------------------------------------------------------------------------
// Drill-down: the events behind a facility's month
// ---------------------------------------------------------------------------------------

/// Unix milliseconds of the first instant of `m` in China.
fn month_start_ms(m: Month) -> Result<i64> {
    let month = time::Month::try_from(m.month).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let d = Date::from_calendar_date(m.year, month, 1).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    Ok(d.midnight().assume_utc().unix_timestamp() * 1000 - CHINA_OFFSET_MS)
}

pub(super) async fn records(s: &This, facility_id: Uuid, m: Month, limit: u32) -> Result<Vec<IndicatorRecord>> {
    let (start, end) = (month_start_ms(m)?, month_start_ms(m.plus(1))?);
    let limit = i64::from(limit);
    let mut out = Vec::new();
    let rows = query(
        "SELECT id, class, started_at, region_key, total_cost_fen FROM encounter
         WHERE facility_id = $1 AND started_at >= $2 AND started_at < $3 ORDER BY started_at, id LIMIT $4",
    )
    .bind(facility_id)
    .bind(start)
    .bind(end)
    .bind(limit)
    .fetch_all(s.read())
    .await?;
    for r in rows {
        out.push(IndicatorRecord {
            source: "encounter",
            id: r.try_get("id")?,
            kind: r.try_get("class")?,
            at_ms: r.try_get("started_at")?,
            home_region: r.try_get("region_key")?,
            amount_fen: r.try_get("total_cost_fen")?,
            fund_fen: 0,
        });
    }
    let rows = query(
        "SELECT id, setting, service_date, region_key, total_fen, fund_fen FROM settlement
         WHERE facility_id = $1 AND status = 'settled' AND service_date >= $2 AND service_date < $3
         ORDER BY service_date, id LIMIT $4",
    )
    .bind(facility_id)
    .bind(format!("{m}-01"))
    .bind(format!("{}-01", m.plus(1)))
    .bind(limit)
    .fetch_all(s.read())
    .await?;
    for r in rows {
        let day: String = r.try_get("service_date")?;
        let date = Date::parse(&day, time::macros::format_description!("[year]-[month]-[day]"))
            .map_err(|e| StoreError::Corrupt(format!("service date '{day}': {e}")))?;
        out.push(IndicatorRecord {
            source: "settlement",
            id: r.try_get("id")?,
            kind: r.try_get("setting")?,
            at_ms: date.midnight().assume_utc().unix_timestamp() * 1000 - CHINA_OFFSET_MS,
            home_region: r.try_get("region_key")?,
            amount_fen: r.try_get("total_fen")?,
            fund_fen: r.try_get("fund_fen")?,
        });
    }
    let rows = query(
        "SELECT id, direction, requested_at, region_key FROM referral
         WHERE from_facility_id = $1 AND requested_at >= $2 AND requested_at < $3 ORDER BY requested_at, id LIMIT $4",
    )
    .bind(facility_id)
    .bind(start)
    .bind(end)
    .bind(limit)
    .fetch_all(s.read())
    .await?;
    for r in rows {
        out.push(IndicatorRecord {
            source: "referral",
            id: r.try_get("id")?,
            kind: r.try_get("direction")?,
            at_ms: r.try_get("requested_at")?,
            home_region: r.try_get("region_key")?,
            amount_fen: 0,
            fund_fen: 0,
        });
    }
    out.sort_by_key(|r| (r.at_ms, r.id));
    out.truncate(limit as usize);
    Ok(out)
}

#[async_trait::async_trait]
impl crate::IndicatorStore for This {
    async fn indicator_counters(&self, q: &CounterQuery) -> Result<Vec<CounterRow>> {
        counters(self, q).await
    }
    async fn indicator_cells(&self, q: &CellQuery) -> Result<Vec<Cell>> {
        cells(self, q).await
    }
    async fn all_indicator_counters(&self) -> Result<Vec<CounterRow>> {
        all_counters(self).await
    }
    async fn indicator_counters_from_events(&self) -> Result<Vec<CounterRow>> {
        counters_from_events(self).await
    }
    async fn rebuild_indicator_counters(&self) -> Result<u64> {
        rebuild(self).await
    }
    async fn fold_indicator_shards(&self) -> Result<u64> {
        fold_shards(self).await
    }
    async fn indicator_counter_rows(&self) -> Result<(u64, u64)> {
        let r = query(
            "SELECT COUNT(*) AS n, (SELECT COUNT(*) FROM (SELECT DISTINCT facility_id, month, home_region
               FROM indicator_counter) AS d) AS cells FROM indicator_counter",
        )
        .fetch_one(self.read())
        .await?;
        Ok((r.try_get::<i64, _>("n")? as u64, r.try_get::<i64, _>("cells")? as u64))
    }
    async fn indicator_records(&self, facility_id: Uuid, month: Month, limit: u32) -> Result<Vec<IndicatorRecord>> {
        records(self, facility_id, month, limit).await
    }
}
