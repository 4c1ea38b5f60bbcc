CREATE SCHEMA crm;

COMMENT ON SCHEMA crm IS 'pgcti reference CRM (demo, tests, new installs); an existing CRM overrides the cti.crm_* adapter functions instead';

CREATE SCHEMA cti;

COMMENT ON SCHEMA cti IS 'pgcti: raw PBX events, calls, the command outbox and the client API';

GRANT USAGE ON SCHEMA cti TO cti_ingester;
GRANT USAGE ON SCHEMA cti TO cti_client;
