"""One wire name, a shape per market: each market's stream decodes with its own table of models.

Binance reuses wire names across markets with other shapes: Options' `ORDER_TRADE_UPDATE` carries a
list of orders and no `sp`, `ps`, `wt`, `cp`, and its `ACCOUNT_UPDATE` is flat, not the futures `a`
object (https://developers.binance.com/docs/derivatives/options-trading/user-data-streams). The spec
says which with `x-markets` on an event schema; the generated EVENT_TYPES keeps the shared shapes,
EVENT_TYPES_BY_MARKET the market-specific ones, and `Market.event_types` resolves a row's events.
"""

from __future__ import annotations

import asyncio
import copy
import importlib
import importlib.util
import json
import re
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import attrs
import pytest
import yaml
from binance_userstream_client import models
from binance_userstream_client.models import (
    EVENT_TYPES,
    EVENT_TYPES_BY_MARKET,
    AccountUpdate,
    ListenKeyExpired,
    OptionsAccountUpdate,
    OptionsBalancePositionUpdate,
    OptionsGreekUpdate,
    OptionsOrderTradeUpdate,
    OptionsRiskLevelChange,
    OrderTradeUpdate,
    UnknownEvent,
)

from binance_userstream import AsyncUserDataStream
from binance_userstream._cli import _parser
from binance_userstream._markets import MARKETS
from binance_userstream.simulator import Simulator
from binance_userstream.simulator._traffic import Traffic
from binance_userstream.stream._core import Connect, StreamCore, StreamTiming
from binance_userstream.stream._decode import decode, decode_payload
from tests._samples import DATA, load
from tests._scripted_ws import ScriptedStreamServer
from tests._stream_helpers import FAST, Seen, take
from tests.conftest import API_KEY, ROOT
from tests.test_cli import cli

SPEC = yaml.safe_load((ROOT / "spec" / "userdatastream.yaml").read_text())
#: scripts/generate.py as a module, for its spec check (it is a script, not a package module).
_GENERATE_SPEC = importlib.util.spec_from_file_location("_generate_script", ROOT / "scripts" / "generate.py")
assert _GENERATE_SPEC is not None
assert _GENERATE_SPEC.loader is not None
GENERATE = importlib.util.module_from_spec(_GENERATE_SPEC)
_GENERATE_SPEC.loader.exec_module(GENERATE)
ORDER = load(DATA / "usdm" / "ORDER_TRADE_UPDATE.json")
REPORT = load(DATA / "spot" / "executionReport.json")
OPTIONS_ORDER = load(DATA / "options" / "ORDER_TRADE_UPDATE.json")
OPTIONS_ACCOUNT = load(DATA / "options" / "ACCOUNT_UPDATE.json")
USDM_ACCOUNT = load(DATA / "usdm" / "ACCOUNT_UPDATE.json")


def _schema(wire: str, markets: list[str] | None = None) -> dict[str, Any]:
    """A minimal event schema for `wire`, on `markets` only when given."""
    schema: dict[str, Any] = {
        "type": "object",
        "x-event": wire,
        "description": "A made-up event.",
        "required": ["e", "E"],
        "properties": {
            "e": {"type": "string", "x-python-name": "event_type", "description": "Event type."},
            "E": {"type": "integer", "format": "int64", "x-python-name": "event_time", "description": "T."},
            "z": {"type": "string", "x-python-name": "zed", "description": "A probe's own field."},
        },
    }
    if markets is not None:
        schema["x-markets"] = markets
    return schema


def _generate(tmp_path: Path, extra: dict[str, dict[str, Any]]) -> subprocess.CompletedProcess[str]:
    """scripts/generate.py on the spec with `extra` schemas added, into tmp_path/out."""
    spec = copy.deepcopy(SPEC)
    spec["components"]["schemas"].update(extra)
    edited = tmp_path / "spec.yaml"
    edited.write_text(yaml.safe_dump(spec, sort_keys=False))
    return subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "generate.py"),
            "--spec",
            str(edited),
            "--out",
            str(tmp_path / "out"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )


# --- the generator ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def probe(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModuleType]:
    """The models of a package generated with market-specific schemas added: a shape of
    ORDER_TRADE_UPDATE for margin, and PROBE_UPDATE on margin and spot only."""
    tmp_path = tmp_path_factory.mktemp("probe")
    proc = _generate(
        tmp_path,
        {
            "MarginOrderTradeUpdate": _schema("ORDER_TRADE_UPDATE", ["margin"]),
            "ProbeUpdate": _schema("PROBE_UPDATE", ["spot", "margin"]),
        },
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # The generated package under another name, so it does not shadow the installed one.
    shutil.copytree(tmp_path / "out" / "binance_userstream_client", tmp_path / "probe_markets_client")
    sys.path.insert(0, str(tmp_path))
    try:
        yield importlib.import_module("probe_markets_client.models")
    finally:
        sys.path.remove(str(tmp_path))
        for name in [m for m in sys.modules if m.split(".")[0] == "probe_markets_client"]:
            del sys.modules[name]


def test_a_market_specific_schema_is_in_its_markets_tables_only(probe: ModuleType) -> None:
    tables = probe.EVENT_TYPES_BY_MARKET
    assert tables["margin"] == {
        "ORDER_TRADE_UPDATE": probe.MarginOrderTradeUpdate,
        "PROBE_UPDATE": probe.ProbeUpdate,
    }
    assert tables["spot"] == {"PROBE_UPDATE": probe.ProbeUpdate}
    assert set(tables) == {*EVENT_TYPES_BY_MARKET, "margin", "spot"}
    assert list(tables["margin"]) == ["ORDER_TRADE_UPDATE", "PROBE_UPDATE"]
    assert "EVENT_TYPES_BY_MARKET" in probe.__all__


def test_event_types_keeps_the_shared_shape_and_lacks_a_name_with_market_shapes_only(
    probe: ModuleType,
) -> None:
    assert probe.EVENT_TYPES["ORDER_TRADE_UPDATE"] is probe.OrderTradeUpdate
    assert "PROBE_UPDATE" not in probe.EVENT_TYPES
    assert set(probe.EVENT_TYPES) == set(EVENT_TYPES)


def test_user_data_event_is_the_union_of_every_event_model(probe: ModuleType) -> None:
    members = set(probe.UserDataEvent.__args__)
    assert {probe.MarginOrderTradeUpdate, probe.ProbeUpdate, probe.OrderTradeUpdate} <= members


@pytest.mark.parametrize(
    ("extra", "why"),
    [
        (
            {"OrderTradeUpdateAgain": _schema("ORDER_TRADE_UPDATE")},
            "'ORDER_TRADE_UPDATE' has 2 schemas without x-markets",
        ),
        (
            {
                "AOptionsOrder": _schema("PROBE_UPDATE", ["options"]),
                "BOptionsOrder": _schema("PROBE_UPDATE", ["usdm", "options"]),
            },
            "'PROBE_UPDATE' on market 'options' is claimed by both AOptionsOrder and BOptionsOrder",
        ),
        (
            {"MoonOrder": _schema("PROBE_UPDATE", ["moon"])},
            "x-markets must be a non-empty list of distinct market names",
        ),
        ({"NoOrder": _schema("PROBE_UPDATE", [])}, "x-markets must be a non-empty list"),
    ],
    ids=["two-shared", "one-market-twice", "unknown-market", "no-market"],
)
def test_the_spec_check_refuses_two_models_for_one_market_and_wire_name(
    extra: dict[str, dict[str, Any]], why: str
) -> None:
    spec = copy.deepcopy(SPEC)
    spec["components"]["schemas"].update(extra)
    (problem,) = GENERATE.event_schema_problems(spec)
    assert why in problem


def test_the_spec_as_it_is_has_no_event_schema_problem() -> None:
    assert GENERATE.event_schema_problems(SPEC) == []


def test_the_generator_stops_on_a_problem_before_writing_anything(tmp_path: Path) -> None:
    proc = _generate(tmp_path, {"OrderTradeUpdateAgain": _schema("ORDER_TRADE_UPDATE")})
    assert proc.returncode != 0
    assert "generate: x-event 'ORDER_TRADE_UPDATE' has 2 schemas without x-markets" in proc.stderr
    assert not (tmp_path / "out").exists()


# --- the market rows ----------------------------------------------------------------------------


def test_a_markets_event_types_name_every_event_its_stream_sends() -> None:
    for market in MARKETS.values():
        assert tuple(market.event_types) == market.stream_events, market.name


def test_a_market_without_a_shape_of_its_own_decodes_with_the_shared_model() -> None:
    assert MARKETS["usdm"].event_types["ORDER_TRADE_UPDATE"] is OrderTradeUpdate
    assert MARKETS["spot"].event_types["listenKeyExpired"] is ListenKeyExpired


def test_a_markets_own_shape_wins_over_the_shared_model(monkeypatch: pytest.MonkeyPatch) -> None:
    own = {"ORDER_TRADE_UPDATE": ListenKeyExpired}  # any other model stands for the market's own
    monkeypatch.setitem(EVENT_TYPES_BY_MARKET, "coinm", own)
    coinm = attrs.evolve(MARKETS["coinm"])
    assert coinm.event_types["ORDER_TRADE_UPDATE"] is ListenKeyExpired
    assert coinm.event_types["ACCOUNT_UPDATE"] is EVENT_TYPES["ACCOUNT_UPDATE"]


def test_a_market_row_listing_an_event_the_spec_does_not_model_is_refused() -> None:
    with pytest.raises(
        AssertionError, match=r"market 'usdm' lists events the spec does not model: \['NOPE'\]"
    ):
        attrs.evolve(MARKETS["usdm"], stream_events=("ORDER_TRADE_UPDATE", "NOPE"))


def test_the_options_row_decodes_each_options_event_with_options_model() -> None:
    assert dict(MARKETS["options"].event_types) == {
        "ORDER_TRADE_UPDATE": OptionsOrderTradeUpdate,
        "ACCOUNT_UPDATE": OptionsAccountUpdate,
        "BALANCE_POSITION_UPDATE": OptionsBalancePositionUpdate,
        "GREEK_UPDATE": OptionsGreekUpdate,
        "RISK_LEVEL_CHANGE": OptionsRiskLevelChange,
        "listenKeyExpired": ListenKeyExpired,
    }


@pytest.mark.parametrize("name", ["STRATEGY_UPDATE", "GRID_UPDATE"])
def test_coinm_decodes_its_strategy_and_grid_updates_with_usdms_models(name: str) -> None:
    """COIN-M's "User Data Streams" pages document both, with USD-M's payloads."""
    payload = load(DATA / "coinm" / f"{name}.json")
    assert type(decode(json.dumps(payload), MARKETS["coinm"].event_types)) is EVENT_TYPES[name]


def test_options_own_shapes_are_not_the_shared_ones() -> None:
    assert EVENT_TYPES["ORDER_TRADE_UPDATE"] is OrderTradeUpdate
    assert EVENT_TYPES["ACCOUNT_UPDATE"] is AccountUpdate
    assert not {"BALANCE_POSITION_UPDATE", "GREEK_UPDATE", "RISK_LEVEL_CHANGE"} & set(EVENT_TYPES)


def test_the_market_tables_are_the_generated_ones() -> None:
    assert models.EVENT_TYPES_BY_MARKET is EVENT_TYPES_BY_MARKET
    assert set(EVENT_TYPES_BY_MARKET) <= set(MARKETS)


# --- decoding -----------------------------------------------------------------------------------


def test_a_wire_name_the_table_lacks_decodes_as_an_unknown_event_with_its_payload() -> None:
    event = decode_payload(copy.deepcopy(ORDER), {"listenKeyExpired": ListenKeyExpired})
    assert type(event) is UnknownEvent
    assert event.to_dict() == ORDER


def test_the_table_given_picks_the_model() -> None:
    assert type(decode_payload(copy.deepcopy(ORDER), MARKETS["coinm"].event_types)) is OrderTradeUpdate
    assert type(decode(json.dumps(ORDER), MARKETS["usdm"].event_types)) is OrderTradeUpdate


def test_decoding_without_a_table_uses_the_shared_models() -> None:
    assert type(decode(json.dumps(ORDER))) is OrderTradeUpdate


def test_a_futures_order_update_on_the_options_market_is_not_the_futures_model() -> None:
    event = decode(json.dumps(ORDER), MARKETS["options"].event_types)
    assert type(event) is not OrderTradeUpdate
    assert event.to_dict() == ORDER


def test_an_options_order_update_on_usdm_is_not_typed_as_options() -> None:
    event = decode(json.dumps(OPTIONS_ORDER), MARKETS["usdm"].event_types)
    assert type(event) is UnknownEvent  # the futures model requires what Options lacks (sp, ps)
    assert event.to_dict() == OPTIONS_ORDER


def test_a_futures_account_update_on_the_options_market_is_an_unknown_event() -> None:
    event = decode(json.dumps(USDM_ACCOUNT), MARKETS["options"].event_types)
    assert type(event) is UnknownEvent  # Options' flat shape requires eq, aeq, ...: not `a`
    assert event.to_dict() == USDM_ACCOUNT


def test_an_options_account_update_on_usdm_is_an_unknown_event() -> None:
    assert type(decode(json.dumps(OPTIONS_ACCOUNT), MARKETS["usdm"].event_types)) is UnknownEvent


def test_listen_events_takes_a_name_only_one_market_sends() -> None:
    args = _parser().parse_args(
        ["listen", "--market", "options", "--events", "GREEK_UPDATE,ORDER_TRADE_UPDATE"]
    )
    assert args.events == {"GREEK_UPDATE", "ORDER_TRADE_UPDATE"}


def test_listen_refuses_events_its_market_does_not_send_before_connecting() -> None:
    """Another market's name would filter out everything but gaps: a quiet account, seemingly."""
    proc = cli("listen", "--market", "usdm", "--base-url", "http://127.0.0.1:9", "--events", "GREEK_UPDATE")
    assert proc.returncode == 2
    assert (
        "--events GREEK_UPDATE: not sent by --market usdm, whose stream sends ORDER_TRADE_UPDATE"
        in proc.stderr
    )


def test_a_wrapped_frame_decodes_with_the_table_given() -> None:
    wrapped = json.dumps({"stream": "key", "data": ORDER})
    assert type(decode(wrapped, MARKETS["usdm"].event_types)) is OrderTradeUpdate
    assert type(decode(wrapped, MARKETS["spot"].event_types)) is UnknownEvent


def test_the_stream_core_decodes_frames_with_its_markets_table() -> None:
    stream = StreamCore(
        lambda key: f"wss://stream.test/ws/{key}",
        StreamTiming(ping_interval=180.0),
        random=lambda: 1.0,
        events=MARKETS["spot"].event_types,
    )
    (connect,) = stream.start("K" * 60, 0.0)
    assert isinstance(connect, Connect)
    stream.connected(connect.conn_id, 0.0)
    stream.frame(connect.conn_id, json.dumps(ORDER), 1.0)
    stream.frame(connect.conn_id, json.dumps({"e": "listenKeyExpired", "E": 2}), 2.0)
    first, second = stream.pop(2.0), stream.pop(2.0)
    assert type(first) is UnknownEvent  # a futures order on spot's stream: spot has no such event
    assert first.to_dict() == ORDER
    assert type(second) is ListenKeyExpired


@pytest.fixture
async def ws() -> AsyncIterator[ScriptedStreamServer]:
    async with ScriptedStreamServer() as server:
        yield server


@pytest.mark.anyio
async def test_a_stream_decodes_with_its_markets_table(sim: Simulator, ws: ScriptedStreamServer) -> None:
    uds = AsyncUserDataStream(api_key=API_KEY, base_url=sim.url, stream_url=ws.url, market="coinm")
    async with uds, uds.events(timing=FAST) as stream:
        await ws.wait(1)
        await ws.send(json.dumps(REPORT))  # spot's event: COIN-M's stream does not send it
        await ws.send(json.dumps(ORDER))
        report, order = await take(stream, 2)
    assert type(report) is UnknownEvent
    assert report.to_dict() == REPORT
    assert type(order) is OrderTradeUpdate


# --- the simulator's Options traffic ------------------------------------------------------------

OPTIONS_MODELS = {
    OptionsOrderTradeUpdate,
    OptionsBalancePositionUpdate,
    OptionsAccountUpdate,
    OptionsGreekUpdate,
}


@pytest.mark.parametrize("side", ["BUY", "SELL"])
def test_the_simulators_options_order_is_in_options_shapes(side: str) -> None:
    events = Traffic().options_order(1_762_917_544_216, side=side)
    decoded = [decode_payload(copy.deepcopy(event), MARKETS["options"].event_types) for event in events]
    assert {type(event) for event in decoded} == OPTIONS_MODELS
    assert [event.to_dict() for event in decoded] == events
    assert all(not event.additional_properties for event in decoded)  # nothing the docs lack
    orders = [event for event in decoded if isinstance(event, OptionsOrderTradeUpdate)]
    assert [order.order.order_status for order in orders] == ["NEW", "PARTIALLY_FILLED", "FILLED"]


@pytest.mark.anyio
async def test_an_options_stream_yields_the_simulators_traffic_as_options_models(sim: Simulator) -> None:
    uds = AsyncUserDataStream(
        api_key=API_KEY, base_url=sim.url, stream_url=sim.url.replace("http://", "ws://"), market="options"
    )
    seen = Seen(asyncio.Event())
    async with uds, uds.events(timing=FAST, on_event=seen) as stream:
        await asyncio.wait_for(seen.connected.wait(), 10)
        sent = sim.traffic("options")
        items = await take(stream, len(sent))
    assert {type(item) for item in items} == OPTIONS_MODELS
    assert [item.to_dict() for item in items] == [json.loads(d.text) for d in sim.deliveries]


# --- the stream guide -----------------------------------------------------------------------------


def _readme_table() -> dict[str, dict[str, str]]:
    """The stream guide's table of the events each market sends: market -> wire name -> model name."""
    guide = (ROOT / "docs" / "guides" / "stream.md").read_text()
    table = guide[guide.index("| market | events") :].split("\n\n", 1)[0]
    rows: dict[str, dict[str, str]] = {}
    for row in table.splitlines()[2:]:
        markets, events = row.strip("|").split("|")
        for market in re.findall(r"`(\w+)`", markets):
            rows[market] = dict(re.findall(r"`(\w+)` `(\w+)`", events))
    return rows


def test_the_stream_guide_lists_the_events_each_market_sends_with_their_models() -> None:
    rows = _readme_table()
    assert set(rows) == set(MARKETS)
    for market, events in rows.items():
        assert events == {wire: model.__name__ for wire, model in MARKETS[market].event_types.items()}, market
