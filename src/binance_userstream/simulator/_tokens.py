"""Margin's listenTokens: `POST /sapi/v1/userListenToken` mints them, the WebSocket API takes them.

Since margin's listenKeys were retired (2026-02-20), a margin account's events come through the spot
WebSocket API's `userDataStream.subscribe.listenToken`, with a token minted by a USER_STREAM REST
call, the API key alone ("Create Margin Account listenToken (USER_STREAM)",
https://developers.binance.com/docs/margin_trading/trade-data-stream, Listen-Token-Websocket-API):
`symbol` (required when `isIsolated=true`), `isIsolated` (default false: cross margin), `validity`
(ms, default and at most 24 hours); weight(UID) 1. It answers `{"token": ..., "expirationTime":
<ms>}`. An unsigned mint is what the page describes (ccxt sends it so); a signed one (python-binance
signs it: `timestamp`, `recvWindow`, `signature`) is accepted too, its signature and time checked as
any SIGNED request's, so that a client's signing is still tested: Binance documents nothing of a
signature sent to a USER_STREAM endpoint. Any other parameter is refused -1104 ("Not all sent
parameters were read", errors.md), as Binance refuses parameters an endpoint does not read; an
empty `symbol` -1105 (PARAM_EMPTY). The token is opaque, base64-like as Binance's example is. A
token belongs to one margin account: the cross margin account of the API key's
account, or its isolated margin account of one symbol. It expires on the simulator's clock.

An isolated margin account exists only for the pairs an account has enabled it for; a token for
any other pair is refused as Binance refuses it, 400 -11001 "Isolated margin account does not
exist." (the code unicorn-binance-websocket-api and nautilus_trader handle, and a third party
measured on production in 2026-07). The simulator's accounts have them for `ISOLATED_SYMBOLS`, or
the pairs given; None accepts any pair, as the simulator did before.

A signature, when sent, is over the parameters exactly as sent, percent-encoded (Binance requires it since
2026-01-15): the query string and the body concatenated, without the `signature` parameter, as
Binance defines totalParams (rest-api.md, "SIGNED endpoint examples"). The API key is the
`X-MBX-APIKEY` header. Tokens are kept out of reprs and logs (`redact`).
"""

from __future__ import annotations

import base64
import json
import math
import secrets
import threading
from collections.abc import Callable, Collection

from attrs import define, field

from binance_userstream._clock import Clock, wall_time
from binance_userstream.simulator._signing import Credential, Refusal, missing, refuse_signed, request_params

PATH = "/sapi/v1/userListenToken"
#: A token's validity when the request names none, and the longest it may ask for (ms).
VALIDITY_MS = 86_400_000
#: Random bytes in a token: 52 give 70 base64 characters, the length of Binance's example.
_TOKEN_BYTES = 52
#: The pairs whose isolated margin accounts every simulated account has, unless told otherwise.
ISOLATED_SYMBOLS = ("BTCUSDT", "ETHUSDT", "BNBUSDT", "ETHBTC", "BNBBTC")
NO_ISOLATED_ACCOUNT = Refusal(400, -11001, "Isolated margin account does not exist.")
#: The parameters a mint may send: the page's three, and a signed request's (python-binance's).
_PARAMETERS = frozenset({"symbol", "isIsolated", "validity", "timestamp", "recvWindow", "signature"})


@define(repr=False)
class ListenToken:
    """One minted token: whose margin account (the account; the isolated symbol, None for cross)
    and when it expires (the simulator's clock, and as a wall-clock `expirationTime` in ms)."""

    account: str
    symbol: str | None
    expires_at: float
    expiration_ms: int = field(default=0)

    def __repr__(self) -> str:  # the token itself is never held here, but the account may be a key
        scope = f"isolated {self.symbol}" if self.symbol else "cross"
        return f"ListenToken({scope}, expiration_ms={self.expiration_ms})"


class ListenTokens:
    """The listenTokens minted so far (expired ones are forgotten when looked at). Thread-safe.
    `isolated_symbols`: the pairs with an isolated margin account (None: any pair)."""

    def __init__(self, clock: Clock, isolated_symbols: Collection[str] | None = ISOLATED_SYMBOLS) -> None:
        if isolated_symbols is not None and (
            isinstance(isolated_symbols, str)
            or not all(isinstance(symbol, str) and symbol for symbol in isolated_symbols)
        ):
            raise ValueError(
                "isolated_symbols is a collection of pairs (non-empty str, such as 'BTCUSDT'), or None"
            )
        self.clock = clock
        self.isolated_symbols = None if isolated_symbols is None else frozenset(isolated_symbols)
        self._lock = threading.Lock()
        self._tokens: dict[str, ListenToken] = {}
        self._uid_weight: dict[tuple[str, int], int] = {}  # (account, minute) -> weight used

    def mint(
        self, account: str, symbol: str | None = None, validity_ms: int = VALIDITY_MS
    ) -> tuple[str, int]:
        """A new token for `account`'s cross margin (or `symbol`'s isolated margin) account, valid
        for `validity_ms`; returns (token, expirationTime in ms)."""
        value = base64.b64encode(secrets.token_bytes(_TOKEN_BYTES)).decode().rstrip("=")
        expiration_ms = int(wall_time(self.clock) * 1000) + validity_ms
        with self._lock:
            now = self.clock.now()
            for old in [t for t, token in self._tokens.items() if token.expires_at <= now]:
                del self._tokens[old]
            self._tokens[value] = ListenToken(account, symbol, now + validity_ms / 1000, expiration_ms)
        return value, expiration_ms

    def revoke(self, account: str | None = None) -> int:
        """Forget every token (a fault: as if all had expired), or `account`'s (its API key was
        deleted); returns how many there were."""
        with self._lock:
            gone = [t for t, token in self._tokens.items() if account in (None, token.account)]
            for value in gone:
                del self._tokens[value]
        return len(gone)

    def get(self, value: str) -> ListenToken | None:
        """The live token `value`; None if it was never minted or has expired."""
        with self._lock:
            token = self._tokens.get(value)
            if token is not None and token.expires_at <= self.clock.now():
                del self._tokens[value]
                return None
            return token

    def handle(
        self,
        method: str,
        raw_query: str,
        raw_body: str,
        account: str | Refusal,
        credential: Callable[[], Credential | None],
    ) -> tuple[int, bytes, tuple[tuple[str, str], ...]]:
        """Answer `POST /sapi/v1/userListenToken`: (status, JSON body, headers). `account` is the API
        key's account (or why it is refused), `credential` finds the key's credential."""
        if method != "POST":
            return _refusal(
                Refusal(405, -1000, f"Method {method} is not allowed on {PATH}."), ("Allow", "POST")
            )
        if isinstance(account, Refusal):
            return _refusal(account)
        params = request_params(raw_query, raw_body)
        unread = set(params) - _PARAMETERS
        if unread:  # errors.md: -1104 TOO_MANY_PARAMETERS
            read = len(params) - len(unread)
            return _refusal(
                Refusal(
                    400,
                    -1104,
                    f"Not all sent parameters were read; read '{read}' parameter(s) but was sent "
                    f"'{len(params)}'.",
                )
            )
        if "signature" in params:
            refused = refuse_signed(raw_query, raw_body, credential(), wall_time(self.clock) * 1000)
            if refused is not None:
                return _refusal(refused)
        isolated = params.get("isIsolated", "FALSE").upper()
        if isolated not in ("TRUE", "FALSE"):
            return _refusal(missing("isIsolated"))
        if params.get("symbol") == "":  # errors.md: -1105 PARAM_EMPTY
            return _refusal(Refusal(400, -1105, "Parameter 'symbol' was empty."))
        symbol = params.get("symbol") or None
        if isolated == "TRUE" and symbol is None:
            return _refusal(missing("symbol"))
        validity = params.get("validity", str(VALIDITY_MS))
        if not validity.isdigit() or int(validity) == 0:
            return _refusal(missing("validity"))
        if int(validity) > VALIDITY_MS:
            return _refusal(
                Refusal(
                    400, -1102, f"'validity' contains unexpected value. Cannot be greater than {VALIDITY_MS}."
                )
            )
        if isolated == "TRUE" and self.isolated_symbols is not None and symbol not in self.isolated_symbols:
            return _refusal(NO_ISOLATED_ACCOUNT)
        weight = self._charge(account)
        token, expiration_ms = self.mint(account, symbol if isolated == "TRUE" else None, int(validity))
        body = json.dumps({"token": token, "expirationTime": expiration_ms}).encode()
        return 200, body, (("X-SAPI-USED-UID-WEIGHT-1M", str(weight)),)

    def _charge(self, account: str) -> int:
        """Count weight(UID) 1 against the account this minute; returns the minute's total."""
        minute = math.floor(self.clock.now() / 60)
        with self._lock:
            for stale in [k for k in self._uid_weight if k[1] != minute]:
                del self._uid_weight[stale]
            used = self._uid_weight.get((account, minute), 0) + 1
            self._uid_weight[account, minute] = used
            return used

    def __repr__(self) -> str:
        with self._lock:
            return f"ListenTokens({len(self._tokens)} minted)"


def _refusal(refusal: Refusal, *headers: tuple[str, str]) -> tuple[int, bytes, tuple[tuple[str, str], ...]]:
    return refusal.status, json.dumps({"code": refusal.code, "msg": refusal.msg}).encode(), headers
