-- Undo 0022: dial requests go with their history. The group role stays while a login is
-- a member of it, as the baseline's do.

SET LOCAL ROLE cti_owner;
-- CASCADE: the functions and views of db/logic that read the table or the new columns.
DROP TABLE cti.dial_request CASCADE;
ALTER TABLE cti.config DROP COLUMN dial_expire_after CASCADE,
    DROP COLUMN dial_unknown_after CASCADE, DROP COLUMN dial_requests_per_minute CASCADE;
RESET ROLE;
REVOKE USAGE ON SCHEMA cti FROM cti_dialer;
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_auth_members m JOIN pg_catalog.pg_roles u ON u.oid = m.member
                    WHERE m.roleid = 'cti_dialer'::regrole AND u.rolcanlogin) THEN
        BEGIN
            DROP ROLE cti_dialer;
        EXCEPTION
            WHEN dependent_objects_still_exist THEN
                RAISE NOTICE 'role cti_dialer is still used by another database on this server; kept';
            WHEN insufficient_privilege THEN  -- made by someone else, for another database
                RAISE NOTICE 'role cti_dialer kept: dropping it needs ADMIN OPTION on it';
            WHEN deadlock_detected THEN  -- another database's rollback drops it at the same time
                RAISE NOTICE 'role cti_dialer kept: another session was dropping it too';
        END;
    END IF;
END
$$;
