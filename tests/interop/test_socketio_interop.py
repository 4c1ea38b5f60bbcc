"""onlinePBX API 2.0 against real socket.io 0.9 peers (Node.js, tests/interop; `make test` installs them):
our client against a real socket.io 0.9 server, and a real socket.io-client 0.9 against our simulator."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

import psycopg
import pytest

from ingester.simulator import onlinepbx3_calls as pbx
from ingester.simulator.onlinepbx2_calls import from_onlinepbx3
from tests.support.crm_fixture import KNOWN, LINE, builder
from tests.support.live import IngestProcess, SimulatorThread, wait_for

PEERS = Path(__file__).resolve().parent
KEY, DOMAIN = "interop-key-5512", "demo.onpbx.ru"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def socketio_server():
    assert (PEERS / "node_modules" / "socket.io").exists(), (
        "run `make test` (it installs tests/interop)"
    )
    port = _free_port()
    node = subprocess.Popen(
        ["node", str(PEERS / "server.js"), str(port), KEY, DOMAIN],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert node.stdout.readline().strip() == "listening"
    yield f"http://127.0.0.1:{port}"
    node.kill()
    node.wait(5)


def test_our_client_against_a_real_socketio_09_server(socketio_server, dsn, tmp_path):
    ingest = IngestProcess(
        dsn, socketio_server, tmp_path, KEY, "--pbx", "onlinepbx2", "--domain", DOMAIN
    )
    try:

        def stored() -> list:
            with psycopg.connect(dsn) as conn:
                return conn.execute(
                    "SELECT frame ->> 'name' FROM cti.raw_event ORDER BY id"
                ).fetchall()

        wait_for(lambda: len(stored()) == 2, what="the callback and the event stored")
    finally:
        assert ingest.stop() == 0
    assert stored() == [("callback",), ("channel_create",)]
    with psycopg.connect(dsn) as conn:
        assert conn.execute("SELECT external_number FROM cti.call").fetchone() == ("+74951234567",)
    assert KEY not in ingest.log


def test_a_real_socketio_09_server_refusing_the_key(socketio_server, dsn, tmp_path):
    ingest = IngestProcess(
        dsn, socketio_server, tmp_path, "wrong-key-000", "--pbx", "onlinepbx2", "--domain", DOMAIN
    )
    try:
        status = ingest.proc.wait(20)
    finally:
        ingest.kill()
    assert status == 2, ingest.log
    assert "refused the handshake with HTTP 403: check the API key and domain" in ingest.log


def test_a_real_socketio_09_client_against_our_simulator():
    sim = SimulatorThread(key=KEY, protocol="onlinepbx2")
    try:
        events = from_onlinepbx3(pbx.inbound_answered(builder(1), KNOWN, LINE, "101"))
        client = subprocess.Popen(
            ["node", str(PEERS / "client.js"), sim.url, KEY, DOMAIN, str(len(events))],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        wait_for(lambda: sim.server.listeners() == 1, what="the socket.io-client to subscribe")
        assert sim.send(events) == len(events)
        out, _ = client.communicate(timeout=15)
    finally:
        sim.close()
    assert client.returncode == 0, out
    lines = out.splitlines()
    assert lines[0] == 'callback {"hash":"h1","data":{"events":["blf","calls"]}}'
    assert [line.split()[1] for line in lines[1:]] == [e["name"] for e in events]
