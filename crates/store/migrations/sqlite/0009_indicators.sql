-- Issue 8: reform indicator counters, per facility × month (Asia/Shanghai, 'YYYY-MM') × the
-- patients' home county (GB/T 2260 region_key). Updated in the transaction of each event
-- (encounter, settlement and reversal, referral, result reused; queries_indicators.rs), so a
-- scorecard sums these rows and never scans events. A small table (a county-year is a few
-- thousand rows). No foreign key: every event that writes here already names a known facility.
CREATE TABLE indicator_counter (
    facility_id BLOB NOT NULL,
    month TEXT NOT NULL,
    home_region TEXT NOT NULL,
    visits INTEGER NOT NULL,
    visit_cost_fen INTEGER NOT NULL,
    stays INTEGER NOT NULL,
    stay_cost_fen INTEGER NOT NULL,
    fund_fen INTEGER NOT NULL,
    settled_fen INTEGER NOT NULL,
    drug_fen INTEGER NOT NULL,
    up_referrals INTEGER NOT NULL,
    down_referrals INTEGER NOT NULL,
    results_reused INTEGER NOT NULL,
    results_saved_fen INTEGER NOT NULL,
    PRIMARY KEY (facility_id, month, home_region)
);
-- residents treated anywhere: a county's rows by home county and month
CREATE INDEX indicator_counter_by_home ON indicator_counter (home_region, month);
