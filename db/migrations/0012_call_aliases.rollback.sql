-- Undo 0012. The logic of this release uses the table: after rolling this back, apply the
-- previous release's logic (`PGCTI_LOGIC=<previous release>/db/logic pgcti migrate`).

SET LOCAL ROLE cti_owner;

DROP TABLE cti.call_alias;
