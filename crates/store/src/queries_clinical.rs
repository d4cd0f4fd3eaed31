// Clinical reads for the FHIR interface (issue 7): included into `mod clinical` inside
// `queries.rs`, so it is compiled once per backend like the rest. SQL here must be valid on
// both SQLite and PostgreSQL.

#[allow(unused_imports)]
use super::*;

#[async_trait::async_trait]
impl crate::ClinicalStore for This {
    async fn encounter(&self, id: Uuid) -> Result<Option<Encounter>> {
        // `encounter_by_id` (migration 0016): one index read, not a walk of every region
        query("SELECT * FROM encounter WHERE id = $1")
            .bind(id)
            .fetch_optional(self.read())
            .await?
            .as_ref()
            .map(encounter_from_row)
            .transpose()
    }

    async fn patient_encounters(&self, id: Uuid, started: crate::StartedRange) -> Result<Vec<Encounter>> {
        let Some(survivor) = self.surviving_patient(id).await? else { return Ok(Vec::new()) };
        // the survivor's and every merged record's (as `patient_record`), each one
        // `encounter_by_patient (patient_id, started_at)` range read; open ends are bound as
        // the extremes, so the statement is always the same
        let (from, until) = (started.from.map_or(i64::MIN, ms), started.until.map_or(i64::MAX, ms));
        let mut out = Vec::new();
        for pid in std::iter::once(survivor.id).chain(self.merged_into(survivor.id).await?) {
            let rows = query(
                "SELECT * FROM encounter WHERE patient_id = $1 AND started_at >= $2 AND started_at < $3
                 ORDER BY started_at DESC, id DESC",
            )
            .bind(pid)
            .bind(from)
            .bind(until)
            .fetch_all(self.read())
            .await?;
            for r in &rows {
                out.push(encounter_from_row(r)?);
            }
        }
        out.sort_by_key(|e| std::cmp::Reverse((e.started_at, e.id)));
        Ok(out)
    }

    async fn practitioner_role(&self, id: Uuid) -> Result<Option<PractitionerRole>> {
        // the role's practitioner, then that practitioner's roles (read by the one query that
        // knows the row's shape): two primary-key / index reads
        let Some(row) = query("SELECT practitioner_id FROM practitioner_role WHERE id = $1")
            .bind(id)
            .fetch_optional(self.read())
            .await?
        else {
            return Ok(None);
        };
        let practitioner: Uuid = row.try_get("practitioner_id")?;
        Ok(self.list_practitioner_roles(practitioner).await?.into_iter().find(|r| r.id == id))
    }
}
