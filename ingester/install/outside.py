"""What pgcti puts outside its own schemas, and what a rollback leaves there: triggers on
the CRM's tables, grants to its roles, its schemas and group roles (`pgcti migrate` and
`--plan` list what a change adds and removes), the CRM's objects that depend on pgcti's,
and the roles a full rollback drops or keeps."""

from __future__ import annotations

import psycopg

from ingester.queries import composed, query

# pgcti's group roles, each made by a versioned migration (tests/operations/test_migrations.py
# keeps this true): what `migrate` reports as its own, added, removed or kept.
ROLES = (
    "cti_owner",
    "cti_ingester",
    "cti_client",
    "cti_gateway",
    "cti_dialer",
    "cti_router",
    "cti_reader",
)


def footprint(where: str | psycopg.Connection) -> set[tuple[str, str]]:
    """pgcti's triggers, grants, schemas and roles on objects outside its schemas."""
    if isinstance(where, psycopg.Connection):
        return set(where.execute(query("outside_footprint"), {"roles": list(ROLES)}).fetchall())
    with psycopg.connect(where) as conn:
        return footprint(conn)


def crm_dependants(dsn: str) -> list[tuple[str, str]]:
    """The CRM's objects that pgcti's removal would drop by cascade, each with what of
    pgcti's it uses, every name schema-qualified."""
    with psycopg.connect(dsn, options="-c search_path=pg_catalog") as conn:
        return conn.execute(query("crm_objects_on_cti")).fetchall()


def roles_after_removal(conn: psycopg.Connection) -> list[str]:
    """Once pgcti is gone from this database: its group roles that nothing holds (no login
    is a member, no database depends on them) are dropped, and the others named with why
    they stay. The rollbacks of 0008, 0022 and 0023 cannot drop theirs, as pgcti's
    functions still have grants to them when those run; they go here."""
    notes = []
    for (role,) in conn.execute(query("roles_unused"), {"roles": list(ROLES)}).fetchall():
        try:
            conn.execute(composed("drop_role_if_exists", role))
        except psycopg.errors.InsufficientPrivilege:  # made by someone else, for another database
            notes.append(f"kept role {role}: dropping it needs ADMIN OPTION on it")
        except (psycopg.errors.DependentObjectsStillExist, psycopg.errors.DeadlockDetected):
            pass  # another database took it up, or drops it at this moment: kept, said below
    kept = conn.execute(query("roles_left"), {"roles": list(ROLES)}).fetchall()
    return notes + [f"kept role {role}: {why}" for role, why in kept]
