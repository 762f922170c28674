"""What a fleet connection remembers of its requests awaiting answers stays bounded, whatever the
server leaves unanswered."""

from __future__ import annotations

from binance_userstream.fleet._driver import MAX_ASKED, _Socket
from binance_userstream.fleet._pool import Member


def test_a_connection_forgets_its_oldest_unanswered_request_past_the_bound() -> None:
    socket = _Socket(ws=None)  # type: ignore[arg-type]  # the record alone: nothing is sent
    member = Member(account="a", sub=1, target="")
    for request_id in range(1, MAX_ASKED + 11):
        socket.asked(request_id, (member,), None)
    assert len(socket.requests) == MAX_ASKED
    assert min(socket.requests) == 11
    assert socket.requests[MAX_ASKED + 10] == ((member,), None)
