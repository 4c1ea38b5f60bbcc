"""onlinePBX's recordings through `pgcti gateway` (issue 34, part 3, the onlinePBX path):
the simulator's HTTP API keeps a file per call uuid and answers `mongo_history/search.json`
with a signed link that expires; the gateway asks for it only when someone listens, passes
the file through (ranges too), refuses a desk that was not on the call, and neither the
link nor the key reaches its log."""

from __future__ import annotations

import pytest

from ingester.clients.gateway_process import free_port
from ingester.simulator import onlinepbx3_calls as pbx
from ingester.simulator.onlinepbx_http import OnlinepbxHttpApi
from tests.support.crm_fixture import KNOWN, LINE, builder, insert_frames
from tests.support.gateway_fixture import Gateway, header, http_get
from tests.support.live import KEY, SimulatorThread

AUDIO = bytes(range(256)) * 100  # what the PBX recorded


@pytest.fixture
def onlinepbx_api():
    sim = SimulatorThread()
    api = OnlinepbxHttpApi(sim.server, KEY)
    sim._call(api.start())
    yield api
    sim._call(api.stop())
    sim.close()


def _call(conn, seed: int, whole: bool = True) -> tuple[str, int]:
    """Ivanov calls and 101 answers (to the end, or until the answer): its uuid and id."""
    b = builder(seed)
    frames = pbx.inbound_answered(b, KNOWN, LINE, "101")
    answer = next(i for i, f in enumerate(frames) if f["event"] == "channel_answer")
    insert_frames(conn, frames if whole else frames[: answer + 1])
    found = conn.execute("SELECT id FROM cti.call WHERE pbx_call_id = %s", [b.call_uuid])
    return b.call_uuid, found.fetchone()[0]


def test_a_desk_hears_onlinepbx_recordings_fetched_on_demand(
    conn, desks, onlinepbx_api, monkeypatch
):
    crm, tokens, gateway_dsn = desks
    supervisor = conn.execute("SELECT cti.issue_supervisor_token_v1()").fetchone()[0]
    recorded, recorded_id = _call(conn, 3)
    _, unrecorded_id = _call(conn, 4)
    _, under_way_id = _call(conn, 5, whole=False)
    onlinepbx_api.recordings[recorded] = AUDIO
    monkeypatch.setenv("PGCTI_PBX_KEY", KEY)
    gw = Gateway(gateway_dsn, free_port(), "--onlinepbx-api", onlinepbx_api.url)
    try:
        assert not onlinepbx_api.searches, "no link is asked for before someone listens"
        status, body, headers = http_get(gw.port, f"/recording/{recorded_id}", tokens["101"])
        assert (status, body) == (200, AUDIO) and header(headers, "content-type") == "audio/mpeg"
        assert onlinepbx_api.searches[recorded] == 1
        # A range, as an <audio> element asks when the person skips ahead.
        status, body, headers = http_get(
            gw.port, f"/recording/{recorded_id}", tokens["101"], {"Range": "bytes=1000-1999"}
        )
        assert (status, body) == (206, AUDIO[1000:2000])
        assert header(headers, "content-range") == f"bytes 1000-1999/{len(AUDIO)}"
        assert onlinepbx_api.searches[recorded] == 2, "a fresh link for each request"
        # Who may hear: 102 was not on the call; a supervisor hears every call.
        status, body, _ = http_get(gw.port, f"/recording/{recorded_id}", tokens["102"])
        assert status == 403 and b"not on the call" in body
        assert http_get(gw.port, f"/recording/{recorded_id}", supervisor)[:2] == (200, AUDIO)
        # The PBX recorded nothing; the call is not over; the link expired before it was used.
        status, body, _ = http_get(gw.port, f"/recording/{unrecorded_id}", tokens["101"])
        assert status == 404 and b"onlinePBX has no recording of this call" in body
        status, body, _ = http_get(gw.port, f"/recording/{under_way_id}", tokens["101"])
        assert status == 404 and b"not complete yet" in body
        onlinepbx_api.link_seconds = -1
        status, body, _ = http_get(gw.port, f"/recording/{recorded_id}", tokens["101"])
        assert status == 502 and b"refused its own link" in body
    finally:
        log = gw.stop()
    assert "calls-records" not in log and KEY not in log, log
    # Every request is in the play log: who, which call, allowed or not and why.
    plays = conn.execute(
        "SELECT login, call_id, file, allowed, why FROM cti.recording_play ORDER BY id"
    ).fetchall()
    assert [(p[1], p[3]) for p in plays] == [
        (recorded_id, True),
        (recorded_id, True),
        (recorded_id, False),
        (recorded_id, True),
        (unrecorded_id, True),
        (under_way_id, False),
        (recorded_id, True),
    ]
    assert plays[0][0] == tokens["login-101"] and plays[2][0] == tokens["login-102"]
    assert plays[0][2] == recorded and plays[3][0] is None  # the supervisor: no desk login


def test_without_the_pbx_key_the_gateway_says_what_to_give(dsn, monkeypatch):
    from tests.conftest import run_cli

    monkeypatch.delenv("PGCTI_PBX_KEY", raising=False)
    done = run_cli(
        "gateway", "--dsn", dsn, "--onlinepbx-api", "https://api2.onlinepbx.ru/x.onpbx.ru",
        check=False,
    )  # fmt: skip
    assert done.returncode == 2
    assert "--onlinepbx-api needs the PBX's API key: set PGCTI_PBX_KEY or give --key-file" in (
        done.stderr
    )
