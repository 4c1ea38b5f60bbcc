"""The supervisor's wallboard in a real headless Chromium: calls ringing and talking per
line, desks by name with their presence, queues, callback tasks past due, today's figures;
and tokens that open only their own kind of page."""

from __future__ import annotations

import time

import psycopg
import pytest

from ingester.clients.gateway_process import free_port
from ingester.simulator import onlinepbx3_calls as pbx
from ingester.simulator.asterisk_calls import block
from tests.support.ami_traces import chan
from tests.support.browser import rows_of, status
from tests.support.crm_fixture import KNOWN, LINE, builder, insert_frames
from tests.support.gateway_fixture import Gateway
from tests.support.live import wait_for


def _rows(driver, table: str) -> list[list[str]]:
    """The table's cells, read in one go (the board redraws them as the floor changes)."""
    return rows_of(driver, f"#{table} tbody tr")


def test_the_supervisor_wallboard_shows_the_floor_now(conn, dsn, desks, browser_factory, tmp_path):
    """Calls ringing and talking per line, each desk's state, callback tasks past due; a
    desk's token opens no wallboard and the wallboard's opens no desk."""
    crm, tokens, gateway_dsn = desks
    board_token = conn.execute("SELECT cti.issue_wallboard_token_v1()").fetchone()[0]
    conn.execute("UPDATE cti.config SET callback_due_after = '0'")  # every task is overdue at once
    gw = Gateway(gateway_dsn, free_port())
    try:
        page = browser_factory()
        page.get(f"http://127.0.0.1:{gw.port}/wallboard#token={board_token}")
        wait_for(lambda: status(page) == "live", what="the board live")
        ringing = pbx.blind_transfer_chain(builder(1), KNOWN, LINE, ["101", "102"])
        answer = next(i for i, f in enumerate(ringing) if f["event"] == "channel_answer")
        insert_frames(conn, ringing[:answer])
        wait_for(lambda: _rows(page, "lines") == [["74950001122", "1", "0"]], what="one ringing")
        insert_frames(conn, ringing[answer : answer + 2])
        wait_for(lambda: _rows(page, "lines") == [["74950001122", "0", "1"]], what="one talking")
        desks_now = {r[0]: r[1:3] for r in _rows(page, "desks")}  # by name, not id
        assert desks_now["ws-101"] == ["101", "talking"]
        assert desks_now["ws-102"] == ["102", "idle"]
        # Presence: nothing from the PBX yet says so; 102 in do not disturb (set at the
        # desk), since when.
        assert {r[0]: r[4] for r in _rows(page, "desks")}["ws-101"] == "not reported"
        conn.execute("SELECT cti.change_presence('102', 'desk', 'dnd', NULL, NULL, now())")
        wait_for(
            lambda: {r[0]: r[4] for r in _rows(page, "desks")}.get("ws-102") == "do not disturb",
            what="102's presence",
        )
        assert {r[0]: r[5] for r in _rows(page, "desks")}["ws-102"]  # since when
        # A queue caller waiting (AMI app_queue): the queue panel.
        caller = chan(
            "PJSIP/mts-00000091", "9.1", "84951112233", "74950001133", "from-pstn", 6, "9.1"
        )
        joined = {**caller, "Queue": "sales", "Position": 1, "Timestamp": time.time() - 12}
        insert_frames(conn, [block("QueueCallerJoin", joined)], source="asterisk")
        wait_for(lambda: [r[:2] for r in _rows(page, "queues")] == [["sales", "1"]], what="a queue")
        page.save_screenshot(str(tmp_path / "wallboard.png"))
        insert_frames(conn, ringing[answer + 2 :])
        insert_frames(conn, pbx.inbound_unanswered(builder(2), KNOWN, LINE, ["101"], "NO_ANSWER"))
        wait_for(
            lambda: [r[1] for r in _rows(page, "tasks")] == ["+74951234567"], what="a task past due"
        )
        assert _rows(page, "lines") == []
        # The task: due with its date ("today" here), the client, the owner by name.
        (due, _, client, owner, missed) = _rows(page, "tasks")[0]
        card = conn.execute(
            "SELECT client_card FROM cti.call c JOIN cti.callback_task t ON t.last_call_id = c.id"
        ).fetchone()[0]
        assert due.startswith("today ") and missed == "1"
        assert (client, owner) == (card["client_name"], card["manager_surname"])
        # Today's figures, as the calls above make them: one answered, one missed, its task open.
        text = lambda: page.find_element("id", "today").text  # noqa: E731
        today = "Today: 1 answered · 1 missed · 1 not yet called back"
        wait_for(lambda: text() == today, what="today's figures")
        # More tasks than the board lists: the oldest 20, and how many more.
        conn.execute(
            """INSERT INTO cti.callback_task (party, e164, dialled, first_call_id, last_call_id,
                                              created_at, due_at)
               SELECT 'number:+7495000' || n, '+7495000' || n, t.dialled, t.first_call_id,
                      t.last_call_id, now() - interval '2 days', now() - interval '2 days' + n * interval '1 s'
                 FROM cti.callback_task t, generate_series(10, 34) n"""
        )
        wait_for(lambda: page.find_element("id", "tasks-more").text == "and 6 more", what="the cap")
        title = page.find_element("id", "tasks-title").text
        assert title == "Callback tasks past due (26), oldest first"
        listed = _rows(page, "tasks")
        assert len(listed) == 20 and listed[0][1] == "+749500010" and "today" not in listed[0][0]
        # A call answered on an extension no desk is bound to: the line says so.
        conn.execute(
            """INSERT INTO cti.call (source, pbx_call_id, direction, dialled, external_number,
                                     started_at, answered_at, answered_by)
               VALUES ('onlinepbx3', 'no-desk', 'inbound', %s, '+74950000000', now(), now(), '555')""",
            [LINE],
        )
        wait_for(
            lambda: _rows(page, "lines") == [[LINE, "0", "1 (1 on extensions without a desk)"]],
            what="a call on an extension without a desk",
        )
        page.set_window_size(1100, 1500)  # the whole board, tasks included, for a look
        page.save_screenshot(str(tmp_path / "wallboard-tasks.png"))
        # Scopes: neither kind of token opens the other's view.
        wrong = browser_factory()
        wrong.get(f"http://127.0.0.1:{gw.port}/wallboard#token={tokens['101']}")
        wait_for(lambda: status(wrong).startswith("refused"), what="a desk token refused")
    finally:
        gw.stop()
    with (
        psycopg.connect(gateway_dsn, autocommit=True) as gw_conn,
        pytest.raises(psycopg.errors.InvalidAuthorizationSpecification),
    ):
        gw_conn.execute("SELECT * FROM cti.gateway_whoami_v1(%s)", [board_token])
