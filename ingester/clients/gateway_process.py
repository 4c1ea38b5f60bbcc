"""`pgcti gateway` as a child process on a free loopback port, for the demo, the latency
benchmark and the gateway tests: started, and waited for until it listens."""

from __future__ import annotations

import asyncio
import socket
import sys


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def command(dsn: str, port: int, *extra: str) -> list[str]:
    """The argv of `pgcti gateway` on 127.0.0.1:`port`, as this Python runs it."""
    return [
        sys.executable,
        "-m",
        "ingester.cli",
        "gateway",
        "--dsn",
        dsn,
        "--port",
        str(port),
        *extra,
    ]


def listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


async def start(dsn: str, output, *extra: str) -> tuple[asyncio.subprocess.Process, int]:
    """The gateway's process and port; `output` takes what it prints (a file, or DEVNULL)."""
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        *command(dsn, port, *extra), stdout=output, stderr=asyncio.subprocess.STDOUT
    )
    for _ in range(150):  # up within a few seconds
        if listening(port):
            return process, port
        await asyncio.sleep(0.1)
    process.kill()
    raise RuntimeError(f"pgcti gateway did not listen on port {port} within 15 s")
