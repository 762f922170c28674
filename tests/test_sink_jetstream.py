"""The JetStream sink and the pump against a real nats-server: what is acknowledged is in the log, in
order, once; what is not is reported lost and becomes a gap; in flight stays bounded."""

from __future__ import annotations

import asyncio
import itertools
import json
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from typing import Any

import nats
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from nats.aio.client import Client
from nats.js.api import DiscardPolicy, StreamConfig

from binance_userstream.errors import BinanceAPIError, UserStreamError
from binance_userstream.sink import JetStreamSink, Lost, pump
from binance_userstream.stream import StreamGap
from binance_userstream.stream._decode import decode
from tests._docs import run_elsewhere
from tests._docs import text as page_text
from tests._nats import NatsServer, read_log

LISTEN_KEY = "pqia91ma19a5s61cv6a81va65sdf19v8a65a1a5s61cv6a81va65sdf19v8a65a1"
API_KEY = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A"


def report(time: int, order: int = 1) -> tuple[object, str]:
    """A spot executionReport with event time `time`: (its model, its text as Binance sends it)."""
    text = f'{{"e":"executionReport","E":{time},"s":"ETHBTC","i":{order},"x":"NEW","p":"0.10264410"}}'
    return decode(text), text


async def still_waiting(publish: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
    """`publish` started, and still waiting 0.3 s later (for room in flight, or in its batch)."""
    task = asyncio.create_task(publish)
    done, _ = await asyncio.wait({task}, timeout=0.3)
    assert not done
    return task


def run(nats_server: NatsServer, body: Callable[[JetStreamSink], Awaitable[None]], **options: Any) -> None:
    """Run `body` with a started sink on `nats_server` (market spot unless told), then close it."""

    async def main() -> None:
        options.setdefault("market", "spot")
        async with JetStreamSink(servers=nats_server.url, **options) as sink:
            await body(sink)

    asyncio.run(main())


def test_an_event_published_is_in_the_log_with_its_headers_and_its_text_byte_for_byte(
    nats_server: NatsServer,
) -> None:
    event, text = report(1499405658658)

    async def body(sink: JetStreamSink) -> None:
        await sink.publish("acct-1", event, text)
        await sink.flush()
        assert (sink.delivered, sink.lost) == (1, 0)

    run(nats_server, body)
    [message] = asyncio.run(read_log(nats_server.url))
    assert message.subject == "binance.spot.acct-1.executionReport"
    assert message.data == text.encode()
    assert message.headers["Binance-Account"] == "acct-1"
    assert message.headers["Binance-Market"] == "spot"
    assert message.headers["Binance-Event"] == "executionReport"
    assert message.headers["Binance-Event-Time"] == "1499405658658"


@pytest.mark.parametrize("batched", [True, False])
def test_the_same_event_published_twice_is_stored_once(nats_server: NatsServer, batched: bool) -> None:
    event, text = report(1499405658658)

    async def body(sink: JetStreamSink) -> None:
        await sink.publish("acct-1", event, text)
        await sink.publish("acct-1", decode(text), text)  # the same event, from another connection
        await sink.flush()
        assert (sink.delivered, sink.lost) == (2, 0)
        # A batch's acknowledgements cover many messages and do not say which were duplicates.
        assert sink.duplicates == (0 if batched else 1)

    run(nats_server, body, batched=batched)
    assert len(asyncio.run(read_log(nats_server.url))) == 1


def test_two_different_gaps_are_both_stored_and_one_gap_published_twice_once(nats_server: NatsServer) -> None:
    first, second = StreamGap("disconnected", 10.0, 11.0, 5), StreamGap("disconnected", 20.0, 21.0, 5)

    async def body(sink: JetStreamSink) -> None:
        for gap in (first, second, first):
            await sink.publish("acct-1", gap, None)
        await sink.flush()

    run(nats_server, body)
    stored = [json.loads(m.data) for m in asyncio.run(read_log(nats_server.url))]
    assert [g["started_at"] for g in stored] == [10.0, 20.0]


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    accounts=st.lists(st.integers(0, 4), min_size=50, max_size=300),
    max_pending=st.integers(1, 64),
)
def test_each_accounts_order_is_kept_in_the_log_under_pipelining(
    nats_server: NatsServer, accounts: list[int], max_pending: int
) -> None:
    stream = f"ORDER{next(_examples)}"
    published: dict[str, list[int]] = {}

    async def body(sink: JetStreamSink) -> None:
        for time, account in enumerate(accounts, start=1_700_000_000_000):
            event, text = report(time)
            await sink.publish(f"acct-{account}", event, text)
            published.setdefault(f"acct-{account}", []).append(time)
            assert sink.pending <= max_pending
        await sink.flush()
        assert (sink.delivered, sink.lost) == (len(accounts), 0)

    run(nats_server, body, stream=stream, prefix=stream.lower(), max_pending=max_pending)
    logged: dict[str, list[int]] = {}
    for message in asyncio.run(read_log(nats_server.url, stream, f"{stream.lower()}.>")):
        logged.setdefault(message.headers["Binance-Account"], []).append(json.loads(message.data)["E"])
    assert logged == published


_examples = itertools.count()


def test_when_the_server_stops_mid_publish_every_unacknowledged_item_is_reported_lost(
    nats_server: NatsServer,
) -> None:
    items = [report(1_700_000_000_000 + i) for i in range(700)]
    lost: list[Lost] = []

    async def body(sink: JetStreamSink) -> None:
        for i, (event, text) in enumerate(items):
            if i == 500:
                await asyncio.to_thread(nats_server.stop)
            await sink.publish(f"acct-{i % 7}", event, text)
            assert sink.pending <= sink.max_pending
        await sink.flush()
        lost.extend(sink.take_lost())
        assert sink.delivered + sink.lost == sink.published == len(items)
        assert sink.lost == len(lost) >= 200
        assert sink.pending == 0

    run(nats_server, body, max_pending=50, ack_timeout=0.5)
    nats_server.start()
    stored = {json.loads(m.data)["E"] for m in asyncio.run(read_log(nats_server.url))}
    reported = {loss.item.event_time for loss in lost}
    assert stored | reported == {event.event_time for event, _ in items}  # none silently
    # A server shutting down may first drop its batches and say so ("batch publish ID unknown").
    said = ("no acknowledgement", "not sent", "refused: batch publish ID unknown")
    assert {loss.reason for loss in lost if not loss.reason.startswith(said)} == set()


def test_a_slow_server_makes_publish_wait_at_max_pending(nats_server: NatsServer) -> None:
    async def body(sink: JetStreamSink) -> None:
        await sink.publish("acct-1", *report(1))  # the stream and the sink's subscription are ready
        await sink.flush()
        with nats_server.paused():
            for time in range(2, 7):
                await sink.publish("acct-1", *report(time))
            sixth = await still_waiting(sink.publish("acct-1", *report(7)))
            assert sink.pending == 5
        await sixth
        await sink.flush()
        assert (sink.delivered, sink.lost) == (7, 0)

    run(nats_server, body, max_pending=5, ack_timeout=30, batched=False)


@pytest.mark.parametrize("batched", [False, True])
def test_publish_nowait_takes_an_item_only_when_there_is_room_and_changes_nothing_when_not(
    nats_server: NatsServer, batched: bool
) -> None:
    async def body(sink: JetStreamSink) -> None:
        await sink.publish("acct-1", *report(1))
        await sink.flush()
        with nats_server.paused():
            taken = [sink.publish_nowait("acct-1", *report(time)) for time in range(2, 12)]
            assert taken == [True] * 4 + [False] * 6  # 4 in flight at most: the sixth waits
            assert (sink.published, sink.pending) == (5, 4)
        await sink.publish("acct-1", *report(6))  # what said False is published by `publish`
        await sink.flush()
        assert (sink.delivered, sink.lost) == (6, 0)

    run(nats_server, body, max_pending=4, ack_timeout=30, batched=batched)


def test_publish_nowait_says_false_while_nats_is_unreachable_and_publish_reports_the_loss(
    nats_server: NatsServer,
) -> None:
    async def body(sink: JetStreamSink) -> None:
        await sink.publish("acct-1", *report(1))
        await sink.flush()
        await asyncio.to_thread(nats_server.stop)
        async with asyncio.timeout(10):
            while sink._client is not None and sink._client.is_connected:  # until nats-py sees it gone
                await asyncio.sleep(0.01)
        assert not sink.publish_nowait("acct-1", *report(2))
        assert sink.published == 1
        await sink.publish("acct-1", *report(2))
        assert (sink.published, sink.lost) == (2, 1)
        assert [loss.reason for loss in sink.take_lost()] == ["not sent: NATS is unreachable"]

    run(nats_server, body)
    nats_server.start()


def test_a_slow_server_makes_publish_wait_for_its_batchs_first_answer(nats_server: NatsServer) -> None:
    async def body(sink: JetStreamSink) -> None:
        with nats_server.paused():  # the sink's first item starts its first batch
            await sink.publish("acct-1", *report(1))
            second = await still_waiting(sink.publish("acct-1", *report(2)))
            assert sink.pending == 1
        await second
        await sink.flush()
        assert (sink.delivered, sink.lost) == (2, 0)

    run(nats_server, body, max_pending=5, ack_timeout=30)


@pytest.mark.parametrize("allow_batched", [True, False])
def test_items_the_stream_refuses_are_reported_lost_with_the_servers_reason(
    nats_server: NatsServer, allow_batched: bool
) -> None:
    async def body(sink: JetStreamSink) -> None:
        for time in range(1, 11):
            await sink.publish("acct-1", *report(time))
        await sink.flush()
        losses = sink.take_lost()
        assert (sink.delivered, sink.lost) == (5, 5)
        assert [loss.item.event_time for loss in losses] == [6, 7, 8, 9, 10]
        assert losses[0].after_event_time == 5
        assert "maximum messages exceeded" in losses[0].reason

    asyncio.run(_with_limited_stream(nats_server, body, max_msgs=5, allow_batched=allow_batched))


async def _with_limited_stream(
    nats_server: NatsServer, body: Callable[[JetStreamSink], Awaitable[None]], **limits: Any
) -> None:
    """`body` with a sink on a stream that refuses what is beyond `limits` (discard new)."""
    client: Client = await nats.connect(nats_server.url)
    try:
        config = StreamConfig(name="BINANCE", subjects=["binance.>"], discard=DiscardPolicy.NEW, **limits)
        # allow_batched=True: the sink publishes in fast-ingest batches; else one message at a time
        await client.jetstream().add_stream(config)
        async with JetStreamSink(client, market="spot", ensure_stream=False) as sink:
            await body(sink)
    finally:
        await client.close()


async def _items(*items: tuple[str, object, str | None]) -> AsyncIterator[tuple[str, object, str | None]]:
    for item in items:
        yield item


@pytest.mark.parametrize("allow_batched", [True, False])
def test_the_pump_publishes_a_gap_for_an_account_whose_items_were_lost(
    nats_server: NatsServer, allow_batched: bool
) -> None:
    (e1, t1), (e2, t2), (e3, t3), (b1, u1) = report(1), report(2), report(3), report(4)

    async def body(sink: JetStreamSink) -> None:
        items = _items(("a", e1, t1), ("a", e2, t2), ("a", e3, t3), ("b", b1, u1))
        result = await pump(items, sink)
        assert (result.published, result.gaps, result.unreported) == (4, 1, [])

    # Two messages per subject: account a's third executionReport is refused, its gap is not.
    limits: dict[str, Any] = {"max_msgs_per_subject": 2, "discard_new_per_subject": True}
    limits["allow_batched"] = allow_batched
    asyncio.run(_with_limited_stream(nats_server, body, **limits))
    log = [
        (m.headers["Binance-Account"], m.headers["Binance-Event"], m.data)
        for m in asyncio.run(read_log(nats_server.url))
    ]
    assert [entry[:2] for entry in log] == [("a", "executionReport")] * 2 + [
        ("b", "executionReport"),
        ("a", "_gap"),
    ]
    gap = json.loads(log[-1][2])
    assert (gap["reason"], gap["dropped"], gap["last_event_time"]) == ("sink", 1, 2)


def test_the_pump_counts_an_item_it_cannot_address_as_lost_and_gaps_it(nats_server: NatsServer) -> None:
    bad = '{"e":"no.such.event","E":9}'

    async def body(sink: JetStreamSink) -> None:
        result = await pump(_items(("a", *report(1)), ("a", decode(bad), bad)), sink)
        assert (result.published, result.gaps) == (1, 1)

    run(nats_server, body)
    assert [m.headers["Binance-Event"] for m in asyncio.run(read_log(nats_server.url))] == [
        "executionReport",
        "_gap",
    ]


def test_no_secret_an_error_quotes_reaches_the_log(nats_server: NatsServer) -> None:
    error = BinanceAPIError(401, -2015, f"Invalid API-key {API_KEY}, listenKey={LISTEN_KEY}")

    async def body(sink: JetStreamSink) -> None:
        await pump(_items(("acct-1", error, None)), sink)

    run(nats_server, body)
    [message] = asyncio.run(read_log(nats_server.url))
    everything = message.data + message.subject.encode() + repr(message.headers).encode()
    assert message.headers["Binance-Event"] == "_error"
    assert API_KEY.encode() not in everything
    assert LISTEN_KEY.encode() not in everything


def test_the_package_imports_without_nats_and_the_sink_names_the_extra_it_needs() -> None:
    script = (
        "import sys, asyncio; sys.modules['nats'] = None\n"
        "import binance_userstream, binance_userstream.sink as sink\n"
        "try:\n"
        "    asyncio.run(sink.JetStreamSink(market='spot').start())\n"
        "except ImportError as error:\n"
        "    print(error)\n"
    )
    answer = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert "pip install binance-userstream[nats]" in answer.stdout


@pytest.mark.parametrize(
    "bad", [{"max_pending": 0}, {"ack_timeout": 0}, {"stream": "A.B"}, {"market": "x y"}]
)
def test_a_sink_refuses_a_configuration_it_cannot_keep(bad: dict[str, Any]) -> None:
    options: dict[str, Any] = {"market": "spot", **bad}
    with pytest.raises(ValueError, match=r"max_pending|ack_timeout|stream name|market"):
        JetStreamSink(**options)


def test_the_durable_log_guides_example_publishes_its_event(nats_server: NatsServer) -> None:
    [(_, _, _, block)] = run_elsewhere(page_text("docs/guides/durable-log.md"))
    code = block.replace("nats://127.0.0.1:4222", nats_server.url)
    command = [sys.executable, "-c", code]
    answer = subprocess.run(command, capture_output=True, text=True, check=True, timeout=60)
    assert answer.stdout.split() == ["1", "1", "[]"]
    [message] = asyncio.run(read_log(nats_server.url))
    assert message.subject == "binance.spot.acct-1.balanceUpdate"


def test_the_readmes_durable_consumers_read_one_account_a_market_and_the_gaps(
    nats_server: NatsServer,
) -> None:
    [(_, _, _, block)] = run_elsewhere(page_text("README.md"))
    assert [mark[3] for mark in run_elsewhere(page_text("docs/index.md"))] == [block]  # the site's copy

    async def fill() -> None:
        async with JetStreamSink(servers=nats_server.url, market="spot", worker="w1") as sink:
            assert await sink.claim("acct-1", 1)
            await sink.publish("acct-1", *report(1))
            await sink.publish("acct-2", *report(2))
            await sink.publish("acct-2", StreamGap("disconnected", 1.0, 2.0), None)
            await sink.flush()

    asyncio.run(fill())
    code = block.replace("nats://127.0.0.1:4222", nats_server.url)
    read = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert read.returncode == 0, read.stderr
    assert read.stdout.splitlines() == [
        "bot acct-1 _owner",
        "bot acct-1 executionReport",
        "risk acct-1 _owner",
        "risk acct-1 executionReport",
        "risk acct-2 executionReport",
        "risk acct-2 _gap",
        "healer acct-2 _gap",
    ]
    again = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert (again.returncode, again.stdout) == (0, "")  # durable and acknowledged: nothing twice


class _Watched(JetStreamSink):
    """A JetStreamSink that says when it was handed a gap."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.gap_published = asyncio.Event()

    async def publish(self, account_id: str, item: object, text: str | None) -> None:
        await super().publish(account_id, item, text)
        if isinstance(item, StreamGap):
            self.gap_published.set()


def test_the_pump_publishes_a_gap_as_soon_as_a_loss_is_reported_while_the_fleet_is_quiet(
    nats_server: NatsServer,
) -> None:
    async def quiet_after_three(sink: _Watched) -> AsyncIterator[tuple[str, object, str | None]]:
        for time in (1, 2, 3):
            yield ("a", *report(time))
        await asyncio.wait_for(sink.gap_published.wait(), timeout=10)  # the fleet has nothing more for now

    async def main() -> None:
        client: Client = await nats.connect(nats_server.url)
        try:
            config = StreamConfig(
                name="BINANCE",
                subjects=["binance.>"],
                discard=DiscardPolicy.NEW,
                max_msgs_per_subject=2,
                discard_new_per_subject=True,
            )
            await client.jetstream().add_stream(config)
            async with _Watched(client, market="spot", ensure_stream=False) as sink:
                result = await pump(quiet_after_three(sink), sink)
                assert (result.published, result.gaps) == (3, 1)
        finally:
            await client.close()

    asyncio.run(main())
    assert [m.headers["Binance-Event"] for m in asyncio.run(read_log(nats_server.url))][-1] == "_gap"


def test_a_sink_whose_subjects_another_stream_takes_says_so_at_start(nats_server: NatsServer) -> None:
    async def main() -> None:
        client: Client = await nats.connect(nats_server.url)
        try:
            await client.jetstream().add_stream(StreamConfig(name="OTHER", subjects=["binance.>"]))
            with pytest.raises(UserStreamError, match="another stream than 'BINANCE' takes subjects binance"):
                async with JetStreamSink(servers=nats_server.url, market="spot"):
                    pass
        finally:
            await client.close()

    asyncio.run(main())


def test_an_accounts_lost_fatal_error_is_published_again_after_its_gap(nats_server: NatsServer) -> None:
    error = BinanceAPIError(401, -2015, "Invalid API-key, IP, or permissions for action.")

    class StreamTakesErrorsAfterTheGap(_Watched):
        async def publish(self, account_id: str, item: object, text: str | None) -> None:
            if isinstance(item, StreamGap):  # from now on the stream also keeps errors
                config = StreamConfig(name="BINANCE", subjects=["binance.*.*._gap", "binance.*.*._error"])
                await client.jetstream().update_stream(config)
            await super().publish(account_id, item, text)

    async def main() -> None:
        nonlocal client
        client = await nats.connect(nats_server.url)
        try:
            await client.jetstream().add_stream(StreamConfig(name="BINANCE", subjects=["binance.*.*._gap"]))
            async with StreamTakesErrorsAfterTheGap(client, market="spot", ensure_stream=False) as sink:
                result = await pump(_items(("a", error, None)), sink)
                assert (result.published, result.gaps, result.unreported) == (1, 1, [])
        finally:
            await client.close()

    client: Client
    asyncio.run(main())
    stored = asyncio.run(read_log(nats_server.url))
    assert [m.headers["Binance-Event"] for m in stored] == ["_gap", "_error"]
    assert json.loads(stored[1].data)["error"] == "BinanceAPIError"


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    accounts=st.lists(st.integers(0, 3), min_size=1, max_size=120),
    room=st.integers(1, 120),
    allow_batched=st.booleans(),
)
def test_what_the_log_keeps_is_exactly_what_was_not_reported_lost(
    nats_server: NatsServer, accounts: list[int], room: int, allow_batched: bool
) -> None:
    stream = f"KEEP{next(_examples)}"
    lost: list[Lost] = []

    async def main() -> None:
        client: Client = await nats.connect(nats_server.url)
        try:
            config = StreamConfig(
                name=stream,
                subjects=[f"{stream.lower()}.>"],
                discard=DiscardPolicy.NEW,
                max_msgs=room,
                allow_batched=allow_batched,
            )
            await client.jetstream().add_stream(config)
            options: dict[str, Any] = {"stream": stream, "prefix": stream.lower(), "ensure_stream": False}
            async with JetStreamSink(client, market="spot", max_pending=16, **options) as sink:
                for time, account in enumerate(accounts, start=1):
                    await sink.publish(f"acct-{account}", *report(time))
                await sink.flush()
                lost.extend(sink.take_lost())
                assert sink.delivered + sink.lost == len(accounts)
        finally:
            await client.close()

    asyncio.run(main())
    kept = [
        json.loads(m.data)["E"] for m in asyncio.run(read_log(nats_server.url, stream, f"{stream.lower()}.>"))
    ]
    reported = [loss.item.event_time for loss in lost]  # type: ignore[attr-defined]
    assert sorted(kept + reported) == list(range(1, len(accounts) + 1))
    assert kept == list(range(1, min(room, len(accounts)) + 1))
