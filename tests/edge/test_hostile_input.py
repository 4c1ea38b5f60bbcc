"""Hostile input through a real socket to the real ingester: every frame is stored with a clear
outcome (or rejected with a logged reason), the ingester never crashes, the calls around them go on."""

from __future__ import annotations

import hashlib
import itertools
import json

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ingester.simulator import onlinepbx3_calls as pbx
from tests.conftest import _janitor, count_rows, dsn_for
from tests.support.crm_fixture import KNOWN, LINE, builder, seed_crm
from tests.support.live import IngestProcess, SimulatorThread, wait_for

_nonce = itertools.count()

texts = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=200)
hostile_strings = st.one_of(
    texts,
    st.sampled_from(
        [
            "'; DROP TABLE cti.raw_event; --",
            "\x00",
            "\u202e\u200b",
            "8 (495) 123-45-67\x07",
            "%s%s%n",
            "{{7*7}}",
            "\\u0000",
            "\ud7ff\ue000",
            "+7" * 40,
            " " * 300,
            "NaN",
            "-0",
        ]
    ),
)
numbers = st.one_of(
    st.integers(), st.floats(allow_nan=False, allow_infinity=False), hostile_strings
)
values = st.recursive(
    st.none() | st.booleans() | numbers | hostile_strings,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(texts, inner, max_size=4),
    max_leaves=12,
)
events = st.sampled_from(
    [
        "channel_create",
        "channel_answer",
        "channel_bridge",
        "channel_destroy",
        "channel_hold",
        "call_end",
        "subscribed",
        "mystery_event",
        "",
    ]
)


@st.composite
def frames(draw) -> str:
    kind = draw(st.sampled_from(["call_event", "wrong_types", "not_json", "not_object", "deep"]))
    nonce = next(_nonce)  # every frame distinct, so every one must show up as its own row
    if kind == "call_event":
        data = draw(
            st.dictionaries(
                st.sampled_from(
                    [
                        "uuid",
                        "call_uuid",
                        "caller_number",
                        "destination_number",
                        "created_stamp",
                        "answered_stamp",
                        "uuids",
                        "hangup_cause",
                    ]
                ),
                values,
                max_size=8,
            )
        )
        return json.dumps(
            {"event": draw(events), "data": data, "nonce": nonce}, ensure_ascii=draw(st.booleans())
        )
    if kind == "wrong_types":
        return json.dumps({"event": draw(values), "data": draw(values), "nonce": nonce})
    if kind == "not_json":
        return f"{nonce}:{draw(hostile_strings)}" + draw(
            st.sampled_from(["", "{", "}", '{"event": "channel_create"'])
        )
    if kind == "not_object":
        return json.dumps([nonce, draw(values)])
    return "[" * 2000 + str(nonce) + "]" * 2000  # deep nesting


@pytest.fixture(scope="module")
def pipeline(server_dsn, template_db, tmp_path_factory):
    name = "pgcti_hostile"
    janitor = _janitor(server_dsn, name, template_dbname=template_db)
    janitor.drop()
    janitor.init()
    dsn = dsn_for(server_dsn, name)
    with psycopg.connect(dsn, autocommit=True) as conn:
        seed_crm(conn)
    sim = SimulatorThread()
    ingest = IngestProcess(dsn, sim.url, tmp_path_factory.mktemp("hostile"))
    wait_for(lambda: sim.server.listeners() == 1, what="subscription")
    wait_for(
        lambda: count_rows(dsn) == 1, what="the `subscribed` reply stored"
    )  # counts below start after it
    yield dsn, sim, ingest
    code = ingest.stop()
    sim.close()
    janitor.drop()
    assert code == 0, "the ingester exits cleanly after all of it"


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(batch=st.lists(frames(), min_size=1, max_size=6))
def test_fuzzed_frames_are_stored_with_an_outcome(pipeline, batch):
    dsn, sim, ingest = pipeline
    before = count_rows(dsn)
    assert sim.send(batch) == len(batch)
    wait_for(lambda: count_rows(dsn) == before + len(batch), what=f"{len(batch)} frames stored")
    assert ingest.proc.poll() is None, "the ingester is still running"
    with psycopg.connect(dsn) as conn:
        missing = conn.execute(
            "SELECT count(*) FROM cti.raw_event r LEFT JOIN cti.event_outcome o"
            " ON o.raw_event_id = r.id WHERE o.status IS NULL"
        ).fetchone()[0]
    assert missing == 0, "every stored frame has an outcome"


def test_huge_frames_and_the_calls_around_them(pipeline):
    dsn, sim, ingest = pipeline
    before = count_rows(dsn)
    b = builder(42)
    call = pbx.inbound_answered(b, KNOWN, LINE, "103")
    # 10 MB of UTF-8
    huge_json = json.dumps(
        {"event": "channel_create", "data": {"pad": "я" * 5_000_000}}, ensure_ascii=False
    )
    huge_text = "x" * 10_000_000
    sent = sim.send(call[:3] + [huge_json, huge_text] + call[3:])
    assert sent == len(call) + 2
    wait_for(
        lambda: count_rows(dsn) == before + len(call) + 2, timeout=60, what="all frames stored"
    )
    with psycopg.connect(dsn) as conn:
        failed = conn.execute(
            """SELECT octet_length(r.body), o.detail FROM cti.raw_event r JOIN cti.event_outcome o ON o.raw_event_id = r.id
                WHERE r.id > %s AND o.status = 'failed' ORDER BY r.id""",
            [before],
        ).fetchall()
        call_row = conn.execute(
            "SELECT outcome, answered_by FROM cti.call WHERE pbx_call_id = %s", [b.call_uuid]
        ).fetchone()
    assert [f[0] for f in failed] == [len(huge_json.encode()), len(huge_text)], "stored verbatim"
    assert all("over the 1048576-byte limit" in f[1] for f in failed)
    assert call_row == ("answered", "103")
    assert ingest.proc.poll() is None


def test_a_frame_over_the_transport_limit_is_stored_bounded_and_the_calls_around_it_go_on(
    pipeline,
):
    """A 17 MiB frame (over the ingester's 16 MiB WebSocket limit) in the middle of a call,
    and two more calls right after it: websockets alone would close the connection (1009)
    and everything the PBX sent until the ingester subscribed again would be lost."""
    dsn, sim, ingest = pipeline
    before = count_rows(dsn)
    subscriptions = sim.server.subscriptions
    calls = [pbx.inbound_answered(builder(70 + n), KNOWN, LINE, "101") for n in range(3)]
    big = "y" * (17 * 2**20)
    frames = [*calls[0][:3], big, *calls[0][3:], *calls[1], *calls[2]]
    assert sim.send(frames) == len(frames)
    wait_for(lambda: count_rows(dsn) == before + len(frames), what="every frame stored")
    with psycopg.connect(dsn) as conn:
        body, error = conn.execute(
            "SELECT body, parse_error FROM cti.raw_event WHERE id > %s AND body LIKE %s",
            [before, "pgcti ingester: this frame was over the 16 MiB transport limit%"],
        ).fetchone()
        outcomes = conn.execute(
            "SELECT outcome FROM cti.call WHERE pbx_call_id = ANY(%s)",
            [[call[-1]["data"]["uuid"] for call in calls]],
        ).fetchall()
    sha = hashlib.sha256(big.encode()).hexdigest()
    assert f"{len(big)} bytes, sha256 {sha}; it began: yyyy" in body and len(body) < 1400
    assert error.startswith("not valid JSON")
    assert outcomes == [("answered",)] * 3
    assert sim.server.subscriptions == subscriptions, "the connection was kept"
    assert "was over the 16 MiB limit" in ingest.log and "reconnecting" not in ingest.log
    assert ingest.proc.poll() is None


def test_fragmented_messages_are_assembled_or_read_past_whole(pipeline):
    """Messages in fragments: one under the limit is assembled and processed; one whose
    first fragment is over the limit, and one whose fragments are each under it but together
    over it, are read past whole (the record gives the whole message's size and hash). The
    call after them is stored on the same connection."""
    dsn, sim, ingest = pipeline
    before = count_rows(dsn)
    subscriptions = sim.server.subscriptions
    call = pbx.inbound_answered(builder(80), KNOWN, LINE, "102")
    first = json.dumps(call[0])
    small = (first[:10], first[10:20], first[20:])
    big_first = ("z" * (17 * 2**20), "z" * 1000, "the end")
    big_together = ("a" * (9 * 2**20), "b" * (9 * 2**20), "c")
    assert sim.send([small, big_first, big_together, *call[1:]]) == 3 + len(call) - 1
    wait_for(lambda: count_rows(dsn) == before + 2 + len(call), what="every frame stored")
    with psycopg.connect(dsn) as conn:
        frame, *bodies = [
            row
            for (row,) in conn.execute(
                "SELECT coalesce(frame::text, body) FROM cti.raw_event WHERE id > %s"
                " ORDER BY id LIMIT 3",
                [before],
            )
        ]
        (outcome,) = conn.execute(
            "SELECT outcome FROM cti.call WHERE pbx_call_id = %s", [call[-1]["data"]["uuid"]]
        ).fetchone()
    assert json.loads(frame) == call[0], "the small message assembled and parsed"
    for message, body in zip((big_first, big_together), bodies, strict=True):
        whole = "".join(message).encode()
        sha = hashlib.sha256(whole).hexdigest()
        assert f"{len(whole)} bytes, sha256 {sha}; it began: {message[0][:5]}" in body
    assert outcome == "answered"
    assert sim.server.subscriptions == subscriptions, "the connection was kept"


def test_a_frame_that_is_not_utf8_is_stored_and_the_calls_after_it_complete(pipeline):
    """A broken PBX sends a text frame with bytes that are not UTF-8: websockets would close
    the connection (1007) and everything sent after it would be lost."""
    dsn, sim, ingest = pipeline
    before = count_rows(dsn)
    reconnects = ingest.log.count("connected to")
    calls = [pbx.inbound_answered(builder(60 + n), KNOWN, LINE, "102") for n in range(3)]
    bad = b'{"event": "channel_create", "data": {"note": "\xff\xfe broken"}}'
    assert sim.send([bad, *(f for call in calls for f in call)]) == 1 + sum(map(len, calls))
    wait_for(lambda: count_rows(dsn) == before + 1 + sum(map(len, calls)), what="all stored")
    with psycopg.connect(dsn) as conn:
        body, error = conn.execute(
            "SELECT body, parse_error FROM cti.raw_event WHERE body LIKE %s", ["%broken%"]
        ).fetchone()
        outcomes = conn.execute(
            "SELECT outcome FROM cti.call WHERE pbx_call_id = ANY(%s)",
            [[call[-1]["data"]["uuid"] for call in calls]],
        ).fetchall()
    assert "\\xff\\xfe broken" in body and error.startswith("not valid JSON")
    assert outcomes == [("answered",)] * 3
    assert ingest.log.count("connected to") == reconnects, "the connection stayed up"
    assert "is not UTF-8" in ingest.log
