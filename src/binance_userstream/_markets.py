"""The market table: each Binance market with a listenKey is one row of data.

A row names the market's generated operations (`binance_userstream_client.api.<market>`), its
hosts, how its keepalive and close carry the listenKey, and what its keepalive answers; and its
event stream: named stream hosts, the connection path for a key, the events it sends, its ping
interval and how long a connection lives. The
facade, the session and the CLI read rows; none of them branches on a market's name, so adding a
market is a spec edit (its operations under a tag of its own), `make generate`, and one row here.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from types import MappingProxyType
from typing import Any, Literal, Protocol
from urllib.parse import quote

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
from binance_userstream_client.models import (
    EVENT_TYPES,
    EVENT_TYPES_BY_MARKET,
    Empty,
    KeepaliveAnswer,
    ListenKey,
    ListenKeyForm,
    UserDataEvent,
)
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


Subscription = Literal["listen_key", "signature", "listen_token"]
"""How a market's event stream is authorised: a listenKey in the stream's URL (the derivatives), a
signed `userDataStream.subscribe.signature` on the WebSocket API (spot), or a listenToken minted by
USER_STREAM REST (the API key alone) and given to `userDataStream.subscribe.listenToken` (margin)."""


@attrs.frozen
class Market:
    """One market: its listenKey lifecycle (operations, hosts, wire rules) and its event stream."""

    name: str
    """What `market=` says: "usdm", "coinm", ..."""
    title: str
    """A name for people: "USD-M futures"."""
    hosts: Mapping[str, str]
    """Named REST hosts, "production" first: what `base_url=` may name."""
    create: Operation | None
    """The generated listenKey operations; None for a market that never had them in the spec."""
    keepalive: Operation | None
    close: Operation | None
    keepalive_arguments: Callable[[str], dict[str, Any]]
    """The generated keepalive's keyword arguments for a listenKey."""
    close_arguments: Callable[[str], dict[str, Any]]
    keepalive_answer: type[ListenKey] | type[KeepaliveAnswer] | type[Empty]
    """The keepalive's success model: USD-M echoes the extended key, COIN-M may echo it (or answer
    `{}`), the others answer `{}`. An echo naming another key means the one held is gone."""
    retired: str | None = None
    """When Binance retired this market's listenKey, and what replaces it; None while it is live."""
    stream_hosts: Mapping[str, str] = MappingProxyType({})
    """Named WebSocket hosts, "production" first: what `stream_url=` may name. Empty: no stream."""
    stream_path: str | None = None
    """The connection path: for a listenKey stream a template with `{key}` (and `{events}`, the
    `/`-separated wire names of `stream_events`); for the WebSocket API its fixed path."""
    subscription: Subscription = "listen_key"
    """How the stream is authorised (see `Subscription`)."""
    fleet_path: str | None = None
    """Where one connection carries many accounts' listenKeys (a combined stream that takes them by
    JSON `SUBSCRIBE`); None on the WebSocket API, whose `stream_path` carries many subscriptions."""
    stream_events: tuple[str, ...] = ()
    """The wire names (`"e"`) of the events this market's stream sends, each modelled by the spec."""
    ping_interval: float = 180.0
    """Seconds between the server's ping frames."""
    connection_lifetime: float = 24 * 3600.0
    """Seconds after which the server closes a connection."""
    event_types: Mapping[str, type[UserDataEvent]] = attrs.field(init=False, repr=False, eq=False)
    """Each of `stream_events` to the model its frames decode with: the market's own shape of that
    name if the spec has one (EVENT_TYPES_BY_MARKET), else the shared one (EVENT_TYPES). A name
    not listed has no model here, so another market's shape is never tried on this one's frames."""

    @event_types.default
    def _resolve_event_types(self) -> Mapping[str, type[UserDataEvent]]:
        own = EVENT_TYPES_BY_MARKET.get(self.name, {})
        unknown = [name for name in self.stream_events if name not in own and name not in EVENT_TYPES]
        if unknown:
            raise AssertionError(f"market {self.name!r} lists events the spec does not model: {unknown}")
        return MappingProxyType({name: own.get(name) or EVENT_TYPES[name] for name in self.stream_events})

    def stream_target(self, listen_key: str) -> str | None:
        """The path and query to connect to for `listen_key` (ignored by the WebSocket API, whose
        path names no key), or None if the market has no stream. The key is percent-encoded whole
        (a Binance key, letters and digits, is unchanged): it can add no path segment, parameter
        or fragment to the URL."""
        if self.stream_path is None:
            return None
        if self.subscription != "listen_key":
            return self.stream_path
        return self.stream_path.format(key=quote(listen_key, safe=""), events="/".join(self.stream_events))

    @property
    def fleet_target(self) -> str | None:
        """The path a fleet's connections open: one that carries many accounts."""
        return self.fleet_path if self.uses_listen_key else self.stream_path

    @property
    def uses_listen_key(self) -> bool:
        """True when the stream needs a listenKey kept alive by REST (the derivatives)."""
        return self.subscription == "listen_key"

    def operation(self, verb: Literal["create", "keepalive", "close"]) -> Operation:
        """The generated listenKey operation `verb`, or ValueError (before anything is sent) for a
        market whose listenKeys Binance retired before the spec described them (margin)."""
        found: Operation | None = getattr(self, verb)
        if found is None:
            raise ValueError(f"market {self.name!r} has no listenKey to {verb}: {self.retired}")
        return found

    @property
    def production(self) -> str:
        return self.hosts["production"]

    def __repr__(self) -> str:
        return f"<Market {self.name}: {self.title}>"


#: USD-M's private events (https://developers.binance.com/docs/derivatives/usds-margined-futures/
#: user-data-streams): since 2026-04-23 they come only from /private/ws with an `events` list, which
#: acts as an allow-list, so it names every one, listenKeyExpired included.
_USDM_EVENTS = (
    "ORDER_TRADE_UPDATE",
    "ACCOUNT_UPDATE",
    "MARGIN_CALL",
    "ACCOUNT_CONFIG_UPDATE",
    "TRADE_LITE",
    "ALGO_UPDATE",
    "STRATEGY_UPDATE",
    "GRID_UPDATE",
    "CONDITIONAL_ORDER_TRIGGER_REJECT",
    "listenKeyExpired",
)
#: COIN-M's (https://developers.binance.com/docs/derivatives/coin-margined-futures/user-data-streams):
#: USD-M's shapes, and no TRADE_LITE, ALGO_UPDATE nor CONDITIONAL_ORDER_TRIGGER_REJECT.
_COINM_EVENTS = (
    "ORDER_TRADE_UPDATE",
    "ACCOUNT_UPDATE",
    "MARGIN_CALL",
    "ACCOUNT_CONFIG_UPDATE",
    "STRATEGY_UPDATE",
    "GRID_UPDATE",
    "listenKeyExpired",
)
#: Portfolio Margin's events (https://developers.binance.com/docs/derivatives/portfolio-margin/
#: user-data-streams): its futures side's (UM and CM, told apart by `fs`), its margin account's
#: (spot's names, in its own shapes), and its own.
_PORTFOLIO_EVENTS = (
    "ORDER_TRADE_UPDATE",
    "ACCOUNT_UPDATE",
    "ACCOUNT_CONFIG_UPDATE",
    "CONDITIONAL_ORDER_TRADE_UPDATE",
    "ALGO_UPDATE",
    "executionReport",
    "outboundAccountPosition",
    "balanceUpdate",
    "liabilityChange",
    "openOrderLoss",
    "riskLevelChange",
    "listenKeyExpired",
)
#: Portfolio Margin Pro's (https://developers.binance.com/docs/derivatives/portfolio-margin-pro/
#: portfolio-margin-pro-user-data-stream); its uniMMRDrop (from 2026-10-29) has no documented payload,
#: so the spec does not model it: it arrives as an UnknownEvent.
_PORTFOLIO_PRO_EVENTS = ("riskLevelChange", "PM_PRO_ACCOUNT_UPDATE", "listenKeyExpired")
#: Options' private events (https://developers.binance.com/docs/derivatives/options-trading/
#: user-data-streams): ORDER_TRADE_UPDATE and ACCOUNT_UPDATE in Options' own shapes (the spec's
#: x-markets), the other three Options' alone.
_OPTIONS_EVENTS = (
    "ORDER_TRADE_UPDATE",
    "ACCOUNT_UPDATE",
    "BALANCE_POSITION_UPDATE",
    "GREEK_UPDATE",
    "RISK_LEVEL_CHANGE",
    "listenKeyExpired",
)
_SPOT_EVENTS = (
    "executionReport",
    "outboundAccountPosition",
    "balanceUpdate",
    "listStatus",
    "externalLockUpdate",
    "eventStreamTerminated",
    "listenKeyExpired",
    "serverShutdown",
)

_SPOT_RETIREMENT = (
    "Binance retired spot listenKeys on 2026-02-20 07:00 UTC (spot testnet: 2026-02-04); spot's "
    "user data now comes from the WebSocket API's userDataStream.subscribe.signature: events() "
    "subscribes that way"
)
_MARGIN_RETIREMENT = (
    "Binance retired margin listenKeys (/sapi/v1/userDataStream, /isolated) on 2026-02-20 07:00 UTC; "
    "margin's user data now comes from a listenToken (POST /sapi/v1/userListenToken) given to the "
    "WebSocket API's userDataStream.subscribe.listenToken: events() subscribes that way"
)
#: The spot WebSocket API (https://developers.binance.com/docs/binance-spot-api-docs/web-socket-api):
#: spot's and margin's user data since the listenKeys' retirement.
_WS_API_HOSTS = MappingProxyType(
    {
        "production": "wss://ws-api.binance.com:443",
        "production-9443": "wss://ws-api.binance.com:9443",
        "testnet": "wss://ws-api.testnet.binance.vision",
        "demo": "wss://demo-ws-api.binance.com",
    }
)
_SPOT_HOSTS = MappingProxyType(
    {
        "production": "https://api.binance.com",
        "gcp": "https://api-gcp.binance.com",
        "api1": "https://api1.binance.com",
        "api2": "https://api2.binance.com",
        "api3": "https://api3.binance.com",
        "api4": "https://api4.binance.com",
        "testnet": "https://testnet.binance.vision",
    }
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
                stream_hosts=MappingProxyType(
                    {
                        "production": "wss://fstream.binance.com",
                        "testnet": "wss://fstream.binancefuture.com",
                        "demo": "wss://demo-fstream.binance.com",
                    }
                ),
                stream_path="/private/ws?listenKey={key}&events={events}",
                fleet_path="/private/stream",
                stream_events=_USDM_EVENTS,
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
                keepalive_answer=KeepaliveAnswer,
                stream_hosts=MappingProxyType(
                    {"production": "wss://dstream.binance.com", "testnet": "wss://dstream.binancefuture.com"}
                ),
                stream_path="/ws/{key}",
                fleet_path="/stream",
                stream_events=_COINM_EVENTS,
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
                stream_hosts=MappingProxyType({"production": "wss://fstream.binance.com"}),
                stream_path="/pm/ws/{key}",
                fleet_path="/pm/stream",
                stream_events=_PORTFOLIO_EVENTS,
            ),
            Market(
                name="portfolio_pro",
                title="Portfolio Margin Pro",
                # Its listenKey is USD-M's (POST /fapi/v1/listenKey), kept alive and closed as USD-M's;
                # PM Pro has no testnet.
                hosts=MappingProxyType({"production": "https://fapi.binance.com"}),
                create=create_usdm_listen_key,
                keepalive=keepalive_usdm_listen_key,
                close=close_usdm_listen_key,
                keepalive_arguments=_no_arguments,
                close_arguments=_no_arguments,
                keepalive_answer=ListenKey,
                stream_hosts=MappingProxyType({"production": "wss://fstream.binance.com"}),
                stream_path="/pm-classic/ws/{key}",
                fleet_path="/pm-classic/stream",
                stream_events=_PORTFOLIO_PRO_EVENTS,
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
                stream_hosts=MappingProxyType({"production": "wss://fstream.binance.com"}),
                stream_path="/private/ws/{key}",
                fleet_path="/private/stream",
                stream_events=_OPTIONS_EVENTS,
                ping_interval=300.0,
            ),
            Market(
                name="spot",
                title="Spot",
                hosts=_SPOT_HOSTS,
                create=create_spot_listen_key,
                keepalive=keepalive_spot_listen_key,
                close=close_spot_listen_key,
                keepalive_arguments=_key_in_form,
                close_arguments=_key_in_query,
                keepalive_answer=Empty,
                retired=_SPOT_RETIREMENT,
                stream_hosts=_WS_API_HOSTS,
                stream_path="/ws-api/v3",
                stream_events=_SPOT_EVENTS,
                subscription="signature",
                ping_interval=20.0,
            ),
            Market(
                name="margin",
                title="Margin (cross, or isolated with symbol=)",
                # /sapi/v1/userListenToken lives on the spot hosts; the spot testnet has no margin.
                hosts=MappingProxyType({k: v for k, v in _SPOT_HOSTS.items() if k != "testnet"}),
                create=None,
                keepalive=None,
                close=None,
                keepalive_arguments=_no_arguments,
                close_arguments=_no_arguments,
                keepalive_answer=Empty,
                retired=_MARGIN_RETIREMENT,
                stream_hosts=_WS_API_HOSTS,
                stream_path="/ws-api/v3",
                stream_events=_SPOT_EVENTS,
                subscription="listen_token",
                ping_interval=20.0,
            ),
        )
    }
)
"""Every market by name."""


def _check_every_market_model_is_listed() -> None:
    """A model the spec gives one market (`x-markets`) is one that market's row lists: else its
    frames would arrive as UnknownEvent, the model unused."""
    for market, models in EVENT_TYPES_BY_MARKET.items():
        listed = MARKETS[market].stream_events if market in MARKETS else ()
        unlisted = sorted(set(models) - set(listed))
        if unlisted:
            raise AssertionError(f"the spec models {unlisted} for market {market!r}, whose row lacks them")


_check_every_market_model_is_listed()

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


def ws_api_markets() -> str:
    """The markets whose events come from the WebSocket API, as `market=` values for a message."""
    return ", ".join(f'market="{m.name}"' for m in MARKETS.values() if not m.uses_listen_key)
