"""Worker leases against a real nats-server (JetStream key-value): workers in one process, each on its
own NATS connection, with TTLs of a few seconds so that failover and fencing take seconds."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

import nats
import nats.js.errors
import pytest
from nats.aio.client import Client

from binance_userstream.workers import Leases, LeaseTiming, Start, Stop
from tests._nats import NatsServer
from tests._proxy import TcpProxy

TIMING = LeaseTiming(ttl=2.0)  # renewals every 0.67 s, stop 0.4 s before the TTL, ticks every 0.2 s
ACCOUNTS = [f"acct-{i}" for i in range(10)]

Log = list[tuple[float, str, Start | Stop]]


class Worker:
    """A worker's connection, its leases, and a task writing its changes into the shared log."""

    def __init__(self, nc: Client, leases: Leases, log: Log) -> None:
        self.nc, self.leases, self.log = nc, leases, log
        self.task = asyncio.ensure_future(self._record())

    async def _record(self) -> None:
        async for change in self.leases:
            self.log.append((time.monotonic(), self.leases.worker_id, change))

    @classmethod
    async def start(
        cls,
        url: str,
        worker_id: str,
        log: Log,
        accounts: list[str] = ACCOUNTS,
        timing: LeaseTiming = TIMING,
        confirm_starts: bool = False,
    ) -> Worker:
        nc = await nats.connect(url, allow_reconnect=True, max_reconnect_attempts=-1, reconnect_time_wait=0.1)
        leases = Leases(nc, worker_id, accounts, timing=timing, confirm_starts=confirm_starts)
        await leases.__aenter__()
        worker = cls(nc, leases, log)
        _running.append(worker)
        return worker

    async def kill(self) -> None:
        """The process dies: no more renewals, no goodbye."""
        if self in _running:
            _running.remove(self)
        await self.leases.close()
        await self.nc.close()
        self.task.cancel()

    @property
    def publishing(self) -> frozenset[str]:
        return self.leases.publishing


async def until(condition: Callable[[], bool], timeout: float = 10.0) -> float:
    """Seconds until `condition` holds, polled (the server runs on real time); fails past `timeout`."""
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < timeout, "timed out"
        await asyncio.sleep(0.02)
    return time.monotonic() - started


def fair(*workers: Worker, accounts: list[str] = ACCOUNTS) -> bool:
    counts = [len(worker.publishing) for worker in workers]
    together = set().union(*(worker.publishing for worker in workers))
    return together == set(accounts) and sum(counts) == len(accounts) and max(counts) - min(counts) <= 1


def overlaps_but_handovers(log: Log) -> list[str]:
    """Accounts some worker started while another published them, other than by a planned handover."""
    publishing: dict[str, set[str]] = {}
    wrong = []
    for _, worker, change in log:
        others = publishing.setdefault(change.account_id, set())
        if isinstance(change, Start):
            if others and (change.after_failover or len(others) > 1):
                wrong.append(change.account_id)
            others.add(worker)
        else:
            others.discard(worker)
    return wrong


#: The workers of the scenario running now: killed when it ends, even by a failed assertion.
_running: list[Worker] = []


def run(nats_server: NatsServer, scenario: Callable[[str, Log], Awaitable[None]]) -> Log:
    log: Log = []

    async def bounded() -> None:
        try:
            await asyncio.wait_for(scenario(nats_server.url, log), timeout=60.0)
        finally:
            for worker in list(_running):
                await worker.kill()

    asyncio.run(bounded())
    return log


def test_one_worker_takes_every_account_each_with_a_gap_and_logs_it(
    nats_server: NatsServer, caplog: pytest.LogCaptureFixture
) -> None:
    async def scenario(url: str, log: Log) -> None:
        w1 = await Worker.start(url, "w1", log)
        await until(lambda: w1.publishing == set(ACCOUNTS))
        await w1.kill()

    with caplog.at_level(logging.INFO, logger="binance_userstream.workers"):
        log = run(nats_server, scenario)
    assert sorted(change.account_id for _, _, change in log) == sorted(ACCOUNTS)
    assert all(change == Start(change.account_id, after_failover=True) for _, _, change in log)
    assert "lease: start acct-0 (after failover: True)" in caplog.messages


def test_a_joining_worker_is_handed_a_fair_share_make_before_break(nats_server: NatsServer) -> None:
    async def scenario(url: str, log: Log) -> None:
        w1 = await Worker.start(url, "w1", log)
        await until(lambda: w1.publishing == set(ACCOUNTS))
        w2 = await Worker.start(url, "w2", log)
        await until(lambda: fair(w1, w2))
        await asyncio.sleep(TIMING.tick_every)  # the last Stop reaches the log
        await w1.kill()
        await w2.kill()

    log = run(nats_server, scenario)
    moved = [change.account_id for _, worker, change in log if worker == "w2"]
    assert len(moved) == 5
    for account in moved:
        events = [(worker, change) for _, worker, change in log if change.account_id == account]
        assert events[-2:] == [
            ("w2", Start(account, after_failover=False)),
            ("w1", Stop(account, "lease now held by w2")),
        ]
    assert overlaps_but_handovers(log) == []


def test_the_old_owner_publishes_until_the_new_one_says_it_publishes(nats_server: NatsServer) -> None:
    async def scenario(url: str, log: Log) -> None:
        w1 = await Worker.start(url, "w1", log)
        await until(lambda: w1.publishing == set(ACCOUNTS))
        w2 = await Worker.start(url, "w2", log, confirm_starts=True)
        await until(lambda: len(w2.publishing) == 5)
        await asyncio.sleep(4 * TIMING.tick_every)  # its stream is not live yet: w1 goes on
        assert w1.publishing == set(ACCOUNTS)
        for account in sorted(w2.publishing):
            w2.leases.started(account)
        await until(lambda: fair(w1, w2))
        await w1.kill()
        await w2.kill()

    log = run(nats_server, scenario)
    assert overlaps_but_handovers(log) == []


def test_a_dead_workers_accounts_are_taken_within_the_ttl_each_with_a_gap(nats_server: NatsServer) -> None:
    async def scenario(url: str, log: Log) -> None:
        w1 = await Worker.start(url, "w1", log)
        w2 = await Worker.start(url, "w2", log)
        await until(lambda: fair(w1, w2))
        lost = w1.publishing
        await w1.kill()
        failover = await until(lambda: w2.publishing == set(ACCOUNTS))
        assert failover < TIMING.ttl + 3 * TIMING.tick_every
        assert [c for _, w, c in log if w == "w2" and c.account_id in lost] == [
            Start(c.account_id, after_failover=True) for _, w, c in log if w == "w2" and c.account_id in lost
        ]
        await w2.kill()

    run(nats_server, scenario)


def test_a_leaving_worker_hands_everything_over_without_a_gap(nats_server: NatsServer) -> None:
    async def scenario(url: str, log: Log) -> None:
        w1 = await Worker.start(url, "w1", log)
        w2 = await Worker.start(url, "w2", log)
        await until(lambda: fair(w1, w2))
        handed = w1.publishing
        await asyncio.wait_for(w1.leases.leave(within=5.0), timeout=5.0)
        await asyncio.wait_for(w1.task, timeout=1.0)  # its changes end
        assert w1.publishing == frozenset()
        assert w2.publishing == set(ACCOUNTS)
        assert {c for _, w, c in log if w == "w2" and c.account_id in handed} == {
            Start(a, after_failover=False) for a in handed
        }
        await w1.kill()
        await w2.kill()

    log = run(nats_server, scenario)
    assert overlaps_but_handovers(log) == []


def test_a_partitioned_worker_stops_before_its_leases_can_expire_and_does_not_resume(
    nats_server: NatsServer,
) -> None:
    async def scenario(url: str, log: Log) -> None:
        proxy = await TcpProxy("127.0.0.1", nats_server.port).start()
        w1 = await Worker.start(proxy.url, "w1", log)
        w2 = await Worker.start(url, "w2", log)
        await until(lambda: fair(w1, w2))
        cut = w1.publishing
        proxy.pause()
        stopped = await until(lambda: not w1.publishing)
        assert stopped < TIMING.ttl - TIMING.margin + 2 * TIMING.tick_every
        await until(lambda: cut <= w2.publishing)
        stops = {c.account_id: t for t, w, c in log if w == "w1" and isinstance(c, Stop)}
        starts = {
            c.account_id: t for t, w, c in log if w == "w2" and isinstance(c, Start) and c.account_id in cut
        }
        assert all(stops[account] < starts[account] for account in cut)
        healed = len(log)
        proxy.resume()
        await asyncio.sleep(2 * TIMING.tick_every)
        # It takes nothing back on its own: what it publishes again, w2 hands over (make-before-break).
        assert not any(isinstance(c, Start) and c.after_failover for _, w, c in log[healed:] if w == "w1")
        await until(lambda: fair(w1, w2))  # after the heal, shares even out again by planned handovers
        await w1.kill()
        await w2.kill()
        await proxy.close()

    log = run(nats_server, scenario)
    assert overlaps_but_handovers(log) == []


def test_three_workers_starting_together_share_three_thousand_accounts_with_no_handover(
    nats_server: NatsServer,
) -> None:
    accounts = [f"acct-{i}" for i in range(3000)]
    # 1,000 renewals per worker every 3 1/3 s, each seen by all three: they share this process's core.
    timing = LeaseTiming(ttl=10.0)

    async def scenario(url: str, log: Log) -> None:
        workers = [await Worker.start(url, f"w{i}", log, accounts, timing) for i in range(3)]
        await until(lambda: fair(*workers, accounts=accounts), timeout=20.0)
        assert sorted(len(worker.publishing) for worker in workers) == [1000, 1000, 1000]
        await asyncio.sleep(timing.renew_every)  # a round of renewals: still no one loses a lease
        for worker in workers:
            await worker.kill()

    log = run(nats_server, scenario)
    assert len(log) == 3000  # each account started once: the rendezvous order kept takes apart


def test_the_key_value_semantics_the_leases_rely_on(nats_server: NatsServer) -> None:
    """What the driver's docstring says of nats-py 2.16 and nats-server 2.15, checked."""

    async def scenario(url: str, log: Log) -> None:
        nc = await nats.connect(url)
        kv = await nc.jetstream().create_key_value(bucket="probe", ttl=1.0, history=1)
        again = await nc.jetstream().create_key_value(bucket="probe", ttl=1.0, history=1)
        assert again is not None  # every worker creates the bucket: the same settings are a no-op
        first = await kv.create("k", b"1")
        with pytest.raises(nats.js.errors.KeyWrongLastSequenceError):
            await kv.create("k", b"2")
        second = await kv.update("k", b"2", last=first)
        with pytest.raises(nats.js.errors.KeyWrongLastSequenceError):
            await kv.update("k", b"3", last=first)
        await kv.delete("k", last=second)
        assert await kv.create("k", b"4") > second  # a deleted key is created again
        deadline = time.monotonic() + 5.0
        while True:  # max_age removes the entry with nothing left behind, and create takes it
            try:
                await kv.get("k")
            except nats.js.errors.KeyNotFoundError:
                break
            assert time.monotonic() < deadline, "the entry outlived the bucket's ttl"
            await asyncio.sleep(0.1)
        assert await kv.create("k", b"5") > second
        await nc.close()

    run(nats_server, scenario)
