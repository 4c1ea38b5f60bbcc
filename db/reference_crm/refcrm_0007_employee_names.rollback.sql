-- Back to pgcti's placeholder: employees are shown by id.

SET LOCAL ROLE cti_owner;

CREATE OR REPLACE FUNCTION cti.crm_employee_name(p_employee_id bigint) RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    -- pgcti placeholder: no CRM is connected yet
    SELECT NULL::text
$$;

COMMENT ON FUNCTION cti.crm_employee_name(bigint) IS 'Adapter: employee id -> the name people know them by, NULL when none. Override for your CRM.';
