"""`make bench`, part 7: what pgcti's phone directory costs a CRM's own writes.

    python -m tests.bench.crm_writes [--partners 50000] [--rows 2000] [--rounds 3]

Two databases of a non-C collation (C.UTF-8) on one server hold the same Odoo-shaped
res_partner (its phone and mobile typed as people type them, its usual indexes). In one,
pgcti is installed and both phone columns are attached (cti.attach_phone_column); the other
has no pgcti. The same writes are timed on the server in both, alternating, and the ratio
with pgcti / without is printed per case:

- one row at a time, an UPDATE that touches no phone (goal <= 1.5), one that changes a
  phone (goal <= 5), and a DELETE;
- the whole table in one UPDATE, touching no phone (goal <= 3), and changing every mobile.

Each case runs in a transaction that is rolled back, and the tables are vacuumed between
rounds, so every round sees the same tables. Nothing here asserts a speed.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

from ingester import embedded
from ingester.install import migrations
from tests.bench.workload import log

# Odoo's res_partner (odoo/addons/base/models/res_partner.py), its columns that matter for
# the cost of a write: a wide row, character varying phones, and indexes of its own.
PARTNERS = """
CREATE TABLE public.res_partner (
    id serial PRIMARY KEY, name varchar, complete_name varchar, display_name varchar,
    ref varchar, lang varchar, tz varchar, vat varchar, website varchar, comment text,
    active boolean DEFAULT true, type varchar DEFAULT 'contact', street varchar, street2 varchar,
    zip varchar, city varchar, email varchar, phone varchar, mobile varchar,
    phone_sanitized varchar, is_company boolean DEFAULT false, parent_id int,
    commercial_partner_id int, user_id int, company_id int, color int,
    create_date timestamp DEFAULT now(), write_date timestamp DEFAULT now()
);
CREATE INDEX res_partner_name_index ON public.res_partner (name);
CREATE INDEX res_partner_complete_name_index ON public.res_partner (complete_name);
CREATE INDEX res_partner_ref_index ON public.res_partner (ref);
CREATE INDEX res_partner_parent_id_index ON public.res_partner (parent_id);
CREATE INDEX res_partner_commercial_partner_id_index ON public.res_partner (commercial_partner_id);
CREATE INDEX res_partner_phone_sanitized_index ON public.res_partner (phone_sanitized);
INSERT INTO public.res_partner (name, complete_name, display_name, email, phone, mobile, city,
                                street, parent_id, commercial_partner_id, user_id)
SELECT 'Partner ' || g, 'Partner ' || g, 'Partner ' || g, 'p' || g || '@example.com',
       CASE g % 3 WHEN 0 THEN '+7 (495) ' || lpad(g::text, 7, '0')
                  WHEN 1 THEN '8 495 ' || lpad(g::text, 7, '0') || ' доб. 12'
                  ELSE '+7-495-' || lpad(g::text, 7, '0') END,
       '8 (916) ' || lpad(g::text, 7, '0'), 'Moscow', 'Tverskaya ' || g,
       NULLIF(g / 10, 0), g / 10 + 1, g % 30 + 1
  FROM generate_series(1, %(partners)s) g;

-- Server time of one statement run once (bulk) or once per id (rows), in milliseconds.
CREATE FUNCTION public.bench_time(p_statement text, p_ids int[]) RETURNS float8
LANGUAGE plpgsql AS $$
DECLARE
    v_id int;
    v_started timestamptz := clock_timestamp();
BEGIN
    IF p_ids IS NULL THEN
        EXECUTE p_statement;
    ELSE
        FOREACH v_id IN ARRAY p_ids LOOP
            EXECUTE p_statement USING v_id;
        END LOOP;
    END IF;
    RETURN extract(epoch FROM clock_timestamp() - v_started) * 1000;
END
$$;
"""

ATTACH = """
GRANT SELECT, TRIGGER ON public.res_partner TO cti_owner;
SELECT cti.attach_phone_column('public.res_partner', 'phone');
SELECT cti.attach_phone_column('public.res_partner', 'mobile');
"""

# name, statement, per row?, goal (with / without)
CASES = [
    (
        "row update, no phone",
        "UPDATE public.res_partner SET email = 'x' || $1, write_date = now() WHERE id = $1",
        True,
        1.5,
    ),
    (
        "row update, phone changed",
        "UPDATE public.res_partner SET phone = '+7 495 ' || lpad(($1 + 1000000)::text, 7, '0') WHERE id = $1",
        True,
        5.0,
    ),
    ("row delete", "DELETE FROM public.res_partner WHERE id = $1", True, None),
    (
        "bulk update, no phone",
        "UPDATE public.res_partner SET write_date = now(), color = 1",
        False,
        3.0,
    ),
    (
        "bulk update, every mobile changed",
        "UPDATE public.res_partner SET mobile = mobile || ' доб. 7'",
        False,
        None,
    ),
]


def _database(server: str, name: str, partners: int, with_pgcti: bool) -> str:
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
        conn.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE template0 LOCALE 'C.UTF-8'").format(
                sql.Identifier(name)
            )
        )
    dsn = make_conninfo(server, dbname=name)
    if with_pgcti:
        migrations.apply(dsn)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(PARTNERS.replace("%(partners)s", str(int(partners))))
        if with_pgcti:
            conn.execute(ATTACH)
        conn.execute("VACUUM ANALYZE")
    return dsn


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--partners", type=int, default=50_000)
    parser.add_argument("--rows", type=int, default=2_000, help="rows written one at a time")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", default="bench-crm-writes.json")
    args = parser.parse_args()

    server = os.environ.get("PGCTI_TEST_DSN") or embedded.start()
    names = {True: "pgcti_bench_odoo_with", False: "pgcti_bench_odoo_without"}
    log(f"two C.UTF-8 databases of {args.partners:,} partners, one with pgcti attached")
    dsns = {w: _database(server, names[w], args.partners, w) for w in (True, False)}
    ids = list(range(1, args.partners + 1, max(1, args.partners // args.rows)))[: args.rows]
    times: dict[tuple[str, bool], list[float]] = {}
    try:
        conns = {w: psycopg.connect(dsn, autocommit=True) for w, dsn in dsns.items()}
        for round_no in range(1, args.rounds + 1):
            for name, statement, per_row, _goal in CASES:
                for with_pgcti in (
                    round_no % 2 == 1,
                    round_no % 2 == 0,
                ):  # alternate who goes first
                    conn = conns[with_pgcti]
                    with conn.transaction(force_rollback=True):
                        if per_row:  # a warm-up row: the trigger's statements are planned once
                            conn.execute("SELECT public.bench_time(%s, %s)", [statement, ids[:1]])
                        ms = conn.execute(
                            "SELECT public.bench_time(%s, %s)",
                            [statement, ids[1:] if per_row else None],
                        ).fetchone()[0]
                    times.setdefault((name, with_pgcti), []).append(ms)
                for conn in conns.values():
                    conn.execute("VACUUM public.res_partner")
            log(f"round {round_no}/{args.rounds} done")
        for conn in conns.values():
            conn.close()
    finally:
        with psycopg.connect(server, autocommit=True) as conn:
            for name in names.values():
                conn.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
                )

    result: dict[str, object] = {
        "partners": args.partners,
        "rows": args.rows,
        "collation": "C.UTF-8",
    }
    print()
    print(f"{'case (server time)':<36}{'without':>12}{'with pgcti':>12}{'ratio':>8}  goal")
    for name, _statement, per_row, goal in CASES:
        without = statistics.median(times[name, False])
        with_ = statistics.median(times[name, True])
        unit = "us/row" if per_row else "ms"
        scale = 1000 / (len(ids) - 1) if per_row else 1
        ratio = with_ / without
        print(
            f"{name:<36}{without * scale:>9.1f} {unit:<3}{with_ * scale:>9.1f}   {ratio:>6.2f}  "
            + (f"<= {goal}" if goal else "-")
        )
        result[name] = {
            "without": without * scale,
            "with": with_ * scale,
            "unit": unit,
            "ratio": round(ratio, 3),
            "goal": goal,
        }
    with open(args.json, "w") as out:
        json.dump(result, out, indent=2)
    print(f"\nwritten to {args.json}")


if __name__ == "__main__":
    main()
