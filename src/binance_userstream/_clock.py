"""Clocks: where sessions and the simulator read the time and wait, so tests and demos can bend it.

Each clock also tells the wall time (`wall()`, seconds since the epoch) on its own scale: what a
signed request's `timestamp` and the simulator's server time are read from, so that a client and
a simulator sharing an accelerated clock agree on the time as they agree on durations.

`SystemClock` is real time. `AcceleratedClock(speed)` runs `speed` times faster than real time
(the demo spans hours in seconds). `VirtualClock` moves only when something waits on it, so a
test runs hours of keepalives in milliseconds.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from typing import Protocol


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
