-- Adopt a database that pgcti 0.1.0 migrated (0001-0018) into the baseline layout.
--
-- Its tables, types, roles and grants are already the baseline's, so nothing is rebuilt and
-- no data moves. What differs is named here; `pgcti migrate` runs this file, records the
-- baseline as applied in place of 0001-0018, then applies db/logic, all in one transaction.
-- A DBA's override of a cti.crm_* adapter is left as it is.

-- pgcti 0.1.0 kept its reference CRM in schema crm, a name real CRMs use; it is pgcti_refcrm
-- now (db/reference_crm), recorded as installed by `pgcti migrate`. Functions that read it
-- by the old name (0.1.0's adapters, or a DBA's over those tables) follow it.
ALTER SCHEMA crm RENAME TO pgcti_refcrm;
DO $$
DECLARE
    v_function regprocedure;
BEGIN
    FOR v_function IN
        SELECT p.oid::regprocedure FROM pg_catalog.pg_proc p
         WHERE p.pronamespace IN ('cti'::regnamespace, 'pgcti_refcrm'::regnamespace)
           AND p.prosrc ~ '\mcrm\.'
    LOOP
        EXECUTE pg_catalog.regexp_replace(pg_catalog.pg_get_functiondef(v_function), '\mcrm\.', 'pgcti_refcrm.', 'g');
        IF v_function::text LIKE 'cti.crm\_%' THEN
            EXECUTE pg_catalog.format('COMMENT ON FUNCTION %s IS %L', v_function,
                                      'Adapter of pgcti''s reference CRM (db/reference_crm)');
        END IF;
    END LOOP;
END
$$;

SET LOCAL ROLE cti_owner;

-- Types renamed by pipeline stage (functions that use them follow by oid).
ALTER TYPE cti.call_refresh RENAME TO call_derivation;
ALTER TYPE cti.refresh_result RENAME TO derivation_result;

-- Functions renamed by pipeline stage; db/logic creates them under the new names:
-- normalize_onlinepbx3/2 -> facts_from_onlinepbx3/2, refresh_calls -> derive_calls,
-- refresh_call -> derive_call.
DROP FUNCTION cti.normalize_onlinepbx3(jsonb, timestamptz);
DROP FUNCTION cti.normalize_onlinepbx2(jsonb, timestamptz);
DROP FUNCTION cti.refresh_call(bigint, timestamptz, boolean);
DROP FUNCTION cti.refresh_calls(bigint[], timestamptz[], bigint[], boolean);

-- Phone numbers are parsed anew (extension suffixes apart, several numbers per field):
-- db/logic/10_phone.sql creates the function again; `pgcti migrate` then recomputes the
-- reference CRM's stored E.164 numbers and says to run `pgcti rebuild` for the calls.
DROP FUNCTION cti.normalize_phone(text);

-- The bookkeeping of db/logic, as in the baseline.
CREATE TABLE cti.logic_file (
    name text PRIMARY KEY, checksum text NOT NULL, functions text[] NOT NULL, applied_at timestamptz NOT NULL
);
COMMENT ON TABLE cti.logic_file IS 'Bookkeeping of pgcti migrate: the db/logic files applied, their checksums and functions';
