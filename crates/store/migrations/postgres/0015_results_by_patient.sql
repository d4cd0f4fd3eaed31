-- 0015_results_by_patient (issue 5): the order-time check reads a patient's results of the
-- ordered items. `result_check` holds, in key order (patient, item, specimen time), every
-- column the check needs (INCLUDE), so the check is an index-only scan over the few
-- adjacent leaf pages of one patient, wherever the rows lie in the heap (results of one
-- patient arrive over years, scattered over the table). It replaces `result_lookup`, whose
-- key it repeats; FHIR searches by patient, code and date use the same key.
DROP INDEX result_lookup;
CREATE INDEX result_check ON result_entry (patient_id, item_code, specimen_time)
    INCLUDE (id, facility_id, facility_tier, lab_id, report_time, mark, value, unit);
-- An index-only scan skips the heap only for pages the visibility map marks all-visible:
-- vacuum this insert-only table after 1 % new rows (default 20 %), so recent results (the
-- ones a check finds) are not left to heap look-ups for long.
ALTER TABLE result_entry SET (autovacuum_vacuum_insert_scale_factor = 0.01);
