-- Undo 0026: the reader's grants go with its role. The group role stays while a login is
-- a member of it, as the baseline's do.

DO $$
BEGIN
    EXECUTE (SELECT coalesce(string_agg(format('REVOKE ALL ON %s FROM cti_reader', c.oid::regclass), '; '), 'SELECT')
               FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
              WHERE n.nspname = 'cti' AND has_table_privilege('cti_reader', c.oid, 'SELECT'));
END
$$;
REVOKE SELECT (id, started_at) ON cti.call FROM cti_reader;
REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA cti FROM cti_reader;
REVOKE USAGE ON SCHEMA cti FROM cti_reader;
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_auth_members m JOIN pg_catalog.pg_roles u ON u.oid = m.member
                    WHERE m.roleid = 'cti_reader'::regrole AND u.rolcanlogin) THEN
        BEGIN
            DROP ROLE cti_reader;
        EXCEPTION
            WHEN dependent_objects_still_exist THEN
                RAISE NOTICE 'role cti_reader is still used by another database on this server; kept';
            WHEN insufficient_privilege THEN  -- made by someone else, for another database
                RAISE NOTICE 'role cti_reader kept: dropping it needs ADMIN OPTION on it';
            WHEN deadlock_detected THEN  -- another database's rollback drops it at the same time
                RAISE NOTICE 'role cti_reader kept: another session was dropping it too';
        END;
    END IF;
END
$$;
