-- Issue 7: `GET /fhir/Encounter/{id}` (and Condition/Procedure, whose ids name their
-- encounter) read one encounter by its id; the key leads with the region (the distribution
-- key), so the id alone needs its own index (as `enrolment_by_id`, `settlement_by_id`).
CREATE INDEX encounter_by_id ON encounter (id);
