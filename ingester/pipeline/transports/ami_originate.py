"""Click-to-call on Asterisk: the AMI Originate for one dial request.

The desk's extension is rung first through a Local/ channel (by default
`Local/{extension}@from-internal`: the site's own dialplan rings it, with its follow-me,
DND and call-waiting rules); once it answers, the Local/ channel goes on at `Context`
`Exten`, which dials the number as if the desk had dialled it. `ChannelId` is the request's
id, so the call that results is the call whose Linkedid is that id (the link is exact), and
Asterisk refuses a second channel with that id while the first lives. `Async: true`: the
answer now says only "queued"; `OriginateResponse` brings the outcome later. Both carry
ActionID `pgcti-dial-<id>` and are stored in the raw log (db/logic/54_dialing.sql).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ingester.pipeline.transports.common import DIAL_ACTION_PREFIX

# What may go into a header's value: a line break there would let a forged header in.
_EXTENSION = re.compile(r"^[0-9A-Za-z_.*#+-]{1,32}$")
_NUMBER = re.compile(r"^\+?[0-9]{1,20}$")
_SHOWN = re.compile(r"[^\w .,'()&-]")


class NotDialable(ValueError):
    """The request's extension or number cannot be put in an Originate: nothing is sent."""


@dataclass(frozen=True)
class DialPlan:
    """How this site's dialplan is asked to place a call (docs/asterisk-way-back.md#click-to-call)."""

    channel: str = "Local/{extension}@from-internal"  # rings the desk first
    context: str = "from-internal"  # where the number is dialled once the desk answers
    exten: str = "{digits}"  # an outside number as the context wants it ({digits}: E.164 without +)
    ring_seconds: int = 30  # how long the desk's phone rings


def dial_string(plan: DialPlan, number: str) -> str:
    """The Exten for a number: an internal extension as it is, an outside number by the plan."""
    if not _NUMBER.match(number) and not _EXTENSION.match(number):
        raise NotDialable(f"the number {number!r} cannot be dialled")
    if not number.startswith("+"):
        return number  # an internal extension
    return plan.exten.format(digits=number[1:], e164=number)


def originate(
    plan: DialPlan, request_id: str, extension: str, number: str, shown: str | None
) -> str:
    """The Originate action's text for one request."""
    if not _EXTENSION.match(extension):
        raise NotDialable(f"the extension {extension!r} cannot be dialled")
    exten = dial_string(plan, number)
    name = _SHOWN.sub("", shown or "")[:40].strip()
    # What the desk's phone shows while it rings: whom it is about to call.
    caller_id = f'"{name}" <{number.lstrip("+")}>' if name else number.lstrip("+")
    fields = {
        "Action": "Originate",
        "ActionID": f"{DIAL_ACTION_PREFIX}{request_id}",
        "Channel": plan.channel.format(extension=extension),
        "Context": plan.context,
        "Exten": exten,
        "Priority": "1",
        "Timeout": str(plan.ring_seconds * 1000),
        "CallerID": caller_id,
        "Async": "true",
        "ChannelId": request_id,
        "Variable": f"PGCTI_DIAL_REQUEST={request_id}",
    }
    for key, value in fields.items():
        if "\r" in value or "\n" in value:
            raise NotDialable(f"the {key} of the Originate would hold a line break")
    return "".join(f"{k}: {v}\r\n" for k, v in fields.items()) + "\r\n"
