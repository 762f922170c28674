"""The listenKey markets the simulator serves, as data: one row per market, no branch per name.

Each row is what Binance documents for that market's `POST/PUT/DELETE <path>`: the request weight,
the REQUEST_WEIGHT limit per minute per IP of its host, whether keepalive and close name the key or
the API key implies it, what a keepalive answers, and whether the path is retired. Sources:

- spot: https://github.com/binance/binance-spot-api-docs (CHANGELOG 2023-08-25: weight 2; rest-api.md
  LIMITS: 6,000 per minute; CHANGELOG 2026-01-21: retired on 2026-02-20 07:00 UTC);
- USD-M: https://developers.binance.com/docs/derivatives/usds-margined-futures/user-data-streams
  (keepalive takes no parameter and answers `{"listenKey": <the key extended>}`; weight 1) and its
  general-info page (2,400 per minute per IP);
- COIN-M: https://developers.binance.com/docs/derivatives/coin-margined-futures/user-data-streams
  (weight 1); 2,400 per minute as USD-M (the futures IP limit of
  https://developers.binance.com/docs/vip_services/Query-Futures-IP-Rate-Limits, UM and CM). Its
  keepalive answers `{"listenKey": <the key extended>}`, as USD-M's: the older pages showed `{}`, but
  Binance's own COIN-M SDK, generated from the API descriptions Binance keeps for production, has
  modelled the answer with a `listenKey` since its 2026-01-13 release
  (binance-sdk-derivatives-trading-coin-futures 14.1.0, `KeepaliveUserDataStreamResponse`; page
  https://developers.binance.com/en/docs/catalog/core-trading-derivatives-trading-coin-m-futures/api/rest-api/user-data-streams).
  The newer, official evidence wins the default, and the echo is the answer a client must check
  (another key means its own is gone); `Simulator(coinm_keepalive_echoes_key=False)` answers `{}`,
  for clients written to the older pages;
- Portfolio Margin: https://developers.binance.com/docs/derivatives/portfolio-margin/user-data-streams
  (keepalive answers `{}`; weight 1); its general-info page gives 6,000 per minute per IP;
- Options: https://developers.binance.com/docs/derivatives/options-trading/user-data-streams
  (Keepalive-User-Data-Stream: no parameter, answers `{}`, weight 1; its start answers `expiration`,
  the key's expiry in ms, beside the key: https://developers.binance.com/en/docs/catalog/
  core-trading-derivatives-trading-options/api/rest-api/user-data-streams); the options docs name no
  number for the limit (it is in `/eapi/v1/exchangeInfo`), so the simulator keeps spot's 6,000;
- event streams: a ping frame every 3 minutes on USD-M, COIN-M and Portfolio Margin, every 5 minutes
  on Options (https://developers.binance.com/docs/derivatives/usds-margined-futures/websocket-market-streams,
  https://developers.binance.com/docs/derivatives/options-trading/websocket-market-streams);
- spot's WebSocket API (where spot's and margin's events now come): a ping frame every 20 seconds,
  a pong due within a minute (https://github.com/binance/binance-spot-api-docs, web-socket-api.md);
- margin: https://developers.binance.com/docs/margin_trading (change log 2026-01-21: cross and
  isolated margin's `/sapi/v1/userDataStream[/isolated]` retired on 2026-02-20 07:00 UTC).
"""

from __future__ import annotations

from typing import Literal

from attrs import frozen

#: When a path answers 410 Gone: never (derivatives), in the simulator's retired mode, its default
#: (spot, whose old lifecycle `retired=False` still serves to test old programs), or always (margin).
Retirement = Literal["never", "in retired mode", "always"]
METHODS = ("POST", "PUT", "DELETE")


@frozen
class Market:
    """One listenKey market as Binance documents it."""

    name: str
    path: str
    #: Production REST host. Each host counts request weight per IP on its own.
    host: str
    weight: int
    #: REQUEST_WEIGHT per minute per IP on `host`.
    weight_limit: int
    #: True: PUT and DELETE take the key as the `listenKey` parameter (spot). False: they take no
    #: parameter and act on the account's active key, which the API key implies (derivatives); a
    #: `listenKey` parameter sent anyway is ignored, as production ignores it from the clients that
    #: still send it (python-binance's futures keepalive does).
    key_in_request: bool
    #: True: a keepalive answers `{"listenKey": <the key extended>}` (USD-M, COIN-M); False: `{}`.
    keepalive_echoes_key: bool
    #: True: a start answers `expiration`, when the key expires (ms since the epoch), beside it (Options).
    create_answers_expiration: bool = False
    retired: Retirement = "never"
    #: Seconds between the ping frames the market's event stream sends.
    ping_interval: float = 180.0

    def operations(self) -> frozenset[tuple[str, str]]:
        return frozenset((method, self.path) for method in METHODS)


SPOT = Market(
    "spot",
    "/api/v3/userDataStream",
    "api.binance.com",
    weight=2,
    weight_limit=6000,
    key_in_request=True,
    keepalive_echoes_key=False,
    retired="in retired mode",
    ping_interval=20.0,
)
USDM = Market(
    "usdm",
    "/fapi/v1/listenKey",
    "fapi.binance.com",
    weight=1,
    weight_limit=2400,
    key_in_request=False,
    keepalive_echoes_key=True,
)
COINM = Market(
    "coinm",
    "/dapi/v1/listenKey",
    "dapi.binance.com",
    weight=1,
    weight_limit=2400,
    key_in_request=False,
    keepalive_echoes_key=True,
)
PORTFOLIO = Market(
    "portfolio",
    "/papi/v1/listenKey",
    "papi.binance.com",
    weight=1,
    weight_limit=6000,
    key_in_request=False,
    keepalive_echoes_key=False,
)
OPTIONS = Market(
    "options",
    "/eapi/v1/listenKey",
    "eapi.binance.com",
    weight=1,
    weight_limit=6000,
    key_in_request=False,
    keepalive_echoes_key=False,
    create_answers_expiration=True,
    ping_interval=300.0,
)
#: Margin's old lifecycle (a listenKey parameter, like spot's) is never served: production has
#: answered 410 since 2026-02-20, and a simulator that served it would only mislead.
MARGIN = Market(
    "margin",
    "/sapi/v1/userDataStream",
    "api.binance.com",
    weight=1,
    weight_limit=6000,
    key_in_request=True,
    keepalive_echoes_key=False,
    retired="always",
)
MARGIN_ISOLATED = Market(
    "margin-isolated",
    "/sapi/v1/userDataStream/isolated",
    "api.binance.com",
    weight=1,
    weight_limit=6000,
    key_in_request=True,
    keepalive_echoes_key=False,
    retired="always",
)

#: Every market the simulator answers for, by path.
MARKETS: tuple[Market, ...] = (SPOT, USDM, COINM, PORTFOLIO, OPTIONS, MARGIN, MARGIN_ISOLATED)
