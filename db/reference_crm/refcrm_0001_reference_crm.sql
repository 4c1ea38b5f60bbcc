-- pgcti's reference CRM for the demo and the tests, only with `pgcti migrate --with-reference-crm`.
-- depends: 0001_baseline

-- It is installed exactly as a DBA installs the adapters of an existing CRM (docs/dba-guide.md):
-- a migration of its own that overrides the four cti.crm_* adapters. Its schema has a name no
-- real CRM is likely to use, so pgcti never touches a CRM's own `crm` schema.

CREATE SCHEMA pgcti_refcrm AUTHORIZATION cti_owner;
COMMENT ON SCHEMA pgcti_refcrm IS 'pgcti reference CRM (demo and tests); installed by pgcti migrate --with-reference-crm';
REVOKE ALL ON SCHEMA pgcti_refcrm FROM PUBLIC;

SET LOCAL ROLE cti_owner;

CREATE TABLE pgcti_refcrm.company (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name text NOT NULL
);

CREATE TABLE pgcti_refcrm.employee (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    surname text NOT NULL,
    name text NOT NULL DEFAULT '',
    extension text UNIQUE,                          -- internal number, e.g. '101'
    receives_call_notifications boolean NOT NULL DEFAULT false
);

CREATE TABLE pgcti_refcrm.client (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name text NOT NULL,
    company_id bigint REFERENCES pgcti_refcrm.company (id),
    manager_id bigint REFERENCES pgcti_refcrm.employee (id),  -- the assigned (responsible) manager
    is_lead boolean NOT NULL DEFAULT false,         -- registered automatically from an unknown number
    created_at timestamptz NOT NULL DEFAULT now()
);

-- Numbers as people typed them (raw) and as lookups use them (e164, kept by a trigger).
CREATE TABLE pgcti_refcrm.client_phone (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    client_id bigint NOT NULL REFERENCES pgcti_refcrm.client (id) ON DELETE CASCADE,
    raw text NOT NULL,
    e164 text
);
CREATE INDEX client_phone_e164 ON pgcti_refcrm.client_phone (e164);
CREATE INDEX client_phone_client ON pgcti_refcrm.client_phone (client_id);

CREATE TABLE pgcti_refcrm.workstation (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name text NOT NULL UNIQUE,
    extension text UNIQUE                           -- the phone on that desk
);

-- A client's number is stored as typed (raw) and as lookups compare it (e164), the latter
-- kept by this trigger with cti.normalize_phone(), so crm_lookup() is an index scan.
CREATE FUNCTION pgcti_refcrm.tg_client_phone__normalize() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    NEW.e164 := cti.normalize_phone(NEW.raw);
    RETURN NEW;
END
$$;
REVOKE EXECUTE ON FUNCTION pgcti_refcrm.tg_client_phone__normalize() FROM PUBLIC;

CREATE TRIGGER _100_normalize BEFORE INSERT OR UPDATE OF raw ON pgcti_refcrm.client_phone
    FOR EACH ROW EXECUTE FUNCTION pgcti_refcrm.tg_client_phone__normalize();

-- The four adapters over these tables (what db/logic/20_crm_adapters.sql leaves to a CRM).
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

CREATE OR REPLACE FUNCTION cti.crm_workstation_for_extension(p_extension text) RETURNS bigint
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT id FROM pgcti_refcrm.workstation WHERE extension = p_extension $$;

CREATE OR REPLACE FUNCTION cti.crm_ring_recipients(p_dialled text) RETURNS SETOF bigint
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT id FROM pgcti_refcrm.employee WHERE receives_call_notifications ORDER BY id $$;

COMMENT ON FUNCTION cti.crm_lookup(text) IS 'Adapter of pgcti''s reference CRM (db/reference_crm)';
COMMENT ON FUNCTION cti.crm_register_unknown(text) IS 'Adapter of pgcti''s reference CRM (db/reference_crm)';
COMMENT ON FUNCTION cti.crm_workstation_for_extension(text) IS 'Adapter of pgcti''s reference CRM (db/reference_crm)';
COMMENT ON FUNCTION cti.crm_ring_recipients(text) IS 'Adapter of pgcti''s reference CRM (db/reference_crm)';
