"""The receive journal: every frame is written to the operating system as it arrives, before it is queued.

Without it, a SIGKILLed or crashed ingester loses what it held only in memory: the
frames queued for the next batch and the batch in flight (measured: 19 frames at 1,000
frames/s). With it, the next start moves them to the spool, ahead of new frames, and
they are written in order; frames that had been committed after all are skipped by the
raw log's dedup key. Files rotate every `rotate_every` frames; a file goes once every
frame in it is stored or spooled.

How much survives a power cut is the sync policy's choice (`--sync`, docs/reliability.md):
- `always`: every frame is fsync'd as it is written: none is lost, at one fsync per frame;
- `batch` (the default): group commit, one fsync for every frame received since the last,
  when the writer takes them for the database (the fsync runs while they are written, so
  the database does not wait for the disk): a cut loses at most the frames received since
  the last batch was taken (milliseconds);
- `none`: flushed to the operating system only: a process crash loses nothing, a power
  cut can lose every frame not yet in the database.
With `always` and `batch` a new file's directory entry is fsync'd too.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from ingester.frame import Frame
from ingester.pipeline.spool import frame_line, read_records, report, sync_directory

log = logging.getLogger("pgcti.journal")
PROBLEM_LOG_EVERY = 30.0  # seconds between ERROR lines while the journal cannot be written
SYNC_POLICIES = ("always", "batch", "none")


@dataclass
class _Part:
    path: Path
    recorded: int = 0
    settled: int = 0


def fsync_and_close(fd: int | None) -> OSError | None:
    """The fsync of Journal.begin_sync(); safe on another thread. Returns its error, if any."""
    if fd is None:
        return None
    try:
        os.fsync(fd)
    except OSError as exc:
        return exc
    finally:
        os.close(fd)
    return None


class Journal:
    def __init__(self, directory: Path, rotate_every: int = 1000, sync: str = "batch") -> None:
        if sync not in SYNC_POLICIES:
            raise ValueError(f"sync policy {sync!r}; one of {', '.join(SYNC_POLICIES)}")
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.directory = directory
        self.rotate_every = rotate_every
        self.sync_policy = sync
        self._unsynced = False  # frames written since the last fsync (policy `batch`)
        self._parts: deque[_Part] = deque()
        self._out: TextIO | None = None
        self._number = 0
        # Per frame offered, oldest first: whether it is in the journal (a full disk refuses some).
        self._offered: deque[bool] = deque()
        # Why frames are not being journaled (a full disk, say), while they are not.
        self.problem: str | None = None
        self.failures = 0
        self._problem_logged = 0.0

    def left_over(self) -> list[Frame]:
        """Frames an earlier run recorded and may not have written, oldest first. Call before
        recording anything; once they are kept elsewhere (the spool), discard_left_over()."""
        frames = []
        for path in self._left_over_files():
            found = read_records(path)
            report(path, found)
            frames += found.frames
        return frames

    def discard_left_over(self) -> None:
        for path in self._left_over_files():
            path.unlink()

    def _left_over_files(self) -> list[Path]:
        return sorted(self.directory.glob("received-*.jsonl"))

    def record(self, frame: Frame) -> bool:
        """Write the frame to the OS; False when the disk refuses (full, say). The frame still
        goes to the database: the journal only guards what a crash would lose meanwhile."""
        try:
            if self._out is None or self._parts[-1].recorded >= self.rotate_every:
                self._rotate()
            assert self._out is not None
            self._out.write(frame_line(frame))
            self._out.flush()
            if self.sync_policy == "always":
                os.fsync(self._out.fileno())
            else:
                self._unsynced = True
        except OSError as exc:
            self._broken(exc)
            self._offered.append(False)
            return False
        self._offered.append(True)
        self._parts[-1].recorded += 1
        if self.problem is not None:
            log.info("the journal is written again (%s)", self.directory)
            self.problem = None
        return True

    def sync(self) -> None:
        """Group commit (policy `batch`): make every frame written so far survive a power cut."""
        self.finish_sync(fsync_and_close(self.begin_sync()))

    def begin_sync(self) -> int | None:
        """Group commit in two halves, so that the writer's INSERT need not wait for the disk:
        the frames written so far, as a descriptor of their file to fsync (on any thread, with
        fsync_and_close()), then finish_sync() with what it returned. None: nothing to sync."""
        if self.sync_policy != "batch" or not self._unsynced or self._out is None:
            return None
        self._unsynced = False  # frames written from now on wait for the next sync
        # A duplicate: the file may rotate or be dropped while the fsync runs.
        return os.dup(self._out.fileno())

    def finish_sync(self, error: OSError | None) -> None:
        if error is not None:
            self._broken(error)

    def _broken(self, exc: OSError) -> None:
        """A write failed: drop the file (it may end in a torn record, which a later start
        cuts), count it, say so at most every 30 s; the next frame tries a new file."""
        self.failures += 1
        self.problem = f"{exc.strerror or exc} ({self.directory})"
        if self._out is not None:
            # What it had buffered is lost to the journal, not to the database.
            with contextlib.suppress(OSError):
                self._out.close()
            self._out = None
        if time.monotonic() - self._problem_logged >= PROBLEM_LOG_EVERY:
            self._problem_logged = time.monotonic()
            log.error(
                "the receive journal cannot be written: %s; frames still go to the database, "
                "but a crash now would lose the ones in memory (%d failed write(s) so far)",
                self.problem,
                self.failures,
            )

    def settle(self, offered: int) -> None:
        """The oldest `offered` frames are stored or spooled: files all of whose frames are
        settled go (the current one is emptied instead)."""
        count = sum(self._offered.popleft() for _ in range(min(offered, len(self._offered))))
        while count and self._parts:
            part = self._parts[0]
            taken = min(count, part.recorded - part.settled)
            part.settled += taken
            count -= taken
            if part.settled < part.recorded:
                break
            if len(self._parts) > 1:
                self._parts.popleft()
                part.path.unlink(missing_ok=True)
            elif self._out is not None:
                self._out.truncate(0)
                part.recorded = part.settled = 0
                break
            else:  # its file was dropped after a failed write
                self._parts.popleft()
                part.path.unlink(missing_ok=True)
                break

    def close(self) -> None:
        if self._out is not None:
            self._out.close()
            self._out = None

    def _rotate(self) -> None:
        if self._out is not None:
            if self._unsynced:  # group commit: the old file's last frames are made durable
                os.fsync(self._out.fileno())
                self._unsynced = False
            self._out.close()
        self._number += 1
        path = self.directory / f"received-{self._number:09d}.jsonl"
        if not self.directory.is_dir():  # deleted under us (an over-eager clean-up): recreate
            log.error("the journal directory %s was deleted; recreating it", self.directory)
            self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        if self._unsynced and self._out is None:
            self._unsynced = False  # the file they were in was dropped after a failed write
        path.touch(mode=0o600)
        self._out = path.open("a", encoding="utf-8")
        self._parts.append(_Part(path))
        if self.sync_policy != "none":
            sync_directory(self.directory)  # the new file's name survives a power cut too
