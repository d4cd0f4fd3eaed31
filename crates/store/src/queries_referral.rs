// Referral queries (issue 4): included into `mod referral` inside `queries.rs`, so it is
// compiled once per backend like the rest. Functions take the store (`&This`) and use its
// `transact` and read pool. SQL here must be valid on both SQLite and PostgreSQL.
//
// Worklists: the inbox and outbox read through the indexes of 0002 (`referral_inbox`,
// `referral_inbox_all`, `referral_outbox`, `referral_outbox_all`, `referral_inbox_green`,
// `referral_inbox_due`, `referral_arriving`). The other party's id is the last column of the
// inbox and outbox indexes, so a tier filter (`… IN (SELECT id FROM facility WHERE tier = …)`)
// is checked in the index and the table is read only for rows that pass. The predicates of
// the partial indexes (`green_channel IS NOT NULL`, `due_at IS NOT NULL`, `state =
// 'scheduled'`) are written as literals, not parameters: SQLite (and PostgreSQL's generic
// plans) can use a partial index only when the query's own text implies the index's condition.

use super::*;

use tiercare_domain::facility::EmergencyCentre;
use tiercare_domain::filing::FilingCategory;
use tiercare_domain::referral::{Direction, NotificationKind, Reach, ReferralState, Timepoint, Urgency, china_date};

/// The states in which someone still has to act (`ReferralState::is_open`), as SQL.
const OPEN_STATES: &str = "('requested', 'redirected', 'accepted', 'scheduled', 'arrived')";
const OUTBOX_TOPIC: &str = "referral.notification";
/// Referral columns in insert order (the update sets all but the key and the first four).
const REFERRAL_COLS: &str = "region_key, id, patient_id, from_facility_id, from_department, requested_by, requested_at,
    direction, reach, to_facility_id, to_department, urgency, green_channel, reason, diagnoses, clinical_summary,
    discharge_summary, follow_up_plan, encounter_ids, state, version, acknowledged_at, due_at, scheduled_at, escalations,
    timepoints, outcome, updated_at";
const EVENT_COLS: &str =
    "region_key, id, referral_id, version, at, actor_user_id, actor_facility_id, action, from_state,
    to_state, reason, to_facility_id, time, timepoint";
const FOLLOW_UP_COLS: &str =
    "region_key, id, patient_id, referral_id, facility_id, what, due_date, done_at, done_by, note";
const FILING_COLS: &str =
    "region_key, id, patient_id, category, insured_region, filed_region, valid_from, valid_to, referral_id, created_at";
/// Rows per multi-row insert of referrals (28 columns: 28,000 parameters, under SQLite's 32,766).
const REFERRAL_CHUNK: usize = IMPORT_CHUNK;
/// Rows per multi-row insert of events (14 columns), tasks and filings (10 columns).
const SMALL_ROW_CHUNK: usize = 2 * IMPORT_CHUNK;

fn json<T: serde::Serialize + ?Sized>(v: &T) -> Result<String> {
    serde_json::to_string(v).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn from_json<T: serde::de::DeserializeOwned>(what: &str, s: &str) -> Result<T> {
    serde_json::from_str(s).map_err(|_| corrupt(what, s))
}

fn opt_ms(r: &DbRow, col: &str) -> Result<Option<OffsetDateTime>> {
    r.try_get::<Option<i64>, _>(col)?.map(from_ms).transpose()
}

fn state_of(s: &str) -> Result<ReferralState> {
    ReferralState::parse(s).ok_or_else(|| corrupt("referral state", s))
}

/// Timepoints are kept as JSON `[["door", ms], …]`, in the order recorded.
fn timepoints_json(tps: &[(Timepoint, OffsetDateTime)]) -> Result<String> {
    json(&tps.iter().map(|(t, at)| (t.as_str(), ms(*at))).collect::<Vec<_>>())
}

fn timepoints_from(s: &str) -> Result<Vec<(Timepoint, OffsetDateTime)>> {
    let raw: Vec<(String, i64)> = from_json("timepoints", s)?;
    raw.into_iter()
        .map(|(t, at)| Ok((Timepoint::parse(&t).ok_or_else(|| corrupt("timepoint", &t))?, from_ms(at)?)))
        .collect()
}

fn referral_from_row(r: &DbRow) -> Result<Referral> {
    let direction: String = r.try_get("direction")?;
    let reach: String = r.try_get("reach")?;
    let urgency: String = r.try_get("urgency")?;
    let green: Option<String> = r.try_get("green_channel")?;
    let state: String = r.try_get("state")?;
    let diagnoses: String = r.try_get("diagnoses")?;
    let plan: String = r.try_get("follow_up_plan")?;
    let encounters: String = r.try_get("encounter_ids")?;
    let timepoints: String = r.try_get("timepoints")?;
    let escalations: i64 = r.try_get("escalations")?;
    Ok(Referral {
        id: r.try_get("id")?,
        region_key: r.try_get("region_key")?,
        patient_id: r.try_get("patient_id")?,
        direction: Direction::parse(&direction).ok_or_else(|| corrupt("direction", &direction))?,
        reach: Reach::parse(&reach).ok_or_else(|| corrupt("reach", &reach))?,
        from_facility_id: r.try_get("from_facility_id")?,
        from_department: r.try_get("from_department")?,
        requested_by: r.try_get("requested_by")?,
        to_facility_id: r.try_get("to_facility_id")?,
        to_department: r.try_get("to_department")?,
        urgency: Urgency::parse(&urgency).ok_or_else(|| corrupt("urgency", &urgency))?,
        green_channel: green
            .as_deref()
            .map(|g| EmergencyCentre::parse(g).ok_or_else(|| corrupt("green channel", g)))
            .transpose()?,
        reason: r.try_get("reason")?,
        diagnoses: from_json("diagnoses", &diagnoses)?,
        clinical_summary: r.try_get("clinical_summary")?,
        discharge_summary: r.try_get("discharge_summary")?,
        follow_up_plan: from_json("follow-up plan", &plan)?,
        encounter_ids: from_json("encounter ids", &encounters)?,
        state: state_of(&state)?,
        version: r.try_get("version")?,
        requested_at: from_ms(r.try_get("requested_at")?)?,
        acknowledged_at: opt_ms(r, "acknowledged_at")?,
        due_at: opt_ms(r, "due_at")?,
        scheduled_at: opt_ms(r, "scheduled_at")?,
        escalations: u32::try_from(escalations).map_err(|_| corrupt("escalations", &escalations.to_string()))?,
        timepoints: timepoints_from(&timepoints)?,
        outcome: r.try_get("outcome")?,
        updated_at: from_ms(r.try_get("updated_at")?)?,
    })
}

fn event_from_row(r: &DbRow) -> Result<ReferralEvent> {
    event_from_columns(r, "")
}

/// An event from the columns named `prefix` + the column name (a join aliases them).
fn event_from_columns(r: &DbRow, prefix: &str) -> Result<ReferralEvent> {
    let col = |c: &'static str| -> std::borrow::Cow<'static, str> {
        if prefix.is_empty() { c.into() } else { format!("{prefix}{c}").into() }
    };
    let from_state: Option<String> = r.try_get(&*col("from_state"))?;
    let to_state: String = r.try_get(&*col("to_state"))?;
    let timepoint: Option<String> = r.try_get(&*col("timepoint"))?;
    Ok(ReferralEvent {
        id: r.try_get(&*col("id"))?,
        region_key: r.try_get(&*col("region_key"))?,
        referral_id: r.try_get(&*col("referral_id"))?,
        version: r.try_get(&*col("version"))?,
        at: from_ms(r.try_get(&*col("at"))?)?,
        actor_user_id: r.try_get(&*col("actor_user_id"))?,
        actor_facility_id: r.try_get(&*col("actor_facility_id"))?,
        action: r.try_get(&*col("action"))?,
        from_state: from_state.as_deref().map(state_of).transpose()?,
        to_state: state_of(&to_state)?,
        reason: r.try_get(&*col("reason"))?,
        to_facility_id: r.try_get(&*col("to_facility_id"))?,
        time: opt_ms(r, &col("time"))?,
        timepoint: timepoint
            .as_deref()
            .map(|t| Timepoint::parse(t).ok_or_else(|| corrupt("timepoint", t)))
            .transpose()?,
    })
}

fn follow_up_from_row(r: &DbRow) -> Result<FollowUpTask> {
    let due: String = r.try_get("due_date")?;
    Ok(FollowUpTask {
        id: r.try_get("id")?,
        region_key: r.try_get("region_key")?,
        patient_id: r.try_get("patient_id")?,
        referral_id: r.try_get("referral_id")?,
        facility_id: r.try_get("facility_id")?,
        what: r.try_get("what")?,
        due_date: parse_date(&due)?,
        done_at: opt_ms(r, "done_at")?,
        done_by: r.try_get("done_by")?,
        note: r.try_get("note")?,
    })
}

fn filing_from_row(r: &DbRow) -> Result<Filing> {
    let category: String = r.try_get("category")?;
    let from: String = r.try_get("valid_from")?;
    let to: Option<String> = r.try_get("valid_to")?;
    Ok(Filing {
        id: r.try_get("id")?,
        region_key: r.try_get("region_key")?,
        patient_id: r.try_get("patient_id")?,
        category: FilingCategory::parse(&category).ok_or_else(|| corrupt("filing category", &category))?,
        insured_region: r.try_get("insured_region")?,
        filed_region: r.try_get("filed_region")?,
        valid_from: parse_date(&from)?,
        valid_to: to.as_deref().map(parse_date).transpose()?,
        referral_id: r.try_get("referral_id")?,
        created_at: from_ms(r.try_get("created_at")?)?,
    })
}

fn notification_from_row(r: &DbRow) -> Result<Notification> {
    let kind: String = r.try_get("kind")?;
    Ok(Notification {
        id: r.try_get("id")?,
        facility_id: r.try_get("facility_id")?,
        referral_id: r.try_get("referral_id")?,
        kind: NotificationKind::parse(&kind).ok_or_else(|| corrupt("notification kind", &kind))?,
        action: r.try_get("action")?,
        at: from_ms(r.try_get("at")?)?,
    })
}

fn outbox_from_row(r: &DbRow) -> Result<OutboxMessage> {
    Ok(OutboxMessage {
        id: r.try_get("id")?,
        topic: r.try_get("topic")?,
        payload: r.try_get("payload")?,
        created_at: from_ms(r.try_get("created_at")?)?,
        delivered_at: opt_ms(r, "delivered_at")?,
    })
}

/// The outbox message for a notification: facility, referral and what happened; no patient.
fn outbox_payload(n: &Notification) -> String {
    let at = n.at.format(&time::format_description::well_known::Rfc3339).unwrap_or_default();
    serde_json::json!({
        "notification_id": n.id,
        "facility_id": n.facility_id,
        "referral_id": n.referral_id,
        "kind": n.kind.as_str(),
        "action": n.action,
        "at": at,
    })
    .to_string()
}

/// A unique violation (the referral_event version index, a taken key) as its own error.
fn on_unique_violation(e: StoreError, then: impl FnOnce() -> StoreError) -> StoreError {
    if e.is_unique_violation() { then() } else { e }
}

fn conflict(state: &str, version: i64) -> StoreError {
    StoreError::Conflict(format!(
        "the referral was changed by someone else meanwhile; it is now {state} (version {version}); reload and try again"
    ))
}

/// Bind one referral's columns, in [`REFERRAL_COLS`] order.
fn push_referral(mut b: Separated<'_, Db, &'static str>, r: &Referral) -> Result<()> {
    b.push_bind(r.region_key.as_str())
        .push_bind(r.id)
        .push_bind(r.patient_id)
        .push_bind(r.from_facility_id)
        .push_bind(r.from_department.as_deref())
        .push_bind(r.requested_by)
        .push_bind(ms(r.requested_at))
        .push_bind(r.direction.as_str())
        .push_bind(r.reach.as_str())
        .push_bind(r.to_facility_id)
        .push_bind(r.to_department.as_deref())
        .push_bind(r.urgency.as_str())
        .push_bind(r.green_channel.map(EmergencyCentre::as_str))
        .push_bind(r.reason.as_str())
        .push_bind(json(&r.diagnoses)?)
        .push_bind(r.clinical_summary.as_str())
        .push_bind(r.discharge_summary.as_deref())
        .push_bind(json(&r.follow_up_plan)?)
        .push_bind(json(&r.encounter_ids)?)
        .push_bind(r.state.as_str())
        .push_bind(r.version)
        .push_bind(r.acknowledged_at.map(ms))
        .push_bind(r.due_at.map(ms))
        .push_bind(r.scheduled_at.map(ms))
        .push_bind(i64::from(r.escalations))
        .push_bind(timepoints_json(&r.timepoints)?)
        .push_bind(r.outcome.as_deref())
        .push_bind(ms(r.updated_at));
    Ok(())
}

fn push_event(mut b: Separated<'_, Db, &'static str>, e: &ReferralEvent) {
    b.push_bind(e.region_key.as_str())
        .push_bind(e.id)
        .push_bind(e.referral_id)
        .push_bind(e.version)
        .push_bind(ms(e.at))
        .push_bind(e.actor_user_id)
        .push_bind(e.actor_facility_id)
        .push_bind(e.action.as_str())
        .push_bind(e.from_state.map(ReferralState::as_str))
        .push_bind(e.to_state.as_str())
        .push_bind(e.reason.as_deref())
        .push_bind(e.to_facility_id)
        .push_bind(e.time.map(ms))
        .push_bind(e.timepoint.map(Timepoint::as_str));
}

fn push_follow_up(mut b: Separated<'_, Db, &'static str>, t: &FollowUpTask) {
    b.push_bind(t.region_key.as_str())
        .push_bind(t.id)
        .push_bind(t.patient_id)
        .push_bind(t.referral_id)
        .push_bind(t.facility_id)
        .push_bind(t.what.as_str())
        .push_bind(date_str(t.due_date))
        .push_bind(t.done_at.map(ms))
        .push_bind(t.done_by)
        .push_bind(t.note.as_deref());
}

fn push_filing(mut b: Separated<'_, Db, &'static str>, f: &Filing) {
    b.push_bind(f.region_key.as_str())
        .push_bind(f.id)
        .push_bind(f.patient_id)
        .push_bind(f.category.as_str())
        .push_bind(f.insured_region.as_str())
        .push_bind(f.filed_region.as_str())
        .push_bind(date_str(f.valid_from))
        .push_bind(f.valid_to.map(date_str))
        .push_bind(f.referral_id)
        .push_bind(ms(f.created_at));
}

async fn insert_referrals(tx: &mut Tx, insert: &str, rs: &[&Referral]) -> Result<()> {
    for chunk in rs.chunks(REFERRAL_CHUNK) {
        let mut qb: QueryBuilder<Db> = QueryBuilder::new(format!("{insert} referral ({REFERRAL_COLS}) VALUES "));
        for (i, r) in chunk.iter().enumerate() {
            if i > 0 {
                qb.push(", ");
            }
            qb.push("(");
            push_referral(qb.separated(", "), r)?;
            qb.push(")");
        }
        qb.build().execute(&mut **tx).await?;
    }
    Ok(())
}

async fn insert_events(tx: &mut Tx, insert: &str, es: &[&ReferralEvent]) -> Result<()> {
    for chunk in es.chunks(SMALL_ROW_CHUNK) {
        let mut qb: QueryBuilder<Db> = QueryBuilder::new(format!("{insert} referral_event ({EVENT_COLS}) "));
        qb.push_values(chunk, |b, e| push_event(b, e));
        qb.build().execute(&mut **tx).await?;
    }
    Ok(())
}

async fn insert_follow_ups(tx: &mut Tx, insert: &str, ts: &[&FollowUpTask]) -> Result<()> {
    for chunk in ts.chunks(SMALL_ROW_CHUNK) {
        let mut qb: QueryBuilder<Db> = QueryBuilder::new(format!("{insert} follow_up_task ({FOLLOW_UP_COLS}) "));
        qb.push_values(chunk, |b, t| push_follow_up(b, t));
        qb.build().execute(&mut **tx).await?;
    }
    Ok(())
}

async fn insert_filings(tx: &mut Tx, insert: &str, fs: &[&Filing]) -> Result<()> {
    for chunk in fs.chunks(SMALL_ROW_CHUNK) {
        let mut qb: QueryBuilder<Db> = QueryBuilder::new(format!("{insert} insurance_filing ({FILING_COLS}) "));
        qb.push_values(chunk, |b, f| push_filing(b, f));
        qb.build().execute(&mut **tx).await?;
    }
    Ok(())
}

/// Everything a step writes besides the referral row: the event (its version is unique per
/// referral, the database's own guard against two steps from one version), follow-up
/// tasks, the filing, notifications and one outbox message per notification.
async fn write_step(tx: &mut Tx, c: &Change) -> Result<()> {
    let r = &c.referral;
    if c.event.referral_id != r.id || c.event.version != r.version || c.event.region_key != r.region_key {
        return Err(StoreError::Corrupt(format!(
            "the event of referral {} (version {}) does not belong to it",
            r.id, r.version
        )));
    }
    insert_events(tx, "INSERT INTO", &[&c.event]).await.map_err(|e| {
        on_unique_violation(e, || {
            // another step with this version landed first (the UPDATE's check normally answers)
            conflict("changed", r.version)
        })
    })?;
    insert_follow_ups(tx, "INSERT INTO", &c.follow_ups.iter().collect::<Vec<_>>()).await?;
    if let Some(f) = &c.filing {
        insert_filings(tx, "INSERT INTO", &[f]).await?;
    }
    if !c.notifications.is_empty() {
        let mut qb: QueryBuilder<Db> =
            QueryBuilder::new("INSERT INTO notification (id, facility_id, referral_id, kind, action, at) ");
        qb.push_values(&c.notifications, |mut b, n| {
            b.push_bind(n.id)
                .push_bind(n.facility_id)
                .push_bind(n.referral_id)
                .push_bind(n.kind.as_str())
                .push_bind(n.action.as_str())
                .push_bind(ms(n.at));
        });
        qb.build().execute(&mut **tx).await?;
        let mut qb: QueryBuilder<Db> =
            QueryBuilder::new("INSERT INTO outbox (id, topic, payload, created_at, delivered_at) ");
        qb.push_values(&c.notifications, |mut b, n| {
            b.push_bind(crate::new_id())
                .push_bind(OUTBOX_TOPIC)
                .push_bind(outbox_payload(n))
                .push_bind(ms(n.at))
                .push_bind(None::<i64>);
        });
        qb.build().execute(&mut **tx).await?;
    }
    Ok(())
}

/// The access-log row of the user whose step it is, in the step's transaction (a step's
/// answer shows the patient, as a read does; see `routes::referrals::transition`).
async fn insert_access(tx: &mut Tx, e: Option<&AccessLogEntry>) -> Result<()> {
    match e {
        Some(e) => super::insert_access_log(tx, e).await,
        None => Ok(()),
    }
}

pub(super) async fn create_referral(s: &This, c: &Change, access: Option<&AccessLogEntry>) -> Result<()> {
    s.transact(&(c, access), |tx, (c, access)| Box::pin(create_referral_tx(tx, c, *access))).await
}

/// [`create_referral`] inside a transaction (also one write of `Store::apply_writes`).
pub(super) async fn create_referral_tx(tx: &mut Tx, c: &Change, access: Option<&AccessLogEntry>) -> Result<()> {
    let r = &c.referral;
    let p = get_patient_tx(tx, r.patient_id)
        .await?
        .ok_or_else(|| StoreError::not_found(format!("patient {}", r.patient_id)))?;
    if p.region_key != r.region_key {
        return Err(StoreError::Corrupt("referral region key differs from its patient's".into()));
    }
    require_exists(tx, "SELECT id FROM facility WHERE id = $1", r.from_facility_id, "sending facility").await?;
    require_exists(tx, "SELECT id FROM facility WHERE id = $1", r.to_facility_id, "receiving facility").await?;
    super::indicators::on_referral_created(tx, r).await?; // issue 8: indicator counters
    insert_referrals(tx, "INSERT INTO", &[r]).await.map_err(|e| {
        on_unique_violation(e, || StoreError::Duplicate { what: format!("referral {}", r.id), existing: Some(r.id) })
    })?;
    write_step(tx, c).await?;
    insert_access(tx, access).await
}

pub(super) async fn apply_referral_change(s: &This, c: &Change, access: Option<&AccessLogEntry>) -> Result<()> {
    s.transact(&(c, access), |tx, (c, access)| Box::pin(apply_referral_change_tx(tx, c, *access))).await
}

/// [`apply_referral_change`] inside a transaction (also one write of `Store::apply_writes`).
pub(super) async fn apply_referral_change_tx(tx: &mut Tx, c: &Change, access: Option<&AccessLogEntry>) -> Result<()> {
    super::indicators::on_referral_change(tx, c).await?; // issue 8: indicator counters
    let r = &c.referral;
    if BACKEND == Backend::Sqlite {
        update_changed_columns(tx, r).await?;
        write_step(tx, c).await?;
        return insert_access(tx, access).await;
    }
    let res = query(
        "UPDATE referral SET direction = $1, reach = $2, to_facility_id = $3, to_department = $4, urgency = $5,
           green_channel = $6, reason = $7, diagnoses = $8, clinical_summary = $9, discharge_summary = $10,
           follow_up_plan = $11, encounter_ids = $12, state = $13, version = $14, acknowledged_at = $15,
           due_at = $16, scheduled_at = $17, escalations = $18, timepoints = $19, outcome = $20, updated_at = $21
         WHERE region_key = $22 AND id = $23 AND version = $24",
    )
    .bind(r.direction.as_str())
    .bind(r.reach.as_str())
    .bind(r.to_facility_id)
    .bind(r.to_department.as_deref())
    .bind(r.urgency.as_str())
    .bind(r.green_channel.map(EmergencyCentre::as_str))
    .bind(r.reason.as_str())
    .bind(json(&r.diagnoses)?)
    .bind(r.clinical_summary.as_str())
    .bind(r.discharge_summary.as_deref())
    .bind(json(&r.follow_up_plan)?)
    .bind(json(&r.encounter_ids)?)
    .bind(r.state.as_str())
    .bind(r.version)
    .bind(r.acknowledged_at.map(ms))
    .bind(r.due_at.map(ms))
    .bind(r.scheduled_at.map(ms))
    .bind(i64::from(r.escalations))
    .bind(timepoints_json(&r.timepoints)?)
    .bind(r.outcome.as_deref())
    .bind(ms(r.updated_at))
    .bind(r.region_key.as_str())
    .bind(r.id)
    .bind(r.version - 1)
    .execute(&mut **tx)
    .await?;
    if res.rows_affected() != 1 {
        let current = query("SELECT state, version FROM referral WHERE region_key = $1 AND id = $2")
            .bind(r.region_key.as_str())
            .bind(r.id)
            .fetch_optional(&mut **tx)
            .await?
            .ok_or_else(|| StoreError::not_found(format!("referral {}", r.id)))?;
        let state: String = current.try_get("state")?;
        return Err(conflict(&state, current.try_get("version")?));
    }
    write_step(tx, c).await?;
    insert_access(tx, access).await
}

/// SQLite: write only the referral's columns that the step changed. SQLite rewrites every
/// index that holds a column named in an UPDATE's SET (and every partial index whose WHERE
/// names one), whether or not the value changed; the full UPDATE below names the receiver,
/// the green channel, the state and the deadline, so each step rewrote eight of the eleven
/// secondary indexes. A step usually changes the state and a time or two: this rewrites
/// the inbox and outbox by state and, when the deadline or schedule moves, those
/// indexes only. The stored row is read first on the writer's own connection (its pages
/// are in the writer's cache); its version must be the one the step was computed from.
async fn update_changed_columns(tx: &mut Tx, r: &Referral) -> Result<()> {
    let row = query("SELECT * FROM referral WHERE region_key = $1 AND id = $2")
        .bind(r.region_key.as_str())
        .bind(r.id)
        .fetch_optional(&mut **tx)
        .await?
        .ok_or_else(|| StoreError::not_found(format!("referral {}", r.id)))?;
    let old = referral_from_row(&row)?;
    if old.version != r.version - 1 {
        return Err(conflict(old.state.as_str(), old.version));
    }
    let mut qb: QueryBuilder<Db> = QueryBuilder::new("UPDATE referral SET version = ");
    qb.push_bind(r.version).push(", updated_at = ").push_bind(ms(r.updated_at));
    let opt_ms = |t: Option<OffsetDateTime>| t.map(ms);
    if old.direction != r.direction {
        qb.push(", direction = ").push_bind(r.direction.as_str());
    }
    if old.reach != r.reach {
        qb.push(", reach = ").push_bind(r.reach.as_str());
    }
    if old.to_facility_id != r.to_facility_id {
        qb.push(", to_facility_id = ").push_bind(r.to_facility_id);
    }
    if old.to_department != r.to_department {
        qb.push(", to_department = ").push_bind(r.to_department.clone());
    }
    if old.urgency != r.urgency {
        qb.push(", urgency = ").push_bind(r.urgency.as_str());
    }
    if old.green_channel != r.green_channel {
        qb.push(", green_channel = ").push_bind(r.green_channel.map(EmergencyCentre::as_str));
    }
    if old.reason != r.reason {
        qb.push(", reason = ").push_bind(r.reason.as_str());
    }
    if old.diagnoses != r.diagnoses {
        qb.push(", diagnoses = ").push_bind(json(&r.diagnoses)?);
    }
    if old.clinical_summary != r.clinical_summary {
        qb.push(", clinical_summary = ").push_bind(r.clinical_summary.as_str());
    }
    if old.discharge_summary != r.discharge_summary {
        qb.push(", discharge_summary = ").push_bind(r.discharge_summary.clone());
    }
    if old.follow_up_plan != r.follow_up_plan {
        qb.push(", follow_up_plan = ").push_bind(json(&r.follow_up_plan)?);
    }
    if old.encounter_ids != r.encounter_ids {
        qb.push(", encounter_ids = ").push_bind(json(&r.encounter_ids)?);
    }
    if old.state != r.state {
        qb.push(", state = ").push_bind(r.state.as_str());
    }
    if opt_ms(old.acknowledged_at) != opt_ms(r.acknowledged_at) {
        qb.push(", acknowledged_at = ").push_bind(opt_ms(r.acknowledged_at));
    }
    if opt_ms(old.due_at) != opt_ms(r.due_at) {
        qb.push(", due_at = ").push_bind(opt_ms(r.due_at));
    }
    if opt_ms(old.scheduled_at) != opt_ms(r.scheduled_at) {
        qb.push(", scheduled_at = ").push_bind(opt_ms(r.scheduled_at));
    }
    if old.escalations != r.escalations {
        qb.push(", escalations = ").push_bind(i64::from(r.escalations));
    }
    let stamps = |tps: &[(Timepoint, OffsetDateTime)]| tps.iter().map(|(t, at)| (*t, ms(*at))).collect::<Vec<_>>();
    if stamps(&old.timepoints) != stamps(&r.timepoints) {
        qb.push(", timepoints = ").push_bind(timepoints_json(&r.timepoints)?);
    }
    if old.outcome != r.outcome {
        qb.push(", outcome = ").push_bind(r.outcome.clone());
    }
    qb.push(" WHERE region_key = ").push_bind(r.region_key.as_str()).push(" AND id = ").push_bind(r.id);
    qb.push(" AND version = ").push_bind(r.version - 1);
    let res = qb.build().execute(&mut **tx).await?;
    if res.rows_affected() != 1 {
        // the single writer read the row just now: only a bug gets here
        return Err(conflict(old.state.as_str(), old.version));
    }
    Ok(())
}

pub(super) async fn get_referral(s: &This, id: Uuid) -> Result<Option<Referral>> {
    query("SELECT * FROM referral WHERE id = $1")
        .bind(id)
        .fetch_optional(s.read())
        .await?
        .as_ref()
        .map(referral_from_row)
        .transpose()
}

pub(super) async fn referral_history(s: &This, id: Uuid) -> Result<Vec<ReferralEvent>> {
    // the referral's region key in a subquery, so the history is read by its unique index
    query(
        "SELECT * FROM referral_event
         WHERE region_key = (SELECT region_key FROM referral WHERE id = $1) AND referral_id = $1 ORDER BY version",
    )
    .bind(id)
    .fetch_all(s.read())
    .await?
    .iter()
    .map(event_from_row)
    .collect()
}

pub(super) async fn referral_for_step(s: &This, id: Uuid) -> Result<Option<ReferralForStep>> {
    // one statement, so the history is of the same snapshot as the referral; the event
    // columns are aliased `e_…` (the referral's own `id`, `version`, … keep their names).
    // Sorted here, not by an ORDER BY (SQLite would copy the rows into a sorter).
    let rows = query(
        "SELECT r.*,
           EXISTS (SELECT 1 FROM insurance_filing f WHERE f.patient_id = r.patient_id AND f.referral_id = r.id)
             AS e_filed,
           e.region_key AS e_region_key, e.id AS e_id, e.referral_id AS e_referral_id, e.version AS e_version,
           e.at AS e_at, e.actor_user_id AS e_actor_user_id, e.actor_facility_id AS e_actor_facility_id,
           e.action AS e_action, e.from_state AS e_from_state, e.to_state AS e_to_state, e.reason AS e_reason,
           e.to_facility_id AS e_to_facility_id, e.time AS e_time, e.timepoint AS e_timepoint
         FROM referral r LEFT JOIN referral_event e ON e.region_key = r.region_key AND e.referral_id = r.id
         WHERE r.id = $1",
    )
    .bind(id)
    .fetch_all(s.read())
    .await?;
    let Some(first) = rows.first() else { return Ok(None) };
    let referral = referral_from_row(first)?;
    let filed: bool = first.try_get("e_filed")?;
    let mut history = Vec::with_capacity(rows.len());
    for row in &rows {
        let region: Option<String> = row.try_get("e_region_key")?;
        // no event (a LEFT JOIN's empty side), or a row of another region's referral
        if region.as_deref() == Some(referral.region_key.as_str()) {
            history.push(event_from_columns(row, "e_")?);
        }
    }
    history.sort_by_key(|e| e.version);
    Ok(Some(ReferralForStep { referral, history, filed }))
}

/// The WHERE clause of a worklist (everything but paging).
fn push_filter(qb: &mut QueryBuilder<Db>, f: &ReferralFilter) {
    qb.push(" WHERE 1 = 1");
    if let Some(id) = f.to_facility_id {
        qb.push(" AND to_facility_id = ").push_bind(id);
    }
    if let Some(id) = f.from_facility_id {
        qb.push(" AND from_facility_id = ").push_bind(id);
    }
    if let Some(c) = f.community_id {
        // On SQLite (one county) the community is most of the data: the parties' columns
        // are kept out of index choice (`UNINDEXED`) so the newest-first walk of
        // `referral_recent` answers a page without sorting the community's every referral.
        qb.push(format!(" AND ({UNINDEXED}from_facility_id IN (SELECT id FROM facility WHERE community_id = "))
            .push_bind(c)
            .push(format!(") OR {UNINDEXED}to_facility_id IN (SELECT id FROM facility WHERE community_id = "))
            .push_bind(c)
            .push("))");
    }
    if !f.patient_ids.is_empty() {
        qb.push(" AND patient_id IN (");
        let mut sep = qb.separated(", ");
        for id in &f.patient_ids {
            sep.push_bind(*id);
        }
        qb.push(")");
    }
    if !f.states.is_empty() {
        // literals (the enum's own names), not parameters: SQLite compares a bound
        // `state = ?` with the partial index referral_arriving's `state = 'scheduled'`, and
        // then prepares the statement again on every run with a new binding
        let names: Vec<String> = f.states.iter().map(|st| format!("'{}'", st.as_str())).collect();
        qb.push(format!(" AND state IN ({})", names.join(", ")));
    }
    if let Some(u) = f.urgency {
        qb.push(" AND urgency = ").push_bind(u.as_str());
    }
    if let Some(d) = f.direction {
        qb.push(" AND direction = ").push_bind(d.as_str());
    }
    if f.green_only {
        qb.push(" AND green_channel IS NOT NULL");
    }
    if let Some(d) = &f.to_department {
        qb.push(" AND to_department = ").push_bind(d.clone());
    }
    if let Some(t) = f.from_tier {
        qb.push(" AND from_facility_id IN (SELECT id FROM facility WHERE tier = ").push_bind(t.as_str()).push(")");
    }
    if let Some(t) = f.to_tier {
        qb.push(" AND to_facility_id IN (SELECT id FROM facility WHERE tier = ").push_bind(t.as_str()).push(")");
    }
    if let Some(t) = f.requested_from {
        qb.push(" AND requested_at >= ").push_bind(ms(t));
    }
    if let Some(t) = f.requested_to {
        qb.push(" AND requested_at < ").push_bind(ms(t));
    }
    if let Some(t) = f.due_before {
        // literal predicates: the partial index referral_inbox_due applies
        qb.push(format!(" AND state IN {OPEN_STATES} AND due_at IS NOT NULL AND due_at < ")).push_bind(ms(t));
    }
    if let Some((start, end)) = f.scheduled_between {
        // literal state: the partial index referral_arriving applies
        qb.push(" AND state = 'scheduled' AND scheduled_at >= ")
            .push_bind(ms(start))
            .push(" AND scheduled_at < ")
            .push_bind(ms(end));
    }
    // FHIR `_lastUpdated`: no index holds updated_at (every step would rewrite it); the
    // party's or patient's index narrows first
    if let Some(t) = f.updated_from {
        qb.push(" AND updated_at >= ").push_bind(ms(t));
    }
    if let Some(t) = f.updated_to {
        qb.push(" AND updated_at < ").push_bind(ms(t));
    }
    for (from, to) in &f.updated_except {
        qb.push(" AND (updated_at < ").push_bind(ms(*from)).push(" OR updated_at >= ").push_bind(ms(*to)).push(")");
    }
}

/// The ORDER BY of a list: the filter's sort keys (FHIR `_sort`), then the default order
/// (newest request first, then id), which the worklist indexes hold; `id` follows the
/// direction of `requested_at`, so a sort by it alone either way is an index walk
/// (`ReferralFilter::order` is the same order in Rust).
fn order_by(f: &ReferralFilter) -> String {
    let dir = |descending: bool| if descending { "DESC" } else { "ASC" };
    let mut keys: Vec<String> = Vec::new();
    let mut requested = None;
    for s in &f.sort {
        let column = match s.key {
            crate::ReferralSortKey::RequestedAt => {
                requested = Some(s.descending);
                "requested_at"
            }
            crate::ReferralSortKey::UpdatedAt => "updated_at",
        };
        keys.push(format!("{column} {}", dir(s.descending)));
    }
    if requested.is_none() {
        keys.push("requested_at DESC".into());
    }
    keys.push(format!("id {}", dir(requested.unwrap_or(true))));
    format!(" ORDER BY {} LIMIT ", keys.join(", "))
}

pub(super) async fn list_referrals(s: &This, f: &ReferralFilter) -> Result<Vec<Referral>> {
    let limit = i64::from(if f.limit == 0 { 50 } else { f.limit.min(500) });
    let page = |qb: &mut QueryBuilder<Db>, f: &ReferralFilter| {
        qb.push("SELECT * FROM referral");
        push_filter(qb, f);
        if let Some((t, id)) = f.before {
            qb.push(" AND (requested_at, id) < (").push_bind(ms(t)).push(", ").push_bind(id).push(")");
        }
        qb.push(order_by(f)).push_bind(limit);
    };
    let mut states = f.states.clone();
    states.sort();
    states.dedup();
    let mut qb: QueryBuilder<Db> = QueryBuilder::new("");
    // a few patients' referrals are few rows (referral_by_patient): one statement with
    // `state IN (…)` answers them; the per-state pages below are for worklists, and SQLite
    // prepares their UNION again on every run (perf: sqlite3Reprepare, about a fifth of the
    // CPU of a settlement, which reads the patient's recent referrals)
    if states.len() > 1 && f.patient_ids.is_empty() {
        // one page per state, each read in order from referral_inbox/_outbox (facility, state,
        // requested_at, id), then merged: `state IN (…)` would make SQLite either sort every
        // row of those states or walk the whole inbox for the few open ones
        for (i, st) in states.iter().enumerate() {
            qb.push(if i == 0 { "SELECT * FROM (" } else { " UNION ALL SELECT * FROM (" });
            page(&mut qb, &ReferralFilter { states: vec![*st], ..f.clone() });
            qb.push(") AS s").push(i.to_string());
        }
        qb.push(order_by(f)).push_bind(limit);
    } else {
        page(&mut qb, f);
    }
    qb.build().fetch_all(s.read()).await?.iter().map(referral_from_row).collect()
}

pub(super) async fn count_referrals(s: &This, f: &ReferralFilter) -> Result<u64> {
    // an inbox's green-channel referrals in any state: every state named, so that the
    // partial index referral_inbox_green (facility, state, …) answers from the index alone
    let every_state;
    let f = if f.green_only && f.states.is_empty() && f.to_facility_id.is_some() {
        every_state = ReferralFilter { states: ReferralState::ALL.to_vec(), ..f.clone() };
        &every_state
    } else {
        f
    };
    let mut qb: QueryBuilder<Db> = QueryBuilder::new("SELECT COUNT(*) AS n FROM ");
    match f.count_at_most {
        // the first `cap` matching rows only: a large worklist's total costs a bounded read
        Some(cap) => {
            qb.push("(SELECT 1 FROM referral");
            push_filter(&mut qb, f);
            qb.push(" LIMIT ").push_bind(i64::try_from(cap).unwrap_or(i64::MAX)).push(") AS capped");
        }
        None => {
            qb.push("referral");
            push_filter(&mut qb, f);
        }
    }
    let n: i64 = qb.build().fetch_one(s.read()).await?.try_get("n")?;
    Ok(n as u64)
}

pub(super) async fn due_referrals(s: &This, now: OffsetDateTime, limit: u32) -> Result<Vec<Referral>> {
    let limit = if limit == 0 { 100 } else { limit.min(1000) };
    // literal predicates: the partial index referral_due applies
    let sql = format!(
        "SELECT * FROM referral WHERE due_at IS NOT NULL AND due_at <= $1 AND state IN {OPEN_STATES}
         ORDER BY due_at, id LIMIT $2"
    );
    query(AssertSqlSafe(sql))
        .bind(ms(now))
        .bind(i64::from(limit))
        .fetch_all(s.read())
        .await?
        .iter()
        .map(referral_from_row)
        .collect()
}

pub(super) async fn import_referrals(s: &This, rows: &[ReferralBundle]) -> Result<u64> {
    s.transact(rows, |tx, rows| {
        Box::pin(async move {
            for chunk in rows.chunks(REFERRAL_CHUNK) {
                // in row order: the first unknown one is named
                let mut named: Vec<Uuid> = Vec::with_capacity(chunk.len() * 2);
                for b in chunk {
                    named.push(b.referral.from_facility_id);
                    named.push(b.referral.to_facility_id);
                    named.extend(b.follow_ups.iter().map(|t| t.facility_id));
                }
                let facilities = known_facilities(tx, named.iter().copied()).await?;
                if let Some(f) = named.iter().find(|f| !facilities.contains(f)) {
                    return Err(StoreError::not_found(format!("facility {f}")));
                }
                let patients = patient_regions(tx, chunk.iter().map(|b| b.referral.patient_id)).await?;
                if let Some(b) =
                    chunk.iter().find(|b| patients.get(&b.referral.patient_id) != Some(&b.referral.region_key))
                {
                    return Err(StoreError::not_found(format!(
                        "patient {} (in region {})",
                        b.referral.patient_id, b.referral.region_key
                    )));
                }
                let referrals: Vec<&Referral> = chunk.iter().map(|b| &b.referral).collect();
                insert_referrals(tx, BULK_INSERT, &referrals).await?;
                super::indicators::on_referrals_imported(tx, &referrals).await?; // issue 8: indicator counters
                let events: Vec<&ReferralEvent> = chunk.iter().flat_map(|b| &b.events).collect();
                insert_events(tx, BULK_INSERT, &events).await?;
                let tasks: Vec<&FollowUpTask> = chunk.iter().flat_map(|b| &b.follow_ups).collect();
                insert_follow_ups(tx, BULK_INSERT, &tasks).await?;
                let filings: Vec<&Filing> = chunk.iter().flat_map(|b| &b.filings).collect();
                insert_filings(tx, BULK_INSERT, &filings).await?;
            }
            Ok(rows.len() as u64)
        })
    })
    .await
}

pub(super) async fn list_follow_ups(s: &This, f: &FollowUpFilter) -> Result<Vec<FollowUpTask>> {
    let mut qb: QueryBuilder<Db> = QueryBuilder::new("SELECT * FROM follow_up_task WHERE 1 = 1");
    if let Some(id) = f.facility_id {
        qb.push(" AND facility_id = ").push_bind(id);
    }
    if let Some(id) = f.referral_id {
        qb.push(" AND referral_id = ").push_bind(id);
    }
    if !f.patient_ids.is_empty() {
        qb.push(" AND patient_id IN (");
        let mut sep = qb.separated(", ");
        for id in &f.patient_ids {
            sep.push_bind(*id);
        }
        qb.push(")");
    }
    if f.open_only {
        // literal: the partial index follow_up_worklist applies
        qb.push(" AND done_at IS NULL");
    }
    if let Some(d) = f.due_by {
        qb.push(" AND due_date <= ").push_bind(date_str(d));
    }
    let limit = if f.limit == 0 { 100 } else { f.limit.min(1000) };
    qb.push(" ORDER BY due_date, id LIMIT ").push_bind(i64::from(limit));
    qb.build().fetch_all(s.read()).await?.iter().map(follow_up_from_row).collect()
}

pub(super) async fn get_follow_up(s: &This, id: Uuid) -> Result<Option<FollowUpTask>> {
    query("SELECT * FROM follow_up_task WHERE id = $1")
        .bind(id)
        .fetch_optional(s.read())
        .await?
        .as_ref()
        .map(follow_up_from_row)
        .transpose()
}

pub(super) async fn complete_follow_up(
    s: &This,
    id: Uuid,
    by: Uuid,
    at: OffsetDateTime,
    note: Option<&str>,
) -> Result<FollowUpTask> {
    let args = (id, by, at, note.map(str::to_owned));
    s.transact(&args, |tx, (id, by, at, note)| {
        Box::pin(async move {
            let row = query("SELECT * FROM follow_up_task WHERE id = $1")
                .bind(*id)
                .fetch_optional(&mut **tx)
                .await?
                .ok_or_else(|| StoreError::not_found(format!("follow-up task {id}")))?;
            let mut task = follow_up_from_row(&row)?;
            if let Some(done) = task.done_at {
                return Err(StoreError::Conflict(format!(
                    "this follow-up task was already done on {}",
                    date_str(china_date(done))
                )));
            }
            query(
                "UPDATE follow_up_task SET done_at = $1, done_by = $2, note = $3
                 WHERE region_key = $4 AND id = $5 AND done_at IS NULL",
            )
            .bind(ms(*at))
            .bind(*by)
            .bind(note.as_deref())
            .bind(task.region_key.as_str())
            .bind(task.id)
            .execute(&mut **tx)
            .await?;
            task.done_at = Some(from_ms(ms(*at))?);
            task.done_by = Some(*by);
            task.note = note.clone();
            Ok(task)
        })
    })
    .await
}

pub(super) async fn list_filings(s: &This, patient_ids: &[Uuid]) -> Result<Vec<Filing>> {
    if patient_ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut qb: QueryBuilder<Db> = QueryBuilder::new("SELECT * FROM insurance_filing WHERE patient_id IN (");
    let mut sep = qb.separated(", ");
    for id in patient_ids {
        sep.push_bind(*id);
    }
    qb.push(") ORDER BY valid_from DESC, id");
    qb.build().fetch_all(s.read()).await?.iter().map(filing_from_row).collect()
}

pub(super) async fn list_notifications(
    s: &This,
    facility_id: Uuid,
    since: Option<OffsetDateTime>,
    limit: u32,
) -> Result<Vec<Notification>> {
    let mut qb: QueryBuilder<Db> = QueryBuilder::new("SELECT * FROM notification WHERE facility_id = ");
    qb.push_bind(facility_id);
    if let Some(t) = since {
        qb.push(" AND at >= ").push_bind(ms(t));
    }
    let limit = if limit == 0 { 50 } else { limit.min(500) };
    qb.push(" ORDER BY at DESC, id DESC LIMIT ").push_bind(i64::from(limit));
    qb.build().fetch_all(s.read()).await?.iter().map(notification_from_row).collect()
}

pub(super) async fn notifications_seen_until(s: &This, user_id: Uuid) -> Result<Option<OffsetDateTime>> {
    query("SELECT seen_until FROM notification_seen WHERE user_id = $1")
        .bind(user_id)
        .fetch_optional(s.read())
        .await?
        .map(|r| from_ms(r.try_get("seen_until")?))
        .transpose()
}

pub(super) async fn mark_notifications_seen(s: &This, user_id: Uuid, until: OffsetDateTime) -> Result<()> {
    let args = (user_id, until);
    s.transact(&args, |tx, (user_id, until)| {
        Box::pin(async move {
            // the marker never moves back: keep the later of the two
            query(
                "INSERT INTO notification_seen (user_id, seen_until) VALUES ($1, $2)
                 ON CONFLICT (user_id) DO UPDATE SET seen_until = CASE
                   WHEN excluded.seen_until > notification_seen.seen_until THEN excluded.seen_until
                   ELSE notification_seen.seen_until END",
            )
            .bind(*user_id)
            .bind(ms(*until))
            .execute(&mut **tx)
            .await?;
            Ok(())
        })
    })
    .await
}

pub(super) async fn pending_outbox(s: &This, limit: u32) -> Result<Vec<OutboxMessage>> {
    let limit = if limit == 0 { 100 } else { limit.min(1000) };
    query("SELECT * FROM outbox WHERE delivered_at IS NULL ORDER BY created_at, id LIMIT $1")
        .bind(i64::from(limit))
        .fetch_all(s.read())
        .await?
        .iter()
        .map(outbox_from_row)
        .collect()
}

pub(super) async fn mark_outbox_delivered(s: &This, ids: &[Uuid], at: OffsetDateTime) -> Result<u64> {
    if ids.is_empty() {
        return Ok(0);
    }
    s.transact(&(ids, at), |tx, (ids, at)| {
        Box::pin(async move {
            let mut n = 0;
            for chunk in ids.chunks(SMALL_ROW_CHUNK * 10) {
                let mut qb: QueryBuilder<Db> = QueryBuilder::new("UPDATE outbox SET delivered_at = ");
                qb.push_bind(ms(*at)).push(" WHERE delivered_at IS NULL AND id IN (");
                let mut sep = qb.separated(", ");
                for id in chunk {
                    sep.push_bind(*id);
                }
                qb.push(")");
                n += qb.build().execute(&mut **tx).await?.rows_affected();
            }
            Ok(n)
        })
    })
    .await
}
