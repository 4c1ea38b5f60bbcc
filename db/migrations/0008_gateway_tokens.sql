-- Tokens for browser clients: the gateway acts for a desk's login only with its token.
-- depends: 0007_callback_tasks

-- Why: a browser cannot LISTEN to PostgreSQL, so `pgcti gateway` does it for them. Its
-- own login may do nothing but check a token and pull or ack for the token's login
-- (db/logic/75_gateway.sql); a stolen gateway password opens no desk without a token. The
-- database keeps only each token's SHA-256, with an expiry; a DBA can revoke it.

DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'cti_gateway') THEN
        -- Group role of gateway logins: token checks, pull and ack through tokens, nothing else.
        CREATE ROLE cti_gateway NOLOGIN;
    END IF;
END
$$;
GRANT USAGE ON SCHEMA cti TO cti_gateway;

SET LOCAL ROLE cti_owner;

CREATE TABLE cti.gateway_token (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    token_sha256 bytea NOT NULL UNIQUE,   -- the token itself is shown once, never stored
    scope text NOT NULL DEFAULT 'desk' CHECK (scope IN ('desk', 'wallboard')),
    login name,                           -- the desk login (cti.client_login) a desk token acts for
    issued_by name NOT NULL DEFAULT session_user,
    issued_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    revoked_at timestamptz,
    CHECK ((scope = 'desk') = (login IS NOT NULL))  -- a wallboard token is no desk's
);
COMMENT ON TABLE cti.gateway_token IS 'Browser tokens: the hash, the desk login it acts for (or the supervisor wallboard), expiry, revocation';
CREATE INDEX gateway_token_login ON cti.gateway_token (login);
