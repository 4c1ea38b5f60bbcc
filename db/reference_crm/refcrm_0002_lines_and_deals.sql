-- The reference CRM's lines (who calls back missed calls on each) and deals (the funnel).
-- depends: refcrm_0001_reference_crm

SET LOCAL ROLE cti_owner;

-- A number customers call, and the employee who calls back a client of no manager's.
CREATE TABLE pgcti_refcrm.line (
    dialled text PRIMARY KEY,                       -- as the PBX reports the line called
    name text NOT NULL,
    owner_id bigint REFERENCES pgcti_refcrm.employee (id)
);

-- A deal moves through stages; the funnel asks when it was opened and when it was won.
CREATE TABLE pgcti_refcrm.deal (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    client_id bigint NOT NULL REFERENCES pgcti_refcrm.client (id) ON DELETE CASCADE,
    manager_id bigint REFERENCES pgcti_refcrm.employee (id),
    stage text NOT NULL DEFAULT 'open' CHECK (stage IN ('open', 'proposal', 'won', 'lost')),
    amount numeric(12, 2),
    opened_at timestamptz NOT NULL DEFAULT now(),
    closed_at timestamptz,
    CHECK ((stage IN ('won', 'lost')) = (closed_at IS NOT NULL))
);
CREATE INDEX deal_client ON pgcti_refcrm.deal (client_id);

CREATE OR REPLACE FUNCTION cti.crm_line_owner(p_dialled text) RETURNS bigint
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT owner_id FROM pgcti_refcrm.line WHERE dialled = p_dialled $$;

CREATE OR REPLACE FUNCTION cti.crm_deals()
RETURNS TABLE (client_id bigint, manager_id bigint, opened_at timestamptz, won_at timestamptz)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT d.client_id, coalesce(d.manager_id, c.manager_id), d.opened_at,
           CASE WHEN d.stage = 'won' THEN d.closed_at END
      FROM pgcti_refcrm.deal d JOIN pgcti_refcrm.client c ON c.id = d.client_id
$$;

COMMENT ON FUNCTION cti.crm_line_owner(text) IS 'Adapter of pgcti''s reference CRM (db/reference_crm)';
COMMENT ON FUNCTION cti.crm_deals() IS 'Adapter of pgcti''s reference CRM (db/reference_crm)';
