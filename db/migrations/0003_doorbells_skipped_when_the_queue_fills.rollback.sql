-- Undo 0003. The logic of this release reads the new column: after rolling this back,
-- apply the previous release's logic (`PGCTI_LOGIC=<previous release>/db/logic pgcti migrate`).

SET LOCAL ROLE cti_owner;

DROP TABLE cti.doorbell_skip;
ALTER TABLE cti.config DROP COLUMN doorbell_max_queue_usage;
