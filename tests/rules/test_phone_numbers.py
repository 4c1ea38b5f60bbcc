"""cti.normalize_phone() on the spellings PBXs and CRMs really store, and rules as data."""

from __future__ import annotations

import pytest

CASES = [
    ("8 (495) 123-45-67", "+74951234567"),
    ("+7 495 1234567", "+74951234567"),
    ("74951234567", "+74951234567"),
    ("8-495-123-45-67", "+74951234567"),
    ("84951234567", "+74951234567"),
    ("4951234567", "+74951234567"),
    (" +7 (495) 123 45 67 ", "+74951234567"),
    ("8/495/123-45-67", "+74951234567"),
    ("+7(916)000-11-22\t", "+79160001122"),
    ("81049891234567", "+49891234567"),  # 810: international from Russia
    ("0049 89 1234567", "+49891234567"),
    ("+44 20 7946 0958", "+442079460958"),
    ("101", "101"),  # internal extensions stay extensions
    ("  102 ", "102"),
    ("12345", "12345"),
    ("sip:101@demo.onpbx.ru", "101"),
    ('"Reception" <103>', "103"),
    ("tel:+74951234567", "+74951234567"),
    ("", None),
    ("anonymous", None),
    ("+", None),
    ("+123", None),  # too short to be E.164
    ("1234567890123456789", None),  # too long
]


# These tests need no COMMIT: `conn` is a transaction rolled back at their end.
pytestmark = pytest.mark.rolled_back


@pytest.mark.parametrize(("raw", "expected"), CASES)
def test_normalize_phone(conn, raw, expected):
    assert conn.execute("SELECT cti.normalize_phone(%s)", [raw]).fetchone()[0] == expected


def test_rules_are_data_a_dba_edits(conn):
    # A Kazakh installation: same trunk prefix, country code 7; a German one: 0 trunk, 00 international.
    conn.execute(
        "UPDATE cti.config SET default_country_code = '49', trunk_prefix = '0',"
        " international_prefixes = '{00}', national_digits = 10"
    )
    assert (
        conn.execute("SELECT cti.normalize_phone('089 1234 5678')").fetchone()[0] == "+498912345678"
    )
    assert (
        conn.execute("SELECT cti.normalize_phone('0049 89 1234 5678')").fetchone()[0]
        == "+498912345678"
    )


def test_crm_numbers_are_normalised_on_write(conn):
    client = conn.execute(
        "INSERT INTO pgcti_refcrm.client (name) VALUES ('A') RETURNING id"
    ).fetchone()[0]
    conn.execute(
        "INSERT INTO pgcti_refcrm.client_phone (client_id, raw) VALUES (%s, '8 (495) 123-45-67')",
        [client],
    )
    assert (
        conn.execute("SELECT e164 FROM pgcti_refcrm.client_phone").fetchone()[0] == "+74951234567"
    )
