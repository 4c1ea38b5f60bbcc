"""The latency benchmark's disk probe (tests/bench/disk_probe.py): it really fsyncs, it
leaves nothing behind, and a doorbell is put beside a disk stall only when its span met one."""

from __future__ import annotations

import time

from tests.bench.disk_probe import STALL_MS, DiskProbe


def test_the_probe_fsyncs_until_its_block_ends_and_leaves_no_file(tmp_path):
    with DiskProbe(str(tmp_path), interval_s=0.005) as disk:
        time.sleep(0.2)
    count = len(disk.samples)
    time.sleep(0.05)
    assert count >= 5 and len(disk.samples) == count, "it stopped with its block"
    assert all(ms >= 0 for _start, ms in disk.samples)
    assert list(tmp_path.iterdir()) == []
    summary = disk.summary()
    assert summary["disk_fsyncs"] == count and summary["disk_fsync_max_ms"] is not None


def test_a_span_meets_a_stall_only_when_they_overlap(tmp_path):
    disk = DiskProbe(str(tmp_path))
    disk.samples = [
        (100.0, 0.4),
        (100.5, STALL_MS + 150),
        (101.0, STALL_MS),
    ]  # one stall: 100.5-100.7
    assert disk.stalls == [(100.5, 100.7)]
    assert disk.overlaps_a_stall(100.4, 100.6)
    assert disk.overlaps_a_stall(100.55, 100.6)
    assert not disk.overlaps_a_stall(100.0, 100.45)
    assert not disk.overlaps_a_stall(100.75, 101.2), "an fsync of exactly STALL_MS is no stall"
    assert disk.summary()["disk_stalls"] == 1
