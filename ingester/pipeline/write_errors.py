"""What a database error means to the writer: a frame's fault (stored in a bounded form),
a conflict with another session (written again at once), or the database refusing or
away (the frames wait in the spool), and what to tell the operator about it."""

from __future__ import annotations

import psycopg

# SQLSTATE classes of errors about a frame's content (data exceptions, program limits). Any
# other refusal is about the database (not migrated, a right missing, read-only, out of
# disk): the frames are kept in the spool until it is fixed, never dropped.
ABOUT_THE_FRAME = ("22", "54")
# What to do about the refusals a DBA meets first.
NOT_MIGRATED = "the database is not migrated: run `pgcti migrate` on it"
ADVICE = {
    "42P01": NOT_MIGRATED,  # undefined table
    "3F000": NOT_MIGRATED,  # undefined schema
    "42883": NOT_MIGRATED,  # undefined function
    "42501": "the ingester's login lacks a right: make it a member of cti_ingester and register "
    "it in cti.ingester_login (docs/dba-guide.md)",
    "25006": "the database is read-only (a standby?): point the DSN at the primary",
}
# A conflict with another session (a deadlock, a lock the DBA's lock_timeout gave up on, a
# serialization failure) passes: the batch is written again at once, a few times, on the
# same connection, before it counts as the database being away (spool, reconnect). Two
# ingesters on one feed, or a DBA's transaction on a call, do this.
CONFLICTS = ("40001", "40P01", "55P03")
CONFLICT_RETRIES = 5


def about_the_frame(exc: psycopg.Error) -> bool:
    """Data errors (the server's, or psycopg's own, such as a NUL character that no text
    value can hold) and program limits are about a frame; anything else is about the database."""
    return isinstance(exc, psycopg.DataError) or (exc.sqlstate or "")[:2] in ABOUT_THE_FRAME


def first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def is_conflict(exc: psycopg.Error) -> bool:
    return exc.sqlstate in CONFLICTS


def advice(sqlstate: str) -> str:
    return ADVICE.get(sqlstate, "fix the database, then the frames are written in order")
