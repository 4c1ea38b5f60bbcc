-- Undo 0013. The logic of this release writes notes: after rolling this back, apply the
-- previous release's logic (`PGCTI_LOGIC=<previous release>/db/logic pgcti migrate`).

SET LOCAL ROLE cti_owner;

DROP VIEW IF EXISTS cti.event_outcome;
ALTER TABLE cti.event_note RENAME TO event_outcome;
ALTER TABLE cti.event_outcome RENAME CONSTRAINT event_note_pkey TO event_outcome_pkey;
ALTER TABLE cti.event_outcome RENAME CONSTRAINT event_note_raw_event_id_fkey TO event_outcome_raw_event_id_fkey;
ALTER TABLE cti.event_outcome RENAME CONSTRAINT event_note_status_check TO event_outcome_status_check;
INSERT INTO cti.event_outcome (raw_event_id, status)
SELECT r.id, 'processed' FROM cti.raw_event r
 WHERE NOT EXISTS (SELECT FROM cti.event_outcome o WHERE o.raw_event_id = r.id);
CREATE INDEX event_outcome_not_processed ON cti.event_outcome (status) WHERE status <> 'processed';
COMMENT ON TABLE cti.event_outcome IS 'Processing result beside each raw event: processed, ignored (with why) or failed (with the error)';
