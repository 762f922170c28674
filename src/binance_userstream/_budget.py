"""WeightBudget: send no REST call that would cross its ban group's request-weight limit for the minute.

Binance counts REQUEST_WEIGHT per IP per calendar minute ("a 1 MINUTE interval starts every
minute ... once the 00:02:00 minute starts, the count will reset to zero":
https://developers.binance.com/docs/binance-spot-api-docs/websocket-api/rate-limits) and answers
429 past the limit, then bans the IP (418). Every answer says how much this IP has used
(`X-MBX-USED-WEIGHT-1M`; SAPI's `X-SAPI-USED-IP-WEIGHT-1M`), and the spec declares each
operation's weight (`x-weight`, the generated `binance_userstream_client.weights`). So before a
call is sent, its weight is reserved in its ban group's budget; a call that would cross the limit
waits for the next minute instead, within the call's deadline. Each answer's header then sets the
minute's count (the larger of it and what this process reserved: the header also counts other
programs on the IP, the reservations count calls still in flight).

As the backoff gate (`_gate`), one budget serves every client of the process (`SHARED_BUDGET`),
per ban group (`_hosts.BAN_GROUPS`: api and api1-4 share spot's 6,000), on an injectable clock.
The decision, `wait_before`, is plain arithmetic without I/O; the budget adds the lock and the
clock; the HTTP layer (`_transport`) asks it and does the waiting.
"""

from __future__ import annotations

import contextvars
import logging
import math
import threading
import time
from collections.abc import Callable, Collection, Mapping
from types import MappingProxyType

from attrs import frozen

from binance_userstream._clock import Clock, SystemClock
from binance_userstream._hosts import ban_group

log = logging.getLogger("binance_userstream")

MINUTE = 60.0

#: REQUEST_WEIGHT per minute per IP, by ban group (production):
#: spot 6,000 (https://developers.binance.com/docs/binance-spot-api-docs/rest-api/limits);
#: USD-M and COIN-M 2,400 (https://developers.binance.com/docs/derivatives/usds-margined-futures/
#: general-info and .../coin-margined-futures/general-info, "IP Limits"); Portfolio Margin 6,000
#: (https://developers.binance.com/docs/derivatives/portfolio-margin/general-info); Options: its
#: pages name no number (its `/eapi/v1/exchangeInfo` `rateLimits` does), so spot's 6,000 is
#: assumed, as the simulator does. A group not listed (a testnet, a loopback simulator) has no
#: limit unless the budget is given one: its calls are counted and never held.
LIMITS: Mapping[str, int] = MappingProxyType(
    {
        "binance-spot": 6000,
        "binance-usdm": 2400,
        "binance-coinm": 2400,
        "binance-portfolio-margin": 6000,
        "binance-options": 6000,
    }
)


def minute_of(now: float) -> int:
    """The calendar minute `now` (seconds on the budget's clock) falls in."""
    return math.floor(now / MINUTE)


def wait_before(used: int, minute: int, limit: int | None, now: float, weight: int) -> float:
    """Seconds to wait before sending a call of `weight`, given `used` weight counted in `minute`
    of a group whose limit is `limit` (None: no limit), at `now`. 0: send now.

    A count from an earlier minute is spent: the minute rolled over. A call that fits under the
    limit goes now; else it waits for the next minute to start. A call heavier than the whole
    limit waits only for a fresh minute (the server decides the rest).
    """
    if limit is None or minute != minute_of(now) or used == 0 or used + weight <= limit:
        return 0.0
    return max((minute + 1) * MINUTE - now, 0.0)


#: One operation's declared weight, as the generated `OPERATION_WEIGHTS` holds it: (the default,
#: ((parameter, weight when it is sent), ...) in the spec's order, "ip" or "uid").
Declared = tuple[int, tuple[tuple[str, int], ...], str]
#: The weight counted for a request whose operation declares none (not one of the spec's).
UNDECLARED_WEIGHT = 1


def call_weight(declared: Declared | None, sent: Collection[str]) -> int:
    """The weight a call counts against its IP's budget, given its operation's declared weight and
    the names of the parameters it sends: the weight of the first `with` parameter sent, else the
    default; 0 for a weight Binance counts per UID; UNDECLARED_WEIGHT when nothing is declared."""
    if declared is None:
        return UNDECLARED_WEIGHT
    default, by_parameter, per = declared
    if per != "ip":
        return 0
    return next((weight for name, weight in by_parameter if name in sent), default)


@frozen
class BudgetWait:
    """A call held back by the budget: `seconds` until the minute rolls over, for a call of `weight`
    to `group`, which had `used` of its `limit` this minute."""

    group: str
    weight: int
    used: int
    limit: int
    seconds: float

    def describe(self) -> str:
        return (
            f"weight budget of {self.group}: {self.used} of {self.limit} used this minute, a call of"
            f" weight {self.weight} waits {self.seconds:.1f} s for the next minute"
        )


#: Who else hears of a wait in this thread or task: a keepalive session sets it in its worker, so
#: that a wait of its own calls is one of its SessionEvents (`EventKind.WEIGHT_WAIT`).
WAIT_LISTENER: contextvars.ContextVar[Callable[[BudgetWait], None] | None] = contextvars.ContextVar(
    "binance_userstream_wait_listener", default=None
)


class _Count:
    __slots__ = ("minute", "used")

    def __init__(self, minute: int) -> None:
        self.minute = minute
        self.used = 0


class WallClock(SystemClock):
    """Real time read off the wall, whose whole minutes are Binance's (SystemClock's `now()` is
    monotonic, with no minutes to share), and real waits: the budget's default clock."""

    def now(self) -> float:
        return time.time()

    def __repr__(self) -> str:
        return "WallClock()"


class WeightBudget:
    """Per-ban-group request weight used this minute, reserved before each call and read from answers.

    `clock`'s `now()` gives seconds whose whole minutes are Binance's minutes, and the budget's
    waits run on it (the default, `WallClock`, is wall time and real waits; a test shares a
    VirtualClock with the simulator). `limits` adds or replaces limits, by ban group ("binance-usdm")
    or host ("127.0.0.1:8765"). `on_wait` callables get each BudgetWait before it is waited.
    """

    def __init__(self, clock: Clock | None = None, limits: Mapping[str, int] | None = None) -> None:
        self.clock: Clock = WallClock() if clock is None else clock
        extra = {name if name in LIMITS else ban_group(name): value for name, value in (limits or {}).items()}
        self.limits: Mapping[str, int] = MappingProxyType({**LIMITS, **extra})
        self.on_wait: list[Callable[[BudgetWait], None]] = []
        self._counts: dict[str, _Count] = {}
        self._lock = threading.Lock()

    def now(self) -> float:
        return self.clock.now()

    def report(self, held: BudgetWait) -> None:
        """Tell the log (INFO), every `on_wait` callable and this thread's or task's WAIT_LISTENER
        that a call waits."""
        log.info("%s", held.describe())
        for callback in list(self.on_wait):
            callback(held)
        listener = WAIT_LISTENER.get()
        if listener is not None:
            listener(held)

    def wait(self, seconds: float) -> None:
        """Wait `seconds` on the budget's clock (a thread's call)."""
        self.clock.wait(seconds, threading.Event())

    async def sleep(self, seconds: float) -> None:
        """Wait `seconds` on the budget's clock (a coroutine's call)."""
        await self.clock.sleep(seconds)

    def limit(self, host: str) -> int | None:
        return self.limits.get(ban_group(host))

    def used(self, host: str) -> int:
        """The weight counted for `host`'s group in the current minute."""
        with self._lock:
            count = self._counts.get(ban_group(host))
            return 0 if count is None or count.minute != minute_of(self.now()) else count.used

    def reserve(self, host: str, weight: int) -> BudgetWait | None:
        """Count a call of `weight` to `host` and return None, or (counting nothing) how long it
        must wait first. Call again after the wait."""
        group = ban_group(host)
        limit = self.limits.get(group)
        with self._lock:
            now = self.now()
            count = self._counts.get(group)
            if count is None or count.minute != minute_of(now):
                count = self._counts[group] = _Count(minute_of(now))
            seconds = wait_before(count.used, count.minute, limit, now, weight)
            if seconds > 0 and limit is not None:
                return BudgetWait(group, weight, count.used, limit, seconds)
            count.used += weight
            return None

    def observe(self, host: str, used: int) -> None:
        """An answer from `host` said its IP used `used` weight this minute."""
        group = ban_group(host)
        with self._lock:
            minute = minute_of(self.now())
            count = self._counts.get(group)
            if count is None or count.minute != minute:
                count = self._counts[group] = _Count(minute)
            count.used = max(count.used, used)

    def reset(self) -> None:
        """Forget every count (for tests, or after moving to another IP)."""
        with self._lock:
            self._counts.clear()


SHARED_BUDGET = WeightBudget()
