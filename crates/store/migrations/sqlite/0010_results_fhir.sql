-- Issue 5, FHIR: read a DiagnosticReport by its id (the rows of one report) and an
-- Observation by its id (one row), with no region key in hand.
CREATE INDEX result_by_report ON result_entry (report_id);
CREATE INDEX result_by_id ON result_entry (id);
