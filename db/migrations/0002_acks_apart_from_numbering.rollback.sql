-- Undo 0002: the acknowledged positions go back into cti.stream.
-- The logic of this release reads cti.stream_ack: after rolling this back, apply the
-- previous release's logic (`PGCTI_LOGIC=<previous release>/db/logic pgcti migrate`).

SET LOCAL ROLE cti_owner;

ALTER TABLE cti.stream ADD COLUMN acked_seq bigint NOT NULL DEFAULT 0, ADD COLUMN acked_at timestamptz;
UPDATE cti.stream s SET acked_seq = a.acked_seq, acked_at = a.acked_at
  FROM cti.stream_ack a WHERE a.target_kind = s.target_kind AND a.target_id = s.target_id;
DROP TABLE cti.stream_ack;
