-- Adopt a database that pgcti 0.1.0 migrated (0001-0018) into the baseline layout.
--
-- Its tables, types, roles and grants are already the baseline's, so nothing is rebuilt and
-- no data moves. What differs is named here; `pgcti migrate` runs this file, records the
-- baseline as applied in place of 0001-0018, then applies db/logic, all in one transaction.
-- A DBA's override of a cti.crm_* adapter is left as it is.

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

-- The bookkeeping of db/logic, as in the baseline.
CREATE TABLE cti.logic_file (
    name text PRIMARY KEY, checksum text NOT NULL, functions text[] NOT NULL, applied_at timestamptz NOT NULL
);
COMMENT ON TABLE cti.logic_file IS 'Bookkeeping of pgcti migrate: the db/logic files applied, their checksums and functions';
