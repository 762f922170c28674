"""Portfolio Margin and Portfolio Margin Pro events decode to their own typed models.

Portfolio Margin's stream (market="portfolio") carries its futures side's events (the shared
ORDER_TRADE_UPDATE, ACCOUNT_UPDATE, ACCOUNT_CONFIG_UPDATE, with `fs`), events of its own
(CONDITIONAL_ORDER_TRADE_UPDATE, liabilityChange, openOrderLoss, riskLevelChange) and three of
spot's names in its own shapes (executionReport without `M`; outboundAccountPosition and
balanceUpdate with `U`), plus ALGO_UPDATE with `ao` where USD-M's has `o`. Portfolio Margin Pro's
(market="portfolio_pro", a USD-M listenKey on /pm-classic/ws/) carries riskLevelChange and
PM_PRO_ACCOUNT_UPDATE. The samples under tests/data/events/portfolio*/ are the docs pages' (the
README there names each page); each decodes with its market's table, every field read back.
"""

from __future__ import annotations

import copy
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from binance_userstream_client.api.usdm import (
    close_usdm_listen_key,
    create_usdm_listen_key,
    keepalive_usdm_listen_key,
)
from binance_userstream_client.models import (
    AccountConfigUpdate,
    AccountUpdate,
    ConditionalOrderTradeUpdate,
    LiabilityChange,
    ListenKey,
    ListenKeyExpired,
    OpenOrderLoss,
    OrderTradeUpdate,
    PortfolioAlgoUpdate,
    PortfolioBalanceUpdate,
    PortfolioExecutionReport,
    PortfolioOutboundAccountPosition,
    PortfolioProAccountUpdate,
    PortfolioRiskLevelChange,
    UnknownEvent,
)
from binance_userstream_client.types import UNSET

from binance_userstream import MARKETS, AsyncUserDataStream
from binance_userstream.simulator import Simulator
from binance_userstream.stream._decode import decode_payload
from tests._samples import DATA, load, sample_id
from tests._stream_helpers import FAST, take
from tests.conftest import API_KEY
from tests.test_events_spec import SCHEMAS, walk
from tests.test_stream_simulator import _connected

PORTFOLIO_MARKETS = ("portfolio", "portfolio_pro")
SAMPLES = [(market, path) for market in PORTFOLIO_MARKETS for path in sorted((DATA / market).glob("*.json"))]
#: What each event of each stream decodes to: the spec's model for that market.
MODELS: dict[str, dict[str, type[Any]]] = {
    "portfolio": {
        "ORDER_TRADE_UPDATE": OrderTradeUpdate,
        "ACCOUNT_UPDATE": AccountUpdate,
        "ACCOUNT_CONFIG_UPDATE": AccountConfigUpdate,
        "CONDITIONAL_ORDER_TRADE_UPDATE": ConditionalOrderTradeUpdate,
        "ALGO_UPDATE": PortfolioAlgoUpdate,
        "executionReport": PortfolioExecutionReport,
        "outboundAccountPosition": PortfolioOutboundAccountPosition,
        "balanceUpdate": PortfolioBalanceUpdate,
        "liabilityChange": LiabilityChange,
        "openOrderLoss": OpenOrderLoss,
        "riskLevelChange": PortfolioRiskLevelChange,
        "listenKeyExpired": ListenKeyExpired,
    },
    "portfolio_pro": {
        "riskLevelChange": PortfolioRiskLevelChange,
        "PM_PRO_ACCOUNT_UPDATE": PortfolioProAccountUpdate,
        "listenKeyExpired": ListenKeyExpired,
    },
}


# -- the market table ---------------------------------------------------------------------------------


@pytest.mark.parametrize("market", PORTFOLIO_MARKETS)
def test_each_portfolio_stream_decodes_each_event_it_sends_with_its_markets_model(market: str) -> None:
    assert {name: model for name, model in MARKETS[market].event_types.items()} == MODELS[market]


def test_portfolio_margin_pro_keeps_a_usdm_listen_key_and_connects_to_pm_classic() -> None:
    row = MARKETS["portfolio_pro"]
    assert (row.create, row.keepalive, row.close) == (
        create_usdm_listen_key,
        keepalive_usdm_listen_key,
        close_usdm_listen_key,
    )
    assert row.keepalive_answer is ListenKey
    assert row.hosts == {"production": "https://fapi.binance.com"}
    assert row.stream_hosts == {"production": "wss://fstream.binance.com"}
    assert row.stream_target("KEY") == "/pm-classic/ws/KEY"


# -- the documented samples ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("market", "path"), SAMPLES, ids=lambda item: sample_id(item) if isinstance(item, Path) else str(item)
)
def test_each_documented_sample_decodes_typed_with_every_field_read_back(market: str, path: Path) -> None:
    payload = load(path)
    event = decode_payload(copy.deepcopy(payload), MARKETS[market].event_types)
    assert type(event) is MODELS[market][payload["e"]]
    fields = walk(event, SCHEMAS[type(event).__name__], payload)  # no field left untyped, at any depth
    for name, value, wire in fields:
        if not isinstance(wire, dict | list):
            assert (value, type(value)) == (wire, type(wire)), name
    assert event.to_dict() == payload


def test_portfolio_margins_execution_report_without_m_decodes_as_its_own_not_spots() -> None:
    payload = load(DATA / "portfolio/executionReport.json")
    assert isinstance(decode_payload(payload, MARKETS["spot"].event_types), UnknownEvent)  # spot needs M
    assert isinstance(decode_payload(payload, MARKETS["portfolio"].event_types), PortfolioExecutionReport)


def test_each_markets_algo_update_is_never_typed_with_the_others_model() -> None:
    usdm, portfolio = load(DATA / "usdm/ALGO_UPDATE.json"), load(DATA / "portfolio/ALGO_UPDATE.json")
    assert isinstance(decode_payload(portfolio, MARKETS["usdm"].event_types), UnknownEvent)
    assert isinstance(decode_payload(usdm, MARKETS["portfolio"].event_types), UnknownEvent)


def test_portfolio_margin_pros_undocumented_uni_mmr_drop_arrives_whole_as_an_unknown_event() -> None:
    payload = {"e": "uniMMRDrop", "E": 1761700000000, "u": "1.05", "r": "1.20"}
    event = decode_payload(copy.deepcopy(payload), MARKETS["portfolio_pro"].event_types)
    assert isinstance(event, UnknownEvent)
    assert event.to_dict() == payload


# -- through a real stream ------------------------------------------------------------------------------


@asynccontextmanager
async def _events(sim: Simulator, market: str) -> AsyncIterator[Any]:
    """`events()` of `market` against the simulator, once its stream is connected."""
    client = AsyncUserDataStream(
        API_KEY, sim.url, market=market, stream_url=sim.url.replace("http://", "ws://")
    )
    async with client, client.events(timing=FAST) as stream:
        await _connected(sim, market)
        yield stream


@pytest.mark.anyio
@pytest.mark.parametrize("market", PORTFOLIO_MARKETS)
async def test_every_documented_sample_pushed_on_the_stream_arrives_typed(
    market: str, sim: Simulator
) -> None:
    payloads = [load(path) for m, path in SAMPLES if m == market and load(path)["e"] != "listenKeyExpired"]
    async with _events(sim, market) as stream:
        assert sim.push_many(market, payloads) == [1] * len(payloads)
        items = await take(stream, len(payloads))
    assert [type(item) for item in items] == [MODELS[market][p["e"]] for p in payloads]
    assert [item.to_dict() for item in items] == payloads


@pytest.mark.anyio
async def test_portfolio_traffic_arrives_typed_in_portfolio_margins_shapes(sim: Simulator) -> None:
    async with _events(sim, "portfolio") as stream:
        sent = sim.traffic("portfolio")
        items = await take(stream, len(sent))
    assert [type(item) for item in items] == [
        OrderTradeUpdate,
        OrderTradeUpdate,
        AccountUpdate,
        OrderTradeUpdate,
        AccountUpdate,
    ]
    for item, delivery in zip(items, sim.deliveries, strict=True):
        payload = json.loads(delivery.text)
        walk(item, SCHEMAS[type(item).__name__], payload)  # every field typed
        assert (item.business_unit, item.account_alias) == ("UM", "")
    orders = [item.order for item in items if isinstance(item, OrderTradeUpdate)]
    assert all(order.working_type is UNSET and order.original_order_type is UNSET for order in orders)
    positions = [p for item in items if isinstance(item, AccountUpdate) for p in item.update_data.positions]
    assert positions
    assert all(position.margin_type is UNSET for position in positions)


@pytest.mark.anyio
async def test_portfolio_pro_traffic_arrives_as_its_typed_account_status(sim: Simulator) -> None:
    async with _events(sim, "portfolio_pro") as stream:
        assert sim.traffic("portfolio_pro") == [1]
        (item,) = await take(stream, 1)
    assert isinstance(item, PortfolioProAccountUpdate)
    assert item.account_equity == "10000.00000000"
    assert item.to_dict() == json.loads(sim.deliveries[-1].text)
