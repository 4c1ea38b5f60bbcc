"""Health and Prometheus metrics over HTTP (/metrics, /healthz), one registry per ingester."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from wsgiref.simple_server import WSGIRequestHandler, make_server

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.received = Counter("pgcti_frames_received", "Frames received from the PBX", registry=r)
        self.stored = Counter(
            "pgcti_frames_stored",
            "Frames committed to cti.raw_event (replays included)",
            registry=r,
        )
        self.spooled = Counter(
            "pgcti_frames_spooled", "Frames written to the local spool", registry=r
        )
        self.rejected = Counter(
            "pgcti_frames_rejected",
            "Frames the database refused, logged with the reason",
            registry=r,
        )
        self.doorbells_skipped = Counter(
            "pgcti_doorbells_skipped",
            "NOTIFY doorbells the database left out because its queue was filling (see cti.doorbell_skip)",
            registry=r,
        )
        self.reconnects = Counter("pgcti_reconnects", "Reconnections", ["target"], registry=r)
        self.pbx_blind = Counter(
            "pgcti_pbx_blind_seconds",
            "Seconds the PBX link was down: what the PBX sent then is lost (it replays nothing)",
            registry=r,
        )
        self.replayed = Counter(
            "pgcti_frames_replayed",
            "Frames written again after a reconnection (the replay window)",
            registry=r,
        )
        self.batch_seconds = Histogram(
            "pgcti_batch_seconds",
            "Time to commit one batch",
            registry=r,
            buckets=(0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1, 5),
        )
        self.spool_depth = Gauge("pgcti_spool_depth", "Frames waiting in the spool", registry=r)
        self.pbx_connected = Gauge(
            "pgcti_pbx_connected", "1 while subscribed to the PBX", registry=r
        )
        self.db_connected = Gauge(
            "pgcti_db_connected", "1 while the database takes writes", registry=r
        )
        # Why the database refuses writes (not migrated, a right missing), while it does.
        self.db_problem: str | None = None
        # Why the receive journal cannot be written (a full disk), while it cannot.
        self.journal_problem: str | None = None
        # Why the spool cannot be written (a full disk while the database is away).
        self.spool_problem: str | None = None

    def health(self) -> tuple[bool, dict[str, object]]:
        state = {
            "pbx_connected": bool(self.pbx_connected._value.get()),
            "db_connected": bool(self.db_connected._value.get()),
            "spool_depth": int(self.spool_depth._value.get()),
            "db_problem": self.db_problem,
            "journal_problem": self.journal_problem,
            "spool_problem": self.spool_problem,
        }
        healthy = (
            state["pbx_connected"]
            and state["db_connected"]
            and self.db_problem is None
            and self.journal_problem is None
            and self.spool_problem is None
        )
        return bool(healthy), state


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, *args: object) -> None:  # scrapes are not log-worthy
        pass


def serve(metrics: Metrics, port: int, host: str = "127.0.0.1") -> Callable[[], None]:
    """Serve /metrics and /healthz in a daemon thread; returns a function that stops it."""

    def app(environ, start_response):
        if environ.get("PATH_INFO") == "/healthz":
            healthy, state = metrics.health()
            start_response(
                "200 OK" if healthy else "503 Service Unavailable",
                [("Content-Type", "application/json")],
            )
            return [json.dumps(state).encode()]
        start_response("200 OK", [("Content-Type", CONTENT_TYPE_LATEST)])
        return [generate_latest(metrics.registry)]

    server = make_server(host, port, app, handler_class=_QuietHandler)
    threading.Thread(target=server.serve_forever, name="pgcti-metrics", daemon=True).start()
    return server.shutdown
