"""The client samples of docs/crm-clients.md, run as they are printed there (Python, and
JavaScript on node-postgres when node is here) as a desk's login against a real database:
each shows the call's card, from a real LISTEN, and acknowledges it."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import urllib.parse
from pathlib import Path

import psycopg
import pytest

from ingester.simulator import onlinepbx3_calls as pbx
from tests.support.crm_fixture import KNOWN, LINE, builder, insert_frames
from tests.support.live import wait_for

ROOT = Path(__file__).resolve().parents[2]
INTEROP = ROOT / "tests" / "interop"


def sample(language: str) -> str:
    text = (ROOT / "docs" / "crm-clients.md").read_text()
    (block,) = re.findall(rf"```{language}\n(.*?)```", text, re.DOTALL)
    return block


@pytest.mark.parametrize("language", ["python", "javascript"])
def test_the_documented_client_shows_and_acknowledges_a_card(conn, desks, tmp_path, language):
    crm, tokens, _gateway = desks
    # A URI, which libpq and node-postgres both read (the docs' form).
    params = psycopg.conninfo.conninfo_to_dict(conn.info.dsn)
    desk_dsn = (
        f"postgresql://{tokens['login-101']}:pw-gw101@/{params['dbname']}"
        f"?host={urllib.parse.quote(params['host'])}&port={params.get('port', 5432)}"
    )
    if language == "python":
        script = tmp_path / "client.py"
        command = [sys.executable, str(script)]
    else:
        if not shutil.which("node") or not (INTEROP / "node_modules" / "pg").is_dir():
            pytest.skip("no node, or no node-postgres in tests/interop (make test installs both)")
        script = INTEROP / f"client-sample-{os.getpid()}.js"  # beside its node_modules
        command = ["node", str(script)]
    script.write_text(sample(language))
    out = tmp_path / "out.txt"
    with out.open("w") as printed:
        client = subprocess.Popen(
            command,
            env={**os.environ, "PGCTI_DESK_DSN": desk_dsn},
            stdout=printed,
            stderr=subprocess.STDOUT,
        )
    try:
        insert_frames(conn, pbx.inbound_answered(builder(5), KNOWN, LINE, "101"))
        wait_for(lambda: "call_ended" in out.read_text(), 20, "the card and its end printed")
        assert "open_card +74951234567 Ivan Ivanov" in out.read_text()

        def acked() -> tuple | None:  # the client acknowledges after it prints
            return conn.execute(
                "SELECT acked_seq FROM cti.stream_ack WHERE target_kind = 'ws' AND target_id = %s",
                [crm["ws-101"]],
            ).fetchone()

        wait_for(lambda: acked() is not None and acked()[0] >= 2, 10, "both acknowledged")
        assert acked() == (2,)
    finally:
        client.kill()
        client.wait(5)
        if language == "javascript":
            script.unlink()
