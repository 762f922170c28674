"""Properties of FleetCore over generated runs (hypothesis state machines), on the WebSocket API and
on the derivatives' combined streams, with 1-50 accounts and 1-7 per connection, small limits and
small buffers: whatever the drops, stalls, rotations, overflows, fatal errors, departures and slow
or refused confirmations, each account is handed its own events in order, at most once, with a gap
wherever one may be missing; Binance's per-IP limits are kept; no connection carries one account
twice; and once things settle the fleet holds about as few connections as its accounts need."""

from __future__ import annotations

import math
from collections import Counter
from typing import ClassVar

from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from binance_userstream import FleetLimits, StreamGap
from binance_userstream.stream._core import StreamTiming
from tests._fleet import Server, fleet

TIMING = StreamTiming(ping_interval=30.0, rotate_after=400.0, overlap=2.0, first_retry=1.0, max_retry=8.0)
STALL = TIMING.stall_after
LIMITS = FleetLimits(
    connections=4,
    connection_window=20.0,
    request_weight=24,
    weight_window=10.0,
    messages_per_second=5.0,
    keys_per_message=3,
)
GAP = "gap"


class FleetMachine(RuleBasedStateMachine):
    """A fleet and Binance's side of it (tests._fleet.Server), with a ledger of what each account
    was sent and handed."""

    market: ClassVar[str]

    @initialize(
        accounts=st.integers(1, 50),
        capacity=st.integers(1, 7),
        maxsize=st.sampled_from([4, 16, 1_000]),
        slow=st.booleans(),
    )
    def start(self, accounts: int, capacity: int, maxsize: int, slow: bool) -> None:
        limits = FleetLimits(
            connections=LIMITS.connections,
            connection_window=LIMITS.connection_window,
            request_weight=LIMITS.request_weight,
            weight_window=LIMITS.weight_window,
            messages_per_second=LIMITS.messages_per_second,
            keys_per_message=LIMITS.keys_per_message,
            per_connection=capacity,
        )
        self.limits = limits
        self.capacity = capacity
        self.server: Server = fleet(
            self.market,
            limits=limits,
            timing=TIMING,
            rotate_spread=100.0,
            account_maxsize=maxsize,
            maxsize=maxsize * 3,
        )
        self.server.auto_open = self.server.auto_confirm = not slow
        self.sent: dict[str, list[tuple[int, bool]]] = {}  # account -> (number, sent while subscribed)
        self.handed: dict[str, list[object]] = {}
        self.gone: set[str] = set()  # removed, or ended by an error
        self.errors: dict[str, BaseException] = {}
        self.names = 0
        self.most = 0  # the most accounts served at once
        for _ in range(accounts):
            self.join()

    # -- the rules -----------------------------------------------------------------------------

    def join(self) -> None:
        self.names += 1
        account = f"acct-{self.names}"
        self.sent[account] = []
        self.handed[account] = []
        self.most = max(self.most, len(self.serving()))
        server = self.server
        server.apply(server.core.add(account, f"key-{account}", server.now))

    def serving(self) -> list[str]:
        return [a for a in self.sent if a not in self.gone]

    def subscribed(self, account: str) -> bool:
        """The account has a subscription whose frames reach it."""
        server = self.server
        pool = server.core.pool
        return any(
            owner == account and conn in server.open and pool.route(conn, route) == sub
            for sub, (conn, route, owner) in server.live.items()
        )

    @rule(data=st.data(), count=st.integers(1, 5))
    def events(self, data: st.DataObject, count: int) -> None:
        accounts = self.serving()
        if not accounts:
            return
        account = data.draw(st.sampled_from(accounts))
        for _ in range(count):
            covered = self.subscribed(account)
            n = self.server.push(account)
            self.sent[account].append((n, covered))

    @rule()
    def events_for_all(self) -> None:
        for account in self.serving():
            covered = self.subscribed(account)
            self.sent[account].append((self.server.push(account), covered))

    @rule(most=st.integers(1, 60))
    def consume(self, most: int) -> None:
        server = self.server
        for _ in range(most):
            pair = server.core.pop(server.now)
            if pair is None:
                break
            account, item = pair
            self.handed[account].append(_name(item))

    @rule(seconds=st.sampled_from([0.1, 0.3, 1.0, 5.0, 30.0, 120.0]))
    def time_passes(self, seconds: float) -> None:
        self.server.advance(seconds)

    @rule()
    def until_the_next_deadline(self) -> None:
        server = self.server
        due = server.core.next_deadline()
        if due < math.inf:
            server.advance(max(0.0, due - server.now))

    @precondition(lambda self: bool(self.server.open))
    @rule(data=st.data())
    def a_connection_drops(self, data: st.DataObject) -> None:
        server = self.server
        server.drop(data.draw(st.sampled_from(sorted(server.open))))

    @precondition(lambda self: bool(self.server.open))
    @rule(data=st.data())
    def a_connection_goes_quiet(self, data: st.DataObject) -> None:
        server = self.server
        quiet = data.draw(st.sampled_from(sorted(server.open)))
        server.now += STALL
        for conn in server.open - {quiet}:
            server.core.ping(conn, server.now)
        server.apply(server.core.tick(server.now))
        if quiet in server.open:  # the pool gave it up: Binance's side sees it closed
            server.open.discard(quiet)
        server.live = {s: v for s, v in server.live.items() if v[0] in server.open}

    @precondition(lambda self: bool(self.server.open))
    @rule(data=st.data())
    def the_server_announces_a_shutdown(self, data: st.DataObject) -> None:
        server = self.server
        conn = data.draw(st.sampled_from(sorted(server.open)))
        text = '{"event":{"e":"serverShutdown","E":1}}' if not server.combined else "{}"
        if server.combined:
            server.core.pool.shutdown_notice(conn, server.now)
            server.advance(0.0)
        else:
            server.apply(server.core.frame(conn, text, server.now))

    @precondition(lambda self: bool(self.server.requested))
    @rule()
    def connections_open(self) -> None:
        self.server.answer_opens()

    @precondition(lambda self: bool(self.server.pending))
    @rule(data=st.data(), refuse=st.booleans())
    def a_subscription_is_answered(self, data: st.DataObject, refuse: bool) -> None:
        server = self.server
        index = data.draw(st.integers(0, len(server.pending) - 1))
        server.apply(server.confirm(index, refuse=refuse))

    @rule(data=st.data())
    def an_account_ends_with_an_error(self, data: st.DataObject) -> None:
        accounts = self.serving()
        if not accounts:
            return
        account = data.draw(st.sampled_from(accounts))
        self.gone.add(account)
        self.errors[account] = PermissionError(account)
        self.server.apply(self.server.core.fail(account, self.errors[account], self.server.now))

    @rule(data=st.data())
    def an_account_is_removed(self, data: st.DataObject) -> None:
        accounts = self.serving()
        if not accounts:
            return
        account = data.draw(st.sampled_from(accounts))
        self.gone.add(account)
        self.server.apply(self.server.core.remove(account, self.server.now))

    @precondition(lambda self: len(self.sent) < 60)
    @rule()
    def an_account_joins(self) -> None:
        self.join()

    # -- the invariants --------------------------------------------------------------------------

    @invariant()
    def each_account_is_handed_its_own_events_in_order_with_a_gap_for_each_missing(self) -> None:
        for account, handed in self.handed.items():
            _check(account, self.sent[account], handed, settled=False)

    @invariant()
    def opens_keep_within_the_connection_window(self) -> None:
        times = [at for at, _ in self.server.opens]
        span, most = self.limits.connection_window, self.limits.connections
        for at in times:
            assert sum(1 for t in times if at - span < t <= at) <= most, (at, times)

    @invariant()
    def subscribes_keep_within_the_request_weight(self) -> None:
        """Subscribes and connects never pass the weight; unsubscribes are sent at once, and the
        next subscribes wait for what they spent (the overshoot is theirs alone)."""
        log = self.server.weight
        span, most = self.limits.weight_window, self.limits.request_weight
        for at, _, _ in log:
            window = [(w, kind) for t, w, kind in log if at - span < t <= at]
            held = sum(w for w, kind in window if kind != "unsubscribe")
            assert held <= most, (at, window)

    @invariant()
    def messages_keep_within_messages_per_second(self) -> None:
        """On the combined streams, a connection's SUBSCRIBEs and UNSUBSCRIBEs are at least
        `1 / messages_per_second` apart."""
        if not self.server.combined:
            return
        last: dict[int, float] = {}
        for at, conn, kind in self.server.messages:
            assert at - last.get(conn, -math.inf) >= 1 / self.limits.messages_per_second - 1e-9, (kind, at)
            last[conn] = at

    @invariant()
    def no_connection_carries_one_account_twice(self) -> None:
        pool = self.server.core.pool
        for conn in pool._conns.values():
            owners = Counter(sub.member.account for sub in conn.subs.values())
            assert max(owners.values(), default=0) <= 1, (conn.conn_id, owners)
        live = Counter((conn, owner) for conn, _, owner in self.server.live.values())
        assert max(live.values(), default=0) <= 1, live

    def teardown(self) -> None:
        if not hasattr(self, "server"):
            return
        self.settle()
        for account, handed in self.handed.items():
            _check(account, self.sent[account], handed, settled=True)
        # Accounts that leave leave room that later ones take (fullest first), but nothing packs
        # the rest closer: the bound is that of the most accounts served at once.
        assert self.server.core.pool.connections() <= math.ceil(self.most / self.capacity) + 1, (
            self.server.core.pool.load(),
            self.most,
        )

    def settle(self) -> None:
        """Let every open, subscription, backoff and rotation finish, hand out everything, then
        send each account one more event: it is handed out."""
        server = self.server
        server.auto_open = server.auto_confirm = True
        for _ in range(400):
            server.answer_opens()
            server.apply(server.confirm_all())
            self.consume(10_000)
            if all(self.subscribed(a) for a in self.serving()) and not server.requested:
                break
            server.advance(5.0)
        else:
            missing = [a for a in self.serving() if not self.subscribed(a)]
            raise AssertionError(f"never subscribed again: {missing}")
        for account in self.serving():  # one at a time: the shared bounds have room for each
            self.sent[account].append((server.push(account), True))
            self.consume(10_000)
        for account in self.serving():
            assert self.handed[account][-1] == self.sent[account][-1][0], (account, self.handed[account][-5:])
        for account, error in self.errors.items():
            assert self.handed[account][-1] is error, (account, self.handed[account][-5:])


def _name(item: object) -> object:
    if isinstance(item, StreamGap):
        return GAP
    if isinstance(item, BaseException):
        return item
    return getattr(item, "event_time", item)


def _check(account: str, sent: list[tuple[int, bool]], handed: list[object], *, settled: bool) -> None:
    """`handed` is `sent`'s numbers in order, at most once each, an error only last, and a gap
    between the last delivered before and the first delivered after each event sent while subscribed
    that was not delivered (or, once `settled`, the end)."""
    numbers = [(i, x) for i, x in enumerate(handed) if isinstance(x, int)]
    values = [x for _, x in numbers]
    assert values == sorted(set(values)), (account, handed)
    assert set(values) <= {n for n, _ in sent}, (account, handed)
    errors = [i for i, x in enumerate(handed) if isinstance(x, BaseException)]
    assert errors in ([], [len(handed) - 1]), (account, handed)
    delivered = set(values)
    for n, covered in sent:
        if not covered or n in delivered:
            continue
        before = max((i for i, x in numbers if x < n), default=-1)
        after = min((i for i, x in numbers if x > n), default=None)
        if after is None:
            if not settled:
                continue
            after = len(handed)
        assert GAP in handed[before + 1 : after], (account, n, handed)


PROPERTY = settings(
    max_examples=40,
    stateful_step_count=40,
    derandomize=True,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    phases=(Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink),
)


class WebSocketApiFleet(FleetMachine):
    market = "spot"


class CombinedStreamsFleet(FleetMachine):
    market = "usdm"


def test_a_fleet_on_the_websocket_api_keeps_its_rules() -> None:
    PROPERTY(WebSocketApiFleet).TestCase().runTest()


def test_a_fleet_on_the_combined_streams_keeps_its_rules() -> None:
    PROPERTY(CombinedStreamsFleet).TestCase().runTest()
