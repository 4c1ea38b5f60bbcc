-- The reference CRM says which extension a desk dials from (click-to-call).
-- depends: refcrm_0004_inlined_lookups

SET LOCAL ROLE cti_owner;

CREATE OR REPLACE FUNCTION cti.crm_extension_for_workstation(p_workstation_id bigint) RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT extension FROM pgcti_refcrm.workstation WHERE id = p_workstation_id $$;

COMMENT ON FUNCTION cti.crm_extension_for_workstation(bigint) IS 'Adapter of pgcti''s reference CRM (db/reference_crm)';
