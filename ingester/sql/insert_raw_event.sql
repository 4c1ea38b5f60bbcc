-- The ingester's only statement. A replayed frame hits the dedup index and is skipped.
INSERT INTO cti.raw_event (source, received_at, body)
VALUES (%(source)s, %(received_at)s, %(body)s)
ON CONFLICT DO NOTHING
