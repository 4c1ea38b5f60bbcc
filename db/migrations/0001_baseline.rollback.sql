-- Undo the baseline: everything pgcti made (db/logic objects too, they live in these schemas). The roles are dropped only when no other database on this server still uses them, and the
-- group roles only when no login is a member (a re-install finds the logins as they were).

ALTER DEFAULT PRIVILEGES FOR ROLE cti_owner GRANT EXECUTE ON FUNCTIONS TO PUBLIC;
DROP SCHEMA cti CASCADE;

DO $$
DECLARE
    v_role text;
BEGIN
    FOREACH v_role IN ARRAY ARRAY['cti_client', 'cti_ingester', 'cti_owner'] LOOP
        -- Logins keep their group roles, so that a re-install finds them as they were.
        CONTINUE WHEN v_role <> 'cti_owner' AND EXISTS (
            SELECT FROM pg_catalog.pg_auth_members m JOIN pg_catalog.pg_roles u ON u.oid = m.member
             WHERE m.roleid = v_role::regrole AND u.rolcanlogin);
        BEGIN
            EXECUTE pg_catalog.format('DROP ROLE IF EXISTS %I', v_role);
        EXCEPTION WHEN dependent_objects_still_exist THEN
            RAISE NOTICE 'role % is still used by another database on this server; kept', v_role;
        WHEN deadlock_detected THEN  -- another database's rollback drops it at the same time
            RAISE NOTICE 'role % kept: another session was dropping it too', v_role;
        END;
    END LOOP;
END
$$;
