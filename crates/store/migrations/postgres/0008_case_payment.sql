-- Issue 9: case-based payment. What grouping needs of a stay beyond its encounter, the DIP
-- catalogue and the year's settlement of a region (packets, each stay's DIP and DRG result with
-- its explanation, each hospital's position), and the community's yearly global budget.
-- A region-year is replaced as a whole in one transaction (queries_case_payment.rs).

-- Patient-owned (region_key first): one row per inpatient encounter that has more to say.
CREATE TABLE stay_detail (
    region_key TEXT NOT NULL,
    encounter_id UUID NOT NULL,
    -- birth weight in grams, for newborn stays
    newborn_weight_g BIGINT,
    -- discharge status (离院方式): routine, transfer, transfer_community, against_advice, died, other
    discharge_status TEXT NOT NULL,
    PRIMARY KEY (region_key, encounter_id)
);

-- The settlement of a region-year: the catalogue's and the point value's figures.
CREATE TABLE case_payment_year (
    region_code TEXT NOT NULL,
    year BIGINT NOT NULL,
    terms TEXT NOT NULL,
    scheme TEXT NOT NULL,
    total_cases BIGINT NOT NULL,
    mean_cost_fen BIGINT NOT NULL,
    packets BIGINT NOT NULL,
    core_packets BIGINT NOT NULL,
    stays BIGINT NOT NULL,
    fund_available_fen BIGINT NOT NULL,
    reimbursement_ratio_bp BIGINT NOT NULL,
    total_points_e4 BIGINT NOT NULL,
    fen_per_point_e4 BIGINT NOT NULL,
    built_by UUID,
    built_at BIGINT NOT NULL,
    PRIMARY KEY (region_code, year)
);

CREATE TABLE dip_packet (
    region_code TEXT NOT NULL,
    year BIGINT NOT NULL,
    -- 'core' | 'comprehensive'; code = diagnosis (core) or diagnosis group; detail = procedure
    -- combination (core) or treatment kind
    class TEXT NOT NULL,
    code TEXT NOT NULL,
    detail TEXT NOT NULL,
    cases BIGINT NOT NULL,
    weight_sum BIGINT NOT NULL,
    -- an i128 in decimal text
    weighted_cost_fen TEXT NOT NULL,
    mean_cost_fen BIGINT NOT NULL,
    score_e4 BIGINT NOT NULL,
    PRIMARY KEY (region_code, year, class, code, detail)
);

-- One stay's result: patient-owned, keyed like its encounter.
CREATE TABLE case_stay_result (
    region_key TEXT NOT NULL,
    encounter_id UUID NOT NULL,
    region_code TEXT NOT NULL,
    year BIGINT NOT NULL,
    facility_id UUID NOT NULL,
    cost_fen BIGINT NOT NULL,
    -- the StayResult as JSON (DIP score with its explanation, DRG group with its trace)
    result TEXT NOT NULL,
    PRIMARY KEY (region_key, encounter_id)
);
CREATE INDEX case_stay_result_by_year ON case_stay_result (region_code, year, facility_id);
CREATE INDEX case_stay_result_by_encounter ON case_stay_result (encounter_id);

CREATE TABLE case_hospital_position (
    region_code TEXT NOT NULL,
    year BIGINT NOT NULL,
    facility_id UUID NOT NULL,
    -- the HospitalPosition as JSON
    position TEXT NOT NULL,
    payment_fen BIGINT NOT NULL,
    PRIMARY KEY (region_code, year, facility_id)
);

CREATE TABLE community_budget (
    community_id UUID NOT NULL REFERENCES community (id),
    year BIGINT NOT NULL,
    budget_fen BIGINT NOT NULL,
    savings_retained_bp BIGINT NOT NULL,
    overspend_borne_bp BIGINT NOT NULL,
    closed BOOLEAN NOT NULL,
    updated_by UUID,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (community_id, year)
);
