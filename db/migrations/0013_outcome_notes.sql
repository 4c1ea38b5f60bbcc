-- A frame that was processed cleanly gets no outcome row: outcomes become notes.
-- depends: 0012_call_aliases

-- Why: every stored frame is processed in the transaction that stores it, so a frame with
-- no note was processed, with nothing to say. Writing a row for each anyway cost a lone
-- frame 6-16% of its processing time (docs/performance.md). cti.event_outcome stays, as a
-- view over the raw log (db/logic/65_processing.sql) with the same columns: one row per
-- frame, `processed` where there is no note, and processed_at NULL there (processed as it
-- was stored).

SET LOCAL ROLE cti_owner;

ALTER TABLE cti.event_outcome RENAME TO event_note;
ALTER TABLE cti.event_note RENAME CONSTRAINT event_outcome_pkey TO event_note_pkey;
ALTER TABLE cti.event_note RENAME CONSTRAINT event_outcome_raw_event_id_fkey TO event_note_raw_event_id_fkey;
ALTER TABLE cti.event_note RENAME CONSTRAINT event_outcome_status_check TO event_note_status_check;
DROP INDEX cti.event_outcome_not_processed;  -- every note is one now
DELETE FROM cti.event_note WHERE status = 'processed' AND detail IS NULL;
COMMENT ON TABLE cti.event_note IS 'What processing had to say about a raw event: ignored (with why), failed (with the error), or processed with a detail; a clean frame has none (read cti.event_outcome)';
