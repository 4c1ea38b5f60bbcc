"""A local append-only spool for frames the database could not take yet.

One record per frame, fsync'd per batch; drained in order when the database is back and
on start-up. A crash mid-drain replays some frames, which the raw log's dedup key makes
harmless.

A record is one line, `v1 <length> <crc32> <json>`, so a reader can tell a whole record
from a torn one (a kill or power cut in the middle of an append) or a damaged one. On
opening, a torn tail is cut off (so that the next append does not glue onto it) and a
damaged record is moved aside to a `corrupt-*.bin` file; both are logged with their
sizes, and start-up goes on. Lines of 0.1.0's format (plain JSON) are still read.
"""

from __future__ import annotations

import json
import logging
import os
import time
import zlib
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from ingester.frame import Frame

log = logging.getLogger("pgcti.spool")


def frame_line(frame: Frame) -> str:
    """One frame as one record (the spool's and the receive journal's format)."""
    entry = {
        "source": frame.source,
        "received_at": frame.received_at.isoformat(),
        "body": frame.body,
    }
    payload = json.dumps(entry, ensure_ascii=True)  # ASCII: the length is in bytes and chars
    return f"v1 {len(payload)} {zlib.crc32(payload.encode()):08x} {payload}\n"


@dataclass
class Recovered:
    """What a spool or journal file holds: whole records, and what was not whole."""

    frames: list[Frame] = field(default_factory=list)
    torn_bytes: int = 0  # an unfinished last record (a crash while appending it)
    corrupt: list[bytes] = field(default_factory=list)  # whole lines that fail their check
    whole_bytes: int = 0  # where the last whole line ends


def _parse(line: bytes) -> Frame | None:
    try:
        if line.startswith(b"v1 "):
            _, length, crc, payload = line.split(b" ", 3)
            if len(payload) != int(length) or zlib.crc32(payload) != int(crc, 16):
                return None
        elif line.startswith(b"{"):  # 0.1.0's plain JSON lines
            payload = line
        else:
            return None
        entry = json.loads(payload)
        return Frame(entry["source"], datetime.fromisoformat(entry["received_at"]), entry["body"])
    except (ValueError, KeyError, TypeError):
        return None


def read_records(path: Path) -> Recovered:
    """Every whole record of a file, in order; never raises on what a crash or a bad disk left."""
    data = path.read_bytes()
    found = Recovered()
    start = 0
    while (end := data.find(b"\n", start)) != -1:
        line = data[start:end]
        frame = _parse(line)
        if frame is None:
            found.corrupt.append(line)
        else:
            found.frames.append(frame)
        start = end + 1
    found.whole_bytes = start
    found.torn_bytes = len(data) - start
    return found


def report(path: Path, found: Recovered) -> None:
    """Say what a crash or a bad disk left in a file, and keep damaged records aside."""
    if found.torn_bytes:
        log.warning(
            "%s: cut %d byte(s) of a record that was never finished (a crash while writing it)",
            path,
            found.torn_bytes,
        )
    if found.corrupt:
        aside = path.with_name(f"corrupt-{time.strftime('%Y%m%dT%H%M%S')}-{path.name}.bin")
        with aside.open("ab") as out:
            out.write(b"\n".join(found.corrupt) + b"\n")
        log.error(
            "%s: %d damaged record(s) (%d bytes) fail their checksum; moved to %s",
            path,
            len(found.corrupt),
            sum(len(c) for c in found.corrupt),
            aside,
        )


def sync_directory(directory: Path) -> None:
    """fsync a directory, so that the names created or renamed in it survive a power cut."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Spool:
    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.path = directory / "frames.jsonl"
        if not self.path.exists():
            self.path.touch(mode=0o600)
            sync_directory(directory)
        found = read_records(self.path)
        if found.torn_bytes or found.corrupt:
            report(self.path, found)
            self._rewrite(found.frames)
        self.depth = len(found.frames)

    def _rewrite(self, frames: list[Frame]) -> None:
        """Replace the file by its whole records, atomically (write, fsync, rename)."""
        fresh = self.path.with_suffix(".tmp")
        with fresh.open("w", encoding="utf-8") as out:
            out.write("".join(frame_line(f) for f in frames))
            out.flush()
            os.fsync(out.fileno())
        fresh.chmod(0o600)
        os.replace(fresh, self.path)
        sync_directory(self.path.parent)

    def _still_there(self) -> bool:
        """Whether the file exists; one deleted under us (an over-eager clean-up) is said so,
        and its directory recreated, rather than failing."""
        if self.path.exists():
            return True
        if self.depth:
            log.error("%s disappeared with %d frame(s) in it", self.path, self.depth)
            self.depth = 0
        if not self.path.parent.is_dir():
            log.error("the spool directory %s was deleted; recreating it", self.path.parent)
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        return False

    def append(self, frames: list[Frame]) -> None:
        created = not self._still_there()
        lines = "".join(frame_line(f) for f in frames)
        with self.path.open("a", encoding="utf-8") as out:
            out.write(lines)
            out.flush()
            os.fsync(out.fileno())
        if created:
            sync_directory(self.path.parent)
        self.depth += len(frames)

    def read(self) -> list[Frame]:
        return read_records(self.path).frames if self._still_there() else []

    def clear(self) -> None:
        self._still_there()
        with self.path.open("w") as out:
            out.flush()
            os.fsync(out.fileno())
        self.depth = 0
