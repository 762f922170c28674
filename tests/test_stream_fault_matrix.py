"""The stream fault matrix: every stream fault x every market family x sync/async, against the simulator.

Each cell states its expected outcome: the events delivered with no gap (a planned rotation), a
gap with its reason where the hole is, or the typed error that ends the stream, all in bounded
time. The client and the simulator share a SteppedClock, moved a minute at a time, so stalls and
backoffs take simulated minutes and real milliseconds. Facts: Binance's "User Data Streams" pages
(listenKeyExpired, the 24-hour cut, serverShutdown), web-socket-api.md (eventStreamTerminated,
-1022), errors.md.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from attrs import define, field, frozen
from binance_userstream_client.models import UnknownEvent

from binance_userstream import (
    EndpointRetiredError,
    SignatureError,
    SteppedClock,
    StreamGap,
)
from binance_userstream.simulator import TEST_API_KEY, Simulator
from tests._chaos import WS_API, client, event_for, inject, streams_of

STEP = 60.0
#: Simulated minutes a cell may take to reach its outcome, and real seconds for the whole cell.
MAX_STEPS = 30
BOUND = 20.0
FAMILIES = ("usdm", "coinm", "spot", "margin")


@frozen
class Outcome:
    """What a cell must end in: a gap (its reason), no gap, or an error (its class)."""

    gap: str | None = None
    error: type[Exception] | None = None


def expected(family: str, fault: str) -> Outcome:
    lost = "subscription_ended" if family in WS_API else "listen_key_expired"
    return {
        "drop": Outcome(gap="disconnected"),
        "cut": Outcome(gap="disconnected"),
        "stall": Outcome(gap="stalled"),
        "loss": Outcome(gap=lost),
        "429": Outcome(gap=lost),
        "shutdown": Outcome(),
        "refused": Outcome(error=SignatureError if family == "spot" else EndpointRetiredError),
    }[fault]


FAULTS = ("drop", "cut", "stall", "loss", "429", "shutdown", "refused")


@define
class Consumer:
    """A stream read in a thread of its own (the sync stream, or the async one on a private loop):
    the items as (type name, E or gap reason), or the error it ended with."""

    items: list[tuple[str, Any]] = field(factory=list)
    #: The kinds of the stream's notes (`on_event`), as they come.
    notes: list[str] = field(factory=list)
    error: BaseException | None = None
    ready: threading.Event = field(factory=threading.Event)
    stop: Callable[[], None] | None = None
    thread: threading.Thread | None = None
    tasks_left: int = 0

    def record(self, item: Any) -> None:
        if isinstance(item, StreamGap):
            self.items.append(("gap", item.reason))
        elif isinstance(item, UnknownEvent):  # serverShutdown on the derivatives, which do not type it
            self.items.append((str(item.to_dict().get("e")), item.to_dict().get("E")))
        else:
            self.items.append((type(item).__name__, item.to_dict().get("E")))

    def noted(self, note: Any) -> None:
        self.notes.append(note.kind.value)


def start(mode: str, family: str, sim: Simulator, clock: SteppedClock) -> Consumer:
    consumer = Consumer()
    if mode == "sync":

        def read_sync() -> None:
            try:
                with (
                    client(family, sim, clock, sync=mode == "sync") as uds,
                    uds.events(clock=clock, on_event=consumer.noted) as stream,
                ):
                    consumer.stop = stream.close
                    consumer.ready.set()
                    for item in stream:
                        consumer.record(item)
            except BaseException as error:
                consumer.error = error
            finally:
                consumer.ready.set()

        consumer.thread = threading.Thread(target=read_sync)
    else:

        async def read_async() -> None:
            try:
                async with (
                    client(family, sim, clock, sync=mode == "sync") as uds,
                    uds.events(clock=clock, on_event=consumer.noted) as stream,
                ):
                    loop = asyncio.get_running_loop()
                    consumer.stop = lambda: loop.is_closed() or loop.call_soon_threadsafe(stream.close)
                    consumer.ready.set()
                    async for item in stream:
                        consumer.record(item)
            except BaseException as error:
                consumer.error = error
            finally:
                consumer.ready.set()
                consumer.tasks_left = len(asyncio.all_tasks()) - 1

        consumer.thread = threading.Thread(target=asyncio.run, args=(read_async(),))
    consumer.thread.start()
    assert consumer.ready.wait(10)
    return consumer


def until(condition: Callable[[], bool], timeout: float = 1.0) -> bool:
    ends = time.monotonic() + timeout
    while not condition() and time.monotonic() < ends:
        time.sleep(0.0005)
    return condition()


def step(sim: Simulator, clock: SteppedClock, family: str) -> None:
    clock.advance(STEP)
    sim.tick()
    time.sleep(0.001)
    if family in WS_API:  # the clock stands still while a connection mints and subscribes
        until(lambda: sim.stream_connections("spot") <= sim.subscriptions(), timeout=2.0)


@pytest.mark.parametrize("mode", ["async", "sync"])
@pytest.mark.parametrize("fault", FAULTS)
@pytest.mark.parametrize("family", FAMILIES)
def test_each_stream_fault_ends_as_stated_in_bounded_time(family: str, fault: str, mode: str) -> None:
    want = expected(family, fault)
    began = time.monotonic()
    clock = SteppedClock()
    with Simulator(clock=clock) as sim:
        streams = streams_of(family)
        consumer = start(mode, family, sim, clock)
        assert until(lambda: sim.stream_connections(streams) >= 1, timeout=10)
        if family in WS_API:
            assert until(lambda: sim.subscriptions() >= 1, timeout=10)
        sim.push(family, event_for(family, 1), TEST_API_KEY)
        assert until(lambda: ("BalanceUpdate" if family in WS_API else "AccountUpdate", 1) in consumer.items)
        inject(sim, family, fault)
        if fault in ("drop", "cut"):
            # A connection ends at once on Binance's clock: the client must have seen it end before the
            # clock moves on, or two steps (two silent minutes) taken in the milliseconds the closing
            # takes to reach its thread would make it a stall.
            assert until(lambda: "disconnected" in consumer.notes, timeout=10), consumer.notes
        n = 1
        for _ in range(MAX_STEPS):
            step(sim, clock, family)
            n += 1
            if sim.push(family, event_for(family, n), TEST_API_KEY) and until(
                lambda n=n: bool(consumer.items) and consumer.items[-1][1] == n  # type: ignore[misc]
            ):
                break
            if consumer.error is not None:
                break
        if consumer.stop is not None:
            consumer.stop()
        assert consumer.thread is not None
        consumer.thread.join(10)
        assert not consumer.thread.is_alive()
    assert time.monotonic() - began < BOUND
    assert consumer.tasks_left == 0, "the stream left a task behind"
    gaps = [value for kind, value in consumer.items if kind == "gap"]
    if want.error is not None:
        assert isinstance(consumer.error, want.error), (consumer.error, consumer.items)
        return
    assert consumer.error is None, consumer.error
    assert gaps == ([want.gap] if want.gap else []), consumer.items
    assert consumer.items[-1][1] == n, "the stream did not recover within the bound"
    delivered = [
        e
        for kind, e in consumer.items
        if kind
        not in ("gap", "ListenKeyExpired", "ServerShutdown", "serverShutdown", "EventStreamTerminated")
    ]
    assert delivered == sorted(set(delivered))
