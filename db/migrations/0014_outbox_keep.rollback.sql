-- Undo 0014. The logic of this release reads the setting: after rolling this back, apply the
-- previous release's logic (`PGCTI_LOGIC=<previous release>/db/logic pgcti migrate`).

SET LOCAL ROLE cti_owner;

ALTER TABLE cti.config DROP COLUMN outbox_keep;
