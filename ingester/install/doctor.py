"""`pgcti doctor`: is this installation fit to run? One line per check, then an exit code.

Each check says ok, warn (works, but look) or FAIL (pops will not arrive), with what it
saw and what to do. Exit code: 0 when nothing failed, 1 otherwise.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg

from ingester import database
from ingester.install import logic, migrations
from ingester.pipeline.journal import Journal
from ingester.pipeline.metrics import Metrics
from ingester.pipeline.spool import Spool
from ingester.pipeline.transports import receive
from ingester.queries import query
from ingester.redaction import redact

OK, WARN, FAIL = "ok", "warn", "FAIL"


@dataclass
class Finding:
    status: str
    check: str
    detail: str

    def line(self) -> str:
        # Every spelling of the PBX key is blanked, whoever put it in the detail (an error
        # that quotes the URL, a PBX that echoes the key in its refusal).
        return redact(f"{self.status:<5} {self.check:<12} {self.detail}")


def masked(number: str) -> str:
    """A phone number with its middle hidden: doctor's output is pasted into tickets, and a
    caller's number is personal data (+79161112233 -> +7916*****33)."""
    keep = 5 if number.startswith("+") else 4
    if len(number) <= keep + 2:
        return "*" * len(number)
    return number[:keep] + "*" * (len(number) - keep - 2) + number[-2:]


def _database_checks(dsn: str, sample: str | None) -> Iterator[Finding]:
    where = database.redact(dsn)
    try:
        conn = psycopg.connect(dsn, autocommit=True, connect_timeout=10)
    except psycopg.OperationalError as exc:
        reason = str(exc).strip().splitlines()[-1]
        yield Finding(FAIL, "connect", f"{where}: {reason}")
        return
    with conn:
        version, db, user = conn.execute(query("doctor_server")).fetchone()
        yield Finding(OK, "connect", f"{user}@{db}, PostgreSQL {version}")
        if not conn.execute(query("cti_installed")).fetchone()[0]:
            yield Finding(FAIL, "migrations", "pgcti is not installed here: run `pgcti migrate`")
            return
        yield _migrations(dsn)
        yield _logic(conn)
        yield from _logins(conn)
        yield from _adapters(conn, sample)
        yield _ingester(conn)
        yield _callbacks(conn)
        yield _outbox(conn)
        usage = conn.execute("SELECT pg_notification_queue_usage()").fetchone()[0]
        status = OK if usage < 0.5 else WARN
        yield Finding(
            status,
            "notify",
            f"NOTIFY queue {usage:.1%} used"
            + (
                ""
                if status == OK
                else ": a listener is not reading; doorbells are skipped near full"
            ),
        )


def _migrations(dsn: str) -> Finding:
    try:
        pending = [mid for mid, applied in migrations.listing(dsn) if not applied]
    except migrations.MigrateError as exc:
        return Finding(FAIL, "migrations", str(exc))
    if pending:
        return Finding(
            FAIL, "migrations", f"not applied: {', '.join(pending)}: run `pgcti migrate`"
        )
    return Finding(OK, "migrations", "every versioned migration is applied")


def _logic(conn: psycopg.Connection) -> Finding:
    files = logic.read_files()
    stale = logic.stale(conn, files)
    # The after-any-change files (the grants) come along with any other: name the cause.
    names = [f.name for f in stale if "after-any-change" not in f.directives] or [
        f.name for f in stale
    ]
    if names:
        return Finding(FAIL, "logic", f"not current: {', '.join(names)}: run `pgcti migrate`")
    return Finding(OK, "logic", f"{len(files)} logic files current")


def _logins(conn: psycopg.Connection) -> Iterator[Finding]:
    for group, registered, problems in conn.execute(query("doctor_logins")).fetchall():
        status = FAIL if registered == 0 else (WARN if problems else OK)
        detail = f"{registered} {group} login(s) ready"
        if registered == 0:
            detail += ": none can work here; see docs/dba-guide.md, 'Roles'"
        if problems:
            detail += f"; {problems}"
        yield Finding(status, "logins", detail)


# Adapters of optional features: their placeholders leave the feature without its CRM
# side, which is worth a warning, not a failure.
OPTIONAL_ADAPTERS = {
    "crm_line_owner": "missed calls of clients without a manager go to "
    "cti.config.callback_default_owner, if one is set",
    "crm_deals": "the sales funnel shows no deals",
    "crm_extension_for_workstation": "click-to-call cannot place calls (no desk has an "
    "extension to dial from)",
    "crm_extension_for_employee": "routing cannot ring a client's manager first",
    "crm_workstation_name": "screens show workstations by id",
    "crm_employee_name": "the wallboard and the report show employees by id",
}


# A lookup runs once per call, inside the INSERT of the frame that makes the number known;
# a lone frame's whole processing is about 0.5-1 ms here (docs/performance.md).
SLOW_LOOKUP_MS = 20.0


def _lookup_ms(conn: psycopg.Connection, number: str) -> float:
    """The lookup's time in the server, the best of five (the first may read from disk)."""
    plans = [conn.execute(query("doctor_lookup_plan"), [number]).fetchone()[0] for _ in range(5)]
    return min(plan[0]["Execution Time"] for plan in plans)


def _adapters(conn: psycopg.Connection, sample: str | None) -> Iterator[Finding]:
    live = [name for (name,) in conn.execute(query("doctor_placeholder_adapters"))]
    for name in (n for n in live if n in OPTIONAL_ADAPTERS):
        yield Finding(WARN, "adapters", f"{name} is pgcti's placeholder: {OPTIONAL_ADAPTERS[name]}")
    placeholders = [name for name in live if name not in OPTIONAL_ADAPTERS]
    if placeholders:
        yield Finding(
            FAIL,
            "adapters",
            f"pgcti's placeholders are live ({', '.join(placeholders)}): no client is found, "
            "no card opens; install your adapters (docs/adapters.md) or --with-reference-crm",
        )
        return
    number = sample or conn.execute(query("doctor_sample_number")).fetchone()[0]
    try:
        with conn.transaction(force_rollback=True):  # an adapter may write; nothing stays
            found = conn.execute(query("doctor_lookup"), [number]).fetchall()
            lookup_ms = _lookup_ms(conn, number)
            recipients = conn.execute(query("doctor_recipients")).fetchone()[0]
    except psycopg.Error as exc:
        yield Finding(
            FAIL, "adapters", f"crm_lookup({masked(number)!r}) fails: {exc.diag.message_primary}"
        )
        return
    # Counts only: no client's name leaves the database through doctor.
    if any(client_id is None for client_id, _ in found):
        yield Finding(
            WARN, "adapters", f"crm_lookup({masked(number)!r}) gives rows without a client_id"
        )
    else:
        yield Finding(OK, "adapters", f"crm_lookup({masked(number)!r}): {len(found)} client(s)")
    if lookup_ms > SLOW_LOOKUP_MS:
        yield Finding(
            WARN,
            "adapters",
            f"crm_lookup takes {lookup_ms:.1f} ms: every new call waits for it while its frame is "
            "stored; look numbers up through pgcti's phone directory, or index the CRM's own "
            "E.164 column (docs/adapters.md)",
        )
    else:
        yield Finding(OK, "adapters", f"crm_lookup answers in {lookup_ms:.2f} ms")
    replanned = [name for (name,) in conn.execute(query("doctor_adapters_planned_per_call"))]
    if replanned:
        yield Finding(
            WARN,
            "adapters",
            f"{', '.join(replanned)}: LANGUAGE sql with SET clauses, which this PostgreSQL plans "
            "again on every call (a lookup 0.17 ms instead of 0.02 on 15); write them as "
            "SQL-standard bodies, BEGIN ATOMIC (docs/adapters.md)",
        )
    if recipients == 0:
        yield Finding(WARN, "adapters", "crm_ring_recipients gives nobody: no ring notifications")
    else:
        yield Finding(OK, "adapters", f"{recipients} employee(s) hear rings")


# An ingester ticks every 60 s by default; three missed ticks mean it is not writing here.
TICK_OVERDUE_SECONDS = 180.0


def _ago(seconds: float) -> str:
    return f"{seconds:.0f} s ago" if seconds < 120 else f"{seconds / 60:.0f} min ago"


def _ingester(conn: psycopg.Connection) -> Finding:
    tick, frame = conn.execute(query("doctor_last_frames")).fetchone()
    seen = [
        f"the last tick of an ingester came {_ago(float(tick))}" if tick is not None else None,
        f"the last PBX frame came {_ago(float(frame))}" if frame is not None else None,
    ]
    detail = "; ".join(x for x in seen if x) or "no frame in the raw log yet"
    # An ingester writes here if either is recent (a PBX frame before its first tick, say).
    if any(age is not None and float(age) <= TICK_OVERDUE_SECONDS for age in (tick, frame)):
        return Finding(OK, "ingester", detail)
    return Finding(
        WARN,
        "ingester",
        f"{detail}: no ingester has written here for {TICK_OVERDUE_SECONDS / 60:.0f} minutes "
        "(it ticks every 60 s unless --tick-seconds is 0): is `pgcti ingest` running, and can "
        "it reach this database? (journalctl -u pgcti-ingest; its /healthz)",
    )


def _callbacks(conn: psycopg.Connection) -> Finding:
    open_, overdue, ownerless, policy = conn.execute(query("doctor_callbacks")).fetchone()
    detail = f"{open_} open callback task(s), {overdue} past due"
    if ownerless:
        return Finding(
            WARN,
            "callbacks",
            f"{detail}; {ownerless} with no owner, so nobody is told to call back "
            f"(policy {{{policy}}} found nobody): set cti.config.callback_default_owner "
            "(docs/dba-guide.md, 'Callback tasks'), then `pgcti rebuild` gives them one",
        )
    return Finding(OK, "callbacks", detail)


def _outbox(conn: psycopg.Connection) -> Finding:
    items, keep, stalled = conn.execute(query("doctor_outbox")).fetchone()
    detail = f"about {items} item(s); acknowledged ones are kept " + (
        f"{keep}" if keep else "for ever (cti.config.outbox_keep is NULL)"
    )
    if not stalled:
        return Finding(OK, "outbox", detail)
    shown = ", ".join(stalled[:5]) + (f" and {len(stalled) - 5} more" if len(stalled) > 5 else "")
    first_kind, first_id = stalled[0].split()
    return Finding(
        WARN,
        "outbox",
        f"{detail}; {len(stalled)} stream(s) with items unacknowledged for longer ({shown}): "
        "they stay until their client acknowledges them; for a desk or employee gone for good, "
        f"a DBA acknowledges for it: SELECT cti.ack('{first_kind}', {first_id}, 9223372036854775807)",
    )


def _spool_checks(spool_dir: Path) -> Iterator[Finding]:

    if not spool_dir.exists():
        yield Finding(OK, "spool", f"{spool_dir}: not created yet (nothing waiting)")
        return
    try:
        depth = Spool(spool_dir).depth
        left = len(Journal(spool_dir / "journal").left_over())
    except OSError as exc:
        yield Finding(FAIL, "spool", f"{spool_dir}: {exc.strerror}: check its owner and mode")
        return
    status = OK if depth == 0 and left == 0 else WARN
    detail = f"{spool_dir}: {depth} frame(s) spooled, {left} in the journal"
    if status == WARN:
        detail += ": the ingester writes them first when it starts and the database takes them"
    yield Finding(status, "spool", detail)


def _pbx_check(settings) -> Finding:

    metrics = Metrics()

    async def deliver(_frame) -> None:
        return None

    async def probe() -> Finding:
        task = asyncio.create_task(receive(settings, deliver, metrics))
        try:
            for _ in range(100):
                if task.done():
                    break
                if metrics.pbx_connected._value.get():
                    return Finding(OK, "pbx", f"{settings.url}: the key is accepted")
                await asyncio.sleep(0.1)
            if task.done() and task.exception() is not None:
                return Finding(FAIL, "pbx", f"{settings.url}: {task.exception()}")
            return Finding(FAIL, "pbx", f"{settings.url}: no answer within 10 s")
        finally:
            task.cancel()

    return asyncio.run(probe())


def run(
    dsn: str, settings, spool_dir: Path | None, sample: str | None, out: Callable[[str], None]
) -> int:
    findings: list[Finding] = []

    def report(finding: Finding) -> None:
        findings.append(finding)
        out(finding.line())

    for finding in _database_checks(dsn, sample):
        report(finding)
    if spool_dir is not None:
        for finding in _spool_checks(spool_dir):
            report(finding)
    if settings is not None:
        report(_pbx_check(settings))
    failed = [f for f in findings if f.status == FAIL]
    out(
        f"{len(findings)} checks: {len(failed)} failed, {sum(f.status == WARN for f in findings)} to look at"
    )
    return 1 if failed else 0
