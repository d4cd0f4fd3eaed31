// The Store implementation shared by both backends. This file is compiled twice, by
// `include!` in `sqlite.rs` and `postgres.rs`, each of which defines:
//   type Db (the database marker), type Tx (a write transaction, deref to a connection),
//   type DbRow (a result row), type This (the store struct), const BACKEND,
//   const MIGRATIONS, fn read(&self) -> &<read pool>, async fn begin(&self) -> Tx,
//   fn busy_retry_delay(attempt) -> Duration,
//   const BULK_INSERT (how a multi-row insert begins),
// and imports the driver's `query`, `raw_sql`, `QueryBuilder`, `Separated`, `Row`,
// `Executor` and `AssertSqlSafe`: sqlx's on PostgreSQL, `lite.rs`'s (the same names and
// calls over rusqlite) on SQLite.
// SQL here must therefore be valid on both SQLite and PostgreSQL.

use std::collections::{HashMap, HashSet};

use futures::future::BoxFuture;
use time::{Date, OffsetDateTime};
use uuid::Uuid;

use tiercare_domain::access::{AccessBasis, AccessFacts};
use tiercare_domain::encounter::{Encounter, EncounterClass};
use tiercare_domain::facility::{Alliance, Community, Facility, Grade, Practitioner, PractitionerRole, Tier};
use tiercare_domain::identity::{Identifier, IdentifierType, Sex};
use tiercare_domain::matching::MatchQuery;
use tiercare_domain::patient::{Enrolment, FilingStatus, Patient, PatientStatus, Scheme};
use tiercare_domain::role::Role;

use tiercare_domain::filing::Filing;
use tiercare_domain::referral::{Change, FollowUpTask, Notification, Referral, ReferralEvent};

use crate::{
    AccessLogEntry, AccessLogFilter, Backend, FacilityFilter, FollowUpFilter, ImportOutcome, MergeRecord,
    OutboxMessage, PatientRecord, ReferralBundle, ReferralFilter, ReferralForStep, Result, RowRejection, Store, StoreError, TokenKind,
    TokenRecord, User,
};

/// Referral queries (issue 4), compiled with this file for each backend.
mod referral {
    include!("queries_referral.rs");
}

/// Settlement queries (issue 6), compiled with this file for each backend.
mod settlement {
    include!("queries_settlement.rs");
}

/// Results and recognition (issue 5), compiled with this file for each backend.
mod results {
    include!("queries_results.rs");
}

/// Case-based payment (issue 9), compiled with this file for each backend.
mod case_payment {
    include!("queries_case_payment.rs");
}

/// Indicator aggregates (issue 8), compiled with this file for each backend.
mod indicators {
    include!("queries_indicators.rs");
}

/// Bulk FHIR walks and look-ups (issue 7), compiled with this file for each backend.
mod bulk {
    include!("queries_bulk.rs");
}

/// Clinical reads for the FHIR interface (issue 7), compiled with this file for each backend.
mod clinical {
    include!("queries_clinical.rs");
}


/// Rows per multi-row INSERT in bulk imports (13 columns × 1,000 = 13,000 parameters,
/// under SQLite's 32,766 and PostgreSQL's 65,535).
const IMPORT_CHUNK: usize = 1_000;
/// Serialization failures among concurrent writers of one row (say 16 settlements of one
/// person at once on PostgreSQL) resolve one winner per round, so a writer may need as many
/// attempts as there are writers; with the backoff this gives up after about 2 s.
const MAX_TX_ATTEMPTS: u32 = 32;
/// Merges are followed at most this far (a chain longer than this is corrupt data).
const MAX_MERGE_HOPS: usize = 16;

const PATIENT_COLS: &str = "region_key, id, name, sex, birth_date, phone, address, home_facility_id, status, merged_into, version, identifiers";

/// The access-log row `e`, inside `tx` (a read logged alone, or with the write whose answer
/// shows the record: a referral step).
async fn insert_access_log(tx: &mut Tx, e: &AccessLogEntry) -> Result<()> {
    query(
        "INSERT INTO access_log (region_key, id, at, user_id, facility_id, patient_id, action, basis, reason, client_addr)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(e.region_key.as_str())
    .bind(e.id)
    .bind(ms(e.at))
    .bind(e.user_id)
    .bind(e.facility_id)
    .bind(e.patient_id)
    .bind(e.action.as_str())
    .bind(e.basis.as_str())
    .bind(e.reason.as_deref())
    .bind(e.client_addr.as_deref())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

fn ms(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

fn from_ms(v: i64) -> Result<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(v) * 1_000_000)
        .map_err(|e| StoreError::Corrupt(format!("timestamp {v}: {e}")))
}

fn date_str(d: Date) -> String {
    format!("{:04}-{:02}-{:02}", d.year(), d.month() as u8, d.day())
}

fn parse_date(s: &str) -> Result<Date> {
    let f = time::macros::format_description!("[year]-[month]-[day]");
    Date::parse(s, &f).map_err(|e| StoreError::Corrupt(format!("date {s}: {e}")))
}

fn corrupt(what: &str, v: &str) -> StoreError {
    StoreError::Corrupt(format!("{what} {v:?}"))
}

fn now_ms() -> i64 {
    ms(OffsetDateTime::now_utc())
}

fn patient_from_row(r: &DbRow) -> Result<Patient> {
    let sex: String = r.try_get("sex")?;
    let status: String = r.try_get("status")?;
    let merged_into: Option<Uuid> = r.try_get("merged_into")?;
    let status = match (status.as_str(), merged_into) {
        ("active", _) => PatientStatus::Active,
        ("merged", Some(into)) => PatientStatus::Merged(into),
        _ => return Err(corrupt("patient status", &status)),
    };
    let birth: String = r.try_get("birth_date")?;
    let identifiers: String = r.try_get("identifiers")?;
    Ok(Patient {
        id: r.try_get("id")?,
        region_key: r.try_get("region_key")?,
        name: r.try_get("name")?,
        sex: Sex::parse(&sex).ok_or_else(|| corrupt("sex", &sex))?,
        birth_date: parse_date(&birth)?,
        phone: r.try_get("phone")?,
        address: r.try_get("address")?,
        home_facility_id: r.try_get("home_facility_id")?,
        identifiers: serde_json::from_str(&identifiers).map_err(|_| corrupt("identifiers", &identifiers))?,
        status,
        version: r.try_get("version")?,
    })
}

fn facility_from_row(r: &DbRow) -> Result<Facility> {
    let tier: String = r.try_get("tier")?;
    let grade: String = r.try_get("grade")?;
    let caps: String = r.try_get("capabilities")?;
    let location: Option<String> = r.try_get("location")?;
    let policy: String = r.try_get("referral_policy")?;
    Ok(Facility {
        id: r.try_get("id")?,
        code: r.try_get("code")?,
        name: r.try_get("name")?,
        tier: Tier::parse(&tier).ok_or_else(|| corrupt("tier", &tier))?,
        grade: Grade::parse(&grade).ok_or_else(|| corrupt("grade", &grade))?,
        region_code: r.try_get("region_code")?,
        insurance_region: r.try_get("insurance_region")?,
        community_id: r.try_get("community_id")?,
        capabilities: serde_json::from_str(&caps).map_err(|_| corrupt("capabilities", &caps))?,
        location: location
            .as_deref()
            .map(|l| serde_json::from_str(l).map_err(|_| corrupt("location", l)))
            .transpose()?,
        referral_policy: serde_json::from_str(&policy).map_err(|_| corrupt("referral policy", &policy))?,
    })
}

fn community_from_row(r: &DbRow) -> Result<Community> {
    Ok(Community {
        id: r.try_get("id")?,
        alliance_id: r.try_get("alliance_id")?,
        name: r.try_get("name")?,
        region_code: r.try_get("region_code")?,
        community_wide_read: r.try_get("community_wide_read")?,
    })
}

fn user_from_row(r: &DbRow) -> Result<User> {
    let roles: String = r.try_get("roles")?;
    let roles = roles
        .split(',')
        .filter(|s| !s.is_empty())
        .map(|s| Role::parse(s).ok_or_else(|| corrupt("role", s)))
        .collect::<Result<Vec<_>>>()?;
    Ok(User {
        id: r.try_get("id")?,
        username: r.try_get("username")?,
        display_name: r.try_get("display_name")?,
        facility_id: r.try_get("facility_id")?,
        roles,
        password_hash: r.try_get("password_hash")?,
        active: r.try_get("active")?,
    })
}

fn merge_from_row(r: &DbRow) -> Result<MergeRecord> {
    Ok(MergeRecord {
        id: r.try_get("id")?,
        survivor_id: r.try_get("survivor_id")?,
        merged_id: r.try_get("merged_id")?,
        reason: r.try_get("reason")?,
        merged_by: r.try_get("merged_by")?,
        merged_at: from_ms(r.try_get("merged_at")?)?,
        undone_by: r.try_get("undone_by")?,
        undone_at: r.try_get::<Option<i64>, _>("undone_at")?.map(from_ms).transpose()?,
        undo_reason: r.try_get("undo_reason")?,
    })
}

fn encounter_from_row(r: &DbRow) -> Result<Encounter> {
    let class: String = r.try_get("class")?;
    let dx: String = r.try_get("diagnoses")?;
    let px: String = r.try_get("procedures")?;
    Ok(Encounter {
        id: r.try_get("id")?,
        region_key: r.try_get("region_key")?,
        patient_id: r.try_get("patient_id")?,
        facility_id: r.try_get("facility_id")?,
        department: r.try_get("department")?,
        practitioner_id: r.try_get("practitioner_id")?,
        class: EncounterClass::parse(&class).ok_or_else(|| corrupt("encounter class", &class))?,
        started_at: from_ms(r.try_get("started_at")?)?,
        ended_at: r.try_get::<Option<i64>, _>("ended_at")?.map(from_ms).transpose()?,
        diagnoses: serde_json::from_str(&dx).map_err(|_| corrupt("diagnoses", &dx))?,
        procedures: serde_json::from_str(&px).map_err(|_| corrupt("procedures", &px))?,
        total_cost_fen: r.try_get("total_cost_fen")?,
    })
}

fn enrolment_from_row(r: &DbRow) -> Result<Enrolment> {
    let scheme: String = r.try_get("scheme")?;
    let filing: String = r.try_get("filing_status")?;
    let from: String = r.try_get("valid_from")?;
    let to: Option<String> = r.try_get("valid_to")?;
    Ok(Enrolment {
        id: r.try_get("id")?,
        patient_id: r.try_get("patient_id")?,
        scheme: Scheme::parse(&scheme).ok_or_else(|| corrupt("scheme", &scheme))?,
        insured_region: r.try_get("insured_region")?,
        filing_status: FilingStatus::parse(&filing).ok_or_else(|| corrupt("filing status", &filing))?,
        filed_region: r.try_get("filed_region")?,
        valid_from: parse_date(&from)?,
        valid_to: to.as_deref().map(parse_date).transpose()?,
    })
}

fn access_from_row(r: &DbRow) -> Result<AccessLogEntry> {
    let basis: String = r.try_get("basis")?;
    Ok(AccessLogEntry {
        id: r.try_get("id")?,
        region_key: r.try_get("region_key")?,
        at: from_ms(r.try_get("at")?)?,
        user_id: r.try_get("user_id")?,
        facility_id: r.try_get("facility_id")?,
        patient_id: r.try_get("patient_id")?,
        action: r.try_get("action")?,
        basis: AccessBasis::parse(&basis).ok_or_else(|| corrupt("access basis", &basis))?,
        reason: r.try_get("reason")?,
        client_addr: r.try_get("client_addr")?,
    })
}

fn roles_text(roles: &[Role]) -> String {
    roles.iter().map(|r| r.as_str()).collect::<Vec<_>>().join(",")
}

impl This {
    /// Run `f` in a write transaction, retrying serialization failures and busy errors.
    /// `data` is handed to every attempt (a closure can't borrow it across attempts).
    async fn transact<D, T, F>(&self, data: &D, f: F) -> Result<T>
    where
        D: Sync + ?Sized,
        T: Send,
        F: for<'c> FnMut(&'c mut Tx, &'c D) -> BoxFuture<'c, Result<T>> + Send,
    {
        self.transact_in(false, data, f).await
    }

    /// [`Self::transact`] for a transaction that locks the rows it reads to write
    /// (`FOR_UPDATE`) and needs no more isolation than that: READ COMMITTED on PostgreSQL
    /// (`begin_row_locking`), the same single writer on SQLite.
    async fn transact_row_locking<D, T, F>(&self, data: &D, f: F) -> Result<T>
    where
        D: Sync + ?Sized,
        T: Send,
        F: for<'c> FnMut(&'c mut Tx, &'c D) -> BoxFuture<'c, Result<T>> + Send,
    {
        self.transact_in(true, data, f).await
    }

    async fn transact_in<D, T, F>(&self, row_locking: bool, data: &D, mut f: F) -> Result<T>
    where
        D: Sync + ?Sized,
        T: Send,
        F: for<'c> FnMut(&'c mut Tx, &'c D) -> BoxFuture<'c, Result<T>> + Send,
    {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let begun = if row_locking { self.begin_row_locking().await } else { self.begin().await };
            let outcome = match begun {
                Ok(mut tx) => match f(&mut tx, data).await {
                    Ok(v) => tx.commit().await.map(|()| v).map_err(StoreError::from),
                    Err(e) => {
                        // dropping the transaction rolls back as well; an explicit rollback
                        // returns the connection clean at once
                        let _ = tx.rollback().await;
                        Err(e)
                    }
                },
                Err(e) => Err(e),
            };
            match outcome {
                Err(e) if e.is_retryable() => {
                    if attempt >= MAX_TX_ATTEMPTS {
                        tracing::warn!(attempt, "transaction gave up after retries");
                        return Err(StoreError::Busy);
                    }
                    tokio::time::sleep(busy_retry_delay(attempt)).await;
                }
                other => return other,
            }
        }
    }

    async fn fetch_patients(&self, sql: String, binds: Vec<String>) -> Result<Vec<Patient>> {
        let mut q = query(AssertSqlSafe(sql));
        for b in binds {
            q = q.bind(b);
        }
        let rows = q.fetch_all(self.read()).await?;
        rows.iter().map(patient_from_row).collect()
    }

    /// Every record merged (transitively) into `survivor`.
    async fn merged_into(&self, survivor: Uuid) -> Result<Vec<Uuid>> {
        let mut out = Vec::new();
        let mut frontier = vec![survivor];
        while let Some(id) = frontier.pop() {
            let rows = query("SELECT id FROM patient WHERE merged_into = $1 AND status = 'merged'")
                .bind(id)
                .fetch_all(self.read())
                .await?;
            for r in rows {
                let m: Uuid = r.try_get("id")?;
                if !out.contains(&m) && out.len() < 10_000 {
                    out.push(m);
                    frontier.push(m);
                }
            }
        }
        Ok(out)
    }

    async fn run_migrations(&self) -> Result<Vec<String>> {
        raw_sql(crate::migrate::CREATE_TABLE).execute(self.read()).await?;
        let applied: HashMap<i64, String> = query("SELECT version, checksum FROM schema_migration")
            .fetch_all(self.read())
            .await?
            .iter()
            .map(|r| Ok((r.try_get("version")?, r.try_get("checksum")?)))
            .collect::<Result<_>>()?;
        let mut done = Vec::new();
        for (version, name, sql) in MIGRATIONS {
            let sum = crate::migrate::checksum(sql);
            if let Some(existing) = applied.get(version) {
                if *existing != sum {
                    return Err(StoreError::MigrationChanged((*name).to_owned()));
                }
                continue;
            }
            let args = (*version, *name, *sql, sum);
            self.transact(&args, |tx, (version, name, sql, sum)| {
                Box::pin(async move {
                    raw_sql(AssertSqlSafe(*sql)).execute(&mut **tx).await?;
                    query(
                        "INSERT INTO schema_migration (version, name, checksum, applied_at) VALUES ($1, $2, $3, $4)",
                    )
                    .bind(*version)
                    .bind(*name)
                    .bind(sum.as_str())
                    .bind(now_ms())
                    .execute(&mut **tx)
                    .await?;
                    Ok(())
                })
            })
            .await?;
            done.push((*name).to_owned());
        }
        Ok(done)
    }
}

/// Insert one patient and its identifiers inside a transaction; refuses a taken identifier.
async fn insert_patient(tx: &mut Tx, p: &Patient) -> Result<()> {
    for idf in &p.identifiers {
        let existing = query("SELECT patient_id FROM patient_identifier WHERE kind = $1 AND value = $2")
            .bind(idf.kind.as_str())
            .bind(idf.value.as_str())
            .fetch_optional(&mut **tx)
            .await?;
        if let Some(r) = existing {
            return Err(StoreError::Duplicate {
                what: format!("a patient with this {}", idf.kind.as_str()),
                existing: Some(r.try_get("patient_id")?),
            });
        }
    }
    insert_patients_bulk(tx, std::slice::from_ref(p)).await
}

async fn insert_patients_bulk(tx: &mut Tx, ps: &[Patient]) -> Result<()> {
    insert_patient_rows(tx, ps).await?;
    let ids: Vec<(&Patient, &Identifier)> = ps.iter().flat_map(|p| p.identifiers.iter().map(move |i| (p, i))).collect();
    for chunk in ids.chunks(IMPORT_CHUNK * 2) {
        let mut qb: QueryBuilder<Db> = QueryBuilder::new(format!(
            "{BULK_INSERT} patient_identifier (kind, value, region_key, patient_id, created_at) "
        ));
        push_identifier_values(&mut qb, chunk);
        qb.build().execute(&mut **tx).await?;
    }
    Ok(())
}

fn push_identifier_values(qb: &mut QueryBuilder<Db>, pairs: &[(&Patient, &Identifier)]) {
    let now = now_ms();
    qb.push_values(pairs, |mut b, (p, i)| {
        b.push_bind(i.kind.as_str())
            .push_bind(i.value.clone())
            .push_bind(p.region_key.clone())
            .push_bind(p.id)
            .push_bind(now);
    });
}

/// The patient rows alone (identifiers are written by the caller).
async fn insert_patient_rows(tx: &mut Tx, ps: &[Patient]) -> Result<()> {
    for chunk in ps.chunks(IMPORT_CHUNK) {
        let now = now_ms();
        let mut qb: QueryBuilder<Db> =
            QueryBuilder::new(format!("{BULK_INSERT} patient ({PATIENT_COLS}, created_at, updated_at) "));
        qb.push_values(chunk, |mut b, p| {
            let (status, into) = match p.status {
                PatientStatus::Active => ("active", None),
                PatientStatus::Merged(i) => ("merged", Some(i)),
            };
            b.push_bind(p.region_key.clone())
                .push_bind(p.id)
                .push_bind(p.name.clone())
                .push_bind(p.sex.as_str())
                .push_bind(date_str(p.birth_date))
                .push_bind(p.phone.clone())
                .push_bind(p.address.clone())
                .push_bind(p.home_facility_id)
                .push_bind(status)
                .push_bind(into)
                .push_bind(p.version)
                .push_bind(serde_json::to_string(&p.identifiers).unwrap_or_else(|_| "[]".into()))
                .push_bind(now)
                .push_bind(now);
        });
        qb.build().execute(&mut **tx).await?;
    }
    Ok(())
}

/// Claim identifiers: insert those not yet registered and answer the ones that were
/// already taken (by another patient). The `(kind, value)` primary key decides, so a
/// concurrent import cannot slip in between a check and the insert. Usually every row is
/// claimed and the insert's row count says so; only then is nothing read back.
async fn claim_identifiers(
    tx: &mut Tx,
    pairs: &[(&Patient, &Identifier)],
) -> Result<HashSet<(IdentifierType, String)>> {
    let mut taken = HashSet::new();
    for chunk in pairs.chunks(IMPORT_CHUNK * 2) {
        let mut qb: QueryBuilder<Db> =
            QueryBuilder::new("INSERT INTO patient_identifier (kind, value, region_key, patient_id, created_at) ");
        push_identifier_values(&mut qb, chunk);
        qb.push(" ON CONFLICT (kind, value) DO NOTHING");
        let inserted = qb.build().execute(&mut **tx).await?.rows_affected();
        if inserted == chunk.len() as u64 {
            continue;
        }
        for (p, i) in chunk {
            let owner: Option<Uuid> =
                query("SELECT patient_id FROM patient_identifier WHERE kind = $1 AND value = $2")
                    .bind(i.kind.as_str())
                    .bind(i.value.as_str())
                    .fetch_optional(&mut **tx)
                    .await?
                    .map(|r| r.try_get("patient_id"))
                    .transpose()?;
            if owner != Some(p.id) {
                taken.insert((i.kind, i.value.clone()));
            }
        }
    }
    Ok(taken)
}

/// The region key of each of `ids` that is a registered patient.
async fn patient_regions(tx: &mut Tx, ids: impl Iterator<Item = Uuid>) -> Result<HashMap<Uuid, String>> {
    let wanted: HashSet<Uuid> = ids.collect();
    if wanted.is_empty() {
        return Ok(HashMap::new());
    }
    let mut qb: QueryBuilder<Db> = QueryBuilder::new("SELECT id, region_key FROM patient WHERE id IN (");
    let mut sep = qb.separated(", ");
    for id in &wanted {
        sep.push_bind(*id);
    }
    qb.push(")");
    qb.build().fetch_all(&mut **tx).await?.iter().map(|r| Ok((r.try_get("id")?, r.try_get("region_key")?))).collect()
}

/// Which of `ids` are registered facilities.
async fn known_facilities(tx: &mut Tx, ids: impl Iterator<Item = Uuid>) -> Result<HashSet<Uuid>> {
    let wanted: HashSet<Uuid> = ids.collect();
    if wanted.is_empty() {
        return Ok(wanted);
    }
    let mut qb: QueryBuilder<Db> = QueryBuilder::new("SELECT id FROM facility WHERE id IN (");
    let mut sep = qb.separated(", ");
    for id in &wanted {
        sep.push_bind(*id);
    }
    qb.push(")");
    qb.build().fetch_all(&mut **tx).await?.iter().map(|r| Ok(r.try_get("id")?)).collect()
}

/// Check one chunk of an import against the file so far and the database, and insert the
/// good rows. A row is refused when its home facility is unknown, when an identifier
/// appeared on an earlier line, or when an identifier is already registered.
async fn import_chunk(
    tx: &mut Tx,
    rows: &[(u64, Patient)],
    seen: &mut HashSet<(IdentifierType, String)>,
) -> Result<(u64, Vec<RowRejection>)> {
    let facilities = known_facilities(tx, rows.iter().filter_map(|(_, p)| p.home_facility_id)).await?;
    let mut candidates: Vec<&(u64, Patient)> = Vec::with_capacity(rows.len());
    let mut rejected = Vec::new();
    'rows: for row in rows {
        let (line, p) = row;
        if let Some(f) = p.home_facility_id
            && !facilities.contains(&f)
        {
            rejected.push(RowRejection {
                line: *line,
                code: "facility.unknown".into(),
                message: format!("home facility {f} is not registered"),
            });
            continue;
        }
        for i in &p.identifiers {
            if seen.contains(&(i.kind, i.value.clone())) {
                rejected.push(RowRejection {
                    line: *line,
                    code: "identifier.duplicate_in_file".into(),
                    message: format!("this {} appears on an earlier line of the file", i.kind.as_str()),
                });
                continue 'rows;
            }
        }
        for i in &p.identifiers {
            seen.insert((i.kind, i.value.clone()));
        }
        candidates.push(row);
    }
    let pairs: Vec<(&Patient, &Identifier)> =
        candidates.iter().flat_map(|(_, p)| p.identifiers.iter().map(move |i| (p, i))).collect();
    let already = claim_identifiers(tx, &pairs).await?;
    let mut good = Vec::with_capacity(candidates.len());
    for (line, p) in candidates {
        let taken: Vec<&Identifier> =
            p.identifiers.iter().filter(|i| already.contains(&(i.kind, i.value.clone()))).collect();
        if taken.is_empty() {
            good.push(p.clone());
            continue;
        }
        rejected.push(RowRejection {
            line: *line,
            code: "identifier.duplicate".into(),
            message: format!("this {} is already registered to another patient", taken[0].kind.as_str()),
        });
        // give back what this row did claim (a person with two identifiers, one taken)
        for i in p.identifiers.iter().filter(|i| !taken.contains(i)) {
            query("DELETE FROM patient_identifier WHERE kind = $1 AND value = $2 AND patient_id = $3")
                .bind(i.kind.as_str())
                .bind(i.value.as_str())
                .bind(p.id)
                .execute(&mut **tx)
                .await?;
        }
    }
    insert_patient_rows(tx, &good).await?;
    Ok((good.len() as u64, rejected))
}

async fn get_patient_tx(tx: &mut Tx, id: Uuid) -> Result<Option<Patient>> {
    let row = query(AssertSqlSafe(format!("SELECT {PATIENT_COLS} FROM patient WHERE id = $1")))
        .bind(id)
        .fetch_optional(&mut **tx)
        .await?;
    row.as_ref().map(patient_from_row).transpose()
}

/// Keep version `version` of patient `id` (migration 0017): copy its row into
/// `patient_version` before a change replaces it, in the change's transaction. `false`: that
/// version was already superseded (someone changed the record since; nothing is written,
/// and the caller answers its conflict).
async fn keep_patient_version(tx: &mut Tx, region_key: &str, id: Uuid, version: i64) -> Result<bool> {
    let res = query(
        "INSERT INTO patient_version (id, region_key, version, name, sex, birth_date, phone, address,
         home_facility_id, status, merged_into, identifiers, updated_at)
         SELECT id, region_key, version, name, sex, birth_date, phone, address, home_facility_id, status,
         merged_into, identifiers, updated_at
         FROM patient WHERE region_key = $1 AND id = $2 AND version = $3",
    )
    .bind(region_key)
    .bind(id)
    .bind(version)
    .execute(&mut **tx)
    .await
    .map_err(StoreError::from);
    match res {
        Ok(_) => Ok(true),
        Err(e) if e.is_unique_violation() => Ok(false),
        Err(e) => Err(e),
    }
}

async fn set_patient_status(tx: &mut Tx, p: &Patient, status: PatientStatus) -> Result<()> {
    let (s, into) = match status {
        PatientStatus::Active => ("active", None),
        PatientStatus::Merged(i) => ("merged", Some(i)),
    };
    let conflict = || -> StoreError {
        tiercare_domain::DomainError::Conflict("the record was changed by someone else; reload and try again".into())
            .into()
    };
    // `active` and `link` of the FHIR Patient change: a version, the old one kept
    if !keep_patient_version(tx, &p.region_key, p.id, p.version).await? {
        return Err(conflict());
    }
    let res = query(
        "UPDATE patient SET status = $1, merged_into = $2, version = version + 1, updated_at = $3
         WHERE region_key = $4 AND id = $5 AND version = $6",
    )
    .bind(s)
    .bind(into)
    .bind(now_ms())
    .bind(p.region_key.as_str())
    .bind(p.id)
    .bind(p.version)
    .execute(&mut **tx)
    .await?;
    if res.rows_affected() != 1 {
        return Err(conflict());
    }
    Ok(())
}

/// [`Store::update_patient`] inside a transaction: the row (checked against the version it
/// was read at), then the identifiers: those dropped are released, those added claimed.
async fn update_patient_tx(tx: &mut Tx, p: &Patient) -> Result<OffsetDateTime> {
    let Some(old) = get_patient_tx(tx, p.id).await? else {
        return Err(StoreError::not_found(format!("patient {}", p.id)));
    };
    if let Some(f) = p.home_facility_id {
        require_exists(tx, "SELECT id FROM facility WHERE id = $1", f, "facility").await?;
    }
    // to the millisecond: what is stored, so the answer equals a later read
    let now = from_ms(now_ms())?;
    let stale = || {
        StoreError::Conflict(format!(
            "the patient record is at version {}, not {}: it was changed since; read it again",
            old.version, p.version
        ))
    };
    if !keep_patient_version(tx, &old.region_key, p.id, p.version).await? {
        return Err(stale());
    }
    let res = query(
        "UPDATE patient SET name = $1, sex = $2, birth_date = $3, phone = $4, address = $5, home_facility_id = $6,
         identifiers = $7, version = version + 1, updated_at = $8
         WHERE region_key = $9 AND id = $10 AND version = $11",
    )
    .bind(p.name.as_str())
    .bind(p.sex.as_str())
    .bind(date_str(p.birth_date))
    .bind(p.phone.clone())
    .bind(p.address.clone())
    .bind(p.home_facility_id)
    .bind(serde_json::to_string(&p.identifiers).unwrap_or_else(|_| "[]".into()))
    .bind(ms(now))
    .bind(old.region_key.as_str())
    .bind(p.id)
    .bind(p.version)
    .execute(&mut **tx)
    .await?;
    if res.rows_affected() != 1 {
        return Err(stale());
    }
    for idf in old.identifiers.iter().filter(|i| !p.identifiers.contains(i)) {
        query("DELETE FROM patient_identifier WHERE kind = $1 AND value = $2 AND patient_id = $3")
            .bind(idf.kind.as_str())
            .bind(idf.value.as_str())
            .bind(p.id)
            .execute(&mut **tx)
            .await?;
    }
    let added: Vec<(&Patient, &Identifier)> =
        p.identifiers.iter().filter(|i| !old.identifiers.contains(i)).map(|i| (p, i)).collect();
    if !added.is_empty() {
        let taken = claim_identifiers(tx, &added).await?;
        if let Some((kind, value)) = taken.iter().next() {
            let existing = query("SELECT patient_id FROM patient_identifier WHERE kind = $1 AND value = $2")
                .bind(kind.as_str())
                .bind(value.as_str())
                .fetch_optional(&mut **tx)
                .await?
                .map(|r| r.try_get("patient_id"))
                .transpose()?;
            return Err(StoreError::Duplicate { what: format!("a patient with this {}", kind.as_str()), existing });
        }
    }
    Ok(now)
}

/// The kept (superseded) versions of patient `id` (migration 0017), oldest first, or only
/// version `only`.
async fn kept_patient_versions(s: &This, id: Uuid, only: Option<i64>) -> Result<Vec<(Patient, OffsetDateTime)>> {
    let sql = format!(
        "SELECT {PATIENT_COLS}, updated_at FROM patient_version WHERE id = $1{} ORDER BY version",
        if only.is_some() { " AND version = $2" } else { "" }
    );
    let mut q = query(AssertSqlSafe(sql)).bind(id);
    if let Some(v) = only {
        q = q.bind(v);
    }
    q.fetch_all(s.read())
        .await?
        .iter()
        .map(|r| Ok((patient_from_row(r)?, from_ms(r.try_get("updated_at")?)?)))
        .collect()
}

async fn require_exists(tx: &mut Tx, sql: &'static str, id: Uuid, what: &str) -> Result<()> {
    if query(sql).bind(id).fetch_optional(&mut **tx).await?.is_none() {
        return Err(StoreError::not_found(format!("{what} {id}")));
    }
    Ok(())
}

#[async_trait::async_trait]
impl Store for This {
    fn backend(&self) -> Backend {
        BACKEND
    }

    async fn migrate(&self) -> Result<Vec<String>> {
        self.run_migrations().await
    }

    async fn create_alliance(&self, a: &Alliance) -> Result<()> {
        self.transact(a, |tx, a| {
            Box::pin(async move {
                query("INSERT INTO alliance (id, name, region_code, created_at) VALUES ($1, $2, $3, $4)")
                    .bind(a.id)
                    .bind(a.name.as_str())
                    .bind(a.region_code.as_str())
                    .bind(now_ms())
                    .execute(&mut **tx)
                    .await?;
                Ok(())
            })
        })
        .await
    }

    async fn list_alliances(&self) -> Result<Vec<Alliance>> {
        query("SELECT id, name, region_code FROM alliance ORDER BY name")
            .fetch_all(self.read())
            .await?
            .iter()
            .map(|r| {
                Ok(Alliance { id: r.try_get("id")?, name: r.try_get("name")?, region_code: r.try_get("region_code")? })
            })
            .collect()
    }

    async fn create_community(&self, c: &Community) -> Result<()> {
        self.transact(c, |tx, c| {
            Box::pin(async move {
                if let Some(a) = c.alliance_id {
                    require_exists(tx, "SELECT id FROM alliance WHERE id = $1", a, "alliance").await?;
                }
                query(
                    "INSERT INTO community (id, alliance_id, name, region_code, community_wide_read, created_at)
                     VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(c.id)
                .bind(c.alliance_id)
                .bind(c.name.as_str())
                .bind(c.region_code.as_str())
                .bind(c.community_wide_read)
                .bind(now_ms())
                .execute(&mut **tx)
                .await?;
                Ok(())
            })
        })
        .await
    }

    async fn get_community(&self, id: Uuid) -> Result<Option<Community>> {
        query("SELECT id, alliance_id, name, region_code, community_wide_read FROM community WHERE id = $1")
            .bind(id)
            .fetch_optional(self.read())
            .await?
            .as_ref()
            .map(community_from_row)
            .transpose()
    }

    async fn list_communities(&self) -> Result<Vec<Community>> {
        query("SELECT id, alliance_id, name, region_code, community_wide_read FROM community ORDER BY name")
            .fetch_all(self.read())
            .await?
            .iter()
            .map(community_from_row)
            .collect()
    }

    async fn create_facility(&self, f: &Facility) -> Result<()> {
        self.transact(f, |tx, f| {
            Box::pin(async move {
                if let Some(c) = f.community_id {
                    require_exists(tx, "SELECT id FROM community WHERE id = $1", c, "community").await?;
                }
                if query("SELECT id FROM facility WHERE code = $1").bind(f.code.as_str()).fetch_optional(&mut **tx).await?.is_some() {
                    return Err(StoreError::Duplicate { what: format!("facility code {}", f.code), existing: None });
                }
                let caps = serde_json::to_string(&f.capabilities).map_err(|e| StoreError::Corrupt(e.to_string()))?;
                let location = f.location.map(|l| serde_json::to_string(&l).unwrap_or_default());
                let policy = serde_json::to_string(&f.referral_policy).map_err(|e| StoreError::Corrupt(e.to_string()))?;
                query(
                    "INSERT INTO facility (id, code, name, tier, grade, region_code, insurance_region, community_id, capabilities,
                       created_at, location, referral_policy)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
                )
                .bind(f.id)
                .bind(f.code.as_str())
                .bind(f.name.as_str())
                .bind(f.tier.as_str())
                .bind(f.grade.as_str())
                .bind(f.region_code.as_str())
                .bind(f.insurance_region.as_str())
                .bind(f.community_id)
                .bind(caps)
                .bind(now_ms())
                .bind(location)
                .bind(policy)
                .execute(&mut **tx)
                .await?;
                Ok(())
            })
        })
        .await
    }

    async fn get_facility(&self, id: Uuid) -> Result<Option<Facility>> {
        query("SELECT * FROM facility WHERE id = $1")
            .bind(id)
            .fetch_optional(self.read())
            .await?
            .as_ref()
            .map(facility_from_row)
            .transpose()
    }

    async fn get_facility_by_code(&self, code: &str) -> Result<Option<Facility>> {
        query("SELECT * FROM facility WHERE code = $1")
            .bind(code)
            .fetch_optional(self.read())
            .await?
            .as_ref()
            .map(facility_from_row)
            .transpose()
    }

    async fn list_facilities(&self, filter: &FacilityFilter) -> Result<Vec<Facility>> {
        let mut qb: QueryBuilder<Db> = QueryBuilder::new("SELECT * FROM facility WHERE 1 = 1");
        if let Some(c) = filter.community_id {
            qb.push(" AND community_id = ").push_bind(c);
        }
        if let Some(t) = filter.tier {
            qb.push(" AND tier = ").push_bind(t.as_str());
        }
        if let Some(r) = &filter.region_code {
            qb.push(" AND region_code = ").push_bind(r.clone());
        }
        qb.push(" ORDER BY code");
        qb.build().fetch_all(self.read()).await?.iter().map(facility_from_row).collect()
    }

    async fn create_practitioner(&self, p: &Practitioner) -> Result<()> {
        self.transact(p, |tx, p| {
            Box::pin(async move {
                if let Some(l) = &p.licence_number
                    && query("SELECT id FROM practitioner WHERE licence_number = $1")
                        .bind(l.as_str())
                        .fetch_optional(&mut **tx)
                        .await?
                        .is_some()
                {
                    return Err(StoreError::Duplicate { what: format!("practitioner with licence {l}"), existing: None });
                }
                query("INSERT INTO practitioner (id, name, licence_number, phone, created_at) VALUES ($1, $2, $3, $4, $5)")
                    .bind(p.id)
                    .bind(p.name.as_str())
                    .bind(p.licence_number.as_deref())
                    .bind(p.phone.as_deref())
                    .bind(now_ms())
                    .execute(&mut **tx)
                    .await?;
                Ok(())
            })
        })
        .await
    }

    async fn get_practitioner(&self, id: Uuid) -> Result<Option<Practitioner>> {
        let row = query("SELECT id, name, licence_number, phone FROM practitioner WHERE id = $1")
            .bind(id)
            .fetch_optional(self.read())
            .await?;
        row.map(|r| {
            Ok(Practitioner {
                id: r.try_get("id")?,
                name: r.try_get("name")?,
                licence_number: r.try_get("licence_number")?,
                phone: r.try_get("phone")?,
            })
        })
        .transpose()
    }

    async fn list_practitioners(&self, facility_id: Option<Uuid>) -> Result<Vec<Practitioner>> {
        let mut qb: QueryBuilder<Db> =
            QueryBuilder::new("SELECT p.id, p.name, p.licence_number, p.phone FROM practitioner p");
        if let Some(f) = facility_id {
            qb.push(" WHERE p.id IN (SELECT practitioner_id FROM practitioner_role WHERE facility_id = ")
                .push_bind(f)
                .push(")");
        }
        qb.push(" ORDER BY p.name, p.id");
        qb.build()
            .fetch_all(self.read())
            .await?
            .iter()
            .map(|r| {
                Ok(Practitioner {
                    id: r.try_get("id")?,
                    name: r.try_get("name")?,
                    licence_number: r.try_get("licence_number")?,
                    phone: r.try_get("phone")?,
                })
            })
            .collect()
    }

    async fn create_practitioner_role(&self, r: &PractitionerRole) -> Result<()> {
        self.transact(r, |tx, r| {
            Box::pin(async move {
                require_exists(tx, "SELECT id FROM practitioner WHERE id = $1", r.practitioner_id, "practitioner").await?;
                require_exists(tx, "SELECT id FROM facility WHERE id = $1", r.facility_id, "facility").await?;
                let role = serde_json::to_value(r.role).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default();
                query(
                    "INSERT INTO practitioner_role (id, practitioner_id, facility_id, role, department, active, created_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7)",
                )
                .bind(r.id)
                .bind(r.practitioner_id)
                .bind(r.facility_id)
                .bind(role)
                .bind(r.department.as_deref())
                .bind(r.active)
                .bind(now_ms())
                .execute(&mut **tx)
                .await?;
                Ok(())
            })
        })
        .await
    }

    async fn list_practitioner_roles(&self, practitioner_id: Uuid) -> Result<Vec<PractitionerRole>> {
        query(
            "SELECT id, practitioner_id, facility_id, role, department, active FROM practitioner_role
             WHERE practitioner_id = $1 ORDER BY created_at, id",
        )
        .bind(practitioner_id)
        .fetch_all(self.read())
        .await?
        .iter()
        .map(|r| {
            let role: String = r.try_get("role")?;
            Ok(PractitionerRole {
                id: r.try_get("id")?,
                practitioner_id: r.try_get("practitioner_id")?,
                facility_id: r.try_get("facility_id")?,
                role: serde_json::from_value(serde_json::Value::String(role.clone()))
                    .map_err(|_| corrupt("role", &role))?,
                department: r.try_get("department")?,
                active: r.try_get("active")?,
            })
        })
        .collect()
    }

    async fn create_patient(&self, p: &Patient) -> Result<()> {
        self.transact(p, |tx, p| Box::pin(create_patient_tx(tx, p))).await
    }

    async fn import_patients(&self, rows: &[(u64, Patient)], atomic: bool) -> Result<ImportOutcome> {
        // the good rows of this call land together, in one transaction
        let outcome = self
            .transact(&(rows, atomic), |tx, (rows, atomic)| {
                Box::pin(async move {
                    let mut seen = HashSet::new();
                    let mut out = ImportOutcome::default();
                    for chunk in rows.chunks(IMPORT_CHUNK) {
                        let (n, rej) = import_chunk(tx, chunk, &mut seen).await?;
                        out.inserted += n;
                        out.rejected.extend(rej);
                    }
                    if *atomic && !out.rejected.is_empty() {
                        // all or nothing: an error rolls the whole import back
                        return Err(StoreError::Rejected(out.rejected));
                    }
                    Ok(out)
                })
            })
            .await;
        match outcome {
            Err(StoreError::Rejected(rejected)) => Ok(ImportOutcome { inserted: 0, rejected }),
            other => other,
        }
    }

    async fn get_patient(&self, id: Uuid) -> Result<Option<Patient>> {
        let row = query(AssertSqlSafe(format!("SELECT {PATIENT_COLS} FROM patient WHERE id = $1")))
            .bind(id)
            .fetch_optional(self.read())
            .await?;
        row.as_ref().map(patient_from_row).transpose()
    }

    async fn get_patients(&self, ids: &[Uuid]) -> Result<Vec<Patient>> {
        let mut ids = ids.to_vec();
        ids.sort();
        ids.dedup();
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(500) {
            let mut qb: QueryBuilder<Db> =
                QueryBuilder::new(format!("SELECT {PATIENT_COLS} FROM patient WHERE id IN ("));
            let mut sep = qb.separated(", ");
            for id in chunk {
                sep.push_bind(*id);
            }
            qb.push(")");
            for row in qb.build().fetch_all(self.read()).await? {
                out.push(patient_from_row(&row)?);
            }
        }
        Ok(out)
    }

    async fn surviving_patient(&self, id: Uuid) -> Result<Option<Patient>> {
        let mut cur = match self.get_patient(id).await? {
            Some(p) => p,
            None => return Ok(None),
        };
        for _ in 0..MAX_MERGE_HOPS {
            match cur.status {
                PatientStatus::Active => return Ok(Some(cur)),
                PatientStatus::Merged(into) => {
                    cur = self.get_patient(into).await?.ok_or_else(|| corrupt("merge target", &into.to_string()))?;
                }
            }
        }
        Err(StoreError::Corrupt(format!("merge chain from {id} longer than {MAX_MERGE_HOPS}")))
    }

    async fn find_by_identifier(&self, kind: IdentifierType, value: &str) -> Result<Option<Patient>> {
        let row = query("SELECT patient_id FROM patient_identifier WHERE kind = $1 AND value = $2")
            .bind(kind.as_str())
            .bind(value)
            .fetch_optional(self.read())
            .await?;
        match row {
            Some(r) => self.get_patient(r.try_get("patient_id")?).await,
            None => Ok(None),
        }
    }

    async fn match_candidates(&self, q: &MatchQuery, limit: u32) -> Result<Vec<Patient>> {
        let limit = limit.clamp(1, 500);
        let mut out: Vec<Patient> = Vec::new();
        let push = |ps: Vec<Patient>, out: &mut Vec<Patient>| {
            for p in ps {
                if !out.iter().any(|o| o.id == p.id) {
                    out.push(p);
                }
            }
        };
        if let Some(idn) = q.identity_number.as_deref().map(|s| s.trim().to_ascii_uppercase())
            && let Some(p) = self.find_by_identifier(IdentifierType::ResidentId, &idn).await?
            && let Some(survivor) = self.surviving_patient(p.id).await?
        {
            // a sure match on the number finds the person, i.e. the surviving record
            push(vec![survivor], &mut out);
        }
        let active = "status = 'active'";
        if let Some(b) = q.birth_date {
            let ps = self
                .fetch_patients(
                    format!("SELECT {PATIENT_COLS} FROM patient WHERE birth_date = $1 AND {active} ORDER BY id LIMIT {limit}"),
                    vec![date_str(b)],
                )
                .await?;
            push(ps, &mut out);
        }
        if let Some(n) = q.name.as_deref().map(str::trim).filter(|n| !n.is_empty()) {
            let ps = self
                .fetch_patients(
                    format!(
                        "SELECT {PATIENT_COLS} FROM patient WHERE name = $1 AND {active} ORDER BY id LIMIT {limit}"
                    ),
                    vec![n.to_owned()],
                )
                .await?;
            push(ps, &mut out);
        }
        if let Some(ph) = q.phone.as_deref() {
            let digits: String = ph.chars().filter(|c| c.is_ascii_digit() || *c == '-').collect();
            if !digits.is_empty() {
                let ps = self
                    .fetch_patients(
                        format!(
                            "SELECT {PATIENT_COLS} FROM patient WHERE phone = $1 AND {active} ORDER BY id LIMIT {limit}"
                        ),
                        vec![digits],
                    )
                    .await?;
                push(ps, &mut out);
            }
        }
        Ok(out)
    }

    async fn patient_record(&self, id: Uuid) -> Result<Option<PatientRecord>> {
        let Some(patient) = self.surviving_patient(id).await? else { return Ok(None) };
        let merged_ids = self.merged_into(patient.id).await?;
        let mut enrolments = Vec::new();
        let mut encounters = Vec::new();
        for pid in std::iter::once(patient.id).chain(merged_ids.iter().copied()) {
            for r in query("SELECT * FROM enrolment WHERE patient_id = $1 ORDER BY valid_from, id")
                .bind(pid)
                .fetch_all(self.read())
                .await?
            {
                enrolments.push(enrolment_from_row(&r)?);
            }
            for r in
                query("SELECT * FROM encounter WHERE patient_id = $1").bind(pid).fetch_all(self.read()).await?
            {
                encounters.push(encounter_from_row(&r)?);
            }
        }
        encounters.sort_by(|a, b| b.started_at.cmp(&a.started_at).then(a.id.cmp(&b.id)));
        let ids: Vec<Uuid> = std::iter::once(patient.id).chain(merged_ids.iter().copied()).collect();
        let referrals = referral::list_referrals(
            self,
            &ReferralFilter { patient_ids: ids.clone(), limit: 500, ..Default::default() },
        )
        .await?;
        let filings = referral::list_filings(self, &ids).await?;
        Ok(Some(PatientRecord { patient, merged_ids, enrolments, encounters, referrals, filings }))
    }

    async fn count_patients(&self) -> Result<u64> {
        let r = query("SELECT COUNT(*) AS n FROM patient").fetch_one(self.read()).await?;
        Ok(r.try_get::<i64, _>("n")? as u64)
    }

    async fn analyze(&self) -> Result<()> {
        if matches!(BACKEND, Backend::Postgres) {
            // the indicator counters' shards folded to one row a cell (issue 8), then VACUUM
            // and ANALYZE, which cannot run inside a transaction: on a pool connection, autocommit
            indicators::fold_shards(self).await?;
            raw_sql("ANALYZE").execute(self.read()).await?;
            raw_sql("VACUUM indicator_counter").execute(self.read()).await?;
        } else {
            self.transact(&(), |tx, ()| {
                Box::pin(async move {
                    raw_sql("PRAGMA optimize").execute(&mut **tx).await?;
                    Ok(())
                })
            })
            .await?;
        }
        Ok(())
    }

    async fn patient_updated_at(&self, ids: &[Uuid]) -> Result<Vec<(Uuid, OffsetDateTime)>> {
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(500) {
            let mut qb: QueryBuilder<Db> = QueryBuilder::new("SELECT id, updated_at FROM patient WHERE id IN (");
            let mut sep = qb.separated(", ");
            for id in chunk {
                sep.push_bind(*id);
            }
            qb.push(")");
            for row in qb.build().fetch_all(self.read()).await? {
                out.push((row.try_get("id")?, from_ms(row.try_get("updated_at")?)?));
            }
        }
        Ok(out)
    }

    async fn get_patient_versioned(&self, id: Uuid) -> Result<Option<(Patient, OffsetDateTime)>> {
        let row = query(AssertSqlSafe(format!("SELECT {PATIENT_COLS}, updated_at FROM patient WHERE id = $1")))
            .bind(id)
            .fetch_optional(self.read())
            .await?;
        row.as_ref().map(|r| Ok((patient_from_row(r)?, from_ms(r.try_get("updated_at")?)?))).transpose()
    }

    async fn update_patient(&self, p: &Patient) -> Result<OffsetDateTime> {
        self.transact(p, |tx, p| Box::pin(async move { update_patient_tx(tx, p).await })).await
    }

    async fn patient_versions(&self, id: Uuid) -> Result<Vec<(Patient, OffsetDateTime)>> {
        // the current row first: a change between the two reads then only adds a kept
        // version at or after it, which is left out
        let Some(current) = self.get_patient_versioned(id).await? else { return Ok(Vec::new()) };
        let mut out = kept_patient_versions(self, id, None).await?;
        out.retain(|(p, _)| p.version < current.0.version);
        out.push(current);
        Ok(out)
    }

    async fn get_patient_version(&self, id: Uuid, version: i64) -> Result<Option<(Patient, OffsetDateTime)>> {
        if let Some(current) = self.get_patient_versioned(id).await? {
            if current.0.version == version {
                return Ok(Some(current));
            }
            if version < current.0.version {
                return Ok(kept_patient_versions(self, id, Some(version)).await?.pop());
            }
        }
        Ok(None)
    }

    async fn merge_patients(
        &self,
        survivor_id: Uuid,
        merged_id: Uuid,
        by: Uuid,
        reason: &str,
        at: OffsetDateTime,
    ) -> Result<MergeRecord> {
        let args = (survivor_id, merged_id, by, reason.to_owned(), at);
        self.transact(&args, |tx, (survivor_id, merged_id, by, reason, at)| {
            Box::pin(async move {
                let survivor = get_patient_tx(tx, *survivor_id)
                    .await?
                    .ok_or_else(|| StoreError::not_found(format!("patient {survivor_id}")))?;
                let merged = get_patient_tx(tx, *merged_id)
                    .await?
                    .ok_or_else(|| StoreError::not_found(format!("patient {merged_id}")))?;
                tiercare_domain::patient::check_merge(&survivor, &merged)?;
                set_patient_status(tx, &merged, PatientStatus::Merged(survivor.id)).await?;
                let rec = MergeRecord {
                    id: crate::new_id(),
                    survivor_id: survivor.id,
                    merged_id: merged.id,
                    reason: reason.clone(),
                    merged_by: *by,
                    merged_at: *at,
                    undone_by: None,
                    undone_at: None,
                    undo_reason: None,
                };
                query(
                    "INSERT INTO patient_merge (region_key, id, survivor_id, merged_id, reason, merged_by, merged_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7)",
                )
                .bind(merged.region_key.as_str())
                .bind(rec.id)
                .bind(rec.survivor_id)
                .bind(rec.merged_id)
                .bind(rec.reason.as_str())
                .bind(rec.merged_by)
                .bind(ms(rec.merged_at))
                .execute(&mut **tx)
                .await?;
                Ok(rec)
            })
        })
        .await
    }

    async fn unmerge(&self, merge_id: Uuid, by: Uuid, reason: &str, at: OffsetDateTime) -> Result<MergeRecord> {
        let args = (merge_id, by, reason.to_owned(), at);
        self.transact(&args, |tx, (merge_id, by, reason, at)| {
            Box::pin(async move {
                let row = query("SELECT * FROM patient_merge WHERE id = $1")
                    .bind(*merge_id)
                    .fetch_optional(&mut **tx)
                    .await?
                    .ok_or_else(|| StoreError::not_found(format!("merge {merge_id}")))?;
                let mut rec = merge_from_row(&row)?;
                let region_key: String = row.try_get("region_key")?;
                if rec.undone_at.is_some() {
                    return Err(tiercare_domain::DomainError::Conflict("this merge was already undone".into()).into());
                }
                let merged = get_patient_tx(tx, rec.merged_id)
                    .await?
                    .ok_or_else(|| StoreError::Corrupt(format!("merged patient {} missing", rec.merged_id)))?;
                if merged.status != PatientStatus::Merged(rec.survivor_id) {
                    return Err(tiercare_domain::DomainError::Conflict(
                        "the merged record has changed since this merge; undo the later merge first".into(),
                    )
                    .into());
                }
                set_patient_status(tx, &merged, PatientStatus::Active).await?;
                query(
                    "UPDATE patient_merge SET undone_by = $1, undone_at = $2, undo_reason = $3 WHERE region_key = $4 AND id = $5",
                )
                .bind(*by)
                .bind(ms(*at))
                .bind(reason.as_str())
                .bind(region_key.as_str())
                .bind(rec.id)
                .execute(&mut **tx)
                .await?;
                rec.undone_by = Some(*by);
                rec.undone_at = Some(*at);
                rec.undo_reason = Some(reason.clone());
                Ok(rec)
            })
        })
        .await
    }

    async fn merge_history(&self, patient_id: Uuid) -> Result<Vec<MergeRecord>> {
        query("SELECT * FROM patient_merge WHERE survivor_id = $1 OR merged_id = $1 ORDER BY merged_at, id")
            .bind(patient_id)
            .fetch_all(self.read())
            .await?
            .iter()
            .map(merge_from_row)
            .collect()
    }

    async fn get_merge(&self, merge_id: Uuid) -> Result<Option<MergeRecord>> {
        query("SELECT * FROM patient_merge WHERE id = $1")
            .bind(merge_id)
            .fetch_optional(self.read())
            .await?
            .as_ref()
            .map(merge_from_row)
            .transpose()
    }

    async fn add_enrolment(&self, e: &Enrolment) -> Result<()> {
        self.transact(e, |tx, e| {
            Box::pin(async move {
                let p = get_patient_tx(tx, e.patient_id).await?.ok_or_else(|| StoreError::not_found(format!("patient {}", e.patient_id)))?;
                query(
                    "INSERT INTO enrolment (region_key, id, patient_id, scheme, insured_region, filing_status, filed_region, valid_from, valid_to, created_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                )
                .bind(p.region_key.as_str())
                .bind(e.id)
                .bind(e.patient_id)
                .bind(e.scheme.as_str())
                .bind(e.insured_region.as_str())
                .bind(e.filing_status.as_str())
                .bind(e.filed_region.as_deref())
                .bind(date_str(e.valid_from))
                .bind(e.valid_to.map(date_str))
                .bind(now_ms())
                .execute(&mut **tx)
                .await?;
                Ok(())
            })
        })
        .await
    }

    async fn enrolments(&self, patient_id: Uuid) -> Result<Vec<Enrolment>> {
        query("SELECT * FROM enrolment WHERE patient_id = $1 ORDER BY valid_from, id")
            .bind(patient_id)
            .fetch_all(self.read())
            .await?
            .iter()
            .map(enrolment_from_row)
            .collect()
    }

    async fn enrolment(&self, id: Uuid) -> Result<Option<Enrolment>> {
        query("SELECT * FROM enrolment WHERE id = $1")
            .bind(id)
            .fetch_optional(self.read())
            .await?
            .as_ref()
            .map(enrolment_from_row)
            .transpose()
    }

    async fn create_encounter(&self, e: &Encounter) -> Result<()> {
        self.transact(e, |tx, e| {
            Box::pin(async move {
                require_exists(tx, "SELECT id FROM facility WHERE id = $1", e.facility_id, "facility").await?;
                if let Some(pr) = e.practitioner_id {
                    require_exists(tx, "SELECT id FROM practitioner WHERE id = $1", pr, "practitioner").await?;
                }
                let p = get_patient_tx(tx, e.patient_id)
                    .await?
                    .ok_or_else(|| StoreError::not_found(format!("patient {}", e.patient_id)))?;
                if p.region_key != e.region_key {
                    return Err(StoreError::Corrupt("encounter region key differs from its patient's".into()));
                }
                query(
                    "INSERT INTO encounter (region_key, id, patient_id, facility_id, department, practitioner_id, class,
                       started_at, ended_at, diagnoses, procedures, total_cost_fen, created_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
                )
                .bind(e.region_key.as_str())
                .bind(e.id)
                .bind(e.patient_id)
                .bind(e.facility_id)
                .bind(e.department.as_deref())
                .bind(e.practitioner_id)
                .bind(e.class.as_str())
                .bind(ms(e.started_at))
                .bind(e.ended_at.map(ms))
                .bind(serde_json::to_string(&e.diagnoses).unwrap_or_default())
                .bind(serde_json::to_string(&e.procedures).unwrap_or_default())
                .bind(e.total_cost_fen)
                .bind(now_ms())
                .execute(&mut **tx)
                .await?;
                indicators::on_encounter(tx, e).await?; // issue 8: indicator counters
                Ok(())
            })
        })
        .await
    }

    async fn import_encounters(&self, rows: &[Encounter]) -> Result<u64> {
        self.transact(rows, |tx, rows| {
            Box::pin(async move {
                for chunk in rows.chunks(IMPORT_CHUNK) {
                    let facilities = known_facilities(tx, chunk.iter().map(|e| e.facility_id)).await?;
                    if let Some(e) = chunk.iter().find(|e| !facilities.contains(&e.facility_id)) {
                        return Err(StoreError::not_found(format!("facility {}", e.facility_id)));
                    }
                    let patients = patient_regions(tx, chunk.iter().map(|e| e.patient_id)).await?;
                    if let Some(e) = chunk.iter().find(|e| patients.get(&e.patient_id) != Some(&e.region_key)) {
                        return Err(StoreError::not_found(format!("patient {} (in region {})", e.patient_id, e.region_key)));
                    }
                    let now = now_ms();
                    let mut qb: QueryBuilder<Db> = QueryBuilder::new(format!(
                        "{BULK_INSERT} encounter (region_key, id, patient_id, facility_id, department, practitioner_id, class,
                           started_at, ended_at, diagnoses, procedures, total_cost_fen, created_at) "
                    ));
                    qb.push_values(chunk, |mut b, e| {
                        b.push_bind(e.region_key.clone())
                            .push_bind(e.id)
                            .push_bind(e.patient_id)
                            .push_bind(e.facility_id)
                            .push_bind(e.department.clone())
                            .push_bind(e.practitioner_id)
                            .push_bind(e.class.as_str())
                            .push_bind(ms(e.started_at))
                            .push_bind(e.ended_at.map(ms))
                            .push_bind(serde_json::to_string(&e.diagnoses).unwrap_or_default())
                            .push_bind(serde_json::to_string(&e.procedures).unwrap_or_default())
                            .push_bind(e.total_cost_fen)
                            .push_bind(now);
                    });
                    qb.build().execute(&mut **tx).await?;
                }
                indicators::on_encounters_imported(tx, rows).await?; // issue 8: indicator counters
                Ok(rows.len() as u64)
            })
        })
        .await
    }

    async fn import_enrolments(&self, rows: &[Enrolment]) -> Result<u64> {
        self.transact(rows, |tx, rows| {
            Box::pin(async move {
                for chunk in rows.chunks(IMPORT_CHUNK) {
                    let regions = patient_regions(tx, chunk.iter().map(|e| e.patient_id)).await?;
                    if let Some(e) = chunk.iter().find(|e| !regions.contains_key(&e.patient_id)) {
                        return Err(StoreError::not_found(format!("patient {}", e.patient_id)));
                    }
                    let now = now_ms();
                    let mut qb: QueryBuilder<Db> = QueryBuilder::new(format!(
                        "{BULK_INSERT} enrolment (region_key, id, patient_id, scheme, insured_region, filing_status, filed_region,
                           valid_from, valid_to, created_at) "
                    ));
                    qb.push_values(chunk, |mut b, e| {
                        b.push_bind(regions.get(&e.patient_id).cloned().unwrap_or_default())
                            .push_bind(e.id)
                            .push_bind(e.patient_id)
                            .push_bind(e.scheme.as_str())
                            .push_bind(e.insured_region.clone())
                            .push_bind(e.filing_status.as_str())
                            .push_bind(e.filed_region.clone())
                            .push_bind(date_str(e.valid_from))
                            .push_bind(e.valid_to.map(date_str))
                            .push_bind(now);
                    });
                    qb.build().execute(&mut **tx).await?;
                }
                Ok(rows.len() as u64)
            })
        })
        .await
    }

    async fn create_user(&self, u: &User) -> Result<()> {
        self.transact(u, |tx, u| {
            Box::pin(async move {
                require_exists(tx, "SELECT id FROM facility WHERE id = $1", u.facility_id, "facility").await?;
                if query("SELECT id FROM app_user WHERE username = $1").bind(u.username.as_str()).fetch_optional(&mut **tx).await?.is_some() {
                    return Err(StoreError::Duplicate { what: format!("user {}", u.username), existing: None });
                }
                query(
                    "INSERT INTO app_user (id, username, display_name, facility_id, roles, password_hash, active, created_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                )
                .bind(u.id)
                .bind(u.username.as_str())
                .bind(u.display_name.as_str())
                .bind(u.facility_id)
                .bind(roles_text(&u.roles))
                .bind(u.password_hash.as_str())
                .bind(u.active)
                .bind(now_ms())
                .execute(&mut **tx)
                .await?;
                Ok(())
            })
        })
        .await
    }

    async fn get_user(&self, id: Uuid) -> Result<Option<User>> {
        query("SELECT * FROM app_user WHERE id = $1")
            .bind(id)
            .fetch_optional(self.read())
            .await?
            .as_ref()
            .map(user_from_row)
            .transpose()
    }

    async fn get_user_by_username(&self, username: &str) -> Result<Option<User>> {
        query("SELECT * FROM app_user WHERE username = $1")
            .bind(username)
            .fetch_optional(self.read())
            .await?
            .as_ref()
            .map(user_from_row)
            .transpose()
    }

    async fn list_users(&self) -> Result<Vec<User>> {
        query("SELECT * FROM app_user ORDER BY username")
            .fetch_all(self.read())
            .await?
            .iter()
            .map(user_from_row)
            .collect()
    }

    async fn create_token(&self, t: &TokenRecord) -> Result<()> {
        self.transact(t, |tx, t| {
            Box::pin(async move {
                require_exists(tx, "SELECT id FROM app_user WHERE id = $1", t.user_id, "user").await?;
                query(
                    "INSERT INTO auth_token (token_hash, user_id, kind, label, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(t.token_hash.clone())
                .bind(t.user_id)
                .bind(t.kind.as_str())
                .bind(t.label.as_deref())
                .bind(ms(t.created_at))
                .bind(t.expires_at.map(ms))
                .execute(&mut **tx)
                .await?;
                Ok(())
            })
        })
        .await
    }

    async fn find_token(&self, token_hash: &[u8], now: OffsetDateTime) -> Result<Option<(TokenRecord, User)>> {
        let row = query(
            "SELECT t.kind, t.label, t.created_at AS t_created, t.expires_at, u.* FROM auth_token t JOIN app_user u ON u.id = t.user_id
             WHERE t.token_hash = $1 AND t.revoked_at IS NULL AND (t.expires_at IS NULL OR t.expires_at > $2)",
        )
        .bind(token_hash.to_vec())
        .bind(ms(now))
        .fetch_optional(self.read())
        .await?;
        let Some(r) = row else { return Ok(None) };
        let user = user_from_row(&r)?;
        let kind: String = r.try_get("kind")?;
        let token = TokenRecord {
            token_hash: token_hash.to_vec(),
            user_id: user.id,
            kind: if kind == "api" { TokenKind::Api } else { TokenKind::Session },
            label: r.try_get("label")?,
            created_at: from_ms(r.try_get("t_created")?)?,
            expires_at: r.try_get::<Option<i64>, _>("expires_at")?.map(from_ms).transpose()?,
        };
        Ok(Some((token, user)))
    }

    async fn revoke_token(&self, token_hash: &[u8], at: OffsetDateTime) -> Result<()> {
        let args = (token_hash.to_vec(), at);
        self.transact(&args, |tx, (h, at)| {
            Box::pin(async move {
                query("UPDATE auth_token SET revoked_at = $1 WHERE token_hash = $2 AND revoked_at IS NULL")
                    .bind(ms(*at))
                    .bind(h.clone())
                    .execute(&mut **tx)
                    .await?;
                Ok(())
            })
        })
        .await
    }

    async fn access_facts(&self, facility_id: Uuid, patient_id: Uuid) -> Result<AccessFacts> {
        let mut facts = AccessFacts::default();
        let Some(survivor) = self.surviving_patient(patient_id).await? else { return Ok(facts) };
        let merged = self.merged_into(survivor.id).await?;
        let mut records = vec![survivor];
        records.extend(self.get_patients(&merged).await?);
        let ids: Vec<Uuid> = records.iter().map(|p| p.id).collect();
        // the user's community and its policy, in one read
        let row = query(
            "SELECT f.community_id, c.community_wide_read FROM facility f LEFT JOIN community c ON c.id = f.community_id
             WHERE f.id = $1",
        )
        .bind(facility_id)
        .fetch_optional(self.read())
        .await?;
        let community: Option<Uuid> = row.as_ref().map(|r| r.try_get("community_id")).transpose()?.flatten();
        facts.community_wide_read =
            row.as_ref().map(|r| r.try_get::<Option<bool>, _>("community_wide_read")).transpose()?.flatten()
                == Some(true);
        let in_ids = |qb: &mut QueryBuilder<Db>| {
            qb.push("(");
            let mut sep = qb.separated(", ");
            for id in &ids {
                sep.push_bind(*id);
            }
            qb.push(")");
        };
        // registered here, treated here, or a referral names this facility as sender or
        // current receiver — for the record or any record merged into it
        facts.care_relationship = records.iter().any(|p| p.home_facility_id == Some(facility_id));
        if !facts.care_relationship {
            let mut qb: QueryBuilder<Db> = QueryBuilder::new("SELECT 1 AS x FROM encounter WHERE facility_id = ");
            qb.push_bind(facility_id).push(" AND patient_id IN ");
            in_ids(&mut qb);
            qb.push(" UNION ALL SELECT 1 AS x FROM referral WHERE (from_facility_id = ")
                .push_bind(facility_id)
                .push(" OR to_facility_id = ")
                .push_bind(facility_id)
                .push(") AND patient_id IN ");
            in_ids(&mut qb);
            qb.push(" LIMIT 1");
            facts.care_relationship = qb.build().fetch_optional(self.read()).await?.is_some();
        }
        if let Some(c) = community {
            let mut qb: QueryBuilder<Db> = QueryBuilder::new(
                "SELECT 1 AS x FROM patient p JOIN facility f ON f.id = p.home_facility_id WHERE f.community_id = ",
            );
            qb.push_bind(c).push(" AND p.id IN ");
            in_ids(&mut qb);
            qb.push(" UNION ALL SELECT 1 AS x FROM encounter e JOIN facility f ON f.id = e.facility_id WHERE f.community_id = ")
                .push_bind(c)
                .push(" AND e.patient_id IN ");
            in_ids(&mut qb);
            qb.push(
                " UNION ALL SELECT 1 AS x FROM referral r JOIN facility f ON f.id IN (r.from_facility_id, r.to_facility_id)
                  WHERE f.community_id = ",
            )
            .push_bind(c)
            .push(" AND r.patient_id IN ");
            in_ids(&mut qb);
            qb.push(" LIMIT 1");
            facts.same_community = qb.build().fetch_optional(self.read()).await?.is_some();
        }
        Ok(facts)
    }

    async fn record_access(&self, e: &AccessLogEntry) -> Result<()> {
        self.transact(e, |tx, e| Box::pin(insert_access_log(tx, e))).await
    }

    async fn query_access_log(&self, f: &AccessLogFilter) -> Result<Vec<AccessLogEntry>> {
        let mut qb: QueryBuilder<Db> = QueryBuilder::new("SELECT * FROM access_log WHERE 1 = 1");
        if let Some(p) = f.patient_id {
            qb.push(" AND patient_id = ").push_bind(p);
        }
        if let Some(u) = f.user_id {
            qb.push(" AND user_id = ").push_bind(u);
        }
        if let Some(c) = f.community_id {
            qb.push(" AND (facility_id IN (SELECT id FROM facility WHERE community_id = ")
                .push_bind(c)
                .push(") OR patient_id IN (SELECT p.id FROM patient p JOIN facility f ON f.id = p.home_facility_id WHERE f.community_id = ")
                .push_bind(c)
                .push("))");
        }
        if let Some(b) = f.basis {
            qb.push(" AND basis = ").push_bind(b.as_str());
        }
        if let Some(t) = f.from {
            qb.push(" AND at >= ").push_bind(ms(t));
        }
        if let Some(t) = f.to {
            qb.push(" AND at < ").push_bind(ms(t));
        }
        let limit = if f.limit == 0 { 100 } else { f.limit.min(1000) };
        qb.push(" ORDER BY at DESC, id DESC LIMIT ").push_bind(i64::from(limit));
        qb.build().fetch_all(self.read()).await?.iter().map(access_from_row).collect()
    }

    // --- referrals (issue 4): implemented in queries_referral.rs
    async fn create_referral(&self, change: &Change) -> Result<()> {
        referral::create_referral(self, change, None).await
    }
    async fn apply_referral_change(&self, change: &Change) -> Result<()> {
        referral::apply_referral_change(self, change, None).await
    }
    async fn create_referral_logged(&self, change: &Change, access: &AccessLogEntry) -> Result<()> {
        referral::create_referral(self, change, Some(access)).await
    }
    async fn apply_referral_change_logged(&self, change: &Change, access: &AccessLogEntry) -> Result<()> {
        referral::apply_referral_change(self, change, Some(access)).await
    }
    async fn get_referral(&self, id: Uuid) -> Result<Option<Referral>> {
        referral::get_referral(self, id).await
    }
    async fn referral_history(&self, id: Uuid) -> Result<Vec<ReferralEvent>> {
        referral::referral_history(self, id).await
    }
    async fn referral_for_step(&self, id: Uuid) -> Result<Option<ReferralForStep>> {
        referral::referral_for_step(self, id).await
    }
    async fn list_referrals(&self, f: &ReferralFilter) -> Result<Vec<Referral>> {
        referral::list_referrals(self, f).await
    }
    async fn count_referrals(&self, f: &ReferralFilter) -> Result<u64> {
        referral::count_referrals(self, f).await
    }
    async fn due_referrals(&self, now: OffsetDateTime, limit: u32) -> Result<Vec<Referral>> {
        referral::due_referrals(self, now, limit).await
    }
    async fn import_referrals(&self, rows: &[ReferralBundle]) -> Result<u64> {
        referral::import_referrals(self, rows).await
    }
    async fn list_follow_ups(&self, f: &FollowUpFilter) -> Result<Vec<FollowUpTask>> {
        referral::list_follow_ups(self, f).await
    }
    async fn get_follow_up(&self, id: Uuid) -> Result<Option<FollowUpTask>> {
        referral::get_follow_up(self, id).await
    }
    async fn complete_follow_up(
        &self,
        id: Uuid,
        by: Uuid,
        at: OffsetDateTime,
        note: Option<&str>,
    ) -> Result<FollowUpTask> {
        referral::complete_follow_up(self, id, by, at, note).await
    }
    async fn list_filings(&self, patient_ids: &[Uuid]) -> Result<Vec<Filing>> {
        referral::list_filings(self, patient_ids).await
    }
    async fn list_notifications(
        &self,
        facility_id: Uuid,
        since: Option<OffsetDateTime>,
        limit: u32,
    ) -> Result<Vec<Notification>> {
        referral::list_notifications(self, facility_id, since, limit).await
    }
    async fn notifications_seen_until(&self, user_id: Uuid) -> Result<Option<OffsetDateTime>> {
        referral::notifications_seen_until(self, user_id).await
    }
    async fn mark_notifications_seen(&self, user_id: Uuid, until: OffsetDateTime) -> Result<()> {
        referral::mark_notifications_seen(self, user_id, until).await
    }
    async fn pending_outbox(&self, limit: u32) -> Result<Vec<OutboxMessage>> {
        referral::pending_outbox(self, limit).await
    }
    async fn mark_outbox_delivered(&self, ids: &[Uuid], at: OffsetDateTime) -> Result<u64> {
        referral::mark_outbox_delivered(self, ids, at).await
    }
    async fn settle(
        &self,
        req: &crate::SettleRequest,
        policies: &tiercare_domain::settlement::PolicySet,
    ) -> Result<crate::SettlementRecord> {
        settlement::settle(self, req, policies).await
    }
    async fn reverse_settlement(
        &self,
        settlement_id: Uuid,
        reversal_txn_no: &str,
        reason: &str,
        at: OffsetDateTime,
    ) -> Result<crate::SettlementRecord> {
        settlement::reverse_settlement(self, settlement_id, reversal_txn_no, reason, at).await
    }
    async fn get_settlement(&self, id: Uuid) -> Result<Option<crate::SettlementRecord>> {
        settlement::get_settlement(self, id).await
    }
    async fn find_settlement_by_txn(&self, facility_id: Uuid, txn_no: &str) -> Result<Option<crate::SettlementRecord>> {
        settlement::find_settlement_by_txn(self, facility_id, txn_no).await
    }
    async fn accumulators(&self, patient_id: Uuid, year: i32) -> Result<tiercare_domain::settlement::Accumulators> {
        settlement::accumulators(self, patient_id, year).await
    }
    async fn list_settlements(&self, f: &crate::SettlementFilter) -> Result<Vec<crate::SettlementRecord>> {
        settlement::list_settlements(self, f).await
    }
    async fn settlement_totals(&self, f: &crate::SettlementFilter) -> Result<crate::SettlementTotals> {
        settlement::settlement_totals(self, f).await
    }
    async fn fund_report(
        &self,
        from: Date,
        to_exclusive: Date,
        by_facility: bool,
        facility_ids: Option<&[Uuid]>,
    ) -> Result<Vec<crate::FundReportRow>> {
        settlement::fund_report(self, from, to_exclusive, by_facility, facility_ids).await
    }
    async fn outflow_report(&self, insured_county: &str, from: Date, to_exclusive: Date) -> Result<Vec<crate::OutflowRow>> {
        settlement::outflow_report(self, insured_county, from, to_exclusive).await
    }
    async fn clearing_report(&self, from: Date, to_exclusive: Date) -> Result<Vec<crate::ClearingRow>> {
        settlement::clearing_report(self, from, to_exclusive).await
    }
    async fn import_settlements(&self, rows: &[crate::SettlementRecord]) -> Result<()> {
        settlement::import_settlements(self, rows).await
    }

    // --- FHIR transactions (issue 7)
    async fn apply_writes(
        &self,
        writes: &[crate::PreparedWrite],
    ) -> std::result::Result<Vec<crate::WriteDone>, crate::WriteFailed> {
        use std::sync::atomic::{AtomicUsize, Ordering};
        // the index of the write that failed in the last attempt (MAX: none)
        let failed = AtomicUsize::new(usize::MAX);
        let done = self
            .transact(&(writes, &failed), |tx, (writes, failed)| {
                Box::pin(async move {
                    let mut done = Vec::with_capacity(writes.len());
                    for (i, w) in writes.iter().enumerate() {
                        match apply_write_tx(tx, w).await {
                            Ok(d) => done.push(d),
                            Err(e) => {
                                failed.store(i, Ordering::Relaxed);
                                return Err(e);
                            }
                        }
                    }
                    failed.store(usize::MAX, Ordering::Relaxed);
                    Ok(done)
                })
            })
            .await;
        done.map_err(|error| {
            let i = failed.load(Ordering::Relaxed);
            crate::WriteFailed { index: (i != usize::MAX).then_some(i), error }
        })
    }
}

/// [`Store::create_patient`] inside a transaction: the home facility must exist.
async fn create_patient_tx(tx: &mut Tx, p: &Patient) -> Result<()> {
    if let Some(f) = p.home_facility_id {
        require_exists(tx, "SELECT id FROM facility WHERE id = $1", f, "facility").await?;
    }
    insert_patient(tx, p).await
}

/// One write of [`Store::apply_writes`], inside its transaction: the body of the write's
/// own method.
async fn apply_write_tx(tx: &mut Tx, w: &crate::PreparedWrite) -> Result<crate::WriteDone> {
    use crate::{PreparedWrite as W, WriteDone};
    Ok(match w {
        W::CreatePatient(p) => {
            create_patient_tx(tx, p).await?;
            WriteDone::Written
        }
        W::UpdatePatient(p) => WriteDone::PatientUpdated(update_patient_tx(tx, p).await?),
        W::CreateReferral { change, access } => {
            referral::create_referral_tx(tx, change, access.as_ref()).await?;
            WriteDone::Written
        }
        W::ReferralStep { change, access } => {
            referral::apply_referral_change_tx(tx, change, access.as_ref()).await?;
            WriteDone::Written
        }
        W::Results(reports) => {
            let rows: Vec<crate::ResultRecord> = reports.iter().flat_map(crate::ResultRecord::of_report).collect();
            WriteDone::Results(if rows.is_empty() { 0 } else { results::insert_results_tx(tx, &rows).await? })
        }
        W::Access(e) => {
            insert_access_log(tx, e).await?;
            WriteDone::Written
        }
    })
}
