"""An AMI block's parse in the raw log (cti.ami_block, db/logic/30_raw_log.sql) against a
reading of its lines in Python, over every block of every real capture and odd ones."""

from __future__ import annotations

import re

from ingester.simulator.ami_server import blocks_of
from tests.support.ami_captures import real_captures

REPEATED_KEYS = (
    "Event: Newchannel\r\nChanVariable: A=1\r\nChanVariable: B=\r\nChannel: PJSIP/101-07"
)


def _lines_say(body: str) -> dict:
    """What an AMI block's lines say, read independently of the SQL: Event from the first
    line whose key is Event (any case), and every `Key: Value` line in order."""
    lines = re.split(r"\r?\n", body)
    event = next(
        (ln.split(":", 1)[-1].strip(" ") for ln in lines if ln.split(":", 1)[0].lower() == "event"),
        None,
    )
    fields = [[k, v.lstrip(" ")] for k, v in (ln.split(":", 1) for ln in lines if ":" in ln)]
    return {"Event": event, "fields": fields}


def test_every_block_of_every_real_capture_parses_as_its_lines_say(conn):
    blocks = [b for f in real_captures() for b in blocks_of(f)]
    odd = ["", "no colon", "Event\nfoo: bar", "a\r\r\nEvent: x\r", ":\n:x\nEVENT:  Y \nk: v\rw"]
    blocks += [b.replace("\r\n", "\n") for b in blocks[:50]] + [REPEATED_KEYS] + odd
    parsed = conn.execute("SELECT cti.ami_block(b) FROM unnest(%s::text[]) b", [blocks]).fetchall()
    assert len(blocks) > 500
    for body, (frame,) in zip(blocks, parsed, strict=True):
        assert frame == _lines_say(body), body
