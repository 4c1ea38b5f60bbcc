"""Presence from onlinePBX over a real socket: `pgcti ingest` subscribed to the presence
groups (API 3.0's user_blf and user_registration, API 2.0's blf and registration) stores
what the simulator sends, and the extension's state shows in cti.presence_now()."""

from __future__ import annotations

import psycopg
import pytest

from tests.support.crm_fixture import seed_crm
from tests.support.live import KEY, IngestProcess, SimulatorThread, wait_for

CASES = {
    "onlinepbx3": (
        "calls,user_blf,user_registration",
        [
            (
                {"event": "user_registration", "data": {"user": "102", "state": "registered"}},
                "user_registration",
            ),
            ({"event": "user_blf", "data": {"uid": "102", "status": "answered"}}, "user_blf"),
        ],
    ),
    "onlinepbx2": (
        "calls,registration",
        [
            (
                {"name": "registration", "args": [{"uid": "102", "status": "registered"}]},
                "registration",
            ),
            (
                {"name": "blf", "args": [{"uid": "102", "status": "answered", "uuid": "leg-1"}]},
                "blf",
            ),
        ],
    ),
}


@pytest.mark.parametrize("protocol", sorted(CASES))
def test_presence_events_reach_the_presence_table(conn, dsn, tmp_path, protocol):
    seed_crm(conn)
    subscriptions, events = CASES[protocol]
    sim = SimulatorThread(protocol=protocol)
    extra = ["--pbx", protocol, "--subscriptions", subscriptions]
    if protocol == "onlinepbx2":
        extra += ["--domain", "demo.onpbx.ru"]
    ingest = IngestProcess(dsn, sim.url, tmp_path, KEY, *extra)
    try:
        group = events[0][1]
        wait_for(lambda: sim.server.listeners(group) == 1, 20, f"subscribed to {group}")

        def state() -> str | None:
            with psycopg.connect(dsn) as c:
                row = c.execute(
                    "SELECT state FROM cti.presence_now() WHERE extension = '102'"
                ).fetchone()
            return row and row[0]

        for (event, group), expected in zip(events, ["available", "busy"], strict=True):
            assert sim.send([event], group) == 1
            wait_for(lambda e=expected: state() == e, 20, f"102 {expected}")
    finally:
        assert ingest.stop() == 0
        sim.close()
