"""`Heals`: which accounts owe the log a `Reconciled` after a gap, and when each one's snapshot is taken.

No I/O: the worker tells the rules what it published (`gap`, `saw`), what its lease did (`drop`) and
what its REST calls answered (`recovery`, `done`, `failed`); the rules say which heals to start now
(`ready`, at most `concurrency` at once, each retried after its backoff) and make each `Reconciled`
with the account mirror's own rules (`Mirror`: the recovery window, the trades it keeps). So every
rule is tested without sockets (tests/test_worker_heals.py). The rules:

- A gap published for an account makes it owe one Reconciled. Gaps published while its heal waits
  or runs merge into one gap covering them all (the earliest start, the latest end, the earliest
  last event time, the items dropped summed): the Reconciled names the merged gap. A gap that comes
  while the heal's REST calls are out makes their answers too old: they are dropped and the heal
  starts again.
- A fenced account (its lease moved on, or it left the worker) owes nothing: its heal is dropped,
  and answers that come back for it are ignored.
- A failure the account mirror retries (`RETRYABLE`: a 5XX, the network, a 429 or a ban, a clock
  skew, a malformed answer) is retried after `retry_wait` (the server's Retry-After, or the retry
  policy's full-jitter backoff); any other (a refused key, a bad signature) gives the heal up: it is
  logged and counted (`failed_heals`), and the gap stays without its Reconciled. It is not published
  as the account's `_error`: in the log that item means the account's stream ended, which a REST
  refusal does not.
- The trades of the account's events published after the gap are remembered (only for accounts
  that owe a heal: the other accounts' events are not looked at), and so are the symbols of their
  orders: the recovery asks for those symbols' trades too, and the Reconciled's `recovered_trades`
  holds only the REST trades the log does not already have after the gap.
- The Reconciled's `state` is the fresh snapshot's; `changes` is empty: the worker keeps no state of
  its own to compare with (a consumer compares the state with its own); `recovered_trades` are
  REST's trades from the gap's last event time on (`Recovery`; with none known, from the snapshot's
  time: nothing before it is known to be missing) minus those the log has after the gap.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence

from attrs import define, field, frozen

from binance_userstream._policy import RetryPolicy
from binance_userstream.account._async import RETRYABLE, retry_wait
from binance_userstream.account._family import Family, OrderUpdate, Snapshot, TradeSeen
from binance_userstream.account._mirror import Mirror, Recovery
from binance_userstream.account._state import Reconciled, Trade
from binance_userstream.stream._gap import StreamGap

log = logging.getLogger("binance_userstream.workers")

#: What an owed heal remembers of the log after its gap, at most: trades (their REST copies are
#: left out of the Reconciled) and order symbols (their trades are recovered). A heal may wait
#: minutes for REST weight while a busy account trades on; past the bound a trade is not remembered
#: and its REST copy may be recovered too (consumers key trades by symbol and trade id), a symbol
#: not asked for: memory stays bounded whatever the stream carries.
TRADES_KEPT, SYMBOLS_KEPT = 10_000, 1_000

#: Heals whose REST calls are out at once, by default: a spot snapshot costs about 100 of the
#: 6,000 weight a minute Binance gives an IP (the fleet's own subscriptions need the rest).
HEAL_CONCURRENCY = 4


def merged(first: StreamGap, second: StreamGap) -> StreamGap:
    """One gap covering both: the first's reason, the earliest start, the latest end, the earliest
    last event time known (trades are recovered from there), and what both dropped."""
    times = [t for t in (first.last_event_time, second.last_event_time) if t is not None]
    return StreamGap(
        first.reason,
        min(first.started_at, second.started_at),
        max(first.ended_at, second.ended_at),
        last_event_time=min(times) if times else None,
        dropped=first.dropped + second.dropped,
    )


@frozen
class Begin:
    """Start heal number `run` of `account_id`: take a snapshot, then ask `recovery`'s trades."""

    account_id: str
    run: int


@define
class _Owed:
    """One account's heal: its (merged) gap, and what the log carried of it since."""

    gap: StreamGap
    run: int | None = None  # the heal whose REST calls are out, if any
    stale_run: bool = False  # a gap came while they were out: their answers do not cover it
    attempt: int = 0  # failed attempts in a row
    due: float = float("-inf")  # not started before (a retry's backoff)
    trades: set[tuple[str, int]] = field(factory=set)  # trades the log has after the gap
    symbols: set[str] = field(factory=set)  # symbols of its orders the log has after the gap
    mirror: Mirror | None = None  # the running heal's mirror, from its snapshot


class Heals:
    """The heal rules of one worker's accounts (see the module's rules): `family_of` gives the
    family that reads an account's events and answers (by account id: on margin, an isolated
    account's differs from the cross account's); `symbols` are symbols whose trades every heal
    recovers; `retry` and `wait` say how long a failed heal waits before its next attempt."""

    def __init__(
        self,
        family_of: Callable[[str], Family],
        *,
        concurrency: int = HEAL_CONCURRENCY,
        symbols: Iterable[str] = (),
        retry: RetryPolicy = RetryPolicy(),  # noqa: B008 (frozen)
        wait: Callable[[RetryPolicy, int, BaseException], float] = retry_wait,
    ) -> None:
        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, not {concurrency}")
        self.family_of = family_of
        self.concurrency = concurrency
        self.symbols = tuple(symbols)
        self._retry, self._wait = retry, wait
        self.owed: dict[str, _Owed] = {}  # account id -> its heal, in the order they were owed
        self._running = 0
        self._runs = 0
        self.reconciled = self.failed_heals = 0

    def __len__(self) -> int:
        """Accounts owing a Reconciled now (waiting or running)."""
        return len(self.owed)

    @property
    def running(self) -> int:
        return self._running

    # -- what the worker published ---------------------------------------------------------------

    def gap(self, account_id: str, gap: StreamGap) -> None:
        """`gap` was published for `account_id`: it owes a Reconciled covering it."""
        owed = self.owed.get(account_id)
        if owed is None:
            self.owed[account_id] = _Owed(gap)
            return
        owed.gap = merged(owed.gap, gap)
        if owed.run is not None:
            owed.stale_run = True

    def saw(self, account_id: str, item: object) -> None:
        """An event of `account_id` was published after its gap (call it only for accounts in
        `owed`): its trades are in the log, its orders' symbols are worth recovering."""
        owed = self.owed.get(account_id)
        if owed is None:
            return
        for update in self.family_of(account_id).updates(item):
            if isinstance(update, TradeSeen):
                if len(owed.trades) < TRADES_KEPT:
                    owed.trades.add(update.trade.key)
                symbol = update.trade.symbol
            elif isinstance(update, OrderUpdate):
                symbol = update.order.symbol
            else:
                continue
            if len(owed.symbols) < SYMBOLS_KEPT:
                owed.symbols.add(symbol)

    def drop(self, account_id: str) -> None:
        """`account_id` is fenced or gone: it owes nothing; its running heal's answers are ignored."""
        owed = self.owed.pop(account_id, None)
        if owed is not None and owed.run is not None:
            self._running -= 1

    # -- when to heal ----------------------------------------------------------------------------

    def ready(self, now: float) -> list[Begin]:
        """The heals to start now: those owed and due, oldest first, within `concurrency`."""
        begins: list[Begin] = []
        for account_id, owed in self.owed.items():
            if self._running >= self.concurrency:
                break
            if owed.run is None and owed.due <= now:
                self._runs += 1
                owed.run, owed.stale_run, owed.mirror = self._runs, False, None
                self._running += 1
                begins.append(Begin(account_id, self._runs))
        return begins

    def wake_at(self) -> float | None:
        """When the next heal waiting for its backoff is due (None: none waits for one)."""
        if self._running >= self.concurrency:
            return None
        dues = [owed.due for owed in self.owed.values() if owed.run is None]
        return min(dues) if dues else None

    def _current(self, account_id: str, run: int) -> _Owed | None:
        owed = self.owed.get(account_id)
        return owed if owed is not None and owed.run == run else None

    def _end_run(self, owed: _Owed) -> None:
        owed.run, owed.mirror = None, None
        self._running -= 1

    # -- what REST answered ----------------------------------------------------------------------

    def recovery(self, account_id: str, run: int, snapshot: Snapshot) -> Recovery | None:
        """The trades heal `run` asks for after `snapshot` (None: the heal is over, ask nothing)."""
        owed = self._current(account_id, run)
        if owed is None:
            return None
        mirror = Mirror(self.family_of(account_id), snapshot, symbols=(*self.symbols, *sorted(owed.symbols)))
        mirror.receive(owed.gap)
        owed.mirror = mirror
        return mirror.recovery(snapshot)

    def done(
        self, account_id: str, run: int, snapshot: Snapshot, recovery: Recovery, trades: Sequence[Trade]
    ) -> Reconciled | None:
        """Heal `run`'s answers: the account's Reconciled, now owed no longer; None when the account
        was dropped meanwhile, or a gap came while the calls were out (the heal starts again)."""
        owed = self._current(account_id, run)
        if owed is None:
            return None
        mirror = owed.mirror
        if owed.stale_run or mirror is None:
            self._end_run(owed)
            owed.stale_run, owed.attempt, owed.due = False, 0, float("-inf")
            return None
        fresh = [trade for trade in trades if trade.key not in owed.trades]
        healed = mirror.heal(snapshot, fresh, start_time=recovery.start_time)
        self._end_run(owed)
        del self.owed[account_id]
        self.reconciled += 1
        return Reconciled(
            gap=owed.gap, changes=(), recovered_trades=healed.recovered_trades, state=healed.state
        )

    def failed(self, account_id: str, run: int, error: BaseException, now: float) -> float | None:
        """Heal `run` failed with `error`: the seconds until its next attempt, or None when it is
        not retried (given up, or the heal was over already)."""
        owed = self._current(account_id, run)
        if owed is None:
            return None
        self._end_run(owed)
        if not isinstance(error, RETRYABLE):
            del self.owed[account_id]
            self.failed_heals += 1
            log.error(
                "account %s: the gap's Reconciled is given up: %s: %s",
                account_id,
                type(error).__name__,
                error,
            )
            return None
        owed.attempt += 1
        wait = self._wait(self._retry, owed.attempt, error)
        owed.due = now + wait
        log.warning(
            "account %s: reconciling, attempt %d failed: %s: %s; again in %.3gs",
            account_id,
            owed.attempt,
            type(error).__name__,
            error,
            wait,
        )
        return wait
