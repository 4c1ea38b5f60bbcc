-- Remove the lines and deals and their adapters; pgcti's placeholders take their place.

DROP FUNCTION IF EXISTS cti.crm_line_owner(text), cti.crm_deals();
DROP TABLE pgcti_refcrm.deal, pgcti_refcrm.line;
