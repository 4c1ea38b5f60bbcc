-- Where `pgcti simulate --numbers-from-crm` finds the CRM's numbers and extensions.
-- Named statements of the Python edge (ingester/queries.py loads every file here); `{}`
-- marks an identifier psycopg.sql fills in. No business rule: those are in db/logic.

-- name: reference_crm_installed
SELECT to_regclass('pgcti_refcrm.client_phone') IS NOT NULL;

-- name: directory_numbers
-- The simulator calls from the numbers of whatever CRM is attached to the phone directory.
SELECT DISTINCT e164 FROM cti.phone_directory ORDER BY e164 LIMIT 20000;

-- name: crm_numbers
-- The simulator calls from numbers as the reference CRM stores them (messy spellings).
SELECT raw FROM pgcti_refcrm.client_phone ORDER BY id LIMIT 20000;

-- name: crm_extensions
SELECT extension FROM pgcti_refcrm.employee WHERE extension IS NOT NULL ORDER BY extension;
