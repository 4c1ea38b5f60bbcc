"""`make bench`, part 6: cti.route_v1, the question the PBX asks at the first ring, at 100k clients.

    python -m tests.bench.routing [--clients 100000] [--calls 3000]

A scratch database with the reference CRM (clients with numbers in people's spellings, 30
managers with extensions, a third of them busy or in do not disturb). In the server, a
PL/pgSQL loop times each call by clock_timestamp: route_v1 (known clients, unknown numbers,
shared numbers, as a line sees them), and the client lookup alone (cti.crm_lookup, what
every call does already) on the same numbers, interleaved. It prints p50, p99 and the
largest of each, and the ratio route / lookup at p50, so that the machine's speed cancels.
Nothing here asserts a speed: the issue's bound (p99 5 ms) is for a person to read.
"""

from __future__ import annotations

import argparse
import json

import psycopg

from ingester import embedded
from tests.bench.workload import log, scratch_database, seed_crm

TIMED = """
CREATE TEMP TABLE timing (what text, ms float8);
DO $$
DECLARE
    v_started timestamptz;
    v_number text;
BEGIN
    FOR i IN 1 .. %(calls)s LOOP
        -- 8 in 10 known clients, 1 an unknown number, 1 a number in no CRM format
        v_number := CASE WHEN i %% 10 < 8 THEN '+79' || lpad(((i * 7919) %% %(clients)s + 1)::text, 9, '0')
                         WHEN i %% 10 = 8 THEN '+7499' || lpad(i::text, 7, '0')
                         ELSE 'anonymous' END;
        v_started := clock_timestamp();
        PERFORM * FROM cti.route_v1(v_number, '74950001155');
        INSERT INTO timing VALUES ('route_v1', extract(epoch FROM clock_timestamp() - v_started) * 1000);
        v_started := clock_timestamp();
        PERFORM * FROM cti.crm_lookup(v_number);
        INSERT INTO timing VALUES ('crm_lookup', extract(epoch FROM clock_timestamp() - v_started) * 1000);
    END LOOP;
END
$$;
"""

SUMMARY = """
SELECT what, percentile_cont(0.5) WITHIN GROUP (ORDER BY ms), percentile_cont(0.99) WITHIN GROUP (ORDER BY ms), max(ms)
  FROM timing GROUP BY what ORDER BY what DESC
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=100_000)
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    server = embedded.start()
    dsn = scratch_database(server, "pgcti_bench_routing")
    log(
        f"a CRM of {args.clients:,} clients, 30 managers (a third of them busy or in do not disturb)"
    )
    with psycopg.connect(dsn, autocommit=True) as conn:
        seed_crm(conn, args.clients)
        conn.execute(
            "INSERT INTO cti.presence (extension, device_state, device_since, desk_state, desk_since)"
            " SELECT e::text, CASE WHEN e % 3 = 1 THEN 'INUSE' ELSE 'NOT_INUSE' END, now(),"
            "        CASE WHEN e % 3 = 2 THEN 'dnd' END, now() FROM generate_series(101, 130) e"
        )
        conn.execute("ANALYZE")
        log(f"{args.calls:,} routing questions, each beside the lookup alone, timed in the server")
        conn.execute(
            TIMED.replace("%(calls)s", str(args.calls))
            .replace("%(clients)s", str(args.clients))
            .replace("%%", "%")
        )
        rows = conn.execute(SUMMARY).fetchall()
    results = {what: {"p50_ms": p50, "p99_ms": p99, "max_ms": top} for what, p50, p99, top in rows}
    print(f"\n{'at ' + format(args.clients, ',') + ' clients':24} {'p50':>9} {'p99':>9} {'max':>9}")
    for what, r in results.items():
        print(f"{what:24} {r['p50_ms']:7.3f} ms {r['p99_ms']:6.3f} ms {r['max_ms']:6.3f} ms")
    ratio = results["route_v1"]["p50_ms"] / results["crm_lookup"]["p50_ms"]
    print(f"route_v1 / crm_lookup at p50: {ratio:.2f}")
    if args.json:
        with open(args.json, "w") as out:
            json.dump(
                {
                    "clients": args.clients,
                    "calls": args.calls,
                    "results": results,
                    "ratio_p50": ratio,
                },
                out,
                indent=2,
            )


if __name__ == "__main__":
    main()
