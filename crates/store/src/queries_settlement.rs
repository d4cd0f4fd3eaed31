// Settlement queries (issue 6): included into `mod settlement` inside `queries.rs`, so it
// is compiled once per backend like the rest. Functions take the store (`&This`) and use its
// `transact` and read pool. SQL here must be valid on both SQLite and PostgreSQL.
//
// Invariant (what the contract suite checks): for every person and year, the
// `insurance_accumulator` row holds the sum of the fund payments of that person's
// settlements of that year in status 'settled', inpatient and outpatient apart. It holds
// because a settlement (or its reversal) and the accumulator change are one transaction,
// and the accumulators a bill is adjudicated against are read inside that transaction and
// locked there: SQLite's `BEGIN IMMEDIATE` on the single writer connection serialises
// every write; on PostgreSQL a settlement runs at READ COMMITTED, makes sure the person's
// accumulator row exists and reads it `FOR UPDATE`, so a second settlement of that person
// waits for the first to end and then reads what it wrote (a reversal runs SERIALIZABLE
// and reads the row the same way: a concurrent change fails it with 40001, retried).
//
// Unique keys back the checks made before writing: (region_key, facility_id, txn_no), the
// reversal number per facility, and at most one 'settled' row per encounter. A unique
// violation when writing therefore means a concurrent transaction wrote first; it is
// answered with `StoreError::Busy` inside the transaction, so `transact` runs it again and
// the checks then see that row (a repeated request is replayed, another bill conflicts).

use super::*;

use tiercare_domain::billing::PricedLine;
use tiercare_domain::settlement::{self, Accumulators, Claim, PolicySet, Setting, Split};

use crate::{SettleRequest, SettlementFilter, SettlementRecord, SettlementStatus};

const SETTLEMENT_COLS: &str = "region_key, id, facility_id, txn_no, patient_id, encounter_id, scheme, insured_region,
    setting, tier, service_date, year, claim, total_fen, fund_fen, patient_fen, self_pay_fen, class_b_share_fen,
    deductible_fen, coinsurance_fen, above_ceiling_fen, rate_bp, policy, explanation, accumulators_after, status,
    reversal_txn_no, reversed_at, created_at, items, reversal_reason";
/// The longest transaction number accepted (national settlement serials are about 30).
const MAX_TXN_NO: usize = 100;
/// The longest reversal reason accepted, in characters.
const MAX_REASON: usize = 200;

/// The priced lines as stored: a JSON array of `[code, quantity, unit_price_fen]` (about
/// 20 to 25 bytes a line, against about 60 for objects with names); `None` (NULL) when
/// there are none (rows imported without them).
fn items_json(items: &[PricedLine]) -> Result<Option<String>> {
    if items.is_empty() {
        return Ok(None);
    }
    let triples: Vec<(&str, i64, i64)> =
        items.iter().map(|l| (l.code.as_str(), l.quantity, l.unit_price_fen)).collect();
    json(&triples).map(Some)
}

fn items_from_json(s: Option<&str>) -> Result<Vec<PricedLine>> {
    let Some(s) = s else { return Ok(Vec::new()) };
    let triples: Vec<(String, i64, i64)> = from_json("settlement items", s)?;
    Ok(triples
        .into_iter()
        .map(|(code, quantity, unit_price_fen)| PricedLine { code, quantity, unit_price_fen })
        .collect())
}

/// The priced lines must describe the claim's lines one for one: as many, each
/// quantity × unit price equal to the line's amount.
fn check_items(items: &[PricedLine], claim: &Claim) -> Result<()> {
    let refuse = |field: String, message: String| -> Result<()> {
        Err(tiercare_domain::DomainError::field(&field, "settlement.items", message).into())
    };
    if items.len() != claim.lines.len() {
        return refuse(
            "items".into(),
            format!(
                "the bill has {} priced lines for {} claim lines; send one per line",
                items.len(),
                claim.lines.len()
            ),
        );
    }
    for (i, (item, line)) in items.iter().zip(&claim.lines).enumerate() {
        if item.quantity.checked_mul(item.unit_price_fen) != Some(line.amount_fen) {
            return refuse(
                format!("items[{i}]"),
                format!(
                    "line {}: {} × {} fen is not the claim line's amount {} fen",
                    i + 1,
                    item.quantity,
                    item.unit_price_fen,
                    line.amount_fen
                ),
            );
        }
    }
    Ok(())
}

/// A reversal's reason, trimmed: 1 to 200 characters.
fn check_reason(reason: &str) -> Result<&str> {
    let r = reason.trim();
    let n = r.chars().count();
    if n == 0 || n > MAX_REASON {
        return Err(tiercare_domain::DomainError::field(
            "reason",
            "settlement.reversal_reason",
            format!("say why the settlement is reversed, in 1 to {MAX_REASON} characters (got {n})"),
        )
        .into());
    }
    Ok(r)
}

fn json<T: serde::Serialize + ?Sized>(v: &T) -> Result<String> {
    serde_json::to_string(v).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn from_json<T: serde::de::DeserializeOwned>(what: &str, s: &str) -> Result<T> {
    serde_json::from_str(s).map_err(|_| corrupt(what, s))
}

fn setting_str(s: Setting) -> &'static str {
    match s {
        Setting::Outpatient => "outpatient",
        Setting::Inpatient => "inpatient",
    }
}

fn settlement_from_row(r: &DbRow) -> Result<SettlementRecord> {
    let claim: String = r.try_get("claim")?;
    let explanation: String = r.try_get("explanation")?;
    let after: String = r.try_get("accumulators_after")?;
    let status: String = r.try_get("status")?;
    let items: Option<String> = r.try_get("items")?;
    let rate: i64 = r.try_get("rate_bp")?;
    let split = Split {
        total_fen: r.try_get("total_fen")?,
        fund_fen: r.try_get("fund_fen")?,
        patient_fen: r.try_get("patient_fen")?,
        self_pay_fen: r.try_get("self_pay_fen")?,
        class_b_share_fen: r.try_get("class_b_share_fen")?,
        deductible_fen: r.try_get("deductible_fen")?,
        coinsurance_fen: r.try_get("coinsurance_fen")?,
        above_ceiling_fen: r.try_get("above_ceiling_fen")?,
        rate_bp: u32::try_from(rate).map_err(|_| corrupt("rate", &rate.to_string()))?,
        policy: r.try_get("policy")?,
        explanation: from_json("explanation", &explanation)?,
        after: from_json("accumulators", &after)?,
    };
    Ok(SettlementRecord {
        id: r.try_get("id")?,
        region_key: r.try_get("region_key")?,
        facility_id: r.try_get("facility_id")?,
        txn_no: r.try_get("txn_no")?,
        patient_id: r.try_get("patient_id")?,
        encounter_id: r.try_get("encounter_id")?,
        claim: from_json("claim", &claim)?,
        items: items_from_json(items.as_deref())?,
        split,
        status: SettlementStatus::parse(&status).ok_or_else(|| corrupt("settlement status", &status))?,
        created_at: from_ms(r.try_get("created_at")?)?,
        reversed_at: r.try_get::<Option<i64>, _>("reversed_at")?.map(from_ms).transpose()?,
        reversal_txn_no: r.try_get("reversal_txn_no")?,
        reversal_reason: r.try_get("reversal_reason")?,
        replayed: false,
    })
}

/// A unique violation: a concurrent transaction wrote first; run again (see the top).
fn retry_on_unique_violation(e: StoreError) -> StoreError {
    if e.is_unique_violation() { StoreError::Busy } else { e }
}

fn check_txn_no(field: &str, v: &str) -> Result<()> {
    if v.trim().is_empty() || v.len() > MAX_TXN_NO {
        return Err(tiercare_domain::DomainError::field(
            field,
            "settlement.txn_no",
            format!("a transaction number has 1 to {MAX_TXN_NO} characters"),
        )
        .into());
    }
    Ok(())
}

async fn by_id<'e, E: Executor<'e, Database = Db>>(e: E, id: Uuid) -> Result<Option<SettlementRecord>> {
    query(AssertSqlSafe(format!("SELECT {SETTLEMENT_COLS} FROM settlement WHERE id = $1")))
        .bind(id)
        .fetch_optional(e)
        .await?
        .as_ref()
        .map(settlement_from_row)
        .transpose()
}

/// By the facility's transaction number. The unique key includes the region (the
/// distribution key); on one node this finds the number whatever the patient's region.
/// `created_at + 0`: ordered by the bare column, SQLite walks `settlement_journal` (every
/// settlement of the facility, growing with the table) instead of `settlement_by_txn`.
async fn by_txn<'e, E: Executor<'e, Database = Db>>(
    e: E,
    facility_id: Uuid,
    txn_no: &str,
) -> Result<Option<SettlementRecord>> {
    query(AssertSqlSafe(format!(
        "SELECT {SETTLEMENT_COLS} FROM settlement WHERE facility_id = $1 AND txn_no = $2 ORDER BY created_at + 0, id LIMIT 1"
    )))
    .bind(facility_id)
    .bind(txn_no)
    .fetch_optional(e)
    .await?
    .as_ref()
    .map(settlement_from_row)
    .transpose()
}

/// The person's accumulator row of `year` (zeros when none), read inside the transaction
/// and locked until it ends (PostgreSQL; see the top).
async fn accumulators_tx(tx: &mut Tx, region_key: &str, patient_id: Uuid, year: i32) -> Result<Accumulators> {
    let row = query(AssertSqlSafe(format!(
        "SELECT inpatient_fund_paid_fen, outpatient_fund_paid_fen FROM insurance_accumulator
         WHERE region_key = $1 AND patient_id = $2 AND year = $3{FOR_UPDATE}"
    )))
    .bind(region_key)
    .bind(patient_id)
    .bind(i64::from(year))
    .fetch_optional(&mut **tx)
    .await?;
    Ok(match row {
        Some(r) => Accumulators {
            inpatient_fund_paid_fen: r.try_get("inpatient_fund_paid_fen")?,
            outpatient_fund_paid_fen: r.try_get("outpatient_fund_paid_fen")?,
            stay_deductible_paid_fen: 0,
        },
        None => Accumulators::default(),
    })
}

async fn set_accumulators(
    tx: &mut Tx,
    region_key: &str,
    patient_id: Uuid,
    year: i32,
    acc: &Accumulators,
    at: OffsetDateTime,
) -> Result<()> {
    query(
        "INSERT INTO insurance_accumulator
           (region_key, patient_id, year, inpatient_fund_paid_fen, outpatient_fund_paid_fen, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (region_key, patient_id, year) DO UPDATE SET
           inpatient_fund_paid_fen = excluded.inpatient_fund_paid_fen,
           outpatient_fund_paid_fen = excluded.outpatient_fund_paid_fen,
           updated_at = excluded.updated_at",
    )
    .bind(region_key)
    .bind(patient_id)
    .bind(i64::from(year))
    .bind(acc.inpatient_fund_paid_fen)
    .bind(acc.outpatient_fund_paid_fen)
    .bind(ms(at))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// `INSERT INTO settlement (…) VALUES (…)` for `r`, appended to `qb`.
fn push_insert_settlement(qb: &mut QueryBuilder<Db>, r: &SettlementRecord) -> Result<()> {
    let c = &r.claim;
    let s = &r.split;
    qb.push(format!("INSERT INTO settlement ({SETTLEMENT_COLS}) VALUES ("));
    let mut b = qb.separated(", ");
    b.push_bind(r.region_key.as_str())
        .push_bind(r.id)
        .push_bind(r.facility_id)
        .push_bind(r.txn_no.as_str())
        .push_bind(r.patient_id)
        .push_bind(r.encounter_id)
        .push_bind(c.scheme.as_str())
        .push_bind(c.insured_region.as_str())
        .push_bind(setting_str(c.setting))
        .push_bind(c.tier.as_str())
        .push_bind(date_str(c.date))
        .push_bind(i64::from(c.date.year()))
        .push_bind(json(c)?)
        .push_bind(s.total_fen)
        .push_bind(s.fund_fen)
        .push_bind(s.patient_fen)
        .push_bind(s.self_pay_fen)
        .push_bind(s.class_b_share_fen)
        .push_bind(s.deductible_fen)
        .push_bind(s.coinsurance_fen)
        .push_bind(s.above_ceiling_fen)
        .push_bind(i64::from(s.rate_bp))
        .push_bind(s.policy.as_str())
        .push_bind(json(&s.explanation)?)
        .push_bind(json(&s.after)?)
        .push_bind(r.status.as_str())
        .push_bind(r.reversal_txn_no.as_deref())
        .push_bind(r.reversed_at.map(ms))
        .push_bind(ms(r.created_at))
        .push_bind(items_json(&r.items)?)
        .push_bind(r.reversal_reason.as_deref());
    qb.push(")");
    Ok(())
}

async fn insert_settlement(tx: &mut Tx, r: &SettlementRecord) -> Result<()> {
    let mut qb: QueryBuilder<Db> = QueryBuilder::new("");
    push_insert_settlement(&mut qb, r)?;
    qb.build().execute(&mut **tx).await.map_err(|e| retry_on_unique_violation(e.into()))?;
    Ok(())
}

/// What a settlement checks before it adjudicates, read inside its transaction after the
/// person's accumulator row is locked (see [`settle_facts`]).
struct SettleFacts {
    /// The person's accumulators of the claim's year (zeros when none were stored).
    accumulators: Accumulators,
    /// The facility's settlement with the request's transaction number, if any.
    by_txn: Option<SettlementRecord>,
    /// A settlement with the request's id exists.
    id_taken: bool,
    /// The patient's region and status (`None`: no such patient).
    patient: Option<(String, PatientStatus)>,
    /// The facility's tier (`None`: no such facility).
    facility_tier: Option<String>,
    /// The encounter's patient and facility (`None`: no encounter given, or none such).
    encounter: Option<(Uuid, Uuid)>,
    /// The encounter's settlement in force: its id and transaction number.
    encounter_settled: Option<(Uuid, String)>,
}

fn patient_status(status: &str, merged_into: Option<Uuid>) -> Result<PatientStatus> {
    match (status, merged_into) {
        ("active", _) => Ok(PatientStatus::Active),
        ("merged", Some(into)) => Ok(PatientStatus::Merged(into)),
        _ => Err(corrupt("patient status", status)),
    }
}

/// The facts of [`SettleFacts`]. PostgreSQL: one statement (one round trip instead of seven)
/// that inserts or locks the person's accumulator row (`ON CONFLICT DO UPDATE` locks it and
/// `RETURNING` gives its latest committed values, READ COMMITTED) and reads the rest beside
/// it. Its reads see the statement's snapshot, taken before a wait for the row lock: a
/// concurrent settlement with the same number or encounter that committed during that wait
/// is not seen here, and the INSERT then meets its unique key (`settlement_txn`,
/// `settlement_encounter_settled`), which answers `Busy`, so the transaction runs again and
/// sees it (see the top). SQLite: the statements one by one on the single writer.
async fn settle_facts(tx: &mut Tx, req: &SettleRequest, year: i32) -> Result<SettleFacts> {
    if BACKEND == Backend::Postgres {
        let r = query(
            "WITH acc AS (
               INSERT INTO insurance_accumulator
                 (region_key, patient_id, year, inpatient_fund_paid_fen, outpatient_fund_paid_fen, updated_at)
               VALUES ($1, $2, $3, 0, 0, $4)
               ON CONFLICT (region_key, patient_id, year) DO UPDATE SET updated_at = insurance_accumulator.updated_at
               RETURNING inpatient_fund_paid_fen, outpatient_fund_paid_fen
             )
             SELECT acc.inpatient_fund_paid_fen, acc.outpatient_fund_paid_fen, t.id AS txn_settlement,
               EXISTS (SELECT 1 FROM settlement WHERE id = $7) AS id_taken,
               p.region_key AS patient_region, p.status AS patient_status, p.merged_into,
               f.tier AS facility_tier, e.patient_id AS encounter_patient, e.facility_id AS encounter_facility,
               es.id AS settled_id, es.txn_no AS settled_txn
             FROM acc
             LEFT JOIN LATERAL (
               SELECT id FROM settlement WHERE facility_id = $5 AND txn_no = $6 ORDER BY created_at, id LIMIT 1
             ) t ON TRUE
             LEFT JOIN patient p ON p.id = $2
             LEFT JOIN facility f ON f.id = $5
             LEFT JOIN encounter e ON e.region_key = $1 AND e.id = $8
             LEFT JOIN settlement es ON es.region_key = $1 AND es.encounter_id = $8 AND es.status = 'settled'
               AND es.encounter_id IS NOT NULL",
        )
        .bind(req.region_key.as_str())
        .bind(req.patient_id)
        .bind(i64::from(year))
        .bind(ms(req.at))
        .bind(req.facility_id)
        .bind(req.txn_no.as_str())
        .bind(req.id)
        .bind(req.encounter_id)
        .fetch_one(&mut **tx)
        .await?;
        let txn_settlement: Option<Uuid> = r.try_get("txn_settlement")?;
        // the replay or the conflict: read the first settlement in full (rare)
        let by_txn = match txn_settlement {
            Some(id) => by_id(&mut **tx, id).await?,
            None => None,
        };
        let patient = match r.try_get::<Option<String>, _>("patient_region")? {
            Some(region) => {
                let status: String = r.try_get("patient_status")?;
                Some((region, patient_status(&status, r.try_get("merged_into")?)?))
            }
            None => None,
        };
        let encounter = match r.try_get::<Option<Uuid>, _>("encounter_patient")? {
            Some(p) => Some((p, r.try_get::<Uuid, _>("encounter_facility")?)),
            None => None,
        };
        let encounter_settled = match r.try_get::<Option<Uuid>, _>("settled_id")? {
            Some(id) => Some((id, r.try_get::<String, _>("settled_txn")?)),
            None => None,
        };
        return Ok(SettleFacts {
            accumulators: Accumulators {
                inpatient_fund_paid_fen: r.try_get("inpatient_fund_paid_fen")?,
                outpatient_fund_paid_fen: r.try_get("outpatient_fund_paid_fen")?,
                stay_deductible_paid_fen: 0,
            },
            by_txn,
            id_taken: r.try_get("id_taken")?,
            patient,
            facility_tier: r.try_get("facility_tier")?,
            encounter,
            encounter_settled,
        });
    }
    let accumulators = accumulators_tx(tx, &req.region_key, req.patient_id, year).await?;
    let by_txn = by_txn(&mut **tx, req.facility_id, &req.txn_no).await?;
    if by_txn.is_some() {
        // answered from the first settlement alone
        return Ok(SettleFacts {
            accumulators,
            by_txn,
            id_taken: false,
            patient: None,
            facility_tier: None,
            encounter: None,
            encounter_settled: None,
        });
    }
    let id_taken = by_id(&mut **tx, req.id).await?.is_some();
    let patient = get_patient_tx(tx, req.patient_id).await?.map(|p| (p.region_key, p.status));
    let facility_tier =
        match query("SELECT tier FROM facility WHERE id = $1").bind(req.facility_id).fetch_optional(&mut **tx).await? {
            Some(r) => Some(r.try_get("tier")?),
            None => None,
        };
    let (mut encounter, mut encounter_settled) = (None, None);
    if let Some(encounter_id) = req.encounter_id {
        if let Some(e) = query("SELECT patient_id, facility_id FROM encounter WHERE region_key = $1 AND id = $2")
            .bind(req.region_key.as_str())
            .bind(encounter_id)
            .fetch_optional(&mut **tx)
            .await?
        {
            encounter = Some((e.try_get("patient_id")?, e.try_get("facility_id")?));
        }
        if let Some(r) = query(
            "SELECT id, txn_no FROM settlement
             WHERE region_key = $1 AND encounter_id = $2 AND status = 'settled' AND encounter_id IS NOT NULL",
        )
        .bind(req.region_key.as_str())
        .bind(encounter_id)
        .fetch_optional(&mut **tx)
        .await?
        {
            encounter_settled = Some((r.try_get("id")?, r.try_get("txn_no")?));
        }
    }
    Ok(SettleFacts { accumulators, by_txn, id_taken, patient, facility_tier, encounter, encounter_settled })
}

/// The settlement row and the person's accumulators after it. PostgreSQL: one statement
/// (the row exists and is locked: [`settle_facts`]); SQLite: the insert and the upsert.
async fn write_settlement(tx: &mut Tx, r: &SettlementRecord, year: i32, at: OffsetDateTime) -> Result<()> {
    let after = Accumulators { stay_deductible_paid_fen: 0, ..r.split.after };
    if BACKEND != Backend::Postgres {
        insert_settlement(tx, r).await?;
        return set_accumulators(tx, &r.region_key, r.patient_id, year, &after, at).await;
    }
    let mut qb: QueryBuilder<Db> = QueryBuilder::new("WITH s AS (");
    push_insert_settlement(&mut qb, r)?;
    qb.push(") UPDATE insurance_accumulator SET inpatient_fund_paid_fen = ")
        .push_bind(after.inpatient_fund_paid_fen)
        .push(", outpatient_fund_paid_fen = ")
        .push_bind(after.outpatient_fund_paid_fen)
        .push(", updated_at = ")
        .push_bind(ms(at))
        .push(" WHERE region_key = ")
        .push_bind(r.region_key.as_str())
        .push(" AND patient_id = ")
        .push_bind(r.patient_id)
        .push(" AND year = ")
        .push_bind(i64::from(year));
    let done = qb.build().execute(&mut **tx).await.map_err(|e| retry_on_unique_violation(e.into()))?;
    if done.rows_affected() != 1 {
        // the row was inserted or locked by this transaction: unreachable
        return Err(StoreError::Corrupt(format!("the accumulators of patient {} for {year} vanished", r.patient_id)));
    }
    Ok(())
}

async fn settle_tx(tx: &mut Tx, req: &SettleRequest, policies: &PolicySet) -> Result<SettlementRecord> {
    check_txn_no("txn_no", &req.txn_no)?;
    check_items(&req.items, &req.claim)?;
    // 0. the person's accumulators, locked first on PostgreSQL (a row inserted to lock when
    // the person has none for the year): a concurrent settlement of this person (the same
    // transaction number or encounter included) then waits until the other ends
    let year = req.claim.date.year();
    let facts = settle_facts(tx, req, year).await?;
    // 1. idempotency (rows stored before the items were kept compare by their lines only)
    if let Some(first) = facts.by_txn {
        if first.patient_id == req.patient_id
            && first.claim.lines == req.claim.lines
            && (first.items.is_empty() || first.items == req.items)
        {
            return Ok(SettlementRecord { replayed: true, ..first });
        }
        return Err(StoreError::TxnNumberUsed(format!(
            "transaction number {} of this facility was used for another bill (settlement {} of {})",
            req.txn_no,
            first.id,
            first.created_at.date()
        )));
    }
    if facts.id_taken {
        return Err(StoreError::Duplicate { what: format!("settlement {}", req.id), existing: Some(req.id) });
    }
    // 2. who and where
    let status = match facts.patient {
        Some((region, status)) if region == req.region_key => status,
        _ => {
            return Err(StoreError::not_found(format!("patient {} (in region {})", req.patient_id, req.region_key)));
        }
    };
    if let PatientStatus::Merged(into) = status {
        return Err(tiercare_domain::DomainError::field(
            "patient_id",
            "settlement.patient_merged",
            format!("patient {} was merged into {into}; settle on the surviving record", req.patient_id),
        )
        .into());
    }
    let tier = facts.facility_tier.ok_or_else(|| StoreError::not_found(format!("facility {}", req.facility_id)))?;
    if tier != req.claim.tier.as_str() {
        return Err(tiercare_domain::DomainError::field(
            "claim.tier",
            "settlement.tier",
            format!(
                "the claim is for a {} facility, but facility {} is {tier}",
                req.claim.tier.as_str(),
                req.facility_id
            ),
        )
        .into());
    }
    if let Some(encounter_id) = req.encounter_id {
        let (e_patient, e_facility) =
            facts.encounter.ok_or_else(|| StoreError::not_found(format!("encounter {encounter_id}")))?;
        if e_patient != req.patient_id {
            return Err(tiercare_domain::DomainError::field(
                "encounter_id",
                "settlement.encounter_patient",
                format!("encounter {encounter_id} is not patient {}'s", req.patient_id),
            )
            .into());
        }
        if e_facility != req.facility_id {
            return Err(tiercare_domain::DomainError::field(
                "encounter_id",
                "settlement.encounter_facility",
                format!("encounter {encounter_id} is at another facility; only its own facility settles it"),
            )
            .into());
        }
        if let Some((id, txn)) = facts.encounter_settled {
            return Err(StoreError::EncounterSettled(format!(
                "encounter {encounter_id} is already settled (settlement {id}, transaction {txn}); reverse that first"
            )));
        }
    }
    // 3. adjudicate against the accumulators read (and locked) at the start
    let mut claim: Claim = req.claim.clone();
    claim.accumulators = facts.accumulators;
    let split = settlement::adjudicate(policies, &claim)?;
    // 4. write: the row and the accumulators, then the indicator counters last, so the
    // counter row a facility's settlements share (one per facility, month and home region)
    // stays locked on PostgreSQL only for that statement and the COMMIT
    let record = SettlementRecord {
        id: req.id,
        region_key: req.region_key.clone(),
        facility_id: req.facility_id,
        txn_no: req.txn_no.clone(),
        patient_id: req.patient_id,
        encounter_id: req.encounter_id,
        claim,
        items: req.items.clone(),
        split,
        status: SettlementStatus::Settled,
        // as stored (milliseconds), so the answer equals what a later read returns
        created_at: from_ms(ms(req.at))?,
        reversed_at: None,
        reversal_txn_no: None,
        reversal_reason: None,
        replayed: false,
    };
    write_settlement(tx, &record, year, req.at).await?;
    super::indicators::on_settled(tx, &record).await?; // issue 8: indicator counters
    Ok(record)
}

pub(super) async fn settle(s: &This, req: &SettleRequest, policies: &PolicySet) -> Result<SettlementRecord> {
    s.transact_row_locking(&(req, policies), |tx, (req, policies)| Box::pin(settle_tx(tx, req, policies))).await
}

async fn reverse_tx(tx: &mut Tx, id: Uuid, txn_no: &str, reason: &str, at: OffsetDateTime) -> Result<SettlementRecord> {
    check_txn_no("reversal_txn_no", txn_no)?;
    let reason = check_reason(reason)?;
    let s = by_id(&mut **tx, id).await?.ok_or_else(|| StoreError::not_found(format!("settlement {id}")))?;
    if s.status == SettlementStatus::Reversed {
        if s.reversal_txn_no.as_deref() == Some(txn_no) {
            return Ok(SettlementRecord { replayed: true, ..s });
        }
        return Err(StoreError::Conflict(format!(
            "settlement {id} was already reversed (reversal transaction {})",
            s.reversal_txn_no.as_deref().unwrap_or("?")
        )));
    }
    let used = query("SELECT id FROM settlement WHERE facility_id = $1 AND reversal_txn_no = $2")
        .bind(s.facility_id)
        .bind(txn_no)
        .fetch_optional(&mut **tx)
        .await?;
    if let Some(r) = used {
        let other: Uuid = r.try_get("id")?;
        return Err(StoreError::Conflict(format!(
            "reversal transaction number {txn_no} of this facility was used to reverse settlement {other}"
        )));
    }
    // the domain's arithmetic, applied to the accumulators as they are now (later bills of
    // the year stay counted): exactly this settlement's fund comes off its setting's total
    let year = s.claim.date.year();
    let now = accumulators_tx(tx, &s.region_key, s.patient_id, year).await?;
    let before = Split { after: now, ..s.split.clone() }.reversed(s.claim.setting);
    if before.inpatient_fund_paid_fen < 0 || before.outpatient_fund_paid_fen < 0 {
        return Err(StoreError::Corrupt(format!(
            "the accumulators of patient {} for {year} are less than settlement {id}'s fund payment",
            s.patient_id
        )));
    }
    let done = query(
        "UPDATE settlement SET status = 'reversed', reversal_txn_no = $1, reversed_at = $2, reversal_reason = $5
         WHERE region_key = $3 AND id = $4 AND status = 'settled'",
    )
    .bind(txn_no)
    .bind(ms(at))
    .bind(s.region_key.as_str())
    .bind(id)
    .bind(reason)
    .execute(&mut **tx)
    .await
    .map_err(|e| retry_on_unique_violation(e.into()))?;
    if done.rows_affected() != 1 {
        // unreachable under the write transaction; answered like any concurrent change
        return Err(StoreError::Busy);
    }
    super::indicators::on_reversed(tx, &s).await?; // issue 8: indicator counters
    let before = Accumulators { stay_deductible_paid_fen: 0, ..before };
    set_accumulators(tx, &s.region_key, s.patient_id, year, &before, at).await?;
    Ok(SettlementRecord {
        status: SettlementStatus::Reversed,
        reversal_txn_no: Some(txn_no.to_owned()),
        reversed_at: Some(from_ms(ms(at))?),
        reversal_reason: Some(reason.to_owned()),
        ..s
    })
}

pub(super) async fn reverse_settlement(
    s: &This,
    id: Uuid,
    reversal_txn_no: &str,
    reason: &str,
    at: OffsetDateTime,
) -> Result<SettlementRecord> {
    s.transact(&(id, reversal_txn_no, reason, at), |tx, (id, txn_no, reason, at)| {
        Box::pin(reverse_tx(tx, *id, txn_no, reason, *at))
    })
    .await
}

pub(super) async fn get_settlement(s: &This, id: Uuid) -> Result<Option<SettlementRecord>> {
    by_id(s.read(), id).await
}

pub(super) async fn find_settlement_by_txn(
    s: &This,
    facility_id: Uuid,
    txn_no: &str,
) -> Result<Option<SettlementRecord>> {
    by_txn(s.read(), facility_id, txn_no).await
}

pub(super) async fn accumulators(s: &This, patient_id: Uuid, year: i32) -> Result<Accumulators> {
    let row = query(
        "SELECT inpatient_fund_paid_fen, outpatient_fund_paid_fen FROM insurance_accumulator
         WHERE patient_id = $1 AND year = $2",
    )
    .bind(patient_id)
    .bind(i64::from(year))
    .fetch_optional(s.read())
    .await?;
    Ok(match row {
        Some(r) => Accumulators {
            inpatient_fund_paid_fen: r.try_get("inpatient_fund_paid_fen")?,
            outpatient_fund_paid_fen: r.try_get("outpatient_fund_paid_fen")?,
            stay_deductible_paid_fen: 0,
        },
        None => Accumulators::default(),
    })
}

/// `WHERE …` of the rows `f` selects (without its position), appended to `qb`.
fn push_settlement_filter(qb: &mut QueryBuilder<Db>, f: &SettlementFilter) {
    qb.push(" WHERE 1 = 1");
    if let Some(id) = f.facility_id {
        qb.push(" AND facility_id = ").push_bind(id);
    }
    if let Some(id) = f.patient_id {
        qb.push(" AND patient_id = ").push_bind(id);
    }
    if let Some(t) = f.from {
        qb.push(" AND created_at >= ").push_bind(ms(t));
    }
    if let Some(t) = f.to {
        qb.push(" AND created_at < ").push_bind(ms(t));
    }
    if let Some(st) = f.status {
        qb.push(" AND status = ").push_bind(st.as_str());
    }
}

/// Newest first, `(created_at, id)` descending: a total order, so a page that starts after
/// the previous page's last row (a row-value comparison, which both backends answer from
/// `settlement_journal` (facility_id, created_at, id)) neither repeats nor skips a row, also
/// among rows made in the same millisecond.
pub(super) async fn list_settlements(s: &This, f: &SettlementFilter) -> Result<Vec<SettlementRecord>> {
    let limit = match f.limit {
        0 => 100,
        n => n.min(1_000),
    };
    let mut qb: QueryBuilder<Db> = QueryBuilder::new(format!("SELECT {SETTLEMENT_COLS} FROM settlement"));
    push_settlement_filter(&mut qb, f);
    if let Some(at) = f.after {
        qb.push(" AND (created_at, id) < (").push_bind(ms(at.created_at)).push(", ").push_bind(at.id).push(")");
    }
    qb.push(" ORDER BY created_at DESC, id DESC LIMIT ").push_bind(i64::from(limit));
    qb.build().fetch_all(s.read()).await?.iter().map(settlement_from_row).collect()
}

/// The totals of every row `f` selects, per status, in one statement.
pub(super) async fn settlement_totals(s: &This, f: &SettlementFilter) -> Result<crate::SettlementTotals> {
    let mut qb: QueryBuilder<Db> = QueryBuilder::new(
        "SELECT status, COUNT(*) AS n, CAST(SUM(total_fen) AS BIGINT) AS total_fen,
           CAST(SUM(fund_fen) AS BIGINT) AS fund_fen, CAST(SUM(patient_fen) AS BIGINT) AS patient_fen
         FROM settlement",
    );
    push_settlement_filter(&mut qb, f);
    qb.push(" GROUP BY status");
    let mut t = crate::SettlementTotals::default();
    for r in qb.build().fetch_all(s.read()).await? {
        let status: String = r.try_get("status")?;
        match SettlementStatus::parse(&status).ok_or_else(|| corrupt("settlement status", &status))? {
            SettlementStatus::Settled => {
                t.count = r.try_get("n")?;
                t.total_fen = r.try_get("total_fen")?;
                t.fund_fen = r.try_get("fund_fen")?;
                t.patient_fen = r.try_get("patient_fen")?;
            }
            SettlementStatus::Reversed => {
                t.reversed_count = r.try_get("n")?;
                t.reversed_fund_fen = r.try_get("fund_fen")?;
            }
        }
    }
    Ok(t)
}

// ---------------------------------------------------------------------------------------
// Reports. Dates are stored as the local (Asia/Shanghai) `YYYY-MM-DD`, so the calendar
// month is the first seven characters and a date range is a text range; sums are cast to
// BIGINT (PostgreSQL's SUM of BIGINT is NUMERIC).
// ---------------------------------------------------------------------------------------

fn tier_from_row(r: &DbRow) -> Result<Tier> {
    let tier: String = r.try_get("tier")?;
    Tier::parse(&tier).ok_or_else(|| corrupt("tier", &tier))
}

pub(super) async fn fund_report(
    s: &This,
    from: Date,
    to_exclusive: Date,
    by_facility: bool,
    facility_ids: Option<&[Uuid]>,
) -> Result<Vec<crate::FundReportRow>> {
    if facility_ids.is_some_and(|ids| ids.is_empty()) {
        return Ok(Vec::new());
    }
    let facility = if by_facility { "facility_id, " } else { "" };
    let mut qb: QueryBuilder<Db> = QueryBuilder::new(format!(
        "SELECT substr(service_date, 1, 7) AS month, {facility}tier, COUNT(*) AS n,
           CAST(SUM(total_fen) AS BIGINT) AS total_fen, CAST(SUM(fund_fen) AS BIGINT) AS fund_fen,
           CAST(SUM(patient_fen) AS BIGINT) AS patient_fen
         FROM settlement WHERE status = 'settled' AND service_date >= "
    ));
    qb.push_bind(date_str(from)).push(" AND service_date < ").push_bind(date_str(to_exclusive));
    if let Some(ids) = facility_ids {
        qb.push(" AND facility_id IN (");
        let mut b = qb.separated(", ");
        for id in ids {
            b.push_bind(*id);
        }
        qb.push(")");
    }
    qb.push(format!(
        " GROUP BY substr(service_date, 1, 7), {facility}tier ORDER BY substr(service_date, 1, 7), {facility}tier"
    ));
    let rows = qb.build().fetch_all(s.read()).await?;
    let mut out = rows
        .iter()
        .map(|r| {
            Ok(crate::FundReportRow {
                month: r.try_get("month")?,
                facility_id: if by_facility { Some(r.try_get("facility_id")?) } else { None },
                tier: tier_from_row(r)?,
                count: r.try_get("n")?,
                total_fen: r.try_get("total_fen")?,
                fund_fen: r.try_get("fund_fen")?,
                patient_fen: r.try_get("patient_fen")?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    // tiers in their order (village first), not the text's
    out.sort_by(|a, b| (&a.month, a.facility_id, a.tier).cmp(&(&b.month, b.facility_id, b.tier)));
    Ok(out)
}

pub(super) async fn outflow_report(
    s: &This,
    insured_county: &str,
    from: Date,
    to_exclusive: Date,
) -> Result<Vec<crate::OutflowRow>> {
    let province: String = insured_county.chars().take(2).collect();
    let rows = query(
        "SELECT month, destination, tier, COUNT(*) AS n,
           CAST(SUM(total_fen) AS BIGINT) AS total_fen, CAST(SUM(fund_fen) AS BIGINT) AS fund_fen
         FROM (
           SELECT substr(s.service_date, 1, 7) AS month,
             CASE WHEN substr(f.region_code, 1, 2) = $1 THEN 'out_of_county_in_province' ELSE 'out_of_province' END
               AS destination,
             s.tier AS tier, s.total_fen AS total_fen, s.fund_fen AS fund_fen
           FROM settlement s JOIN facility f ON f.id = s.facility_id
           WHERE s.region_key = $2 AND f.region_code <> $3 AND s.status = 'settled'
             AND s.service_date >= $4 AND s.service_date < $5
         ) t
         GROUP BY month, destination, tier",
    )
    .bind(province.as_str())
    .bind(insured_county)
    .bind(insured_county)
    .bind(date_str(from))
    .bind(date_str(to_exclusive))
    .fetch_all(s.read())
    .await?;
    let mut out = rows
        .iter()
        .map(|r| {
            Ok(crate::OutflowRow {
                month: r.try_get("month")?,
                destination: r.try_get("destination")?,
                tier: tier_from_row(r)?,
                count: r.try_get("n")?,
                total_fen: r.try_get("total_fen")?,
                fund_fen: r.try_get("fund_fen")?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    out.sort_by(|a, b| (&a.month, &a.destination, a.tier).cmp(&(&b.month, &b.destination, b.tier)));
    Ok(out)
}

pub(super) async fn clearing_report(s: &This, from: Date, to_exclusive: Date) -> Result<Vec<crate::ClearingRow>> {
    let rows = query(
        "SELECT substr(s.service_date, 1, 7) AS month,
           substr(s.insured_region, 1, 2) || '0000' AS insured_province,
           substr(f.region_code, 1, 2) || '0000' AS treatment_province,
           COUNT(*) AS n, CAST(SUM(s.total_fen) AS BIGINT) AS total_fen, CAST(SUM(s.fund_fen) AS BIGINT) AS fund_fen
         FROM settlement s JOIN facility f ON f.id = s.facility_id
         WHERE s.status = 'settled' AND s.service_date >= $1 AND s.service_date < $2
           AND substr(s.insured_region, 1, 2) <> substr(f.region_code, 1, 2)
         GROUP BY substr(s.service_date, 1, 7), substr(s.insured_region, 1, 2), substr(f.region_code, 1, 2)
         ORDER BY substr(s.service_date, 1, 7), substr(s.insured_region, 1, 2), substr(f.region_code, 1, 2)",
    )
    .bind(date_str(from))
    .bind(date_str(to_exclusive))
    .fetch_all(s.read())
    .await?;
    rows.iter()
        .map(|r| {
            Ok(crate::ClearingRow {
                month: r.try_get("month")?,
                insured_province: r.try_get("insured_province")?,
                treatment_province: r.try_get("treatment_province")?,
                count: r.try_get("n")?,
                total_fen: r.try_get("total_fen")?,
                fund_fen: r.try_get("fund_fen")?,
            })
        })
        .collect()
}

// ---------------------------------------------------------------------------------------
// Bulk load (the generator)
// ---------------------------------------------------------------------------------------

/// Settlement rows per multi-row INSERT (31 columns × 500 = 15,500 parameters).
const SETTLEMENT_CHUNK: usize = 500;

async fn import_settlements_tx(tx: &mut Tx, rows: &[SettlementRecord]) -> Result<()> {
    // fund of the settled rows per person and year, inpatient and outpatient apart (sorted,
    // so the upserts take their keys in one order)
    let mut add: std::collections::BTreeMap<(&str, Uuid, i32), (i64, i64)> = std::collections::BTreeMap::new();
    // the priced lines, when given, describe the claim's lines (none: an older export)
    if let Some(r) = rows.iter().find(|r| !r.items.is_empty() && check_items(&r.items, &r.claim).is_err()) {
        check_items(&r.items, &r.claim)?;
    }
    for chunk in rows.chunks(SETTLEMENT_CHUNK) {
        let facilities = known_facilities(tx, chunk.iter().map(|r| r.facility_id)).await?;
        if let Some(r) = chunk.iter().find(|r| !facilities.contains(&r.facility_id)) {
            return Err(StoreError::not_found(format!("facility {}", r.facility_id)));
        }
        let patients = patient_regions(tx, chunk.iter().map(|r| r.patient_id)).await?;
        if let Some(r) = chunk.iter().find(|r| patients.get(&r.patient_id) != Some(&r.region_key)) {
            return Err(StoreError::not_found(format!("patient {} (in region {})", r.patient_id, r.region_key)));
        }
        let mut qb: QueryBuilder<Db> = QueryBuilder::new(format!("{BULK_INSERT} settlement ({SETTLEMENT_COLS}) "));
        let mut bad: Option<StoreError> = None;
        qb.push_values(chunk, |mut b, r| {
            let c = &r.claim;
            let sp = &r.split;
            let (claim, explanation, after, items) =
                match (json(c), json(&sp.explanation), json(&sp.after), items_json(&r.items)) {
                    (Ok(a), Ok(b), Ok(c), Ok(d)) => (a, b, c, d),
                    (Err(e), _, _, _) | (_, Err(e), _, _) | (_, _, Err(e), _) | (_, _, _, Err(e)) => {
                        bad.get_or_insert(e);
                        Default::default()
                    }
                };
            b.push_bind(r.region_key.clone())
                .push_bind(r.id)
                .push_bind(r.facility_id)
                .push_bind(r.txn_no.clone())
                .push_bind(r.patient_id)
                .push_bind(r.encounter_id)
                .push_bind(c.scheme.as_str())
                .push_bind(c.insured_region.clone())
                .push_bind(setting_str(c.setting))
                .push_bind(c.tier.as_str())
                .push_bind(date_str(c.date))
                .push_bind(i64::from(c.date.year()))
                .push_bind(claim)
                .push_bind(sp.total_fen)
                .push_bind(sp.fund_fen)
                .push_bind(sp.patient_fen)
                .push_bind(sp.self_pay_fen)
                .push_bind(sp.class_b_share_fen)
                .push_bind(sp.deductible_fen)
                .push_bind(sp.coinsurance_fen)
                .push_bind(sp.above_ceiling_fen)
                .push_bind(i64::from(sp.rate_bp))
                .push_bind(sp.policy.clone())
                .push_bind(explanation)
                .push_bind(after)
                .push_bind(r.status.as_str())
                .push_bind(r.reversal_txn_no.clone())
                .push_bind(r.reversed_at.map(ms))
                .push_bind(ms(r.created_at))
                .push_bind(items)
                .push_bind(r.reversal_reason.clone());
        });
        if let Some(e) = bad {
            return Err(e);
        }
        super::indicators::on_settlements_imported(tx, chunk).await?; // issue 8: indicator counters
        qb.build().execute(&mut **tx).await?;
        for r in chunk.iter().filter(|r| r.status == SettlementStatus::Settled) {
            let e = add.entry((r.region_key.as_str(), r.patient_id, r.claim.date.year())).or_default();
            match r.claim.setting {
                Setting::Inpatient => e.0 += r.split.fund_fen,
                Setting::Outpatient => e.1 += r.split.fund_fen,
            }
        }
    }
    let now = now_ms();
    let add: Vec<_> = add.into_iter().collect();
    for chunk in add.chunks(IMPORT_CHUNK) {
        let mut qb: QueryBuilder<Db> = QueryBuilder::new(
            "INSERT INTO insurance_accumulator
               (region_key, patient_id, year, inpatient_fund_paid_fen, outpatient_fund_paid_fen, updated_at) ",
        );
        qb.push_values(chunk, |mut b, ((region, patient, year), (inpatient, outpatient))| {
            b.push_bind(region.to_string())
                .push_bind(*patient)
                .push_bind(i64::from(*year))
                .push_bind(*inpatient)
                .push_bind(*outpatient)
                .push_bind(now);
        });
        qb.push(
            " ON CONFLICT (region_key, patient_id, year) DO UPDATE SET
               inpatient_fund_paid_fen = insurance_accumulator.inpatient_fund_paid_fen + excluded.inpatient_fund_paid_fen,
               outpatient_fund_paid_fen = insurance_accumulator.outpatient_fund_paid_fen + excluded.outpatient_fund_paid_fen,
               updated_at = excluded.updated_at",
        );
        qb.build().execute(&mut **tx).await?;
    }
    Ok(())
}

pub(super) async fn import_settlements(s: &This, rows: &[SettlementRecord]) -> Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    s.transact(rows, |tx, rows| Box::pin(import_settlements_tx(tx, rows))).await
}
