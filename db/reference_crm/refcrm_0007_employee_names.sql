-- The reference CRM says what each employee is called (the wallboard, the report): the
-- surname, as crm_lookup gives a client's manager.
-- depends: refcrm_0006_employee_extensions

SET LOCAL ROLE cti_owner;

CREATE OR REPLACE FUNCTION cti.crm_employee_name(p_employee_id bigint) RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT surname FROM pgcti_refcrm.employee WHERE id = p_employee_id $$;

COMMENT ON FUNCTION cti.crm_employee_name(bigint) IS 'Adapter of pgcti''s reference CRM (db/reference_crm)';
