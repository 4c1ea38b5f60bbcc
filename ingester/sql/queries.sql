-- Every statement the Python edge runs, by name (procrastinate's queries.sql pattern).
-- ingester/queries.py loads them; `{}` marks an identifier that psycopg.sql fills in.
-- Business rules are not here: they are in db/logic. These bind parameters and move rows.

-- name: insert_raw_events
-- The ingester's only statement: one batch of frames, in order, as one call (one statement
-- instead of one per frame: measured about 1.4x faster). The function parses and keys the
-- frames in its INSERT's query; a replayed frame hits the dedup index and is skipped. The
-- arrays go in binary format: as text, psycopg spent 58-87 us per frame quoting them, ten
-- times what the server spends.
SELECT cti.ingest_frames_v1(%(sources)b::text[], %(received)b::timestamptz[], %(bodies)b::text[]);

-- name: rebuild
SELECT * FROM cti.rebuild();

-- name: listen
LISTEN {};

-- name: whoami
-- A CRM client's streams and the channels to LISTEN on (raises for a login that is not one).
SELECT stream, channel FROM cti.whoami_v1() ORDER BY stream;

-- name: pull_commands
SELECT seq, type, call_id, payload, created_at FROM cti.pull_commands_v1();

-- name: pull_notifications
SELECT seq, type, call_id, payload, created_at FROM cti.pull_notifications_v1();

-- name: ack_commands
SELECT cti.ack_commands_v1(%s);

-- name: ack_notifications
SELECT cti.ack_notifications_v1(%s);

-- name: login_bound_to
-- `pgcti watch` run by a DBA: the client login bound to a workstation (by id, or by the
-- extension of its phone, through the CRM adapter) or to an employee.
SELECT cl.login FROM cti.client_login cl
 WHERE (%(ws)s::bigint IS NULL OR cl.workstation_id = %(ws)s::bigint)
   AND (%(ext)s::text IS NULL OR cl.workstation_id = cti.crm_workstation_for_extension(%(ext)s::text))
   AND (%(emp)s::bigint IS NULL OR cl.employee_id = %(emp)s::bigint)
 ORDER BY cl.login LIMIT 1;

-- name: reference_crm_installed
SELECT to_regclass('pgcti_refcrm.client_phone') IS NOT NULL;

-- name: directory_numbers
-- The simulator calls from the numbers of whatever CRM is attached to the phone directory.
SELECT DISTINCT e164 FROM cti.phone_directory ORDER BY e164 LIMIT 20000;

-- name: crm_numbers
-- The simulator calls from numbers as the reference CRM stores them (messy spellings).
SELECT raw FROM pgcti_refcrm.client_phone ORDER BY id LIMIT 20000;

-- name: crm_extensions
SELECT extension FROM pgcti_refcrm.employee WHERE extension IS NOT NULL ORDER BY extension;

-- name: logic_catalog
-- Every function, view and trigger in pgcti's schemas with its definition and comment:
-- what `pgcti migrate` compares before and after applying db/logic (and shows in --plan).
SELECT 'FUNCTION', p.oid::regprocedure::text,
       pg_get_functiondef(p.oid) || coalesce(E'\n-- comment: ' || obj_description(p.oid, 'pg_proc'), '')
  FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
 WHERE n.nspname = 'cti' AND p.prokind = 'f'
UNION ALL
SELECT 'VIEW', c.oid::regclass::text,
       pg_get_viewdef(c.oid, true) || coalesce(E'\n-- comment: ' || obj_description(c.oid, 'pg_class'), '')
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = 'cti' AND c.relkind = 'v'
UNION ALL
SELECT 'TRIGGER', t.tgrelid::regclass::text || '.' || t.tgname, pg_get_triggerdef(t.oid, true)
  FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = 'cti' AND NOT t.tgisinternal;

-- name: logic_recorded
SELECT name, checksum, functions FROM cti.logic_file;

-- name: logic_record
INSERT INTO cti.logic_file (name, checksum, functions, applied_at)
VALUES (%s, %s, %s, now())
ON CONFLICT (name) DO UPDATE SET checksum = EXCLUDED.checksum,
    functions = EXCLUDED.functions, applied_at = EXCLUDED.applied_at;

-- name: as_owner
-- pgcti's objects belong to cti_owner, whoever runs `pgcti migrate`.
SET LOCAL ROLE cti_owner;

-- name: as_myself
RESET ROLE;

-- name: bookkeeping_schema
CREATE SCHEMA IF NOT EXISTS {};

-- name: recompute_reference_crm_numbers
-- After an upgrade that changed cti.normalize_phone: the reference CRM's trigger recomputes.
UPDATE pgcti_refcrm.client_phone SET raw = raw;

-- name: yoyo_applied
-- The versioned migrations yoyo recorded as applied, by id and hash.
SELECT migration_id, migration_hash FROM pgcti_migrations._yoyo_migration;

-- name: yoyo_adopt
-- Replace yoyo's record of an older release's migrations by the baseline that folds them.
WITH gone AS (
    DELETE FROM pgcti_migrations._yoyo_migration WHERE migration_id = ANY(%(old_ids)s)
)
INSERT INTO pgcti_migrations._yoyo_migration (migration_hash, migration_id, applied_at_utc)
VALUES (%(hash)s, %(id)s, now() AT TIME ZONE 'UTC');

-- name: yoyo_mark
-- Record a versioned migration as applied, as yoyo does (the migration ran in our transaction).
WITH logged AS (
    INSERT INTO pgcti_migrations._yoyo_log
           (id, migration_hash, migration_id, operation, username, hostname, created_at_utc)
    VALUES (%(log_id)s, %(hash)s, %(id)s, 'apply', %(username)s, %(hostname)s, now() AT TIME ZONE 'UTC')
)
INSERT INTO pgcti_migrations._yoyo_migration (migration_hash, migration_id, applied_at_utc)
VALUES (%(hash)s, %(id)s, now() AT TIME ZONE 'UTC');

-- name: yoyo_unmark
-- Record a versioned migration as rolled back, as yoyo does (its rollback ran in our transaction).
WITH logged AS (
    INSERT INTO pgcti_migrations._yoyo_log
           (id, migration_hash, migration_id, operation, username, hostname, created_at_utc)
    VALUES (%(log_id)s, %(hash)s, %(id)s, 'rollback', %(username)s, %(hostname)s, now() AT TIME ZONE 'UTC')
)
DELETE FROM pgcti_migrations._yoyo_migration WHERE migration_hash = %(hash)s;

-- name: database_exists
SELECT 1 FROM pg_database WHERE datname = %s;

-- name: create_database
CREATE DATABASE {};

-- name: drop_database
DROP DATABASE IF EXISTS {} WITH (FORCE);

-- name: demo_targets
-- The demo observes every doorbell as a DBA may: each stream's LISTEN channel, named by
-- the database (cti.channel_name), for the workstations and every employee (rings go to
-- the recipients, callback tasks to whoever owns them); last, whether one gets rings.
SELECT 'ws' AS kind, id, name, cti.channel_name('ws', id), false FROM pgcti_refcrm.workstation
UNION ALL
SELECT 'emp', e.id, e.surname, cti.channel_name('emp', e.id),
       e.id IN (SELECT r FROM cti.crm_ring_recipients(NULL) r)
  FROM pgcti_refcrm.employee e;

-- name: demo_high_water
-- Where the raw log and the calls stood before this run, so the summary counts this run only.
SELECT (SELECT coalesce(max(id), 0) FROM cti.raw_event), (SELECT coalesce(max(id), 0) FROM cti.call);

-- name: demo_after_history
-- What a DBA does after a bulk load: vacuum and analyze now, so that autovacuum does not
-- wake up on the month of history in the middle of the live calls (it did: doorbells
-- waited up to half a second while it ran and every session planned again).
VACUUM (ANALYZE);

-- name: demo_history_handled
-- The month's cards and rings were handled back then: each stream is acknowledged up to its
-- last item, as its client would have, so that a client started now does not catch up on
-- a month of past pops.
INSERT INTO cti.stream_ack AS a (target_kind, target_id, acked_seq, acked_at)
SELECT target_kind, target_id, last_seq, now() FROM cti.stream
    ON CONFLICT (target_kind, target_id) DO UPDATE SET acked_seq = greatest(a.acked_seq, EXCLUDED.acked_seq),
                                                       acked_at = EXCLUDED.acked_at;

-- name: demo_client_count
SELECT count(*) FROM pgcti_refcrm.client;

-- name: demo_call_keys
-- A call's ids as the PBX knows them: its call id and (2.0 has no call id) its legs.
SELECT c.pbx_call_id, array_agg(l.leg_uuid) FROM cti.call c
  LEFT JOIN cti.call_leg l ON l.call_id = c.id WHERE c.id = %s GROUP BY c.id;

-- name: demo_item
SELECT payload FROM cti.outbox WHERE target_kind = %s AND target_id = %s AND seq = %s;

-- name: demo_live_calls
SELECT id, direction, external_number, client_card ->> 'client_name', answered_by,
       holder_extension, routing_note
  FROM cti.call WHERE ended_at IS NULL AND started_at > now() - interval '10 minutes'
 ORDER BY id DESC;

-- name: demo_frames_since
-- PBX frames stored since the run began (not housekeeping ticks), and what became of them.
SELECT count(*), count(*) FILTER (WHERE o.status = 'failed'),
       count(*) FILTER (WHERE o.status = 'ignored')
  FROM cti.raw_event r LEFT JOIN cti.event_outcome o ON o.raw_event_id = r.id
 WHERE r.id > %s AND r.source <> 'pgcti';

-- name: demo_outcomes_since
SELECT coalesce(outcome, 'in progress'), count(*) FROM cti.call
 WHERE id > %s GROUP BY 1 ORDER BY 2 DESC;

-- name: seed_has_employees
SELECT count(*) FROM pgcti_refcrm.employee;

-- name: seed_employee
INSERT INTO pgcti_refcrm.employee (surname, name, extension, receives_call_notifications)
VALUES (%s, %s, %s, %s) RETURNING id;

-- name: seed_workstation
INSERT INTO pgcti_refcrm.workstation (name, extension) VALUES (%s, %s);

-- name: seed_company
INSERT INTO pgcti_refcrm.company (name) VALUES (%s) RETURNING id;

-- name: seed_client
INSERT INTO pgcti_refcrm.client (name, company_id, manager_id) VALUES (%s, %s, %s) RETURNING id;

-- name: seed_client_phone
INSERT INTO pgcti_refcrm.client_phone (client_id, raw) VALUES (%s, %s);

-- name: seed_line
-- The number customers call, and who calls back a missed caller no manager has (a lead):
-- the first employee.
INSERT INTO pgcti_refcrm.line (dialled, name, owner_id)
SELECT %s, %s, min(id) FROM pgcti_refcrm.employee
    ON CONFLICT (dialled) DO NOTHING;

-- name: seed_workstation_ids
SELECT id FROM pgcti_refcrm.workstation ORDER BY id;

-- name: bind_workstation_login
INSERT INTO cti.client_login (login, workstation_id) VALUES (%s, %s) ON CONFLICT (login) DO NOTHING;

-- name: register_ingester_login
INSERT INTO cti.ingester_login (login) VALUES (%s) ON CONFLICT DO NOTHING;

-- name: role_exists
SELECT 1 FROM pg_roles WHERE rolname = %s;

-- name: create_login_in_role
CREATE ROLE {} LOGIN IN ROLE {};

-- name: phone_numbers_of_each
-- Every number pgcti finds in each text, by the text's position (tests/test_phone_agreement.py).
SELECT u.i, n.number, n.ext
  FROM unnest(%s::text[]) WITH ORDINALITY u(raw, i)
  LEFT JOIN LATERAL cti.phone_numbers(u.raw) WITH ORDINALITY n ON true
 ORDER BY u.i, n.ordinality;

-- name: migrating_rights
-- What the migrating user may do, for `pgcti migrate`'s check before it starts.
SELECT current_user, current_database(), r.rolsuper, r.rolcreaterole,
       has_database_privilege(current_database(), 'CREATE'),
       o.oid IS NOT NULL AS owner_exists,
       -- Up to PostgreSQL 15, CREATEROLE alone may grant any role that is not a superuser.
       o.oid IS NOT NULL AND (pg_has_role(current_user, o.oid, 'USAGE WITH ADMIN OPTION')
                              OR (r.rolcreaterole AND current_setting('server_version_num')::int < 160000)) AS owner_admin,
       o.oid IS NOT NULL AND pg_has_role(current_user, o.oid, 'MEMBER') AS owner_member,
       EXISTS (SELECT FROM pg_namespace WHERE nspname = 'cti') AS installed
  FROM pg_roles r LEFT JOIN pg_roles o ON o.rolname = 'cti_owner'
 WHERE r.rolname = current_user;

-- name: cti_installed
SELECT EXISTS (SELECT FROM pg_namespace WHERE nspname = 'cti');

-- name: drop_bookkeeping_schema
-- After everything was rolled back: yoyo's tables go too.
DROP SCHEMA IF EXISTS {} CASCADE;

-- name: roles_left
-- pgcti's roles a full rollback kept, and why: logins are members, or another database uses it.
SELECT g.rolname,
       concat_ws('; ',
           'logins ' || m.members || ' are members and keep it for a re-install (DROP ROLE '
               || g.rolname || ' once they are gone)',
           'database(s) ' || d.dbs || ' still use it')
  FROM pg_roles g
  LEFT JOIN LATERAL (
      SELECT string_agg(u.rolname, ', ' ORDER BY u.rolname) AS members
        FROM pg_auth_members am JOIN pg_roles u ON u.oid = am.member
       WHERE am.roleid = g.oid AND u.rolcanlogin AND g.rolname <> 'cti_owner') m ON true
  LEFT JOIN LATERAL (
      SELECT string_agg(DISTINCT db.datname, ', ') AS dbs
        FROM pg_shdepend sd JOIN pg_database db ON db.oid = sd.dbid
       WHERE sd.refobjid = g.oid AND sd.refclassid = 'pg_authid'::regclass) d ON true
 WHERE g.rolname IN ('cti_owner', 'cti_ingester', 'cti_client')
 ORDER BY g.rolname;

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

-- name: doctor_lookup_count
SELECT count(*) FROM cti.crm_lookup(%s);

-- name: doctor_round_trip
SELECT 1;

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

-- name: report_time_zone
SELECT set_config('TimeZone', %(time_zone)s, false);

-- name: report_daily
-- Every day of the period, with zeros for days without calls.
SELECT d::date AS day, coalesce(s.inbound_calls, 0), coalesce(s.answered, 0), coalesce(s.missed, 0),
       coalesce(s.abandoned, 0), coalesce(s.busy, 0), s.answer_rate,
       coalesce(s.missed_never_called_back, 0), coalesce(s.callbacks_made, 0)
  FROM generate_series(%(first)s::date, %(last)s::date, interval '1 day') d
  LEFT JOIN cti.daily_call_stats_v1 s ON s.day = d::date AND s.all_lines
 ORDER BY 1;

-- name: report_hourly
SELECT h, count(c.id)
  FROM generate_series(0, 23) h
  LEFT JOIN cti.call c ON c.direction = 'inbound' AND extract(hour FROM c.started_at) = h
                      AND c.started_at >= %(first)s::date AND c.started_at < %(last)s::date + 1
 GROUP BY h ORDER BY h;

-- name: report_response_seconds
SELECT extract(epoch FROM c.answered_at - c.started_at)::float8
  FROM cti.call c
 WHERE c.direction = 'inbound' AND c.outcome = 'answered'
   AND c.started_at >= %(first)s::date AND c.started_at < %(last)s::date + 1;

-- name: report_funnel
SELECT coalesce(sum(f.callers), 0), coalesce(sum(f.leads), 0), coalesce(sum(f.with_deal), 0), coalesce(sum(f.won), 0)
  FROM cti.sales_funnel_v1 f
 WHERE f.by = 'all' AND f.month >= date_trunc('month', %(first)s::date) AND f.month <= %(last)s::date;

-- name: history_first_calls
-- The demo's callers with a client, each with their manager and first call.
SELECT c.client_id, cl.manager_id, min(c.started_at)
  FROM cti.call c JOIN pgcti_refcrm.client cl ON cl.id = c.client_id
 WHERE c.direction = 'inbound' AND c.started_at IS NOT NULL
 GROUP BY c.client_id, cl.manager_id
 ORDER BY c.client_id;

-- name: history_deal
INSERT INTO pgcti_refcrm.deal (client_id, manager_id, stage, opened_at, closed_at)
VALUES (%s, %s, CASE WHEN %s::timestamptz IS NULL THEN 'open' ELSE 'won' END, %s, %s);

-- name: gateway_whoami
SELECT login, stream, target_id, channel, last_seq, acked_seq FROM cti.gateway_whoami(%s);

-- name: gateway_pull
SELECT seq, type, call_id, payload, created_at FROM cti.gateway_pull(%s, %s, %s, 100);

-- name: gateway_ack
SELECT cti.gateway_ack(%s, %s, %s);

-- name: gateway_contacts
SELECT call_id, started_at, direction, outcome, answered_by, extract(epoch FROM duration)::int
  FROM cti.gateway_contacts(%s, %s);

-- name: issue_desk_token
SELECT cti.issue_gateway_token_v1(%s, interval '1 day');

-- name: gateway_wallboard
SELECT cti.gateway_wallboard(%s);
