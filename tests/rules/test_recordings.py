"""Recording references from AMI and who may hear them (db/logic/59_recordings.sql)."""

from __future__ import annotations

import psycopg

from ingester.simulator import onlinepbx3_calls as pbx
from ingester.simulator.asterisk_calls import block, from_onlinepbx3
from tests.support.crm_fixture import KNOWN, LINE, builder, insert_frames, seed_crm

FILE = "/var/spool/asterisk/monitor/2026/12/06/in-74950001122-84951234567-1.wav"


def recorded_call(conn) -> tuple[list[str], dict[str, str]]:
    """An inbound call answered at 103, as AMI blocks, and its first channel's ids."""
    blocks = from_onlinepbx3(pbx.inbound_answered(builder(4), KNOWN, LINE, "103"))
    first = dict(line.split(": ", 1) for line in blocks[0].split("\r\n") if ": " in line)
    return blocks, first


def test_a_recording_is_named_by_varset_and_complete_when_its_channel_hangs_up(conn):
    seed_crm(conn)
    blocks, first = recorded_call(conn)
    named = block(
        "VarSet",
        {
            "Channel": first["Channel"],
            "Uniqueid": first["Uniqueid"],
            "Linkedid": first["Linkedid"],
            "Variable": "MIXMONITOR_FILENAME",
            "Value": FILE,
        },
    )
    hangup_at = next(
        i for i, b in enumerate(blocks) if b.startswith("Event: Hangup") and first["Uniqueid"] in b
    )
    insert_frames(conn, [*blocks[:2], named, *blocks[2:hangup_at]], source="asterisk")
    assert conn.execute("SELECT file, ready_at IS NULL FROM cti.recording").fetchall() == [
        (FILE, True)
    ]
    insert_frames(conn, blocks[hangup_at:], source="asterisk")
    assert conn.execute("SELECT ready_at IS NOT NULL FROM cti.recording").fetchall() == [(True,)]
    # Other variables, and an empty name, are no recording.
    other = block(
        "VarSet", {"Uniqueid": "1.9", "Linkedid": "1.9", "Variable": "QUEUEPOSITION", "Value": "1"}
    )
    insert_frames(conn, [other], source="asterisk")
    assert conn.execute("SELECT count(*) FROM cti.recording").fetchone()[0] == 1


def test_who_may_hear_a_recording_and_for_how_long(conn, make_login):
    crm = seed_crm(conn)
    blocks, first = recorded_call(conn)
    named = block(
        "VarSet",
        {
            "Uniqueid": first["Uniqueid"],
            "Linkedid": first["Linkedid"],
            "Variable": "MIXMONITOR_FILENAME",
            "Value": FILE,
        },
    )
    insert_frames(conn, [blocks[0], named, *blocks[1:]], source="asterisk")
    (call_id,) = conn.execute("SELECT id FROM cti.call").fetchone()
    tokens = {}
    for name, ws, employee in [
        ("rec103", crm["ws-103"], None),
        ("rec101", crm["ws-101"], None),
        ("recmgr", None, crm["Petrova"]),
    ]:
        login = psycopg.conninfo.conninfo_to_dict(make_login("cti_client", name))["user"]
        conn.execute(
            "INSERT INTO cti.client_login (login, workstation_id, employee_id) VALUES (%s, %s, %s)",
            [login, ws, employee],
        )
        tokens[name] = conn.execute("SELECT cti.issue_gateway_token_v1(%s)", [login]).fetchone()[0]
    tokens["supervisor"] = conn.execute("SELECT cti.issue_supervisor_token_v1()").fetchone()[0]

    def play(who: str) -> tuple:
        return conn.execute(
            "SELECT file, allowed, why FROM cti.gateway_recording_v1(%s, %s)",
            [tokens[who], call_id],
        ).fetchone()

    assert play("rec103") == (FILE, True, "the desk was on the call")
    assert play("recmgr") == (FILE, True, "the client's manager")  # Ivanov's manager, Petrova
    assert play("supervisor") == (FILE, True, "supervisor")
    assert play("rec101") == (None, False, "not on the call, and not the client's manager")
    conn.execute("UPDATE cti.config SET recordings_keep = '1 minute'")
    conn.execute("UPDATE cti.recording SET started_at = now() - interval '2 minutes'")
    assert play("rec103") == (None, False, "past cti.config.recordings_keep")
    insert_frames(conn, [{"event": "tick", "at": "now"}], source="pgcti")
    assert conn.execute("SELECT count(*) FROM cti.recording").fetchone()[0] == 0
    assert conn.execute(
        "SELECT count(*), count(*) FILTER (WHERE allowed) FROM cti.recording_play"
    ).fetchone() == (5, 3)


def test_where_varset_is_filtered_out_the_newexten_that_runs_mixmonitor_names_it(conn):
    """Many sites drop every VarSet. The Newexten that runs MixMonitor names the file (the
    first argument of AppData: FreePBX's absolute path, or a name in the monitor folder);
    when the VarSet comes after it, its full name takes the place of the short one."""
    seed_crm(conn)
    blocks, first = recorded_call(conn)
    ids = {k: first[k] for k in ("Channel", "Uniqueid", "Linkedid")}

    def runs(app_data: str, app: str = "MixMonitor") -> str:
        return block(
            "Newexten",
            {
                **ids,
                "Context": "from-pstn",
                "Extension": "s",
                "Application": app,
                "AppData": app_data,
            },
        )

    insert_frames(
        conn,
        [
            *blocks[:2],
            runs("Dial", app="Dial"),  # another step: nothing
            runs(",r(in.wav)t(out.wav)"),  # the two legs apart, no mixed file: nothing
            runs(f"{FILE},abi(LOCAL_MIXMON_ID),"),
            *blocks[2:],
        ],
        source="asterisk",
    )
    assert conn.execute("SELECT file, ready_at IS NOT NULL FROM cti.recording").fetchall() == [
        (FILE, True)
    ]
    # A name in the monitor folder, then the VarSet with its full name: one reference.
    conn.execute("DELETE FROM cti.recording")
    short = "in-1.wav"
    named = block(
        "VarSet",
        {**ids, "Variable": "MIXMONITOR_FILENAME", "Value": f"/var/spool/asterisk/monitor/{short}"},
    )
    insert_frames(conn, [runs(f"{short},b"), named], source="asterisk")
    assert conn.execute("SELECT file FROM cti.recording").fetchall() == [
        (f"/var/spool/asterisk/monitor/{short}",)
    ]
    # ... and the Newexten after its VarSet (two ingesters, one late) adds nothing.
    insert_frames(conn, [runs(f"{short},b")], source="asterisk")
    assert conn.execute("SELECT count(*) FROM cti.recording").fetchone()[0] == 1
