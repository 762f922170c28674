"""Named Binance REST hosts, so callers can say `base_url="testnet"` (each market's row in `_markets`)."""

from __future__ import annotations

from collections.abc import Mapping

from binance_userstream._markets import MARKETS, Market
from binance_userstream._secrets import check_base_url

HOSTS: Mapping[str, str] = MARKETS["spot"].hosts
"""Spot's named hosts (kept for programs written before `market=`); see `Market.hosts`."""


def resolve_base_url(base_url: str | None, market: Market) -> str:
    """The market's production host for None, a host name from its row, or a checked URL."""
    if base_url is None:
        return check_base_url(market.production)
    if base_url in market.hosts:
        return check_base_url(market.hosts[base_url])
    if "://" not in base_url:
        names = ", ".join(repr(name) for name in market.hosts)
        shown = f" {base_url!r}" if base_url.isidentifier() else ""  # never echo what may be a secret
        raise ValueError(
            f"base_url{shown} is neither a URL nor a host of market {market.name!r}: use {names}, or a URL"
        )
    return check_base_url(base_url)
