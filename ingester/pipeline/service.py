"""`pgcti ingest`: the PBX transport feeding the writer, metrics, and a clean stop on SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import logging
import signal
from datetime import UTC, datetime

from ingester import database
from ingester.frame import Frame
from ingester.pipeline.config import ConfigError, IngestConfig
from ingester.pipeline.dial_ledger import DialLedger
from ingester.pipeline.dialer import (
    AmiPlacer,
    Dialer,
    Onlinepbx2SocketPlacer,
    OnlinepbxPlacer,
    Placer,
)
from ingester.pipeline.journal import Journal
from ingester.pipeline.metrics import Metrics, serve
from ingester.pipeline.spool import Spool
from ingester.pipeline.transports import command_link, receive
from ingester.pipeline.transports.asterisk_ami import AmiLink
from ingester.pipeline.transports.onlinepbx2 import Onlinepbx2Link
from ingester.pipeline.transports.onlinepbx_http import OnlinepbxApi
from ingester.pipeline.writer import Writer

log = logging.getLogger("pgcti.ingest")
STOP_FLUSH_SECONDS = 4.0
M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter (malloc.h)


def _big_blocks_back_to_the_os() -> None:
    """glibc raises its mmap threshold each time a big block is freed (up to 32 MiB), after
    which big frames land in the heap, which does not shrink. Pinned at 1 MiB, every big
    frame gets a mapping of its own, returned to the system when freed (measured under a
    flood of 10 MB frames: about 30 MB less at the peak). Elsewhere than glibc: nothing."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").mallopt(M_MMAP_THRESHOLD, 2**20)


async def run(config: IngestConfig) -> int:
    _big_blocks_back_to_the_os()
    metrics = Metrics()
    try:
        spool = Spool(config.spool_dir)
        journal = Journal(config.spool_dir / "journal", sync=config.sync)
    except OSError as exc:
        raise ConfigError(
            f"cannot use the spool directory {config.spool_dir}: {exc.strerror}; give --spool-dir "
            "a directory the service's user owns (under systemd: StateDirectory=)"
        ) from None
    try:
        stop_metrics = (
            serve(metrics, config.metrics_port) if config.metrics_port is not None else None
        )
    except OSError as exc:
        raise ConfigError(
            f"cannot serve metrics on 127.0.0.1:{config.metrics_port}: {exc.strerror}; "
            "choose another --metrics-port"
        ) from None
    dsn = database.resolve_dsn(config.dsn)  # the embedded server only with --embedded
    log.info("writing to the database %s; spool %s", database.redact(dsn), config.spool_dir)
    left = journal.left_over()
    if left:
        spool.append(left)  # fsync'd before the journal lets them go
        log.warning(
            "%d frame(s) received by an earlier run that stopped before writing them; spooled",
            len(left),
        )
    journal.discard_left_over()
    if spool.depth:
        log.info(
            "%d frame(s) waiting in the spool from an earlier run; writing them first", spool.depth
        )
    writer = Writer(
        dsn, spool, metrics, config.max_batch, config.db_timeout, journal, config.replay_window
    )
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)

    link = command_link(config)
    dial_task = _dialer(config, dsn, writer, link)
    writer_task = asyncio.create_task(writer.run(), name="writer")
    pbx_task = asyncio.create_task(receive(config, writer.deliver, metrics, link), name="pbx")
    tick_task = asyncio.create_task(_ticks(writer, config.tick_seconds), name="tick")
    stop_task = asyncio.create_task(stopping.wait(), name="stop")
    done, _ = await asyncio.wait(
        {writer_task, pbx_task, stop_task}, return_when=asyncio.FIRST_COMPLETED
    )

    status = 0
    if pbx_task in done and pbx_task.exception() is not None:
        log.error("%s", pbx_task.exception())
        status = 2
    log.info("stopping: no more frames are read; writing %d queued frame(s)", writer.queue.qsize())
    for task in (pbx_task, stop_task, tick_task, *([dial_task] if dial_task else [])):
        task.cancel()  # no new dial request is taken: those not taken expire or wait
    await asyncio.wait({pbx_task, stop_task}, timeout=1.5)  # the goodbye to the PBX is bounded
    writer.stop()
    try:
        await asyncio.wait_for(asyncio.shield(writer_task), STOP_FLUSH_SECONDS)
    except TimeoutError:
        kept = writer.spool_unwritten()
        log.error(
            "the database did not take the last frames within %.0fs; %d frame(s) kept in the spool",
            STOP_FLUSH_SECONDS,
            kept,
        )
        writer_task.cancel()
    journal.close()
    if stop_metrics:
        stop_metrics()
    log.info(
        "stopped: %d received, %d stored, %d spooled",
        metrics.received._value.get(),
        metrics.stored._value.get(),
        metrics.spooled._value.get(),
    )
    return status


def _dialer(
    config: IngestConfig, dsn: str, writer: Writer, link: AmiLink | Onlinepbx2Link | None
) -> asyncio.Task | None:
    """Click-to-call (--dial): dial requests from the database to the PBX (pipeline/dialer.py)."""
    if not config.dial:
        return None
    try:
        ledger = DialLedger(config.spool_dir / "dial-ledger")
    except OSError as exc:
        raise ConfigError(
            f"cannot keep the dial ledger in {config.spool_dir}: {exc.strerror}"
        ) from None
    placer: Placer
    if isinstance(link, AmiLink):
        placer = AmiPlacer(link, config.dial_plan)
    elif isinstance(link, Onlinepbx2Link):
        placer = Onlinepbx2SocketPlacer(link, config.dial_plan)
    else:
        placer = OnlinepbxPlacer(OnlinepbxApi(config.api_url or "", config.key), config.dial_plan)
    dialer = Dialer(dsn, placer, ledger, lambda frame: writer.submit(frame, from_pbx=False))
    return asyncio.create_task(dialer.run(), name="dial")


async def _ticks(writer: Writer, every: float) -> None:
    """Housekeeping: a `pgcti` tick through the raw log lets the database end calls whose
    end was lost (cti.end_stale_calls), without the ingester's role needing any other right."""
    if every <= 0:
        return
    while True:
        await asyncio.sleep(every)
        now = datetime.now(UTC)
        writer.submit(
            Frame("pgcti", now, json.dumps({"event": "tick", "at": now.isoformat()})),
            from_pbx=False,
        )
