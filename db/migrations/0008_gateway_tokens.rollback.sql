-- Undo 0008: tokens go (every browser must get a new one after a re-install). The group
-- role stays while a login is a member of it, as the baseline's do.

SET LOCAL ROLE cti_owner;
-- CASCADE: cti.live_token (db/logic/75_gateway.sql) returns this table's row type.
DROP TABLE cti.gateway_token CASCADE;
RESET ROLE;
REVOKE USAGE ON SCHEMA cti FROM cti_gateway;
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_auth_members m JOIN pg_catalog.pg_roles u ON u.oid = m.member
                    WHERE m.roleid = 'cti_gateway'::regrole AND u.rolcanlogin) THEN
        BEGIN
            DROP ROLE cti_gateway;
        EXCEPTION
            WHEN dependent_objects_still_exist THEN
                RAISE NOTICE 'role cti_gateway is still used by another database on this server; kept';
            WHEN insufficient_privilege THEN  -- made by someone else, for another database
                RAISE NOTICE 'role cti_gateway kept: dropping it needs ADMIN OPTION on it';
            WHEN deadlock_detected THEN  -- another database's rollback drops it at the same time
                RAISE NOTICE 'role cti_gateway kept: another session was dropping it too';
        END;
    END IF;
END
$$;
