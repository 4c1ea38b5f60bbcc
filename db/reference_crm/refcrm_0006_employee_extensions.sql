-- The reference CRM says which extension each employee answers on (routing from the CRM),
-- and what each workstation is called (the wallboard).
-- depends: refcrm_0005_desk_extensions

SET LOCAL ROLE cti_owner;

CREATE OR REPLACE FUNCTION cti.crm_extension_for_employee(p_employee_id bigint) RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT extension FROM pgcti_refcrm.employee WHERE id = p_employee_id $$;

COMMENT ON FUNCTION cti.crm_extension_for_employee(bigint) IS 'Adapter of pgcti''s reference CRM (db/reference_crm)';

CREATE OR REPLACE FUNCTION cti.crm_workstation_name(p_workstation_id bigint) RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT name FROM pgcti_refcrm.workstation WHERE id = p_workstation_id $$;

COMMENT ON FUNCTION cti.crm_workstation_name(bigint) IS 'Adapter of pgcti''s reference CRM (db/reference_crm)';
