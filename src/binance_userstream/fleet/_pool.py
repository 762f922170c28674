"""The fleet's connections, without I/O: which subscription goes on which connection, and when
connections open, rotate and are given up.

A fleet's accounts each have their own stream rules (`StreamCore`: gaps, backoff, make-before-break,
the bounded buffer), whose "connections" are subscriptions here: one account's place on a shared
connection (a `userDataStream.subscribe.*` on the WebSocket API, a listenKey in a SUBSCRIBE on the
derivatives' combined streams). The pool packs them, fullest connection first, up to the market's
most per connection; never two of one account on one connection (Binance refuses it on the
WebSocket API); and spends Binance's per-IP limits (`FleetLimits`) as they allow, holding the rest
until they do, so that limits are kept rather than discovered by a ban. On the WebSocket API
an unsubscribe is sent when the account's rules ask, even past the weight (it may pass
`request_weight` by its 2): the subscribes and opens after it wait for it. On the combined streams
unsubscribes take their turn among the connection's messages.

A connection lives until it is due for rotation (`rotate_after`, less a random share of
`rotate_spread`, so that connections opened together are not replaced together), then it is
replaced make-before-break: a successor opens, each account on it is asked to move (`Rotate`:
the account's own rules open the new subscription and retire the old one after their overlap),
and once none is left the old connection closes. One rotation at a time: 100,000 accounts never
resubscribe in the same minute. A connection that goes quiet past the ping rules, or closes, is
lost for each account on it (`Lost`): each account's rules then make its gap and its reconnect.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from typing import Literal

from attrs import define, field, frozen

from binance_userstream.fleet._limits import FleetLimits, Window
from binance_userstream.stream._core import StreamEvent, StreamEventKind

#: A WebSocket API connection takes 65,535 subscriptions over its life; a few are kept spare.
LIFETIME_SUBSCRIPTIONS = 65_000
#: Request weight of a subscription and of an unsubscription on the WebSocket API, and of connecting.
SUBSCRIBE_WEIGHT = 2
CONNECT_WEIGHT = 2
#: The route of a dedicated connection's one subscription: every frame on it is its own.
DEDICATED = "*"
#: How long a rotation may take before the old connection is closed anyway (its accounts that
#: could not move then lose it, with a gap each).
ROTATION_TIMEOUT = 600.0


@frozen
class Open:
    """Open connection `conn`: the market's fleet URL, or on a dedicated connection the stream of
    `target` (a listenKey: kept out of the repr)."""

    conn: int
    target: str | None = field(default=None, repr=False)


@frozen
class Shut:
    """Close connection `conn`; the pool has forgotten it."""

    conn: int


@frozen
class Member:
    """One account's subscription on a connection: `sub` is the account stream's connection id,
    `target` what it subscribes to (a listenKey on the derivatives; "" on the WebSocket API), `route`
    how its frames are told apart once confirmed (a subscriptionId, or the stream's name)."""

    sub: int
    account: str
    target: str = field(repr=False)
    route: str | None = field(default=None, repr=False)


@frozen
class Subscribe:
    """Subscribe these members on connection `conn` (one request each on the WebSocket API, one
    SUBSCRIBE naming them all on the derivatives); the weight is spent."""

    conn: int
    members: tuple[Member, ...]


@frozen
class Unsubscribe:
    """End these members' subscriptions on connection `conn`, which goes on serving others (one
    request each on the WebSocket API, one UNSUBSCRIBE naming them all on the derivatives)."""

    conn: int
    members: tuple[Member, ...]


@frozen
class Lost:
    """Subscription `sub` is gone with its connection (closed, failed to open, or quiet): its
    account's rules make the gap and the reconnect."""

    sub: int
    detail: str | None
    stalled: bool = False
    retry_after: float | None = None


@frozen
class Live:
    """Subscription `sub` is live: its dedicated connection opened (its URL subscribed it)."""

    sub: int


@frozen
class Rotate:
    """Move `account` to the connection replacing its own (make-before-break)."""

    account: str
    why: str


PoolAction = Open | Shut | Subscribe | Unsubscribe | Lost | Live | Rotate


@define
class _Sub:
    member: Member
    conn: int
    state: Literal["queued", "sent", "live", "released"] = "queued"


@define(eq=False)
class _Conn:
    conn_id: int
    opened_at: float | None = None  # None: not open yet
    requested: bool = False  # Open was emitted
    last_seen: float = 0.0
    subs: dict[int, _Sub] = field(factory=dict)
    accounts: set[str] = field(factory=set)
    routes: dict[str, int] = field(factory=dict)
    queued: deque[int] = field(factory=deque)
    rotate_at: float = math.inf
    retiring: bool = False
    lifetime: int = 0  # subscriptions sent over its life
    next_message_at: float = 0.0
    barred: set[str] = field(factory=set)  # accounts whose subscription here went unanswered
    leaving: list[Member] = field(factory=list)  # to unsubscribe in its next message (combined streams)


class Pool:
    """Where each subscription goes (see the module docstring). Not thread-safe: one driver feeds it."""

    def __init__(
        self,
        *,
        capacity: int,
        combined: bool,
        limits: FleetLimits,
        stall_after: float,
        rotate_after: float,
        rotate_spread: float,
        random: Callable[[], float],
        dedicated: bool = False,
        quiet: bool = False,
        answer_timeout: float = 10.0,
    ) -> None:
        """`capacity`: accounts per connection; `combined`: the derivatives' combined streams (one
        SUBSCRIBE names many keys, paced by `messages_per_second`), else the WebSocket API (one
        request per account, paced by request weight). `dedicated`: each subscription has a
        connection of its own whose URL subscribes it (one account's listenKey stream: `events()`);
        `quiet`: note only the limits' holds (a fleet of one, whose account notes the rest). A
        subscription not answered within `answer_timeout` seconds is lost (its account retries)."""
        self.dedicated = dedicated
        self.quiet = quiet
        self.answer_timeout = answer_timeout
        self._answers: deque[tuple[float, int]] = deque()  # (answer due by, subscription), in send order
        self.capacity = capacity
        self.combined = combined
        self.limits = limits
        self.stall_after = stall_after
        self.rotate_after = rotate_after
        self.rotate_spread = min(rotate_spread, rotate_after / 2)
        self._random = random
        self.connections_window = Window(limits.connections, limits.connection_window)
        self.weight_window = Window(limits.request_weight, limits.weight_window)
        self._conns: dict[int, _Conn] = {}
        self._subs: dict[int, _Sub] = {}
        self._next_conn = 1
        self._opening: deque[int] = deque()  # connections waiting for the connection limit
        self._sending: deque[int] = deque()  # connections with subscriptions waiting for weight
        self._open_at: float | None = None
        self._send_at: float | None = None
        self._rotating: int | None = None
        self._successor: int | None = None
        self._rotation_ends: float | None = None
        self._moving: dict[str, int] = {}  # account -> the successor it moves to
        self.notes: list[StreamEvent] = []

    # -- what the fleet's accounts ask for -------------------------------------------------------

    def place(self, member: Member, at: float) -> list[PoolAction]:
        """Find `member` a connection (opening one if none has room) and subscribe it when the
        limits allow."""
        conn = self._where(member.account, at)
        sub = _Sub(member, conn.conn_id)
        self._subs[member.sub] = sub
        conn.subs[member.sub] = sub
        conn.accounts.add(member.account)
        conn.queued.append(member.sub)
        actions: list[PoolAction] = []
        if not conn.requested:
            actions += self._request_open(conn, at)
        elif conn.opened_at is not None:
            actions += self._flush(conn, at)
        return actions

    def release(self, sub_id: int, at: float) -> list[PoolAction]:
        """The account's rules closed subscription `sub_id`: unsubscribe it, unless its connection is
        going away; a connection left with none closes."""
        sub = self._subs.pop(sub_id, None)
        if sub is None:
            return []
        conn = self._conns[sub.conn]
        actions: list[PoolAction] = []
        if sub.state == "sent":  # its answer is still to come: it is unsubscribed then
            sub.state = "released"
            self._subs[sub_id] = sub
            return []
        self._forget(conn, sub)
        if sub.state == "live" and self._stays(conn) and not self.dedicated:
            actions += self._unsubscribe(conn, sub.member, at)
        return actions + self._maybe_shut(conn, at)

    # -- what the driver reports -------------------------------------------------------------------

    def opened(self, conn_id: int, at: float) -> list[PoolAction]:
        conn = self._conns.get(conn_id)
        if conn is None or conn.opened_at is not None:
            return []
        conn.opened_at = conn.last_seen = at
        conn.rotate_at = at + self.rotate_after - self.rotate_spread * self._random()
        if self.dedicated:  # its URL subscribed its one member
            live: list[PoolAction] = []
            for sub in conn.subs.values():
                if sub.state == "queued":
                    sub.state = "live"
                    sub.member = Member(sub.member.sub, sub.member.account, sub.member.target, DEDICATED)
                    conn.routes[DEDICATED] = sub.member.sub
                    live.append(Live(sub.member.sub))
            conn.queued.clear()
            return live
        self._note(StreamEventKind.CONNECTED, at, conn_id, f"{len(conn.subs)} accounts waiting to subscribe")
        return self._flush(conn, at)

    def seen(self, conn_id: int, at: float) -> None:
        """A frame or a ping came on connection `conn_id`: it lives."""
        conn = self._conns.get(conn_id)
        if conn is not None:
            conn.last_seen = at

    def arrived(self, conn_id: int, name: str | None, at: float) -> int | None:
        """A frame came on connection `conn_id` (it lives), carrying route `name` (None: none): the
        subscription whose frames carry it there, if any. `seen` and `route` in one lookup, per event."""
        conn = self._conns.get(conn_id)
        if conn is None:
            return None
        conn.last_seen = at
        return None if name is None else conn.routes.get(name)

    def confirmed(self, sub_id: int, route: str, at: float) -> tuple[bool, list[PoolAction]]:
        """The server confirmed subscription `sub_id`, whose frames carry `route`: True if it is
        still wanted (the account's rules count it open now); a subscription released meanwhile is
        unsubscribed instead."""
        sub = self._subs.get(sub_id)
        if sub is None or sub.state not in ("sent", "released"):
            return False, []
        conn = self._conns[sub.conn]
        member = Member(sub.member.sub, sub.member.account, sub.member.target, route)
        sub.member = member
        if sub.state == "released":
            del self._subs[sub_id]
            self._forget(conn, sub)
            actions: list[PoolAction] = []
            if self._stays(conn):
                actions += self._unsubscribe(conn, member, at)
            return False, actions + self._maybe_shut(conn, at)
        sub.state = "live"
        conn.routes[route] = sub_id
        if conn.retiring and conn.conn_id == self._rotating and self._successor is not None:
            # Confirmed on a connection that began its rotation meanwhile: it moves too.
            self._moving[member.account] = self._successor
            return True, [Rotate(member.account, "the connection is due for replacement")]
        return True, []

    def refused(self, sub_id: int, at: float) -> list[PoolAction]:
        """The server refused subscription `sub_id` (the account's rules are told by the fleet)."""
        sub = self._subs.pop(sub_id, None)
        if sub is None:
            return []
        conn = self._conns[sub.conn]
        self._forget(conn, sub)
        return self._maybe_shut(conn, at)

    def route(self, conn_id: int, name: str) -> int | None:
        """The subscription whose frames carry `name` on connection `conn_id`, if any."""
        conn = self._conns.get(conn_id)
        return None if conn is None else conn.routes.get(name)

    def lost(
        self,
        conn_id: int,
        at: float,
        detail: str | None,
        retry_after: float | None = None,
        *,
        stalled: bool = False,
    ) -> list[PoolAction]:
        """Connection `conn_id` closed or failed to open: each subscription on it is lost."""
        conn = self._conns.pop(conn_id, None)
        if conn is None:
            return []
        if not stalled:
            was_open = conn.opened_at is not None
            self._note(
                StreamEventKind.DISCONNECTED if was_open else StreamEventKind.RECONNECTING,
                at,
                conn_id,
                detail,
            )
        actions: list[PoolAction] = []
        for sub_id, sub in conn.subs.items():
            if self._subs.get(sub_id) is sub:
                del self._subs[sub_id]
                if sub.state != "released":  # one not confirmed yet is an attempt failed, not a stall
                    actions.append(Lost(sub_id, detail, stalled and sub.state == "live", retry_after))
        if conn_id in self._opening:
            self._opening.remove(conn_id)
        if self._rotating == conn_id:
            actions += self._end_rotation(at)
        elif self._successor == conn_id:  # the rotation's new connection failed: another one
            self._successor = None
            if self._rotating is not None:
                successor = self._new_conn()
                self._successor = successor.conn_id
                for account, target in self._moving.items():
                    if target == conn_id:
                        self._moving[account] = successor.conn_id
                actions += self._request_open(successor, at)
        return actions

    def shutdown_notice(self, conn_id: int, at: float) -> None:
        """The server announced it will close connection `conn_id`: rotate it next."""
        conn = self._conns.get(conn_id)
        if conn is not None and not conn.retiring:
            conn.rotate_at = min(conn.rotate_at, at)

    # -- time ----------------------------------------------------------------------------------

    def tick(self, at: float) -> list[PoolAction]:
        """Act on every deadline that has come: stalls, rotations, the limits' waits."""
        actions: list[PoolAction] = []
        for conn in list(self._conns.values()):
            if conn.opened_at is not None and at >= conn.last_seen + self.stall_after:
                silent = at - conn.last_seen
                self._note(StreamEventKind.STALLED, at, conn.conn_id, f"silent for {silent:.3g}s")
                actions.append(Shut(conn.conn_id))
                actions += self.lost(conn.conn_id, at, f"silent for {silent:.3g}s", stalled=True)
        while self._answers and self._answers[0][0] <= at:
            _, sub_id = self._answers.popleft()
            sub = self._subs.get(sub_id)
            if sub is not None and sub.state in ("sent", "released"):
                del self._subs[sub_id]
                conn = self._conns[sub.conn]
                self._forget(conn, sub)
                conn.barred.add(sub.member.account)  # its late answer would make two here: never again
                if sub.state == "sent":
                    detail = (
                        f"ConnectionError: the subscription was not answered within {self.answer_timeout:g} s"
                    )
                    actions.append(Lost(sub_id, detail))
                actions += self._maybe_shut(conn, at)
        if self._rotation_ends is not None and at >= self._rotation_ends and self._rotating is not None:
            old = self._conns.get(self._rotating)
            if old is not None:
                self._note(StreamEventKind.ROTATED, at, old.conn_id, "the rotation timed out: closed")
                actions.append(Shut(old.conn_id))
                actions += self.lost(old.conn_id, at, "its rotation timed out")
        if self._rotating is None:
            due = min(
                (c for c in self._conns.values() if not c.retiring and c.opened_at is not None),
                key=lambda c: c.rotate_at,
                default=None,
            )
            if due is not None and at >= due.rotate_at:
                actions += self._rotate(due, at)
        if self._open_at is not None and at >= self._open_at:
            self._open_at = None
            while self._opening:
                waiting = self._conns.get(self._opening[0])
                if waiting is None:
                    self._opening.popleft()
                    continue
                more = self._try_open(waiting, at)
                if not more:
                    break
                self._opening.popleft()
                actions += more
        if self._send_at is not None and at >= self._send_at:
            self._send_at = None
            for conn_id in list(self._sending):
                sending = self._conns.get(conn_id)
                if sending is not None:
                    actions += self._flush(sending, at)
        return actions

    def next_deadline(self) -> float:
        deadlines = [c.last_seen + self.stall_after for c in self._conns.values() if c.opened_at is not None]
        if self._rotating is None:
            deadlines += [
                c.rotate_at for c in self._conns.values() if not c.retiring and c.opened_at is not None
            ]
        deadlines += [t for t in (self._rotation_ends, self._open_at, self._send_at) if t is not None]
        if self._answers:
            deadlines.append(self._answers[0][0])
        return min(deadlines, default=math.inf)

    # -- what it holds ---------------------------------------------------------------------------

    def connections(self) -> int:
        """Connections open or opening."""
        return len(self._conns)

    def load(self) -> list[int]:
        """Subscriptions per connection (open or opening), in the order they were made."""
        return [len(c.subs) for c in self._conns.values()]

    def awaiting(self) -> int:
        """Subscriptions sent and not yet answered."""
        return sum(1 for sub in self._subs.values() if sub.state == "sent")

    def subs_on(self, conn_id: int) -> list[int]:
        """The subscriptions on connection `conn_id`."""
        conn = self._conns.get(conn_id)
        return [] if conn is None else list(conn.subs)

    def rename(self, sub_id: int, route: str) -> None:
        """Subscription `sub_id`'s frames carry `route` from now on (a renewal renumbered it)."""
        sub = self._subs.get(sub_id)
        if sub is None or sub.member.route == route:
            return
        conn = self._conns[sub.conn]
        if sub.member.route is not None and conn.routes.get(sub.member.route) == sub_id:
            del conn.routes[sub.member.route]
        sub.member = Member(sub.member.sub, sub.member.account, sub.member.target, route)
        conn.routes[route] = sub_id

    def conn_of(self, sub_id: int) -> int | None:
        sub = self._subs.get(sub_id)
        return None if sub is None else sub.conn

    def member(self, sub_id: int) -> Member | None:
        sub = self._subs.get(sub_id)
        return None if sub is None else sub.member

    # -- the rules -------------------------------------------------------------------------------

    def _note(
        self,
        kind: StreamEventKind,
        at: float,
        conn_id: int | None,
        detail: str | None = None,
        *,
        hold: bool = False,
    ) -> None:
        if hold or not self.quiet:
            self.notes.append(StreamEvent(kind, at, conn_id, None, detail))

    def _new_conn(self) -> _Conn:
        conn = _Conn(self._next_conn)
        self._next_conn += 1
        self._conns[conn.conn_id] = conn
        return conn

    def _where(self, account: str, at: float) -> _Conn:
        """The connection for a new subscription of `account`: the successor it moves to in a
        rotation, else the fullest one with room that does not carry the account, else a new one."""
        if self.dedicated:
            return self._new_conn()
        moving = self._moving.pop(account, None)
        if moving is not None and moving in self._conns and account not in self._conns[moving].barred:
            return self._conns[moving]
        best: _Conn | None = None
        for conn in self._conns.values():
            if (
                conn.retiring
                or len(conn.subs) >= self.capacity
                or account in conn.accounts
                or account in conn.barred
                or conn.lifetime + len(conn.queued) >= LIFETIME_SUBSCRIPTIONS
                or conn.conn_id == self._successor
            ):
                continue
            if best is None or len(conn.subs) > len(best.subs):
                best = conn
        return best if best is not None else self._new_conn()

    def _request_open(self, conn: _Conn, at: float) -> list[PoolAction]:
        conn.requested = True
        if self._opening:  # others wait already: in turn
            self._opening.append(conn.conn_id)
            return []
        actions = self._try_open(conn, at)
        if not actions:
            self._opening.append(conn.conn_id)
        return actions

    def _try_open(self, conn: _Conn, at: float) -> list[PoolAction]:
        """Open `conn` if the connection limit (and on the WebSocket API the weight) allows; else
        say when to try again."""
        wait = self.connections_window.wait(at)
        if not self.combined:
            wait = max(wait, self.weight_window.wait(at, CONNECT_WEIGHT))
        if wait > 0:
            self._open_at = at + wait if self._open_at is None else min(self._open_at, at + wait)
            self._note(
                StreamEventKind.CONNECTING,
                at,
                conn.conn_id,
                f"held {wait:.3g}s by the limit of {self.limits.connections} new connections per "
                f"{self.limits.connection_window:g}s or {self.limits.request_weight} weight per "
                f"{self.limits.weight_window:g}s",
                hold=True,
            )
            return []
        self.connections_window.take(at)
        if not self.combined:
            self.weight_window.take(at, CONNECT_WEIGHT)
        self._note(StreamEventKind.CONNECTING, at, conn.conn_id, f"for {len(conn.subs)} accounts")
        if self.dedicated:
            return [Open(conn.conn_id, next(iter(conn.subs.values())).member.target)]
        return [Open(conn.conn_id)]

    def _flush(self, conn: _Conn, at: float) -> list[PoolAction]:
        """Send what the limits allow of `conn`'s queued subscriptions (and, on the combined
        streams, of its unsubscriptions: an UNSUBSCRIBE goes first); the rest waits its turn."""
        if conn.opened_at is None or self.dedicated:
            return []
        batch: list[Member] = []
        actions: list[PoolAction] = []
        if self.combined:
            if conn.leaving and at >= conn.next_message_at:  # an UNSUBSCRIBE is a message too
                most = self.limits.keys_per_message
                actions.append(Unsubscribe(conn.conn_id, tuple(conn.leaving[:most])))
                del conn.leaving[:most]
                conn.next_message_at = at + 1.0 / self.limits.messages_per_second
            if at < conn.next_message_at:
                wait_until = conn.next_message_at
            else:
                while conn.queued and len(batch) < self.limits.keys_per_message:
                    sub = self._subs.get(conn.queued.popleft())
                    if sub is not None and sub.state == "queued":
                        sub.state = "sent"
                        batch.append(sub.member)
                if batch:
                    conn.next_message_at = at + 1.0 / self.limits.messages_per_second
                wait_until = conn.next_message_at
        else:
            wait_until = at
            while conn.queued:
                sub = self._subs.get(conn.queued[0])
                if sub is None or sub.state != "queued":
                    conn.queued.popleft()
                    continue
                wait = self.weight_window.wait(at, SUBSCRIBE_WEIGHT)
                if wait > 0:
                    wait_until = at + wait
                    break
                self.weight_window.take(at, SUBSCRIBE_WEIGHT)
                conn.queued.popleft()
                sub.state = "sent"
                batch.append(sub.member)
        conn.lifetime += len(batch)
        due = at + self.answer_timeout
        self._answers.extend((due, member.sub) for member in batch)
        if conn.queued or conn.leaving:
            if conn.conn_id not in self._sending:
                self._sending.append(conn.conn_id)
            self._send_at = wait_until if self._send_at is None else min(self._send_at, wait_until)
        elif conn.conn_id in self._sending:
            self._sending.remove(conn.conn_id)
        return [*actions, Subscribe(conn.conn_id, tuple(batch))] if batch else actions

    def _forget(self, conn: _Conn, sub: _Sub) -> None:
        if conn.subs.pop(sub.member.sub, None) is not None:
            conn.accounts.discard(sub.member.account)
        if sub.member.route is not None and conn.routes.get(sub.member.route) == sub.member.sub:
            del conn.routes[sub.member.route]

    def _unsubscribe(self, conn: _Conn, member: Member, at: float) -> list[PoolAction]:
        """End `member`'s subscription on `conn`: at once on the WebSocket API (its weight spent), in
        the connection's next message on the combined streams (where every message counts)."""
        if self.combined:
            conn.leaving.append(member)
            return self._flush(conn, at)
        self.weight_window.take(at, SUBSCRIBE_WEIGHT)
        return [Unsubscribe(conn.conn_id, (member,))]

    def _stays(self, conn: _Conn) -> bool:
        """`conn` goes on serving: a subscription leaving it is unsubscribed (one leaving a
        connection that is going away, or that it leaves empty, ends with its close)."""
        return not conn.retiring and (bool(conn.subs) or conn.conn_id == self._successor)

    def _maybe_shut(self, conn: _Conn, at: float) -> list[PoolAction]:
        """Close a connection left with no subscription (a rotation's old one: the rotation is done)."""
        if conn.subs or conn.conn_id == self._successor:
            return []
        del self._conns[conn.conn_id]
        held = conn.conn_id in self._opening  # its Open was never sent: nothing to close
        if held:
            self._opening.remove(conn.conn_id)
        if conn.conn_id in self._sending:
            self._sending.remove(conn.conn_id)
        after: list[PoolAction] = []
        if self._rotating == conn.conn_id:
            self._note(StreamEventKind.ROTATED, at, conn.conn_id)
            after = self._end_rotation(at)
        return ([Shut(conn.conn_id)] if conn.requested and not held else []) + after

    def _rotate(self, old: _Conn, at: float) -> list[PoolAction]:
        """Begin replacing `old`: a successor opens and each account on it is asked to move."""
        old.retiring = True
        self._rotating = old.conn_id
        self._rotation_ends = at + ROTATION_TIMEOUT
        accounts = [s.member.account for s in old.subs.values() if s.state == "live"]
        if self.dedicated:  # each account's move opens a connection of its own
            if not accounts:
                return self._maybe_shut(old, at)
            self._note(StreamEventKind.ROTATING, at, old.conn_id, f"{len(accounts)} accounts move")
            return [Rotate(account, "the connection is due for replacement") for account in accounts]
        waiting = [s for s in old.subs.values() if s.state == "queued"]
        if not accounts and not waiting:
            return self._maybe_shut(old, at)
        successor = self._new_conn()
        self._successor = successor.conn_id
        for sub in waiting:  # not subscribed yet: it goes to the successor, unseen by its account
            self._forget(old, sub)
            sub.conn = successor.conn_id
            successor.subs[sub.member.sub] = sub
            successor.accounts.add(sub.member.account)
            successor.queued.append(sub.member.sub)
        old.queued.clear()
        if old.conn_id in self._sending:
            self._sending.remove(old.conn_id)
        self._moving = dict.fromkeys(accounts, successor.conn_id)
        self._note(StreamEventKind.ROTATING, at, old.conn_id, f"{len(accounts)} accounts move")
        why = "the connection is due for replacement"
        actions: list[PoolAction] = [Rotate(account, why) for account in accounts]
        successor.requested = True
        more = self._try_open(successor, at) if not self._opening else []
        if not more:
            self._opening.appendleft(successor.conn_id)
        actions += more
        if not accounts:
            actions += self._maybe_shut(old, at)
        return actions

    def _end_rotation(self, at: float) -> list[PoolAction]:
        """The rotation is over; a successor left with nothing (its accounts' moves all failed
        and went elsewhere) closes, rather than stay open for nobody."""
        successor = None if self._successor is None else self._conns.get(self._successor)
        self._rotating = self._successor = self._rotation_ends = None
        self._moving.clear()
        if successor is not None and not successor.subs:
            return self._maybe_shut(successor, at)
        return []
