-- The row-returning adapters as refcrm_0001 and refcrm_0002 made them.

SET LOCAL ROLE cti_owner;

CREATE OR REPLACE FUNCTION cti.crm_lookup(p_e164 text)
RETURNS TABLE (client_id bigint, client_name text, company text, manager_id bigint, manager_surname text)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT DISTINCT c.id, c.name, co.name, m.id, m.surname
      FROM pgcti_refcrm.client_phone p
      JOIN pgcti_refcrm.client c ON c.id = p.client_id
      LEFT JOIN pgcti_refcrm.company co ON co.id = c.company_id
      LEFT JOIN pgcti_refcrm.employee m ON m.id = c.manager_id
     WHERE p.e164 = p_e164
     ORDER BY c.id
$$;

CREATE OR REPLACE FUNCTION cti.crm_ring_recipients(p_dialled text) RETURNS SETOF bigint
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT id FROM pgcti_refcrm.employee WHERE receives_call_notifications ORDER BY id $$;

CREATE OR REPLACE FUNCTION cti.crm_deals()
RETURNS TABLE (client_id bigint, manager_id bigint, opened_at timestamptz, won_at timestamptz)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT d.client_id, coalesce(d.manager_id, c.manager_id), d.opened_at,
           CASE WHEN d.stage = 'won' THEN d.closed_at END
      FROM pgcti_refcrm.deal d JOIN pgcti_refcrm.client c ON c.id = d.client_id
$$;
