"""cti.phone_numbers() against Google's libphonenumber (the `phonenumbers` package) on
generated spellings of real-shaped numbers: RU, KZ and other countries, with extension
suffixes, tel: URIs, full-width digits, the 8-10 prefix and several numbers in one field.
Goal (issue 11): at least 99.5% agreement wherever libphonenumber finds a valid number."""

from __future__ import annotations

import random
from collections import defaultdict

import phonenumbers as pn
import pytest

REGIONS = ["RU", "KZ", "BY", "UZ", "AM", "DE", "GB", "FR", "PL", "TR", "US", "IN", "CN", "AE", "IL"]
TYPES = [pn.PhoneNumberType.MOBILE, pn.PhoneNumberType.FIXED_LINE]
EXTENSIONS = [
    " доб. {}",
    " доб.{}",
    ", доб. {}",
    " (доб. {})",
    " ext. {}",
    " x{}",
    " #{}",
    " ext {}",
]
SEPARATORS = [", ", "; ", " или ", "\n", " / "]
FULL_WIDTH = str.maketrans("0123456789+", "０１２３４５６７８９＋")
# Every number pgcti finds in each text, by the text's position.
NUMBERS_OF_EACH = """
SELECT u.i, n.number, n.ext
  FROM unnest(%s::text[]) WITH ORDINALITY u(raw, i)
  LEFT JOIN LATERAL cti.phone_numbers(u.raw) WITH ORDINALITY n ON true
 ORDER BY u.i, n.ordinality"""
DEFAULT_REGION = "RU"  # what cti.config says by default: country code 7, trunk prefix 8


def numbers(rng: random.Random, per_region: int = 12) -> list[pn.PhoneNumber]:
    """Valid numbers of each region: its example numbers with the last digits varied."""
    found = []
    for region in REGIONS:
        for kind in TYPES:
            example = pn.example_number_for_type(region, kind)
            if example is None:
                continue
            national = str(example.national_number)
            tries = 0
            kept = 0
            while kept < per_region // len(TYPES) and tries < 200:
                tries += 1
                tail = "".join(rng.choice("0123456789") for _ in range(4))
                candidate = pn.parse(f"+{example.country_code}{national[:-4]}{tail}")
                if pn.is_valid_number(candidate):
                    found.append(candidate)
                    kept += 1
    return found


def spellings(number: pn.PhoneNumber, rng: random.Random) -> list[str]:
    """How people and systems write this number."""
    e164 = pn.format_number(number, pn.PhoneNumberFormat.E164)
    international = pn.format_number(number, pn.PhoneNumberFormat.INTERNATIONAL)
    grouped = international.split(" ", 1)[1] if " " in international else international
    cc = str(number.country_code)
    out = [
        e164,
        international,
        e164[1:],
        f"810{e164[1:]}",
        f"8-10-{cc}-{grouped.replace(' ', '-')}",
        pn.format_number(number, pn.PhoneNumberFormat.RFC3966),
        international.translate(FULL_WIDTH),
    ]
    if cc == "7":  # Russian and Kazakh numbers as written at home
        national = pn.format_number(number, pn.PhoneNumberFormat.NATIONAL)
        nsn = str(number.national_number)
        out += [
            national,
            nsn,
            f"8{nsn}",
            f"8-{nsn[:3]}-{nsn[3:]}",
            f"8.{nsn[:3]}.{nsn[3:6]}.{nsn[6:8]}.{nsn[8:]}",
            national.translate(FULL_WIDTH),
        ]
    elif pn.region_code_for_number(number) in ("GB", "DE", "FR"):
        out.append(f"+{cc} (0){grouped}")  # the national prefix in brackets
    ext = str(rng.randint(1, 9999))
    out += [rng.choice(out[:2] + out[7:]) + rng.choice(EXTENSIONS).format(ext) for _ in range(3)]
    out.append(f"{pn.format_number(number, pn.PhoneNumberFormat.RFC3966)};ext={ext}")
    return out


def libphonenumber_finds(text: str, several: bool) -> list[tuple[str, str | None]] | None:
    """What libphonenumber makes of ``text``: parse() for one number, its matcher for a field
    that holds several; only valid numbers count. None when it finds none."""
    if several:
        matches = [m.number for m in pn.PhoneNumberMatcher(text, DEFAULT_REGION)]
    else:
        try:
            matches = [pn.parse(text, DEFAULT_REGION)]
        except pn.NumberParseException:
            return None
    found = [
        (pn.format_number(n, pn.PhoneNumberFormat.E164), n.extension)
        for n in matches
        if pn.is_valid_number(n)
    ]
    return found or None


def ours(conn, texts: list[str]) -> list[list[tuple[str, str | None]]]:
    rows = conn.execute(NUMBERS_OF_EACH, [texts]).fetchall()
    by_text: dict[int, list] = defaultdict(list)
    for ordinal, number, ext in rows:
        if number is not None:
            by_text[ordinal].append((number, ext))
    return [by_text[i] for i in range(1, len(texts) + 1)]


# These tests need no COMMIT: `conn` is a transaction rolled back at their end.
pytestmark = pytest.mark.rolled_back


def test_phone_numbers_agree_with_libphonenumber(conn):
    rng = random.Random(20261126)
    sample = numbers(rng)
    singles = [text for number in sample for text in spellings(number, rng)]
    fields = []
    for _ in range(len(sample)):  # several numbers in one field
        a, b = rng.sample(sample, 2)
        pick = rng.choice
        fields.append(pick(spellings(a, rng)[:2]) + pick(SEPARATORS) + pick(spellings(b, rng)[:2]))
    texts = singles + fields
    expected = [libphonenumber_finds(text, several=text in fields) for text in texts]
    got = ours(conn, texts)

    compared = [(t, e, g) for t, e, g in zip(texts, expected, got, strict=True) if e is not None]
    disagree = [(t, e, g) for t, e, g in compared if e != g]
    share = 1 - len(disagree) / len(compared)
    regions = {pn.region_code_for_number(n) for n in sample}
    assert len(compared) > 1000 and {"RU", "KZ", "DE", "US"} <= regions
    assert sum(1 for t, _, _ in compared if t in fields) > 50, (
        "several numbers per field are compared"
    )
    assert share >= 0.995, (
        f"agreement {share:.4f} on {len(compared)}; first differences:\n"
        + "\n".join(f"  {t!r}: libphonenumber {e}, pgcti {g}" for t, e, g in disagree[:15])
    )
    print(f"agreement with libphonenumber: {share:.4f} on {len(compared)} spellings")


EXAMPLES = [
    ("8-916-1112233 доб. 12", [("+79161112233", "12")]),
    ("8-495-1000002 доб. 12", [("+74951000002", "12")]),
    ("89161112233, 89161112234", [("+79161112233", None), ("+79161112234", None)]),
    ("89161112233 89161112234", [("+79161112233", None), ("+79161112234", None)]),
    ("tel:+7-916-111-22-33;ext=12", [("+79161112233", "12")]),
    ("+7 916 111-22-33;ext=12", [("+79161112233", "12")]),
    ("８ (９１６) １１１-２２-３３", [("+79161112233", None)]),
    ("8-10-49-30-1234567", [("+49301234567", None)]),
    ("+44 (0)20 7946 0958", [("+442079460958", None)]),
    ("8 (495) 123-45-67, доб. 4", [("+74951234567", "4")]),
    (
        "моб. 8 916 111 22 33 или раб. 8 495 123 45 67 (доб. 7)",
        [("+79161112233", None), ("+74951234567", "7")],
    ),
    ("101", [("101", None)]),
]


@pytest.mark.parametrize(("raw", "expected"), EXAMPLES)
def test_the_spellings_of_issue_11(conn, raw, expected):
    assert ours(conn, [raw]) == [expected]
    first = expected[0][0]
    assert conn.execute("SELECT cti.normalize_phone(%s)", [raw]).fetchone() == (first,)
