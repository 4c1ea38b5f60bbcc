-- A lead registered from an unknown number is named "Lead", not after its number: every
-- screen shows the number beside the name already, and a lead that calls again is no longer
-- a "new caller" (the ring's is_new says when it is). Not "Lead #<id>": a batch that goes
-- again frame by frame has used up ids, so the name would depend on how it was processed.
-- depends: refcrm_0002_lines_and_deals

SET LOCAL ROLE cti_owner;

CREATE OR REPLACE FUNCTION cti.crm_register_unknown(p_e164 text) RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_client_id bigint;
BEGIN
    INSERT INTO pgcti_refcrm.client (name, is_lead) VALUES ('Lead', true)
    RETURNING id INTO v_client_id;
    INSERT INTO pgcti_refcrm.client_phone (client_id, raw) VALUES (v_client_id, p_e164);
    RETURN v_client_id;
END
$$;

UPDATE pgcti_refcrm.client SET name = 'Lead' WHERE is_lead AND name LIKE 'New caller %';
