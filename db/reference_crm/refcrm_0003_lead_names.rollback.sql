-- Leads named by their number again, as refcrm_0001 made them.

SET LOCAL ROLE cti_owner;

CREATE OR REPLACE FUNCTION cti.crm_register_unknown(p_e164 text) RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_client_id bigint;
BEGIN
    INSERT INTO pgcti_refcrm.client (name, is_lead) VALUES ('New caller ' || p_e164, true)
    RETURNING id INTO v_client_id;
    INSERT INTO pgcti_refcrm.client_phone (client_id, raw) VALUES (v_client_id, p_e164);
    RETURN v_client_id;
END
$$;

UPDATE pgcti_refcrm.client c SET name = 'New caller ' || p.raw
  FROM (SELECT DISTINCT ON (client_id) client_id, raw FROM pgcti_refcrm.client_phone ORDER BY client_id, id) p
 WHERE c.is_lead AND c.name = 'Lead' AND p.client_id = c.id;
