"""AMI truths found on held-out real captures (issue 31, parts 7-11): channel names that are
neither digits nor configured, withheld numbers, a device hangup that never arrives, and a
phone that rejects. Traces of our own, in the shape of the real ones; the live tier
(tests/live) shows the ones the lab can produce."""

from __future__ import annotations

import pytest

from ingester.simulator.ami_server import blocks_of
from ingester.simulator.asterisk_calls import block
from tests.support.ami_captures import real_captures
from tests.support.ami_traces import bridge, chan, dest
from tests.support.crm_fixture import KNOWN, insert_frames, seed_crm

HISTORY = """SELECT direction, external_number, answered_by, extension_chain, outcome, hangup_cause,
                    withheld, dialled, ended_at IS NOT NULL FROM cti.call_history_v1 ORDER BY call_id"""
LINKED = "1700000300.1"

pytestmark = pytest.mark.rolled_back


def call(
    caller: str,
    device: str,
    dial_string: str,
    *,
    caller_id: str = "79161234567",
    context: str = "from-carrier",
    exten: str = "74950001122",
    answer: bool = True,
    device_hangs_up: bool = True,
    refusal: tuple[str, int] | None = None,
    presentation: str | None = None,
) -> list[str]:
    """`caller` calls `exten`; the dialplan dials `device` with `dial_string`; it answers
    and talks (or refuses: DialEnd status and Hangup cause), then the caller hangs up."""
    a = chan(caller, LINKED, caller_id, exten, context, 4, LINKED)
    b = chan(device, "1700000300.2", "<unknown>", "s", "from-internal", 0, LINKED)
    blocks = [block("Newchannel", a)]
    if presentation:
        blocks.append(block("NewCallerid", {**a, "CID-CallingPres": presentation}))
    blocks += [
        block("Newchannel", b),
        block("DialBegin", {**a, **dest(b), "DialString": dial_string}),
    ]
    if refusal:
        status, cause = refusal
        return [
            *blocks,
            block("DialEnd", {**a, **dest(b), "DialStatus": status}),
            block("Hangup", {**b, "Cause": cause, "Cause-txt": "x"}),
            block("Hangup", {**a, "Cause": 16, "Cause-txt": "Normal Clearing"}),
        ]
    up = {**b, "ChannelState": 6, "ChannelStateDesc": "Up"}
    blocks += [
        block("Newstate", up),
        block("DialEnd", {**a, **dest(up), "DialStatus": "ANSWER"}),
        block("BridgeEnter", {**bridge("b1", 1), **a}),
        block("BridgeEnter", {**bridge("b1", 2), **up}),
        block("BridgeLeave", {**bridge("b1", 1), **a}),
        block("Hangup", {**a, "Cause": 16, "Cause-txt": "Normal Clearing"}),
    ]
    if device_hangs_up:
        blocks += [
            block("BridgeLeave", {**bridge("b1", 0), **up}),
            block("Hangup", {**up, "Cause": 16, "Cause-txt": "Normal Clearing"}),
        ]
    return blocks


def history(conn, blocks: list[str]) -> list[tuple]:
    insert_frames(conn, blocks, source="asterisk")
    return conn.execute(HISTORY).fetchall()


# --- 7: extensions and trunks by what the events show ---------------------------------


def test_an_endpoint_named_after_a_user_and_dialled_by_name_is_an_extension(conn):
    seed_crm(conn)
    rows = history(conn, call("PJSIP/carrier-00000001", "PJSIP/alice-00000002", "alice"))
    assert rows == [
        ("inbound", "+79161234567", "alice", ["alice"], "answered", "NORMAL_CLEARING", False,
         "74950001122", True)
    ]  # fmt: skip


def test_a_device_with_a_dash_in_its_name_dialling_out_through_a_trunk(conn):
    """The shape of goami2's capture: SIP/9170-12 (context default, caller id 9170) dials
    9898@okon.ferry.sip.com, which answers: an extension's answered outbound call."""
    seed_crm(conn)
    rows = history(
        conn,
        call("SIP/9170-12-0000003c", "SIP/okon.ferry.sip.com-0000003d", "9898@okon.ferry.sip.com",
             caller_id="9170", context="default", exten="9898"),
    )  # fmt: skip
    assert [r[:5] for r in rows] == [("outbound", "9898", "9170-12", ["9170-12"], "answered")]
    assert rows[0][7] == "9898"


def test_the_real_capture_of_a_dashed_device_needs_no_adapter(conn):
    (capture,) = [f for f in real_captures() if f.name == "goami2-1.ami"]
    seed_crm(conn)
    rows = history(conn, blocks_of(capture))
    assert [r[:5] for r in rows] == [("outbound", "9898", "9170-12", ["9170-12"], "answered")]


def test_a_trunk_dialled_with_a_number_is_a_trunk_whatever_its_name(conn):
    """A customer's call forwarded out through the trunk it came in on: two trunks, no
    extension; the two talked, so the call is answered, never missed."""
    seed_crm(conn)
    rows = history(conn, call("PJSIP/mts-00000001", "PJSIP/mts-00000002", "89161112233@mts"))
    assert [(r[0], r[2], r[4]) for r in rows] == [("inbound", None, "answered")]


def test_a_configured_trunk_stays_a_trunk(conn):
    seed_crm(conn)
    conn.execute("UPDATE cti.config SET ami_trunk_channels = ARRAY['^PJSIP/alice-']")
    rows = history(conn, call("PJSIP/carrier-00000001", "PJSIP/alice-00000002", "alice"))
    assert rows[0][2] is None


# --- 8: withheld numbers -----------------------------------------------------------------


def test_an_anonymous_caller_is_withheld_not_looked_up_not_registered(conn):
    seed_crm(conn)
    rows = history(
        conn, call("PJSIP/carrier-00000001", "PJSIP/101-00000002", "101", caller_id="anonymous")
    )
    assert [(r[1], r[2], r[6]) for r in rows] == [(None, "101", True)]
    (payload,) = conn.execute("SELECT payload FROM cti.outbox WHERE type = 'open_card'").fetchone()
    assert payload.get("withheld") is True and "number" not in payload
    assert conn.execute("SELECT client_id FROM cti.call").fetchone() == (None,)
    assert conn.execute("SELECT count(*) FROM cti.registered_number").fetchone() == (0,)
    assert conn.execute("SELECT count(*) FROM cti.callback_task").fetchone() == (0,)
    raw = conn.execute("SELECT body FROM cti.raw_event ORDER BY id LIMIT 1").fetchone()[0]
    assert "CallerIDNum: anonymous" in raw  # the raw log keeps what was sent


def test_presentation_prohibited_hides_a_known_number_everywhere_people_look(conn):
    seed_crm(conn)
    known = "".join(ch for ch in KNOWN if ch.isdigit())
    blocks = call(
        "SIP/voipgrid-00000027", "PJSIP/101-00000002", "101", caller_id=known,
        presentation="33 (Presentation Prohibited, Passed Screen)",
    )  # fmt: skip
    rows = history(conn, blocks)
    assert [(r[1], r[6]) for r in rows] == [(None, True)]
    # From the NewCallerid on: the card carries no number (a ring sent before it did: the
    # presentation was not known yet).
    (card,) = [
        p for (p,) in conn.execute("SELECT payload FROM cti.outbox WHERE type = 'open_card'")
    ]
    assert card["withheld"] is True and "number" not in card and "1234567" not in str(card)
    assert "1234567" in conn.execute("SELECT string_agg(body, '') FROM cti.raw_event").fetchone()[0]


def test_a_setting_allows_looking_a_withheld_number_up(conn):
    crm = seed_crm(conn)
    conn.execute("UPDATE cti.config SET lookup_withheld_numbers = true")
    known = "".join(ch for ch in KNOWN if ch.isdigit())
    blocks = call(
        "SIP/voipgrid-00000027", "PJSIP/101-00000002", "101", caller_id=known,
        presentation="32 (Presentation Prohibited, Not Screened)",
    )  # fmt: skip
    history(conn, blocks)
    assert conn.execute("SELECT client_id FROM cti.call").fetchone() == (crm["ivanov"],)
    (payload,) = conn.execute("SELECT payload FROM cti.outbox WHERE type = 'open_card'").fetchone()
    assert payload["client_name"] == "Ivan Ivanov" and "number" not in payload


def test_presentation_allowed_changes_nothing(conn):
    seed_crm(conn)
    blocks = call(
        "PJSIP/carrier-00000001", "PJSIP/101-00000002", "101",
        presentation="0 (Presentation Allowed, Not Screened)",
    )  # fmt: skip
    rows = history(conn, blocks)
    assert [(r[1], r[6]) for r in rows] == [("+79161234567", False)]


# --- 9: a device hangup that never arrives ------------------------------------------------


def test_the_call_ends_when_the_last_party_is_alone(conn):
    seed_crm(conn)
    blocks = call("PJSIP/carrier-00000001", "PJSIP/101-00000002", "101", device_hangs_up=False)
    rows = history(conn, blocks)
    assert [(r[2], r[4], r[8]) for r in rows] == [("101", "answered", True)]
    assert conn.execute("SELECT count(*) FROM cti.outbox WHERE type = 'call_ended'").fetchone() == (
        1,
    )


def test_a_customer_waiting_alone_keeps_the_call_open(conn):
    """The customer's leg left alone (a blind transfer on its way) is no end."""
    seed_crm(conn)
    blocks = call("PJSIP/carrier-00000001", "PJSIP/101-00000002", "101")
    customer_stays = blocks[:-4] + blocks[-2:]  # the device leaves and hangs up; not the caller
    rows = history(conn, customer_stays)
    assert [(r[2], r[8]) for r in rows] == [("101", False)]


# --- 11: hangup causes ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("refusal", "outcome", "cause"),
    [
        (("BUSY", 21), "rejected", "CALL_REJECTED"),
        (("BUSY", 17), "busy", "USER_BUSY"),
        (("NOANSWER", 19), "missed", "NO_ANSWER"),
    ],
)
def test_a_phone_that_rejects_is_rejected_not_busy(conn, refusal, outcome, cause):
    seed_crm(conn)
    blocks = call("PJSIP/carrier-00000001", "PJSIP/101-00000002", "101", refusal=refusal)
    rows = history(conn, blocks)
    assert [(r[4], r[2]) for r in rows] == [(outcome, None)]
    assert conn.execute(
        "SELECT hangup_cause FROM cti.call_leg WHERE leg_uuid = '1700000300.2'"
    ).fetchone() == (cause,)
    if outcome == "rejected":
        assert conn.execute("SELECT missed_calls FROM cti.callback_task").fetchone() == (1,)
        stats = conn.execute(
            "SELECT rejected, busy FROM cti.daily_call_stats_v1 WHERE all_lines"
        ).fetchone()
        assert stats == (1, 0)
