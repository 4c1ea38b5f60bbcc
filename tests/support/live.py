"""Real processes and sockets for end-to-end tests: the simulator in a thread, `pgcti ingest` as a child."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from ingester.simulator.run import make_server

KEY = "test-key-7f3a9c2e51"


class SimulatorThread:
    """The onlinePBX simulator (3.0 or 2.0) on a loopback port, driven from test code."""

    def __init__(
        self, key: str = KEY, protocol: str = "onlinepbx3", heartbeat: float = 10.0
    ) -> None:
        self.loop = asyncio.new_event_loop()
        self.protocol = protocol
        self.server = make_server(protocol, key)
        if protocol == "onlinepbx2":
            self.server.heartbeat = heartbeat
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self._call(self.server.start())

    def _call(self, coro, timeout: float = 10):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    @property
    def url(self) -> str:
        return self.server.url

    def send(self, frames, group: str | None = None) -> int:
        """Send frames in order (to the event group given, else each frame's own); returns
        how many reached a subscriber."""

        async def go() -> int:
            extra = [group] if group else []
            return sum([await self.server.send(f, *extra) for f in frames])

        return self._call(go(), timeout=60)

    def drop(self) -> int:
        return self._call(self.server.drop_clients())

    def close(self) -> None:
        self._call(self.server.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


class IngestProcess:
    """`pgcti ingest` as its own process, output captured to a file."""

    def __init__(self, dsn: str, url: str, tmp: Path, key: str = KEY, *extra: str) -> None:
        tmp.mkdir(parents=True, exist_ok=True)
        self.log_path = tmp / "ingest.log"
        self.spool_dir = tmp / "spool"
        env = {**os.environ, "PGCTI_PBX_KEY": key}
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "ingester.cli",
                "ingest",
                "--dsn",
                dsn,
                "--url",
                url,
                "--spool-dir",
                str(self.spool_dir),
                "--log-level",
                "DEBUG",
                *extra,
            ],
            env=env,
            stdout=self.log_path.open("wb"),
            stderr=subprocess.STDOUT,
        )

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, timeout: float = 8) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)


def wait_for(
    condition: Callable[[], object], timeout: float = 15, what: str = "condition"
) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def health(port: int) -> tuple[int, dict]:
    """`/healthz` of an ingester started with --metrics-port: (status, state); (0, {}) while
    nothing answers yet."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as refused:
        return refused.code, json.loads(refused.read())
    except OSError:
        return 0, {}


class RawPeer:
    """A TCP server on loopback that plays ``script`` on each connection it accepts."""

    def __init__(self, script: Callable[[socket.socket], None]) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.connections: list[float] = []
        self._script = script
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                peer, _ = self.server.accept()
            except OSError:
                return
            self.connections.append(time.monotonic())
            threading.Thread(target=self._play, args=(peer,), daemon=True).start()

    def _play(self, peer: socket.socket) -> None:
        with peer, contextlib.suppress(OSError):
            self._script(peer)

    def close(self) -> None:
        self.server.close()
