"""A power cut, simulated: the receive journal's files as the disk would hold them.

What reaches the disk is what was fsync'd: a file's contents as of its last fsync, and
a directory's names as of the directory's last fsync (a file whose name was never made
durable is gone, whatever it held). The test records exactly that while the real Journal
runs, then "cuts the power" by rebuilding the directory from it, and starts a Journal on
the result as the next run of the ingester would."""

from __future__ import annotations

import asyncio
import os
import time
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest

from ingester.frame import Frame
from ingester.pipeline import spool as spool_module
from ingester.pipeline.journal import Journal
from ingester.pipeline.metrics import Metrics
from ingester.pipeline.writer import Writer

REAL_FSYNC = os.fsync


class Disk:
    """What survives a power cut: contents and names as of their last fsync."""

    def __init__(self) -> None:
        self.contents: dict[str, bytes] = {}
        self.names: dict[str, set[str]] = {}

    def fsync(self, fd: int) -> None:
        REAL_FSYNC(fd)
        path = os.readlink(f"/proc/self/fd/{fd}")
        if os.path.isdir(path):
            self.names[path] = set(os.listdir(path))
        else:
            self.contents[path] = Path(path).read_bytes()

    def cut_power(self, directory: Path, into: Path) -> Path:
        into.mkdir()
        for name in self.names.get(str(directory), set()):
            (into / name).write_bytes(self.contents.get(str(directory / name), b""))
        return into


def frames(n: int) -> list[Frame]:
    return [Frame("onlinepbx3", datetime.now(UTC), f'{{"n": {i}}}') for i in range(n)]


@pytest.fixture
def disk(monkeypatch):
    recorder = Disk()
    monkeypatch.setattr(os, "fsync", recorder.fsync)  # the journal's and the spool's
    return recorder


def survivors(policy: str, disk: Disk, tmp_path: Path, taken: int, received: int) -> int:
    """Record `received` frames, the writer taking the first `taken` as a batch; cut power."""
    live = tmp_path / "live"
    journal = Journal(live, sync=policy)
    sent = frames(received)
    for frame in sent[:taken]:
        journal.record(frame)
    journal.sync()  # the writer takes them
    for frame in sent[taken:]:
        journal.record(frame)
    after = disk.cut_power(live, tmp_path / "after")
    kept = Journal(after).left_over()
    assert kept == sent[: len(kept)], "what survives is a prefix, in order, intact"
    return len(kept)


def test_always_keeps_every_frame_received(disk, tmp_path):
    assert survivors("always", disk, tmp_path, taken=5, received=12) == 12


def test_batch_keeps_every_frame_taken_for_the_database(disk, tmp_path):
    assert survivors("batch", disk, tmp_path, taken=5, received=12) == 5


def test_batch_keeps_the_frames_of_a_file_it_rotated_away_from(disk, tmp_path):
    live = tmp_path / "live"
    journal = Journal(live, rotate_every=4, sync="batch")
    sent = frames(10)
    for frame in sent:
        journal.record(frame)  # rotations at 4 and 8 make the earlier files durable
    kept = Journal(disk.cut_power(live, tmp_path / "after")).left_over()
    assert kept == sent[:8]


def test_none_promises_nothing_after_a_power_cut(disk, tmp_path):
    assert survivors("none", disk, tmp_path, taken=5, received=12) == 0


def test_a_new_spool_file_survives_by_name(disk, tmp_path):
    spool = spool_module.Spool(tmp_path / "spool")
    spool.append(frames(3))
    after = disk.cut_power(tmp_path / "spool", tmp_path / "after")
    assert spool_module.Spool(after).depth == 3


def write_one(writer: Writer, frame: Frame) -> None:
    """The writer's loop as the ingester runs it, for one frame, to the end."""

    async def run() -> None:
        task = asyncio.create_task(writer.run())
        writer.submit(frame)
        writer.stop()
        await task

    asyncio.run(run())


def test_the_database_write_does_not_wait_for_the_journals_fsync(dsn, tmp_path, monkeypatch):
    """Group commit overlaps the disk: the writer's INSERT runs while the batch's journal
    fsync does (on a slow disk here, 0.5 s), and the frame's journal record is dropped only
    once both are done, so a power cut at any moment finds it in one place or the other."""
    events: dict[str, float] = {}

    def slow_fsync(fd: int) -> None:
        if os.path.isdir(os.readlink(f"/proc/self/fd/{fd}")):
            return REAL_FSYNC(fd)  # a new journal file's name: not the group commit
        events.setdefault("fsync began", time.time())
        time.sleep(0.5)
        REAL_FSYNC(fd)
        events.setdefault("fsync ended", time.time())

    monkeypatch.setattr(os, "fsync", slow_fsync)
    journal = Journal(tmp_path / "journal", sync="batch")
    settle = journal.settle
    monkeypatch.setattr(
        journal, "settle", lambda n: (events.setdefault("settled", time.time()), settle(n))
    )
    writer = Writer(dsn, spool_module.Spool(tmp_path / "spool"), Metrics(), journal=journal)
    # A frame that fails (no call id): its note records when it was processed, which a
    # clean frame's outcome does not (processed as it was stored).
    frame = Frame("onlinepbx3", datetime.now(UTC), '{"event": "call_start", "data": {}}')

    write_one(writer, frame)
    with psycopg.connect(dsn) as conn:
        (stored_at,) = conn.execute(
            "SELECT o.processed_at FROM cti.raw_event r"
            " JOIN cti.event_outcome o ON o.raw_event_id = r.id WHERE r.frame = %s::jsonb",
            [frame.body],
        ).fetchone()
    assert events["fsync began"] < stored_at.timestamp() < events["fsync ended"], events
    assert events["settled"] >= events["fsync ended"], events
    assert Journal(tmp_path / "journal").left_over() == [], "settled: nothing left to replay"


def test_a_slow_journal_disk_does_not_pace_the_database_writes(dsn, tmp_path, monkeypatch):
    """The next batch waits for the database, not for the last batch's journal fsync: frames
    that come while a slow fsync (0.5 s) runs are stored before it returns, share the next
    fsync (one at a time), and every record is still dropped only after its fsync. (The
    writer waited for each fsync before taking the next batch: the ingester's own disk,
    another machine's in production, paced it.)"""
    fsync_ended: list[float] = []
    running = [0, 0]  # now, at most

    def slow_fsync(fd: int) -> None:
        if os.path.isdir(os.readlink(f"/proc/self/fd/{fd}")):
            return REAL_FSYNC(fd)
        running[0] += 1
        running[1] = max(running)
        time.sleep(0.5)
        REAL_FSYNC(fd)
        running[0] -= 1
        fsync_ended.append(time.time())

    monkeypatch.setattr(os, "fsync", slow_fsync)
    journal = Journal(tmp_path / "journal", sync="batch")
    settled: list[float] = []
    settle = journal.settle
    monkeypatch.setattr(journal, "settle", lambda n: (settled.append(time.time()), settle(n)))
    writer = Writer(dsn, spool_module.Spool(tmp_path / "spool"), Metrics(), journal=journal)
    # Frames that fail (no call id): each one's note records when it was processed.
    bodies = [f'{{"event": "call_start", "data": {{"slow_disk": {n}}}}}' for n in range(4)]

    async def run() -> None:
        task = asyncio.create_task(writer.run())
        for body in bodies:
            writer.submit(Frame("onlinepbx3", datetime.now(UTC), body))
            await asyncio.sleep(0.05)
        writer.stop()
        await task

    asyncio.run(run())
    with psycopg.connect(dsn) as conn:
        stored = [
            row[0].timestamp()
            for row in conn.execute(
                "SELECT o.processed_at FROM unnest(%s::text[]) b JOIN cti.raw_event r ON r.frame = b::jsonb"
                " JOIN cti.event_outcome o ON o.raw_event_id = r.id ORDER BY r.id",
                [bodies],
            )
        ]
    assert len(stored) == 4
    assert max(stored) < min(fsync_ended), "every frame stored while the first fsync ran"
    # One fsync at a time: the three batches taken while the first ran share the next one.
    assert running[1] == 1 and len(fsync_ended) == 2, (running, fsync_ended)
    assert min(settled) >= min(fsync_ended), "no record dropped before its fsync"
    assert Journal(tmp_path / "journal").left_over() == [], "settled: nothing left to replay"


def test_a_failing_journal_fsync_is_reported_and_the_frame_still_stored(dsn, tmp_path, monkeypatch):
    """The fsync runs on a thread: its error comes back to the writer, which reports the
    journal's problem (degraded health) at once and still writes the frame."""

    def failing_fsync(fd: int) -> None:
        if os.path.isdir(os.readlink(f"/proc/self/fd/{fd}")):
            return REAL_FSYNC(fd)
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "fsync", failing_fsync)
    metrics = Metrics()
    writer = Writer(
        dsn, spool_module.Spool(tmp_path / "spool"), metrics, journal=Journal(tmp_path / "j")
    )
    frame = Frame("onlinepbx3", datetime.now(UTC), '{"event": "call_start", "data": {"n": 2}}')

    write_one(writer, frame)
    healthy, state = metrics.health()
    assert not healthy and "Input/output error" in state["journal_problem"], state
    with psycopg.connect(dsn) as conn:
        assert conn.execute(
            "SELECT count(*) FROM cti.raw_event WHERE frame = %s::jsonb", [frame.body]
        ).fetchone() == (1,)
