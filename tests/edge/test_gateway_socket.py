"""`pgcti gateway` over its WebSocket, without a browser: the origin check, the limit on
connections per token, no PII in its log, bad messages, and a database that cannot answer."""

from __future__ import annotations

from ingester.clients.gateway_process import free_port
from ingester.simulator import onlinepbx3_calls as pbx
from tests.support.crm_fixture import KNOWN, LINE, builder, insert_frames
from tests.support.gateway_fixture import Gateway, header, hello, http_get
from tests.support.live import wait_for
from tests.support.tcp_proxy import TcpProxy


def test_origin_connection_limit_and_no_pii_in_the_gateways_log(conn, dsn, desks):
    crm, tokens, gateway_dsn = desks
    port = free_port()
    gw = Gateway(gateway_dsn, port, "--allow-origin", "https://crm.example")
    try:
        # A page from another origin is refused at the handshake (HTTP 403).
        assert hello(port, tokens["101"], "https://evil.example") == (None, 403)
        first, code = hello(port, tokens["101"], "https://crm.example")
        assert first["type"] == "hello" and code is None
        assert hello(port, "forged", "https://crm.example")[1] == 4401
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
    assert refused == {"type": "error", "error": 'expected {"token": "..."} first, under 1 KB'}
    assert replies == ["error", "error", "error"]
    assert "Traceback" not in out, out


def test_a_database_that_cannot_answer_closes_with_1013_and_the_next_try_works(conn, dsn, desks):
    """Through a proxy that stops letting connections through: a browser that comes then is
    told to try again (1013, which the page does by itself), not that its token is bad
    (4401); once the database answers again, the same token gets its hello."""
    from pathlib import Path

    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    crm, tokens, gateway_dsn = desks
    params = conninfo_to_dict(dsn)
    proxy = TcpProxy(Path(params["host"]) / f".s.PGSQL.{params.get('port', 5432)}")
    port = free_port()
    gw = Gateway(make_conninfo(gateway_dsn, host="127.0.0.1", port=str(proxy.port)), port)
    try:
        assert hello(port, tokens["101"])[0]["type"] == "hello"
        proxy.mode = "refuse"
        proxy.reset()  # the gateway's open connections go too
        assert hello(port, tokens["101"]) == (None, 1013)
        proxy.mode = "pass"
        wait_for(
            lambda: (hello(port, tokens["101"])[0] or {}).get("type") == "hello",
            what="a hello again",
        )
    finally:
        out = gw.stop()
        proxy.close()
    assert "the database did not answer a browser (OperationalError); it will retry" in out
    assert tokens["101"] not in out


def test_a_page_of_another_origin_is_refused_by_default(conn, dsn, desks):
    crm, tokens, gateway_dsn = desks
    port = free_port()
    gw = Gateway(gateway_dsn, port)  # no --allow-origin: the gateway's own origin only
    try:
        assert hello(port, tokens["101"], "https://evil.example") == (None, 403)
        assert hello(port, tokens["101"], f"http://127.0.0.1:{port}")[0]["type"] == "hello"
        assert hello(port, tokens["101"])[0]["type"] == "hello", "no Origin: not a browser"
    finally:
        gw.stop()


def _desk_gets_a_pop(port: int, token: str, insert, within: float) -> float | None:
    """Seconds from the insert to the desk's open_card, None when none came in time."""
    import asyncio
    import json
    import time

    import websockets

    async def go():
        async with websockets.connect(f"ws://127.0.0.1:{port}/ws") as ws:
            await ws.send(json.dumps({"token": token}))
            assert json.loads(await asyncio.wait_for(ws.recv(), 5))["type"] == "hello"
            await asyncio.sleep(0.3)  # caught up and waiting
            inserted = time.monotonic()
            await asyncio.to_thread(insert)
            try:
                while True:
                    item = json.loads(await asyncio.wait_for(ws.recv(), within))
                    if item.get("item") == "open_card":
                        return time.monotonic() - inserted
            except TimeoutError:
                return None

    return asyncio.run(go())


def test_a_pop_reaches_its_browser_while_doorbells_are_skipped(conn, dsn, desks):
    crm, tokens, gateway_dsn = desks
    # Every doorbell skipped, as when another login fills PostgreSQL's NOTIFY queue: a
    # listener that stays in a transaction keeps a notification queued, and any use of
    # the queue is more than the doorbells may have.
    import psycopg

    blocker = psycopg.connect(dsn, autocommit=True)
    blocker.execute("LISTEN pgcti_test_queue_holder")
    blocker.execute("BEGIN")
    conn.execute(  # a few pages: the queue's usage counts whole pages
        "SELECT pg_notify('pgcti_test_queue_holder', g || repeat('x', 7000))"
        " FROM generate_series(1, 4) g"
    )
    assert conn.execute("SELECT pg_notification_queue_usage()").fetchone()[0] > 0
    conn.execute("UPDATE cti.config SET doorbell_max_queue_usage = 1e-12")
    port = free_port()
    gw = Gateway(gateway_dsn, port)
    try:
        took = _desk_gets_a_pop(
            port,
            tokens["101"],
            lambda: insert_frames(conn, pbx.inbound_answered(builder(4), KNOWN, LINE, "101")),
            within=5,
        )
    finally:
        gw.stop()
        blocker.close()
    assert conn.execute("SELECT count(*) FROM cti.doorbell_skip").fetchone()[0] > 0
    assert took is not None and took < 2.0, took


def test_pooled_connections_broken_by_a_database_restart_are_replaced_at_once(conn, dsn, desks):
    """The server ends every connection of the gateway (as a restart does): the next
    browser gets its hello at the first try, and a pop arrives within 2 s."""
    from psycopg.conninfo import conninfo_to_dict

    crm, tokens, gateway_dsn = desks
    port = free_port()
    gw = Gateway(gateway_dsn, port)
    gateway_login = conninfo_to_dict(gateway_dsn)["user"]
    try:
        for _ in range(4):  # every pooled connection made and idle
            assert hello(port, tokens["101"])[0]["type"] == "hello"
        ended = conn.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE usename = %s",
            [gateway_login],
        ).fetchone()[0]
        assert ended >= 2
        first_try = [hello(port, tokens["102"]) for _ in range(3)]
        took = _desk_gets_a_pop(
            port,
            tokens["101"],
            lambda: insert_frames(conn, pbx.inbound_answered(builder(5), KNOWN, LINE, "101")),
            within=5,
        )
    finally:
        out = gw.stop()
    assert all(first and first["type"] == "hello" for first, _ in first_try), first_try
    assert took is not None and took < 2.0, took
    assert "Traceback" not in out


def _get(port: int, path: str, token: str | None = None) -> tuple[int, object]:
    """/route's answer: JSON, or the text asked for."""
    import json

    status, body, headers = http_get(port, path, token)
    kind = header(headers, "content-type") or ""
    return status, json.loads(body) if "json" in kind else body.decode()


def test_a_cloud_pbx_asks_route_and_never_waits_long(conn, dsn, desks):
    """GET /route with a router token: the client's manager first, or the PBX's own plan;
    a desk's token is refused; with the database swallowing everything the answer still
    comes within half a second, as "your own dialplan"."""
    import time
    from pathlib import Path

    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    crm, tokens, gateway_dsn = desks
    router = conn.execute("SELECT cti.issue_router_token_v1()").fetchone()[0]
    params = conninfo_to_dict(dsn)
    proxy = TcpProxy(Path(params["host"]) / f".s.PGSQL.{params.get('port', 5432)}")
    port = free_port()
    gw = Gateway(make_conninfo(gateway_dsn, host="127.0.0.1", port=str(proxy.port)), port)
    try:
        ask = "/route?caller=8%20495%20123-45-67&dialled=74950001122"
        assert _get(port, ask, router) == (200, {"extension": "101", "reason": "manager"})
        assert _get(port, f"{ask}&format=text&token={router}") == (200, "101\n")
        assert _get(port, "/route?caller=74997770000", router) == (
            200,
            {"extension": None, "reason": "unknown caller"},
        )
        assert _get(port, ask, tokens["101"])[0] == 401  # a desk's token routes nothing
        assert _get(port, "/route?dialled=1", router)[0] == 400
        proxy.mode = "blackhole"
        proxy.reset()
        started = time.monotonic()
        status, answer = _get(port, ask, router)
        assert status == 200 and answer["extension"] is None
        assert "did not answer within 0.5 s" in answer["reason"]
        assert time.monotonic() - started < 2.5
    finally:
        out = gw.stop()
        proxy.close()
    assert router not in out
    assert conn.execute("SELECT count(*) FROM cti.route_decision").fetchone()[0] == 3


def test_a_desk_sets_do_not_disturb_from_its_page(conn, dsn, desks):
    import asyncio
    import json

    import websockets

    crm, tokens, gateway_dsn = desks
    port = free_port()
    gw = Gateway(gateway_dsn, port)

    async def page() -> list[dict]:
        async with websockets.connect(f"ws://127.0.0.1:{port}/ws") as ws:
            await ws.send(json.dumps({"token": tokens["101"]}))
            answers = []
            for state in ("dnd", "lunch", "available"):
                await ws.send(json.dumps({"presence": {"state": state}}))
                while (m := json.loads(await ws.recv()))["type"] != "presence":
                    pass
                answers.append(m)
            return answers

    try:
        answers = asyncio.run(page())
    finally:
        gw.stop()
    assert answers[0] == {"type": "presence", "state": "dnd"}
    assert "must be available, away or dnd" in answers[1]["error"]
    # Back from do not disturb; what the phone itself does, no PBX event has said here.
    assert answers[2] == {"type": "presence", "state": "unknown"}
    assert conn.execute(
        "SELECT desk_state FROM cti.presence WHERE extension = '101'"
    ).fetchone() == (None,)
