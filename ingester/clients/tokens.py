"""`pgcti token`: browser tokens for the gateway (a desk's page, the supervisor's wallboard)
issued, listed and revoked by a DBA, so that no one has to do it in SQL. The rules (who may
issue what, for how long) are db/logic/74_gateway_tokens.sql's; a token is shown once: the
database keeps only its hash."""

from __future__ import annotations

from datetime import UTC

import psycopg

from ingester.queries import query


class TokenError(Exception):
    """What the database refused, as one line (the login, the validity, the right)."""


def _refused(exc: psycopg.Error) -> TokenError:
    message = exc.diag.message_primary or str(exc)
    return TokenError(" ".join(message.split()))


def issue(dsn: str, desk: str | None, valid: str, kind: str = "desk") -> str:
    """A new token: for a desk login, the wallboard, or a PBX's routing requests."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        try:
            if kind in ("wallboard", "router", "supervisor"):
                return conn.execute(query(f"token_issue_{kind}"), {"valid": valid}).fetchone()[0]
            return conn.execute(
                query("token_issue_desk"), {"login": desk, "valid": valid}
            ).fetchone()[0]
        except psycopg.Error as exc:
            raise _refused(exc) from None


def listing(dsn: str) -> list[str]:
    """Every token, newest first, one line each (never the token itself)."""
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(query("token_list")).fetchall()
    lines = [f"{'id':>6}  {'scope':<9}  {'login':<24}  {'expires (UTC)':<16}  state"]
    for token_id, scope, login, _by, _at, expires, revoked, live in rows:
        state = "live" if live else ("revoked" if revoked else "dead")
        expires_text = expires.astimezone(UTC).strftime("%Y-%m-%d %H:%M") if expires else "-"
        lines.append(f"{token_id:>6}  {scope:<9}  {login or '-':<24}  {expires_text:<16}  {state}")
    return lines


def revoke(dsn: str, token_id: int | None, login: str | None, wallboards: bool) -> int:
    """Revoke one token by id, every token of a desk login, or every wallboard token;
    returns how many were live."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        try:
            if token_id is not None:
                return int(
                    conn.execute(query("token_revoke_one"), {"token_id": token_id}).fetchone()[0]
                )
            return conn.execute(
                query("token_revoke_login"), {"login": None if wallboards else login}
            ).fetchone()[0]
        except psycopg.Error as exc:
            raise _refused(exc) from None
