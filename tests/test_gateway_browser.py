"""`pgcti gateway` and its web screen pop in a real headless Chromium (Debian's chromium
and chromedriver, driven by Selenium): the card appears at the right desk and only there,
a transfer moves it, a gateway restart loses nothing, and tokens keep desks apart."""

from __future__ import annotations

import shutil
import subprocess
import sys

import psycopg
import pytest

from ingester.simulator import onlinepbx3_calls as pbx
from tests.crm_fixture import KNOWN, LINE, builder, insert_frames, seed_crm
from tests.live import free_port, wait_for


def _chromedriver() -> str:
    path = shutil.which("chromedriver")
    if not path or not shutil.which("chromium"):
        pytest.skip(
            "no chromium/chromedriver here (make test installs Debian's when it runs as root)"
        )
    return path


@pytest.fixture
def desks(conn, make_login):
    """Desks 101 and 102 with their logins and a token each; the gateway's own login."""
    crm = seed_crm(conn)
    tokens = {}
    for ext in ("101", "102"):
        dsn = make_login("cti_client", f"gw{ext}")
        login = psycopg.conninfo.conninfo_to_dict(dsn)["user"]
        conn.execute(
            "INSERT INTO cti.client_login (login, workstation_id) VALUES (%s, %s)",
            [login, crm[f"ws-{ext}"]],
        )
        with psycopg.connect(dsn, autocommit=True) as desk:  # a desk issues its own token
            tokens[ext] = desk.execute("SELECT cti.issue_gateway_token_v1()").fetchone()[0]
        tokens[f"login-{ext}"] = login
    return crm, tokens, make_login("cti_gateway", "gw")


class Gateway:
    def __init__(self, dsn: str, port: int, *extra: str) -> None:
        self.port = port
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "ingester.cli",
                "gateway",
                "--dsn",
                dsn,
                "--port",
                str(port),
                "--card-url",
                "https://crm.example/clients/{client_id}",
                *extra,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        wait_for(self._up, what="the gateway to listen")

    def _up(self) -> bool:
        import socket

        with socket.socket() as s:
            return s.connect_ex(("127.0.0.1", self.port)) == 0

    def url(self, token: str) -> str:
        return f"http://127.0.0.1:{self.port}/#token={token}"

    def stop(self) -> str:
        self.proc.terminate()
        try:
            out, _ = self.proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, _ = self.proc.communicate()
            raise AssertionError(f"the gateway did not stop on SIGTERM:\n{out}") from None
        return out


@pytest.fixture
def browser_factory(tmp_path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    driver_path = _chromedriver()
    made = []

    def make():
        options = webdriver.ChromeOptions()
        options.binary_location = shutil.which("chromium")
        for flag in (
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            f"--user-data-dir={tmp_path / f'profile{len(made)}'}",
        ):
            options.add_argument(flag)
        driver = webdriver.Chrome(service=Service(driver_path), options=options)
        made.append(driver)
        return driver

    yield make
    for driver in made:
        driver.quit()


def _card(driver) -> str | None:
    card = driver.find_element("id", "card")
    return None if card.get_attribute("hidden") is not None else card.text


def _status(driver) -> str:
    return driver.find_element("id", "status").text


def test_the_card_appears_at_the_right_desk_only_and_moves_on_transfer(
    conn, dsn, desks, browser_factory
):
    crm, tokens, gateway_dsn = desks
    gw = Gateway(gateway_dsn, free_port())
    try:
        a, b = browser_factory(), browser_factory()
        a.get(gw.url(tokens["101"]))
        b.get(gw.url(tokens["102"]))
        wait_for(lambda: _status(a) == "live" and _status(b) == "live", what="both pages live")
        insert_frames(conn, pbx.inbound_answered(builder(2), KNOWN, LINE, "103"))  # earlier
        call = builder(1)
        frames = pbx.blind_transfer_chain(call, KNOWN, LINE, ["101", "102"])
        answered = next(i for i, f in enumerate(frames) if f["event"] == "channel_answer")
        insert_frames(conn, frames[: answered + 2])
        wait_for(lambda: _card(a) and "Ivan Ivanov" in _card(a), what="the card at desk 101")
        # Ivanov called before: his last contacts come from pgcti's own history.
        wait_for(lambda: "inbound answered (103)" in _card(a), what="the last contacts")
        assert "Romashka" in _card(a) and "Petrova" in _card(a)
        assert _card(b) is None, "desk 102 shows nothing"
        link = a.find_element("css selector", "#card-link a").get_attribute("href")
        assert link == f"https://crm.example/clients/{crm['ivanov']}"
        insert_frames(conn, frames[answered + 2 :])  # the transfer to 102, then the end
        wait_for(lambda: _card(a) is None, what="the card closed at 101")
        wait_for(
            lambda: _card(b) is None and b.find_elements("css selector", "#card[data-call-id]"),
            what="the card shown at 102, then closed when the call ended",
        )
    finally:
        gw.stop()


def _handled(driver) -> list[str]:
    return driver.execute_script("return document.getElementById('log').textContent").split()


def test_a_gateway_restart_loses_nothing(conn, dsn, desks, browser_factory):
    crm, tokens, gateway_dsn = desks
    port = free_port()
    gw = Gateway(gateway_dsn, port)
    page = browser_factory()
    page.get(gw.url(tokens["101"]))
    wait_for(lambda: _status(page) == "live", what="live")
    insert_frames(conn, pbx.inbound_answered(builder(9), KNOWN, LINE, "101"))
    wait_for(lambda: len(_handled(page)) == 6, what="the first call's open_card and call_ended")
    gw.stop()
    wait_for(lambda: "reconnecting" in _status(page), what="the page to say it reconnects")
    for n in range(3):  # three calls answered at desk 101 while the gateway is down
        insert_frames(conn, pbx.inbound_answered(builder(10 + n), KNOWN, LINE, "101"))
    gw = Gateway(gateway_dsn, port)
    try:
        wait_for(lambda: _status(page) == "live", timeout=30, what="live again")
        wait_for(lambda: len(_handled(page)) == 24, what="the page caught up")
        seqs = [int(s) for s in _handled(page)[1::3]]
        assert seqs == list(range(1, 9)), "every command once, in order"
        assert _handled(page)[2::3] == ["open_card", "call_ended"] * 4
        acked = conn.execute(
            "SELECT acked_seq FROM cti.stream_ack WHERE target_kind = 'ws' AND target_id = %s",
            [crm["ws-101"]],
        )
        wait_for(
            lambda: (
                acked.connection.execute(
                    "SELECT acked_seq FROM cti.stream_ack WHERE target_kind = 'ws' AND target_id = %s",
                    [crm["ws-101"]],
                ).fetchone()
                == (8,)
            ),
            what="acked up to the last",
        )
    finally:
        gw.stop()


def test_tokens_keep_desks_apart_and_expired_or_revoked_ones_are_refused(
    conn, dsn, desks, make_login
):
    crm, tokens, gateway_dsn = desks
    with psycopg.connect(gateway_dsn, autocommit=True) as gw:
        (row,) = gw.execute(
            "SELECT target_id FROM cti.gateway_whoami(%s)", [tokens["101"]]
        ).fetchall()
        assert row == (crm["ws-101"],)
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            gw.execute("SELECT * FROM cti.outbox")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            gw.execute("SELECT * FROM cti.pull_commands_v1()")
        with pytest.raises(psycopg.errors.InvalidAuthorizationSpecification):
            gw.execute("SELECT * FROM cti.gateway_pull('not-a-token', 'commands')")
    conn.execute("SELECT cti.revoke_gateway_tokens_v1(%s)", [tokens["login-101"]])
    conn.execute(
        "UPDATE cti.gateway_token SET expires_at = now() - interval '1 second' WHERE login = %s",
        [tokens["login-102"]],
    )
    with psycopg.connect(gateway_dsn, autocommit=True) as gw:
        for ext in ("101", "102"):
            with pytest.raises(psycopg.errors.InvalidAuthorizationSpecification):
                gw.execute("SELECT * FROM cti.gateway_whoami(%s)", [tokens[ext]])
    other = make_login("cti_client", "gwother")
    with psycopg.connect(other, autocommit=True) as desk, pytest.raises(psycopg.Error):
        desk.execute("SELECT cti.issue_gateway_token_v1(%s)", [tokens["login-101"]])


def _hello(port: int, token: str, origin: str | None = None) -> tuple[dict | None, int | None]:
    """Connect as a browser would; (first message, close code)."""
    import asyncio
    import json

    import websockets

    async def go():
        async with websockets.connect(f"ws://127.0.0.1:{port}/ws", origin=origin) as ws:
            await ws.send(json.dumps({"token": token}))
            try:
                first = json.loads(await asyncio.wait_for(ws.recv(), 5))
            except websockets.ConnectionClosed as closed:
                return None, closed.rcvd.code if closed.rcvd else None
            try:
                await asyncio.wait_for(ws.recv(), 0.5)
            except TimeoutError:
                return first, None  # still open
            except websockets.ConnectionClosed as closed:
                return first, closed.rcvd.code if closed.rcvd else None
            return first, None

    try:
        return asyncio.run(go())
    except websockets.InvalidStatus as refused:
        return None, refused.response.status_code


def test_origin_connection_limit_and_no_pii_in_the_gateways_log(conn, dsn, desks):
    crm, tokens, gateway_dsn = desks
    port = free_port()
    gw = Gateway(gateway_dsn, port, "--allow-origin", "https://crm.example")
    try:
        # A page from another origin is refused at the handshake (HTTP 403).
        assert _hello(port, tokens["101"], "https://evil.example") == (None, 403)
        first, code = _hello(port, tokens["101"], "https://crm.example")
        assert first["type"] == "hello" and code is None
        assert _hello(port, "forged", "https://crm.example")[1] == 4401
        insert_frames(conn, pbx.inbound_answered(builder(3), KNOWN, LINE, "101"))
    finally:
        out = gw.stop()
    for private in (tokens["101"], "Ivan Ivanov", "4951234567", "Romashka"):
        assert private not in out, f"{private!r} in the gateway's log"


def test_a_token_has_a_limit_on_its_connections(conn, dsn, desks):
    import asyncio
    import json

    import websockets

    crm, tokens, gateway_dsn = desks
    port = free_port()
    gw = Gateway(gateway_dsn, port)

    async def go() -> list:
        sockets, codes = [], []
        for _ in range(4):  # the limit is 3
            ws = await websockets.connect(f"ws://127.0.0.1:{port}/ws")
            await ws.send(json.dumps({"token": tokens["101"]}))
            reply = json.loads(await asyncio.wait_for(ws.recv(), 5))
            codes.append(reply["type"])
            sockets.append(ws)
        for ws in sockets:
            await ws.close()
        return codes

    try:
        assert asyncio.run(go()) == ["hello", "hello", "hello", "error"]
    finally:
        gw.stop()


def test_a_revoked_token_is_refused_and_the_page_says_so(conn, dsn, desks, browser_factory):
    crm, tokens, gateway_dsn = desks
    conn.execute("SELECT cti.revoke_gateway_tokens_v1(%s)", [tokens["login-102"]])
    gw = Gateway(gateway_dsn, free_port())
    try:
        page = browser_factory()
        page.get(gw.url(tokens["102"]))
        wait_for(lambda: _status(page).startswith("refused"), what="the page to say refused")
        assert "expired or revoked" in _status(page)
        insert_frames(conn, pbx.inbound_answered(builder(4), KNOWN, LINE, "102"))
        assert _card(page) is None
    finally:
        gw.stop()


def _rows(driver, table: str) -> list[list[str]]:
    """The table's cells, read in one go (the board redraws them as the floor changes)."""
    return driver.execute_script(
        "return [...document.querySelectorAll(arguments[0])]"
        ".map(tr => [...tr.querySelectorAll('td')].map(td => td.textContent))",
        f"#{table} tbody tr",
    )


def test_the_supervisor_wallboard_shows_the_floor_now(conn, dsn, desks, browser_factory):
    """Calls ringing and talking per line, each desk's state, callback tasks past due; a
    desk's token opens no wallboard and the wallboard's opens no desk."""
    crm, tokens, gateway_dsn = desks
    board_token = conn.execute("SELECT cti.issue_wallboard_token_v1()").fetchone()[0]
    conn.execute("UPDATE cti.config SET callback_due_after = '0'")  # every task is overdue at once
    gw = Gateway(gateway_dsn, free_port())
    try:
        page = browser_factory()
        page.get(f"http://127.0.0.1:{gw.port}/wallboard#token={board_token}")
        wait_for(lambda: _status(page) == "live", what="the board live")
        ringing = pbx.blind_transfer_chain(builder(1), KNOWN, LINE, ["101", "102"])
        answer = next(i for i, f in enumerate(ringing) if f["event"] == "channel_answer")
        insert_frames(conn, ringing[:answer])
        wait_for(lambda: _rows(page, "lines") == [["74950001122", "1", "0"]], what="one ringing")
        insert_frames(conn, ringing[answer : answer + 2])
        wait_for(lambda: _rows(page, "lines") == [["74950001122", "0", "1"]], what="one talking")
        desks_now = {r[0]: r[1:3] for r in _rows(page, "desks")}
        assert desks_now[str(crm["ws-101"])] == ["talking", "101"]
        assert desks_now[str(crm["ws-102"])] == ["idle", ""]
        insert_frames(conn, ringing[answer + 2 :])
        insert_frames(conn, pbx.inbound_unanswered(builder(2), KNOWN, LINE, ["101"], "NO_ANSWER"))
        wait_for(
            lambda: [r[0] for r in _rows(page, "tasks")] == ["+74951234567"], what="a task past due"
        )
        assert _rows(page, "lines") == []
        # Scopes: neither kind of token opens the other's view.
        wrong = browser_factory()
        wrong.get(f"http://127.0.0.1:{gw.port}/wallboard#token={tokens['101']}")
        wait_for(lambda: _status(wrong).startswith("refused"), what="a desk token refused")
    finally:
        gw.stop()
    with (
        psycopg.connect(gateway_dsn, autocommit=True) as gw_conn,
        pytest.raises(psycopg.errors.InvalidAuthorizationSpecification),
    ):
        gw_conn.execute("SELECT * FROM cti.gateway_whoami(%s)", [board_token])


def test_bad_messages_get_a_clear_error_and_the_connection_goes_on(conn, dsn, desks):
    import asyncio
    import json

    import websockets

    crm, tokens, gateway_dsn = desks
    port = free_port()
    gw = Gateway(gateway_dsn, port)

    async def go() -> tuple:
        async with websockets.connect(f"ws://127.0.0.1:{port}/ws") as ws:
            await ws.send("not json")
            refused = json.loads(await ws.recv())
        async with websockets.connect(f"ws://127.0.0.1:{port}/ws") as ws:
            await ws.send(json.dumps({"token": tokens["101"]}))
            await ws.recv()  # hello
            replies = []
            for bad in ("{", json.dumps({"ack": {"seq": "x"}}), json.dumps({"contacts": [1]})):
                await ws.send(bad)
                replies.append(json.loads(await asyncio.wait_for(ws.recv(), 5))["type"])
            await ws.send(json.dumps({"ack": {"stream": "commands", "seq": 0}}))  # still served
            return refused, replies

    try:
        refused, replies = asyncio.run(go())
    finally:
        out = gw.stop()
    assert refused == {"type": "error", "error": 'expected {"token": "..."} first'}
    assert replies == ["error", "error", "error"]
    assert "Traceback" not in out, out


def test_a_database_that_cannot_answer_closes_with_1013_and_the_next_try_works(conn, dsn, desks):
    """Through a proxy that stops letting connections through: a browser that comes then is
    told to try again (1013, which the page does by itself), not that its token is bad
    (4401); once the database answers again, the same token gets its hello."""
    from pathlib import Path

    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    from tests.tcp_proxy import TcpProxy

    crm, tokens, gateway_dsn = desks
    params = conninfo_to_dict(dsn)
    proxy = TcpProxy(Path(params["host"]) / f".s.PGSQL.{params.get('port', 5432)}")
    port = free_port()
    gw = Gateway(make_conninfo(gateway_dsn, host="127.0.0.1", port=str(proxy.port)), port)
    try:
        assert _hello(port, tokens["101"])[0]["type"] == "hello"
        proxy.mode = "refuse"
        proxy.reset()  # the gateway's open connections go too
        assert _hello(port, tokens["101"]) == (None, 1013)
        proxy.mode = "pass"
        wait_for(
            lambda: (_hello(port, tokens["101"])[0] or {}).get("type") == "hello",
            what="a hello again",
        )
    finally:
        out = gw.stop()
        proxy.close()
    assert "the database did not answer a browser (OperationalError); it will retry" in out
    assert tokens["101"] not in out
