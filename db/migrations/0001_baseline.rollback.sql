-- Undo the baseline: everything pgcti made (db/logic objects too, they live in these schemas). The roles are dropped only when no other database on this server still uses them.

ALTER DEFAULT PRIVILEGES FOR ROLE cti_owner GRANT EXECUTE ON FUNCTIONS TO PUBLIC;
DROP SCHEMA cti CASCADE;

DO $$
DECLARE
    v_role text;
BEGIN
    FOREACH v_role IN ARRAY ARRAY['cti_client', 'cti_ingester', 'cti_owner'] LOOP
        BEGIN
            EXECUTE pg_catalog.format('DROP ROLE IF EXISTS %I', v_role);
        EXCEPTION WHEN dependent_objects_still_exist THEN
            RAISE NOTICE 'role % is still used by another database on this server; kept', v_role;
        END;
    END LOOP;
END
$$;
