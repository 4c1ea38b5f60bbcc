"""What a crash or a bad disk leaves in the spool and the receive journal never stops the
ingester, and costs no whole record (issue 10, durability 6)."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest

from ingester import embedded
from ingester.clients.gateway_process import free_port
from ingester.frame import Frame
from ingester.install import migrations
from ingester.pipeline.spool import frame_line
from ingester.simulator import onlinepbx3_calls as pbx
from tests.conftest import count_rows
from tests.support.crm_fixture import KNOWN, LINE, builder, seed_crm
from tests.support.live import KEY, IngestProcess, SimulatorThread, health, wait_for


def _records(frames: list[dict]) -> str:
    now = datetime.now(UTC)
    return "".join(frame_line(Frame("onlinepbx3", now, json.dumps(f))) for f in frames)


@contextlib.contextmanager
def small_disk(directory: Path, left_kb: int) -> Iterator[Path]:
    """A 256 kB tmpfs mounted at ``directory`` with ``left_kb`` free (a disk that fills
    up); yields the filler file, whose removal frees the space. Skips without root."""
    directory.mkdir(parents=True, exist_ok=True)
    mounted = os.geteuid() == 0 and (
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(directory)]
        ).returncode
        == 0
    )
    if not mounted:
        pytest.skip("needs root to mount a small tmpfs as a disk that fills up")
    try:
        filler = directory / "filler"
        with filler.open("wb") as out:
            out.write(b"\0" * ((256 - left_kb) * 1024))
        yield filler
    finally:
        subprocess.run(["umount", "-l", str(directory)])


def test_a_torn_spool_tail_is_cut_and_later_frames_are_not_glued_to_it(own_server, tmp_path):
    """A kill during an append left half a record; then the database is down, so new frames
    are appended to the spool; when it returns, everything whole is written."""
    dsn = own_server
    migrations.apply(dsn, reference_crm=True)
    with psycopg.connect(dsn, autocommit=True) as conn:
        seed_crm(conn)
    frames = pbx.inbound_answered(builder(3), KNOWN, LINE, "101")
    spool = tmp_path / "spool"
    spool.mkdir()
    whole = _records(frames[:2])
    torn = _records(frames[2:3])[:40]
    (spool / "frames.jsonl").write_text(whole + torn)

    embedded.stop("immediate")
    sim = SimulatorThread()
    ingest = IngestProcess(dsn, sim.url, tmp_path)
    try:
        wait_for(lambda: sim.server.listeners() == 1, what="subscription")
        assert sim.send(frames[3:]) == len(frames) - 3  # spooled behind the torn record
        spooled = 2 + len(frames) - 3 + 1  # with the subscribe reply
        wait_for(
            lambda: len((spool / "frames.jsonl").read_text().splitlines()) == spooled,
            what="frames spooled behind the cut while the database is down",
        )
        embedded.start()
        # 2 whole + the rest + the subscribe reply; the torn third frame never finished.
        wait_for(lambda: count_rows(dsn) == len(frames), timeout=30, what="the spool written")
    finally:
        code = ingest.stop()
        sim.close()
    assert code == 0, ingest.log
    assert f"cut {len(torn)} byte(s) of a record that was never finished" in ingest.log


def test_a_damaged_journal_record_is_set_aside_and_start_up_goes_on(conn, dsn, tmp_path):
    seed_crm(conn)
    frames = pbx.inbound_answered(builder(4), KNOWN, LINE, "101")
    journal = tmp_path / "spool" / "journal"
    journal.mkdir(parents=True)
    lines = _records(frames).splitlines(keepends=True)
    damaged = lines[1].replace("channel", "chan_el", 1)  # a flipped byte: the checksum fails
    (journal / "received-000000001.jsonl").write_text("".join([lines[0], damaged, *lines[2:]]))

    sim = SimulatorThread()
    ingest = IngestProcess(dsn, sim.url, tmp_path)
    try:
        wait_for(
            lambda: (
                count_rows(dsn) == len(frames)
            ),  # all but the damaged one, + the subscribe reply what="the journal's whole records written"
        )
    finally:
        code = ingest.stop()
        sim.close()
    assert code == 0, ingest.log
    assert "1 damaged record(s)" in ingest.log
    aside = list((tmp_path / "spool" / "journal").glob("corrupt-*.bin"))
    assert len(aside) == 1 and aside[0].read_text().strip() == damaged.strip()


def test_a_deleted_spool_directory_is_recreated_and_nothing_is_lost(conn, dsn, tmp_path):
    """Someone removes the spool directory (journal inside) while the ingester runs; the
    next journal rotation (every 1,000 frames) and everything after it still work."""
    import shutil

    seed_crm(conn)
    sim = SimulatorThread()
    ingest = IngestProcess(dsn, sim.url, tmp_path)
    try:
        wait_for(lambda: sim.server.listeners() == 1, what="subscription")
        # Renamed first, then removed: the running ingester may create a file while a
        # recursive delete walks the tree (as `rm -rf` would race too); the rename is atomic.
        (tmp_path / "spool").rename(tmp_path / "deleted")
        shutil.rmtree(tmp_path / "deleted")
        frames = [
            f for n in range(200) for f in pbx.inbound_answered(builder(n), KNOWN, LINE, "102")
        ]
        assert sim.send(frames) == len(frames)
        wait_for(lambda: count_rows(dsn) == len(frames) + 1, timeout=60, what="every frame stored")
    finally:
        code = ingest.stop()
        sim.close()
    assert code == 0, ingest.log
    assert "was deleted; recreating it" in ingest.log
    assert (tmp_path / "spool" / "journal").is_dir()


def test_a_full_disk_under_the_journal_costs_no_frame_and_is_reported(conn, dsn, tmp_path):
    """The journal's file system fills up while the database is up: frames keep going to
    the database, /healthz says why it is degraded, and journaling resumes with space."""
    journal = tmp_path / "spool" / "journal"
    with small_disk(journal, left_kb=8) as filler:  # the first frames fit, then it is full
        seed_crm(conn)
        port = free_port()

        sim = SimulatorThread()
        ingest = IngestProcess(dsn, sim.url, tmp_path, KEY, "--metrics-port", str(port))
        try:
            wait_for(lambda: sim.server.listeners() == 1, what="subscription")
            frames = [
                f for n in range(10) for f in pbx.inbound_answered(builder(n), KNOWN, LINE, "101")
            ]
            assert sim.send(frames) == len(frames)
            wait_for(lambda: count_rows(dsn) == len(frames) + 1, what="every frame stored")
            status, state = wait_for(lambda: (h := health(port))[0] and h, what="health")
            assert status == 503 and "No space left on device" in state["journal_problem"], state
            filler.unlink()
            more = pbx.inbound_answered(builder(99), KNOWN, LINE, "101")
            assert sim.send(more) == len(more)
            wait_for(lambda: count_rows(dsn) == len(frames) + len(more) + 1, what="more stored")
            assert wait_for(lambda: health(port)[0] == 200, what="healthy again")
        finally:
            code = ingest.stop()
            sim.close()
        assert code == 0, ingest.log
        assert "the receive journal cannot be written" in ingest.log
        assert "the journal is written again" in ingest.log


def test_a_full_disk_under_the_spool_while_the_database_is_away_loses_nothing(own_server, tmp_path):
    """The database is down and the spool's disk fills up: frames wait in memory (bounded:
    past 32 MiB the PBX is read no faster), /healthz says why, nothing is lost; when the
    database is back they are written in order, and when space is back the spool is used again."""
    dsn = own_server
    migrations.apply(dsn, reference_crm=True)
    with psycopg.connect(dsn, autocommit=True) as conn:
        seed_crm(conn)
    with small_disk(tmp_path / "spool", left_kb=12) as filler:
        port = free_port()
        sim = SimulatorThread()
        ingest = IngestProcess(dsn, sim.url, tmp_path, KEY, "--metrics-port", str(port))
        try:
            wait_for(lambda: sim.server.listeners() == 1, what="subscription")
            first = pbx.inbound_answered(builder(0), KNOWN, LINE, "101")
            sim.send(first)
            wait_for(lambda: count_rows(dsn) == len(first) + 1, what="first call stored")
            embedded.stop("immediate")
            away = [
                f
                for n in range(1, 40)
                for f in pbx.inbound_answered(builder(n), KNOWN, LINE, "102")
            ]
            assert sim.send(away) == len(away)
            status, state = wait_for(
                lambda: (h := health(port))[1].get("spool_problem") and h,
                what="the full spool reported",
            )
            assert status == 503 and "No space left on device" in state["spool_problem"], state
            assert ingest.proc.poll() is None, "still running"
            embedded.start()
            wait_for(
                lambda: count_rows(dsn) == len(first) + len(away) + 1, timeout=60, what="all stored"
            )
            filler.unlink()
            more = pbx.inbound_answered(builder(99), KNOWN, LINE, "101")
            sim.send(more)  # the journal (on the same disk) is written again with the next frame
            wait_for(lambda: count_rows(dsn) == len(first) + len(away) + len(more) + 1, what="more")
            assert wait_for(lambda: health(port)[0] == 200, timeout=30, what="healthy again")
        finally:
            code = ingest.stop()
            sim.close()
    assert code == 0, ingest.log
    assert "the spool cannot be written" in ingest.log
    with psycopg.connect(dsn) as conn:
        dups = conn.execute(
            "SELECT count(*) - count(DISTINCT (source, dedup_key)) FROM cti.raw_event"
        ).fetchone()[0]
    assert dups == 0
