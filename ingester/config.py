"""Ingester settings from flags, then the environment, then an optional TOML file."""

from __future__ import annotations

import os
import stat
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from ingester.redaction import Secret

PBX_KINDS = ("onlinepbx3", "onlinepbx2")
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
    spool_dir: Path = field(default_factory=lambda: Path("spool"))
    metrics_port: int | None = None
    max_batch: int = 500
    db_timeout: float = 10.0
    tick_seconds: float = 60.0
    log_json: bool = False


def _read_key_file(path: Path) -> str:
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise ConfigError(f"API key file {path} does not exist") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(f"API key file {path} is readable by others; run: chmod 600 {path}")
    return path.read_text().strip()


def load(flags: dict[str, object]) -> IngestConfig:
    """flags: values given on the command line (None when not given)."""
    file_values: dict[str, object] = {}
    config_path = flags.get("config") or os.environ.get("PGCTI_CONFIG")
    if config_path:
        try:
            file_values = tomllib.loads(Path(str(config_path)).read_text()).get("ingest", {})
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"cannot read config file {config_path}: {exc}") from None
        if "key" in file_values:
            raise ConfigError(
                "put the API key in PGCTI_PBX_KEY or a 0600 key_file, not in the config file"
            )

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
        key_value = _read_key_file(Path(str(key_file)))
    if not key_value:
        raise ConfigError(
            "no PBX API key: set PGCTI_PBX_KEY or give --key-file (a file only you can read)"
        )
    domain = pick("domain", "PGCTI_PBX_DOMAIN")
    if pbx == "onlinepbx2" and not domain:
        raise ConfigError(
            "onlinepbx2 needs the PBX domain: give --domain, PGCTI_PBX_DOMAIN or domain in the config file"
        )
    subs = pick("subscriptions", "PGCTI_SUBSCRIPTIONS", ",".join(DEFAULT_SUBSCRIPTIONS))
    if isinstance(subs, str):
        subs = [s.strip() for s in subs.split(",") if s.strip()]
    metrics = pick("metrics_port", "PGCTI_METRICS_PORT")
    db_timeout = float(pick("db_timeout", "PGCTI_DB_TIMEOUT", 10.0))  # type: ignore[arg-type]
    tick_seconds = float(pick("tick_seconds", "PGCTI_TICK_SECONDS", 60.0))  # type: ignore[arg-type]
    return IngestConfig(
        pbx=pbx,
        url=str(url),
        domain=str(domain) if domain else None,
        key=Secret(key_value),
        dsn=pick("dsn", "PGCTI_DSN"),  # type: ignore[arg-type]
        subscriptions=tuple(subs),  # type: ignore[arg-type]
        spool_dir=Path(str(pick("spool_dir", "PGCTI_SPOOL_DIR", "spool"))),
        metrics_port=int(metrics) if metrics not in (None, "") else None,  # type: ignore[arg-type]
        log_json=bool(flags.get("log_json")),
        db_timeout=db_timeout,
        tick_seconds=tick_seconds,
    )
