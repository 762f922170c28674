"""Workers end to end, in one process: the simulator (spot, the WebSocket API), a real nats-server,
and workers that share the accounts by leases and publish each account's events to JetStream:
each account published by one worker, its events in the log once each and in order, a failover's
gap first when an account is taken over, a planned leave handed over with no gap, and every gap
followed by its account's Reconciled: the account as the simulator's ledger has it, and the trades
made inside the gap."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import time
from collections import Counter, defaultdict
from decimal import Decimal
from typing import Any

import pytest

from binance_userstream import Account, AccountState, Balance, Order, Reconciled
from binance_userstream.simulator import Simulator
from binance_userstream.sink import JetStreamSink
from binance_userstream.stream._core import StreamTiming
from binance_userstream.workers import LeaseTiming, Start, Stop, tune_collector
from binance_userstream.workers import _worker as worker_module
from binance_userstream.workers._worker import Worker
from tests._ledger_state import account_state, same_account, trades
from tests._nats import NatsServer, check_account_log, read_log
from tests._proxy import TcpProxy
from tests.test_fleet_spot import accounts, balance, key, live

pytestmark = pytest.mark.anyio

FAST = StreamTiming(ping_interval=20, overlap=0.2, first_retry=0.05, max_retry=0.2)
LEASES = LeaseTiming(ttl=2.0)


__all__ = ["live"]  # the fixture: a simulator on real time


def worker(
    sim: Simulator, nats_server: NatsServer, members: list[Account], name: str, **options: Any
) -> Worker:
    options.setdefault("nats", nats_server.url)
    return Worker(
        members,
        market="spot",
        worker_id=name,
        lease_timing=LEASES,
        base_url=sim.url,
        stream_url=sim.url.replace("http", "ws"),
        timing=FAST,
        **options,
    )


async def until(condition: Any, timeout: float = 20.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.02)


def by_account(messages: list[Any]) -> dict[str, list[tuple[str, Any]]]:
    """Each account's messages in the log's order: (event type, payload)."""
    out: dict[str, list[tuple[str, Any]]] = defaultdict(list)
    for msg in messages:
        out[msg.headers["Binance-Account"]].append((msg.headers["Binance-Event"], json.loads(msg.data)))
    return out


async def push_and_wait(sim: Simulator, nats_url: str, count: int, start: int, total: int) -> None:
    """One event to each of `count` accounts (event times start + n), then wait until the log holds
    `total` messages."""
    for n in range(count):
        sim.push("spot", balance(start + n), key(n))
    async with asyncio.timeout(20):
        while len(await read_log(nats_url)) < total:
            await asyncio.sleep(0.05)


def healed(*workers: Worker) -> bool:
    """Every gap these workers published is followed by its Reconciled (none owed)."""
    return all(w.status().healing == 0 for w in workers)


def state_of(payload: dict[str, Any]) -> AccountState:
    """A `_reconciled` message's state, read back into the mirror's types."""

    def number(value: str | None) -> Decimal | None:
        return None if value is None else Decimal(value)

    balances = {
        b["asset"]: Balance(b["asset"], **{k: number(v) for k, v in b.items() if k != "asset"})
        for b in payload["state"]["balances"]
    }
    orders = {}
    for o in payload["state"]["open_orders"]:
        amounts = {k: Decimal(o[k]) for k in ("price", "quantity", "executed_quantity")}
        order = Order(**{**o, **amounts})
        orders[order.key] = order
    return AccountState(balances=balances, open_orders=orders)


def recovered(payload: dict[str, Any]) -> set[tuple[str, int]]:
    return {(t["symbol"], t["trade_id"]) for t in payload["recovered_trades"]}


def now_ms() -> int:
    return int(time.time() * 1000)


async def until_logged(nats_url: str, events: dict[str, int]) -> None:
    """Until the log holds each account's balanceUpdate of event time `events[account]`."""
    async with asyncio.timeout(20):
        while True:
            log = by_account(await read_log(nats_url))
            if all(any(p.get("E") == e for _, p in log.get(a, [])) for a, e in events.items()):
                return
            await asyncio.sleep(0.05)


@pytest.mark.parametrize(("options", "compression"), [({}, None), ({"compression": "deflate"}, "deflate")])
async def test_a_worker_asks_binance_for_frames_without_deflate_unless_told(
    live: Simulator, nats_server: NatsServer, options: dict[str, Any], compression: str | None
) -> None:
    one = worker(live, nats_server, accounts(live, 1), "w1", **options)
    assert one._fleet._driver.compression == compression


async def test_an_account_taken_after_a_failover_counts_as_healing_from_the_take_before_its_gap_goes_out(
    live: Simulator, nats_server: NatsServer
) -> None:
    members = accounts(live, 1)
    one = worker(live, nats_server, members, "w1")  # not started: nothing takes the gap out
    one._begin(Start(members[0].id, after_failover=True), after=None)
    assert one.status().accounts == 1
    assert one.status().healing == 1  # a status read here must not say that nothing is owed


async def test_one_worker_publishes_every_accounts_events_after_a_gap_for_its_takeover(
    live: Simulator, nats_server: NatsServer
) -> None:
    members = accounts(live, 3)
    async with worker(live, nats_server, members, "w1") as one:
        await until(lambda: one.status().accounts == 3 and live.subscriptions() == 3 and healed(one))
        await push_and_wait(live, nats_server.url, 3, 100, total=9)
        # In the log is not yet acknowledged: a batch's last items are, once it ends (2 ms idle).
        await until(lambda: one.status().published == 9)
        status = one.status()
    log = by_account(await read_log(nats_server.url))
    for n in range(3):
        kinds = [kind for kind, _ in log[f"acct-{n}"]]
        assert kinds == ["_gap", "_reconciled", "balanceUpdate"]
        assert log[f"acct-{n}"][0][1]["reason"] == "failover"
        assert log[f"acct-{n}"][2][1] == balance(100 + n)
    assert (status.accounts, status.connections, status.published, status.lost) == (3, 1, 9, 0)
    assert (status.reconciled, status.healing) == (3, 0)


async def beside(live: Simulator, nats_server: NatsServer, members: list[Account], two: Worker) -> Worker:
    """w1, started beside `two` (entered by hand: the test ends it, it is the one that dies), once
    each holds half of the 4 `members`, every account subscribed and healed."""
    dying = worker(live, nats_server, members, "w1")
    await dying.__aenter__()
    await until(lambda: dying.status().accounts == 2 and two.status().accounts == 2)
    await until(lambda: live.subscriptions() == 4 and healed(dying, two))
    return dying


async def test_a_failovers_gap_is_followed_by_a_reconciled_with_the_ledgers_state_and_the_gaps_trades(
    live: Simulator, nats_server: NatsServer
) -> None:
    members = accounts(live, 4)
    async with worker(live, nats_server, members, "w2") as two:
        dying = await beside(live, nats_server, members, two)
        theirs = sorted(dying._publishing)
        orders, before, stamps = {}, {}, {}
        for account in theirs:  # a trade the log has before the gap, then a later event
            n = int(account.split("-")[1])
            orders[account] = live.place_order(
                "spot", symbol="BTCUSDT", side="BUY", quantity="0.01", price="100", api_key=key(n)
            )
            live.fill_order("spot", orders[account], "0.002", api_key=key(n))
            await asyncio.sleep(0.005)
            stamps[account] = now_ms()
            live.push("spot", balance(stamps[account]), key(n))
            before[account] = set(trades(live.ledger("spot", key(n))))
        await until_logged(nats_server.url, stamps)
        await dying._client.close()  # its leases are no longer renewed: as if its process had died
        await asyncio.sleep(0.005)
        for account in theirs:  # trades nobody publishes: inside the failover's gap
            n = int(account.split("-")[1])
            live.fill_order("spot", orders[account], "0.003", api_key=key(n))
            live.traffic("spot", api_key=key(n), symbol="BTCUSDT")
        await until(lambda: two.status().accounts == 4, timeout=3 * LEASES.ttl + 5)
        await until(lambda: healed(two))
        await dying.__aexit__(None, None, None)
    log = by_account(await read_log(nats_server.url))
    for account in theirs:
        n = int(account.split("-")[1])
        ledger = live.ledger("spot", key(n))
        items = log[account]
        failover = max(i for i, (kind, p) in enumerate(items) if kind == "_gap")
        assert items[failover][1]["reason"] == "failover"
        assert items[failover][1]["last_event_time"] is not None  # dated by the log's last message
        after = [p for kind, p in items[failover + 1 :] if kind == "_reconciled"]
        assert len(after) == 1, account
        assert same_account(state_of(after[0]), account_state("spot", ledger))
        assert recovered(after[0]) == set(trades(ledger)) - before[account]


async def test_an_account_counts_as_healing_until_its_reconciled_is_with_the_sink(
    live: Simulator, nats_server: NatsServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    flowing = asyncio.Event()  # clear: a Reconciled waits for room in the sink, as when it is full
    nowait, publish = JetStreamSink.publish_nowait, JetStreamSink.publish

    def publish_nowait(sink: JetStreamSink, account_id: str, item: object, text: str | None) -> bool:
        return (flowing.is_set() or not isinstance(item, Reconciled)) and nowait(sink, account_id, item, text)

    async def waiting(sink: JetStreamSink, account_id: str, item: object, text: str | None) -> None:
        if isinstance(item, Reconciled):
            await flowing.wait()
        await publish(sink, account_id, item, text)

    monkeypatch.setattr(JetStreamSink, "publish_nowait", publish_nowait)
    monkeypatch.setattr(JetStreamSink, "publish", waiting)
    async with worker(live, nats_server, accounts(live, 1), "w1") as one:
        await until(lambda: one.status().reconciled == 1)  # its takeover's Reconciled is made
        await asyncio.sleep(0.1)
        assert one.status().healing == 1  # and not yet with the sink: a test reading the log waits
        flowing.set()
        await until(lambda: healed(one))
    log = by_account(await read_log(nats_server.url))
    assert [kind for kind, _ in log["acct-0"]] == ["_gap", "_reconciled"]


async def test_a_lost_connections_gap_is_followed_by_a_reconciled_with_the_trades_made_while_it_was_down(
    live: Simulator, nats_server: NatsServer
) -> None:
    members = accounts(live, 2)
    async with worker(live, nats_server, members, "w1") as one:
        await until(lambda: one.status().accounts == 2 and live.subscriptions() == 2 and healed(one))
        orders, stamps = {}, {}
        for n in range(2):
            orders[n] = live.place_order(
                "spot", symbol="BTCUSDT", side="BUY", quantity="0.01", price="100", api_key=key(n)
            )
            live.fill_order("spot", orders[n], "0.002", api_key=key(n))
            await asyncio.sleep(0.005)
            stamps[f"acct-{n}"] = now_ms()
            live.push("spot", balance(stamps[f"acct-{n}"]), key(n))
        await until_logged(nats_server.url, stamps)
        before = {n: set(trades(live.ledger("spot", key(n)))) for n in range(2)}
        live.drop_streams("spot")
        for n in range(2):  # sent to no connection: lost, inside the gap
            live.fill_order("spot", orders[n], "0.003", api_key=key(n))
        await until(lambda: one.status().gaps == 4 and healed(one))
        status = one.status()
    log = by_account(await read_log(nats_server.url))
    for n in range(2):
        ledger = live.ledger("spot", key(n))
        items = log[f"acct-{n}"]
        gap = max(i for i, (kind, _) in enumerate(items) if kind == "_gap")
        assert items[gap][1]["reason"] == "disconnected"
        after = [p for kind, p in items[gap + 1 :] if kind == "_reconciled"]
        assert len(after) == 1
        assert same_account(state_of(after[0]), account_state("spot", ledger))
        assert recovered(after[0]) == set(trades(ledger)) - before[n] != set()
    assert (status.reconciled, status.healing) == (4, 0)


async def test_two_workers_share_the_accounts_and_each_event_is_in_the_log_once(
    live: Simulator, nats_server: NatsServer
) -> None:
    members = accounts(live, 10)
    async with (
        worker(live, nats_server, members, "w1") as one,
        worker(live, nats_server, members, "w2") as two,
    ):
        await until(
            lambda: one.status().accounts + two.status().accounts == 10 and live.subscriptions() >= 10
        )
        await until(lambda: {one.status().accounts, two.status().accounts} == {5})
        await until(lambda: live.subscriptions() == 10)
        total = len(await read_log(nats_server.url))
        await push_and_wait(live, nats_server.url, 10, 200, total=total + 10)
    events = Counter(
        (account, payload["E"])
        for account, items in by_account(await read_log(nats_server.url)).items()
        for kind, payload in items
        if kind == "balanceUpdate"
    )
    assert events == Counter({(f"acct-{n}", 200 + n): 1 for n in range(10)})


class Flow:
    """Events to accounts acct-0 .. acct-(n-1) in rounds `every` seconds apart, until `stop`: round r
    sends account n the balanceUpdate of event time 1000 * r + n. `sent`: the rounds sent."""

    def __init__(self, live: Simulator, accounts: int, every: float) -> None:
        self.live, self.accounts, self.every = live, accounts, every
        self.sent = 0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            self.sent += 1
            for n in range(self.accounts):
                self.live.push("spot", balance(1000 * self.sent + n), key(n))
            await asyncio.sleep(self.every)

    async def stop(self) -> dict[str, int]:
        """Stop after the round under way; each account's last event time."""
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        return {f"acct-{n}": 1000 * self.sent + n for n in range(self.accounts)}


async def test_a_leaving_worker_hands_its_accounts_over_without_a_gap_or_a_lost_event(
    live: Simulator, nats_server: NatsServer
) -> None:
    """Events flow to every account all along: the handovers (w2 joining, then w1 leaving) lose none
    and double none, and add no gap after each account's first owner's takeover gap."""
    members = accounts(live, 6)
    changes: list[Start | Stop] = []
    flow = Flow(live, 6, every=0.02)

    async with worker(live, nats_server, members, "w1") as one:
        await until(lambda: one.status().accounts == 6 and live.subscriptions() == 6)
        flow.start()
        async with worker(live, nats_server, members, "w2", on_change=changes.append) as two:
            await until(lambda: two.status().accounts == 3)
            assert all(isinstance(c, Start) and not c.after_failover for c in changes)
            await one.leave(within=10)
            assert two.status().accounts == 6
            await asyncio.sleep(0.3)  # events still flowing to w2 alone
            last = await flow.stop()

            def arrived(log: dict[str, list[tuple[str, Any]]]) -> bool:
                return all(any(p.get("E") == last[a] for _, p in log.get(a, [])) for a in last)

            async with asyncio.timeout(20):
                while not arrived(by_account(await read_log(nats_server.url))):
                    await asyncio.sleep(0.05)
    log = by_account(await read_log(nats_server.url))
    for n in range(6):
        items = log[f"acct-{n}"]
        assert [kind for kind, _ in items].count("_gap") == 1, n  # the first owner's takeover, no other
        times = [payload["E"] for kind, payload in items if kind == "balanceUpdate"]
        assert times == [1000 * i + n for i in range(1, flow.sent + 1)], n


def stall_publishing(monkeypatch: pytest.MonkeyPatch, worker_id: str) -> asyncio.Event:
    """While the returned event is clear, the sink of worker `worker_id` takes no item: its pump
    waits, and what the worker receives stays in its fleet, as on a machine short of CPU. Set (as
    it starts), it publishes. Patched before the worker starts: its pump reads the sink's methods
    once."""
    flowing = asyncio.Event()
    flowing.set()
    nowait, publish = JetStreamSink.publish_nowait, JetStreamSink.publish

    def publish_nowait(sink: JetStreamSink, account_id: str, item: object, text: str | None) -> bool:
        if sink._addresses.worker == worker_id and not flowing.is_set():
            return False
        return nowait(sink, account_id, item, text)

    async def stalled(sink: JetStreamSink, account_id: str, item: object, text: str | None) -> None:
        if sink._addresses.worker == worker_id:
            await flowing.wait()
        await publish(sink, account_id, item, text)

    monkeypatch.setattr(JetStreamSink, "publish_nowait", publish_nowait)
    monkeypatch.setattr(JetStreamSink, "publish", stalled)
    return flowing


async def handover_beside_a_flow(
    live: Simulator,
    nats_server: NatsServer,
    one: Worker,
    publishing: asyncio.Event,
    *,
    stall: float,
    handed: bool,
) -> tuple[dict[str, list[tuple[str, str, Any]]], int]:
    """`one` publishes 4 accounts while events flow to each (20 a second); its publishing stalls for
    `stall` seconds (`publishing` cleared: `stall_publishing`) from when w2 joins and is offered
    half of them; then, if `handed`, until the handovers are done, else 3 s more. Returns each
    account's log, (event type, worker, payload) in order, and the rounds sent."""
    members = accounts(live, 4)
    flow = Flow(live, 4, every=0.05)
    await until(lambda: one.status().accounts == 4 and live.subscriptions() == 4 and healed(one))
    flow.start()
    await asyncio.sleep(0.3)
    if stall:
        publishing.clear()
    async with worker(live, nats_server, members, "w2") as two:
        await until(lambda: two.status().accounts == 2)  # started: subscribed, or subscribing
        await asyncio.sleep(stall)
        publishing.set()
        if handed:
            leases = two._leases
            assert leases is not None
            await until(lambda: one.status().accounts == 2 and len(leases.core.held) == 2)
        else:
            await asyncio.sleep(3.0)  # offers lapse (a second each) and are made again
        await asyncio.sleep(0.5)
        last = await flow.stop()
        await until_logged(nats_server.url, last)
        await until(lambda: healed(one, two))
    out: dict[str, list[tuple[str, str, Any]]] = defaultdict(list)
    for msg in await read_log(nats_server.url):
        account, kind = msg.headers["Binance-Account"], msg.headers["Binance-Event"]
        out[account].append((kind, msg.headers["Binance-Worker"], json.loads(msg.data)))
    return out, flow.sent


async def test_a_handover_from_an_old_owner_seconds_behind_loses_nothing_and_keeps_the_order(
    live: Simulator, nats_server: NatsServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The old owner lags 3 s behind what it received (longer than the offer waits, longer than any
    fixed drain would): the new owner takes the account only once the old owner has published what
    it received before, then publishes in order after it; no event is missing, none doubled, no gap."""
    publishing = stall_publishing(monkeypatch, "w1")
    async with worker(live, nats_server, accounts(live, 4), "w1") as one:
        log, sent = await handover_beside_a_flow(live, nats_server, one, publishing, stall=3.0, handed=True)
    moved = [a for a, items in log.items() if any(w == "w2" for _, w, _ in items)]
    assert len(moved) == 2
    for account, items in log.items():
        n = int(account.split("-")[1])
        summary = [(kind, w, p.get("E")) for kind, w, p in items]
        times = [p["E"] for kind, _, p in items if kind == "balanceUpdate"]
        assert times == [1000 * i + n for i in range(1, sent + 1)], (account, summary)
        assert [kind for kind, _, _ in items].count("_gap") == 1, account  # the first owner's takeover
        if account in moved:  # w1's, then w2's (both publish for a moment: the first copy is stored)
            assert items[0][1] == "w1", (account, summary)
            assert items[-1][1] == "w2", (account, summary)


async def test_a_new_owner_takes_no_account_whose_old_owner_never_marks_it_and_publishes_none_of_it(
    live: Simulator, nats_server: NatsServer
) -> None:
    """An old owner that never answers (dead to the ask, or an earlier version): the offers lapse,
    the new owner never takes the lease nor publishes the account, and the log stays whole."""
    deaf = worker(live, nats_server, accounts(live, 4), "w1")

    async def ignore(msg: Any) -> None:
        pass

    deaf._on_handover = ignore  # type: ignore[method-assign]
    async with deaf as one:
        log, sent = await handover_beside_a_flow(
            live, nats_server, one, asyncio.Event(), stall=0.0, handed=False
        )
        assert one.status().accounts == 4
    for account, items in log.items():
        n = int(account.split("-")[1])
        assert {w for _, w, _ in items} == {"w1"}, account
        times = [p["E"] for kind, _, p in items if kind == "balanceUpdate"]
        assert times == [1000 * i + n for i in range(1, sent + 1)], account


async def test_a_new_owner_holds_at_most_handover_held_items_of_an_account_before_giving_it_up(
    live: Simulator, nats_server: NatsServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An old owner that never answers while events flow: the new owner's held items of the account
    stop at the bound (there 5): it drops them, counted fenced, and publishes none of them."""
    monkeypatch.setattr(worker_module, "HANDOVER_HELD", 5)
    members = accounts(live, 2)
    deaf = worker(live, nats_server, members, "w1")

    async def ignore(msg: Any) -> None:
        pass

    deaf._on_handover = ignore  # type: ignore[method-assign]
    flow = Flow(live, 2, every=0.02)
    async with deaf as one:
        await until(lambda: one.status().accounts == 2 and live.subscriptions() == 2 and healed(one))
        flow.start()
        async with worker(live, nats_server, members, "w2") as two:
            await until(lambda: two.status().fenced > 5)  # a full hold given up
            assert all(len(waiting) <= 5 for waiting in two._held.values())
        await flow.stop()
    log = await read_log(nats_server.url)
    assert {m.headers["Binance-Worker"] for m in log} == {"w1"}  # w2 published nothing it held


async def test_a_gap_its_old_owner_had_not_healed_yet_is_healed_by_the_account_s_new_owner(
    live: Simulator, nats_server: NatsServer
) -> None:
    """w1 takes two accounts (a failover gap each) and heals none (no heal may start there); w2 joins
    and is handed one of them: w2 publishes that account's Reconciled, after w1's gap."""
    members = accounts(live, 2)
    stuck = worker(live, nats_server, members, "w1")
    assert stuck._heals is not None
    stuck._heals.concurrency = 0
    async with stuck as one:
        await until(lambda: one.status().accounts == 2 and live.subscriptions() == 2)
        assert one.status().healing == 2
        async with worker(live, nats_server, members, "w2") as two:
            await until(lambda: one.status().accounts == 1 and two.status().accounts == 1)
            await until(lambda: healed(two) and one.status().healing == 1)
            moved = next(iter(two._publishing))
    log = by_account(await read_log(nats_server.url))
    kinds = [kind for kind, _ in log[moved]]
    assert kinds == ["_gap", "_reconciled"], kinds
    assert log[moved][1][1]["gap"]["reason"] == "failover"
    kept = next(a for a in log if a != moved)
    assert [kind for kind, _ in log[kept]] == ["_gap"]


async def test_an_account_taken_again_while_its_fleet_still_hands_out_its_last_items_is_subscribed_again(
    live: Simulator, nats_server: NatsServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fenced, then taken again before the fleet has handed out what it had of the account (the
    fleet refuses an account it still holds): it joins the fleet once those are out (fenced, not
    published after the new start's gap), and its later events are published."""
    members = accounts(live, 1)
    account = members[0].id
    publishing = stall_publishing(monkeypatch, "w1")
    async with worker(live, nats_server, members, "w1") as one:
        await until(lambda: one.status().accounts == 1 and live.subscriptions() == 1 and healed(one))
        publishing.clear()
        for n in range(3):  # one is taken and waits at the gate, two stay in the fleet
            live.push("spot", balance(100 + n), key(0))
        core = one._fleet._driver.core
        await until(lambda: account in core.accounts() and len(core.core_of(account)) >= 1)
        one._fence(account)
        one._begin(Start(account, after_failover=True), after=None)
        publishing.set()
        await until(lambda: live.subscriptions() == 1 and healed(one))
        stamp = now_ms()
        live.push("spot", balance(stamp), key(0))
        await until_logged(nats_server.url, {account: stamp})
    kinds = [
        (kind, p.get("E"), p.get("reason"))
        for kind, p in by_account(await read_log(nats_server.url))[account]
    ]
    after = kinds[kinds.index(("_gap", None, "failover"), 2) :]
    assert [e for kind, e, _ in after if kind == "balanceUpdate"] == [stamp], kinds


async def test_accounts_handed_over_while_their_old_owner_still_claims_them_are_published_by_the_new_one(
    live: Simulator, nats_server: NatsServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """w1's claims in the log take 3 s (after a failover they take their turn); w2 joins meanwhile
    and is offered half of w1's accounts before w1 has claimed them. w2 publishes them once w1 has
    marked them, on the condition of w1's claim (an earlier one would make the log refuse w2's
    items: the account would then be published by nobody, its lease held)."""
    claim = JetStreamSink.claim

    async def slow(sink: JetStreamSink, account_id: str, revision: int) -> bool:
        if sink._addresses.worker == "w1":
            await asyncio.sleep(3.0)
        return await claim(sink, account_id, revision)

    monkeypatch.setattr(JetStreamSink, "claim", slow)
    members = accounts(live, 4)
    async with worker(live, nats_server, members, "w1") as one:
        await until(lambda: len(one._leases.core.held if one._leases else ()) == 4)
        async with worker(live, nats_server, members, "w2") as two:
            await until(lambda: one.status().accounts == 2 and two.status().accounts == 2, timeout=30)
            await until(lambda: live.subscriptions() == 4 and healed(one, two))
            stamps = {f"acct-{n}": now_ms() + n for n in range(4)}
            for n in range(4):
                live.push("spot", balance(stamps[f"acct-{n}"]), key(n))
            await until_logged(nats_server.url, stamps)
            assert two._sink is not None
            assert two._sink.lost == 0


async def test_a_worker_that_dies_loses_its_accounts_to_another_which_starts_each_with_a_gap(
    live: Simulator, nats_server: NatsServer
) -> None:
    members = accounts(live, 4)
    async with worker(live, nats_server, members, "w2") as two:
        dying = await beside(live, nats_server, members, two)
        theirs = set(dying._publishing)
        await dying._client.close()  # its leases are no longer renewed: as if its process had died
        await until(lambda: two.status().accounts == 4, timeout=3 * LEASES.ttl + 5)
        await dying.__aexit__(None, None, None)
        await until(lambda: live.subscriptions() == 4 and healed(two))
        total = len(await read_log(nats_server.url))
        await push_and_wait(live, nats_server.url, 4, 400, total=total + 4)
    log = by_account(await read_log(nats_server.url))
    for account in theirs:
        kinds = [kind for kind, _ in log[account]]
        assert kinds == ["_gap", "_reconciled", "_gap", "_reconciled", "balanceUpdate"], account
        assert log[account][2][1]["reason"] == "failover"


async def partition(
    live: Simulator, nats_server: NatsServer
) -> tuple[float, set[str], dict[str, list[int]], int]:
    """w1 reaches NATS through a proxy paused for longer than the lease TTL while events flow to
    every account; w2 reaches it directly. Returns how long w1 published after the pause began, the
    accounts it held, the events sent to each account, and how many of w1's items the log refused
    as another's (sent before the pause's end, delivered after w2 claimed the accounts)."""
    members = accounts(live, 4)
    proxy = await TcpProxy("127.0.0.1", nats_server.port).start()
    sent: dict[str, list[int]] = defaultdict(list)
    number = 0
    flowing = True

    async def flow() -> None:
        nonlocal number
        while flowing:
            for n in range(4):
                number += 1
                live.push("spot", balance(number), key(n))
                sent[f"acct-{n}"].append(number)
            await asyncio.sleep(0.02)

    try:
        async with worker(live, nats_server, members, "w2") as two:
            cut = worker(live, nats_server, members, "w1", nats=proxy.url)
            async with cut:
                await until(lambda: cut.status().accounts == 2 and two.status().accounts == 2)
                await until(lambda: live.subscriptions() == 4)
                pusher = asyncio.create_task(flow())
                await asyncio.sleep(0.3)
                theirs = set(cut._publishing)
                proxy.pause()
                paused = asyncio.get_running_loop().time()
                await until(lambda: cut.status().accounts == 0, timeout=LEASES.ttl + 2)
                stopped_after = asyncio.get_running_loop().time() - paused
                await until(lambda: two.status().accounts == 4, timeout=3 * LEASES.ttl + 5)
                await asyncio.sleep(0.3)
                proxy.resume()
                await asyncio.sleep(LEASES.ttl)  # w1 back: it may take a share again, by handover only
                flowing = False
                await pusher
                await asyncio.sleep(1.0)
                refused = cut._sink.fenced if cut._sink is not None else 0
    finally:
        await proxy.close()
    return stopped_after, theirs, sent, refused


async def test_a_partitioned_worker_stops_publishing_before_its_leases_expire_and_another_takes_over(
    live: Simulator, nats_server: NatsServer
) -> None:
    stopped_after, theirs, _, _ = await partition(live, nats_server)
    assert stopped_after < LEASES.ttl
    log = by_account(await read_log(nats_server.url))
    for account in theirs:
        assert ("_gap", "failover") in [(k, p.get("reason")) for k, p in log[account][1:]], account


async def test_after_a_partition_heals_every_event_is_in_the_log_once_and_in_order_or_inside_a_gap(
    live: Simulator, nats_server: NatsServer
) -> None:
    _, _, sent, refused = await partition(live, nats_server)
    log = by_account(await read_log(nats_server.url))
    for account, numbers in sent.items():
        check_account_log(account, numbers, log[account])
    assert refused > 0  # what the partition held back came late and was refused: the fence was tested


def test_a_workers_process_collects_its_young_objects_every_50000_not_700() -> None:
    before = gc.get_threshold()
    try:
        tune_collector()
        assert gc.get_threshold() == (50_000, 20, 20)
    finally:
        gc.set_threshold(*before)
