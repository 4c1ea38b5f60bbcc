"""`pgcti simulate`: serve the PBX protocol and play traffic (or a recorded trace) to whoever subscribes."""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import time
from pathlib import Path

import psycopg

from ingester.queries import query
from ingester.simulator.ami_server import AmiServer
from ingester.simulator.onlinepbx2_server import Onlinepbx2Server
from ingester.simulator.server import Onlinepbx3Server, play
from ingester.simulator.traffic import Traffic

log = logging.getLogger("pgcti.simulator")
DEFAULT_EXTENSIONS = [str(n) for n in range(101, 111)]


AMI_USER = "pgcti"  # the manager.conf user the simulated Asterisk knows (its secret: the key)


def make_server(
    protocol: str, key: str, host: str = "127.0.0.1", port: int = 0, domain: str = "demo.onpbx.ru"
) -> Onlinepbx3Server | Onlinepbx2Server | AmiServer:
    if protocol == "onlinepbx2":
        return Onlinepbx2Server(key, domain, host, port)
    if protocol == "asterisk":
        return AmiServer(AMI_USER, key, host, port)
    return Onlinepbx3Server(key, host, port)


class NoCrmNumbers(Exception):
    """--numbers-from-crm found no number to call from; the message says where it looked."""


def crm_numbers_and_extensions(
    dsn: str | None, extensions: list[str] | None = None
) -> tuple[list[str], list[str]]:
    """Known numbers as the CRM stores them, and the extensions that answer.

    Numbers: the reference CRM's as typed (messy spellings), else every number of the
    phone directory (any CRM attached with cti.attach_phone_column). Extensions: given,
    else the reference CRM's employees', else 101-110."""
    if not dsn:
        return [], extensions or DEFAULT_EXTENSIONS
    with psycopg.connect(dsn) as conn:
        reference = conn.execute(query("reference_crm_installed")).fetchone()[0]
        if reference:
            numbers = [r[0] for r in conn.execute(query("crm_numbers"))]
            exts = [r[0] for r in conn.execute(query("crm_extensions"))]
        else:
            numbers = [r[0] for r in conn.execute(query("directory_numbers"))]
            exts = []
    if not numbers:
        raise NoCrmNumbers(
            "--numbers-from-crm found no numbers: neither the reference CRM nor the phone "
            "directory (cti.attach_phone_column, docs/adapters.md) holds any; drop the flag "
            "to call from random numbers"
        )
    chosen = extensions or exts or DEFAULT_EXTENSIONS
    log.info(
        "calling from %d CRM number(s) (%s); extensions %s",
        len(numbers),
        "reference CRM" if reference else "phone directory",
        ", ".join(chosen),
    )
    return numbers, chosen


def replay_schedule(path: Path, start: float):
    """A JSONL trace: one frame per line, or {"at": seconds_from_start, "frame": {...}}."""
    with path.open(encoding="utf-8") as trace:
        for number, line in enumerate(trace):
            if not line.strip():
                continue
            entry = json.loads(line)
            if isinstance(entry, dict) and "frame" in entry:
                yield start + float(entry.get("at", 0)), entry["frame"]
            else:
                yield start + number * 0.01, entry


async def simulate(
    key: str,
    host: str,
    port: int,
    seed: int,
    rate: float,
    calls: int | None,
    duration: float | None,
    scale: float,
    dsn: str | None,
    replay: Path | None,
    record: Path | None,
    drop_every: float | None,
    wait_for_subscriber: bool = True,
    protocol: str = "onlinepbx3",
    domain: str = "demo.onpbx.ru",
    extensions: list[str] | None = None,
) -> int:
    numbers, chosen_extensions = crm_numbers_and_extensions(dsn, extensions)
    server = make_server(protocol, key, host, port, domain)
    await server.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    # Announced once a signal stops it cleanly: from this line on, Ctrl-C is a clean stop.
    print(f"simulator: {protocol} on {server.url} (seed {seed})", flush=True)
    if duration:
        loop.call_later(duration, stop.set)
    if wait_for_subscriber:
        log.info("waiting for a client to subscribe")
        waiting = asyncio.create_task(server.subscribed.wait())
        stopping = asyncio.create_task(stop.wait())
        await asyncio.wait({waiting, stopping}, return_when=asyncio.FIRST_COMPLETED)
        waiting.cancel()
        stopping.cancel()
        if stop.is_set():  # SIGTERM, Ctrl-C or --duration before anyone came
            await server.stop()
            print("simulator: stopped before any client subscribed; sent 0 frames", flush=True)
            return 0

    async def dropper() -> None:
        while not stop.is_set():
            await asyncio.sleep(drop_every)
            log.info("dropping %d client connection(s) on purpose", await server.drop_clients())

    dropping = asyncio.create_task(dropper()) if drop_every else None
    start = time.time() + 0.2
    if replay:
        schedule = replay_schedule(replay, start)
    else:
        schedule = Traffic(
            seed, numbers, chosen_extensions, scale=scale, protocol=protocol
        ).schedule(start, rate, calls)
    sent_log: list[tuple[float, dict]] = []
    sent = await play(server, schedule, sent_log, stop)
    if record:
        with record.open("w", encoding="utf-8") as out:
            for at, frame in sent_log:
                out.write(
                    json.dumps({"at": round(at - start, 3), "frame": frame}, ensure_ascii=False)
                    + "\n"
                )
    if dropping:
        dropping.cancel()
    await asyncio.sleep(0.3)  # let the last frames leave the socket
    await server.stop()
    print(
        f"simulator: sent {sent} frames; refused {server.refused} connection(s) with a wrong key",
        flush=True,
    )
    return 0
