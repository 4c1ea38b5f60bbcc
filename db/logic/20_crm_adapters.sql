-- The CRM adapters: the only four places where pgcti reads or writes the CRM.
-- pgcti: keep-existing
--
-- Rules:
-- - pgcti asks the CRM four questions and asks them only here: who owns this number
--   (crm_lookup), register this unknown number as a lead (crm_register_unknown), which
--   workstation has this extension (crm_workstation_for_extension), who hears about calls
--   to this line (crm_ring_recipients).
-- - pgcti knows no CRM until it is told: these bodies are placeholders that find nobody,
--   so calls are recorded but no card opens and nobody is rung. A DBA replaces them in a
--   migration of their own (docs/dba-guide.md); the reference CRM of the demo and the tests
--   does the same (db/reference_crm). `pgcti doctor` says when the placeholders are live.
-- - `pgcti migrate` creates a function here only when it is missing, so an override
--   survives every later migrate.
-- - Several rows from crm_lookup mean the number is shared: pgcti shows the ambiguity
--   instead of guessing. A NULL from crm_register_unknown means "do not register".

-- Who owns this number? One row per matching client; several rows mean the number
-- is shared (ambiguous), and pgcti shows that instead of guessing.
CREATE FUNCTION cti.crm_lookup(p_e164 text)
RETURNS TABLE (client_id bigint, client_name text, company text, manager_id bigint, manager_surname text)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    -- pgcti placeholder: no CRM is connected yet
    SELECT NULL::bigint, NULL::text, NULL::text, NULL::bigint, NULL::text WHERE false
$$;

COMMENT ON FUNCTION cti.crm_lookup(text) IS 'Adapter: clients owning an E.164 number (several rows = ambiguous). Override for your CRM.';

-- Register an unknown number as a new lead and return its client id (NULL: do not register).
-- Called at most once per number: pgcti serialises concurrent calls from one number.
CREATE FUNCTION cti.crm_register_unknown(p_e164 text) RETURNS bigint
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $$
    -- pgcti placeholder: no CRM is connected yet
    SELECT NULL::bigint
$$;

COMMENT ON FUNCTION cti.crm_register_unknown(text) IS 'Adapter: create a lead for an unknown E.164 number, return its client id (NULL: none). Override for your CRM.';

-- The workstation whose CRM client should show cards for calls on this extension.
CREATE FUNCTION cti.crm_workstation_for_extension(p_extension text) RETURNS bigint
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    -- pgcti placeholder: no CRM is connected yet
    SELECT NULL::bigint
$$;

COMMENT ON FUNCTION cti.crm_workstation_for_extension(text) IS 'Adapter: extension -> workstation id, NULL when none. Override for your CRM.';

-- Employees told about an incoming call on this line (ring notifications).
CREATE FUNCTION cti.crm_ring_recipients(p_dialled text) RETURNS SETOF bigint
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    -- pgcti placeholder: no CRM is connected yet
    SELECT NULL::bigint WHERE false
$$;

COMMENT ON FUNCTION cti.crm_ring_recipients(text) IS 'Adapter: employee ids to notify of an incoming call on line p_dialled. Override for your CRM.';
