"""The core's rule for a key the server refuses, without sockets: ask for the account's key at once.

Another program may close the account's listenKey (a DELETE; keys are shared per account:
"If the account has an active listenKey, that listenKey will be returned", USD-M's Start User Data
Stream page). Every reconnect with the dead key is then refused; retrying it until the session's
next keepalive (30 minutes) would leave the stream deaf. So a refusal, or a close that says the key
is gone, asks for the account's key (RenewKey: a create, which answers the key itself while it
lives) and connects with what comes back.
"""

from __future__ import annotations

from binance_userstream.stream._core import Close, Connect, RenewKey, StreamEventKind
from tests.test_stream_core import KEY, NEW_KEY, connects, core, drain, frame, opened, times, url


def test_a_refused_connection_asks_for_the_account_s_key_at_once_and_opens_nothing_meanwhile() -> None:
    stream = core()
    conn = opened(stream)
    (retry,) = connects(stream.closed(conn, 100.0, "closed by the server: code 1000 (listenKey closed)"))
    assert stream.key_refused(101.0, "the handshake was refused: HTTP 400") == [RenewKey()]
    assert stream.closed(retry.conn_id, 101.0, "the handshake was refused: HTTP 400") == []
    assert stream.next_deadline() == float("inf")  # no retry with the dead key: the new key decides


def test_a_close_that_says_the_key_is_gone_asks_for_the_key_instead_of_reconnecting() -> None:
    stream = core()
    conn = opened(stream)
    asked = stream.key_refused(100.0, "closed by the server: code 1000 (listenKey closed)")
    assert asked == [RenewKey()]
    assert connects(stream.closed(conn, 100.0, "closed by the server: code 1000 (listenKey closed)")) == []
    assert [n.kind for n in stream.notes][-2:] == [StreamEventKind.KEY_REFUSED, StreamEventKind.DISCONNECTED]


def test_the_new_key_is_connected_at_once_and_the_hole_is_one_gap() -> None:
    stream = core()
    conn = opened(stream)
    stream.frame(conn, frame(1), 10.0)
    stream.key_refused(100.0)
    stream.closed(conn, 100.0)
    (connect,) = connects(stream.key_replaced(NEW_KEY, 100.5))
    assert connect.url == url(NEW_KEY)
    stream.connected(connect.conn_id, 101.0)
    stream.frame(connect.conn_id, frame(2), 102.0)
    items = drain(stream)
    assert times(items) == [1, ("gap", "disconnected"), 2]
    assert (items[1].started_at, items[1].ended_at) == (100.0, 101.0)


def test_a_second_refusal_while_the_key_is_asked_for_asks_nothing_more() -> None:
    stream = core()
    opened(stream)
    stream.key_refused(100.0)
    assert stream.key_refused(100.1) == []


def test_a_refused_key_that_still_lives_is_retried_after_a_backoff_not_at_once() -> None:
    """The create answered the same key: the refusal had another cause, and a connection at once
    would make a loop of refusals and creates."""
    stream = core(random=lambda: 0.5)
    conn = opened(stream)
    (retry,) = connects(stream.closed(conn, 100.0))
    stream.key_refused(101.0)
    stream.closed(retry.conn_id, 101.0)
    assert stream.key_replaced(KEY, 101.2) == []
    assert stream.next_deadline() > 101.2
    (again,) = connects(stream.tick(stream.next_deadline()))
    assert again.url == url(KEY)


def test_a_failed_renewal_after_a_refusal_is_asked_again_after_a_backoff() -> None:
    stream = core(random=lambda: 0.5)
    conn = opened(stream)
    stream.key_refused(100.0)
    stream.closed(conn, 100.0)
    assert stream.renew_failed(100.5, "renewing the key failed: HTTP 503") == []
    assert stream.tick(stream.next_deadline()) == [RenewKey()]


def test_a_rotation_refused_for_its_key_replaces_the_serving_connection_with_a_gap() -> None:
    """The old connection still serves (the server has not closed it yet): once the new key comes,
    it is closed with the rest, and its loss is a gap, not a silent switch."""
    stream = core()
    old = opened(stream)
    stream.ping(old, stream.timing.rotate_after - 1)  # alive: not a stall
    (rotation,) = connects(stream.tick(stream.timing.rotate_after))
    stream.frame(old, frame(1), stream.timing.rotate_after + 1)
    at = stream.timing.rotate_after + 2
    stream.key_refused(at)
    stream.closed(rotation.conn_id, at)
    actions = stream.key_replaced(NEW_KEY, at + 1)
    assert Close(old) in actions
    (connect,) = connects(actions)
    stream.connected(connect.conn_id, at + 2)
    assert times(drain(stream)) == [1, ("gap", "key_replaced")]
    assert all(not isinstance(a, Connect) or a.url == url(NEW_KEY) for a in actions)


def test_a_rotation_due_while_the_key_is_asked_for_is_made_once_the_key_proves_alive() -> None:
    """The rotation's attempt was refused and its retry came due before the create answered: the
    same key lives, and the old connection must still be replaced before the server's 24-hour cut,
    make-before-break, not left to end in a gap."""
    stream = core(random=lambda: 0.5)
    old = opened(stream)
    stream.ping(old, stream.timing.rotate_after - 1)
    (rotation,) = connects(stream.tick(stream.timing.rotate_after))
    at = stream.timing.rotate_after + 1
    stream.ping(old, at)
    stream.key_refused(at)
    stream.closed(rotation.conn_id, at)
    assert connects(stream.tick(stream.next_deadline())) == []  # the retry waits for the key
    assert stream.key_replaced(KEY, at + 2) == []
    assert stream.next_deadline() < at + 60  # a rotation after a backoff, not the old one's stall
    stream.notes.clear()
    (again,) = connects(stream.tick(stream.next_deadline()))
    assert again.url == url(KEY)
    assert [n.kind for n in stream.notes] == [StreamEventKind.ROTATING]
