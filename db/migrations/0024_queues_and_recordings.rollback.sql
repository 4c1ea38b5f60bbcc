-- Undo 0024: queue facts, recording references and the play log go (a rebuild of the
-- release before does not make them); supervisor tokens go with their scope.

SET LOCAL ROLE cti_owner;
DELETE FROM cti.gateway_token WHERE scope = 'supervisor';
ALTER TABLE cti.gateway_token DROP CONSTRAINT gateway_token_scope_check;
ALTER TABLE cti.gateway_token ADD CONSTRAINT gateway_token_scope_check CHECK (scope IN ('desk', 'wallboard', 'router'));
ALTER TABLE cti.config DROP COLUMN recordings_keep CASCADE;
-- CASCADE: the functions and views of db/logic that return or read these tables.
DROP TABLE cti.recording_play CASCADE;
DROP TABLE cti.recording CASCADE;
DROP TABLE cti.queue_setting CASCADE;
DROP TABLE cti.queue_pause CASCADE;
DROP TABLE cti.queue_attempt CASCADE;
DROP TABLE cti.queue_call CASCADE;
