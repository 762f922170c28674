"""`market=`: every live market's lifecycle through the facade, sync and async, on the simulator.

Binance's derivatives "User Data Streams" pages (USD-M, COIN-M, Portfolio Margin, Options):
POST/PUT/DELETE `/<api>/v1/listenKey`; keepalive and close take no parameter (the API key implies
the account's one key); USD-M's keepalive answers the extended key; -1125 when there is none.
COIN-M's keepalive answers the extended key too, as Binance's COIN-M SDK models it since its
2026-01-13 release (binance-sdk-derivatives-trading-coin-futures 14.1.0,
`KeepaliveUserDataStreamResponse.listen_key`), or `{}` as its older pages showed. Options' create
answers `expiration` (ms) beside the key (https://developers.binance.com/en/docs/catalog/
core-trading-derivatives-trading-options/api/rest-api/user-data-streams).
"""

from __future__ import annotations

import pytest
from binance_userstream_client.api.options import create_options_listen_key
from binance_userstream_client.models import ListenKey

from binance_userstream import (
    MARKETS,
    BackoffGate,
    EndpointRetiredError,
    EventKind,
    ListenKeyNotFoundError,
    MalformedAnswerError,
    SteppedClock,
    UserDataStream,
    VirtualClock,
)
from binance_userstream.simulator import Simulator
from tests._both import Facade
from tests._events import Recorder
from tests._scripted import LISTEN_KEY, Reply, ScriptedServer
from tests.conftest import API_KEY, FAST_RETRY

LIVE = [name for name, market in MARKETS.items() if market.retired is None]
PATHS = {
    "usdm": "/fapi/v1/listenKey",
    "coinm": "/dapi/v1/listenKey",
    "portfolio": "/papi/v1/listenKey",
    "portfolio_pro": "/fapi/v1/listenKey",  # Portfolio Margin Pro's key is USD-M's
    "options": "/eapi/v1/listenKey",
    "spot": "/api/v3/userDataStream",
}


@pytest.fixture(params=["sync", "async"])
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def test_the_live_markets_are_the_four_derivatives_families_and_portfolio_margin_pro() -> None:
    assert sorted(LIVE) == ["coinm", "options", "portfolio", "portfolio_pro", "usdm"]
    assert MARKETS["spot"].retired is not None


@pytest.mark.parametrize("market", LIVE)
def test_each_market_runs_the_whole_lifecycle(market: str, mode: str, sim: Simulator) -> None:
    uds = Facade(mode, api_key=API_KEY, base_url=sim.url, market=market, retry=FAST_RETRY)
    key = uds("create")
    assert sim.exchange.is_live(key)
    assert uds("create") == key  # one active key per account and market: the same one again
    assert uds("keepalive", key) is None
    assert uds("close", key) is None
    assert not sim.exchange.is_live(key)
    with pytest.raises(ListenKeyNotFoundError):
        uds("keepalive", key)


@pytest.mark.parametrize("market", LIVE)
def test_each_market_sends_its_own_path(market: str, mode: str, server: ScriptedServer) -> None:
    keepalive_answer = {"listenKey": LISTEN_KEY} if PATHS[market] == PATHS["usdm"] else {}
    server.script(Reply(body={"listenKey": LISTEN_KEY}), Reply(body=keepalive_answer), Reply(body={}))
    uds = Facade(mode, api_key=API_KEY, base_url=server.url, market=market)
    key = uds("create")
    uds("keepalive", key)
    uds("close", key)
    assert [(r.method, r.path) for r in server.requests] == [
        ("POST", PATHS[market]),
        ("PUT", PATHS[market]),
        ("DELETE", PATHS[market]),
    ]


@pytest.mark.parametrize("market", LIVE)
def test_derivatives_keepalive_and_close_carry_no_listen_key(
    market: str, mode: str, server: ScriptedServer
) -> None:
    """The key is implied by the API key; sending it would put a credential in a URL for nothing."""
    keepalive_answer = {"listenKey": LISTEN_KEY} if PATHS[market] == PATHS["usdm"] else {}
    server.script(Reply(body=keepalive_answer), Reply(body={}))
    uds = Facade(mode, api_key=API_KEY, base_url=server.url, market=market)
    uds("keepalive", LISTEN_KEY)
    uds("close", LISTEN_KEY)
    for request in server.requests:
        assert request.query == {}
        assert LISTEN_KEY not in request.path + request.body.decode()


def test_spot_keepalive_and_close_carry_the_listen_key_as_the_seed_says(
    mode: str, server: ScriptedServer
) -> None:
    server.script(Reply(body={}), Reply(body={}))
    uds = Facade(mode, api_key=API_KEY, base_url=server.url, market="spot")
    uds("keepalive", LISTEN_KEY)
    uds("close", LISTEN_KEY)
    keepalive, close = server.requests
    assert keepalive.form == {"listenKey": [LISTEN_KEY]}
    assert close.query == {"listenKey": [LISTEN_KEY]}


@pytest.mark.parametrize("market", ["usdm", "coinm"])
def test_a_keepalive_that_extended_another_key_means_ours_is_gone(
    market: str, mode: str, server: ScriptedServer
) -> None:
    server.script(Reply(body={"listenKey": "another" + LISTEN_KEY[7:]}))
    uds = Facade(mode, api_key=API_KEY, base_url=server.url, market=market)
    with pytest.raises(ListenKeyNotFoundError, match="another listenKey") as caught:
        uds("keepalive", LISTEN_KEY)
    assert LISTEN_KEY not in str(caught.value)


@pytest.mark.parametrize("answer", [{"listenKey": LISTEN_KEY}, {}], ids=["echo", "empty"])
def test_a_coinm_keepalive_answering_our_key_or_an_empty_object_extends_it(
    answer: dict[str, str], mode: str, server: ScriptedServer
) -> None:
    server.script(Reply(body=answer))
    assert Facade(mode, api_key=API_KEY, base_url=server.url, market="coinm")("keepalive", LISTEN_KEY) is None


def test_a_coinm_keepalive_echo_that_is_no_listen_key_is_a_malformed_answer(server: ScriptedServer) -> None:
    server.script(Reply(body={"listenKey": 42}))
    with pytest.raises(MalformedAnswerError):
        Facade("sync", api_key=API_KEY, base_url=server.url, market="coinm")("keepalive", LISTEN_KEY)


@pytest.mark.parametrize("echoes", [True, False], ids=["echo", "empty"])
def test_a_coinm_session_keeps_its_key_alive_on_the_simulator_whichever_the_keepalive_answers(
    echoes: bool, vclock: VirtualClock
) -> None:
    """Three keepalives over two virtual hours, the key never replaced."""
    recorder = Recorder()
    with (
        Simulator(clock=vclock, coinm_keepalive_echoes_key=echoes) as sim,
        UserDataStream(API_KEY, sim.url, market="coinm", retry=FAST_RETRY) as uds,
        uds.session(on_event=recorder, clock=vclock, interval=1800) as session,
    ):
        key = session.listen_key
        while vclock.now() < 2 * 3600:
            session.wait(timeout=0.01)
        assert session.listen_key == key
    assert recorder.kinds().count(EventKind.KEPT_ALIVE) >= 3
    assert EventKind.REPLACED not in recorder.kinds()


def test_a_coinm_session_whose_key_another_program_replaced_takes_the_new_key_at_the_next_keepalive() -> None:
    """The keepalive (no parameter) extends the account's new key and echoes it: the key the session
    held is gone, so it says so and takes the account's key, instead of holding a dead one. On a
    SteppedClock, so that the other program acts before the keepalive, always."""
    clock, recorder = SteppedClock(), Recorder()
    with (
        Simulator(clock=clock) as sim,
        UserDataStream(API_KEY, sim.url, market="coinm", retry=FAST_RETRY) as uds,
        UserDataStream(API_KEY, sim.url, market="coinm") as other_program,
        uds.session(on_event=recorder, clock=clock, interval=1800) as session,
    ):
        old = session.listen_key
        assert old is not None
        other_program.close(old)
        new = other_program.create()
        clock.advance(1800)
        recorder.wait_for_count(EventKind.REPLACED, 1)
        assert session.listen_key == new
    assert new != old
    (lost,) = recorder.of(EventKind.KEY_LOST)
    assert "another listenKey" in str(lost.error)


def test_options_create_answers_when_the_key_expires_in_the_typed_model(
    sim: Simulator, vclock: VirtualClock
) -> None:
    with UserDataStream(API_KEY, sim.url, market="options") as uds:
        answer = uds.call(create_options_listen_key.sync_detailed, ListenKey)
    assert answer.expiration == int((vclock.wall() + 3600) * 1000)
    assert sim.exchange.is_live(answer.listen_key)


@pytest.mark.parametrize("expiration", ["1758792204196", 1.5, None])
def test_an_options_expiration_that_is_no_integer_is_a_malformed_answer(
    expiration: object, server: ScriptedServer
) -> None:
    server.script(Reply(body={"listenKey": LISTEN_KEY, "expiration": expiration}))
    with pytest.raises(MalformedAnswerError):
        Facade("sync", api_key=API_KEY, base_url=server.url, market="options")("create")


@pytest.mark.parametrize("market", list(MARKETS))
def test_no_base_url_means_the_market_production_host(market: str) -> None:
    assert UserDataStream(API_KEY, market=market).base_url == MARKETS[market].hosts["production"]


@pytest.mark.parametrize(
    ("market", "name", "url"),
    [
        ("usdm", "testnet", "https://testnet.binancefuture.com"),
        ("usdm", "demo", "https://demo-fapi.binance.com"),
        ("coinm", "testnet", "https://testnet.binancefuture.com"),
        ("coinm", "production", "https://dapi.binance.com"),
        ("portfolio", "production", "https://papi.binance.com"),
        ("options", "production", "https://eapi.binance.com"),
        ("spot", "api3", "https://api3.binance.com"),
    ],
)
def test_named_hosts_are_the_market_own(market: str, name: str, url: str) -> None:
    assert UserDataStream(API_KEY, name, market=market).base_url == url


def test_a_host_name_the_market_lacks_is_refused_with_the_names_it_has() -> None:
    """Portfolio Margin has no testnet (Binance's connector removed its constants on 2026-05-29)."""
    with pytest.raises(ValueError, match="'production'") as caught:
        UserDataStream(API_KEY, "testnet", market="portfolio")
    assert "portfolio" in str(caught.value)


def test_an_unknown_market_is_refused_with_the_list_of_markets() -> None:
    with pytest.raises(ValueError, match="'usdm'"):
        UserDataStream(API_KEY, market="futures")


def test_the_repr_names_the_market_and_not_the_key() -> None:
    text = repr(UserDataStream(API_KEY, market="coinm"))
    assert "coinm" in text
    assert API_KEY not in text


def test_the_retirement_error_names_the_live_markets(mode: str) -> None:
    with Simulator(retired=True) as sim:
        uds = Facade(mode, api_key=API_KEY, base_url=sim.url, market="spot")
        with pytest.raises(EndpointRetiredError) as caught:
            uds("create")
    message = str(caught.value)
    for market in LIVE:
        assert f'market="{market}"' in message
    assert "userDataStream.subscribe.signature" in message


@pytest.mark.parametrize("market", LIVE)
def test_the_retired_simulator_still_serves_every_derivatives_market(market: str, mode: str) -> None:
    with Simulator(retired=True) as sim:
        uds = Facade(mode, api_key=API_KEY, base_url=sim.url, market=market)
        key = uds("create")
        uds("keepalive", key)


@pytest.mark.parametrize("market", LIVE)
def test_a_session_keeps_each_market_key_alive_for_hours(
    market: str, sim: Simulator, vclock: VirtualClock, gate: BackoffGate
) -> None:
    rec = Recorder()
    with UserDataStream(API_KEY, sim.url, market=market, retry=FAST_RETRY, gate=gate) as uds:
        with uds.session(on_event=rec, clock=vclock) as session:
            rec.wait_for(lambda events: events[-1].at >= 4 * 3600)
            key = session.listen_key
            assert key is not None
            assert sim.exchange.is_live(key)
    assert len(rec.of(EventKind.KEPT_ALIVE)) >= 7
    assert EventKind.KEY_LOST not in rec.kinds()
