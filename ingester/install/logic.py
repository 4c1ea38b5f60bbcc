"""Apply db/logic: every function, trigger and view body, one file per concern.

Versioned migrations (yoyo) carry tables and data; the logic files are re-applied when
they change, in name order, in one transaction, recorded by checksum in cti.logic_file.
What a file may do is checked before the transaction commits (the guardrails):

- a file whose header says ``-- pgcti: keep-existing`` (the CRM adapters) creates a
  function only when it is missing, so a DBA's override survives every migrate;
- a function marked ``-- pgcti: stored-data`` feeds stored values (E.164 numbers): it is
  created here but changed only by a versioned migration that also recomputes them;
- a changed signature or a dropped function needs a versioned migration;
- a file whose header says ``-- pgcti: after-any-change`` (the grants) runs whenever any
  logic file is applied.
"""

from __future__ import annotations

import difflib
import hashlib
import os
import re
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import psycopg
import sqlparse

from ingester.queries import SQL_DIR, composed, query

_CREATE = re.compile(
    r"^\s*CREATE\s+(?:OR\s+REPLACE\s+)?(FUNCTION|VIEW|TRIGGER)\s+([\w.]+)(?:\s+.*?\s+ON\s+([\w.]+))?",
    re.IGNORECASE | re.DOTALL,
)
_DIRECTIVE = re.compile(r"^--\s*pgcti:\s*([a-z-]+)\s*$", re.MULTILINE)


class LogicError(Exception):
    """A logic file would do what only a versioned migration may; nothing was changed."""


def logic_dir() -> Path:
    override = os.environ.get("PGCTI_LOGIC")
    if override:
        return Path(override)
    return SQL_DIR / "logic"


@dataclass
class Group:
    """One CREATE statement and what follows it up to the next CREATE (its COMMENT ...)."""

    kind: str  # FUNCTION, VIEW, TRIGGER, or '' for statements before any CREATE
    name: str  # cti.foo, or 'cti.raw_event._500_process' for a trigger
    sql: str
    stored_data: bool = False


@dataclass
class LogicFile:
    path: Path

    @property
    def name(self) -> str:
        return self.path.name

    @cached_property
    def text(self) -> str:
        return self.path.read_text()

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.text.encode()).hexdigest()

    @property
    def directives(self) -> set[str]:
        head = self.text.split("\nCREATE", 1)[0]
        return set(_DIRECTIVE.findall(head))

    @cached_property
    def groups(self) -> list[Group]:
        groups: list[Group] = []
        for statement in sqlparse.split(self.text):
            body = sqlparse.format(statement, strip_comments=True).strip()
            match = _CREATE.match(body)
            if match is None and groups:
                groups[-1].sql += "\n" + statement
                continue
            if match is None:
                groups.append(Group("", "", statement))
                continue
            kind, name, table = match.group(1).upper(), match.group(2).lower(), match.group(3)
            if kind == "TRIGGER":
                name = f"{table.lower()}.{name}"
            stored = "-- pgcti: stored-data" in statement.split("CREATE", 1)[0]
            groups.append(Group(kind, name, statement, stored))
        return groups

    def functions(self) -> list[str]:
        return [g.name for g in self.groups if g.kind == "FUNCTION"]


def read_files() -> list[LogicFile]:
    files = sorted(logic_dir().glob("[0-9]*.sql"))
    if not files:
        raise LogicError(f"no logic files in {logic_dir()}")
    return [LogicFile(p) for p in files]


@dataclass
class Change:
    """What applying the logic did to one object (a function, view or trigger)."""

    kind: str
    name: str
    what: str  # new, changed, kept (a DBA's override)
    diff: str = ""


@dataclass
class Report:
    applied: list[str] = field(default_factory=list)  # file names
    changes: list[Change] = field(default_factory=list)


def catalog(conn: psycopg.Connection) -> dict[tuple[str, str], str]:
    """Every function, view and trigger of pgcti's schemas, by (kind, name) -> definition."""
    rows = conn.execute(query("logic_catalog")).fetchall()
    return {(kind, name): definition for kind, name, definition in rows}


def _recorded(conn: psycopg.Connection) -> dict[str, tuple[str, list[str]]]:
    rows = conn.execute(query("logic_recorded")).fetchall()
    return {name: (checksum, functions) for name, checksum, functions in rows}


def pending(
    files: list[LogicFile],
    recorded: dict[str, tuple[str, list[str]]],
    present: set[str],
) -> list[LogicFile]:
    """The files to apply: changed or new ones, ones whose functions are gone (a rollback of
    a DBA's adapters drops them), plus every after-any-change file if any."""
    changed = [
        f
        for f in files
        if recorded.get(f.name, ("",))[0] != f.checksum
        or not set(recorded.get(f.name, ("", []))[1]) <= present
    ]
    if not changed:
        return []
    return [f for f in files if f in changed or "after-any-change" in f.directives]


def stale(conn: psycopg.Connection, files: list[LogicFile] | None = None) -> list[LogicFile]:
    """The files `apply` would apply now (for `pgcti doctor`): changed, new, or missing a
    function, plus the after-any-change files when there is any of those."""
    files = files if files is not None else read_files()
    return pending(files, _recorded(conn), set(_functions_by_name(catalog(conn))))


def apply(
    conn: psycopg.Connection,
    files: list[LogicFile] | None = None,
    since: dict[tuple[str, str], str] | None = None,
) -> Report:
    """Apply what changed, inside the caller's transaction (the caller commits or rolls back).
    Changes are reported against ``since`` when given (the catalog before an adoption)."""
    files = files if files is not None else read_files()
    recorded = _recorded(conn)
    before = catalog(conn)
    todo = pending(files, recorded, set(_functions_by_name(before)))
    report = Report(applied=[f.name for f in todo])
    if not todo:
        return report
    existing_functions = set(_functions_by_name(before))
    conn.execute(query("as_owner"))
    for logic_file in todo:
        keep_existing = "keep-existing" in logic_file.directives
        for group in logic_file.groups:
            if keep_existing and group.kind == "FUNCTION" and group.name in existing_functions:
                continue  # a DBA's override, or ours from before: either way it stays
            try:
                conn.execute(group.sql)
            except psycopg.errors.InvalidFunctionDefinition as exc:
                raise LogicError(
                    f"{logic_file.name}: {group.name}: {exc.diag.message_primary}. A changed "
                    "signature or result type needs a versioned migration that drops the old "
                    "function first (see docs/dba-guide.md, 'Changing the logic')"
                ) from exc
    conn.execute(query("as_myself"))
    after = catalog(conn)
    _check(files, todo, recorded, before, after)
    for logic_file in todo:
        conn.execute(
            query("logic_record"), [logic_file.name, logic_file.checksum, logic_file.functions()]
        )
    report.changes = _changes(files, since if since is not None else before, after)
    return report


def _functions_by_name(catalog: dict[tuple[str, str], str]) -> dict[str, list[str]]:
    """Function definitions by schema-qualified name (several for overloads)."""
    by_name: dict[str, list[str]] = {}
    for (kind, signature), definition in catalog.items():
        if kind == "FUNCTION":
            by_name.setdefault(signature.split("(", 1)[0], []).append(definition)
    return by_name


def _check(
    files: list[LogicFile],
    todo: list[LogicFile],
    recorded: dict[str, tuple[str, list[str]]],
    before: dict[tuple[str, str], str],
    after: dict[tuple[str, str], str],
) -> None:
    problems: list[str] = []
    before_by_name, after_by_name = _functions_by_name(before), _functions_by_name(after)
    for logic_file in todo:
        for group in logic_file.groups:
            old = before_by_name.get(group.name)
            if group.stored_data and old and old != after_by_name.get(group.name):
                problems.append(
                    f"{logic_file.name}: {group.name} feeds stored data; change it in a versioned "
                    "migration that replaces it and recomputes what it stored, then make this "
                    "file match"
                )
    overloads = {name: len(definitions) for name, definitions in after_by_name.items()}
    declared = {name for f in files for name in f.functions()}
    for name in sorted(declared):
        if overloads.get(name, 0) > 1:
            problems.append(
                f"{name} now has {overloads[name]} signatures in the database: a changed "
                "signature needs a versioned migration that drops the old one"
            )
    once_ours = {name for _, functions in recorded.values() for name in functions}
    for name in sorted(once_ours - declared):
        if overloads.get(name):
            problems.append(
                f"{name} is in the database but no longer in db/logic: dropping a function "
                "needs a versioned migration (DROP FUNCTION ...)"
            )
    if problems:
        raise LogicError("the logic files cannot be applied:\n  " + "\n  ".join(problems))


def _changes(
    files: list[LogicFile],
    before: dict[tuple[str, str], str],
    after: dict[tuple[str, str], str],
) -> list[Change]:
    changes: list[Change] = []
    for key in sorted(after):
        kind, name = key
        if key not in before:
            changes.append(Change(kind, name, "new"))
        elif before[key] != after[key]:
            diff = difflib.unified_diff(
                before[key].splitlines(),
                after[key].splitlines(),
                "database",
                "db/logic",
                lineterm="",
            )
            changes.append(Change(kind, name, "changed", "\n".join(diff)))
    for key in sorted(set(before) - set(after)):
        changes.append(Change(key[0], key[1], "dropped"))
    kept = {
        g.name
        for f in files
        if "keep-existing" in f.directives
        for g in f.groups
        if g.kind == "FUNCTION"
    }
    ours = {name: _normalised(_file_body(files, name)) for name in kept}
    for (kind, signature), definition in sorted(before.items()):
        name = signature.split("(", 1)[0]
        if kind == "FUNCTION" and name in kept and _normalised(definition) != ours[name]:
            changes.append(Change(kind, signature, "kept"))
    return changes


def _file_body(files: list[LogicFile], name: str) -> str:
    for f in files:
        for g in f.groups:
            if g.name == name:
                return g.sql
    return ""


def _normalised(sql: str) -> str:
    """A function's body only, whitespace folded: enough to tell an override from ours."""
    match = re.search(r"\$(\w*)\$(.*)\$\1\$", sql, re.DOTALL)
    return " ".join((match.group(2) if match else sql).split())


def adapters() -> list[str]:
    """The adapters: the functions of the keep-existing file (cti.crm_lookup, ...)."""
    return [
        g.name
        for f in read_files()
        if "keep-existing" in f.directives
        for g in f.groups
        if g.kind == "FUNCTION"
    ]


def reset_adapters(conn: psycopg.Connection, names: list[str] | None = None) -> list[str]:
    """Put pgcti's placeholder back in place of the named adapters (all when None), inside
    the caller's transaction: CREATE OR REPLACE, so the views that use an adapter (the sales
    funnel uses cti.crm_deals) stay. Returns the adapters reset."""
    known = adapters()
    wanted = known if names is None else [n if "." in n else f"cti.{n}" for n in names]
    unknown = sorted(set(wanted) - set(known))
    if unknown:
        raise LogicError(
            f"no adapter named {', '.join(unknown)}; the adapters are: "
            + ", ".join(n.removeprefix("cti.") for n in known)
        )
    groups = {
        g.name: g
        for f in read_files()
        if "keep-existing" in f.directives
        for g in f.groups
        if g.kind == "FUNCTION"
    }
    conn.execute(query("as_owner"))
    for name in wanted:
        sql = groups[name].sql
        try:
            with conn.transaction():
                conn.execute(
                    re.sub(r"\bCREATE FUNCTION\b", "CREATE OR REPLACE FUNCTION", sql, count=1)
                )
        except psycopg.errors.InvalidFunctionDefinition:
            # The override returns more columns (crm_lookup's record_kind): nothing of
            # pgcti's depends on such an adapter, so it is dropped and made again.
            conn.execute(composed("drop_function", *name.split(".", 1)))
            conn.execute(sql)
    conn.execute(query("as_myself"))
    return wanted
