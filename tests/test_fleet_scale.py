"""5,000 accounts on one fleet, on spot and on USD-M, against the simulator on a stepped clock.

Through the start (paced by the fleet's limits), a drop of every connection, revoked keys and the
rotation of every connection before the simulator's cut: every event is delivered once to its
account, in order, or that account has a gap where it is missing; a rotation costs no gap; a
revoked key ends its account alone; and the simulator, which refuses past Binance's per-IP limits
as Binance does, never has to.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from typing import Any

import pytest

from binance_userstream import (
    Account,
    AsyncFleet,
    AuthenticationError,
    SteppedClock,
    StreamGap,
    WeightBudget,
)
from binance_userstream.simulator import Simulator
from binance_userstream.stream._core import StreamEvent, StreamEventKind, StreamTiming

pytestmark = pytest.mark.anyio

ACCOUNTS = 5_000
REVOKED = 10
#: The simulator cuts connections at 900 s (its `connection_lifetime`); the fleet replaces them from
#: 600 s less up to 120 s, one at a time.
TIMING = StreamTiming(
    ping_interval=20.0, stall_grace=60.0, rotate_after=600.0, overlap=1.0, first_retry=1.0, max_retry=30.0
)
LIFETIME = 900.0
#: What ends an account's connection, as its stream notes it.
LOST = {
    StreamEventKind.DISCONNECTED,
    StreamEventKind.STALLED,
    StreamEventKind.KEY_EXPIRED,
    StreamEventKind.TERMINATED,
    StreamEventKind.KEY_REFUSED,
}


def key(n: int) -> str:
    return f"ScaleKey{n:056d}"


#: Each account's API key, made once: a push names 5,000 of them.
KEYS = [key(n) for n in range(ACCOUNTS)]


def secret(n: int) -> str:
    return f"ScaleSecret{n:053d}"


def event(market: str, n: int) -> dict[str, Any]:
    if market == "spot":
        return {"e": "balanceUpdate", "E": n, "a": "BTC", "d": "0.10000000", "T": n}
    return {"e": "ACCOUNT_UPDATE", "E": n, "T": n, "a": {"m": "ORDER", "B": [], "P": []}}


class Run:
    """The fleet, its simulator and clock, what each account was sent and what it was handed."""

    def __init__(self, market: str, sim: Simulator, clock: SteppedClock) -> None:
        self.market, self.sim, self.clock = market, sim, clock
        self.fleet: AsyncFleet | None = None
        self.live: set[str] = set()  # accounts whose stream says it is connected
        self.rotated = 0  # shared connections replaced make-before-break
        self.sent: dict[str, list[int]] = defaultdict(list)
        self.handed: dict[str, list[Any]] = defaultdict(list)
        self.refusals: list[str] = []
        self.most_opened = 0
        self.number = 0

    def noted(self, account: str | None, note: object) -> None:
        detail = getattr(note, "detail", None) or ""
        kind = getattr(note, "kind", None)
        if account is None and kind is StreamEventKind.ROTATED:
            self.rotated += 1
        if account is not None and kind is not None:
            if kind is StreamEventKind.CONNECTED:
                self.live.add(account)
            elif kind in LOST:
                self.live.discard(account)
        refused = ("HTTP 429", "HTTP 418", "code -1003")
        # (The HTTP layer's own budget says "not sent": that is the limit kept, not a refusal.)
        if isinstance(note, StreamEvent) and any(w in detail for w in refused) and "not sent" not in detail:
            self.refusals.append(detail)

    async def consume(self, fleet: AsyncFleet) -> None:
        async for account, item in fleet:
            self.handed[account].append(item)

    async def step(self, seconds: float, *, until: Any = None, most: int = 2_000) -> None:
        """Move the clock a second at a time (letting both sides run between steps) for `seconds`,
        or until `until()` holds."""
        steps = 0
        while steps < most:
            if until is not None and until():
                return
            if until is None and seconds <= 0:
                return
            await self.answered()
            if until is not None:  # while the fleet makes headway in real time (REST, answers), wait
                before = self.progress()
                await asyncio.sleep(0.02)
                if self.progress() != before:
                    continue
            self.clock.advance(1.0)
            seconds -= 1.0
            steps += 1
            await asyncio.sleep(0.005)
            self.most_opened = max(self.most_opened, self.sim.connections_opened(within=300.0))
        assert until is None or until(), "the fleet did not get there in time"

    def progress(self) -> tuple[int, int]:
        """What real time moves on: subscriptions made, listenKeys created."""
        assert self.fleet is not None
        started = sum(1 for t in self.fleet._driver.tenants.values() if t.starting is None)
        return self.subscribed(), started

    async def answered(self) -> None:
        """Real time for the simulator to answer what was sent (up to 5 s): a step of the clock
        must not outrun the server, or a subscription's answer would time out on the clock alone."""
        assert self.fleet is not None
        pool = self.fleet._driver.core.pool
        for _ in range(500):
            if not pool.awaiting():
                return
            await asyncio.sleep(0.01)

    async def settle(self) -> None:
        """Real time for what is in flight (frames, answers) to be handled, the clock still."""
        for _ in range(20):
            await asyncio.sleep(0.02)

    def push(self, accounts: list[int]) -> None:
        """One event to each of `accounts`, numbered apart."""
        self.number += 1
        n = self.number
        one = [event(self.market, n)]  # the same event to each: the simulator only reads it
        events = {KEYS[i]: one for i in accounts}
        self.sim.push_accounts(self.market, events)
        for i in accounts:
            self.sent[f"a{i}"].append(n)

    def subscribed(self) -> int:
        """Accounts connected, as their streams say (the simulator counts connections, not keys,
        on a combined stream)."""
        return len(self.live)


def check(account: str, sent: list[int], handed: list[Any]) -> None:
    """`handed` holds `sent`'s events in order, each once; one missing stands after a gap that
    follows the last event handed before it. (The stream's own events, eventStreamTerminated and
    listenKeyExpired, are left out.)"""
    handed = [item for item in handed if isinstance(item, StreamGap | BaseException) or _pushed(item)]
    numbers = [item.event_time for item in handed if not isinstance(item, StreamGap | BaseException)]
    assert numbers == sorted(set(numbers)), (account, numbers)
    assert set(numbers) <= set(sent), (account, numbers)
    for n in sent:
        if n in numbers:
            continue
        before = [
            i
            for i, item in enumerate(handed)
            if not isinstance(item, StreamGap | BaseException) and item.event_time < n
        ]
        start = before[-1] + 1 if before else 0
        after = [
            i
            for i, item in enumerate(handed)
            if not isinstance(item, StreamGap | BaseException) and item.event_time > n
        ]
        end = after[0] if after else len(handed)
        assert any(isinstance(item, StreamGap | BaseException) for item in handed[start:end]), (
            account,
            n,
            handed[max(0, start - 2) : end + 2],
        )


def _last(handed: list[Any]) -> int | None:
    """The number of the last event pushed that was handed out."""
    numbers = [i.event_time for i in handed if not isinstance(i, StreamGap | BaseException) and _pushed(i)]
    return numbers[-1] if numbers else None


def _pushed(item: Any) -> bool:
    return item.to_dict().get("e") in ("balanceUpdate", "ACCOUNT_UPDATE")


@pytest.mark.parametrize("market", ["spot", "usdm"])
async def test_five_thousand_accounts_lose_nothing_outside_their_gaps_within_binances_limits(
    market: str,
) -> None:
    clock = SteppedClock(start=1_000.0)
    options: dict[str, Any] = {"clock": clock, "connection_lifetime": LIFETIME, "ping_interval": 20.0}
    with Simulator(**options) as sim:
        run = Run(market, sim, clock)
        accounts = []
        for i in range(ACCOUNTS):
            if market == "spot":
                sim.register_key(key(i), secret=secret(i))
                accounts.append(Account(id=f"a{i}", api_key=key(i), api_secret=secret(i)))
            else:
                accounts.append(Account(id=f"a{i}", api_key=key(i)))
        fleet = AsyncFleet(
            accounts,
            market=market,
            base_url=sim.url,
            stream_url=sim.url.replace("http", "ws"),
            timing=TIMING,
            rotate_spread=120.0,
            clock=clock,
            budget=WeightBudget(clock=clock, limits={sim.url.split("//")[1]: 2_400}),  # USD-M's, per minute
            on_event=run.noted,
        )
        run.fleet = fleet
        async with fleet:
            consumer = asyncio.create_task(run.consume(fleet))
            everyone = list(range(ACCOUNTS))
            # The start: as fast as the limits allow (spot: 10,010 weight at 4,800 a minute).
            await run.step(0, until=lambda: run.subscribed() >= ACCOUNTS, most=600)
            connections = fleet.connections()
            run.push(everyone)
            await run.settle()

            # Every connection dropped: one gap for each account, and all back within the limits.
            sim.drop_streams(market)
            await run.settle()
            await run.step(0, until=lambda: run.subscribed() >= ACCOUNTS, most=600)
            run.push(everyone)
            await run.settle()

            # Keys revoked: those accounts end, each with its error; no other notices.
            for i in range(REVOKED):
                sim.revoke_key(key(i))
            await run.settle()
            await run.step(5)
            run.push(everyone[REVOKED:])
            await run.settle()

            # Every connection replaced before the simulator's cut, one at a time: no gap.
            while clock.now() < 1_000.0 + LIFETIME + 200.0:
                await run.step(60)
                run.push(everyone[REVOKED:])
                await run.settle()
            await run.step(0, until=lambda: run.subscribed() >= ACCOUNTS - REVOKED, most=300)
            run.push(everyone[REVOKED:])
            await run.settle()
            for _ in range(100):
                if all(
                    run.handed[f"a{i}"] and run.handed[f"a{i}"][-1].event_time == run.number
                    for i in everyone[REVOKED:]
                    if not isinstance(run.handed[f"a{i}"][-1], BaseException)
                ):
                    break
                await asyncio.sleep(0.05)
            fleet.close()
            await consumer
    assert connections == 5  # 1,000 spot accounts (1,024 listenKeys) a connection
    for i in range(ACCOUNTS):
        account = f"a{i}"
        check(account, run.sent[account], run.handed[account])
        gaps = [item for item in run.handed[account] if isinstance(item, StreamGap)]
        if i < REVOKED:
            assert isinstance(run.handed[account][-1], AuthenticationError), run.handed[account][-3:]
        else:
            assert [gap.reason for gap in gaps] == ["disconnected"], (account, gaps)  # the drop alone
            assert _last(run.handed[account]) == run.number
    assert run.rotated >= connections  # every connection was replaced before the cut
    assert run.refusals == []
    assert run.most_opened <= 300
