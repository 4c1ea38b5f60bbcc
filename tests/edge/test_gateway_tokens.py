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

from ingester.clients.gateway_process import free_port
from tests.support.crm_fixture import KNOWN, LINE, builder, insert_frames
from tests.support.gateway_fixture import Gateway, hello


def _refused(conn: psycopg.Connection, token: str) -> bool:
    try:
        with conn.transaction():
            conn.execute("SELECT * FROM cti.gateway_whoami_v1(%s)", [token])
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
            conn.execute("SELECT cti.gateway_wallboard_v1(%s)", [board])


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


# --- What a token can read back, and who acknowledged what (issue 29, parts 4 and 6) ----


def _calls_for_desk_101(conn, count: int, first_seed: int = 100) -> None:
    from ingester.simulator import onlinepbx3_calls as pbx

    for n in range(count):
        insert_frames(conn, pbx.inbound_answered(builder(first_seed + n), KNOWN, LINE, "101"))


def test_a_stolen_token_reads_back_only_what_is_new_not_the_desks_history(conn, desks):
    crm, tokens, gateway_dsn = desks
    _calls_for_desk_101(conn, 3)
    # The desk handled those an hour ago; then two new calls, not yet acknowledged.
    conn.execute("SELECT cti.ack('ws', %s, 1000000)", [crm["ws-101"]])
    conn.execute(
        "UPDATE cti.outbox SET created_at = created_at - interval '1 hour'"
        " WHERE target_kind = 'ws' AND target_id = %s",
        [crm["ws-101"]],
    )
    old = conn.execute(
        "SELECT max(seq) FROM cti.outbox WHERE target_kind = 'ws' AND target_id = %s",
        [crm["ws-101"]],
    ).fetchone()[0]
    _calls_for_desk_101(conn, 2, first_seed=200)
    read = conn.execute(
        "SELECT seq, type FROM cti.gateway_pull_v1(%s, 'commands', 0)", [tokens["101"]]
    ).fetchall()
    assert read and all(seq > old for seq, _ in read), "the hour-old history stays closed"
    assert [t for _, t in read].count("open_card") == 2
    # The desk's own client (the client API, not a browser token) still reads everything.
    assert old >= 6


def test_every_acknowledgement_is_seen_by_the_desks_other_pages(conn, desks):
    crm, tokens, gateway_dsn = desks
    port = free_port()
    gw = Gateway(gateway_dsn, port)

    async def go() -> list:
        url = f"ws://127.0.0.1:{port}/ws"
        async with websockets.connect(url) as page, websockets.connect(url) as thief:
            for ws in (page, thief):
                await ws.send(json.dumps({"token": tokens["101"]}))
                assert json.loads(await ws.recv())["type"] == "hello"
            await asyncio.to_thread(_calls_for_desk_101, conn, 1)
            item = None
            while item is None or item.get("item") != "open_card":
                item = json.loads(await asyncio.wait_for(thief.recv(), 5))
            await thief.send(json.dumps({"ack": {"stream": "commands", "seq": item["seq"]}}))
            seen = []
            try:  # until the other page hears of that acknowledgement (or 10 s pass)
                while ("acked", item["seq"]) not in seen:
                    message = json.loads(await asyncio.wait_for(page.recv(), 10))
                    seen.append((message["type"], message.get("seq")))
            except TimeoutError:
                pass
            return item["seq"], seen

    try:
        acked, seen = asyncio.run(go())
    finally:
        gw.stop()
    assert ("acked", acked) in seen and any(t == "item" for t, _ in seen), seen


def test_a_page_that_handled_nothing_of_a_stream_is_not_replayed_its_history(
    conn, desks, make_login
):
    """After a gateway restart a page sends what it handled: its commands, and 0 of the
    notifications it never acknowledged itself. Before, that 0 replayed every ring."""
    crm, tokens, gateway_dsn = desks
    dsn = make_login("cti_client", "ringed")
    login = psycopg.conninfo.conninfo_to_dict(dsn)["user"]
    conn.execute(
        "INSERT INTO cti.client_login (login, workstation_id, employee_id) VALUES (%s, %s, %s)",
        [login, crm["ws-103"], crm["Petrova"]],
    )
    token = conn.execute("SELECT cti.issue_gateway_token_v1(%s)", [login]).fetchone()[0]
    _calls_for_desk_101(conn, 3)  # Petrova hears every ring
    conn.execute("SELECT cti.ack('emp', %s, 1000000)", [crm["Petrova"]])  # another client's
    port = free_port()
    gw = Gateway(gateway_dsn, port)

    async def go() -> list:
        async with websockets.connect(f"ws://127.0.0.1:{port}/ws") as ws:
            await ws.send(
                json.dumps({"token": token, "after": {"commands": 5, "notifications": 0}})
            )
            assert json.loads(await ws.recv())["type"] == "hello"
            got = []
            try:
                while True:
                    got.append(json.loads(await asyncio.wait_for(ws.recv(), 2.5)))
            except TimeoutError:
                return got

    try:
        got = asyncio.run(go())
    finally:
        gw.stop()
    assert [m for m in got if m.get("stream") == "notifications"] == []


def test_the_gateway_api_is_versioned_and_the_old_names_still_answer(conn, desks, make_login):
    """The gateway's functions are _v1 (issue 30, part 4); the names of the release before
    call them for one release, so a gateway of that release keeps working during an upgrade."""
    crm, tokens, gateway_dsn = desks
    with psycopg.connect(gateway_dsn, autocommit=True) as gw:
        new = gw.execute(
            "SELECT login, stream FROM cti.gateway_whoami_v1(%s)", [tokens["101"]]
        ).fetchall()
        old = gw.execute(
            "SELECT login, stream FROM cti.gateway_whoami(%s)", [tokens["101"]]
        ).fetchall()
        assert new == old == [(tokens["login-101"], "commands")]
        assert gw.execute(
            "SELECT count(*) FROM cti.gateway_pull(%s, 'commands')", [tokens["101"]]
        ).fetchone()
    client = make_login("cti_client", "phones")
    with psycopg.connect(client, autocommit=True) as desk:
        assert desk.execute("SELECT cti.normalize_phone_v1('8 (495) 123-45-67')").fetchone() == (
            "+74951234567",
        )
        assert desk.execute(
            "SELECT * FROM cti.phone_numbers_v1('8 916 111-22-33 доб. 12')"
        ).fetchall() == [("+79161112233", "12")]
