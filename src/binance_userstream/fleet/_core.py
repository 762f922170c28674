"""The fleet's rules, without I/O: many accounts' streams on a few shared connections.

Each account keeps the rules of one event stream (`StreamCore`): its gaps, its backoff, its
make-before-break, its key or token, its bounded buffer. Its "connections" are subscriptions on the
fleet's shared connections, which the `Pool` places and paces within Binance's limits. `FleetCore`
joins the two: it turns an account's actions into the pool's (a subscription wanted, or given up),
the pool's into the accounts' (a connection lost is a `closed` for each account on it, a rotation a
`replace_connections`), routes each frame to its account by the envelope Binance puts around it
(`{"subscriptionId": N, "event": ...}` on the WebSocket API, `{"stream": <key>, "data": ...}` on the
derivatives' combined streams), and hands out every account's items in turn.

Items are `(account id, item)`, where item is an event model (a `RawEvent` without models), a
`StreamGap` (for that account alone), or, once, the error that ended that account (a revoked key):
the fleet and the other accounts go on.
Buffers are bounded per account and, shared, across the fleet (`SharedBounds`).
"""

from __future__ import annotations

import heapq
import itertools
import json
import math
from collections import deque
from collections.abc import Callable

from attrs import define, frozen

from binance_userstream._markets import Market
from binance_userstream.fleet._limits import FleetLimits
from binance_userstream.fleet._pool import (
    DEDICATED,
    Live,
    Lost,
    Member,
    Open,
    Pool,
    PoolAction,
    Rotate,
    Shut,
    Subscribe,
    Unsubscribe,
)
from binance_userstream.stream._core import (
    Action,
    Close,
    Connect,
    Item,
    RenewKey,
    RenewToken,
    SharedBounds,
    StreamCore,
    StreamEvent,
    StreamEventKind,
    StreamTiming,
)

FleetItem = Item | BaseException
"""What a fleet yields for an account: an event, a StreamGap, or the error that ended the account."""

#: Default bounds: per account as `events()`' own, and across the fleet.
ACCOUNT_MAXSIZE = 10_000
ACCOUNT_MAX_BYTES = 2**20 * 4
FLEET_MAXSIZE = 1_000_000
FLEET_MAX_BYTES = 512 * 2**20

#: WebSocket API subscriptions per connection (spot web-socket-api.md "User Data Stream
#: subscriptions"), streams per derivatives connection (their market-streams pages).
WS_API_CAPACITY = 1_000
STREAMS_CAPACITY = 1_024
OPTIONS_CAPACITY = 200


@frozen
class RenewKeyFor:
    """Account `account`'s listenKey expired or was refused: get its key again, report `key_replaced`."""

    account: str


@frozen
class RenewTokenFor:
    """Account `account`'s listenToken is due: mint one, present it on its subscriptions, report
    `token_valid` (or `token_renew_failed`)."""

    account: str


FleetAction = Open | Shut | Subscribe | Unsubscribe | RenewKeyFor | RenewTokenFor


@define(eq=False)
class _Account:
    account_id: str
    core: StreamCore
    removed: bool = False
    error: BaseException | None = None


def capacity_of(market: Market) -> int:
    """The most accounts one connection of `market` carries."""
    if not market.uses_listen_key:
        return WS_API_CAPACITY
    return OPTIONS_CAPACITY if market.name == "options" else STREAMS_CAPACITY


class FleetCore:
    """The fleet's rules (see the module docstring). Not thread-safe: one driver feeds it."""

    def __init__(
        self,
        market: Market,
        *,
        limits: FleetLimits,
        random: Callable[[], float],
        timing: StreamTiming | None = None,
        rotate_spread: float = 3600.0,
        account_maxsize: int = ACCOUNT_MAXSIZE,
        account_max_bytes: int = ACCOUNT_MAX_BYTES,
        maxsize: int = FLEET_MAXSIZE,
        max_bytes: int = FLEET_MAX_BYTES,
        dedicated: bool = False,
        quiet: bool = False,
        answer_timeout: float = 10.0,
        keep_text: bool = False,
        models: bool = True,
    ) -> None:
        """`dedicated` and `quiet`: see `Pool` (a fleet of one account's listenKey stream: `events()`);
        `keep_text`: each event's text is kept beside its model (`popped_text`); `models`: False
        hands out each event as a `RawEvent` (its text always in `popped_text`), see `StreamCore`."""
        self.market = market
        self.timing = timing or StreamTiming.for_market(market)
        self.combined = market.uses_listen_key
        capacity = min(capacity_of(market), limits.per_connection or capacity_of(market))
        self.pool = Pool(
            capacity=capacity,
            combined=self.combined,
            limits=limits,
            stall_after=self.timing.stall_after,
            rotate_after=self.timing.rotate_after,
            rotate_spread=rotate_spread,
            random=random,
            dedicated=dedicated,
            quiet=quiet,
            answer_timeout=answer_timeout,
        )
        # Each account's rules see their subscriptions as connections that never stall nor age on
        # their own: the pool watches the shared connections and rotates them.
        self._account_timing = StreamTiming(
            ping_interval=self.timing.ping_interval,
            rotate_after=math.inf,
            stall_grace=math.inf,
            overlap=self.timing.overlap,
            first_retry=self.timing.first_retry,
            max_retry=self.timing.max_retry,
            token_lead=self.timing.token_lead,
        )
        self._random = random
        self._keep_text = keep_text
        self._models = models
        self._events = dict(market.event_types)  # one table for every account's rules, not a copy each
        self.popped_text: str | None = None
        """The JSON text of the event `pop` returned last, when texts are kept (None for the rest)."""
        self._ids = itertools.count(1)
        self._account_maxsize = account_maxsize
        self._account_max_bytes = account_max_bytes
        self.shared = SharedBounds(maxsize, max_bytes)
        self._accounts: dict[str, _Account] = {}
        self._owner: dict[int, str] = {}  # subscription (an account stream's connection id) -> account
        self._ready: deque[str] = deque()  # accounts with an item waiting, in turn
        self._queued: set[str] = set()
        self._overflowing: set[str] = set()
        self._due: dict[str, float] = {}
        self._deadlines: list[tuple[float, str]] = []
        self._unrouted = 0
        self.notes: list[tuple[str | None, StreamEvent]] = []
        """Happenings not yet reported, with the account they concern (None: a shared connection)."""

    # -- accounts --------------------------------------------------------------------------------

    def add(self, account_id: str, key: str, at: float) -> list[FleetAction]:
        """Start account `account_id`'s stream (`key`: its listenKey; anything on the WebSocket API)."""
        if account_id in self._accounts:
            raise ValueError(f"account {account_id!r} is in the fleet already")
        core = self._new_core()
        self._accounts[account_id] = _Account(account_id, core)
        return self._carry(account_id, core.start(key, at), at)

    def ended(self, account_id: str, error: BaseException, at: float) -> list[FleetAction]:
        """Account `account_id` could not even start (its key refused): `error` is handed out for it."""
        if account_id in self._accounts:
            return self.fail(account_id, error, at)
        self._accounts[account_id] = _Account(account_id, self._new_core(), error=error)
        self._enqueue(account_id)
        return []

    def _new_core(self) -> StreamCore:
        return StreamCore(
            lambda target: target,
            self._account_timing,
            random=self._random,
            maxsize=self._account_maxsize,
            max_bytes=self._account_max_bytes,
            events=self._events,
            ids=self._ids,
            shared=self.shared,
            keep_text=self._keep_text,
            models=self._models,
        )

    def remove(self, account_id: str, at: float) -> list[FleetAction]:
        """End account `account_id`'s stream without a gap: its subscriptions end; what it had
        buffered is still handed out, then the account is forgotten."""
        account = self._accounts.get(account_id)
        if account is None or account.removed:
            raise KeyError(account_id)
        account.removed = True
        actions = account.core.failed(at)
        account.core.notes.clear()
        result = self._carry(account_id, actions, at)
        self._forget_if_done(account)
        return result

    def fail(self, account_id: str, error: BaseException, at: float) -> list[FleetAction]:
        """A refusal no retry mends ended account `account_id` (its key revoked, its secret wrong): what
        it buffered, its gap in progress, then `error` are handed out; the others go on."""
        account = self._accounts.get(account_id)
        if account is None or account.removed or account.error is not None:
            return []
        account.error = error
        actions = self._carry(account_id, account.core.failed(at), at)
        self._enqueue(account_id)
        return actions

    def holds(self, account_id: str) -> bool:
        """Whether `account_id` is served, or was removed with items still to hand out."""
        return account_id in self._accounts

    def buffered(self, account_id: str) -> int:
        """How many of `account_id`'s items wait to be handed out (0 for an account not held)."""
        account = self._accounts.get(account_id)
        return 0 if account is None else len(account.core)

    def accounts(self) -> list[str]:
        """The accounts being served (not removed, not ended)."""
        return [a.account_id for a in self._accounts.values() if not a.removed and a.error is None]

    def error_of(self, account_id: str) -> BaseException | None:
        """The error that ended an account, if one did."""
        account = self._accounts.get(account_id)
        return None if account is None else account.error

    def core_of(self, account_id: str) -> StreamCore:
        return self._accounts[account_id].core

    def account_of(self, sub_id: int) -> str | None:
        return self._owner.get(sub_id)

    def key_replaced(self, account_id: str, key: str, at: float) -> list[FleetAction]:
        return self._call(account_id, lambda core: core.key_replaced(key, at), at)

    def key_refused(self, account_id: str, at: float, detail: str | None = None) -> list[FleetAction]:
        return self._call(account_id, lambda core: core.key_refused(at, detail), at)

    def renew_failed(self, account_id: str, at: float, detail: str | None = None) -> list[FleetAction]:
        return self._call(account_id, lambda core: core.renew_failed(at, detail), at)

    def token_valid(self, account_id: str, expires_at: float, at: float) -> list[FleetAction]:
        return self._call(account_id, lambda core: core.token_valid(expires_at, at), at)

    def token_renew_failed(self, account_id: str, at: float, detail: str | None = None) -> list[FleetAction]:
        return self._call(account_id, lambda core: core.token_renew_failed(at, detail), at)

    def replace_subscription(self, account_id: str, at: float, why: str) -> list[FleetAction]:
        """Move the account to a new subscription make-before-break (a new token was refused)."""
        return self._call(account_id, lambda core: core.replace_connections(at, why), at)

    def note(
        self,
        account_id: str | None,
        kind: StreamEventKind,
        at: float,
        detail: str | None = None,
        *,
        conn_id: int | None = None,
    ) -> None:
        """Record a driver's happening (a subscription, a clock resync) among the notes."""
        self.notes.append((account_id, StreamEvent(kind, at, conn_id, None, detail)))

    def random(self) -> float:
        """A draw of the fleet's `random` (the driver's own backoffs use it too)."""
        return self._random()

    def renewed(self, sub_id: int, subscription_id: int) -> None:
        """A new listenToken extended subscription `sub_id`, now numbered `subscription_id`."""
        account_id = self._owner.get(sub_id)
        if account_id is not None:
            self._accounts[account_id].core.subscribed(sub_id, subscription_id)
            self.pool.rename(sub_id, str(subscription_id))

    def accounts_on(self, conn_id: int) -> list[str]:
        """The accounts with a subscription on connection `conn_id`."""
        return [owner for sub in self.pool.subs_on(conn_id) if (owner := self._owner.get(sub)) is not None]

    # -- connections -----------------------------------------------------------------------------

    def opened(self, conn_id: int, at: float) -> list[FleetAction]:
        return self._pool(self.pool.opened(conn_id, at), at)

    def closed(
        self, conn_id: int, at: float, detail: str | None = None, retry_after: float | None = None
    ) -> list[FleetAction]:
        """Connection `conn_id` closed without being asked to, or failed to open."""
        return self._pool(self.pool.lost(conn_id, at, detail, retry_after), at)

    def ping(self, conn_id: int, at: float) -> None:
        self.pool.seen(conn_id, at)

    def subscribed(
        self, sub_id: int, route: str, at: float, subscription_id: int | None = None
    ) -> list[FleetAction]:
        """The server confirmed subscription `sub_id`; its frames carry `route`."""
        wanted, actions = self.pool.confirmed(sub_id, route, at)
        result = self._pool(actions, at)
        account_id = self._owner.get(sub_id)
        if wanted and account_id is not None:
            result += self._call(account_id, lambda core: core.connected(sub_id, at, subscription_id), at)
        return result

    def subscription_failed(
        self, sub_id: int, at: float, detail: str | None, retry_after: float | None = None
    ) -> list[FleetAction]:
        """The server refused subscription `sub_id` in a way a retry may mend: the account backs off."""
        result = self._pool(self.pool.refused(sub_id, at), at)
        account_id = self._owner.pop(sub_id, None)
        if account_id is not None:
            result += self._call(account_id, lambda core: core.closed(sub_id, at, detail, retry_after), at)
        return result

    def frame(self, conn_id: int, text: str, at: float) -> list[FleetAction]:
        """A text frame came on connection `conn_id`: to its account, by its envelope."""
        pool = self.pool
        name: str | None
        if pool.dedicated:
            name, inner = DEDICATED, text
        elif self.combined:
            name, inner = _combined(text)
        else:
            name, inner = _subscription(text)
        sub_id = pool.arrived(conn_id, name, at)
        if sub_id is None:
            return self._stray(conn_id, text, name, at)
        account_id = self._owner[sub_id]
        core = self._accounts[account_id].core
        actions = core.frame(sub_id, inner, at)
        if core._overflow is not None:
            self._overflowing.add(account_id)
            if self.shared.low():  # a frame too large for the bounds: no pop will come to end it
                core.reopen(at)
        # The core's buffer read directly, as its overflow is: a len() per event was 5% of it.
        if core._buffer and account_id not in self._queued:
            self._queued.add(account_id)
            self._ready.append(account_id)
        if actions or core.notes:
            return self._carry(account_id, actions, at)
        return []

    # -- time ------------------------------------------------------------------------------------

    def tick(self, at: float) -> list[FleetAction]:
        result = self._pool(self.pool.tick(at), at)
        deadlines = self._deadlines
        while deadlines and deadlines[0][0] <= at:
            due, account_id = heapq.heappop(deadlines)
            if self._due.get(account_id) != due:
                continue  # superseded
            del self._due[account_id]
            account = self._accounts.get(account_id)
            if account is not None:
                result += self._carry(account_id, account.core.tick(at), at)
        return result

    def next_deadline(self) -> float:
        deadlines = self._deadlines
        while deadlines and self._due.get(deadlines[0][1]) != deadlines[0][0]:
            heapq.heappop(deadlines)
        first = deadlines[0][0] if deadlines else math.inf
        return min(first, self.pool.next_deadline())

    # -- what the consumer takes -------------------------------------------------------------------

    def pop(self, at: float) -> tuple[str, FleetItem] | None:
        """The next account's next item, accounts in turn; None when none waits."""
        ready = self._ready
        while ready:
            account_id = ready.popleft()
            account = self._accounts.get(account_id)
            if account is None:
                self._queued.discard(account_id)
                continue
            core = account.core
            item: FleetItem | None = core.pop(at)
            self.popped_text = core.popped_text
            if item is None and account.error is not None:
                item, account.removed = account.error, True
            if core._buffer or (account.error is not None and not account.removed):
                ready.append(account_id)  # more to hand out, or the error after the last of it
            else:
                self._queued.discard(account_id)
                if account.removed:
                    self._forget_if_done(account)
            if self._overflowing and self.shared.low():
                self._reopen(at)
            if item is not None:
                return account_id, item
        return None

    def __len__(self) -> int:
        """Accounts with an item waiting."""
        return len(self._ready)

    # -- the joins -------------------------------------------------------------------------------

    def _call(
        self, account_id: str, call: Callable[[StreamCore], list[Action]], at: float
    ) -> list[FleetAction]:
        account = self._accounts.get(account_id)
        if account is None or account.removed or account.error is not None:
            return []
        return self._carry(account_id, call(account.core), at)

    def _carry(self, account_id: str, actions: list[Action], at: float) -> list[FleetAction]:
        """Carry out an account's actions: subscriptions to the pool, renewals to the driver."""
        account = self._accounts[account_id]
        core = account.core
        result: list[FleetAction] = []
        for action in actions:
            if isinstance(action, Connect):
                self._owner[action.conn_id] = account_id
                result += self._pool(self.pool.place(Member(action.conn_id, account_id, action.url), at), at)
            elif isinstance(action, Close):
                self._owner.pop(action.conn_id, None)
                result += self._pool(self.pool.release(action.conn_id, at), at)
            elif isinstance(action, RenewKey):
                result.append(RenewKeyFor(account_id))
            elif isinstance(action, RenewToken):
                result.append(RenewTokenFor(account_id))
        if core.notes:
            notes, core.notes = core.notes, []
            self.notes += [(account_id, note) for note in notes]
        if len(core):
            self._enqueue(account_id)
        if core.overflowing:
            self._overflowing.add(account_id)
        self._schedule(account_id, core)
        return result

    def _pool(self, actions: list[PoolAction], at: float) -> list[FleetAction]:
        """Carry out the pool's actions: a subscription lost or asked to move goes to its account's
        rules; the rest to the driver."""
        result: list[FleetAction] = []
        for action in actions:
            if isinstance(action, Lost):
                account_id = self._owner.pop(action.sub, None)
                if account_id is not None:
                    result += self._call(account_id, _lost(action, at), at)
            elif isinstance(action, Rotate):
                result += self._call(action.account, _rotate(action.why, at), at)
            elif isinstance(action, Live):
                account_id = self._owner.get(action.sub)
                if account_id is not None:
                    result += self._call(account_id, _live(action.sub, at), at)
            else:
                result.append(action)
        if self.pool.notes:
            notes, self.pool.notes = self.pool.notes, []
            self.notes += [(None, note) for note in notes]
        return result

    def _schedule(self, account_id: str, core: StreamCore) -> None:
        due = core.next_deadline()
        if due == math.inf:
            self._due.pop(account_id, None)
        elif self._due.get(account_id) != due:
            self._due[account_id] = due
            heapq.heappush(self._deadlines, (due, account_id))

    def _enqueue(self, account_id: str) -> None:
        if account_id not in self._queued:
            self._queued.add(account_id)
            self._ready.append(account_id)

    def _forget_if_done(self, account: _Account) -> None:
        """A removed (or ended and reported) account with nothing left to hand out is forgotten."""
        if account.removed and not len(account.core) and account.account_id not in self._queued:
            self._accounts.pop(account.account_id, None)
            self._due.pop(account.account_id, None)
            self._overflowing.discard(account.account_id)

    def _reopen(self, at: float) -> None:
        """The shared bounds drained to half: end every account's overflow whose own buffer allows."""
        for account_id in list(self._overflowing):
            account = self._accounts.get(account_id)
            if account is None:
                self._overflowing.discard(account_id)
                continue
            account.core.reopen(at)
            if not account.core.overflowing:
                self._overflowing.discard(account_id)
                self._enqueue(account_id)

    def _stray(self, conn_id: int, text: str, name: str | None, at: float) -> list[FleetAction]:
        """A frame no subscription of this connection claims: a connection event (serverShutdown:
        the connection is rotated now), or another subscription's (dropped, counted and noted on the
        1st, 2nd, 4th, 8th...)."""
        if name is None and '"serverShutdown"' in text:
            try:
                payload = json.loads(text)
            except (ValueError, RecursionError):
                payload = None
            event = payload.get("event") if isinstance(payload, dict) else None
            if isinstance(event, dict) and event.get("e") == "serverShutdown":
                # The connection is rotated at once (each account moves make-before-break), and each
                # account on it gets the event, which its stream documents.
                self.pool.shutdown_notice(conn_id, at)
                if not self.pool.quiet:
                    shutdown = StreamEvent(
                        StreamEventKind.ROTATING, at, conn_id, None, "the server announced a shutdown"
                    )
                    self.notes.append((None, shutdown))
                actions = self._pool(self.pool.tick(at), at)
                for sub_id in self.pool.subs_on(conn_id):
                    account_id = self._owner.get(sub_id)
                    if account_id is not None:
                        actions += self._call(account_id, _frame(sub_id, text, at), at)
                return actions
        self._unrouted += 1
        if self._unrouted & (self._unrouted - 1) == 0:
            self.notes.append(
                (
                    None,
                    StreamEvent(
                        StreamEventKind.OTHER_SUBSCRIPTION,
                        at,
                        conn_id,
                        None,
                        f"dropped an event of {_shown(name, self.combined)}, which no account on this "
                        f"connection holds ({self._unrouted} dropped so far)",
                    ),
                )
            )
        return []


def _lost(lost: Lost, at: float) -> Callable[[StreamCore], list[Action]]:
    if lost.stalled:
        return lambda core: core.stalled(lost.sub, at, lost.detail or "silent")
    return lambda core: core.closed(lost.sub, at, lost.detail, lost.retry_after)


def _frame(sub: int, text: str, at: float) -> Callable[[StreamCore], list[Action]]:
    return lambda core: core.frame(sub, text, at)


def _live(sub: int, at: float) -> Callable[[StreamCore], list[Action]]:
    return lambda core: core.connected(sub, at)


def _rotate(why: str, at: float) -> Callable[[StreamCore], list[Action]]:
    return lambda core: core.replace_connections(at, why)


def _shown(name: str | None, combined: bool) -> str:
    """How a stray frame's route is named in a note: a subscriptionId (a number), never a stream's
    name (on the derivatives it is a listenKey: a secret)."""
    if name is None:
        return "no subscription"
    if combined:
        return "a stream this connection does not carry"
    return f"subscriptionId {name if len(name) <= 20 else '(malformed)'}"


def _subscription(text: str) -> tuple[str | None, str]:
    """A WebSocket API frame's subscriptionId (as text) and the frame for its account's rules (the
    frame itself: they read the envelope). None for a frame without one."""
    if text.startswith('{"subscriptionId":'):
        end = text.find(",", 18)
        if end > 18:
            name = text[18:end]
            if name.isdigit():
                return name, text
    try:
        payload = json.loads(text)
    except (ValueError, RecursionError):
        return None, text
    if isinstance(payload, dict):
        value = payload.get("subscriptionId")
        if type(value) is int:
            return str(value), text
    return None, text


def _combined(text: str) -> tuple[str | None, str]:
    """A combined stream's frame `{"stream": name, "data": event}`: the name, and the event's text
    (sliced out of the frame as Binance writes it; re-encoded when written otherwise)."""
    if text.startswith('{"stream":"'):
        end = text.find('"', 11)
        if end > 11 and text.startswith(',"data":', end + 1) and text.endswith("}"):
            return text[11:end], text[end + 9 : -1]
    try:
        payload = json.loads(text)
    except (ValueError, RecursionError):
        return None, text
    if isinstance(payload, dict) and isinstance(payload.get("stream"), str) and "data" in payload:
        return payload["stream"], json.dumps(payload["data"], separators=(",", ":"))
    return None, text
