"""NOTIFY payloads carry a type and ids only, over a whole day's mix of calls: any role can LISTEN."""

from __future__ import annotations

import json

import psycopg

from ingester.simulator.traffic import Traffic
from tests.support.crm_fixture import KNOWN, SHARED, channel, insert_frames, seed_crm


def test_every_doorbell_is_type_seq_and_call_id(conn, dsn):
    crm = seed_crm(conn)
    channels = [channel(conn, "ws", crm[w]) for w in ("ws-101", "ws-102", "ws-103")]
    channels += [channel(conn, "emp", crm[e]) for e in ("Petrova", "Sidorov")]
    traffic = Traffic(
        9, [KNOWN, SHARED, "89160001122"], ["101", "102", "103", "104"], unknown_share=0.3
    )
    with psycopg.connect(dsn, autocommit=True) as listener:
        for name in channels:
            listener.execute(f'LISTEN "{name}"')
        for n in range(60):
            insert_frames(conn, [frame for _, frame in traffic.call(1_764_000_000.0 + n * 100)])
        bells = list(listener.notifies(timeout=1))
    assert len(bells) > 60
    sent = conn.execute("SELECT count(*) FROM cti.outbox").fetchone()[0]
    assert len(bells) == sent, "one doorbell per command"
    for bell in bells:
        payload = json.loads(bell.payload)
        assert set(payload) == {"type", "seq", "call_id"}, bell.payload
        assert payload["type"] in {"ring", "open_card", "close_card", "call_ended", "callback_task"}
        assert isinstance(payload["seq"], int) and isinstance(payload["call_id"], int)
