-- The raw log's dedup key becomes the SHA-256 itself (bytea), not its hex text.
-- depends: 0010_callbacks_tracked_after_rounds

-- Why: frames are now parsed and keyed in the ingester's INSERT, set-based
-- (cti.ingest_frames_v1, db/logic/30_raw_log.sql), not by a row trigger; a 32-byte key is
-- half the index of a 64-character one, and compares faster. The same keys as before,
-- decoded, so a frame stored before this migration is still a duplicate of its replay.
-- The table and its dedup index are rewritten under an exclusive lock: on a raw log of
-- millions of frames that takes a while, and ingestion waits (its spool keeps the frames).

SET LOCAL ROLE cti_owner;

ALTER TABLE cti.raw_event ALTER COLUMN dedup_key TYPE bytea USING decode(dedup_key, 'hex');
