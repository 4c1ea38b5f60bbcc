"""The PBX key never reaches a log line, in any spelling it travels in (issue 10: secrets)."""

from __future__ import annotations

import base64
from urllib.parse import quote, urlencode

import pytest

from tests.support.crm_fixture import seed_crm
from tests.support.live import IngestProcess, SimulatorThread, wait_for

# Every character that URLs encode, and a key that is not ASCII.
KEYS = ["ab+cd/ef=gh&x:%y k3y", "ключ/Секрет=42+&"]


def forms_of(key: str) -> set[str]:
    """How the key can look on the wire and in libraries' messages, worked out independently."""
    query = urlencode({"key": key}).removeprefix("key=")
    forms = {key, query, query.lower(), quote(key, safe=""), quote(key, safe="").lower()}
    raw = key.encode()
    forms |= {base64.b64encode(raw).decode(), base64.urlsafe_b64encode(raw).decode().rstrip("=")}
    return forms


@pytest.mark.parametrize("key", KEYS)
def test_no_spelling_of_the_key_is_logged_even_at_debug(conn, dsn, tmp_path, key):
    """API 3.0 carries the key in the WebSocket URL, which websockets logs at DEBUG. (API 2.0
    sends it in the handshake request, which nothing logs.)"""
    seed_crm(conn)
    sim = SimulatorThread(key)
    ingest = IngestProcess(dsn, sim.url, tmp_path, key)  # logs at DEBUG
    try:
        wait_for(lambda: sim.server.listeners() == 1, what="subscription with the key")
        sim.drop()  # a reconnect logs the URL again
        wait_for(lambda: sim.server.listeners() == 1, what="resubscription")
    finally:
        assert ingest.stop() == 0
        sim.close()
    log = ingest.log
    assert "***" in log, "the key was in a line that was logged, and blanked there"
    leaked = [form for form in forms_of(key) if form in log]
    assert leaked == [], f"key spellings in the log: {leaked}"
