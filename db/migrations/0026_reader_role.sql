-- A group role for reporting: cti_reader reads the history and analytics views.
-- depends: 0025_onlinepbx_presence

-- Why: a role granted SELECT on a view still needs EXECUTE on every function the view
-- calls (PostgreSQL checks functions as the one who asks, tables as the view's owner), and
-- pgcti's functions are private. A DBA who granted SELECT on the views to a reporting login
-- got "permission denied for function ..." on most of them. cti_reader holds SELECT on the
-- views and EXECUTE on what they call (db/logic/90_grants.sql): GRANT cti_reader TO a login.

DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'cti_reader') THEN
        -- Group role of reporting logins: the history and analytics views, nothing else.
        CREATE ROLE cti_reader NOLOGIN;
    END IF;
END
$$;
GRANT USAGE ON SCHEMA cti TO cti_reader;
-- What the views' functions read as their reader: the phone rules (cti.normalize_phone), as
-- a client may; when a call started (cti.task_day: the day a callback task counts on), no
-- number; and the queue stays and settings the queue figures are made of, which hold no
-- number either (cti.queue_stats_between, inlined into the view and the report).
GRANT SELECT ON cti.config, cti.queue_call, cti.queue_setting TO cti_reader;
GRANT SELECT (id, started_at) ON cti.call TO cti_reader;
