-- Issue 8 / issue 6: the indicator counters sharded. Every settlement (and encounter) of one
-- facility in one month added to the same row, whose lock PostgreSQL holds until the COMMIT's
-- WAL flush: those writers committed one per flush (pgbench: 208 settlements/s with the
-- upsert, 408 without). A counter cell (facility, month, home county) is now kept in up to N
-- rows, `shard` 0..N-1; each event's hook adds to the lowest shard no other transaction holds
-- (FOR UPDATE SKIP LOCKED; a new shard only when all are held; queries_indicators.rs), so
-- concurrent writers of one cell rarely wait on one row lock.
-- Every read sums over the shards; a rebuild writes shard 0 only. Existing rows become shard 0.
ALTER TABLE indicator_counter ADD COLUMN shard INTEGER NOT NULL DEFAULT 0;
ALTER TABLE indicator_counter DROP CONSTRAINT indicator_counter_pkey;
ALTER TABLE indicator_counter ADD CONSTRAINT indicator_counter_pkey PRIMARY KEY (facility_id, month, home_region, shard);
-- A small table whose rows every event updates: vacuum it after a few thousand dead versions
-- (not 20% of the table), so a scorecard's scan does not walk dead row versions.
ALTER TABLE indicator_counter SET (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 5000,
    autovacuum_analyze_scale_factor = 0, autovacuum_analyze_threshold = 5000);
