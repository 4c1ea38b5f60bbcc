"""What only the owner of a CRM's tables may run: the GRANTs and REVOKEs of a DBA's adapter
migrations, and dropping pgcti's triggers on those tables.

In a real CRM the application's role owns the tables, not the DBA who installs pgcti. A
DBA's migration may hold GRANT and REVOKE statements on the CRM's objects; before it runs,
each one the migrating user may not run (it is not the object's owner, nor a member of it)
is checked: already in effect (the owner ran it), it is skipped; otherwise the migration
stops before anything changes, with one line that says who must run what
(`pgcti crm-owner-sql` prints it all).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import psycopg
import sqlparse

from ingester.queries import query

_PRIVILEGE_STATEMENT = re.compile(
    r"^(GRANT|REVOKE)\s+(?!GRANT\s+OPTION)(?P<privileges>[A-Z ,]+?)\s+ON\s+"
    r"(?:(?P<kind>TABLE|SCHEMA|SEQUENCE)\s+)?(?P<objects>.+?)\s+(?:TO|FROM)\s+(?P<grantee>[\w\"]+)\s*;?$",
    re.IGNORECASE | re.DOTALL,
)


# Objects of other kinds than a table, a sequence or a schema: left to the server as written.
_OTHER_KINDS = re.compile(
    r"^(ALL|FUNCTION|PROCEDURE|ROUTINE|TYPE|DOMAIN|DATABASE|LANGUAGE|LARGE|FOREIGN|TABLESPACE|PARAMETER)\b",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class OwnerStatement:
    """A GRANT or REVOKE on one object of the CRM's."""

    sql: str  # the statement for this object alone, as its owner runs it
    owner: str
    may_run: bool  # the migrating user is the owner, a member of it, or a superuser
    in_effect: bool  # the owner has run it already (a GRANT held, a REVOKE done)


def _split(statement: str) -> list[tuple[str, str, str, list[str], str]] | None:
    """(verb, kind, object, privileges, grantee) per object of a GRANT/REVOKE, else None."""
    bare = " ".join(sqlparse.format(statement, strip_comments=True).split())
    match = _PRIVILEGE_STATEMENT.match(bare)
    if not match:
        return None
    kind = (match["kind"] or "TABLE").upper()
    privileges = [p.strip().upper() for p in match["privileges"].split(",") if p.strip()]
    objects = [o.strip() for o in match["objects"].split(",") if o.strip()]
    if _OTHER_KINDS.match(match["objects"]) or any(p.startswith("ALL") for p in privileges):
        return None  # functions, types, ON ALL TABLES IN SCHEMA, ALL PRIVILEGES: as written
    return [(match[1].upper(), kind, o, privileges, match["grantee"]) for o in objects]


def statements(conn: psycopg.Connection, text: str) -> list[tuple[str, list[OwnerStatement]]]:
    """Each GRANT/REVOKE of ``text`` (a migration) with what it means per object."""
    found = []
    for statement in sqlparse.split(text):
        parts = _split(statement)
        if not parts:
            continue
        found.append((statement, [_judge(conn, *part) for part in parts]))
    return found


def _judge(
    conn: psycopg.Connection, verb: str, kind: str, obj: str, privileges: list[str], grantee: str
) -> OwnerStatement:
    try:
        with conn.transaction():
            owner, may_run, in_effect = conn.execute(
                query("crm_privilege_state"),
                {
                    "kind": kind,
                    "object": obj,
                    "privileges": privileges,
                    "grantee": grantee.strip('"'),
                    "grant": verb == "GRANT",
                },
            ).fetchone()
    except psycopg.Error:
        # A name this check cannot read (15 refuses some to_regclass cannot parse): the
        # statement runs as written and the server says what it thinks of it.
        owner, may_run, in_effect = None, True, False
    target = f"{kind} {obj}" if kind != "TABLE" else obj
    to = "TO" if verb == "GRANT" else "FROM"
    sql = f"{verb} {', '.join(privileges)} ON {target} {to} {grantee};"
    return OwnerStatement(sql, owner or "?", bool(may_run), bool(in_effect))


class OwnerMustRun(Exception):
    """Statements of a migration that only the CRM's owner may run, not yet run by it."""

    def __init__(self, missing: list[OwnerStatement]) -> None:
        self.missing = missing
        owners = sorted({m.owner for m in missing})
        first = missing[0].sql.rstrip(";")
        more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
        super().__init__(
            f"{first}{more} can only be run by the owner ({', '.join(owners)}): run "
            "`pgcti crm-owner-sql` with the same --include and have "
            f"{' and '.join(owners)} run what it prints, then migrate again"
        )


def prepare(conn: psycopg.Connection, text: str) -> str:
    """The migration's text with the owner's statements that are in effect left out; raises
    OwnerMustRun when one is not in effect yet."""
    missing = []
    for statement, judged in statements(conn, text):
        if all(j.may_run for j in judged):
            continue
        missing += [j for j in judged if not j.may_run and not j.in_effect]
        if all(j.may_run or j.in_effect for j in judged):
            kept = " ".join(j.sql for j in judged if j.may_run)
            text = text.replace(statement, kept or "-- (run by the owner already)", 1)
    if missing:
        raise OwnerMustRun(missing)
    return text


def owners_part(conn: psycopg.Connection, texts: list[str]) -> list[OwnerStatement]:
    """What the owner still has to run of these migrations (in order, each once)."""
    seen: dict[str, OwnerStatement] = {}
    for text in texts:
        for _, judged in statements(conn, text):
            for j in judged:
                if not j.may_run and not j.in_effect:
                    seen.setdefault(j.sql, j)
    return list(seen.values())
