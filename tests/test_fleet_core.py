"""FleetCore's rules, without sockets: frames reach their account by Binance's envelope, accounts
are served in turn, one account's trouble (a lost connection, a fatal error, a full buffer) is that
account's alone, and deadlines are kept for any number of accounts."""

from __future__ import annotations

import json

from binance_userstream import FleetLimits, RawEvent, StreamGap
from binance_userstream.fleet._core import RenewKeyFor
from binance_userstream.fleet._pool import Open
from binance_userstream.stream._core import StreamEventKind
from tests._fleet import Server, add, drain, event, fleet


def numbers(items: list[tuple[str, object]], account: str) -> list[object]:
    """What `account` was handed: its events' numbers, "gap" for a gap, the error itself."""
    out: list[object] = []
    for owner, item in items:
        if owner != account:
            continue
        if isinstance(item, StreamGap):
            out.append("gap")
        elif isinstance(item, BaseException):
            out.append(item)
        else:
            out.append(getattr(item, "event_time", None))
    return out


def handed(items: list[tuple[str, object]]) -> list[tuple[str, object]]:
    """Who was handed which event (by its number)."""
    return [(owner, getattr(item, "event_time", item)) for owner, item in items]


def frame_on(server: Server, account: str, text: str) -> None:
    (sub,) = server.subs_of(account)
    server.apply(server.core.frame(server.live[sub][0], text, server.now))


def route_of(server: Server, account: str) -> str:
    (sub,) = server.subs_of(account)
    return server.live[sub][1]


# -- routing ---------------------------------------------------------------------------------------


def test_a_websocket_api_frame_goes_to_the_account_its_subscription_id_names() -> None:
    server = fleet("spot")
    add(server, "a", "b")
    frame_on(server, "b", f'{{"subscriptionId":{route_of(server, "b")},"event":{json.dumps(event(7))}}}')
    assert handed(drain(server)) == [("b", 7)]


def test_a_websocket_api_frame_written_otherwise_still_finds_its_account() -> None:
    server = fleet("spot")
    add(server, "a", "b")
    text = json.dumps({"event": event(8), "subscriptionId": int(route_of(server, "a"))}, indent=1)
    frame_on(server, "a", text)
    assert handed(drain(server)) == [("a", 8)]


def test_a_combined_stream_frame_goes_to_the_account_its_stream_names() -> None:
    server = fleet("usdm")
    add(server, "a", "b")
    frame_on(server, "a", f'{{"stream":"key-a","data":{json.dumps(event(3), separators=(",", ":"))}}}')
    assert handed(drain(server)) == [("a", 3)]


def test_a_combined_stream_frame_written_otherwise_still_finds_its_account() -> None:
    server = fleet("usdm")
    add(server, "a", "b")
    server.advance(1.0)  # b's SUBSCRIBE waits its turn behind a's (messages per second)
    frame_on(server, "b", json.dumps({"data": event(4), "stream": "key-b"}))
    assert handed(drain(server)) == [("b", 4)]


def test_frames_no_account_claims_are_dropped_and_noted_on_powers_of_two() -> None:
    server = fleet("spot")
    add(server, "a")
    for _ in range(5):
        frame_on(server, "a", f'{{"subscriptionId":999,"event":{json.dumps(event(1))}}}')
    strays = [n for _, n in server.core.notes if n.kind is StreamEventKind.OTHER_SUBSCRIPTION]
    assert [n.detail for n in strays] == [
        f"dropped an event of subscriptionId 999, which no account on this connection holds "
        f"({count} dropped so far)"
        for count in (1, 2, 4)
    ]
    assert drain(server) == []


def test_a_server_shutdown_rotates_the_connection_it_came_on() -> None:
    server = fleet("spot")
    add(server, "a")
    actions = server.core.frame(1, '{"event":{"e":"serverShutdown","E":5}}', server.now)
    assert Open(2) in actions
    server.apply(actions)
    server.advance(3.0)  # past the overlap
    assert [server.live[s][0] for s in server.subs_of("a")] == [2]
    # moved make-before-break: no gap; the account gets the notice, which its stream documents
    assert [(account, type(item).__name__) for account, item in drain(server)] == [("a", "ServerShutdown")]


def test_an_account_still_waiting_to_subscribe_when_its_connection_stalls_subscribes_again() -> None:
    server = fleet("usdm")
    add(server, "a", "b")  # b's SUBSCRIBE waits its turn behind a's (messages per second)
    server.now = 200.0  # nothing heard since: the connection stalls before b's turn came
    server.apply(server.core.tick(server.now))
    server.advance(10.0)
    assert server.subs_of("b") != []


# -- handing out -----------------------------------------------------------------------------------


def test_accounts_with_items_waiting_are_served_in_turn() -> None:
    server = fleet("spot")
    add(server, "a", "b")
    for _ in range(3):
        server.push("a")
    for _ in range(3):
        server.push("b")
    assert [owner for owner, _ in drain(server)] == ["a", "b", "a", "b", "a", "b"]


def test_a_lost_connection_is_one_gap_for_each_account_on_it_and_none_for_the_others() -> None:
    server = fleet("spot", limits=FleetLimits(per_connection=2))
    add(server, "a", "b", "c")  # a, b on connection 1; c on connection 2
    for account in "abc":
        server.push(account)
    server.drop(1)
    server.advance(10.0)  # the accounts' backoff: they subscribe again
    for account in "abc":
        server.push(account)
    items = drain(server)
    assert numbers(items, "a") == [1, "gap", 2]
    assert numbers(items, "b") == [1, "gap", 2]
    assert numbers(items, "c") == [1, 2]


def test_an_accounts_fatal_error_comes_after_what_it_buffered_once_and_the_others_go_on() -> None:
    server = fleet("spot")
    add(server, "a", "b")
    server.push("a")
    server.push("a")
    revoked = PermissionError("key revoked")
    server.apply(server.core.fail("a", revoked, server.now))
    server.push("b")
    items = drain(server)
    assert numbers(items, "a") == [1, 2, revoked]
    assert numbers(items, "b") == [1]
    assert server.core.accounts() == ["b"]
    server.push("b")
    assert numbers(drain(server), "b") == [2]


def test_removing_an_account_hands_out_what_it_buffered_and_no_gap() -> None:
    server = fleet("spot")
    add(server, "a", "b")
    server.push("a")
    server.apply(server.core.remove("a", server.now))
    assert server.subs_of("a") == []
    assert numbers(drain(server), "a") == [1]
    assert server.core.accounts() == ["b"]


# -- shared bounds ---------------------------------------------------------------------------------


def test_an_account_overflowing_on_the_shared_bounds_gets_its_gap_once_they_drain_to_half() -> None:
    server = fleet("spot", maxsize=4)
    add(server, "a", "b")
    for _ in range(4):
        server.push("b")  # the shared bounds are full
    server.push("a")  # a's own buffer is empty: dropped all the same
    assert server.core.core_of("a").overflowing
    taken = [server.core.pop(server.now), server.core.pop(server.now)]  # b's: down to half
    assert [pair[0] for pair in taken if pair is not None] == ["b", "b"]
    server.push("a")
    items = drain(server)
    assert numbers(items, "a") == ["gap", 2]
    assert numbers(items, "b") == [3, 4]


def test_a_frame_larger_than_the_shared_bounds_is_a_gap_at_once_not_a_silent_stall() -> None:
    server = fleet("spot", max_bytes=200)
    add(server, "a")
    (sub,) = server.subs_of("a")
    big = dict(event(1), pad="x" * 300)
    server.apply(server.core.frame(server.live[sub][0], server.text(sub, big), server.now))
    server.sent["a"] = 1
    server.push("a")
    assert numbers(drain(server), "a") == ["gap", 2]


# -- deadlines -------------------------------------------------------------------------------------


def test_key_renewals_of_ten_thousand_accounts_come_due_through_the_heap() -> None:
    limits = FleetLimits(connections=10_000, messages_per_second=1000.0)
    server = fleet("usdm", limits=limits)
    server.auto_open = False  # nothing opens: only the accounts' own deadlines matter
    add(server, *(f"acct-{n}" for n in range(10_000)))
    core = server.core
    for n in range(10_000):
        assert core.renew_failed(f"acct-{n}", 10.0) == []
    assert core.next_deadline() == 10.5  # a backoff of half of first_retry
    assert core.tick(10.4) == []
    renewals = core.tick(10.5)
    assert len(renewals) == 10_000
    assert all(isinstance(a, RenewKeyFor) for a in renewals)
    assert core.next_deadline() == float("inf")


def test_reconnects_of_a_thousand_accounts_come_due_through_the_heap() -> None:
    server = fleet("spot", limits=FleetLimits(request_weight=100_000))
    add(server, *(f"acct-{n}" for n in range(1_000)))
    assert server.core.pool.connections() == 1
    server.now = 1.0  # lost soon after it opened: each account backs off
    server.drop(1)
    assert server.core.pool.connections() == 0
    assert server.core.next_deadline() == 1.5
    assert server.core.tick(1.4) == []
    server.apply(server.core.tick(1.5))
    assert len(server.live) == 1_000


# -- texts for a durable log -----------------------------------------------------------------------


def drain_texts(server: Server) -> list[tuple[str, object, str | None]]:
    out = []
    while (popped := server.core.pop(server.now)) is not None:
        out.append((*popped, server.core.popped_text))
    return out


def test_a_websocket_api_event_keeps_its_text_as_sent_out_of_the_envelope() -> None:
    server = fleet("spot", keep_text=True)
    add(server, "a")
    sent = '{"e":"balanceUpdate","E":7,"a":"BTC","d":"0.10000000","T":7}'
    frame_on(server, "a", f'{{"subscriptionId":{route_of(server, "a")},"event":{sent}}}')
    ((account, item, text),) = drain_texts(server)
    assert (account, getattr(item, "event_time", None), text) == ("a", 7, sent)


def test_a_combined_stream_event_keeps_its_text_as_sent_out_of_the_envelope() -> None:
    server = fleet("usdm", keep_text=True)
    add(server, "a")
    sent = '{"e":"balanceUpdate", "E":3,"a":"BTC","d":"0.1","T":3}'
    frame_on(server, "a", f'{{"stream":"key-a","data":{sent}}}')
    assert [text for _, _, text in drain_texts(server)] == [sent]


def test_an_envelope_written_otherwise_keeps_its_event_re_encoded_compactly() -> None:
    server = fleet("spot", keep_text=True)
    add(server, "a")
    frame_on(
        server, "a", json.dumps({"event": event(8), "subscriptionId": int(route_of(server, "a"))}, indent=1)
    )
    ((_, _, text),) = drain_texts(server)
    assert text == json.dumps(event(8), separators=(",", ":"))


def test_a_gap_and_an_error_have_no_text_and_texts_stay_with_their_events() -> None:
    server = fleet("spot", keep_text=True)
    add(server, "a", "b")
    for n in (1, 2):
        frame_on(server, "a", f'{{"subscriptionId":{route_of(server, "a")},"event":{json.dumps(event(n))}}}')
    frame_on(server, "b", f'{{"subscriptionId":{route_of(server, "b")},"event":{json.dumps(event(5))}}}')
    server.apply(server.core.fail("b", RuntimeError("refused"), server.now))
    got = {
        (account, getattr(item, "event_time", type(item).__name__), text)
        for account, item, text in drain_texts(server)
    }
    assert got == {
        ("a", 1, json.dumps(event(1))),
        ("a", 2, json.dumps(event(2))),
        ("b", 5, json.dumps(event(5))),
        ("b", "RuntimeError", None),
    }


def test_texts_are_not_kept_unless_asked() -> None:
    server = fleet("spot")
    add(server, "a")
    frame_on(server, "a", f'{{"subscriptionId":{route_of(server, "a")},"event":{json.dumps(event(1))}}}')
    assert [text for _, _, text in drain_texts(server)] == [None]


def test_without_models_each_event_is_a_raw_event_with_its_text_and_a_loss_still_a_gap() -> None:
    server = fleet("spot", models=False)
    add(server, "a", "b")
    sent = '{"e":"balanceUpdate","E":7,"a":"BTC","d":"0.10000000","T":7}'
    frame_on(server, "a", f'{{"subscriptionId":{route_of(server, "a")},"event":{sent}}}')
    (conn,) = server.open
    server.drop(conn)
    server.advance(10.0)  # each account resubscribed: its gap is handed out
    got = drain_texts(server)
    assert got[0] == ("a", RawEvent("balanceUpdate", 7, sent), sent)
    assert sorted((account, type(item), text) for account, item, text in got[1:]) == [
        ("a", StreamGap, None),
        ("b", StreamGap, None),
    ]


def test_without_models_a_combined_stream_event_is_a_raw_event_of_its_text_out_of_the_envelope() -> None:
    server = fleet("usdm", models=False)
    add(server, "a")
    sent = '{"e":"ORDER_TRADE_UPDATE","E":"3","T":3}'
    frame_on(server, "a", f'{{"stream":"key-a","data":{sent}}}')
    assert drain_texts(server) == [("a", RawEvent("ORDER_TRADE_UPDATE", 3, sent), sent)]
