"""The weight budget in the HTTP layer, over loopback against the simulator (which answers
`X-MBX-USED-WEIGHT-1M` and 429 past `weight_limit=`) on a VirtualClock shared with the budget: a
burst that would cross the limit waits for the next minute instead of meeting a 429; every client
shares one budget per ban group; the wait is reported; a deadline shorter than the wait fails the
call before anything is sent.

Binance: "When a 429 is received, it's your obligation as an API to back off", and going on earns
an IP ban (https://developers.binance.com/docs/binance-spot-api-docs/rest-api/limits); the count
resets when the next minute starts
(https://developers.binance.com/docs/binance-spot-api-docs/websocket-api/rate-limits).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
from binance_userstream_client.api.spot import get_spot_open_orders

from binance_userstream import (
    SHARED_BUDGET,
    AsyncUserDataStream,
    BudgetWait,
    EventKind,
    RetryPolicy,
    SessionEvent,
    UserDataStream,
    VirtualClock,
    WeightBudget,
    WeightBudgetError,
)
from binance_userstream.simulator import Simulator
from tests._both import Facade
from tests._scripted import LISTEN_KEY, Reply, ScriptedServer
from tests.conftest import API_KEY

LIMIT = 5
#: One attempt (a 429 would raise), and a deadline longer than any wait for the next minute.
PATIENT = RetryPolicy(attempts=1, deadline=120.0)


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock(start=10.0)  # 50 s left in the minute


@pytest.fixture
def sim(clock: VirtualClock) -> Iterator[Simulator]:
    with Simulator(clock=clock, weight_limit=LIMIT) as simulator:
        yield simulator


def host_of(url: str) -> str:
    return urlsplit(url).netloc


@pytest.fixture
def budget(sim: Simulator, clock: VirtualClock) -> WeightBudget:
    return WeightBudget(clock=clock, limits={host_of(sim.url): LIMIT})


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_burst_past_the_limit_waits_for_the_next_minute_instead_of_a_429(
    sim: Simulator, budget: WeightBudget, clock: VirtualClock, mode: str
) -> None:
    """USD-M's create weighs 1: the sixth of eight calls waits 50 s, none is answered 429."""
    call = Facade(mode, api_key=API_KEY, base_url=sim.url, market="usdm", retry=PATIENT, budget=budget)
    keys = [call("create") for _ in range(2 * LIMIT - 2)]
    assert len(set(keys)) == 1
    assert clock.now() == 60.0
    assert budget.used(host_of(sim.url)) == LIMIT - 2


def test_two_clients_share_one_budget(sim: Simulator, budget: WeightBudget, clock: VirtualClock) -> None:
    options = {"api_key": API_KEY, "base_url": sim.url, "market": "usdm", "retry": PATIENT, "budget": budget}
    with UserDataStream(**options) as first, UserDataStream(**options) as second:  # type: ignore[arg-type]
        for _ in range(LIMIT):
            first.create()
        second.create()
    assert clock.now() == 60.0


def test_every_client_shares_the_process_budget_by_default() -> None:
    with UserDataStream(API_KEY, market="usdm") as first, UserDataStream(API_KEY, market="coinm") as second:
        assert first.budget is second.budget is SHARED_BUDGET


def test_the_wait_is_reported_to_the_budgets_listeners_and_logged_at_info(
    sim: Simulator, budget: WeightBudget, caplog: pytest.LogCaptureFixture
) -> None:
    waits: list[BudgetWait] = []
    budget.on_wait.append(waits.append)
    caplog.set_level(logging.INFO, logger="binance_userstream")
    with UserDataStream(API_KEY, sim.url, market="usdm", retry=PATIENT, budget=budget) as uds:
        for _ in range(LIMIT + 1):
            uds.create()
    assert waits == [BudgetWait(host_of(sim.url), 1, LIMIT, LIMIT, 50.0)]
    (record,) = [r for r in caplog.records if "weight budget" in r.getMessage()]
    assert record.levelno == logging.INFO
    assert "5 of 5 used this minute" in record.getMessage()
    assert "waits 50.0 s" in record.getMessage()
    assert API_KEY not in caplog.text


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_deadline_shorter_than_the_wait_fails_before_sending(
    server: ScriptedServer, clock: VirtualClock, mode: str
) -> None:
    budget = WeightBudget(clock=clock, limits={host_of(server.url): LIMIT})
    budget.observe(host_of(server.url), LIMIT)  # an answer said the minute's weight is spent
    call = Facade(
        mode,
        api_key=API_KEY,
        base_url=server.url,
        market="usdm",
        retry=RetryPolicy(deadline=30.0),
        budget=budget,
    )
    with pytest.raises(WeightBudgetError) as raised:
        call("create")
    assert raised.value.retry_after == 50.0
    assert "past the call's deadline" in str(raised.value)
    assert server.requests == []
    assert clock.now() == 10.0


def test_the_used_weight_of_each_answer_is_counted(sim: Simulator, budget: WeightBudget) -> None:
    """Another program on the same IP spent weight: the simulator's header says so."""
    sim.exchange.handle("POST", "/fapi/v1/listenKey", {}, {}, API_KEY, "127.0.0.1")
    sim.exchange.handle("POST", "/fapi/v1/listenKey", {}, {}, API_KEY, "127.0.0.1")
    with UserDataStream(API_KEY, sim.url, market="usdm", retry=PATIENT, budget=budget) as uds:
        uds.create()
    assert budget.used(host_of(sim.url)) == 3


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_keepalive_that_waits_for_the_budget_is_a_session_event(clock: VirtualClock, mode: str) -> None:
    """A limit of 1: the create at 10 s spends the minute, the keepalive at 40 s waits 20 s."""
    with Simulator(clock=clock, weight_limit=1) as sim:
        budget = WeightBudget(clock=clock, limits={host_of(sim.url): 1})
        options = {"api_key": API_KEY, "base_url": sim.url, "market": "usdm", "retry": PATIENT}
        options["budget"] = budget
        kinds = asyncio.run(_async_kinds(options, clock)) if mode == "async" else _sync_kinds(options, clock)
    waited = (EventKind.WEIGHT_WAIT, 20.0)
    assert kinds[:3] == [(EventKind.CREATED, None), waited, (EventKind.KEPT_ALIVE, None)]


def _sync_kinds(options: dict[str, Any], clock: VirtualClock) -> list[tuple[EventKind, float | None]]:
    events: list[SessionEvent] = []
    enough = threading.Event()

    def seen(event: SessionEvent) -> None:
        events.append(event)
        if event.kind is EventKind.KEPT_ALIVE:
            enough.set()

    with UserDataStream(**options) as uds, uds.session(interval=30, on_event=seen, clock=clock):
        assert enough.wait(10)
    return [(e.kind, e.retry_in) for e in events]


async def _async_kinds(options: dict[str, Any], clock: VirtualClock) -> list[tuple[EventKind, float | None]]:
    events: list[SessionEvent] = []
    enough = asyncio.Event()

    def seen(event: SessionEvent) -> None:
        events.append(event)
        if event.kind is EventKind.KEPT_ALIVE:
            enough.set()

    async with AsyncUserDataStream(**options) as uds, uds.session(interval=30, on_event=seen, clock=clock):
        await asyncio.wait_for(enough.wait(), 10)
    return [(e.kind, e.retry_in) for e in events]


def test_sapis_ip_weight_header_is_counted_too(server: ScriptedServer, clock: VirtualClock) -> None:
    """SAPI answers `X-SAPI-USED-IP-WEIGHT-1M` where the rest of the API answers
    `X-MBX-USED-WEIGHT-1M` (https://developers.binance.com/docs/binance-spot-api-docs/rest-api/limits)."""
    budget = WeightBudget(clock=clock)
    server.script(Reply(body={"listenKey": LISTEN_KEY}, headers={"X-SAPI-USED-IP-WEIGHT-1M": "42"}))
    with UserDataStream(API_KEY, server.url, market="usdm", retry=PATIENT, budget=budget) as uds:
        uds.create()
    assert budget.used(host_of(server.url)) == 42


@pytest.mark.parametrize(("arguments", "weight"), [({"symbol": "LTCBTC"}, 6), ({}, 80)])
def test_a_call_counts_the_weight_of_the_parameters_it_sends(
    server: ScriptedServer, clock: VirtualClock, arguments: dict[str, str], weight: int
) -> None:
    """Spot's open orders weigh 6 for one symbol and 80 for all (`x-weight: {default: 80, with:
    {symbol: 6}}`): the HTTP layer reads the names the request sends."""
    budget = WeightBudget(clock=clock)
    server.script(Reply(body=[]))
    with UserDataStream(
        API_KEY, server.url, api_secret="s3cr3t", market="spot", retry=PATIENT, budget=budget
    ) as uds:
        uds.call(get_spot_open_orders.sync_detailed, list, **arguments)
    assert budget.used(host_of(server.url)) == weight
