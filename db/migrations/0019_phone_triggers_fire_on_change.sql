-- Attached phone columns: triggers named by column that fire only when a phone changes.
-- depends: 0018_onlinepbx2_open_legs_by_caller

-- Why: before this release each attached column had one trigger, pgcti_phone_<id>, on every
-- INSERT, UPDATE and DELETE: a CRM paid for it on writes that touch no phone, and its name
-- came from a sequence, so it differed between environments. db/logic/15_phone_directory.sql
-- now makes three per column (pgcti_phone_<column>_write, _update, _truncate), the UPDATE one
-- limited to the phone, row and key columns and to a change of them.
-- Only a table's owner may drop a trigger. Where the migrating user may act as the owner
-- (it owns the table, is a member of its owner, or is a superuser), the old triggers are
-- replaced here with the statements of cti.phone_source_trigger_sql as of this release.
-- Elsewhere the old ones stay and keep the directory current (at index speed: the fix in
-- cti.tg_phone_source__sync), and a NOTICE names the table and what its owner, then the
-- DBA, run to replace them.

DO $$
DECLARE
    v_source cti.phone_source;
    v_owner name;
    v_columns text;
    v_changed text;
    v_base text;
BEGIN
    FOR v_source IN SELECT s.* FROM cti.phone_source s
                     WHERE EXISTS (SELECT FROM pg_trigger t WHERE t.tgrelid = s.table_name AND t.tgname = 'pgcti_phone_' || s.id)
                     ORDER BY s.id LOOP
        SELECT pg_get_userbyid(relowner) INTO v_owner FROM pg_class WHERE oid = v_source.table_name;
        IF NOT pg_has_role(v_owner, 'USAGE') THEN
            RAISE NOTICE 'the triggers on % stay as they were: they keep the directory current, but fire on every UPDATE; only its owner % may replace them',
                v_source.table_name, v_owner
                USING HINT = format('as %s: DROP TRIGGER %I ON %s; DROP TRIGGER IF EXISTS %I ON %s; then as you: '
                                    'SELECT cti.detach_phone_column(%L, %L); SELECT cti.attach_phone_column(%L, %L, %L, %L);',
                                    v_owner, 'pgcti_phone_' || v_source.id, v_source.table_name,
                                    'pgcti_phone_' || v_source.id || '_truncate', v_source.table_name,
                                    v_source.table_name, v_source.phone_column, v_source.table_name, v_source.phone_column,
                                    v_source.key_column, v_source.row_column);
            CONTINUE;
        END IF;
        EXECUTE format('DROP TRIGGER %I ON %s', 'pgcti_phone_' || v_source.id, v_source.table_name);
        EXECUTE format('DROP TRIGGER IF EXISTS %I ON %s', 'pgcti_phone_' || v_source.id || '_truncate', v_source.table_name);
        SELECT string_agg(DISTINCT quote_ident(c), ', '), string_agg(DISTINCT format('OLD.%1$I IS DISTINCT FROM NEW.%1$I', c), ' OR ')
          INTO v_columns, v_changed
          FROM unnest(ARRAY[v_source.phone_column, v_source.row_column, v_source.key_column]::text[]) c;
        v_base := CASE WHEN octet_length(v_source.phone_column::text) <= 40 THEN 'pgcti_phone_' || v_source.phone_column
                       ELSE 'pgcti_phone_' || left(v_source.phone_column::text, 24) || '_' || left(md5(v_source.phone_column::text), 8) END;
        EXECUTE format('CREATE TRIGGER %I AFTER INSERT OR DELETE ON %s FOR EACH ROW EXECUTE FUNCTION cti.tg_phone_source__sync(%L)',
                       v_base || '_write', v_source.table_name, v_source.phone_column);
        EXECUTE format('CREATE TRIGGER %I AFTER UPDATE OF %s ON %s FOR EACH ROW WHEN (%s) EXECUTE FUNCTION cti.tg_phone_source__sync(%L)',
                       v_base || '_update', v_columns, v_source.table_name, v_changed, v_source.phone_column);
        EXECUTE format('CREATE TRIGGER %I AFTER TRUNCATE ON %s FOR EACH STATEMENT EXECUTE FUNCTION cti.tg_phone_source__sync(%L)',
                       v_base || '_truncate', v_source.table_name, v_source.phone_column);
    END LOOP;
END
$$;
