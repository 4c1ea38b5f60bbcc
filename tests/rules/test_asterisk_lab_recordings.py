"""The live lab's own AMI streams (tests/fixtures/asterisk-lab, recorded by `PGCTI_RECORD_LAB=1
make test-asterisk` from what pgcti's filtered manager user received), replayed without the
lab: each scenario gives the calls the live test checked. A new Asterisk version, recorded
again, shows here as a diff of the streams and, if pgcti reads them otherwise, of the calls."""

from __future__ import annotations

import json

import pytest

from ingester.simulator.ami_server import blocks_of
from tests.support.asterisk_lab import RECORDED_CALLS, RECORDED_FIELDS, RECORDINGS
from tests.support.crm_fixture import insert_frames, seed_crm

SCENARIOS = sorted(p.stem for p in RECORDINGS.glob("*.ami"))

pytestmark = pytest.mark.rolled_back


def test_every_scenario_of_the_live_tier_is_recorded():
    assert sorted(p.stem for p in RECORDINGS.glob("*.json")) == SCENARIOS
    assert {"ring_group_answered", "attended_transfer", "queue_second_member", "outbound"} <= set(
        SCENARIOS
    )


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_a_recorded_scenario_gives_the_calls_it_gave_live(conn, scenario):
    seed_crm(conn)
    blocks = blocks_of(RECORDINGS / f"{scenario}.ami")
    insert_frames(conn, blocks, source="asterisk")
    calls = [dict(zip(RECORDED_FIELDS, row, strict=True)) for row in conn.execute(RECORDED_CALLS)]
    assert calls == json.loads((RECORDINGS / f"{scenario}.json").read_text())
    failed = conn.execute(
        "SELECT count(*) FROM cti.event_outcome WHERE status = 'failed'"
    ).fetchone()[0]
    assert failed == 0
