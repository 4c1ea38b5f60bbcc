"""pgcti against a real Asterisk 22: SIP phones ring, answer, refuse and hang up; `pgcti
ingest --pbx asterisk` reads AMI with the manager user docs/asterisk.md gives, and the
desks get their cards by a real LISTEN. Each scenario's AMI stream can be kept as a
fixture (PGCTI_RECORD_LAB=1) for the fast replay in tests/rules."""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

import psycopg
import pytest

from ingester.clients.gateway_process import free_port
from tests.support.asterisk_lab import PSQLODBC, RING_SECONDS
from tests.support.gateway_fixture import Gateway, http_get
from tests.support.live import wait_for
from tests.support.tcp_proxy import TcpProxy

GROUP = "74950001122"  # ring-all: 101 and 102
QUEUE = "74950001133"  # linear: 103, then 104
QUEUE_ANSWERED = "74950001134"  # the same queue, the call answered first (keys reach it)
DIRECT = "74950001144"  # 103 alone
CALLER = "+74951234567"  # Ivanov at Romashka (tests/support/crm_fixture.py)

pytestmark = pytest.mark.timeout(120)


def summary(row: dict) -> dict:
    return {
        "direction": row["direction"],
        "outcome": row["outcome"],
        "answered_by": row["answered_by"],
        "extension_chain": row["extension_chain"],
        "external_number": row["external_number"],
        "dialled": row["dialled"],
    }


def ring(p, desk: str) -> None:
    """Wait until a desk's phone rings (its channel exists)."""
    p.lab.channel_of(desk)


def test_a_ring_group_call_first_answer_wins_and_the_card_opens_there(pipeline):
    p = pipeline
    p.lab.phones["101"].command("answermode", "manual")
    p.lab.phones["102"].command("answermode", "manual")
    p.lab.call_in(GROUP)
    ring(p, "101")
    ring(p, "102")
    p.pump(0.5)
    p.lab.phones["102"].accept()
    card_at(p, "102")
    p.pump(1)
    p.lab.phones["carrier"].hangup()
    p.settle()
    (call,) = p.call_row()
    assert summary(call) == {
        "direction": "inbound",
        "outcome": "answered",
        "answered_by": "102",
        "extension_chain": ["102"],
        "external_number": CALLER,
        "dialled": GROUP,
    }
    assert p.desks["102"].seen("open_card") == [call["call_id"]]
    assert p.desks["102"].seen("call_ended") == [call["call_id"]]
    assert p.desks["101"].items == [], "101 rang but did not answer: no card there"
    p.record("ring_group_answered")


def test_a_missed_call_rings_out(pipeline):
    p = pipeline
    for desk in ("101", "102"):
        p.lab.phones[desk].command("answermode", "manual")
    p.lab.call_in(GROUP)
    ring(p, "101")
    time.sleep(RING_SECONDS + 1)  # the Dial's timeout: nobody answers
    p.lab.phones["carrier"].hangup()
    p.settle()
    (call,) = p.call_row()
    assert summary(call)["outcome"] == "missed" and call["answered_by"] is None
    assert all(d.items == [] for d in p.desks.values())
    p.record("ring_group_missed")


def inbound(rows: list[dict]) -> dict:
    (call,) = [r for r in rows if r["direction"] == "inbound"]
    return call


def test_a_caller_who_withholds_the_number_is_shown_as_withheld(pipeline):
    p = pipeline
    p.lab.call_in(DIRECT, caller="anonymous")
    card_at(p, "103")
    payload = (
        p.desks["103"]
        .conn.execute("SELECT payload FROM cti.pull_commands_v1(0) WHERE type = 'open_card'")
        .fetchone()[0]
    )
    p.lab.phones["carrier"].hangup()
    p.settle()
    call = inbound(p.call_row())
    assert (call["external_number"], call["withheld"], call["answered_by"]) == (None, True, "103")
    assert payload.get("withheld") is True and "number" not in payload
    p.record("direct_withheld")


def test_a_desk_that_refuses_the_call_makes_it_busy(pipeline):
    p = pipeline
    p.lab.phones["103"].command("answermode", "manual")
    p.lab.call_in(DIRECT)
    ring(p, "103")
    p.lab.phones["103"].hangup()  # refuses while it rings: 486 Busy Here
    p.settle()
    call = inbound(p.call_row())
    assert (call["outcome"], call["answered_by"], call["hangup_cause"]) == (
        "busy",
        None,
        "USER_BUSY",
    )
    p.record("direct_refused")


def test_a_desk_already_on_a_call_is_busy(pipeline):
    p = pipeline
    p.lab.phones["101"].dial(f"sip:103@127.0.0.1:{p.lab.sip_port}")  # 103 answers 101
    wait_for(lambda: len(p.lab.ami.channels()) == 2, 10, "101 talking to 103")
    p.lab.ami.events.clear()
    p.lab.call_in(DIRECT)  # the dialplan answers Busy without ringing 103
    p.lab.ami.wait_event(
        lambda e: e.get("Event") == "Hangup" and e.get("Channel", "").startswith("PJSIP/carrier-"),
        10,
        "the busy caller gone",
    )
    p.lab.phones["101"].hangup()
    p.settle()
    rows = p.call_row()
    call = inbound(rows)
    assert (call["outcome"], call["answered_by"]) == ("busy", None)
    (internal,) = [r for r in rows if r["direction"] == "internal"]
    assert internal["answered_by"] == "103"
    p.record("direct_busy")


def test_the_caller_hangs_up_while_it_rings(pipeline):
    p = pipeline
    for desk in ("101", "102"):
        p.lab.phones[desk].command("answermode", "manual")
    p.lab.call_in(GROUP)
    ring(p, "101")
    time.sleep(1)
    p.lab.phones["carrier"].hangup()
    p.settle()
    call = inbound(p.call_row())
    assert (call["outcome"], call["answered_by"]) == ("abandoned", None)
    assert all(d.items == [] for d in p.desks.values())
    p.record("ring_group_abandoned")


def answered_at(p, desk: str) -> str:
    """A group call that desk answers (the other one keeps ringing until then)."""
    other = "102" if desk == "101" else "101"
    p.lab.phones[other].command("answermode", "manual")
    p.lab.call_in(GROUP)
    channel = p.lab.channel_of(desk)
    card_at(p, desk)
    p.lab.phones[other].command("answermode", "auto")  # answers what comes next
    return channel


def card_at(p, desk: str) -> None:
    wait_for(
        lambda: p.desks[desk].wait(0.1) or p.desks[desk].seen("open_card"),
        15,
        f"the card at {desk}",
    )


def transferred(p, recording: str, chain: list[str]) -> None:
    """The customer hangs up after a transfer: the card moved along the chain."""
    card_at(p, chain[-1])
    p.pump(0.5)
    p.lab.phones["carrier"].hangup()
    p.settle()
    call = inbound(p.call_row())
    assert (call["answered_by"], call["extension_chain"]) == (chain[0], chain)
    assert p.desks[chain[0]].seen("close_card") == [call["call_id"]]
    assert p.desks[chain[-1]].seen("call_ended") == [call["call_id"]]
    p.record(recording)


def test_a_blind_transfer_moves_the_card(pipeline):
    p = pipeline
    at_101 = answered_at(p, "101")
    p.lab.ami.action("BlindTransfer", Channel=at_101, Context="internal", Exten="103")
    transferred(p, "blind_transfer", ["101", "103"])


def test_an_attended_transfer_moves_the_card_when_the_transferer_hangs_up(pipeline):
    p = pipeline
    at_101 = answered_at(p, "101")
    p.lab.ami.action("Atxfer", Channel=at_101, Context="internal", Exten="102")
    p.lab.channel_of("102")  # the consultation: 101 talks to 102, the customer waits
    time.sleep(1)
    p.lab.phones["101"].hangup()  # completes the transfer
    transferred(p, "attended_transfer", ["101", "102"])


def test_a_queue_call_answered_by_the_second_member_after_the_first_rang_out(pipeline):
    p = pipeline
    p.lab.phones["103"].command("answermode", "manual")  # rings out after 4 s
    p.lab.call_in(QUEUE)
    p.lab.channel_of("104", timeout=15)
    time.sleep(1)
    p.lab.phones["carrier"].hangup()
    p.settle()
    call = inbound(p.call_row())
    assert (call["outcome"], call["answered_by"], call["dialled"]) == ("answered", "104", QUEUE)
    p.record("queue_second_member")


def test_a_queue_call_abandoned(pipeline):
    p = pipeline
    for desk in ("103", "104"):
        p.lab.phones[desk].command("answermode", "manual")
    p.lab.call_in(QUEUE)
    ring(p, "103")
    time.sleep(1)
    p.lab.phones["carrier"].hangup()
    p.settle()
    call = inbound(p.call_row())
    assert (call["outcome"], call["answered_by"]) == ("abandoned", None)
    p.record("queue_abandoned")


def test_a_queue_caller_who_leaves_by_a_key(pipeline):
    """The caller presses 5 while a member rings: app_queue sends them to the queue's exit
    context and sets no QUEUESTATUS; the figures count an exit by key. (The line answers
    before the queue, as IVRs do: keys reach the PBX only once the call has media.)"""
    p = pipeline
    for desk in ("103", "104"):
        p.lab.phones[desk].command("answermode", "manual")
    p.lab.call_in(QUEUE_ANSWERED)
    ring(p, "103")
    for _ in range(3):  # a key sent before the caller's media flows is lost: press it again
        time.sleep(1)
        p.lab.phones["carrier"].command("sndcode", "5")
        with contextlib.suppress(AssertionError):
            p.lab.no_channels(timeout=4)  # sales-exit hangs up
            break
    p.lab.no_channels(timeout=1)
    p.settle()
    call = inbound(p.call_row())
    # The queue let the caller go, the caller did not give up: missed, not abandoned.
    assert (call["outcome"], call["answered_by"]) == ("missed", None)
    with psycopg.connect(p.dsn) as c:
        stay = c.execute(
            "SELECT queue, connected_at, abandoned_at, left_at IS NOT NULL, exit_status"
            " FROM cti.queue_call"
        ).fetchall()
        figures = c.execute(
            "SELECT offered, answered, abandoned, timed_out, other_exits, exited_by_key"
            " FROM cti.queue_stats_v1 WHERE hour IS NULL"
        ).fetchall()
    assert stay == [("sales", None, None, True, None)]
    assert figures == [(1, 0, 0, 0, 1, 1)]
    p.record("queue_exit_by_key")


def test_a_paused_queue_member_is_skipped_and_the_figures_say_so(pipeline):
    """103 pauses (its reason: lunch): the queue rings 104 alone, which answers; the queue
    facts, the agents' figures and presence all come from the real AMI stream."""
    p = pipeline
    p.lab.ami.action(
        "QueuePause", Queue="sales", Interface="PJSIP/103", Paused="true", Reason="lunch"
    )
    try:
        wait_for(lambda: presence_of(p, "103") == "paused", 10, "103 paused")
        p.lab.call_in(QUEUE)
        p.lab.channel_of("104", timeout=15)  # 104 has no desk: its phone rings, and answers
        time.sleep(1)
        p.lab.phones["carrier"].hangup()
        p.settle()
    finally:
        p.lab.ami.action("QueuePause", Queue="sales", Interface="PJSIP/103", Paused="false")
    call = inbound(p.call_row())
    assert call["answered_by"] == "104"
    with psycopg.connect(p.dsn) as c:
        stay = c.execute(
            "SELECT queue, join_position, agent, ended_by FROM cti.queue_call"
        ).fetchall()
        rung = c.execute("SELECT agent, result FROM cti.queue_attempt").fetchall()
        figures = c.execute(
            "SELECT offered, answered, abandoned, answered_within_target FROM cti.queue_stats_v1 WHERE hour IS NULL"
        ).fetchall()
        pauses = c.execute("SELECT agent, reason FROM cti.queue_pause").fetchall()
    assert stay == [("sales", 1, "104", "caller")]
    assert rung == [("104", "answered")]  # 103 was never rung
    assert figures == [(1, 1, 0, 1)]
    assert pauses == [("103", "lunch")]


def test_an_outbound_call_from_an_extension(pipeline):
    p = pipeline
    p.lab.outside_number("79161112233")  # a customer's phone, which answers
    p.lab.phones["101"].dial(f"sip:979161112233@127.0.0.1:{p.lab.sip_port}")
    card_at(p, "101")
    p.lab.phones["101"].hangup()
    p.settle()
    (call,) = p.call_row()
    assert summary(call) == {
        "direction": "outbound",
        "outcome": "answered",
        "answered_by": "101",
        "extension_chain": ["101"],
        "external_number": "+79161112233",
        "dialled": "79161112233",
    }
    p.record("outbound")


def test_asterisk_restarted_mid_call(pipeline):
    """The ingester reconnects and says what it could not see; the call the restart cut
    (no Hangup ever comes) ends after stale_call_after, and the card with it."""
    p = pipeline
    with psycopg.connect(p.dsn, autocommit=True) as conn:
        conn.execute("UPDATE cti.config SET stale_call_after = '4 seconds'")
    answered_at(p, "101")
    p.lab.restart_asterisk()
    wait_for(lambda: "the AMI link was down for" in p.ingest.log, 30, "the gap reported")
    for phone in ("carrier", "101"):  # SIGKILL sent them no BYE: their calls hang up here
        p.lab.phones[phone].hangup()
    (cut,) = p.call_row(timeout=30)
    assert (cut["answered_by"], cut["hangup_cause"]) == ("101", "PGCTI_STALE")
    p.pump(0.5)
    assert p.desks["101"].seen("call_ended") == [cut["call_id"]]
    # Calls after the restart are tracked as before.
    p.lab.call_in(DIRECT)
    card_at(p, "103")
    p.lab.phones["carrier"].hangup()
    p.settle()
    after = [r for r in p.call_row() if r["call_id"] != cut["call_id"]]
    assert [(r["answered_by"], r["outcome"]) for r in after] == [("103", "answered")]


def test_click_to_call_rings_the_desk_then_the_client_and_links_the_call(pipeline):
    """A desk dials from the CRM (cti.dial_v1 with its own login): Asterisk rings desk 101
    through the dialplan, 101 answers, then the client's phone rings and answers. The
    history has one call, linked to the request; the desk got one card, which says so."""
    p = pipeline
    p.lab.outside_number("79161112233")  # the client's phone, which answers
    (rid,) = p.desks["101"].conn.execute("SELECT cti.dial_v1('8 916 111-22-33')").fetchone()
    card_at(p, "101")
    wait_for(lambda: p.lab.channel_of("carrier"), 15, "the client's phone rings")
    p.lab.phones["101"].hangup()
    p.settle()
    (call,) = p.call_row()
    assert summary(call) == {
        "direction": "outbound",
        "outcome": "answered",
        "answered_by": "101",
        "extension_chain": ["101"],
        "external_number": "+79161112233",
        "dialled": "79161112233",
    }
    assert call["dial_request_id"] == rid
    (state,) = (
        p.desks["101"]
        .conn.execute("SELECT state, call_id, call_link FROM cti.dial_requests_v1()")
        .fetchall()
    )
    assert state == ("answered", call["call_id"], "exact")
    assert p.desks["101"].seen("open_card") == [call["call_id"]]
    assert all(not d.seen("open_card") for ext, d in p.desks.items() if ext != "101")
    p.record("click_to_call")


ROUTED = (
    "74950001155"  # asks pgcti which extension rings first (tests/lab/asterisk/extensions.conf)
)


@pytest.fixture
def routed(pipeline, conn, make_login):
    """The routed line asks this test's database through func_odbc and psqlODBC, as the
    routing login docs/asterisk.md describes (statement_timeout 300 ms). Asterisk runs as
    a user of its own, which cannot open the embedded server's socket: a TCP proxy in front
    of it stands for the network (and for a database that is down)."""
    if not Path(PSQLODBC).exists():
        pytest.skip(f"no psqlODBC driver at {PSQLODBC} (Debian's odbc-postgresql)")
    login = make_login("cti_router", "liveroute")
    info = psycopg.conninfo.conninfo_to_dict(login)
    conn.execute(f"ALTER ROLE \"{info['user']}\" SET statement_timeout = '300ms'")
    proxy = TcpProxy(Path(info["host"]) / f".s.PGSQL.{info.get('port', '5432')}")
    pipeline.lab.route_through(
        "127.0.0.1", proxy.port, info["dbname"], info["user"], info["password"]
    )
    yield proxy
    proxy.close()


def rung(p, call_id: int) -> list[str]:
    """The extensions a call rang (its legs), in the order they were created."""
    with psycopg.connect(p.dsn) as c:
        return [
            r[0]
            for r in c.execute(
                "SELECT destination FROM cti.call_leg WHERE call_id = %s AND destination_is_extension"
                " ORDER BY created_at",
                [call_id],
            )
        ]


def presence_of(p, extension: str) -> str | None:
    rows = (
        p.desks["102"]
        .conn.execute("SELECT state FROM cti.presence_v1() WHERE extension = %s", [extension])
        .fetchall()
    )
    return rows[0][0] if rows else None


def decisions(p) -> list[tuple]:
    with psycopg.connect(p.dsn) as c:
        return c.execute("SELECT extension, reason FROM cti.route_decision ORDER BY id").fetchall()


def test_routing_rings_the_clients_own_manager_first(pipeline, routed):
    p = pipeline
    p.lab.phones["102"].command("answermode", "manual")  # would ring on if the group rang
    p.lab.call_in(ROUTED)  # Ivanov, whose manager Petrova is at 101
    card_at(p, "101")
    # Presence from Asterisk's own DeviceStateChange: 101 is busy while it talks.
    wait_for(lambda: presence_of(p, "101") == "busy", 10, "101 busy")
    p.lab.phones["carrier"].hangup()
    p.settle()
    wait_for(lambda: presence_of(p, "101") == "available", 10, "101 free again")
    (call,) = p.call_row()
    assert (call["answered_by"], call["outcome"]) == ("101", "answered")
    assert rung(p, call["call_id"]) == ["101"]  # 102 never rang
    assert decisions(p) == [("101", "manager")]


def test_routing_passes_over_a_manager_in_do_not_disturb(pipeline, routed):
    p = pipeline
    p.desks["101"].conn.execute("SELECT cti.set_presence_v1('dnd')")  # from Petrova's desk
    p.lab.phones["101"].command("answermode", "manual")
    p.lab.call_in(ROUTED)
    card_at(p, "102")
    p.lab.phones["carrier"].hangup()
    p.settle()
    (call,) = p.call_row()
    assert call["answered_by"] == "102"
    assert sorted(rung(p, call["call_id"])) == ["101", "102"]  # the group, at once
    assert decisions(p) == [(None, "the manager is dnd")]


def test_routing_with_the_database_away_rings_the_group_and_loses_no_call(pipeline, routed):
    p = pipeline
    routed.mode = "refuse"  # PostgreSQL cannot be reached from the PBX
    routed.reset()
    p.lab.phones["101"].command("answermode", "manual")
    started = time.monotonic()
    p.lab.call_in(ROUTED)
    card_at(p, "102")
    assert time.monotonic() - started < 8  # the group at once, not after the ring time
    p.lab.phones["carrier"].hangup()
    p.settle()
    (call,) = p.call_row()
    assert (call["answered_by"], call["outcome"]) == ("102", "answered")
    assert decisions(p) == []  # nothing was asked that reached the database


def test_a_recorded_call_plays_to_the_desk_that_took_it_and_to_no_other(pipeline, conn, make_login):
    """The direct line records (MixMonitor): pgcti keeps the file's name from the AMI
    stream, and the gateway plays it, with range requests, to desk 103 (on the call) and a
    supervisor; desk 101 is refused; every request is logged."""
    p = pipeline
    p.lab.call_in(DIRECT)
    card_at(p, "103")
    time.sleep(2)  # two seconds of talk to record
    p.lab.phones["carrier"].hangup()
    p.settle()
    (call,) = p.call_row()
    monitor = p.lab.run / "spool" / "monitor"
    (name, ready) = wait_for(
        lambda: conn.execute(
            "SELECT file, ready_at FROM cti.recording WHERE ready_at IS NOT NULL"
        ).fetchone(),
        10,
        "the recording complete",
    )
    assert Path(name).parent == monitor and Path(name).is_file()
    tokens = {
        ext: p.desks[ext].conn.execute("SELECT cti.issue_gateway_token_v1()").fetchone()[0]
        for ext in ("101", "103")
    }
    supervisor = conn.execute("SELECT cti.issue_supervisor_token_v1()").fetchone()[0]
    port = free_port()
    gw = Gateway(
        make_login("cti_gateway", "livegw"),
        port,
        "--recordings-dir",
        str(monitor),
        "--recordings-pbx-dir",
        str(monitor),
    )
    try:
        status, body, headers = http_get(port, f"/recording/{call['call_id']}", tokens["103"])
        assert status == 200 and body[:4] == b"RIFF" and headers["content-type"] == "audio/wav"
        assert len(body) == Path(name).stat().st_size
        status, part, _ = http_get(
            port, f"/recording/{call['call_id']}", tokens["103"], {"Range": "bytes=0-99"}
        )
        assert (status, len(part)) == (206, 100)
        assert http_get(port, f"/recording/{call['call_id']}", tokens["101"])[0] == 403
        assert http_get(port, f"/recording/{call['call_id']}", supervisor)[0] == 200
    finally:
        gw.stop()
    log = conn.execute("SELECT allowed, why FROM cti.recording_play ORDER BY id").fetchall()
    assert log == [
        (True, "the desk was on the call"),
        (True, "the desk was on the call"),
        (False, "not on the call, and not the client's manager"),
        (True, "supervisor"),
    ]
