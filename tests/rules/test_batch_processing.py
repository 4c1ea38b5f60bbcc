"""A batch of frames (one INSERT, as the ingester writes) gives what its frames give one at a time,
whether it is processed in rounds (onlinePBX 3.0) or frame by frame."""

from __future__ import annotations

import json
import random
import threading
import time
from collections import Counter
from datetime import UTC, datetime

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict

from ingester.frame import Frame
from ingester.pipeline.writer import batch_params
from ingester.queries import query
from ingester.simulator import onlinepbx3_calls as pbx
from ingester.simulator.traffic import Traffic
from tests.conftest import _janitor, dsn_for
from tests.support.crm_fixture import (
    KNOWN,
    LINE,
    SHARED,
    builder,
    insert_batch,
    insert_frames,
    seed_crm,
)

BAD_FRAME = json.dumps({"event": "channel_create", "data": {"uuid": "no-call-uuid"}})


def another_database(server_dsn: str, template_db: str, dsn: str, suffix: str):
    """Another migrated database beside the test's own, to feed the same frames another way."""
    name = conninfo_to_dict(dsn)["dbname"] + suffix
    janitor = _janitor(server_dsn, name, template_dbname=template_db)
    janitor.init()
    yield dsn_for(server_dsn, name)
    janitor.drop()


@pytest.fixture
def twin_dsn(server_dsn: str, template_db: str, dsn: str):
    yield from another_database(server_dsn, template_db, dsn, "_twin")


def traffic_frames(calls: int, bad_frame: bool = True) -> list[str]:
    """Overlapping calls of every scenario, in the order the PBX sends them, and a bad frame
    in the middle (its batch goes frame by frame)."""
    traffic = Traffic(
        seed=11, known_numbers=[KNOWN, SHARED], extensions=["101", "102", "103", "104"], scale=0.01
    )
    frames = [json.dumps(f) for _, f in traffic.schedule(time.time() - 600, 50, calls)]
    if bad_frame:
        frames.insert(len(frames) // 2, BAD_FRAME)
    return frames


def insert_as_batches(conn: psycopg.Connection, frames: list[str], size: int) -> None:
    for start in range(0, len(frames), size):
        insert_batch(conn, frames[start : start + size])


def observed(conn: psycopg.Connection) -> dict:
    """Everything a user can see, keyed by PBX ids rather than our surrogate ids."""
    return {
        "outcomes": conn.execute(
            "SELECT coalesce(r.frame::text, r.body), o.status, o.detail"
            " FROM cti.raw_event r JOIN cti.event_outcome o ON o.raw_event_id = r.id"
            " WHERE r.source <> 'pgcti' ORDER BY r.id"
        ).fetchall(),
        "commands": conn.execute(
            "SELECT o.target_kind, o.target_id, o.seq, o.type, c.pbx_call_id,"
            "       o.payload - 'call_id' - 'client_id' - 'task_id'"  # surrogate ids
            " FROM cti.outbox o JOIN cti.call c ON c.id = o.call_id ORDER BY 1, 2, 3"
        ).fetchall(),
        "history": conn.execute(
            "SELECT pbx_call_id, direction, external_number, client_match, answered_by, outcome,"
            "       extension_chain, started_at, answered_at, ended_at"
            " FROM cti.call_history_v1 ORDER BY pbx_call_id"
        ).fetchall(),
    }


def function_calls(conn: psycopg.Connection) -> Counter:
    """How often each function of this database ran, in sessions with track_functions on
    (the frame-by-frame paths of 65_processing.sql, say). A function that raised is not counted."""
    conn.execute("SELECT pg_stat_force_next_flush()")  # this session's, at this statement's end
    return Counter(
        dict(conn.execute("SELECT funcname, calls FROM pg_stat_user_functions").fetchall())
    )


def insert_frame_by_frame_batches(conn: psycopg.Connection, frames: list[str], size: int) -> None:
    """Batches as above, each led by a housekeeping tick: a batch that is not all onlinePBX
    3.0 takes the frame-by-frame path (the tick ends nothing: no call is hours old)."""
    now = datetime.now(UTC)
    tick = json.dumps({"event": "tick", "at": now.isoformat()})
    for start in range(0, len(frames), size):
        batch = [Frame("pgcti", now, tick)] + [
            Frame("onlinepbx3", now, body) for body in frames[start : start + size]
        ]
        conn.execute(query("insert_raw_events"), batch_params(batch))
        now = now.replace(microsecond=(now.microsecond + 1) % 1_000_000)  # a new tick each time


def batches_in(dsn: str, frames: list[str], size: int) -> tuple[dict, Counter]:
    """The frames in batches of `size` into the (seeded) database at dsn: what a user sees
    there, and which functions ran how often."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        seed_crm(conn)
        conn.execute("SET track_functions = 'all'")
        insert_as_batches(conn, frames, size=size)
        return observed(conn), function_calls(conn)


@pytest.fixture(scope="module")
def traffic() -> list[str]:
    return traffic_frames(calls=80, bad_frame=False)  # 669 frames: more than a batch of 500


@pytest.mark.parametrize(
    "size, bad_frame",
    [(1, False), (7, False), (500, False), ("the whole run", False), (60, True), (1, True)],
)
def test_a_batch_gives_what_its_frames_give_one_at_a_time(conn, twin_dsn, traffic, size, bad_frame):
    """Rounds, at any chunk size, and a lone frame's own path (size 1), against the
    frame-by-frame path as the oracle. With a bad frame, its batch falls back to frame by
    frame and the frame fails alone."""
    frames = traffic_frames(calls=80) if bad_frame else traffic
    seed_crm(conn)
    insert_frame_by_frame_batches(conn, frames, size=60)
    expected = observed(conn)
    size = len(frames) if size == "the whole run" else size
    got, calls = batches_in(twin_dsn, frames, size)
    left_rounds = calls["process_frame_by_frame"] + calls["process_and_record"]
    assert len(expected["commands"]) > 200, "the mix should send plenty of commands"
    # A lone frame takes its own path (66_lone_frame.sql), a larger batch rounds; the bad
    # frame's batch raised there (a function that raised is not counted).
    sizes = [len(frames[start : start + size]) for start in range(0, len(frames), size)]
    bad_batch = sizes[frames.index(BAD_FRAME) // size] if bad_frame else 0
    lone = sizes.count(1) - (bad_batch == 1)
    rounds = len(sizes) - sizes.count(1) - (bad_batch > 1)
    assert (calls["process_lone_frame"], calls["process_in_rounds"]) == (lone, rounds)
    assert got["outcomes"] == expected["outcomes"]
    assert got["commands"] == expected["commands"]
    assert got["history"] == expected["history"]
    failed = [o for o in expected["outcomes"] if o[1] == "failed"]
    assert len(failed) == (1 if bad_frame else 0)
    # Only the bad frame's batch leaves rounds: each of its frames in a subtransaction.
    assert left_rounds == bad_batch


@pytest.mark.parametrize("size", [1, 60])
def test_an_unbridge_changes_nothing_and_keeps_its_batch_in_rounds(conn, twin_dsn, traffic, size):
    """channel_unbridge names its call but carries no fact (ignored): a batch holding one
    stays in rounds (or the lone frame's path), and gives what frame by frame gives."""
    frames = []
    for body in traffic[:300]:
        frames.append(body)
        if json.loads(body)["event"] == "channel_bridge":
            frames.append(json.dumps({**json.loads(body), "event": "channel_unbridge"}))
    unbridges = len(frames) - 300
    assert unbridges > 10, "the traffic should bridge calls"
    seed_crm(conn)
    insert_frame_by_frame_batches(conn, frames, size=60)
    expected = observed(conn)
    got, calls = batches_in(twin_dsn, frames, size)
    assert got == expected
    assert [o[1] for o in got["outcomes"]].count("ignored") == unbridges
    assert calls["process_frame_by_frame"] + calls["process_and_record"] == 0


def test_a_lone_frame_whose_leg_is_under_another_call_goes_frame_by_frame(conn, twin_dsn):
    """A leg stays in one call: a lone frame naming a known leg under another call is not
    the lone path's (it changes nothing and says so), and goes frame by frame."""
    call = builder(3)
    call.answer(call.leg(KNOWN, LINE))
    create, answer = call.frames
    moved = {**answer, "data": {**answer["data"], "call_uuid": "another-call"}}
    frames = [json.dumps(create), json.dumps(moved)]
    seed_crm(conn)
    insert_frame_by_frame_batches(conn, frames, size=60)
    got, calls = batches_in(twin_dsn, frames, size=1)
    expected = observed(conn)
    assert got["outcomes"] == expected["outcomes"]
    assert got["commands"] == expected["commands"]
    # The leg stays in its call; the other call, legless, ends when its frame arrives.
    assert [h[:-1] for h in got["history"]] == [h[:-1] for h in expected["history"]]
    assert (calls["process_lone_frame"], calls["process_frame_by_frame"]) == (2, 1)


def test_two_lone_frames_of_one_new_call_at_once_make_one_call(conn, dsn):
    """Two ingesters each store a lone frame of the same new call at the same moment: the
    second waits for the first's new call row, then takes it (not a second call, not a
    failed frame)."""
    seed_crm(conn)
    leg = {"event": "channel_create", "data": {"call_uuid": "call-x", "caller_number": KNOWN}}
    first = json.dumps(
        {**leg, "data": {**leg["data"], "uuid": "leg-1", "destination_number": LINE}}
    )
    second = json.dumps(
        {**leg, "data": {**leg["data"], "uuid": "leg-2", "destination_number": "101"}}
    )
    with psycopg.connect(dsn) as holder, psycopg.connect(dsn, autocommit=True) as other:
        insert_batch(holder, [first])  # its transaction stays open: the call row is not committed
        other.execute("SET track_functions = 'all'")
        waiting = threading.Thread(target=insert_batch, args=(other, [second]))
        waiting.start()
        pid = other.info.backend_pid
        for _ in range(100):  # until the second waits on the first's row
            state = conn.execute(
                "SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s", [pid]
            ).fetchone()
            if state and state[0] == "Lock":
                break
            time.sleep(0.05)
        else:
            pytest.fail("the second frame never waited for the first's call")
        holder.commit()
        waiting.join(timeout=10)
        calls = function_calls(other)
    # Taken by the lone path, not by the slow path after an error.
    assert (calls["process_lone_frame"], calls["process_and_record"]) == (1, 0)
    assert conn.execute(
        "SELECT c.pbx_call_id, count(l.*) FROM cti.call c JOIN cti.call_leg l ON l.call_id = c.id"
        " GROUP BY c.pbx_call_id"
    ).fetchall() == [("call-x", 2)]
    assert conn.execute("SELECT status FROM cti.event_outcome").fetchall() == [("processed",)] * 2


def test_a_plain_insert_per_frame_gives_what_the_ingesters_batches_give(conn, twin_dsn, traffic):
    """A frame inserted alone by a plain INSERT (the row trigger parses it) is processed as a
    batch of one: the same as the ingester's batches of 60. The calls the PBX ended among
    the first 200 frames: a call cut short would end when its last leg's hangup arrived,
    which differs between two databases fed at different moments."""
    ended = {call_key(f) for f in traffic[:200] if json.loads(f)["event"] == "call_end"}
    frames = [f for f in traffic[:200] if call_key(f) in ended]
    assert len(frames) > 100
    seed_crm(conn)
    insert_frames(conn, frames)
    with psycopg.connect(twin_dsn, autocommit=True) as twin:
        seed_crm(twin)
        insert_as_batches(twin, frames, size=60)
        assert observed(twin) == observed(conn)


def call_key(frame: str) -> str:
    data = json.loads(frame)["data"]
    return data.get("call_uuid") or data["uuid"]


def test_unknown_numbers_are_registered_in_frame_order(conn):
    """In rounds, call A's number shows only in its second frame (round 2), after call B's
    first frame (round 1) came in: A must still register first, as frame by frame it would."""
    seed_crm(conn)
    a = pbx.CallBuilder(random.Random(1), clock=time.time() - 60)
    a_leg = a.leg("+7 (916) 000-00-01", LINE)
    a.answer(a_leg)
    b = pbx.CallBuilder(random.Random(2), clock=time.time() - 60)
    b.leg("+7 (916) 000-00-02", LINE)
    answer_first = [a.frames[1], a.frames[0], b.frames[0]]  # A's answer overtook its channel_create
    insert_as_batches(conn, [json.dumps(f) for f in answer_first], size=10)
    leads = dict(
        conn.execute(
            "SELECT e164, client_id FROM cti.registered_number WHERE e164 IN ('+79160000001', '+79160000002')"
        ).fetchall()
    )
    assert leads["+79160000001"] < leads["+79160000002"]
    matches = conn.execute("SELECT pbx_call_id, client_match FROM cti.call ORDER BY id").fetchall()
    assert [m for _, m in matches] == ["new", "new"]


def test_a_lock_conflict_fails_the_insert_so_the_ingester_retries_it(conn, dsn):
    """Waiting on another transaction is not the frame's fault: no 'failed' outcome is
    recorded; the INSERT itself fails (nothing stored) and the ingester spools and retries."""
    seed_crm(conn)
    first = json.dumps(
        {
            "event": "channel_create",
            "data": {
                "uuid": "leg-1",
                "call_uuid": "call-1",
                "caller_number": KNOWN,
                "destination_number": "101",
            },
        }
    )
    insert_frames(conn, [first])
    answer = json.dumps(
        {"event": "channel_answer", "data": {"uuid": "leg-1", "call_uuid": "call-1"}}
    )
    with psycopg.connect(dsn) as holder:  # another transaction holds the call row
        holder.execute("SELECT * FROM cti.call WHERE pbx_call_id = 'call-1' FOR UPDATE")
        conn.execute("SET lock_timeout = '200ms'")
        with pytest.raises(psycopg.errors.LockNotAvailable):
            insert_as_batches(conn, [answer], size=10)
        holder.rollback()
    conn.execute("RESET lock_timeout")
    assert conn.execute("SELECT count(*) FROM cti.raw_event").fetchone()[0] == 1
    insert_as_batches(conn, [answer], size=10)  # the retry
    statuses = conn.execute("SELECT status FROM cti.event_outcome ORDER BY raw_event_id").fetchall()
    assert statuses == [("processed",), ("processed",)]


def test_one_clients_two_calls_in_a_batch_stay_in_rounds(conn):
    """A missed call and the client's next, answered call in one batch: rounds derive call
    B's answer (round 3) before call A's end (round 5), yet A's task is made before B closes
    it, as frame by frame would, and the batch is not sent frame by frame for it."""
    seed_crm(conn)
    now = time.time() - 60
    a = pbx.inbound_unanswered(
        pbx.CallBuilder(random.Random(1), clock=now), KNOWN, LINE, ["101"], "NO_ANSWER"
    )
    b = pbx.inbound_answered(pbx.CallBuilder(random.Random(2), clock=now + 30), KNOWN, LINE, "102")
    frames = a[:2] + b[:2] + a[2:] + b[2:]
    assert [f["event"] for f in a] == ["channel_create"] * 2 + ["channel_destroy"] * 2 + [
        "call_end"
    ]
    conn.execute("ALTER TABLE cti.raw_event DISABLE TRIGGER _500_process")
    insert_batch(conn, frames)
    conn.execute("ALTER TABLE cti.raw_event ENABLE TRIGGER _500_process")
    in_rounds = conn.execute(
        "SELECT cti.process_in_rounds(array_agg(e ORDER BY e.id)) FROM cti.raw_event e"
    ).fetchone()[0]
    assert in_rounds is True
    assert conn.execute(
        "SELECT missed_calls, closed_how, closed_by_extension FROM cti.callback_task"
    ).fetchall() == [(1, "inbound_answered", "102")]


def test_two_ingesters_one_holding_a_lower_id_open_lose_and_repeat_nothing(conn, dsn, twin_dsn):
    """Ingester A stores its batch (lower ids) and holds its transaction open; ingester B
    stores a later batch and commits first. Each batch is processed in the transaction that
    stores it, so nothing waits on an id cursor: after A commits, every frame has one
    outcome and every command was sent once, as the same frames give one at a time."""
    seed_crm(conn)
    a_frames = pbx.outbound(builder(1), "101", "+7 916 111-22-33")
    b_frames = pbx.outbound(builder(2), "102", "+7 916 444-55-66")
    with psycopg.connect(dsn) as a, psycopg.connect(dsn, autocommit=True) as b:
        insert_batch(a, a_frames)  # open: its ids are lower, its rows not yet visible
        insert_batch(b, b_frames)  # commits at once (no stream or call in common)
        seen_before_a = conn.execute("SELECT count(*) FROM cti.event_outcome").fetchone()[0]
        a.commit()
    assert seen_before_a == len(b_frames)
    per_frame = conn.execute(
        "SELECT coalesce(r.frame -> 'data' ->> 'call_uuid', r.frame -> 'data' ->> 'uuid'), count(o.*)"
        " FROM cti.raw_event r LEFT JOIN cti.event_outcome o ON o.raw_event_id = r.id"
        " GROUP BY r.id ORDER BY r.id"
    ).fetchall()
    a_call = a_frames[0]["data"]["call_uuid"]
    assert [c == a_call for c, _ in per_frame] == [True] * len(a_frames) + [False] * len(b_frames)
    assert [n for _, n in per_frame] == [1] * (len(a_frames) + len(b_frames))
    with psycopg.connect(twin_dsn, autocommit=True) as twin:
        seed_crm(twin)
        insert_frames(twin, a_frames + b_frames)
        assert observed(twin)["commands"] == observed(conn)["commands"]
    assert [c[3] for c in observed(conn)["commands"]] == ["open_card", "call_ended"] * 2


def test_registration_order_falls_back_in_a_large_chunk(conn, twin_dsn):
    """Strangers calling in overlapping calls, all in one chunk of over 500 frames, and at
    its end one call whose answer overtook its channel_create (as in the test above): rounds
    meet that number after a later one, so the whole chunk goes again frame by frame
    ('CTIR1'), and the leads are registered in the order the frames give them."""
    traffic = Traffic(seed=5, known_numbers=[], extensions=["101", "102", "103"], scale=0.01)
    frames = [json.dumps(f) for _, f in traffic.schedule(time.time() - 600, 50, 70)]
    a = pbx.CallBuilder(random.Random(1), clock=time.time() - 60)
    a.answer(a.leg("+7 (916) 000-00-01", LINE))
    b = pbx.CallBuilder(random.Random(2), clock=time.time() - 60)
    b.leg("+7 (916) 000-00-02", LINE)
    frames += [json.dumps(f) for f in (a.frames[1], a.frames[0], b.frames[0])]
    assert len(frames) > 500
    seed_crm(conn)
    insert_frame_by_frame_batches(conn, frames, size=60)
    with psycopg.connect(twin_dsn, autocommit=True) as twin:
        seed_crm(twin)
        twin.execute("SET track_functions = 'all'")
        insert_as_batches(twin, frames, size=len(frames))
        calls = function_calls(twin)
        assert observed(twin) == observed(conn)
        leads = "SELECT e164 FROM cti.registered_number ORDER BY client_id"
        assert twin.execute(leads).fetchall() == conn.execute(leads).fetchall()
    # The chunk went frame by frame once (rounds raised, and went uncounted).
    assert calls["process_frame_by_frame"] == 1


def test_a_fact_naming_a_merged_calls_key_goes_to_the_call_it_was_merged_into(conn):
    """cti.apply_fact finds a call by its own key, else through the alias its merge left
    (as cti.call_of_key does): a late frame of a merged call must not start a new call."""
    kept, gone = (
        conn.execute(
            "INSERT INTO cti.call (source, pbx_call_id) VALUES ('onlinepbx3', %s) RETURNING id", [k]
        ).fetchone()[0]
        for k in ("kept-call", "gone-call")
    )
    conn.execute("SELECT cti.merge_calls(%s, %s)", [kept, gone])
    fact = "jsonb_populate_record(NULL::cti.fact, %s::jsonb)"
    for key, leg in (("gone-call", "late-leg"), ("kept-call", "own-leg")):
        body = json.dumps(
            {"kind": "leg_answered", "call_key": key, "leg": leg, "at": "2026-11-27T10:00:00Z"}
        )
        call = conn.execute(f"SELECT cti.apply_fact('onlinepbx3', {fact})", [body]).fetchone()[0]
        assert call == kept, key
    assert conn.execute(
        "SELECT count(*) FROM cti.call WHERE pbx_call_id IN ('kept-call', 'gone-call')"
    ).fetchone() == (1,), "no call made again for the merged key"
