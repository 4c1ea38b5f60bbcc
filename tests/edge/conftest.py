"""Fixtures of the edge tier that several of its files share."""

from __future__ import annotations

import psycopg
import pytest

from tests.support.browser import browsers
from tests.support.crm_fixture import seed_crm
from tests.support.dialing import STARTED


@pytest.fixture
def browser_factory(tmp_path):
    """Headless Chromium browsers, made on demand, quit after the test."""
    yield from browsers(tmp_path)


@pytest.fixture(autouse=True)
def no_edge_left_running():
    """An edge a failing test left running is stopped: it would go on dialling."""
    yield
    while STARTED:
        STARTED.pop().kill()


@pytest.fixture
def site(conn, make_login):
    """The reference CRM, desks at 101 and 102 (logins), and the edge's login."""
    crm = seed_crm(conn)
    conn.execute("UPDATE cti.config SET dial_requests_per_minute = 100")
    desks = {}
    for ext in ("101", "102"):
        dsn = make_login("cti_client", f"edgedesk{ext}")
        conn.execute(
            "INSERT INTO cti.client_login (login, workstation_id) VALUES (%s, %s)",
            [psycopg.conninfo.conninfo_to_dict(dsn)["user"], crm[f"ws-{ext}"]],
        )
        desks[ext] = dsn
    edge = make_login("cti_ingester", "edgedialer")
    conn.execute(f'GRANT cti_dialer TO "{psycopg.conninfo.conninfo_to_dict(edge)["user"]}"')
    return crm, desks, edge
