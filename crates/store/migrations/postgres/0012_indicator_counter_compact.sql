-- Issue 8: room on each page of the indicator counters for the new version of a row, so
-- the hooks' upserts are HOT updates (no new entry in either index, less WAL per event).
-- Applies to pages written from now on (a rebuild rewrites them all).
ALTER TABLE indicator_counter SET (fillfactor = 50);
