"""The phone directory: a CRM's own phone column, looked up by E.164 at index speed."""

from __future__ import annotations

import psycopg
import pytest

# A CRM of its own shape: contacts keyed by uuid, several phone rows each, messy spellings.
CRM = """
CREATE SCHEMA shop;
CREATE TABLE shop.person (person_uuid uuid PRIMARY KEY, display_name text NOT NULL);
CREATE TABLE shop.contact_point (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                                 person_uuid uuid NOT NULL REFERENCES shop.person, value text);
INSERT INTO shop.person VALUES ('00000000-0000-0000-0000-000000000001', 'Anna'),
                               ('00000000-0000-0000-0000-000000000002', 'Boris');
INSERT INTO shop.contact_point (person_uuid, value) VALUES
    ('00000000-0000-0000-0000-000000000001', '8-916-1112233 доб. 12'),
    ('00000000-0000-0000-0000-000000000002', '8 (495) 100-00-02, 8 (495) 100-00-03'),
    ('00000000-0000-0000-0000-000000000002', 'не звонить');
GRANT USAGE ON SCHEMA shop TO cti_owner;
GRANT SELECT, TRIGGER ON shop.contact_point TO cti_owner;
"""


def found(conn, e164: str) -> list[tuple[str, str | None]]:
    return conn.execute(
        "SELECT crm_key, ext FROM cti.phone_directory WHERE e164 = %s ORDER BY crm_key", [e164]
    ).fetchall()


@pytest.fixture
def shop(conn):
    conn.execute(CRM)
    kept = conn.execute(
        "SELECT cti.attach_phone_column('shop.contact_point', 'value', p_key_column => 'person_uuid')"
    ).fetchone()[0]
    assert kept == 3, "backfilled: one number for Anna, two for Boris"
    return conn


ANNA = "00000000-0000-0000-0000-000000000001"
BORIS = "00000000-0000-0000-0000-000000000002"


def test_attaching_backfills_and_triggers_keep_it_current(shop):
    assert found(shop, "+79161112233") == [(ANNA, "12")]
    assert found(shop, "+74951000003") == [(BORIS, None)]

    shop.execute(
        "UPDATE shop.contact_point SET value = '+7 916 111 22 44' WHERE person_uuid = %s", [ANNA]
    )
    assert found(shop, "+79161112233") == []
    assert found(shop, "+79161112244") == [(ANNA, None)]
    assert found(shop, "+74951000002") == [(BORIS, None)], "Boris's other rows are untouched"

    shop.execute(
        "INSERT INTO shop.contact_point (person_uuid, value) VALUES (%s, '8 916 111-22-44')",
        [BORIS],
    )
    assert found(shop, "+79161112244") == [(ANNA, None), (BORIS, None)], "a shared number"

    shop.execute("DELETE FROM shop.contact_point WHERE value LIKE '8 (495)%'")
    assert found(shop, "+74951000002") == []
    shop.execute("TRUNCATE shop.contact_point")
    assert shop.execute("SELECT count(*) FROM cti.phone_directory").fetchone() == (0,)


def test_new_phone_rules_recompute_the_directory(shop):
    # A site that moves to German rules: the same stored spellings now mean other numbers.
    shop.execute("UPDATE cti.config SET max_frame_bytes = 2000000")  # not a phone rule
    assert found(shop, "+79161112233") == [(ANNA, "12")]
    shop.execute("UPDATE cti.config SET default_country_code = '49', trunk_prefix = '0'")
    assert found(shop, "+79161112233") == []
    now = shop.execute("SELECT cti.normalize_phone('8-916-1112233')").fetchone()[0]
    assert now != "+79161112233"
    assert found(shop, now) == [(ANNA, "12")], "recomputed with the new rules"


def test_a_lookup_over_the_directory_is_an_index_scan(shop):
    shop.execute("ANALYZE cti.phone_directory")
    shop.execute("SET enable_seqscan = off")  # a tiny table: ask whether the index can serve
    plan = "\n".join(
        r[0]
        for r in shop.execute(
            "EXPLAIN SELECT p.display_name FROM cti.phone_directory d"
            " JOIN shop.person p ON p.person_uuid = d.crm_key::uuid WHERE d.e164 = '+79161112233'"
        )
    )
    assert "phone_directory_e164" in plan


def test_attaching_without_rights_says_what_to_grant(conn):
    conn.execute("CREATE SCHEMA shop; CREATE TABLE shop.t (id int PRIMARY KEY, phone text)")
    with pytest.raises(psycopg.errors.RaiseException) as err:
        conn.execute("SELECT cti.attach_phone_column('shop.t', 'phone')")
    assert "GRANT SELECT, TRIGGER ON shop.t TO cti_owner" in err.value.diag.message_hint


def test_detaching_leaves_the_crm_table_as_it_was(shop):
    triggers = "SELECT count(*) FROM pg_trigger WHERE tgrelid = 'shop.contact_point'::regclass AND NOT tgisinternal"
    assert shop.execute(triggers).fetchone() == (3,)
    shop.execute("SELECT cti.detach_phone_column('shop.contact_point', 'value')")
    assert shop.execute(triggers).fetchone() == (0,)
    assert shop.execute("SELECT count(*) FROM cti.phone_directory").fetchone() == (0,)
