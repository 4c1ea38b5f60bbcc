-- Back to pgcti's placeholder: no desk has an extension to dial from.

SET LOCAL ROLE cti_owner;

CREATE OR REPLACE FUNCTION cti.crm_extension_for_workstation(p_workstation_id bigint) RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    -- pgcti placeholder: no CRM is connected yet
    SELECT NULL::text
$$;

COMMENT ON FUNCTION cti.crm_extension_for_workstation(bigint) IS 'Adapter: workstation id -> its extension (click-to-call dials from it), NULL when none. Override for your CRM.';
