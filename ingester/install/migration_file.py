"""Running one migration file (or its rollback) in the caller's transaction.

A DBA's file first has its GRANTs and REVOKEs on the CRM's objects checked (crm_owner.py):
the owner's part that is in effect is left out, and one that is not stops the migration
before anything changes. A statement that fails becomes one line naming the file, the
statement and the server's reason (MigrationFailed), never a traceback.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import psycopg
import sqlparse

from ingester.install import crm_owner


class MigrateError(Exception):
    """The database cannot be migrated as it is; the message says what to do."""


class MigrationFailed(MigrateError):
    """A statement of a migration (or of its rollback) failed; the transaction is rolled back."""


def _failing_statement(text: str, position: int | None) -> str:
    """The statement of ``text`` that holds character ``position`` (1-based, as the server
    reports it), on one line and cut short; the first statement when the server gave none."""
    statements = [s for s in sqlparse.split(text) if s.strip()]
    offset = 0
    chosen = statements[0] if statements else ""
    for statement in statements:
        start = text.find(statement, offset)
        if position is not None and start <= position - 1 < start + len(statement):
            chosen = statement
            break
        offset = start + len(statement)
    kept = [line for line in sqlparse.format(chosen, strip_comments=True).split() if line]
    one_line = " ".join(kept)
    return one_line if len(one_line) <= 160 else one_line[:157] + "..."


def _statement_that_fails(conn: psycopg.Connection, text: str) -> str:
    """The first statement of ``text`` that fails, run one by one and rolled back."""
    statements = [s for s in sqlparse.split(text) if s.strip()]
    with contextlib.suppress(psycopg.Error), conn.transaction(force_rollback=True):
        for statement in statements:
            try:
                conn.execute(statement)
            except psycopg.Error:
                return _failing_statement(statement, None)
    return _failing_statement(text, None)


def run_file(conn: psycopg.Connection, path: Path, crms: bool = False) -> None:
    """Run one migration or rollback file in the caller's transaction; a failing statement
    becomes one line that names the file, the statement and the server's reason. ``crms``:
    a DBA's file, whose GRANTs and REVOKEs on the CRM's objects may be its owner's to run."""
    text = path.read_text()
    if crms:
        try:
            text = crm_owner.prepare(conn, text)
        except crm_owner.OwnerMustRun as exc:
            raise MigrationFailed(f"{path.name}: {exc}") from None
    try:
        with conn.transaction():  # a savepoint: the statement can be found again below
            conn.execute(text)
    except psycopg.Error as exc:
        position = exc.diag.statement_position
        if position:
            statement = _failing_statement(text, int(position))
        else:  # the server did not say where: run the statements one by one to find it
            statement = _statement_that_fails(conn, text)
        reason = exc.diag.message_primary or str(exc).splitlines()[0]
        hint = f" ({exc.diag.message_hint})" if exc.diag.message_hint else ""
        raise MigrationFailed(f"{path.name}: {statement}: {reason}{hint}") from None
