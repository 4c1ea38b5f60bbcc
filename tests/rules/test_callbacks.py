"""Callback tasks at the SQL boundary (db/logic/57_callbacks.sql): frames in, tasks out."""

from __future__ import annotations

import psycopg
import pytest

from ingester.simulator import onlinepbx3_calls as pbx
from tests.support.crm_fixture import KNOWN, LINE, builder, commands, insert_frames, seed_crm

OTHER_NUMBER_OF_IVANOV = "8 916 111-22-33"
UNKNOWN = "+7 (903) 555-01-02"

TASK = """SELECT party, client_id, e164, missed_calls, owner_id, owner_rule, created_at, due_at,
                 closed_at, closed_by_extension, closed_how FROM cti.callback_task"""


@pytest.fixture
def crm(conn):
    ids = seed_crm(conn)
    conn.execute(
        "INSERT INTO pgcti_refcrm.client_phone (client_id, raw) VALUES (%s, %s)",
        [ids["ivanov"], OTHER_NUMBER_OF_IVANOV],
    )
    return ids


def tasks(conn: psycopg.Connection) -> list[dict]:
    cur = conn.execute(TASK + " ORDER BY id")
    return [dict(zip([c.name for c in cur.description], r, strict=True)) for r in cur]


def missed(conn, seed: int, number: str = KNOWN, line: str = LINE, cause: str = "NO_ANSWER"):
    b = builder(seed)
    insert_frames(conn, pbx.inbound_unanswered(b, number, line, ["101", "102"], cause))
    return b


def test_a_missed_call_makes_a_task_for_the_clients_manager(conn, crm):
    b = missed(conn, 1)
    (task,) = tasks(conn)
    ended = conn.execute(
        "SELECT ended_at FROM cti.call WHERE pbx_call_id = %s", [b.call_uuid]
    ).fetchone()[0]
    assert task["party"] == f"client:{crm['ivanov']}" and task["e164"] == "+74951234567"
    assert (task["owner_id"], task["owner_rule"]) == (crm["Petrova"], "manager")
    assert task["created_at"] == ended and str(task["due_at"] - ended) == "1:00:00"
    assert task["closed_at"] is None
    item = conn.execute(
        "SELECT target_kind, target_id, payload FROM cti.outbox WHERE type = 'callback_task'"
    ).fetchone()
    assert item[:2] == ("emp", crm["Petrova"])
    assert item[2]["client_name"] == "Ivan Ivanov" and item[2]["missed_calls"] == 1
    assert item[2]["task_id"] and item[2]["number"] == "+74951234567"


@pytest.mark.parametrize("cause", ["ORIGINATOR_CANCEL", "USER_BUSY"])
def test_abandoned_and_busy_calls_make_tasks_too(conn, crm, cause):
    missed(conn, 1, cause=cause)
    assert len(tasks(conn)) == 1


def test_repeated_missed_calls_add_to_the_open_task(conn, crm):
    missed(conn, 1)
    missed(conn, 2, number=OTHER_NUMBER_OF_IVANOV)  # the same client from another number
    (task,) = tasks(conn)
    assert task["missed_calls"] == 2 and task["e164"] == "+79161112233", "the last number"
    items = [c for c in commands(conn) if c[2] == "callback_task"]
    assert len(items) == 2, "the owner hears of each missed call"


def test_an_answered_outbound_call_to_any_of_the_clients_numbers_closes_it(conn, crm):
    missed(conn, 1)
    b = builder(3)
    insert_frames(conn, pbx.outbound(b, "103", OTHER_NUMBER_OF_IVANOV, answered=True))
    (task,) = tasks(conn)
    answered = conn.execute(
        "SELECT answered_at FROM cti.call WHERE pbx_call_id = %s", [b.call_uuid]
    ).fetchone()[0]
    assert (task["closed_how"], task["closed_by_extension"]) == ("outbound_answered", "103")
    assert task["closed_at"] == answered


def test_an_unanswered_outbound_call_leaves_it_open(conn, crm):
    missed(conn, 1)
    insert_frames(conn, pbx.outbound(builder(3), "103", KNOWN, answered=False))
    assert tasks(conn)[0]["closed_at"] is None


def test_the_clients_next_answered_inbound_call_closes_it(conn, crm):
    missed(conn, 1)
    insert_frames(conn, pbx.inbound_answered(builder(4), KNOWN, LINE, "102"))
    (task,) = tasks(conn)
    assert (task["closed_how"], task["closed_by_extension"]) == ("inbound_answered", "102")
    missed(conn, 5)
    assert [t["closed_at"] is None for t in tasks(conn)] == [False, True], "a new task"


def test_unknown_callers_get_tasks_as_leads(conn, crm):
    missed(conn, 1, number=UNKNOWN)
    (task,) = tasks(conn)
    lead = conn.execute("SELECT id, name FROM pgcti_refcrm.client WHERE is_lead").fetchone()
    assert lead[1] == "Lead" and task["party"] == f"client:{lead[0]}"
    assert task["owner_id"] is None, "a lead has no manager, the line no owner, no default"
    assert not [c for c in commands(conn) if c[2] == "callback_task"], "nobody to tell"


def test_the_owner_policy_falls_back_to_the_line_then_the_default(conn, crm):
    conn.execute(
        "INSERT INTO pgcti_refcrm.line (dialled, name, owner_id) VALUES (%s, 'Sales', %s)",
        [LINE, crm["Sidorov"]],
    )
    missed(conn, 1, number=UNKNOWN)
    assert (tasks(conn)[0]["owner_id"], tasks(conn)[0]["owner_rule"]) == (crm["Sidorov"], "line")
    conn.execute("UPDATE cti.config SET callback_default_owner = %s", [crm["Orlov"]])
    missed(conn, 2, number="+7 903 555-09-09", line="+74950000000")  # a line of no one's
    assert (tasks(conn)[1]["owner_id"], tasks(conn)[1]["owner_rule"]) == (crm["Orlov"], "default")
    conn.execute(
        "UPDATE cti.config SET callback_owner_policy = '{default}', callback_due_after = '15 min'"
    )
    missed(conn, 3)  # Ivanov has a manager, but the policy says: the default
    task = tasks(conn)[2]
    assert (task["owner_id"], task["owner_rule"]) == (crm["Orlov"], "default")
    assert str(task["due_at"] - task["created_at"]) == "0:15:00"


def test_the_owner_lists_open_tasks_through_the_client_api(conn, crm, make_login, dsn):
    desk = make_login("cti_client", "petrova")
    conn.execute(
        "INSERT INTO cti.client_login (login, workstation_id, employee_id) VALUES (%s, %s, %s)",
        [psycopg.conninfo.conninfo_to_dict(desk)["user"], crm["ws-101"], crm["Petrova"]],
    )
    missed(conn, 1)
    missed(conn, 2, number=UNKNOWN)  # a lead: nobody's task
    with psycopg.connect(desk) as petrova:
        mine = petrova.execute(
            "SELECT number, client_name, missed_calls FROM cti.callback_tasks_v1()"
        )
        assert mine.fetchall() == [("+74951234567", "Ivan Ivanov", 1)]
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            petrova.execute("SELECT * FROM cti.callback_task")


def test_rebuild_makes_the_same_tasks(conn, crm):
    missed(conn, 1)
    missed(conn, 2, number=UNKNOWN)
    missed(conn, 3)
    insert_frames(conn, pbx.outbound(builder(4), "103", KNOWN, answered=True))
    missed(conn, 5, number=OTHER_NUMBER_OF_IVANOV)
    before = tasks(conn)
    sent = conn.execute("SELECT count(*) FROM cti.outbox").fetchone()[0]
    conn.execute("SELECT * FROM cti.rebuild()")
    assert tasks(conn) == before and len(before) == 3
    assert conn.execute("SELECT count(*) FROM cti.outbox").fetchone()[0] == sent, "sends nothing"


def test_the_demo_board_and_watch_name_a_task_for_its_owner(conn, crm):
    """The demo's board and `pgcti watch` print a task as a callback for an employee, from
    the item the database sent (the board once named it after a desk, with "call None")."""
    from ingester.clients.watch import Item, describe
    from ingester.demo.board import Board

    missed(conn, 1)
    missed(conn, 2)
    kind, target, seq, call_id, payload, created = conn.execute(
        "SELECT target_kind, target_id, seq, call_id, payload, created_at FROM cti.outbox"
        " WHERE type = 'callback_task' ORDER BY seq DESC LIMIT 1"
    ).fetchone()
    # a workstation with the owner's id, so that a line naming a desk would show it
    board = Board({target: "desk-101"})
    line = board.apply(kind, target, "callback_task", payload)
    assert line.startswith(f"callback  -> employee {crm['Petrova']}: call back +74951234567 Ivan")
    assert "(2 missed, task " in line and "desk" not in line and "None" not in line, line
    # The live board (a terminal's) shows it in its own panel, for its owner.
    from rich.console import Console

    screen = Console(width=240, height=30, record=True)
    live = Board({}, {target: "Petrova"})
    live.apply(kind, target, "callback_task", payload)
    screen.print(live)
    shown = screen.export_text()
    assert (
        "Callbacks: missed calls to call back" in shown
        and f"employee {crm['Petrova']} (Petrova): call back +7495" in shown
    )
    assert "callbacks 1" in shown, shown
    watched = describe(Item(f"emp:{target}", seq, "callback_task", call_id, payload, created))
    assert "Ivan Ivanov" in watched and "2 missed" in watched, watched
