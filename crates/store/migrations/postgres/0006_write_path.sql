-- 0006_write_path (issues 6 and 4, throughput). Nothing changes in the PostgreSQL schema:
-- its unique keys keep the region (the distribution key) in front, with a second index by
-- facility and number for the look-ups, so the schema can move to a distributed PostgreSQL
-- (SQLite's 0006 merges that pair and rekeys the accumulators). The PostgreSQL side of
-- this step is in the code: a settlement runs at READ COMMITTED and locks the person's
-- accumulator row (`SELECT … FOR UPDATE`, the row inserted first when missing), so
-- concurrent settlements of one person queue on that row instead of failing SERIALIZABLE
-- and being retried (queries_settlement.rs).
SELECT 1;
