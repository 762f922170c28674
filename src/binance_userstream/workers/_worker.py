"""`Worker`: one process's share of a deployment's accounts, their events published to JetStream.

A worker ties three parts together, each tested on its own: `Leases` (which accounts it holds), an
`AsyncFleet` of exactly those accounts (their events, each with its JSON as Binance sent it), and a
`JetStreamSink` fed by `pump` (every item acknowledged by JetStream, or a gap for its account).

- A lease's `Start` adds the account to the fleet. Taken after a failover (its last owner stopped
  without handing it over), the account's first item in the log is a gap (`reason="failover"`):
  its events since the last owner's last one may be missing.
- A planned handover is make-before-break and ordered (`_handover`): once the account's stream is
  live here, this worker holds its items and asks the old owner to mark the end of what it had
  received; once the old owner has published that and said so, this worker publishes what it held
  (the events both publish have the same message ids: JetStream keeps one of each) and takes the
  lease (`Leases.started`). No answer: the lease is not taken (the offer lapses).
- A `Stop` fences the account at once: none of its items is published from then on, even those the
  fleet had buffered; then the account leaves the fleet. After a handover, the new owner has every
  one of them (it received them too, or this worker published them before its mark).

Every gap the worker publishes for an account (a failover's, the fleet's for a lost connection or
an overflow, the pump's for the log's own losses) is followed, on that account's subject, by a
`Reconciled` once a fresh REST snapshot has been taken (`_heals` says which accounts owe one, and
when; a few at once, each retried): its `state` is the account's balances, positions and open orders
then, its `recovered_trades` the trades the log lacks since the gap. A failover's gap is dated with
the event time of the account's last message in the log, so that the trades the old owner did not
publish are recovered. Nothing is healed without a gap: a snapshot costs REST weight.

`status()` says how the worker is doing (accounts, connections, events acknowledged per second,
publish latency, gaps, losses, items fenced, lease changes, Reconciled published, heals owed);
`on_change` hears each lease change.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import re
import socket
import statistics
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable
from types import TracebackType
from typing import Any, Self

import tenacity
from attrs import frozen

from binance_userstream._policy import RetryPolicy
from binance_userstream.account._async import run_plan
from binance_userstream.account._families import family_for
from binance_userstream.account._family import Family, Snapshot
from binance_userstream.account._mirror import Recovery, snapshot_plan, trades_plan
from binance_userstream.account._state import Trade
from binance_userstream.errors import UserStreamError
from binance_userstream.fleet import Account, AsyncFleet
from binance_userstream.fleet._core import FleetItem
from binance_userstream.sink import JetStreamSink, pump
from binance_userstream.sink._jetstream import DEFAULT_STREAM, _import_nats
from binance_userstream.sink._subjects import DEFAULT_PREFIX, EVENT_TIME_HEADER
from binance_userstream.stream._core import StreamEvent, StreamEventKind
from binance_userstream.stream._decode import millis
from binance_userstream.stream._gap import StreamGap
from binance_userstream.stream._raw import RawEvent
from binance_userstream.workers._handover import Ask, Marked, Marks, decode, subject
from binance_userstream.workers._heals import HEAL_CONCURRENCY, Begin, Heals, merged
from binance_userstream.workers._kv import BUCKET, Leases
from binance_userstream.workers._leases import Change, LeaseCore, LeaseTiming, Start, Stop

log = logging.getLogger("binance_userstream.workers")

#: What the first connect to NATS tries before it fails: attempts, each within this many seconds.
CONNECT_ATTEMPTS, CONNECT_TIMEOUT = 3, 2.0
#: The publish latencies `status()` summarizes: the last this many.
LATENCIES = 10_000
#: The most items of an account handed over to this worker it holds while it waits for the old
#: owner's mark: past it, the handover is given up here (the items are dropped, the lease not
#: taken), as the worker's memory must stay bounded whatever the old owner does.
HANDOVER_HELD = 10_000
#: Seconds between a taker's asks for the old owner's mark, while it waits for one: an old owner
#: still claiming the account (after a failover, claims take their turn) does not answer yet.
ASK_AGAIN = 1.0
#: What a worker's fleet asks Binance for: frames as they are, not deflated. Inflating costs a
#: worker about 1.3 µs of CPU an event, a sixth of what its sink costs (docs/guides/performance.md),
#: to save download on a stream of an account's own orders and balances: `compression="deflate"`
#: (`fleet serve --compression deflate`) when the link, not the CPU, is what is short.
COMPRESSION: str | None = None
#: Accounts taken at once: each dated (a failover's: a request for its last message in the log)
#: and claimed (two more); the longest wait between retries of a claim that failed (seconds).
CLAIMS_AT_ONCE, CLAIM_RETRY_CAP = 64, 5.0
#: Seconds a failover's dating may take before its gap goes out undated.
DATING_TIMEOUT = 2.0


def _typed(item: object) -> object:
    """An item as the account rules read it: a RawEvent's model (the worker reads events without
    models, and types only those of the accounts owing a heal)."""
    return item.model() if isinstance(item, RawEvent) else item


def default_worker_id() -> str:
    """This host's name and this process's id, as one token of a bucket key (`host-1234`)."""
    host = re.sub(r"[^A-Za-z0-9_-]", "-", socket.gethostname())[:40] or "worker"
    return f"{host}-{os.getpid()}"


@frozen
class WorkerStatus:
    """How a worker is doing: the accounts it publishes, the fleet's shared `connections`, items
    `published` (acknowledged by JetStream) in all and per second since the last status, the
    publish-to-acknowledgement latency (median and 99th percentile of the recent ones, ms), `gaps`
    it published (a failover's, a lost connection's, the log's own losses), items `lost` by the log
    (each inside a gap), items `fenced` (dropped because the account's lease had moved on),
    `lease_changes` (starts and stops), `reconciled`: the Reconciled it published after gaps, and
    `healing`: the accounts owing one now (waiting for or taking their snapshot)."""

    worker: str
    accounts: int
    connections: int
    published: int
    per_second: float
    latency_p50_ms: float | None
    latency_p99_ms: float | None
    gaps: int
    lost: int
    fenced: int
    lease_changes: int
    reconciled: int = 0
    healing: int = 0


class Worker:
    """One worker: `async with Worker(accounts, market="spot", nats="nats://host:4222") as worker:
    await worker.wait()` (or `await worker.leave(within=30)` on SIGTERM).

    Every worker of a deployment is given the same accounts (the same accounts file) and the same
    bucket; each publishes a fair share. `worker_id` names it in the bucket (default: host and pid);
    `stream` and `prefix` are the sink's; `lease_timing` the leases' (TTL 10 s by default);
    `connect_options` go to nats-py's `connect` (credentials, TLS); `heal_concurrency` bounds the
    snapshots taken at once after gaps (0: publish no Reconciled), `heal_symbols` are symbols whose
    trades every heal recovers (besides those of the snapshot's open orders and positions and of the
    orders published since the gap); the other options go to the fleet (`base_url`, `stream_url`,
    `limits`, `timing`, `retry`, `compression`: `COMPRESSION`, no deflate, unless told...).
    """

    def __init__(
        self,
        accounts: Iterable[Account],
        *,
        market: str = "spot",
        nats: str | list[str] = "nats://127.0.0.1:4222",
        worker_id: str | None = None,
        stream: str = DEFAULT_STREAM,
        prefix: str = DEFAULT_PREFIX,
        bucket: str = BUCKET,
        lease_timing: LeaseTiming | None = None,
        on_change: Callable[[Change], object] | None = None,
        connect_options: dict[str, Any] | None = None,
        clock: Callable[[], float] = time.monotonic,
        heal_concurrency: int = HEAL_CONCURRENCY,
        heal_symbols: Iterable[str] = (),
        **fleet_options: Any,
    ) -> None:
        self._accounts = {account.id: account for account in accounts}
        self.worker_id = worker_id or default_worker_id()
        self.market = market
        self._servers = nats
        self._connect_options = dict(connect_options or {})
        self._clock = clock
        self._on_change = on_change
        self._stream, self._prefix = stream, prefix
        self._bucket, self._lease_timing = bucket, lease_timing
        # Checked now, before anything is sent: the names the sink and the leases use, the fleet's options.
        JetStreamSink(market=market, stream=stream, prefix=prefix, worker=self.worker_id)
        LeaseCore(self.worker_id, self._accounts, lease_timing)
        fleet_options.setdefault("compression", COMPRESSION)
        self._fleet = AsyncFleet(
            [], market=market, models=False, on_event=self._on_fleet_event, **fleet_options
        )
        self._client: Any = None
        self._sink: JetStreamSink | None = None
        self._leases: Leases | None = None
        self._tasks: list[asyncio.Task[Any]] = []
        self._publishing: set[str] = set()  # leased and not fenced: their items are published
        self._in_fleet: set[str] = set()
        self._starting: set[str] = set()  # started on a handover, not yet live here
        # Handed over to this worker, waiting for the old owner's mark: their items held, the nonce
        # of the ask (once live here). Asked by takers of accounts published here: the marks owed.
        self._held: dict[str, deque[tuple[str, FleetItem, str | None]]] = {}
        self._asked: dict[str, int] = {}
        self._nonces = itertools.count(1)
        self._marks: Marks[tuple[str, Ask]] = Marks()
        self._asking: set[asyncio.Task[None]] = set()
        self._readd: set[str] = set()  # taken again while the fleet still hands out its last items
        # Gaps whose heal this worker handed to an account's taker in its mark, and when: owed here
        # again if the account is still published here a lease TTL later (the handover failed).
        self._handed: dict[str, tuple[StreamGap, float]] = {}
        self._claiming: dict[str, asyncio.Task[None]] = {}  # started, claiming the account in the log
        self._claim_slots = asyncio.Semaphore(CLAIMS_AT_ONCE)
        # Ahead of the fleet's items: failover gaps, and the items held until a handover's mark.
        self._injected: deque[tuple[str, FleetItem, str | None]] = deque()
        self._wake = asyncio.Event()
        self._leases_ended = asyncio.Event()
        self._done = asyncio.Event()
        self.gaps = self.fenced = self.lease_changes = 0
        self._last_status = (clock(), 0)
        self._heals = self._heal_rules(heal_concurrency, heal_symbols, fleet_options.get("retry"))
        self._healed: deque[tuple[str, int, Snapshot, Recovery, list[Trade]]] = deque()
        self._reconciling: str | None = None
        self._heal_wake = asyncio.Event()

    def __repr__(self) -> str:
        return f"Worker({self.worker_id!r}, market={self.market!r}, accounts={len(self._publishing)})"

    # -- life ----------------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        nats = _import_nats()

        async def on_error(error: Exception) -> None:  # nats-py prints a traceback for each otherwise
            log.warning("worker %s: NATS: %s", self.worker_id, error)

        options = {
            "name": f"binance-userstream worker {self.worker_id}",
            "connect_timeout": CONNECT_TIMEOUT,
            "max_reconnect_attempts": CONNECT_ATTEMPTS,  # the first connect's too: fail in seconds
            "reconnect_time_wait": 1.0,
            "error_cb": on_error,
            **self._connect_options,
        }
        self._client = await nats.connect(self._servers, **options)
        self._client.options["max_reconnect_attempts"] = -1  # connected once: outlast any outage
        try:
            self._sink = JetStreamSink(
                self._client,
                market=self.market,
                stream=self._stream,
                prefix=self._prefix,
                record_latency=True,
                worker=self.worker_id,
                on_fenced=self._claimed_by_another,
            )
            await self._sink.start()
            await self._client.subscribe(subject(self._bucket, self.worker_id), cb=self._on_handover)
            await self._fleet.__aenter__()
            self._leases = Leases(
                self._client,
                self.worker_id,
                self._accounts,
                timing=self._lease_timing,
                bucket=self._bucket,
                confirm_starts=True,
                clock=self._clock,
            )
            await self._leases.__aenter__()
        except BaseException:
            await self._close()
            raise
        self._tasks = [
            asyncio.create_task(self._follow_leases(self._leases), name="worker: leases"),
            asyncio.create_task(self._publish(self._sink), name="worker: publish"),
            *self._heal_tasks(),
        ]
        log.info("worker %s: started with %d accounts in the file", self.worker_id, len(self._accounts))
        return self

    async def wait(self) -> None:
        """Return when the worker has stopped: its leases ended (`leave`, or their rules failed) and
        what it had published is acknowledged or covered by a gap."""
        await self._done.wait()

    async def leave(self, within: float = 30.0) -> None:
        """Hand every account over to the other workers, make-before-break (`Leases.leave`); what is
        not taken within `within` seconds is stopped. Returns when this worker publishes nothing."""
        if self._leases is not None:
            await self._leases.leave(within)
        await self._done.wait()

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self._close()

    async def _close(self) -> None:
        claims = [*self._claiming.values(), *self._asking]
        for task in [*self._tasks, *claims]:
            task.cancel()
        await asyncio.gather(*self._tasks, *claims, return_exceptions=True)
        if self._leases is not None:
            await self._leases.close()
        with contextlib.suppress(Exception):
            await self._fleet.__aexit__(None, None, None)
        if self._sink is not None:
            await self._sink.close()
        if self._client is not None:
            with contextlib.suppress(Exception):
                await self._client.close()
        self._done.set()

    # -- the leases ----------------------------------------------------------------------------

    async def _follow_leases(self, leases: Leases) -> None:
        try:
            async for change in leases:
                self.lease_changes += 1
                if isinstance(change, Start):
                    self._start(change)
                else:
                    self._stop(change)
                if self._on_change is not None:
                    self._on_change(change)
        finally:
            for account_id in list(self._publishing):
                self._fence(account_id)
            self._leases_ended.set()
            self._wake.set()

    def _start(self, change: Start) -> None:
        account_id = change.account_id
        earlier = self._claiming.pop(account_id, None)
        if earlier is not None:
            earlier.cancel()
        task = asyncio.create_task(self._claim(change), name=f"worker: claim {account_id}")
        self._claiming[account_id] = task

    async def _claim(self, change: Start) -> None:
        """Claim `change`'s account in the log (a failover's take: from now on the log refuses the
        items of whoever published it before, however late they arrive), or follow its owner's
        claim (a handover: the old owner still publishes), then publish it. Retried until it
        succeeds or the account stops: until then nothing of the account is published, and the
        failover gap that comes first covers the wait."""
        try:
            async with self._claim_slots:
                # Dated first: once claimed, the account's last message in the log is the claim.
                after = await self._last_event_time(change.account_id) if change.after_failover else None
                claimed = await self._claimed(change)
        except Exception:  # a bug, not NATS (retried): said, never a task's silent end
            log.exception("worker %s: account %s: claiming it failed", self.worker_id, change.account_id)
            claimed = False
        finally:
            if self._claiming.get(change.account_id) is asyncio.current_task():
                del self._claiming[change.account_id]
        if claimed:
            self._begin(change, after)

    async def _claimed(self, change: Start) -> bool:
        """Whether `change`'s account was claimed (or its owner's claim followed), retrying NATS's
        failures; False when a newer owner claimed it."""
        account_id, sink, leases = change.account_id, self._sink, self._leases
        assert sink is not None
        assert leases is not None
        retrying = tenacity.AsyncRetrying(
            wait=tenacity.wait_random_exponential(multiplier=0.1, max=CLAIM_RETRY_CAP),
            retry=tenacity.retry_if_exception_type(Exception),
            before_sleep=lambda state: log.warning(
                "worker %s: account %s: claiming it in the log failed (%s); retrying",
                self.worker_id,
                account_id,
                type(state.outcome.exception()).__name__ if state.outcome else "?",
            ),
        )
        async for attempt in retrying:
            with attempt:
                if not change.after_failover:
                    await sink.follow(account_id)
                    return True
                revision = leases.core.revision(account_id)
                if revision is not None and await sink.claim(account_id, revision):
                    return True
                log.warning(
                    "worker %s: account %s: a newer owner claimed it in the log: not published",
                    self.worker_id,
                    account_id,
                )
                return False
        return False  # pragma: no cover (tenacity retries until it returns)

    def _begin(self, change: Start, after: int | None) -> None:
        account_id = change.account_id
        if change.after_failover:
            now = self._clock()
            self._injected.append((account_id, StreamGap("failover", now, now, last_event_time=after), None))
            self._wake.set()
        else:  # a handover: its items are held until the old owner marks the end of its own
            self._starting.add(account_id)
            self._held[account_id] = deque()
        self._publishing.add(account_id)
        if account_id not in self._in_fleet:
            self._in_fleet.add(account_id)
            if self._fleet.holds(account_id):  # removed a moment ago, its last items on their way out
                self._readd.add(account_id)
                self._wake.set()
            else:
                self._fleet.add(self._accounts[account_id])

    def _stop(self, change: Stop) -> None:
        self._fence(change.account_id)

    def _fence(self, account_id: str) -> None:
        claiming = self._claiming.pop(account_id, None)
        if claiming is not None:
            claiming.cancel()
        self._publishing.discard(account_id)  # fenced from now: not one more item of it is published
        self._starting.discard(account_id)
        self._held.pop(account_id, None)
        self._asked.pop(account_id, None)
        self._marks.forget(account_id)
        self._handed.pop(account_id, None)
        if account_id in self._readd:  # not back in the fleet yet
            self._readd.discard(account_id)
            self._in_fleet.discard(account_id)
        elif account_id in self._in_fleet:
            self._in_fleet.discard(account_id)
            self._fleet.remove(account_id)

    def _claimed_by_another(self, account_id: str) -> None:
        """The log refused the account's items: another worker claimed it, so this one's lease is
        gone too (the lease rules will say so): stop publishing it now."""
        if account_id in self._publishing:
            log.warning("worker %s: account %s: claimed in the log by another", self.worker_id, account_id)
            self._fence(account_id)

    def _on_fleet_event(self, account_id: str | None, happening: object) -> None:
        if (
            account_id in self._starting
            and isinstance(happening, StreamEvent)
            and happening.kind is StreamEventKind.CONNECTED
        ):
            self._live(account_id)

    def _live(self, account_id: str) -> None:
        """`account_id`'s stream is live here: a handover to this worker may complete once the old
        owner has marked the end of what it received (asked now)."""
        self._starting.discard(account_id)
        leases = self._leases
        if leases is None:
            return
        giver = leases.core.owner(account_id)
        if account_id not in self._held or giver is None or giver == self.worker_id:
            return  # the offer is gone (its lease lapsed): the lease rules stop the account here
        nonce = self._asked[account_id] = next(self._nonces)
        ask = Ask(account_id, self.worker_id, nonce)
        task = asyncio.create_task(self._ask(giver, ask), name=f"worker: ask {account_id}")
        self._asking.add(task)
        task.add_done_callback(self._asking.discard)

    async def _ask(self, giver: str, ask: Ask) -> None:
        """Ask `giver` to mark the end of `ask.account`, every `ASK_AGAIN` seconds until it has (its
        answer comes to this worker's subject) or the account is no longer waited for here (the
        offer lapsed: the lease rules stopped it)."""
        reply, to = subject(self._bucket, self.worker_id), subject(self._bucket, giver)
        while self._asked.get(ask.account) == ask.nonce:
            try:
                await self._client.publish(to, ask.encode(), reply=reply)
            except Exception as error:
                log.warning(
                    "worker %s: account %s: asking %s failed: %s", self.worker_id, ask.account, giver, error
                )
            await asyncio.sleep(ASK_AGAIN)

    async def _on_handover(self, msg: Any) -> None:
        """A handover message to this worker: a taker's `Ask`, or an old owner's `Marked`."""
        message = decode(msg.data, at=self._clock())
        if isinstance(message, Ask):
            account_id = message.account
            if account_id in self._publishing and account_id not in self._held and msg.reply:
                # Answered once the items of it buffered now are handed to the sink (`_items`); none
                # to wait for while it waits to join the fleet again (what it has is from before).
                buffered = 0 if account_id in self._readd else self._fleet.buffered(account_id)
                self._marks.ask(account_id, buffered, (msg.reply, message))
                self._wake.set()
        elif (
            isinstance(message, Marked)
            and self._asked.get(message.account) == message.nonce
            and message.account in self._held
        ):
            task = asyncio.create_task(self._marked(message), name=f"worker: marked {message.account}")
            self._asking.add(task)
            task.add_done_callback(self._asking.discard)

    async def _marked(self, marked: Marked) -> None:
        """The old owner marked the account: follow its claim in the log as it is now, then publish.
        Followed again because the old owner may have claimed the account after this worker first
        followed it (a failover's claims take their turn): items sent on the older claim's
        condition would be refused. Not followed (NATS away): the next answer tries again."""
        account_id, sink = marked.account, self._sink
        assert sink is not None
        try:
            await sink.follow(account_id)
        except Exception as error:
            log.warning(
                "worker %s: account %s: following its claim failed: %s", self.worker_id, account_id, error
            )
            return
        if self._asked.get(account_id) == marked.nonce and account_id in self._held:
            self._release(account_id, marked.gap)

    def _release(self, account_id: str, owed: StreamGap | None) -> None:
        """The old owner's copy of `account_id` is in the log: publish what was held of it, heal the
        gap it owed (`owed`), and take the lease (its old owner stops when it sees it move)."""
        held = self._held.pop(account_id, None)
        self._asked.pop(account_id, None)
        if held:
            self._injected.extend(held)
            self._wake.set()
        if owed is not None:
            log.info("worker %s: account %s: heals the gap its old owner owed", self.worker_id, account_id)
            self._owe(account_id, owed)
        if self._leases is not None:
            self._leases.started(account_id)

    async def _answer(self, reply: str, ask: Ask) -> None:
        """Tell `ask.taker` that what this worker had of the account is published (sent after it)."""
        account_id, heals = ask.account, self._heals
        if account_id not in self._publishing or self._client is None or not self._client.is_connected:
            return  # NATS away: what went before may be lost (a gap follows it); no mark over that
        owed = heals.owed.get(account_id) if heals is not None else None
        gap = None if owed is None else owed.gap
        handed = self._handed.get(account_id)
        if handed is not None:  # handed in an earlier mark, to a taker that did not take the account
            gap = handed[0] if gap is None else merged(handed[0], gap)
        if gap is not None and heals is not None:  # the taker heals it: one Reconciled, not two
            heals.drop(account_id)
            self._handed[account_id] = (gap, self._clock())
        marked = Marked(account_id, ask.nonce, gap)
        try:
            await self._client.publish(reply, marked.encode())
        except Exception as error:
            log.warning(
                "worker %s: account %s: answering %s failed: %s", self.worker_id, account_id, ask.taker, error
            )

    # -- publishing ------------------------------------------------------------------------------

    async def _publish(self, sink: JetStreamSink) -> None:
        try:
            result = await pump(self._items(), sink, clock=self._clock, on_gap=self._owe)
        finally:
            self._done.set()
        if result.unreported:
            log.error(
                "worker %s: %d accounts' last items may be missing from the log without a gap "
                "(the log was unreachable at the end)",
                self.worker_id,
                len(result.unreported),
            )

    async def _items(self) -> AsyncIterator[tuple[str, object, str | None]]:
        """The fleet's items of the accounts this worker publishes (the others fenced), with each
        failover's gap ahead of its account's first item, as soon as it is made. Items are taken
        from the fleet one at a time, when ready (`AsyncFleet.take`): no task per event; the worker
        waits on the fleet and its own wake-ups only when the fleet has nothing ready."""
        fleet, held, marks, readd = self._fleet, self._held, self._marks, self._readd
        while not self._leases_ended.is_set():
            while self._injected:
                account_id, injected, text = self._injected.popleft()
                if account_id in self._publishing:
                    self._passing(account_id, injected)
                    yield account_id, injected, text
            while marks.ripe:  # the items taken before are with the sink (a failover's gap too)
                await self._answer(*marks.ripe.popleft())
            if readd:
                for account_id in [a for a in readd if not fleet.holds(a)]:
                    readd.discard(account_id)
                    fleet.add(self._accounts[account_id])
            while self._healed:
                reconciled = self._reconciled(self._healed.popleft())
                if reconciled is not None:
                    self._reconciling = reconciled[0]  # still healing until the sink has it
                    yield reconciled
                    self._reconciling = None
            if self._injected or marks.ripe:  # came while the items above went out: theirs first
                continue
            taken = fleet.take()
            if taken is None:
                if fleet.ended:
                    return
                await self._idle()
                continue
            account_id, item, _ = taken
            if account_id not in self._publishing or (readd and account_id in readd):
                self.fenced += 1  # fenced, or taken again: this is what its fleet had from before
                continue
            if held and account_id in held:  # handed over to this worker: after the old owner's mark
                waiting = held[account_id]
                waiting.append(taken)
                if len(waiting) > HANDOVER_HELD:
                    log.warning(
                        "worker %s: account %s: no mark from its old owner within %d items: not taken",
                        self.worker_id,
                        account_id,
                        HANDOVER_HELD,
                    )
                    self.fenced += len(waiting)
                    self._fence(account_id)
                continue
            if marks.waiting and account_id in marks.waiting:
                marks.took(account_id)
            self._passing(account_id, item)
            yield taken

    def _passing(self, account_id: str, item: object) -> None:
        """An item of `account_id` on its way to the log (the fleet's, or one held for a handover): a
        gap is counted and owes its Reconciled; an event of an account owing one is noted for it
        (typed only then: the accounts owing no heal cost nothing here)."""
        if isinstance(item, StreamGap):
            self.gaps += 1
            self._owe(account_id, item)
        else:
            heals = self._heals
            if heals is not None and heals.owed and account_id in heals.owed:
                heals.saw(account_id, _typed(item))

    async def _idle(self) -> None:
        """Until the fleet may have an item ready, or the worker has one of its own to publish."""
        self._wake.clear()
        ready = asyncio.ensure_future(self._fleet.wait_ready())
        woken = asyncio.ensure_future(self._wake.wait())
        try:
            await asyncio.wait({ready, woken}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            ready.cancel()
            woken.cancel()

    # -- status ----------------------------------------------------------------------------------

    def status(self) -> WorkerStatus:
        """How the worker is doing now; `per_second` counts since the previous call."""
        sink = self._sink
        published = sink.delivered if sink is not None else 0
        now = self._clock()
        then, before = self._last_status
        self._last_status = (now, published)
        per_second = (published - before) / (now - then) if now > then else 0.0
        # The newest LATENCIES only, without copying the sink's whole record (100,000) each time.
        recorded = sink.latencies if sink is not None and sink.latencies is not None else ()
        latencies = list(itertools.islice(reversed(recorded), LATENCIES))
        p50 = p99 = None
        if latencies:
            cuts = (
                statistics.quantiles(latencies, n=100, method="inclusive")
                if len(latencies) > 1
                else latencies * 99
            )
            p50, p99 = round(cuts[49] * 1000, 3), round(cuts[98] * 1000, 3)
        return WorkerStatus(
            worker=self.worker_id,
            accounts=len(self._publishing),
            connections=self._fleet.connections(),
            published=published,
            per_second=round(per_second, 1),
            latency_p50_ms=p50,
            latency_p99_ms=p99,
            gaps=self.gaps,
            lost=sink.lost if sink is not None else 0,
            fenced=self.fenced,
            lease_changes=self.lease_changes,
            reconciled=self._heals.reconciled if self._heals is not None else 0,
            healing=self._healing(),
        )

    def _healing(self) -> int:
        """The accounts owing a Reconciled: the heals', those whose failover gap is made but not yet
        published (it becomes the heals' when it goes out; counted from the take on, so that no
        status between the take and the gap's turn says none is owed), and the one whose Reconciled
        is made but not yet with the sink (it may wait there for room)."""
        if self._heals is None:
            return 0
        owed = set(self._heals.owed)
        owed.update(a for a in self._handed if a in self._publishing)  # until the taker owes it
        owed.update(a for a, gap, _ in self._injected if isinstance(gap, StreamGap) and a in self._publishing)
        if self._reconciling is not None:  # its Reconciled made, not yet handed to the sink
            owed.add(self._reconciling)
        return len(owed)

    # -- healing: a Reconciled after every gap ---------------------------------------------------

    def _heal_rules(
        self, concurrency: int, symbols: Iterable[str], retry: RetryPolicy | None
    ) -> Heals | None:
        """The heal rules, or None when no Reconciled is published (`heal_concurrency=0`, or a
        market the account mirror does not read)."""
        if concurrency == 0:
            return None
        try:
            family_for(self.market)
        except ValueError as error:
            log.info("worker %s: no Reconciled after gaps: %s", self.worker_id, error)
            return None
        families: dict[str | None, Family] = {}

        def family_of(account_id: str) -> Family:
            symbol = self._accounts[account_id].symbol
            family = families.get(symbol)
            if family is None:
                family = families[symbol] = family_for(self.market, symbol)
            return family

        return Heals(family_of, concurrency=concurrency, symbols=symbols, retry=retry or RetryPolicy())

    def _heal_tasks(self) -> list[asyncio.Task[Any]]:
        if self._heals is None:
            return []
        return [asyncio.create_task(self._heal_loop(self._heals), name="worker: heals")]

    def _owe(self, account_id: str, gap: StreamGap) -> None:
        """A gap was published for `account_id`: a Reconciled follows once it is healed."""
        if self._heals is not None and account_id in self._publishing:
            self._heals.gap(account_id, gap)
            self._heal_wake.set()

    async def _last_event_time(self, account_id: str) -> int | None:
        """The event time of `account_id`'s last message in the log (the old owner's last event,
        gap or Reconciled), which dates a failover's gap: the trades after it are the ones its
        Reconciled recovers. None when the log has nothing of the account, when its last message
        is a claim (no time), when no Reconciled is published, or when the lookup fails within
        `DATING_TIMEOUT` (the gap then goes out undated)."""
        if self._heals is None or self._client is None:
            return None
        subject = f"{self._prefix}.{self.market}.{account_id}.>"
        try:
            async with asyncio.timeout(DATING_TIMEOUT):
                last = await self._client.jetstream().get_last_msg(self._stream, subject)
        except Exception as error:  # nothing in the log yet, a timeout, or NATS away: undated
            if type(error).__name__ != "NotFoundError":
                log.warning("account %s: the log's last event time is unknown: %s", account_id, error)
            return None
        return millis((last.headers or {}).get(EVENT_TIME_HEADER))

    def _reconciled(
        self, answers: tuple[str, int, Snapshot, Recovery, list[Trade]]
    ) -> tuple[str, object, None] | None:
        """A heal's answers as the item that follows its gap in the log (None: nothing to publish:
        the account was fenced meanwhile, or another gap came while its calls were out)."""
        heals = self._heals
        assert heals is not None
        account_id = answers[0]
        self._heal_wake.set()  # a heal's slot is free
        if account_id not in self._publishing:
            heals.drop(account_id)
            return None
        reconciled = heals.done(*answers)
        if reconciled is None:
            return None
        log.info(
            "account %s: reconciled after a %s gap: %d recovered trades",
            account_id,
            reconciled.gap.reason,
            len(reconciled.recovered_trades),
        )
        return account_id, reconciled, None

    async def _heal_loop(self, heals: Heals) -> None:
        """Start the heals the rules say (while NATS is reachable: a Reconciled that cannot be
        published would cost its weight for nothing), until the worker stops."""
        running: set[asyncio.Task[None]] = set()
        try:
            while True:
                self._heal_wake.clear()
                for account_id in [a for a in heals.owed if a not in self._publishing]:
                    heals.drop(account_id)  # fenced: owes nothing
                now = self._clock()
                ttl = self._leases.timing.ttl if self._leases is not None else LeaseTiming().ttl
                for account_id, (gap, at) in list(self._handed.items()):
                    if now - at >= ttl:  # still published here: the taker did not take it
                        del self._handed[account_id]
                        self._owe(account_id, gap)
                if self._client is not None and self._client.is_connected:
                    for begin in heals.ready(now):
                        task = asyncio.create_task(
                            self._heal(heals, begin), name=f"worker: heal {begin.account_id}"
                        )
                        running.add(task)
                        task.add_done_callback(running.discard)
                due = heals.wake_at()
                wait = 1.0 if due is None else min(1.0, max(0.0, due - now))
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(wait):
                        await self._heal_wake.wait()
        finally:
            for task in running:
                task.cancel()
            await asyncio.gather(*running, return_exceptions=True)

    async def _heal(self, heals: Heals, begin: Begin) -> None:
        """One heal's REST calls: a snapshot with the account's own client, then the trades its
        recovery asks for; the answers go to `_items`, which publishes the Reconciled in turn."""
        account_id, run = begin.account_id, begin.run
        try:
            uds = await self._fleet.rest_client(account_id)
            family = heals.family_of(account_id)
            snapshot = await run_plan(uds, snapshot_plan(family, uds.symbol, int(time.time() * 1000)))
            recovery = heals.recovery(account_id, run, snapshot)
            if recovery is None:
                return
            trades = await run_plan(uds, trades_plan(family, recovery))
        except (UserStreamError, KeyError) as error:
            if isinstance(error, KeyError):  # the account left the fleet: fenced
                heals.drop(account_id)
            else:
                heals.failed(account_id, run, error, self._clock())
            self._heal_wake.set()
            return
        except Exception as error:  # a bug in a family: logged, the heal given up, the worker goes on
            log.exception("account %s: reconciling failed", account_id)
            heals.failed(account_id, run, error, self._clock())
            self._heal_wake.set()
            return
        self._healed.append((account_id, run, snapshot, recovery, trades))
        self._wake.set()
