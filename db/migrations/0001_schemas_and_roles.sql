-- Schemas cti (the product) and crm (the reference CRM) and the role model, starting from nothing for PUBLIC.
-- depends:

-- Roles are cluster-wide, so they are created only when missing: several databases
-- on one server (a CRM's staging and production, the test suite's clones) share them.
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'cti_owner') THEN
        -- Owns every pgcti object; SECURITY DEFINER code runs as this role, never as a superuser.
        CREATE ROLE cti_owner NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'cti_ingester') THEN
        -- Group role of ingester logins: may insert raw PBX events and nothing else.
        CREATE ROLE cti_ingester NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'cti_client') THEN
        -- Group role of CRM client logins: may call the documented API functions only.
        CREATE ROLE cti_client NOLOGIN;
    END IF;
END
$$;

-- Later migrations run `SET LOCAL ROLE cti_owner` so that everything they create is owned by it.
GRANT cti_owner TO CURRENT_USER;

CREATE SCHEMA cti AUTHORIZATION cti_owner;
COMMENT ON SCHEMA cti IS 'pgcti: raw PBX events, calls, the command outbox and the client API';

CREATE SCHEMA crm AUTHORIZATION cti_owner;
COMMENT ON SCHEMA crm IS 'pgcti reference CRM (demo, tests, new installs); an existing CRM overrides the cti.crm_* adapter functions instead';

REVOKE ALL ON SCHEMA cti, crm FROM PUBLIC;
-- Functions are executable by PUBLIC by default; for pgcti nothing is, unless granted by name.
ALTER DEFAULT PRIVILEGES FOR ROLE cti_owner REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC;

GRANT USAGE ON SCHEMA cti TO cti_ingester, cti_client;
