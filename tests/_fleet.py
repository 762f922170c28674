"""A stand-in for Binance's side of a fleet's connections, for the sans-I/O `FleetCore`: it carries
out the core's actions (opens, subscribes, closes) at once or when told, numbers each account's
events, and sends each one on every live subscription of its account, as Binance does."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from typing import Any

from attrs import define, field

from binance_userstream import FleetLimits
from binance_userstream._markets import market_named
from binance_userstream.fleet._core import FleetAction, FleetCore, RenewKeyFor, RenewTokenFor
from binance_userstream.fleet._pool import Member, Open, Shut, Subscribe, Unsubscribe
from binance_userstream.stream._core import StreamTiming

TIMING = StreamTiming(ping_interval=30.0, rotate_after=1000.0, overlap=2.0, first_retry=1.0, max_retry=8.0)


def event(n: int) -> dict[str, Any]:
    return {"e": "balanceUpdate", "E": n, "a": "BTC", "d": "0.10000000", "T": n}


@define
class Server:
    """Binance's side: which connections are open and which subscriptions live on them."""

    core: FleetCore
    now: float = 0.0
    auto_open: bool = True
    auto_confirm: bool = True
    opens: list[tuple[float, int]] = field(factory=list)
    weight: list[tuple[float, int, str]] = field(
        factory=list
    )  # (at, weight, "subscribe"/"unsubscribe"/"connect")
    messages: list[tuple[float, int, str]] = field(factory=list)  # (at, conn, "subscribe"/"unsubscribe")
    open: set[int] = field(factory=set)
    requested: list[int] = field(factory=list)  # Open asked, not yet answered
    pending: list[tuple[int, Member]] = field(factory=list)  # subscribes sent, not yet answered
    live: dict[int, tuple[int, str, str]] = field(factory=dict)  # sub -> (conn, route, account)
    sent: dict[str, int] = field(factory=dict)  # account -> its last event's number
    ids: Iterator[int] = field(factory=lambda: itertools.count(1))

    @property
    def combined(self) -> bool:
        return self.core.combined

    def apply(self, actions: list[FleetAction]) -> None:
        work = list(actions)
        while work:
            action = work.pop(0)
            more: list[FleetAction] = []
            if isinstance(action, Open):
                self.opens.append((self.now, action.conn))
                if not self.combined:
                    self.weight.append((self.now, 2, "connect"))
                if self.auto_open:
                    self.open.add(action.conn)
                    more = self.core.opened(action.conn, self.now)
                else:
                    self.requested.append(action.conn)
            elif isinstance(action, Shut):
                self.open.discard(action.conn)
                if action.conn in self.requested:
                    self.requested.remove(action.conn)
                self.live = {s: v for s, v in self.live.items() if v[0] != action.conn}
                self.pending = [(c, m) for c, m in self.pending if c != action.conn]
            elif isinstance(action, Subscribe):
                assert action.conn in self.open, action
                self.messages.append((self.now, action.conn, "subscribe"))
                if not self.combined:
                    self.weight += [(self.now, 2, "subscribe")] * len(action.members)
                self.pending += [(action.conn, m) for m in action.members]
                if self.auto_confirm:
                    more = self.confirm_all()
            elif isinstance(action, Unsubscribe):
                self.messages.append((self.now, action.conn, "unsubscribe"))
                if not self.combined:
                    self.weight += [(self.now, 2, "unsubscribe")] * len(action.members)
                for m in action.members:
                    self.live.pop(m.sub, None)
            elif isinstance(action, RenewKeyFor):
                more = self.core.key_replaced(action.account, f"key-{action.account}", self.now)
            elif isinstance(action, RenewTokenFor):
                more = self.core.token_valid(action.account, self.now + 86_400, self.now)
            work += more

    def confirm(self, index: int = 0, *, refuse: bool = False) -> list[FleetAction]:
        """Answer the `index`th subscribe still waiting."""
        conn, member = self.pending.pop(index)
        if refuse:
            return self.core.subscription_failed(member.sub, self.now, "refused")
        if self.combined:
            route, number = member.target, None
        else:
            number = next(self.ids)
            route = str(number)
        self.live[member.sub] = (conn, route, member.account)
        return self.core.subscribed(member.sub, route, self.now, number)

    def confirm_all(self) -> list[FleetAction]:
        actions: list[FleetAction] = []
        while self.pending:
            actions += self.confirm()
        return actions

    def answer_opens(self) -> None:
        while self.requested:
            conn = self.requested.pop(0)
            self.open.add(conn)
            self.apply(self.core.opened(conn, self.now))

    def text(self, sub: int, payload: dict[str, Any]) -> str:
        _, route, _ = self.live[sub]
        data = json.dumps(payload, separators=(",", ":"))
        if self.combined:
            return f'{{"stream":"{route}","data":{data}}}'
        return f'{{"subscriptionId":{route},"event":{data}}}'

    def push(self, account: str) -> int:
        """The account's next event, on each of its live subscriptions; its number."""
        n = self.sent[account] = self.sent.get(account, 0) + 1
        for sub, (conn, _, owner) in list(self.live.items()):
            if owner == account and sub in self.live and conn in self.open:
                self.apply(self.core.frame(conn, self.text(sub, event(n)), self.now))
        return n

    def advance(self, seconds: float) -> None:
        """Time passes; every open connection is pinged on the way (no stall)."""
        self.now += seconds
        for conn in self.open:
            self.core.ping(conn, self.now)
        self.apply(self.core.tick(self.now))

    def drop(self, conn: int) -> None:
        self.open.discard(conn)
        self.live = {s: v for s, v in self.live.items() if v[0] != conn}
        self.pending = [(c, m) for c, m in self.pending if c != conn]
        self.apply(self.core.closed(conn, self.now, "dropped"))

    def subs_of(self, account: str) -> list[int]:
        return [s for s, v in self.live.items() if v[2] == account]


def fleet(market: str = "spot", *, limits: FleetLimits | None = None, **options: Any) -> Server:
    core = FleetCore(
        market_named(market),
        limits=limits or FleetLimits(),
        random=lambda: 0.5,
        timing=options.pop("timing", TIMING),
        rotate_spread=options.pop("rotate_spread", 0.0),
        **options,
    )
    return Server(core)


def add(server: Server, *accounts: str) -> None:
    for account in accounts:
        server.apply(server.core.add(account, f"key-{account}", server.now))


def drain(server: Server) -> list[tuple[str, Any]]:
    items = []
    while (item := server.core.pop(server.now)) is not None:
        items.append(item)
    return items
