-- Keep what a client acknowledged apart from the row that numbers its stream's items.
-- depends: 0001_baseline

-- Why: cti.enqueue_all() takes each stream row's lock to number new items, and ack used to
-- UPDATE the same row. A client that acked inside a transaction it left open (a client
-- that forgets autocommit does it by accident) held that lock, and every INSERT of a call
-- for any desk waited behind it. Now the writer never touches what a client writes.

SET LOCAL ROLE cti_owner;

-- One row per stream a client has acknowledged, written only by cti.ack().
CREATE TABLE cti.stream_ack (
    target_kind text NOT NULL CHECK (target_kind IN ('ws', 'emp')),
    target_id bigint NOT NULL,
    acked_seq bigint NOT NULL DEFAULT 0,
    acked_at timestamptz,
    PRIMARY KEY (target_kind, target_id)
);
COMMENT ON TABLE cti.stream_ack IS 'How far each client stream is acknowledged; apart from cti.stream so that acking never blocks numbering';

INSERT INTO cti.stream_ack (target_kind, target_id, acked_seq, acked_at)
SELECT target_kind, target_id, acked_seq, acked_at FROM cti.stream WHERE acked_seq > 0 OR acked_at IS NOT NULL;

ALTER TABLE cti.stream DROP COLUMN acked_seq, DROP COLUMN acked_at;
