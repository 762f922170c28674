"""The clock offset a server's time teaches is bounded: an hour, beyond which it is refused, never shared.

Binance (https://developers.binance.com/docs/binance-spot-api-docs/rest-api/endpoint-security,
"Timing security"): a SIGNED request is taken when its `timestamp` is less than `recvWindow` (at most
60 000 ms) behind the server's time and at most 1 s ahead; -1021 otherwise. The offset only has
to make up for this machine's clock error; one client's credentials hold one offset for REST and
the WebSocket API alike, so an absurd answer from either would misdate every signed request.
"""

from __future__ import annotations

import logging
import time

import pytest

from binance_userstream import BackoffGate, TimestampError, UserDataStream, VirtualClock
from binance_userstream._signing import MAX_CLOCK_OFFSET_MS, ClockOffsetError, Credentials, load_signer
from tests._scripted import Reply, ScriptedServer
from tests.conftest import API_KEY

SECRET = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"
TEN_YEARS = 10 * 365 * 86_400


def credentials() -> Credentials:
    return Credentials(API_KEY, load_signer(SECRET, environ={}))


@pytest.mark.parametrize("offset", [MAX_CLOCK_OFFSET_MS, -MAX_CLOCK_OFFSET_MS])
def test_an_offset_of_up_to_an_hour_is_learned(offset: int) -> None:
    learner = credentials()
    assert learner.resync(1_000_000_000 + offset, 1_000_000_000, 1_000_000_000) == offset
    assert learner.offset_ms == offset


@pytest.mark.parametrize(
    "server_time",
    [1_000_000_000 + MAX_CLOCK_OFFSET_MS + 1, 1_000_000_000 - MAX_CLOCK_OFFSET_MS - 1, 10**400, -(10**400)],
    ids=["an-hour-and-a-ms-ahead", "an-hour-and-a-ms-behind", "beyond-any-float", "beyond-any-float-behind"],
)
def test_an_offset_beyond_an_hour_is_refused_and_the_one_in_use_is_kept(server_time: int) -> None:
    learner = credentials()
    learner.offset_ms = 250.0
    with pytest.raises(ClockOffsetError, match="more than an hour"):
        learner.resync(server_time, 1_000_000_000, 1_000_000_000)
    assert learner.offset_ms == 250.0


@pytest.mark.usefixtures("listen_token_declared_signed")
def test_a_date_ten_years_off_after_a_minus_1021_is_not_learned_and_the_call_fails_with_its_timestamp_error(
    server: ScriptedServer, gate: BackoffGate, caplog: pytest.LogCaptureFixture
) -> None:
    """A -1021 whose `Date` (the server's time) is ten years behind this client's clock: the REST
    layer does not take the offset nor resend; the call raises the -1021 as a TimestampError."""
    ahead = VirtualClock()
    ahead.advance(TEN_YEARS)
    server.script(
        Reply(status=400, body={"code": -1021, "msg": "Timestamp for this request was 1000ms ahead"}),
        Reply(body={"token": "T" * 32, "expirationTime": int(time.time() * 1000) + 86_400_000}),
    )
    with UserDataStream(API_KEY, server.url, gate=gate, api_secret=SECRET) as uds:
        uds._credentials.clock = ahead
        with caplog.at_level(logging.WARNING, logger="binance_userstream"), pytest.raises(TimestampError):
            uds.create_listen_token()
        offset = uds._credentials.offset_ms
    assert offset == 0.0
    assert len(server.requests) == 1
    assert any("more than an hour behind" in r.getMessage() for r in caplog.records)
