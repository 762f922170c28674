"""The account mirror: balances, positions and open orders kept from events, healed from REST."""

from binance_userstream.account._async import AsyncAccountMirror
from binance_userstream.account._state import (
    AccountState,
    Balance,
    Change,
    Order,
    Position,
    Reconciled,
    Trade,
)
from binance_userstream.account._sync import AccountMirror

__all__ = [
    "AccountMirror",
    "AccountState",
    "AsyncAccountMirror",
    "Balance",
    "Change",
    "Order",
    "Position",
    "Reconciled",
    "Trade",
]
