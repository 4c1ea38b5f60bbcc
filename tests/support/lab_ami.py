"""The Asterisk lab's own AMI connection (tests/support/asterisk_lab.py): it places and
transfers calls and reads the events the tests wait for. pgcti reads with its own user."""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Callable

LAB_SECRET = "pgcti-lab-driver"


class Ami:
    """User `lab`, every class: actions, and every event kept in order."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.buffer = b""
        self.events: list[dict[str, str]] = []
        self._read_line()  # the banner
        self.action("Login", Username="lab", Secret=LAB_SECRET)

    def _read_line(self) -> bytes:
        while b"\r\n" not in self.buffer:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("Asterisk closed the lab's AMI connection")
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\r\n", 1)
        return line

    def _read_block(self) -> dict[str, str]:
        block: dict[str, str] = {}
        while True:
            line = self._read_line().decode("utf-8", "replace")
            if not line:
                if block:
                    return block
                continue
            key, _, value = line.partition(": ")
            block.setdefault(key, value)

    def action(self, name: str, **fields: str) -> dict[str, str]:
        action_id = f"lab-{time.monotonic_ns()}"
        lines = [f"Action: {name}", f"ActionID: {action_id}"]
        lines += [f"{k}: {v}" for k, v in fields.items()]
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        while True:
            block = self._read_block()
            if block.get("ActionID") == action_id and "Response" in block:
                if block["Response"] == "Error":
                    raise RuntimeError(f"AMI {name} failed: {block.get('Message')}")
                return block
            if "Event" in block:
                self.events.append(block)

    def wait_event(
        self, match: Callable[[dict[str, str]], bool], timeout: float, what: str
    ) -> dict[str, str]:
        """The first event (seen before or arriving within `timeout`) that matches."""
        seen = 0
        deadline = time.monotonic() + timeout
        while True:
            for event in self.events[seen:]:
                if match(event):
                    return event
            seen = len(self.events)
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"waited {timeout:.0f} s for {what}")
            self.sock.settimeout(left)
            try:
                self.events.append(self._read_block())
            except TimeoutError:
                pass
            finally:
                self.sock.settimeout(10)

    def channels(self) -> list[dict[str, str]]:
        """The live channels, as CoreShowChannels lists them."""
        self.action("CoreShowChannels")
        done = self.wait_event(
            lambda e: e.get("Event") == "CoreShowChannelsComplete", 10, "the channel list"
        )
        at = self.events.index(done)
        listed = [e for e in self.events[:at] if e.get("Event") == "CoreShowChannel"]
        del self.events[: at + 1]
        latest: dict[str, dict[str, str]] = {}
        for e in listed:
            latest[e["Channel"]] = e
        return list(latest.values())

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()
