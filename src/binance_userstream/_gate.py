"""BackoffGate: after a 429 or 418, send nothing to that host until its Retry-After has passed.

Binance limits and bans by IP, and every client in this process shares the machine's IP, so by
default one gate serves every client of a host (`SHARED_GATE`): a ban seen by one client stops
them all, which is what keeps a 429 from turning into a 418 ban, and a 418 ban from growing.
Hosts that share a ban (api, api-gcp and api1-4 for spot) share one closure: see
`_hosts.BAN_GROUPS`. A client can be given a gate of its own (tests do, with an injected clock).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from attrs import frozen

from binance_userstream._hosts import ban_group
from binance_userstream.errors import IPBannedError, RateLimitedError

#: Binance's shortest ban; assumed when a 418 comes without Retry-After.
DEFAULT_BAN_SECONDS = 120.0


@frozen
class _Closed:
    until: float
    banned: bool


class BackoffGate:
    """Per-ban-group 'closed until' times, set from 429/418 answers and checked before each request.

    Methods take a host as in a URL ("api1.binance.com", "127.0.0.1:8765") and act on its ban group.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._closed: dict[str, _Closed] = {}
        self._lock = threading.Lock()

    def check(self, host: str, *, bans_only: bool = False) -> None:
        """Raise IPBannedError or RateLimitedError, sending nothing, while `host` is closed.

        `bans_only` is for a call's own retries, which already wait out their own Retry-After.
        """
        group = ban_group(host)
        closed = self._closed.get(group)
        if closed is None or (bans_only and not closed.banned):
            return
        left = closed.until - self._clock()
        if left <= 0:
            with self._lock:
                if self._closed.get(group) is closed:
                    del self._closed[group]
            return
        if closed.banned:
            raise IPBannedError(418, None, f"IP banned by {host}; refusing to send until the ban ends", left)
        raise RateLimitedError(429, None, f"rate limited by {host}; refusing to send until Retry-After", left)

    def close(self, host: str, seconds: float, *, banned: bool) -> None:
        """Refuse requests to `host` for `seconds` (a later, longer closure wins)."""
        group = ban_group(host)
        until = self._clock() + seconds
        with self._lock:
            current = self._closed.get(group)
            if current is not None:
                until, banned = max(until, current.until), banned or current.banned
            self._closed[group] = _Closed(until, banned)

    def reset(self) -> None:
        """Forget every closure (for tests, or after moving to another IP)."""
        with self._lock:
            self._closed.clear()


SHARED_GATE = BackoffGate()
