"""cti_reader: a reporting login reads the history and analytics as docs/sql-analytics.md
says, with that role alone (and SELECT on the CRM's own tables its adapters read)."""

from __future__ import annotations

import psycopg

from ingester.simulator import onlinepbx3_calls as pbx
from tests.support.crm_fixture import KNOWN, LINE, builder, insert_frames, seed_crm

# Views that are operations, not reporting: a DBA's (the raw log's outcome per frame).
NOT_FOR_READERS = {"cti.event_outcome"}


def test_a_member_of_cti_reader_reads_every_history_and_analytics_view(dsn, make_login):
    with psycopg.connect(dsn, autocommit=True) as conn:
        seed_crm(conn)
        insert_frames(conn, pbx.inbound_answered(builder(1), KNOWN, LINE, "101"))
        insert_frames(conn, pbx.inbound_unanswered(builder(2), KNOWN, LINE, ["101"], "NO_ANSWER"))
        conn.execute(
            "INSERT INTO cti.queue_call (source, caller_leg, queue, joined_at, connected_at)"
            " VALUES ('asterisk', '1.1', 'sales', now() - interval '1 minute', now())"
        )
        views = [
            v
            for (v,) in conn.execute(
                """SELECT c.oid::regclass::text FROM pg_class c
                     JOIN pg_namespace n ON n.oid = c.relnamespace
                    WHERE n.nspname = 'cti' AND c.relkind = 'v' ORDER BY 1"""
            )
            if v not in NOT_FOR_READERS
        ]
        # The reference CRM's adapters read its tables as the reader, as a CRM's own would.
        reader = make_login("cti_reader", "reader")
        login = psycopg.conninfo.conninfo_to_dict(reader)["user"]
        conn.execute(f'GRANT USAGE ON SCHEMA pgcti_refcrm TO "{login}"')
        conn.execute(f'GRANT SELECT ON ALL TABLES IN SCHEMA pgcti_refcrm TO "{login}"')
    assert "cti.queue_stats_v1" in views and "cti.sales_funnel_v1" in views
    try:
        _read_as(reader, views)
    finally:  # the login's own grants, so that it can be dropped
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f'REVOKE ALL ON ALL TABLES IN SCHEMA pgcti_refcrm FROM "{login}"')
            conn.execute(f'REVOKE USAGE ON SCHEMA pgcti_refcrm FROM "{login}"')


def _read_as(reader: str, views: list[str]) -> None:
    with psycopg.connect(reader, autocommit=True) as conn:
        rows = {v: conn.execute(f"SELECT count(*) FROM {v}").fetchone()[0] for v in views}
        today = conn.execute(
            "SELECT inbound_calls FROM cti.period_summary_v1(current_date, current_date)"
        ).fetchone()
        managers = conn.execute(
            "SELECT count(*) FROM cti.manager_summary_v1(current_date - 1, current_date)"
        ).fetchone()
        queues = conn.execute(
            "SELECT offered FROM cti.queue_stats_v1 WHERE hour IS NULL AND day = current_date"
        ).fetchall()
        # ... and not the rows behind them: no number of a call (a withheld one is in the
        # table, never in a view), no raw event.
        for table in ("SELECT external_number FROM cti.call", "SELECT body FROM cti.raw_event"):
            try:
                conn.execute(table)
                raise AssertionError(f"a reader could: {table}")
            except psycopg.errors.InsufficientPrivilege:
                pass
    assert rows["cti.call_history_v1"] == 2 and rows["cti.daily_call_stats_v1"] >= 1
    assert today == (2,) and managers[0] >= 1 and queues == [(1,)]
