"""Clocks: where sessions and the simulator read the time and wait, so tests and demos can bend it.

Each clock also tells the wall time (`wall()`, seconds since the epoch) on its own scale: what a
signed request's `timestamp` and the simulator's server time are read from, so that a client and
a simulator sharing an accelerated clock agree on the time as they agree on durations.

`SystemClock` is real time. `AcceleratedClock(speed)` runs `speed` times faster than real time
(the demo spans hours in seconds). `VirtualClock` moves only when something waits on it, so a
test runs hours of keepalives in milliseconds. `SteppedClock` moves only when the test says, and
its waits block until then: days of a stream over real sockets, a step at a time.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections.abc import Coroutine
from typing import Any, Protocol


def _seconds(value: float) -> float:
    """A wait that every waiting primitive accepts: NaN and negatives are no wait, and anything past
    `threading.TIMEOUT_MAX` (about 292 years) is cut to it, where `Event.wait` would raise."""
    if math.isnan(value) or value <= 0:
        return 0.0
    return min(value, threading.TIMEOUT_MAX)


class Clock(Protocol):
    """Monotonic seconds, and waits measured in those seconds."""

    def now(self) -> float: ...

    def wait(self, seconds: float, stop: threading.Event) -> bool:
        """Wait `seconds` or until `stop` is set; True if it was set."""
        ...

    async def sleep(self, seconds: float) -> None: ...


def wall_time(clock: Clock | None) -> float:
    """Seconds since the epoch on `clock`'s scale (None, or a clock without `wall()`: real time)."""
    wall = getattr(clock, "wall", None)
    return time.time() if wall is None else float(wall())


class SystemClock:
    """Real time."""

    def now(self) -> float:
        return time.monotonic()

    def wall(self) -> float:
        return time.time()

    def wait(self, seconds: float, stop: threading.Event) -> bool:
        return stop.wait(_seconds(seconds))

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(_seconds(seconds))

    def __repr__(self) -> str:
        return "SystemClock()"


class AcceleratedClock:
    """Time that runs `speed` times faster than real time (speed 720: an hour in five seconds)."""

    def __init__(self, speed: float) -> None:
        if not 0 < speed < math.inf:
            raise ValueError("speed must be a positive, finite number")
        self.speed = speed
        self._start = time.monotonic()
        self._wall_start = time.time()

    def now(self) -> float:
        return self._start + (time.monotonic() - self._start) * self.speed

    def wall(self) -> float:
        """The wall time at the clock's creation, plus the accelerated time since."""
        return self._wall_start + (self.now() - self._start)

    def wait(self, seconds: float, stop: threading.Event) -> bool:
        return stop.wait(_seconds(seconds / self.speed))

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(_seconds(seconds / self.speed))

    def __repr__(self) -> str:
        return f"AcceleratedClock(speed={self.speed:g})"


class VirtualClock:
    """Time that stands still until something waits: each wait moves it forward at once."""

    def __init__(self, start: float = 0.0) -> None:
        self._now = start
        self._start = start
        self._wall_start = time.time()
        self._lock = threading.Lock()

    def now(self) -> float:
        return self._now

    def wall(self) -> float:
        """The wall time at the clock's creation, plus the virtual time since."""
        return self._wall_start + (self._now - self._start)

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._now += _seconds(seconds)

    def wait(self, seconds: float, stop: threading.Event) -> bool:
        if stop.is_set():
            return True
        self.advance(seconds)
        time.sleep(0)  # let other threads see the new time
        return stop.is_set()

    async def sleep(self, seconds: float) -> None:
        self.advance(seconds)
        await asyncio.sleep(0)

    def __repr__(self) -> str:
        return f"VirtualClock(now={self._now:g})"


class SteppedClock:
    """Time that moves only when `advance` is called, and waits that block until it has moved far
    enough: a soak test steps a client and a simulator through days, a minute at a time, while
    their sockets stay real. (A VirtualClock leaps at every wait, so a client's timers would race
    ahead of the simulator's pings.)"""

    def __init__(self, start: float = 0.0) -> None:
        self._now = start
        self._start = start
        self._wall_start = time.time()
        self._moved = threading.Condition()
        self._sleepers: list[tuple[float, asyncio.AbstractEventLoop, asyncio.Future[None]]] = []

    def now(self) -> float:
        return self._now

    def wall(self) -> float:
        """The wall time at the clock's creation, plus the stepped time since."""
        return self._wall_start + (self._now - self._start)

    def advance(self, seconds: float) -> None:
        """Move the clock forward, and wake every wait that has come due."""
        with self._moved:
            self._now += _seconds(seconds)
            due = [s for s in self._sleepers if s[0] <= self._now]
            self._sleepers = [s for s in self._sleepers if s[0] > self._now]
            self._moved.notify_all()
        for _, loop, future in due:
            if not loop.is_closed():
                loop.call_soon_threadsafe(_wake, future)

    def wait(self, seconds: float, stop: threading.Event) -> bool:
        target = self._now + _seconds(seconds)
        with self._moved:
            while self._now < target and not stop.is_set():
                self._moved.wait(0.05)  # `stop` is set without notifying: look again soon
        return stop.is_set()

    def sleep(self, seconds: float) -> Coroutine[Any, Any, None]:
        """Wait until the clock has moved `seconds` past now: now when called, not when the
        coroutine first runs (by then the test may have stepped the clock on)."""
        return self._sleep_until(self._now + _seconds(seconds))

    async def _sleep_until(self, target: float) -> None:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        entry = (target, loop, future)
        with self._moved:
            if self._now >= target:
                future.set_result(None)
            else:
                self._sleepers.append(entry)
        try:
            await future
        finally:
            with self._moved:
                if entry in self._sleepers:
                    self._sleepers.remove(entry)

    def __repr__(self) -> str:
        return f"SteppedClock(now={self._now:g})"


def _wake(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
