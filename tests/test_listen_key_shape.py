"""A listenKey is letters and digits, as Binance issues them, or it is refused before it reaches a URL.

Binance's listenKeys are 60 letters and digits (`pqia91ma19a5s61cv6a81va65sdf19v8a65a1a5s61cv6a81va65sdf
19v8a65a1`, 64, in older documentation; https://developers.binance.com/docs/derivatives/usds-margined-
futures/user-data-streams/Start-User-Data-Stream). A key stands in the stream URL (`?listenKey=<key>` or
`/ws/<key>`), where `&events=...` would rewrite USD-M's events allow-list, `../` the path and `#` cut the
rest off. So a key of another shape is a MalformedAnswerError when Binance's create answers it, a
ValueError before anything is sent when the user passes it, and what goes into a URL is percent-encoded.
"""

from __future__ import annotations

import pytest

from binance_userstream import MARKETS, UserDataStream
from binance_userstream.errors import MalformedAnswerError
from binance_userstream.simulator import Simulator
from tests._both import Facade
from tests._scripted import LISTEN_KEY, Reply, ScriptedServer
from tests.conftest import API_KEY

#: Keys that would change the stream URL they stand in.
HOSTILE = [
    "K&events=listenKeyExpired&listenKey=OTHER",
    "../../x",
    "K#fragment",
    "K?x=1",
    "K%26events",
    "K;x",
    "K+x",
]


@pytest.mark.parametrize("bad", HOSTILE)
def test_a_created_key_that_is_not_letters_and_digits_is_a_malformed_answer(
    facade: Facade, server: ScriptedServer, bad: str
) -> None:
    server.script(Reply(body={"listenKey": bad}))
    with pytest.raises(MalformedAnswerError, match="letters and digits") as raised:
        facade("create")
    assert bad not in str(raised.value)


@pytest.mark.parametrize("operation", ["keepalive", "close"])
@pytest.mark.parametrize("bad", HOSTILE)
def test_a_key_the_user_gives_that_is_not_letters_and_digits_is_refused_before_anything_is_sent(
    facade: Facade, server: ScriptedServer, operation: str, bad: str
) -> None:
    with pytest.raises(ValueError, match="letters and digits") as raised:
        facade(operation, bad)
    assert bad not in str(raised.value)
    assert server.requests == []


@pytest.mark.parametrize("bad", HOSTILE)
def test_a_session_refuses_to_adopt_a_key_that_is_not_letters_and_digits(
    server: ScriptedServer, bad: str
) -> None:
    with UserDataStream(API_KEY, server.url, market="usdm") as uds:
        with pytest.raises(ValueError, match="letters and digits"):
            uds.session(listen_key=bad)
    assert server.requests == []


#: The create answer's and USD-M's keepalive answer's examples in Binance's documentation.
DOCUMENTED = [LISTEN_KEY, "3HBntNTepshgEdjIwSUIBgB9keLyOCg5qv3n6bYAtktG8ejcaW5HXz9Vx1JgIieg"]


@pytest.mark.parametrize("key", DOCUMENTED)
def test_binances_documented_keys_are_accepted(facade: Facade, server: ScriptedServer, key: str) -> None:
    server.script(Reply(body={"listenKey": key}))
    assert facade("create") == key


@pytest.mark.parametrize("market", ["usdm", "coinm", "portfolio", "options"])
def test_the_keys_the_simulator_issues_are_accepted(sim: Simulator, market: str) -> None:
    with UserDataStream(API_KEY, sim.url, market=market) as uds:
        key = uds.create()
        uds.keepalive(key)
    assert len(key) == 60


def test_a_key_put_in_the_usdm_query_is_percent_encoded_whole() -> None:
    target = MARKETS["usdm"].stream_target("K&events=listenKeyExpired&listenKey=OTHER")
    assert target is not None
    path, _, query = target.partition("?")
    assert path == "/private/ws"
    params = dict(part.split("=", 1) for part in query.split("&"))
    assert params["listenKey"] == "K%26events%3DlistenKeyExpired%26listenKey%3DOTHER"
    assert "listenKeyExpired" in params["events"].split("/")
    assert "ORDER_TRADE_UPDATE" in params["events"].split("/")


@pytest.mark.parametrize("market", ["coinm", "portfolio", "options"])
@pytest.mark.parametrize("bad", ["../../x", "K#fragment", "K?x=1"])
def test_a_key_put_in_a_path_stays_one_segment(market: str, bad: str) -> None:
    target = MARKETS[market].stream_target(bad)
    assert target is not None
    head, _, segment = target.rpartition("/")
    assert f"{head}/KEY" == MARKETS[market].stream_target("KEY")
    assert not {"/", "#", "?"} & set(segment)
