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
