"""Clocks accept any wait a server or a caller can produce, without raising in the waiting thread."""

from __future__ import annotations

import asyncio
import math
import threading

import pytest

from binance_userstream import VirtualClock
from binance_userstream._clock import AcceleratedClock, SystemClock


@pytest.mark.parametrize("clock", [SystemClock(), AcceleratedClock(1000)], ids=repr)
@pytest.mark.parametrize("seconds", [math.inf, 1e300])
def test_a_wait_too_long_for_the_platform_waits_until_stopped(
    clock: SystemClock | AcceleratedClock, seconds: float
) -> None:
    stop = threading.Event()
    stopper = threading.Timer(0.05, stop.set)
    stopper.start()
    assert clock.wait(seconds, stop) is True  # Event.wait(inf) raises OverflowError
    stopper.join()


@pytest.mark.parametrize("clock", [SystemClock(), AcceleratedClock(1000)], ids=repr)
@pytest.mark.parametrize("seconds", [math.nan, -5.0])
def test_a_nan_or_negative_wait_is_no_wait(clock: SystemClock | AcceleratedClock, seconds: float) -> None:
    assert clock.wait(seconds, threading.Event()) is False
    asyncio.run(asyncio.wait_for(clock.sleep(seconds), 5))


def test_virtual_time_never_becomes_nan() -> None:
    clock = VirtualClock()
    clock.advance(math.nan)
    clock.advance(5)
    assert clock.now() == 5


@pytest.mark.parametrize("speed", [0, -1, math.inf, math.nan])
def test_an_accelerated_clock_needs_a_positive_finite_speed(speed: float) -> None:
    with pytest.raises(ValueError, match="speed"):
        AcceleratedClock(speed)
