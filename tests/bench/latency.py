"""Frame -> doorbell latency with many workstation clients listening at once.

    python -m tests.bench.latency [--rates 100,1000,5000] [--listeners 200] [--seconds 10]
                                  [--pbx onlinepbx3|asterisk]

A server of its own (max_connections raised for the listeners), the onlinePBX 3.0
simulator (or the Asterisk AMI one), the real `pgcti ingest` process, and one LISTEN connection per
workstation. Latency: from the simulator sending a frame to the right workstation's
connection receiving the doorbell that frame caused (the latest frame of that call
sent before the doorbell), after 2 s of calls of their own through the just started
ingester (its first batch plans every statement: a start-up, not the steady state).
Reports p50/p95/p99/max and the rate actually reached, and
what the disk's fsync did meanwhile (tests/bench/disk_probe.py): its stalls over 50 ms,
and p99 over the doorbells whose frame -> doorbell span met none of them.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import dataclasses
import json
import os
import signal
import sys
import tempfile
import time

import psutil
import psycopg
from psycopg import sql

from ingester import embedded
from ingester.clients import gateway_process
from ingester.demo.board import percentile
from ingester.install import migrations
from ingester.queries import query
from ingester.simulator.run import make_server
from ingester.simulator.server import Onlinepbx3Server
from ingester.simulator.traffic import Traffic, call_keys
from tests.bench.disk_probe import DiskProbe
from tests.bench.workload import frames_for, insert_batches, log, seed_crm

FRAMES_PER_CALL = {"onlinepbx3": 8.7, "asterisk": 17.5}  # the scenario mix's average


async def listen_all(
    dsn: str,
    workstations: list[int],
    bells: list[tuple[float, str, int]],
    ready: asyncio.Event,
    fanout: bool = False,
):
    """One LISTEN connection per workstation, as desks do; or, with ``fanout``, a single
    connection listening on every workstation's channel, as a gateway would."""
    conns: list[psycopg.AsyncConnection] = []
    for ws in workstations:
        if not fanout or not conns:
            conns.append(await psycopg.AsyncConnection.connect(dsn, autocommit=True))
        conn = conns[-1]
        name = await (await conn.execute("SELECT cti.channel_name('ws', %s)", [ws])).fetchone()
        await conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(name[0])))
    ready.set()

    async def one(conn):
        async for note in conn.notifies():
            bells.append((time.time(), note.channel, json.loads(note.payload)["call_id"]))

    await asyncio.gather(*(one(c) for c in conns))


async def through_gateway(
    dsn: str,
    workstations: list[int],
    bells: list[tuple[float, str, int]],
    ready: asyncio.Event,
    gateway_port: int,
):
    """One browser-like WebSocket client per workstation, through `pgcti gateway` (which
    holds a single LISTEN connection): an item's arrival at the client is its doorbell."""
    import websockets

    with psycopg.connect(dsn, autocommit=True) as conn:
        tokens = []
        for ws in workstations:
            conn.execute(
                "INSERT INTO cti.client_login (login, workstation_id) VALUES (%s, %s)"
                " ON CONFLICT (login) DO NOTHING",
                [f"bench_ws_{ws}", ws],
            )
            tokens.append(
                conn.execute(
                    "SELECT cti.issue_gateway_token_v1(%s)", [f"bench_ws_{ws}"]
                ).fetchone()[0]
            )
    sockets = []
    for token in tokens:
        ws = await websockets.connect(f"ws://127.0.0.1:{gateway_port}/ws", max_queue=None)
        await ws.send(json.dumps({"token": token}))
        await ws.recv()  # hello
        sockets.append(ws)
    last_item = [time.monotonic()]

    async def one(ws):
        async for message in ws:
            item = json.loads(message)
            if item.get("type") == "item":
                last_item[0] = time.monotonic()
                if ready.is_set():
                    bells.append((time.time(), "gateway", item["call_id"]))
                await ws.send(json.dumps({"ack": {"stream": item["stream"], "seq": item["seq"]}}))

    readers = [asyncio.create_task(one(ws)) for ws in sockets]
    # Catch-up first: the warm-up's and earlier runs' items arrive on connect; they are not
    # this run's traffic, and measuring them would measure the backlog.
    while time.monotonic() - last_item[0] < 1.5:
        await asyncio.sleep(0.2)
    ready.set()
    try:
        await asyncio.gather(*readers)
    finally:
        for ws in sockets:
            await ws.close()


async def play(
    server: Onlinepbx3Server,
    traffic: Traffic,
    start: float,
    calls_per_second: float,
    seconds: float,
    sent_at: dict[str, list[float]],
) -> int:
    """Send the calls of ``seconds`` at their times, noting when each call's frames went;
    returns how many frames were sent."""
    sent = 0
    for due, frame in traffic.schedule(start, calls_per_second, int(calls_per_second * seconds)):
        await asyncio.sleep(max(0.0, due - time.time()))
        await server.send(frame)
        keys = call_keys(frame)  # 3.0: the call_uuid first; AMI: the Linkedid
        if keys:
            sent_at.setdefault(keys[0], []).append(time.time())
        sent += 1
    return sent


async def run_rate(
    dsn: str,
    server: Onlinepbx3Server,
    rate_events: float,
    seconds: float,
    workstations: list[int],
    seed: int,
    mode: str = "each",
    gateway_port: int = 0,
    pbx: str = "onlinepbx3",
    probe_dir: str | None = None,
    warm_up_s: float = 2.0,
) -> dict:
    calls_per_second = rate_events / FRAMES_PER_CALL[pbx]
    traffic = Traffic(
        seed,
        [f"+79{n:09d}" for n in range(1, 2000)],
        [str(101 + i) for i in range(len(workstations))],
        scale=0.02,
        protocol=pbx,
    )
    sent_at: dict[str, list[float]] = {}
    bells: list[tuple[float, str, int]] = []
    ready = asyncio.Event()
    if mode == "gateway":
        listener = asyncio.create_task(
            through_gateway(dsn, workstations, bells, ready, gateway_port)
        )
    else:
        listener = asyncio.create_task(
            listen_all(dsn, workstations, bells, ready, mode == "fanout")
        )
    await ready.wait()
    # The ingester's first frames plan every statement of processing (20-35 ms for the first
    # batch): a start-up, not the steady state. Calls of their own, not measured.
    if warm_up_s > 0:
        warm_up = dataclasses.replace(traffic, seed=seed + 10_000)
        await play(server, warm_up, time.time(), calls_per_second, warm_up_s, {})
        await asyncio.sleep(1)
        bells.clear()
    server_cpu, commits = _server_cpu(), _commits(dsn)
    start = time.time() + 0.5
    with DiskProbe(probe_dir or tempfile.gettempdir()) as disk:
        sent = await play(server, traffic, start, calls_per_second, seconds, sent_at)
        elapsed = time.time() - start
        await asyncio.sleep(3)  # let the pipeline drain
    server_cpu, commits = _server_cpu() - server_cpu, _commits(dsn) - commits
    listener.cancel()
    with psycopg.connect(dsn) as conn:
        ids = dict(conn.execute("SELECT id, pbx_call_id FROM cti.call").fetchall())
    latencies = []
    clear_of_the_disk = []  # doorbells whose frame -> doorbell span met no stall of the disk
    for arrived, _channel, call_id in bells:
        times = sent_at.get(ids.get(call_id, ""), [])
        i = bisect.bisect_right(times, arrived) - 1
        if i >= 0:
            latencies.append((arrived - times[i]) * 1000)
            if not disk.overlaps_a_stall(times[i], arrived):
                clear_of_the_disk.append(latencies[-1])
    with psycopg.connect(dsn) as conn:  # each ingester commit that queued commands rang doorbells
        notifying = conn.execute(
            "SELECT count(DISTINCT xmin::text) FROM cti.outbox WHERE created_at >= to_timestamp(%s)",
            [start],
        ).fetchone()[0]
    return {
        "mode": mode,
        "listening_connections": len(workstations) if mode == "each" else 1,
        "notifying_commits": notifying,
        # A listening backend reads the NOTIFY queue in a transaction of its own each time it
        # is woken: the commits beyond the ingester's count those wake-ups.
        "listener_wakeups_per_notifying_commit": round(
            (commits - notifying) / max(notifying, 1), 1
        ),
        "target_events_per_s": rate_events,
        # All of the server's processes: the backends that write and the ones woken to listen.
        "server_cpu_s_per_10k_frames": round(server_cpu / max(sent, 1) * 10_000, 2),
        "server_cpu_ms_per_notifying_commit": round(server_cpu * 1000 / max(notifying, 1), 2),
        "sent": sent,
        "sent_events_per_s": round(sent / elapsed),
        "doorbells": len(latencies),
        "p50_ms": round(percentile(latencies, 50), 2),
        "p95_ms": round(percentile(latencies, 95), 2),
        "p99_ms": round(percentile(latencies, 99), 2),
        "max_ms": round(max(latencies), 2) if latencies else None,
        # What the disk did meanwhile (tests/bench/disk_probe.py): every commit waits on it.
        **disk.summary(),
        "doorbells_during_disk_stalls": len(latencies) - len(clear_of_the_disk),
        "p99_ms_clear_of_disk_stalls": round(percentile(clear_of_the_disk, 99), 2),
    }


def _commits(dsn: str) -> int:
    with psycopg.connect(dsn) as conn:
        return conn.execute(
            "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()"
        ).fetchone()[0]


def _server_cpu() -> float:
    """CPU seconds used so far by the server's processes (the postmaster's children)."""
    total = 0.0
    for proc in psutil.Process(embedded.status().pid).children():
        try:
            times = proc.cpu_times()
            total += times.user + times.system
        except psutil.NoSuchProcess:
            pass  # a backend that ended meanwhile
    return total


async def main_async(args) -> list[dict]:
    home = tempfile.mkdtemp(prefix="pgcti-latency-")
    os.environ["PGCTI_HOME"] = home
    server_dsn = embedded.start()
    with psycopg.connect(server_dsn, autocommit=True) as conn:
        conn.execute(f"ALTER SYSTEM SET max_connections = {args.listeners + 50}")
    embedded.stop()
    server_dsn = embedded.start()
    try:
        migrations.apply(server_dsn, reference_crm=True)
        with psycopg.connect(server_dsn, autocommit=True) as conn:
            seed_crm(conn, 2000)
            for ext in range(131, 101 + args.listeners):  # seed_crm made desks for 101..130
                conn.execute(
                    "INSERT INTO pgcti_refcrm.employee (surname, extension) VALUES (%s, %s)",
                    [f"E{ext}", str(ext)],
                )
                conn.execute(
                    "INSERT INTO pgcti_refcrm.workstation (name, extension) VALUES (%s, %s)",
                    [f"ws{ext}", str(ext)],
                )
            workstations = [
                r[0] for r in conn.execute("SELECT id FROM pgcti_refcrm.workstation ORDER BY id")
            ]
        # Steady state, as in the throughput benchmark: earlier calls in the tables and
        # statistics on them (a live system has both within a minute, through autovacuum).
        log(f"warm-up: {args.warm_up:,} frames through the pipeline, then ANALYZE")
        insert_batches(
            server_dsn, query("insert_raw_events"), frames_for(args.warm_up, 2000, 1), 500
        )
        with psycopg.connect(server_dsn, autocommit=True) as conn:
            conn.execute("ANALYZE")
        results = []
        runs = [(rate, mode) for mode in args.modes for rate in args.rates]
        for n, (rate, mode) in enumerate(runs):
            sim = make_server(args.pbx, "bench-key-123")
            await sim.start()
            ingest = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "ingester.cli",
                "ingest",
                "--dsn",
                server_dsn,
                "--url",
                sim.url,
                "--spool-dir",
                os.path.join(home, "spool"),
                "--log-level",
                "WARNING",
                "--pbx",
                args.pbx,
                env={**os.environ, "PGCTI_PBX_KEY": "bench-key-123"},
            )
            await asyncio.wait_for(sim.subscribed.wait(), 20)
            how = {
                "each": "a connection each",
                "fanout": "one fan-out connection",
                "gateway": "WebSocket clients through pgcti gateway",
            }[mode]
            gateway = None
            port = 0
            if mode == "gateway":
                gateway, port = await gateway_process.start(server_dsn, asyncio.subprocess.DEVNULL)
            log(f"latency at {rate:,.0f} events/s, {len(workstations)} workstations, {how}")
            result = await run_rate(
                server_dsn,
                sim,
                rate,
                args.seconds,
                workstations,
                seed=100 + n,
                mode=mode,
                gateway_port=port,
                pbx=args.pbx,
                probe_dir=home,
            )
            if gateway is not None:
                gw = psutil.Process(gateway.pid)
                gw_cpu = gw.cpu_times()
                result["gateway_rss_mb"] = round(gw.memory_info().rss / 2**20, 1)
                result["gateway_cpu_s_per_10k_frames"] = round(
                    (gw_cpu.user + gw_cpu.system) / max(result["sent"], 1) * 10_000, 2
                )
                gateway.terminate()
                await gateway.wait()
            proc = psutil.Process(ingest.pid)  # the ingester's own cost at this rate
            cpu = proc.cpu_times()
            result["ingester_rss_mb"] = round(proc.memory_info().rss / 2**20, 1)
            result["ingester_cpu_s_per_10k_frames"] = round(
                (cpu.user + cpu.system) / max(result["sent"], 1) * 10_000, 2
            )
            log(f"  {result}")
            results.append(result)
            ingest.send_signal(signal.SIGTERM)
            await ingest.wait()
            await sim.stop()
        return results
    finally:
        embedded.stop("immediate")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rates", default="100,1000,5000")
    parser.add_argument("--listeners", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--warm-up", type=int, default=10_000, help="frames before measuring")
    parser.add_argument(
        "--listen",
        default="each,fanout,gateway",
        help="each: a LISTEN connection per workstation; fanout: one connection on every "
        "channel; gateway: WebSocket clients through `pgcti gateway`; all by default",
    )
    parser.add_argument(
        "--pbx", choices=["onlinepbx3", "asterisk"], default="onlinepbx3", help="the PBX protocol"
    )
    parser.add_argument("--json", default="bench-latency.json")
    args = parser.parse_args()
    args.rates = [float(r) for r in args.rates.split(",")]
    args.modes = args.listen.split(",")
    results = asyncio.run(main_async(args))
    print(
        f"\n{'mode':>8}{'listeners':>10}{'events/s asked':>15}{'reached':>10}{'doorbells':>10}{'p50 ms':>9}"
        f"{'p95 ms':>9}{'p99 ms':>9}{'max ms':>10}{'server ms/commit':>17}{'wake-ups':>9}{'RSS MB':>8}{'CPU s/10k':>11}"
        f"{'disk fsync max ms':>18}{'disk stalls':>12}{'p99 clear of them':>18}"
    )
    for r in results:
        print(
            f"{r['mode']:>8}{r['listening_connections']:>10}{r['target_events_per_s']:>15,.0f}"
            f"{r['sent_events_per_s']:>10,}{r['doorbells']:>10}"
            f"{r['p50_ms']:>9}{r['p95_ms']:>9}{r['p99_ms']:>9}{r['max_ms']!s:>10}"
            f"{r['server_cpu_ms_per_notifying_commit']:>17}"
            f"{r['listener_wakeups_per_notifying_commit']:>9}"
            f"{r['ingester_rss_mb']:>8}{r['ingester_cpu_s_per_10k_frames']:>11}"
            f"{r['disk_fsync_max_ms']!s:>18}{r['disk_stalls']:>12}{r['p99_ms_clear_of_disk_stalls']:>18}"
            + (
                f"   gateway: RSS {r['gateway_rss_mb']} MB, CPU {r['gateway_cpu_s_per_10k_frames']} s/10k frames"
                if "gateway_rss_mb" in r
                else ""
            )
        )
    with open(args.json, "w") as out:
        json.dump(results, out, indent=2)


if __name__ == "__main__":
    main()
