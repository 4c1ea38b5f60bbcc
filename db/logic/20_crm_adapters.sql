-- The CRM adapters: the only four places where pgcti reads or writes the CRM.
-- pgcti: keep-existing
--
-- Rules:
-- - pgcti asks the CRM four questions and asks them only here: who owns this number
--   (crm_lookup), register this unknown number as a lead (crm_register_unknown), which
--   workstation has this extension (crm_workstation_for_extension), who hears about calls
--   to this line (crm_ring_recipients).
-- - These bodies serve the reference CRM (schema crm). An existing CRM replaces them in a
--   migration of its own (docs/dba-guide.md); `pgcti migrate` creates a function here only
--   when it is missing, so a DBA's override survives every later migrate.
-- - Several rows from crm_lookup mean the number is shared: pgcti shows the ambiguity
--   instead of guessing.

-- Who owns this number? One row per matching client; several rows mean the number
-- is shared (ambiguous), and pgcti shows that instead of guessing.
CREATE FUNCTION cti.crm_lookup(p_e164 text)
RETURNS TABLE (client_id bigint, client_name text, company text, manager_id bigint, manager_surname text)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT DISTINCT c.id, c.name, co.name, m.id, m.surname
      FROM crm.client_phone p
      JOIN crm.client c ON c.id = p.client_id
      LEFT JOIN crm.company co ON co.id = c.company_id
      LEFT JOIN crm.employee m ON m.id = c.manager_id
     WHERE p.e164 = p_e164
     ORDER BY c.id
$$;

COMMENT ON FUNCTION cti.crm_lookup(text) IS 'Adapter: clients owning an E.164 number (several rows = ambiguous). Override for an existing CRM.';

-- Register an unknown number as a new lead and return its client id. Called at most
-- once per number: pgcti serialises concurrent calls from one number before calling it.
CREATE FUNCTION cti.crm_register_unknown(p_e164 text) RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_client_id bigint;
BEGIN
    INSERT INTO crm.client (name, is_lead) VALUES ('New caller ' || p_e164, true)
    RETURNING id INTO v_client_id;
    INSERT INTO crm.client_phone (client_id, raw) VALUES (v_client_id, p_e164);
    RETURN v_client_id;
END
$$;

COMMENT ON FUNCTION cti.crm_register_unknown(text) IS 'Adapter: create a lead for an unknown E.164 number, return its client id. Override for an existing CRM.';

-- The workstation whose CRM client should show cards for calls on this extension.
CREATE FUNCTION cti.crm_workstation_for_extension(p_extension text) RETURNS bigint
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT id FROM crm.workstation WHERE extension = p_extension $$;

COMMENT ON FUNCTION cti.crm_workstation_for_extension(text) IS 'Adapter: extension -> workstation id, NULL when none. Override for an existing CRM.';

-- Employees told about every incoming call (ring notifications).
CREATE FUNCTION cti.crm_ring_recipients(p_dialled text) RETURNS SETOF bigint
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT id FROM crm.employee WHERE receives_call_notifications ORDER BY id $$;

COMMENT ON FUNCTION cti.crm_ring_recipients(text) IS 'Adapter: employee ids to notify of an incoming call on line p_dialled. Override for an existing CRM.';
