"""A local Binance user-data-stream simulator for tests and demos: real HTTP on loopback.

    from binance_userstream.simulator import Fault, Simulator

    with Simulator() as sim:
        sim.inject(Fault.rate_limited(retry_after=1), Fault.drop())
        ...  # point any client at sim.url

It serves every listenKey market on one port, each with its documented semantics (the rows of
`MARKETS`: spot's /api/v3/userDataStream, USD-M's /fapi/v1/listenKey, COIN-M's /dapi, Portfolio
Margin's /papi, Options' /eapi; see `Exchange`). By default it answers as production does today:
spot as since 2026-02-20 (410, HTML) while the derivatives stay live, and margin's retired
/sapi/v1/userDataStream paths always answer 410. `Simulator(retired=False)` serves spot's old
lifecycle for programs written before, and `isolated_symbols=None` accepts any isolated margin
pair (by default only those of `ISOLATED_SYMBOLS` exist; others are refused -11001, as Binance
does). The same port serves the derivatives' user-data event streams (USD-M
`/private/ws?listenKey=&events=`, which without `events` delivers nothing, as production, unless
`strict_events=False`; `/private/stream`; COIN-M `/ws/<key>` and `/stream`, Portfolio Margin
`/pm/ws/<key>` and `/pm/stream`, Portfolio Margin Pro `/pm-classic/ws/<USD-M key>` and
`/pm-classic/stream`, Options `/private/ws/<key>`), many keys on one combined stream as Binance's
SDKs subscribe them, fed by `sim.push`, `sim.push_accounts` and `sim.traffic`, sharing
`Simulator.exchange`; see `_streams`. Per client IP it holds Binance's limits on new connections
and WebSocket API weight (see `_limits`); `sim.revoke_key` deletes a key mid-stream.

Spot's and margin's events, whose listenKeys are retired, come as Binance sends them now: on the
spot WebSocket API, `sim.ws_api_url` (`ws://HOST:PORT/ws-api/v3`), with its user-data methods
(`userDataStream.subscribe.signature`, `session.logon` + `userDataStream.subscribe`,
`userDataStream.unsubscribe`, `session.subscriptions`, `userDataStream.subscribe.listenToken`; see
`_wsapi`), each event as `{"subscriptionId": N, "event": ...}`. Margin's listenTokens are minted by
`POST /sapi/v1/userListenToken` (see `_tokens`). Signed requests are verified with the key's
credential: the test account's is Binance's documented example pair, `TEST_API_KEY` and
`TEST_API_SECRET` (HMAC; published, so not secret); `sim.register_key(api_key, secret=... |
public_key=PEM)` adds an HMAC, RSA or Ed25519 key, the same account everywhere (see `_signing`).

Each account has a ledger per market (see `_ledger`): `sim.traffic`, `sim.place_order`,
`sim.fill_order` and `sim.cancel_order` move it by the very events they push, whether or not anyone
listens, and the account's signed REST reads (account, balances, positions, open orders, trades;
see `_account_routes`) answer from it, with Binance's shapes and weights. `sim.ledger(market)` shows
it to tests.
"""

from binance_userstream._clock import AcceleratedClock, SystemClock, VirtualClock
from binance_userstream.simulator._exchange import Exchange
from binance_userstream.simulator._faults import Fault
from binance_userstream.simulator._ledger import (
    LedgerBalance,
    LedgerOrder,
    LedgerPosition,
    LedgerTrade,
    LedgerView,
)
from binance_userstream.simulator._markets import MARKETS, Market
from binance_userstream.simulator._server import Simulator
from binance_userstream.simulator._signing import TEST_API_KEY, TEST_API_SECRET
from binance_userstream.simulator._streams import Delivery
from binance_userstream.simulator._tokens import ISOLATED_SYMBOLS
from binance_userstream.simulator._traffic import Traffic

__all__ = [
    "ISOLATED_SYMBOLS",
    "MARKETS",
    "TEST_API_KEY",
    "TEST_API_SECRET",
    "AcceleratedClock",
    "Delivery",
    "Exchange",
    "Fault",
    "LedgerBalance",
    "LedgerOrder",
    "LedgerPosition",
    "LedgerTrade",
    "LedgerView",
    "Market",
    "Simulator",
    "SystemClock",
    "Traffic",
    "VirtualClock",
]
