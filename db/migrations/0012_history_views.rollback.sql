-- Undo 0012.
DROP VIEW cti.client_contact_summary_v1;
DROP VIEW cti.call_history_v1;
