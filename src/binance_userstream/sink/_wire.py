"""The sink's message frame, written once and handed to nats-py's own send queue.

nats-py's `publish` takes headers as a dict and, for every message, strips, checks against a
regular expression and encodes each key and value: 7 of the 9 µs a publish of the sink's five
headers costs. The sink's headers need none of it (constant names; values that are subject tokens,
hex digits or decimal digits, checked once by `Addresses`), so `publisher` writes the HPUB frame
itself (from header lines the sink keeps ready: `header_lines`) and queues it where `publish`
would, with the same checks before (closed, draining, the reconnect buffer full, the payload too
large): the same bytes on the wire, the same errors, the same flushing. It leans on nats-py's
private send queue (`_pending`, `_flush_pending`), so it is used only when the client has them, as
nats-py 2.10 to 2.16 do; else the sink calls `publish`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

#: What a publisher does: subject, reply subject, payload, and the headers as `Name: value\r\n`
#: lines (`header_lines`: the sink writes them so, without a dictionary per message).
Publisher = Callable[[str, str, bytes, str], Awaitable[None]]

_PARTS = (
    "_pending",
    "_flush_pending",
    "_flush_queue",
    "_max_pending_size",
    "_pending_data_size",
    "stats",
)


def header_block(headers: Mapping[str, str]) -> bytes:
    """`headers` as NATS writes them: the version line, `Name: value` lines, an empty line. The
    names and values must hold no CR, LF or leading/trailing space (the sink's never do)."""
    return ("NATS/1.0\r\n" + "".join([f"{k}: {v}\r\n" for k, v in headers.items()]) + "\r\n").encode()


def header_lines(headers: Mapping[str, str]) -> str:
    """`headers` as the lines of a header block, without its version line and its empty line."""
    return "".join([f"{k}: {v}\r\n" for k, v in headers.items()])


def hpub_frame(subject: str, reply: str, headers: bytes, payload: bytes) -> bytes:
    """The HPUB command of one message with its header block, as nats-py's `hpub_cmd` writes it."""
    size = len(headers)
    line = f"HPUB {subject} {reply} {size} {size + len(payload)}\r\n".encode()
    return b"".join((line, headers, payload, b"\r\n"))


def publisher(client: Any) -> Publisher:
    """How the sink publishes on `client`: its frames straight into nats-py's send queue when the
    client has one as nats-py 2.10 to 2.16 do, else through `client.publish`."""
    if not all(hasattr(client, part) for part in _PARTS):

        async def publish(subject: str, reply: str, payload: bytes, lines: str) -> None:
            headers = dict(line.split(": ", 1) for line in lines.split("\r\n") if line)
            await client.publish(subject, payload, reply=reply, headers=headers)

        return publish

    from nats import errors

    async def send(subject: str, reply: str, payload: bytes, lines: str) -> None:
        if client.is_closed:
            raise errors.ConnectionClosedError
        if client.is_draining_pubs:
            raise errors.ConnectionDrainingError
        size = len(payload)
        if not client.is_connected and (
            client._max_pending_size <= 0 or size + client._pending_data_size > client._max_pending_size
        ):
            raise errors.OutboundBufferLimitError  # reconnecting, the buffer full: as `publish` says
        if size > client.max_payload:
            raise errors.MaxPayloadError
        stats = client.stats
        stats["out_msgs"] += 1
        stats["out_bytes"] += size
        head = f"NATS/1.0\r\n{lines}\r\n"  # ASCII: its length in characters is its length in bytes
        frame = (
            f"HPUB {subject} {reply} {len(head)} {len(head) + size}\r\n{head}".encode() + payload + b"\r\n"
        )
        client._pending.append(frame)  # what `_send_command` does, without a coroutine per message
        client._pending_data_size += len(frame)
        if client._max_pending_size > 0 and client._pending_data_size > client._max_pending_size:
            await client._flush_pending(force_flush=True)
            return
        queue = client._flush_queue
        if queue is not None and queue.empty():
            await client._flush_pending()

    return send
