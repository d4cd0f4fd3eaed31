-- Issue 8: the counter key gains `shard` (PostgreSQL spreads a hot cell over several rows so
-- concurrent writers do not queue on one row lock until the WAL flush; see the PostgreSQL
-- migration). SQLite has one writer at a time, so there is nothing to spread: its hooks always
-- write shard 0 and a cell stays one row. The column is here so both backends run the same
-- SQL (the upsert's conflict target names it; reads sum over shards). WITHOUT ROWID, keyed as
-- the upsert, as in 0012.
CREATE TABLE indicator_counter_sharded (
    facility_id BLOB NOT NULL,
    month TEXT NOT NULL,
    home_region TEXT NOT NULL,
    shard INTEGER NOT NULL DEFAULT 0,
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
    PRIMARY KEY (facility_id, month, home_region, shard)
) WITHOUT ROWID;
INSERT INTO indicator_counter_sharded (facility_id, month, home_region, shard, visits, visit_cost_fen, stays,
    stay_cost_fen, fund_fen, settled_fen, drug_fen, up_referrals, down_referrals, results_reused, results_saved_fen)
SELECT facility_id, month, home_region, 0, visits, visit_cost_fen, stays, stay_cost_fen, fund_fen, settled_fen,
    drug_fen, up_referrals, down_referrals, results_reused, results_saved_fen
FROM indicator_counter;
DROP TABLE indicator_counter;
ALTER TABLE indicator_counter_sharded RENAME TO indicator_counter;
-- residents treated anywhere: a county's rows by home county and month
CREATE INDEX indicator_counter_by_home ON indicator_counter (home_region, month);
