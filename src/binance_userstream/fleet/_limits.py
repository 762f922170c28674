"""Binance's per-IP limits on WebSocket use, kept by the fleet rather than discovered by bans.

A `Window` is a sliding log of what was spent: at most `limit` units within any `span` seconds.
It reads no clock; the caller says when. `FleetLimits` holds the figures, with defaults below
Binance's documented ones so that the rest of the IP's programs keep some room:

- new connections: 300 per 5 minutes per IP, on the WebSocket API and the streams alike
  (spot web-socket-api.md and web-socket-streams.md "WebSocket Limits"; the derivatives'
  market-streams pages);
- WebSocket API request weight: 6,000 per minute per IP, shared with REST
  (`userDataStream.subscribe.signature` and `.listenToken` weigh 2, `userDataStream.unsubscribe` 2,
  connecting 2);
- incoming messages: 10 per second per derivatives connection, SUBSCRIBE and pongs included
  (USD-M and COIN-M market-streams pages), 5 on spot's streams.
"""

from __future__ import annotations

import math
from collections import deque

from attrs import field, frozen


def _positive_int(_: object, attribute: object, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{getattr(attribute, 'name', attribute)} must be a positive int, not {value!r}")


def _positive(_: object, attribute: object, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < float("inf"):
        raise ValueError(f"{getattr(attribute, 'name', '?')} must be a positive number, not {value!r}")


@frozen
class FleetLimits:
    """How fast a fleet may open connections and subscribe, and how many accounts a connection carries."""

    connections: int = field(default=250, validator=_positive_int)
    """New WebSocket connections per `connection_window`, per IP (Binance: 300 per 5 minutes)."""
    connection_window: float = field(default=300.0, validator=_positive)
    request_weight: int = field(default=4_800, validator=_positive_int)
    """WebSocket API request weight per `weight_window` (Binance: 6,000 per minute per IP, which REST
    shares: the rest is left to the IP's REST calls)."""
    weight_window: float = field(default=60.0, validator=_positive)
    messages_per_second: float = field(default=5.0, validator=_positive)
    """Control messages (SUBSCRIBE, UNSUBSCRIBE) sent per second on a derivatives connection
    (Binance: 10 incoming messages per second, pongs included)."""
    per_connection: int | None = field(default=None)
    """Accounts per connection; None: the market's most (1,000 on the WebSocket API, 1,024 streams
    on USD-M and COIN-M, 200 on Options)."""
    keys_per_message: int = field(default=100, validator=_positive_int)
    """listenKeys named in one SUBSCRIBE message."""

    def __attrs_post_init__(self) -> None:
        if self.per_connection is not None:
            _positive_int(self, "per_connection", self.per_connection)


class Window:
    """At most `limit` units spent within any `span` seconds: a sliding log of what was spent when."""

    def __init__(self, limit: int, span: float) -> None:
        self.limit = limit
        self.span = span
        self._log: deque[tuple[float, int]] = deque()
        self._used = 0

    def used(self, at: float) -> int:
        """Units spent within the `span` before `at`."""
        self._expire(at)
        return self._used

    def wait(self, at: float, units: int = 1) -> float:
        """Seconds from `at` until `units` fit (0.0: now). A request larger than the limit fits once
        nothing else is in the window."""
        self._expire(at)
        if self._used + units <= self.limit or not self._log:
            return 0.0
        need = self._used + units - self.limit
        freed = 0
        for spent_at, amount in self._log:
            freed += amount
            if freed >= need:
                return spent_at + self.span - at
        return self._log[-1][0] + self.span - at

    def take(self, at: float, units: int = 1) -> None:
        """Spend `units` at `at` (the caller asked `wait` first)."""
        if self._log and self._log[-1][0] == at:
            last_at, amount = self._log.pop()
            self._log.append((last_at, amount + units))
        else:
            self._log.append((at, units))
        self._used += units

    def _expire(self, at: float) -> None:
        log = self._log
        while log and log[0][0] + self.span <= at:
            self._used -= log.popleft()[1]


def start_time(limits: FleetLimits, accounts: int, capacity: int, *, ws_api: bool) -> float:
    """The least seconds `accounts` take to be subscribed from nothing within `limits`: their
    connections paced by the connection window, and on the WebSocket API their subscriptions (and
    connects) by the weight window; on the derivatives each connection's SUBSCRIBE messages by
    `messages_per_second` (connections subscribe side by side). The first window's worth is
    spent at once, then a window's worth per window."""
    if accounts <= 0:
        return 0.0
    per_connection = min(capacity, limits.per_connection or capacity)
    connections = -(-accounts // per_connection)
    seconds = _spend(connections, limits.connections, limits.connection_window)
    if ws_api:
        weight = 2 * accounts + 2 * connections  # subscribe.signature 2 each, connecting 2
        seconds = max(seconds, _spend(weight, limits.request_weight, limits.weight_window))
    else:
        messages = -(-min(accounts, per_connection) // limits.keys_per_message)
        seconds = max(seconds, (messages - 1) / limits.messages_per_second)
    return seconds


def _spend(units: int, limit: int, window: float) -> float:
    """Seconds until `units` are spent at `limit` per `window`, the first window's worth at once."""
    if units <= limit:
        return 0.0
    return math.ceil(units / limit - 1) * window
