"""Click-to-call through the real edge: a desk calls cti.dial_v1 with its own login, `pgcti
ingest --pbx asterisk --dial` (an ingester login made a member of cti_dialer) sends the
Originate to the simulated AMI over a real socket, and the call that comes back is linked.
Each request reaches the PBX once: through SIGKILL, a claim whose edge died, two edges."""

from __future__ import annotations

import psycopg
import pytest

from ingester.simulator.onlinepbx_http import OnlinepbxHttpApi
from tests.conftest import run_cli
from tests.support.dialing import STARTED, dial, linked_by_number_and_time, states
from tests.support.live import KEY, IngestProcess, SimulatorThread, wait_for

# `site` and the stopping of edges a test left running: tests/edge/conftest.py
pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def ami():
    sim = SimulatorThread(protocol="asterisk")
    yield sim
    sim.close()


def dialer(edge_dsn: str, ami, tmp, *extra: str) -> IngestProcess:
    ingest = IngestProcess(
        edge_dsn, ami.url, tmp, ami.server.secret, "--pbx", "asterisk", "--dial", *extra
    )
    STARTED.append(ingest)
    wait_for(lambda: "taking dial requests" in ingest.log, 20, "the dialer ready")
    wait_for(lambda: "logged in to the AMI" in ingest.log, 20, "the AMI login")
    return ingest


def test_a_desk_dials_the_pbx_places_it_and_the_call_pops_once_at_that_desk(
    conn, site, ami, tmp_path
):
    crm, desks, edge = site
    with psycopg.connect(desks["101"], autocommit=True) as desk:
        (channel,) = desk.execute(
            "SELECT channel FROM cti.whoami_v1() WHERE stream = 'commands'"
        ).fetchone()
        desk.execute(f'LISTEN "{channel}"')
        ingest = dialer(edge, ami, tmp_path)
        rid = dial(desks["101"], "8 (495) 123-45-67")
        wait_for(lambda: states(conn)[rid][0] == "answered", 20, "the desk answered")
        wait_for(
            lambda: (
                conn.execute(
                    "SELECT count(*) FROM cti.call_history_v1 WHERE dial_request_id = %s AND ended_at IS NOT NULL",
                    [rid],
                ).fetchone()[0]
                == 1
            ),
            20,
            "the call linked and ended",
        )
        list(desk.notifies(timeout=2, stop_after=1))  # a real doorbell rang
        items = desk.execute("SELECT type, payload FROM cti.pull_commands_v1()").fetchall()
    assert [t for t, _ in items] == ["open_card", "call_ended"]
    assert items[0][1]["dial_request"] == rid and items[0][1]["client_name"] == "Ivan Ivanov"
    assert ami.server.originates == {rid: 1}
    (call,) = conn.execute(
        "SELECT direction, client_id, answered_by, dialled_from_workstation FROM cti.call_history_v1"
    ).fetchall()
    assert call == ("outbound", crm["ivanov"], "101", crm["ws-101"])
    assert ingest.stop() == 0
    assert ami.server.secret not in ingest.log


def test_the_pbx_refuses_or_the_desk_does_not_answer_the_request_says_why(
    conn, site, ami, tmp_path
):
    _, desks, edge = site
    ingest = dialer(edge, ami, tmp_path)
    ami.server.desk_answers = False
    unanswered = dial(desks["101"], "84951234567")
    wait_for(lambda: states(conn)[unanswered][0] == "failed", 20, "the ring-out")
    assert states(conn)[unanswered] == ("failed", "the desk did not answer")
    ami.server.originate_allowed = False  # the manager user lacks `write = originate`
    refused = dial(desks["102"], "84951234567")
    wait_for(lambda: states(conn)[refused][0] == "failed", 20, "the refusal")
    assert states(conn)[refused] == ("failed", "the PBX refused the request: Permission denied")
    assert ingest.stop() == 0


def test_sigkill_after_the_send_sends_nothing_twice(conn, site, ami, tmp_path):
    """The edge dies after the Originate went and before anything came back: its successor
    (same state directory) sends nothing again, and the PBX's answer, when it comes, settles
    the request."""
    _, desks, edge = site
    ami.server.placing_seconds = 4.0
    first = dialer(edge, ami, tmp_path / "edge")
    rid = dial(desks["101"], "84951234567")
    wait_for(lambda: ami.server.originates[rid] == 1, 20, "the Originate sent")
    first.kill()
    assert states(conn)[rid][0] == "sent"
    second = dialer(edge, ami, tmp_path / "edge", "--tick-seconds", "1")
    wait_for(lambda: states(conn)[rid][0] == "answered", 20, "the answer after the restart")
    # A request whose edge died after claiming it and before sending it: never sent, and
    # unknown once dial_unknown_after has passed (the tick's housekeeping).
    conn.execute("UPDATE cti.config SET dial_unknown_after = '2 seconds'")
    dead = str(
        conn.execute(
            "INSERT INTO cti.dial_request (login, workstation_id, extension, number, state,"
            " sent_at, sent_by, expires_at) SELECT login, workstation_id, extension,"
            " '+74951112233', 'sent', now(), 'a dead edge', now() + interval '30 seconds'"
            " FROM cti.dial_request WHERE id = %s RETURNING id",
            [rid],
        ).fetchone()[0]
    )
    wait_for(lambda: states(conn)[dead][0] == "unknown", 30, "the dead edge's claim unknown")
    assert ami.server.originates[rid] == 1 and dead not in ami.server.originates
    assert "not dialled again" in states(conn)[dead][1]
    assert second.stop() == 0


def test_two_edges_send_every_request_exactly_once(conn, site, ami, tmp_path):
    _, desks, edge = site
    ami.server.placing_seconds = 0.05
    edges = [dialer(edge, ami, tmp_path / f"edge{n}") for n in (1, 2)]
    wanted = [dial(desks[ext], f"8495000{n:04d}") for n in range(10) for ext in ("101", "102")]
    wait_for(
        lambda: all(s[0] == "answered" for s in states(conn).values()), 60, "every request answered"
    )
    assert dict(ami.server.originates) == {rid: 1 for rid in wanted}
    senders = conn.execute("SELECT count(DISTINCT sent_by) FROM cti.dial_request").fetchone()[0]
    assert senders in (1, 2)  # whoever claimed first; never both for one request
    for ingest in edges:
        assert ingest.stop() == 0


def test_a_failover_that_lost_the_claim_does_not_make_the_edge_send_again(
    conn, site, ami, tmp_path
):
    """A standby promoted before the claim's commit reached it hands the request out again:
    the edge's dial ledger (fsync'd before each send) has its id, so it is not sent twice,
    and the call it placed settles it."""
    _, desks, edge = site
    ingest = dialer(edge, ami, tmp_path, "--tick-seconds", "1")
    rid = dial(desks["101"], "84951234567")
    wait_for(lambda: states(conn)[rid][0] == "answered", 20, "the first send")
    conn.execute(  # what the promoted standby holds: the request as it was before the claim
        "UPDATE cti.dial_request SET state = 'requested', sent_at = NULL, sent_by = NULL,"
        " decided_at = NULL WHERE id = %s",
        [rid],
    )
    conn.execute("NOTIFY cti_dial_v1")
    wait_for(lambda: "handed out again" in ingest.log, 20, "the edge refusing a second send")
    wait_for(lambda: states(conn)[rid][0] == "answered", 20, "settled by the call it placed")
    assert ami.server.originates == {rid: 1}
    assert ingest.stop() == 0


def test_an_edge_whose_login_may_not_dial_says_what_to_grant_and_goes_on_ingesting(
    conn, site, ami, tmp_path, make_login
):
    _, desks, _ = site
    plain = make_login("cti_ingester", "nodialer")
    ingest = IngestProcess(
        plain, ami.url, tmp_path, ami.server.secret, "--pbx", "asterisk", "--dial"
    )
    STARTED.append(ingest)
    wait_for(lambda: "refuses this login dial requests" in ingest.log, 20, "the refusal logged")
    assert "GRANT cti_dialer" in ingest.log
    rid = dial(desks["101"], "84951234567")
    ami.send(["Event: FullyBooted\r\nPrivilege: system,all\r\nStatus: Fully Booted"])
    wait_for(
        lambda: (
            conn.execute("SELECT count(*) FROM cti.raw_event WHERE source = 'asterisk'").fetchone()[
                0
            ]
            >= 2
        ),
        20,
        "events still stored",
    )
    assert states(conn)[rid][0] == "requested" and ami.server.originates == {}
    assert ingest.stop() == 0


@pytest.fixture
def cloud():
    """The onlinePBX 3.0 simulator with its HTTP API beside it, on one loop."""
    sim = SimulatorThread()
    api = OnlinepbxHttpApi(sim.server, KEY)
    sim._call(api.start())
    yield sim, api
    sim._call(api.stop())
    sim.close()


def test_onlinepbx_call_now_places_the_call_and_it_is_linked_by_number_and_time(
    conn, site, cloud, tmp_path
):
    crm, desks, edge = site
    sim, api = cloud
    config = tmp_path / "ingest.toml"
    config.write_text(f'[ingest]\ndial = true\napi_url = "{api.url}"\n')
    ingest = IngestProcess(
        edge, sim.url, tmp_path, KEY, "--config", str(config), "--tick-seconds", "1"
    )
    STARTED.append(ingest)
    wait_for(lambda: "taking dial requests" in ingest.log, 20, "the dialer ready")
    rid = dial(desks["102"], "+7 495 123-45-67")
    wait_for(lambda: states(conn)[rid][0] == "answered", 30, "the desk's leg answered")
    assert api.calls.requests == {("102", "74951234567"): 1}
    linked_by_number_and_time(conn, crm, desks["102"], rid, "ws-102")
    api.calls.refuse = "extension 101 is not registered"
    refused = dial(desks["101"], "84951234567")
    wait_for(lambda: states(conn)[refused][0] == "failed", 20, "the refusal")
    assert (
        states(conn)[refused][1] == "the PBX refused the request: extension 101 is not registered"
    )
    assert ingest.stop() == 0
    assert KEY not in ingest.log and not any(s.split(":")[1] in ingest.log for s in api.sessions)


def test_pgcti_watch_dials_from_the_desk_and_follows_the_request(conn, site, ami, tmp_path):
    _, desks, edge = site
    ingest = dialer(edge, ami, tmp_path)
    done = run_cli("watch", "--dsn", desks["101"], "--dial", "8 495 123-45-67", "--duration", "30")
    lines = done.stdout.splitlines()
    # Each state as it is seen (sampled: a fast edge may take the request before the first look).
    assert lines[0].startswith("dial request ") and (
        "asked" in lines[0] or "sent" in lines[0] or "answered" in lines[0]
    )
    assert "you answered" in lines[-1] and lines[-1].endswith(": answered"), lines
    bad = run_cli("watch", "--dsn", desks["101"], "--dial", "call me", check=False)
    assert bad.returncode == 2
    assert "cannot dial: cannot dial 'call me': not a phone number" in bad.stderr
    assert len(ami.server.originates) == 1
    assert ingest.stop() == 0
