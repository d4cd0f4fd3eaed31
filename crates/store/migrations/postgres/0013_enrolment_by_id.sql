-- Issue 6: `GET /fhir/Coverage/{id}` reads one enrolment by its id; the key leads with the
-- region (the distribution key), so the id alone needs its own index (as `settlement_by_id`).
CREATE INDEX enrolment_by_id ON enrolment (id);
