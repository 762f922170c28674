"""Spot's and margin's (cross, and isolated by symbol) account, as the mirror reads it.

Balances are free and locked amounts: REST's account balances (spot: `GET /api/v3/account`, every
asset's time its `updateTime`; cross margin: `GET /sapi/v1/margin/account`; isolated margin: the
pair's base and quote assets of `GET /sapi/v1/margin/isolated/account?symbols=X`; margin gives
no time per asset, so the snapshot's `taken_at` stands for it), and `outboundAccountPosition`'s
B[].f/l at its `u`. Orders: open orders, and `executionReport` at its transaction time `T`.
Trades: myTrades, and `executionReport` with execution type TRADE. Trade ids are per symbol.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any, Literal

from binance_userstream_client.api.margin import (
    get_margin_account,
    get_margin_isolated_account,
    get_margin_my_trades,
    get_margin_open_orders,
)
from binance_userstream_client.api.spot import (
    get_spot_account,
    get_spot_my_trades,
    get_spot_open_orders,
    get_spot_server_time,
)
from binance_userstream_client.models import (
    ExecutionReport,
    MarginAccount,
    MarginIsolatedAccount,
    MarginOrder,
    MarginTrade,
    OutboundAccountPosition,
    SpotAccount,
    SpotOrder,
    SpotServerTime,
    SpotTrade,
)

from binance_userstream.account._family import (
    BalanceUpdate,
    Call,
    OrderUpdate,
    Snapshot,
    TradeSeen,
    Update,
)
from binance_userstream.account._state import Balance, Order, Trade

#: myTrades' largest `limit` (spot and margin): a page this long asks for the next.
PAGE_SIZE = 1000

SpotKind = Literal["spot", "margin", "isolated"]


def _order(answer: SpotOrder | MarginOrder) -> Order:
    return Order(
        symbol=answer.symbol,
        order_id=answer.order_id,
        client_order_id=answer.client_order_id,
        side=answer.side,
        type=answer.order_type,
        status=answer.status,
        price=Decimal(answer.price),
        quantity=Decimal(answer.original_quantity),
        executed_quantity=Decimal(answer.executed_quantity),
        update_time=answer.update_time,
        raw=answer,
    )


def _trade(answer: SpotTrade | MarginTrade) -> Trade:
    return Trade(
        symbol=answer.symbol,
        trade_id=answer.trade_id,
        order_id=answer.order_id,
        side="BUY" if answer.is_buyer else "SELL",
        price=Decimal(answer.price),
        quantity=Decimal(answer.quantity),
        commission=Decimal(answer.commission),
        commission_asset=answer.commission_asset,
        time=answer.time,
        raw=answer,
    )


def _balance(asset: str, free: str, locked: str, raw: object) -> Balance:
    return Balance(asset=asset, free=Decimal(free), locked=Decimal(locked), raw=raw)


class SpotFamily:
    """Spot ("spot"), cross margin ("margin") or isolated margin ("isolated", with its symbol)."""

    page_size = PAGE_SIZE

    def __init__(self, kind: SpotKind) -> None:
        self.kind = kind

    @property
    def name(self) -> str:
        return {"spot": "spot", "margin": "margin (cross)", "isolated": "margin (isolated)"}[self.kind]

    @property
    def amounts(self) -> tuple[str, ...]:
        return ("free", "locked")

    def time_call(self) -> Call | None:
        return Call(get_spot_server_time, SpotServerTime)  # margin shares spot's host and clock

    def _isolated(self) -> dict[str, Any]:
        return {"is_isolated": "TRUE"} if self.kind == "isolated" else {}

    def snapshot_calls(self, symbol: str | None) -> Sequence[Call]:
        if self.kind == "spot":
            return (
                Call(get_spot_account, SpotAccount, {"omit_zero_balances": True}),
                Call(get_spot_open_orders, list),
            )
        if self.kind == "margin":
            return (Call(get_margin_account, MarginAccount), Call(get_margin_open_orders, list))
        if symbol is None:
            raise ValueError("isolated margin needs its symbol")
        return (
            Call(get_margin_isolated_account, MarginIsolatedAccount, {"symbols": symbol}),
            Call(get_margin_open_orders, list, {"symbol": symbol, **self._isolated()}),
        )

    def snapshot(self, answers: Sequence[Any], taken_at: int) -> Snapshot:
        account, orders = answers
        balances: dict[str, Balance] = {}
        times: dict[str, int] = {}
        if isinstance(account, SpotAccount):
            for entry in account.balances:
                balances[entry.asset] = _balance(entry.asset, entry.free, entry.locked, entry)
                times[entry.asset] = account.update_time
        elif isinstance(account, MarginAccount):
            for asset in account.user_assets:
                balances[asset.asset] = _balance(asset.asset, asset.free, asset.locked, asset)
        else:
            for pair in account.assets:
                for side in (pair.base_asset, pair.quote_asset):
                    balances[side.asset] = _balance(side.asset, side.free, side.locked, side)
        open_orders = {order.key: order for order in map(_order, orders)}
        return Snapshot(
            taken_at=taken_at,
            balances={asset: b for asset, b in balances.items() if not b.is_zero},
            positions={},
            open_orders={key: order for key, order in open_orders.items() if order.is_open},
            balance_times=times,
        )

    def trade_calls(self, symbol: str, start_time: int, from_id: int | None) -> Sequence[Call]:
        where: dict[str, Any] = {"start_time": start_time} if from_id is None else {"from_id": from_id}
        arguments = {"symbol": symbol, "limit": PAGE_SIZE, **where}
        if self.kind == "spot":
            return (Call(get_spot_my_trades, list, arguments),)
        return (Call(get_margin_my_trades, list, {**arguments, **self._isolated()}),)

    def trades(self, answers: Sequence[Any]) -> list[Trade]:
        return [_trade(answer) for page in answers for answer in page]

    def updates(self, event: object) -> Sequence[Update]:
        if isinstance(event, OutboundAccountPosition):
            return [
                BalanceUpdate(_balance(b.asset, b.free, b.locked, b), event.last_update_time)
                for b in event.balances
            ]
        if not isinstance(event, ExecutionReport):
            return []
        order = Order(
            symbol=event.symbol,
            order_id=event.order_id,
            client_order_id=event.original_client_order_id or event.client_order_id,
            side=event.side,
            type=event.order_type,
            status=event.order_status,
            price=Decimal(event.price),
            quantity=Decimal(event.quantity),
            executed_quantity=Decimal(event.cumulative_filled_quantity),
            update_time=event.transaction_time,
            raw=event,
        )
        updates: list[Update] = [OrderUpdate(order)]
        if event.execution_type == "TRADE":
            trade = Trade(
                symbol=event.symbol,
                trade_id=event.trade_id,
                order_id=event.order_id,
                side=event.side,
                price=Decimal(event.last_executed_price),
                quantity=Decimal(event.last_executed_quantity),
                commission=Decimal(event.commission),
                commission_asset=event.commission_asset or "",
                time=event.transaction_time,
                raw=event,
            )
            updates.insert(0, TradeSeen(trade))
        return updates
