"""A baresip SIP phone of the Asterisk lab (tests/support/asterisk_lab.py), driven over its
ctrl_tcp port: netstring-framed JSON commands (dial, accept, hangup, answermode, uanew,
uafind)."""

from __future__ import annotations

import json
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Phone:
    """One baresip SIP phone: `number` is its SIP user (a desk's extension, or the
    caller's number for the carrier), driven over ctrl_tcp."""

    name: str
    number: str
    sip_port: int
    ctrl_port: int
    folder: Path
    process: subprocess.Popen | None = None
    answer: str = "auto"
    callers: set[str] = field(default_factory=set)  # the carrier's other numbers

    def command(self, command: str, params: str = "") -> dict:
        payload = json.dumps({"command": command, "params": params, "token": command}).encode()
        with socket.create_connection(("127.0.0.1", self.ctrl_port), timeout=5) as ctrl:
            ctrl.sendall(b"%d:%s," % (len(payload), payload))
            data = b""
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                data += ctrl.recv(65536)
                while data:
                    length, _, rest = data.partition(b":")
                    if not length.isdigit() or len(rest) < int(length) + 1:
                        break
                    message = json.loads(rest[: int(length)])
                    data = rest[int(length) + 1 :]
                    if message.get("response"):
                        return message
        raise TimeoutError(f"phone {self.name}: no answer to {command}")

    def dial(self, target: str) -> None:
        self.command("dial", target)

    def accept(self) -> None:
        self.command("accept")

    def hangup(self) -> None:
        self.command("hangup")
