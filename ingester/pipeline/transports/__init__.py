"""PBX transports: each keeps a subscription alive and hands every frame, untouched, to the
writer; `receive` picks the one the configuration names."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any

from ingester.frame import Frame
from ingester.pipeline.metrics import Metrics
from ingester.pipeline.transports import asterisk_ami, onlinepbx2, onlinepbx3

if TYPE_CHECKING:  # config validates URLs with the transports: a type only, no import cycle
    from ingester.pipeline.config import IngestConfig


def receive(
    config: IngestConfig,
    deliver: Callable[[Frame], Awaitable[None]],
    metrics: Metrics,
    link: asterisk_ami.AmiLink | onlinepbx2.Onlinepbx2Link | None = None,
) -> Coroutine[Any, Any, None]:
    """The receiving loop for the configured PBX: frames go to ``deliver``, until cancelled
    (or the PBX refuses us: PbxRefused). On Asterisk and on onlinePBX 2.0, ``link`` (made
    by `command_link`) lends the logged-in session to click-to-call."""
    if config.pbx == "asterisk":
        assert link is None or isinstance(link, asterisk_ami.AmiLink)
        return asterisk_ami.run(config.url, config.key, deliver, metrics, link)
    if config.pbx == "onlinepbx2":
        assert link is None or isinstance(link, onlinepbx2.Onlinepbx2Link)
        return onlinepbx2.run(
            config.url,
            config.key,
            config.domain or "",
            config.subscriptions,
            deliver,
            metrics,
            link,
        )
    return onlinepbx3.run(config.url, config.key, config.subscriptions, deliver, metrics)


def command_link(config: IngestConfig) -> asterisk_ami.AmiLink | onlinepbx2.Onlinepbx2Link | None:
    """The session that carries pgcti's own commands to the PBX, where the PBX takes them on
    the event link: AMI, and onlinePBX 2.0's socket when `dial_via = "socket"`."""
    if config.pbx == "asterisk":
        return asterisk_ami.AmiLink()
    if config.pbx == "onlinepbx2" and config.dial_via == "socket":
        return onlinepbx2.Onlinepbx2Link()
    return None
