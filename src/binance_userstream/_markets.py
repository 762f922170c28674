"""The market table: each Binance market with a listenKey is one row of data.

A row names the market's generated operations (`binance_userstream_client.api.<market>`), its
hosts, how its keepalive and close carry the listenKey, and what its keepalive answers. The
facade, the session and the CLI read rows; none of them branches on a market's name, so adding a
market is a spec edit (its operations under a tag of its own), `make generate`, and one row here.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from types import MappingProxyType
from typing import Any, Protocol

import attrs
from binance_userstream_client.api.coinm import (
    close_coinm_listen_key,
    create_coinm_listen_key,
    keepalive_coinm_listen_key,
)
from binance_userstream_client.api.options import (
    close_options_listen_key,
    create_options_listen_key,
    keepalive_options_listen_key,
)
from binance_userstream_client.api.portfolio import (
    close_portfolio_listen_key,
    create_portfolio_listen_key,
    keepalive_portfolio_listen_key,
)
from binance_userstream_client.api.spot import (
    close_spot_listen_key,
    create_spot_listen_key,
    keepalive_spot_listen_key,
)
from binance_userstream_client.api.usdm import (
    close_usdm_listen_key,
    create_usdm_listen_key,
    keepalive_usdm_listen_key,
)
from binance_userstream_client.models import Empty, ListenKey, ListenKeyForm
from binance_userstream_client.types import Response


class Operation(Protocol):
    """A generated operation module: what the facade calls on it."""

    @property
    def sync_detailed(self) -> Callable[..., Response[Any]]: ...

    @property
    def asyncio_detailed(self) -> Callable[..., Awaitable[Response[Any]]]: ...


def _no_arguments(listen_key: str) -> dict[str, Any]:
    """The derivatives markets take no parameter: the API key implies the account's one key."""
    return {}


def _key_in_form(listen_key: str) -> dict[str, Any]:
    return {"body": ListenKeyForm(listen_key=listen_key)}


def _key_in_query(listen_key: str) -> dict[str, Any]:
    return {"listen_key": listen_key}


@attrs.frozen
class Market:
    """One market's listenKey lifecycle: its operations, hosts and wire rules."""

    name: str
    """What `market=` says: "usdm", "coinm", ..."""
    title: str
    """A name for people: "USD-M futures"."""
    hosts: Mapping[str, str]
    """Named REST hosts, "production" first: what `base_url=` may name."""
    create: Operation
    keepalive: Operation
    close: Operation
    keepalive_arguments: Callable[[str], dict[str, Any]]
    """The generated keepalive's keyword arguments for a listenKey."""
    close_arguments: Callable[[str], dict[str, Any]]
    keepalive_answer: type[ListenKey] | type[Empty]
    """The keepalive's success model: USD-M echoes the extended key, the others answer `{}`."""
    retired: str | None = None
    """When Binance retired this market's listenKey, and what replaces it; None while it is live."""

    @property
    def production(self) -> str:
        return self.hosts["production"]

    def __repr__(self) -> str:
        return f"<Market {self.name}: {self.title}>"


_SPOT_RETIREMENT = (
    "Binance retired spot listenKeys on 2026-02-20 07:00 UTC (spot testnet: 2026-02-04); spot's "
    "user data now comes from the WebSocket API's userDataStream.subscribe.signature"
)

MARKETS: Mapping[str, Market] = MappingProxyType(
    {
        market.name: market
        for market in (
            Market(
                name="usdm",
                title="USD-M futures",
                hosts=MappingProxyType(
                    {
                        "production": "https://fapi.binance.com",
                        "testnet": "https://testnet.binancefuture.com",
                        "demo": "https://demo-fapi.binance.com",
                    }
                ),
                create=create_usdm_listen_key,
                keepalive=keepalive_usdm_listen_key,
                close=close_usdm_listen_key,
                keepalive_arguments=_no_arguments,
                close_arguments=_no_arguments,
                keepalive_answer=ListenKey,
            ),
            Market(
                name="coinm",
                title="COIN-M futures",
                hosts=MappingProxyType(
                    {"production": "https://dapi.binance.com", "testnet": "https://testnet.binancefuture.com"}
                ),
                create=create_coinm_listen_key,
                keepalive=keepalive_coinm_listen_key,
                close=close_coinm_listen_key,
                keepalive_arguments=_no_arguments,
                close_arguments=_no_arguments,
                keepalive_answer=Empty,
            ),
            Market(
                name="portfolio",
                title="Portfolio Margin",
                hosts=MappingProxyType({"production": "https://papi.binance.com"}),
                create=create_portfolio_listen_key,
                keepalive=keepalive_portfolio_listen_key,
                close=close_portfolio_listen_key,
                keepalive_arguments=_no_arguments,
                close_arguments=_no_arguments,
                keepalive_answer=Empty,
            ),
            Market(
                name="options",
                title="Options",
                hosts=MappingProxyType({"production": "https://eapi.binance.com"}),
                create=create_options_listen_key,
                keepalive=keepalive_options_listen_key,
                close=close_options_listen_key,
                keepalive_arguments=_no_arguments,
                close_arguments=_no_arguments,
                keepalive_answer=Empty,
            ),
            Market(
                name="spot",
                title="Spot",
                hosts=MappingProxyType(
                    {
                        "production": "https://api.binance.com",
                        "gcp": "https://api-gcp.binance.com",
                        "api1": "https://api1.binance.com",
                        "api2": "https://api2.binance.com",
                        "api3": "https://api3.binance.com",
                        "api4": "https://api4.binance.com",
                        "testnet": "https://testnet.binance.vision",
                    }
                ),
                create=create_spot_listen_key,
                keepalive=keepalive_spot_listen_key,
                close=close_spot_listen_key,
                keepalive_arguments=_key_in_form,
                close_arguments=_key_in_query,
                keepalive_answer=Empty,
                retired=_SPOT_RETIREMENT,
            ),
        )
    }
)
"""Every market by name."""

DEFAULT_MARKET = "spot"
"""The default of `market=`: the seed's endpoint (retired; kept so old programs still run)."""


def market_named(name: str) -> Market:
    """The row for `name`, or ValueError listing the markets."""
    try:
        return MARKETS[name]
    except (KeyError, TypeError):
        known = ", ".join(repr(n) for n in MARKETS)
        raise ValueError(f"unknown market {name!r}: use one of {known}") from None


def live_markets() -> str:
    """The markets whose listenKeys still work, as `market=` values for an error message."""
    return ", ".join(f'market="{m.name}" ({m.title})' for m in MARKETS.values() if m.retired is None)
