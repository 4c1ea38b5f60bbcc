"""Security is a test (STYLE 7): catalog queries over everything the migrations create."""

from __future__ import annotations

import pytest

# These tests need no COMMIT: `conn` is a transaction rolled back at their end.
pytestmark = pytest.mark.rolled_back


def test_every_function_pins_search_path(conn):
    """Or has a SQL-standard body (BEGIN ATOMIC, RETURN), whose names are resolved when it
    is created, so no caller's search_path can redirect them (the inlinable adapters)."""
    unpinned = conn.execute(
        """SELECT p.oid::regprocedure::text FROM pg_proc p
             JOIN pg_namespace n ON n.oid = p.pronamespace
            WHERE n.nspname IN ('cti', 'crm') AND p.prokind IN ('f', 'p')
              AND NOT EXISTS (SELECT 1 FROM unnest(p.proconfig) c WHERE c LIKE 'search_path=%')
              AND p.prosqlbody IS NULL
         ORDER BY 1"""
    ).fetchall()
    assert unpinned == []


def test_no_function_is_executable_by_public(conn):
    public = conn.execute(
        """SELECT p.oid::regprocedure::text FROM pg_proc p
             JOIN pg_namespace n ON n.oid = p.pronamespace
            WHERE n.nspname IN ('cti', 'crm')
              AND has_function_privilege('public', p.oid, 'EXECUTE')
         ORDER BY 1"""
    ).fetchall()
    assert public == []


def test_public_has_no_rights_on_the_schemas(conn):
    rows = conn.execute(
        """SELECT nspname FROM pg_namespace WHERE nspname IN ('cti', 'crm')
              AND (has_schema_privilege('public', oid, 'USAGE')
                   OR has_schema_privilege('public', oid, 'CREATE'))"""
    ).fetchall()
    assert rows == []


def test_only_the_outbox_rings_doorbells(conn):
    # Every NOTIFY to clients goes through cti.enqueue_all(), whose payload is built from type,
    # seq and call id only; the edge's doorbell for click-to-call carries a request id only
    # (tests/rules/test_dialing.py), presence's an extension (test_presence_and_routing.py).
    callers = conn.execute(
        """SELECT p.oid::regprocedure::text FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
            WHERE n.nspname IN ('cti', 'crm') AND (p.prosrc ILIKE '%pg_notify%' OR p.prosrc ILIKE '%NOTIFY %')
            ORDER BY 1"""
    ).fetchall()
    assert callers == [
        (
            "cti.change_presence(text,text,text,text,timestamp with time zone,timestamp with time zone)",
        ),
        ("cti.dial_for(cti.client_login,text,bigint)",),
        ("cti.enqueue_all(cti.command[])",),
    ]
