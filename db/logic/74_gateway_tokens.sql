-- Browser tokens for `pgcti gateway`: issued, checked, listed and revoked.
--
-- Rules:
-- - A token acts for one desk login (bound in cti.client_login) and reaches exactly what
--   that login reaches through the client API: its own streams, nothing else.
-- - A DBA issues a token for any desk login, valid up to 90 days; a desk login may issue
--   one for itself, valid up to 24 hours. A login has at most 5 live tokens: issuing
--   another revokes its oldest. The token is shown once; the database keeps its SHA-256,
--   an expiry, who issued it and the login's role.
-- - An expired or revoked token opens nothing, nor does one whose login may no longer log
--   in (NOLOGIN, VALID UNTIL passed, dropped: the role is checked by its oid, so a new role
--   of the same name finds the old tokens dead), nor one whose login lost its binding in
--   cti.client_login (the binding's removal revokes them). A DBA lists every token with
--   gateway_tokens_v1() and revokes one by id, those of a login, or the wallboard's.
-- - Tokens without a desk, issued by a DBA: a wallboard's (the floor now), a router's (a
--   cloud PBX asking /route) and a supervisor's (hears every recording). Each opens only
--   what its scope names (75_gateway.sql).

-- The live token of a scope (its hash matches, not expired, not revoked); raises otherwise.
CREATE OR REPLACE FUNCTION cti.live_token(p_token text, p_scope text) RETURNS cti.gateway_token
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_token cti.gateway_token;
BEGIN
    SELECT t.* INTO v_token FROM cti.gateway_token t
     WHERE t.token_sha256 = sha256(convert_to(coalesce(p_token, ''), 'UTF8'))
       AND t.scope = p_scope AND t.revoked_at IS NULL AND t.expires_at > now()
       AND (t.scope <> 'desk' OR cti.may_log_in(t.login, t.login_oid));
    IF NOT FOUND THEN
        RAISE EXCEPTION 'token refused: unknown, expired or revoked, or not a % token', p_scope
            USING ERRCODE = 'invalid_authorization_specification',
                  HINT = 'Ask for a new token: SELECT cti.issue_gateway_token_v1(...)';
    END IF;
    RETURN v_token;
END
$$;

-- May this role still log in? The same role (its oid, when the token knows it), LOGIN,
-- not past its VALID UNTIL.
CREATE OR REPLACE FUNCTION cti.may_log_in(p_login name, p_login_oid oid) RETURNS boolean
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT EXISTS (SELECT FROM pg_catalog.pg_roles r
                    WHERE r.rolname = p_login AND r.oid = coalesce(p_login_oid, r.oid)
                      AND r.rolcanlogin AND coalesce(r.rolvaliduntil > now(), true))
$$;

-- A new token of a scope, shown once: the database keeps its SHA-256. At most p_max_valid
-- (90 days for a DBA, 24 hours for a desk's own); at most 5 live per login, the oldest
-- revoked to make room.
CREATE OR REPLACE FUNCTION cti.new_token(p_scope text, p_login name, p_valid interval,
                                         p_max_valid interval DEFAULT '90 days') RETURNS text
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_token text := replace(gen_random_uuid()::text || gen_random_uuid()::text, '-', '');
BEGIN
    IF p_valid IS NULL OR p_valid <= interval '0' OR p_valid > p_max_valid THEN
        RAISE EXCEPTION 'a token is valid for more than 0 and at most %, not %', p_max_valid, p_valid
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF p_login IS NOT NULL THEN
        PERFORM pg_advisory_xact_lock(hashtext('cti.gateway_token'), hashtext(p_login));
        UPDATE cti.gateway_token SET revoked_at = now()
         WHERE id IN (SELECT id FROM cti.gateway_token
                       WHERE login = p_login AND revoked_at IS NULL AND expires_at > now()
                       ORDER BY issued_at DESC, id DESC OFFSET 4);
    END IF;
    INSERT INTO cti.gateway_token (token_sha256, scope, login, login_oid, expires_at)
    VALUES (sha256(convert_to(v_token, 'UTF8')), p_scope, p_login,
            (SELECT oid FROM pg_catalog.pg_roles WHERE rolname = p_login), now() + p_valid);
    RETURN v_token;
END
$$;

-- The binding a live desk token acts for; raises for any other token, or a login unbound since.
CREATE OR REPLACE FUNCTION cti.token_binding(p_token text) RETURNS cti.client_login
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_binding cti.client_login;
BEGIN
    SELECT b.* INTO v_binding FROM cti.client_login b
     WHERE b.login = (cti.live_token(p_token, 'desk')).login;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'token refused: its login is no longer bound to a desk'
            USING ERRCODE = 'invalid_authorization_specification';
    END IF;
    RETURN v_binding;
END
$$;

-- A new token for a desk login (default: the caller's own), valid for p_valid.
CREATE OR REPLACE FUNCTION cti.issue_gateway_token_v1(p_login name DEFAULT session_user,
                                                     p_valid interval DEFAULT '12 hours')
RETURNS text
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF p_login <> session_user AND NOT pg_has_role(session_user, 'cti_owner', 'USAGE') THEN
        RAISE EXCEPTION 'only a DBA issues tokens for another login'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF NOT EXISTS (SELECT FROM cti.client_login WHERE login = p_login) THEN
        RAISE EXCEPTION 'login "%" is not bound to a workstation or employee', p_login
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN cti.new_token('desk', p_login, p_valid,
                         CASE WHEN pg_has_role(session_user, 'cti_owner', 'USAGE') THEN interval '90 days'
                              ELSE interval '24 hours' END);
END
$$;

COMMENT ON FUNCTION cti.issue_gateway_token_v1(name, interval) IS 'A browser token for a desk login (shown once; the database keeps its hash)';

-- Revoke every live token of a login, or with NULL every wallboard token (DBA).
CREATE OR REPLACE FUNCTION cti.revoke_gateway_tokens_v1(p_login name) RETURNS int
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $$
    WITH r AS (UPDATE cti.gateway_token SET revoked_at = now()
                WHERE (login = p_login OR p_login IS NULL AND scope = 'wallboard')  -- not router tokens
                  AND revoked_at IS NULL RETURNING 1)
    SELECT count(*)::int FROM r
$$;

COMMENT ON FUNCTION cti.revoke_gateway_tokens_v1(name) IS 'Revoke every live browser token of a desk login (NULL: every wallboard token); returns how many';

-- Revoke one token by its id, desk or wallboard (DBA); true when it was live.
CREATE OR REPLACE FUNCTION cti.revoke_gateway_token_v1(p_token_id bigint) RETURNS boolean
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $$
    WITH r AS (UPDATE cti.gateway_token SET revoked_at = now()
                WHERE id = p_token_id AND revoked_at IS NULL RETURNING 1)
    SELECT EXISTS (SELECT FROM r)
$$;

COMMENT ON FUNCTION cti.revoke_gateway_token_v1(bigint) IS 'Revoke one browser token by its id (gateway_tokens_v1), desk or wallboard';

-- Every token, for a DBA: whose, who issued it, until when, and whether it opens anything
-- now (never the token itself: the database has only its hash).
CREATE OR REPLACE FUNCTION cti.gateway_tokens_v1()
RETURNS TABLE (token_id bigint, scope text, login name, issued_by name, issued_at timestamptz,
               expires_at timestamptz, revoked_at timestamptz, live boolean)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT t.id, t.scope, t.login, t.issued_by, t.issued_at, t.expires_at, t.revoked_at,
           t.revoked_at IS NULL AND t.expires_at > now()
           AND (t.scope <> 'desk' OR (cti.may_log_in(t.login, t.login_oid)
                                      AND EXISTS (SELECT FROM cti.client_login b WHERE b.login = t.login)))
      FROM cti.gateway_token t
     ORDER BY t.issued_at DESC, t.id DESC
$$;

COMMENT ON FUNCTION cti.gateway_tokens_v1() IS 'Every browser token (no secret): scope, login, issuer, expiry, revocation, and whether it is live now';

-- A login unbound from its desk (or bound to another) loses its tokens: binding it again
-- later must not revive what was issued for the old binding.
CREATE OR REPLACE FUNCTION cti.tg_client_login__revoke_tokens() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    UPDATE cti.gateway_token SET revoked_at = now()
     WHERE login = OLD.login AND revoked_at IS NULL;
    RETURN NULL;
END
$$;

CREATE OR REPLACE TRIGGER _500_revoke_tokens
    AFTER DELETE OR UPDATE OF login, workstation_id, employee_id ON cti.client_login
    FOR EACH ROW EXECUTE FUNCTION cti.tg_client_login__revoke_tokens();

-- Routing for a cloud PBX that asks a URL (58_routing.sql): a router token, issued by a DBA.
CREATE OR REPLACE FUNCTION cti.issue_router_token_v1(p_valid interval DEFAULT '365 days') RETURNS text
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $$ SELECT cti.new_token('router', NULL, p_valid, interval '730 days') $$;

COMMENT ON FUNCTION cti.issue_router_token_v1(interval) IS 'A token for the gateway''s /route (a PBX asking which extension to ring first); shown once';

-- A token for a supervisor who may hear every recording (DBA; the rules: 59_recordings.sql).
CREATE OR REPLACE FUNCTION cti.issue_supervisor_token_v1(p_valid interval DEFAULT '12 hours') RETURNS text
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $$ SELECT cti.new_token('supervisor', NULL, p_valid, interval '90 days') $$;

COMMENT ON FUNCTION cti.issue_supervisor_token_v1(interval) IS 'A token that hears every call recording through the gateway (a supervisor); shown once';

-- A token for the supervisor wallboard (DBA): the floor now, no desk's stream.
CREATE OR REPLACE FUNCTION cti.issue_wallboard_token_v1(p_valid interval DEFAULT '30 days') RETURNS text
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $$ SELECT cti.new_token('wallboard', NULL, p_valid, interval '90 days') $$;

COMMENT ON FUNCTION cti.issue_wallboard_token_v1(interval) IS 'A token for the supervisor wallboard (shown once; the database keeps its hash)';
