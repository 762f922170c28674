"""The sink's message frame, written once and handed to nats-py's own send queue.

nats-py's `publish` takes headers as a dict and, for every message, strips, checks against a
regular expression and encodes each key and value: 7 of the 9 µs a publish of the sink's five
headers costs. The sink's headers need none of it (constant names; values that are subject tokens,
hex digits or decimal digits, checked once by `Addresses`), so the sink writes the HPUB frame
itself (`frame`, from header lines it keeps ready) and queues it where `publish` would, with the
same checks before (closed, draining, the reconnect buffer full, the payload too large): the same
bytes on the wire, the same errors, the same flushing.

Most of the time a frame can be queued without waiting for anything (the client connected, its
flusher running, its buffer under its bound): `Wire.ready` says so, and `Wire.queue` then queues
it and wakes the flusher without a coroutine, so a publish with room costs no await at all.
Otherwise `Wire.send` does what `publish` does, waiting where it waits. This leans on nats-py's
private send queue (`_pending`, `_flush_queue`, `_flusher_task`), so it is used only when the
client has them, as nats-py 2.10 to 2.16 do; else `ready` is always False and `send` calls
`publish`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, NamedTuple

_PARTS = (
    "_status",
    "_pending",
    "_flush_pending",
    "_flush_queue",
    "_flusher_task",
    "_max_pending_size",
    "_pending_data_size",
    "stats",
)


def header_lines(headers: Mapping[str, str]) -> str:
    """`headers` as the lines of a header block (`Name: value\r\n`), without its version line and
    its empty line. The names and values must hold no CR, LF or leading/trailing space."""
    return "".join([f"{k}: {v}\r\n" for k, v in headers.items()])


def frame(subject: str, reply: str, lines: str, payload: bytes) -> bytes:
    """The HPUB command of one message, as nats-py's `publish` writes it: `lines` (ASCII header
    lines, `header_lines`) in a header block, then `payload`."""
    head = f"NATS/1.0\r\n{lines}\r\n"  # ASCII: its length in characters is its length in bytes
    size = len(head)
    return b"".join(
        (f"HPUB {subject} {reply} {size} {size + len(payload)}\r\n{head}".encode(), payload, _END)
    )


_END = b"\r\n"


class Wire(NamedTuple):
    """How the sink sends on one client: `ready(size)`, whether a frame with a payload of `size`
    bytes can be queued now without waiting; `queue(subject, reply, payload, lines)`, queue it
    (only right after `ready` said so); `send(...)`, send it, waiting or raising as nats-py's
    `publish` does (at any time)."""

    ready: Callable[[int], bool]
    queue: Callable[[str, str, bytes, str], None]
    send: Callable[[str, str, bytes, str], Awaitable[None]]


def wire(client: Any) -> Wire:
    """The `Wire` of `client`: nats-py's send queue when it has one as nats-py 2.10 to 2.16 do,
    else its `publish`."""
    if not all(hasattr(client, part) for part in _PARTS):

        async def publish(subject: str, reply: str, payload: bytes, lines: str) -> None:
            headers = dict(line.split(": ", 1) for line in lines.split("\r\n") if line)
            await client.publish(subject, payload, reply=reply, headers=headers)

        def never(size: int) -> bool:
            return False

        def unqueued(subject: str, reply: str, payload: bytes, lines: str) -> None:
            raise RuntimeError("this client has no send queue: send, never queue")

        return Wire(never, unqueued, publish)

    from nats import errors

    connected = type(client).CONNECTED

    def ready(size: int) -> bool:
        flusher = client._flusher_task
        return (
            client._status == connected  # `is_connected`, one lookup: neither closed nor draining
            and flusher is not None
            and not flusher.done()
            and (client._max_pending_size <= 0 or client._pending_data_size <= client._max_pending_size)
            and size <= client.max_payload
        )

    def append(subject: str, reply: str, payload: bytes, lines: str) -> None:
        """Count and queue the frame: what `_send_command` does, without a coroutine per message."""
        data = frame(subject, reply, lines, payload)
        stats = client.stats
        stats["out_msgs"] += 1
        stats["out_bytes"] += len(payload)
        client._pending.append(data)
        client._pending_data_size += len(data)

    def queue(subject: str, reply: str, payload: bytes, lines: str) -> None:
        append(subject, reply, payload, lines)
        flushes = client._flush_queue
        if flushes.empty():  # wake the flusher, as `_flush_pending` does
            flushes.put_nowait(asyncio.get_running_loop().create_future())

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
        append(subject, reply, payload, lines)
        if client._max_pending_size > 0 and client._pending_data_size > client._max_pending_size:
            await client._flush_pending(force_flush=True)
            return
        flushes = client._flush_queue
        if flushes is not None and flushes.empty():
            await client._flush_pending()

    return Wire(ready, queue, send)
