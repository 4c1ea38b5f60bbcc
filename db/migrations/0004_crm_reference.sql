-- The reference CRM (schema crm): companies, clients and their numbers, employees, workstations.
-- depends: 0003_raw_event

SET LOCAL ROLE cti_owner;

CREATE TABLE crm.company (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name text NOT NULL
);

CREATE TABLE crm.employee (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    surname text NOT NULL,
    name text NOT NULL DEFAULT '',
    extension text UNIQUE,                          -- internal number, e.g. '101'
    receives_call_notifications boolean NOT NULL DEFAULT false
);

CREATE TABLE crm.client (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name text NOT NULL,
    company_id bigint REFERENCES crm.company (id),
    manager_id bigint REFERENCES crm.employee (id),  -- the assigned (responsible) manager
    is_lead boolean NOT NULL DEFAULT false,         -- registered automatically from an unknown number
    created_at timestamptz NOT NULL DEFAULT now()
);

-- Numbers as people typed them (raw) and as lookups use them (e164, kept by a trigger).
CREATE TABLE crm.client_phone (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    client_id bigint NOT NULL REFERENCES crm.client (id) ON DELETE CASCADE,
    raw text NOT NULL,
    e164 text
);
CREATE INDEX client_phone_e164 ON crm.client_phone (e164);
CREATE INDEX client_phone_client ON crm.client_phone (client_id);

CREATE TABLE crm.workstation (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name text NOT NULL UNIQUE,
    extension text UNIQUE                           -- the phone on that desk
);

CREATE FUNCTION crm.tg_client_phone__normalize() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    NEW.e164 := cti.normalize_phone(NEW.raw);
    RETURN NEW;
END
$$;

CREATE TRIGGER _100_normalize BEFORE INSERT OR UPDATE OF raw ON crm.client_phone
    FOR EACH ROW EXECUTE FUNCTION crm.tg_client_phone__normalize();
