-- Undo 0005.
DROP FUNCTION cti.crm_ring_recipients(text);
DROP FUNCTION cti.crm_workstation_for_extension(text);
DROP FUNCTION cti.crm_register_unknown(text);
DROP FUNCTION cti.crm_lookup(text);
