-- 0015_results_by_patient (issue 5): the order-time check reads a patient's results of the
-- ordered items. `result_check` holds, in key order (patient, item, specimen time), every
-- column the check needs (SQLite has no INCLUDE: they end the key), so the check reads only
-- the few adjacent index pages of one patient, wherever the rows lie in the table (results
-- of one patient arrive over years). It replaces `result_lookup`, whose key it begins with;
-- FHIR searches by patient, code and date use the same key.
DROP INDEX result_lookup;
CREATE INDEX result_check ON result_entry (patient_id, item_code, specimen_time,
    id, facility_id, facility_tier, lab_id, report_time, mark, value, unit);
