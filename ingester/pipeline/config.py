"""Ingester settings from flags, then the environment, then an optional TOML file."""

from __future__ import annotations

import os
import stat
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from ingester import database
from ingester.database import NO_DSN
from ingester.pipeline.journal import SYNC_POLICIES
from ingester.pipeline.replay_window import REPLAY_WINDOW
from ingester.pipeline.transports.ami_originate import DialPlan
from ingester.pipeline.transports.asterisk_ami import parse_url
from ingester.redaction import Secret

PBX_KINDS = ("onlinepbx3", "onlinepbx2", "asterisk")
DEFAULT_SUBSCRIPTIONS = ("calls",)


class ConfigError(Exception):
    """A setting is missing or unsafe; the message says which and what to do."""


@dataclass
class IngestConfig:
    pbx: str
    url: str
    key: Secret
    dsn: str | None = None
    domain: str | None = None  # onlinePBX 2.0 sends it in the handshake
    subscriptions: tuple[str, ...] = DEFAULT_SUBSCRIPTIONS
    spool_dir: Path = field(default_factory=lambda: default_spool_dir())
    metrics_port: int | None = None
    max_batch: int = 500
    db_timeout: float = 10.0
    tick_seconds: float = 60.0
    sync: str = "batch"  # the receive journal's fsync policy (ingester/pipeline/journal.py)
    replay_window: float = REPLAY_WINDOW  # seconds of committed frames resent on a new connection
    log_json: bool = False
    dial: bool = False  # click-to-call: take dial requests and send them to the PBX
    dial_plan: DialPlan = field(default_factory=DialPlan)
    api_url: str | None = None  # onlinePBX's HTTP API, for click-to-call
    dial_via: str = "http"  # onlinePBX: call/now on the HTTP API, or 2.0's make_call ("socket")


# Every key the [ingest] table may hold; anything else is a typo, refused with this list.
FILE_KEYS = (
    "dsn",
    "pbx",
    "url",
    "domain",
    "key_file",
    "subscriptions",
    "spool_dir",
    "metrics_port",
    "db_timeout",
    "tick_seconds",
    "sync",
    "replay_window",
    "dial",
    "dial_channel",
    "dial_context",
    "dial_exten",
    "dial_ring_seconds",
    "api_url",
    "dial_via",
)


def default_spool_dir() -> Path:
    """A state directory, never the working directory (under systemd that is /): systemd's
    StateDirectory=, else $XDG_STATE_HOME/pgcti, else ~/.local/state/pgcti."""
    state = os.environ.get("STATE_DIRECTORY", "").split(":")[0]
    if state:
        return Path(state) / "spool"
    base = os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state"
    return Path(base) / "pgcti" / "spool"


def read_key_file(path: Path) -> str:
    try:
        mode = path.stat().st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise ConfigError(f"API key file {path} is readable by others; run: chmod 600 {path}")
        key = path.read_text().strip()
    except FileNotFoundError:
        raise ConfigError(f"API key file {path} does not exist") from None
    except OSError as exc:
        raise ConfigError(
            f"cannot read the API key file {path}: {exc.strerror}; it must be readable by the "
            "user that runs pgcti (and only by it: chmod 600)"
        ) from None
    if not key:
        raise ConfigError(f"API key file {path} is empty: put the PBX API key in it")
    return key


def _number(name: str, value: object, kind: type) -> int | float:
    try:
        return kind(value)  # type: ignore[call-arg]
    except (TypeError, ValueError):
        want = "a whole number" if kind is int else "a number"
        raise ConfigError(f"{name} must be {want}, not {value!r}") from None


def _read_file(config_path: str) -> dict[str, object]:
    try:
        document = tomllib.loads(Path(config_path).read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read config file {config_path}: {exc}") from None
    unknown_tables = sorted(set(document) - {"ingest"})
    if unknown_tables:
        raise ConfigError(
            f"{config_path}: unknown table(s) {', '.join(f'[{t}]' for t in unknown_tables)}; "
            "the settings go in [ingest]"
        )
    values = document.get("ingest", {})
    if "key" in values:
        raise ConfigError(
            "put the API key in PGCTI_PBX_KEY or a 0600 key_file, not in the config file"
        )
    unknown = sorted(set(values) - set(FILE_KEYS))
    if unknown:
        raise ConfigError(
            f"{config_path}: unknown key(s) {', '.join(unknown)} in [ingest]; "
            f"valid keys: {', '.join(FILE_KEYS)}"
        )
    return values


def load(flags: dict[str, object]) -> IngestConfig:
    """flags: values given on the command line (None when not given)."""
    file_values: dict[str, object] = {}
    config_path = flags.get("config") or os.environ.get("PGCTI_CONFIG")
    if config_path:
        file_values = _read_file(str(config_path))

    def pick(name: str, env: str, default: object = None) -> object:
        value = flags.get(name)
        if value is None:
            value = os.environ.get(env)
        if value is None:
            value = file_values.get(name, default)
        return value

    pbx = str(pick("pbx", "PGCTI_PBX", "onlinepbx3"))
    if pbx not in PBX_KINDS:
        raise ConfigError(f"unknown PBX kind {pbx!r}; known: {', '.join(PBX_KINDS)}")
    url = pick("url", "PGCTI_PBX_URL")
    if not url:
        raise ConfigError(
            "no PBX URL: give --url, PGCTI_PBX_URL or url in the config file "
            "(onlinePBX 3.0: wss://<domain>:3342/)"
        )
    key_value = os.environ.get("PGCTI_PBX_KEY")
    key_file = pick("key_file", "PGCTI_PBX_KEY_FILE")
    if key_file:
        key_value = read_key_file(Path(str(key_file)))
    if not key_value:
        raise ConfigError(
            "no PBX API key: set PGCTI_PBX_KEY or give --key-file (a file only you can read)"
        )
    if pbx == "asterisk":
        try:
            parse_url(str(url))
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
    domain = pick("domain", "PGCTI_PBX_DOMAIN")
    if pbx == "onlinepbx2" and not domain:
        raise ConfigError(
            "onlinepbx2 needs the PBX domain: give --domain, PGCTI_PBX_DOMAIN or domain in the config file"
        )
    subs = pick("subscriptions", "PGCTI_SUBSCRIPTIONS", ",".join(DEFAULT_SUBSCRIPTIONS))
    if isinstance(subs, str):
        subs = [s.strip() for s in subs.split(",") if s.strip()]
    metrics = pick("metrics_port", "PGCTI_METRICS_PORT")
    db_timeout = _number("db_timeout", pick("db_timeout", "PGCTI_DB_TIMEOUT", 10.0), float)
    tick_seconds = _number("tick_seconds", pick("tick_seconds", "PGCTI_TICK_SECONDS", 60.0), float)
    dsn = pick("dsn", "PGCTI_DSN")
    if not dsn and not flags.get("embedded"):
        raise ConfigError(NO_DSN)
    if dsn:
        database.check_dsn(str(dsn))
    replay_window = _number(
        "replay_window", pick("replay_window", "PGCTI_REPLAY_WINDOW", REPLAY_WINDOW), float
    )
    spool_dir = pick("spool_dir", "PGCTI_SPOOL_DIR")
    sync = str(pick("sync", "PGCTI_SYNC", "batch"))
    if sync not in SYNC_POLICIES:
        raise ConfigError(f"sync must be one of {', '.join(SYNC_POLICIES)}, not {sync!r}")
    dial = str(pick("dial", "PGCTI_DIAL", False)).lower() in ("1", "true", "yes", "on")
    plan = DialPlan(
        channel=str(pick("dial_channel", "PGCTI_DIAL_CHANNEL", DialPlan.channel)),
        context=str(pick("dial_context", "PGCTI_DIAL_CONTEXT", DialPlan.context)),
        exten=str(pick("dial_exten", "PGCTI_DIAL_EXTEN", DialPlan.exten)),
        ring_seconds=int(
            _number(
                "dial_ring_seconds", pick("dial_ring_seconds", "PGCTI_DIAL_RING_SECONDS", 30), int
            )
        ),
    )
    if "{extension}" not in plan.channel:
        raise ConfigError(
            f"dial_channel must name the desk's extension as {{extension}}, not {plan.channel!r}"
        )
    dial_via = str(pick("dial_via", "PGCTI_DIAL_VIA", "http"))
    if dial_via not in ("http", "socket") or (dial_via == "socket" and pbx != "onlinepbx2"):
        raise ConfigError(
            f'dial_via must be "http" (onlinePBX\'s call/now) or, with pbx = "onlinepbx2", '
            f'"socket" (make_call on API 2.0\'s socket), not {dial_via!r}'
        )
    api_url = pick("api_url", "PGCTI_PBX_API_URL")
    if dial and pbx != "asterisk" and dial_via == "http" and not api_url:
        host = domain or urlsplit(str(url)).hostname
        api_url = f"https://api2.onlinepbx.ru/{host}"
    return IngestConfig(
        pbx=pbx,
        url=str(url),
        domain=str(domain) if domain else None,
        key=Secret(key_value),
        dsn=str(dsn) if dsn else None,
        subscriptions=tuple(subs),  # type: ignore[arg-type]
        spool_dir=Path(str(spool_dir)) if spool_dir else default_spool_dir(),
        metrics_port=(
            int(_number("metrics_port", metrics, int)) if metrics not in (None, "") else None
        ),
        log_json=bool(flags.get("log_json")),
        db_timeout=db_timeout,
        tick_seconds=tick_seconds,
        sync=sync,
        replay_window=float(replay_window),
        dial=dial,
        dial_plan=plan,
        api_url=str(api_url) if api_url else None,
        dial_via=dial_via,
    )
