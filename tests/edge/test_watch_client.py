"""`pgcti watch`, the reference CRM client: it survives a database restart, and after being
offline it catches up on everything it missed, in order."""

from __future__ import annotations

import subprocess
import sys
import time

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

from ingester import embedded
from ingester.install import migrations
from ingester.simulator import onlinepbx3_calls as pbx
from tests.support.crm_fixture import KNOWN, LINE, builder, insert_frames, seed_crm
from tests.support.live import wait_for


class Watch:
    def __init__(self, dsn: str, tmp_path, name: str) -> None:
        self.out_path = tmp_path / f"{name}.out"
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "ingester.cli",
                "watch",
                "--dsn",
                dsn,
                "--duration",
                "60",
                "--log-level",
                "INFO",
            ],
            stdout=self.out_path.open("w"),
            stderr=subprocess.STDOUT,
            text=True,
        )

    def lines(self) -> list[str]:
        return [
            line
            for line in self.out_path.read_text().splitlines()
            if " #" in line and "call" in line
        ]

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def _feed(dsn: str, frames) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        insert_frames(conn, frames)


def _desk_101(dsn: str, login: str, password: str | None = None) -> None:
    """Migrate and seed the server's database, and bind ``login`` to desk 101 (extension 101)."""
    migrations.apply(dsn, reference_crm=True)
    with psycopg.connect(dsn, autocommit=True) as conn:
        crm = seed_crm(conn)
        conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(login)))
        conn.execute(
            sql.SQL("CREATE ROLE {} LOGIN PASSWORD {} IN ROLE cti_client").format(
                sql.Identifier(login), sql.Literal(password)
            )
        )
        conn.execute(
            "INSERT INTO cti.client_login (login, workstation_id) VALUES (%s, %s)",
            [login, crm["ws-101"]],
        )


def test_watch_survives_a_restart_and_catches_up_after_being_offline(own_server, tmp_path):
    dsn = own_server
    _desk_101(dsn, "pgcti_watch_test")
    client_dsn = make_conninfo(dsn, user="pgcti_watch_test")

    watch = Watch(client_dsn, tmp_path, "first")
    try:
        wait_for(
            lambda: "listening for commands" in watch.out_path.read_text(), what="watch to LISTEN"
        )
        _feed(dsn, pbx.inbound_answered(builder(1), KNOWN, LINE, "101"))
        wait_for(lambda: len(watch.lines()) == 2, what="first call shown")

        embedded.stop("immediate")
        time.sleep(1.0)
        embedded.start()
        _feed(dsn, pbx.inbound_answered(builder(2), "+79030001122", LINE, "101"))
        wait_for(
            lambda: len(watch.lines()) == 4, timeout=30, what="second call shown after the restart"
        )
        assert "database connection lost" in watch.out_path.read_text()
    finally:
        watch.stop()

    # Offline: three calls happen while no client runs.
    for seed in (3, 4, 5):
        _feed(dsn, pbx.inbound_answered(builder(seed), KNOWN, LINE, "101"))
    again = Watch(client_dsn, tmp_path, "second")
    try:
        wait_for(lambda: len(again.lines()) == 6, what="catch-up")
    finally:
        again.stop()
    seqs = [int(line.split("#")[1].split()[0]) for line in watch.lines() + again.lines()]
    assert seqs == list(range(1, 11)), (
        "every command once, in order, across the restart and the gap"
    )
    types = [line.split()[2] for line in again.lines()]
    assert types == ["open_card", "call_ended"] * 3


def _watch_once(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ingester.cli", "watch", *args, "--count", "1", "--duration", "20"],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_desk_watches_with_its_own_password_and_a_dba_finds_it_by_extension(own_server):
    """Password authentication for every login but the superuser, as on a real server."""
    dsn = own_server
    _desk_101(dsn, "pgcti_desk_pw", "desk-secret")
    with psycopg.connect(dsn, autocommit=True) as conn:
        insert_frames(conn, pbx.inbound_answered(builder(1), KNOWN, LINE, "101"))
        # Found by extension through the adapter, where the server lets the DBA in as the desk.
        trusted = _watch_once("--dsn", dsn, "--extension", "101")
        assert trusted.returncode == 0 and "open_card" in trusted.stdout, trusted.stderr
        hba = embedded.pgdata() / "pg_hba.conf"
        hba.write_text("local all postgres trust\nlocal all all scram-sha-256\n")
        conn.execute("SELECT pg_reload_conf()")
        insert_frames(conn, pbx.inbound_answered(builder(2), KNOWN, LINE, "101"))

    own = _watch_once("--dsn", make_conninfo(dsn, user="pgcti_desk_pw", password="desk-secret"))
    # It resumes right after the one item the first run showed and acknowledged.
    assert own.returncode == 0 and " #2 " in own.stdout and "call_ended" in own.stdout, own.stderr
    assert "desk-secret" not in own.stdout + own.stderr

    by_dba = _watch_once("--dsn", dsn, "--extension", "101")
    assert by_dba.returncode == 2
    assert "wants 'pgcti_desk_pw''s own password" in by_dba.stderr
    assert "Traceback" not in by_dba.stderr


def test_watch_shows_each_items_own_time_and_says_when_it_waits(own_server):
    """The time on each line is when the call's event made the item (not when watch read
    it, minutes later after an outage), and watch says when it has caught up."""
    dsn = own_server
    _desk_101(dsn, "pgcti_watch_times")
    with psycopg.connect(dsn, autocommit=True) as conn:
        insert_frames(conn, pbx.inbound_answered(builder(3), KNOWN, LINE, "101"))
        conn.execute("UPDATE cti.outbox SET created_at = created_at - interval '2 hours'")
        made = [
            f"{at.astimezone():%H:%M:%S}"
            for (at,) in conn.execute(
                "SELECT created_at FROM cti.outbox WHERE target_kind = 'ws' ORDER BY seq"
            )
        ]
    shown = subprocess.run(
        [sys.executable, "-m", "ingester.cli", "watch", "--dsn",
         make_conninfo(dsn, user="pgcti_watch_times"), "--duration", "3"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    assert [line.split()[0] for line in shown.stdout.splitlines()] == made
    assert "caught up, waiting for the next item" in shown.stderr
