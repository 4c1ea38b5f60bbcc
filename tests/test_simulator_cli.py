"""`pgcti simulate` as a user runs it: the same seed gives the same calls, a recorded trace replays
exactly, and `pgcti ingest --log-json` writes one JSON object per line."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

from ingester.simulator.traffic import Traffic
from tests.live import KEY, IngestProcess


def _calls(seed: int) -> list[dict]:
    traffic = Traffic(seed, ["+74951234567"], ["101", "102", "103"])
    return [frame for n in range(30) for _, frame in traffic.call(1_000_000.0 + n * 100)]


def test_the_same_seed_gives_the_same_calls():
    assert _calls(5) == _calls(5)
    assert _calls(5) != _calls(6)


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _simulate(*args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "ingester.cli", "simulate", *args],
        env={**os.environ, "PGCTI_PBX_KEY": KEY},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def test_a_recorded_trace_replays_frame_for_frame(dsn, tmp_path):
    def run(*args: str) -> list[dict]:
        port = _port()
        sim = _simulate("--port", str(port), *args)
        time.sleep(0.5)
        ingest = IngestProcess(
            dsn, f"ws://127.0.0.1:{port}/", tmp_path / str(port), KEY, "--log-json"
        )
        assert sim.wait(30) == 0, sim.stdout.read()
        assert ingest.stop() == 0
        lines = [
            json.loads(line) for line in ingest.log.splitlines()
        ]  # --log-json: every line parses
        assert {"ts", "level", "logger", "message"} <= set(lines[0])
        assert KEY not in ingest.log
        return [
            json.loads(line)["frame"]
            for line in (tmp_path / "trace.jsonl").read_text().splitlines()
        ]

    recorded = run(
        "--seed",
        "3",
        "--rate",
        "20",
        "--calls",
        "6",
        "--scale",
        "0.01",
        "--record",
        str(tmp_path / "trace.jsonl"),
    )
    assert len(recorded) > 30
    (tmp_path / "first.jsonl").write_text((tmp_path / "trace.jsonl").read_text())
    replayed = run(
        "--replay", str(tmp_path / "first.jsonl"), "--record", str(tmp_path / "trace.jsonl")
    )
    assert replayed == recorded


def test_simulate_refuses_to_start_without_a_key():
    result = subprocess.run(
        [sys.executable, "-m", "ingester.cli", "simulate"],
        capture_output=True,
        text=True,
        env={k: v for k, v in os.environ.items() if k != "PGCTI_PBX_KEY"},
        timeout=30,
    )
    assert result.returncode == 2 and "set PGCTI_PBX_KEY or give --key-file" in result.stderr
