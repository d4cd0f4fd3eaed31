// Shared lab and imaging results with mutual recognition (issue 5): included into `mod results` inside `queries.rs`, so it is
// compiled once per backend like the rest. SQL here must be valid on both SQLite and
// PostgreSQL.
//
// The order-time check reads `result_entry` through `result_lookup (patient_id, item_code,
// specimen_time)`: one index range per ordered item. Writes are multi-row inserts in one
// transaction (`BULK_INSERT`: `INSERT OR FAIL` on SQLite), so a batch lands whole or not at all.

use super::*;

use tiercare_domain::recognition::{LabQualification, PriorResult, RepeatReason, Scope};
use tiercare_domain::recognition::{ReferenceRange, YearMonth};
use tiercare_domain::results::{AbnormalFlag, Category, Decision, Entry, ImagingReport, Outcome, Report};

use crate::results::{CopyIn, CopyRow};
use crate::{LedgerRow, OrderRecord, ResultQuery, ResultRecord, ResultSortKey};

const RESULT_COLS: &str = "region_key, id, report_id, patient_id, item_code, sent_code, category, value, value_num,
    unit, reference_low, reference_high, reference_text, flag, imaging, facility_id, facility_tier, lab_id,
    specimen_time, report_time, mark, created_at";
/// Rows per multi-row insert: 22 columns × 1,000 = 22,000 parameters (SQLite allows 32,766).
const RESULT_CHUNK: usize = 1_000;
const ORDER_COLS: &str = "region_key, id, order_id, patient_id, facility_id, ordered_by, item_code, outcome, result_id,
    repeat_reason, price_fen, ordered_at, month";
/// 13 columns × 1,000.
const ORDER_CHUNK: usize = 1_000;
/// Most rows one read answers (a patient's whole history is far below this).
const MAX_READ: u32 = 10_000;

fn to_json<T: serde::Serialize>(v: &T) -> Result<String> {
    serde_json::to_string(v).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn from_json_opt<T: serde::de::DeserializeOwned>(what: &str, s: Option<String>) -> Result<Option<T>> {
    s.map(|s| serde_json::from_str(&s).map_err(|_| corrupt(what, &s))).transpose()
}

fn month_of(t: OffsetDateTime) -> String {
    let m = YearMonth::of(t);
    format!("{:04}-{:02}", m.year, m.month)
}

fn result_from_row(r: &DbRow) -> Result<ResultRecord> {
    let category: String = r.try_get("category")?;
    let tier: String = r.try_get("facility_tier")?;
    let flag: Option<String> = r.try_get("flag")?;
    let low: Option<f64> = r.try_get("reference_low")?;
    let high: Option<f64> = r.try_get("reference_high")?;
    let entry = Entry {
        id: r.try_get("id")?,
        item_code: r.try_get("item_code")?,
        sent_code: r.try_get("sent_code")?,
        value: r.try_get("value")?,
        value_num: r.try_get("value_num")?,
        unit: r.try_get("unit")?,
        reference: low.zip(high).map(|(low, high)| ReferenceRange { low, high }),
        reference_text: r.try_get("reference_text")?,
        flag: flag.map(|f| AbnormalFlag::parse(&f).ok_or_else(|| corrupt("flag", &f))).transpose()?,
    };
    Ok(ResultRecord {
        region_key: r.try_get("region_key")?,
        report_id: r.try_get("report_id")?,
        patient_id: r.try_get("patient_id")?,
        category: Category::parse(&category).ok_or_else(|| corrupt("category", &category))?,
        facility_id: r.try_get("facility_id")?,
        facility_tier: Tier::parse(&tier).ok_or_else(|| corrupt("tier", &tier))?,
        lab_id: r.try_get("lab_id")?,
        specimen_time: from_ms(r.try_get("specimen_time")?)?,
        report_time: from_ms(r.try_get("report_time")?)?,
        mark: from_json_opt::<Scope>("mark", r.try_get("mark")?)?,
        imaging: from_json_opt::<ImagingReport>("imaging", r.try_get("imaging")?)?,
        entry,
    })
}

fn order_from_row(r: &DbRow) -> Result<OrderRecord> {
    let outcome: String = r.try_get("outcome")?;
    let reason: Option<String> = r.try_get("repeat_reason")?;
    Ok(OrderRecord {
        id: r.try_get("id")?,
        order_id: r.try_get("order_id")?,
        region_key: r.try_get("region_key")?,
        patient_id: r.try_get("patient_id")?,
        facility_id: r.try_get("facility_id")?,
        ordered_by: r.try_get("ordered_by")?,
        ordered_at: from_ms(r.try_get("ordered_at")?)?,
        decision: Decision {
            item_code: r.try_get("item_code")?,
            outcome: Outcome::parse(&outcome).ok_or_else(|| corrupt("outcome", &outcome))?,
            result_id: r.try_get("result_id")?,
            repeat_reason: reason
                .map(|s| RepeatReason::parse(&s).ok_or_else(|| corrupt("repeat reason", &s)))
                .transpose()?,
            price_fen: r.try_get("price_fen")?,
        },
    })
}

/// The patients (with their region keys) and facilities named by `rows` must exist.
async fn check_owners<'a>(tx: &mut Tx, rows: impl Iterator<Item = (Uuid, &'a str, Uuid)> + Clone) -> Result<()> {
    let facilities = known_facilities(tx, rows.clone().map(|(_, _, f)| f)).await?;
    if let Some((_, _, f)) = rows.clone().find(|(_, _, f)| !facilities.contains(f)) {
        return Err(StoreError::not_found(format!("facility {f}")));
    }
    let patients = patient_regions(tx, rows.clone().map(|(p, _, _)| p)).await?;
    if let Some((p, region, _)) =
        rows.clone().find(|(p, region, _)| patients.get(p).map(String::as_str) != Some(*region))
    {
        return Err(StoreError::not_found(format!("patient {p} (in region {region})")));
    }
    Ok(())
}

pub(super) async fn insert_results_tx(tx: &mut Tx, rows: &[ResultRecord]) -> Result<u64> {
    let now = now_ms();
    for chunk in rows.chunks(RESULT_CHUNK) {
        check_owners(tx, chunk.iter().map(|r| (r.patient_id, r.region_key.as_str(), r.facility_id))).await?;
        let mut json = Vec::with_capacity(chunk.len());
        for r in chunk {
            json.push((r.mark.as_ref().map(to_json).transpose()?, r.imaging.as_ref().map(to_json).transpose()?));
        }
        let mut qb: QueryBuilder<Db> = QueryBuilder::new(format!("{BULK_INSERT} result_entry ({RESULT_COLS}) "));
        qb.push_values(chunk.iter().zip(json), |mut b, (r, (mark, imaging))| {
            let e = &r.entry;
            b.push_bind(r.region_key.clone())
                .push_bind(e.id)
                .push_bind(r.report_id)
                .push_bind(r.patient_id)
                .push_bind(e.item_code.clone())
                .push_bind(e.sent_code.clone())
                .push_bind(r.category.as_str())
                .push_bind(e.value.clone())
                .push_bind(e.value_num)
                .push_bind(e.unit.clone())
                .push_bind(e.reference.map(|x| x.low))
                .push_bind(e.reference.map(|x| x.high))
                .push_bind(e.reference_text.clone())
                .push_bind(e.flag.map(|f| f.as_str()))
                .push_bind(imaging)
                .push_bind(r.facility_id)
                .push_bind(r.facility_tier.as_str())
                .push_bind(r.lab_id)
                .push_bind(ms(r.specimen_time))
                .push_bind(ms(r.report_time))
                .push_bind(mark)
                .push_bind(now);
        });
        qb.build().execute(&mut **tx).await?;
    }
    Ok(rows.len() as u64)
}

/// Distinct owners per check in a bulk load (each check is one `IN` list of patients).
const OWNER_CHUNK: usize = 1_000;

/// A bulk load: owners checked once per distinct patient, then `COPY` where the backend
/// has it, else the multi-row inserts.
async fn bulk_insert_results_tx(tx: &mut Tx, rows: &[ResultRecord]) -> Result<u64> {
    if BACKEND == Backend::Sqlite {
        return insert_results_tx(tx, rows).await;
    }
    let mut seen: HashSet<(Uuid, &str, Uuid)> = HashSet::new();
    let owners: Vec<(Uuid, &str, Uuid)> =
        rows.iter().map(|r| (r.patient_id, r.region_key.as_str(), r.facility_id)).filter(|o| seen.insert(*o)).collect();
    for chunk in owners.chunks(OWNER_CHUNK) {
        check_owners(tx, chunk.iter().copied()).await?;
    }
    let now = now_ms();
    let mut data: Vec<u8> = Vec::with_capacity(rows.len() * 320);
    for r in rows {
        let e = &r.entry;
        let mark = r.mark.as_ref().map(to_json).transpose()?;
        let imaging = r.imaging.as_ref().map(to_json).transpose()?;
        let mut row = CopyRow::new(&mut data);
        row.text(&r.region_key)
            .display(e.id)
            .display(r.report_id)
            .display(r.patient_id)
            .text(&e.item_code)
            .text(&e.sent_code)
            .text(r.category.as_str())
            .text(&e.value)
            .opt_f64(e.value_num)
            .opt_text(e.unit.as_deref())
            .opt_f64(e.reference.map(|x| x.low))
            .opt_f64(e.reference.map(|x| x.high))
            .opt_text(e.reference_text.as_deref())
            .opt_text(e.flag.map(|f| f.as_str()))
            .opt_text(imaging.as_deref())
            .display(r.facility_id)
            .text(r.facility_tier.as_str())
            .display(r.lab_id)
            .display(ms(r.specimen_time))
            .display(ms(r.report_time))
            .opt_text(mark.as_deref())
            .display(now);
        row.end();
    }
    let copy = format!("COPY result_entry ({RESULT_COLS}) FROM STDIN");
    match (**tx).copy_in_text(&copy, data).await? {
        Some(n) => Ok(n),
        None => insert_results_tx(tx, rows).await,
    }
}

async fn record_orders_tx(tx: &mut Tx, rows: &[OrderRecord]) -> Result<()> {
    for chunk in rows.chunks(ORDER_CHUNK) {
        check_owners(tx, chunk.iter().map(|r| (r.patient_id, r.region_key.as_str(), r.facility_id))).await?;
        let mut qb: QueryBuilder<Db> = QueryBuilder::new(format!("{BULK_INSERT} result_order ({ORDER_COLS}) "));
        qb.push_values(chunk, |mut b, r| {
            let d = &r.decision;
            b.push_bind(r.region_key.clone())
                .push_bind(r.id)
                .push_bind(r.order_id)
                .push_bind(r.patient_id)
                .push_bind(r.facility_id)
                .push_bind(r.ordered_by)
                .push_bind(d.item_code.clone())
                .push_bind(d.outcome.as_str())
                .push_bind(d.result_id)
                .push_bind(d.repeat_reason.map(|x| x.as_str()))
                .push_bind(d.price_fen)
                .push_bind(ms(r.ordered_at))
                .push_bind(month_of(r.ordered_at));
        });
        qb.build().execute(&mut **tx).await?;
        // the indicator aggregates count each reused result and its price (issue 8's hook)
        for r in chunk.iter().filter(|r| r.decision.outcome == Outcome::Reused) {
            super::indicators::on_result_reused(tx, r.facility_id, &r.region_key, r.ordered_at, r.decision.price_fen)
                .await?;
        }
    }
    Ok(())
}

/// ` AND column IN (ids…)`.
fn push_in_ids(qb: &mut QueryBuilder<Db>, column: &str, values: &[Uuid]) {
    qb.push(format!(" AND {column} IN ("));
    let mut sep = qb.separated(", ");
    for v in values {
        sep.push_bind(*v);
    }
    qb.push(")");
}

/// ` AND column IN (texts…)`.
fn push_in_texts(qb: &mut QueryBuilder<Db>, column: &str, values: &[String]) {
    qb.push(format!(" AND {column} IN ("));
    let mut sep = qb.separated(", ");
    for v in values {
        sep.push_bind(v.clone());
    }
    qb.push(")");
}

/// The item, category and specimen-time conditions of `q`.
fn push_result_filters(qb: &mut QueryBuilder<Db>, q: &ResultQuery) {
    match (q.item_codes.is_empty(), q.categories.is_empty()) {
        (true, true) => {}
        (false, true) => push_in_texts(qb, "item_code", &q.item_codes),
        (true, false) => push_in_texts(qb, "category", &categories_text(&q.categories)),
        (false, false) => {
            qb.push(" AND (item_code IN (");
            let mut sep = qb.separated(", ");
            for c in &q.item_codes {
                sep.push_bind(c.clone());
            }
            qb.push(") OR category IN (");
            let mut sep = qb.separated(", ");
            for c in categories_text(&q.categories) {
                sep.push_bind(c);
            }
            qb.push("))");
        }
    }
    if let Some(since) = q.since {
        qb.push(" AND specimen_time >= ").push_bind(ms(since));
    }
    if let Some(until) = q.until {
        qb.push(" AND specimen_time < ").push_bind(ms(until));
    }
    for (from, to) in &q.except {
        qb.push(" AND (specimen_time < ")
            .push_bind(ms(*from))
            .push(" OR specimen_time >= ")
            .push_bind(ms(*to))
            .push(")");
    }
}

/// ` ORDER BY` the query's sort keys, then newest specimen first, then entry id (a report's
/// entries share its times, so with `whole_reports` the first entry stands for the report).
fn push_result_order(qb: &mut QueryBuilder<Db>, q: &ResultQuery) {
    qb.push(" ORDER BY ");
    for s in &q.sort {
        let column = match s.key {
            ResultSortKey::SpecimenTime => "specimen_time",
            ResultSortKey::ReportTime => "report_time",
        };
        qb.push(column).push(if s.descending { " DESC, " } else { " ASC, " });
    }
    qb.push("specimen_time DESC, id");
}

fn categories_text(c: &[Category]) -> Vec<String> {
    c.iter().map(|c| c.as_str().to_owned()).collect()
}

#[async_trait::async_trait]
impl crate::ResultStore for This {
    async fn insert_results(&self, reports: &[Report]) -> Result<u64> {
        let rows: Vec<ResultRecord> = reports.iter().flat_map(ResultRecord::of_report).collect();
        if rows.is_empty() {
            return Ok(0);
        }
        self.transact(rows.as_slice(), |tx, rows| Box::pin(insert_results_tx(tx, rows))).await
    }

    async fn bulk_insert_results(&self, rows: &[ResultRecord]) -> Result<u64> {
        if rows.is_empty() {
            return Ok(0);
        }
        self.transact(rows, |tx, rows| Box::pin(bulk_insert_results_tx(tx, rows))).await
    }

    async fn results_loaded(&self) -> Result<()> {
        match BACKEND {
            // VACUUM runs outside a transaction
            Backend::Postgres => {
                raw_sql("VACUUM (ANALYZE) result_entry").execute(self.read()).await?;
            }
            Backend::Sqlite => {
                self.transact(&(), |tx, ()| {
                    Box::pin(async move {
                        raw_sql("ANALYZE result_entry").execute(&mut **tx).await?;
                        Ok(())
                    })
                })
                .await?;
            }
        }
        Ok(())
    }

    async fn merged_patient_ids(&self, survivor: Uuid) -> Result<Vec<Uuid>> {
        self.merged_into(survivor).await
    }

    async fn find_results(&self, q: &ResultQuery) -> Result<Vec<ResultRecord>> {
        if q.patient_ids.is_empty() {
            return Ok(Vec::new());
        }
        let limit = if q.limit == 0 { MAX_READ } else { q.limit.min(MAX_READ) };
        let offset = i64::try_from(q.offset).unwrap_or(i64::MAX);
        if !q.whole_reports {
            let mut qb: QueryBuilder<Db> =
                QueryBuilder::new(format!("SELECT {RESULT_COLS} FROM result_entry WHERE 1 = 1"));
            push_in_ids(&mut qb, "patient_id", &q.patient_ids);
            push_result_filters(&mut qb, q);
            push_result_order(&mut qb, q);
            qb.push(" LIMIT ").push_bind(i64::from(limit)).push(" OFFSET ").push_bind(offset);
            return qb.build().fetch_all(self.read()).await?.iter().map(result_from_row).collect();
        }
        // the page of reports: each by its first entry (the lowest id) …
        let mut qb: QueryBuilder<Db> = QueryBuilder::new("SELECT report_id FROM result_entry e WHERE 1 = 1");
        push_in_ids(&mut qb, "patient_id", &q.patient_ids);
        // … of the reports with a matching entry (of these patients: the key's first column)
        qb.push(" AND report_id IN (SELECT report_id FROM result_entry WHERE 1 = 1");
        push_in_ids(&mut qb, "patient_id", &q.patient_ids);
        push_result_filters(&mut qb, q);
        qb.push(")");
        qb.push(" AND NOT EXISTS (SELECT 1 FROM result_entry x WHERE x.report_id = e.report_id AND x.id < e.id)");
        push_result_order(&mut qb, q);
        qb.push(" LIMIT ").push_bind(i64::from(limit)).push(" OFFSET ").push_bind(offset);
        let page: Vec<Uuid> = qb
            .build()
            .fetch_all(self.read())
            .await?
            .iter()
            .map(|r| r.try_get("report_id"))
            .collect::<Result<_, _>>()?;
        if page.is_empty() {
            return Ok(Vec::new());
        }
        // … read whole, each report's entries by id, the reports in the page's order
        let mut qb: QueryBuilder<Db> = QueryBuilder::new(format!("SELECT {RESULT_COLS} FROM result_entry WHERE 1 = 1"));
        push_in_ids(&mut qb, "report_id", &page);
        qb.push(" ORDER BY id");
        let mut rows: Vec<ResultRecord> =
            qb.build().fetch_all(self.read()).await?.iter().map(result_from_row).collect::<Result<_>>()?;
        let at: std::collections::HashMap<Uuid, usize> = page.iter().enumerate().map(|(i, id)| (*id, i)).collect();
        rows.sort_by_key(|r| at.get(&r.report_id).copied().unwrap_or(usize::MAX));
        Ok(rows)
    }

    async fn count_results(&self, q: &ResultQuery) -> Result<u64> {
        if q.patient_ids.is_empty() {
            return Ok(0);
        }
        // a report matches when one of its entries does
        let what = if q.whole_reports { "COUNT(DISTINCT report_id)" } else { "COUNT(*)" };
        let mut qb: QueryBuilder<Db> = QueryBuilder::new(format!("SELECT {what} AS n FROM result_entry WHERE 1 = 1"));
        push_in_ids(&mut qb, "patient_id", &q.patient_ids);
        push_result_filters(&mut qb, q);
        let n: i64 = qb.build().fetch_one(self.read()).await?.try_get("n")?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    async fn results_by_ids(&self, ids: &[Uuid]) -> Result<Vec<ResultRecord>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut qb: QueryBuilder<Db> = QueryBuilder::new(format!("SELECT {RESULT_COLS} FROM result_entry WHERE 1 = 1"));
        push_in_ids(&mut qb, "id", &ids[..ids.len().min(MAX_READ as usize)]);
        qb.build().fetch_all(self.read()).await?.iter().map(result_from_row).collect()
    }

    async fn report_results(&self, report_id: Uuid) -> Result<Vec<ResultRecord>> {
        query(AssertSqlSafe(format!(
            "SELECT {RESULT_COLS} FROM result_entry WHERE report_id = $1 ORDER BY id LIMIT $2"
        )))
        .bind(report_id)
        .bind(i64::from(MAX_READ))
        .fetch_all(self.read())
        .await?
        .iter()
        .map(result_from_row)
        .collect()
    }

    async fn prior_results(&self, patient_ids: &[Uuid], item_codes: &[String]) -> Result<Vec<PriorResult>> {
        if patient_ids.is_empty() || item_codes.is_empty() {
            return Ok(Vec::new());
        }
        let mut qb: QueryBuilder<Db> = QueryBuilder::new(
            "SELECT id, item_code, facility_id, facility_tier, lab_id, specimen_time, report_time, mark, value, unit
             FROM result_entry WHERE 1 = 1",
        );
        push_in_ids(&mut qb, "patient_id", patient_ids);
        push_in_texts(&mut qb, "item_code", item_codes);
        qb.push(" ORDER BY specimen_time DESC, id LIMIT ").push_bind(i64::from(MAX_READ));
        let rows = qb.build().fetch_all(self.read()).await?;
        // a lab's results share a few marks: parse each distinct one once
        let mut marks: HashMap<String, Scope> = HashMap::new();
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            let tier: String = r.try_get("facility_tier")?;
            let mark: Option<String> = r.try_get("mark")?;
            let mark = match mark {
                None => None,
                Some(m) => match marks.get(&m) {
                    Some(s) => Some(s.clone()),
                    None => {
                        let s: Scope = serde_json::from_str(&m).map_err(|_| corrupt("mark", &m))?;
                        marks.insert(m, s.clone());
                        Some(s)
                    }
                },
            };
            out.push(PriorResult {
                id: r.try_get("id")?,
                item_code: r.try_get("item_code")?,
                facility_id: r.try_get("facility_id")?,
                facility_tier: Tier::parse(&tier).ok_or_else(|| corrupt("tier", &tier))?,
                lab_id: r.try_get("lab_id")?,
                specimen_time: from_ms(r.try_get("specimen_time")?)?,
                report_time: from_ms(r.try_get("report_time")?)?,
                mark,
                value: r.try_get("value")?,
                unit: r.try_get("unit")?,
            });
        }
        Ok(out)
    }

    async fn lab_qualifications(&self, lab_ids: &[Uuid]) -> Result<Vec<LabQualification>> {
        if lab_ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut qb: QueryBuilder<Db> =
            QueryBuilder::new("SELECT lab_id, qualified_from, qualified_to FROM lab_qualification WHERE 1 = 1");
        push_in_ids(&mut qb, "lab_id", lab_ids);
        qb.push(" ORDER BY lab_id, qualified_from");
        qb.build()
            .fetch_all(self.read())
            .await?
            .iter()
            .map(|r| {
                let to: Option<i64> = r.try_get("qualified_to")?;
                Ok(LabQualification {
                    lab_id: r.try_get("lab_id")?,
                    qualified_from: from_ms(r.try_get("qualified_from")?)?,
                    qualified_to: to.map(from_ms).transpose()?,
                })
            })
            .collect()
    }

    async fn add_lab_qualification(&self, q: &LabQualification, note: Option<&str>) -> Result<()> {
        if q.qualified_to.is_some_and(|to| to <= q.qualified_from) {
            return Err(tiercare_domain::DomainError::field(
                "qualified_to",
                "recognition.qualification_period",
                "a qualification ends after it starts",
            )
            .into());
        }
        let args = (q.clone(), note.map(str::to_owned));
        self.transact(&args, |tx, (q, note)| {
            Box::pin(async move {
                // an open period must be ended before a new one starts
                let open = query("SELECT qualified_from FROM lab_qualification WHERE lab_id = $1 AND qualified_to IS NULL")
                    .bind(q.lab_id)
                    .fetch_optional(&mut **tx)
                    .await?;
                if open.is_some() {
                    return Err(StoreError::Conflict("this lab is qualified already; end that period first".into()));
                }
                query("INSERT INTO lab_qualification (lab_id, qualified_from, qualified_to, note) VALUES ($1, $2, $3, $4)")
                    .bind(q.lab_id)
                    .bind(ms(q.qualified_from))
                    .bind(q.qualified_to.map(ms))
                    .bind(note.clone())
                    .execute(&mut **tx)
                    .await
                    .map_err(|e| {
                        let e = StoreError::from(e);
                        if e.is_unique_violation() {
                            StoreError::Duplicate { what: "a qualification of this lab from this time".into(), existing: None }
                        } else {
                            e
                        }
                    })?;
                Ok(())
            })
        })
        .await
    }

    async fn end_lab_qualification(&self, lab_id: Uuid, at: OffsetDateTime) -> Result<bool> {
        let args = (lab_id, ms(at));
        self.transact(&args, |tx, (lab_id, at)| {
            Box::pin(async move {
                let n = query(
                    "UPDATE lab_qualification SET qualified_to = $2
                     WHERE lab_id = $1 AND qualified_to IS NULL AND qualified_from < $2",
                )
                .bind(*lab_id)
                .bind(*at)
                .execute(&mut **tx)
                .await?
                .rows_affected();
                Ok(n > 0)
            })
        })
        .await
    }

    async fn record_orders(&self, rows: &[OrderRecord]) -> Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        self.transact(rows, |tx, rows| Box::pin(record_orders_tx(tx, rows))).await
    }

    async fn patient_orders(&self, patient_id: Uuid, limit: u32) -> Result<Vec<OrderRecord>> {
        let limit = if limit == 0 { MAX_READ } else { limit.min(MAX_READ) };
        query(AssertSqlSafe(format!(
            "SELECT {ORDER_COLS} FROM result_order WHERE patient_id = $1 ORDER BY ordered_at DESC, id DESC LIMIT $2"
        )))
        .bind(patient_id)
        .bind(i64::from(limit))
        .fetch_all(self.read())
        .await?
        .iter()
        .map(order_from_row)
        .collect()
    }

    async fn results_ledger(&self, from: &str, to: &str, facility_ids: Option<&[Uuid]>) -> Result<Vec<LedgerRow>> {
        if facility_ids.is_some_and(<[Uuid]>::is_empty) {
            return Ok(Vec::new());
        }
        let mut qb: QueryBuilder<Db> = QueryBuilder::new(
            "SELECT facility_id, month, outcome, repeat_reason, COUNT(*) AS n, CAST(SUM(price_fen) AS BIGINT) AS fen
             FROM result_order WHERE month >= ",
        );
        qb.push_bind(from.to_owned()).push(" AND month <= ").push_bind(to.to_owned());
        if let Some(ids) = facility_ids {
            push_in_ids(&mut qb, "facility_id", ids);
        }
        qb.push(
            " GROUP BY facility_id, month, outcome, repeat_reason ORDER BY month, facility_id, outcome, repeat_reason",
        );
        qb.build()
            .fetch_all(self.read())
            .await?
            .iter()
            .map(|r| {
                let outcome: String = r.try_get("outcome")?;
                let reason: Option<String> = r.try_get("repeat_reason")?;
                Ok(LedgerRow {
                    facility_id: r.try_get("facility_id")?,
                    month: r.try_get("month")?,
                    outcome: Outcome::parse(&outcome).ok_or_else(|| corrupt("outcome", &outcome))?,
                    repeat_reason: reason
                        .map(|s| RepeatReason::parse(&s).ok_or_else(|| corrupt("repeat reason", &s)))
                        .transpose()?,
                    count: r.try_get("n")?,
                    price_fen: r.try_get("fen")?,
                })
            })
            .collect()
    }
}
