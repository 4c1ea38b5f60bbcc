"""Group commit of the receive journal, off the writer's path.

A frame is safe once it is in the database (or the spool) or once the journal that recorded
it is fsync'd; its journal record may go (be settled) only when both are done, so that a
power cut at any moment finds it in one place or the other.

- One fsync at a time, on a thread, covering every frame the journal holds when it begins.
  A batch taken while one runs waits for the next, which begins as soon as that one returns.
- The writer never waits for an fsync: its next batch waits for the database only, so the
  ingester's own disk (another machine's, in production) does not pace the writes.
- Batches settle oldest first, each once it is written and its fsync is done. However slow
  the disk, one fsync runs and one descriptor is open for it, not one per batch.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from ingester.pipeline.journal import Journal, fsync_and_close

NEXT = object()  # a batch taken while an fsync ran: the next fsync covers it


@dataclass
class Batch:
    count: int  # frames
    fsync: asyncio.Task | object | None  # the fsync that covers it, NEXT, or None (none needed)
    written: bool = False


class GroupCommit:
    def __init__(self, journal: Journal | None, on_fsync: Callable[[], None]) -> None:
        self.journal = journal
        self._on_fsync = on_fsync  # the writer reports the journal's problem, if any, at once
        self._running: asyncio.Task | None = None
        self._batches: deque[Batch] = deque()

    def take(self, count: int) -> Batch:
        """A batch of `count` frames is taken for the database: begin its fsync, or queue it
        for the next one."""
        fsync: asyncio.Task | object | None = None
        if self.journal is not None:
            fsync = NEXT if self._running is not None else self._begin()
        batch = Batch(count, fsync)
        self._batches.append(batch)
        return batch

    def written(self, batch: Batch) -> None:
        """The batch is stored or spooled."""
        batch.written = True
        self._settle()

    async def drain(self) -> None:
        """Wait for the fsyncs still running, settling every written batch (at stop)."""
        while self._batches and self._running is not None:
            await asyncio.wait([self._running])  # its callback, registered first, has run
        self._settle()

    def settle_all(self) -> None:
        """Last resort at a stop that did not finish: the batches written are in the database
        or the spool, and settle without their fsync; the one still being written is the
        caller's to keep (it spools it and settles it with the frames still queued)."""
        while self._batches:
            batch = self._batches.popleft()
            if batch.written:
                self._drop(batch)

    def _begin(self) -> asyncio.Task | None:
        fd = self.journal.begin_sync() if self.journal is not None else None
        if fd is None:
            return None  # nothing written since the last fsync, or no journal file
        self._running = asyncio.create_task(asyncio.to_thread(fsync_and_close, fd))
        self._running.add_done_callback(self._returned)
        return self._running

    def _returned(self, fsync: asyncio.Task) -> None:
        self._running = None
        if fsync.cancelled():
            return  # the event loop is closing (a stop that did not finish): begin no other
        if self.journal is not None:
            error = fsync.exception() or fsync.result()
            if error is not None and not isinstance(error, OSError):
                error = OSError(str(error))
            self.journal.finish_sync(error)
            self._on_fsync()
        waiting = [b for b in self._batches if b.fsync is NEXT]
        if waiting:
            following = self._begin()
            for batch in waiting:
                batch.fsync = following
        self._settle()

    def _settle(self) -> None:
        while self._batches and self._settles(self._batches[0]):
            self._drop(self._batches.popleft())

    @staticmethod
    def _settles(batch: Batch) -> bool:
        if not batch.written or batch.fsync is NEXT:
            return False
        return not isinstance(batch.fsync, asyncio.Task) or batch.fsync.done()

    def _drop(self, batch: Batch) -> None:
        if self.journal is not None:
            self.journal.settle(batch.count)
