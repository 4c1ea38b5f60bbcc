-- API 2.0's open legs found by their caller, not walked by time.
-- depends: 0017_onlinepbx2_lookups

-- Why: a new leg of API 2.0 (which names no call) joins the call of the newest open leg of
-- the same caller in the last minutes. The index of 0017 found open legs by time only, so
-- each lookup read every leg under way in that window, of every caller: at the benchmark's
-- 118 calls a second, the correlation was a fifth of a frame's processing and the pipeline
-- slowed as legs stayed open. Keyed by the caller as well, a lookup reads that caller's
-- legs: 1.29x the frames per second (docs/performance.md). coalesce(): an anonymous caller
-- (NULL) matches another anonymous one, as before; a caller is never '' (normalize_phone).
-- The index is built inside the migration's transaction (not CONCURRENTLY): writes to
-- cti.call_leg wait while it reads the table once; the ingester spools meanwhile.

SET LOCAL ROLE cti_owner;

CREATE INDEX call_leg_open_by_caller ON cti.call_leg (source, coalesce(caller, ''), created_at)
    WHERE ended_at IS NULL;
DROP INDEX cti.call_leg_open;
