"""docs/onlinepbx.md as a new user follows it: each of its configuration files (API 3.0
and 2.0), with the simulator standing in for the account, checked by the command the page
gives (`pgcti doctor --config`): the key accepted, and a wrong one a FAIL that shows no key."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.support.live import KEY, SimulatorThread

PAGE = Path(__file__).resolve().parents[2] / "docs" / "onlinepbx.md"


def _config_blocks() -> dict[str, dict]:
    blocks = [
        tomllib.loads(b)["ingest"] for b in re.findall(r"```toml\n(.*?)```", PAGE.read_text(), re.S)
    ]
    return {b["pbx"]: b for b in blocks}


@pytest.mark.parametrize("pbx", ["onlinepbx3", "onlinepbx2"])
def test_the_pages_configuration_connects_and_doctor_says_so(dsn, tmp_path, pbx):
    settings = _config_blocks()[pbx]
    assert settings["key_file"] == "/etc/pgcti/pbx.key" and "dsn" in settings
    sim = SimulatorThread(protocol=pbx)
    try:
        key = tmp_path / "pbx.key"
        key.write_text(KEY)
        key.chmod(0o600)
        # The page's file, with the simulator's address, a key file and spool of this test.
        settings |= {"url": sim.url, "key_file": str(key), "spool_dir": str(tmp_path / "spool")}
        if pbx == "onlinepbx2":
            settings["domain"] = sim.server.domain
        config = tmp_path / "ingest.toml"
        config.write_text(
            "[ingest]\n" + "".join(f'{name} = "{value}"\n' for name, value in settings.items())
        )
        good = run_cli("doctor", "--dsn", dsn, "--config", str(config), check=False)
        key.write_text("a-wrong-key-0123456789")
        refused = run_cli("doctor", "--dsn", dsn, "--config", str(config), check=False)
    finally:
        sim.close()
    assert re.search(rf"^ok +pbx +{re.escape(sim.url)}: the key is accepted$", good.stdout, re.M)
    line = next(x for x in refused.stdout.splitlines() if re.match(r"FAIL +pbx ", x))
    assert refused.returncode == 1 and "a-wrong-key" not in refused.stdout + refused.stderr, line
