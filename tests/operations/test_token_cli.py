"""`pgcti token`: a DBA issues, lists and revokes the gateway's browser tokens from the
command line, as docs/crm-clients.md tells them to (no SQL needed)."""

from __future__ import annotations

import psycopg

from tests.conftest import run_cli


def whoami(conn, token: str) -> list:
    return conn.execute("SELECT login FROM cti.gateway_whoami_v1(%s)", [token]).fetchall()


def test_issue_list_and_revoke_desk_and_wallboard_tokens(dsn, conn, desks):
    _crm, tokens, _gateway = desks
    login = tokens["login-101"]

    issued = run_cli("token", "issue", "--dsn", dsn, "--desk", login)
    desk_token = issued.stdout.strip()
    assert len(desk_token) > 20 and "\n" not in desk_token, "the token alone on stdout"
    assert "shown once" in issued.stderr
    assert {row[0] for row in whoami(conn, desk_token)} == {login}

    wallboard_token = run_cli("token", "issue", "--dsn", dsn, "--wallboard").stdout.strip()
    board = conn.execute("SELECT cti.gateway_wallboard_v1(%s)", [wallboard_token]).fetchone()[0]
    assert {"at", "lines", "desks"} <= set(board)

    listed = run_cli("token", "list", "--dsn", dsn).stdout
    assert desk_token not in listed and wallboard_token not in listed, "never the secret"
    lines = listed.splitlines()
    assert lines[0].split()[:3] == ["id", "scope", "login"]
    assert any(" wallboard " in line and line.endswith("live") for line in lines)
    desk_lines = [line for line in lines if login in line]
    assert len(desk_lines) == 2 and all(
        line.endswith("live") for line in desk_lines
    )  # fixture's + ours

    # Revoke the newest desk token by its id: it opens nothing any more.
    newest_id = int(desk_lines[0].split()[0])
    revoked = run_cli("token", "revoke", "--dsn", dsn, str(newest_id))
    assert "1 live token(s) revoked" in revoked.stdout
    try:
        whoami(conn, desk_token)
        raise AssertionError("a revoked token still opened the desk")
    except psycopg.Error:
        pass
    assert run_cli("token", "list", "--dsn", dsn).stdout.count("revoked") == 1

    # Every token of the desk, then every wallboard token.
    assert (
        "1 live token(s) revoked"
        in run_cli("token", "revoke", "--dsn", dsn, "--desk", login).stdout
    )
    assert (
        "1 live token(s) revoked" in run_cli("token", "revoke", "--dsn", dsn, "--wallboards").stdout
    )
    assert (
        "0 live token(s) revoked" in run_cli("token", "revoke", "--dsn", dsn, "--wallboards").stdout
    )


def test_what_the_database_refuses_is_one_clear_line(dsn, desks):
    unbound = run_cli("token", "issue", "--dsn", dsn, "--desk", "nobody_here", check=False)
    assert unbound.returncode == 2
    assert 'login "nobody_here" is not bound to a workstation or employee' in unbound.stderr
    assert "Traceback" not in unbound.stderr

    bad_valid = run_cli(
        "token", "issue", "--dsn", dsn, "--wallboard", "--valid", "forever", check=False
    )
    assert bad_valid.returncode == 2
    assert "invalid input syntax for type interval" in bad_valid.stderr
    assert len(bad_valid.stderr.strip().splitlines()) == 2  # the database line, then the error

    neither = run_cli("token", "revoke", "--dsn", dsn, check=False)
    assert neither.returncode == 2 and "one of the arguments" in neither.stderr


def test_router_and_supervisor_tokens_from_the_cli_and_revoking_wallboards_spares_them(dsn, conn):
    router = run_cli("token", "issue", "--dsn", dsn, "--router").stdout.strip()
    supervisor = run_cli("token", "issue", "--dsn", dsn, "--supervisor")
    assert "a supervisor (every recording), valid 12 hours" in supervisor.stderr
    assert conn.execute(
        "SELECT reason FROM cti.gateway_route_v1(%s, 'anonymous')", [router]
    ).fetchone() == ("no caller number",)
    run_cli("token", "issue", "--dsn", dsn, "--wallboard")
    assert (
        "1 live token(s) revoked" in run_cli("token", "revoke", "--dsn", dsn, "--wallboards").stdout
    )
    scopes = conn.execute(
        "SELECT scope FROM cti.gateway_token WHERE revoked_at IS NULL ORDER BY scope"
    ).fetchall()
    assert scopes == [("router",), ("supervisor",)]
