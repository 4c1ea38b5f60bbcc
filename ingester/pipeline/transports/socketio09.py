"""socket.io 0.9 framing over a plain WebSocket: the few packet types onlinePBX API 2.0 uses.

A packet is `type:id:endpoint:data`: 0 disconnect, 1 connect, 2 heartbeat, 5 event
(data is {"name": ..., "args": [...]}), 7 error, 8 noop. No maintained Python
client speaks 0.9, and the wire format is this small, so it is written out here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

DISCONNECT, CONNECT, HEARTBEAT, EVENT, ERROR, NOOP = "0", "1", "2", "5", "7", "8"


@dataclass(frozen=True)
class Packet:
    type: str
    data: str = ""


def decode(text: str) -> Packet:
    parts = text.split(":", 3)
    if len(parts) < 2 or not parts[0].isdigit():
        raise ValueError(f"not a socket.io 0.9 packet: {text[:40]!r}")
    return Packet(parts[0], parts[3] if len(parts) == 4 else "")


def event(name: str, *args: object) -> str:
    return f"{EVENT}:::" + json.dumps({"name": name, "args": list(args)}, ensure_ascii=False)


def parse_handshake(body: str) -> tuple[str, float, float, list[str]]:
    """`sid:heartbeat:close:transports` -> (sid, heartbeat timeout s, close timeout s, transports)."""
    sid, heartbeat, close, transports = body.strip().split(":", 3)
    return sid, float(heartbeat or 0), float(close or 0), transports.split(",")
