"""The replay window: the frames committed in the last seconds, kept to be written again.

After a failover to a standby that had not yet received the old primary's last commits
(asynchronous replication), those frames would be lost with it. The writer writes the
window again on every new connection; where the frames are already, the raw log's dedup
key skips them (docs/operations.md, "High availability").
"""

from __future__ import annotations

import time
from collections import deque

from ingester.frame import Frame

REPLAY_WINDOW = 10.0  # seconds, by default (--replay-window)
MAX_REPLAY_BYTES = 16 * 2**20  # however many seconds that is, memory stays bounded


class ReplayWindow:
    def __init__(self, seconds: float = REPLAY_WINDOW) -> None:
        self.seconds = seconds
        self._recent: deque[tuple[float, Frame]] = deque()
        self._bytes = 0

    def remember(self, batch: list[Frame]) -> None:
        """Keep what was just committed; forget what is older than the window."""
        if self.seconds <= 0:
            return
        now = time.monotonic()
        for frame in batch:
            self._recent.append((now, frame))
            self._bytes += len(frame.body)
        while self._recent and (
            self._recent[0][0] < now - self.seconds or self._bytes > MAX_REPLAY_BYTES
        ):
            self._bytes -= len(self._recent.popleft()[1].body)

    def frames(self) -> list[Frame]:
        """What was committed within the window, oldest first."""
        cutoff = time.monotonic() - self.seconds
        return [frame for at, frame in self._recent if at >= cutoff]
