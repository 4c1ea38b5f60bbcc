"""Click-to-call on the SQL side (db/logic/54_dialing.sql): a desk asks with its own login,
the edge claims with its own, and outcomes come back through the raw log."""

from __future__ import annotations

import json
import random
import threading
import time
from datetime import UTC, datetime

import psycopg
import pytest

from ingester.simulator import onlinepbx3_calls as pbx
from ingester.simulator.asterisk_calls import block
from tests.support.ami_traces import chan, click_to_call_through_local
from tests.support.crm_fixture import KNOWN, LINE, builder, commands, insert_frames, seed_crm

CLIENT = "+74951234567"  # Ivanov at Romashka, as KNOWN spells it


@pytest.fixture
def dialing(conn, make_login):
    """The reference CRM; desks at workstations 101 and 102; an edge login that may place
    calls (an ingester made a member of cti_dialer) and one that may not."""
    crm = seed_crm(conn)
    logins = {}
    for ext in ("101", "102"):
        dsn = make_login("cti_client", f"dial{ext}")
        login = psycopg.conninfo.conninfo_to_dict(dsn)["user"]
        conn.execute(
            "INSERT INTO cti.client_login (login, workstation_id) VALUES (%s, %s)",
            [login, crm[f"ws-{ext}"]],
        )
        logins[ext] = dsn
    logins["edge"] = make_login("cti_ingester", "dialedge")
    edge_user = psycopg.conninfo.conninfo_to_dict(logins["edge"])["user"]
    conn.execute(f'GRANT cti_dialer TO "{edge_user}"')
    logins["ingester"] = make_login("cti_ingester", "plainingest")
    return crm, logins


def as_login(dsn: str, sql: str, params: list | None = None) -> list[tuple]:
    with psycopg.connect(dsn, autocommit=True) as c:
        return c.execute(sql, params or []).fetchall()


def request(conn, request_id) -> dict:
    cur = conn.execute("SELECT * FROM cti.dial_request WHERE id = %s", [request_id])
    return dict(zip([c.name for c in cur.description], cur.fetchone(), strict=True))


def dial(dsn: str, number: str, client_id: int | None = None):
    return as_login(dsn, "SELECT cti.dial_v1(%s, %s)", [number, client_id])[0][0]


def claim(dsn: str, edge: str = "edge-1") -> list[tuple]:
    return as_login(
        dsn, "SELECT request_id, extension, number, display_name FROM cti.dial_claim_v1(%s)", [edge]
    )


def test_a_desk_dials_from_its_own_extension_and_the_edge_hears_the_doorbell(conn, dialing):
    crm, logins = dialing
    with psycopg.connect(conn.info.dsn, autocommit=True) as edge:
        edge.execute("LISTEN cti_dial_v1")
        rid = dial(logins["102"], "8 (495) 123-45-67", crm["ivanov"])
        (note,) = list(edge.notifies(timeout=2, stop_after=1))
    assert note.payload == str(rid)  # the id only: no number on a channel anyone may LISTEN to
    row = request(conn, rid)
    assert (row["extension"], row["number"], row["client_id"], row["state"]) == (
        "102",
        CLIENT,
        crm["ivanov"],
        "requested",
    )
    assert row["expires_at"] > row["requested_at"]
    (mine,) = as_login(
        logins["102"], "SELECT request_id, number, state FROM cti.dial_requests_v1()"
    )
    assert mine == (rid, CLIENT, "requested")
    assert as_login(logins["101"], "SELECT * FROM cti.dial_requests_v1()") == []


def test_an_internal_extension_may_be_dialled(conn, dialing):
    _, logins = dialing
    rid = dial(logins["101"], "103")
    assert request(conn, rid)["number"] == "103"


@pytest.mark.parametrize(
    ("number", "error"),
    [
        ("call me maybe", "cannot dial 'call me maybe': not a phone number"),
        ("1" * 65, "over 64 characters"),
        (None, "no number to dial"),
        ("101", "this desk's own extension"),
    ],
)
def test_a_number_that_cannot_be_dialled_is_refused_clearly(dialing, number, error):
    _, logins = dialing
    with pytest.raises(psycopg.errors.InvalidParameterValue, match=error):
        dial(logins["101"], number)


def test_only_a_desk_with_an_extension_of_its_own_dials(conn, dialing, make_login):
    crm, logins = dialing
    staff = make_login("cti_client", "dialstaff")
    conn.execute(
        "INSERT INTO cti.client_login (login, employee_id) VALUES (%s, %s)",
        [psycopg.conninfo.conninfo_to_dict(staff)["user"], crm["Petrova"]],
    )
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="has no workstation"):
        dial(staff, "84951234567")
    # The adapters disagree (a DBA's override): the desk's extension leads to another desk.
    conn.execute(
        "UPDATE pgcti_refcrm.workstation SET extension = NULL WHERE id = %s", [crm["ws-101"]]
    )
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="no extension to dial from"):
        dial(logins["101"], "84951234567")
    conn.execute(
        "CREATE OR REPLACE FUNCTION cti.crm_extension_for_workstation(p_workstation_id bigint)"
        " RETURNS text"
        " LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$ SELECT '102' $$"
    )
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="is not at workstation"):
        dial(logins["101"], "84951234567")
    assert conn.execute("SELECT count(*) FROM cti.dial_request").fetchone()[0] == 0


def test_rights_a_desk_cannot_claim_or_write_and_the_ingester_cannot_dial(dialing):
    _, logins = dialing
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        dial(logins["ingester"], "84951234567")
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        dial(logins["edge"], "84951234567")  # the edge places calls, it does not ask for them
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        claim(logins["101"])
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        claim(logins["ingester"])  # an ingester not made a dialer
    for statement in (
        "SELECT * FROM cti.dial_request",
        "UPDATE cti.dial_request SET extension = '102'",
        "INSERT INTO cti.dial_request (login, workstation_id, extension, number, expires_at)"
        " VALUES (current_user, 1, '102', '+74951234567', now())",
    ):
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            as_login(logins["101"], statement)


def test_a_second_click_is_the_same_request_and_a_desk_is_rate_limited(conn, dialing):
    _, logins = dialing
    first = dial(logins["101"], "84951234567")
    assert dial(logins["101"], "+7 495 123 45 67") == first
    conn.execute("UPDATE cti.config SET dial_requests_per_minute = 3")
    dial(logins["101"], "84950000001")
    dial(logins["101"], "84950000002")
    with pytest.raises(psycopg.errors.ProgramLimitExceeded, match="3 in the last minute"):
        dial(logins["101"], "84950000003")
    assert dial(logins["102"], "84950000003")  # another desk has its own limit


def test_the_edge_claims_each_request_once_and_old_ones_expire(conn, dialing):
    _, logins = dialing
    old = dial(logins["101"], "84951234567")
    conn.execute("UPDATE cti.dial_request SET expires_at = now() - interval '1 second'")
    fresh = dial(logins["102"], "84951234567")
    claimed = claim(logins["edge"])
    assert claimed == [(fresh, "102", CLIENT, "Ivan Ivanov")]
    assert claim(logins["edge"], "edge-2") == []
    assert request(conn, old)["state"] == "expired"
    row = request(conn, fresh)
    assert (row["state"], row["sent_by"]) == ("sent", "edge-1")


def test_two_edges_claiming_at_once_never_take_the_same_request(conn, dialing):
    _, logins = dialing
    wanted = {dial(logins["101"], f"8495000000{i}") for i in range(5)}
    wanted |= {dial(logins["102"], f"8495000000{i}") for i in range(5)}
    taken: list[list] = [[], []]
    barrier = threading.Barrier(2)

    def edge(n: int) -> None:
        with psycopg.connect(logins["edge"]) as c:  # one transaction each, open together
            barrier.wait()
            for _ in range(5):
                taken[n] += [
                    r[0]
                    for r in c.execute("SELECT request_id FROM cti.dial_claim_v1(%s, 1)", [f"e{n}"])
                ]

    threads = [threading.Thread(target=edge, args=(n,)) for n in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not set(taken[0]) & set(taken[1])
    assert set(taken[0]) | set(taken[1]) == wanted


def ami(event: str | None, **fields: str) -> str:
    if event is None:
        return "\r\n".join(f"{k}: {v}" for k, v in fields.items())
    return block(event, fields)


def originate_response(rid, response: str, reason: str) -> str:
    return ami(
        "OriginateResponse",
        ActionID=f"pgcti-dial-{rid}",
        Response=response,
        Channel="Local/101@from-internal-0000001",
        Context="from-internal",
        Exten="84951234567",
        Reason=reason,
        Uniqueid=str(rid),
        CallerIDNum="84951234567",
        CallerIDName="Ivan Ivanov",
    )


def sent(conn, logins, ext: str = "101", number: str = "84951234567"):
    rid = dial(logins[ext], number)
    claim(logins["edge"])
    return rid


@pytest.mark.parametrize(
    ("frame", "state", "reason"),
    [
        (lambda rid: originate_response(rid, "Success", "4"), "answered", None),
        (lambda rid: originate_response(rid, "Failure", "3"), "failed", "the desk did not answer"),
        (lambda rid: originate_response(rid, "Failure", "5"), "failed", "the desk was busy"),
        (
            lambda rid: ami(
                None, Response="Error", ActionID=f"pgcti-dial-{rid}", Message="Permission denied"
            ),
            "failed",
            "the PBX refused the request: Permission denied",
        ),
    ],
)
def test_the_pbx_answer_settles_the_request(conn, dialing, frame, state, reason):
    _, logins = dialing
    rid = sent(conn, logins)
    queued = ami(
        None,
        Response="Success",
        ActionID=f"pgcti-dial-{rid}",
        Message="Originate successfully queued",
    )
    insert_frames(conn, [queued], source="asterisk")
    assert request(conn, rid)["state"] == "sent"  # queued: the outcome comes later
    insert_frames(conn, [frame(rid)], source="asterisk")
    row = request(conn, rid)
    assert (row["state"], row["reason"]) == (state, reason)
    assert row["decided_at"] is not None
    # Forward only: a late or repeated answer changes nothing.
    insert_frames(conn, [originate_response(rid, "Failure", "1")], source="asterisk")
    assert request(conn, rid)["state"] == state


def test_the_edges_own_report_fails_a_request_it_could_not_send(conn, dialing):
    _, logins = dialing
    rid = sent(conn, logins)
    report = {
        "event": "dial_response",
        "request": str(rid),
        "sent": False,
        "reason": "the PBX link is down",
    }
    insert_frames(conn, [report], source="pgcti")
    row = request(conn, rid)
    assert (row["state"], row["reason"]) == ("failed", "not sent: the PBX link is down")
    bad = {"event": "dial_response", "sent": False}
    insert_frames(conn, [bad], source="pgcti")
    (detail,) = conn.execute(
        "SELECT detail FROM cti.event_outcome o JOIN cti.raw_event r ON r.id = o.raw_event_id"
        " WHERE r.frame ->> 'event' = 'dial_response' ORDER BY r.id DESC LIMIT 1"
    ).fetchone()
    assert 'lacks field "frame.request"' in detail


def tick(conn) -> None:
    insert_frames(conn, [{"event": "tick", "at": datetime.now(UTC).isoformat()}], source="pgcti")


def test_a_request_sent_without_an_answer_becomes_unknown_and_evidence_still_settles_it(
    conn, dialing
):
    _, logins = dialing
    rid = sent(conn, logins)
    tick(conn)
    assert request(conn, rid)["state"] == "sent"  # not yet: dial_unknown_after has not passed
    conn.execute("UPDATE cti.dial_request SET sent_at = now() - interval '3 minutes'")
    tick(conn)
    row = request(conn, rid)
    assert row["state"] == "unknown" and "not dialled again" in row["reason"]
    assert claim(logins["edge"]) == []  # never handed out again
    insert_frames(conn, [originate_response(rid, "Success", "4")], source="asterisk")
    assert request(conn, rid)["state"] == "answered"


def test_the_call_a_request_placed_is_linked_pops_once_and_closes_the_callback_task(conn, dialing):
    crm, logins = dialing
    # Ivanov called and nobody answered: a callback task for his manager.
    insert_frames(conn, pbx.inbound_unanswered(builder(), KNOWN, LINE, ["101"], "NO_ANSWER"))
    assert (
        conn.execute("SELECT count(*) FROM cti.callback_task WHERE closed_at IS NULL").fetchone()[0]
        == 1
    )
    rid = sent(conn, logins)
    conn.execute("DELETE FROM cti.outbox")
    insert_frames(conn, [originate_response(rid, "Success", "4")], source="asterisk")
    insert_frames(conn, click_to_call_through_local("84951234567", lid=str(rid)), source="asterisk")
    (call,) = conn.execute(
        "SELECT call_id, direction, client_id, outcome, dial_request_id, dialled_from_workstation"
        " FROM cti.call_history_v1 WHERE dial_request_id IS NOT NULL"
    ).fetchall()
    assert call[1:] == ("outbound", crm["ivanov"], "answered", rid, crm["ws-101"])
    # One card for the desk that dialled, which knows it placed this call.
    assert commands(conn, "ws") == [
        ("ws", crm["ws-101"], "open_card", call[0]),
        ("ws", crm["ws-101"], "call_ended", call[0]),
    ]
    card = conn.execute("SELECT payload FROM cti.outbox WHERE type = 'open_card'").fetchone()[0]
    assert card["dial_request"] == str(rid)
    assert (
        conn.execute("SELECT count(*) FROM cti.callback_task WHERE closed_at IS NULL").fetchone()[0]
        == 0
    )
    (mine,) = as_login(
        logins["101"], "SELECT state, call_id, call_link, call_outcome FROM cti.dial_requests_v1()"
    )
    assert mine == ("answered", call[0], "exact", "answered")


def test_a_call_nobody_asked_for_names_no_request(conn, dialing):
    _, logins = dialing
    sent(conn, logins)  # a request is on its way, for another call
    lid = "1700000900.10"
    frames = [
        block(
            "Newchannel",
            chan("PJSIP/101-00000090", lid, "101", "84951234567", "from-internal", 4, lid),
        ),
        block(
            "Hangup",
            {
                **chan("PJSIP/101-00000090", lid, "101", "84951234567", "from-internal", 4, lid),
                "Cause": 16,
            },
        ),
    ]
    insert_frames(conn, frames, source="asterisk")
    rows = conn.execute("SELECT dial_request_id FROM cti.call_history_v1").fetchall()
    assert rows == [(None,)]
    assert json.dumps(rows)  # and the history stays plain JSON-able data


def test_on_onlinepbx_the_clients_own_call_just_before_is_not_the_call_placed(conn, dialing):
    """The desk calls back a client whose call it missed a moment ago: the link by number and
    time takes the outbound call the request placed, not that inbound one."""
    crm, logins = dialing
    missed = pbx.CallBuilder(random.Random(1), clock=time.time())
    insert_frames(conn, pbx.inbound_unanswered(missed, KNOWN, LINE, ["101"], "NO_ANSWER"))
    dial(logins["101"], KNOWN)
    claim(logins["edge"])
    placed = pbx.CallBuilder(random.Random(2), clock=time.time() + 1)
    insert_frames(conn, pbx.outbound(placed, "101", "74951234567"))
    (link,) = as_login(logins["101"], "SELECT call_id, call_link FROM cti.dial_requests_v1()")
    (outbound,) = conn.execute("SELECT id FROM cti.call WHERE direction = 'outbound'").fetchone()
    assert link == (outbound, "by number and time")
