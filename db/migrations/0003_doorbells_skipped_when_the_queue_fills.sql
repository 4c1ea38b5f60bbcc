-- Skip the NOTIFY doorbell when PostgreSQL's notification queue fills up, and count it.
-- depends: 0002_acks_apart_from_numbering

-- Why: a doorbell is a hint (clients also pull on a timer), but a full NOTIFY queue (a
-- listener that never reads holds it) fails the COMMIT of whatever notified, so every
-- INSERT of raw events failed and the ingester spooled and stalled. Now enqueue_all()
-- leaves the doorbell out above cti.config.doorbell_max_queue_usage and records it here.

SET LOCAL ROLE cti_owner;

ALTER TABLE cti.config
    ADD COLUMN doorbell_max_queue_usage real NOT NULL DEFAULT 0.5
        CHECK (doorbell_max_queue_usage > 0 AND doorbell_max_queue_usage < 1);

-- Append-only (no row that every writer updates): one row per transaction that skipped.
CREATE TABLE cti.doorbell_skip (
    skipped_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    doorbells int NOT NULL,
    queue_usage real NOT NULL
);
COMMENT ON TABLE cti.doorbell_skip IS 'Doorbells left out because the NOTIFY queue was fuller than cti.config.doorbell_max_queue_usage; the commands themselves are in cti.outbox';
