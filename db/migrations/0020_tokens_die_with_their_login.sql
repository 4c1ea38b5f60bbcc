-- Browser tokens remember the login role itself, not only its name.
-- depends: 0019_phone_triggers_fire_on_change

-- Why: a token acted for a login by name, so it outlived ALTER ROLE ... NOLOGIN and even
-- DROP ROLE, and a role made again under the same name would have found the old tokens
-- alive. The role's oid, taken when the token is issued, ties a token to that role: a new
-- role of the same name has another oid (db/logic/75_gateway.sql checks both).

SET LOCAL ROLE cti_owner;

ALTER TABLE cti.gateway_token ADD COLUMN login_oid oid;
COMMENT ON COLUMN cti.gateway_token.login_oid IS 'The desk login''s role when the token was issued: a token dies with it';

-- Tokens issued before: tied to the role that has the name now, if any (else they die).
UPDATE cti.gateway_token t SET login_oid = r.oid FROM pg_catalog.pg_roles r
 WHERE t.scope = 'desk' AND r.rolname = t.login;

-- cti.new_token takes the longest validity its caller may ask for (a desk: 24 hours):
-- the old signature goes, db/logic makes the new one.
DROP FUNCTION IF EXISTS cti.new_token(text, name, interval);
