-- `pgcti token`: browser tokens for the gateway's desk page and wallboard (db/logic/74_gateway_tokens.sql).
-- Named statements of the Python edge (ingester/queries.py loads every file here).

-- name: token_issue_desk
SELECT cti.issue_gateway_token_v1(%(login)s, %(valid)s::interval);

-- name: token_issue_wallboard
SELECT cti.issue_wallboard_token_v1(%(valid)s::interval);

-- name: token_issue_supervisor
SELECT cti.issue_supervisor_token_v1(%(valid)s::interval);

-- name: token_issue_router
SELECT cti.issue_router_token_v1(%(valid)s::interval);

-- name: token_list
SELECT token_id, scope, login, issued_by, issued_at, expires_at, revoked_at, live
  FROM cti.gateway_tokens_v1();

-- name: token_revoke_one
SELECT cti.revoke_gateway_token_v1(%(token_id)s);

-- name: token_revoke_login
SELECT cti.revoke_gateway_tokens_v1(%(login)s);
