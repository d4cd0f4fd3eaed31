-- Issue 8: the indicator counters as a WITHOUT ROWID table, keyed exactly as the hooks'
-- upsert (facility, month, home county). A counter update then finds and rewrites its row
-- in one B-tree (before: the primary-key index, then the table by rowid), so each event's
-- transaction dirties one more page instead of two (the write-ahead log holds every page a
-- transaction dirties; each costs two writes at commit and one at checkpoint).
CREATE TABLE indicator_counter_compact (
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
) WITHOUT ROWID;
INSERT INTO indicator_counter_compact (facility_id, month, home_region, visits, visit_cost_fen, stays,
    stay_cost_fen, fund_fen, settled_fen, drug_fen, up_referrals, down_referrals, results_reused, results_saved_fen)
SELECT facility_id, month, home_region, visits, visit_cost_fen, stays, stay_cost_fen, fund_fen, settled_fen,
    drug_fen, up_referrals, down_referrals, results_reused, results_saved_fen
FROM indicator_counter;
DROP TABLE indicator_counter;
ALTER TABLE indicator_counter_compact RENAME TO indicator_counter;
-- residents treated anywhere: a county's rows by home county and month
CREATE INDEX indicator_counter_by_home ON indicator_counter (home_region, month);
