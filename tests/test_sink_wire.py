"""The sink's message frame (sink._wire): the bytes nats-py's own `publish` would write, cheaper."""

from __future__ import annotations

import asyncio

from hypothesis import given
from hypothesis import strategies as st
from nats.aio.client import Client

from binance_userstream.sink._subjects import Addresses
from binance_userstream.sink._wire import frame, header_lines, wire
from binance_userstream.stream._decode import decode
from tests._samples import DATA

EXECUTION_REPORT = (DATA / "spot" / "executionReport.json").read_text()
TOKENS = st.from_regex(r"[A-Za-z0-9_-]{1,64}", fullmatch=True)


def written_by_nats_py(subject: str, reply: str, payload: bytes, headers: dict[str, str]) -> bytes:
    """What nats-py's `publish` queues for one message, caught before any socket."""
    client = Client()
    sent: list[bytes] = []

    async def catch(cmd: bytes, priority: bool = False) -> None:
        sent.append(cmd)

    client._send_command = catch  # type: ignore[method-assign]
    asyncio.run(client._send_publish(subject, reply, payload, len(payload), headers))
    return b"".join(sent)


@given(account=TOKENS, market=TOKENS, payload=st.binary(max_size=300), n=st.integers(0, 10**12))
def test_the_frame_is_byte_for_byte_what_nats_py_writes_for_the_same_message(
    account: str, market: str, payload: bytes, n: int
) -> None:
    envelope = Addresses(market).envelope(account, decode(EXECUTION_REPORT), EXECUTION_REPORT)
    reply = f"_INBOX.abc.{n}"
    written = frame(envelope.subject, reply, header_lines(envelope.headers), payload)
    assert written == written_by_nats_py(envelope.subject, reply, payload, envelope.headers)


def test_a_client_without_nats_py_s_send_queue_is_published_to_through_its_publish() -> None:
    calls: list[tuple[str, bytes, str, dict[str, str]]] = []

    class PublishOnly:
        async def publish(self, subject: str, payload: bytes, reply: str, headers: dict[str, str]) -> None:
            calls.append((subject, payload, reply, headers))

    lines = "Nats-Msg-Id: 1\r\nBinance-Account: a\r\n"
    sends = wire(PublishOnly())
    assert not sends.ready(2)  # never queued: always through `publish`
    asyncio.run(sends.send("s.a", "_INBOX.x.1", b"{}", lines))
    assert calls == [("s.a", b"{}", "_INBOX.x.1", {"Nats-Msg-Id": "1", "Binance-Account": "a"})]


def queued_by_the_sink(subject: str, reply: str, payload: bytes, lines: str, *, nowait: bool) -> bytes:
    """What the sink's wire queues on a connected nats-py client, caught before any socket: at once
    (`nowait`: `ready`, then `queue`) or by `send`."""
    client = Client()

    async def main() -> bytes:
        client._status = Client.CONNECTED
        client._flush_queue = asyncio.Queue()
        client._flusher_task = asyncio.get_running_loop().create_future()  # a flusher that runs
        sends = wire(client)
        if nowait:
            assert sends.ready(len(payload))
            sends.queue(subject, reply, payload, lines)
            assert client._flush_queue.qsize() == 1  # the flusher woken, once
        else:
            client._flush_queue.put_nowait(None)  # a flush already asked for: nothing to wake
            await sends.send(subject, reply, payload, lines)
        return b"".join(client._pending)

    return asyncio.run(main())


@given(
    account=TOKENS,
    market=TOKENS,
    worker=st.none() | TOKENS,
    text=st.sampled_from([EXECUTION_REPORT, EXECUTION_REPORT.replace('"BTCUSDT"', '"BTC\u00e9"')]),
    n=st.integers(0, 10**12),
    nowait=st.booleans(),
)
def test_what_the_sink_queues_is_byte_for_byte_what_nats_py_writes_for_the_same_message(
    account: str, market: str, worker: str | None, text: str, n: int, nowait: bool
) -> None:
    addresses = Addresses(market, worker=worker)
    envelope = addresses.envelope(account, decode(text), text)
    subject, payload, lines, when = addresses.message(account, decode(text), text)
    assert (subject, payload, when) == (envelope.subject, envelope.payload, envelope.event_time)
    assert lines == header_lines(envelope.headers)  # the same headers, in the same order
    reply = f"_INBOX.abc.{n}"
    queued = queued_by_the_sink(subject, reply, payload, lines, nowait=nowait)
    assert queued == written_by_nats_py(envelope.subject, reply, envelope.payload, envelope.headers)
