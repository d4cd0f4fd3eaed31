-- Issue 6: insurance settlements and the per-person, per-year accumulators they update.
-- Both are patient-owned: region_key first in the key. A settlement and its accumulator
-- change are written in one transaction (see queries_settlement.rs).

CREATE TABLE settlement (
    region_key TEXT NOT NULL,
    id BLOB NOT NULL,
    facility_id BLOB NOT NULL REFERENCES facility (id),
    -- the caller's transaction number: a repeated request with it returns the first result
    txn_no TEXT NOT NULL,
    patient_id BLOB NOT NULL,
    encounter_id BLOB,
    -- what was adjudicated, for reports without parsing the claim
    scheme TEXT NOT NULL,
    insured_region TEXT NOT NULL,
    setting TEXT NOT NULL,
    tier TEXT NOT NULL,
    service_date TEXT NOT NULL,
    -- the accumulator year (of service_date)
    year INTEGER NOT NULL,
    -- the claim as adjudicated (JSON, with the accumulators read in the transaction)
    claim TEXT NOT NULL,
    -- the split, every part in fen
    total_fen INTEGER NOT NULL,
    fund_fen INTEGER NOT NULL,
    patient_fen INTEGER NOT NULL,
    self_pay_fen INTEGER NOT NULL,
    class_b_share_fen INTEGER NOT NULL,
    deductible_fen INTEGER NOT NULL,
    coinsurance_fen INTEGER NOT NULL,
    above_ceiling_fen INTEGER NOT NULL,
    rate_bp INTEGER NOT NULL,
    policy TEXT NOT NULL,
    -- the rules applied (JSON array of steps) and the accumulators after the bill (JSON)
    explanation TEXT NOT NULL,
    accumulators_after TEXT NOT NULL,
    -- 'settled' | 'reversed'
    status TEXT NOT NULL,
    reversal_txn_no TEXT,
    reversed_at INTEGER,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (region_key, id)
);
CREATE INDEX settlement_by_id ON settlement (id);
CREATE UNIQUE INDEX settlement_txn ON settlement (region_key, facility_id, txn_no);
-- idempotency look-ups name the facility and the number, not the region
CREATE INDEX settlement_by_txn ON settlement (facility_id, txn_no);
-- a reversal's own transaction number is used once per facility
CREATE UNIQUE INDEX settlement_reversal_txn ON settlement (region_key, facility_id, reversal_txn_no)
    WHERE reversal_txn_no IS NOT NULL;
CREATE INDEX settlement_by_reversal_txn ON settlement (facility_id, reversal_txn_no)
    WHERE reversal_txn_no IS NOT NULL;
-- an encounter has at most one settlement in force
CREATE UNIQUE INDEX settlement_encounter_settled ON settlement (region_key, encounter_id)
    WHERE status = 'settled' AND encounter_id IS NOT NULL;
-- the daily journal of a facility and a patient's settlements, newest first
CREATE INDEX settlement_journal ON settlement (facility_id, created_at, id);
CREATE INDEX settlement_by_patient ON settlement (patient_id, created_at, id);
CREATE INDEX settlement_recent ON settlement (created_at, id);

-- fund paid per insured person and year: inpatient toward the annual ceiling, outpatient
-- toward the outpatient pool cap; always the sum of the fund of the person's settlements
-- of that year in status 'settled'
CREATE TABLE insurance_accumulator (
    region_key TEXT NOT NULL,
    patient_id BLOB NOT NULL,
    year INTEGER NOT NULL,
    inpatient_fund_paid_fen INTEGER NOT NULL,
    outpatient_fund_paid_fen INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (region_key, patient_id, year)
);
CREATE INDEX insurance_accumulator_by_patient ON insurance_accumulator (patient_id, year);
