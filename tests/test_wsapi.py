"""The WebSocket API's subscription rules, without sockets: what a Subscriber sends and what answers mean.

Binance's web-socket-api.md ("User Data Stream requests", "Timing security") and errors.md:
`userDataStream.subscribe.signature` takes apiKey, timestamp, signature (recvWindow optional) and
answers `{"subscriptionId": N}`; `-1021` is a timestamp outside the recvWindow, `-1022` a bad
signature, `-2015` a refused API key, `-1209` an invalid listenToken; `time` answers the server's
time. Margin's listenToken page: present a new token with `userDataStream.subscribe.listenToken`
on the same connection before the old one expires.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import pytest

from binance_userstream._gate import DEFAULT_BAN_SECONDS
from binance_userstream._signing import Credentials, load_signer
from binance_userstream.errors import AuthenticationError, SignatureError, TimestampError
from binance_userstream.stream._wsapi import (
    Failed,
    Refused,
    Renewed,
    RenewFailed,
    Resynced,
    Send,
    Subscribed,
    Subscriber,
    is_event_frame,
)

NOW = 1_747_385_641_636.0


class FakeSigning:
    """Signs with a counter, so each request shows whether it was signed afresh."""

    def __init__(self) -> None:
        self.signed = 0
        self.resyncs: list[tuple[int, float, float]] = []

    def sign_ws(self, params: Mapping[str, object], *, recv_window: float | None = None) -> dict[str, object]:
        self.signed += 1
        return {**params, "apiKey": "K", "timestamp": 1000 + self.signed, "signature": f"sig{self.signed}"}

    def resync(self, server_time_ms: int, sent_at_ms: float, received_at_ms: float) -> float:
        self.resyncs.append((server_time_ms, sent_at_ms, received_at_ms))
        return server_time_ms - (sent_at_ms + received_at_ms) / 2  # Credentials.resync's rule


def request(send: Send) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(send.text)
    return body


def ok(request_id: int, result: object) -> str:
    return json.dumps({"id": request_id, "status": 200, "result": result})


def refused(request_id: int, status: int, code: int, msg: str = "no") -> str:
    return json.dumps({"id": request_id, "status": status, "error": {"code": code, "msg": msg}})


def signed() -> tuple[Subscriber, FakeSigning, dict[str, Any]]:
    signing = FakeSigning()
    subscriber = Subscriber("signature", signing)
    return subscriber, signing, request(subscriber.subscribe(NOW))


def test_a_signed_subscription_sends_the_documented_method_with_the_signed_params() -> None:
    _, signing, sent = signed()
    assert sent["method"] == "userDataStream.subscribe.signature"
    assert sent["params"] == {"apiKey": "K", "timestamp": 1001, "signature": "sig1"}
    assert signing.signed == 1


def test_each_subscription_is_signed_afresh() -> None:
    """A replayed frame is refused once its recvWindow has passed: never resend an old one."""
    signing = FakeSigning()
    first = request(Subscriber("signature", signing).subscribe(NOW))
    second = request(Subscriber("signature", signing).subscribe(NOW + 60_000))
    assert first["params"]["signature"] != second["params"]["signature"]


def test_the_answer_with_a_subscription_id_subscribes_the_connection() -> None:
    subscriber, _, sent = signed()
    assert subscriber.answer(ok(sent["id"], {"subscriptionId": 4}), NOW) == [Subscribed(4)]
    assert subscriber.subscription_id == 4


def test_minus_1021_asks_the_servers_time_once_then_resyncs_and_subscribes_signed_afresh() -> None:
    subscriber, signing, sent = signed()
    (ask,) = subscriber.answer(refused(sent["id"], 400, -1021, "Timestamp outside recvWindow"), NOW + 10)
    assert isinstance(ask, Send)
    assert request(ask)["method"] == "time"
    resynced, again = subscriber.answer(ok(request(ask)["id"], {"serverTime": 5000}), NOW + 30)
    assert isinstance(resynced, Resynced)
    assert resynced.offset_ms == pytest.approx(5000 - (NOW + 20))
    assert signing.resyncs == [(5000, NOW + 10, NOW + 30)]
    assert isinstance(again, Send)
    assert request(again)["params"]["signature"] == "sig2"


def test_a_second_minus_1021_after_the_resync_is_a_timestamp_error() -> None:
    subscriber, _, sent = signed()
    (ask,) = subscriber.answer(refused(sent["id"], 400, -1021), NOW)
    _, again = subscriber.answer(ok(request(ask)["id"], {"serverTime": 5000}), NOW)
    assert isinstance(again, Send)
    (outcome,) = subscriber.answer(refused(request(again)["id"], 400, -1021), NOW)
    assert isinstance(outcome, Refused)
    assert isinstance(outcome.error, TimestampError)
    assert "synchronise it (NTP)" in str(outcome.error)


@pytest.mark.parametrize(
    ("status", "code", "cls"),
    [(400, -1022, SignatureError), (401, -2015, AuthenticationError), (400, -2014, AuthenticationError)],
)
def test_a_bad_signature_or_a_refused_api_key_is_fatal(status: int, code: int, cls: type[Exception]) -> None:
    subscriber, _, sent = signed()
    (outcome,) = subscriber.answer(refused(sent["id"], status, code, "refused"), NOW)
    assert isinstance(outcome, Refused)
    assert isinstance(outcome.error, cls)
    assert outcome.error.code == code


def test_a_bad_signature_says_what_to_check() -> None:
    subscriber, _, sent = signed()
    (outcome,) = subscriber.answer(
        refused(sent["id"], 400, -1022, "Signature for this request is not valid."), NOW
    )
    assert isinstance(outcome, Refused)
    assert "api_secret=" in str(outcome.error)
    assert "private_key=" in str(outcome.error)


@pytest.mark.parametrize(("status", "code"), [(400, -2042), (429, -1003), (503, -1001), (400, -2035)])
def test_other_refusals_fail_the_connection_for_a_retry(status: int, code: int) -> None:
    subscriber, _, sent = signed()
    (outcome,) = subscriber.answer(refused(sent["id"], status, code), NOW)
    assert isinstance(outcome, Failed)
    assert str(code) in outcome.detail


def test_an_answer_to_nothing_asked_is_ignored() -> None:
    subscriber, _, _ = signed()
    assert subscriber.answer(ok(99, {"subscriptionId": 1}), NOW) == []
    assert subscriber.answer("not json", NOW) == []
    assert subscriber.answer("[1, 2]", NOW) == []


def test_a_success_without_a_subscription_id_fails_the_connection() -> None:
    subscriber, _, sent = signed()
    (outcome,) = subscriber.answer(ok(sent["id"], {}), NOW)
    assert isinstance(outcome, Failed)


def test_a_listen_token_subscription_presents_the_token_and_no_signature() -> None:
    subscriber = Subscriber("listen_token", None)
    sent = request(subscriber.subscribe(NOW, token="tok1"))
    assert sent["method"] == "userDataStream.subscribe.listenToken"
    assert sent["params"] == {"listenToken": "tok1"}


def test_a_new_listen_token_on_the_same_connection_renews_the_subscription() -> None:
    subscriber = Subscriber("listen_token", None)
    first = request(subscriber.subscribe(NOW, token="tok1"))
    subscriber.answer(ok(first["id"], {"subscriptionId": 0, "expirationTime": 1}), NOW)
    renew = request(subscriber.renew(NOW, "tok2"))
    assert renew["params"] == {"listenToken": "tok2"}
    assert subscriber.answer(ok(renew["id"], {"subscriptionId": 0, "expirationTime": 2}), NOW) == [Renewed(0)]


def test_a_refused_renewal_asks_for_the_connection_to_be_replaced_not_closed() -> None:
    subscriber = Subscriber("listen_token", None)
    first = request(subscriber.subscribe(NOW, token="tok1"))
    subscriber.answer(ok(first["id"], {"subscriptionId": 0}), NOW)
    renew = request(subscriber.renew(NOW, "tok2"))
    (outcome,) = subscriber.answer(refused(renew["id"], 400, -1209, "Invalid listenToken."), NOW)
    assert isinstance(outcome, RenewFailed)


def test_a_listen_token_refused_at_subscription_fails_the_connection_for_a_fresh_token() -> None:
    subscriber = Subscriber("listen_token", None)
    sent = request(subscriber.subscribe(NOW, token="tok1"))
    (outcome,) = subscriber.answer(refused(sent["id"], 400, -1209), NOW)
    assert isinstance(outcome, Failed)


def test_unsubscribe_names_the_subscription() -> None:
    subscriber, _, sent = signed()
    subscriber.answer(ok(sent["id"], {"subscriptionId": 2}), NOW)
    body = request(subscriber.unsubscribe(NOW))
    assert body["method"] == "userDataStream.unsubscribe"
    assert body["params"] == {"subscriptionId": 2}


def test_a_signed_subscription_without_credentials_is_refused_before_anything_is_sent() -> None:
    with pytest.raises(ValueError, match="api_secret= or private_key="):
        Subscriber("signature", None)


def test_the_subscribers_repr_shows_no_token() -> None:
    subscriber = Subscriber("listen_token", None)
    subscriber.subscribe(NOW, token="secret-token-value")
    assert "secret-token-value" not in repr(subscriber)


@pytest.mark.parametrize(
    ("text", "event"),
    [
        ('{"subscriptionId":0,"event":{"e":"executionReport"}}', True),
        ('{"event":{"e":"serverShutdown","E":1}}', True),
        ('{"id":1,"status":200,"result":{"subscriptionId":0}}', False),
        ('{"status":200,"id":1,"result":{}}', False),
        ('{"e":"outboundAccountPosition"}', True),
        ("garbage", True),
    ],
)
def test_event_frames_are_told_from_answers(text: str, event: bool) -> None:
    assert is_event_frame(text) is event


@pytest.mark.parametrize("status", [429, 418])
def test_a_rate_limit_or_ban_answer_carries_the_servers_wait_to_the_retry(status: int) -> None:
    """web-socket-api.md: a 429 or 418 answer's error.data holds serverTime and retryAfter (ms)."""
    subscriber, _, sent = signed()
    answer = json.dumps(
        {
            "id": sent["id"],
            "status": status,
            "error": {
                "code": -1003,
                "msg": "Too much request weight used",
                "data": {"serverTime": 1000, "retryAfter": 91_000},
            },
        }
    )
    (outcome,) = subscriber.answer(answer, NOW)
    assert isinstance(outcome, Failed)
    assert outcome.retry_after == 90.0
    assert outcome.banned is (status == 418)  # for the backoff gate REST calls share


def test_a_rate_limit_answer_without_data_leaves_the_wait_to_the_backoff() -> None:
    subscriber, _, sent = signed()
    (outcome,) = subscriber.answer(refused(sent["id"], 429, -1003), NOW)
    assert isinstance(outcome, Failed)
    assert outcome.retry_after is None


def test_a_ban_answer_without_data_waits_binance_s_shortest_ban_as_a_refused_handshake_does() -> None:
    """A 418 that says not when the ban ends: retried after the backoff (a second), the next
    subscription would be sent into the ban and grow it; REST and the handshake wait 120 s."""
    subscriber, _, sent = signed()
    (outcome,) = subscriber.answer(refused(sent["id"], 418, -1003), NOW)
    assert isinstance(outcome, Failed)
    assert outcome.banned is True
    assert outcome.retry_after == DEFAULT_BAN_SECONDS


@pytest.mark.parametrize("until", ["1" + "0" * 400, "1e400"], ids=["integer", "float"])
def test_a_ban_ending_beyond_any_float_is_waited_for_the_three_day_cap_as_for_rest(until: str) -> None:
    """An integer of 400 digits (no float holds it) or 1e400 (json reads it as infinity): the wait is
    Binance's longest ban, the cap a REST `Retry-After` has, not an OverflowError on every attempt."""
    subscriber, _, sent = signed()
    answer = (
        f'{{"id":{sent["id"]},"status":418,"error":{{"code":-1003,"msg":"banned",'
        f'"data":{{"serverTime":1000,"retryAfter":{until}}}}}}}'
    )
    (outcome,) = subscriber.answer(answer, NOW)
    assert isinstance(outcome, Failed)
    assert outcome.retry_after == 3 * 86400


def test_a_ban_answer_whose_server_time_is_beyond_any_float_fails_the_connection_with_no_wait() -> None:
    subscriber, _, sent = signed()
    answer = (
        f'{{"id":{sent["id"]},"status":429,"error":{{"code":-1003,"msg":"slow down",'
        f'"data":{{"serverTime":1{"0" * 400},"retryAfter":91000}}}}}}'
    )
    (outcome,) = subscriber.answer(answer, NOW)
    assert isinstance(outcome, Failed)
    assert outcome.retry_after == 0.0  # the ban ended long ago by that clock: the backoff decides


TEN_YEARS_MS = 10 * 365 * 86_400_000


@pytest.mark.parametrize(
    "server_time",
    [int(NOW) + TEN_YEARS_MS, int(NOW) - TEN_YEARS_MS, 10**400, int(NOW) + 3_600_001],
    ids=["ten-years-ahead", "ten-years-behind", "beyond-any-float", "an-hour-and-a-ms-ahead"],
)
def test_a_server_time_more_than_an_hour_off_fails_the_connection_and_is_never_taken_as_the_offset(
    server_time: int,
) -> None:
    """The offset is the client's one (REST signs with it too): an absurd `time` answer is refused,
    the offset stays what it was, and the connection fails with the reason (the stream retries)."""
    credentials = Credentials("K", load_signer("S" * 64, environ={}))
    subscriber = Subscriber("signature", credentials)
    sent = request(subscriber.subscribe(NOW))
    (ask,) = subscriber.answer(refused(sent["id"], 400, -1021), NOW)
    assert isinstance(ask, Send)
    (outcome,) = subscriber.answer(ok(request(ask)["id"], {"serverTime": server_time}), NOW)
    assert isinstance(outcome, Failed)
    assert "more than an hour" in outcome.detail
    assert credentials.offset_ms == 0.0


def test_a_server_time_within_the_hour_is_taken_as_the_offset() -> None:
    credentials = Credentials("K", load_signer("S" * 64, environ={}))
    subscriber = Subscriber("signature", credentials)
    sent = request(subscriber.subscribe(NOW))
    (ask,) = subscriber.answer(refused(sent["id"], 400, -1021), NOW)
    assert isinstance(ask, Send)
    resynced, _ = subscriber.answer(ok(request(ask)["id"], {"serverTime": int(NOW) + 3_599_000}), NOW)
    assert resynced == Resynced(3_599_000)
    assert credentials.offset_ms == 3_599_000
