-- The reference CRM's row-returning adapters as SQL-standard bodies (BEGIN ATOMIC), as
-- docs/dba-guide.md tells a DBA to write them: PostgreSQL inlines such a function into the
-- query that calls it, so its plan is made once with that query's. A LANGUAGE sql function
-- with SET clauses is never inlined, and before PostgreSQL 18 it is planned again on every
-- call: a client lookup took 0.17 ms on PostgreSQL 15 instead of 0.02 (docs/performance.md).
-- The body's names are resolved when it is created, so it needs no SET search_path.
-- depends: refcrm_0002_lines_and_deals

SET LOCAL ROLE cti_owner;

CREATE OR REPLACE FUNCTION cti.crm_lookup(p_e164 text)
RETURNS TABLE (client_id bigint, client_name text, company text, manager_id bigint, manager_surname text)
LANGUAGE sql STABLE
BEGIN ATOMIC
    SELECT DISTINCT c.id, c.name, co.name, m.id, m.surname
      FROM pgcti_refcrm.client_phone p
      JOIN pgcti_refcrm.client c ON c.id = p.client_id
      LEFT JOIN pgcti_refcrm.company co ON co.id = c.company_id
      LEFT JOIN pgcti_refcrm.employee m ON m.id = c.manager_id
     WHERE p.e164 = p_e164
     ORDER BY c.id;
END;

CREATE OR REPLACE FUNCTION cti.crm_ring_recipients(p_dialled text) RETURNS SETOF bigint
LANGUAGE sql STABLE
BEGIN ATOMIC
    SELECT id FROM pgcti_refcrm.employee WHERE receives_call_notifications ORDER BY id;
END;

CREATE OR REPLACE FUNCTION cti.crm_deals()
RETURNS TABLE (client_id bigint, manager_id bigint, opened_at timestamptz, won_at timestamptz)
LANGUAGE sql STABLE
BEGIN ATOMIC
    SELECT d.client_id, coalesce(d.manager_id, c.manager_id), d.opened_at,
           CASE WHEN d.stage = 'won' THEN d.closed_at END
      FROM pgcti_refcrm.deal d JOIN pgcti_refcrm.client c ON c.id = d.client_id;
END;
