"""The same calls told by every PBX source give the same calls and the same commands as
their onlinePBX 3.0 twin: 2.0 events (no call ids) and Asterisk AMI blocks as Asterisk
18-22 with PJSIP sends them (issue 13, part 5)."""

from __future__ import annotations

import pytest

from ingester.simulator import asterisk_calls, onlinepbx2_calls
from tests.support.crm_fixture import (
    TWIN_CALL_FACTS,
    TWIN_SCENARIOS,
    builder,
    commands_by_type,
    insert_frames,
    outcomes,
    seed_crm,
    twin_of_3_0,
)

# source -> its frames for a 3.0 scenario, at the times the 3.0 frames have
TELL = {
    "onlinepbx2": onlinepbx2_calls.from_onlinepbx3_timed,
    "asterisk": asterisk_calls.from_onlinepbx3_timed,
}


# These tests need no COMMIT: `conn` is a transaction rolled back at their end.
pytestmark = pytest.mark.rolled_back


@pytest.mark.parametrize("source", TELL)
@pytest.mark.parametrize("name", TWIN_SCENARIOS)
def test_a_call_is_understood_like_its_3_0_twin(conn, name, source):
    seed_crm(conn)
    b = builder(7)
    frames3 = TWIN_SCENARIOS[name](b)
    as_3, sent_3 = twin_of_3_0(conn, frames3)
    insert_frames(conn, [frame for _, frame in TELL[source](b.times, frames3)], source=source)
    assert conn.execute(TWIN_CALL_FACTS, [source]).fetchall() == as_3
    assert commands_by_type(conn) == sent_3
    assert {status for _, status, _ in outcomes(conn)} <= {"processed", "ignored"}
