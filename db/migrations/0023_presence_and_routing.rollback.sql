-- Undo 0023: presence and the routing log go; router tokens go with their scope. The group
-- role stays while a login is a member of it, as the baseline's do.

SET LOCAL ROLE cti_owner;
DELETE FROM cti.gateway_token WHERE scope = 'router';
ALTER TABLE cti.gateway_token DROP CONSTRAINT gateway_token_scope_check;
ALTER TABLE cti.gateway_token ADD CONSTRAINT gateway_token_scope_check CHECK (scope IN ('desk', 'wallboard'));
-- CASCADE: the functions and views of db/logic that return or read these tables.
DROP TABLE cti.route_decision CASCADE;
DROP TABLE cti.presence CASCADE;
RESET ROLE;
REVOKE USAGE ON SCHEMA cti FROM cti_router;
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_auth_members m JOIN pg_catalog.pg_roles u ON u.oid = m.member
                    WHERE m.roleid = 'cti_router'::regrole AND u.rolcanlogin) THEN
        BEGIN
            DROP ROLE cti_router;
        EXCEPTION
            WHEN dependent_objects_still_exist THEN
                RAISE NOTICE 'role cti_router is still used by another database on this server; kept';
            WHEN insufficient_privilege THEN  -- made by someone else, for another database
                RAISE NOTICE 'role cti_router kept: dropping it needs ADMIN OPTION on it';
            WHEN deadlock_detected THEN  -- another database's rollback drops it at the same time
                RAISE NOTICE 'role cti_router kept: another session was dropping it too';
        END;
    END IF;
END
$$;
