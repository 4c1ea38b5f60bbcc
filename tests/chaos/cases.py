"""`make chaos`: the long fault cases, each ending with counts (the quick ones run in `make test`).

    python -m tests.chaos.cases [--rate 1000] [--outage 12] [--offline 60] [--hold 30]
                          [--only outage,drops,kill,offline,stall,notify] [--pbx asterisk]

1. PostgreSQL stopped hard (immediate) for --outage seconds under steady traffic, then started.
2. The PBX connection dropped every 3 s: frames the PBX sent while nobody listened, reconnect times.
3. The ingester killed with SIGKILL mid-stream and restarted on the same spool.
4. A CRM client offline for --offline seconds: how long its catch-up takes on reconnect.
5. A CRM client acks and holds its transaction open for --hold seconds: how far ingestion lags.
6. A listener stuck in a transaction fills a small NOTIFY queue: doorbells skipped, frames stored.
7. A flood of 110 frames of 10 MB, then an ordinary call: the ingester's memory, and the call.
8-9. A primary with a streaming standby (synchronous, then asynchronous), the primary stopped
   hard under traffic and the standby promoted: tests/chaos/failover.py.
10. Optional (`--only patroni`): the same under Patroni with etcd: tests/chaos/patroni.py.
11. Optional (`--only dial`): --dials click-to-call requests while the ingester is killed and
   restarted and the database fails over: tests/chaos/dialing.py.
Each case runs real processes on a server of its own and prints what was sent, stored, duplicated, delivered.
`--pbx asterisk` runs the PBX-side cases (outage, drops, kill) over Asterisk AMI instead.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psycopg
from psycopg.conninfo import make_conninfo

from ingester import embedded
from ingester.demo.board import percentile
from ingester.simulator.traffic import Traffic
from tests.bench.workload import scratch_database
from tests.chaos.dialing import case_dialing
from tests.chaos.failover import case_failover
from tests.chaos.patroni import case_patroni
from tests.support.crm_fixture import seed_crm
from tests.support.live import KEY, IngestProcess, SimulatorThread, wait_for

PBX_CASES = ("outage", "drops", "kill")


def pbx_and_ingester(dsn: str, spool: Path, pbx: str) -> tuple[SimulatorThread, IngestProcess]:
    """The simulated PBX (--pbx) and `pgcti ingest` subscribed to it."""
    sim = SimulatorThread(protocol=pbx)
    ingest = IngestProcess(dsn, sim.url, spool, KEY, "--pbx", pbx)
    wait_for(lambda: sim.server.listeners() == 1)
    return sim, ingest


def q(dsn: str, query: str) -> int:
    with psycopg.connect(dsn) as conn:
        return conn.execute(query).fetchone()[0]


def counts(dsn: str) -> dict:
    return {
        "stored": q(dsn, "SELECT count(*) FROM cti.raw_event"),
        "duplicates": q(dsn, "SELECT count(*) - count(DISTINCT dedup_key) FROM cti.raw_event"),
        "failed": q(dsn, "SELECT count(*) FROM cti.event_outcome WHERE status = 'failed'"),
        "calls_unfinished": q(dsn, "SELECT count(*) FROM cti.call WHERE outcome IS NULL"),
        "open_card": q(dsn, "SELECT count(*) FROM cti.outbox WHERE type = 'open_card'"),
        "cards_closed": q(
            dsn, "SELECT count(*) FROM cti.outbox WHERE type IN ('close_card', 'call_ended')"
        ),
    }


class Feed:
    """Plays the scenario mix at `rate` frames/s in a thread; remembers what reached the ingester."""

    def __init__(self, sim: SimulatorThread, rate: float, seed: int) -> None:
        self.sim, self.rate = sim, rate
        self.traffic = Traffic(
            seed, [], [str(e) for e in range(101, 111)], scale=0.05, protocol=sim.protocol
        )
        self.sent = self.delivered = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        start = time.time()
        for due, frame in self.traffic.schedule(start, self.rate / 8.5, None):
            if self.stop.is_set():
                self.traffic.accepting = False
            delay = due - time.time()
            if delay > 0:
                time.sleep(delay)
            self.delivered += self.sim.send([frame])
            self.sent += 1

    def finish(self) -> None:
        self.stop.set()
        self.thread.join(60)


def fresh_database(server: str, name: str) -> str:
    """A scratch database (as the benchmarks make one) with the tests' small CRM."""
    dsn = scratch_database(server, name)
    with psycopg.connect(dsn, autocommit=True) as conn:
        seed_crm(conn)
    return dsn


def case_outage(server: str, tmp: Path, rate: float, outage: float, pbx: str) -> dict:
    dsn = fresh_database(server, "chaos_outage")
    sim, ingest = pbx_and_ingester(dsn, tmp / "outage", pbx)
    feed = Feed(sim, rate, 1)
    time.sleep(3)
    embedded.stop("immediate")
    time.sleep(outage)
    embedded.start()
    time.sleep(3)
    feed.finish()
    wait_for(
        lambda: q(dsn, "SELECT count(*) FROM cti.raw_event") >= feed.delivered + 1, timeout=120
    )
    ingest.stop()
    sim.close()
    return {
        "case": f"database stopped hard for {outage:g}s",
        "sent": feed.sent,
        "delivered": feed.delivered,
        **counts(dsn),
    }


def case_pbx_drops(server: str, tmp: Path, rate: float, pbx: str) -> dict:
    dsn = fresh_database(server, "chaos_drops")
    sim, ingest = pbx_and_ingester(dsn, tmp / "drops", pbx)
    feed = Feed(sim, rate, 2)
    gaps = []
    for _ in range(6):
        time.sleep(3)
        subscriptions = sim.server.subscriptions
        dropped_at = time.monotonic()
        sim.drop()
        wait_for(
            lambda n=subscriptions: sim.server.subscriptions > n and sim.server.listeners() == 1
        )
        gaps.append((time.monotonic() - dropped_at) * 1000)
    feed.finish()
    wait_for(lambda: q(dsn, "SELECT count(*) FROM cti.raw_event") >= feed.delivered + 1, timeout=60)
    ingest.stop()
    sim.close()
    return {
        "case": "PBX connection dropped every 3s (6 times)",
        "sent": feed.sent,
        "delivered": feed.delivered,
        "lost_at_the_pbx": feed.sent - feed.delivered,
        "reconnect_ms_p50": round(percentile(gaps, 50)),
        "reconnect_ms_max": round(max(gaps)),
        **counts(dsn),
    }


def case_sigkill(server: str, tmp: Path, rate: float, pbx: str) -> dict:
    dsn = fresh_database(server, "chaos_kill")
    sim, ingest = pbx_and_ingester(dsn, tmp / "kill", pbx)
    feed = Feed(sim, rate, 3)
    time.sleep(4)
    delivered_before = feed.delivered
    ingest.proc.kill()
    ingest.proc.wait()
    # Until the PBX notices the connection is gone, it goes on "delivering" into it: those
    # frames sit in socket buffers no process will read (the PBX has no acknowledgement).
    wait_for(lambda: sim.server.listeners() == 0, what="the PBX to notice the dead connection")
    delivered_into_the_dead_connection = feed.delivered - delivered_before
    ingest = IngestProcess(dsn, sim.url, tmp / "kill", KEY, "--pbx", pbx)
    wait_for(lambda: sim.server.listeners() == 1)
    time.sleep(4)
    feed.finish()
    time.sleep(2)
    ingest.stop()
    sim.close()
    result = counts(dsn)
    return {
        "case": "ingester killed with SIGKILL and restarted",
        "sent": feed.sent,
        "delivered": feed.delivered,
        "delivered_before_kill": delivered_before,
        "delivered_into_the_dead_connection": delivered_into_the_dead_connection,
        "lost": feed.delivered + 1 - result["stored"],
        **result,
    }


def desk_login(dsn: str, login: str) -> int:
    """A CRM client login bound to the desk of extension 101; returns the desk's id."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        ws = conn.execute(
            "SELECT id FROM pgcti_refcrm.workstation WHERE extension = '101'"
        ).fetchone()[0]
        conn.execute(f"DROP ROLE IF EXISTS {login}")
        conn.execute(f"CREATE ROLE {login} LOGIN IN ROLE cti_client")
        conn.execute(
            "INSERT INTO cti.client_login (login, workstation_id) VALUES (%s, %s)", [login, ws]
        )
    return ws


def case_offline_client(server: str, tmp: Path, rate: float, offline: float) -> dict:
    dsn = fresh_database(server, "chaos_offline")
    ws = desk_login(dsn, "pgcti_chaos_ws")
    sim = SimulatorThread()
    ingest = IngestProcess(dsn, sim.url, tmp / "offline")
    wait_for(lambda: sim.server.listeners() == 1)
    feed = Feed(sim, rate, 4)
    time.sleep(offline)
    feed.finish()
    time.sleep(2)
    ingest.stop()
    sim.close()
    missed = q(
        dsn, f"SELECT count(*) FROM cti.outbox WHERE target_kind = 'ws' AND target_id = {ws}"
    )
    started = time.monotonic()
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "ingester.cli",
            "watch",
            "--dsn",
            make_conninfo(dsn, user="pgcti_chaos_ws"),
            "--count",
            str(missed),
            "--duration",
            "30",
        ],
        capture_output=True,
        text=True,
    )
    took = time.monotonic() - started
    shown = [line for line in out.stdout.splitlines() if " #" in line]
    in_order = [int(line.split("#")[1].split()[0]) for line in shown] == list(range(1, missed + 1))
    return {
        "case": f"CRM client offline for {offline:g}s",
        "commands_missed": missed,
        "caught_up": len(shown),
        "in_order": in_order,
        "catch_up_seconds_incl_start": round(took, 2),
    }


def lag_while(dsn: str, seconds: float) -> float:
    """The most the raw log fell behind the clock (newest frame stored vs now), sampled."""
    worst, deadline = 0.0, time.monotonic() + seconds
    while time.monotonic() < deadline:
        lag = q(
            dsn,
            "SELECT coalesce(extract(epoch FROM clock_timestamp() - max(received_at)), 0)"
            " FROM cti.raw_event",
        )
        worst = max(worst, float(lag))
        time.sleep(0.2)
    return worst


def case_stalled_client(server: str, tmp: Path, rate: float, hold: float) -> dict:
    dsn = fresh_database(server, "chaos_stall")
    ws = desk_login(dsn, "pgcti_chaos_stall")
    sim = SimulatorThread()
    ingest = IngestProcess(dsn, sim.url, tmp / "stall")
    wait_for(lambda: sim.server.listeners() == 1)
    feed = Feed(sim, rate, 5)
    has_stream = f"SELECT count(*) FROM cti.stream WHERE target_kind = 'ws' AND target_id = {ws}"
    wait_for(lambda: q(dsn, has_stream), 30, "the desk's stream")
    lag_before = lag_while(dsn, 10)  # the same traffic with no client in the way
    client = psycopg.connect(make_conninfo(dsn, user="pgcti_chaos_stall"))  # no autocommit
    client.execute("SELECT cti.ack_commands_v1(0)")  # ... and the transaction stays open
    lag_held = lag_while(dsn, hold)
    client.close()
    feed.finish()
    wait_for(lambda: q(dsn, "SELECT count(*) FROM cti.raw_event") > feed.delivered, 120, "catch-up")
    ingest.stop()
    sim.close()
    return {
        "case": f"CRM client holding its ack open for {hold:g}s at {rate:g} frames/s",
        "sent": feed.sent,
        "delivered_to_the_ingester": feed.delivered,
        **counts(dsn),
        "raw_log_lag_max_seconds_before": round(lag_before, 2),
        "raw_log_lag_max_seconds_while_held": round(lag_held, 2),
    }


def case_full_notify_queue(server: str, tmp: Path, rate: float, seconds: float = 20) -> dict:
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute("ALTER SYSTEM SET max_notify_queue_pages = 64")  # 512 kB, the least
    embedded.stop()
    server = embedded.start()
    try:
        dsn = fresh_database(server, "chaos_notify")
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(
                "INSERT INTO pgcti_refcrm.employee (surname, receives_call_notifications)"
                " SELECT 'Listener ' || n, true FROM generate_series(1, 40) n"
            )
        stuck = psycopg.connect(dsn, autocommit=True)
        stuck.execute("LISTEN anything")
        stuck.execute("BEGIN")  # idle in transaction: reads no notification until it ends
        sim = SimulatorThread()
        ingest = IngestProcess(dsn, sim.url, tmp / "notify")
        wait_for(lambda: sim.server.listeners() == 1)
        feed = Feed(sim, rate, 6)
        time.sleep(seconds)
        feed.finish()
        time.sleep(2)
        usage = q(dsn, "SELECT pg_notification_queue_usage()")
        stuck.close()
        ingest.stop()
        sim.close()
        return {
            "case": f"NOTIFY queue of 512 kB held by a stuck listener, {seconds:g}s at {rate:g} frames/s",
            "sent": feed.sent,
            **counts(dsn),
            "commands": q(dsn, "SELECT count(*) FROM cti.outbox"),
            "doorbells_skipped": q(
                dsn, "SELECT coalesce(sum(doorbells), 0) FROM cti.doorbell_skip"
            ),
            "queue_usage_at_end": round(float(usage), 2),
            "spooled_by_the_ingester": "spooling" in ingest.log,
        }
    finally:
        with psycopg.connect(server, autocommit=True) as admin:
            admin.execute("ALTER SYSTEM RESET max_notify_queue_pages")
        embedded.stop()
        embedded.start()


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def case_flood(server: str, tmp: Path, frames: int = 110, mb: int = 10) -> dict:
    dsn = fresh_database(server, "chaos_flood")
    sim = SimulatorThread()
    ingest = IngestProcess(dsn, sim.url, tmp / "flood")
    wait_for(lambda: sim.server.listeners() == 1)
    peak = [rss_mb(ingest.proc.pid)]
    sampling = threading.Event()

    def sample() -> None:
        while not sampling.is_set():
            peak.append(rss_mb(ingest.proc.pid))
            time.sleep(0.1)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    pad = "x" * (mb * 2**20)
    started = time.monotonic()
    sent = sum(  # each one different: identical frames would be stored once (the dedup key)
        sim.send([f'{{"event": "channel_create", "data": {{"n": {n}, "pad": "{pad}"}}}}'])
        for n in range(frames)
    )
    call = Traffic(8, [], ["101"]).call(time.time())
    sim.send([frame for _, frame in call])
    wait_for(lambda: q(dsn, "SELECT count(*) FROM cti.raw_event") >= sent + len(call) + 1, 600)
    took = time.monotonic() - started
    sampling.set()
    sampler.join(5)
    ingest.stop()
    sim.close()
    return {
        "case": f"{frames} frames of {mb} MB, then an ordinary call",
        "big_frames_sent": sent,
        **counts(dsn),
        "call_frames_sent": len(call),
        "seconds_until_the_call_was_stored": round(took, 1),
        "ingester_rss_peak_mb": round(max(peak)),
        "ingester_rss_idle_mb": round(peak[0]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rate", type=float, default=1000, help="frames per second (default 1000)")
    parser.add_argument("--outage", type=float, default=12)
    parser.add_argument("--offline", type=float, default=60)
    parser.add_argument("--hold", type=float, default=30)
    parser.add_argument("--dials", type=int, default=1000, help="dial requests of the dial case")
    parser.add_argument(
        "--only",
        default="outage,drops,kill,offline,stall,notify,flood,failover,failover_async",
        help="cases to run (default: all nine)",
    )
    parser.add_argument(
        "--pbx",
        choices=["onlinepbx3", "onlinepbx2", "asterisk"],
        default="onlinepbx3",
        help=f"the PBX protocol of the PBX-side cases ({', '.join(PBX_CASES)})",
    )
    args = parser.parse_args()
    if args.pbx != "onlinepbx3" and "--only" not in sys.argv:
        args.only = ",".join(PBX_CASES)
    cases = {
        "outage": lambda: case_outage(server, tmp, args.rate, args.outage, args.pbx),
        "drops": lambda: case_pbx_drops(server, tmp, args.rate, args.pbx),
        "kill": lambda: case_sigkill(server, tmp, args.rate, args.pbx),
        "offline": lambda: case_offline_client(server, tmp, args.rate, args.offline),
        "stall": lambda: case_stalled_client(server, tmp, args.rate, args.hold),
        "notify": lambda: case_full_notify_queue(server, tmp, args.rate),
        "flood": lambda: case_flood(server, tmp),
        "failover": lambda: case_failover(tmp / "failover", args.rate, synchronous=True),
        "failover_async": lambda: case_failover(
            tmp / "failover_async", args.rate, synchronous=False
        ),
        # Optional (not in the default list): needs Debian's patroni and etcd-server.
        "patroni": lambda: case_patroni(tmp / "patroni", args.rate),
        "dial": lambda: case_dialing(tmp / "dial", args.dials),
    }
    unknown = set(args.only.split(",")) - set(cases)
    if unknown:
        parser.error(f"unknown case(s) {', '.join(sorted(unknown))}; known: {', '.join(cases)}")
    if args.pbx != "onlinepbx3" and set(args.only.split(",")) - set(PBX_CASES):
        parser.error(f"--pbx {args.pbx} runs only the PBX-side cases: {', '.join(PBX_CASES)}")
    tmp = Path(tempfile.mkdtemp(prefix="pgcti-chaos-"))
    os.environ["PGCTI_HOME"] = str(tmp / "home")
    server = embedded.start()
    try:
        for name in args.only.split(","):
            result = cases[name]()
            print(result.pop("case"))
            for key, value in result.items():
                print(f"  {key:<44} {value}")
            sys.stdout.flush()
    finally:
        embedded.stop("immediate")


if __name__ == "__main__":
    main()
