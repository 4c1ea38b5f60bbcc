"""A live Asterisk 22 with SIP phones, for the live tier (tests/live, docs/testing.md).

`AsteriskLab` starts, as an ordinary system user and on 127.0.0.1 only: Asterisk with
AMI and PJSIP on free ports and a private config folder (tests/lab/asterisk, pgcti's
manager user taken from docs/asterisk.md); one baresip SIP phone per desk extension
(101-104), each driven over its own ctrl_tcp port; and a carrier phone that stands for
the outside world (its SIP From is the caller's number). Stopping it stops everything it
started. Asterisk itself comes from tests/lab/build-asterisk.sh, built once per machine.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
import wave
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.lab_ami import LAB_SECRET, Ami
from tests.support.lab_phone import Phone
from tests.support.live import wait_for

ROOT = Path(__file__).resolve().parents[2]
LAB = ROOT / "tests" / "lab"
BUILD = LAB / "build-asterisk.sh"
USER = "pgcti-lab"
DESKS = ("101", "102", "103", "104")
RING_SECONDS = 8
PSQLODBC = "/usr/lib/x86_64-linux-gnu/odbc/psqlodbcw.so"  # Debian's odbc-postgresql
AMI_SECRET = "pgcti-lab-ami-secret"  # pgcti's read-only user, as in docs/asterisk.md
PHONE_SECRET = "pgcti-lab-phone"
# The lab's recordings: each live scenario's AMI stream, as pgcti's filtered manager user
# received it, and its calls (written by a run with PGCTI_RECORD_LAB=1).
RECORDINGS = ROOT / "tests" / "fixtures" / "asterisk-lab"
RECORDED_FIELDS = (
    "direction", "outcome", "answered_by", "extension_chain", "external_number", "dialled", "hangup_cause",
)  # fmt: skip
RECORDED_CALLS = (
    f"SELECT {', '.join(RECORDED_FIELDS)} FROM cti.call_history_v1 ORDER BY started_at, call_id"
)
SILENT_PROMPTS = ("pbx-transfer", "pbx-invalid", "beep", "transfer-failed", "queue-thankyou")


class LabUnavailable(Exception):
    """The lab cannot run on this machine; the message says why (a test skips with it)."""


def built() -> Path:
    """This machine's cached Asterisk tree (`make test-asterisk` builds it, once)."""
    done = subprocess.run(["bash", str(BUILD), "--cached-only"], capture_output=True, text=True)
    if done.returncode != 0:
        reason = done.stderr.strip().splitlines()[-1:] or ["no reason given"]
        raise LabUnavailable(reason[0])
    prefix = Path(done.stdout.strip().splitlines()[-1])
    if shutil.which("baresip") is None:
        raise LabUnavailable("no baresip (Debian package baresip) for the SIP phones")
    return prefix


def lab_user() -> pwd.struct_passwd:
    """Asterisk runs as an ordinary user: ours, created when we are root."""
    with contextlib.suppress(KeyError):
        return pwd.getpwnam(USER)
    if os.geteuid() != 0:
        return pwd.getpwuid(os.geteuid())  # not root: run as ourselves
    subprocess.run(
        ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", USER],
        check=True,
        capture_output=True,
    )
    return pwd.getpwnam(USER)


def free_ports(count: int, spacing: int = 1) -> list[int]:
    """Ports free on 127.0.0.1 for UDP and TCP; `spacing` 2 also keeps port + 1 free
    (baresip listens on TCP there)."""
    found: list[int] = []
    with contextlib.ExitStack() as held:
        while len(found) < count:
            probe = held.enter_context(socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
            try:
                for offset in range(spacing):
                    for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
                        if offset == 0 and kind == socket.SOCK_DGRAM:
                            continue  # the probe holds it
                        s = held.enter_context(socket.socket(socket.AF_INET, kind))
                        s.bind(("127.0.0.1", port + offset))
            except OSError:
                continue
            found.append(port)
    return found


def listening(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
        return True
    return False


def manager_user_from_docs(secret: str) -> str:
    """The `[pgcti]` manager user docs/asterisk.md tells administrators to add: the lab
    runs pgcti with exactly that (read-only, with its event filter)."""
    doc = (ROOT / "docs" / "asterisk.md").read_text()
    block = doc.split("```ini\n", 1)[1].split("```", 1)[0]
    section = block[block.index("[pgcti]") :]
    lines = []
    for line in section.splitlines():
        key = line.split("=", 1)[0].strip()
        if key == "secret":
            line = f"secret = {secret}"
        elif key == "permit":
            line = "permit = 127.0.0.1/255.255.255.255"
        lines.append(line)
    return "\n".join(lines) + "\n"


@dataclass
class AsteriskLab:
    prefix: Path
    run: Path
    ami_port: int
    sip_port: int
    phones: dict[str, Phone] = field(default_factory=dict)
    process: subprocess.Popen | None = None
    ami: Ami | None = None
    routes: int = 0  # data sources written for routing (route_through)
    user: pwd.struct_passwd | None = None

    @property
    def ami_url(self) -> str:
        return f"ami://pgcti@127.0.0.1:{self.ami_port}"

    # --- starting and stopping ---------------------------------------------------------

    def start(self) -> None:
        user = lab_user()
        os.chown(self.run, user.pw_uid, user.pw_gid)
        for folder in ("etc", "lib", "spool", "run", "log", "agi-bin", "moh", "data"):
            (self.run / folder).mkdir(exist_ok=True)
            os.chown(self.run / folder, user.pw_uid, user.pw_gid)
        self._write_config()
        self._write_sounds()
        self.user = user
        self._launch()
        self._start_phones()

    def _launch(self) -> None:
        """Asterisk in the foreground, our child, started as the lab's ordinary user, until
        its AMI says FullyBooted."""
        conf = str(self.run / "etc" / "asterisk.conf")
        as_user = {}
        if os.geteuid() == 0:
            as_user = {"user": self.user.pw_uid, "group": self.user.pw_gid, "extra_groups": []}
        self.process = subprocess.Popen(
            [str(self.prefix / "sbin" / "asterisk"), "-f", "-n", "-C", conf],
            **as_user,
            env={**os.environ, "ODBCSYSINI": str(self.run / "etc")},  # its own odbc.ini
            stdin=subprocess.DEVNULL,
            stdout=open(self.run / "log" / "console.log", "ab"),  # noqa: SIM115
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        wait_for(self._ami_answers, 30, "Asterisk's AMI")
        self.ami = Ami(self.ami_port)
        self.ami.wait_event(lambda e: e.get("Event") == "FullyBooted", 30, "Asterisk booted")

    def _ami_answers(self) -> bool:
        if self.process and self.process.poll() is not None:
            raise LabUnavailable(
                f"Asterisk exited with {self.process.returncode}: {self.log_tail()}"
            )
        return listening(self.ami_port)

    def restart_asterisk(self, down_seconds: float = 1.0) -> None:
        """Stop Asterisk hard (calls and all) and start it again on the same ports: what
        a crash or `core restart now` does to the AMI link."""
        assert self.process
        self.ami.close()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, 9)
        self.process.wait(10)
        time.sleep(down_seconds)
        self._launch()
        self.wait_registered()

    def stop(self) -> None:
        for phone in self.phones.values():
            if phone.process and phone.process.poll() is None:
                phone.process.terminate()
                try:
                    phone.process.wait(5)
                except subprocess.TimeoutExpired:
                    phone.process.kill()
        if self.ami:
            self.ami.close()
        if self.process and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, 15)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, 9)
                self.process.wait(5)

    def log_tail(self, lines: int = 30) -> str:
        path = self.run / "log" / "console.log"
        return (
            "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
            if path.exists()
            else ""
        )

    # --- configuration -----------------------------------------------------------------

    def _write_config(self) -> None:
        rtp_start = free_ports(1)[0]
        endpoints = []
        for ext in DESKS:
            endpoints.append(
                f"[{ext}](phone)\nauth = {ext}\naors = {ext}\ncallerid = Desk {ext} <{ext}>\n"
                f"[{ext}](auth)\nusername = {ext}\n[{ext}](aor)\n"
            )
        carrier = self.phones["carrier"]
        endpoints.append(
            "[carrier](phone)\ncontext = from-pstn\nauth = carrier\naors = carrier\n"
            "identify_by = username,auth_username\n"
            "[carrier](auth)\nusername = carrier\n"
            f"[carrier](aor)\ncontact = sip:carrier@127.0.0.1:{carrier.sip_port}\n"
        )
        values = {
            "@RUN@": str(self.run),
            "@PREFIX@": str(self.prefix),
            "@AMI_PORT@": str(self.ami_port),
            "@SIP_PORT@": str(self.sip_port),
            "@LAB_SECRET@": LAB_SECRET,
            "@PHONE_SECRET@": PHONE_SECRET,
            "@RING@": str(RING_SECONDS),
            "@RTP_START@": str(rtp_start),
            "@RTP_END@": str(rtp_start + 200),
            "@ENDPOINTS@": "\n".join(endpoints),
        }
        for template in (LAB / "asterisk").glob("*.conf"):
            text = template.read_text()
            for key, value in values.items():
                text = text.replace(key, value)
            (self.run / "etc" / template.name).write_text(text)
        (self.run / "etc" / "manager_pgcti.conf").write_text(manager_user_from_docs(AMI_SECRET))
        # ODBC for routing from the CRM: Debian's psqlODBC driver; the data source and the
        # routing login come per test (route_through).
        (self.run / "etc" / "odbcinst.ini").write_text(
            f"[PostgreSQL Unicode]\nDriver = {PSQLODBC}\n"
        )
        (self.run / "etc" / "odbc.ini").write_text("")
        (self.run / "etc" / "res_odbc_pgcti.conf").write_text("")

    def route_through(self, host: str, port: int, dbname: str, user: str, password: str) -> None:
        """Point the dialplan's ODBC_PGCTI_ROUTE at a database and routing login, as
        docs/asterisk-way-back.md#routing-from-the-crm configures it, and reload the two modules."""
        etc = self.run / "etc"
        # A data source name of its own each time: unixODBC caches odbc.ini, so a name seen
        # before would keep its old server and database.
        self.routes += 1
        name = f"pgcti_lab_{self.routes}"
        with (etc / "odbc.ini").open("a") as ini:
            ini.write(
                f"[{name}]\nDriver = PostgreSQL Unicode\nServername = {host}\nPort = {port}\n"
                f"Database = {dbname}\n"
            )
        (etc / "res_odbc_pgcti.conf").write_text(
            f"[pgcti]\nenabled => yes\ndsn => {name}\nusername => {user}\n"
            f"password => {password}\npre-connect => yes\nmax_connections => 4\n"
            "connect_timeout => 1\nnegative_connection_cache => 1\n"
        )
        for module in ("res_odbc.so", "func_odbc.so"):
            self.ami.action("Command", Command=f"module reload {module}")

    def _write_sounds(self) -> None:
        """Silence for what the phones say, the music on hold, and the prompts that
        Asterisk's transfer features insist on playing (the build has no sounds)."""
        data = self.run / "data"
        (data / "documentation").symlink_to(
            self.prefix / "var" / "lib" / "asterisk" / "documentation"
        )
        prompts = data / "sounds" / "en"
        prompts.mkdir(parents=True)
        for path in [
            self.run / "silence.wav",
            self.run / "moh" / "silence.wav",
            *[prompts / f"{name}.wav" for name in SILENT_PROMPTS],
        ]:
            with wave.open(str(path), "wb") as w:
                w.setnchannels(1)
                w.setsampwidth(2)
                w.setframerate(8000)
                w.writeframes(
                    b"\0\0" * 8000 * (30 if path.name == "silence.wav" else 0) + b"\0\0" * 80
                )

    def _start_phones(self) -> None:
        sound = self.run / "silence.wav"
        for phone in self.phones.values():
            phone.folder.mkdir(parents=True, exist_ok=True)
            registrar = f"127.0.0.1:{self.sip_port}"
            if phone.name == "carrier":
                # The caller's number in From; identified by the user it authenticates as.
                account = (
                    f"<sip:{phone.number}@{registrar}>;auth_user=carrier;"
                    f"auth_pass={PHONE_SECRET};regint=0;answermode=auto\n"
                )
            else:
                account = (
                    f"<sip:{phone.number}@{registrar}>;auth_pass={PHONE_SECRET};"
                    f"regint=600;answermode={phone.answer}\n"
                )
            (phone.folder / "accounts").write_text(account)
            (phone.folder / "config").write_text(
                "\n".join(
                    [
                        "poll_method epoll",
                        f"sip_listen 127.0.0.1:{phone.sip_port}",
                        "net_interface 127.0.0.1",
                        f"audio_source aufile,{sound}",
                        "audio_player aubridge,nil",
                        "audio_alert aubridge,nil",
                        "module_path /usr/lib/baresip/modules",
                        "module g711.so",
                        "module aufile.so",
                        "module aubridge.so",
                        "module_app account.so",
                        "module_app menu.so",
                        "module_app ctrl_tcp.so",
                        f"ctrl_tcp_listen 127.0.0.1:{phone.ctrl_port}",
                        "sip_trans_def udp",
                        "",
                    ]
                )
            )
            log = open(phone.folder / "baresip.log", "ab")  # noqa: SIM115
            phone.process = subprocess.Popen(
                ["baresip", "-f", str(phone.folder)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        for phone in self.phones.values():
            wait_for(
                lambda p=phone: self._ctrl_answers(p), 15, f"phone {phone.name}'s control port"
            )
        self.wait_registered()

    def _ctrl_answers(self, phone: Phone) -> bool:
        if phone.process.poll() is not None:
            raise LabUnavailable(
                f"baresip for {phone.name} exited: {(phone.folder / 'baresip.log').read_text()[-800:]}"
            )
        return listening(phone.ctrl_port)

    def wait_registered(self, timeout: float = 20) -> None:
        def registered() -> bool:
            self.ami.action("PJSIPShowContacts")
            done = self.ami.wait_event(
                lambda e: e.get("Event") == "ContactListComplete", 10, "the contact list"
            )
            at = self.ami.events.index(done)
            contacts = {
                e.get("Endpoint")
                for e in self.ami.events[:at]
                if e.get("Event") == "ContactList"
                and e.get("Status") in ("Reachable", "Unknown", "NonQualified")
            }
            del self.ami.events[: at + 1]
            return set(DESKS) <= contacts

        wait_for(registered, timeout, f"desks {', '.join(DESKS)} registered")

    # --- calls -------------------------------------------------------------------------

    def call_in(self, line: str, caller: str | None = None) -> None:
        """The outside caller (the carrier phone) dials one of the company's lines; from
        `caller` (its SIP From) when given, else from the number it started with."""
        carrier = self.phones["carrier"]
        carrier.command("uafind", self.outside_number(caller or carrier.number))
        carrier.dial(f"sip:{line}@127.0.0.1:{self.sip_port}")

    def outside_number(self, number: str) -> str:
        """A number in the outside world, on the carrier phone: it calls from it, and
        answers calls to it (baresip answers only the users it has)."""
        carrier = self.phones["carrier"]
        aor = f"sip:{number}@127.0.0.1:{self.sip_port}"
        if number != carrier.number and number not in carrier.callers:
            carrier.command(
                "uanew",
                f"<{aor}>;auth_user=carrier;auth_pass={PHONE_SECRET};regint=0;answermode=auto",
            )
            carrier.callers.add(number)
        return aor

    def channel_of(self, peer: str, timeout: float = 10) -> str:
        """The live channel of a desk or the carrier (`PJSIP/101-0000000a`)."""
        found = wait_for(
            lambda: [
                c["Channel"]
                for c in self.ami.channels()
                if c["Channel"].startswith(f"PJSIP/{peer}-")
            ],
            timeout,
            f"a channel of {peer}",
        )
        return found[-1]

    def hang_up_everything(self) -> None:
        """What a test left ringing or talking: hung up, so the next one starts clean."""
        if self.ami.channels():
            with contextlib.suppress(RuntimeError):
                self.ami.action("Hangup", Channel="/.*/")
        self.no_channels()

    def no_channels(self, timeout: float = 15) -> None:
        wait_for(lambda: not self.ami.channels(), timeout, "every channel hung up")


@contextlib.contextmanager
def asterisk_lab(
    caller: str = "74951234567", manual: tuple[str, ...] = ()
) -> Iterator[AsteriskLab]:
    """A running lab; desks in `manual` ring until told to answer (the rest auto-answer)."""
    prefix = built()
    base = Path(tempfile.mkdtemp(prefix="pgcti-asterisk-lab-"))
    os.chmod(base, 0o755)
    ami_port, sip_port = free_ports(2)
    lab = AsteriskLab(prefix=prefix, run=base / "asterisk", ami_port=ami_port, sip_port=sip_port)
    lab.run.mkdir()
    for name, number in [("carrier", caller), *[(d, d) for d in DESKS]]:
        sip, ctrl = free_ports(1, spacing=2)[0], free_ports(1)[0]
        lab.phones[name] = Phone(
            name,
            number,
            sip,
            ctrl,
            base / "phones" / name,
            answer="manual" if name in manual else "auto",
        )
    try:
        lab.start()
        yield lab
    finally:
        lab.stop()
        if os.environ.get("PGCTI_LAB_KEEP") != "1":  # keep its logs and config to look at
            shutil.rmtree(base, ignore_errors=True)
