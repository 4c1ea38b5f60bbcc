-- Attached phone columns: back to one trigger per column, pgcti_phone_<id>, on every write.
-- Where the user may act as the table's owner; elsewhere the triggers of 0019 stay (the
-- logic reads both kinds) and a NOTICE says so.
DO $$
DECLARE
    v_source cti.phone_source;
    v_owner name;
    v_trigger name;
BEGIN
    FOR v_source IN SELECT * FROM cti.phone_source ORDER BY id LOOP
        SELECT pg_get_userbyid(relowner) INTO v_owner FROM pg_class WHERE oid = v_source.table_name;
        IF NOT pg_has_role(v_owner, 'USAGE') THEN
            RAISE NOTICE 'the triggers on % stay as 0019 made them (only its owner % may replace them)', v_source.table_name, v_owner;
            CONTINUE;
        END IF;
        FOR v_trigger IN SELECT tgname FROM pg_trigger
                          WHERE tgrelid = v_source.table_name AND NOT tgisinternal AND tgname LIKE 'pgcti\_phone\_%'
                            AND tgfoid = 'cti.tg_phone_source__sync()'::regprocedure
                            AND tgargs = convert_to(v_source.phone_column::text, 'UTF8') || '\x00'::bytea LOOP
            EXECUTE format('DROP TRIGGER %I ON %s', v_trigger, v_source.table_name);
        END LOOP;
        EXECUTE format('CREATE TRIGGER %I AFTER INSERT OR UPDATE OR DELETE ON %s FOR EACH ROW EXECUTE FUNCTION cti.tg_phone_source__sync(%s)',
                       'pgcti_phone_' || v_source.id, v_source.table_name, v_source.id);
        EXECUTE format('CREATE TRIGGER %I AFTER TRUNCATE ON %s FOR EACH STATEMENT EXECUTE FUNCTION cti.tg_phone_source__sync(%s)',
                       'pgcti_phone_' || v_source.id || '_truncate', v_source.table_name, v_source.id);
    END LOOP;
END
$$;
