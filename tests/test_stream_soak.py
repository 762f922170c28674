"""Event streams soaked for 72 simulated hours per market family, under seeded chaos, over real sockets.

The client and the simulator share a SteppedClock: the test moves it a minute at a time, the
simulator pings and cuts on it, the stream's rules (stalls, backoff, the 23h30m rotation, token
renewal) run on it, and every byte still crosses a real loopback WebSocket. Each step the
simulator sends one event; now and then a fault: a dropped connection, a clean cut, a stall past
the ping rules, a lost credential (a listenKey expired; for margin, a listenToken revoked), a 429 on
the next create, or a `serverShutdown` notice (planned: no gap). Binance's 24-hour cut comes by
itself, three times (https://developers.binance.com/docs/binance-spot-api-docs/web-socket-streams:
"A single connection ... is only valid for 24 hours").

The promise checked: every event the simulator sent was delivered exactly once, in order, or
falls inside a StreamGap the application received; each unplanned loss is exactly one gap and
planned rotations none; nothing (task, thread, socket) is left behind; memory does not grow with
the hours.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import random
import sys
import threading
import tracemalloc
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from attrs import define, field

from binance_userstream import (
    SteppedClock,
    StreamGap,
)
from binance_userstream.simulator import TEST_API_KEY, Simulator
from binance_userstream.stream._core import StreamEvent, StreamEventKind
from tests._chaos import client, event_for, inject, streams_of

HOURS = 72
STEP = 60.0
#: About one fault every 90 simulated minutes, after a first day and an hour of calm in which
#: Binance's 24-hour cut must be beaten by a planned rotation, and before a last calm hour in which
#: the last fault's gap is delivered.
CHAOS = 1 / 90
CALM = 25 * 60
STEPS = int(HOURS * 3600 / STEP)
#: The faults each market family meets (see tests/_chaos.py): a lost credential is the derivatives'
#: listenKey, spot's and margin's subscription (margin's tokens revoked with it); a 429 comes on the
#: next create (a listenKey, or margin's listenToken).
FAULTS = {
    "usdm": ("drop", "cut", "stall", "loss", "429", "shutdown"),
    "coinm": ("drop", "cut", "stall", "loss", "429", "shutdown"),
    "spot": ("drop", "cut", "stall", "loss", "shutdown"),
    "margin": ("drop", "cut", "stall", "loss", "429", "shutdown"),
}
#: Faults that lose events: one gap each. (serverShutdown is planned: a rotation, no gap.)
LOSSY = {"drop", "cut", "stall", "loss", "429"}
#: Real seconds the test waits for an event to reach the consumer before it steps on: an event
#: queued to a connection the client has just given up (stalled, closing) never arrives, and must
#: then fall inside a gap, which `check` verifies.
DELIVERY = 1.0


@define
class Run:
    """What one soak saw: the items as (kind, E or gap reason), the faults, the connection notes."""

    seen: list[tuple[str, Any]] = field(factory=list)
    faults: Counter[str] = field(factory=Counter)
    notes: Counter[StreamEventKind] = field(factory=Counter)
    sent: list[int] = field(factory=list)
    undelivered: int = 0
    tasks_left: int = -1
    memory: list[int] = field(factory=list)

    def on_event(self, event: object) -> None:
        if isinstance(event, StreamEvent):
            self.notes[event.kind] += 1


def _traced() -> int:
    """Bytes allocated by the client (this package but its simulator) and the WebSocket library,
    still alive."""
    gc.collect()
    # Grouped by file first, then the files chosen: the same sum as filtering every trace by its file
    # (`Snapshot.filter_traces`, fnmatch over each allocation), in less than half the time.
    by_file = tracemalloc.take_snapshot().statistics("filename")
    return sum(stat.size for stat in by_file if _ours(stat.traceback[0].filename))


def _ours(filename: str) -> bool:
    """Whether a file is the client's (this package's but the simulator's) or the WebSocket library's."""
    return ("binance_userstream" in filename or "websockets" in filename) and "simulator" not in filename


async def _until(condition: Callable[[], bool], timeout: float = DELIVERY) -> bool:
    """Wait (real time) until `condition` holds; whether it did."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(timeout):
            while not condition():
                await asyncio.sleep(0.0005)
    return condition()


async def soak(market: str, seed: int) -> Run:
    rng = random.Random(seed)
    clock = SteppedClock()
    run = Run()
    with Simulator(clock=clock) as sim:
        async with (
            client(market, sim, clock) as uds,
            uds.events(clock=clock, on_event=run.on_event, jitter=rng.random) as stream,
        ):

            async def consume() -> None:
                async for item in stream:
                    if isinstance(item, StreamGap):
                        run.seen.append(("gap", item.reason))
                    else:
                        payload = item.to_dict()
                        # Copies made here: the parser's own strings and numbers, kept, would count
                        # as the package's memory (tracemalloc names the frame that allocated them).
                        stamp = payload.get("E")
                        run.seen.append(
                            (sys.intern(str(payload.get("e"))), None if stamp is None else int(str(stamp)))
                        )

            consumer = asyncio.create_task(consume())
            assert await _until(lambda: sim.stream_connections(streams_of(market)) >= 1, timeout=10)
            if market in ("spot", "margin"):
                assert await _until(lambda: sim.subscriptions() >= 1, timeout=10)
            healthy = True
            for n in range(1, STEPS + 1):
                clock.advance(STEP)
                sim.tick()
                await asyncio.sleep(0.001)  # let the stream's timers and the simulator act on the step
                if market in ("spot", "margin"):
                    # A handshake takes no time on Binance's clock: the clock stands still while a
                    # connection mints its token and subscribes (its timestamp must be fresh).
                    await _until(lambda: sim.stream_connections("spot") <= sim.subscriptions(), timeout=2)
                if healthy and CALM < n < STEPS - 60 and rng.random() < CHAOS:
                    fault = rng.choice(FAULTS[market])
                    run.faults[fault] += 1
                    inject(sim, market, fault)
                    healthy = fault == "shutdown"
                count = sim.push(market, event_for(market, n), TEST_API_KEY)
                run.sent.append(n)
                if count and await _until(lambda n=n: bool(run.seen) and run.seen[-1][1] == n):  # type: ignore[misc]
                    healthy = True
                else:
                    run.undelivered += 1
                if n % (12 * 60) == 0:
                    run.memory.append(_traced())
            stream.close()
            await consumer
        run.tasks_left = len(asyncio.all_tasks()) - 1  # the soak's own task aside
    return run


#: Events the simulator sends by itself, beside the soak's own.
NOT_PUSHED = ("listenKeyExpired", "serverShutdown", "eventStreamTerminated")


def check(run: Run) -> None:
    """Nothing lost silently, nothing twice, nothing out of order; one gap per unplanned loss."""
    delivered = [e for kind, e in run.seen if kind != "gap" and kind not in NOT_PUSHED]
    assert delivered == sorted(set(delivered)), "an event was delivered twice or out of order"
    previous: int | None = None
    gap_pending = False
    for kind, value in run.seen:
        if kind == "gap":
            gap_pending = True
            continue
        if kind in NOT_PUSHED:
            continue
        expected = 1 if previous is None else previous + 1
        if value != expected:
            assert gap_pending, f"events {expected}..{value - 1} were lost with no gap before {value}"
        previous, gap_pending = value, False
    gaps = [value for kind, value in run.seen if kind == "gap"]
    lossy = sum(count for fault, count in run.faults.items() if fault in LOSSY)
    assert set(gaps) <= {
        "disconnected",
        "stalled",
        "listen_key_expired",
        "key_replaced",
        "subscription_ended",
    }
    assert len(gaps) == lossy, (Counter(gaps), run.faults)
    # Every serverShutdown and the first day's end were rotations, none of them a gap.
    assert run.notes[StreamEventKind.ROTATED] >= run.faults["shutdown"] + 1
    assert "overflow" not in gaps


def _left_behind() -> tuple[int, int]:
    return threading.active_count(), len(os.listdir("/proc/self/fd"))


FAMILIES = ["usdm", "coinm", "spot", "margin"]


@pytest.mark.parametrize("market", FAMILIES)
def test_a_stream_survives_72_hours_of_chaos_with_every_event_delivered_once_or_inside_a_gap(
    market: str,
) -> None:
    before = _left_behind()
    tracemalloc.start()
    try:
        run = asyncio.run(soak(market, seed=20260220))
    finally:
        tracemalloc.stop()
    check(run)
    assert sum(run.faults.values()) >= 15, run.faults
    # Memory: what the package holds at the end of day 3 is what it held after 12 hours.
    assert run.memory[-1] - run.memory[0] < 32 * 1024, run.memory
    assert run.tasks_left == 0
    threads, fds = before
    for _ in range(200):
        if _left_behind() == before:
            break
        threading.Event().wait(0.01)
    assert _left_behind() == (threads, fds), threading.enumerate()
