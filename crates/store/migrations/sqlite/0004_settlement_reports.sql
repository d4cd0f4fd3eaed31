-- Issue 6 reports (fund by month, tier and facility; out-of-county outflow; cross-province
-- clearing): a covering index of the settlements in force by service date, so a month's or
-- a year's report reads this index (about 80 bytes a settlement) instead of every
-- settlement row with its claim and explanation (about 1.5 KB). The reports' SQL names
-- `status = 'settled'` literally so the planner can use it.
CREATE INDEX settlement_report ON settlement
    (service_date, facility_id, tier, region_key, insured_region, total_fen, fund_fen, patient_fen)
    WHERE status = 'settled';
