-- Issue 8: reform indicator counters, per facility × month (Asia/Shanghai, 'YYYY-MM') × the
-- patients' home county (GB/T 2260 region_key). Updated in the transaction of each event
-- (encounter, settlement and reversal, referral, result reused; queries_indicators.rs), so a
-- scorecard sums these rows and never scans events. A small table (a county-year is a few
-- thousand rows). No foreign key: every event that writes here already names a known facility.
CREATE TABLE indicator_counter (
    facility_id UUID NOT NULL,
    month TEXT NOT NULL,
    home_region TEXT NOT NULL,
    visits BIGINT NOT NULL,
    visit_cost_fen BIGINT NOT NULL,
    stays BIGINT NOT NULL,
    stay_cost_fen BIGINT NOT NULL,
    fund_fen BIGINT NOT NULL,
    settled_fen BIGINT NOT NULL,
    drug_fen BIGINT NOT NULL,
    up_referrals BIGINT NOT NULL,
    down_referrals BIGINT NOT NULL,
    results_reused BIGINT NOT NULL,
    results_saved_fen BIGINT NOT NULL,
    PRIMARY KEY (facility_id, month, home_region)
);
-- residents treated anywhere: a county's rows by home county and month
CREATE INDEX indicator_counter_by_home ON indicator_counter (home_region, month);
