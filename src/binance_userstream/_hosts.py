"""Named Binance REST hosts, so callers can say `base_url="testnet"` (each market's row in
`_markets`), and which hosts share one IP limit and ban (`BAN_GROUPS`)."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from types import MappingProxyType
from urllib.parse import urlsplit

from binance_userstream._markets import MARKETS, Market
from binance_userstream._secrets import check_base_url, is_loopback

HOSTS: Mapping[str, str] = MARKETS["spot"].hosts
"""Spot's named hosts (kept for programs written before `market=`); see `Market.hosts`."""


#: Hosts that share one rate limit and one IP ban, by group. Binance counts request weight and
#: bans per IP and per API family: the spot hosts (api, api-gcp, api1-4) are one front end
#: ("api1-4 ... may give better performance but have less stability":
#: https://github.com/binance/binance-spot-api-docs, rest-api.md, General API Information), while
#: each derivatives API (USD-M, COIN-M, Portfolio Margin, Options) keeps its own limits and bans,
#: and each test network its own. So a 418 from api1 stops api.binance.com too, but not fapi.
#: A family's WebSocket hosts are in its group: "The limits on the API are based on the IPs" (the
#: same page, LIMITS), so a 429 or 418 on a stream's handshake holds REST calls back, and a ban seen
#: by REST holds the stream's reconnects back (fstream also carries Portfolio Margin's and Options'
#: streams since 2026; it is counted with USD-M, whose host it was).
#: Adding a host is one row. Hosts not listed form a group of their own (name and port).
BAN_GROUPS = MappingProxyType(
    {
        "ws-api.binance.com": "binance-spot",
        "ws-api.testnet.binance.vision": "binance-spot-testnet",
        "fstream.binance.com": "binance-usdm",
        "dstream.binance.com": "binance-coinm",
        "fstream.binancefuture.com": "binance-futures-testnet",
        "dstream.binancefuture.com": "binance-futures-testnet",
        "demo-fstream.binance.com": "binance-usdm-demo",
        "api.binance.com": "binance-spot",
        "api-gcp.binance.com": "binance-spot",
        "api1.binance.com": "binance-spot",
        "api2.binance.com": "binance-spot",
        "api3.binance.com": "binance-spot",
        "api4.binance.com": "binance-spot",
        "testnet.binance.vision": "binance-spot-testnet",
        "fapi.binance.com": "binance-usdm",
        "dapi.binance.com": "binance-coinm",
        "papi.binance.com": "binance-portfolio-margin",
        "eapi.binance.com": "binance-options",
        "testnet.binancefuture.com": "binance-futures-testnet",
        "demo-fapi.binance.com": "binance-usdm-demo",
    }
)


@functools.lru_cache(maxsize=256)
def ban_group(host: str) -> str:
    """The ban group of `host` ("name" or "name:port", as in a URL): the BAN_GROUPS entry of its
    name (case and a trailing dot ignored, so "API1.binance.com." is "binance-spot"), else the
    normalised "name:port" itself."""
    name, port = host, ""
    if host.startswith("["):
        name, _, rest = host[1:].partition("]")
        port = rest.removeprefix(":")
    elif host.count(":") == 1:
        name, _, port = host.partition(":")
    name = name.rstrip(".").lower()
    group = BAN_GROUPS.get(name)
    if group is not None:
        return group
    return f"{name}:{port}" if port else name


def _named(value: str, hosts: Mapping[str, str], what: str, kind: str, market: Market) -> str | None:
    """The host `value` names in `hosts`; None when `value` is a URL; else ValueError listing the
    names (the value itself is shown only when it is a plain name: never echo what may be a secret)."""
    if value in hosts:
        return hosts[value]
    if "://" in value:
        return None
    names = ", ".join(repr(name) for name in hosts)
    shown = f" {value!r}" if value.isidentifier() else ""
    raise ValueError(
        f"{what}{shown} is neither a URL nor a {kind} of market {market.name!r}: use {names}, or a URL"
    )


def resolve_base_url(base_url: str | None, market: Market) -> str:
    """The market's production host for None, a host name from its row, or a checked URL.

    A URL with userinfo (`https://user:pw@host`) is refused: Binance takes no credentials there,
    and the password would show in the client's repr; the error does not repeat the URL.
    """
    if base_url is None:
        return check_base_url(market.production)
    named = _named(base_url, market.hosts, "base_url", "host", market)
    if named is not None:
        return check_base_url(named)
    if "@" in urlsplit(base_url).netloc:
        raise ValueError("base_url must not contain a user name or password (user:password@host)")
    return check_base_url(base_url)


def resolve_stream_url(stream_url: str | None, market: Market) -> str:
    """The market's production stream host for None, a name from its `stream_hosts`, or a checked
    URL: wss, or plain ws to a loopback host (a local simulator), with no user, password or query,
    and no path but the market's own fixed part (`wss://ws-api.binance.com:443/ws-api/v3`, as
    Binance documents it and the simulator prints it): the client appends the market's path.
    ValueError for a market without a stream."""
    if not market.stream_hosts or market.stream_path is None:
        raise ValueError(f"market {market.name!r} has no listenKey event stream")
    if stream_url is None:
        return market.stream_hosts["production"]
    named = _named(stream_url, market.stream_hosts, "stream_url", "stream host", market)
    if named is not None:
        return named
    parts = urlsplit(stream_url)
    if parts.scheme not in ("ws", "wss") or not parts.hostname:
        raise ValueError("stream_url must be a ws(s) URL (scheme, host and port) or a stream host name")
    if "@" in parts.netloc:
        raise ValueError("stream_url must not contain a user name or password (user:password@host)")
    if parts.path.rstrip("/") not in ("", _fixed_path(market)) or parts.query or parts.fragment:
        raise ValueError(
            f"stream_url is a host (scheme, host, port), or a host and {_fixed_path(market)}: the client"
            " appends the market's path"
        )
    if parts.scheme == "ws" and not is_loopback(parts.hostname):
        raise ValueError(f"refusing plain ws to {parts.hostname}: the listenKey would travel unencrypted")
    return f"{parts.scheme}://{parts.netloc}"


def _fixed_path(market: Market) -> str:
    """The part of the market's stream path before the listenKey (`/ws-api/v3`, `/private/ws`)."""
    assert market.stream_path is not None
    return market.stream_path.split("{", 1)[0].split("?", 1)[0].rstrip("/")
