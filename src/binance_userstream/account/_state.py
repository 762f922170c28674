"""The mirror's picture of an account: balances, positions, open orders, and the trades it saw.

Each market reports an account in its own shapes, and its REST answers differ from its events. The
mirror keeps the fields both carry, in one set of small frozen types, so that a state built from
events can be compared with a state built from a snapshot: a field only REST answers (a margin
loan's interest, a position's mark price) would be stale between snapshots, and a mirror that is
never silently wrong holds only what the stream keeps current. Every value keeps the generated model
it was last read from in `raw` (not compared).
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from types import MappingProxyType
from typing import Any, Literal

from attrs import field, frozen

from binance_userstream.stream._gap import StreamGap

#: A position's key: its symbol and its side ("BOTH" in one-way mode, "LONG" or "SHORT" in hedge mode).
PositionKey = tuple[str, str]
#: An order's key: its symbol and its order id (Binance numbers orders per symbol).
OrderKey = tuple[str, int]


def _frozen_mapping(value: Mapping[Any, Any]) -> Mapping[Any, Any]:
    return MappingProxyType(dict(value))


@frozen
class Balance:
    """One asset's balance, with the amounts its market's stream keeps current (None: not reported).

    Spot and margin (cross and isolated): `free`, `locked`. USD-M and COIN-M: `wallet` (wallet
    balance), `cross_wallet`. Portfolio Margin: `free`, `locked` (its margin side), `um_wallet`,
    `cm_wallet` (its UM and CM wallet balances). Options: `wallet` (the margin account's balance).
    """

    asset: str
    free: Decimal | None = None
    locked: Decimal | None = None
    wallet: Decimal | None = None
    cross_wallet: Decimal | None = None
    um_wallet: Decimal | None = None
    cm_wallet: Decimal | None = None
    raw: object = field(default=None, eq=False, repr=False)

    @property
    def is_zero(self) -> bool:
        """Every amount reported is zero: the mirror holds no such balance (nor do snapshots)."""
        amounts = (self.free, self.locked, self.wallet, self.cross_wallet, self.um_wallet, self.cm_wallet)
        return all(amount is None or amount == 0 for amount in amounts)


@frozen
class Position:
    """One open position (derivatives): `amount` is signed (negative: short), as Binance reports it;
    Options' positions are signed the same way (a SHORT position's quantity is negative)."""

    symbol: str
    side: str
    amount: Decimal
    entry_price: Decimal
    raw: object = field(default=None, eq=False, repr=False)

    @property
    def key(self) -> PositionKey:
        return (self.symbol, self.side)


#: The order statuses after which an order is no longer open.
CLOSED_STATUSES = frozenset({"FILLED", "CANCELED", "EXPIRED", "REJECTED", "EXPIRED_IN_MATCH"})


@frozen
class Order:
    """One open order. `update_time` (milliseconds) orders what the mirror learns of it and is not
    compared: two pictures of an order are equal when everything the account can act on is."""

    symbol: str
    order_id: int
    client_order_id: str
    side: str
    type: str
    status: str
    price: Decimal
    quantity: Decimal
    executed_quantity: Decimal
    position_side: str | None = None
    update_time: int = field(default=0, eq=False)
    raw: object = field(default=None, eq=False, repr=False)

    @property
    def key(self) -> OrderKey:
        return (self.symbol, self.order_id)

    @property
    def is_open(self) -> bool:
        return self.status not in CLOSED_STATUSES


@frozen
class Trade:
    """One fill of one of the account's orders, streamed or recovered; (symbol, trade_id) is unique."""

    symbol: str
    trade_id: int
    order_id: int
    side: str
    price: Decimal
    quantity: Decimal
    commission: Decimal
    commission_asset: str
    time: int
    raw: object = field(default=None, eq=False, repr=False)

    @property
    def key(self) -> tuple[str, int]:
        return (self.symbol, self.trade_id)


@frozen
class AccountState:
    """The account as the mirror knows it after the last item it applied. Immutable.

    `as_of` is the time (milliseconds, the exchange's) of the last event or snapshot applied, None
    before the first; `stale` is True from a gap until the snapshot that heals it.
    """

    balances: Mapping[str, Balance] = field(factory=dict, converter=_frozen_mapping)
    positions: Mapping[PositionKey, Position] = field(factory=dict, converter=_frozen_mapping)
    open_orders: Mapping[OrderKey, Order] = field(factory=dict, converter=_frozen_mapping)
    as_of: int | None = None
    stale: bool = False


ChangeKind = Literal["balance", "position", "order"]


@frozen
class Change:
    """One difference a snapshot found between the mirror and the account: `before` None means it
    appeared (an order the stream never announced), `after` None that it is gone."""

    kind: ChangeKind
    key: object
    before: Balance | Position | Order | None
    after: Balance | Position | Order | None


@frozen
class Reconciled:
    """A gap healed: the StreamGap, what the snapshot changed, and the trades the stream missed.

    Yielded by `uds.account()` after each StreamGap once a fresh snapshot has been applied: `changes`
    lists what differed between the mirror and the snapshot; `recovered_trades` the trades made
    since the gap's last event that the stream did not deliver, each once (oldest first); `state`
    the account after the snapshot.
    """

    gap: StreamGap
    changes: tuple[Change, ...]
    recovered_trades: tuple[Trade, ...]
    state: AccountState
