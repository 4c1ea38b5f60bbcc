"""Click-to-call on onlinePBX API 2.0's own socket (`dial_via = "socket"`): `pgcti ingest
--dial` sends `make_call` on the subscribed socket.io 0.9 connection to the simulator, whose
`callback` answer is stored and read by SQL; the call placed is linked by number and time."""

from __future__ import annotations

import pytest

from tests.support.dialing import STARTED, dial, linked_by_number_and_time, states
from tests.support.live import KEY, IngestProcess, SimulatorThread, wait_for

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def pbx2():
    sim = SimulatorThread(protocol="onlinepbx2")
    yield sim
    sim.close()


def _answers(conn) -> list[tuple]:
    """What processing made of the PBX's answers to our make_call commands."""
    return conn.execute(
        "SELECT o.status, o.detail FROM cti.raw_event e JOIN cti.event_outcome o"
        " ON o.raw_event_id = e.id WHERE e.frame ->> 'name' = 'callback'"
        " AND e.frame -> 'args' -> 0 ->> 'hash' LIKE 'pgcti-dial-%' ORDER BY e.id"
    ).fetchall()


def test_make_call_on_the_2_0_socket_places_the_call_once_and_links_it(conn, site, pbx2, tmp_path):
    crm, desks, edge = site
    config = tmp_path / "ingest.toml"
    config.write_text(
        '[ingest]\npbx = "onlinepbx2"\ndomain = "demo.onpbx.ru"\ndial = true\ndial_via = "socket"\n'
    )
    ingest = IngestProcess(
        edge, pbx2.url, tmp_path, KEY, "--config", str(config), "--tick-seconds", "1"
    )
    STARTED.append(ingest)
    wait_for(lambda: "taking dial requests" in ingest.log, 20, "the dialer ready")
    wait_for(lambda: pbx2.server.listeners() == 1, 20, "the socket subscribed")

    rid = dial(desks["102"], "+7 495 123-45-67")
    wait_for(lambda: states(conn)[rid][0] == "answered", 30, "the desk's leg answered")
    assert pbx2.server.calls.requests == {("102", "74951234567"): 1}
    assert _answers(conn) == [("processed", f"dial request {rid} accepted by the PBX")]
    linked_by_number_and_time(conn, crm, desks["102"], rid, "ws-102")

    pbx2.server.calls.refuse = "extension 101 is not registered"
    refused = dial(desks["101"], "84951234567")
    wait_for(lambda: states(conn)[refused][0] == "failed", 20, "the refusal")
    assert states(conn)[refused][1] == (
        "the PBX refused the request: extension 101 is not registered"
    )
    assert sum(pbx2.server.calls.requests.values()) == 2, "each request sent once"
    assert ingest.stop() == 0
    assert KEY not in ingest.log


def test_with_the_socket_down_nothing_is_sent_and_the_request_expires(conn, site, tmp_path):
    """No PBX to hold the socket: the edge takes nothing (it could not send it), so the
    request expires as configured instead of ringing someone minutes later."""
    _, desks, edge = site
    conn.execute("UPDATE cti.config SET dial_expire_after = '2 seconds'")
    sim = SimulatorThread(protocol="onlinepbx2")
    url = sim.url
    sim.close()  # nothing listens there any more
    config = tmp_path / "ingest.toml"
    config.write_text(
        '[ingest]\npbx = "onlinepbx2"\ndomain = "demo.onpbx.ru"\ndial = true\ndial_via = "socket"\n'
    )
    ingest = IngestProcess(edge, url, tmp_path, KEY, "--config", str(config), "--tick-seconds", "1")
    STARTED.append(ingest)
    wait_for(lambda: "taking dial requests" in ingest.log, 20, "the dialer ready")
    rid = dial(desks["101"], "84951234567")
    wait_for(lambda: states(conn)[rid][0] == "expired", 20, "the request expired")
    assert ingest.stop() == 0
