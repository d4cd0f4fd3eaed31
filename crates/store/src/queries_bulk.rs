// Bulk FHIR walks and look-ups (issue 7): included into `mod bulk` inside `queries.rs`, so it
// is compiled once per backend like the rest. SQL here must be valid on both SQLite and
// PostgreSQL.
//
// The walks are keyset pages over primary keys: `patient (id, region_key)` by `id`, and
// `enrolment`/`encounter (region_key, id)` by the row value `(region_key, id)`, so each page is
// one index range read however far the walk has gone (no OFFSET).

#[allow(unused_imports)]
use super::*;

use crate::{AccessLogEntry, BulkTable, RegionKey};

/// Ids per `IN (…)` list.
const LOOKUP_CHUNK: usize = 500;

#[async_trait::async_trait]
impl crate::BulkStore for This {
    async fn patients_after(&self, after: Option<Uuid>, limit: u32) -> Result<Vec<Patient>> {
        let limit = limit.clamp(1, 100_000);
        let rows = match after {
            Some(id) => {
                query(AssertSqlSafe(format!(
                    "SELECT {PATIENT_COLS} FROM patient WHERE id > $1 ORDER BY id LIMIT {limit}"
                )))
                .bind(id)
                .fetch_all(self.read())
                .await?
            }
            None => {
                query(AssertSqlSafe(format!("SELECT {PATIENT_COLS} FROM patient ORDER BY id LIMIT {limit}")))
                    .fetch_all(self.read())
                    .await?
            }
        };
        rows.iter().map(patient_from_row).collect()
    }

    async fn enrolments_after(&self, after: Option<&RegionKey>, limit: u32) -> Result<Vec<(String, Enrolment)>> {
        let rows = page(self, "enrolment", after, limit).await?;
        rows.iter().map(|r| Ok((r.try_get("region_key")?, enrolment_from_row(r)?))).collect()
    }

    async fn encounters_after(&self, after: Option<&RegionKey>, limit: u32) -> Result<Vec<Encounter>> {
        page(self, "encounter", after, limit).await?.iter().map(encounter_from_row).collect()
    }

    async fn patient_regions(&self, ids: &[Uuid]) -> Result<HashMap<Uuid, String>> {
        let mut ids = ids.to_vec();
        ids.sort();
        ids.dedup();
        let mut out = HashMap::with_capacity(ids.len());
        for chunk in ids.chunks(LOOKUP_CHUNK) {
            let mut qb: QueryBuilder<Db> = QueryBuilder::new("SELECT id, region_key FROM patient WHERE id IN (");
            let mut sep = qb.separated(", ");
            for id in chunk {
                sep.push_bind(*id);
            }
            qb.push(")");
            for r in qb.build().fetch_all(self.read()).await? {
                out.insert(r.try_get("id")?, r.try_get("region_key")?);
            }
        }
        Ok(out)
    }

    async fn stored_ids(&self, table: BulkTable, keys: &[RegionKey]) -> Result<HashSet<Uuid>> {
        let name = match table {
            BulkTable::Patient => "patient",
            BulkTable::Enrolment => "enrolment",
            BulkTable::Encounter => "encounter",
        };
        // grouped by region key, so each look-up is `region_key = $1 AND id IN (…)` on the key
        let mut by_region: HashMap<&str, Vec<Uuid>> = HashMap::new();
        for (region, id) in keys {
            by_region.entry(region.as_str()).or_default().push(*id);
        }
        let mut out = HashSet::new();
        for (region, ids) in by_region {
            for chunk in ids.chunks(LOOKUP_CHUNK) {
                let mut qb: QueryBuilder<Db> = QueryBuilder::new(format!("SELECT id FROM {name} WHERE region_key = "));
                qb.push_bind(region.to_owned());
                qb.push(" AND id IN (");
                let mut sep = qb.separated(", ");
                for id in chunk {
                    sep.push_bind(*id);
                }
                qb.push(")");
                for r in qb.build().fetch_all(self.read()).await? {
                    out.insert(r.try_get("id")?);
                }
            }
        }
        Ok(out)
    }

    async fn patients_changed_after(
        &self,
        after: Option<Uuid>,
        since: OffsetDateTime,
        limit: u32,
    ) -> Result<Vec<Patient>> {
        let limit = limit.clamp(1, 100_000);
        // the walk is by id; the filter reads each row's updated_at (no index: a whole walk)
        let rows = query(AssertSqlSafe(format!(
            "SELECT {PATIENT_COLS} FROM patient WHERE id > $1 AND updated_at > $2 ORDER BY id LIMIT {limit}"
        )))
        .bind(after.unwrap_or(Uuid::nil()))
        .bind(ms(since))
        .fetch_all(self.read())
        .await?;
        rows.iter().map(patient_from_row).collect()
    }

    async fn enrolments_created_after(
        &self,
        after: Option<&RegionKey>,
        since: OffsetDateTime,
        limit: u32,
    ) -> Result<Vec<(String, Enrolment)>> {
        let rows = page_since(self, "enrolment", after, since, limit).await?;
        rows.iter().map(|r| Ok((r.try_get("region_key")?, enrolment_from_row(r)?))).collect()
    }

    async fn encounters_created_after(
        &self,
        after: Option<&RegionKey>,
        since: OffsetDateTime,
        limit: u32,
    ) -> Result<Vec<Encounter>> {
        page_since(self, "encounter", after, since, limit).await?.iter().map(encounter_from_row).collect()
    }

    async fn patients_registered_at(
        &self,
        facility: Uuid,
        after: Option<Uuid>,
        since: Option<OffsetDateTime>,
        limit: u32,
    ) -> Result<Vec<Patient>> {
        let limit = limit.clamp(1, 100_000);
        // the range is one facility's entries of `patient_by_home`, from `after` on; `since`
        // is a filter on the rows read (a member unchanged since is still read, not written)
        let changed = if since.is_some() { " AND updated_at > $3" } else { "" };
        let sql = format!(
            "SELECT {PATIENT_COLS} FROM patient WHERE home_facility_id = $1 AND id > $2{changed} \
             ORDER BY home_facility_id, id LIMIT {limit}"
        );
        let q = query(AssertSqlSafe(sql)).bind(facility).bind(after.unwrap_or(Uuid::nil()));
        let q = match since {
            Some(t) => q.bind(ms(t)),
            None => q,
        };
        let rows = q.fetch_all(self.read()).await?;
        rows.iter().map(patient_from_row).collect()
    }

    async fn record_bulk_access(&self, entries: &[AccessLogEntry]) -> Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        self.transact(entries, |tx, entries| {
            Box::pin(async move {
                for e in entries {
                    insert_access_log(tx, e).await?;
                }
                Ok(())
            })
        })
        .await
    }
}

/// One keyset page of a `(region_key, id)`-keyed table, only rows created after `since`.
async fn page_since(
    store: &This,
    table: &str,
    after: Option<&RegionKey>,
    since: OffsetDateTime,
    limit: u32,
) -> Result<Vec<DbRow>> {
    let limit = limit.clamp(1, 100_000);
    let (region, id) = after.cloned().unwrap_or_else(|| (String::new(), Uuid::nil()));
    Ok(query(AssertSqlSafe(format!(
        "SELECT * FROM {table} WHERE (region_key, id) > ($1, $2) AND created_at > $3 ORDER BY region_key, id LIMIT {limit}"
    )))
    .bind(region)
    .bind(id)
    .bind(ms(since))
    .fetch_all(store.read())
    .await?)
}

/// One keyset page of a `(region_key, id)`-keyed table.
async fn page(store: &This, table: &str, after: Option<&RegionKey>, limit: u32) -> Result<Vec<DbRow>> {
    let limit = limit.clamp(1, 100_000);
    Ok(match after {
        Some((region, id)) => {
            query(AssertSqlSafe(format!(
                "SELECT * FROM {table} WHERE (region_key, id) > ($1, $2) ORDER BY region_key, id LIMIT {limit}"
            )))
            .bind(region.clone())
            .bind(*id)
            .fetch_all(store.read())
            .await?
        }
        None => {
            query(AssertSqlSafe(format!("SELECT * FROM {table} ORDER BY region_key, id LIMIT {limit}")))
                .fetch_all(store.read())
                .await?
        }
    })
}
