"""The raw-event writer: batches what has arrived, one transaction per batch, spools when the database is away.

No added delay when traffic is light: a batch is whatever queued up while the previous
one was being committed (at most `max_batch`). Order is kept: once anything is
spooled, new frames queue behind it until the spool has drained. With a journal, each
frame is recorded there before it is queued and settled once stored or spooled.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import random
import time
from collections import deque
from collections.abc import Iterator

import psycopg

from ingester.frame import Frame
from ingester.pipeline.bounded import bounded_body
from ingester.pipeline.group_commit import GroupCommit
from ingester.pipeline.journal import Journal
from ingester.pipeline.metrics import Metrics
from ingester.pipeline.replay_window import REPLAY_WINDOW, ReplayWindow
from ingester.pipeline.spool import Spool
from ingester.pipeline.write_errors import (
    CONFLICT_RETRIES,
    about_the_frame,
    advice,
    first_line,
    is_conflict,
)
from ingester.queries import query

log = logging.getLogger("pgcti.writer")

REFUSAL_LOG_EVERY = 30.0  # seconds between ERROR lines while the database keeps refusing
# A batch is capped by bytes too: 110 frames of 10 MB in one INSERT passed PostgreSQL's 1 GB
# message limit, the server dropped the connection, and the same batch was retried forever.
MAX_BATCH_BYTES = 8 * 2**20
# Past this much waiting to be written, the transport stops reading from the PBX: memory
# stays bounded under any flood, and TCP pushes back on the sender.
MAX_QUEUED_BYTES = 32 * 2**20


class DatabaseRefuses(Exception):
    """The database refuses writes for a reason that is not about the frames."""


class Writer:
    def __init__(
        self,
        dsn: str,
        spool: Spool,
        metrics: Metrics,
        max_batch: int = 500,
        db_timeout: float = 10.0,
        journal: Journal | None = None,
        replay_window: float = REPLAY_WINDOW,
    ) -> None:
        self.dsn = dsn
        self.recent = ReplayWindow(replay_window)  # written again on every new connection
        self._connected_before = False
        self.journal = journal
        # A partitioned network can leave a write hanging with no error; past this it counts as
        # failed and the batch is spooled (if it did commit after all, its replay is a no-op).
        self.db_timeout = db_timeout
        self.spool = spool
        self.metrics = metrics
        self.max_batch = max_batch
        self.queue: asyncio.Queue[Frame | None] = asyncio.Queue()  # None: stop marker
        self._inflight: list[Frame] = []
        self._conn: psycopg.AsyncConnection | None = None
        self._retry_delay = 0.2
        self._next_try = (
            0.0  # while the database is away, try it no more often than this (monotonic)
        )
        self._refusal_logged = 0.0  # when the last ERROR about a refusing database was logged
        self._unavailable_logged = 0.0  # when the last WARNING about an unreachable one was
        self._carry: Frame | None = None  # taken from the queue, left for the next batch
        self.group_commit = GroupCommit(journal, self._journal_state)
        # Frames the spool's full disk refused while the database was away, oldest first.
        self._held: deque[Frame] = deque()
        self._spool_problem_logged = 0.0
        self._queued_bytes = 0
        self._room = asyncio.Event()
        self._room.set()
        self.metrics.spool_depth.set(spool.depth)

    def submit(self, frame: Frame, from_pbx: bool = True) -> None:
        if from_pbx:
            self.metrics.received.inc()
        if self.journal is not None:
            self.journal.record(frame)
            self.metrics.journal_problem = self.journal.problem
        self._queued_bytes += len(frame.body)
        if self._queued_bytes >= MAX_QUEUED_BYTES:
            self._room.clear()
        self.queue.put_nowait(frame)

    async def deliver(self, frame: Frame) -> None:
        """For the PBX transports: queue the frame, then wait (reading nothing more from the
        PBX) while too much is waiting to be written."""
        self.submit(frame)
        await self._room.wait()

    def _taken(self, frame: Frame) -> None:
        self._queued_bytes -= len(frame.body)
        if self._queued_bytes < MAX_QUEUED_BYTES:
            self._room.set()

    async def run(self) -> None:
        """Write until stop() is called and everything queued before it is written (or spooled)."""
        await self._recover()
        while True:
            timeout = max(0.0, self._next_try - time.monotonic()) if self._backlog() else None
            if self._carry is not None:
                first, self._carry = self._carry, None
            else:
                try:
                    first = await asyncio.wait_for(self.queue.get(), timeout)
                except TimeoutError:
                    await self._recover()
                    continue
                if first is None:
                    break
                self._taken(first)
            self._inflight = self._take_batch(first)
            # What is taken survives a power cut: its journal fsync runs while it is written
            # (group_commit.py), and the next batch does not wait for that fsync.
            taken = self.group_commit.take(len(self._inflight))
            await self._write(self._inflight)
            self.group_commit.written(taken)
            self._inflight = []
        await self.group_commit.drain()
        if self._conn is not None:
            await self._conn.close()

    def _journal_state(self) -> None:
        """A journal fsync returned: a failure shows in health at once."""
        if self.journal is not None:
            self.metrics.journal_problem = self.journal.problem

    def stop(self) -> None:
        """Finish what is queued, then return from run()."""
        self.queue.put_nowait(None)

    def spool_unwritten(self) -> int:
        """Last resort when run() did not finish in time: keep in-flight and queued frames on disk."""
        left = [f for f in self._inflight]
        if self._carry is not None:
            left.append(self._carry)
            self._carry = None
        while not self.queue.empty():
            frame = self.queue.get_nowait()
            if frame is not None:
                left.append(frame)
        if left:
            self._to_spool(left)  # if the in-flight batch did commit, its replay is a no-op
        self.group_commit.settle_all()  # taken before these: in the database or the spool
        if self._held:
            log.error(
                "%d frame(s) could be kept neither in the database (away) nor in the spool "
                "(%s): they are lost with this stop",
                len(self._held),
                self.metrics.spool_problem,
            )
        self._settle(len(left))
        return len(left)

    def _settle(self, count: int) -> None:
        if self.journal is not None:
            self.journal.settle(count)

    def _take_batch(self, first: Frame) -> list[Frame]:
        """What has queued up, at most max_batch frames and MAX_BATCH_BYTES (but one frame
        always goes, whatever its size)."""
        batch, size = [first], len(first.body)
        while len(batch) < self.max_batch and not self.queue.empty():
            frame = self.queue.get_nowait()
            if frame is None:
                self.queue.put_nowait(None)  # the stop marker stays last
                break
            self._taken(frame)
            if size + len(frame.body) > MAX_BATCH_BYTES:
                self._carry = frame  # first of the next batch: order is kept
                break
            batch.append(frame)
            size += len(frame.body)
        return batch

    async def _write(self, batch: list[Frame]) -> None:
        if self._backlog() and not await self._recover():
            self._to_spool(batch)
            return
        try:
            await self._insert_checked(batch)
        except psycopg.OperationalError as exc:
            log.warning(
                "database unavailable (%s); spooling to %s", first_line(exc), self.spool.path
            )
            await self._drop_connection()
            self._to_spool(batch)
        except DatabaseRefuses as exc:
            self._to_spool(batch)
            self._refusing(exc.__cause__)
        else:
            self._accepting()

    async def _insert_checked(self, batch: list[Frame]) -> None:
        """Insert; a frame refused for its content is isolated by halving the batch and is
        stored in a bounded form instead. Raises DatabaseRefuses for any other refusal."""
        try:
            await self._insert(batch)
        except psycopg.Error as exc:
            if not about_the_frame(exc):
                if isinstance(exc, psycopg.OperationalError):
                    raise  # the database is away: the caller spools and retries
                raise DatabaseRefuses() from exc
            if len(batch) > 1:
                log.warning(
                    "batch of %d refused (%s); finding the frame at fault",
                    len(batch),
                    first_line(exc),
                )
                half = len(batch) // 2  # what committed before a later failure replays as a no-op
                await self._insert_checked(batch[:half])
                await self._insert_checked(batch[half:])
                return
            self.metrics.rejected.inc()
            log.error(
                "frame refused by the database (%s); stored in a bounded form instead",
                first_line(exc),
            )
            try:
                await self._insert([bounded(batch[0], first_line(exc))])
            except psycopg.OperationalError:
                raise
            except psycopg.Error as again:
                raise DatabaseRefuses() from again

    def _refusing(self, exc: BaseException | None) -> None:
        """The database refuses writes: say why (at most every 30 s), report unhealthy, back off."""
        sqlstate = getattr(exc, "sqlstate", None) or ""
        problem = f"{first_line(exc) if exc else 'refused'} [{sqlstate}]: {advice(sqlstate)}"
        self.metrics.db_problem = problem
        if time.monotonic() - self._refusal_logged >= REFUSAL_LOG_EVERY:
            self._refusal_logged = time.monotonic()
            log.error(
                "the database refuses writes: %s; %d frame(s) kept in the spool %s",
                problem,
                self.spool.depth,
                self.spool.path,
            )
        self._retry_delay = min(self._retry_delay * 2, 5.0) * random.uniform(0.8, 1.2)
        self._next_try = time.monotonic() + self._retry_delay

    def _accepting(self) -> None:
        if self.metrics.db_problem is not None:
            log.info("the database takes writes again")
            self.metrics.db_problem = None
            self._refusal_logged = 0.0
        self._unavailable_logged = 0.0

    async def _insert(self, batch: list[Frame]) -> None:
        """One INSERT; a conflict with another session is written again at once, a few times."""
        started = time.perf_counter()
        for attempt in range(CONFLICT_RETRIES + 1):
            try:
                await asyncio.wait_for(self._insert_now(batch), self.db_timeout)
                break
            except TimeoutError:
                raise psycopg.OperationalError(
                    f"the database did not answer within {self.db_timeout:g}s"
                ) from None
            except psycopg.OperationalError as exc:  # psycopg's class for these SQLSTATEs
                if not is_conflict(exc) or attempt == CONFLICT_RETRIES:
                    raise
                log.warning(
                    "a write conflicted with another session (%s [%s]); writing it again",
                    first_line(exc),
                    exc.sqlstate,
                )
                await asyncio.sleep(random.uniform(0.02, 0.08))
        self.metrics.batch_seconds.observe(time.perf_counter() - started)
        self.metrics.stored.inc(len(batch))
        self.recent.remember(batch)

    async def _replay(self, conn: psycopg.AsyncConnection) -> None:
        """On a new connection (a restart, or a failover to another server), write the replay
        window again, oldest first, before anything newer."""
        frames = self.recent.frames()
        for chunk in chunks(frames, self.max_batch):
            await conn.execute(query("insert_raw_events"), batch_params(chunk))
        if frames:
            self.metrics.replayed.inc(len(frames))
            log.info(
                "reconnected: wrote again the %d frame(s) of the last %gs (a server that has "
                "them skips them; one that lost them in a failover gets them)",
                len(frames),
                self.recent.seconds,
            )

    async def _insert_now(self, batch: list[Frame]) -> None:
        conn = await self._connection()
        await conn.execute(
            query("insert_raw_events"), batch_params(batch)
        )  # autocommit: one transaction

    async def _recover(self) -> bool:
        """Drain the spool, then what the full disk left in memory, in order; True when both
        are empty and the database takes writes."""
        self._unhold()
        if not self._backlog():
            return True
        if time.monotonic() < self._next_try:
            return False  # not yet: meanwhile new frames go straight to the spool, in order
        try:
            frames = self.spool.read()
            for chunk in chunks(frames, self.max_batch):
                await self._insert_checked(chunk)
            if self._held:  # the disk is still full, the database is back: straight in
                held = list(self._held)
                for chunk in chunks(held, self.max_batch):
                    await self._insert_checked(chunk)
                self._release(held)
                self.metrics.spool_problem = None
                log.info(
                    "%d frame(s) kept in memory while the disk was full are written", len(held)
                )
        except DatabaseRefuses as exc:
            self._refusing(exc.__cause__)
            return False
        except psycopg.OperationalError as exc:
            await self._drop_connection()
            self._retry_delay = min(self._retry_delay * 2, 5.0) * random.uniform(0.8, 1.2)
            self._next_try = time.monotonic() + self._retry_delay
            # Said at least every 30 s: with frames waiting from an earlier run, this is the
            # only place a wrong password or port shows up.
            if time.monotonic() - self._unavailable_logged >= REFUSAL_LOG_EVERY:
                self._unavailable_logged = time.monotonic()
                log.warning(
                    "database unavailable (%s); %d frame(s) wait in the spool %s",
                    first_line(exc),
                    self.spool.depth,
                    self.spool.path,
                )
            return False
        self._accepting()
        log.info("spool drained: %d frame(s) written in order", len(frames))
        self.spool.clear()
        self.metrics.spool_depth.set(0)
        self._retry_delay = 0.2
        self._next_try = 0.0
        return True

    def _backlog(self) -> int:
        """Frames waiting for the database: in the spool, or in memory while its disk is full."""
        return self.spool.depth + len(self._held)

    def _to_spool(self, batch: list[Frame]) -> None:
        """Keep frames on disk; when the disk refuses (full), in memory, after those already
        there, counted against the queue's bound so the PBX is read no faster than they can
        be kept (TCP pushes back)."""
        if not self._held:
            try:
                self.spool.append(batch)
            except OSError as exc:
                self._spool_refuses(exc)
            else:
                self.metrics.spooled.inc(len(batch))
                self.metrics.spool_depth.set(self.spool.depth)
                return
        self._held.extend(batch)
        self._queued_bytes += sum(len(f.body) for f in batch)
        if self._queued_bytes >= MAX_QUEUED_BYTES:
            self._room.clear()

    def _spool_refuses(self, exc: OSError) -> None:
        self.metrics.spool_problem = f"{exc.strerror or exc} ({self.spool.path})"
        if time.monotonic() - self._spool_problem_logged >= REFUSAL_LOG_EVERY:
            self._spool_problem_logged = time.monotonic()
            log.error(
                "the spool cannot be written: %s; %d frame(s) wait in memory (reading from the "
                "PBX slows down past %d MiB); free space, or bring the database back",
                self.metrics.spool_problem,
                len(self._held),
                MAX_QUEUED_BYTES // 2**20,
            )

    def _unhold(self) -> None:
        """Space again: the frames waiting in memory go to the spool, after what is there."""
        if not self._held:
            return
        held = list(self._held)
        try:
            self.spool.append(held)
        except OSError as exc:
            self._spool_refuses(exc)
            return
        self._release(held)
        self.metrics.spooled.inc(len(held))
        self.metrics.spool_depth.set(self.spool.depth)
        self.metrics.spool_problem = None
        log.info("the spool is written again: %d frame(s) moved there from memory", len(held))

    def _release(self, held: list[Frame]) -> None:
        for _ in held:
            self._held.popleft()
        self._queued_bytes -= sum(len(f.body) for f in held)
        if self._queued_bytes < MAX_QUEUED_BYTES:
            self._room.set()

    async def _connection(self) -> psycopg.AsyncConnection:
        if self._conn is None or self._conn.closed:
            self._conn = await psycopg.AsyncConnection.connect(
                self.dsn, connect_timeout=max(2, int(self.db_timeout)), autocommit=True
            )
            self._conn.add_notice_handler(self._on_notice)
            if self._connected_before:
                await self._replay(self._conn)
            self._connected_before = True
            self.metrics.db_connected.set(1)
        return self._conn

    def _on_notice(self, diag: psycopg.errors.Diagnostic) -> None:
        """The database's warnings reach the ingester's log (doorbells skipped: counted too)."""
        if diag.sqlstate == "CTID1":
            self.metrics.doorbells_skipped.inc(int(diag.message_detail or 0))
        if diag.severity_nonlocalized == "WARNING":
            log.warning("database: %s", diag.message_primary)

    async def _drop_connection(self) -> None:
        self.metrics.db_connected.set(0)
        if self._conn is not None:
            self.metrics.reconnects.labels("database").inc()
            try:
                await self._conn.close()
            except Exception:  # the connection is already broken; nothing more to release
                log.debug("closing a broken connection failed", exc_info=True)
        self._conn = None


def bounded(frame: Frame, reason: str) -> Frame:
    """What is stored for a frame the database refused for its content."""
    raw = frame.body.encode("utf-8", "surrogatepass")
    body = bounded_body(
        f"the database refused this frame ({reason})",
        len(raw),
        hashlib.sha256(raw).hexdigest(),
        frame.body,
    )
    return Frame(frame.source, frame.received_at, body)


def chunks(frames: list[Frame], max_frames: int) -> Iterator[list[Frame]]:
    """Batches in order, capped by count and by MAX_BATCH_BYTES (one frame always goes)."""
    batch: list[Frame] = []
    size = 0
    for frame in frames:
        if batch and (len(batch) >= max_frames or size + len(frame.body) > MAX_BATCH_BYTES):
            yield batch
            batch, size = [], 0
        batch.append(frame)
        size += len(frame.body)
    if batch:
        yield batch


def batch_params(batch: list[Frame]) -> dict[str, list]:
    return {
        "sources": [f.source for f in batch],
        "received": [f.received_at for f in batch],
        "bodies": [f.body for f in batch],
    }
