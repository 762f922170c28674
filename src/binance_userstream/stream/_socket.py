"""What every stream connection shares: the watched WebSocket client connection and its bounds.

`_Watched` is the `websockets` asyncio client connection that hands each text frame on as the
parser yields it and reports each ping; its bounds, the close details written for people and
logs, and the failures that end an attempt are here, for the driver (`fleet._driver`) that runs
both `events()` and a fleet.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from typing import Any

from websockets.asyncio.client import ClientConnection
from websockets.frames import Close as CloseFrame
from websockets.frames import Frame, Opcode

from binance_userstream._secrets import printable, server_text
from binance_userstream.stream._core import StreamEventKind

#: websockets logs each handshake's request line (the URL, with the listenKey) at DEBUG: it logs
#: here instead, through the redacting filter (see `watch_secret`).
_WS_LOG = logging.getLogger("binance_userstream.stream.websockets")


class _EscapingFilter(logging.Filter):
    """Escapes control characters in the WebSocket library's records: it logs a close frame's
    reason as the server sent it, terminal escapes and a CR/LF that would forge a log line."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        escaped = printable(message, limit=sys.maxsize)
        if escaped != message:
            record.msg, record.args = escaped, None
        return True


_WS_LOG.addFilter(_EscapingFilter())

_LOUD = {
    StreamEventKind.DISCONNECTED,
    StreamEventKind.STALLED,
    StreamEventKind.KEY_EXPIRED,
    StreamEventKind.OVERFLOW,
    StreamEventKind.RECONNECTING,
    StreamEventKind.TERMINATED,
    StreamEventKind.RESYNCED,
    StreamEventKind.TOKEN_RENEW_FAILED,
    StreamEventKind.KEY_REFUSED,
    StreamEventKind.OTHER_SUBSCRIPTION,
}
#: The largest frame accepted: Binance's events are a few KB; 1 MiB is websockets' default.
MAX_FRAME = 2**20
OPEN_TIMEOUT = 10.0
#: A listenToken lives 24 hours at most (`validity` on POST /sapi/v1/userListenToken: default and maximum).
MAX_TOKEN_VALIDITY_MS = 24 * 3600 * 1000
#: Seconds leaving a stream waits for its connections' close handshakes.
CLOSE_TIMEOUT = 2.0
#: The latest keys and tokens scrubbed from logs by name (older ones are long out of any URL or
#: frame; key-shaped text is scrubbed whatever it is).
KEYS_WATCHED = 8
#: The most a connection may have written and not yet sent, in bytes: past it the connection is
#: dropped. A server reads at once what this client writes (pongs, a subscription, a close); one
#: that pings and never reads would grow the pongs without bound (1.09 GB in 40 s was measured).
#: websockets' `write_limit` holds back `send()` alone: its automatic pongs are written regardless.
MAX_UNSENT = 2**20
#: The most frames a connection holds for later, and their characters: events that came before
#: its subscription was confirmed, or answers its task has not read. Binance starts the events with
#: the subscription and answers each request once, so a handful is the most ever held; past it
#: (a flood, 2.4 GB in a subscription's timeout was measured) the attempt fails.
MAX_HELD_FRAMES = 1_000
MAX_HELD_CHARS = 4 * 2**20


_TEXT, _PING, _DATA = Opcode.TEXT, Opcode.PING, (Opcode.TEXT, Opcode.BINARY, Opcode.CONT)


class _Watched(ClientConnection):
    """A client connection that reports each ping frame the server sends (a sign of life), and hands
    each text frame to `on_text` as the parser yields it, in order.

    Binance sends every message as one unfragmented text frame, so there is nothing to assemble:
    skipping the library's message queue saves a hop through it and a task switch per event (the
    stream benchmark measured that queue at about a quarter of the client's time). A fragmented
    or binary message switches the connection to the library's own assembly for good, so that the
    messages stay in order; `_Inbox.read_assembled` then hands them on.

    A connection whose unsent bytes would pass MAX_UNSENT, or whose inbox would hold more than it
    may, is dropped (`drop`): what waits on it then raises the `_Backoff` that says why.
    """

    def __init__(self, *args: Any, on_text: Callable[[str], None], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.on_text = on_text
        self.on_ping: Callable[[], None] | None = None
        self.assembling = False

    def process_event(self, event: Any) -> None:
        if isinstance(event, Frame):
            opcode = event.opcode
            if opcode is _TEXT and event.fin and not self.assembling:  # every event: first
                try:
                    text = str(event.data, "utf-8")
                except UnicodeDecodeError:
                    pass  # the library closes the connection with 1007, as it should
                else:
                    try:
                        self.on_text(text)
                    except _Backoff as failure:  # the frame past the inbox's bounds
                        self.drop(failure)
                    return
            elif opcode is _PING:
                if self.on_ping is not None:
                    self.on_ping()
            elif opcode in _DATA:
                self.assembling = True
        super().process_event(event)

    def send_data(self) -> None:
        """Write what the protocol has to send, unless that would leave more than MAX_UNSENT bytes
        unsent: then the server is not reading, and the connection is dropped instead."""
        writes = self.protocol.writes
        if writes:
            unsent = self.transport.get_write_buffer_size() + sum(map(len, writes))
            if unsent > MAX_UNSENT:
                self.drop(
                    _Backoff(
                        f"dropped: the server does not read what this client sends (its pongs): "
                        f"{unsent} bytes would be unsent, more than the {MAX_UNSENT} a connection may hold",
                        None,
                    )
                )
                return
            super().send_data()

    def drop(self, failure: _Backoff) -> None:
        """Abort the connection at once (a server that floods it would not answer a close) and
        have whatever waits on it raise `failure`."""
        self.protocol.data_to_send()  # discarded: nothing more is sent
        self.set_connection_exc(failure)  # the cause of the ConnectionClosed that waiters raise
        self.transport.abort()


class _Backoff(ConnectionError):
    """The subscription failed in a way a new connection may mend, not before `retry_after` seconds;
    `banned`: the server limited (False) or banned (True) this IP, which closes the host's gate."""

    def __init__(self, detail: str, retry_after: float | None, banned: bool | None = None) -> None:
        super().__init__(detail)
        self.retry_after = retry_after
        self.banned = banned


def _resync_detail(offset_ms: float) -> str:
    """A clock resync's note: the offset in whole ms, signed, never "-0" (an offset under half a ms)."""
    return f"clock offset {round(offset_ms):+d} ms (-1021)"


def _close_detail(
    rcvd: CloseFrame | None, sent: CloseFrame | None, rcvd_then_sent: bool | None, secrets: list[str]
) -> str:
    """How a connection closed, for notes and logs: who closed it first (this client closes with
    1009 on a frame too big, 1011 on a ping unanswered), its code, and its reason as server text
    (the keys in use scrubbed by name, control characters escaped, length bounded)."""
    if sent is not None and (rcvd is None or rcvd_then_sent is False):
        who, frame = "closed by this client", sent
    elif rcvd is not None:
        who, frame = "closed by the server", rcvd
    else:
        return "closed without a close frame: code 1006"
    reason = server_text(frame.reason, secrets)
    return f"{who}: code {frame.code}" + (f" ({reason})" if reason else "")
