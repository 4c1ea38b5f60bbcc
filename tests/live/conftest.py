"""The live tier: one Asterisk lab for the session (tests/support/asterisk_lab.py), and
for each test a migrated database with the reference CRM, desks 101-103 that LISTEN as a
CRM client does (docs/crm-clients.md), and `pgcti ingest --pbx asterisk` reading the lab
with the manager user docs/asterisk.md gives."""

from __future__ import annotations

import json
import os
import select
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest

from tests.support.asterisk_lab import (
    AMI_SECRET,
    RECORDED_CALLS,
    RECORDED_FIELDS,
    RECORDINGS,
    AsteriskLab,
    LabUnavailable,
    asterisk_lab,
)
from tests.support.crm_fixture import seed_crm
from tests.support.live import IngestProcess, wait_for


@pytest.fixture(scope="session")
def lab() -> Iterator[AsteriskLab]:
    try:
        with asterisk_lab() as running:
            yield running
    except LabUnavailable as why:
        pytest.skip(f"no live Asterisk here: {why}")


@dataclass
class Desk:
    """A CRM client at one workstation: LISTENs on its commands channel, pulls, acks."""

    extension: str
    conn: psycopg.Connection
    items: list[tuple[str, int]] = field(default_factory=list)  # (type, call_id)

    def poll(self) -> None:
        rows = self.conn.execute("SELECT seq, type, call_id FROM cti.pull_commands_v1()").fetchall()
        for seq, kind, call_id in rows:
            self.items.append((kind, call_id))
            self.conn.execute("SELECT cti.ack_commands_v1(%s)", [seq])

    def wait(self, timeout: float = 0.2) -> None:
        """Wait for a doorbell (a real NOTIFY), then pull."""
        select.select([self.conn], [], [], timeout)
        list(self.conn.notifies(timeout=0, stop_after=100))
        self.poll()

    def seen(self, kind: str) -> list[int]:
        return [call for k, call in self.items if k == kind]


@dataclass
class Pipeline:
    lab: AsteriskLab
    dsn: str
    ingest: IngestProcess
    desks: dict[str, Desk]
    crm: dict[str, int]

    def call_row(self, timeout: float = 30) -> dict:
        """The calls of this test, once every one of them has ended."""

        def ready() -> dict | None:
            with psycopg.connect(self.dsn) as conn:
                conn.row_factory = psycopg.rows.dict_row
                rows = conn.execute(
                    "SELECT * FROM cti.call_history_v1 ORDER BY started_at"
                ).fetchall()
            if rows and all(r["ended_at"] is not None for r in rows):
                return rows
            return None

        rows = wait_for(ready, timeout, "the call to end")
        return rows

    def pump(self, seconds: float) -> None:
        """Let the desks read their doorbells for a while."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            for desk in self.desks.values():
                desk.wait(0.05)

    def settle(self) -> None:
        """Every channel gone, every frame processed, every desk caught up."""
        self.lab.no_channels()
        wait_for(lambda: self._unprocessed() == 0, 30, "every raw event processed")
        self.pump(0.5)

    def _unprocessed(self) -> int:
        with psycopg.connect(self.dsn) as conn:
            return conn.execute(
                "SELECT count(*) FROM cti.raw_event r WHERE NOT EXISTS"
                " (SELECT FROM cti.event_outcome o WHERE o.raw_event_id = r.id)"
            ).fetchone()[0]

    def record(self, name: str) -> None:
        """With PGCTI_RECORD_LAB=1: keep this scenario's AMI stream (the blocks pgcti stored)
        and its calls (checked by the test before it records) as fixtures, which
        tests/rules/test_asterisk_lab_recordings.py replays without the lab."""
        if os.environ.get("PGCTI_RECORD_LAB") != "1":
            return
        with psycopg.connect(self.dsn) as conn:
            bodies = [
                b
                for (b,) in conn.execute(
                    "SELECT body FROM cti.raw_event WHERE source = 'asterisk' ORDER BY id"
                )
            ]
            calls = conn.execute(RECORDED_CALLS).fetchall()
        RECORDINGS.mkdir(parents=True, exist_ok=True)
        blocks = "".join(b + "\r\n\r\n" for b in bodies)
        (RECORDINGS / f"{name}.ami").write_bytes(blocks.encode())
        expected = [dict(zip(RECORDED_FIELDS, row, strict=True)) for row in calls]
        (RECORDINGS / f"{name}.json").write_text(json.dumps(expected, indent=2) + "\n")


def dump(dsn: str, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with psycopg.connect(dsn) as conn:
        events = conn.execute(
            "SELECT r.id, r.body, o.status, o.detail FROM cti.raw_event r"
            " LEFT JOIN cti.event_outcome o ON o.raw_event_id = r.id ORDER BY r.id"
        ).fetchall()
        calls = conn.execute("SELECT * FROM cti.call_history_v1").fetchall()
        outbox = conn.execute("SELECT * FROM cti.outbox ORDER BY 1").fetchall()
    text = [f"{i} [{status}: {detail}]\n{body}\n" for i, body, status, detail in events]
    path.write_text("\n".join([*text, "CALLS", *map(str, calls), "OUTBOX", *map(str, outbox)]))


@pytest.fixture
def pipeline(request, lab, dsn, conn, make_login, tmp_path) -> Iterator[Pipeline]:
    lab.no_channels()
    crm = seed_crm(conn)
    desks = {}
    for ext in ("101", "102", "103"):
        login_dsn = make_login("cti_client", f"live{ext}")
        login = psycopg.conninfo.conninfo_to_dict(login_dsn)["user"]
        conn.execute(
            "INSERT INTO cti.client_login (login, workstation_id) VALUES (%s, %s)",
            [login, crm[f"ws-{ext}"]],
        )
        desk_conn = psycopg.connect(login_dsn, autocommit=True)
        (channel,) = desk_conn.execute(
            "SELECT channel FROM cti.whoami_v1() WHERE stream = 'commands'"
        ).fetchone()
        desk_conn.execute(f'LISTEN "{channel}"')
        desks[ext] = Desk(ext, desk_conn)
    # A tick a second: calls whose end was lost end on time. Click-to-call on, through the
    # lab's own dialplan (docs/asterisk-way-back.md#click-to-call: a desk rings through its context,
    # outside numbers with a 9 in front), set in a config file as an administrator would.
    config = tmp_path / "ingest.toml"
    config.write_text(
        '[ingest]\ndial = true\ndial_channel = "Local/{extension}@internal"\n'
        'dial_context = "internal"\ndial_exten = "9{digits}"\n'
    )
    ingest = IngestProcess(
        dsn,
        lab.ami_url,
        tmp_path / "ingest",
        AMI_SECRET,
        "--pbx",
        "asterisk",
        "--tick-seconds",
        "1",
        "--config",
        str(config),
    )
    try:
        wait_for(lambda: "logged in to the AMI" in ingest.log, 20, "pgcti logged in to the AMI")
        yield Pipeline(lab, dsn, ingest, desks, crm)
    finally:
        if os.environ.get("PGCTI_LAB_DUMP"):  # to read what AMI said when a test fails
            dump(dsn, Path(os.environ["PGCTI_LAB_DUMP"]) / f"{request.node.name}.txt")
        lab.hang_up_everything()
        for phone in lab.phones.values():
            phone.command("answermode", "auto")
        for desk in desks.values():
            desk.conn.close()
        assert ingest.stop() == 0, ingest.log
        assert AMI_SECRET not in ingest.log
