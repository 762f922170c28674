"""Per client IP limits over every WebSocket connection the simulator serves, on its clock.

Two of Binance's limits count per IP address, whatever the connection (web-socket-api.md "Rate
limits", web-socket-streams.md "WebSocket Limits", https://github.com/binance/binance-spot-api-docs;
the derivatives' websocket-market-streams pages repeat the first for their hosts):

- new connections: "300 connections per attempt every 5 minutes per IP". Binance does not document
  what it answers past it; the simulator refuses the handshake 429 with `Retry-After` (the seconds
  until the oldest counted connection leaves the window) and a -1003 body, the answer its REST and
  WebSocket API give for the same excess. Every upgrade that reaches a WebSocket path counts, the
  streams' and `/ws-api/v3`'s alike (one IP: loopback is one).
- WebSocket API request weight: 6000 per minute per IP, "shared by all connections from that
  address"; connecting costs 2, `ping` and `time` 1, the user-data methods 2. Past it a request is
  answered 429 -1003 with `error.data` `{"serverTime", "retryAfter"}`; `violations_before_ban`
  429s in one minute, and the next earns a 418 ban (2 minutes, doubling up to 3 days, as the REST
  bans of `_exchange`), during which requests and WebSocket API handshakes are refused 418.

Both windows follow the simulator's clock, so a test on a VirtualClock steps through them.
"""

from __future__ import annotations

import math
from collections import deque

from attrs import frozen

from binance_userstream._clock import Clock, wall_time
from binance_userstream.simulator._exchange import LONGEST_BAN, _Weight  # REST's count, per IP

#: Binance's documented values.
CONNECTION_LIMIT = 300
CONNECTION_WINDOW = 300.0
WS_WEIGHT_LIMIT = 6000


@frozen
class Limited:
    """A refusal: the HTTP (or WebSocket API) status, Binance's code and message, and when to retry
    (seconds from now, and the wall-clock instant in milliseconds)."""

    status: int
    code: int
    msg: str
    retry_after: int
    retry_at_ms: int


class IpLimits:
    """The connections opened and the WebSocket API weight used, per client IP. Runs on the server's
    event loop (the Simulator's methods call in through it)."""

    def __init__(
        self,
        clock: Clock,
        *,
        connection_limit: int | None = None,
        connection_window: float | None = None,
        ws_weight_limit: int | None = None,
        violations_before_ban: int = 3,
    ) -> None:
        self.clock = clock
        self.connection_limit = CONNECTION_LIMIT if connection_limit is None else connection_limit
        self.connection_window = CONNECTION_WINDOW if connection_window is None else connection_window
        self.ws_weight_limit = WS_WEIGHT_LIMIT if ws_weight_limit is None else ws_weight_limit
        self.violations_before_ban = violations_before_ban
        self._opened: dict[str, deque[float]] = {}
        self._weights: dict[str, _Weight] = {}

    # -- connections -----------------------------------------------------------------------------

    def connect(self, ip: str) -> Limited | None:
        """Count a new connection from `ip`, or refuse it (None: counted)."""
        now = self.clock.now()
        opened = self._prune(ip, now)
        if len(opened) >= self.connection_limit:
            wait = max(1, math.ceil(opened[0] + self.connection_window - now))
            return Limited(
                429,
                -1003,
                f"Too many new connections; current limit is {self.connection_limit} connections per "
                f"{self.connection_window:g} seconds per IP.",
                wait,
                self._ms(now + wait),
            )
        opened.append(now)
        return None

    def admit(self, ip: str, weight: int = 0) -> Limited | None:
        """A new WebSocket connection from `ip`: refused if the IP is banned (a WebSocket API one,
        `weight` > 0) or over the connection limit, else counted, and its `weight` charged."""
        refused = (self.banned(ip) if weight else None) or self.connect(ip)
        if refused is None and weight:
            refused = self.charge(ip, weight)
        return refused

    def opened(self, within: float | None = None, ip: str | None = None) -> int:
        """How many connections were opened in the last `within` seconds (at most the window), from
        `ip` or from every IP."""
        now = self.clock.now()
        within = self.connection_window if within is None else within
        return sum(
            sum(1 for at in self._prune(address, now) if at > now - within)
            for address in ([ip] if ip is not None else list(self._opened))
        )

    def _prune(self, ip: str, now: float) -> deque[float]:
        opened = self._opened.setdefault(ip, deque())
        while opened and opened[0] <= now - self.connection_window:
            opened.popleft()
        return opened

    # -- WebSocket API weight --------------------------------------------------------------------

    def banned(self, ip: str) -> Limited | None:
        """The 418 an IP banned now gets, None if it is not banned."""
        weight = self._weights.get(ip)
        now = self.clock.now()
        return None if weight is None or weight.banned_until <= now else self._ban(weight, now)

    def charge(self, ip: str, cost: int) -> Limited | None:
        """Count a request's weight against `ip` this minute, or refuse it 429 (418 once banned)."""
        now = self.clock.now()
        weight = self._weights.setdefault(ip, _Weight())
        if weight.banned_until > now:
            return self._ban(weight, now)
        minute = math.floor(now / 60)
        if minute != weight.minute:
            weight.minute, weight.used, weight.violations = minute, 0, 0
        if weight.used + cost <= self.ws_weight_limit:
            weight.used += cost
            return None
        weight.violations += 1
        if weight.violations > self.violations_before_ban:
            weight.banned_until = now + weight.next_ban
            weight.next_ban = min(weight.next_ban * 2, LONGEST_BAN)
            return self._ban(weight, now)
        wait = max(1, math.ceil((minute + 1) * 60 - now))
        return Limited(
            429,
            -1003,
            f"Too much request weight used; current limit is {self.ws_weight_limit} request weight "
            "per 1 MINUTE. Please use WebSocket Streams for live updates to avoid polling the API.",
            wait,
            self._ms(now + wait),
        )

    def used(self, ip: str | None = None) -> int:
        """The WebSocket API weight used this minute, by `ip` or by every IP."""
        minute = math.floor(self.clock.now() / 60)
        return sum(
            w.used for address, w in self._weights.items() if ip in (None, address) and w.minute == minute
        )

    def _ban(self, weight: _Weight, now: float) -> Limited:
        left = weight.banned_until - now
        until_ms = self._ms(weight.banned_until)
        return Limited(
            418,
            -1003,
            f"Way too much request weight used; IP banned until {until_ms}. "
            "Please use WebSocket Streams for live updates to avoid bans.",
            max(1, math.ceil(left)),
            until_ms,
        )

    def _ms(self, at: float) -> int:
        """A time of the simulator's clock as milliseconds of its wall time."""
        return int((wall_time(self.clock) + at - self.clock.now()) * 1000)
