-- The CRM adapters: the only places where pgcti reads or writes the CRM.
-- pgcti: keep-existing
--
-- Rules:
-- - pgcti asks the CRM eleven questions and asks them only here: who owns this number
--   (crm_lookup), register this unknown number as a lead (crm_register_unknown), which
--   workstation has this extension (crm_workstation_for_extension), who hears about calls
--   to this line (crm_ring_recipients), who calls back a client who called this line and
--   has no manager (crm_line_owner), which clients have deals (crm_deals, for the
--   sales funnel), on Asterisk, which extension a channel is (crm_extension_for_channel),
--   which extension a desk dials from (crm_extension_for_workstation, click-to-call),
--   which extension an employee answers on (crm_extension_for_employee, routing), and
--   what a workstation and an employee are called (crm_workstation_name,
--   crm_employee_name, for screens and reports).
-- - pgcti knows no CRM until it is told: these bodies are placeholders that find nobody,
--   so calls are recorded but no card opens and nobody is rung. A DBA replaces them in a
--   migration of their own (docs/adapters.md); the reference CRM of the demo and the tests
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

-- Click-to-call: the extension at a workstation, the one a desk's calls are placed from
-- (the reverse of crm_workstation_for_extension; cti.dial_v1 checks that the two agree).
CREATE FUNCTION cti.crm_extension_for_workstation(p_workstation_id bigint) RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    -- pgcti placeholder: no CRM is connected yet
    SELECT NULL::text
$$;

COMMENT ON FUNCTION cti.crm_extension_for_workstation(bigint) IS 'Adapter: workstation id -> its extension (click-to-call dials from it), NULL when none. Override for your CRM.';

-- Routing: an employee's extension, the one the PBX rings when a client of theirs calls
-- (cti.route_v1); NULL when they have none.
CREATE FUNCTION cti.crm_extension_for_employee(p_employee_id bigint) RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    -- pgcti placeholder: no CRM is connected yet
    SELECT NULL::text
$$;

COMMENT ON FUNCTION cti.crm_extension_for_employee(bigint) IS 'Adapter: employee id -> their extension (routing rings the client''s manager there), NULL when none. Override for your CRM.';

-- What people call a workstation (the wallboard, the desk page): its name, NULL for "workstation <id>".
CREATE FUNCTION cti.crm_workstation_name(p_workstation_id bigint) RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    -- pgcti placeholder: no CRM is connected yet
    SELECT NULL::text
$$;

COMMENT ON FUNCTION cti.crm_workstation_name(bigint) IS 'Adapter: workstation id -> the name people know it by, NULL when none. Override for your CRM.';

-- What people call an employee (the wallboard's and the report's owners and managers):
-- NULL for "employee <id>".
CREATE FUNCTION cti.crm_employee_name(p_employee_id bigint) RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    -- pgcti placeholder: no CRM is connected yet
    SELECT NULL::text
$$;

COMMENT ON FUNCTION cti.crm_employee_name(bigint) IS 'Adapter: employee id -> the name people know them by, NULL when none. Override for your CRM.';

-- Employees told about an incoming call on this line (ring notifications).
CREATE FUNCTION cti.crm_ring_recipients(p_dialled text) RETURNS SETOF bigint
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    -- pgcti placeholder: no CRM is connected yet
    SELECT NULL::bigint WHERE false
$$;

COMMENT ON FUNCTION cti.crm_ring_recipients(text) IS 'Adapter: employee ids to notify of an incoming call on line p_dialled. Override for your CRM.';

-- Who calls back a missed call on this line when the client has no manager (callback
-- tasks, cti.config.callback_owner_policy 'line'): an employee id, NULL when nobody.
CREATE FUNCTION cti.crm_line_owner(p_dialled text) RETURNS bigint
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    -- pgcti placeholder: no CRM is connected yet
    SELECT NULL::bigint
$$;

COMMENT ON FUNCTION cti.crm_line_owner(text) IS 'Adapter: the employee who calls back missed calls on line p_dialled, NULL when none. Override for your CRM.';

-- The CRM's deals, for the sales funnel: one row per deal, with the client, the manager
-- responsible, when it was opened and when it was won (NULL: not won, or not yet).
CREATE FUNCTION cti.crm_deals()
RETURNS TABLE (client_id bigint, manager_id bigint, opened_at timestamptz, won_at timestamptz)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    -- pgcti placeholder: no CRM is connected yet
    SELECT NULL::bigint, NULL::bigint, NULL::timestamptz, NULL::timestamptz WHERE false
$$;

COMMENT ON FUNCTION cti.crm_deals() IS 'Adapter: deals (client, manager, opened, won) for the sales funnel. Override for your CRM.';

-- Asterisk: the extension of a device channel, NULL for a channel that is no extension's
-- (a trunk). pgcti's default is the peer name when it is all digits: PJSIP/101-00000007,
-- SIP/101-0000001d and IAX2/101-1234 are extension 101. Override it for peers named
-- otherwise (peer 150010002 that is extension 201, or peers named after people).
CREATE FUNCTION cti.crm_extension_for_channel(p_channel text) RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT peer FROM substring(p_channel FROM '^[A-Za-z0-9]+/(.+)-[0-9a-fA-F]+(?:<[A-Z]+>)?$') AS peer
     WHERE peer ~ '^[0-9]+$'
$$;

COMMENT ON FUNCTION cti.crm_extension_for_channel(text) IS 'Adapter (Asterisk): device channel -> extension, NULL for a trunk. Default: the peer name when all digits. Override for your PBX.';
