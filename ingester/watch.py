"""`pgcti watch`: the reference CRM client.

LISTEN first, then catch up from the outbox, then wait for doorbells; every item is
shown, then acknowledged, so a restarted client resumes after the last one it
handled. A lost connection is retried with capped, jittered backoff, re-LISTENed
and caught up.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

import psycopg

from ingester.queries import composed, query

log = logging.getLogger("pgcti.watch")

PULL = {"commands": query("pull_commands"), "notifications": query("pull_notifications")}
ACK = {"commands": query("ack_commands"), "notifications": query("ack_notifications")}


@dataclass(frozen=True)
class Item:
    stream: str
    seq: int
    type: str
    call_id: int
    payload: dict


def describe(item: Item) -> str:
    p = item.payload
    who = p.get("client_name") or (
        "several clients share this number" if p.get("match") == "ambiguous" else "unknown"
    )
    extra = []
    if p.get("company"):
        extra.append(p["company"])
    if p.get("manager_surname"):
        extra.append(f"manager {p['manager_surname']}")
    if p.get("is_new"):
        extra.append("NEW number")
    detail = f" ({', '.join(extra)})" if extra else ""
    return f"{item.type:<10} call {item.call_id:<6} {p.get('number') or 'anonymous'}  {who}{detail}"


def resolve_login(dsn: str, workstation: str | None, employee: str | None) -> str:
    """The DSN to watch with: the DSN's own login when it is a CRM client; for a DBA
    (the demo, the embedded default) the login bound to --workstation / --employee."""
    from ingester.database import with_user

    with psycopg.connect(dsn, autocommit=True) as conn:
        try:
            conn.execute(query("whoami"))
            return dsn  # this login is a CRM client
        except psycopg.errors.InsufficientPrivilege:
            pass  # not a bound client login: a DBA's, resolved below
        if workstation is None and employee is None:
            raise SystemExit(
                f"login {conn.info.user!r} is not a CRM client: give --workstation or --employee, "
                "or a DSN whose login is bound in cti.client_login"
            )
        row = conn.execute(query("login_bound_to"), {"ws": workstation, "emp": employee}).fetchone()
    if row is None:
        raise SystemExit(
            f"no login is bound to workstation={workstation} employee={employee} "
            "in cti.client_login; a DBA binds one (see docs/crm-clients.md)"
        )
    return with_user(dsn, row[0])


class Watcher:
    def __init__(
        self, dsn: str, on_item: Callable[[Item], None], poll_seconds: float = 1.0
    ) -> None:
        self.dsn = dsn
        self.on_item = on_item
        self.poll_seconds = poll_seconds
        self.stopped = False
        self.handled = 0

    def stop(self) -> None:
        self.stopped = True

    def run(self, until: Callable[[], bool] = lambda: False) -> None:
        delay = 0.2
        while not self.stopped and not until():
            try:
                with psycopg.connect(self.dsn, autocommit=True, connect_timeout=5) as conn:
                    me = conn.execute(query("whoami")).fetchall()
                    streams = [stream for stream, _ in me]
                    for _, channel in me:
                        conn.execute(composed("listen", channel))
                    log.info("listening for %s", ", ".join(streams))
                    delay = 0.2
                    while not self.stopped and not until():
                        self._catch_up(conn, streams)  # also the liveness probe of this connection
                        for _ in conn.notifies(timeout=self.poll_seconds, stop_after=1):
                            pass
            except psycopg.OperationalError as exc:
                if self.stopped:
                    break
                log.warning(
                    "database connection lost (%s); retrying in %.1fs",
                    str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__,
                    delay,
                )
                time.sleep(delay)
                delay = min(delay * 2, 10.0) * random.uniform(0.8, 1.2)

    def _catch_up(self, conn: psycopg.Connection, streams: list[str]) -> None:
        for stream in streams:
            while True:
                rows = conn.execute(PULL[stream]).fetchall()
                for seq, type_, call_id, payload, _created in rows:
                    self.on_item(Item(stream, seq, type_, call_id, payload))
                    self.handled += 1
                if not rows:
                    break
                conn.execute(ACK[stream], [rows[-1][0]])
