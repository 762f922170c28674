"""USD-M's and COIN-M's account, as the mirror reads it: one family, two rows of data.

Balances are wallet and cross wallet balances: REST's account assets (USD-M `GET /fapi/v3/account`,
COIN-M `GET /dapi/v1/account`; each asset's time its `updateTime`, which COIN-M may leave out: the
snapshot's `taken_at` then stands for it) and `ACCOUNT_UPDATE`'s a.B[].wb/cw at the envelope's
`T`. Positions: positionRisk's non-zero `positionAmt` (USD-M v3, COIN-M v1) and a.P[]. Orders:
open orders and `ORDER_TRADE_UPDATE` at the envelope's `T`. Trades: userTrades, and
`ORDER_TRADE_UPDATE` with execution type TRADE at its order's `T`.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from types import ModuleType
from typing import Any

from attrs import frozen
from binance_userstream_client.api.coinm import (
    get_coinm_account,
    get_coinm_open_orders,
    get_coinm_position_risk,
    get_coinm_server_time,
    get_coinm_user_trades,
)
from binance_userstream_client.api.usdm import (
    get_usdm_account,
    get_usdm_open_orders,
    get_usdm_position_risk,
    get_usdm_server_time,
    get_usdm_user_trades,
)
from binance_userstream_client.models import (
    AccountUpdate,
    CoinmAccount,
    CoinmServerTime,
    OrderTradeUpdate,
    UsdmAccount,
    UsdmServerTime,
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


@frozen
class FuturesRow:
    """One futures market's operations and models."""

    name: str
    time: ModuleType
    time_model: type
    account: ModuleType
    account_model: type
    position_risk: ModuleType
    open_orders: ModuleType
    user_trades: ModuleType
    page_size: int = 1000


USDM = FuturesRow(
    "usdm",
    get_usdm_server_time,
    UsdmServerTime,
    get_usdm_account,
    UsdmAccount,
    get_usdm_position_risk,
    get_usdm_open_orders,
    get_usdm_user_trades,
)
COINM = FuturesRow(
    "coinm",
    get_coinm_server_time,
    CoinmServerTime,
    get_coinm_account,
    CoinmAccount,
    get_coinm_position_risk,
    get_coinm_open_orders,
    get_coinm_user_trades,
)


class FuturesFamily:
    """USD-M or COIN-M, by its row (`USDM`, `COINM`)."""

    def __init__(self, row: FuturesRow) -> None:
        self.row = row

    @property
    def name(self) -> str:
        return self.row.name

    @property
    def amounts(self) -> tuple[str, ...]:
        return ("wallet", "cross_wallet")

    @property
    def page_size(self) -> int:
        return self.row.page_size

    def time_call(self) -> Call | None:
        return Call(self.row.time, self.row.time_model)

    def snapshot_calls(self, symbol: str | None) -> Sequence[Call]:
        row = self.row
        return (
            Call(row.account, row.account_model),
            Call(row.position_risk, list),
            Call(row.open_orders, list),
        )

    def snapshot(self, answers: Sequence[Any], taken_at: int) -> Snapshot:
        account, risks, orders = answers
        balances: dict[str, Balance] = {}
        balance_times: dict[str, int] = {}
        for asset in account.assets:
            balance = Balance(
                asset=asset.asset,
                wallet=Decimal(asset.wallet_balance),
                cross_wallet=Decimal(asset.cross_wallet_balance),
                raw=asset,
            )
            if balance.is_zero:
                continue
            balances[asset.asset] = balance
            if not isinstance(asset.update_time, Unset):
                balance_times[asset.asset] = asset.update_time
        positions: dict[tuple[str, str], Position] = {}
        position_times: dict[tuple[str, str], int] = {}
        for risk in risks:
            position = Position(
                symbol=risk.symbol,
                side=risk.position_side,
                amount=Decimal(risk.position_amount),
                entry_price=Decimal(risk.entry_price),
                raw=risk,
            )
            if position.amount != 0:
                positions[position.key] = position
                position_times[position.key] = risk.update_time
        open_orders: dict[tuple[str, int], Order] = {}
        for answer in orders:
            order = Order(
                symbol=answer.symbol,
                order_id=answer.order_id,
                client_order_id=answer.client_order_id,
                side=answer.side,
                type=answer.order_type,
                status=answer.order_status,
                price=Decimal(answer.price),
                quantity=Decimal(answer.original_quantity),
                executed_quantity=Decimal(answer.executed_quantity),
                position_side=answer.position_side,
                update_time=answer.update_time,
                raw=answer,
            )
            if order.is_open:
                open_orders[order.key] = order
        return Snapshot(
            taken_at=taken_at,
            balances=balances,
            positions=positions,
            open_orders=open_orders,
            balance_times=balance_times,
            position_times=position_times,
        )

    def trade_calls(self, symbol: str, start_time: int, from_id: int | None) -> Sequence[Call]:
        # Binance: fromId cannot be sent with startTime: the next page goes by id alone.
        where: dict[str, Any] = {"start_time": start_time} if from_id is None else {"from_id": from_id}
        return (Call(self.row.user_trades, list, {"symbol": symbol, "limit": self.page_size, **where}),)

    def trades(self, answers: Sequence[Any]) -> list[Trade]:
        return [
            Trade(
                symbol=answer.symbol,
                trade_id=answer.trade_id,
                order_id=answer.order_id,
                side=answer.side,
                price=Decimal(answer.price),
                quantity=Decimal(answer.quantity),
                commission=Decimal(answer.commission),
                commission_asset=answer.commission_asset,
                time=answer.trade_time,
                raw=answer,
            )
            for page in answers
            for answer in page
        ]

    def updates(self, event: object) -> Sequence[Update]:
        if isinstance(event, AccountUpdate):
            data, time = event.update_data, event.transaction_time
            updates: list[Update] = [
                BalanceUpdate(
                    Balance(
                        asset=b.asset,
                        wallet=Decimal(b.wallet_balance),
                        cross_wallet=Decimal(b.cross_wallet_balance),
                        raw=b,
                    ),
                    time,
                )
                for b in data.balances
            ]
            for p in [] if isinstance(data.positions, Unset) else data.positions:
                position = Position(
                    symbol=p.symbol,
                    side=p.position_side,
                    amount=Decimal(p.position_amount),
                    entry_price=Decimal(p.entry_price),
                    raw=p,
                )
                updates.append(PositionUpdate(position, time))
            return updates
        if not isinstance(event, OrderTradeUpdate):
            return []
        return order_trade_updates(event.order, event.transaction_time, event.order.position_side)
