"""`pgcti watch`: the reference CRM client.

LISTEN first, then catch up from the outbox, then wait for doorbells; every item is
shown, then acknowledged, so a restarted client resumes after the last one it
handled. A lost connection is retried with capped, jittered backoff, re-LISTENed
and caught up. With --dial, the desk places a call instead (click-to-call) and follows
its request until the PBX has placed it or said why not.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import psycopg

from ingester.database import with_user
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
    created_at: datetime  # when the call's event made it, not when this client read it


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
    if item.type == "callback_task":  # the owner's task: call this client back
        extra.append(f"{p.get('missed_calls', 1)} missed, call back")
    detail = f" ({', '.join(extra)})" if extra else ""
    return f"{item.type:<10} call {item.call_id:<6} {p.get('number') or 'anonymous'}  {who}{detail}"


class WatchError(Exception):
    """The login to watch with cannot be found or cannot log in; the message says what to do."""


FINAL = ("answered", "failed", "expired", "unknown")


@dataclass(frozen=True)
class DialState:
    state: str
    reason: str | None
    call_id: int | None
    call_outcome: str | None


def dial(
    dsn: str, number: str, on_state: Callable[[str, DialState], None], timeout: float = 180.0
) -> DialState:
    """Ask for a call from the desk's own extension, then follow the request (each change of
    its state or call goes to on_state) until it is final or the timeout passes."""
    with psycopg.connect(dsn, autocommit=True, connect_timeout=10) as conn:
        try:
            (request_id,) = conn.execute(query("dial"), [number]).fetchone()
        except psycopg.Error as exc:
            diag = exc.diag
            hint = f" ({diag.message_hint})" if diag.message_hint else ""
            raise WatchError(f"cannot dial: {diag.message_primary or exc}{hint}") from None
        shown = None
        deadline = time.monotonic() + timeout
        while True:
            now = DialState(*conn.execute(query("dial_state"), [request_id]).fetchone())
            if now != shown:
                on_state(str(request_id), now)
                shown = now
            if now.state in FINAL and (now.state != "answered" or now.call_outcome):
                return now
            if time.monotonic() > deadline:
                return now
            time.sleep(0.3)


def resolve_login(
    dsn: str, workstation: int | None, extension: str | None, employee: int | None
) -> str:
    """The DSN to watch with. Normally the desk's own: its login, its own password (in the
    DSN, ~/.pgpass or PGPASSWORD). Given a DBA's DSN instead, the login bound to the
    workstation (by id, or by its phone's extension through the CRM adapter) or employee;
    that works only where the server lets it in without a password (the demo's server)."""

    with psycopg.connect(dsn, autocommit=True) as conn:
        try:
            conn.execute(query("whoami"))
            return dsn  # this login is a CRM client
        except psycopg.errors.InsufficientPrivilege:
            pass  # not a bound client login: a DBA's, resolved below
        if workstation is None and extension is None and employee is None:
            raise WatchError(
                f"login {conn.info.user!r} is not a CRM client: give the desk's own DSN "
                "(--dsn 'user=DESK_LOGIN ...'), or --workstation, --extension or --employee"
            )
        row = conn.execute(
            query("login_bound_to"), {"ws": workstation, "ext": extension, "emp": employee}
        ).fetchone()
    if row is None:
        raise WatchError(
            f"no login is bound to workstation={workstation} extension={extension} "
            f"employee={employee} in cti.client_login; a DBA binds one (docs/crm-clients.md)"
        )
    desk = with_user(dsn, row[0])
    try:
        psycopg.connect(desk, connect_timeout=10).close()
    except psycopg.OperationalError:
        raise WatchError(
            f"the server wants {row[0]!r}'s own password: run as the desk does, "
            f"with its credentials: pgcti watch --dsn '{with_user(dsn, row[0])}' "
            "(the password in ~/.pgpass or PGPASSWORD)"
        ) from None
    return desk


class Watcher:
    def __init__(
        self,
        dsn: str,
        on_item: Callable[[Item], None],
        poll_seconds: float = 1.0,
        on_caught_up: Callable[[], None] = lambda: None,
    ) -> None:
        self.dsn = dsn
        self.on_item = on_item
        self.on_caught_up = (
            on_caught_up  # after each catch-up that showed something, and at the start
        )
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
                    waiting = False
                    while not self.stopped and not until():
                        before = self.handled
                        self._catch_up(conn, streams, until)  # also the connection's liveness probe
                        if (self.handled > before or not waiting) and not until():
                            self.on_caught_up()
                            waiting = True
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

    def _catch_up(
        self, conn: psycopg.Connection, streams: list[str], until: Callable[[], bool]
    ) -> None:
        """Show and acknowledge what is new, in order; stop as soon as ``until`` says so (an
        item not shown is not acknowledged, so the next run shows it)."""
        for stream in streams:
            while True:
                rows = conn.execute(PULL[stream]).fetchall()
                for seq, type_, call_id, payload, created in rows:
                    self.on_item(Item(stream, seq, type_, call_id, payload, created))
                    self.handled += 1
                    if until():
                        conn.execute(ACK[stream], [seq])
                        return
                if not rows:
                    break
                conn.execute(ACK[stream], [rows[-1][0]])
