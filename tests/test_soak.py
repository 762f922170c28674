"""Keepalive sessions soaked for 72 simulated hours each with ~5% of answers faulty (seeded).

Binance's docs: keys live 60 minutes after their last keepalive; complaints about other clients
are keepalive loops that die quietly and -1125 treated as fatal. Here every loss must be replaced
and announced, the session's key must never lapse while it believes it alive, and nothing (thread,
task, socket, file descriptor) may be left behind.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import threading
from collections import Counter
from collections.abc import Callable

from binance_userstream import (
    AsyncUserDataStream,
    BackoffGate,
    EventKind,
    RetryPolicy,
    SessionEvent,
    UserDataStream,
    VirtualClock,
)
from binance_userstream.simulator import Fault, Simulator
from tests._events import Recorder
from tests.conftest import API_KEY

HOURS = 72
FAULTS = [Fault.rate_limited(0.01), Fault.server_error(503), Fault.drop(), Fault.lose_keys()]
RETRY = RetryPolicy(backoff_base=0.001, backoff_cap=0.005)
ALIVE = (EventKind.CREATED, EventKind.KEPT_ALIVE, EventKind.REPLACED)
#: Ten soaks of 72 hours each, on seeded chaos: replayable, and together they meet every fault.
SEEDS = range(20260220, 20260230)


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def eventually(condition: Callable[[], bool], timeout: float = 5.0) -> bool:
    """Poll for what no clock can tell: a server thread that has yet to see its client hang up."""
    pause = threading.Event()
    for _ in range(int(timeout / 0.01)):
        if condition():
            return True
        pause.wait(0.01)
    return condition()


class Watch:
    """Records events and, at each, checks on the exchange the key the session believes alive."""

    def __init__(self, sim: Simulator) -> None:
        self.sim = sim
        self.rec = Recorder()
        self.dead_when_believed_alive: list[SessionEvent] = []

    def __call__(self, event: SessionEvent) -> None:
        if event.kind in ALIVE and not self.sim.exchange.is_live(event.listen_key or ""):
            self.dead_when_believed_alive.append(event)
        self.rec(event)


def check_the_soak(watch: Watch, sim: Simulator) -> None:
    events = watch.rec.events
    assert events[-1].kind is EventKind.STOPPED
    assert events[-2].at >= HOURS * 3600
    assert watch.dead_when_believed_alive == []
    # Each key the session held was confirmed alive within every 60 minutes until it was replaced.
    confirmed = [e for e in events if e.kind in ALIVE]
    for before, after in itertools.pairwise(confirmed):
        if after.kind is not EventKind.REPLACED:
            assert after.at - before.at < 3600, (before.describe(), after.describe())
    # Every loss was announced, then a replacement was announced before the session went on.
    kinds = [e.kind for e in events]
    lost = [i for i, kind in enumerate(kinds) if kind is EventKind.KEY_LOST]
    for i in lost:
        following = next(k for k in kinds[i + 1 :] if k is not EventKind.KEEPALIVE_FAILED)
        assert following is EventKind.REPLACED


def check_the_chaos(served: Counter[Fault], losses: int) -> None:
    """The soaks, together, really met every kind of fault, and lost keys more than once."""
    assert set(served) == set(FAULTS)
    assert losses >= 3


def soak_many(soak_one: Callable[[Simulator, Watch, VirtualClock], None]) -> None:
    """Run `soak_one` for 72 simulated hours under each seed's chaos; check each run, then all."""
    threads, fds = threading.active_count(), open_fds()
    served: Counter[Fault] = Counter()
    losses = 0
    for seed in SEEDS:
        clock = VirtualClock()
        with Simulator(clock=clock, retired=False) as sim:  # spot's retired lifecycle, on purpose
            sim.chaos(0.05, FAULTS, seed=seed)
            watch = Watch(sim)
            soak_one(sim, watch, clock)
        check_the_soak(watch, sim)
        served.update(sim.faults_served)
        losses += len(watch.rec.of(EventKind.KEY_LOST))
    check_the_chaos(served, losses)
    assert eventually(lambda: threading.active_count() == threads), threading.enumerate()
    assert eventually(lambda: open_fds() == fds)


def test_sync_sessions_survive_72_hours_of_faults_and_leave_nothing_behind() -> None:
    def soak_one(sim: Simulator, watch: Watch, clock: VirtualClock) -> None:
        uds = UserDataStream(API_KEY, sim.url, retry=RETRY, gate=BackoffGate(clock=clock.now))
        with uds, uds.session(on_event=watch, clock=clock):
            watch.rec.wait_for(lambda events: events[-1].at >= HOURS * 3600, timeout=60)

    soak_many(soak_one)


def test_async_sessions_survive_72_hours_of_faults_and_leave_nothing_behind() -> None:
    async def soak(sim: Simulator, watch: Watch, clock: VirtualClock) -> int:
        uds = AsyncUserDataStream(API_KEY, sim.url, retry=RETRY, gate=BackoffGate(clock=clock.now))
        async with uds, uds.session(on_event=watch, clock=clock):
            while not watch.rec.events or watch.rec.events[-1].at < HOURS * 3600:
                await asyncio.sleep(0.001)
        return len(asyncio.all_tasks())

    def soak_one(sim: Simulator, watch: Watch, clock: VirtualClock) -> None:
        assert asyncio.run(soak(sim, watch, clock)) == 1  # no task left but the test's own

    soak_many(soak_one)
