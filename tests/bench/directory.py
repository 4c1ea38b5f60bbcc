"""`make bench`, part 3: E.164 lookups over a CRM's own tables through the phone directory.

    python -m tests.bench.directory [--small 10000] [--large 1000000] [--lookups 5000]

A CRM of a shape pgcti has never seen (people keyed by uuid, contact points with messy
spellings, organisations) is attached with cti.attach_phone_column, at two sizes, in two
scratch databases on one server. The lookup is timed on the server (a PL/pgSQL loop around
cti.crm_lookup, so the client's round trip is not in it), alternating between the two, and
the ratio large / small is printed. Nothing here asserts a speed. Goal (issue 11): <= 1.5.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import psycopg

from ingester import embedded
from tests.bench.workload import log, scratch_database

SHOP = """
CREATE SCHEMA shop;
CREATE TABLE shop.org (id int PRIMARY KEY, title text NOT NULL);
CREATE TABLE shop.person (person_uuid uuid PRIMARY KEY, display_name text NOT NULL,
                          org_id int REFERENCES shop.org, owner_login text);
CREATE TABLE shop.contact_point (id bigint PRIMARY KEY, person_uuid uuid NOT NULL REFERENCES shop.person,
                                 kind text NOT NULL, value text);
GRANT USAGE ON SCHEMA shop TO cti_owner;
GRANT SELECT ON shop.org, shop.person TO cti_owner;
GRANT SELECT, TRIGGER ON shop.contact_point TO cti_owner;

CREATE OR REPLACE FUNCTION cti.crm_lookup(p_e164 text)
RETURNS TABLE (client_id bigint, client_name text, company text, manager_id bigint, manager_surname text)
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
AS $$ SELECT DISTINCT NULL::bigint, p.display_name, o.title, NULL::bigint, p.owner_login
        FROM cti.phone_directory d
        JOIN shop.person p ON p.person_uuid = d.crm_key::uuid
        LEFT JOIN shop.org o ON o.id = p.org_id
       WHERE d.e164 = p_e164 $$;

-- Server time of one lookup per number, in microseconds each: the whole adapter (the
-- directory, then the CRM's own tables), or the directory alone (pgcti's part).
CREATE FUNCTION shop.time_lookups(p_numbers text[], p_directory_only boolean) RETURNS float8[]
LANGUAGE plpgsql AS $$
DECLARE
    v_number text;
    v_started timestamptz;
    v_times float8[] := '{}';
BEGIN
    FOREACH v_number IN ARRAY p_numbers LOOP
        v_started := clock_timestamp();
        IF p_directory_only THEN
            PERFORM crm_key FROM cti.phone_directory WHERE e164 = v_number;
        ELSE
            PERFORM * FROM cti.crm_lookup(v_number);
        END IF;
        v_times := v_times || extract(epoch FROM clock_timestamp() - v_started) * 1e6;
    END LOOP;
    RETURN v_times;
END $$;
"""

# Number i of the CRM: +7 9xx xxx xx xx, typed in the ways people type it.
SEED = """
INSERT INTO shop.org SELECT g, 'Org ' || g FROM generate_series(1, 1000) g;
INSERT INTO shop.person
SELECT md5(g::text)::uuid, 'Person ' || g, 1 + g % 1000, 'manager' || g % 40 FROM generate_series(1, {n}) g;
INSERT INTO shop.contact_point
SELECT g, md5(g::text)::uuid, 'phone',
       CASE g % 4 WHEN 0 THEN '+7 9' || lpad(g::text, 9, '0')
                  WHEN 1 THEN '8 (9' || substr(lpad(g::text, 9, '0'), 1, 2) || ') ' || substr(lpad(g::text, 9, '0'), 3, 3)
                              || '-' || substr(lpad(g::text, 9, '0'), 6, 2) || '-' || substr(lpad(g::text, 9, '0'), 8)
                  WHEN 2 THEN '89' || lpad(g::text, 9, '0') || ' доб. ' || g % 100
                  ELSE '89' || lpad(g::text, 9, '0') || ', 8 495 ' || lpad((g % 10000000)::text, 7, '0') END
  FROM generate_series(1, {n}) g;
"""


def build(dsn: str, people: int) -> float:
    """Seed the CRM, attach its phone column; returns the seconds the backfill took."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(SHOP)
        conn.execute(SEED.replace("{n}", str(int(people))))  # no parameters: several statements
        started = time.perf_counter()
        conn.execute(
            "SELECT cti.attach_phone_column('shop.contact_point', 'value', p_key_column => 'person_uuid')"
        )
        took = time.perf_counter() - started
        conn.execute("VACUUM ANALYZE")  # what autovacuum does after a big insert
    return took


def lookups(people: int, count: int, seed: int) -> list[str]:
    """Half numbers the CRM has, half it has not."""
    import random

    rng = random.Random(seed)
    return [
        f"+79{rng.randrange(1, people + 1):09d}" if i % 2 else f"+7812{rng.randrange(10**7):07d}"
        for i in range(count)
    ]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dsn", default=os.environ.get("PGCTI_TEST_DSN"))
    parser.add_argument("--small", type=int, default=10_000)
    parser.add_argument("--large", type=int, default=1_000_000)
    parser.add_argument("--lookups", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", default="bench-directory.json")
    args = parser.parse_args()

    server = args.dsn or embedded.start()
    names = {"small": "pgcti_bench_dir_small", "large": "pgcti_bench_dir_large"}
    dsns = {size: scratch_database(server, name) for size, name in names.items()}
    sizes = {"small": args.small, "large": args.large}
    result: dict = {}
    try:
        for size, dsn in dsns.items():
            log(f"{size}: {sizes[size]:,} people, attaching their phone column (backfill)")
            result[f"{size}_backfill_s"] = round(build(dsn, sizes[size]), 1)
            log(f"  backfilled in {result[f'{size}_backfill_s']} s")
        medians: dict[tuple[str, bool], list[float]] = {}
        conns = {size: psycopg.connect(dsn, autocommit=True) for size, dsn in dsns.items()}
        try:
            for r in range(args.rounds):  # alternate, so machine noise hits both
                for directory_only in (False, True):
                    for size, conn in conns.items():
                        numbers = lookups(sizes[size], args.lookups, r)
                        times = conn.execute(
                            "SELECT shop.time_lookups(%s, %s)", [numbers, directory_only]
                        ).fetchone()[0]
                        medians.setdefault((size, directory_only), []).append(
                            statistics.mean(times)
                        )
        finally:
            for conn in conns.values():
                conn.close()
    finally:
        with psycopg.connect(server, autocommit=True) as conn:
            for name in names.values():
                conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    m = {key: statistics.median(values) for key, values in medians.items()}
    result.update(
        small_people=args.small,
        large_people=args.large,
        lookup_small_us=round(m["small", False], 2),
        lookup_large_us=round(m["large", False], 2),
        lookup_large_vs_small=round(m["large", False] / m["small", False], 3),
        directory_small_us=round(m["small", True], 2),
        directory_large_us=round(m["large", True], 2),
        directory_large_vs_small=round(m["large", True] / m["small", True], 3),
    )
    print()
    for what, directory_only in (("adapter lookup", False), ("directory alone", True)):
        small, large = m["small", directory_only], m["large", directory_only]
        print(f"{what + ', ' + format(args.small, ',') + ' people (us, server)':<56}{small:>10.2f}")
        print(f"{what + ', ' + format(args.large, ',') + ' people (us, server)':<56}{large:>10.2f}")
        print(f"{what + ', large / small (goal <= 1.5)':<56}{large / small:>10.3f}")
    with open(args.json, "w") as out:
        json.dump(result, out, indent=2)
    print(f"\nwritten to {args.json}")


if __name__ == "__main__":
    main()
