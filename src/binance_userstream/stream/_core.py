"""The event stream's rules, without I/O: which URL, when to rotate, what is a gap, when to retry.

`StreamCore` is a state machine in the manner of python-websockets' sans-I/O protocols. A driver
(asyncio or threads) feeds it what happened — a connection opened, a frame, a ping, a connection
closed, the session replaced the key, time passed — with the time it happened on the stream's
clock, and carries out the actions it returns: open a connection, close one, renew the key. The
core reads no clock, sleeps never, and draws jitter from the `random` it is given, so every rule
is tested without sockets (tests/test_stream_core.py).

The rules:
- Planned rotation, make-before-break: `rotate_after` (23h30m) after a connection opened, or on a
  `serverShutdown` event, a second connection is opened; once it is open both are read for
  `overlap` seconds (frames in flight on the old one arrive), then the old one is closed. During
  the overlap a frame is delivered once: a text seen on the other connection is dropped.
- Unplanned loss — a connection closed that was not asked to close, no frame or ping for
  `ping_interval + stall_grace` seconds, `listenKeyExpired`, a key replaced by the session — is a
  gap: a `StreamGap` is delivered in order, where the hole is, once events flow again.
- Reconnects: full-jitter exponential backoff (`first_retry` doubling up to `max_retry`), forever.
  A key the server refuses (or closes a connection for) is not retried: the account's key is
  asked for at once (`key_refused`), and the stream reconnects with it.
- The WebSocket API (spot, margin): a connection counts as open once its subscription is confirmed
  (the driver says so); `eventStreamTerminated` ends it like a lost connection, with a gap; a
  listenToken is renewed `token_lead` before it expires (RenewToken), on the same connections; a
  mint that failed is retried after a backoff, before the token runs out, and a new token the
  server refused replaces the connection make-before-break (`replace_connections`). Overlap duplicates are
  recognised by the event, whatever subscriptionId each connection's envelope carries. An event
  whose envelope carries another subscriptionId than its connection's own subscription (the
  driver says which, `connected(..., subscription_id=)`) is not this stream's: it is dropped,
  counted and noted (OTHER_SUBSCRIPTION, on the 1st, 2nd, 4th, 8th... of a connection).
- Frame handling never raises: any text is delivered, as the model the market's table names for
  its `"e"` (`events`: one wire name has another shape on another market) or an UnknownEvent, or
  without models (`models=False`) as a `RawEvent` read for its `e` and `E` alone; an event time
  `E` that is no usable number of milliseconds (a "²", 5,000 nines) counts as missing.
- A bounded buffer, by count and by size: an event that would make it hold more than `maxsize`
  events, or more than `max_bytes` of frame text (each event costs its frame's length; gaps cost
  nothing), is dropped and counted. The buffer reopens only once the consumer has drained it to
  half of both bounds (a low-water mark: under a sustained flood the consumer gets half a buffer of
  events between gaps, not one gap per freed slot); then a `StreamGap(reason="overflow",
  dropped=n)` takes the hole's place. An overflow that begins again before any event followed
  that gap grows the same gap (the dropped counts add up): two overflow gaps never touch.
  Items a consumer took as a batch (`pop_batch`, the sync stream) count until it says it has
  handed them all out (`batch_done`), so the stream holds no more than the bounds in all.
- A failure no retry mends (`failed`): what is buffered, then the overflow and the loss in
  progress as gaps, are left for the consumer before the driver raises the error.
"""

from __future__ import annotations

import enum
import itertools
import json
import math
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any

from attrs import define, field, frozen
from binance_userstream_client.models import EVENT_TYPES, UnknownEvent

from binance_userstream._markets import Market
from binance_userstream.stream._decode import (
    MAX_EVENT_TIME,
    RAW,
    Event,
    EventTypes,
    decode_payload,
    event_time,
    parse,
)
from binance_userstream.stream._gap import GapReason, StreamGap
from binance_userstream.stream._raw import RawEvent, event_text, read

Item = Event | RawEvent | StreamGap
"""What a stream yields: an event model (a RawEvent when models are not made), or a gap marker."""

DEFAULT_MAXSIZE = 10_000
DEFAULT_MAX_BYTES = 64 * 2**20
"""64 MiB of frame text: 64 of the largest frames accepted; Binance's events (0.1 to 1 KB: an
order update is about 500 characters) meet `maxsize` long before it."""


@frozen
class StreamTiming:
    """The stream's clock rules in seconds: the market's pings and lifetime, and the client's margins."""

    ping_interval: float
    """The server pings this often; `ping_interval + stall_grace` without a frame or ping is a stall."""
    rotate_after: float = 23.5 * 3600
    """A connection is replaced this long after it opened, before the server's 24-hour cut."""
    stall_grace: float = 60.0
    overlap: float = 5.0
    """How long old and new connections are both read during a rotation."""
    first_retry: float = 1.0
    max_retry: float = 60.0
    token_lead: float = 1800.0
    """A listenToken is renewed this long before it expires."""

    @classmethod
    def for_market(cls, market: Market) -> StreamTiming:
        return cls(ping_interval=market.ping_interval, rotate_after=market.connection_lifetime - 1800.0)

    @property
    def stall_after(self) -> float:
        return self.ping_interval + self.stall_grace


@frozen
class Connect:
    """Open connection `conn_id` to `url` (it holds the listenKey: kept out of the repr)."""

    conn_id: int
    url: str = field(repr=False)


@frozen
class Close:
    """Close connection `conn_id`; the core has forgotten it already."""

    conn_id: int


@frozen
class RenewKey:
    """The key expired or was refused: get the account's key again (create: the key itself if it
    lives, else a new one) and report it with `key_replaced`."""


@frozen
class RenewToken:
    """The listenToken is due: mint a new one, present it on every connection, report `token_valid`."""


Action = Connect | Close | RenewKey | RenewToken


class StreamEventKind(enum.Enum):
    CONNECTING = "connecting"
    CONNECTED = "connected"
    ROTATING = "rotating"
    ROTATED = "rotated"
    DISCONNECTED = "disconnected"
    STALLED = "stalled"
    RECONNECTING = "reconnecting"
    KEY_EXPIRED = "key_expired"
    KEY_REPLACED = "key_replaced"
    KEY_REFUSED = "key_refused"
    OVERFLOW = "overflow"
    SUBSCRIBED = "subscribed"
    TERMINATED = "terminated"
    RESYNCED = "resynced"
    TOKEN_RENEWED = "token_renewed"  # noqa: S105 (a name, not a password)
    TOKEN_RENEW_FAILED = "token_renew_failed"  # noqa: S105
    OTHER_SUBSCRIPTION = "other_subscription"
    RECONCILING = "reconciling"  # the account mirror heals a gap from REST
    RECONCILE_RETRY = "reconcile_retry"  # a REST read of that heal failed: retried after `retry_in`
    RECONCILED = "reconciled"


@frozen
class StreamEvent:
    """One connection happening, for the `on_event` callback and the log."""

    kind: StreamEventKind
    at: float
    connection: int | None = None
    retry_in: float | None = None
    detail: str | None = None

    def describe(self) -> str:
        parts = [f"stream {self.kind.value}"]
        if self.connection is not None:
            parts.append(f"connection={self.connection}")
        if self.retry_in is not None:
            parts.append(f"retry_in={self.retry_in:.3g}s")
        if self.detail:
            parts.append(self.detail)
        return " ".join(parts)


@define
class SharedBounds:
    """Bounds that several streams' buffers share (a fleet's accounts): the events and frame text
    they hold in all. A stream finds no room when its own bounds or these are reached, and reopens
    only once both are down to half (see `StreamCore.reopen`)."""

    maxsize: int
    max_bytes: int
    held: int = 0
    held_bytes: int = 0

    def low(self) -> bool:
        """Down to half of both bounds: an overflow may end."""
        return self.held <= self.maxsize // 2 and self.held_bytes <= self.max_bytes // 2


@define
class _Connection:
    conn_id: int
    planned: bool  # opened for a rotation, while another connection serves
    open: bool = False
    opened_at: float = 0.0
    last_seen: float = 0.0
    seen: set[str] = field(factory=set)  # frame texts delivered from it during an overlap
    subscription_id: int | None = None  # the WebSocket API subscription its events belong to
    envelope: str | None = None  # how that subscription's events begin, as Binance writes them
    others: int = 0  # events of another subscription dropped


@define
class _Hole:
    reason: GapReason
    started_at: float
    last_event_time: int | None
    dropped: int = 0

    def gap(self, at: float) -> StreamGap:
        return StreamGap(self.reason, self.started_at, at, self.last_event_time, self.dropped)


class StreamCore:
    """The rules of one event stream (see the module docstring). Not thread-safe: one driver feeds it."""

    # Slots: a fleet holds one of these per account (tens of thousands), and a dict per instance
    # was a third of its memory.
    __slots__ = (
        "_awaiting_key", "_buffer", "_connections", "_echoes", "_events", "_failures", "_held_bytes",
        "_ids", "_last_event_time", "_lent", "_lent_bytes", "_loss", "_models", "_overflow", "_random",
        "_reconnect_at", "_renew_at", "_renew_token_at", "_retire_at", "_retiring", "_room",
        "_rotate_at", "_shared", "_texts", "_token_expires_at", "_url_for", "key", "max_bytes",
        "maxsize", "notes", "popped_text", "timing",
    )  # fmt: skip

    def __init__(
        self,
        url_for: Callable[[str], str],
        timing: StreamTiming,
        *,
        random: Callable[[], float],
        maxsize: int = DEFAULT_MAXSIZE,
        max_bytes: int = DEFAULT_MAX_BYTES,
        events: EventTypes = EVENT_TYPES,
        ids: Iterator[int] | None = None,
        shared: SharedBounds | None = None,
        keep_text: bool = False,
        models: bool = True,
    ) -> None:
        """`events`: the stream's market's table (`Market.event_types`): its frames decode with it.
        `ids`: where connection ids come from (a fleet's streams share one count, so that an id
        names one connection among all of them); `shared`: bounds shared with other streams;
        `keep_text`: each buffered event keeps its JSON text as the server sent it (`popped_text`),
        for a durable log that stores the text while the application reads the model; `models`:
        False buffers each event as a `RawEvent` (its text, `e` and `E`; the model on demand), for
        a durable log that never reads the model: `popped_text` is its text, kept or not."""
        for name, value in (("maxsize", maxsize), ("max_bytes", max_bytes)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, not {value!r}")
        self._url_for = url_for
        # A plain dict, a lookup per frame; one a fleet's thousands of streams share, if given one.
        self._events = events if type(events) is dict else dict(events)
        self.timing = timing
        self._random = random
        self.maxsize = maxsize
        self.max_bytes = max_bytes
        self.key: str | None = None
        self._connections: dict[int, _Connection] = {}
        self._ids = itertools.count(1) if ids is None else ids
        self._shared = shared
        # The buffered events' texts, in the buffer's order (gaps have none), when kept.
        self._texts: deque[str] | None = deque() if keep_text and models else None
        self._models = models
        self.popped_text: str | None = None
        """The text of the event `pop` returned last (None: a gap, or texts not kept)."""
        # Each item with its cost: its frame's length, -1 for a gap (which counts nothing).
        self._buffer: deque[tuple[Item, int]] = deque()
        # How many items the buffer may hold now: maxsize, plus the gaps in it, less the events lent
        # (taken by pop_batch, not yet handed out); so the hot path's test is one len().
        self._room = maxsize
        self._held_bytes = 0  # the cost of the events buffered or lent
        self._lent = 0
        self._lent_bytes = 0
        self._last_event_time: int | None = None
        self._loss: _Hole | None = None
        self._overflow: _Hole | None = None
        self._failures = 0  # connection attempts failed (or lost early) since the last good one
        self._reconnect_at: float | None = None
        self._rotate_at: float | None = None
        self._retire_at: float | None = None
        self._retiring: list[int] = []
        # Texts a retired connection delivered in the overlap: the new one may still send them
        # (it can lag), until its first frame past them.
        self._echoes: set[str] = set()
        self._renew_at: float | None = None
        self._renew_token_at: float | None = None
        self._token_expires_at: float | None = None
        self._awaiting_key = False
        self.notes: list[StreamEvent] = []
        """Happenings not yet reported: the driver drains them to its callback and log."""

    # -- what the driver feeds ---------------------------------------------------------------

    def start(self, key: str, at: float) -> list[Action]:
        self.key = key
        return [self._connect(at, planned=False)]

    def connected(self, conn_id: int, at: float, subscription_id: int | None = None) -> list[Action]:
        """Connection `conn_id` is open (on the WebSocket API: subscribed, as `subscription_id`)."""
        conn = self._connections.get(conn_id)
        if conn is None or conn.open:
            return []
        conn.open, conn.opened_at, conn.last_seen = True, at, at
        self.subscribed(conn_id, subscription_id)
        self._note(StreamEventKind.CONNECTED, at, conn_id)
        self._rotate_at = at + self.timing.rotate_after
        if conn.planned:
            self._retiring = [c for c in self._connections if c != conn_id]
            self._retire_at = at + self.timing.overlap
        if self._loss is not None:
            self._flush_overflow(at)
            self._append_gap(self._loss.gap(at))
            self._loss = None
        return []

    def frame(self, conn_id: int, text: str, at: float) -> list[Action]:
        conn = self._connections.get(conn_id)
        if conn is None or not conn.open:
            return []
        conn.last_seen = at
        envelope = conn.envelope
        own = 0  # the length of the connection's own envelope the frame begins with
        if envelope is not None:
            if text.startswith(envelope):
                own = len(envelope)
            elif self._other(conn, text, at):
                return []
        if self._echoes or len(self._connections) > 1:
            same = _dedupe_key(text)
            if self._echoes:
                if same in self._echoes:
                    self._echoes.discard(same)
                    return []
                self._echoes.clear()  # past the retired connection's frames: no echo can follow
            # Another connection, open or still opening, may send this event too: a new one gets
            # events from the moment the server registers it, before its handshake is answered.
            others = [c for c in self._connections.values() if c is not conn]
            if others:
                for other in others:
                    if other.open and same in other.seen:
                        other.seen.discard(same)
                        return []
                conn.seen.add(same)
        payload: dict[str, Any] | None
        item: Item
        if self._models:
            payload = parse(text)
            if payload is None:
                item, stamp, kind = UnknownEvent.from_dict({RAW: text}), None, None
            else:
                item = decode_payload(payload, self._events)
                stamp, kind = payload.get("E"), payload.get("e")
                if type(stamp) is not int or not 0 < stamp < MAX_EVENT_TIME:  # a string (USD-M), junk
                    stamp = event_time(payload)
        else:
            raw = read(text, self._events, own)  # `e` and `E` alone, from a frame as Binance writes them
            if raw is None:  # any other frame: the full parse, still no model
                payload = parse(text)
                raw = RawEvent.of(text, payload, self._events)
            else:
                payload = None
            item, stamp, kind = raw, raw.event_time, raw.event_type
        cost = len(text)
        shared = self._shared
        if (
            self._overflow is None
            and len(self._buffer) < self._room
            and self._held_bytes + cost <= self.max_bytes
            and (
                shared is None
                or (shared.held < shared.maxsize and shared.held_bytes + cost <= shared.max_bytes)
            )
        ):
            self._buffer.append((item, cost))  # the hot path: room for it
            self._held_bytes += cost
            if self._texts is not None:
                self._texts.append(event_text(text, payload))
            if shared is not None:
                shared.held += 1
                shared.held_bytes += cost
        else:
            self._drop(at)
        if stamp is not None:
            self._last_event_time = stamp
        # One test for the events that change the connections ("e" may be any JSON value).
        if type(kind) is str and kind in _CONTROL_EVENTS:
            if payload is None:  # read for its `e` alone: the control event's fields are needed
                payload = parse(text) or {}
            if kind == "serverShutdown":
                return self._rotate(at, "the server announced a shutdown")
            if kind == "listenKeyExpired" and payload.get("listenKey", self.key) == self.key:
                return self._expired(at)
            if kind == "eventStreamTerminated":
                return self._terminated(conn, at)
        return []

    def subscribed(self, conn_id: int, subscription_id: int | None) -> None:
        """Connection `conn_id`'s events belong to subscription `subscription_id` (None: any frame is
        its own, as on a listenKey stream); a renewal that answered another id moves it there."""
        conn = self._connections.get(conn_id)
        if conn is not None:
            conn.subscription_id = subscription_id
            conn.envelope = None if subscription_id is None else f'{{"subscriptionId":{subscription_id},'

    def ping(self, conn_id: int, at: float) -> list[Action]:
        conn = self._connections.get(conn_id)
        if conn is not None and conn.open:
            conn.last_seen = at
        return []

    def closed(
        self, conn_id: int, at: float, detail: str | None = None, retry_after: float | None = None
    ) -> list[Action]:
        """Connection `conn_id` closed without being asked to, or failed to open; `retry_after`:
        the server said when to come back (a 429 or 418 answer), the least wait before the next try."""
        conn = self._remove(conn_id)
        if conn is None:
            return []
        if not conn.open:  # an attempt failed
            self._failures += 1
            if conn.planned and self._serving():
                self._rotate_at = at + max(self._backoff(), retry_after or 0.0)
                self._note(StreamEventKind.ROTATING, at, conn_id, self._rotate_at - at, detail)
                return []
            return self._schedule_reconnect(at, detail, retry_after)
        if not (conn_id in self._retiring and self._serving()):  # not the old one of a rotation
            self._note(StreamEventKind.DISCONNECTED, at, conn_id, detail=detail)
        return self._lost(conn, at, "disconnected", detail)

    def stalled(self, conn_id: int, at: float, detail: str) -> list[Action]:
        """Open connection `conn_id` went quiet past the ping rules: it is closed and lost (the
        stream's own stall rule, or a fleet's, whose connections carry many streams)."""
        conn = self._connections.get(conn_id)
        if conn is None or not conn.open:
            return []
        self._remove(conn_id)
        self._note(StreamEventKind.STALLED, at, conn_id, detail=detail)
        return [Close(conn_id), *self._lost(conn, at, "stalled", None)]

    def key_replaced(self, key: str, at: float) -> list[Action]:
        """The session holds a new key (or the renewal after an expiry or a refusal got one)."""
        if key == self.key and not self._awaiting_key:
            return []
        self._renew_at = None
        if key == self.key:  # the refused key lives: the refusal was something else; back off
            self._awaiting_key = False
            if not self._serving():
                return self._schedule_reconnect(at, "the listenKey is still valid")
            if self._rotate_at is None and len(self._connections) == 1:
                # A rotation came due meanwhile and was put off for the key: retry it after a backoff.
                self._rotate_at = at + self._backoff()
            return []
        self.key = key
        self._note(StreamEventKind.KEY_REPLACED, at)
        if not self._awaiting_key or self._serving():  # connections on the old key close here
            self._begin_loss("key_replaced", at)
        self._awaiting_key = False
        actions: list[Action] = self._close_all()
        actions.append(self._connect(at, planned=False))
        return actions

    def key_refused(self, at: float, detail: str | None = None) -> list[Action]:
        """The server said the key is gone: it refused a connection for it, or closed one saying so
        (another program may have closed the account's key). Ask for the account's key now
        (RenewKey) rather than retry the dead one until the session's next keepalive; no
        connection is opened until it comes (`key_replaced`). The driver reports the connection
        itself with `closed` right after."""
        if self._awaiting_key:
            return []  # a renewal is under way
        self._note(StreamEventKind.KEY_REFUSED, at, detail=detail)
        self._awaiting_key = True
        self._reconnect_at = self._renew_at = None
        return [RenewKey()]

    def renew_failed(self, at: float, detail: str | None = None) -> list[Action]:
        """The renewal asked for by RenewKey failed (not fatally): ask again after a backoff."""
        self._failures += 1
        self._renew_at = at + self._backoff()
        self._note(StreamEventKind.RECONNECTING, at, retry_in=self._renew_at - at, detail=detail)
        return []

    def token_valid(self, expires_at: float, at: float) -> list[Action]:
        """The listenToken in use is valid until `expires_at` (the stream's clock): renew it
        `token_lead` before then (see the comment below for short tokens)."""
        renewing = self._token_expires_at is not None
        self._token_expires_at = expires_at
        # `token_lead` before the expiry; for a token shorter than that, at half its life; never
        # sooner than `first_retry`: a short token must not make a loop of mints.
        self._renew_token_at = max(
            at + self.timing.first_retry, expires_at - self.timing.token_lead, (at + expires_at) / 2
        )
        if renewing:
            self._note(StreamEventKind.TOKEN_RENEWED, at, detail=f"valid for {expires_at - at:.0f}s")
        return []

    def token_renew_failed(self, at: float, detail: str | None = None) -> list[Action]:
        """Minting or presenting a new listenToken failed: try again after a backoff, but while the
        old token lives no later than halfway to its expiry, and never sooner than `first_retry`
        (past the expiry, eventStreamTerminated ends the subscription and a reconnect mints anew)."""
        self._failures += 1
        wait = self._backoff()
        if self._token_expires_at is not None and self._token_expires_at > at:
            wait = max(self.timing.first_retry, min(wait, (self._token_expires_at - at) / 2))
        self._renew_token_at = at + wait
        self._note(StreamEventKind.TOKEN_RENEW_FAILED, at, retry_in=wait, detail=detail)
        return []

    def replace_connections(self, at: float, why: str) -> list[Action]:
        """Open a new connection and retire the others after the overlap (make-before-break): for a
        connection whose subscription could not be renewed."""
        actions = self._rotate(at, why)
        if not actions:  # a rotation or a reconnect is under way: say why it was wanted anyway
            self._note(StreamEventKind.ROTATING, at, detail=why)
        return actions

    def note(
        self, kind: StreamEventKind, at: float, conn_id: int | None = None, detail: str | None = None
    ) -> None:
        """Record a driver's happening (a subscription, a clock resync) among the core's notes."""
        self._note(kind, at, conn_id, detail=detail)

    def tick(self, at: float) -> list[Action]:
        """Time passed: act on every deadline that has come (see `next_deadline`)."""
        actions: list[Action] = []
        for conn in list(self._connections.values()):
            if (
                conn.open
                and at >= conn.last_seen + self.timing.stall_after
                and conn.conn_id in self._connections
            ):
                actions += self.stalled(conn.conn_id, at, f"silent for {at - conn.last_seen:.3g}s")
        if self._retire_at is not None and at >= self._retire_at:
            self._retire_at = None
            for conn_id in self._retiring:
                if (retired := self._connections.pop(conn_id, None)) is not None:
                    self._echoes |= retired.seen
                    actions.append(Close(conn_id))
            self._retiring = []
            for conn in self._connections.values():
                conn.seen.clear()
                conn.planned = False
            self._note(StreamEventKind.ROTATED, at)
        if self._rotate_at is not None and at >= self._rotate_at:
            actions += self._rotate(at, "the connection is due for replacement")
        if self._reconnect_at is not None and at >= self._reconnect_at:
            self._reconnect_at = None
            actions.append(self._connect(at, planned=False))
        if self._renew_at is not None and at >= self._renew_at:
            self._renew_at = None
            actions.append(RenewKey())
        if self._renew_token_at is not None and at >= self._renew_token_at:
            self._renew_token_at = None
            actions.append(RenewToken())
        return actions

    def next_deadline(self) -> float:
        """When `tick` has something to do next (math.inf: nothing until something happens)."""
        deadlines = [c.last_seen + self.timing.stall_after for c in self._connections.values() if c.open]
        deadlines += [
            t
            for t in (
                self._retire_at,
                self._rotate_at,
                self._reconnect_at,
                self._renew_at,
                self._renew_token_at,
            )
            if t is not None
        ]
        return min(deadlines, default=math.inf)

    # -- what the consumer takes -------------------------------------------------------------

    def pop(self, at: float) -> Item | None:
        """The next item in order, or None when there is none yet."""
        self.popped_text = None
        if not self._buffer:
            return None
        item, cost = self._buffer.popleft()
        if cost < 0:
            self._room -= 1  # a gap
        else:
            if self._texts is not None:
                self.popped_text = self._texts.popleft()
            elif not self._models:
                self.popped_text = item.text  # type: ignore[union-attr]  # a RawEvent
            self._held_bytes -= cost
            if self._shared is not None:
                self._shared.held -= 1
                self._shared.held_bytes -= cost
            if self._overflow is not None:
                self._reopen(at)
        return item

    def pop_batch(self, most: int, at: float) -> list[Item]:
        """Up to `most` items in order, for a consumer that hands them out one by one later (the
        sync stream): they count against the bounds until `batch_done`. A gap comes only first in
        a batch, so that one still buffered can grow if the overflow begins again at once."""
        items: list[Item] = []
        while self._buffer and len(items) < most:
            if self._buffer[0][1] < 0 and items:
                break
            item, cost = self._buffer.popleft()
            items.append(item)
            self._room -= 1  # a gap gone, or an event lent
            if cost >= 0:
                if self._texts is not None:
                    self._texts.popleft()  # a batch's consumer reads models only
                self._lent += 1
                self._lent_bytes += cost
        return items

    def batch_done(self, at: float) -> None:
        """The consumer has handed out every item of its last batch: they no longer count."""
        self._room += self._lent
        self._held_bytes -= self._lent_bytes
        if self._shared is not None:
            self._shared.held -= self._lent
            self._shared.held_bytes -= self._lent_bytes
        self._lent = self._lent_bytes = 0
        if self._overflow is not None:
            self._reopen(at)

    def failed(self, at: float) -> list[Action]:
        """The stream ends with an error no retry mends: the overflow and the loss in progress become
        gaps after what is buffered (the consumer takes them before the driver raises the error);
        every connection closes and nothing more is scheduled."""
        self._flush_overflow(at)
        if self._loss is not None:
            self._append_gap(self._loss.gap(at))
            self._loss = None
        actions = self._close_all()
        self._renew_at = self._renew_token_at = None
        self._awaiting_key = False
        return actions

    def reopen(self, at: float) -> None:
        """The shared bounds may have room again (another stream's consumer drained them): end this
        stream's overflow if its own buffer is low too. A no-op when it does not overflow."""
        if self._overflow is not None:
            self._reopen(at)

    @property
    def overflowing(self) -> bool:
        """Events are being dropped: the buffer has not yet drained to its low-water mark."""
        return self._overflow is not None

    def __len__(self) -> int:
        return len(self._buffer)

    # -- the rules -----------------------------------------------------------------------------

    def _note(
        self,
        kind: StreamEventKind,
        at: float,
        conn_id: int | None = None,
        retry_in: float | None = None,
        detail: str | None = None,
    ) -> None:
        self.notes.append(StreamEvent(kind, at, conn_id, retry_in, detail))

    def _remove(self, conn_id: int) -> _Connection | None:
        """Forget connection `conn_id`. What it delivered may still come on another connection, even
        one still opening (the server registered it first): those texts become echoes to drop.
        With one connection left, nobody can send its events twice: its texts are forgotten."""
        conn = self._connections.pop(conn_id, None)
        if conn is not None and self._connections:
            self._echoes |= conn.seen
            if len(self._connections) == 1:
                for other in self._connections.values():
                    other.seen.clear()
        return conn

    def _serving(self) -> bool:
        return any(c.open for c in self._connections.values())

    def _connect(self, at: float, *, planned: bool, why: str | None = None) -> Connect:
        assert self.key is not None
        conn_id = next(self._ids)
        self._connections[conn_id] = _Connection(conn_id, planned)
        kind = StreamEventKind.ROTATING if planned else StreamEventKind.CONNECTING
        self._note(kind, at, conn_id, detail=why)
        return Connect(conn_id, self._url_for(self.key))

    def _backoff(self) -> float:
        """Full jitter: a uniform draw below first_retry * 2**(failures-1), capped at max_retry."""
        exponent = min(self._failures - 1, 32)
        ceiling = min(self.timing.max_retry, self.timing.first_retry * 2.0**exponent)
        return self._random() * ceiling

    def _schedule_reconnect(
        self, at: float, detail: str | None, at_least: float | None = None
    ) -> list[Action]:
        if self._awaiting_key or any(not c.open for c in self._connections.values()):
            return []  # a renewal or another attempt is under way
        if self._failures == 0 and not at_least:
            return [self._connect(at, planned=False)]
        self._reconnect_at = at + max(self._backoff(), at_least or 0.0)
        self._note(StreamEventKind.RECONNECTING, at, retry_in=self._reconnect_at - at, detail=detail)
        return []

    def _rotate(self, at: float, why: str) -> list[Action]:
        self._rotate_at = None
        if self._loss is not None or self._awaiting_key or len(self._connections) > 1:
            return []  # reconnecting already, or a rotation is under way
        return [self._connect(at, planned=True, why=why)]

    def _begin_loss(self, reason: GapReason, at: float) -> None:
        if self._loss is None:
            self._loss = _Hole(reason, at, self._last_event_time)
        self._rotate_at = self._retire_at = None
        self._retiring = []

    def _lost(self, conn: _Connection, at: float, reason: GapReason, detail: str | None) -> list[Action]:
        """An open connection is gone: a gap unless another open one serves on."""
        if conn.conn_id in self._retiring:
            self._retiring.remove(conn.conn_id)
        elif self._retire_at is not None:
            # The rotation's new connection was lost in the overlap: the old one serves on (it
            # would otherwise be retired, leaving none), and the rotation is tried again later.
            self._retire_at, self._retiring = None, []
            self._failures += 1
            self._rotate_at = at + self._backoff()
        if self._serving():
            return []
        if at - conn.opened_at < self.timing.max_retry:
            self._failures += 1  # lost soon after it opened: do not reconnect in a tight loop
        else:
            self._failures = 0
        self._begin_loss(reason, at)
        for other in self._connections.values():
            other.planned = False  # a rotation's attempt now ends the gap
        return self._schedule_reconnect(at, detail)

    def _expired(self, at: float) -> list[Action]:
        self._note(StreamEventKind.KEY_EXPIRED, at)
        self._begin_loss("listen_key_expired", at)
        actions: list[Action] = self._close_all()
        self._reconnect_at = None
        self._awaiting_key = True
        actions.append(RenewKey())
        return actions

    def _terminated(self, conn: _Connection, at: float) -> list[Action]:
        """The WebSocket API ended this connection's subscription: it is lost, as if closed."""
        if self._remove(conn.conn_id) is None:
            return []
        self._note(StreamEventKind.TERMINATED, at, conn.conn_id, detail="eventStreamTerminated")
        return [Close(conn.conn_id), *self._lost(conn, at, "subscription_ended", None)]

    def _close_all(self) -> list[Action]:
        actions: list[Action] = [Close(conn_id) for conn_id in self._connections]
        self._connections.clear()
        self._reconnect_at = self._retire_at = self._rotate_at = None
        self._retiring = []
        return actions

    def _other(self, conn: _Connection, text: str, at: float) -> bool:
        """True for an event envelope of another subscription than the connection's (dropped,
        counted and noted); False for any other frame the prefix test passed over: the connection's
        own written otherwise (spaces), a connection event without an id, or no envelope at all."""
        try:
            envelope = json.loads(text)
        except (ValueError, RecursionError):
            return False
        if type(envelope) is not dict or "subscriptionId" not in envelope:
            return False
        subscription = envelope["subscriptionId"]
        if type(subscription) is int and subscription == conn.subscription_id:
            return False
        conn.others += 1
        if conn.others & (conn.others - 1) == 0:  # a power of two: visible, and never a flood of notes
            shown = subscription if type(subscription) is int and abs(subscription) < 2**63 else "(malformed)"
            self._note(
                StreamEventKind.OTHER_SUBSCRIPTION,
                at,
                conn.conn_id,
                detail=f"dropped an event of subscriptionId {shown}, not this connection's "
                f"{conn.subscription_id} ({conn.others} dropped so far)",
            )
        return True

    def _drop(self, at: float) -> None:
        """An event found no room: count it in the overflow in progress, or begin one."""
        if self._overflow is not None:
            self._overflow.dropped += 1
            return
        last = self._buffer[-1][0] if self._buffer else None
        if isinstance(last, StreamGap) and last.reason == "overflow":  # no event since: the same hole
            self._buffer.pop()
            self._room -= 1
            self._overflow = _Hole("overflow", last.started_at, last.last_event_time, last.dropped + 1)
            again = "again, before any event followed its gap (the same gap grows): "
        else:
            self._overflow = _Hole("overflow", at, self._last_event_time, dropped=1)
            again = ""
        self._note(
            StreamEventKind.OVERFLOW,
            at,
            detail=f"buffer full {again}{self._held()} events, {self._held_bytes} bytes "
            f"(bounds: {self.maxsize} events, {self.max_bytes} bytes)",
        )

    def _reopen(self, at: float) -> None:
        """End the overflow once the buffer is down to half of both bounds (the low-water mark),
        and the shared bounds too."""
        if (
            self._held() <= self.maxsize // 2
            and self._held_bytes <= self.max_bytes // 2
            and (self._shared is None or self._shared.low())
        ):
            self._flush_overflow(at)

    def _held(self) -> int:
        """The events buffered or lent."""
        return len(self._buffer) - (self._room - self.maxsize)

    def _flush_overflow(self, at: float) -> None:
        if self._overflow is not None:
            self._append_gap(self._overflow.gap(at))
            self._overflow = None

    def _append_gap(self, gap: StreamGap) -> None:
        self._buffer.append((gap, -1))
        self._room += 1


#: The events that change the connections: a rotation, the key's expiry, the subscription's end.
_CONTROL_EVENTS = frozenset({"serverShutdown", "listenKeyExpired", "eventStreamTerminated"})


def _dedupe_key(text: str) -> str:
    """What identifies a frame's event across connections: the text, less a WebSocket API
    envelope's subscriptionId (each connection numbers its subscriptions itself)."""
    if text.startswith('{"subscriptionId"'):
        start = text.find('"event"')
        if start > 0:
            return text[start:]
    return text
