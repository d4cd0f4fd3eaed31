-- Issue 5: shared lab and imaging results with mutual recognition (domain.md M6).
--
-- `result_entry` holds one row per recognisable unit: an observation of a lab report, or the exam
-- of an imaging report; the report's own fields (facility, lab, times, HR mark) are repeated
-- on each of its rows so that the order-time check is one index range per ordered item:
-- (patient_id, item_code, specimen_time). Patient-owned: region_key first in the key.
CREATE TABLE result_entry (
    region_key TEXT NOT NULL,
    id UUID NOT NULL,
    report_id UUID NOT NULL,
    patient_id UUID NOT NULL,
    -- the catalogue's local code, and the code as sent (local or LOINC)
    item_code TEXT NOT NULL,
    sent_code TEXT NOT NULL,
    -- 'lab' | 'imaging'
    category TEXT NOT NULL,
    -- the value (lab) or the conclusion (imaging); value_num for numeric items
    value TEXT NOT NULL,
    value_num DOUBLE PRECISION,
    unit TEXT,
    reference_low DOUBLE PRECISION,
    reference_high DOUBLE PRECISION,
    reference_text TEXT,
    flag TEXT,
    -- imaging: modality, body site, findings, conclusion (JSON); NULL for lab rows
    imaging TEXT,
    facility_id UUID NOT NULL,
    facility_tier TEXT NOT NULL,
    lab_id UUID NOT NULL,
    specimen_time BIGINT NOT NULL,
    report_time BIGINT NOT NULL,
    -- the HR mark and its scope (JSON); NULL when not marked
    mark TEXT,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (region_key, id)
);
CREATE INDEX result_lookup ON result_entry (patient_id, item_code, specimen_time);

-- Periods in which a lab held the quality-control status that lets its results carry HR;
-- qualified_to (exclusive) is set when the status is lost.
CREATE TABLE lab_qualification (
    lab_id UUID NOT NULL,
    qualified_from BIGINT NOT NULL,
    qualified_to BIGINT,
    note TEXT,
    PRIMARY KEY (lab_id, qualified_from)
);

-- One row per ordered item: reused (a test avoided: the savings ledger), repeated (with its
-- reason) or performed. `month` is the China-time month of ordered_at ('2026-11').
CREATE TABLE result_order (
    region_key TEXT NOT NULL,
    id UUID NOT NULL,
    order_id UUID NOT NULL,
    patient_id UUID NOT NULL,
    facility_id UUID NOT NULL REFERENCES facility (id),
    ordered_by UUID,
    item_code TEXT NOT NULL,
    -- 'reused' | 'repeated' | 'performed'
    outcome TEXT NOT NULL,
    result_id UUID,
    repeat_reason TEXT,
    price_fen BIGINT NOT NULL,
    ordered_at BIGINT NOT NULL,
    month TEXT NOT NULL,
    PRIMARY KEY (region_key, id)
);
CREATE INDEX result_order_ledger ON result_order (month, facility_id, outcome);
CREATE INDEX result_order_by_patient ON result_order (patient_id, ordered_at);
