"""A local append-only spool for frames the database could not take yet.

One JSON line per frame, fsync'd per batch; drained in order when the database is
back and on start-up. A crash mid-drain replays some frames, which the raw log's
dedup key makes harmless.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path


@dataclass(frozen=True)
class Frame:
    source: str
    received_at: datetime
    body: str


def frame_line(frame: Frame) -> str:
    """One frame as one JSON line (the spool's and the receive journal's format)."""
    entry = {
        "source": frame.source,
        "received_at": frame.received_at.isoformat(),
        "body": frame.body,
    }
    return json.dumps(entry, ensure_ascii=False) + "\n"


def read_frames(path: Path) -> list[Frame]:
    """The frames of a spool or journal file, in order; a torn last line (a crash in the
    middle of writing it) is left out: that write never completed."""
    frames = []
    with path.open(encoding="utf-8") as lines:
        for line in lines:
            if not line.endswith("\n"):
                break
            entry = json.loads(line)
            frames.append(
                Frame(entry["source"], datetime.fromisoformat(entry["received_at"]), entry["body"])
            )
    return frames


class Spool:
    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.path = directory / "frames.jsonl"
        self.path.touch(mode=0o600, exist_ok=True)
        self.depth = sum(1 for _ in self.path.open(encoding="utf-8"))

    def append(self, frames: list[Frame]) -> None:
        lines = "".join(frame_line(f) for f in frames)
        with self.path.open("a", encoding="utf-8") as out:
            out.write(lines)
            out.flush()
            os.fsync(out.fileno())
        self.depth += len(frames)

    def read(self) -> list[Frame]:
        return read_frames(self.path)

    def clear(self) -> None:
        with self.path.open("w") as out:
            out.flush()
            os.fsync(out.fileno())
        self.depth = 0
