"""The systemd unit of docs/operations.md, as written: its ExecStart line with its
environment file, run as an unprivileged user from /, and `systemd-analyze verify`."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
from psycopg.conninfo import conninfo_to_dict

from ingester.clients.gateway_process import free_port
from tests.operations.test_embedded_cli import _interpreter_for
from tests.support.live import KEY, SimulatorThread, wait_for

DOCS = Path(__file__).resolve().parents[2] / "docs"


def _block(language: str, first_line: str, page: str = "operations.md") -> str:
    for block in re.findall(rf"```{language}\n(.*?)```", (DOCS / page).read_text(), re.DOTALL):
        if block.startswith(first_line):
            return block
    raise AssertionError(f"no {language} block starting {first_line!r} in docs/{page}")


def _unit() -> dict[str, str]:
    unit = _block("ini", "[Unit]")
    return dict(re.findall(r"^(\w+)=(.*)$", unit, re.MULTILINE))


def test_the_unit_verifies():
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed here")
    with tempfile.TemporaryDirectory() as tmp:
        unit = Path(tmp) / "pgcti-ingest.service"
        # verify wants the binary to exist: point ExecStart at an executable of this machine.
        unit.write_text(
            _block("ini", "[Unit]").replace("/opt/pgcti/bin/pgcti", shutil.which("true"))
        )
        result = subprocess.run(
            ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True
        )
    problems = [
        line
        for line in (result.stdout + result.stderr).splitlines()
        if "pgcti-ingest.service" in line and "EnvironmentFile" not in line
    ]
    assert not problems, "\n".join(problems)


def test_execstart_runs_as_written_for_an_unprivileged_user_from_root(make_login, tmp_path):
    unit = _unit()
    assert unit["User"] == "pgcti" and unit["StateDirectory"] == "pgcti"
    assert "EnvironmentFile" in unit and "ReadWritePaths" not in unit
    # setpriv execs the command itself (runuser would stand between it and SIGTERM).
    as_user = (
        ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "--"]
        if os.geteuid() == 0
        else []
    )
    found = _interpreter_for(["runuser", "-u", "nobody", "--"] if as_user else [])
    if found is None:
        pytest.skip("no Python of this version that user nobody can run (ours is unreadable to it)")
    python, import_path = found

    sim = SimulatorThread()
    state = Path(tempfile.mkdtemp(prefix="pgcti-state-"))
    etc = Path(tempfile.mkdtemp(prefix="pgcti-etc-"))
    try:
        login = conninfo_to_dict(make_login("cti_ingester", "unit_ing"))
        key = etc / "pbx.key"
        key.write_text(KEY)
        key.chmod(0o600)
        pgpass = etc / "pgpass"
        pgpass.write_text(f"*:*:*:{login['user']}:{login['password']}\n")
        pgpass.chmod(0o600)
        # The documented environment file, with this test's database, PBX and files.
        env_file = _block("sh", "# pgcti ingest settings")
        values = dict(re.findall(r"^(\w+)=(.*)$", env_file, re.MULTILINE))
        assert set(values) == {"PGCTI_DSN", "PGPASSFILE", "PGCTI_PBX_URL", "PGCTI_PBX_KEY_FILE"}
        dsn = " ".join(f"{k}={v}" for k, v in login.items() if k != "password")
        values.update(
            PGCTI_DSN=dsn,
            PGPASSFILE=str(pgpass),
            PGCTI_PBX_URL=sim.url,
            PGCTI_PBX_KEY_FILE=str(key),
        )
        if as_user:
            for path in (state, etc, key, pgpass):
                shutil.chown(path, "nobody")
        command = shlex.split(unit["ExecStart"])
        assert command[0] == "/opt/pgcti/bin/pgcti"
        argv = [python, "-m", "ingester.cli", *command[1:]]
        argv[argv.index("--metrics-port") + 1] = str(free_port())  # 9108 may be taken here
        log = tmp_path / "unit.log"
        proc = subprocess.Popen(
            [
                *as_user,
                "env",
                "-i",
                f"PYTHONPATH={import_path}",
                f"STATE_DIRECTORY={state}",
                *(f"{k}={v}" for k, v in values.items()),
                *argv,
            ],
            cwd="/",
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
        )
        try:
            wait_for(
                lambda: sim.server.listeners() == 1 or proc.poll() is not None,
                what="the unit to subscribe",
            )
            assert proc.poll() is None, log.read_text()
            time.sleep(0.5)
        finally:
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(15)
        text = log.read_text()
        assert code == 0, text
        assert "writing to the database" in text and str(state / "spool") in text, text
        # Stored, or (when the server's socket is closed to this user, as the embedded
        # server's is) kept in the spool under the state directory: either way not lost.
        assert "1 received" in text and ("1 stored" in text or "1 spooled" in text), text
        assert (state / "spool").is_dir(), "the spool is in the state directory"
        assert login["password"] not in text and KEY not in text
    finally:
        sim.close()
        shutil.rmtree(state, ignore_errors=True)
        shutil.rmtree(etc, ignore_errors=True)


def test_the_gateway_unit_raises_the_file_limit_and_its_command_parses():
    """The unit of the gateway (docs/gateway.md): outsiders exhausted systemd's default
    soft limit of 1024 descriptors; the unit gives 65536 and the gateway uses them."""
    from ingester.cli import build_parser

    unit = _block("ini", "[Unit]\nDescription=pgcti gateway", "gateway.md")
    settings = dict(re.findall(r"^(\w+)=(.*)$", unit, re.MULTILINE))
    assert int(settings["LimitNOFILE"]) >= 65536
    argv = shlex.split(settings["ExecStart"])
    assert argv[0].endswith("/pgcti") and argv[1] == "gateway"
    args = build_parser().parse_args(argv[1:])
    assert args.port == 8080 and args.allow_origin == ["https://crm.example.com"]
