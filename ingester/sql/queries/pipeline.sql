-- The raw log the ingester writes, and a rebuild from it.
-- Named statements of the Python edge (ingester/queries.py loads every file here); `{}`
-- marks an identifier psycopg.sql fills in. No business rule: those are in db/logic.

-- name: insert_raw_events
-- The ingester's only statement: one batch of frames, in order, as one call (one statement
-- instead of one per frame: measured about 1.4x faster). The function parses and keys the
-- frames in its INSERT's query; a replayed frame hits the dedup index and is skipped. The
-- arrays go in binary format: as text, psycopg spent 58-87 us per frame quoting them, ten
-- times what the server spends.
SELECT cti.ingest_frames_v1(%(sources)b::text[], %(received)b::timestamptz[], %(bodies)b::text[]);

-- name: rebuild
SELECT * FROM cti.rebuild();

-- name: claim_dial_requests
-- Click-to-call: waiting requests, marked sent by this edge and committed before it sends
-- any of them (autocommit: the statement's own transaction).
SELECT request_id, extension, number, display_name FROM cti.dial_claim_v1(%(edge)s, %(limit)s);
