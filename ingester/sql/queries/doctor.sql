-- `pgcti doctor`: one check of an installation each.
-- Named statements of the Python edge (ingester/queries.py loads every file here); `{}`
-- marks an identifier psycopg.sql fills in. No business rule: those are in db/logic.

-- name: doctor_server
SELECT current_setting('server_version'), current_database(), current_user;

-- name: doctor_logins
-- Per group: the logins that can work in this database, and what is wrong with the others.
WITH ingesters AS (
    SELECT u.rolname, u.rolcanlogin, il.login IS NOT NULL AS registered
      FROM pg_auth_members m JOIN pg_roles u ON u.oid = m.member
      LEFT JOIN cti.ingester_login il ON il.login = u.rolname
     WHERE m.roleid = 'cti_ingester'::regrole
), clients AS (
    SELECT cl.login, r.oid IS NOT NULL AS exists,
           r.oid IS NOT NULL AND pg_has_role(r.oid, 'cti_client', 'MEMBER') AS member
      FROM cti.client_login cl LEFT JOIN pg_roles r ON r.rolname = cl.login
)
SELECT 'ingester', count(*) FILTER (WHERE rolcanlogin AND registered),
       concat_ws('; ',
           nullif(string_agg(rolname, ', ') FILTER (WHERE rolcanlogin AND NOT registered), '')
               || ' not registered here (INSERT INTO cti.ingester_login)')
  FROM ingesters
UNION ALL
SELECT 'client', count(*) FILTER (WHERE member),
       concat_ws('; ',
           nullif(string_agg(login, ', ') FILTER (WHERE NOT exists), '') || ' bound but no such login',
           nullif(string_agg(login, ', ') FILTER (WHERE exists AND NOT member), '') || ' not members of cti_client')
  FROM clients;

-- name: doctor_placeholder_adapters
SELECT p.proname FROM pg_proc p
 WHERE p.pronamespace = 'cti'::regnamespace AND p.proname LIKE 'crm\_%'
   AND p.prosrc LIKE '%pgcti placeholder%'
 ORDER BY 1;

-- name: doctor_sample_number
-- A number to try the lookup with: the last external caller, else one from the directory.
SELECT coalesce(
    (SELECT external_number FROM cti.call WHERE external_number IS NOT NULL ORDER BY id DESC LIMIT 1),
    (SELECT e164 FROM cti.phone_directory LIMIT 1),
    '+70000000000');

-- name: doctor_lookup
SELECT client_id, client_name FROM cti.crm_lookup(%s);

-- name: doctor_lookup_plan
-- The lookup run under EXPLAIN ANALYZE: its "Execution Time" is the server's own.
EXPLAIN (ANALYZE, TIMING OFF, FORMAT JSON) SELECT count(*) FROM cti.crm_lookup(%s);

-- name: doctor_adapters_planned_per_call
-- Row-returning adapters PostgreSQL before 18 plans on every call: LANGUAGE sql with SET
-- clauses is never inlined, and keeps no plan (docs/adapters.md).
SELECT p.proname FROM pg_proc p
 WHERE p.pronamespace = 'cti'::regnamespace
   AND p.proname IN ('crm_lookup', 'crm_ring_recipients', 'crm_deals')
   AND p.prolang = (SELECT oid FROM pg_language WHERE lanname = 'sql')
   AND p.proconfig IS NOT NULL AND p.prosqlbody IS NULL
   AND current_setting('server_version_num')::int < 180000
 ORDER BY 1;

-- name: doctor_recipients
SELECT count(*) FROM cti.crm_ring_recipients(NULL);

-- name: doctor_callbacks
-- Open callback tasks: how many, how many past due, how many the policy gave nobody.
SELECT count(*), count(*) FILTER (WHERE t.due_at < now()), count(*) FILTER (WHERE t.owner_id IS NULL),
       (SELECT array_to_string(c.callback_owner_policy, ',') FROM cti.config c)
  FROM cti.callback_task t WHERE t.closed_at IS NULL;

-- name: doctor_last_frames
-- How long ago an ingester's tick (every 60 s while it runs) and a PBX's frame were stored:
-- the newest of each among the last 200,000 frames (more than 3 minutes at 1,000 a second),
-- read backwards through the raw log's key, so a log of any size answers at once.
WITH recent AS MATERIALIZED (
    SELECT r.id, r.source, r.received_at FROM cti.raw_event r ORDER BY r.id DESC LIMIT 200000
)
SELECT extract(epoch FROM now() - (SELECT received_at FROM recent WHERE source = 'pgcti'
                                    ORDER BY id DESC LIMIT 1)),
       extract(epoch FROM now() - (SELECT received_at FROM recent WHERE source <> 'pgcti'
                                    ORDER BY id DESC LIMIT 1));

-- name: doctor_outbox
-- The outbox's size (the planner's estimate: no count over a big table), how long
-- acknowledged items are kept, and the streams whose oldest unacknowledged item is older
-- than that: no client has acknowledged them for that long, and they are kept until one does.
SELECT (SELECT greatest(c.reltuples, 0)::bigint FROM pg_class c WHERE c.oid = 'cti.outbox'::regclass),
       (SELECT g.outbox_keep::text FROM cti.config g),
       ARRAY(SELECT s.target_kind || ' ' || s.target_id
               FROM cti.stream s
               LEFT JOIN cti.stream_ack a ON a.target_kind = s.target_kind AND a.target_id = s.target_id
              WHERE (SELECT o.created_at FROM cti.outbox o
                      WHERE o.target_kind = s.target_kind AND o.target_id = s.target_id
                        AND o.seq > coalesce(a.acked_seq, 0)
                      ORDER BY o.seq LIMIT 1)
                    < now() - coalesce((SELECT g.outbox_keep FROM cti.config g), interval '30 days')
              ORDER BY s.target_kind DESC, s.target_id);
