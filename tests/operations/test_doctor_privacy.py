"""`pgcti doctor` prints no secret and no person (issue 28, part 6): its output is pasted
into tickets and chats. Each case runs the real command."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from ingester.redaction import spellings
from ingester.simulator import onlinepbx3_calls as pbx
from tests.conftest import run_cli
from tests.support.crm_fixture import LINE, builder, insert_frames, seed_crm
from tests.support.live import RawPeer

# A key with characters that URLs and JSON spell otherwise.
KEY = "s3cr3t/Key+with=odd&chars"


def _config(tmp_path, url: str, pbx_kind: str | None = None) -> str:
    key = tmp_path / "pbx.key"
    key.write_text(KEY)
    key.chmod(0o600)
    config = tmp_path / "pgcti.toml"
    kind = f'pbx = "{pbx_kind}"\n' if pbx_kind else ""
    config.write_text(
        f'[ingest]\n{kind}url = "{url}"\nkey_file = "{key}"\nspool_dir = "{tmp_path / "spool"}"\n'
    )
    return str(config)


def _no_key_in(text: str) -> None:
    for spelling in spellings(KEY):
        assert spelling not in text, f"the key, spelled {spelling!r}, was printed:\n{text}"


def test_a_url_that_is_no_websocket_url_shows_no_key(dsn, tmp_path):
    out = run_cli(
        "doctor", "--dsn", dsn, "--config", _config(tmp_path, "http://pbx.example/"), check=False
    )
    assert out.returncode == 1 and "FAIL  pbx" in out.stdout, out.stdout
    _no_key_in(out.stdout + out.stderr)


def _refuse_quoting_the_secret(peer: socket.socket) -> None:
    """An AMI peer that refuses every login and quotes the secret back."""
    peer.sendall(b"Asterisk Call Manager/9.0.0\r\n")
    login = b""
    while b"\r\n\r\n" not in login:
        chunk = peer.recv(4096)
        if not chunk:
            break
        login += chunk
    secret = next(
        (
            line.split(b":", 1)[1].strip()
            for line in login.split(b"\r\n")
            if line.lower().startswith(b"secret:")
        ),
        b"",
    )
    peer.sendall(
        b"Response: Error\r\nActionID: pgcti-login\r\nMessage: Authentication failed for secret "
        + secret
        + b"\r\n\r\n"
    )


@pytest.fixture
def echoing_ami() -> Iterator[int]:
    peer = RawPeer(_refuse_quoting_the_secret)
    yield peer.port
    peer.close()


def test_a_pbx_that_echoes_the_key_in_its_refusal_shows_no_key(dsn, tmp_path, echoing_ami):
    config = _config(tmp_path, f"ami://pgcti@127.0.0.1:{echoing_ami}", "asterisk")
    out = run_cli("doctor", "--dsn", dsn, "--config", config, check=False)
    assert out.returncode == 1 and "FAIL  pbx" in out.stdout, out.stdout
    assert "Authentication failed for secret ***" in out.stdout, out.stdout
    _no_key_in(out.stdout + out.stderr)


def test_doctor_names_no_caller_and_no_client(dsn, conn):
    seed_crm(conn)  # Ivan Ivanov of Romashka owns +74951234567
    insert_frames(conn, pbx.inbound_answered(builder(3), "+7 (495) 123-45-67", LINE, "101"))
    assert conn.execute("SELECT count(*) FROM cti.call").fetchone() == (1,)

    out = run_cli("doctor", "--dsn", dsn, check=False).stdout
    lookup = next(line for line in out.splitlines() if "crm_lookup(" in line)
    assert "1 client(s)" in lookup and "+7495*****67" in lookup, out
    for personal in ("+74951234567", "4951234567", "Ivan", "Ivanov", "Romashka", "Petrova"):
        assert personal not in out, f"{personal!r} in doctor's output:\n{out}"
