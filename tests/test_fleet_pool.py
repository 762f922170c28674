"""The fleet's Pool, without sockets: where subscriptions go, how Binance's per-IP limits pace opens
and subscribes, and how connections stall, rotate and close. A plain float is the clock and
`random` is fixed, so each rule is shown at the exact second it acts."""

from __future__ import annotations

from typing import Any

import pytest

from binance_userstream import FleetLimits
from binance_userstream._markets import market_named
from binance_userstream.fleet import _pool
from binance_userstream.fleet._core import FleetCore
from binance_userstream.fleet._pool import (
    ROTATION_TIMEOUT,
    Lost,
    Member,
    Open,
    Pool,
    Rotate,
    Shut,
    Subscribe,
    Unsubscribe,
)
from binance_userstream.stream._core import StreamEventKind

STALL = 80.0


def make(
    *,
    capacity: int = 3,
    combined: bool = False,
    limits: FleetLimits | None = None,
    rotate_after: float = 1000.0,
    rotate_spread: float = 0.0,
    draw: float = 0.5,
    answer_timeout: float = 1e9,
) -> Pool:
    """A pool whose subscriptions wait for their answers as long as a test runs (unless it says)."""
    return Pool(
        capacity=capacity,
        combined=combined,
        limits=limits or FleetLimits(),
        stall_after=STALL,
        rotate_after=rotate_after,
        rotate_spread=rotate_spread,
        random=lambda: draw,
        answer_timeout=answer_timeout,
    )


def member(sub: int, account: str | None = None) -> Member:
    return Member(sub, account or f"a{sub}", f"key-{sub}")


def live(pool: Pool, *subs: int, at: float = 0.0) -> list[Any]:
    """Open every connection asked for and confirm `subs` (each routed by its number)."""
    actions: list[Any] = []
    for conn_id in range(1, pool._next_conn):
        actions += pool.opened(conn_id, at)
    for sub in subs:
        wanted, more = pool.confirmed(sub, str(sub), at)
        assert wanted
        actions += more
    return actions


def heard(pool: Pool, at: float) -> list[Any]:
    """Every connection was heard from at `at` (no stall), then time passes to `at`."""
    for conn_id in range(1, pool._next_conn):
        pool.seen(conn_id, at)
    return pool.tick(at)


def of(kind: type, actions: list[Any]) -> list[Any]:
    return [a for a in actions if isinstance(a, kind)]


# -- packing ---------------------------------------------------------------------------------------


def test_a_connection_takes_subscriptions_up_to_its_capacity_then_another_opens() -> None:
    pool = make(capacity=3)
    for sub in range(1, 8):
        pool.place(member(sub), 0.0)
    assert pool.load() == [3, 3, 1]


def test_a_new_subscription_goes_to_the_fullest_connection_with_room() -> None:
    pool = make(capacity=3)
    for sub in range(1, 6):  # connection 1: 1, 2, 3; connection 2: 4, 5
        pool.place(member(sub), 0.0)
    live(pool, 1, 2, 3, 4, 5)
    pool.release(1, 0.0)
    pool.release(4, 0.0)  # connection 1 holds 2, connection 2 holds 1
    pool.place(member(6), 0.0)
    assert pool.conn_of(6) == 1


def test_per_connection_limits_the_accounts_a_connection_carries() -> None:
    core = FleetCore(market_named("spot"), limits=FleetLimits(per_connection=2), random=lambda: 0.5)
    assert core.pool.capacity == 2
    assert FleetCore(market_named("usdm"), limits=FleetLimits(), random=lambda: 0.5).pool.capacity == 1_024


def test_two_subscriptions_of_one_account_never_share_a_connection() -> None:
    pool = make(capacity=5)
    pool.place(member(1, "a"), 0.0)
    pool.place(member(2, "a"), 0.0)
    pool.place(member(3, "b"), 0.0)
    assert pool.conn_of(1) != pool.conn_of(2)
    assert pool.conn_of(3) == pool.conn_of(1)


# -- opening ---------------------------------------------------------------------------------------


def test_opens_beyond_the_connection_window_wait_until_it_frees() -> None:
    pool = make(capacity=1, limits=FleetLimits(connections=2, connection_window=10.0))
    opens = [a for sub in (1, 2, 3) for a in pool.place(member(sub), 0.0)]
    assert opens == [Open(1), Open(2)]
    assert pool.next_deadline() == 10.0
    assert pool.tick(9.99) == []
    assert pool.tick(10.0) == [Open(3)]


def test_held_opens_are_released_in_the_order_they_were_asked_for() -> None:
    pool = make(capacity=1, limits=FleetLimits(connections=1, connection_window=10.0))
    assert [a for sub in (1, 2, 3) for a in pool.place(member(sub), 0.0)] == [Open(1)]
    assert pool.tick(10.0) == [Open(2)]
    assert pool.tick(20.0) == [Open(3)]


def test_an_open_on_the_websocket_api_waits_for_its_connect_weight() -> None:
    pool = make(capacity=1, limits=FleetLimits(request_weight=4, weight_window=60.0))
    assert pool.place(member(1), 0.0) == [Open(1)]  # weight 2
    assert of(Subscribe, pool.opened(1, 0.0)) == [Subscribe(1, (member(1),))]  # weight 4
    assert pool.place(member(2), 1.0) == []
    assert pool.tick(59.0) == []
    assert pool.tick(60.0) == [Open(2)]


def test_an_open_on_the_combined_streams_spends_no_weight() -> None:
    pool = make(capacity=1, combined=True, limits=FleetLimits(request_weight=2))
    assert [a for sub in (1, 2, 3) for a in pool.place(member(sub), 0.0)] == [Open(1), Open(2), Open(3)]
    assert pool.weight_window.used(0.0) == 0


# -- subscribing -----------------------------------------------------------------------------------


def test_subscribes_on_the_websocket_api_weigh_2_each_within_the_request_weight() -> None:
    pool = make(capacity=10, limits=FleetLimits(request_weight=6, weight_window=60.0))
    for sub in range(1, 5):
        pool.place(member(sub), 0.0)  # the open spends 2
    assert pool.opened(1, 0.0) == [Subscribe(1, (member(1), member(2)))]
    assert pool.next_deadline() == 60.0
    assert pool.tick(60.0) == [Subscribe(1, (member(3), member(4)))]


def test_a_subscription_not_answered_within_the_answer_timeout_is_lost_as_a_failed_attempt() -> None:
    pool = make(capacity=10, answer_timeout=10.0)
    pool.place(member(1), 0.0)
    pool.place(member(2), 0.0)
    pool.opened(1, 0.0)
    assert pool.confirmed(2, "2", 5.0)[0]
    assert pool.next_deadline() == 10.0
    assert pool.tick(10.0) == [Lost(1, "ConnectionError: the subscription was not answered within 10 s")]
    assert pool.route(1, "2") == 2  # the one answered serves on


def test_a_dedicated_connection_opens_at_its_subscriptions_own_url_and_makes_it_live_when_open() -> None:
    pool = Pool(
        capacity=1,
        combined=True,
        limits=FleetLimits(),
        stall_after=STALL,
        rotate_after=1000.0,
        rotate_spread=0.0,
        random=lambda: 0.5,
        dedicated=True,
    )
    assert pool.place(member(1), 0.0) == [Open(1, "key-1")]
    assert pool.opened(1, 0.0) == [_pool.Live(1)]
    assert pool.route(1, _pool.DEDICATED) == 1


def test_subscribes_on_the_combined_streams_are_paced_by_messages_per_second() -> None:
    limits = FleetLimits(messages_per_second=2.0, keys_per_message=2)
    pool = make(capacity=10, combined=True, limits=limits)
    for sub in range(1, 6):
        pool.place(member(sub), 0.0)
    assert pool.opened(1, 0.0) == [Subscribe(1, (member(1), member(2)))]
    assert pool.tick(0.49) == []
    assert pool.tick(0.5) == [Subscribe(1, (member(3), member(4)))]
    assert pool.tick(1.0) == [Subscribe(1, (member(5),))]
    assert pool.weight_window.used(1.0) == 0


def test_a_connection_past_its_lifetime_subscriptions_takes_no_more(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_pool, "LIFETIME_SUBSCRIPTIONS", 4)
    pool = make(capacity=10)
    pool.place(member(1, "b"), 0.0)
    live(pool, 1)
    for sub in (2, 3, 4):  # account a subscribes and leaves three times: 4 subscriptions in all
        pool.place(member(sub, "a"), 0.0)
        pool.confirmed(sub, str(sub), 0.0)
        pool.release(sub, 0.0)
    pool.place(member(5, "a"), 0.0)
    assert pool.conn_of(5) == 2


def test_unsubscribes_on_the_combined_streams_are_paced_with_the_subscribes() -> None:
    limits = FleetLimits(messages_per_second=2.0, keys_per_message=2)
    pool = make(capacity=10, combined=True, limits=limits)
    for sub in range(1, 7):
        pool.place(member(sub), 0.0)
    pool.opened(1, 0.0)
    heard(pool, 1.0)
    heard(pool, 1.5)  # all six subscribed, two per message
    live(pool, *range(1, 7), at=1.5)
    left = [a for sub in (1, 2, 3) for a in pool.release(sub, 2.0)]
    assert left == [Unsubscribe(1, (Member(1, "a1", "key-1", "1"),))]
    assert heard(pool, 2.49) == []
    assert heard(pool, 2.5) == [
        Unsubscribe(1, (Member(2, "a2", "key-2", "2"), Member(3, "a3", "key-3", "3")))
    ]


# -- stalls ----------------------------------------------------------------------------------------


def test_a_connection_silent_for_stall_after_is_closed_and_each_subscription_on_it_lost() -> None:
    pool = make()
    pool.place(member(1), 0.0)
    pool.place(member(2), 0.0)
    live(pool, 1, 2)
    pool.seen(1, 10.0)
    assert pool.tick(10.0 + STALL - 0.01) == []
    actions = pool.tick(10.0 + STALL)
    assert actions[0] == Shut(1)
    assert {(a.sub, a.stalled) for a in of(Lost, actions)} == {(1, True), (2, True)}
    assert StreamEventKind.STALLED in [n.kind for n in pool.notes]
    assert pool.connections() == 0


def test_an_event_arriving_keeps_its_connection_alive_and_names_its_subscription() -> None:
    pool = make()
    pool.place(member(1), 0.0)
    live(pool, 1)
    assert pool.arrived(1, "1", 10.0) == 1
    assert pool.arrived(1, "7", 20.0) is None  # no subscription of this connection: still alive
    assert pool.tick(20.0 + STALL - 0.01) == []
    assert pool.arrived(99, "1", 20.0) is None  # no such connection


def test_a_stall_loses_subscriptions_not_yet_confirmed_as_failed_attempts() -> None:
    pool = make(combined=True, limits=FleetLimits(keys_per_message=1))
    pool.place(member(1), 0.0)
    pool.place(member(2), 0.0)
    live(pool, 1)  # 2's SUBSCRIBE waits its turn
    lost = of(Lost, pool.tick(STALL))
    assert [(a.sub, a.stalled) for a in lost] == [(1, True), (2, False)]


# -- rotation --------------------------------------------------------------------------------------


def rotating(draw: float = 0.25) -> Pool:
    """Accounts a and b live on connection 1, due at 1000 - 400 * draw."""
    pool = make(rotate_after=1000.0, rotate_spread=400.0, draw=draw)
    pool.place(member(1, "a"), 0.0)
    pool.place(member(2, "b"), 0.0)
    live(pool, 1, 2)
    return pool


def test_a_connection_is_due_for_rotation_at_rotate_after_less_a_random_share_of_the_spread() -> None:
    pool = rotating(draw=0.25)
    assert heard(pool, 899.0) == []
    actions = heard(pool, 900.0)
    assert of(Rotate, actions) == [
        Rotate("a", "the connection is due for replacement"),
        Rotate("b", "the connection is due for replacement"),
    ]
    assert of(Open, actions) == [Open(2)]


def test_a_rotating_accounts_new_subscription_goes_to_the_successor() -> None:
    pool = rotating()
    pool.place(member(3, "c"), 0.0)  # a third connection-mate, so that another has room
    heard(pool, 900.0)
    pool.place(member(4, "a"), 900.0)
    assert pool.conn_of(4) == 2


def test_subscriptions_still_queued_on_a_rotating_connection_move_to_the_successor() -> None:
    pool = make(capacity=3, limits=FleetLimits(request_weight=6), rotate_after=100.0)
    for sub in (1, 2, 3):  # the open and two subscribes spend the weight: 3 waits
        pool.place(member(sub), 0.0)
    live(pool, 1, 2)
    actions = heard(pool, 100.0)
    assert of(Rotate, actions) == [
        Rotate("a1", "the connection is due for replacement"),
        Rotate("a2", "the connection is due for replacement"),
    ]
    assert pool.conn_of(3) == 2


def test_the_old_connection_closes_once_its_accounts_have_moved() -> None:
    pool = rotating()
    heard(pool, 900.0)
    pool.opened(2, 900.0)
    pool.place(member(3, "a"), 900.0)
    pool.place(member(4, "b"), 900.0)
    pool.confirmed(3, "3", 901.0)
    pool.confirmed(4, "4", 901.0)
    assert pool.release(1, 906.0) == []  # the old connection goes: no unsubscribe on it
    assert pool.release(2, 906.0) == [Shut(1)]
    assert StreamEventKind.ROTATED in [n.kind for n in pool.notes]
    assert pool.connections() == 1


def test_one_connection_rotates_at_a_time() -> None:
    pool = make(capacity=1, rotate_after=100.0)
    pool.place(member(1), 0.0)
    pool.place(member(2), 0.0)
    live(pool, 1, 2)
    assert of(Rotate, heard(pool, 100.0)) == [Rotate("a1", "the connection is due for replacement")]
    assert of(Rotate, heard(pool, 101.0)) == []
    pool.opened(3, 101.0)
    pool.place(member(3, "a1"), 101.0)
    pool.confirmed(3, "3", 101.0)
    assert pool.release(1, 106.0) == [Shut(1)]
    assert of(Rotate, heard(pool, 106.0)) == [Rotate("a2", "the connection is due for replacement")]


def test_a_rotation_that_takes_too_long_closes_the_old_connection_with_its_accounts_lost() -> None:
    pool = rotating()
    heard(pool, 900.0)
    pool.opened(2, 900.0)
    assert of(Shut, heard(pool, 900.0 + ROTATION_TIMEOUT - 1)) == []
    actions = heard(pool, 900.0 + ROTATION_TIMEOUT)
    assert Shut(1) in actions
    assert sorted(a.sub for a in of(Lost, actions)) == [1, 2]


def test_a_successor_lost_during_the_rotation_is_replaced() -> None:
    pool = rotating()
    heard(pool, 900.0)
    actions = pool.lost(2, 901.0, "refused")
    assert actions == [Open(3)]
    pool.place(member(3, "a"), 902.0)
    assert pool.conn_of(3) == 3


def test_a_shutdown_notice_makes_the_connection_rotate_next() -> None:
    pool = rotating()
    pool.shutdown_notice(1, 50.0)
    assert of(Rotate, heard(pool, 50.0)) == [
        Rotate("a", "the connection is due for replacement"),
        Rotate("b", "the connection is due for replacement"),
    ]


# -- leaving ---------------------------------------------------------------------------------------


def test_a_subscription_released_before_its_confirmation_is_unsubscribed_when_it_comes() -> None:
    pool = make()
    pool.place(member(1), 0.0)
    pool.place(member(2), 0.0)
    live(pool, 2)
    assert pool.release(1, 1.0) == []
    wanted, actions = pool.confirmed(1, "1", 2.0)
    assert not wanted
    assert actions == [Unsubscribe(1, (Member(1, "a1", "key-1", "1"),))]


def test_a_connection_left_without_subscriptions_closes() -> None:
    pool = make()
    pool.place(member(1), 0.0)
    live(pool, 1)
    spent = pool.weight_window.used(1.0)
    assert pool.release(1, 1.0) == [Shut(1)]  # no unsubscribe: the close ends it
    assert pool.weight_window.used(1.0) == spent
    assert pool.connections() == 0


def test_a_subscription_leaving_a_connection_that_serves_on_is_unsubscribed() -> None:
    pool = make()
    pool.place(member(1), 0.0)
    pool.place(member(2), 0.0)
    live(pool, 1, 2)
    assert pool.release(1, 1.0) == [Unsubscribe(1, (Member(1, "a1", "key-1", "1"),))]


def test_a_connection_never_opened_closes_unasked_when_its_only_subscription_leaves() -> None:
    pool = make(capacity=1, limits=FleetLimits(connections=1))
    pool.place(member(1), 0.0)
    pool.place(member(2), 0.0)  # held by the connection window
    assert pool.release(2, 1.0) == []
    assert pool.connections() == 1
    assert pool.tick(400.0) == []


def test_a_successor_left_empty_when_its_rotation_ends_closes_rather_than_stay_open_for_nobody() -> None:
    """The moving account's subscription on the successor went unanswered, so it moved elsewhere:
    once the old connection empties, the successor, serving nobody, closes too."""
    pool = make(capacity=3, rotate_after=100.0, answer_timeout=10.0)
    pool.place(member(1), 0.0)
    pool.opened(1, 0.0)
    assert pool.confirmed(1, "1", 0.0)[0]
    assert Rotate("a1", "the connection is due for replacement") in heard(pool, 100.0)
    pool.place(member(2, "a1"), 100.0)  # the account's move, to the successor
    assert of(Subscribe, pool.opened(2, 100.0)) == [Subscribe(2, (member(2, "a1"),))]
    assert of(Lost, pool.tick(110.0)) == [
        Lost(2, "ConnectionError: the subscription was not answered within 10 s")
    ]
    assert pool.place(member(3, "a1"), 111.0) == [Open(3)]  # elsewhere: never again where it went unanswered
    pool.opened(3, 111.0)
    assert pool.confirmed(3, "3", 111.0)[0]
    assert of(Shut, pool.release(1, 112.0)) == [Shut(1), Shut(2)]
    assert pool.connections() == 1
