"""`pgcti simulate` as a user runs it: the same seed gives the same calls, a recorded trace replays
exactly, and `pgcti ingest --log-json` writes one JSON object per line."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys

import pytest
import websockets

from ingester.simulator.traffic import Traffic
from tests.support.live import KEY, IngestProcess, wait_for


def _calls(seed: int) -> list[dict]:
    traffic = Traffic(seed, ["+74951234567"], ["101", "102", "103"])
    return [frame for n in range(30) for _, frame in traffic.call(1_000_000.0 + n * 100)]


def test_the_same_seed_gives_the_same_calls():
    assert _calls(5) == _calls(5)
    assert _calls(5) != _calls(6)


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _listening(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
        return True
    return False


def _simulate(*args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "ingester.cli", "simulate", *args],
        env={**os.environ, "PGCTI_PBX_KEY": KEY},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def test_a_recorded_trace_replays_frame_for_frame(dsn, tmp_path):
    def run(*args: str) -> list[dict]:
        port = _port()
        sim = _simulate("--port", str(port), *args)
        wait_for(lambda: _listening(port), what="the simulator listening")
        ingest = IngestProcess(
            dsn, f"ws://127.0.0.1:{port}/", tmp_path / str(port), KEY, "--log-json"
        )
        assert sim.wait(30) == 0, sim.stdout.read()
        assert ingest.stop() == 0
        lines = [
            json.loads(line) for line in ingest.log.splitlines()
        ]  # --log-json: every line parses
        assert {"ts", "level", "logger", "message"} <= set(lines[0])
        assert KEY not in ingest.log
        return [
            json.loads(line)["frame"]
            for line in (tmp_path / "trace.jsonl").read_text().splitlines()
        ]

    recorded = run(
        "--seed",
        "3",
        "--rate",
        "20",
        "--calls",
        "6",
        "--scale",
        "0.01",
        "--record",
        str(tmp_path / "trace.jsonl"),
    )
    assert len(recorded) > 30
    (tmp_path / "first.jsonl").write_text((tmp_path / "trace.jsonl").read_text())
    replayed = run(
        "--replay", str(tmp_path / "first.jsonl"), "--record", str(tmp_path / "trace.jsonl")
    )
    assert replayed == recorded


def test_simulate_refuses_to_start_without_a_key():
    result = subprocess.run(
        [sys.executable, "-m", "ingester.cli", "simulate"],
        capture_output=True,
        text=True,
        env={k: v for k, v in os.environ.items() if k != "PGCTI_PBX_KEY"},
        timeout=30,
    )
    assert result.returncode == 2 and "set PGCTI_PBX_KEY or give --key-file" in result.stderr


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGINT])
def test_the_simulator_stops_on_a_signal_while_it_waits_for_a_client(how):
    sim = _simulate("--port", str(_port()))
    # Started (it says where, after its log's first lines); nobody subscribes.
    while not (line := sim.stdout.readline()).startswith("simulator: onlinepbx3 on "):
        assert line, "the simulator ended before it said where it listens"
    sim.send_signal(how)
    assert sim.wait(10) == 0
    assert "stopped before any client subscribed" in sim.stdout.read()


def test_numbers_from_crm_come_from_the_phone_directory_or_it_says_there_are_none(conn, dsn):
    # The reference CRM is installed in the test template: without it, the directory counts.
    conn.execute("DROP SCHEMA pgcti_refcrm CASCADE")
    empty = subprocess.run(
        [sys.executable, "-m", "ingester.cli", "simulate", "--dsn", dsn, "--numbers-from-crm"],
        capture_output=True,
        text=True,
        env={**os.environ, "PGCTI_PBX_KEY": KEY},
        timeout=30,
    )
    assert empty.returncode == 2 and "found no numbers" in empty.stderr

    conn.execute("CREATE SCHEMA shop; CREATE TABLE shop.p (id int PRIMARY KEY, phone text)")
    conn.execute("INSERT INTO shop.p VALUES (1, '8 (916) 555-44-33 доб. 9')")
    conn.execute(
        "GRANT USAGE ON SCHEMA shop TO cti_owner; GRANT SELECT, TRIGGER ON shop.p TO cti_owner"
    )
    conn.execute("SELECT cti.attach_phone_column('shop.p', 'phone')")
    port = _port()
    sim = _simulate(
        "--dsn",
        dsn,
        "--numbers-from-crm",
        "--extensions",
        "201,202",
        "--port",
        str(port),
        "--calls",
        "3",
        "--rate",
        "50",
        "--scale",
        "0.01",
        "--seed",
        "5",
        "--log-level",
        "INFO",
    )
    try:
        received = []

        async def listen() -> None:
            async with websockets.connect(f"ws://127.0.0.1:{port}/?key={KEY}") as ws:
                await ws.send(
                    json.dumps({"command": "subscribe", "data": {"eventGroups": ["calls"]}})
                )
                async for message in ws:
                    received.append(message)

        wait_for(lambda: _listening(port), what="the simulator listening")
        # The simulator closes the connection when its calls are sent.
        with contextlib.suppress(TimeoutError, websockets.ConnectionClosed):
            asyncio.run(asyncio.wait_for(listen(), 8))
    finally:
        out = sim.communicate(timeout=30)[0]
    assert "calling from 1 CRM number(s) (phone directory); extensions 201, 202" in out, out
    text = "\n".join(received)
    assert "79165554433" in text and ('"201"' in text or '"202"' in text), text[:500]


def test_simulate_speaks_ami_and_every_call_it_plays_is_derived(dsn, tmp_path):
    """`pgcti simulate --pbx asterisk`: banner, Login (the key is the secret), Ping, and
    every scenario as PJSIP channels; `pgcti ingest --pbx asterisk` derives each call."""
    import psycopg

    port = _port()
    sim = _simulate(
        "--pbx", "asterisk", "--port", str(port), "--seed", "4", "--calls", "12",
        "--rate", "20", "--scale", "0.01",
    )  # fmt: skip
    wait_for(lambda: _listening(port), what="the simulator listening")
    ingest = IngestProcess(dsn, f"ami://pgcti@127.0.0.1:{port}", tmp_path, KEY, "--pbx", "asterisk")
    try:
        out = sim.communicate(timeout=60)[0]
        assert sim.returncode == 0, out
        sent = int(out.split("simulator: sent ")[1].split()[0])

        def stored() -> int:
            with psycopg.connect(dsn) as conn:
                return conn.execute(
                    "SELECT count(*) FROM cti.raw_event WHERE source = 'asterisk'"
                ).fetchone()[0]

        wait_for(lambda: stored() == sent + 1, timeout=30, what="every block (and FullyBooted)")
    finally:
        assert ingest.stop() == 0, ingest.log
    assert "simulator: asterisk on ami://pgcti@127.0.0.1:" in out
    assert KEY not in ingest.log and "logged in to the AMI as pgcti" in ingest.log
    with psycopg.connect(dsn) as conn:
        calls = conn.execute(
            "SELECT direction, outcome, ended_at IS NOT NULL FROM cti.call ORDER BY id"
        ).fetchall()
        failed = conn.execute(
            "SELECT count(*) FROM cti.event_outcome WHERE status = 'failed'"
        ).fetchone()[0]
        channels = conn.execute(
            "SELECT count(*) FILTER (WHERE body ~ 'Channel: PJSIP/'), count(*) FROM cti.raw_event"
            " WHERE source = 'asterisk' AND body ~ '^Event: Newchannel'"
        ).fetchone()
    assert len(calls) == 12, calls  # a consultation joins its customer's call
    assert all(ended for _, _, ended in calls) and failed == 0
    assert {d for d, _, _ in calls} >= {"inbound"} and channels[0] == channels[1] > 0
