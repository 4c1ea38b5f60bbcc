"""`pgcti gateway` and its web screen pop in a real headless Chromium (Debian's chromium
and chromedriver, driven by Selenium): the card appears at the right desk and only there,
a transfer moves it, a gateway restart loses nothing, and tokens keep desks apart."""

from __future__ import annotations

import psycopg
import pytest

from ingester.clients.gateway_process import free_port
from ingester.simulator import onlinepbx3_calls as pbx
from tests.support.browser import rows_of, status
from tests.support.crm_fixture import KNOWN, LINE, builder, insert_frames
from tests.support.gateway_fixture import Gateway
from tests.support.live import IngestProcess, SimulatorThread, wait_for


def _card(driver) -> str | None:
    card = driver.find_element("id", "card")
    return None if card.get_attribute("hidden") is not None else card.text


def test_the_card_appears_at_the_right_desk_only_and_moves_on_transfer(
    conn, dsn, desks, browser_factory
):
    crm, tokens, gateway_dsn = desks
    gw = Gateway(gateway_dsn, free_port())
    try:
        a, b = browser_factory(), browser_factory()
        a.get(gw.url(tokens["101"]))
        b.get(gw.url(tokens["102"]))
        wait_for(lambda: status(a) == "live" and status(b) == "live", what="both pages live")
        insert_frames(conn, pbx.inbound_answered(builder(2), KNOWN, LINE, "103"))  # earlier
        call = builder(1)
        frames = pbx.blind_transfer_chain(call, KNOWN, LINE, ["101", "102"])
        answered = next(i for i, f in enumerate(frames) if f["event"] == "channel_answer")
        insert_frames(conn, frames[: answered + 2])
        wait_for(lambda: _card(a) and "Ivan Ivanov" in _card(a), what="the card at desk 101")
        assert (
            a.find_element("id", "login").text == "ws-101 (101)"
        )  # the desk's name, not the login
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
    wait_for(lambda: status(page) == "live", what="live")
    insert_frames(conn, pbx.inbound_answered(builder(9), KNOWN, LINE, "101"))
    wait_for(lambda: len(_handled(page)) == 6, what="the first call's open_card and call_ended")
    gw.stop()
    wait_for(lambda: "reconnecting" in status(page), what="the page to say it reconnects")
    for n in range(3):  # three calls answered at desk 101 while the gateway is down
        insert_frames(conn, pbx.inbound_answered(builder(10 + n), KNOWN, LINE, "101"))
    gw = Gateway(gateway_dsn, port)
    try:
        wait_for(lambda: status(page) == "live", timeout=30, what="live again")
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
            "SELECT target_id FROM cti.gateway_whoami_v1(%s)", [tokens["101"]]
        ).fetchall()
        assert row == (crm["ws-101"],)
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            gw.execute("SELECT * FROM cti.outbox")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            gw.execute("SELECT * FROM cti.pull_commands_v1()")
        with pytest.raises(psycopg.errors.InvalidAuthorizationSpecification):
            gw.execute("SELECT * FROM cti.gateway_pull_v1('not-a-token', 'commands')")
    conn.execute("SELECT cti.revoke_gateway_tokens_v1(%s)", [tokens["login-101"]])
    conn.execute(
        "UPDATE cti.gateway_token SET expires_at = now() - interval '1 second' WHERE login = %s",
        [tokens["login-102"]],
    )
    with psycopg.connect(gateway_dsn, autocommit=True) as gw:
        for ext in ("101", "102"):
            with pytest.raises(psycopg.errors.InvalidAuthorizationSpecification):
                gw.execute("SELECT * FROM cti.gateway_whoami_v1(%s)", [tokens[ext]])
    other = make_login("cti_client", "gwother")
    with psycopg.connect(other, autocommit=True) as desk, pytest.raises(psycopg.Error):
        desk.execute("SELECT cti.issue_gateway_token_v1(%s)", [tokens["login-101"]])


def test_a_revoked_token_is_refused_and_the_page_says_so(conn, dsn, desks, browser_factory):
    crm, tokens, gateway_dsn = desks
    conn.execute("SELECT cti.revoke_gateway_tokens_v1(%s)", [tokens["login-102"]])
    gw = Gateway(gateway_dsn, free_port())
    try:
        page = browser_factory()
        page.get(gw.url(tokens["102"]))
        wait_for(lambda: status(page).startswith("refused"), what="the page to say refused")
        assert "expired or revoked" in status(page)
        insert_frames(conn, pbx.inbound_answered(builder(4), KNOWN, LINE, "102"))
        assert _card(page) is None
    finally:
        gw.stop()


def test_a_reloaded_page_shows_nothing_twice_and_sees_acks_by_another_session(
    conn, dsn, desks, browser_factory
):
    import asyncio
    import json

    import websockets

    crm, tokens, gateway_dsn = desks
    port = free_port()
    gw = Gateway(gateway_dsn, port)
    try:
        page = browser_factory()
        page.get(gw.url(tokens["101"]))
        wait_for(lambda: status(page) == "live", what="live")
        insert_frames(conn, pbx.inbound_answered(builder(31), KNOWN, LINE, "101"))
        wait_for(lambda: len(_handled(page)) == 6, what="open_card and call_ended handled")
        # Acknowledged by the page; made to look unacknowledged again (as when its acks were
        # lost), then the page is reloaded: it keeps what it handled and shows nothing twice.
        conn.execute("DELETE FROM cti.stream_ack")
        page.refresh()
        wait_for(lambda: status(page) == "live", what="live after the reload")
        insert_frames(conn, pbx.inbound_answered(builder(32), KNOWN, LINE, "101"))
        wait_for(lambda: len(_handled(page)) == 6, what="only the new call's items")
        assert [int(s) for s in _handled(page)[1::3]] == [3, 4]

        async def thief() -> None:  # the same token elsewhere acks the next item first
            async with websockets.connect(f"ws://127.0.0.1:{port}/ws") as ws:
                await ws.send(json.dumps({"token": tokens["101"]}))
                await ws.recv()
                await asyncio.to_thread(
                    insert_frames, conn, pbx.inbound_answered(builder(33), KNOWN, LINE, "101")
                )
                while True:
                    m = json.loads(await asyncio.wait_for(ws.recv(), 5))
                    if m.get("type") == "item" and m["seq"] >= 5:
                        await ws.send(json.dumps({"ack": {"stream": "commands", "seq": m["seq"]}}))
                        return

        asyncio.run(thief())
        wait_for(lambda: page.find_element("id", "taken").is_displayed(), what="the page to say so")
        assert "Taken by another session" in page.find_element("id", "taken").text
    finally:
        gw.stop()


def test_a_desk_calls_back_from_the_card_and_sees_the_call_placed(
    conn, dsn, desks, browser_factory, tmp_path
):
    """Click-to-call from the page: the Call button on the card asks the gateway, `pgcti
    ingest --dial` places it on the (simulated) PBX, the page shows the request's state, and
    the card of the call it placed says it is the desk's own call."""
    crm, tokens, gateway_dsn = desks
    ami = SimulatorThread(protocol="asterisk")
    edge = IngestProcess(dsn, ami.url, tmp_path, ami.server.secret, "--pbx", "asterisk", "--dial")
    gw = Gateway(gateway_dsn, free_port())
    try:
        wait_for(lambda: "taking dial requests" in edge.log, 20, "the dialer ready")
        page = browser_factory()
        frames, answered = _ivanov_answered_at_101(conn, page, gw.url(tokens["101"]))
        # Each entry of the history calls back too.
        wait_for(
            lambda: page.find_elements("css selector", "#card-contacts button.call"), what="history"
        )
        page.save_screenshot(str(tmp_path / "desk-card-with-call.png"))
        page.find_element("css selector", "#card-call button.call").click()
        insert_frames(conn, frames[answered + 2 :])
        wait_for(
            lambda: "+74951234567: done: they answered" in page.find_element("id", "dials").text,
            30,
            "the call placed, answered and ended",
        )
        (rid,) = conn.execute("SELECT id FROM cti.dial_request").fetchone()
        assert ami.server.originates == {str(rid): 1}
        # The placed call's card (shown, then closed when the call ended) says whose call it is.
        wait_for(
            lambda: (
                "placed from the CRM"
                in page.execute_script("return document.getElementById('card-call').textContent")
            ),
            15,
            "its card",
        )
        page.save_screenshot(str(tmp_path / "desk-click-to-call.png"))
    finally:
        gw.stop()
        assert edge.stop() == 0
        ami.close()


def test_a_new_callers_card_says_so_with_the_line_called(
    conn, dsn, desks, browser_factory, tmp_path
):
    crm, tokens, gateway_dsn = desks
    gw = Gateway(gateway_dsn, free_port())
    try:
        page = browser_factory()
        page.get(gw.url(tokens["101"]))
        wait_for(lambda: status(page) == "live", what="live")
        frames = pbx.inbound_answered(builder(7), "+74997770011", LINE, "101")
        answered = next(i for i, f in enumerate(frames) if f["event"] == "channel_answer")
        insert_frames(conn, frames[: answered + 2])
        wait_for(lambda: _card(page), what="the card")
        # Registered now as a lead by the CRM (the reference CRM calls it "Lead").
        assert page.find_element("id", "card-name").text == f"New caller · line {LINE} (Lead)"
        # A first call has no history: the card says so rather than show an empty list.
        wait_for(
            lambda: page.find_element("id", "card-contacts").text == "none before this call",
            what="no earlier contacts",
        )
        page.save_screenshot(str(tmp_path / "desk-new-caller.png"))
    finally:
        gw.stop()


def test_a_ring_in_a_background_tab_notifies_once_the_person_allowed_it(
    conn, dsn, desks, browser_factory
):
    crm, tokens, gateway_dsn = desks
    conn.execute(  # desk 101 is Petrova's, who hears rings (a new binding: a new token)
        "UPDATE cti.client_login SET employee_id = %s WHERE login = %s",
        [crm["Petrova"], tokens["login-101"]],
    )
    token = conn.execute("SELECT cti.issue_gateway_token_v1(%s)", [tokens["login-101"]]).fetchone()[
        0
    ]
    gw = Gateway(gateway_dsn, free_port())
    try:
        page = browser_factory()
        page.get(gw.url(token))
        wait_for(lambda: status(page) == "live", what="live")
        assert page.find_element("id", "notify").text == "Notify me of rings"
        # The person allows notifications (Chromium's own permission, granted as a click would).
        page.execute_cdp_cmd(
            "Browser.grantPermissions",
            {"origin": f"http://127.0.0.1:{gw.port}", "permissions": ["notifications"]},
        )
        page.find_element("id", "notify").click()
        wait_for(
            lambda: page.find_element("id", "notify").text == "Notifications on", what="allowed"
        )
        # What the page shows, recorded as it goes to the real Notification; the tab in the background.
        page.execute_script(
            "window.shown = []; const Real = window.Notification;"
            "window.Notification = function (title, options) { window.shown.push(title);"
            " return new Real(title, options); };"
            "window.Notification.permission = Real.permission;"
            "Object.defineProperty(document, 'hidden', { get: () => true });"
        )
        frames = pbx.inbound_answered(builder(8), KNOWN, LINE, "101")
        insert_frames(conn, frames[:2])  # ringing
        wait_for(
            lambda: (
                page.execute_script("return window.shown") == ["Ringing: +74951234567 Ivan Ivanov"]
            ),
            what="one notification for the ring",
        )
    finally:
        gw.stop()


def test_open_in_the_crm_opens_the_clients_own_card_as_in_the_demo(
    conn, dsn, desks, browser_factory, tmp_path
):
    """Issue 35, part 9: the card's link, with the demo's CRM card page behind it (the demo
    serves it and gives the gateway its address, as a real CRM's would be given)."""
    import asyncio
    import threading

    from ingester.demo import crm_card

    crm, tokens, gateway_dsn = desks
    cards = crm_card.card_server(dsn)
    loop = asyncio.new_event_loop()
    threading.Thread(target=loop.run_forever, daemon=True).start()
    template = asyncio.run_coroutine_threadsafe(cards.start(), loop).result(10)
    gw = Gateway(gateway_dsn, free_port(), "--card-url", template)
    try:
        page = browser_factory()
        frames, answered = _ivanov_answered_at_101(conn, page, gw.url(tokens["101"]))
        link = page.find_element("css selector", "#card-link a")
        assert link.text == "Open in the CRM"
        assert link.get_attribute("href") == template.format(client_id=crm["ivanov"])
        page.get(link.get_attribute("href"))  # as the click opens it, in this tab
        assert page.find_element("tag name", "h1").text == "Ivan Ivanov"
        shown = page.find_element("tag name", "body").text
        assert "Romashka" in shown and "Petrova" in shown, shown
        calls = rows_of(page, "table tr")
        assert [c[1:3] for c in calls] == [["inbound", "under way"], ["inbound", "answered"]]
        page.save_screenshot(str(tmp_path / "demo-crm-card.png"))
        page.get(template.format(client_id=999999))
        assert page.find_element("tag name", "h1").text == "No such client"
    finally:
        gw.stop()
        asyncio.run_coroutine_threadsafe(cards.stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)


def _ivanov_answered_at_101(conn, page, desk_url: str) -> tuple[list[dict], int]:
    """Desk 101's page live; Ivanov, who called before, calls again and 101 answers: the
    card is up. Returns the call's frames and the index of its answer (the rest is to come)."""
    page.get(desk_url)
    wait_for(lambda: status(page) == "live", what="live")
    insert_frames(conn, pbx.inbound_answered(builder(2), KNOWN, LINE, "103"))  # earlier
    frames = pbx.inbound_answered(builder(3), KNOWN, LINE, "101", talk=5)
    answered = next(i for i, f in enumerate(frames) if f["event"] == "channel_answer")
    insert_frames(conn, frames[: answered + 2])
    wait_for(lambda: _card(page) and "Ivan Ivanov" in _card(page), what="the card")
    return frames, answered
