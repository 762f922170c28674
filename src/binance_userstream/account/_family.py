"""What the mirror needs from a market, as data and pure functions: no I/O here.

A family turns a market's REST answers into a `Snapshot` and its events into `Update`s, and says
which REST calls take a snapshot and recover trades (`Call`s, which a driver sends with
`uds.call`). The mirror's rules (what is older than the snapshot, what is a duplicate, what
changed) are the same for every market and live in `_mirror`; a family only translates shapes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from attrs import field, frozen

from binance_userstream.account._state import Balance, Order, Position, Trade


@frozen
class Call:
    """One REST call: a generated operation module (its `sync_detailed` / `asyncio_detailed`), the
    model its answer must be (`list` for a JSON array), and its arguments."""

    operation: Any
    model: type
    arguments: Mapping[str, Any] = field(factory=dict)


@frozen
class Snapshot:
    """The account as REST answers describe it. `taken_at` is the exchange's time (milliseconds)
    just before the first call: every event at or before it is in the answers. `times` gives each
    balance (by asset) and position (by key) its last update time where the answer says it (an
    order carries its own `update_time`)."""

    taken_at: int
    balances: Mapping[str, Balance]
    positions: Mapping[tuple[str, str], Position]
    open_orders: Mapping[tuple[str, int], Order]
    balance_times: Mapping[str, int] = field(factory=dict)
    position_times: Mapping[tuple[str, str], int] = field(factory=dict)


@frozen
class BalanceUpdate:
    """An event set one asset's balance (its amounts as the event gives them, None where it gives
    none: the mirror keeps what it knew), at exchange time `time`."""

    balance: Balance
    time: int


@frozen
class PositionUpdate:
    """An event set one position (an amount of zero: the position is closed)."""

    position: Position
    time: int


@frozen
class OrderUpdate:
    """An event told an order's state (a closed status removes it from the open orders); its
    time is `order.update_time`."""

    order: Order


@frozen
class TradeSeen:
    """An event reported a fill: the mirror remembers it so that it is never also recovered."""

    trade: Trade


Update = BalanceUpdate | PositionUpdate | OrderUpdate | TradeSeen


class Family(Protocol):
    """How the mirror reads one market (or one market's account kind: margin's cross or isolated)."""

    @property
    def name(self) -> str: ...

    @property
    def amounts(self) -> tuple[str, ...]:
        """The Balance amounts a snapshot reports for every asset it lists (zeros too): a balance an
        event brings for an asset the mirror does not hold (all its amounts were zero) holds zero
        for those the event leaves out, as a snapshot taken then would."""
        ...

    def time_call(self) -> Call | None:
        """The call that reads the exchange's time (None: the market has none; the snapshot is then
        dated by the local wall clock less `_mirror.UNTIMED_MARGIN_MS`)."""

    def snapshot_calls(self, symbol: str | None) -> Sequence[Call]:
        """The calls whose answers `snapshot` reads, in order; `symbol` is isolated margin's pair."""

    def snapshot(self, answers: Sequence[Any], taken_at: int) -> Snapshot:
        """The answers of `snapshot_calls`, in their order, as one Snapshot."""

    def trade_calls(self, symbol: str, start_time: int, from_id: int | None) -> Sequence[Call]:
        """The calls listing `symbol`'s trades from `start_time` (ms) on, or, when `from_id` is
        given, from that trade id on (the next page); each answer a list, oldest first."""

    def trades(self, answers: Sequence[Any]) -> list[Trade]:
        """The answers of `trade_calls`, as Trades."""

    def updates(self, event: object) -> Sequence[Update]:
        """What one decoded event changes ([] for an event that changes nothing the mirror holds)."""

    @property
    def page_size(self) -> int:
        """How many trades one trade call returns at most: a full page asks for the next."""
