"""Property: any duplication or reordering of a call's frames, inserted one at a time or in
batches of any split, never leaves two open cards for one call and never sends a command twice."""

from __future__ import annotations

import random

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ingester.simulator import onlinepbx3_calls as pbx
from ingester.simulator.asterisk_calls import from_onlinepbx3_timed as ami_from_onlinepbx3_timed
from ingester.simulator.onlinepbx2_calls import from_onlinepbx3
from tests.conftest import _janitor, dsn_for
from tests.support.crm_fixture import KNOWN, LINE, builder, insert_batch, insert_frames, seed_crm

EXTS = ["101", "102", "103", "104"]

scenarios = st.one_of(
    st.builds(
        lambda chain: ("chain", chain),
        st.lists(st.sampled_from(EXTS), min_size=1, max_size=4, unique=True),
    ),
    st.builds(
        lambda pair: ("attended", pair),
        st.lists(st.sampled_from(EXTS), min_size=2, max_size=2, unique=True),
    ),
    st.builds(
        lambda exts: ("ring_all", exts),
        st.lists(st.sampled_from(EXTS), min_size=2, max_size=4, unique=True),
    ),
)


def _frames(kind: str, exts: list[str], seed: int) -> list[dict]:
    return _built(kind, exts, seed)[1]


def _ami_blocks(kind: str, exts: list[str], seed: int) -> list[str]:
    """The same call as Asterisk tells it, each block stamped with the PBX's time."""
    b, frames = _built(kind, exts, seed)
    return [block for _, block in ami_from_onlinepbx3_timed(b.times, frames)]


def _built(kind: str, exts: list[str], seed: int) -> tuple[pbx.CallBuilder, list[dict]]:
    b = builder(seed)
    if kind == "chain":
        return b, pbx.blind_transfer_chain(b, KNOWN, LINE, exts)
    if kind == "attended":
        return b, pbx.attended_transfer(b, KNOWN, LINE, exts[0], exts[1])
    return b, pbx.ring_all(b, KNOWN, LINE, exts, winner=exts[-1])


def check_commands(rows: list[tuple]) -> None:
    """Replay what one call sent; a card is never open in two places nor closed where it is not open."""
    open_at = None
    ended = 0
    rings: set[tuple] = set()
    for kind, target_id, type_ in rows:
        target = (kind, target_id)
        if type_ == "ring":
            assert target not in rings, "ring sent twice to one employee"
            rings.add(target)
        elif type_ == "callback_task":  # a notification to the task's owner, not a card
            continue
        elif type_ == "open_card":
            assert open_at is None, f"open_card at {target} while the card is open at {open_at}"
            open_at = target
        else:
            assert open_at == target, f"{type_} at {target}, but the card is open at {open_at}"
            open_at = None
            ended += type_ == "call_ended"
    assert ended <= 1


@pytest.fixture(scope="module")
def crm_conn(server_dsn, template_db):
    name = f"pgcti_prop_{random.getrandbits(32)}"
    janitor = _janitor(server_dsn, name, template_dbname=template_db)
    janitor.init()
    with psycopg.connect(dsn_for(server_dsn, name)) as conn:
        seed_crm(conn)
        conn.commit()
        yield conn
    janitor.drop()


PROPERTY = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
CASES = {
    "scenario": scenarios,
    "seed": st.integers(0, 2**16),
    "order": st.randoms(use_true_random=False),
    "duplicates": st.integers(0, 6),
    "answer_first": st.booleans(),
    "batches": st.integers(0, 4),  # 0: one INSERT per frame; n: n batches (processed in rounds)
}


@PROPERTY
@given(**CASES)
def test_any_duplication_or_reordering_is_harmless(
    crm_conn, scenario, seed, order, duplicates, answer_first, batches
):
    frames = _frames(*scenario, seed)
    _check(crm_conn, frames, "onlinepbx3", order, duplicates, answer_first, "event", batches)


@PROPERTY
@given(**CASES)
def test_2_0_duplication_and_early_answers_are_harmless(
    crm_conn, scenario, seed, order, duplicates, answer_first, batches
):
    # API 2.0 has no call id: a call is pieced together from legs, bridges and numbers as they
    # arrive on one ordered socket. Replays (duplicates) and answers overtaking their leg are
    # harmless; an arbitrary shuffle can split a call in two (see docs/architecture.md).
    frames = from_onlinepbx3(_frames(*scenario, seed))
    _check(
        crm_conn,
        frames,
        "onlinepbx2",
        order,
        duplicates,
        answer_first,
        "name",
        batches,
        shuffle=False,
    )


@PROPERTY
@given(**CASES)
def test_ami_duplication_and_reordering_are_harmless(
    crm_conn, scenario, seed, order, duplicates, answer_first, batches
):
    # AMI blocks carry the PBX's Timestamp (timestampevents = yes): who was in a bridge
    # when is read from it, so a shuffle gives the same call, and a replayed block is one.
    _check(
        crm_conn,
        _ami_blocks(*scenario, seed),
        "asterisk",
        order,
        duplicates,
        answer_first,
        "",
        batches,
    )


def _is_answer(frame, event_key: str) -> bool:
    if isinstance(frame, str):  # an AMI block
        return frame.startswith("Event: DialEnd") and "DialStatus: ANSWER" in frame
    return frame[event_key] == "channel_answer"


def _check(
    crm_conn, frames, source, order, duplicates, answer_first, event_key, batches, shuffle=True
) -> None:
    shuffled = list(frames)
    if shuffle:
        order.shuffle(shuffled)
    if answer_first:  # the classic: an answer overtakes its channel_create
        shuffled.sort(key=lambda f: not _is_answer(f, event_key))
    shuffled += [order.choice(frames) for _ in range(duplicates)]
    history = "SELECT direction, external_number, answered_by, extension_chain, outcome FROM cti.call_history_v1"
    tasks = "SELECT party, missed_calls, closed_how FROM cti.callback_task ORDER BY party"
    with crm_conn.transaction(force_rollback=True):
        insert_frames(crm_conn, frames, source=source)
        in_order = crm_conn.execute(history).fetchall()
        tasks_in_order = crm_conn.execute(tasks).fetchall()
    with crm_conn.transaction(force_rollback=True):
        if batches:
            size = -(-len(shuffled) // batches)
            for start in range(0, len(shuffled), size):
                insert_batch(crm_conn, shuffled[start : start + size], source=source)
        else:
            insert_frames(crm_conn, shuffled, source=source)
        # The call's history is a function of its frames, not of their order; so are its
        # callback tasks (a call first derived as missed, then answered, leaves none).
        assert crm_conn.execute(history).fetchall() == in_order
        assert crm_conn.execute(tasks).fetchall() == tasks_in_order
        rows = crm_conn.execute(
            "SELECT target_kind, target_id, type FROM cti.outbox ORDER BY created_at, seq"
        ).fetchall()
        check_commands(rows)
        stored = crm_conn.execute("SELECT count(*) FROM cti.raw_event").fetchone()[0]
        assert stored == len({str(f) for f in frames})
        # Whatever the order, once every frame is in the call ends closed, with its outcome.
        calls = crm_conn.execute("SELECT card_workstation_id, outcome FROM cti.call").fetchall()
        assert calls == [(None, "answered")]


def test_the_checker_catches_a_double_open():
    with pytest.raises(AssertionError):
        check_commands([("ws", 1, "open_card"), ("ws", 2, "open_card")])
    with pytest.raises(AssertionError):
        check_commands([("ws", 1, "open_card"), ("ws", 2, "close_card")])
    with pytest.raises(AssertionError):
        check_commands([("emp", 1, "ring"), ("emp", 1, "ring")])


@pytest.mark.parametrize("shuffle", [38, 147])
def test_a_call_merged_away_keeps_its_id(crm_conn, shuffle):
    """Found by the AMI property above: an attended transfer whose consultation call's
    blocks come first. The customer's call was merged into the consultation by a bridge,
    and the customer's next leg (its DialBegin to 101), looked up by its Linkedid, found no
    call and started one that rang everyone again (shuffle 38). Or the customer's call had
    looked ended (every leg it knew had hung up) and sent call_ended, and was then merged
    into the live consultation, which opened the card again (shuffle 147)."""
    frames = _ami_blocks("attended", ["101", "102"], 0)
    random.Random(shuffle).shuffle(frames)
    with crm_conn.transaction(force_rollback=True):
        insert_frames(crm_conn, frames, source="asterisk")
        rows = crm_conn.execute(
            "SELECT target_kind, target_id, type FROM cti.outbox ORDER BY created_at, seq"
        ).fetchall()
        assert [r for r in rows if r[2] == "ring"] == [("emp", 1, "ring"), ("emp", 2, "ring")]
        check_commands(rows)  # one ring each, one card at a time, at most one call_ended
        assert crm_conn.execute("SELECT count(*) FROM cti.call").fetchone()[0] == 1
        assert crm_conn.execute("SELECT count(*) FROM cti.call_alias").fetchone()[0] == 1
