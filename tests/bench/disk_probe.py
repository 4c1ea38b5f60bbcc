"""The disk's own fsync latency while a benchmark runs, so that a latency figure can be read
beside what the disk did at the same moments.

A thread rewrites one 8 kB block of a file beside the database's data and `fdatasync`s it
every 10 ms, as PostgreSQL does with its WAL at each commit. When the disk stalls (on this
virtual machine its fsync sometimes takes 100-550 ms under load), every commit waiting on
it stalls too, and so does every doorbell behind that commit: no design of pgcti's can
send a doorbell for a frame before the frame is durable.
"""

from __future__ import annotations

import functools
import os
import threading
import time

from ingester.demo.board import percentile

STALL_MS = 50.0  # an fsync this slow is a stall: a hundred times the usual 0.3-0.6 ms here


class DiskProbe:
    """`with DiskProbe(directory) as disk:` fsyncs in `directory` until the block ends."""

    def __init__(self, directory: str, interval_s: float = 0.01) -> None:
        self.path = os.path.join(directory, "pgcti-disk-probe")
        self.interval_s = interval_s
        self.samples: list[tuple[float, float]] = []  # (wall-clock start, duration in ms)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="disk-probe", daemon=True)

    def __enter__(self) -> DiskProbe:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        os.unlink(self.path)

    def _run(self) -> None:
        block = b"\0" * 8192
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            while not self._stop.is_set():
                os.pwrite(fd, block, 0)
                start = time.time()
                os.fdatasync(fd)
                self.samples.append((start, (time.time() - start) * 1000))
                self._stop.wait(self.interval_s)
        finally:
            os.close(fd)

    @functools.cached_property
    def stalls(self) -> list[tuple[float, float]]:
        """(start, end) wall-clock times of each fsync slower than STALL_MS; read once the
        probe has stopped (kept from the first read)."""
        return [(s, s + ms / 1000) for s, ms in self.samples if ms > STALL_MS]

    def overlaps_a_stall(self, start: float, end: float) -> bool:
        return any(s < end and start < e for s, e in self.stalls)

    def summary(self) -> dict:
        ms = [d for _s, d in self.samples]
        return {
            "disk_fsyncs": len(ms),
            "disk_fsync_p50_ms": round(percentile(ms, 50), 2),
            "disk_fsync_p99_ms": round(percentile(ms, 99), 2),
            "disk_fsync_max_ms": round(max(ms), 1) if ms else None,
            "disk_stalls": len(self.stalls),
        }
