"""Which family reads which market's account: the registry `uds.account()` looks its market up in."""

from __future__ import annotations

from collections.abc import Callable

from binance_userstream.account._family import Family
from binance_userstream.account._futures import COINM, USDM, FuturesFamily
from binance_userstream.account._options import OptionsFamily
from binance_userstream.account._portfolio import PortfolioFamily
from binance_userstream.account._spot import SpotFamily

#: Market name -> the family for that market, given isolated margin's symbol (None elsewhere).
FAMILIES: dict[str, Callable[[str | None], Family]] = {
    "spot": lambda symbol: SpotFamily("spot"),
    "margin": lambda symbol: SpotFamily("margin" if symbol is None else "isolated"),
    "usdm": lambda symbol: FuturesFamily(USDM),
    "coinm": lambda symbol: FuturesFamily(COINM),
    "portfolio": lambda symbol: PortfolioFamily(),
    "options": lambda symbol: OptionsFamily(),
}

#: Markets that will never have a mirror, and why.
_NO_MIRROR = {
    "portfolio_pro": (
        "Portfolio Margin Pro's stream carries no orders, balances or positions the mirror could keep "
        "current (only PM_PRO_ACCOUNT_UPDATE and riskLevelChange)"
    ),
}


def family_for(market: str, symbol: str | None = None) -> Family:
    """The family of `market` (and isolated margin's `symbol`); a ValueError, before anything is
    sent, for a market without one."""
    if market in _NO_MIRROR:
        raise ValueError(f"market {market!r} has no account mirror: {_NO_MIRROR[market]}")
    make = FAMILIES.get(market)
    if make is None:
        raise ValueError(f"market {market!r} has no account mirror yet")
    return make(symbol)
