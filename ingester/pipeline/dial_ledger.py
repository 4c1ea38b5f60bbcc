"""The dial ledger: the ids of the dial requests this edge has sent, on disk before each send.

The database's claim (state `sent`, committed before the edge sends) is what keeps two
edges from sending one request. The ledger covers what the database cannot: a failover to
a replica that had not yet received the claim's commit hands the request out again, and
this edge refuses it because its ledger, fsync'd before the send, has the id. Ids are kept
for KEEP_SECONDS, far longer than a request lives (cti.config.dial_expire_after).
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from pathlib import Path

log = logging.getLogger("pgcti.dial")
KEEP_SECONDS = 24 * 3600


class DialLedger:
    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._sent: dict[str, float] = {}
        now = time.time()
        with contextlib.suppress(FileNotFoundError):
            for line in path.read_text().splitlines():
                at, _, request = line.partition(" ")
                with contextlib.suppress(ValueError):
                    if request and now - float(at) < KEEP_SECONDS:
                        self._sent[request] = float(at)
        # Rewritten without the old ids, then appended to: one line per send.
        fresh = path.with_suffix(".new")
        fresh.write_text("".join(f"{at:.3f} {r}\n" for r, at in self._sent.items()))
        os.replace(fresh, path)
        self._file = path.open("a")

    def __contains__(self, request: str) -> bool:
        return request in self._sent

    def __len__(self) -> int:
        return len(self._sent)

    def record(self, request: str) -> None:
        """On disk (fsync'd) before the request goes to the PBX; raises OSError when it
        cannot be, and then the request is not sent."""
        at = time.time()
        self._file.write(f"{at:.3f} {request}\n")
        self._file.flush()
        os.fsync(self._file.fileno())
        self._sent[request] = at

    def close(self) -> None:
        self._file.close()
