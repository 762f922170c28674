"""Spot and margin events end to end: `events()` on the WebSocket API against the simulator.

Binance (web-socket-api.md, "User Data Stream requests"; margin's "Listen Token" page): spot's
user data comes from `userDataStream.subscribe.signature` (any key type: HMAC, RSA, Ed25519),
margin's from a listenToken (`POST /sapi/v1/userListenToken`, USER_STREAM) given to
`userDataStream.subscribe.listenToken`, renewed before it expires on the same connection or ended
by `eventStreamTerminated`; events arrive as `{"subscriptionId": N, "event": {...}}`; `-1021` is a
timestamp outside the recvWindow, `-1022` a bad signature, `-2015` a refused API key.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from binance_userstream_client.models import BalanceUpdate, ExecutionReport, OutboundAccountPosition
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from binance_userstream import (
    AsyncUserDataStream,
    AuthenticationError,
    SignatureError,
    SteppedClock,
    StreamGap,
    TimestampError,
    UserDataStream,
)
from binance_userstream._signing import Credentials
from binance_userstream.simulator import TEST_API_KEY, TEST_API_SECRET, Simulator
from binance_userstream.stream._core import StreamEvent, StreamEventKind, StreamTiming
from tests._stream_helpers import take

pytestmark = pytest.mark.anyio

FAST = StreamTiming(ping_interval=20, overlap=0.2, first_retry=0.05, max_retry=0.2)
OTHER_KEY = "EdKey" + "x" * 59


def balance(n: int) -> dict[str, Any]:
    return {"e": "balanceUpdate", "E": n, "a": "BTC", "d": "0.10000000", "T": n}


@pytest.fixture
def live() -> Iterator[Simulator]:
    with Simulator() as sim:
        yield sim


def ws(sim: Simulator) -> str:
    return sim.url.replace("http://", "ws://")


def spot(sim: Simulator, **options: Any) -> AsyncUserDataStream:
    options.setdefault("api_secret", TEST_API_SECRET)
    return AsyncUserDataStream(TEST_API_KEY, sim.url, market="spot", stream_url=ws(sim), **options)


def margin(sim: Simulator, **options: Any) -> AsyncUserDataStream:
    options.setdefault("api_secret", TEST_API_SECRET)
    return AsyncUserDataStream(TEST_API_KEY, sim.url, market="margin", stream_url=ws(sim), **options)


async def subscribed(sim: Simulator, count: int = 1) -> None:
    async with asyncio.timeout(10):
        while sim.subscriptions() < count:  # type: ignore[attr-defined]
            await asyncio.sleep(0.01)


def pem(key: ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey) -> tuple[bytes, bytes]:
    """(private PEM, public PEM)."""
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private, public


# -- spot: userDataStream.subscribe.signature --------------------------------------------------------


async def test_spot_events_arrive_as_typed_models_in_order_from_a_signed_subscription(
    live: Simulator,
) -> None:
    async with spot(live) as uds, uds.events(timing=FAST) as stream:
        await subscribed(live)
        sent = live.traffic("spot", TEST_API_KEY)
        items = await take(stream, len(sent))
    assert [type(i) for i in items] == [ExecutionReport, OutboundAccountPosition] * 3
    assert [i.execution_type for i in items if isinstance(i, ExecutionReport)] == [
        "NEW",
        "TRADE",
        "TRADE",
    ]


@pytest.mark.parametrize("kind", ["ed25519", "rsa"])
async def test_spot_subscribes_with_an_ed25519_or_rsa_private_key(
    live: Simulator, kind: str, tmp_path: Any
) -> None:
    key = ed25519.Ed25519PrivateKey.generate() if kind == "ed25519" else rsa.generate_private_key(65537, 2048)
    private, public = pem(key)
    live.register_key(OTHER_KEY, public_key=public)
    path = tmp_path / "key.pem"
    path.write_bytes(private)
    uds = AsyncUserDataStream(OTHER_KEY, live.url, market="spot", stream_url=ws(live), private_key=path)
    async with uds, uds.events(timing=FAST) as stream:
        await subscribed(live)
        live.push("spot", balance(1), OTHER_KEY)
        (item,) = await take(stream, 1)
    assert isinstance(item, BalanceUpdate)


async def test_every_reconnect_is_signed_afresh(live: Simulator, monkeypatch: pytest.MonkeyPatch) -> None:
    """A replayed subscription frame is refused once its recvWindow has passed."""
    timestamps: list[object] = []
    sign = Credentials.sign_ws

    def spy(self: Credentials, params: Any, **kwargs: Any) -> dict[str, object]:
        signed = sign(self, params, **kwargs)
        timestamps.append((signed["timestamp"], signed["signature"]))
        return signed

    monkeypatch.setattr(Credentials, "sign_ws", spy)
    async with spot(live) as uds:
        async with uds.events(timing=FAST) as stream:
            await subscribed(live)
            await asyncio.sleep(0.01)
            live.drop_streams("spot")
            await asyncio.sleep(0.05)
            await subscribed(live)
            live.push("spot", balance(2), TEST_API_KEY)
            items = await take(stream, 2)
    assert [type(i) for i in items] == [StreamGap, BalanceUpdate]
    assert len(timestamps) == 2
    assert timestamps[0] != timestamps[1]


async def test_a_clock_off_by_ten_minutes_is_resynced_once_against_the_servers_time(live: Simulator) -> None:
    notes: list[StreamEvent] = []
    async with spot(live) as uds:
        uds._credentials.offset_ms = -600_000.0  # this machine's clock runs ten minutes late
        events = uds.events(
            timing=FAST, on_event=lambda e: notes.append(e) if isinstance(e, StreamEvent) else None
        )
        async with events as stream:
            await subscribed(live)
            live.push("spot", balance(1), TEST_API_KEY)
            (item,) = await take(stream, 1)
    assert isinstance(item, BalanceUpdate)
    assert [n.kind for n in notes].count(StreamEventKind.RESYNCED) == 1
    assert abs(uds._credentials.offset_ms) < 5_000


async def test_a_timestamp_refused_again_after_the_resync_ends_the_stream_with_a_clear_error(
    live: Simulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A resync that does not help: the offset stays what it was.
    monkeypatch.setattr(Credentials, "resync", lambda self, *args: self.offset_ms)
    async with spot(live) as uds:
        uds._credentials.offset_ms = -600_000.0
        with pytest.raises(TimestampError, match="synchronise it"):
            async with uds.events(timing=FAST) as stream:
                await take(stream, 1)


async def test_a_wrong_secret_is_a_fatal_signature_error_that_says_what_to_check(live: Simulator) -> None:
    async with spot(live, api_secret="W" * 64) as uds:
        with pytest.raises(SignatureError) as caught:
            async with uds.events(timing=FAST) as stream:
                await take(stream, 1)
    assert caught.value.code == -1022
    assert "api_secret=" in str(caught.value)
    assert "W" * 64 not in str(caught.value)


async def test_an_api_key_the_exchange_does_not_know_is_fatal(live: Simulator) -> None:
    uds = AsyncUserDataStream(
        "Unknown" + "k" * 57, live.url, market="spot", stream_url=ws(live), api_secret=TEST_API_SECRET
    )
    async with uds:
        with pytest.raises(AuthenticationError) as caught:
            async with uds.events(timing=FAST) as stream:
                await take(stream, 1)
    assert caught.value.code == -2015


async def test_spot_needs_a_secret_or_a_private_key_before_anything_is_sent(
    live: Simulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("BINANCE_API_SECRET", "BINANCE_PRIVATE_KEY_FILE"):
        monkeypatch.delenv(name, raising=False)
    uds = AsyncUserDataStream(TEST_API_KEY, live.url, market="spot", stream_url=ws(live))
    async with uds:
        with pytest.raises(ValueError, match="api_secret= or private_key="):
            uds.events()
    assert live.request_count == 0


async def test_a_server_shutdown_rotates_make_before_break_with_no_gap_and_no_duplicate(
    live: Simulator,
) -> None:
    async with spot(live) as uds, uds.events(timing=FAST) as stream:
        await subscribed(live)
        live.push("spot", balance(1), TEST_API_KEY)
        live.shutdown_notice("spot")
        await subscribed(live, 2)
        for n in range(2, 6):
            live.push("spot", balance(n), TEST_API_KEY)  # both connections get these
        items = await take(stream, 6)
    times = [i.to_dict()["E"] for i in items]
    assert times[0] == 1
    assert [t for t in times[1:] if t < 1_000_000] == [2, 3, 4, 5]  # the shutdown notice aside
    assert not any(isinstance(i, StreamGap) for i in items)


async def test_leaving_the_stream_unsubscribes(live: Simulator) -> None:
    async with spot(live) as uds:
        async with uds.events(timing=FAST):
            await subscribed(live)
        async with asyncio.timeout(5):
            while live.subscriptions():  # type: ignore[attr-defined]
                await asyncio.sleep(0.01)


def test_the_sync_stream_subscribes_spot_too(live: Simulator) -> None:
    uds = UserDataStream(
        TEST_API_KEY, live.url, market="spot", stream_url=ws(live), api_secret=TEST_API_SECRET
    )
    with uds, uds.events(timing=FAST) as stream:
        for _ in range(500):
            if live.subscriptions():  # type: ignore[attr-defined]
                break
            threading_pause(0.01)
        live.push("spot", balance(7), TEST_API_KEY)
        item = next(stream)
    assert isinstance(item, BalanceUpdate)
    assert item.event_time == 7


def threading_pause(seconds: float) -> None:
    import threading

    threading.Event().wait(seconds)


# -- margin: the listenToken ------------------------------------------------------------------------


async def test_margin_events_arrive_through_a_listen_token_subscription(live: Simulator) -> None:
    async with margin(live) as uds, uds.events(timing=FAST) as stream:
        await subscribed(live)
        live.push("margin", balance(1), TEST_API_KEY)
        (item,) = await take(stream, 1)
    assert isinstance(item, BalanceUpdate)
    assert ("POST", "/sapi/v1/userListenToken") in live.requests


async def test_isolated_margin_streams_only_its_symbols_account(live: Simulator) -> None:
    async with margin(live, symbol="ethbtc") as uds, uds.events(timing=FAST) as stream:
        await subscribed(live)
        assert live.push("margin", balance(1), TEST_API_KEY) == 0  # cross margin: not this stream
        live.push("margin", balance(2), TEST_API_KEY, symbol="ETHBTC")
        (item,) = await take(stream, 1)
    assert item.event_time == 2


def test_a_symbol_is_refused_for_a_market_without_isolated_accounts() -> None:
    with pytest.raises(ValueError, match="isolated margin"):
        AsyncUserDataStream(TEST_API_KEY, market="spot", api_secret=TEST_API_SECRET, symbol="BTCUSDT")


async def test_the_listen_token_is_renewed_before_it_expires_on_the_same_connection_with_no_gap(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Five hours on a stepped clock with two-hour tokens: each is renewed 30 minutes before it
    expires, on the one connection; the simulator never sends eventStreamTerminated, and every
    event is delivered, none twice."""
    clock = SteppedClock()
    notes: list[StreamEventKind] = []
    with Simulator(clock=clock) as sim:
        uds = margin(sim)
        real = uds.create_listen_token

        async def two_hours(symbol: str | None = None, *, validity: float | None = None) -> Any:
            return await real(symbol, validity=7200.0)

        monkeypatch.setattr(uds, "create_listen_token", two_hours)
        record = lambda e: notes.append(e.kind) if isinstance(e, StreamEvent) else None  # noqa: E731
        async with uds, uds.events(clock=clock, on_event=record) as stream:
            await subscribed(sim)
            seen: list[Any] = []

            async def consume() -> None:
                async for item in stream:
                    seen.append(item)

            consumer = asyncio.create_task(consume())
            for n in range(1, 5 * 60 + 1):  # five hours, a minute at a time
                clock.advance(60.0)
                sim.tick()
                await asyncio.sleep(0.001)
                assert sim.push("margin", balance(n), TEST_API_KEY) == 1
                async with asyncio.timeout(5):
                    while not seen or seen[-1].to_dict().get("E") != n:
                        await asyncio.sleep(0.0005)
            stream.close()
            await consumer
    assert notes.count(StreamEventKind.TOKEN_RENEWED) >= 3
    assert StreamEventKind.TERMINATED not in notes
    assert notes.count(StreamEventKind.CONNECTING) == 1
    assert [i.to_dict()["E"] for i in seen] == list(range(1, 5 * 60 + 1))


async def test_a_token_that_could_not_be_renewed_ends_in_a_gap_and_a_new_subscription(
    live: Simulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When every renewal fails the token expires: eventStreamTerminated, a gap, and a new token."""
    async with margin(live) as uds:
        real = uds.create_listen_token
        calls = 0

        async def short_lived(symbol: str | None = None, *, validity: float | None = None) -> Any:
            nonlocal calls
            calls += 1
            if calls == 2:
                raise_network()
            return await real(symbol, validity=1.0)  # one second: renewal is due at once

        monkeypatch.setattr(uds, "create_listen_token", short_lived)
        timing = StreamTiming(ping_interval=20, first_retry=5.0, max_retry=5.0, token_lead=0.5)
        async with uds.events(timing=timing, jitter=lambda: 1.0) as stream:
            await subscribed(live)
            items = await take(stream, 2, timeout=15)
            live.push("margin", balance(9), TEST_API_KEY)
            items += await take(stream, 1, timeout=15)
    kinds = [type(i).__name__ for i in items]
    assert kinds[0] == "EventStreamTerminated"
    assert isinstance(items[1], StreamGap)
    assert items[1].reason == "subscription_ended"
    assert items[2].event_time == 9


async def test_a_listen_token_said_to_live_beyond_any_float_is_renewed_as_a_24_hour_one(
    live: Simulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A mint answering an expirationTime of 10**400 ms raised OverflowError in the renewal task;
    the token is believed for Binance's longest validity (24 h) at most, and events flow."""
    notes: list[StreamEvent] = []
    async with margin(live) as uds:
        real = uds.create_listen_token

        async def absurd(symbol: str | None = None, *, validity: float | None = None) -> Any:
            answer = await real(symbol)
            answer.expiration_time = 10**400
            return answer

        monkeypatch.setattr(uds, "create_listen_token", absurd)
        record = lambda e: notes.append(e) if isinstance(e, StreamEvent) else None  # noqa: E731
        async with uds.events(on_event=record) as stream:
            await subscribed(live)
            live.push("margin", balance(7), TEST_API_KEY)
            (item,) = await take(stream, 1, timeout=15)
    assert item.event_time == 7  # type: ignore[union-attr]
    (subscribed_at,) = [n.at for n in notes if n.kind is StreamEventKind.SUBSCRIBED]
    expires_at = stream._core._token_expires_at
    assert expires_at is not None
    assert 23 * 3600 < expires_at - subscribed_at <= 24 * 3600


def raise_network() -> None:
    from binance_userstream import NetworkError

    raise NetworkError("POST /sapi/v1/userListenToken: ConnectError: refused")


# -- secrets -------------------------------------------------------------------------------------------


async def test_no_secret_reaches_any_log_at_debug_or_a_repr(
    live: Simulator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    tokens: list[str] = []
    async with margin(live) as uds:
        real = uds.create_listen_token

        async def keep(symbol: str | None = None, *, validity: float | None = None) -> Any:
            answer = await real(symbol, validity=validity)
            tokens.append(answer.token)
            return answer

        uds.create_listen_token = keep  # type: ignore[method-assign]
        async with uds.events(timing=FAST) as stream:
            await subscribed(live)
            live.push("margin", balance(1), TEST_API_KEY)
            await take(stream, 1)
            shown = repr(stream) + repr(uds) + repr(uds._credentials)
    async with spot(live) as uds, uds.events(timing=FAST) as stream:
        await subscribed(live)
        live.push("spot", balance(2), TEST_API_KEY)
        await take(stream, 1)
        shown += repr(stream) + repr(uds)
    text = "\n".join(r.getMessage() + repr(r.args) for r in caplog.records) + shown
    assert tokens
    for secret in (TEST_API_SECRET, TEST_API_KEY, *tokens):
        assert secret not in text
    assert json.dumps(TEST_API_SECRET)[1:-1] not in text


async def test_margin_has_no_listen_key_to_create_and_says_why_before_sending(live: Simulator) -> None:
    async with margin(live) as uds:
        with pytest.raises(ValueError, match="retired margin listenKeys") as caught:
            await uds.create()
    assert "userListenToken" in str(caught.value)
    assert live.request_count == 0


def test_a_subscription_frame_the_websocket_library_logs_cut_to_head_and_tail_is_withheld() -> None:
    """websockets logs a long frame as `head...tail`: the tail of a listenToken or signature has no
    key name left to scrub by, so the whole request is withheld."""
    from binance_userstream._secrets import StreamRedactingFilter

    tail = "jklmnopqrstuvwxyz0123456789"
    frame = f'TEXT \'{{"id":2,"method":"userDataStream.subscribe.list...{tail}"}}}}\' [160 bytes]'
    record = logging.LogRecord("websockets.client", logging.DEBUG, "", 0, "> %s", (frame,), None)
    StreamRedactingFilter().filter(record)
    assert tail not in record.getMessage()
    assert "withheld" in record.getMessage()


def test_a_request_to_send_keeps_its_credentials_out_of_its_repr() -> None:
    from binance_userstream.stream._wsapi import Subscriber

    send = Subscriber("listen_token", None).subscribe(0.0, token="secret-token-value")
    assert "secret-token-value" in send.text
    assert "secret-token-value" not in repr(send)
