"""The simulator serves Portfolio Margin Pro's stream: `/pm-classic/ws/<listenKey>` with a USD-M key.

Binance documents it on https://developers.binance.com/docs/derivatives/portfolio-margin-pro/portfolio-margin-pro-user-data-stream:
"The listenKey is generated using POST /fapi/v1/listenKey", the stream is
wss://fstream.binance.com/pm-classic/ws/<listenKey>. Its events (riskLevelChange,
PM_PRO_ACCOUNT_UPDATE) are not USD-M's, so the push API names it as a market of its own,
"portfolio_pro", whose connections are the ones on that route.
"""

from __future__ import annotations

import json

import pytest

from binance_userstream import VirtualClock
from binance_userstream.simulator import Simulator
from tests.test_simulator_streams import ORDER, closed, new_key, nothing_delivered, receive, stream

pytestmark = pytest.mark.anyio

STATUS = {"e": "PM_PRO_ACCOUNT_UPDATE", "E": 1, "u": "1.99999999", "eq": "30.23416728"}


async def test_portfolio_pro_delivers_on_pm_classic_with_a_usdm_key(sim: Simulator) -> None:
    key = new_key(sim, "usdm")
    async with stream(sim, f"/pm-classic/ws/{key}") as ws:
        assert sim.push("portfolio_pro", STATUS) == 1
        assert await receive(ws) == STATUS
    assert sim.deliveries[-1].market == "portfolio_pro"


async def test_a_usdm_event_does_not_reach_the_portfolio_pro_stream(sim: Simulator) -> None:
    key = new_key(sim, "usdm")
    async with stream(sim, f"/pm-classic/ws/{key}") as ws:
        assert sim.push("usdm", ORDER) == 0
        await nothing_delivered(sim, ws)


async def test_a_portfolio_pro_event_does_not_reach_the_usdm_stream_of_the_same_key(sim: Simulator) -> None:
    key = new_key(sim, "usdm")
    async with stream(sim, f"/private/ws?listenKey={key}") as ws:
        assert sim.push("portfolio_pro", STATUS) == 0
        await nothing_delivered(sim, ws)


@pytest.mark.parametrize("market", ["coinm", "portfolio"])
async def test_another_markets_key_on_pm_classic_is_accepted_and_gets_nothing(
    sim: Simulator, market: str
) -> None:
    key = new_key(sim, market)
    async with stream(sim, f"/pm-classic/ws/{key}") as ws:
        assert sim.push("portfolio_pro", STATUS) == 0
        assert sim.push(market, ORDER) == 0
        await nothing_delivered(sim, ws)


async def test_an_expired_usdm_key_ends_its_portfolio_pro_stream_with_listen_key_expired(
    sim: Simulator, vclock: VirtualClock
) -> None:
    key = new_key(sim, "usdm")
    async with stream(sim, f"/pm-classic/ws/{key}") as ws:
        vclock.advance(3600)
        sim.tick()
        event = await receive(ws)
        end = await closed(ws)
    assert isinstance(event, dict)
    assert (event["e"], event["listenKey"]) == ("listenKeyExpired", key)
    assert end.rcvd is not None
    assert (end.rcvd.code, end.rcvd.reason) == (1000, "listenKey expired")


async def test_listeners_counts_a_portfolio_pro_stream_on_its_usdm_key(sim: Simulator) -> None:
    key = new_key(sim, "usdm")
    async with stream(sim, f"/pm-classic/ws/{key}"):
        assert (sim.listeners("portfolio_pro"), sim.listeners("usdm")) == (1, 0)


def test_portfolio_pro_traffic_is_the_account_status_its_stream_carries(sim: Simulator) -> None:
    assert sim.traffic("portfolio_pro", balance="500.00000000") == [0]
    event = json.loads(sim.deliveries[-1].text)
    assert event["e"] == "PM_PRO_ACCOUNT_UPDATE"
    assert (event["eq"], event["im"], event["mm"], event["u"]) == (
        "500.00000000",
        "5.00000000",
        "2.50000000",
        "200.00000000",
    )


def test_portfolio_pro_traffic_refuses_an_order_before_sending(sim: Simulator) -> None:
    with pytest.raises(ValueError, match="asset and balance only"):
        sim.traffic("portfolio_pro", symbol="BTCUSDT")
    assert sim.deliveries == []
