"""What a derivatives ORDER_TRADE_UPDATE tells the mirror: the order's state and, for a fill, the trade.

USD-M's, COIN-M's, Portfolio Margin's and Options' order updates spell their fields alike in the
generated models (`o.s`, `o.i`, `o.X`, `o.z`, `o.t`, ...), so one reading serves the four families.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Protocol

from binance_userstream_client.types import Unset

from binance_userstream.account._family import OrderUpdate, TradeSeen, Update
from binance_userstream.account._state import Order, Trade


class DerivativesOrder(Protocol):
    """The fields of an ORDER_TRADE_UPDATE's `o` the mirror reads."""

    @property
    def symbol(self) -> str: ...
    @property
    def order_id(self) -> int: ...
    @property
    def client_order_id(self) -> str: ...
    @property
    def side(self) -> str: ...
    @property
    def order_type(self) -> str: ...
    @property
    def order_status(self) -> str: ...
    @property
    def price(self) -> str: ...
    @property
    def quantity(self) -> str: ...
    @property
    def cumulative_filled_quantity(self) -> str: ...
    @property
    def execution_type(self) -> str: ...
    @property
    def trade_id(self) -> int: ...
    @property
    def last_filled_price(self) -> str: ...
    @property
    def last_filled_quantity(self) -> str: ...
    @property
    def trade_time(self) -> int: ...
    @property
    def commission(self) -> str | Unset: ...
    @property
    def commission_asset(self) -> str | Unset: ...


def order_trade_updates(o: DerivativesOrder, time: int, position_side: str | None = None) -> list[Update]:
    """The order at `time` (the envelope's transaction time `T`), and for a fill (`x` TRADE) the
    trade. Binance does not push `n` and `N` for a fill without commission: 0 and ""."""
    order = Order(
        symbol=o.symbol,
        order_id=o.order_id,
        client_order_id=o.client_order_id,
        side=o.side,
        type=o.order_type,
        status=o.order_status,
        price=Decimal(o.price),
        quantity=Decimal(o.quantity),
        executed_quantity=Decimal(o.cumulative_filled_quantity),
        position_side=position_side,
        update_time=time,
        raw=o,
    )
    updates: list[Update] = [OrderUpdate(order)]
    if o.execution_type == "TRADE":
        trade = Trade(
            symbol=o.symbol,
            trade_id=o.trade_id,
            order_id=o.order_id,
            side=o.side,
            price=Decimal(o.last_filled_price),
            quantity=Decimal(o.last_filled_quantity),
            commission=Decimal(0) if isinstance(o.commission, Unset) else Decimal(o.commission),
            commission_asset="" if isinstance(o.commission_asset, Unset) else o.commission_asset,
            time=o.trade_time,
            raw=o,
        )
        updates.append(TradeSeen(trade))
    return updates
