"""Orchestrates the demo: database, demo CRM, simulator, the real `pgcti ingest` process, a board."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import os
import secrets
import signal
import sys
import time
from datetime import date

import psycopg
from rich.console import Console
from rich.live import Live

from ingester import database, embedded
from ingester.clients import gateway_process, report
from ingester.demo import callbacks, crm_card, history, seed
from ingester.demo.board import Board, percentile
from ingester.install import migrations
from ingester.queries import composed, query
from ingester.simulator.onlinepbx_http import OnlinepbxHttpApi
from ingester.simulator.run import crm_numbers_and_extensions, make_server
from ingester.simulator.server import play
from ingester.simulator.traffic import Traffic, call_keys


class DemoError(Exception):
    pass


async def run(
    duration: float,
    rate: float,
    seed_value: int,
    dsn_flag: str | None,
    console: Console,
    pbx: str = "onlinepbx3",
    web: bool = False,
    history_days: int = 30,
) -> int:
    say = console.print
    if not (dsn_flag or os.environ.get("PGCTI_DSN")):
        say(f"[bold]1/5[/bold] starting the embedded PostgreSQL (data in {embedded.pgdata()})")
    dsn = database.resolve_dsn(dsn_flag)
    outcome = migrations.apply(dsn, reference_crm=True)
    changed = len(outcome.migrations) + len(outcome.logic.applied)
    say(
        f"[bold]2/5[/bold] database {database.redact(dsn)}: "
        + (
            f"applied {len(outcome.migrations)} migration(s) and "
            f"{len(outcome.logic.applied)} logic file(s)"
            if changed
            else "migrations and logic up to date"
        )
    )
    with psycopg.connect(dsn, autocommit=True) as conn:
        seeded = seed.seed(conn)
        seed.ensure_logins(conn)
        targets = conn.execute(query("demo_targets")).fetchall()
        workstations = {id_: name for kind, id_, name, _, _ in targets if kind == "ws"}
        employees = {id_: name for kind, id_, name, _, _ in targets if kind == "emp"}
        recipients = [id_ for kind, id_, _, _, rings in targets if rings]
        channels = {channel: (kind, id_) for kind, id_, _, channel, _ in targets}
        baseline = conn.execute(query("demo_high_water")).fetchone()
        clients = conn.execute(query("demo_client_count")).fetchone()[0]
    say(
        f"[bold]3/5[/bold] demo CRM {'created' if seeded else 'reused'}: {clients} clients, "
        f"{len(workstations)} workstations, {len(recipients)} employees get ring notifications; "
        "a missed call becomes a callback task for the client's manager (a new number's, for "
        f"{seed.LINE_OWNER_SURNAME}, who owns the line)"
    )
    if seeded and history_days > 0:  # calls, callbacks and deals behind it, for `pgcti report`
        say(
            f"      playing {history_days} days of past calls through the database "
            f"(about {max(1, round(history_days / 2))} s)..."
        )
        numbers, extensions = crm_numbers_and_extensions(dsn)
        with psycopg.connect(dsn, autocommit=True) as conn:
            past = history.seed_history(conn, numbers, extensions, days=history_days)
            conn.execute(query("demo_history_handled"))
            conn.execute(query("demo_after_history"))
            baseline = conn.execute(query("demo_high_water")).fetchone()  # live calls from here
        say(f"      {past} past calls stored, with their callbacks and deals")

    key = secrets.token_urlsafe(24)
    server = make_server(pbx, key)
    await server.start()
    api = None  # onlinePBX places click-to-call through its HTTP API: the simulator's too
    if pbx != "asterisk":
        api = OnlinepbxHttpApi(server, key, getattr(server, "domain", "demo.onpbx.ru"))
        await api.start()
    log_path = embedded.home() / "demo-ingest.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    ingester = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "ingester.cli",
        "ingest",
        "--dsn",
        database.with_user(dsn, seed.INGESTER_LOGIN),
        "--url",
        server.url,
        "--spool-dir",
        str(embedded.home() / "demo-spool"),
        "--pbx",
        pbx,
        "--dial",
        *(["--domain", server.domain] if pbx == "onlinepbx2" else []),
        env={**os.environ, "PGCTI_PBX_KEY": key, **({"PGCTI_PBX_API_URL": api.url} if api else {})},
        stdout=log_path.open("ab"),
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        await asyncio.wait_for(server.subscribed.wait(), 20)
    except TimeoutError:
        ingester.kill()
        raise DemoError(f"the ingester did not subscribe within 20 s; see {log_path}") from None
    say(
        f"[bold]4/5[/bold] simulator on {server.url}; `pgcti ingest` (pid {ingester.pid}) subscribed, "
        f"log in {log_path}"
    )
    cards = crm_card.card_server(dsn) if web else None
    gateway = await _start_gateway(dsn, workstations, cards, say) if cards else None
    say(
        f"[bold]5/5[/bold] playing {rate:g} calls/s for {duration:g}s, seed {seed_value} (Ctrl-C stops early)\n"
    )

    numbers, extensions = crm_numbers_and_extensions(dsn)
    traffic = Traffic(seed_value, numbers, extensions, protocol=pbx)
    board = Board(workstations, employees)
    sent_at: dict[str, list[float]] = collections.defaultdict(list)  # pbx call id -> send times
    sent_log: list[tuple[float, dict]] = []
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGINT, stopping.set)
    loop.add_signal_handler(signal.SIGTERM, stopping.set)
    plain = not console.is_terminal

    class SentLog(list):
        def append(self, item: tuple[float, dict | str]) -> None:
            at, frame = item
            for key in call_keys(frame):
                sent_at[key].append(at)
            super().append(item)

    sent_log = SentLog()
    schedule = traffic.schedule(time.time() + 0.2, rate, None)
    player = asyncio.create_task(play(server, schedule, sent_log))
    listener = asyncio.create_task(_listen(dsn, channels, board, sent_at, plain, console))
    poller = asyncio.create_task(_poll_calls(dsn, board))

    def dialled(line: str) -> None:
        board.callbacks.appendleft(line[13:])
        board.counts["dial"] += line.endswith("from the CRM: requested")
        if plain:
            console.print(line, highlight=False)

    dialler = asyncio.create_task(callbacks.call_back(dsn, dialled))

    async def wait_duration() -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), duration)

    if plain:
        await wait_duration()
    else:
        # The board renders itself at the terminal's size on each refresh, here in the event
        # loop (not Live's own thread) because the loop's tasks change what it shows.
        with Live(board, console=console, auto_refresh=False, transient=False) as live:

            async def refresh() -> None:
                while True:
                    live.refresh()
                    await asyncio.sleep(0.25)

            refresher = asyncio.create_task(refresh())
            await wait_duration()
            refresher.cancel()

    # Stop new calls and callbacks; let the ones under way finish (bounded), then stop the
    # ingester like systemd would: a frame the simulator sends after that reaches nobody.
    traffic.accepting = False
    dialler.cancel()
    try:
        await asyncio.wait_for(player, 15)
    except TimeoutError:
        player.cancel()
    await _calls_ended(dsn, baseline[1], 15)
    await asyncio.sleep(1.0)
    ingester.send_signal(signal.SIGTERM)
    try:
        ingester_status = await asyncio.wait_for(ingester.wait(), 10)
    except TimeoutError:
        ingester.kill()
        ingester_status = -9
    for task in (listener, poller, dialler):
        if task.done() and not task.cancelled() and task.exception() is not None:
            raise DemoError(f"the board stopped: {task.exception()!r}")
        task.cancel()
    await server.stop()
    if api is not None:
        await api.stop()
    if cards is not None:
        await cards.stop()
    if gateway is not None:
        gateway.terminate()
        await gateway.wait()
    return _summary(dsn, baseline, server.sent, board, ingester_status, log_path, console)


async def _listen(
    dsn: str,
    channels: dict[str, tuple[str, int]],
    board: Board,
    sent_at: dict[str, list[float]],
    plain: bool,
    console: Console,
) -> None:
    """Observe every doorbell (as a DBA may): measure frame -> doorbell latency, update the board."""
    # Two connections: the notifies() generator holds its connection while it waits.
    async with (
        await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn,
        await psycopg.AsyncConnection.connect(dsn, autocommit=True) as reader,
    ):
        for channel in channels:
            await conn.execute(composed("listen", channel))
        # Each doorbell is timed as it arrives, by a task of its own: the queries that show
        # it come after, and a burst (a ring to everyone, then the card) would otherwise be
        # timed after the queries for the doorbells before it.
        arrivals: asyncio.Queue = asyncio.Queue()

        async def stamp() -> None:
            try:
                async for note in conn.notifies():
                    arrivals.put_nowait((time.time(), note))
            except Exception as exc:  # a lost connection ends the observer, as before
                arrivals.put_nowait((0.0, exc))

        stamper = asyncio.create_task(stamp())
        try:
            await _show(reader, channels, board, sent_at, plain, console, arrivals)
        finally:
            stamper.cancel()


async def _show(
    reader: psycopg.AsyncConnection,
    channels: dict[str, tuple[str, int]],
    board: Board,
    sent_at: dict[str, list[float]],
    plain: bool,
    console: Console,
    arrivals: asyncio.Queue,
) -> None:
    """Each doorbell in turn: its latency, its item read back, the board updated. In plain
    output a call's rings are one line (they come one per employee, back to back)."""
    rings: tuple[int, list[int], dict] | None = None  # call, employees, payload: not printed yet

    def flush() -> None:
        nonlocal rings
        if rings is not None and plain:
            console.print(board.ring_line(rings[1], rings[2]), highlight=False)
        rings = None

    try:
        while True:
            if arrivals.empty():
                flush()
            arrived, note = await arrivals.get()
            if isinstance(note, Exception):
                raise note
            bell = json.loads(note.payload)
            kind, target = channels[note.channel]
            keys = (
                await (await reader.execute(query("demo_call_keys"), [bell["call_id"]])).fetchone()
            ) or ("", [])
            sends = [
                t
                for key in [keys[0], *(keys[1] or [])]
                for t in sent_at.get(key or "", [])
                if t <= arrived
            ]
            if sends:  # the frame of this call sent last before the bell caused it
                board.latencies_ms.append((arrived - max(sends)) * 1000)
            payload = await (
                await reader.execute(query("demo_item"), [kind, target, bell["seq"]])
            ).fetchone()
            item = payload[0] if payload else {}
            line = board.apply(kind, target, bell["type"], item)
            if bell["type"] == "ring":
                if rings is not None and rings[0] != bell["call_id"]:
                    flush()
                rings = rings or (bell["call_id"], [], item)
                rings[1].append(target)
            elif plain:
                flush()
                console.print(line, highlight=False)
    finally:  # the demo's end cancels this: the last rings still get their line
        flush()


async def _calls_ended(dsn: str, after_call: int, within: float) -> None:
    """Wait (bounded) until the callbacks asked for are placed or settled and every call of
    this run has ended: the ingester is stopped only once the simulator has nothing left."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        while loop.time() < deadline:
            cur = await conn.execute(query("demo_still_under_way"), [after_call])
            if (await cur.fetchone())[0] == 0:
                return
            await asyncio.sleep(0.25)


async def _poll_calls(dsn: str, board: Board) -> None:
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        while True:
            cur = await conn.execute(query("demo_live_calls"))
            board.calls = await cur.fetchall()
            await asyncio.sleep(0.5)


async def _start_gateway(
    dsn: str, workstations: dict[int, str], cards: crm_card.CardServer, say
) -> asyncio.subprocess.Process:
    """`pgcti gateway` with the demo's gateway login, and a page per desk whose cards link
    to the demo CRM's own client card."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        tokens = seed.desk_tokens(conn)
        wallboard = conn.execute(query("issue_wallboard_token")).fetchone()[0]
    card_url = await cards.start()
    log_path = embedded.home() / "demo-gateway.log"
    gateway, port = await gateway_process.start(
        database.with_user(dsn, seed.GATEWAY_LOGIN), log_path.open("ab"), "--card-url", card_url
    )
    say(
        f"      `pgcti gateway` (pid {gateway.pid}, log in {log_path}); each desk's web screen pop:"
    )
    for ws_id, name in sorted(workstations.items()):
        if ws_id in tokens:
            say(f"      {name}: http://127.0.0.1:{port}/#token={tokens[ws_id]}")
    say(f"      the supervisor's wallboard: http://127.0.0.1:{port}/wallboard#token={wallboard}")
    say("      (more tokens: `pgcti token issue --embedded --desk LOGIN | --wallboard`)")
    say(
        f"      a card's \"Open in the CRM\" opens the demo CRM's client page, {card_url}"
        " (a real CRM's: `pgcti gateway --card-url`)"
    )
    return gateway


def _summary(
    dsn: str,
    baseline: tuple[int, int],
    sent: int,
    board: Board,
    ingester_status: int | None,
    log_path,
    console: Console,
) -> int:
    with psycopg.connect(dsn) as conn:
        stored, failed, ignored = conn.execute(query("demo_frames_since"), [baseline[0]]).fetchone()
        outcomes = conn.execute(query("demo_outcomes_since"), [baseline[1]]).fetchall()
    lat = board.latencies_ms
    errors = failed + (0 if ingester_status == 0 else 1)
    console.print("\n[bold]Summary[/bold]")
    console.print(
        f"  frames: {sent} sent by the simulator, {stored} stored in cti.raw_event "
        f"({ignored} ignored: no call fact in them, {failed} failed)"
        + (
            f"; the {stored - sent} more: the PBX's reply when the ingester connected"
            if stored > sent
            else ""
        )
    )
    console.print(
        f"  calls: {sum(n for _, n in outcomes)} ("
        + ", ".join(f"{n} {o}" for o, n in outcomes)
        + ")"
    )
    console.print(
        f"  delivered: {board.counts['open_card']} pops (open_card), {board.counts['close_card']} "
        f"close_card, {board.counts['call_ended']} call_ended, {board.counts['ring']} ring notifications, "
        f"{board.counts['callback_task']} callback tasks"
    )
    if lat:
        console.print(
            f"  frame -> doorbell latency over {len(lat)} doorbells: p50 {percentile(lat, 50):.1f} ms, "
            f"p95 {percentile(lat, 95):.1f} ms, p99 {percentile(lat, 99):.1f} ms, max {max(lat):.1f} ms"
        )
    console.print(
        f"  errors: {errors}"
        + (
            ""
            if ingester_status == 0
            else f" (the ingester exited with {ingester_status}; see {log_path})"
        )
    )
    report_path = embedded.home() / "report.html"
    report.write(dsn, report.Period.default(date.today(), "UTC"), report_path)
    console.print(
        f"  report: {report_path.as_uri()} (calls, answer rate, response times, callbacks, "
        "each manager's figures, the funnel over the last 30 days; `pgcti report --embedded` "
        "writes it again)"
    )
    console.print(
        "\nNext: `.venv/bin/pgcti watch --embedded --extension 101` is a real CRM client: it "
        "catches up on what desk-101 (extension 101) was sent (docs/crm-clients.md explains "
        "the protocol); `.venv/bin/pgcti demo --web` serves each desk a web screen pop and the "
        "supervisor a wallboard too, and "
        "`--pbx asterisk` plays the same calls over Asterisk AMI (docs/asterisk.md)."
    )
    console.print(
        f"The embedded PostgreSQL server is still running (data in {embedded.pgdata()}), so "
        "that you can look at what the demo left; `.venv/bin/pgcti db stop` stops it."
    )
    return 0 if errors == 0 and board.counts["open_card"] > 0 else 1
