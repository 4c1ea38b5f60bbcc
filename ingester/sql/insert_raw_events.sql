-- The ingester's only statement: one batch of frames, in order, as one INSERT (one statement
-- instead of one per frame: measured about 1.4x faster). A replayed frame hits the dedup index
-- and is skipped. Needs only INSERT on the three columns.
INSERT INTO cti.raw_event (source, received_at, body)
SELECT * FROM unnest(%(sources)s::text[], %(received)s::timestamptz[], %(bodies)s::text[])
ON CONFLICT DO NOTHING
