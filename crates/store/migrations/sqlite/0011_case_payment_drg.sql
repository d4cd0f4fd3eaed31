-- Issue 9: DRG payment of a region-year. The weight table computed from the history stays
-- (weight = DRG mean cost ÷ mean cost of all grouped history stays), and the year's base rate
-- and Σ weights. Each stay's DRG payment and each hospital's CMI and DRG payment are inside
-- the JSON of case_stay_result.result and case_hospital_position.position (0008).
ALTER TABLE case_payment_year ADD COLUMN drg_base_rate_fen INTEGER;
ALTER TABLE case_payment_year ADD COLUMN drg_weight_sum_e4 INTEGER NOT NULL DEFAULT 0;
ALTER TABLE case_payment_year ADD COLUMN drg_groups INTEGER NOT NULL DEFAULT 0;

CREATE TABLE drg_weight (
    region_code TEXT NOT NULL,
    year INTEGER NOT NULL,
    drg_code TEXT NOT NULL,
    -- historical cases, and those kept after trimming
    cases INTEGER NOT NULL,
    kept_cases INTEGER NOT NULL,
    -- Σ cost of the kept cases, an i128 in decimal text
    cost_fen TEXT NOT NULL,
    mean_cost_fen INTEGER NOT NULL,
    weight_e4 INTEGER NOT NULL,
    low_volume INTEGER NOT NULL,
    trim_skipped INTEGER NOT NULL,
    PRIMARY KEY (region_code, year, drg_code)
);
