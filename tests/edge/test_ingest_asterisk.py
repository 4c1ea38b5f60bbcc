"""Asterisk AMI as a source: the real ingester against a simulated AMI over a real TCP
socket, replaying real captures where they exist (../shared/reference/ami-captures/, read
in place, never copied here): every block stored, every call in them derived."""

from __future__ import annotations

import asyncio
import threading

import psycopg
import pytest

from ingester.simulator.ami_server import AmiServer, blocks_of
from tests.conftest import run_cli
from tests.support.ami_captures import real_captures
from tests.support.crm_fixture import KNOWN, LINE, builder, seed_crm
from tests.support.live import IngestProcess, wait_for

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


def _replay(dsn, ami, tmp_path, blocks: list[str]) -> IngestProcess:
    """`pgcti ingest --pbx asterisk` takes every block the simulated AMI sends, then stops."""
    ingest = _ingest(dsn, ami, tmp_path)
    try:
        wait_for(lambda: ami.server.listeners() == 1, what="the AMI login")
        assert ami.send(blocks) == len(blocks)
        # the simulator's own FullyBooted after the login, then every block sent
        wait_for(lambda: len(_stored(dsn)) == len(blocks) + 1, timeout=60, what="every block")
    finally:
        assert ingest.stop() == 0, ingest.log
    return ingest


def test_every_block_of_a_real_capture_is_stored_verbatim_and_parsed(dsn, ami, tmp_path):
    (capture,) = [f for f in real_captures() if f.name == "cacofonisk-2.ami"]
    blocks = blocks_of(capture)
    ingest = _replay(dsn, ami, tmp_path, blocks)
    rows = _stored(dsn)[1:]
    assert [r[0] for r in rows] == blocks, "verbatim, in order, twice-sent blocks twice"
    for body, frame, status, detail in rows:
        assert frame["Event"] == body.split("\r\n")[0].split(": ", 1)[1]
        assert len(frame["fields"]) == len(body.split("\r\n"))
        assert status in ("processed", "ignored"), detail
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


# Every call of every real capture: (direction, answered_by, extension_chain, outcome) by
# Linkedid, as the capture's own project describes its flow (the captures' README).
CAPTURED_CALLS = {
    # a queue rings two members (Local/ channels, optimised away), 150010002 answers
    "cacofonisk-1.ami": {
        "195176c06ab8-1529938920.367": ("inbound", "150010002", ["150010002"], "answered")
    },
    # a queue: 150010003 is busy, 150010002 answers
    "cacofonisk-2.ami": {
        "195176c06ab8-1529939196.518": ("inbound", "150010002", ["150010002"], "answered")
    },
    # the caller hangs up while the member rings
    "cacofonisk-3.ami": {"40a7a1f2a669-1585318545.326": ("inbound", None, [], "abandoned")},
    # a queue call answered by 150010001, blind-transferred to 202 (150010002)
    "cacofonisk-4.ami": {
        "f29ea68048f6-1530023464.2539": (
            "inbound",
            "150010001",
            ["150010001", "150010002"],
            "answered",
        )
    },
    # a queue call answered by 150010001, attended transfer to 202 (150010002): the
    # consultation (its own Linkedid) joins the customer's call
    "cacofonisk-5.ami": {
        "f29ea68048f6-1530022819.2433": (
            "inbound",
            "150010001",
            ["150010001", "150010002"],
            "answered",
        )
    },
    # attended transfer from 150010001 to 203 (150010003)
    "cacofonisk-6.ami": {
        "07b796be1962-1530001217.664": (
            "inbound",
            "150010001",
            ["150010001", "150010003"],
            "answered",
        )
    },
    # blind transfer to a ring group (401): 150010002 and 150010003 ring, 150010003 answers
    "cacofonisk-7.ami": {
        "f29ea68048f6-1530014341.278": (
            "inbound",
            "150010001",
            ["150010001", "150010003"],
            "answered",
        )
    },
    # one outbound call from peer 9170-12 (extension 9170: the site's adapter) over a trunk
    "goami2-1.ami": {"1598887681.60": ("outbound", "9170", ["9170"], "answered")},
    # Asterisk 11 (no Linkedid, pre-2.0 names): stored and noted, no call derived
    "panoramisk-1.ami": {},
}

# goami2's site names a device peer "9170-12": the adapter a DBA overrides says which extension.
PEER_9170 = """CREATE OR REPLACE FUNCTION cti.crm_extension_for_channel(p_channel text) RETURNS text
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT CASE WHEN p_channel LIKE 'SIP/9170-12-%' THEN '9170'
                ELSE substring(p_channel FROM '^[A-Za-z0-9]+/([0-9]+)-[0-9a-fA-F]+$') END
$$"""


def test_every_call_of_every_real_capture_is_derived(dsn, ami, tmp_path):
    """Done-when of issue 13: `pgcti ingest --pbx asterisk` against a replay of each real
    capture gives call_history_v1 rows keyed by Linkedid, naming the device peers that
    answered and received transfers."""
    files = real_captures()
    assert {f.name for f in files} == set(CAPTURED_CALLS), "a capture without expectations here"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(PEER_9170)
    _replay(dsn, ami, tmp_path, [b for f in files for b in blocks_of(f)])
    with psycopg.connect(dsn) as conn:
        calls = {
            row[0]: row[1:]
            for row in conn.execute(
                "SELECT pbx_call_id, direction, answered_by, extension_chain, outcome FROM cti.call_history_v1"
            )
        }
        failed = conn.execute(
            "SELECT count(*) FROM cti.event_outcome WHERE status = 'failed'"
        ).fetchone()[0]
        notes = {d for (d,) in conn.execute("SELECT DISTINCT detail FROM cti.event_outcome")}
    expected = {k: v for by_call in CAPTURED_CALLS.values() for k, v in by_call.items()}
    assert calls == expected
    assert failed == 0
    assert (
        'event "Dial" is from Asterisk 11 or older (before AMI 2.0), which pgcti does not read'
        in notes
    )
    # `pgcti rebuild` derives the same history again from the raw log (merges included).

    run_cli("rebuild", "--dsn", dsn)
    with psycopg.connect(dsn) as conn:
        again = {
            row[0]: row[1:]
            for row in conn.execute(
                "SELECT pbx_call_id, direction, answered_by, extension_chain, outcome FROM cti.call_history_v1"
            )
        }
    assert again == expected


def test_pings_keep_the_link_and_a_silent_link_is_dropped_and_reconnected(monkeypatch, caplog):
    """The transport against the simulated AMI over a real socket, its clock shortened: a
    Ping every 0.2 s; a PBX that stops answering for 1 s counts as dropped, and the
    ingester says why and logs in again."""
    from ingester.pipeline.metrics import Metrics
    from ingester.pipeline.transports import asterisk_ami
    from ingester.redaction import Secret

    monkeypatch.setattr(asterisk_ami, "PING_EVERY", 0.2)
    monkeypatch.setattr(asterisk_ami, "SILENT_FOR", 1.0)
    caplog.set_level("INFO", logger="pgcti.asterisk")

    async def go() -> tuple[int, int, int]:
        server = AmiServer("pgcti", SECRET)
        await server.start()
        frames = []

        async def deliver(frame) -> None:
            frames.append(frame)

        link = asyncio.create_task(asterisk_ami.run(server.url, Secret(SECRET), deliver, Metrics()))
        try:
            await asyncio.sleep(1.5)  # talking: pinged and answered, never dropped
            talking = (server.pings, server.logins)
            server.mute = True
            for _ in range(60):  # muted: dropped after 1 s of silence, then a new login
                await asyncio.sleep(0.1)
                if server.logins == 2:
                    break
            return talking[0], talking[1], server.logins
        finally:
            link.cancel()
            await server.stop()

    pings, logins_while_talking, logins = asyncio.run(go())
    assert pings >= 4 and logins_while_talking == 1
    assert logins == 2
    assert "AMI connection dropped (nothing from the AMI for 1s); reconnecting" in caplog.text


def test_hostile_blocks_are_stored_and_the_calls_after_them_go_on(dsn, ami, tmp_path):
    """Blocks a broken or hostile PBX could send: NUL, bytes that are not UTF-8, a field of
    100 kB, injection-shaped strings, no Event line. Each is stored (NUL and bad bytes as
    backslash escapes) with an outcome that says what it was; the ordinary call after them
    is derived as usual."""
    from ingester.simulator import onlinepbx3_calls as pbx
    from ingester.simulator.asterisk_calls import from_onlinepbx3_timed

    with psycopg.connect(dsn, autocommit=True) as conn:
        seed_crm(conn)
    hostile: list[str | bytes] = [
        "Event: Newchannel\r\nChannel: PJSIP/101-0000000a\r\nCallerIDNum: 8\x00495\r\n"
        "Exten: 102\r\nUniqueid: 1.1\r\nLinkedid: 1.1",
        b"Event: Hangup\r\nChannel: PJSIP/101-0000000a\r\nCause-txt: \xff\xfe caf\xc3\r\n"
        b"Cause: 16\r\nUniqueid: 1.1\r\nLinkedid: 1.1",
        "Event: VarSet\r\nVariable: BIG\r\nValue: " + "x" * 100_000,
        "Event: VarSet\r\nVariable: HUGE\r\nValue: " + "y" * (17 * 2**20),  # over 16 MiB, one line
        "Event: Hangup\r\nChannel: '; DROP TABLE cti.raw_event; --\r\nUniqueid: {{7*7}}\r\n"
        "Linkedid: %s%s%n\r\nCause: \u202e16",
        "Response: Success\r\nMessage: not an event, just a stray response",
        "Channel: PJSIP/101-0000000b\r\nUniqueid: 1.2",
    ]
    b = builder(6)
    call = [
        blk
        for _, blk in from_onlinepbx3_timed(b.times, pbx.inbound_answered(b, KNOWN, LINE, "101"))
    ]
    ingest = _ingest(dsn, ami, tmp_path)
    try:
        wait_for(lambda: ami.server.listeners() == 1, what="the AMI login")
        assert ami.send(hostile + call) == len(hostile) + len(call)
        # FullyBooted, every hostile block that has an Event line (the huge one as a
        # bounded record), and the call
        wait_for(
            lambda: len(_stored(dsn)) == 1 + 5 + len(call), timeout=30, what="every event block"
        )
    finally:
        assert ingest.stop() == 0, ingest.log
    rows = _stored(dsn)[1:]
    assert "CallerIDNum: 8\\x00495" in rows[0][0] and rows[0][2] == "processed"
    assert "Cause-txt: \\xff\\xfe caf\\xc3" in rows[1][0] and rows[1][2] == "processed"
    assert len(rows[2][0]) > 100_000 and rows[2][2] == "ignored"
    body, _frame, status, _detail = rows[3]
    assert (
        body.startswith("pgcti ingester: an AMI block over 16 MiB, read past")
        and status == "failed"
    )
    assert "it began: Event: VarSet\\r\\nVariable: HUGE" in body, body[:300]
    assert rows[4][2] == "processed"  # a leg named {{7*7}} in a call %s%s%n: data, nothing more
    with psycopg.connect(dsn) as conn:
        calls = conn.execute(
            "SELECT external_number, answered_by, outcome FROM cti.call_history_v1"
            " WHERE external_number IS NOT NULL"
        ).fetchall()
        tables = conn.execute("SELECT count(*) FROM cti.raw_event").fetchone()[0]
    assert calls == [("+74951234567", "101", "answered")] and tables == 1 + 5 + len(call)
    assert "Traceback" not in ingest.log
