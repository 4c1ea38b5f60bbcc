-- Back to pgcti's placeholder: no employee has an extension to route to.

SET LOCAL ROLE cti_owner;

CREATE OR REPLACE FUNCTION cti.crm_extension_for_employee(p_employee_id bigint) RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    -- pgcti placeholder: no CRM is connected yet
    SELECT NULL::text
$$;

COMMENT ON FUNCTION cti.crm_extension_for_employee(bigint) IS 'Adapter: employee id -> their extension (routing rings the client''s manager there), NULL when none. Override for your CRM.';

CREATE OR REPLACE FUNCTION cti.crm_workstation_name(p_workstation_id bigint) RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    -- pgcti placeholder: no CRM is connected yet
    SELECT NULL::text
$$;

COMMENT ON FUNCTION cti.crm_workstation_name(bigint) IS 'Adapter: workstation id -> the name people know it by, NULL when none. Override for your CRM.';
