"""Options' account, as the mirror reads it: the margin account's balances, positions and orders.

Options reports a balance per margin asset (`marginBalance` in `GET /eapi/v1/marginAccount`, `b` in
BALANCE_POSITION_UPDATE: both the account's balance), positions signed by their quantity (a short
position's is negative, in REST and in the stream; the key's side is always "BOTH"), and LIMIT
orders only. Where the two sides spell a thing differently, the family makes them one: REST calls
an unfilled open order ACCEPTED where the stream says NEW.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from binance_userstream_client.api.options import (
    get_options_margin_account,
    get_options_open_orders,
    get_options_positions,
    get_options_server_time,
    get_options_user_trades,
)
from binance_userstream_client.models import (
    OptionsAccount,
    OptionsBalancePositionUpdate,
    OptionsOpenOrder,
    OptionsOrderTradeUpdate,
    OptionsPosition,
    OptionsServerTime,
    OptionsTrade,
)
from binance_userstream_client.types import Unset

from binance_userstream.account._family import (
    BalanceUpdate,
    Call,
    PositionUpdate,
    Snapshot,
    Update,
)
from binance_userstream.account._order_events import order_trade_updates
from binance_userstream.account._state import Balance, Order, Position, Trade

#: At most this many trades per userTrades call (its maximum `limit`).
PAGE_SIZE = 1000
#: An Options position's side in the mirror's key: one position per option, signed by its amount.
SIDE = "BOTH"
#: REST's name for an open order without fills, and the stream's.
_STATUSES = {"ACCEPTED": "NEW"}


class OptionsFamily:
    """The `Family` of Options (market "options"). It has no time call: the spec has no Options
    time operation. ACCOUNT_UPDATE (account-wide equity and margins, no per-asset amount) and
    GREEK_UPDATE change nothing the mirror holds."""

    @property
    def name(self) -> str:
        return "options"

    @property
    def amounts(self) -> tuple[str, ...]:
        return ("wallet",)

    @property
    def page_size(self) -> int:
        return PAGE_SIZE

    def time_call(self) -> Call | None:
        return Call(get_options_server_time, OptionsServerTime)

    def snapshot_calls(self, symbol: str | None) -> Sequence[Call]:
        """The margin account, then the positions, then the open orders."""
        if symbol is not None:
            raise ValueError("Options has no isolated account: snapshot_calls takes no symbol")
        return (
            Call(get_options_margin_account, OptionsAccount),
            Call(get_options_positions, list),
            Call(get_options_open_orders, list),
        )

    def snapshot(self, answers: Sequence[Any], taken_at: int) -> Snapshot:
        """No balance nor position carries its update time (the account's `time` and a position's
        are when the answer was made): the mirror dates them `taken_at`, Options' server time read
        just before (`time_call`), so that events just after the snapshot are not taken for older
        ones whatever the local clock says."""
        account, position_rows, order_rows = answers
        balances = (Balance(row.asset, wallet=Decimal(row.margin_balance), raw=row) for row in account.assets)
        positions = (_position(row) for row in position_rows)
        orders = (_open_order(row) for row in order_rows)
        return Snapshot(
            taken_at=taken_at,
            balances={balance.asset: balance for balance in balances if not balance.is_zero},
            positions={position.key: position for position in positions if position.amount != 0},
            open_orders={order.key: order for order in orders},
        )

    def trade_calls(self, symbol: str, start_time: int, from_id: int | None) -> Sequence[Call]:
        """One userTrades call: from `start_time`, or the next page from trade id `from_id` alone."""
        since = {"start_time": start_time} if from_id is None else {"from_id": from_id}
        return (Call(get_options_user_trades, list, {"symbol": symbol, **since, "limit": PAGE_SIZE}),)

    def trades(self, answers: Sequence[Any]) -> list[Trade]:
        return [_trade(row) for answer in answers for row in answer]

    def updates(self, event: object) -> Sequence[Update]:
        if isinstance(event, OptionsBalancePositionUpdate):
            return _balance_position_update(event)
        if isinstance(event, OptionsOrderTradeUpdate):
            return order_trade_updates(event.order, event.transaction_time)
        return []


def _position(row: OptionsPosition) -> Position:
    """REST sends a short position's quantity negative beside side SHORT; a quantity sent unsigned
    is signed by the side, so both spellings give the stream's signed amount."""
    quantity = Decimal(row.quantity)
    amount = -abs(quantity) if row.side == "SHORT" else quantity
    return Position(row.symbol, SIDE, amount, Decimal(row.entry_price), raw=row)


def _open_order(row: OptionsOpenOrder) -> Order:
    return Order(
        symbol=row.symbol,
        order_id=row.order_id,
        client_order_id=row.client_order_id,
        side=row.side,
        type=row.order_type,
        status=_STATUSES.get(row.order_status, row.order_status),
        price=Decimal(row.price),
        quantity=Decimal(row.quantity),
        executed_quantity=Decimal(row.executed_quantity),
        update_time=row.update_time,
        raw=row,
    )


def _trade(row: OptionsTrade) -> Trade:
    """`tradeId` is the stream's `t` (the record's `id` is another number); `quoteAsset`, the
    asset fees are paid in, is absent from older answers."""
    return Trade(
        symbol=row.symbol,
        trade_id=row.trade_id,
        order_id=row.order_id,
        side=row.side,
        price=Decimal(row.price),
        quantity=Decimal(row.quantity),
        commission=Decimal(row.fee),
        commission_asset="" if isinstance(row.quote_asset, Unset) else row.quote_asset,
        time=row.trade_time,
        raw=row,
    )


def _balance_position_update(event: OptionsBalancePositionUpdate) -> list[Update]:
    """B[].b is the account's balance; P[]: `c` the signed quantity, `a` the average entry price
    (`p` is the position's value). Dated by the transaction time `T`."""
    time = event.transaction_time
    updates: list[Update] = [
        BalanceUpdate(Balance(row.asset, wallet=Decimal(row.balance), raw=row), time)
        for row in event.balances
    ]
    if not isinstance(event.positions, Unset):
        for row in event.positions:
            position = Position(
                row.symbol, SIDE, Decimal(row.position_quantity), Decimal(row.average_entry_price), raw=row
            )
            updates.append(PositionUpdate(position, time))
    return updates
