-- Remove the reference CRM and its adapters; the next `pgcti migrate` puts pgcti's
-- placeholder adapters back (db/logic/20_crm_adapters.sql), until a DBA installs their own.

DROP SCHEMA pgcti_refcrm CASCADE;
DROP FUNCTION IF EXISTS cti.crm_lookup(text), cti.crm_register_unknown(text),
    cti.crm_workstation_for_extension(text), cti.crm_ring_recipients(text);
