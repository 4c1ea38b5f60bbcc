"""Asterisk AMI as a source (issue 13, parts 1 and 2): the real ingester against a
simulated AMI over a real TCP socket, replaying real captures where they exist
(../shared/reference/ami-captures/, read in place, never copied here)."""

from __future__ import annotations

import asyncio
import os
import threading
from pathlib import Path

import psycopg
import pytest

from ingester.simulator.ami_server import AmiServer, blocks_of
from tests.live import IngestProcess, wait_for

# Beside the project root (../shared/reference/ami-captures), or where PGCTI_AMI_CAPTURES says.
CAPTURES = Path(
    os.environ.get("PGCTI_AMI_CAPTURES")
    or Path(__file__).resolve().parents[2] / "shared" / "reference" / "ami-captures"
)
SECRET = "s3cr3t+/=:&%-ami"
CHAN_VARIABLES = (
    "Event: Newchannel\r\nPrivilege: call,all\r\nChannel: PJSIP/101-00000007\r\n"
    "ChannelState: 0\r\nCallerIDNum: 101\r\nExten: 84951234567\r\nContext: from-internal\r\n"
    "Uniqueid: 1700000000.7\r\nLinkedid: 1700000000.7\r\n"
    "ChanVariable: DIALEDPEERNUMBER=\r\nChanVariable: CDR(accountcode)=sales"
)


class AmiThread:
    """The simulated AMI on a loopback port, driven from test code."""

    def __init__(self, secret: str = SECRET) -> None:
        self.loop = asyncio.new_event_loop()
        self.server = AmiServer("pgcti", secret)
        threading.Thread(target=self.loop.run_forever, daemon=True).start()
        self._call(self.server.start())

    def _call(self, coro, timeout: float = 30):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def send(self, blocks: list[str]) -> int:
        async def go() -> int:
            return sum([await self.server.send(b) for b in blocks])

        return self._call(go())

    def drop(self) -> int:
        return self._call(self.server.drop_clients())

    def close(self) -> None:
        self._call(self.server.stop())


@pytest.fixture
def ami():
    server = AmiThread()
    yield server
    server.close()


def _stored(dsn: str) -> list[tuple]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(
            "SELECT r.body, r.frame, o.status, o.detail FROM cti.raw_event r"
            " JOIN cti.event_outcome o ON o.raw_event_id = r.id"
            " WHERE r.source = 'asterisk' ORDER BY r.id"
        ).fetchall()


def _ingest(dsn, ami, tmp_path, key=SECRET) -> IngestProcess:
    return IngestProcess(dsn, ami.server.url, tmp_path, key, "--pbx", "asterisk")


def test_every_block_of_a_real_capture_is_stored_verbatim_and_parsed(dsn, ami, tmp_path):
    capture = CAPTURES / "cacofonisk-2.ami"
    if not capture.exists():
        pytest.skip(
            f"no real AMI captures at {CAPTURES} (reference data beside the project, never "
            "copied into it; set PGCTI_AMI_CAPTURES to their folder)"
        )
    blocks = blocks_of(capture)
    ingest = _ingest(dsn, ami, tmp_path)
    try:
        wait_for(lambda: ami.server.listeners() == 1, what="the AMI login")
        assert ami.send(blocks) == len(blocks)
        # the simulator's own FullyBooted after the login, then every block of the capture
        wait_for(lambda: len(_stored(dsn)) == len(blocks) + 1, timeout=30, what="every block")
    finally:
        assert ingest.stop() == 0, ingest.log
    rows = _stored(dsn)[1:]
    assert [r[0] for r in rows] == blocks, "verbatim, in order, twice-sent blocks twice"
    for body, frame, status, detail in rows:
        assert frame["Event"] == body.split("\r\n")[0].split(": ", 1)[1]
        assert len(frame["fields"]) == len(body.split("\r\n"))
        assert status == "ignored" and "not derived from AMI yet" in detail
    assert SECRET not in ingest.log and "logged in to the AMI as pgcti" in ingest.log


def test_repeated_keys_are_all_kept(dsn, ami, tmp_path):
    ingest = _ingest(dsn, ami, tmp_path)
    try:
        wait_for(lambda: ami.server.listeners() == 1, what="the AMI login")
        ami.send([CHAN_VARIABLES])
        wait_for(lambda: len(_stored(dsn)) == 2, what="the block stored")
    finally:
        ingest.stop()
    body, frame, _status, _detail = _stored(dsn)[1]
    assert body == CHAN_VARIABLES
    assert [v for k, v in frame["fields"] if k == "ChanVariable"] == [
        "DIALEDPEERNUMBER=",
        "CDR(accountcode)=sales",
    ]


def test_a_wrong_secret_is_a_clear_error_not_a_retry_storm(dsn, tmp_path):
    ami = AmiThread(secret="the-real-one")
    try:
        ingest = _ingest(dsn, ami, tmp_path, key="not-the-secret-42")
        assert ingest.proc.wait(20) == 2
        assert "the AMI refused the login of 'pgcti': Authentication failed" in ingest.log
        assert "not-the-secret-42" not in ingest.log
        assert ami.server.refused == 1
    finally:
        ami.close()


def test_a_dropped_link_reconnects_says_why_and_loses_nothing_after(dsn, ami, tmp_path):
    ingest = _ingest(dsn, ami, tmp_path)
    try:
        wait_for(lambda: ami.server.listeners() == 1, what="the AMI login")
        assert ami.drop() == 1
        wait_for(lambda: ami.server.logins == 2 and ami.server.listeners() == 1, what="a new login")
        ami.send([CHAN_VARIABLES])
        wait_for(lambda: any(r[0] == CHAN_VARIABLES for r in _stored(dsn)), what="the block after")
    finally:
        assert ingest.stop() == 0
    assert "AMI connection dropped (the PBX closed the connection); reconnecting" in ingest.log


def test_a_url_with_the_secret_in_it_is_refused(dsn, tmp_path):
    from tests.conftest import run_cli

    done = run_cli(
        "ingest",
        "--dsn",
        dsn,
        "--pbx",
        "asterisk",
        "--url",
        "ami://pgcti:pw@127.0.0.1:5038",
        env={"PGCTI_PBX_KEY": SECRET},
        check=False,
    )
    assert done.returncode == 2 and "not in the URL" in done.stderr
    assert "pw@" not in done.stderr
