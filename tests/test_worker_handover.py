"""The handover messages and the old owner's marks (`workers._handover`), without sockets: an ask is
answered only once the items of its account that were buffered when it came have been taken, and
the messages survive their trip through bytes."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from binance_userstream.stream._gap import StreamGap
from binance_userstream.workers._handover import Ask, Marked, Marks, decode, subject


def test_an_ask_for_an_account_with_nothing_buffered_is_ripe_at_once() -> None:
    marks: Marks[str] = Marks()
    marks.ask("a", 0, "ask-1")
    assert list(marks.ripe) == ["ask-1"]
    assert marks.waiting == {}


def test_an_ask_is_ripe_once_the_items_buffered_when_it_came_are_taken() -> None:
    marks: Marks[str] = Marks()
    marks.ask("a", 2, "ask-1")
    marks.took("a")
    assert not marks.ripe
    marks.took("a")
    assert list(marks.ripe) == ["ask-1"]
    assert "a" not in marks.waiting


def test_a_later_ask_of_the_same_account_waits_for_the_items_buffered_when_it_came() -> None:
    marks: Marks[str] = Marks()
    marks.ask("a", 1, "first")
    marks.ask("a", 3, "second")
    marks.took("a")
    assert list(marks.ripe) == ["first"]
    marks.took("a")
    marks.took("a")
    assert list(marks.ripe) == ["first", "second"]


def test_the_same_ask_again_while_it_waits_is_answered_once() -> None:
    marks: Marks[str] = Marks()
    marks.ask("a", 2, "ask-1")
    marks.took("a")
    marks.ask("a", 1, "ask-1")  # the taker asked again
    marks.took("a")
    assert list(marks.ripe) == ["ask-1"]
    assert marks.waiting == {}


def test_another_accounts_items_do_not_count() -> None:
    marks: Marks[str] = Marks()
    marks.ask("a", 1, "ask-a")
    marks.ask("b", 1, "ask-b")
    marks.took("b")
    assert list(marks.ripe) == ["ask-b"]
    assert "a" in marks.waiting


def test_a_forgotten_account_is_never_answered() -> None:
    marks: Marks[str] = Marks()
    marks.ask("a", 1, "ask-1")
    marks.forget("a")
    assert marks.waiting == {}
    assert not marks.ripe


@given(st.lists(st.sampled_from(["receive", "take", "ask"]), max_size=80))
def test_each_ask_ripens_right_after_the_last_item_buffered_when_it_came_is_taken(steps: list[str]) -> None:
    """Whatever the order in which an account's items arrive, are taken and asks come: an ask is
    ripe right after the take of the last item that was buffered when it came, never before."""
    marks: Marks[int] = Marks()
    buffered = taken = 0
    due: dict[int, int] = {}  # ask -> the takes after which it is ripe
    for number, step in enumerate(steps):
        if step == "receive":
            buffered += 1
        elif step == "ask":
            marks.ask("a", buffered, number)
            due[number] = taken + buffered
        elif buffered:
            buffered, taken = buffered - 1, taken + 1
            if "a" in marks.waiting:
                marks.took("a")
        assert set(marks.ripe) == {ask for ask, when in due.items() if when <= taken}


def test_an_ask_and_its_answer_survive_their_trip_through_bytes() -> None:
    ask = Ask("acct-1", "w2", 7)
    assert decode(ask.encode(), at=0.0) == ask
    gap = StreamGap("failover", 100.0, 100.5, last_event_time=1_700_000_000_000, dropped=0)
    marked = decode(Marked("acct-1", 7, gap).encode(), at=20.0)
    assert marked == Marked("acct-1", 7, StreamGap("failover", 19.5, 20.0, last_event_time=1_700_000_000_000))
    assert decode(Marked("acct-1", 8).encode(), at=1.0) == Marked("acct-1", 8, None)


@given(st.binary(max_size=80))
def test_any_bytes_decode_to_a_handover_message_or_none(data: bytes) -> None:
    assert isinstance(decode(data, at=0.0), Ask | Marked | None)


def test_garbage_and_messages_of_the_wrong_shape_are_ignored() -> None:
    for data in (
        b"",
        b"nope",
        b"[]",
        b'{"ask": "a"}',
        b'{"ask": 1, "taker": "w", "nonce": 1}',
        b'{"nonce": true}',
    ):
        assert decode(data, at=0.0) is None


def test_a_workers_subject_is_its_buckets_and_outside_the_logs_subjects() -> None:
    assert subject("binance_userstream_leases", "w1") == "_handover.binance_userstream_leases.w1"
