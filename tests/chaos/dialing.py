"""`make chaos CHAOS='--only dial'`: click-to-call under faults. Desks ask for COUNT calls
(cti.dial_v1, each to a number of its own) while `pgcti ingest --dial` is SIGKILLed and
restarted, and the primary is stopped hard and its standby promoted (asynchronous
replication unless --synchronous). The simulated Asterisk counts every Originate by its
ChannelId, the request's id. Printed: requests made, sent, placed, duplicated (0 is the
goal), and every request that was not placed, by why.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from pathlib import Path

import psycopg
from psycopg.conninfo import make_conninfo

from tests.chaos.failover import Pair
from tests.support.live import KEY, IngestProcess, SimulatorThread, wait_for

DESKS = {
    "ws-101": "pgcti_chaos_dial_101",
    "ws-102": "pgcti_chaos_dial_102",
    "ws-103": "pgcti_chaos_dial_103",
}
FINAL = ("answered", "failed", "expired", "unknown")


class Desks:
    """Three desks asking for calls, each retrying a request the database did not take (a
    retry of the same number while the first is on its way is the same request)."""

    def __init__(self, dsn: str, count: int, per_second: float) -> None:
        self.dsn, self.count, self.per_second = dsn, count, per_second
        self.ids: set[str] = set()
        self.retries = 0
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        conns: dict[str, psycopg.Connection | None] = dict.fromkeys(DESKS.values())
        start = time.monotonic()
        for n in range(self.count):
            login = list(DESKS.values())[n % len(DESKS)]
            while True:
                try:
                    if conns[login] is None or conns[login].closed:
                        conns[login] = psycopg.connect(
                            make_conninfo(self.dsn, user=login), autocommit=True, connect_timeout=3
                        )
                    (rid,) = (
                        conns[login].execute("SELECT cti.dial_v1(%s)", [f"+7495{n:07d}"]).fetchone()
                    )
                    self.ids.add(str(rid))
                    break
                except psycopg.OperationalError:
                    conns[login] = None
                    self.retries += 1
                    time.sleep(0.2)
            time.sleep(max(0.0, start + (n + 1) / self.per_second - time.monotonic()))
        for conn in conns.values():
            if conn is not None:
                conn.close()


def case_dialing(tmp: Path, count: int, synchronous: bool = False) -> dict:
    pair = Pair(tmp, synchronous)
    admin = make_conninfo(pair.dsn, host=pair.primary_socket)
    with psycopg.connect(admin, autocommit=True) as conn:
        for ws, login in DESKS.items():
            conn.execute(f'DROP ROLE IF EXISTS "{login}"')
            conn.execute(f'CREATE ROLE "{login}" LOGIN IN ROLE cti_client')
            conn.execute(
                "INSERT INTO cti.client_login (login, workstation_id)"
                " SELECT %s, id FROM pgcti_refcrm.workstation WHERE name = %s",
                [login, ws],
            )
        conn.execute(
            "UPDATE cti.config SET dial_requests_per_minute = 100000,"
            " dial_expire_after = '90 seconds', dial_unknown_after = '15 seconds'"
        )
    sim = SimulatorThread(protocol="asterisk")
    sim.server.placing_seconds = 0.05
    spool = tmp / "ingest"

    def start() -> IngestProcess:
        ingest = IngestProcess(
            pair.dsn,
            sim.url,
            spool,
            KEY,
            "--pbx",
            "asterisk",
            "--dial",
            "--tick-seconds",
            "1",
            "--log-level",
            "INFO",
        )
        wait_for(lambda: "taking dial requests" in ingest.log, 30, "the dialer ready")
        return ingest

    ingest = start()
    logs = []
    try:
        desks = Desks(pair.dsn, count, per_second=count / 40)  # 25 calls/s for 1,000: a busy floor
        time.sleep(5)
        ingest.kill()  # SIGKILL mid-stream, then the same spool and ledger again
        logs.append(ingest.log)
        time.sleep(1)
        ingest = start()
        time.sleep(5)
        promoted_in = pair.fail_over(synchronous)
        desks.thread.join(300)
        new_primary = make_conninfo(pair.dsn, host=str(pair.standby))

        def states() -> Counter:
            with psycopg.connect(new_primary) as conn:
                return Counter(
                    dict(
                        conn.execute(
                            "SELECT state, count(*) FROM cti.dial_request GROUP BY 1"
                        ).fetchall()
                    )
                )

        wait_for(lambda: not set(states()) - set(FINAL), 180, "every request final")
        with psycopg.connect(new_primary) as conn:
            rows = {
                str(r): (s, why)
                for r, s, why in conn.execute("SELECT id, state, reason FROM cti.dial_request")
            }
        logs.append(ingest.log)
    finally:
        ingest.stop()
        sim.close()
        pair.close()
    originated = dict(sim.server.originates)
    not_placed = Counter(
        f"{state}: {why}" for rid, (state, why) in rows.items() if state != "answered"
    )
    return {
        "case": f"{count} dial requests, the ingester SIGKILLed and restarted, a failover "
        f"({'synchronous' if synchronous else 'asynchronous'} replication)",
        "requests_made": len(desks.ids),
        "desk_retries_while_the_database_was_away": desks.retries,
        "on_the_new_primary": len(rows),
        "lost_in_the_failover": len(desks.ids - set(rows)),
        "sent_to_the_pbx": sum(originated.values()),
        "placed_once": sum(1 for n in originated.values() if n == 1),
        "duplicated": sum(1 for n in originated.values() if n > 1),
        "answered": sum(1 for s, _ in rows.values() if s == "answered"),
        "placed_but_not_on_the_new_primary": len(set(originated) - set(rows)),
        "refused_a_second_send_after_the_failover": sum(
            log.count("handed out again") for log in logs
        ),
        "seconds_from_stop_to_promoted": round(promoted_in, 2),
        **{f"not placed: {k}": v for k, v in sorted(not_placed.items())},
    }
