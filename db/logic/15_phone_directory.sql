-- The phone directory: E.164 lookups at index speed over a CRM's own phone columns.
--
-- Rules:
-- - A DBA attaches a CRM column that holds phone numbers as people typed them:
--   cti.attach_phone_column('sales.customer_phones', 'phone', p_key_column => 'customer_id').
--   Every number found in it (cti.phone_numbers: several per field, extension apart) is
--   kept in cti.phone_directory beside the CRM key of its row, and the adapter's lookup
--   reads the directory by its index on e164. The CRM's table keeps its shape.
-- - Triggers on the attached table keep the directory current on INSERT, DELETE, TRUNCATE
--   and an UPDATE that changes the phone, row or key column; attaching backfills what is
--   there. The CRM's own writes must not pay for pgcti: an UPDATE of other columns fires
--   nothing, and every statement a trigger runs is served by an index on any collation.
-- - The triggers' names come from the phone column (pgcti_phone_<column>_write, _update,
--   _truncate), the same in every environment.
-- - When the phone rules in cti.config change, the whole directory is recomputed in the
--   same transaction (a statement trigger on cti.config), so lookups never mix two rules.
-- - Numbers that are not E.164 (internal extensions, fragments) are not kept.
-- - Attaching and keeping run as cti_owner: the DBA grants it SELECT and TRIGGER on the
--   table, and cti.attach_phone_column says so when they are missing. Detaching (by the
--   table's owner) or rolling back pgcti drops the triggers: the CRM's table is as it was.

-- The directory rows of one CRM row: its numbers, with the CRM key and the extension.
CREATE OR REPLACE FUNCTION cti.phone_directory_rows(p_source cti.phone_source, p_row jsonb)
RETURNS SETOF cti.phone_directory
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT DISTINCT ON (n.number) p_source.id, p_row ->> p_source.row_column, p_row ->> p_source.key_column, n.number, n.ext
      FROM cti.phone_numbers(p_row ->> p_source.phone_column::text) n
     WHERE left(n.number, 1) = '+' AND p_row ->> p_source.key_column IS NOT NULL
     ORDER BY n.number
$$;

-- The name of one of pgcti's triggers on an attached table: derived from the phone column
-- alone (a trigger's name is per table), so it is the same in every environment, and kept
-- under 63 bytes with a hash of the column when the column's name is long.
CREATE OR REPLACE FUNCTION cti.phone_trigger_name(p_phone_column name, p_event text) RETURNS name
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE WHEN octet_length(p_phone_column::text) <= 40 THEN 'pgcti_phone_' || p_phone_column::text || '_' || p_event
                ELSE 'pgcti_phone_' || left(p_phone_column::text, 24) || '_' || left(md5(p_phone_column::text), 8) || '_' || p_event
           END::name
$$;

-- Keeps the directory current as the attached table changes. The triggers that call it fire
-- only when they must (an UPDATE of the phone, row or key column that changes one of them);
-- the row id is compared as text in the directory's own collation, so the primary key
-- serves the DELETE whatever the database's collation (a value derived from a `name`
-- would carry collation "C" and miss the index on a C.UTF-8 or ICU database).
-- TG_ARGV[0] is the phone column; triggers made before 0019 (pgcti_phone_<id>) pass the
-- source id instead and keep working until their table's owner replaces them.
CREATE OR REPLACE FUNCTION cti.tg_phone_source__sync() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_source cti.phone_source;
    v_row_id text;
BEGIN
    IF TG_NAME ~ '^pgcti_phone_[0-9]+(_truncate)?$' THEN
        SELECT * INTO STRICT v_source FROM cti.phone_source WHERE id = TG_ARGV[0]::int;
    ELSE
        SELECT * INTO STRICT v_source FROM cti.phone_source
         WHERE table_name = TG_RELID::regclass AND phone_column = TG_ARGV[0]::name;
    END IF;
    IF TG_OP = 'TRUNCATE' THEN
        DELETE FROM cti.phone_directory WHERE source_id = v_source.id;
        RETURN NULL;
    END IF;
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        v_row_id := to_jsonb(OLD) ->> v_source.row_column::text;
        DELETE FROM cti.phone_directory WHERE source_id = v_source.id AND row_id = v_row_id;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        INSERT INTO cti.phone_directory
        SELECT * FROM cti.phone_directory_rows(v_source, to_jsonb(NEW))
        ON CONFLICT DO NOTHING;
    END IF;
    RETURN NULL;
END
$$;

-- The triggers of one attached column: INSERT and DELETE of any row; UPDATE only of the
-- phone, row or key column, and only when one of them changes (a WHEN clause, checked
-- without calling a function: the CRM's other writes pay nothing); TRUNCATE.
CREATE OR REPLACE FUNCTION cti.phone_source_trigger_sql(p_source cti.phone_source) RETURNS text[]
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT ARRAY[
        format('CREATE TRIGGER %I AFTER INSERT OR DELETE ON %s FOR EACH ROW EXECUTE FUNCTION cti.tg_phone_source__sync(%L)',
               cti.phone_trigger_name(p_source.phone_column, 'write'), p_source.table_name, p_source.phone_column),
        format('CREATE TRIGGER %I AFTER UPDATE OF %s ON %s FOR EACH ROW WHEN (%s) EXECUTE FUNCTION cti.tg_phone_source__sync(%L)',
               cti.phone_trigger_name(p_source.phone_column, 'update'),
               (SELECT string_agg(DISTINCT quote_ident(c), ', ') FROM unnest(ARRAY[p_source.phone_column, p_source.row_column, p_source.key_column]::text[]) c),
               p_source.table_name,
               (SELECT string_agg(DISTINCT format('OLD.%1$I IS DISTINCT FROM NEW.%1$I', c), ' OR ') FROM unnest(ARRAY[p_source.phone_column, p_source.row_column, p_source.key_column]::text[]) c),
               p_source.phone_column),
        format('CREATE TRIGGER %I AFTER TRUNCATE ON %s FOR EACH STATEMENT EXECUTE FUNCTION cti.tg_phone_source__sync(%L)',
               cti.phone_trigger_name(p_source.phone_column, 'truncate'), p_source.table_name, p_source.phone_column)
    ]
$$;

-- What drops the triggers of one attached column, old names (before 0019) included.
CREATE OR REPLACE FUNCTION cti.phone_source_drop_trigger_sql(p_source cti.phone_source) RETURNS text[]
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT array_agg(format('DROP TRIGGER IF EXISTS %I ON %s', t.name, p_source.table_name) ORDER BY t.name)
      FROM unnest(ARRAY[cti.phone_trigger_name(p_source.phone_column, 'write'),
                        cti.phone_trigger_name(p_source.phone_column, 'update'),
                        cti.phone_trigger_name(p_source.phone_column, 'truncate'),
                        'pgcti_phone_' || p_source.id, 'pgcti_phone_' || p_source.id || '_truncate']::name[]) t(name)
     WHERE EXISTS (SELECT FROM pg_trigger g WHERE g.tgrelid = p_source.table_name AND g.tgname = t.name)
$$;

-- Recompute the directory from the attached tables (all of them, or one source).
CREATE OR REPLACE FUNCTION cti.refresh_phone_directory(p_source_id int DEFAULT NULL) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_source cti.phone_source;
    v_rows bigint;
    v_total bigint := 0;
BEGIN
    FOR v_source IN SELECT * FROM cti.phone_source WHERE p_source_id IS NULL OR id = p_source_id ORDER BY id LOOP
        DELETE FROM cti.phone_directory WHERE source_id = v_source.id;
        EXECUTE format('INSERT INTO cti.phone_directory SELECT d.* FROM %s t, '
                       'cti.phone_directory_rows($1, to_jsonb(t)) d ON CONFLICT DO NOTHING', v_source.table_name)
        USING v_source;
        GET DIAGNOSTICS v_rows = ROW_COUNT;
        v_total := v_total + v_rows;
    END LOOP;
    RETURN v_total;
END
$$;

COMMENT ON FUNCTION cti.refresh_phone_directory(int) IS 'Recompute the phone directory from the attached CRM columns; returns the numbers kept';

-- Attach a CRM column of phone numbers to the directory; returns how many numbers it holds.
-- row_column identifies a row (default: the table's one-column primary key); key_column is
-- what a lookup returns (default: row_column).
CREATE OR REPLACE FUNCTION cti.attach_phone_column(
    p_table regclass, p_phone_column name, p_key_column name DEFAULT NULL, p_row_column name DEFAULT NULL
) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_row_column name := p_row_column;
    v_column name;
    v_source cti.phone_source;
    v_statement text;
BEGIN
    IF NOT (has_table_privilege(p_table, 'SELECT') AND has_table_privilege(p_table, 'TRIGGER')) THEN
        RAISE EXCEPTION 'pgcti cannot read or watch %', p_table
            USING HINT = format('GRANT SELECT, TRIGGER ON %s TO cti_owner; (and USAGE on its schema)', p_table);
    END IF;
    IF v_row_column IS NULL THEN
        SELECT a.attname INTO v_row_column
          FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
         WHERE i.indrelid = p_table AND i.indisprimary AND i.indnkeyatts = 1;
        IF v_row_column IS NULL THEN
            RAISE EXCEPTION '% has no one-column primary key', p_table
                USING HINT = 'name a column that identifies a row: p_row_column => ''...''';
        END IF;
    END IF;
    FOREACH v_column IN ARRAY ARRAY[p_phone_column, v_row_column, coalesce(p_key_column, v_row_column)] LOOP
        IF NOT EXISTS (SELECT FROM pg_attribute WHERE attrelid = p_table AND attname = v_column
                                                   AND attnum > 0 AND NOT attisdropped) THEN
            RAISE EXCEPTION '% has no column %', p_table, v_column;
        END IF;
    END LOOP;
    INSERT INTO cti.phone_source (table_name, phone_column, row_column, key_column)
    VALUES (p_table, p_phone_column, v_row_column, coalesce(p_key_column, v_row_column))
    RETURNING * INTO v_source;
    FOREACH v_statement IN ARRAY cti.phone_source_trigger_sql(v_source) LOOP
        EXECUTE v_statement;
    END LOOP;
    RETURN cti.refresh_phone_directory(v_source.id);
END
$$;

COMMENT ON FUNCTION cti.attach_phone_column(regclass, name, name, name) IS 'Keep the numbers of a CRM phone column in cti.phone_directory (triggers + backfill)';

-- Undo attach_phone_column: the triggers and the directory rows go. Run by the table's
-- owner (only an owner may drop a trigger), so it runs as its caller; anyone else is told
-- in one line who must run what (`pgcti crm-owner-sql --rollback` prints it all).
CREATE OR REPLACE FUNCTION cti.detach_phone_column(p_table regclass, p_phone_column name) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_source cti.phone_source;
    v_statement text;
    v_drops text[];
    v_owner name;
BEGIN
    SELECT * INTO v_source FROM cti.phone_source WHERE table_name = p_table AND phone_column = p_phone_column;
    IF v_source.id IS NULL THEN
        RETURN;
    END IF;
    v_drops := coalesce(cti.phone_source_drop_trigger_sql(v_source), '{}');
    SELECT pg_get_userbyid(relowner) INTO v_owner FROM pg_class WHERE oid = p_table;
    IF cardinality(v_drops) > 0 AND NOT pg_has_role(v_owner, 'USAGE') THEN
        RAISE EXCEPTION 'only the owner of % (%) may drop pgcti''s triggers on it; nothing was changed', p_table, v_owner
            USING HINT = format('as %s, run: %s; then run this again', v_owner, array_to_string(v_drops, '; '));
    END IF;
    FOREACH v_statement IN ARRAY v_drops LOOP
        EXECUTE v_statement;
    END LOOP;
    DELETE FROM cti.phone_source WHERE id = v_source.id;
END
$$;

COMMENT ON FUNCTION cti.detach_phone_column(regclass, name) IS 'Stop keeping a CRM phone column in the directory; drops its triggers';

-- New phone rules: every stored number in the directory is recomputed with them.
CREATE OR REPLACE FUNCTION cti.tg_config__refresh_phone_directory() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM cti.refresh_phone_directory();
    RETURN NULL;
END
$$;

CREATE OR REPLACE TRIGGER _100_refresh_phone_directory
    AFTER UPDATE OF default_country_code, trunk_prefix, international_prefixes, national_digits, extension_max_digits
    ON cti.config FOR EACH ROW  -- one row: once per UPDATE
    WHEN ((OLD.default_country_code, OLD.trunk_prefix, OLD.international_prefixes, OLD.national_digits, OLD.extension_max_digits)
          IS DISTINCT FROM (NEW.default_country_code, NEW.trunk_prefix, NEW.international_prefixes, NEW.national_digits, NEW.extension_max_digits))
    EXECUTE FUNCTION cti.tg_config__refresh_phone_directory();
