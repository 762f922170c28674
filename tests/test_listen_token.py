"""Margin's listenToken is minted the way Binance documents it: USER_STREAM, the API key alone.

Binance's page titles it "Create Margin Account listenToken (USER_STREAM)" and lists `symbol`,
`isIsolated` and `validity` as its only parameters, no `timestamp` nor `signature`
(https://developers.binance.com/docs/margin_trading/trade-data-stream, Listen-Token-Websocket-API).
So the client sends it unsigned, a margin stream needs no secret, and the simulator mints for an
unsigned request with a valid API key (ccxt's margin flow) as for a signed one (python-binance's).
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from binance_userstream_client.models import BalanceUpdate, ListenToken
from binance_userstream_client.security import OPERATION_SECURITY, SIGNED_OPERATIONS

from binance_userstream import AsyncUserDataStream, BackoffGate, StreamTiming
from binance_userstream.simulator import TEST_API_KEY, Simulator
from tests._both import Facade
from tests._package_operations import package_operations
from tests._scripted import Reply, ScriptedServer
from tests.conftest import API_KEY

SECRET = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"
TOKEN = "6xXxePXwZRjVSHKhzUCCGnmN3fkvMTXru+pYJS8RwijXk9Vcyr3rkwfVOTcP2OkONqciYA"
TOKEN_REPLY = Reply(body={"token": TOKEN, "expirationTime": 1758792204196})
PATH = "/sapi/v1/userListenToken"
FAST = StreamTiming(ping_interval=20, overlap=0.2, first_retry=0.05, max_retry=0.2)


@pytest.fixture(autouse=True)
def _no_signing_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("BINANCE_API_SECRET", "BINANCE_PRIVATE_KEY_FILE", "BINANCE_PRIVATE_KEY_PASSPHRASE"):
        monkeypatch.delenv(name, raising=False)


def test_the_spec_declares_the_listen_token_user_stream_and_only_the_account_reads_signed() -> None:
    """An operation a user adds (the extending guide) may be SIGNED; of the package's own, only the
    account mirror's REST reads (account, positions, open orders, trades) are: its stream's are not."""
    assert OPERATION_SECURITY["create_margin_listen_token"] == (("ApiKeyAuth",),)
    signed = SIGNED_OPERATIONS & package_operations()
    assert signed
    assert all(name.startswith("get_") and not name.endswith("_server_time") for name in signed)


@pytest.mark.parametrize("secret", [None, SECRET], ids=["no-secret", "with-a-secret"])
@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_listen_token_request_carries_the_api_key_and_no_timestamp_nor_signature(
    mode: str, secret: str | None, server: ScriptedServer, gate: BackoffGate
) -> None:
    """Whether or not the client holds a secret: the operation is not SIGNED."""
    server.script(TOKEN_REPLY)
    facade = Facade(mode, api_key=API_KEY, base_url=server.url, gate=gate, api_secret=secret)
    answer = facade("create_listen_token")
    assert isinstance(answer, ListenToken)
    assert answer.token == TOKEN
    (seen,) = server.requests
    assert (seen.method, seen.path) == ("POST", PATH)
    assert seen.headers["x-mbx-apikey"] == API_KEY
    assert seen.raw_query == ""
    assert seen.body == b""


def test_an_isolated_token_sends_its_parameters_only(server: ScriptedServer, gate: BackoffGate) -> None:
    server.script(TOKEN_REPLY)
    Facade("sync", api_key=API_KEY, base_url=server.url, gate=gate)("create_listen_token", "BNBUSDT")
    (seen,) = server.requests
    assert seen.raw_query == "symbol=BNBUSDT&isIsolated=true"


def test_the_simulator_mints_for_an_unsigned_request_with_a_valid_api_key(vclock: Any) -> None:
    """ccxt's margin flow sends the API key alone; the token it gets subscribes on the WebSocket API."""
    with Simulator(clock=vclock, api_keys=[TEST_API_KEY]) as sim:
        answer = httpx.post(sim.url + PATH, headers={"X-MBX-APIKEY": TEST_API_KEY})
        isolated = httpx.post(
            sim.url + PATH + "?symbol=BTCUSDT&isIsolated=true", headers={"X-MBX-APIKEY": TEST_API_KEY}
        )
    assert answer.status_code == 200, answer.text
    assert set(answer.json()) == {"token", "expirationTime"}
    assert isolated.status_code == 200, isolated.text


@pytest.mark.parametrize(
    ("api_key", "answer"),
    [(None, (401, -2014)), ("Unknown" + "k" * 57, (401, -2015))],
    ids=["none", "unknown"],
)
def test_the_simulator_refuses_an_unsigned_mint_without_a_valid_api_key(
    vclock: Any, api_key: str | None, answer: tuple[int, int]
) -> None:
    headers = {} if api_key is None else {"X-MBX-APIKEY": api_key}
    with Simulator(clock=vclock, api_keys=[TEST_API_KEY]) as sim:
        response = httpx.post(sim.url + PATH, headers=headers)
    assert (response.status_code, response.json()["code"]) == answer


def test_the_facade_mints_from_the_simulator_without_a_secret(sim: Simulator) -> None:
    token = Facade("sync", api_key=TEST_API_KEY, base_url=sim.url)("create_listen_token")
    assert isinstance(token, ListenToken)
    assert sim.exchange.tokens.get(token.token) is not None


@pytest.mark.anyio
async def test_margin_events_arrive_with_no_secret_given() -> None:
    """Before, `events()` refused market="margin" without api_secret= or private_key=."""
    with Simulator() as sim:
        stream_url = sim.url.replace("http://", "ws://")
        uds = AsyncUserDataStream(TEST_API_KEY, sim.url, market="margin", stream_url=stream_url)
        async with uds, uds.events(timing=FAST) as stream:
            async with asyncio.timeout(10):
                while sim.subscriptions() == 0:
                    await asyncio.sleep(0.01)
                sim.push(
                    "margin", {"e": "balanceUpdate", "E": 1, "a": "BTC", "d": "0.1", "T": 1}, TEST_API_KEY
                )
                item = await anext(aiter(stream))
    assert isinstance(item, BalanceUpdate)
    assert ("POST", PATH) in sim.requests


@pytest.mark.parametrize(
    ("query", "answer"),
    [("colour=blue", (400, -1104)), ("symbol=&isIsolated=false", (400, -1105))],
    ids=["unknown-parameter", "empty-symbol"],
)
def test_the_simulator_refuses_a_parameter_the_mint_does_not_read_and_an_empty_symbol(
    sim: Simulator, query: str, answer: tuple[int, int]
) -> None:
    """errors.md: -1104 "Not all sent parameters were read", -1105 "Parameter '%s' was empty."."""
    response = httpx.post(f"{sim.url}{PATH}?{query}", headers={"X-MBX-APIKEY": TEST_API_KEY})
    assert (response.status_code, response.json()["code"]) == answer
