"""Two tiers on one template (STYLE 14): the migrations run once per session into a
template database; every test that asks for `dsn` gets its own clone of it.

The server is the embedded default unless PGCTI_TEST_DSN names another one.
"""

from __future__ import annotations

import fcntl
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from itertools import count
from pathlib import Path

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from pytest_postgresql.janitor import DatabaseJanitor

from ingester import embedded
from ingester.install import migrations
from tests.support.crm_fixture import seed_crm

_clone_numbers = count(1)
# Names this run's template; inherited by pytest-xdist's workers (see pytest_sessionstart).
_RUN = "PGCTI_TEST_RUN"


def _janitor(server: str, dbname: str, **kwargs) -> DatabaseJanitor:
    params = conninfo_to_dict(server)
    return DatabaseJanitor(
        user=params.get("user", "postgres"),
        host=params.get("host", ""),
        port=params.get("port", 5432),
        password=params.get("password"),
        dbname=dbname,
        **kwargs,
    )


def dsn_for(server: str, dbname: str) -> str:
    return make_conninfo(server, dbname=dbname)


def _server_dsn() -> str:
    return os.environ.get("PGCTI_TEST_DSN") or embedded.start()


def pytest_report_header(config: pytest.Config) -> str:
    with psycopg.connect(_server_dsn()) as conn:
        version = conn.execute("SHOW server_version").fetchone()[0]
    source = "PGCTI_TEST_DSN" if os.environ.get("PGCTI_TEST_DSN") else "embedded default"
    return f"pgcti: PostgreSQL {version} ({source})"


@pytest.fixture(scope="session")
def server_dsn() -> str:
    """A superuser DSN on the server under test."""
    return _server_dsn()


@pytest.fixture(scope="session")
def server_version(server_dsn: str) -> int:
    with psycopg.connect(server_dsn) as conn:
        return conn.info.server_version // 10000


def _template_name() -> str:
    return f"pgcti_tpl_{os.environ[_RUN]}"


def pytest_sessionstart(session: pytest.Session) -> None:
    """In the process that hands out the tests (pytest-xdist's controller, or pytest alone):
    one server for the run, started before any worker asks for it, and a run id that names
    the one template the workers share."""
    if hasattr(session.config, "workerinput"):
        return
    os.environ.setdefault(_RUN, str(os.getpid()))
    _server_dsn()


def pytest_sessionfinish(session: pytest.Session) -> None:
    if hasattr(session.config, "workerinput") or _RUN not in os.environ:
        return
    _janitor(_server_dsn(), _template_name(), as_template=True).drop()


@pytest.fixture(scope="session")
def template_db(server_dsn: str, server_version: int, tmp_path_factory) -> str:
    """The migrated template, built once per run by whichever worker comes first (under a
    file lock; built under another name and renamed, so that a failed build is never used)."""
    name = _template_name()
    lock_path = tmp_path_factory.getbasetemp().parent / f"{name}.lock"
    with lock_path.open("w") as lock, psycopg.connect(server_dsn, autocommit=True) as admin:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            building = f"{name}_building"
            _janitor(server_dsn, building, as_template=True).drop()
            _janitor(server_dsn, building, as_template=True).init()
            migrations.apply(dsn_for(server_dsn, building), reference_crm=True)
            admin.execute(f'ALTER DATABASE "{building}" RENAME TO "{name}"')
    return name


@pytest.fixture
def fresh_db(server_dsn: str) -> Iterator[str]:
    """An empty database (no migrations), for migration tests."""
    name = f"pgcti_empty_{os.getpid()}_{next(_clone_numbers)}"
    janitor = _janitor(server_dsn, name)
    janitor.init()
    yield dsn_for(server_dsn, name)
    janitor.drop()


@pytest.fixture
def dsn(server_dsn: str, template_db: str) -> Iterator[str]:
    """A migrated database of this test's own, cloned from the template."""
    name = f"pgcti_t_{os.getpid()}_{next(_clone_numbers)}"
    janitor = _janitor(server_dsn, name, template_dbname=template_db)
    janitor.init()
    yield dsn_for(server_dsn, name)
    janitor.drop()


@pytest.fixture(scope="session")
def shared_db(server_dsn: str, template_db: str) -> Iterator[str]:
    """One migrated database for the tests that never commit (see `rolled_back`)."""
    name = f"pgcti_shared_{os.getpid()}"
    janitor = _janitor(server_dsn, name, template_dbname=template_db)
    janitor.init()
    yield dsn_for(server_dsn, name)
    janitor.drop()


@pytest.fixture
def rolled_back(shared_db: str) -> Iterator[psycopg.Connection]:
    """The cheap tier (STYLE 14): a connection inside one transaction that is rolled back at
    the end, so the next test finds the database as migrated. For tests that need no COMMIT,
    no NOTIFY delivery and no second connection; the others take `conn` (a clone of their own)."""
    with psycopg.connect(shared_db) as connection:
        yield connection
        connection.rollback()


@pytest.fixture
def conn(request: pytest.FixtureRequest) -> Iterator[psycopg.Connection]:
    """An autocommit superuser connection to this test's own database; in a module marked
    `rolled_back`, the cheap tier's connection instead (one transaction, rolled back)."""
    if request.node.get_closest_marker("rolled_back"):
        yield request.getfixturevalue("rolled_back")
        return
    with psycopg.connect(request.getfixturevalue("dsn"), autocommit=True) as connection:
        yield connection


def count_rows(dsn: str, statement: str = "SELECT count(*) FROM cti.raw_event") -> int:
    """A count over a connection of its own (the raw log's frames by default), for
    waiting on a pipeline that writes from another process."""
    with psycopg.connect(dsn) as connection:
        return connection.execute(statement).fetchone()[0]


def run_cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 120, check: bool = True
) -> subprocess.CompletedProcess:
    """Run the `pgcti` command the way a user does and capture what it prints."""
    full_env = {**os.environ, **(env or {})}
    result = subprocess.run(
        [sys.executable, "-m", "ingester.cli", *args],
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"pgcti {' '.join(args)} exited {result.returncode}\n"
            f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
        )
    return result


@pytest.fixture
def make_login(server_dsn: str, dsn: str) -> Iterator:
    """Create login roles (members of a group role) for this test; returns their DSNs; drops them after."""
    from psycopg import sql

    created: list[str] = []

    def make(group: str, suffix: str) -> str:
        name = f"pgcti_test_{os.getpid()}_{suffix}"
        password = f"pw-{suffix}"
        with psycopg.connect(server_dsn, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(name)))
            admin.execute(
                sql.SQL("CREATE ROLE {} LOGIN PASSWORD {} IN ROLE {}").format(
                    sql.Identifier(name), sql.Literal(password), sql.Identifier(group)
                )
            )
        created.append(name)
        if group == "cti_ingester":  # as docs/dba-guide.md does: registered in this database
            with psycopg.connect(dsn, autocommit=True) as db:
                db.execute("INSERT INTO cti.ingester_login (login) VALUES (%s)", [name])
        return make_conninfo(dsn, user=name, password=password)

    yield make
    with psycopg.connect(server_dsn, autocommit=True) as admin:
        for name in created:
            admin.execute(f'DROP ROLE IF EXISTS "{name}"')


@pytest.fixture
def own_server(tmp_path, monkeypatch):
    """An embedded server of this test's own, so that stopping it hurts no other test."""
    monkeypatch.setenv("PGCTI_HOME", str(tmp_path / "home"))
    dsn = embedded.start()
    yield dsn
    embedded.stop("immediate")


@pytest.fixture
def desks(conn, make_login):
    """For the gateway tests: desks 101 and 102 with their logins and a token each; the
    gateway's own login."""

    crm = seed_crm(conn)
    tokens = {}
    for ext in ("101", "102"):
        dsn = make_login("cti_client", f"gw{ext}")
        login = psycopg.conninfo.conninfo_to_dict(dsn)["user"]
        conn.execute(
            "INSERT INTO cti.client_login (login, workstation_id) VALUES (%s, %s)",
            [login, crm[f"ws-{ext}"]],
        )
        with psycopg.connect(dsn, autocommit=True) as desk:  # a desk issues its own token
            tokens[ext] = desk.execute("SELECT cti.issue_gateway_token_v1()").fetchone()[0]
        tokens[f"login-{ext}"] = login
    return crm, tokens, make_login("cti_gateway", "gw")


def doc_sql_block(page: str, first_line: str) -> str:
    """The ```sql block of docs/<page> whose first line is ``first_line``: tests run the
    docs' own SQL, so a page that drifts from what works fails the suite."""
    path = Path(__file__).resolve().parent.parent / "docs" / page
    for block in re.findall(r"```sql\n(.*?)```", path.read_text(), re.DOTALL):
        if block.startswith(first_line):
            return block
    raise AssertionError(f"docs/{page} has no sql block starting {first_line!r}")


def trigger_calls(dsn: str, statement: str, role: str | None = None) -> int:
    """How many times pgcti's phone-directory trigger function ran for ``statement`` (as
    ``role`` when given): a session of its own, since a session keeps its function counts
    until it reports them, across transactions. ``dsn`` is a superuser's: only a superuser
    may turn function counting on."""
    with psycopg.connect(dsn) as conn:
        conn.execute("SET track_functions = 'pl'")
        if role is not None:
            conn.execute(psycopg.sql.SQL("SET ROLE {}").format(psycopg.sql.Identifier(role)))
        conn.execute(statement)
        row = conn.execute(
            "SELECT calls FROM pg_stat_xact_user_functions"
            " WHERE schemaname = 'cti' AND funcname = 'tg_phone_source__sync'"
        ).fetchone()
        conn.commit()
    return row[0] if row else 0
