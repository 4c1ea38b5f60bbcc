"""The CRM's own writes do not pay for the phone directory (issue 28, part 1).

On a database of any collation (C, a libc locale, ICU) the statements that pgcti's
triggers run on an attached table are served by the directory's index, and an UPDATE
that touches no attached column fires nothing. The costs are measured in
`python -m tests.bench.crm_writes` (make bench), not asserted here.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from itertools import count

import psycopg
import pytest

from ingester.install import migrations
from tests.conftest import _janitor, dsn_for, trigger_calls

_numbers = count(1)

# Odoo's res_partner, cut to what matters here: an integer key, two phone columns of
# character varying, and other columns the CRM writes all day.
PARTNERS = """
CREATE TABLE public.res_partner (
    id serial PRIMARY KEY, name varchar, email varchar, phone varchar, mobile varchar,
    write_date timestamp
);
INSERT INTO public.res_partner (name, email, phone, mobile)
SELECT 'Partner ' || g, 'p' || g || '@example.com', '+7 (495) ' || lpad(g::text, 7, '0'),
       '8 916 ' || lpad(g::text, 7, '0')
  FROM generate_series(1, 2000) g;
GRANT SELECT, TRIGGER ON public.res_partner TO cti_owner;
SELECT cti.attach_phone_column('public.res_partner', 'phone');
SELECT cti.attach_phone_column('public.res_partner', 'mobile');
ANALYZE public.res_partner, cti.phone_directory;
"""

# CREATE DATABASE options per collation; ICU needs a server built with it.
COLLATIONS = {
    "C": "LOCALE 'C'",
    "C.UTF-8": "LOCALE 'C.UTF-8'",
    "ICU": "LOCALE_PROVIDER icu ICU_LOCALE 'en' LOCALE 'C.UTF-8'",
}


@pytest.fixture(params=sorted(COLLATIONS))
def crm_db(request, server_dsn: str) -> Iterator[str]:
    """A database of the given collation with pgcti and an attached res_partner."""
    name = f"pgcti_coll_{os.getpid()}_{next(_numbers)}"
    with psycopg.connect(server_dsn, autocommit=True) as conn:
        try:
            conn.execute(f"CREATE DATABASE {name} TEMPLATE template0 {COLLATIONS[request.param]}")
        except psycopg.errors.FeatureNotSupported as exc:
            pytest.skip(f"this server cannot make a {request.param} database: {exc}")
    dsn = dsn_for(server_dsn, name)
    try:
        migrations.apply(dsn)
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(PARTNERS)
        yield dsn
    finally:
        _janitor(server_dsn, name).drop()


def _nested_plans(conn: psycopg.Connection, statement: str) -> list[str]:
    """The plans of every statement that ``statement`` runs, triggers' included
    (auto_explain, sent to this session as NOTICEs)."""
    plans: list[str] = []
    conn.add_notice_handler(lambda diag: plans.append(diag.message_primary or ""))
    conn.execute("LOAD 'auto_explain'")
    conn.execute("SET auto_explain.log_min_duration = 0")
    conn.execute("SET auto_explain.log_nested_statements = on")
    conn.execute("SET auto_explain.log_level = notice")
    conn.execute(statement)
    conn.execute("SET auto_explain.log_min_duration = -1")
    return plans


def test_the_triggers_statements_use_the_directorys_index(crm_db):
    with psycopg.connect(crm_db, autocommit=True) as conn:
        # A cheap table makes a sequential scan look good; ask whether an index can serve.
        conn.execute("SET enable_seqscan = off")
        for statement in (
            "UPDATE public.res_partner SET phone = '+7 495 111 22 33' WHERE id = 7",
            "DELETE FROM public.res_partner WHERE id = 8",
        ):
            plans = [p for p in _nested_plans(conn, statement) if "phone_directory" in p]
            deletes = [p for p in plans if "Delete on phone_directory" in p]
            assert deletes, f"no DELETE on the directory planned for {statement}: {plans}"
            for plan in deletes:
                assert "Index Scan using phone_directory_pkey" in plan, plan
                assert 'COLLATE "C"' not in plan, plan
        found = conn.execute(
            "SELECT crm_key FROM cti.phone_directory WHERE e164 IN ('+74951112233', '+74950000008')"
        ).fetchall()
        assert found == [("7",)], "the new number is kept, the deleted partner's gone"


def test_only_a_changed_phone_row_or_key_fires_the_triggers(crm_db):
    def calls(statement: str) -> int:
        return trigger_calls(crm_db, statement)

    assert calls("UPDATE public.res_partner SET email = 'x', write_date = now()") == 0
    assert calls("UPDATE public.res_partner SET phone = phone WHERE id <= 10") == 0
    assert calls("UPDATE public.res_partner SET phone = '+7 495 000 00 01' WHERE id = 1") == 1
    assert calls("UPDATE public.res_partner SET phone = '', mobile = '' WHERE id = 2") == 2
    assert calls("UPDATE public.res_partner SET id = 100000 WHERE id = 3") == 2
    with psycopg.connect(crm_db) as conn:
        keys = conn.execute(
            "SELECT DISTINCT crm_key FROM cti.phone_directory WHERE row_id IN ('2', '3', '100000')"
        ).fetchall()
    assert keys == [("100000",)], "a cleared phone is gone, a new key followed"


def test_trigger_names_come_from_the_column(crm_db):
    with psycopg.connect(crm_db) as conn:
        names = conn.execute(
            "SELECT tgname FROM pg_trigger WHERE tgrelid = 'public.res_partner'::regclass"
            " AND NOT tgisinternal ORDER BY 1"
        ).fetchall()
        long_name = conn.execute(
            "SELECT cti.phone_trigger_name(repeat('x', 60), 'truncate')"
        ).fetchone()[0]
    assert [n for (n,) in names] == [
        "pgcti_phone_mobile_truncate",
        "pgcti_phone_mobile_update",
        "pgcti_phone_mobile_write",
        "pgcti_phone_phone_truncate",
        "pgcti_phone_phone_update",
        "pgcti_phone_phone_write",
    ]
    assert len(long_name.encode()) <= 63 and long_name.startswith("pgcti_phone_xxx")


def _trigger_names(conn: psycopg.Connection) -> list[str]:
    rows = conn.execute(
        "SELECT tgname FROM pg_trigger WHERE tgrelid = 'public.res_partner'::regclass"
        " AND NOT tgisinternal ORDER BY 1"
    ).fetchall()
    return [name for (name,) in rows]


@pytest.mark.parametrize("crm_db", ["C.UTF-8"], indirect=True)
def test_migration_0019_replaces_the_old_triggers_and_the_old_ones_still_work(crm_db):
    folder = migrations.migrations_dir()
    forward = (folder / "0019_phone_triggers_fire_on_change.sql").read_text()
    back = (folder / "0019_phone_triggers_fire_on_change.rollback.sql").read_text()
    with psycopg.connect(crm_db, autocommit=True) as conn:
        new_names = _trigger_names(conn)
        conn.execute(back)
        old_names = _trigger_names(conn)
        assert len(old_names) == 4 and all(n.startswith("pgcti_phone_") for n in old_names)
        assert not set(old_names) & set(new_names)
        # Before the owner replaces them, the old triggers keep the directory current.
        conn.execute("UPDATE public.res_partner SET phone = '+7 495 222 33 44' WHERE id = 5")
        assert conn.execute(
            "SELECT crm_key FROM cti.phone_directory WHERE e164 = '+74952223344'"
        ).fetchall() == [("5",)]
        conn.execute(forward)
        assert _trigger_names(conn) == new_names


@pytest.mark.parametrize("crm_db", ["C.UTF-8"], indirect=True)
def test_migration_0019_leaves_another_owners_triggers_and_says_who_can_replace_them(crm_db):
    folder = migrations.migrations_dir()
    owner = f"pgcti_crm_owner_{os.getpid()}"
    notices: list[tuple[str, str]] = []  # a notice's text lives only as long as its handler call
    with psycopg.connect(crm_db, autocommit=True) as conn:
        conn.execute((folder / "0019_phone_triggers_fire_on_change.rollback.sql").read_text())
        old_names = _trigger_names(conn)
        conn.execute(f'CREATE ROLE "{owner}"')
        try:
            conn.execute(f'ALTER TABLE public.res_partner OWNER TO "{owner}"')
            conn.add_notice_handler(
                lambda d: notices.append((d.message_primary or "", d.message_hint or ""))
            )
            with conn.transaction():
                conn.execute("SET LOCAL ROLE cti_owner")  # a DBA who is not the owner
                conn.execute((folder / "0019_phone_triggers_fire_on_change.sql").read_text())
            assert _trigger_names(conn) == old_names, "only the owner may replace them"
        finally:
            conn.execute("ALTER TABLE public.res_partner OWNER TO postgres")
            conn.execute(f'DROP ROLE "{owner}"')
    said = [(m, h) for m, h in notices if "on res_partner stay as they were" in m]
    assert len(said) == 2, notices  # phone and mobile
    message, hint = said[0]
    assert f"only its owner {owner} may replace them" in message
    assert f"as {owner}: DROP TRIGGER pgcti_phone_" in hint
    assert "SELECT cti.attach_phone_column('res_partner', 'phone', 'id', 'id');" in hint
