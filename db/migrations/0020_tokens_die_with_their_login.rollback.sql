-- Browser tokens remember the login role itself, not only its name.
-- The logic of this release (cti.new_token with four arguments) stays: it is db/logic's.
SET LOCAL ROLE cti_owner;
ALTER TABLE cti.gateway_token DROP COLUMN login_oid;
