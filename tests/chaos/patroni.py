"""`make chaos --only patroni` (optional): the failover case under Patroni with etcd.

Needs Debian's `patroni` and `etcd-server` packages (`apt-get install patroni
etcd-server`); without them the case says so and is skipped. One etcd member and two
Patroni nodes run on this machine, each node a PostgreSQL of the embedded build on a
port of its own, with synchronous mode on. The ingester and a CRM client use one libpq
multi-host DSN. Under traffic, node 1 (the leader) dies: its Patroni and its postmaster
get SIGKILL. Patroni promotes node 2 once the leader key expires; nothing of pgcti
takes part in that.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

import psycopg
from psycopg.conninfo import make_conninfo

from ingester import embedded
from ingester.clients.gateway_process import free_port
from ingester.install import migrations
from tests.chaos.failover import DESK, Client, _as_server_user, settled_counts
from tests.support.crm_fixture import seed_crm
from tests.support.live import KEY, IngestProcess, SimulatorThread, wait_for

NODE_CONFIG = """\
scope: pgcti-chaos
name: {name}
restapi:
  listen: 127.0.0.1:{api}
  connect_address: 127.0.0.1:{api}
etcd3:
  hosts: 127.0.0.1:{etcd}
bootstrap:
  dcs:
    ttl: 20
    loop_wait: 2
    retry_timeout: 5
    synchronous_mode: true
    postgresql:
      parameters:
        max_connections: 100
  initdb: [{{encoding: UTF8}}]
  pg_hba:
    - local all all trust
    - host all all 127.0.0.1/32 trust
    - host replication all 127.0.0.1/32 trust
postgresql:
  listen: 127.0.0.1:{port}
  connect_address: 127.0.0.1:{port}
  data_dir: {data}
  bin_dir: {bin}
  pgpass: {data}.pgpass
  parameters:
    unix_socket_directories: '{data}'
  authentication:
    superuser: {{username: postgres, password: chaos}}
    replication: {{username: postgres, password: chaos}}
"""


def available() -> str | None:
    """Why the case cannot run here, or None."""
    missing = [tool for tool in ("patroni", "etcd") if shutil.which(tool) is None]
    if missing:
        return f"needs {', '.join(missing)}: apt-get install patroni etcd-server"
    return None


def _leader(api_ports: list[int]) -> int | None:
    for i, port in enumerate(api_ports):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/leader", timeout=2) as answer:
                if answer.status == 200:
                    return i
        except OSError:
            continue
    return None


def _streaming(api_port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{api_port}/patroni", timeout=2) as answer:
            state = json.loads(answer.read())
    except OSError:
        return False
    return any(r.get("state") == "streaming" for r in state.get("replication", []))


def case_patroni(tmp: Path, rate: float, seconds: float = 8) -> dict:
    from tests.chaos.cases import Feed

    why = available()
    if why:
        return {"case": "failover under Patroni: skipped", "why": why}
    tmp.mkdir(parents=True, exist_ok=True)
    tmp.chmod(0o755)
    if os.geteuid() == 0:
        shutil.chown(tmp, "embedded_postgres")
    etcd_port, peer_port = free_port(), free_port()
    etcd = subprocess.Popen(
        [
            "etcd",
            "--data-dir", str(tmp / "etcd"),
            "--listen-client-urls", f"http://127.0.0.1:{etcd_port}",
            "--advertise-client-urls", f"http://127.0.0.1:{etcd_port}",
            "--listen-peer-urls", f"http://127.0.0.1:{peer_port}",
            "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer_port}",
            "--initial-cluster", f"default=http://127.0.0.1:{peer_port}",
        ],
        stdout=(tmp / "etcd.log").open("wb"),
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    ports, apis, nodes = [free_port(), free_port()], [free_port(), free_port()], []
    try:
        for i in range(2):
            config = tmp / f"node{i + 1}.yml"
            config.write_text(
                NODE_CONFIG.format(
                    name=f"node{i + 1}",
                    api=apis[i],
                    etcd=etcd_port,
                    port=ports[i],
                    data=tmp / f"node{i + 1}",
                    bin=embedded.bin_dir(),
                )
            )
            nodes.append(
                subprocess.Popen(
                    _as_server_user(["patroni", str(config)]),
                    stdout=(tmp / f"node{i + 1}.log").open("wb"),
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )
            if i == 0:
                wait_for(
                    lambda: _leader(apis) == 0 or nodes[0].poll() is not None,
                    timeout=90,
                    what="node 1 to lead",
                )
                assert nodes[0].poll() is None, (tmp / "node1.log").read_text()[-2000:]
        wait_for(
            lambda: _streaming(apis[0]) or nodes[1].poll() is not None,
            timeout=120,
            what="node 2 streaming",
        )
        assert nodes[1].poll() is None, (tmp / "node2.log").read_text()[-2000:]
        admin = f"host=127.0.0.1 port={ports[0]} user=postgres password=chaos dbname=postgres"
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute("CREATE DATABASE pgcti")
        leader = make_conninfo(admin, dbname="pgcti")
        migrations.apply(leader, reference_crm=True)
        with psycopg.connect(leader, autocommit=True) as conn:
            crm = seed_crm(conn)
            conn.execute(f'CREATE ROLE "{DESK}" LOGIN IN ROLE cti_client')
            conn.execute(
                "INSERT INTO cti.client_login (login, workstation_id) VALUES (%s, %s)",
                [DESK, crm["ws-101"]],
            )
        both = make_conninfo(
            leader,
            host="127.0.0.1,127.0.0.1",
            port=f"{ports[0]},{ports[1]}",
            target_session_attrs="read-write",
        )
        sim = SimulatorThread()
        ingest = IngestProcess(both, sim.url, tmp / "ingest", KEY, "--log-level", "INFO")
        client = Client(both)
        try:
            wait_for(lambda: sim.server.listeners() == 1)
            feed = Feed(sim, rate, 9)
            time.sleep(seconds)
            started = time.monotonic()
            os.killpg(nodes[0].pid, signal.SIGKILL)  # node 1's Patroni
            pid = int((tmp / "node1" / "postmaster.pid").read_text().split()[0])
            os.kill(pid, signal.SIGKILL)  # and its postmaster
            new_leader = make_conninfo(leader, port=str(ports[1]))
            wait_for(lambda: _leader(apis[1:]) == 0, timeout=120, what="node 2 to lead")
            promoted = time.monotonic() - started
            time.sleep(seconds)
            feed.finish()
            stored, duplicated = settled_counts(new_leader, feed.delivered, client)
        finally:
            ingest.stop()
            sim.close()
            client.stop.set()
    finally:
        for node in nodes:
            if node.poll() is None:
                os.killpg(node.pid, signal.SIGTERM)
                node.wait(30)
        etcd.terminate()
        etcd.wait(10)
    return {
        "case": f"failover under Patroni (synchronous mode) at {rate:g} frames/s",
        "sent": feed.sent,
        "delivered": feed.delivered,
        "stored_on_the_new_leader": stored,
        "lost": feed.delivered - stored,
        "duplicate_commands": duplicated,
        "seconds_to_a_new_leader": round(promoted, 1),  # from the kill
        **client.report(),
    }
