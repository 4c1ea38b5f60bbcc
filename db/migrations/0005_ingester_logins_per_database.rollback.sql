-- Undo 0005. The logic of this release reads the table: after rolling this back, apply the
-- previous release's logic (`PGCTI_LOGIC=<previous release>/db/logic pgcti migrate`).

SET LOCAL ROLE cti_owner;

DROP TABLE cti.ingester_login;
