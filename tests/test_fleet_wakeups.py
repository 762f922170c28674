"""The driver wakes its consumers: frames set `ready` only while a consumer waits on it (a set per
event cost as much as a tenth of the fleet's work), so what counts the waiting ones must count
every one of them."""

from __future__ import annotations

import asyncio
import random

import pytest

from binance_userstream import SHARED_GATE, FleetLimits
from binance_userstream._markets import MARKETS
from binance_userstream.fleet._async import log
from binance_userstream.fleet._core import FleetCore
from binance_userstream.fleet._driver import Driver

pytestmark = pytest.mark.anyio


def driver() -> Driver:
    market = MARKETS["spot"]
    core = FleetCore(market, limits=FleetLimits(), random=random.random)
    return Driver(
        market,
        core,
        url="ws://127.0.0.1:9/ws-api/v3",
        stream_base="ws://127.0.0.1:9",
        gate=SHARED_GATE,
        clock=None,
        on_event=None,
        log=log,
        tag_accounts=True,
    )


async def test_a_consumer_that_begins_waiting_as_another_is_woken_is_still_counted_waiting() -> None:
    held = driver()
    first = asyncio.create_task(held.wait_ready())
    await asyncio.sleep(0)
    second = asyncio.create_task(held.wait_ready())  # starts before the first resumes
    held.ready.set()  # a frame, while the first waits
    await first
    assert held.waiting == 1  # the second: the next frame wakes it
    held.ready.set()
    await second
    assert held.waiting == 0  # nobody waits: frames set nothing
