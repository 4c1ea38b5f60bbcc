-- Undo 0006. Dropping the trigger function drops the triggers it runs on the CRM's tables
-- (a dependency), so those tables are as they were, whoever owns them. The logic of this
-- release uses these tables: after rolling this back, apply the previous release's logic
-- (`PGCTI_LOGIC=<previous release>/db/logic pgcti migrate`).

SET LOCAL ROLE cti_owner;

DROP FUNCTION IF EXISTS cti.tg_phone_source__sync() CASCADE;
-- CASCADE: the functions of db/logic/15_phone_directory.sql take these tables' row types.
DROP TABLE cti.phone_directory, cti.phone_source CASCADE;
