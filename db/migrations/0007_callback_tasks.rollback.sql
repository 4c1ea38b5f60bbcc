-- Undo 0007: the tasks and their settings go. The logic of this release uses them: after
-- rolling this back, apply the previous release's logic
-- (`PGCTI_LOGIC=<previous release>/db/logic pgcti migrate`).

SET LOCAL ROLE cti_owner;

DELETE FROM cti.outbox WHERE type = 'callback_task';
ALTER TABLE cti.outbox DROP CONSTRAINT outbox_type_check,
    ADD CONSTRAINT outbox_type_check CHECK (type IN ('ring', 'open_card', 'close_card', 'call_ended'));
DROP TABLE cti.callback_task, cti.callback_party_key CASCADE;
ALTER TABLE cti.config DROP COLUMN callback_due_after, DROP COLUMN callback_owner_policy,
    DROP COLUMN callback_default_owner;
