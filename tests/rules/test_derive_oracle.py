"""Property: cti.derive_calls() asks its questions of a call's legs in one pass; the same
function asking one subquery per question (the form it had before, kept as the oracle in
tests/fixtures/derive_per_question.sql) derives the same call, transfers, callback tasks
and commands from any legs, bridges and earlier state."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.crm_fixture import seed_crm

ROOT = Path(__file__).resolve().parents[2]
ONE_PASS = re.compile(r"     -- What the call's legs say, in one pass.*?\n     \) d\n", re.S)
T0 = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)

# Numbers the CRM knows (one client; two clients): a lead registered anew would get a new id.
NUMBERS = ["101", "102", "103", "+74951234567", "+78125550000", None]
CAUSES = [None, "NORMAL_CLEARING", "USER_BUSY", "CALL_REJECTED", "ORIGINATOR_CANCEL", "NO_ANSWER"]
moment = st.one_of(st.none(), st.integers(0, 8).map(lambda s: T0 + timedelta(seconds=s)))
legs = st.lists(
    st.fixed_dictionaries(
        {
            "caller": st.sampled_from(NUMBERS),
            "destination": st.sampled_from(NUMBERS),
            "created_at": moment,
            "answered_at": moment,
            "ended_at": moment,
            "hangup_cause": st.sampled_from(CAUSES),
        }
    ),
    min_size=0,
    max_size=5,
)
earlier = st.fixed_dictionaries(
    {
        "pbx_ended": st.booleans(),
        "ring_notified": st.booleans(),
        "card_at": st.sampled_from([None, "101", "102"]),
        "transfers": st.lists(st.sampled_from(["101", "102", "103"]), max_size=2),
    }
)


@pytest.fixture
def oracle(rolled_back: psycopg.Connection) -> psycopg.Connection:
    """The test's transaction, with cti.derive_calls_per_question() beside derive_calls()."""
    conn = rolled_back
    body = conn.execute(
        "SELECT pg_get_functiondef('cti.derive_calls(bigint[], timestamptz[], bigint[], boolean)'::regprocedure)"
    ).fetchone()[0]
    per_question = (ROOT / "tests/fixtures/derive_per_question.sql").read_text()
    per_question = per_question[per_question.index("     CROSS JOIN LATERAL") :]
    assert ONE_PASS.search(body), "derive_calls() no longer has the one-pass block this test swaps"
    oracle_body = ONE_PASS.sub(lambda _: per_question, body).replace(
        "cti.derive_calls(", "cti.derive_calls_per_question(", 1
    )
    conn.execute(oracle_body)
    seed_crm(conn)
    return conn


def derived(conn: psycopg.Connection, function: str, call_id: int) -> tuple:
    """What one derivation leaves and returns; undone afterwards."""
    with conn.transaction(force_rollback=True):
        result = conn.execute(
            "SELECT c.frame_key, c.step, c.sub, (c.command).target_kind, (c.command).target_id,"
            "       (c.command).type, (c.command).payload - 'task_id'"  # a surrogate id
            f" FROM unnest((cti.{function}(ARRAY[%s::bigint], ARRAY[%s::timestamptz],"
            "                              ARRAY[0::bigint], true)).commands) c",
            [call_id, T0 + timedelta(seconds=9)],
        ).fetchall()
        call = conn.execute("SELECT * FROM cti.call WHERE id = %s", [call_id]).fetchone()
        transfers = conn.execute(
            "SELECT step, from_extension, to_extension, transferred_at FROM cti.call_transfer"
            " WHERE call_id = %s ORDER BY step",
            [call_id],
        ).fetchall()
        tasks = conn.execute(
            "SELECT party, e164, missed_calls, closed_how FROM cti.callback_task ORDER BY id"
        ).fetchall()
    return result, call, transfers, tasks


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    legs=legs,
    bridges=st.lists(st.tuples(st.integers(0, 4), st.integers(0, 4), moment), max_size=4),
    before=earlier,
)
def test_one_pass_derives_what_one_question_at_a_time_derives(oracle, legs, bridges, before):
    conn = oracle
    with conn.transaction(force_rollback=True):
        call_id = conn.execute(
            "INSERT INTO cti.call (source, pbx_call_id, pbx_ended, ring_notified, card_workstation_id)"
            " VALUES ('onlinepbx3', 'oracle', %s, %s,"
            "         (SELECT id FROM pgcti_refcrm.workstation WHERE extension = %s)) RETURNING id",
            [before["pbx_ended"], before["ring_notified"], before["card_at"]],
        ).fetchone()[0]
        for n, leg in enumerate(legs):
            conn.execute(
                "INSERT INTO cti.call_leg (source, leg_uuid, call_id, caller, destination,"
                " destination_raw, created_at, answered_at, ended_at, hangup_cause,"
                " caller_is_extension, destination_is_extension)"
                " VALUES ('onlinepbx3', %s, %s, %s, %s, %s, %s, %s, %s, %s,"
                "         cti.is_extension(%s), cti.is_extension(%s))",
                [
                    f"leg-{n}",
                    call_id,
                    leg["caller"],
                    leg["destination"],
                    leg["destination"],
                    leg["created_at"],
                    leg["answered_at"],
                    leg["ended_at"],
                    leg["hangup_cause"],
                    leg["caller"],
                    leg["destination"],
                ],
            )
        for a, b, at in bridges:
            if a != b and max(a, b) < len(legs):
                conn.execute(
                    "INSERT INTO cti.call_bridge VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING",
                    [call_id, f"leg-{a}", f"leg-{b}", at or T0],
                )
        for step, ext in enumerate(before["transfers"], start=1):
            conn.execute(
                "INSERT INTO cti.call_transfer VALUES (%s, %s, '101', %s, %s)",
                [call_id, step, ext, T0],
            )
        assert derived(conn, "derive_calls", call_id) == derived(
            conn, "derive_calls_per_question", call_id
        )
