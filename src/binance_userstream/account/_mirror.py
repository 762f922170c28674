"""The mirror's rules, without I/O: what a snapshot, an event, a gap and a heal do to the state.

`Mirror` is fed what the drivers read — the first Snapshot, then each stream item (a decoded event
or a StreamGap), then the snapshot and trades that heal a gap — and answers the state, whether an
event is delivered, and the `Reconciled`. It reads no clock and sends nothing, so every rule is
tested without sockets (tests/test_account_mirror.py). The rules:

- An update applies to an entity the mirror knows (a balance, a position, an open order, or one it
  saw closed) only if its time is later than what the mirror knows of it (or the same time, when
  what it knows came from an event: one millisecond may carry several events); to an entity the
  snapshot lacks only if its time is at or after the snapshot's `taken_at` (older ones are already
  in the snapshot, which is why it lacks them). An amount an update leaves out (None) keeps the
  known one. Zero balances and positions and closed orders are removed.
- A StreamGap makes the state stale. A heal replaces the state with the snapshot (later events
  apply on top, by the rules above); its `changes` list what differs between the mirror just before
  and the snapshot; its `recovered_trades` the REST trades the stream did not deliver, oldest first.
  Every trade delivered (streamed or recovered) is remembered, back to the oldest window a later
  heal can ask, so that a streamed event whose trade was already recovered is applied but not
  delivered again.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Generator, Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Any

from attrs import evolve, frozen

from binance_userstream.account._family import (
    BalanceUpdate,
    Call,
    Family,
    OrderUpdate,
    PositionUpdate,
    Snapshot,
    TradeSeen,
    Update,
)
from binance_userstream.account._state import (
    AccountState,
    Balance,
    Change,
    ChangeKind,
    Order,
    Position,
    Reconciled,
    Trade,
)
from binance_userstream.stream._gap import StreamGap

log = logging.getLogger("binance_userstream.account")

#: How many closed orders the mirror remembers (see `Mirror._forget_closed`).
CLOSED_KEPT = 10_000
#: How many delivered trades the mirror holds before it forgets those well behind the stream (see
#: `Mirror._forget_streamed_trades`), and how far behind the last event they must be (ms).
DELIVERED_KEPT = 10_000
DELIVERED_SLACK_MS = 60_000

_AMOUNTS = ("free", "locked", "wallet", "cross_wallet", "um_wallet", "cm_wallet")


@frozen
class Recovery:
    """What a heal asks REST for trades: each of `symbols`' trades from `start_time` (ms) on."""

    start_time: int
    symbols: tuple[str, ...]


@frozen
class _Known:
    """When the mirror last learned of an entity, and whether from an event (True) or a snapshot."""

    time: int
    from_event: bool


def _merge(known: Balance | None, update: Balance, zeros: tuple[str, ...]) -> Balance:
    """`update`'s amounts over `known`'s: an amount the update leaves out keeps the known one. An
    asset not held (`known` None) had every amount zero: of `zeros` (the family's amounts), those the update
    leaves out are zero, as a snapshot reports them (a Portfolio Margin UM event tells the UM wallet
    alone; its free, locked and CM wallet are not unknown but zero)."""
    if known is None:
        known = Balance(update.asset, **{name: Decimal(0) for name in zeros})
    amounts = {name: getattr(update, name) for name in _AMOUNTS if getattr(update, name) is not None}
    return evolve(known, raw=update.raw, **amounts)


def _event_time(event: object) -> int | None:
    value = getattr(event, "event_time", None)
    return value if isinstance(value, int) else None


class Mirror:
    """The account kept from one family's snapshots and events (see the module's rules).

    `snapshot` is the first picture of the account; `symbols` are symbols whose trades every heal
    recovers, whatever the state says.
    """

    def __init__(self, family: Family, snapshot: Snapshot, *, symbols: Iterable[str] = ()) -> None:
        self.family = family
        self.symbols = tuple(symbols)
        self._balances: dict[str, Balance] = {}
        self._positions: dict[tuple[str, str], Position] = {}
        self._orders: dict[tuple[str, int], Order] = {}
        self._known: dict[tuple[str, object], _Known] = {}
        self._closed: OrderedDict[tuple[str, int], None] = OrderedDict()  # closed orders, oldest first
        self._taken_at = snapshot.taken_at
        self._as_of: int | None = None
        self._stale = False
        self._gap: StreamGap | None = None
        self._gap_symbols: set[str] = set()
        self._traded: set[str] = set()
        self._delivered: dict[tuple[str, int], int] = {}  # trade key -> its time
        self._last_event_time: int | None = None
        self._first_taken_at = snapshot.taken_at
        self._horizon: int | None = None  # trades before it were all delivered, and forgotten
        self._replace(snapshot)

    # -- what the driver reads ---------------------------------------------------------------

    @property
    def state(self) -> AccountState:
        return AccountState(
            balances=self._balances,
            positions=self._positions,
            open_orders=self._orders,
            as_of=self._as_of,
            stale=self._stale,
        )

    @property
    def stale(self) -> bool:
        return self._stale

    @property
    def gap(self) -> StreamGap | None:
        """The gap waiting to be healed, if any."""
        return self._gap

    # -- what the stream delivers ------------------------------------------------------------

    def receive(self, item: object) -> bool:
        """Apply one stream item; True if the driver delivers it (False: a streamed event whose
        every trade was already delivered as a recovered trade; its changes are applied all the same)."""
        if isinstance(item, StreamGap):
            self._on_gap(item)
            return True
        updates = self.family.updates(item)
        time = _event_time(item)
        if time is not None:
            last = self._last_event_time
            self._last_event_time = time if last is None else max(last, time)
        deliver = True
        trades = [u.trade for u in updates if isinstance(u, TradeSeen)]
        if trades and all(trade.key in self._delivered for trade in trades):
            deliver = False
            log.debug(
                "%s: a streamed trade (%s) was already delivered as a recovered trade: not delivered again",
                self.family.name,
                ", ".join(f"{t.symbol} #{t.trade_id}" for t in trades),
            )
        for update in updates:
            self._apply(update)
        if time is not None:
            self._advance(time)
        return deliver

    def _on_gap(self, gap: StreamGap) -> None:
        if self._gap is None:
            self._gap_symbols = self._active_symbols()
            self._gap = gap
        elif self._window(gap) < self._window(self._gap):
            self._gap = gap  # two gaps before a heal: the earlier window covers both
        self._stale = True

    def _window(self, gap: StreamGap) -> int:
        """Where a heal's trades begin: the gap's last event (none: the first snapshot), but never
        before the horizon of the previous heal, whose older trades were all delivered (a gap may be
        dated before events already applied: an eventStreamTerminated's `E`, behind the traffic's)."""
        start = self._first_taken_at if gap.last_event_time is None else gap.last_event_time
        return start if self._horizon is None else max(start, self._horizon)

    # -- healing -----------------------------------------------------------------------------

    def recovery(self, snapshot: Snapshot) -> Recovery:
        """The trades a heal asks for: from the gap's last event time (the first snapshot's
        `taken_at` when there was none) on, for the symbols that had open orders or positions before
        the gap or have them in `snapshot`, those traded since the previous heal, and `symbols`."""
        gap = self._gap
        start = self._first_taken_at if gap is None else self._window(gap)
        wanted = set(self._gap_symbols) | self._active_symbols() | self._traded | set(self.symbols)
        wanted |= {key[0] for key in snapshot.positions} | {key[0] for key in snapshot.open_orders}
        return Recovery(start, tuple(sorted(wanted)))

    def heal(
        self,
        snapshot: Snapshot,
        trades: Sequence[Trade],
        *,
        start_time: int | None = None,
        streamed: Sequence[object] = (),
    ) -> Reconciled:
        """Replace the state with `snapshot` and say what changed and which trades were missed.

        `trades` are REST's for the recovery window (`start_time` on: older ones are dropped);
        `streamed` the items the stream has already buffered, which the driver delivers after the
        Reconciled: their trades are not recovered (they will be delivered as events).
        """
        gap = self._gap
        if gap is None:
            raise ValueError("nothing to heal: no StreamGap was received since the last heal")
        start = self.recovery(snapshot).start_time if start_time is None else start_time
        coming = {
            update.trade.key
            for item in streamed
            if not isinstance(item, StreamGap)
            for update in self.family.updates(item)
            if isinstance(update, TradeSeen)
        }
        recovered: dict[tuple[str, int], Trade] = {}
        for trade in trades:
            if trade.time < start or trade.key in self._delivered or trade.key in coming:
                continue
            recovered.setdefault(trade.key, trade)
        ordered = tuple(sorted(recovered.values(), key=lambda t: (t.time, t.symbol, t.trade_id)))
        for trade in ordered:
            self._delivered[trade.key] = trade.time
        before = (dict(self._balances), dict(self._positions), dict(self._orders))
        if snapshot.taken_at >= self._taken_at:
            self._replace(snapshot)
        else:  # never back to an older picture
            log.warning("%s: a snapshot older than the mirror's was not applied", self.family.name)
        changes = _changes(before, (self._balances, self._positions, self._orders))
        self._stale = False
        self._gap = None
        self._gap_symbols = set()
        self._traded = set()
        self._forget_old_trades()
        return Reconciled(gap=gap, changes=changes, recovered_trades=ordered, state=self.state)

    def _forget_old_trades(self) -> None:
        """A later heal asks from the next gap's last event time on, which is no earlier than the last
        event delivered so far: trades older than that can no longer be asked for."""
        horizon = self._last_event_time if self._last_event_time is not None else self._first_taken_at
        self._horizon = horizon if self._horizon is None else max(self._horizon, horizon)
        self._delivered = {key: time for key, time in self._delivered.items() if time >= horizon}

    def _forget_streamed_trades(self) -> None:
        """Between heals too, a busy account's delivered trades must not pile up: with no gap
        pending, every trade more than DELIVERED_SLACK_MS behind the last event was delivered, so
        they are forgotten and the next heal asks for none of them (its window starts after)."""
        if self._last_event_time is None:
            return
        horizon = self._last_event_time - DELIVERED_SLACK_MS
        self._horizon = horizon if self._horizon is None else max(self._horizon, horizon)
        self._delivered = {key: time for key, time in self._delivered.items() if time >= self._horizon}

    # -- the rules ---------------------------------------------------------------------------

    def _replace(self, snapshot: Snapshot) -> None:
        self._balances = {a: b for a, b in snapshot.balances.items() if not b.is_zero}
        self._positions = {k: p for k, p in snapshot.positions.items() if p.amount != 0}
        self._orders = {k: o for k, o in snapshot.open_orders.items() if o.is_open}
        self._taken_at = snapshot.taken_at
        known: dict[tuple[str, object], _Known] = {}
        for asset in snapshot.balances:
            known["balance", asset] = _Known(snapshot.balance_times.get(asset, snapshot.taken_at), False)
        for position in snapshot.positions:
            time = snapshot.position_times.get(position, snapshot.taken_at)
            known["position", position] = _Known(time, False)
        for order_key, order in snapshot.open_orders.items():
            known["order", order_key] = _Known(order.update_time, False)
        self._known = known
        self._closed = OrderedDict()
        self._advance(snapshot.taken_at)

    def _advance(self, time: int) -> None:
        self._as_of = time if self._as_of is None else max(self._as_of, time)

    def _newer(self, kind: str, key: object, time: int) -> bool:
        known = self._known.get((kind, key))
        if known is None:
            return time >= self._taken_at
        return time > known.time or (time == known.time and known.from_event)

    def _apply(self, update: Update) -> None:
        if isinstance(update, BalanceUpdate):
            asset = update.balance.asset
            if self._newer("balance", asset, update.time):
                self._known["balance", asset] = _Known(update.time, True)
                balance = _merge(self._balances.get(asset), update.balance, self.family.amounts)
                _put(self._balances, asset, None if balance.is_zero else balance)
        elif isinstance(update, PositionUpdate):
            key = update.position.key
            if self._newer("position", key, update.time):
                self._known["position", key] = _Known(update.time, True)
                _put(self._positions, key, update.position if update.position.amount != 0 else None)
        elif isinstance(update, OrderUpdate):
            order = update.order
            if self._newer("order", order.key, order.update_time):
                self._known["order", order.key] = _Known(order.update_time, True)
                _put(self._orders, order.key, order if order.is_open else None)
                if not order.is_open:
                    self._forget_closed(order.key)
                if order.executed_quantity:
                    self._traded.add(order.symbol)
        else:
            self._traded.add(update.trade.symbol)
            self._delivered.setdefault(update.trade.key, update.trade.time)
            if len(self._delivered) > DELIVERED_KEPT and self._gap is None:
                self._forget_streamed_trades()

    def _forget_closed(self, key: tuple[str, int]) -> None:
        """Remember a closed order (so that a late event of it is not applied), but only the latest
        CLOSED_KEPT of them: an account placing millions of orders between two heals must not grow
        the mirror without bound, and an event arrives long after its order closed only as a
        rotation's duplicate, which the stream drops."""
        self._closed[key] = None
        self._closed.move_to_end(key)
        while len(self._closed) > CLOSED_KEPT:
            oldest, _ = self._closed.popitem(last=False)
            self._known.pop(("order", oldest), None)

    def _active_symbols(self) -> set[str]:
        return {key[0] for key in self._positions} | {key[0] for key in self._orders}


def _put(table: dict[Any, Any], key: object, value: object) -> None:
    if value is None:
        table.pop(key, None)
    else:
        table[key] = value


def _changes(
    before: tuple[Mapping[Any, Any], Mapping[Any, Any], Mapping[Any, Any]],
    after: tuple[Mapping[Any, Any], Mapping[Any, Any], Mapping[Any, Any]],
) -> tuple[Change, ...]:
    """Every balance, position and order that differs, in that order, each kind by key."""
    kinds: tuple[ChangeKind, ...] = ("balance", "position", "order")
    changes: list[Change] = []
    for kind, old, new in zip(kinds, before, after, strict=True):
        for key in sorted(set(old) | set(new)):
            was, now = old.get(key), new.get(key)
            if was != now:
                changes.append(Change(kind=kind, key=key, before=was, after=now))
    return tuple(changes)


# -- what to ask REST, as plans the drivers carry out ------------------------------------------


#: How far ahead of Binance's a local clock may be when a market has no time call (Portfolio Margin)
#: and the snapshot is dated by the local wall clock, in milliseconds. Dating a snapshot early is
#: safe (the buffered events after it are replayed in order, and end where the snapshot is); dating
#: it late is not (an order placed just after it would be taken for one the snapshot already has).
UNTIMED_MARGIN_MS = 5_000


def snapshot_plan(family: Family, symbol: str | None, now_ms: int) -> Generator[Call, Any, Snapshot]:
    """The calls of one snapshot: the exchange's time first (without a time call, the driver's wall
    clock `now_ms` less UNTIMED_MARGIN_MS), then the family's; each `yield` hands a Call out and
    takes its answer back."""
    time_call = family.time_call()
    taken_at = now_ms - UNTIMED_MARGIN_MS if time_call is None else int((yield time_call).server_time)
    answers = []
    for call in family.snapshot_calls(symbol):
        answers.append((yield call))
    return family.snapshot(answers, taken_at)


def trades_plan(family: Family, recovery: Recovery) -> Generator[Call, Any, list[Trade]]:
    """The calls that recover `recovery`'s trades, symbol by symbol: a full page asks for the next
    with `from_id` one past its last trade id."""
    trades: list[Trade] = []
    for symbol in recovery.symbols:
        from_id: int | None = None
        while True:
            answers = []
            for call in family.trade_calls(symbol, recovery.start_time, from_id):
                answers.append((yield call))
            page = family.trades(answers)
            trades.extend(page)
            if not page or max(len(answer) for answer in answers) < family.page_size:
                break
            from_id = max(trade.trade_id for trade in page) + 1
    return trades


def heal_plan(
    mirror: Mirror, symbol: str | None, now_ms: int
) -> Generator[Call, Any, tuple[Snapshot, Recovery, list[Trade]]]:
    """The calls of one heal: a snapshot, then the trades its recovery asks for."""
    snapshot = yield from snapshot_plan(mirror.family, symbol, now_ms)
    recovery = mirror.recovery(snapshot)
    trades = yield from trades_plan(mirror.family, recovery)
    return snapshot, recovery, trades
