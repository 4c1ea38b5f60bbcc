"""What every transport uses: the frame size limit, the PBX's final refusal, a command that
could not be sent, and turning a received message into text that can be stored whatever its
bytes."""

from __future__ import annotations

import logging

log = logging.getLogger("pgcti.transports")

# Far above any call event; a bigger frame is read past and stored in a bounded form
# (transports/oversize.py), and the database records frames over its own limit itself.
MAX_FRAME_BYTES = 16 * 2**20
# What pgcti names its click-to-call commands by (AMI's ActionID, onlinePBX 2.0's
# callback_hash), followed by the request's id: SQL finds the request by it (54_dialing.sql).
DIAL_ACTION_PREFIX = "pgcti-dial-"


class PbxRefused(Exception):
    """The PBX refused us (wrong key, wrong domain): retrying will not help."""


class NotSent(Exception):
    """A command pgcti sends (click-to-call) did not leave: the link to the PBX is down."""


def receive_text(message: str | bytes) -> str:
    """A frame as text: bytes that are not UTF-8 (a broken PBX) are kept, escaped as \\xNN,
    so the frame is stored (and fails to parse, with the reason) instead of being lost."""
    if isinstance(message, bytes):
        try:
            message = message.decode("utf-8")
        except UnicodeDecodeError as bad:
            log.warning(
                "a frame of %d bytes is not UTF-8 (%s at byte %d); stored with the bytes escaped",
                len(message),
                bad.reason,
                bad.start,
            )
            message = message.decode("utf-8", "backslashreplace")
    text = message
    # PostgreSQL text cannot hold NUL; spelled as JSON's escape the frame is still stored, with a clear error.
    return text.replace("\x00", "\\u0000")
