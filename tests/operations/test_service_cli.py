"""The service commands as an operator meets them: which database, rights, one-line errors,
`pgcti doctor`. Each runs the real `pgcti` command."""

from __future__ import annotations

import os
import re
import socket
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from ingester.clients.gateway_process import free_port
from tests.conftest import run_cli
from tests.support.crm_fixture import LINE, builder, insert_frames, seed_crm
from tests.support.live import KEY, IngestProcess, SimulatorThread, wait_for


def fails(*args: str, env: dict[str, str] | None = None):
    result = run_cli(*args, env=env, check=False)
    return result.returncode, result.stderr.strip()


@pytest.mark.parametrize("command", ["migrate", "rebuild", "watch", "doctor"])
def test_a_service_command_without_a_dsn_names_the_way_and_guesses_nothing(command):
    env = {"PGCTI_DSN": ""}
    code, err = fails(command, env=env)
    assert code == 2 and "pass --dsn or set PGCTI_DSN" in err and "--embedded" in err
    assert "Traceback" not in err


def test_ingest_without_a_dsn_says_so_and_names_its_database_when_given(tmp_path):
    env = {"PGCTI_DSN": "", "PGCTI_PBX_KEY": "k" * 20}
    code, err = fails("ingest", "--url", "ws://127.0.0.1:9/", env=env)
    assert code == 2 and "pass --dsn or set PGCTI_DSN" in err


def test_configuration_errors_are_one_line_with_exit_2(dsn, tmp_path):
    env = {"PGCTI_PBX_KEY": "k" * 20}
    base = [
        "ingest",
        "--dsn",
        dsn,
        "--url",
        "ws://127.0.0.1:9/",
        "--spool-dir",
        str(tmp_path / "s"),
    ]
    cases = []
    cases.append(
        (
            fails("ingest", "--dsn", "host=x bogus_option=1", "--url", "ws://x/", env=env),
            "bogus_option",
        )
    )
    cases.append(
        (fails(*base, env={**env, "PGCTI_DB_TIMEOUT": "soon"}), "db_timeout must be a number")
    )
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = str(busy.getsockname()[1])
        cases.append(
            (fails(*base, "--metrics-port", port, env=env), "choose another --metrics-port")
        )
    empty = tmp_path / "empty.key"
    empty.write_text("\n")
    empty.chmod(0o600)
    cases.append((fails(*base, "--key-file", str(empty)), "is empty"))
    config = tmp_path / "pgcti.toml"
    config.write_text('[ingest]\nmetrics-port = 9100\nspool_dri = "/tmp"\n')
    cases.append(
        (fails(*base, "--config", str(config), env=env), "unknown key(s) metrics-port, spool_dri")
    )
    config.write_text('[ingset]\nurl = "ws://x/"\n')
    cases.append((fails(*base, "--config", str(config), env=env), "unknown table(s) [ingset]"))
    config.write_text('[ingest]\ndial = true\ndial_via = "socket"\n')  # make_call is 2.0's
    cases.append((fails(*base, "--config", str(config), env=env), 'with pbx = "onlinepbx2"'))
    wrong_port = make_conninfo(dsn, host="127.0.0.1", port=str(free_port()))
    cases.append((fails("migrate", "--dsn", wrong_port), "cannot connect to the database"))
    for (code, err), expected in cases:
        assert code == 2, err
        assert expected in err, err
        assert "Traceback" not in err and len(err.splitlines()) <= 2, err  # the database line + one


def test_the_default_spool_is_a_state_directory_not_the_working_directory(tmp_path, monkeypatch):
    from ingester.pipeline import config

    monkeypatch.setenv("PGCTI_PBX_KEY", "k" * 20)
    monkeypatch.delenv("PGCTI_SPOOL_DIR", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("XDG_STATE_HOME", raising=False)
    flags = {"dsn": "dbname=x", "url": "ws://x/"}
    assert (
        config.load(flags).spool_dir == tmp_path / "home" / ".local" / "state" / "pgcti" / "spool"
    )
    monkeypatch.setenv("STATE_DIRECTORY", str(tmp_path / "state"))  # systemd's StateDirectory=
    assert config.load(flags).spool_dir == tmp_path / "state" / "spool"


def test_a_dba_without_the_rights_is_told_what_to_grant_before_anything_changes(
    server_dsn, fresh_db
):
    name = f"pgcti_norights_{os.getpid()}"
    with psycopg.connect(server_dsn, autocommit=True) as admin:
        admin.execute(f'DROP ROLE IF EXISTS "{name}"')
        admin.execute(f'CREATE ROLE "{name}" LOGIN')  # no CREATEROLE, no CREATE on the database
    try:
        code, err = fails("migrate", "--dsn", make_conninfo(fresh_db, user=name))
        assert code == 1 and "nothing was changed" in err
        db = conninfo_to_dict(fresh_db)["dbname"]
        assert f"GRANT CREATE ON DATABASE {db} TO {name};" in err
        with psycopg.connect(fresh_db) as conn:
            assert conn.execute("SELECT to_regnamespace('cti')").fetchone() == (None,)
    finally:
        with psycopg.connect(server_dsn, autocommit=True) as admin:
            admin.execute(f'DROP ROLE IF EXISTS "{name}"')


def test_doctor_is_green_on_a_working_install_and_names_each_problem(
    dsn, conn, make_login, tmp_path
):
    make_login("cti_ingester", "doc_ing")
    desk = conninfo_to_dict(make_login("cti_client", "doc_desk"))["user"]
    conn.execute("INSERT INTO cti.client_login (login, workstation_id) VALUES (%s, 1)", [desk])
    sim = SimulatorThread()
    try:
        key = tmp_path / "pbx.key"
        key.write_text(KEY)
        key.chmod(0o600)
        config = tmp_path / "pgcti.toml"
        config.write_text(
            f'[ingest]\nurl = "{sim.url}"\nkey_file = "{key}"\nspool_dir = "{tmp_path / "spool"}"\n'
        )
        good = run_cli("doctor", "--dsn", dsn, "--config", str(config), check=False)
        key.write_text("wrong-key-0123456789")
        refused = run_cli("doctor", "--dsn", dsn, "--config", str(config), check=False)
    finally:
        sim.close()
    assert good.returncode == 0, good.stdout
    for check in (
        "connect",
        "migrations",
        "logic",
        "logins",
        "adapters",
        "callbacks",
        "notify",
        "spool",
        "pbx",
    ):
        assert any(
            line.startswith("ok") and f" {check} " in line for line in good.stdout.splitlines()
        ), (
            check,
            good.stdout,
        )
    assert (
        refused.returncode == 1 and "FAIL  pbx" in refused.stdout and "HTTP 401" in refused.stdout
    )
    assert "wrong-key" not in refused.stdout + refused.stderr

    # A release's migrations rolled back behind pgcti's back: doctor says so.
    conn.execute(
        "DELETE FROM pgcti_migrations._yoyo_migration WHERE migration_id = '0006_phone_directory'"
    )
    conn.execute("DELETE FROM cti.logic_file WHERE name = '55_derive_calls.sql'")
    bad = run_cli("doctor", "--dsn", dsn, check=False)
    assert bad.returncode == 1
    assert "FAIL  migrations   not applied: 0006_phone_directory" in bad.stdout
    assert "FAIL  logic        not current: 55_derive_calls.sql" in bad.stdout


def test_doctor_names_callback_tasks_that_nobody_owns_and_the_setting_that_fixes_them(dsn, conn):
    from ingester.simulator import onlinepbx3_calls as pbx

    ids = seed_crm(conn)
    # A new number misses us on a line nobody owns, and no default owner is set.
    insert_frames(
        conn, pbx.inbound_unanswered(builder(1), "+7 903 555-01-02", LINE, ["101"], "NO_ANSWER")
    )
    warned = run_cli("doctor", "--dsn", dsn, check=False)
    assert (
        "warn  callbacks    1 open callback task(s), 0 past due; 1 with no owner" in warned.stdout
    ), warned.stdout
    assert "{manager,line,default}" in warned.stdout and "callback_default_owner" in warned.stdout

    # What the warning says to do, done: the task gets its owner.
    conn.execute("UPDATE cti.config SET callback_default_owner = %s", [ids["Petrova"]])
    run_cli("rebuild", "--dsn", dsn)
    fixed = run_cli("doctor", "--dsn", dsn, check=False)  # (no logins here: that line fails)
    assert "ok    callbacks    1 open callback task(s), 0 past due" in fixed.stdout, fixed.stdout
    assert conn.execute("SELECT owner_id FROM cti.callback_task").fetchone() == (ids["Petrova"],)


def test_doctor_times_the_lookup_and_warns_when_every_call_would_wait_for_it(dsn, conn):
    quick = run_cli("doctor", "--dsn", dsn, check=False).stdout
    assert re.search(r"^ok    adapters     crm_lookup answers in \d+\.\d\d ms$", quick, re.M), quick
    # A DBA's adapter that scans an unindexed table: 30 ms a lookup.
    conn.execute(
        "CREATE OR REPLACE FUNCTION cti.crm_lookup(p_e164 text) RETURNS TABLE (client_id bigint,"
        " client_name text, company text, manager_id bigint, manager_surname text)"
        " LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp"
        " AS $$ BEGIN PERFORM pg_sleep(0.03); RETURN; END $$"
    )
    slow = run_cli("doctor", "--dsn", dsn, check=False).stdout
    (line,) = [x for x in slow.splitlines() if "crm_lookup takes" in x]
    assert line.startswith("warn  adapters") and "phone directory" in line, line
    assert 30 <= float(re.search(r"takes (\d+\.\d) ms", line).group(1)) < 1000, line


def test_doctor_names_adapters_that_postgresql_before_18_plans_on_every_call(dsn, conn):
    planned = "plans again on every call"
    assert planned not in run_cli("doctor", "--dsn", dsn, check=False).stdout, (
        "the reference CRM's adapters are SQL-standard bodies"
    )
    # An adapter written the way the dba-guide showed before 2026-11-27.
    conn.execute(
        "CREATE OR REPLACE FUNCTION cti.crm_ring_recipients(p_dialled text) RETURNS SETOF bigint"
        " LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp"
        " AS $$ SELECT id FROM pgcti_refcrm.employee WHERE receives_call_notifications $$"
    )
    lines = [
        x for x in run_cli("doctor", "--dsn", dsn, check=False).stdout.splitlines() if planned in x
    ]
    if conn.info.server_version >= 180000:  # 18 keeps the plans of sql functions
        assert lines == []
    else:
        assert len(lines) == 1 and lines[0].startswith("warn  adapters     crm_ring_recipients:")
        assert "BEGIN ATOMIC" in lines[0]


def test_doctor_says_when_no_ingester_has_written_here_lately(dsn, conn):
    def line() -> str:
        out = run_cli("doctor", "--dsn", dsn, check=False).stdout
        (found,) = [x for x in out.splitlines() if x[6:18].strip() == "ingester"]
        return found

    assert line().startswith("warn  ingester     no frame in the raw log yet: no ingester has")
    frame = "INSERT INTO cti.raw_event (source, received_at, body) VALUES (%s, %s, %s)"
    old = datetime.now(UTC) - timedelta(minutes=10)
    conn.execute(frame, ["onlinepbx3", old, '{"event": "x", "n": 1}'])
    conn.execute(frame, ["pgcti", old, '{"event": "tick", "n": 1}'])
    stale = line()
    assert stale.startswith(
        "warn  ingester     the last tick of an ingester came 10 min ago; the last PBX frame"
        " came 10 min ago: no ingester has written here for 3 minutes"
    ), stale
    assert "is `pgcti ingest` running" in stale
    # A frame just now (before the first tick of an ingester just started): it writes.
    conn.execute(frame, ["onlinepbx3", datetime.now(UTC), '{"event": "x", "n": 2}'])
    assert line().startswith("ok    ingester     the last tick of an ingester came 10 min ago")
    conn.execute(frame, ["pgcti", datetime.now(UTC), '{"event": "tick", "n": 2}'])
    assert re.fullmatch(
        r"ok    ingester     the last tick of an ingester came \d s ago; "
        r"the last PBX frame came \d s ago",
        line(),
    )


def test_an_unreachable_database_is_logged_while_frames_wait_in_the_spool(dsn, tmp_path):
    from datetime import UTC, datetime

    from ingester.frame import Frame
    from ingester.pipeline.spool import Spool

    Spool(tmp_path / "run" / "spool").append(
        [Frame("onlinepbx3", datetime.now(UTC), '{"event": "x"}') for _ in range(3)]
    )
    wrong_port = make_conninfo(dsn, host="127.0.0.1", port=str(free_port()))
    sim = SimulatorThread()
    ingest = IngestProcess(wrong_port, sim.url, tmp_path / "run")
    try:
        wait_for(lambda: "database unavailable" in ingest.log, timeout=15, what="the reason logged")
    finally:
        ingest.stop()
        sim.close()
    line = next(line for line in ingest.log.splitlines() if "database unavailable" in line)
    assert "WARNING" in line and "3 frame(s) wait in the spool" in line, line
    assert "writing to the database" in ingest.log and "port=" in ingest.log
