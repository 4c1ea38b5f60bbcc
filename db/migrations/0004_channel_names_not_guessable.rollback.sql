-- Undo 0004. The logic of this release reads the key: after rolling this back, apply the
-- previous release's logic (`PGCTI_LOGIC=<previous release>/db/logic pgcti migrate`).

SET LOCAL ROLE cti_owner;

DROP TABLE cti.channel_key;
