"""Browser tokens die with their desk (issue 29, part 5): with the login's right to log in,
with the role itself, with its binding; a login holds few of them, a desk cannot mint
long ones; a DBA lists and revokes any, the wallboard's included."""

from __future__ import annotations

import asyncio
import json

import psycopg
import pytest
import websockets
from psycopg import sql

from ingester.gateway_process import free_port
from tests.gateway_fixture import Gateway, hello


def _refused(conn: psycopg.Connection, token: str) -> bool:
    try:
        with conn.transaction():
            conn.execute("SELECT * FROM cti.gateway_whoami(%s)", [token])
        return False
    except psycopg.errors.InvalidAuthorizationSpecification:
        return True


def test_a_token_dies_with_its_logins_right_to_log_in_and_with_the_role(conn, desks, server_dsn):
    crm, tokens, gateway_dsn = desks
    login = tokens["login-101"]
    assert not _refused(conn, tokens["101"])
    with psycopg.connect(server_dsn, autocommit=True) as admin:
        admin.execute(sql.SQL("ALTER ROLE {} NOLOGIN").format(sql.Identifier(login)))
        assert _refused(conn, tokens["101"])
        admin.execute(
            sql.SQL("ALTER ROLE {} LOGIN VALID UNTIL '2000-01-01'").format(sql.Identifier(login))
        )
        assert _refused(conn, tokens["101"])
        admin.execute(sql.SQL("ALTER ROLE {} VALID UNTIL 'infinity'").format(sql.Identifier(login)))
        assert not _refused(conn, tokens["101"])
        # Dropped, and a role made again under the same name: the old token stays dead.
        conn.execute("DELETE FROM cti.stream_ack")  # nothing of the role's may block the drop
        admin.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(login)))
        admin.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(login)))
        assert _refused(conn, tokens["101"])
        admin.execute(
            sql.SQL("CREATE ROLE {} LOGIN IN ROLE cti_client").format(sql.Identifier(login))
        )
    assert _refused(conn, tokens["101"]), "a new role of the same name is another role"


def test_unbinding_a_login_revokes_its_tokens_for_good(conn, desks):
    crm, tokens, gateway_dsn = desks
    login = tokens["login-102"]
    (workstation,) = conn.execute(
        "DELETE FROM cti.client_login WHERE login = %s RETURNING workstation_id", [login]
    ).fetchone()
    assert _refused(conn, tokens["102"])
    conn.execute(
        "INSERT INTO cti.client_login (login, workstation_id) VALUES (%s, %s)", [login, workstation]
    )
    assert _refused(conn, tokens["102"]), "binding it again revives nothing"


def test_a_login_holds_five_live_tokens_and_a_desk_asks_for_a_day_at_most(conn, desks, make_login):
    crm, tokens, gateway_dsn = desks
    login = tokens["login-101"]
    desk_dsn = make_login("cti_client", "tok101")
    desk_login = psycopg.conninfo.conninfo_to_dict(desk_dsn)["user"]
    conn.execute(
        "INSERT INTO cti.client_login (login, workstation_id) VALUES (%s, %s)",
        [desk_login, crm["ws-103"]],
    )
    with psycopg.connect(desk_dsn, autocommit=True) as desk:
        minted = [
            desk.execute("SELECT cti.issue_gateway_token_v1()").fetchone()[0] for _ in range(7)
        ]
        with pytest.raises(psycopg.errors.InvalidParameterValue, match="at most 24:00:00"):
            desk.execute("SELECT cti.issue_gateway_token_v1(p_valid => '2 days')")
    assert [_refused(conn, t) for t in minted] == [True, True] + [False] * 5
    live = conn.execute(
        "SELECT count(*) FROM cti.gateway_tokens_v1() WHERE login = %s AND live", [desk_login]
    ).fetchone()[0]
    assert live == 5
    # A DBA may issue longer ones, up to 90 days.
    conn.execute("SELECT cti.issue_gateway_token_v1(%s, '30 days')", [login])


def test_a_dba_lists_and_revokes_any_token_the_wallboards_included(conn, desks):
    crm, tokens, gateway_dsn = desks
    boards = [conn.execute("SELECT cti.issue_wallboard_token_v1()").fetchone()[0] for _ in range(2)]
    listed = conn.execute(
        "SELECT token_id, scope, login, live FROM cti.gateway_tokens_v1() ORDER BY token_id"
    ).fetchall()
    assert [(scope, live) for _, scope, _, live in listed].count(("wallboard", True)) == 2
    columns = [c.name for c in conn.execute("SELECT * FROM cti.gateway_tokens_v1()").description]
    assert "token_sha256" not in columns, "no secret in the listing"
    first_board = next(i for i, scope, _, _ in listed if scope == "wallboard")
    assert conn.execute("SELECT cti.revoke_gateway_token_v1(%s)", [first_board]).fetchone() == (
        True,
    )
    assert conn.execute("SELECT cti.revoke_gateway_tokens_v1(NULL)").fetchone() == (1,)
    for board in boards:
        with pytest.raises(psycopg.errors.InvalidAuthorizationSpecification), conn.transaction():
            conn.execute("SELECT cti.gateway_wallboard(%s)", [board])


def test_a_connected_browser_is_cut_off_when_its_login_may_no_longer_log_in(
    conn, desks, server_dsn
):
    crm, tokens, gateway_dsn = desks
    port = free_port()
    gw = Gateway(gateway_dsn, port)

    async def go() -> int | None:
        async with websockets.connect(f"ws://127.0.0.1:{port}/ws") as ws:
            await ws.send(json.dumps({"token": tokens["101"]}))
            assert json.loads(await ws.recv())["type"] == "hello"
            with psycopg.connect(server_dsn, autocommit=True) as admin:
                admin.execute(
                    sql.SQL("ALTER ROLE {} NOLOGIN").format(sql.Identifier(tokens["login-101"]))
                )
            try:
                while True:
                    await asyncio.wait_for(ws.recv(), 3)
            except websockets.ConnectionClosed as gone:
                return gone.rcvd.code if gone.rcvd else None

    try:
        code = asyncio.run(go())
        assert hello(port, tokens["101"])[1] == 4401
    finally:
        gw.stop()
    assert code == 4401
