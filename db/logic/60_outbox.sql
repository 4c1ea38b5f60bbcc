-- The outbox: numbering commands per target and ringing the doorbell.
--
-- Rules:
-- - Every command and notification is a row in cti.outbox, in a stream per target (a
--   workstation's card commands, an employee's ring notifications), numbered 1, 2, 3...
-- - A target's last_seq is taken under its stream row's lock, held to commit, so numbers
--   become visible in order and without holes: a client that has seen N has seen all up to N.
-- - The NOTIFY is a doorbell: type, seq and call id only, never a name or a number (any
--   login can LISTEN on any channel). Clients pull the content through the API (70_client_api.sql),
--   so a forged NOTIFY only makes a client pull, and finds nothing new.
-- - A channel name cannot be guessed: it ends with a part derived from a secret key that
--   only cti_owner reads; a client learns its own from cti.whoami_v1().
-- - A doorbell is a hint (clients also pull on a timer), so it never fails ingestion: when
--   PostgreSQL's NOTIFY queue would be fuller than cti.config.doorbell_max_queue_usage with
--   this transaction's doorbells in it (a listener that never reads holds the queue), the
--   doorbells are left out, counted in
--   cti.doorbell_skip and reported as a WARNING (SQLSTATE CTID1) that the ingester logs.
-- - There is one place that numbers commands and rings doorbells: cti.enqueue_all().
-- - An item stays while its client has not acknowledged it, however old. Acknowledged items
--   older than cti.config.outbox_keep are removed by the ingester's tick (cti.prune_outbox()),
--   a bounded number per stream each time, so the tick stays short; the calls themselves,
--   the contact history, are not touched.
-- plan_cache_mode is pinned for the reason given in 50_call_facts.sql.

-- A stream's LISTEN channel: readable kind and id, then 24 hex digits (96 bits) of
-- SHA-256 over the secret cti.channel_key and the stream, so no one can guess another
-- stream's channel. 63 bytes at most, PostgreSQL's limit for a channel name.
CREATE OR REPLACE FUNCTION cti.channel_name(p_kind text, p_id bigint) RETURNS text
LANGUAGE plpgsql STABLE  -- not sql: see 50_call_facts.sql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN (SELECT 'cti_' || p_kind || '_v1_' || p_id || '_'
                   || left(encode(sha256(k.key || convert_to(p_kind || ':' || p_id, 'UTF8')), 'hex'), 24)
              FROM cti.channel_key k);
END
$$;

COMMENT ON FUNCTION cti.channel_name(text, bigint) IS 'LISTEN channel of a stream: cti_ws_v1_<workstation id>_<secret part>, cti_emp_v1_<employee id>_<secret part>; clients get theirs from whoami_v1()';

-- A new key: every channel name changes. For a DBA after a leak; clients learn their new
-- channel from cti.whoami_v1() when they reconnect, and pull on their timer meanwhile.
CREATE OR REPLACE FUNCTION cti.rotate_channel_key() RETURNS timestamptz
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $$
    UPDATE cti.channel_key
       SET key = decode(replace(gen_random_uuid()::text || gen_random_uuid()::text, '-', ''), 'hex'),
           rotated_at = now()
    RETURNING rotated_at
$$;

-- Append commands to their targets' streams, in array order, and ring each doorbell.
-- Each target's last_seq is taken under its row lock (held to commit), so a client that
-- has seen N has seen everything up to N. The doorbell carries type and ids only.
CREATE OR REPLACE FUNCTION cti.enqueue_all(p_commands cti.command[]) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
SET plan_cache_mode = force_generic_plan  -- see the header
AS $$
DECLARE
    -- The queue's size: max_notify_queue_pages exists from PostgreSQL 17 (8 GB before).
    v_queue_bytes real := current_setting('max_notify_queue_pages', true)::real
                          * current_setting('block_size')::real;
    v_usage real;
    v_ring boolean;
    v_rung bigint;
BEGIN
    IF coalesce(cardinality(p_commands), 0) = 0 THEN
        RETURN;
    END IF;
    -- What the queue will hold once this transaction's doorbells (about 96 bytes each) are in.
    v_usage := pg_notification_queue_usage() + coalesce(cardinality(p_commands) * 96 / v_queue_bytes, 0);
    v_ring := v_usage <= (SELECT c.doorbell_max_queue_usage FROM cti.config c);
    WITH cmd AS (
        SELECT * FROM unnest(p_commands) WITH ORDINALITY AS u(target_kind, target_id, type, call_id, payload, n)
    ),
    per_target AS (
        SELECT target_kind, target_id, count(*) AS how_many FROM cmd GROUP BY 1, 2
    ),
    streams AS (
        INSERT INTO cti.stream AS s (target_kind, target_id, last_seq)
        SELECT target_kind, target_id, how_many FROM per_target ORDER BY 1, 2
        ON CONFLICT (target_kind, target_id) DO UPDATE SET last_seq = s.last_seq + EXCLUDED.last_seq
        RETURNING s.target_kind, s.target_id, s.last_seq
    ),
    numbered AS (
        SELECT c.*, st.last_seq - p.how_many
                    + row_number() OVER (PARTITION BY c.target_kind, c.target_id ORDER BY c.n) AS seq
          FROM cmd c
          JOIN per_target p USING (target_kind, target_id)
          JOIN streams st USING (target_kind, target_id)
    ),
    stored AS (
        INSERT INTO cti.outbox (target_kind, target_id, seq, type, call_id, payload)
        SELECT target_kind, target_id, seq, type, call_id, payload FROM numbered ORDER BY n
    )
    SELECT count(CASE WHEN v_ring THEN
                     pg_notify(cti.channel_name(target_kind, target_id),
                               json_build_object('type', type, 'seq', seq, 'call_id', call_id)::text)
                 END)
      INTO v_rung
      FROM (SELECT * FROM numbered ORDER BY n) x;
    IF NOT v_ring THEN
        INSERT INTO cti.doorbell_skip (doorbells, queue_usage) VALUES (cardinality(p_commands), v_usage);
        RAISE WARNING 'NOTIFY queue % %% full: % doorbell(s) skipped; clients get the commands on their next pull',
                      round(v_usage::numeric * 100), cardinality(p_commands)
            USING ERRCODE = 'CTID1', DETAIL = cardinality(p_commands)::text,
                  HINT = 'a LISTEN connection that never reads holds the queue: see pg_stat_activity';
    END IF;
END
$$;

COMMENT ON FUNCTION cti.enqueue_all(cti.command[]) IS 'Append commands to their targets'' streams in order and ring the doorbells (type, seq, call id only)';

-- Send commands in their order among the batch's frames.
CREATE OR REPLACE FUNCTION cti.send_commands(p_commands cti.keyed_command[]) RETURNS void
LANGUAGE plpgsql  -- not sql: see 50_call_facts.sql
SET search_path = pg_catalog, pg_temp
SET plan_cache_mode = force_generic_plan  -- see the header
AS $$
BEGIN
    PERFORM cti.enqueue_all(ARRAY(SELECT (k).command FROM unnest(p_commands) k
                                   ORDER BY (k).frame_key, (k).step, (k).sub));
END
$$;

-- Remove acknowledged items older than cti.config.outbox_keep, oldest first, at most
-- p_per_stream per stream (100 a minute is 144,000 a day, far more than a desk gets; an
-- outbox that grew for years before this shrinks over some ticks, each kept short); returns
-- how many. A stream's items are numbered in the order they
-- were made, so a stream whose first item is recent has nothing to remove and costs one
-- index probe. Called on the ingester's tick (65_processing.sql), live only: a rebuild
-- removes nothing.
CREATE OR REPLACE FUNCTION cti.prune_outbox(p_now timestamptz, p_per_stream int DEFAULT 100) RETURNS bigint
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
SET enable_seqscan = off  -- a few rows out of many: by key and ctid, never by reading the table
AS $$
    WITH cutoff AS (
        SELECT p_now - c.outbox_keep AS at FROM cti.config c WHERE c.outbox_keep IS NOT NULL
    ),
    due AS (  -- the acknowledged streams whose first item is old enough
        SELECT a.target_kind, a.target_id, a.acked_seq, k.at
          FROM cti.stream_ack a CROSS JOIN cutoff k
         WHERE (SELECT o.created_at FROM cti.outbox o
                 WHERE o.target_kind = a.target_kind AND o.target_id = a.target_id
                 ORDER BY o.seq LIMIT 1) < k.at
    ),
    gone AS (  -- each row found through the key, deleted by its ctid (no scan of the table)
        DELETE FROM cti.outbox o
         USING due d
         CROSS JOIN LATERAL (SELECT f.ctid AS row_at FROM cti.outbox f
                              WHERE f.target_kind = d.target_kind AND f.target_id = d.target_id
                                AND f.seq <= d.acked_seq
                              ORDER BY f.seq LIMIT p_per_stream) x
         WHERE o.ctid = x.row_at AND o.created_at < d.at
        RETURNING 1
    )
    SELECT count(*) FROM gone
$$;

COMMENT ON FUNCTION cti.prune_outbox(timestamptz, int) IS 'Remove acknowledged outbox items older than cti.config.outbox_keep (at most p_per_stream per stream); unacknowledged items stay';
