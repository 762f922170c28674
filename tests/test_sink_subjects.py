"""What an item becomes in the durable log (sink._subjects): subjects, headers, payloads, msg ids."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from binance_userstream.account import AccountState, Balance, Change, Reconciled
from binance_userstream.errors import BinanceAPIError
from binance_userstream.sink import Envelope
from binance_userstream.sink._subjects import Addresses, msg_id
from binance_userstream.stream import StreamGap
from binance_userstream.stream._decode import decode
from binance_userstream.stream._raw import read
from tests._samples import DATA, SAMPLES, sample_id

EXECUTION_REPORT = (DATA / "spot" / "executionReport.json").read_text()
ORDER_TRADE_UPDATE = (DATA / "usdm" / "ORDER_TRADE_UPDATE.json").read_text()
LISTEN_KEY = "pqia91ma19a5s61cv6a81va65sdf19v8a65a1a5s61cv6a81va65sdf19v8a65a1"
API_KEY = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A"


def envelope(
    item: object, text: str | None = None, account: str = "acct-1", market: str = "spot"
) -> Envelope:
    return Envelope.of(account, item, text, market=market)


def test_an_event_is_published_on_prefix_market_account_and_its_wire_name() -> None:
    assert (
        envelope(decode(EXECUTION_REPORT), EXECUTION_REPORT).subject == "binance.spot.acct-1.executionReport"
    )


def test_the_subject_prefix_is_configurable() -> None:
    env = Envelope.of("a", decode(EXECUTION_REPORT), EXECUTION_REPORT, market="spot", prefix="prod.binance")
    assert env.subject == "prod.binance.spot.a.executionReport"


def test_gaps_reconciled_errors_and_events_without_e_have_subjects_of_their_own() -> None:
    state = AccountState()
    reconciled = Reconciled(StreamGap("disconnected", 1.0, 2.0), (), (), state)
    assert envelope(StreamGap("overflow", 1.0, 2.0)).subject == "binance.spot.acct-1._gap"
    assert envelope(reconciled).subject == "binance.spot.acct-1._reconciled"
    assert envelope(RuntimeError("boom")).subject == "binance.spot.acct-1._error"
    assert envelope(decode('{"x": 1}'), '{"x": 1}').subject == "binance.spot.acct-1._unknown"


@pytest.mark.parametrize("wire", ["a.b", "a b", "*", ">", "", "x" * 65, "é"])
def test_a_wire_name_that_is_no_subject_token_is_refused(wire: str) -> None:
    text = json.dumps({"e": wire, "E": 1})
    with pytest.raises(ValueError, match="event wire name"):
        envelope(decode(text), text)


@pytest.mark.parametrize("account", ["a.b", "a*", "a>", "", "a b", "x" * 65])
def test_an_account_id_that_is_no_subject_token_is_refused(account: str) -> None:
    with pytest.raises(ValueError, match="account id"):
        envelope(decode(EXECUTION_REPORT), EXECUTION_REPORT, account=account)


def test_a_market_or_prefix_that_is_no_subject_token_is_refused() -> None:
    with pytest.raises(ValueError, match="market"):
        Addresses("spot.x")
    with pytest.raises(ValueError, match="prefix"):
        Addresses("spot", prefix="binance.>")


def test_the_payload_is_the_text_byte_for_byte() -> None:
    text = '{"e":"executionReport","E":1499405658658,  "s":"ETHBTC", "p":"0.10264410"}'
    assert envelope(decode(text), text).payload == text.encode()


def test_an_event_without_its_text_is_published_as_its_models_json() -> None:
    event = decode(EXECUTION_REPORT)
    assert json.loads(envelope(event).payload) == event.to_dict()


def test_headers_name_the_account_market_event_type_and_event_time() -> None:
    headers = envelope(decode(EXECUTION_REPORT), EXECUTION_REPORT).headers
    assert headers["Binance-Account"] == "acct-1"
    assert headers["Binance-Market"] == "spot"
    assert headers["Binance-Event"] == "executionReport"
    assert headers["Binance-Event-Time"] == "1499405658658"
    assert len(headers["Nats-Msg-Id"]) == 32


def test_an_event_time_sent_as_a_string_is_still_a_header() -> None:
    text = '{"e":"listenKeyExpired","E":"1736996475556","listenKey":"x"}'
    assert envelope(decode(text), text, market="usdm").headers["Binance-Event-Time"] == "1736996475556"


@pytest.mark.parametrize("value", ['"soon"', '"²"', "-5", "1.5", "null", '"' + "9" * 30 + '"'])
def test_an_unusable_event_time_leaves_the_header_out(value: str) -> None:
    text = f'{{"e":"listenKeyExpired","E":{value}}}'
    assert "Binance-Event-Time" not in envelope(decode(text), text, market="usdm").headers


def test_the_same_event_has_the_same_msg_id_whichever_connection_published_it() -> None:
    first = envelope(decode(ORDER_TRADE_UPDATE), ORDER_TRADE_UPDATE, market="usdm")
    second = envelope(decode(ORDER_TRADE_UPDATE), ORDER_TRADE_UPDATE, market="usdm")
    assert first.headers["Nats-Msg-Id"] == second.headers["Nats-Msg-Id"]


def test_a_msg_id_is_the_same_in_every_version_so_that_workers_of_two_versions_publish_no_duplicate() -> None:
    # BLAKE2b-128 (person "binance-sink") over the payload, NUL, market, NUL, account: a change of
    # this recipe would double every event a rolling upgrade's overlap publishes.
    assert msg_id("spot", "acct-1", b'{"e":"x","E":1}') == "8076ed06905b2799ebd715884dbd1052"


def test_the_msg_id_differs_by_account_market_and_event() -> None:
    ids = {
        envelope(decode(EXECUTION_REPORT), EXECUTION_REPORT).headers["Nats-Msg-Id"],
        envelope(decode(EXECUTION_REPORT), EXECUTION_REPORT, account="acct-2").headers["Nats-Msg-Id"],
        envelope(decode(EXECUTION_REPORT), EXECUTION_REPORT, market="margin").headers["Nats-Msg-Id"],
        envelope(decode(ORDER_TRADE_UPDATE), ORDER_TRADE_UPDATE).headers["Nats-Msg-Id"],
    }
    assert len(ids) == 4


gaps = st.builds(
    StreamGap,
    reason=st.sampled_from(["disconnected", "overflow", "sink"]),
    started_at=st.floats(0, 1e6, allow_nan=False),
    ended_at=st.floats(0, 1e6, allow_nan=False),
    last_event_time=st.none() | st.integers(1, 2**62),
    dropped=st.integers(0, 10**6),
)


@given(gaps, gaps)
def test_two_different_gaps_never_share_a_msg_id_and_the_same_gap_always_does(
    a: StreamGap, b: StreamGap
) -> None:
    same = envelope(a).headers["Nats-Msg-Id"] == envelope(b).headers["Nats-Msg-Id"]
    assert same == (a == b)


def test_a_gap_is_published_as_json_with_its_fields_and_description() -> None:
    gap = StreamGap("sink", 10.0, 12.5, last_event_time=1499405658658, dropped=3)
    body = json.loads(envelope(gap).payload)
    assert body["reason"] == "sink"
    assert body["dropped"] == 3
    assert body["last_event_time"] == 1499405658658
    assert body["description"] == gap.describe()


def test_a_reconciled_is_published_as_json_with_decimals_as_strings_and_no_raw_models() -> None:
    before, after = (
        Balance("BTC", free=Decimal("1.5")),
        Balance("BTC", free=Decimal("2.00000001"), raw=object()),
    )
    state = AccountState(balances={"BTC": after}, as_of=1700000000000)
    reconciled = Reconciled(
        StreamGap("disconnected", 1.0, 2.0), (Change("balance", "BTC", before, after),), (), state
    )
    env = envelope(reconciled)
    body = json.loads(env.payload)
    assert body["state"]["balances"][0]["free"] == "2.00000001"
    assert body["changes"][0]["before"]["free"] == "1.5"
    assert "raw" not in body["state"]["balances"][0]
    assert env.headers["Binance-Event-Time"] == "1700000000000"


def test_an_error_is_published_without_any_secret_it_may_quote() -> None:
    error = BinanceAPIError(400, -2015, f"Invalid API-key {API_KEY} for listenKey={LISTEN_KEY}")
    env = envelope(error)
    published = env.payload + repr(env.headers).encode() + env.subject.encode()
    assert API_KEY.encode() not in published
    assert LISTEN_KEY.encode() not in published
    assert json.loads(env.payload)["error"] == "BinanceAPIError"


def test_a_combined_streams_frame_is_published_as_its_event_without_the_listen_key() -> None:
    frame = f'{{"stream":"{LISTEN_KEY}","data":{ORDER_TRADE_UPDATE.strip()}}}'
    env = envelope(decode(ORDER_TRADE_UPDATE), frame, market="usdm")
    assert env.payload == ORDER_TRADE_UPDATE.strip().encode()
    assert LISTEN_KEY.encode() not in env.payload


def test_a_websocket_api_frame_has_the_same_payload_and_msg_id_on_every_connection() -> None:
    event = '{"e":"executionReport","E":1499405658658,"s":"ETHBTC"}'
    first = envelope(decode(event), f'{{"subscriptionId":0,"event":{event}}}')
    second = envelope(decode(event), f'{{"subscriptionId":7,"event":{event}}}')
    assert first.payload == second.payload == event.encode()
    assert first.headers["Nats-Msg-Id"] == second.headers["Nats-Msg-Id"]


def test_an_envelope_written_in_another_order_is_still_unwrapped_without_the_listen_key() -> None:
    frame = f'{{"data": {{"e": "ORDER_TRADE_UPDATE", "E": 5}}, "stream": "{LISTEN_KEY}"}}'
    env = envelope(decode('{"e": "ORDER_TRADE_UPDATE", "E": 5}'), frame, market="usdm")
    assert json.loads(env.payload) == {"e": "ORDER_TRADE_UPDATE", "E": 5}
    assert LISTEN_KEY.encode() not in env.payload


def test_a_sink_told_its_worker_names_it_in_every_message() -> None:
    gap = StreamGap("disconnected", 1.0, 2.0)
    assert Addresses("spot", worker="w-1").envelope("acct", gap, None).headers["Binance-Worker"] == "w-1"
    assert "Binance-Worker" not in Addresses("spot").envelope("acct", gap, None).headers


def test_a_worker_name_no_header_token_takes_is_refused() -> None:
    with pytest.raises(ValueError, match="worker id"):
        Addresses("spot", worker="w 1")


@pytest.mark.parametrize("sample", SAMPLES, ids=sample_id)
def test_a_workers_raw_event_is_addressed_byte_for_byte_as_its_model_is(sample: Path) -> None:
    text = json.dumps(json.loads(sample.read_text()), separators=(",", ":"))
    raw = read(text)
    assert raw is not None
    addresses = Addresses(sample.parent.name, worker="w-1")
    first = addresses.message("acct-1", raw, raw.text)  # an account and name not seen yet
    again = addresses.message("acct-1", raw, raw.text)  # both known: the worker's shortest way
    model = Addresses(sample.parent.name, worker="w-1").message("acct-1", decode(text), text)
    assert first == again == model
