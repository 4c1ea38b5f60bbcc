"""The adapter signatures are the DBA's contract (issue 30, part 4): a DBA's override is
written against them, and `pgcti migrate` keeps it only while they hold. They change only
as a new versioned adapter beside the old one (docs/dba-guide.md), so this test pins them:
a change here is a change of contract, to be made on purpose."""

from __future__ import annotations

import psycopg

from ingester.install import logic, migrations

# name -> (arguments, result), as PostgreSQL prints them for pgcti's placeholders.
CONTRACT = {
    "crm_lookup": (
        "p_e164 text",
        "TABLE(client_id bigint, client_name text, company text, manager_id bigint, manager_surname text)",
    ),
    "crm_register_unknown": ("p_e164 text", "bigint"),
    "crm_workstation_for_extension": ("p_extension text", "bigint"),
    "crm_ring_recipients": ("p_dialled text", "SETOF bigint"),
    "crm_line_owner": ("p_dialled text", "bigint"),
    "crm_deals": (
        "",
        "TABLE(client_id bigint, manager_id bigint, opened_at timestamp with time zone, "
        "won_at timestamp with time zone)",
    ),
    "crm_extension_for_channel": ("p_channel text", "text"),
    "crm_extension_for_workstation": ("p_workstation_id bigint", "text"),
    "crm_extension_for_employee": ("p_employee_id bigint", "text"),
    "crm_workstation_name": ("p_workstation_id bigint", "text"),
    "crm_employee_name": ("p_employee_id bigint", "text"),
}


def test_the_adapters_are_the_pinned_contract(fresh_db):
    assert sorted(n.removeprefix("cti.") for n in logic.adapters()) == sorted(CONTRACT)
    migrations.apply(fresh_db)  # pgcti alone: its placeholders
    with psycopg.connect(fresh_db) as conn:
        found = {
            name: (args, result)
            for name, args, result in conn.execute(
                """SELECT p.proname, pg_get_function_arguments(p.oid), pg_get_function_result(p.oid)
                     FROM pg_proc p WHERE p.pronamespace = 'cti'::regnamespace AND p.proname = ANY(%s)""",
                [list(CONTRACT)],
            )
        }
    assert found == CONTRACT
