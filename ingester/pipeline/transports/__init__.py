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
    ami_link: asterisk_ami.AmiLink | None = None,
) -> Coroutine[Any, Any, None]:
    """The receiving loop for the configured PBX: frames go to ``deliver``, until cancelled
    (or the PBX refuses us: PbxRefused). On Asterisk, ``ami_link`` lends the logged-in
    session to click-to-call."""
    if config.pbx == "asterisk":
        return asterisk_ami.run(config.url, config.key, deliver, metrics, ami_link)
    if config.pbx == "onlinepbx2":
        return onlinepbx2.run(
            config.url, config.key, config.domain or "", config.subscriptions, deliver, metrics
        )
    return onlinepbx3.run(config.url, config.key, config.subscriptions, deliver, metrics)
