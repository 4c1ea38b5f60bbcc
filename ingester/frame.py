"""A frame: one message from a PBX as it arrived, the unit every room passes on untouched."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class Frame:
    source: str  # the PBX dialect: onlinepbx3, onlinepbx2, asterisk
    received_at: datetime
    body: str
