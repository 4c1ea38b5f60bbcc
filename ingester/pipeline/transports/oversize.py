"""A frame over the size limit is read past, not a reason to close the connection.

websockets closes the connection (1009) on a frame over `max_size`, and whatever the PBX
sends until we are subscribed again is lost at the PBX. Reading the whole frame instead would
put its size in memory. So the frame loop of websockets' Sans-I/O protocol is replaced by one
that reads such a frame's payload in 64 KiB pieces, keeping only its size, SHA-256 and first
KB, and puts a marker message in its place. The marker is random per connection, so a PBX
cannot forge one. The transport turns it into a bounded record in the raw log, in order, and
the feed goes on.

This leans on websockets' Sans-I/O layer (`Protocol.parse`, `recv_frame`, its reader), which
is why pyproject pins websockets below the next major version; tests/test_hostile_input.py
sends real oversized frames through a real socket.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import struct
from collections import deque
from collections.abc import Callable, Generator
from dataclasses import dataclass

from websockets.asyncio.client import ClientConnection
from websockets.client import ClientProtocol
from websockets.exceptions import PayloadTooBig, ProtocolError
from websockets.frames import CloseCode, Frame, Opcode
from websockets.protocol import Protocol

from ingester.pipeline.bounded import bounded_body
from ingester.pipeline.metrics import Metrics

PIECE = 64 * 1024
HEAD_BYTES = 4096  # decoded, then cut to bounded.HEAD_CHARS characters
log = logging.getLogger("pgcti.transport")


@dataclass(frozen=True)
class Skipped:
    size: int
    sha256: str
    head: bytes


class _ReadingPast:
    """A message being read past: its size and hash so far, and its first bytes."""

    def __init__(self, held: list[Frame]) -> None:
        self.size, self.digest, self.head = 0, hashlib.sha256(), b""
        for frame in held:  # fragments taken before the message grew past the limit
            self._take(frame.data)

    def read(self, read_exact, length: int) -> Generator[None]:
        left = length
        while left:
            piece = yield from read_exact(min(left, PIECE))
            self._take(piece)
            left -= len(piece)

    def _take(self, piece: bytes) -> None:
        self.digest.update(piece)
        if len(self.head) < HEAD_BYTES:
            self.head += piece[: HEAD_BYTES - len(self.head)]
        self.size += len(piece)

    def done(self) -> Skipped:
        return Skipped(self.size, self.digest.hexdigest(), self.head)


class _FrameLoopReadingPastOversize(Protocol):
    """Protocol.parse, except that a message over the limit is read past. The fragments of a
    fragmented message are held here until its last one (at most the limit, as websockets
    would hold them), so that one growing past the limit can still be read past whole."""

    marker: bytes
    skipped: deque[Skipped]

    def parse(self) -> Generator[None]:
        limit = self.max_message_size
        held: list[Frame] | None = None  # fragments of a message under way
        past: _ReadingPast | None = None  # a message over the limit, until its last fragment
        try:
            while True:
                if (yield from self.reader.at_eof()):
                    raise EOFError("unexpected end of stream")
                raw, opcode, fin, length = yield from _read_header(self.reader.read_exact)
                data_frame = opcode in (Opcode.TEXT, Opcode.BINARY, Opcode.CONT)
                if limit is None or not data_frame:
                    self.recv_frame((yield from self._frame(raw, None)))
                    continue
                under_way = held is not None or past is not None
                if (opcode is Opcode.CONT) != under_way:
                    raise ProtocolError(
                        "expected a continuation frame"
                        if under_way
                        else "unexpected continuation frame"
                    )
                so_far = sum(len(f.data) for f in held or ())
                if past is None and so_far + length > limit:
                    past, held = _ReadingPast(held or []), None
                if past is not None:
                    yield from past.read(self.reader.read_exact, length)
                    if fin:
                        self.skipped.append(past.done())
                        self.recv_frame(Frame(Opcode.BINARY, self.marker))
                        past = None
                    continue
                frame = yield from self._frame(raw, limit - so_far)
                if held is None and fin:
                    self.recv_frame(frame)  # the usual case: a whole message in one frame
                    continue
                held = held if held is not None else []
                held.append(frame)
                if fin:
                    for fragment in held:
                        self.recv_frame(fragment)
                    held = None
        # As in Protocol.parse: fail the connection with the right code, never raise.
        except ProtocolError as exc:
            self.fail(CloseCode.PROTOCOL_ERROR, str(exc))
            self.parser_exc = exc
        except EOFError as exc:
            self.fail(CloseCode.ABNORMAL_CLOSURE, str(exc))
            self.parser_exc = exc
        except UnicodeDecodeError as exc:
            self.fail(CloseCode.INVALID_DATA, f"{exc.reason} at position {exc.start}")
            self.parser_exc = exc
        except PayloadTooBig as exc:  # not reached with a limit: kept as websockets has it
            exc.set_current_size(self.current_size)
            self.fail(CloseCode.MESSAGE_TOO_BIG, str(exc))
            self.parser_exc = exc
        except Exception as exc:
            self.logger.error("parser failed", exc_info=True)
            self.fail(CloseCode.INTERNAL_ERROR)
            self.parser_exc = exc
        yield
        raise AssertionError("parse() shouldn't step after error")

    def _frame(self, raw: bytes, max_size: int | None) -> Generator[None, None, Frame]:
        """The rest of the frame whose header `raw` was read, parsed by websockets."""
        return (
            yield from Frame.parse(
                _replaying(raw, self.reader.read_exact),
                mask=False,  # a client reads unmasked frames; a masked one is refused
                max_size=max_size,
                extensions=self.extensions,
            )
        )


class _ClientProtocol(ClientProtocol, _FrameLoopReadingPastOversize):
    """ClientProtocol's handshake, then (through its `super().parse()`) our frame loop."""


class ReadingPastOversize(ClientConnection):
    """Pass as `connect(create_connection=...)`."""

    def __init__(self, protocol: ClientProtocol, **kwargs) -> None:
        # The protocol is built by `connect` before any byte is read; its parser is waiting
        # for the HTTP response, and takes the frame loop from the class once past it.
        protocol.__class__ = _ClientProtocol
        protocol.marker = b"\x00pgcti-read-past:" + secrets.token_bytes(16)
        protocol.skipped = deque()
        super().__init__(protocol, **kwargs)

    def read_past(self, message: bytes | str) -> Skipped | None:
        """The frame read past in `message`'s place, if it is the marker."""
        protocol = self.protocol
        if isinstance(message, bytes) and message == protocol.marker:
            return protocol.skipped.popleft()
        return None


def oversize_record(
    ws: ReadingPastOversize, message: bytes | str, limit: int, metrics: Metrics
) -> str | None:
    """The raw log's text for a frame read past, if `message` is its marker: counted as a
    rejected frame and said in the log too."""
    skipped = ws.read_past(message)
    if skipped is None:
        return None
    metrics.rejected.inc()
    log.warning(
        "a frame of %d bytes was over the %d MiB limit: its size, hash and first KB are "
        "stored instead, and the connection goes on",
        skipped.size,
        limit // 2**20,
    )
    return bounded_body(
        f"this frame was over the {limit // 2**20} MiB transport limit and was not kept whole",
        skipped.size,
        skipped.sha256,
        skipped.head.decode("utf-8", "backslashreplace"),
    )


def _read_header(
    read_exact: Callable[[int], Generator[None, None, bytes]],
) -> Generator[None, None, tuple[bytes, Opcode, bool, int]]:
    """A frame header up to its length (RFC 6455 5.2), and the bytes it took."""
    first = yield from read_exact(2)
    head1, head2 = struct.unpack("!BB", first)
    try:
        opcode = Opcode(head1 & 0x0F)
    except ValueError as exc:
        raise ProtocolError("invalid opcode") from exc
    length = head2 & 0x7F
    extended = b""
    if length == 126:
        extended = yield from read_exact(2)
        (length,) = struct.unpack("!H", extended)
    elif length == 127:
        extended = yield from read_exact(8)
        (length,) = struct.unpack("!Q", extended)
    if head2 & 0x80:
        raise ProtocolError("incorrect masking")
    return bytes(first) + bytes(extended), opcode, bool(head1 & 0x80), length


def _replaying(
    consumed: bytes, read_exact: Callable[[int], Generator[None, None, bytes]]
) -> Callable[[int], Generator[None, None, bytes]]:
    """`read_exact` that first gives back the header bytes already read, in Frame.parse's
    own steps (2 bytes, then the extended length), then reads on."""
    pending = [consumed[:2], consumed[2:]] if len(consumed) > 2 else [consumed]

    def read(n: int) -> Generator[None, None, bytes]:
        if pending:
            chunk = pending.pop(0)
            assert len(chunk) == n, "Frame.parse read the header in other steps"
            return chunk
        return (yield from read_exact(n))

    return read
