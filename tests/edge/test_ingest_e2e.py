"""simulator -> `pgcti ingest` -> PostgreSQL -> a LISTENing client, over real sockets and processes."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import urllib.request
from pathlib import Path

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict

from ingester.simulator import onlinepbx3_calls as pbx
from tests.conftest import count_rows, run_cli
from tests.support.crm_fixture import KNOWN, LINE, builder, seed_crm
from tests.support.live import KEY, IngestProcess, SimulatorThread, wait_for


@pytest.fixture
def sim():
    simulator = SimulatorThread()
    yield simulator
    simulator.close()


def test_calls_arrive_as_commands_at_the_right_workstation(conn, dsn, sim, make_login, tmp_path):
    crm = seed_crm(conn)
    ws102 = make_login("cti_client", "e2e_ws102")
    conn.execute(
        "INSERT INTO cti.client_login (login, workstation_id) VALUES (%s, %s)",
        [conninfo_to_dict(ws102)["user"], crm["ws-102"]],
    )
    ingest = IngestProcess(make_login("cti_ingester", "e2e_ing"), sim.url, tmp_path)
    try:
        wait_for(lambda: sim.server.listeners() == 1, what="the ingester to subscribe")
        watch = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "ingester.cli",
                "watch",
                "--dsn",
                ws102,
                "--count",
                "4",
                "--duration",
                "30",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        chain = pbx.blind_transfer_chain(builder(1), KNOWN, LINE, ["101", "102", "103"])
        direct = pbx.inbound_answered(builder(2), "+7 903 000 11 22", LINE, "102")
        assert sim.send(chain + direct) == len(chain) + len(direct)
        out, err = watch.communicate(timeout=40)
    finally:
        assert ingest.stop() == 0
    lines = [re.sub(r"^\S+ #\d+\s+", "", line) for line in out.splitlines()]
    assert [line.split()[0] for line in lines] == [
        "open_card",
        "close_card",
        "open_card",
        "call_ended",
    ], out + err
    assert "Ivan Ivanov (Romashka, manager Petrova)" in lines[0]
    assert "+79030001122  Lead (NEW number)" in lines[2], lines[2]
    assert (
        count_rows(dsn) == len(chain) + len(direct) + 1
    )  # + the `subscribed` reply, stored and ignored
    assert KEY not in ingest.log


def test_a_wrong_key_is_refused_with_a_clear_error(sim, dsn, tmp_path):
    ingest = IngestProcess(dsn, sim.url, tmp_path, "wrong-key-0123456789")
    assert ingest.proc.wait(20) == 2
    assert (
        "the PBX refused the connection with HTTP 401: check the API key and domain" in ingest.log
    )
    assert "wrong-key-0123456789" not in ingest.log
    assert sim.server.refused >= 1


def test_a_busy_pbx_is_tried_again_not_given_up(conn, dsn, sim, tmp_path):
    """A cloud PBX that answers 429 Too Many Requests is busy, not refusing the key: the
    ingester says so, waits and connects, where a 401 makes it exit."""
    seed_crm(conn)
    sim.server.busy_for = 2
    ingest = IngestProcess(dsn, sim.url, tmp_path)
    try:
        wait_for(lambda: sim.server.listeners() == 1, timeout=20, what="subscribed after 429s")
        call = pbx.inbound_answered(builder(3), KNOWN, LINE, "101")
        assert sim.send(call) == len(call)
        wait_for(lambda: count_rows(dsn) == len(call) + 1, what="the call stored")
    finally:
        assert ingest.stop() == 0
    assert sim.server.refused == 2 and sim.server.busy_for == 0
    assert ingest.log.count("the PBX answered HTTP 429; trying again after a pause") == 2
    assert "refused the connection" not in ingest.log


def test_a_dropped_connection_reconnects_and_resubscribes(conn, dsn, sim, tmp_path):
    seed_crm(conn)
    ingest = IngestProcess(dsn, sim.url, tmp_path)
    try:
        wait_for(lambda: sim.server.listeners() == 1, what="first subscription")
        first = pbx.inbound_answered(builder(1), KNOWN, LINE, "101")
        delivered = sim.send(first)
        wait_for(lambda: count_rows(dsn) == delivered + 1, what="first call stored")
        sim.drop()
        lost = sim.send(
            pbx.inbound_answered(builder(3), KNOWN, LINE, "101")[:2]
        )  # nobody listening: gone
        wait_for(
            lambda: sim.server.listeners() == 1 and sim.server.subscriptions == 2,
            what="re-subscription",
        )
        second = pbx.inbound_answered(builder(2), KNOWN, LINE, "102")
        delivered += sim.send(second)
        # + one `subscribed` reply: the second is identical to the first, so the dedup key skips it
        wait_for(lambda: count_rows(dsn) == delivered + 1, what="second call stored")
    finally:
        assert ingest.stop() == 0
    assert lost == 0, "frames sent while disconnected reach nobody: the PBX does not re-send them"
    assert "PBX connection dropped" in ingest.log
    assert count_rows(dsn, "SELECT count(*) FROM cti.outbox WHERE type = 'open_card'") == 2


def test_sigterm_flushes_everything_received(conn, dsn, sim, tmp_path):
    seed_crm(conn)
    ingest = IngestProcess(dsn, sim.url, tmp_path)
    wait_for(lambda: sim.server.listeners() == 1, what="subscription")
    frames = [
        f for seed in range(60) for f in pbx.inbound_answered(builder(seed), KNOWN, LINE, "101")
    ]
    sim.send(frames)
    assert ingest.stop(timeout=5) == 0, ingest.log
    received, stored, spooled = map(
        int, re.search(r"stopped: (\d+) received, (\d+) stored, (\d+) spooled", ingest.log).groups()
    )
    assert received == stored and spooled == 0
    assert count_rows(dsn) == stored


def test_metrics_and_health_endpoints(conn, dsn, sim, tmp_path):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ingest = IngestProcess(dsn, sim.url, tmp_path, KEY, "--metrics-port", str(port))
    try:
        wait_for(lambda: sim.server.listeners() == 1, what="subscription")
        frames = pbx.inbound_answered(builder(), KNOWN, LINE, "101")
        sim.send(frames)
        wait_for(lambda: count_rows(dsn) == len(frames) + 1, what="frames stored")

        def fetch(path: str) -> str:
            return (
                urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5).read().decode()
            )

        health = wait_for(lambda: json.loads(fetch("/healthz")), what="health")
        assert health == {
            "pbx_connected": True,
            "db_connected": True,
            "spool_depth": 0,
            "db_problem": None,
            "journal_problem": None,
            "spool_problem": None,
        }
        metrics = fetch("/metrics")
        assert f"\npgcti_frames_stored_total {len(frames) + 1}.0\n" in metrics, metrics
    finally:
        assert ingest.stop() == 0


def test_demo_with_a_short_duration_shows_pops_and_no_errors(dsn):
    """`make demo`, shortened: once, with the default PBX (API 2.0 end to end is
    test_ingest_onlinepbx2.py and test_socketio_interop.py)."""
    result = run_cli(
        "demo",
        "--dsn",
        dsn,
        "--duration",
        "4",
        "--rate",
        "3",
        "--seed",
        "11",
        "--web",
        "--history-days",
        "4",  # the history's shape is the report tests'; here, that it is played and drawn
        timeout=90,
    )
    out = result.stdout
    assert "Summary" in out and "errors: 0" in out, out + result.stderr
    assert (
        "server is still running" in out and "pgcti db stop" in out
    )  # what is left, and how to stop it
    pops = int(re.search(r"delivered: (\d+) pops", out).group(1))
    assert pops > 0
    # A call's rings are one line, naming every employee told; together, every ring sent.
    rung = [
        len(m.group(1).split(", "))
        for m in re.finditer(r"^ring\s+-> employees? ([\d, ]+):", out, re.MULTILINE)
    ]
    assert sum(rung) == int(re.search(r"(\d+) ring notifications", out).group(1)), out
    assert max(rung) > 1, "a call told several employees on one line"
    sent, stored = map(
        int, re.search(r"frames: (\d+) sent by the simulator, (\d+) stored", out).groups()
    )
    # --web: the gateway served each desk a page while the demo ran.
    pages = re.findall(r"desk-\d+: (http://127\.0\.0\.1:\d+/#token=[0-9a-f]{64})", out)
    assert len(pages) == 10, out
    # ... and printed the supervisor's wallboard beside them, with a token that opens it.
    (board,) = re.findall(r"wallboard: http://127\.0\.0\.1:\d+/wallboard#token=([0-9a-f]{64})", out)
    with psycopg.connect(dsn) as conn:
        floor = conn.execute("SELECT cti.gateway_wallboard_v1(%s)", [board]).fetchone()[0]
    assert {"lines", "desks"} <= set(floor)
    # Days of history behind the live calls, drawn in a report the demo points to.
    assert "playing 4 days of past calls through the database" in out, out
    past = int(re.search(r"(\d+) past calls stored", out).group(1))
    assert past > 100, out
    report = Path(re.search(r"report: file://(\S+)", out).group(1))
    assert "Sales funnel" in report.read_text() and "Plotly.newPlot" in report.read_text()
    assert sent == stored - 1 or sent == stored  # the `subscribed` reply is stored too
    # The demo's people read as Russian names do: a woman's surname agrees (Kuznetsova).
    from ingester.demo.seed import WOMEN

    with psycopg.connect(dsn) as conn:
        names = [
            n for (n,) in conn.execute("SELECT name FROM pgcti_refcrm.client WHERE NOT is_lead")
        ]
        names += [
            f"{first} {surname}"
            for first, surname in conn.execute("SELECT name, surname FROM pgcti_refcrm.employee")
        ]
        # Every missed call of the month and of the run has someone to call back: the
        # client's manager, or for a new number the line's owner the demo seeded.
        owners = dict(
            conn.execute(
                "SELECT coalesce(owner_rule, 'nobody'), count(*) FROM cti.callback_task GROUP BY 1"
            ).fetchall()
        )
        # The run's callback items, as the database sent them (the month's are older).
        run_items = conn.execute(
            "SELECT count(*) FROM cti.outbox o JOIN cti.call c ON c.id = o.call_id"
            " WHERE o.type = 'callback_task' AND c.started_at > now() - interval '10 minutes'"
        ).fetchone()[0]
        # A client started now catches up on the run's items only, not on a month of pops.
        waiting = conn.execute(
            "SELECT count(*), count(*) FILTER (WHERE c.started_at < now() - interval '10 minutes')"
            "  FROM cti.outbox o JOIN cti.call c ON c.id = o.call_id"
            "  LEFT JOIN cti.stream_ack a USING (target_kind, target_id)"
            " WHERE o.seq > coalesce(a.acked_seq, 0)"
        ).fetchone()
    assert waiting[0] > 0 and waiting[1] == 0, waiting
    assert owners.keys() == {"manager", "line"}, owners
    # The board listened to their owners too, and printed each one.
    shown = int(re.search(r"(\d+) callback tasks", out).group(1))
    assert shown == run_items > 0, out
    assert len(re.findall(r"^callback  -> employee \d+ \(\w+\): call back ", out, re.M)) == shown
    assert len(names) > 100
    for name in names:
        first, surname = name.split()[:2]
        assert (first in WOMEN) == surname.endswith("a"), name
