"""Portfolio Margin's account, as the mirror reads it: its margin balances and its UM and CM futures.

A Portfolio Margin account keeps one balance per asset in three parts: the cross margin side's
free and locked amounts (outboundAccountPosition), and the UM and CM wallet balances (ACCOUNT_UPDATE,
told apart by `fs`); `GET /papi/v1/balance` answers all of them at once. Positions and open orders
are the UM and CM ones (`positionRisk`, `openOrders` on each side). The margin side's orders and
trades (its executionReport) are not mirrored: the spec has no Portfolio Margin margin openOrders
operation yet, so a snapshot could not heal them.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from binance_userstream_client.api.portfolio import (
    get_portfolio_balance,
    get_portfolio_cm_open_orders,
    get_portfolio_cm_position_risk,
    get_portfolio_cm_user_trades,
    get_portfolio_um_open_orders,
    get_portfolio_um_position_risk,
    get_portfolio_um_user_trades,
)
from binance_userstream_client.models import (
    AccountUpdate,
    OrderTradeUpdate,
    PortfolioBalance,
    PortfolioCmOpenOrder,
    PortfolioCmPositionRisk,
    PortfolioCmTrade,
    PortfolioOutboundAccountPosition,
    PortfolioUmOpenOrder,
    PortfolioUmPositionRisk,
    PortfolioUmTrade,
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
from binance_userstream.account._state import Balance, Order, Position, PositionKey, Trade

#: At most this many trades per userTrades call (UM's and CM's maximum `limit`).
PAGE_SIZE = 1000


def _amount(text: str) -> Decimal | None:
    """A decimal sent as a string; an empty string (Binance sends some) is no amount."""
    return Decimal(text) if text else None


def is_coinm(symbol: str) -> bool:
    """A CM (COIN-M) symbol carries its delivery or PERP suffix after "_" (BTCUSD_PERP); UM's never do."""
    return "_" in symbol


class PortfolioFamily:
    """The `Family` of Portfolio Margin (market "portfolio").

    It has no time call: Portfolio Margin's host (papi.binance.com) serves no time endpoint in the
    spec, and USD-M's `/fapi/v1/time` lives on another host (fapi.binance.com), which a client bound
    to Portfolio Margin does not call.
    """

    @property
    def name(self) -> str:
        return "portfolio"

    @property
    def amounts(self) -> tuple[str, ...]:
        return ("free", "locked", "um_wallet", "cm_wallet")

    @property
    def page_size(self) -> int:
        return PAGE_SIZE

    def time_call(self) -> Call | None:
        return None

    def snapshot_calls(self, symbol: str | None) -> Sequence[Call]:
        """The balance, then UM's and CM's positions, then UM's and CM's open orders."""
        if symbol is not None:
            raise ValueError("Portfolio Margin has no isolated account: snapshot_calls takes no symbol")
        return (
            Call(get_portfolio_balance, list),
            Call(get_portfolio_um_position_risk, list),
            Call(get_portfolio_cm_position_risk, list),
            Call(get_portfolio_um_open_orders, list),
            Call(get_portfolio_cm_open_orders, list),
        )

    def snapshot(self, answers: Sequence[Any], taken_at: int) -> Snapshot:
        balance_rows, um_positions, cm_positions, um_orders, cm_orders = answers
        balances: dict[str, Balance] = {}
        balance_times: dict[str, int] = {}
        for row in balance_rows:
            balance = _balance(row)
            if not balance.is_zero:
                balances[row.asset] = balance
                balance_times[row.asset] = row.update_time
        positions: dict[PositionKey, Position] = {}
        position_times: dict[PositionKey, int] = {}
        for risk in (*um_positions, *cm_positions):
            position = _position(risk)
            if position.amount != 0:
                positions[position.key] = position
                position_times[position.key] = risk.update_time
        orders = (_open_order(row) for row in (*um_orders, *cm_orders))
        return Snapshot(
            taken_at=taken_at,
            balances=balances,
            positions=positions,
            open_orders={order.key: order for order in orders},
            balance_times=balance_times,
            position_times=position_times,
        )

    def trade_calls(self, symbol: str, start_time: int, from_id: int | None) -> Sequence[Call]:
        """One userTrades call on the symbol's side (CM when it contains "_"). Binance refuses
        `fromId` with `startTime`, so the next page asks by id alone."""
        operation = get_portfolio_cm_user_trades if is_coinm(symbol) else get_portfolio_um_user_trades
        since = {"start_time": start_time} if from_id is None else {"from_id": from_id}
        return (Call(operation, list, {"symbol": symbol, **since, "limit": PAGE_SIZE}),)

    def trades(self, answers: Sequence[Any]) -> list[Trade]:
        return [_trade(row) for answer in answers for row in answer]

    def updates(self, event: object) -> Sequence[Update]:
        if isinstance(event, PortfolioOutboundAccountPosition):
            return [
                BalanceUpdate(
                    Balance(row.asset, free=Decimal(row.free), locked=Decimal(row.locked), raw=row),
                    event.last_update_time,
                )
                for row in event.balances
            ]
        if isinstance(event, AccountUpdate):
            return _account_update(event)
        if isinstance(event, OrderTradeUpdate):
            return order_trade_updates(event.order, event.transaction_time, event.order.position_side)
        # executionReport (the margin side's orders: not mirrored), balanceUpdate (a delta that
        # outboundAccountPosition follows), conditional and algo orders, risk and config events,
        # and any UnknownEvent change nothing the mirror holds.
        return []


def _balance(row: PortfolioBalance) -> Balance:
    return Balance(
        row.asset,
        free=_amount(row.cross_margin_free),
        locked=_amount(row.cross_margin_locked),
        um_wallet=_amount(row.um_wallet_balance),
        cm_wallet=_amount(row.cm_wallet_balance),
        raw=row,
    )


def _position(row: PortfolioUmPositionRisk | PortfolioCmPositionRisk) -> Position:
    return Position(
        row.symbol, row.position_side, Decimal(row.position_amount), Decimal(row.entry_price), raw=row
    )


def _open_order(row: PortfolioUmOpenOrder | PortfolioCmOpenOrder) -> Order:
    return Order(
        symbol=row.symbol,
        order_id=row.order_id,
        client_order_id=row.client_order_id,
        side=row.side,
        type=row.order_type,
        status=row.order_status,
        price=Decimal(row.price),
        quantity=Decimal(row.original_quantity),
        executed_quantity=Decimal(row.executed_quantity),
        position_side=row.position_side,
        update_time=row.update_time,
        raw=row,
    )


def _trade(row: PortfolioUmTrade | PortfolioCmTrade) -> Trade:
    return Trade(
        symbol=row.symbol,
        trade_id=row.trade_id,
        order_id=row.order_id,
        side=row.side,
        price=Decimal(row.price),
        quantity=Decimal(row.quantity),
        commission=Decimal(row.commission),
        commission_asset=row.commission_asset,
        time=row.trade_time,
        raw=row,
    )


def _account_update(event: AccountUpdate) -> list[Update]:
    """`fs` says which wallet a B[] entry is (UM or CM); without it (not Portfolio Margin's shape)
    the balances are not applied rather than guessed. Positions need no `fs`: their symbols differ."""
    time = event.transaction_time
    data = event.update_data
    unit = None if isinstance(event.business_unit, Unset) else event.business_unit
    updates: list[Update] = []
    if unit in ("UM", "CM"):
        for row in data.balances:
            wallet = Decimal(row.wallet_balance)
            balance = (
                Balance(row.asset, um_wallet=wallet, raw=row)
                if unit == "UM"
                else Balance(row.asset, cm_wallet=wallet, raw=row)
            )
            updates.append(BalanceUpdate(balance, time))
    if not isinstance(data.positions, Unset):
        for entry in data.positions:
            amount, entry_price = Decimal(entry.position_amount), Decimal(entry.entry_price)
            position = Position(entry.symbol, entry.position_side, amount, entry_price, raw=entry)
            updates.append(PositionUpdate(position, time))
    return updates
