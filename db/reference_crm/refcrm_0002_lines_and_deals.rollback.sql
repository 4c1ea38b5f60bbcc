-- Remove the lines and deals; pgcti's placeholder adapters take their place (replaced, not
-- dropped: the analytics views read cti.crm_deals(), so a DROP would fail).

SET LOCAL ROLE cti_owner;

CREATE OR REPLACE FUNCTION cti.crm_line_owner(p_dialled text) RETURNS bigint
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    -- pgcti placeholder: no CRM is connected yet
    SELECT NULL::bigint
$$;

CREATE OR REPLACE FUNCTION cti.crm_deals()
RETURNS TABLE (client_id bigint, manager_id bigint, opened_at timestamptz, won_at timestamptz)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    -- pgcti placeholder: no CRM is connected yet
    SELECT NULL::bigint, NULL::bigint, NULL::timestamptz, NULL::timestamptz WHERE false
$$;

RESET ROLE;
DROP TABLE pgcti_refcrm.deal, pgcti_refcrm.line;
