-- 0006_write_path (issues 6 and 4, throughput): fewer B-trees written per settlement.
--
-- The accumulators keyed by what reads them: (patient_id, year, region_key) as the primary
-- key of a WITHOUT ROWID table. Before, a new person-year went into three B-trees with
-- random keys (the rowid table, its (region_key, patient_id, year) key and the by-patient
-- index): two random pages per settlement fewer in each COMMIT. The upsert's conflict
-- target (region_key, patient_id, year) names the key's columns in another order, which
-- SQLite accepts; the transaction's look-up by all three and the read by (patient_id, year)
-- are prefixes of the key.
CREATE TABLE insurance_accumulator_0006 (
    region_key TEXT NOT NULL,
    patient_id BLOB NOT NULL,
    year INTEGER NOT NULL,
    inpatient_fund_paid_fen INTEGER NOT NULL,
    outpatient_fund_paid_fen INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (patient_id, year, region_key)
) WITHOUT ROWID;
INSERT INTO insurance_accumulator_0006
    (region_key, patient_id, year, inpatient_fund_paid_fen, outpatient_fund_paid_fen, updated_at)
    SELECT region_key, patient_id, year, inpatient_fund_paid_fen, outpatient_fund_paid_fen, updated_at
    FROM insurance_accumulator;
DROP TABLE insurance_accumulator;
ALTER TABLE insurance_accumulator_0006 RENAME TO insurance_accumulator;

-- One transaction-number key instead of two: on a single node the unique key does not need
-- the region (the distribution key) in front, so (facility_id, txn_no) is both the
-- uniqueness check and the idempotency look-up (`by_txn`), which read the number by
-- facility alone before. Settling already refused a number used at the facility for any
-- region. PostgreSQL keeps its pair (see its 0006).
DROP INDEX settlement_by_txn;
DROP INDEX settlement_txn;
CREATE UNIQUE INDEX settlement_txn ON settlement (facility_id, txn_no);
