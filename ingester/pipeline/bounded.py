"""What the raw log keeps of a frame that cannot be kept whole: its size, SHA-256, the first
KB (escaped to ASCII) and why. The raw log keeps a row for every frame the PBX sent."""

from __future__ import annotations

HEAD_CHARS = 1024
PREFIX = "pgcti ingester: "  # how every bounded record begins


def bounded_body(why: str, size: int, sha256: str, head: str) -> str:
    """`why` says what happened to the frame, for example "the database refused this frame
    (value too long)"; `head` is the frame's beginning as text."""
    escaped = head[:HEAD_CHARS].encode("unicode_escape").decode("ascii")
    return f"{PREFIX}{why}; {size} bytes, sha256 {sha256}; it began: {escaped}"
