"""`pgcti migrate`: versioned migrations (yoyo), then the logic files (db/logic), under one lock.

- Versioned migrations in db/migrations carry tables and data, recorded in yoyo's tables.
- db/logic holds every function, trigger and view body; ``logic.apply`` re-applies the
  files that changed (see ingester/install/logic.py for its guardrails).
- A database migrated by pgcti 0.1.0 (migrations 0001-0018) is adopted first by
  db/upgrades/from_0.1.0.sql.
- All of it runs in one transaction under yoyo's lock, so a failure leaves the database as
  it was; only a migration that cannot run in a transaction is left to yoyo on its own.
- ``plan`` does all of that in a transaction and rolls it back, so a DBA sees what would
  change, with a diff of each changed function, before anything does.
"""

from __future__ import annotations

import getpass
import os
import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, urlencode

import psycopg
from psycopg.conninfo import conninfo_to_dict
from yoyo import get_backend, read_migrations
from yoyo.exceptions import BadMigration

from ingester.install import crm_owner, logic
from ingester.install.migration_file import MigrateError, run_file
from ingester.install.outside import crm_dependants, footprint, roles_after_removal
from ingester.queries import SQL_DIR, composed, query

# yoyo's own bookkeeping tables live here, apart from the product's schema `cti`,
# so that rolling back everything leaves no `cti` objects and no tables in `public`.
BOOKKEEPING_SCHEMA = "pgcti_migrations"

# What pgcti 0.1.0 recorded; the baseline folds exactly these.
RELEASE_0_1_0 = [
    "0001_schemas_and_roles",
    "0002_config_and_phone",
    "0003_raw_event",
    "0004_crm_reference",
    "0005_crm_adapters",
    "0006_call_model",
    "0007_outbox_and_client_api",
    "0008_normalisers",
    "0009_call_logic",
    "0010_refresh_call",
    "0011_process_and_rebuild",
    "0012_history_views",
    "0013_grants",
    "0014_batch_processing",
    "0015_derive_in_one_query",
    "0016_field_paths_in_errors",
    "0017_refresh_in_sets",
    "0018_one_way_to_apply_facts",
]
BASELINE = "0001_baseline"


def migrations_dir() -> Path:
    override = os.environ.get("PGCTI_MIGRATIONS")
    if override:
        return Path(override)
    return SQL_DIR / "migrations"


def upgrades_dir() -> Path:
    return SQL_DIR / "upgrades"


def reference_crm_dir() -> Path:
    """db/reference_crm: the demo's and the tests' CRM, installed like a DBA's own adapters."""
    return SQL_DIR / "reference_crm"


REFERENCE_CRM_PREFIX = "refcrm_"


def yoyo_uri(dsn: str) -> str:
    """yoyo wants a URL with driver `postgresql+psycopg`; every libpq parameter rides as a query arg."""
    params = conninfo_to_dict(dsn)
    dbname = params.pop("dbname", "")
    params["schema"] = BOOKKEEPING_SCHEMA
    return f"postgresql+psycopg:///{quote(dbname)}?{urlencode(params)}"


@contextmanager
def _backend(dsn: str) -> Iterator:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(composed("bookkeeping_schema", BOOKKEEPING_SCHEMA))
    backend = get_backend(yoyo_uri(dsn))
    try:
        yield backend
    finally:
        backend.connection.close()


def include(dirs: list[str]) -> None:
    """Add a DBA's migration directories (--include) to those of PGCTI_EXTRA_MIGRATIONS."""
    if dirs:
        os.environ["PGCTI_EXTRA_MIGRATIONS"] = os.pathsep.join([*extra_dirs(), *dirs])


def extra_dirs() -> list[str]:
    """A DBA's own migrations (adapter overrides), applied together with pgcti's."""
    return [d for d in os.environ.get("PGCTI_EXTRA_MIGRATIONS", "").split(os.pathsep) if d]


def _all():
    """pgcti's migrations, the reference CRM's and the DBA's own (--include): every source
    of a migration this database may have applied. Which of them to apply: see _wanted."""
    migrations = read_migrations(str(migrations_dir()), str(reference_crm_dir()), *extra_dirs())
    for migration in migrations:
        try:
            migration.load()
        except BadMigration as exc:
            if "resolve dependencies" not in str(exc):
                raise MigrateError(f"{migration.path}: {exc}") from exc
            raise MigrateError(
                f"{migration.path} depends on a migration that is not there. If it names one of "
                "pgcti 0.1.0's (0001_schemas_and_roles ... 0018_one_way_to_apply_facts): since "
                f"0.2 they are one baseline, so change its '-- depends:' line to {BASELINE}"
            ) from exc
    return migrations


@dataclass
class Outcome:
    """What a migrate did (or, for a plan, would do)."""

    adopted: str | None = None  # the release whose history was folded into the baseline
    migrations: list[str] = field(default_factory=list)  # versioned migration ids
    logic: logic.Report = field(default_factory=logic.Report)
    notes: list[str] = field(default_factory=list)
    # What the change adds to or removes from objects outside pgcti's schemas (triggers,
    # grants, schemas, roles): ("trigger", "pgcti_phone_phone_write ON public.res_partner").
    outside_added: list[tuple[str, str]] = field(default_factory=list)
    outside_removed: list[tuple[str, str]] = field(default_factory=list)


def _adopt_0_1_0(conn: psycopg.Connection, migrations) -> str | None:
    """Fold pgcti 0.1.0's migration history into the baseline, inside the caller's transaction."""
    applied = dict(conn.execute(query("yoyo_applied")).fetchall())
    if BASELINE in applied or not set(RELEASE_0_1_0) & set(applied):
        return None
    missing = [m for m in RELEASE_0_1_0 if m not in applied]
    if missing:
        raise MigrateError(
            f"this database has only part of pgcti 0.1.0's migrations ({', '.join(missing)} "
            "missing): finish them with pgcti 0.1.0's `pgcti migrate` first, then run this one"
        )
    baseline = next(m for m in migrations if m.id == BASELINE)
    conn.execute((upgrades_dir() / "from_0.1.0.sql").read_text())
    conn.execute(query("as_myself"))  # the file works as cti_owner; the bookkeeping is ours
    conn.execute(
        query("yoyo_adopt"), {"old_ids": RELEASE_0_1_0, "hash": baseline.hash, "id": baseline.id}
    )
    # 0.1.0's schema crm became the reference CRM (renamed by the file above).
    reference = next(m for m in migrations if _is_reference_crm(m))
    conn.execute(query("yoyo_mark"), _yoyo_record(reference))
    return "0.1.0"


def _is_reference_crm(migration) -> bool:
    return migration.id.startswith(REFERENCE_CRM_PREFIX)


def _pending(conn: psycopg.Connection, migrations, reference_crm: bool) -> list:
    """The migrations to apply. The reference CRM's only when asked for, or when this
    database has it already (its later migrations then follow pgcti's)."""
    applied = dict(conn.execute(query("yoyo_applied")).fetchall())
    reference_crm = reference_crm or any(i.startswith(REFERENCE_CRM_PREFIX) for i in applied)
    return [
        m
        for m in migrations
        if m.hash not in applied.values() and (reference_crm or not _is_reference_crm(m))
    ]


def apply(dsn: str, reference_crm: bool = False) -> Outcome:
    """Apply pending versioned migrations, then changed logic files; report what was done.
    ``reference_crm``: install pgcti's reference CRM too (the demo's and the tests')."""
    return _migrate(dsn, commit=True, reference_crm=reference_crm)


def plan(dsn: str, reference_crm: bool = False) -> Outcome:
    """What `apply` would do, found by doing it in a transaction that is rolled back."""
    return _migrate(dsn, commit=False, reference_crm=reference_crm)


def _in_a_transaction(migration) -> bool:
    path = Path(migration.path)
    return path.suffix == ".sql" and "-- transactional: false" not in path.read_text()


def _migrate(dsn: str, commit: bool, reference_crm: bool) -> Outcome:
    """Adopt, migrate and apply the logic in one transaction, so a database is never left
    between releases: pgcti's versioned migrations, then the logic, then the DBA's own (and
    the reference CRM's), which may use any pgcti function. Only a migration that cannot run
    in a transaction (a DBA's Python migration, `-- transactional: false`) makes yoyo apply
    it on its own."""
    migrations = _all()
    check_rights(dsn)
    before = footprint(dsn)  # before yoyo's bookkeeping schema is made
    with _backend(dsn) as backend, backend.lock():
        backend.ensure_internal_schema_updated()
        outcome = Outcome()
        with psycopg.connect(dsn) as conn:
            conn.add_notice_handler(lambda diag: _raised_notice(diag, outcome.notes))
            try:
                since = logic.catalog(conn)
                outcome.adopted = _adopt_0_1_0(conn, migrations)
                pending = _pending(conn, migrations, reference_crm)
                outcome.migrations = [m.id for m in pending]
                ours = [m for m in pending if _is_pgctis(m)]
                _run_versioned(conn, backend, ours, commit, outcome)
                outcome.logic = _apply_logic(conn, since)
                if outcome.adopted:
                    conn.execute(query("recompute_reference_crm_numbers"))
                    outcome.notes.append(
                        "phone numbers are parsed anew: run `pgcti rebuild` so that the calls "
                        "already stored follow (the reference CRM's numbers were recomputed)"
                    )
                # Yours (and the reference CRM's) last, so they may use any pgcti function.
                theirs = [m for m in pending if not _is_pgctis(m)]
                _run_versioned(conn, backend, theirs, commit, outcome)
                _compare_footprints(outcome, before, footprint(conn))
                if commit:
                    conn.commit()
            finally:
                conn.rollback()  # a plan, or a failure: nothing stays
        return outcome


def _raised_notice(diag: psycopg.errors.Diagnostic, notes: list[str]) -> None:
    """What a migration tells the DBA with RAISE NOTICE (a step it could not take, and who
    can): shown with the outcome. The server's own notices (`..., skipping`) are not."""
    if "at RAISE" in (diag.context or ""):
        hint = f" ({diag.message_hint})" if diag.message_hint else ""
        notes.append(f"{diag.message_primary}{hint}")


def _compare_footprints(outcome, before: set, after: set) -> None:
    outcome.outside_added = sorted(after - before)
    outcome.outside_removed = sorted(before - after)


def check_rights(dsn: str) -> None:
    """Say at the start, not half-way, what the migrating user lacks and what to grant.
    A superuser has it all; otherwise: CREATE on the database (its owner has it), and to
    install, CREATEROLE (or ADMIN OPTION on cti_owner when another database made it);
    to upgrade, membership of cti_owner."""
    with psycopg.connect(dsn) as conn:
        (
            user,
            db,
            superuser,
            createrole,
            create_db,
            owner_exists,
            owner_admin,
            member,
            installed,
        ) = conn.execute(query("migrating_rights")).fetchone()
    if superuser:
        return
    missing = []  # what is missing, and who may give it
    if not create_db:
        missing.append(
            f"CREATE on the database (the database's owner or a superuser: "
            f"GRANT CREATE ON DATABASE {db} TO {user};)"
        )
    if installed and not member:
        missing.append(
            f"membership of cti_owner (a superuser, or a role with ADMIN OPTION on it: "
            f"GRANT cti_owner TO {user};)"
        )
    elif not installed and not owner_exists and not createrole:
        missing.append(
            f"the right to create pgcti's roles (a superuser: ALTER ROLE {user} CREATEROLE;)"
        )
    elif not installed and owner_exists and not owner_admin:
        missing.append(
            "ADMIN OPTION on cti_owner, made for another database (a superuser: "
            f"GRANT cti_owner TO {user} WITH ADMIN OPTION;)"
        )
    if missing:
        raise MigrateError(
            f"{user} cannot migrate {db}; it lacks "
            + " and ".join(missing)
            + ". The migrating user need not be a superuser: docs/dba-guide.md, 'Who runs migrate'"
        )


def _is_pgctis(migration) -> bool:
    return Path(migration.path).resolve().parent == migrations_dir().resolve()


def _run_versioned(conn: psycopg.Connection, backend, chosen: list, commit: bool, outcome) -> None:
    """Run versioned migrations in the caller's transaction; one that cannot run in a
    transaction makes yoyo apply the lot on its own, after what is done so far is committed."""
    if all(_in_a_transaction(m) for m in chosen):
        for migration in chosen:
            run_file(conn, Path(migration.path), crms=not _is_pgctis(migration))
            conn.execute(query("as_myself"))
            conn.execute(query("yoyo_mark"), _yoyo_record(migration))
    elif commit:
        conn.commit()  # yoyo applies each on a connection of its own
        backend.apply_migrations(chosen)
    else:
        outcome.notes.append(
            "a pending migration cannot be tried in a transaction: what follows is shown "
            "as if it had not run"
        )


def _yoyo_record(migration) -> dict[str, str]:
    """What yoyo itself records for an applied migration."""
    return {
        "hash": migration.hash,
        "id": migration.id,
        "log_id": str(uuid.uuid1()),
        "username": getpass.getuser(),
        "hostname": socket.getfqdn(),
    }


def _apply_logic(conn: psycopg.Connection, since) -> logic.Report:
    try:
        return logic.apply(conn, since=since)
    except logic.LogicError as exc:
        raise MigrateError(str(exc)) from exc  # the caller rolls back


@dataclass
class RolledBack:
    """What a rollback did, and what it left on purpose (shown by the CLI)."""

    migrations: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    outside_removed: list[tuple[str, str]] = field(default_factory=list)


class DependantsInTheWay(MigrateError):
    """Rolling back would drop objects of the CRM's that depend on pgcti's, by cascade."""


def rollback(dsn: str, count: int | None = None, drop_dependants: bool = False) -> RolledBack:
    """Roll back the newest ``count`` applied migrations (all when None). Refused while this
    database has migrations from a directory not given (--include): they would stay marked
    as applied over a database that no longer has them."""
    done = RolledBack()
    migrations = _all()
    before = footprint(dsn)
    with _backend(dsn) as backend, backend.lock():
        with psycopg.connect(dsn) as conn:
            applied_ids = [mid for mid, _ in conn.execute(query("yoyo_applied")).fetchall()]
        unknown = sorted(set(applied_ids) - {m.id for m in migrations})
        if unknown:
            raise MigrateError(
                f"this database has migrations from a directory not given here ({', '.join(unknown)}): "
                "pass --include DIR with the directory that holds them (your adapters), so that "
                "they roll back first"
            )
        applied = backend.to_rollback(migrations)
        chosen = applied if count is None else applied[:count]
        dependants = crm_dependants(dsn) if any(_is_pgctis(m) for m in chosen) else []
        listed = "; ".join(f"{what} (uses {uses})" for what, uses in dependants)
        if dependants and not drop_dependants:
            raise DependantsInTheWay(
                f"rolling back pgcti would drop {len(dependants)} object(s) of yours that "
                f"depend on it: {listed}. Drop or change them first, or pass "
                "--drop-dependants to have them dropped with pgcti"
            )
        if all(_in_a_transaction(m) for m in chosen):
            # One transaction, as apply: a failure leaves everything as it was.
            with psycopg.connect(dsn) as conn:
                for migration in chosen:
                    undo = Path(migration.path).with_suffix(".rollback.sql")
                    if undo.exists():  # as for yoyo, no rollback file: nothing to undo
                        run_file(conn, undo, crms=not _is_pgctis(migration))
                        conn.execute(query("as_myself"))
                    conn.execute(query("yoyo_unmark"), _yoyo_record(migration))
        else:
            backend.rollback_migrations(chosen)
        done.migrations = [m.id for m in chosen]
        if dependants:
            done.notes.append(f"dropped with pgcti (--drop-dependants): {listed}")
    with psycopg.connect(dsn, autocommit=True) as conn:
        installed = conn.execute(query("cti_installed")).fetchone()[0]
        if installed and not any(_is_pgctis(m) for m in chosen):
            # Your adapters are gone: pgcti's placeholders take their place. When none of
            # your migrations is left, every adapter is pgcti's again, also those a rollback
            # could not drop (cti.crm_deals, which the sales funnel's view uses).
            left = [m for m in applied[len(chosen) :] if not _is_pgctis(m)]
            with conn.transaction():
                logic.apply(conn)
                if not left:
                    logic.reset_adapters(conn)
            done.notes.append("pgcti's placeholder adapters are back (no CRM is connected)")
        if not installed and len(chosen) == len(applied):
            conn.execute(composed("drop_bookkeeping_schema", BOOKKEEPING_SCHEMA))
        if not installed:
            done.notes += roles_after_removal(conn)
    done.outside_removed = sorted(before - footprint(dsn))
    return done


def owner_sql(dsn: str, rollback: bool = False) -> list[crm_owner.OwnerStatement]:
    """What the owner of the CRM's objects must run for the DBA's migrations (--include) to
    apply, or, with ``rollback``, for them and pgcti to roll back: their GRANTs (REVOKEs)
    that the DSN's user may not run and that are not in effect, and, to roll back, dropping
    pgcti's triggers on the owner's tables. Changes nothing."""
    theirs = [m for m in _all() if not _is_pgctis(m) and not _is_reference_crm(m)]
    with psycopg.connect(dsn) as conn:
        has_bookkeeping, has_cti = conn.execute(query("pgcti_schemas_exist")).fetchone()
        applied = (
            set(dict(conn.execute(query("yoyo_applied")).fetchall()).values())
            if has_bookkeeping
            else set()
        )
        if rollback:
            files = [Path(m.path).with_suffix(".rollback.sql") for m in reversed(theirs)]
            texts = [
                f.read_text()
                for m, f in zip(reversed(theirs), files, strict=True)
                if m.hash in applied and f.exists()
            ]
        else:
            texts = [Path(m.path).read_text() for m in theirs if m.hash not in applied]
        needed = []
        if rollback and has_cti:  # the triggers first: they read the tables being revoked
            needed += [
                crm_owner.OwnerStatement(sql, owner, may_run=False, in_effect=False)
                for owner, sql in conn.execute(query("crm_phone_trigger_drops")).fetchall()
            ]
        needed += crm_owner.owners_part(conn, texts)
        conn.rollback()
    return needed


def listing(dsn: str) -> list[tuple[str, bool]]:
    with _backend(dsn) as backend:
        migrations = _all()
        applied = {m.id for m in backend.to_rollback(migrations)}
        return [
            (m.id, m.id in applied)
            for m in migrations
            if m.id in applied or not _is_reference_crm(m)
        ]
