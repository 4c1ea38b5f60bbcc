"""An AMI peer that is no Asterisk (issue 29, parts 8 and 9): a banner of 17 MiB without a
line end, a banner full of ESC bytes from a peer that hangs up after each login. The
ingester treats both as a broken link: it stays up (exit 2 is for what a person must fix),
tries again less and less often, and logs a short, escaped excerpt."""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Callable, Iterator

import pytest

from tests.support.live import IngestProcess, RawPeer

# Clamped at 17 MiB by the peer, as in the audit.
HUGE = 17 * 2**20


@pytest.fixture
def peer_factory() -> Iterator[Callable[[Callable[[socket.socket], None]], RawPeer]]:
    made: list[RawPeer] = []

    def make(script: Callable[[socket.socket], None]) -> RawPeer:
        made.append(RawPeer(script))
        return made[-1]

    yield make
    for peer in made:
        peer.close()


def _huge_banner(peer: socket.socket) -> None:
    chunk = b"A" * 2**20
    for _ in range(HUGE // len(chunk)):
        peer.sendall(chunk)
    time.sleep(5)


def _escaping_banner(peer: socket.socket) -> None:
    peer.sendall(b"\x1b[2J\x1b]0;owned\x07" + b"\x1b[31m" * (2**20 // 5) + b"\r\n")
    peer.settimeout(2)
    with contextlib.suppress(TimeoutError):
        peer.recv(4096)  # the login; then hang up


def _ingest(dsn: str, port: int, tmp_path) -> IngestProcess:
    return IngestProcess(
        dsn, f"ami://pgcti@127.0.0.1:{port}", tmp_path, "s3cret", "--pbx", "asterisk"
    )


def test_a_huge_banner_is_a_broken_link_not_a_refusal(dsn, tmp_path, peer_factory):
    peer = peer_factory(_huge_banner)
    ingest = _ingest(dsn, peer.port, tmp_path)
    try:
        time.sleep(6)
        assert ingest.proc.poll() is None, f"the ingester exited:\n{ingest.log[-2000:]}"
    finally:
        code = ingest.stop()
    log = ingest.log
    assert code == 0
    assert "not an AMI banner: no line end in 256 bytes (AAAA" in log, log[-2000:]
    assert len(log) < 20_000, f"{len(log)} characters of log"


def test_a_chatty_peer_gets_a_short_escaped_log_and_a_growing_backoff(dsn, tmp_path, peer_factory):
    peer = peer_factory(_escaping_banner)
    ingest = _ingest(dsn, peer.port, tmp_path)
    try:
        time.sleep(8)
    finally:
        ingest.stop()
    log = ingest.log
    assert "\x1b" not in log and "\x07" not in log, "raw control characters in the log"
    assert "not an AMI banner: no line end in 256 bytes (\\x1b[2J\\x1b]0;owned\\x07" in log, log[
        -2000:
    ]
    assert len(log) < 20_000, f"{len(log)} characters of log"
    gaps = [b - a for a, b in zip(peer.connections, peer.connections[1:], strict=False)]
    # 3.6 reconnects a second before; now 0.5, 1, 2, 4 s apart at most (jittered down to half).
    assert len(peer.connections) <= 6, peer.connections
    assert gaps and gaps[-1] > gaps[0], gaps
