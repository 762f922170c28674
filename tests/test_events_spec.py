"""User-data events are in the spec: every documented event decodes into its generated model.

The samples under tests/data/events/ are the payloads of Binance's documentation pages (the
README there names the page of each): the USD-M, COIN-M, Portfolio Margin and Options "User Data
Streams" event pages on developers.binance.com, and binance-spot-api-docs' user-data-stream.md and
web-socket-api.md. The spec marks each event schema with `x-event` (the wire value of "e"), a
market's own shape of a wire name with `x-markets`, and each property with `x-python-name`; the
pipeline turns them into EVENT_TYPES, EVENT_TYPES_BY_MARKET and readable attribute names. A sample
decodes with its market's table (its folder), as that market's stream decodes it.
"""

from __future__ import annotations

import ast
import builtins
import copy
import importlib
import inspect
import itertools
import json
import keyword
import re
import shutil
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import attrs
import binance_userstream_client.models as models
import pytest
import yaml
from binance_userstream_client.models import (
    EVENT_TYPES,
    EVENT_TYPES_BY_MARKET,
    ExecutionReport,
    ListenKeyExpired,
    OrderTradeUpdate,
    OrderTradeUpdateOrder,
    UnknownEvent,
)
from binance_userstream_client.types import UNSET

from binance_userstream._markets import MARKETS
from tests._samples import SAMPLES, market_of, model_of, sample_id
from tests.conftest import ROOT

SPEC = yaml.safe_load((ROOT / "spec" / "userdatastream.yaml").read_text())
SCHEMAS: dict[str, Any] = SPEC["components"]["schemas"]
DATA = ROOT / "tests" / "data" / "events"

EVENT_NAMES = {
    "OrderTradeUpdate": "ORDER_TRADE_UPDATE",
    "AccountUpdate": "ACCOUNT_UPDATE",
    "MarginCall": "MARGIN_CALL",
    "AccountConfigUpdate": "ACCOUNT_CONFIG_UPDATE",
    "TradeLite": "TRADE_LITE",
    "AlgoUpdate": "ALGO_UPDATE",
    "StrategyUpdate": "STRATEGY_UPDATE",
    "GridUpdate": "GRID_UPDATE",
    "ConditionalOrderTriggerReject": "CONDITIONAL_ORDER_TRIGGER_REJECT",
    "ListenKeyExpired": "listenKeyExpired",
    "ExecutionReport": "executionReport",
    "OutboundAccountPosition": "outboundAccountPosition",
    "BalanceUpdate": "balanceUpdate",
    "ListStatus": "listStatus",
    "ExternalLockUpdate": "externalLockUpdate",
    "EventStreamTerminated": "eventStreamTerminated",
    "ServerShutdown": "serverShutdown",
    "OptionsOrderTradeUpdate": "ORDER_TRADE_UPDATE",
    "OptionsAccountUpdate": "ACCOUNT_UPDATE",
    "OptionsBalancePositionUpdate": "BALANCE_POSITION_UPDATE",
    "OptionsGreekUpdate": "GREEK_UPDATE",
    "OptionsRiskLevelChange": "RISK_LEVEL_CHANGE",
    "ConditionalOrderTradeUpdate": "CONDITIONAL_ORDER_TRADE_UPDATE",
    "PortfolioAlgoUpdate": "ALGO_UPDATE",
    "OpenOrderLoss": "openOrderLoss",
    "LiabilityChange": "liabilityChange",
    "PortfolioRiskLevelChange": "riskLevelChange",
    "PortfolioExecutionReport": "executionReport",
    "PortfolioOutboundAccountPosition": "outboundAccountPosition",
    "PortfolioBalanceUpdate": "balanceUpdate",
    "PortfolioProAccountUpdate": "PM_PRO_ACCOUNT_UPDATE",
}
#: What every generated model already defines: no property may take these names.
MODEL_MEMBERS = {"additional_properties", "additional_keys", "to_dict", "from_dict"}
DECIMAL_MARK = "A decimal, sent as a string"
#: Names that hold an amount of money or of an asset: they must be exact decimals. (A trailing
#: delta is an integer number of basis points.)
MONEY_NAME = re.compile(
    r"(price|quantity|balance|pnl|profit|notional|amount|wallet|fee|(?<!trailing_)delta|commission"
    r"|free|locked|margin|rate)$"
)


def load(path: Path) -> dict[str, Any]:
    payload: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return payload


def decode(payload: dict[str, Any], market: str | None = None) -> Any:
    """The facade's dispatch: one lookup on "e" in the market's table (EVENT_TYPES without one),
    UnknownEvent for a type it lacks."""
    events = EVENT_TYPES if market is None else MARKETS[market].event_types
    return events.get(payload.get("e", ""), UnknownEvent).from_dict(payload)


def decode_sample(path: Path) -> Any:
    """A sample file decoded as its market's stream decodes it."""
    return decode(load(path), market_of(path).name)


def sample(name: str) -> dict[str, Any]:
    return load(DATA / name)


def resolve(obj: Any, path: str) -> Any:
    """`order.client_order_id`, `update_data.balances[1].asset`: attribute paths with indexes."""
    for part in path.split("."):
        name, _, index = part.partition("[")
        obj = getattr(obj, name)
        if index:
            obj = obj[int(index.rstrip("]"))]
    return obj


def schema_of(ref_or_schema: dict[str, Any]) -> tuple[str, dict[str, Any]] | None:
    """The referenced object schema of a property (`allOf: [$ref]` or an array's items), if any."""
    target = ref_or_schema.get("items", ref_or_schema)
    refs = [target, *list(target.get("allOf", []))]
    for ref in refs:
        if "$ref" in ref:
            name = ref["$ref"].rpartition("/")[2]
            return name, SCHEMAS[name]
    return None


def event_schemas() -> dict[str, dict[str, Any]]:
    return {name: s for name, s in SCHEMAS.items() if "x-event" in s}


def described_schemas() -> dict[str, dict[str, Any]]:
    """Every schema whose properties carry x-python-name: the events and their nested objects."""
    seen: dict[str, dict[str, Any]] = {}
    todo = [*event_schemas(), "UnknownEvent"]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen[name] = SCHEMAS[name]
        for prop in SCHEMAS[name]["properties"].values():
            nested = schema_of(prop)
            if nested and nested[1].get("type") == "object":
                todo.append(nested[0])
    return seen


def walk(model: Any, schema: dict[str, Any], raw: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    """(spec property, decoded value, wire value) for every field present, nested objects included."""
    out: list[tuple[str, Any, Any]] = []
    by_wire = {f.name: f for f in attrs.fields(type(model))}
    assert not model.additional_properties, f"undocumented fields kept aside: {model.additional_properties}"
    for wire, prop in schema["properties"].items():
        if wire not in raw:
            continue
        value = getattr(model, prop["x-python-name"])
        out.append((prop["x-python-name"], value, raw[wire]))
        nested = schema_of(prop)
        if nested and nested[1].get("type") == "object":
            items = (
                zip(value, raw[wire], strict=True) if prop.get("type") == "array" else [(value, raw[wire])]
            )
            for sub_model, sub_raw in items:
                out.extend(walk(sub_model, nested[1], sub_raw))
        assert prop["x-python-name"] in by_wire
    return out


# --- the spec ---------------------------------------------------------------------------------


def test_each_named_event_is_a_schema_marked_with_its_wire_name() -> None:
    assert {name: s["x-event"] for name, s in event_schemas().items()} == EVENT_NAMES


def test_no_two_event_schemas_claim_one_wire_name_on_one_market() -> None:
    shared = [s["x-event"] for s in event_schemas().values() if "x-markets" not in s]
    assert len(shared) == len(set(shared))
    claimed = [(market, s["x-event"]) for s in event_schemas().values() for market in s.get("x-markets", ())]
    assert len(claimed) == len(set(claimed))


@pytest.mark.parametrize("name", sorted(n for n, s in event_schemas().items() if "x-markets" in s))
def test_a_markets_own_shape_is_named_after_its_market(name: str) -> None:
    markets = SCHEMAS[name]["x-markets"]
    assert set(markets) <= set(MARKETS)
    assert any(name.lower().startswith(market.replace("_", "")) for market in markets), name


@pytest.mark.parametrize("name", sorted(described_schemas()))
def test_every_event_property_has_a_readable_name_and_a_description(name: str) -> None:
    schema = SCHEMAS[name]
    assert schema.get("description"), name
    names = []
    for wire, prop in schema["properties"].items():
        python_name = prop.get("x-python-name")
        assert python_name, f"{name}.{wire} has no x-python-name"
        assert prop.get("description"), f"{name}.{wire} has no description"
        assert python_name.isidentifier(), python_name
        assert python_name == python_name.lower(), python_name
        assert not keyword.iskeyword(python_name), python_name
        assert python_name not in dir(builtins), f"{python_name}: the generator would rename it"
        assert python_name not in MODEL_MEMBERS, f"{python_name}: taken by the generated model"
        names.append(python_name)
    assert len(names) == len(set(names)), f"{name}: two wire names map to one attribute"


@pytest.mark.parametrize("name", sorted(event_schemas()))
def test_every_event_requires_its_type_and_time(name: str) -> None:
    assert {"e", "E"} <= set(SCHEMAS[name]["required"])


@pytest.mark.parametrize("name", sorted(described_schemas()))
def test_money_is_an_exact_decimal_string_and_ids_and_times_are_int64(name: str) -> None:
    for wire, prop in SCHEMAS[name]["properties"].items():
        assert prop.get("type") != "number", f"{name}.{wire}: never a float"
        if MONEY_NAME.search(prop["x-python-name"]):
            assert prop["type"] == "string", f"{name}.{wire}"
            assert DECIMAL_MARK in prop["description"], f"{name}.{wire}"
        if DECIMAL_MARK in prop["description"]:
            assert prop["type"] == "string"
        if prop.get("type") == "integer":
            assert prop.get("format") == "int64", f"{name}.{wire}"


def test_unknown_event_accepts_any_object() -> None:
    schema = SCHEMAS["UnknownEvent"]
    assert "x-event" not in schema
    assert not schema.get("required")
    assert schema.get("additionalProperties", True) is True


# --- the pipeline -----------------------------------------------------------------------------


def test_every_named_event_and_unknown_event_are_generated_models() -> None:
    for name in [*EVENT_NAMES, "UnknownEvent"]:
        assert attrs.has(getattr(models, name)), name
        assert name in models.__all__


def test_event_types_maps_each_wire_name_to_its_shared_model_in_sorted_order() -> None:
    shared = {name: wire for name, wire in EVENT_NAMES.items() if "x-markets" not in SCHEMAS[name]}
    assert {wire: getattr(models, name) for name, wire in shared.items()} == EVENT_TYPES
    assert list(EVENT_TYPES) == sorted(EVENT_TYPES)
    assert "EVENT_TYPES" in models.__all__


def test_event_types_by_market_maps_each_markets_own_shapes_in_sorted_order() -> None:
    expected: dict[str, dict[str, Any]] = {}
    for name, wire in EVENT_NAMES.items():
        for market in SCHEMAS[name].get("x-markets", ()):
            expected.setdefault(market, {})[wire] = getattr(models, name)
    assert expected == EVENT_TYPES_BY_MARKET
    assert all(list(table) == sorted(table) for table in EVENT_TYPES_BY_MARKET.values())
    assert list(EVENT_TYPES_BY_MARKET) == sorted(EVENT_TYPES_BY_MARKET)


@pytest.mark.parametrize("name", sorted(described_schemas()))
def test_generated_attributes_are_the_x_python_names(name: str) -> None:
    wanted = {p["x-python-name"] for p in SCHEMAS[name]["properties"].values()}
    fields = {f.name for f in attrs.fields(getattr(models, name))}
    assert fields == wanted | {"additional_properties"}


@pytest.mark.parametrize("name", sorted(described_schemas()))
def test_each_attribute_is_documented_with_its_description(name: str) -> None:
    cls = getattr(models, name)
    tree = ast.parse(Path(inspect.getfile(cls)).read_text(encoding="utf-8"))
    body = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == name).body
    docs: dict[str, str] = {}
    for node, after in itertools.pairwise(body):
        annotated = isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
        if annotated and isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant):
            docs[node.target.id] = " ".join(str(after.value.value).split())
    for prop in SCHEMAS[name]["properties"].values():
        assert docs.get(prop["x-python-name"]) == " ".join(prop["description"].split())


def test_a_new_event_type_is_a_spec_edit_only(tmp_path: Path) -> None:
    """Add a schema with x-event and x-python-name: the generated package decodes it, nothing else."""
    spec = copy.deepcopy(SPEC)
    spec["components"]["schemas"]["UniMmrDrop"] = {
        "type": "object",
        "x-event": "uniMMRDrop",
        "description": "A made-up Portfolio Margin Pro event.",
        "required": ["e", "E"],
        "properties": {
            "e": {"type": "string", "x-python-name": "event_type", "description": "Event type."},
            "E": {"type": "integer", "format": "int64", "x-python-name": "event_time", "description": "T."},
            "u": {"type": "string", "x-python-name": "uni_mmr", "description": "uniMMR. A decimal."},
            # Names the decoder's own locals had (its instance is named after the module).
            "x": {"type": "string", "x-python-name": "uni_mmr_drop", "description": "The module's name."},
            "k": {"type": "integer", "x-python-name": "known", "description": "A count's name."},
            "d": {"type": "string", "x-python-name": "d", "description": "The payload's name."},
            "b": {"type": "string", "x-python-name": "base", "description": "A subclass's name."},
        },
    }
    edited = tmp_path / "spec.yaml"
    edited.write_text(yaml.safe_dump(spec, sort_keys=False))
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "generate.py"), "--spec", str(edited), "--out", str(out)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # The generated package under another name, so it does not shadow the installed one.
    shutil.copytree(out / "binance_userstream_client", tmp_path / "probe_client")
    sys.path.insert(0, str(tmp_path))
    try:
        probe = importlib.import_module("probe_client.models")
        payload = {"e": "uniMMRDrop", "E": 1761700000000, "u": "1.25", "new": 1, "x": "X", "k": 2, "d": "D"}
        event = probe.EVENT_TYPES["uniMMRDrop"].from_dict(payload)
        assert type(event).__name__ == "UniMmrDrop"
        assert event.uni_mmr == "1.25"
        unset = importlib.import_module("probe_client.types").UNSET
        assert (event.uni_mmr_drop, event.known, event.d, event.base) == ("X", 2, "D", unset)
        assert event.additional_properties == {"new": 1}
        assert event.to_dict() == payload
        assert set(probe.EVENT_TYPES) == {*EVENT_TYPES, "uniMMRDrop"}
    finally:
        sys.path.remove(str(tmp_path))
        for name in [m for m in sys.modules if m == "probe_client" or m.startswith("probe_client.")]:
            del sys.modules[name]


# --- decoding the documented samples ----------------------------------------------------------


@pytest.mark.parametrize("path", SAMPLES, ids=sample_id)
def test_each_documented_sample_decodes_to_its_model_and_round_trips(path: Path) -> None:
    payload = load(path)
    event = model_of(path).from_dict(payload)
    assert path.stem.split("-")[0] == payload["e"]
    assert SCHEMAS[type(event).__name__]["x-event"] == payload["e"]
    assert event.to_dict() == payload
    assert json.loads(json.dumps(event.to_dict())) == payload


@pytest.mark.parametrize("path", SAMPLES, ids=sample_id)
def test_every_documented_field_is_modelled_and_decimals_stay_exact_strings(path: Path) -> None:
    payload = load(path)
    event = decode_sample(path)
    assert type(event) is model_of(path)
    fields = walk(event, SCHEMAS[type(event).__name__], payload)
    assert fields
    for name, value, wire in fields:
        assert value == wire or isinstance(wire, (dict, list)), name
        if isinstance(wire, str):
            assert type(value) is str, name
        if MONEY_NAME.search(name):
            assert type(value) is str, name
            assert Decimal(value).is_finite(), name


#: The folder of a market's samples where it is not the market's own: margin's stream sends spot's
#: events in spot's shapes, so spot's samples are margin's.
SAMPLE_FOLDERS = {"margin": "spot"}
#: Events a stream sends that its pages show no sample of: Portfolio Margin Pro's key is USD-M's, and
#: its listenKeyExpired is the shared one (USD-M's sample, under usdm/).
UNDOCUMENTED = {"portfolio_pro": {"listenKeyExpired"}}


@pytest.mark.parametrize("market", sorted(MARKETS))
def test_every_event_a_markets_stream_sends_has_a_documented_sample(market: str) -> None:
    folder = SAMPLE_FOLDERS.get(market, market)
    samples = {path.stem.split("-")[0] for path in (DATA / folder).glob("*.json")}
    assert samples == set(MARKETS[market].stream_events) - UNDOCUMENTED.get(market, set())
    # Another market's samples stand for this one's only if each decodes with the same model.
    sent, documented = MARKETS[market].event_types, MARKETS[folder].event_types
    assert {name: sent[name] for name in samples} == {name: documented[name] for name in samples}


READABLE = {
    "usdm/ORDER_TRADE_UPDATE.json": {
        "event_type": "ORDER_TRADE_UPDATE",
        "event_time": 1568879465651,
        "transaction_time": 1568879465650,
        "order.symbol": "BTCUSDT",
        "order.client_order_id": "TEST",
        "order.side": "SELL",
        "order.order_type": "TRAILING_STOP_MARKET",
        "order.execution_type": "NEW",
        "order.order_status": "NEW",
        "order.stop_price": "7103.04",
        "order.activation_price": "7476.89",
        "order.commission_asset": "USDT",
        "order.is_maker": False,
        "order.expiry_reason": "0",
    },
    "coinm/ORDER_TRADE_UPDATE.json": {
        "account_alias": "SfsR",
        "order.margin_asset": "BTC",
        "order.quantity": "2",
        "order.order_id": 8888888,
    },
    "portfolio/ORDER_TRADE_UPDATE.json": {
        "business_unit": "UM",
        "order.strategy_type": "C_TAKE_PROFIT",
        "order.strategy_id": 12893,
    },
    "usdm/ACCOUNT_UPDATE.json": {
        "update_data.reason": "ORDER",
        "update_data.balances[0].asset": "USDT",
        "update_data.balances[0].wallet_balance": "122624.12345678",
        "update_data.balances[1].balance_change": "-49.12345678",
        "update_data.positions[0].entry_price": "0.00000",
        "update_data.positions[0].margin_type": "isolated",
        "update_data.positions[0].position_side": "BOTH",
    },
    "portfolio/ACCOUNT_UPDATE.json": {
        "business_unit": "UM",
        "account_alias": "",
        "update_data.positions[1].position_amount": "20",
        "update_data.positions[1].unrealized_pnl": "2850.21200",
    },
    "coinm/ACCOUNT_UPDATE.json": {
        "account_alias": "SfsR",
        "update_data.balances[0].asset": "BTC",
        "update_data.balances[1].balance_change": "-49.12345678",
        "update_data.positions[2].position_amount": "-10",
        "update_data.positions[2].breakeven_price": "6563.6",
        "update_data.positions[2].isolated_wallet": "6570.42511771",
        "update_data.positions[2].position_side": "SHORT",
    },
    "coinm/MARGIN_CALL.json": {
        "account_alias": "SfsR",
        "positions[0].symbol": "BTCUSD_200925",
        "positions[0].position_amount": "132",
        "positions[0].mark_price": "9187.17127000",
    },
    "coinm/ACCOUNT_CONFIG_UPDATE.json": {"symbol_config.symbol": "BTCUSD_PERP", "symbol_config.leverage": 25},
    "coinm/listenKeyExpired.json": {
        "event_time": 1576653824250,
        "listen_key": "WsCMN0a4KHUPTQuX6IUnqEZfB1inxmv1qR4kbf1LuEjur5VdbzqvyxqG9TSjVVxv",
    },
    "usdm/MARGIN_CALL.json": {
        "cross_wallet_balance": "3.16812045",
        "positions[0].mark_price": "187.17127",
        "positions[0].maintenance_margin": "1.614445",
    },
    "usdm/ACCOUNT_CONFIG_UPDATE.json": {"symbol_config.symbol": "BTCUSDT", "symbol_config.leverage": 25},
    "usdm/ACCOUNT_CONFIG_UPDATE-multi-assets.json": {"account_config.multi_assets_mode": True},
    "portfolio/ACCOUNT_CONFIG_UPDATE.json": {"business_unit": "UM", "symbol_config.symbol": "BTCUSD_PERP"},
    "usdm/TRADE_LITE.json": {
        "last_filled_price": "64089.20",
        "last_filled_quantity": "0.040",
        "trade_id": 109100866,
        "client_order_id": "z8hcUoOsqEdKMeKPSABslD",
    },
    "usdm/ALGO_UPDATE.json": {
        "order.client_algo_id": "Q5xaq5EGKgXXa0fD7fs0Ip",
        "order.algo_id": 2148719,
        "order.algo_status": "CANCELED",
        "order.order_id": "",
        "order.trigger_price": "750",
        "order.fail_reason": "Reduce Only reject",
    },
    "usdm/STRATEGY_UPDATE.json": {"strategy.strategy_id": 176054594, "strategy.op_code": 8007},
    "coinm/STRATEGY_UPDATE.json": {"strategy.strategy_status": "NEW", "strategy.update_time": 1669261797627},
    "coinm/GRID_UPDATE.json": {"grid.strategy_status": "WORKING", "grid.unmatched_average_price": "16720"},
    "usdm/GRID_UPDATE.json": {"grid.realized_pnl": "-0.00300716", "grid.unmatched_quantity": "-0.001"},
    "usdm/CONDITIONAL_ORDER_TRIGGER_REJECT.json": {"order.order_id": 155618472834, "order.symbol": "ETHUSDT"},
    "usdm/listenKeyExpired.json": {"event_time": "1736996475556"},
    "usdm/listenKeyExpired-legacy.json": {"event_time": 1576653824250, "listen_key": UNSET},
    "spot/executionReport.json": {
        "symbol": "ETHBTC",
        "client_order_id": "mUvoqJxFIILMdfAW5iGSOW",
        "original_client_order_id": "",
        "side": "BUY",
        "order_type": "LIMIT",
        "stop_price": "0.00000000",
        "execution_type": "NEW",
        "order_status": "NEW",
        "order_list_id": -1,
        "commission_asset": None,
        "order_creation_time": 1499405658657,
        "cumulative_quote_quantity": "0.00000000",
        "is_working": True,
        "prevented_match_id": 3,
    },
    "spot/outboundAccountPosition.json": {
        "last_update_time": 1564034571073,
        "balances[0].free": "10000.000000",
        "balances[0].locked": "0.000000",
    },
    "spot/balanceUpdate.json": {"asset": "BTC", "balance_delta": "100.00000000", "clear_time": 1573200697068},
    "spot/listStatus.json": {
        "contingency_type": "OCO",
        "list_status_type": "EXEC_STARTED",
        "list_order_status": "EXECUTING",
        "list_client_order_id": "F4QN4G8DlFATFlIUQ0cjdD",
        "orders[1].order_id": 18,
    },
    "spot/externalLockUpdate.json": {
        "asset": "NEO",
        "delta": "10.00000000",
        "transaction_time": 1581557507268,
    },
    "spot/eventStreamTerminated.json": {"event_type": "eventStreamTerminated", "event_time": 1728973001334},
    "spot/serverShutdown.json": {"event_type": "serverShutdown", "event_time": 1770123456789},
    "spot/listenKeyExpired.json": {"event_time": 1699596037418},
    "options/ORDER_TRADE_UPDATE.json": {
        "transaction_time": 1568879465650,
        "order.symbol": "BTCUSDT",
        "order.order_type": "TRAILING_STOP_MARKET",
        "order.order_id": 8886774,
        "order.commission": "0",
        "order.bid_quantity": "0",
        "order.ask_quantity": "9.91",
        "order.realized_profit": "0",
    },
    "options/ACCOUNT_UPDATE.json": {
        "equity": "10000371.61462086",
        "adjusted_equity": "10000475.51032086",
        "wallet_balance": "10000475.51032086",
        "position_value": "-103.89570000",
        "unrealized_pnl": "16.10430000",
        "initial_margin": "32354.38562539",
        "maintenance_margin": "6089.28766956",
    },
    "options/BALANCE_POSITION_UPDATE.json": {
        "reason": "ORDER",
        "balances[0].balance": "10000471.37940900",
        "positions[0].position_quantity": "-0.1000",
        "positions[0].average_entry_price": "1200.00000000",
    },
    "options/GREEK_UPDATE.json": {
        "greeks[0].underlying": "BTCUSDT",
        "greeks[0].delta": "-0.01304097",
        "greeks[0].gamma": "-0.00000124",
        "greeks[0].theta": "16.11648100",
        "greeks[0].vega": "-3.83444011",
    },
    "options/RISK_LEVEL_CHANGE.json": {
        "risk_level": "REDUCE_ONLY",
        "margin_balance": "1534.11708371",
        "maintenance_margin": "254789.11708371",
    },
    "options/listenKeyExpired.json": {"event_time": "1736996475556"},
    "portfolio/CONDITIONAL_ORDER_TRADE_UPDATE.json": {
        "business_unit": "UM",
        "strategy_order.strategy_id": 176057039,
        "strategy_order.strategy_type": "TRAILING_STOP_MARKET",
        "strategy_order.strategy_status": "NEW",
        "strategy_order.update_time": 1669262908216,
        "strategy_order.callback_rate": "5.0",
    },
    "portfolio/ALGO_UPDATE.json": {
        "business_unit": "UM",
        "algo_order.client_algo_id": "Q5xaq5EGKgXXa0fD7fs0Ip",
        "algo_order.algo_status": "CANCELED",
    },
    "portfolio/executionReport.json": {
        "update_id": 8641984,
        "counter_order_id": 37,
        "commission_asset": None,
        "expiry_reason": "INSUFFICIENT_LIQUIDITY",
    },
    "portfolio/outboundAccountPosition.json": {
        "update_id": 1027053479517,
        "balances[0].free": "10000.000000",
    },
    "portfolio/balanceUpdate.json": {"update_id": 1027053479517, "balance_delta": "100.00000000"},
    "portfolio/liabilityChange.json": {
        "liability_type": "BORROW",
        "transaction_id": 1352286576452864727,
        "total_liability": "1.03476851",
    },
    "portfolio/openOrderLoss.json": {"losses[1].asset": "BNB", "losses[1].amount": "-12.1232313"},
    "portfolio/riskLevelChange.json": {"uni_mmr": "1.99999999", "risk_level": "MARGIN_CALL"},
    "portfolio/listenKeyExpired.json": {"event_time": 1576653824250, "listen_key": UNSET},
    "portfolio_pro/riskLevelChange.json": {
        "account_equity": "30.23416728",
        "maintenance_margin": "15.11708371",
    },
    "portfolio_pro/PM_PRO_ACCOUNT_UPDATE.json": {
        "uni_mmr": "1.99999999",
        "initial_margin": "20.6783833",
        "available_balance": "3.98972738",
        "virtual_max_withdraw": "3.98972738",
    },
}


def test_every_sample_has_readable_name_checks() -> None:
    assert sorted(READABLE) == sorted(f"{p.parent.name}/{p.name}" for p in SAMPLES)
    assert {path.parent.name for path in SAMPLES} <= set(MARKETS)


@pytest.mark.parametrize("name", sorted(READABLE))
def test_readable_attribute_names_give_the_sample_values(name: str) -> None:
    event = decode(sample(name), name.partition("/")[0])
    for path, expected in READABLE[name].items():
        value = resolve(event, path)
        assert value == expected, path
        assert type(value) is type(expected), path


# --- quirks, extras, absence and null ---------------------------------------------------------


@pytest.mark.parametrize("event_time", [1736996475556, "1736996475556"])
def test_listen_key_expired_takes_its_time_as_a_number_or_a_string(event_time: int | str) -> None:
    payload = {**sample("usdm/listenKeyExpired.json"), "E": event_time}
    event = decode(payload)
    assert isinstance(event, ListenKeyExpired)
    assert event.event_time == event_time
    assert type(event.event_time) is type(event_time)
    assert event.to_dict() == payload


def test_listen_key_expired_keeps_the_key_out_of_its_repr() -> None:
    payload = sample("usdm/listenKeyExpired.json")
    event = decode(payload)
    assert event.listen_key == payload["listenKey"]
    assert payload["listenKey"] not in repr(event)


def test_unknown_fields_round_trip_at_every_level() -> None:
    payload = copy.deepcopy(sample("usdm/ACCOUNT_UPDATE.json"))
    payload["zz"] = {"new": [1, "2"]}
    payload["a"]["S"] = "BTCUSDT"
    payload["a"]["xx"] = None
    payload["a"]["B"][0]["nb"] = "1.5"
    payload["a"]["P"][0]["np"] = True
    event = decode(payload)
    assert event.additional_properties == {"zz": {"new": [1, "2"]}}
    assert event.update_data.funding_symbol == "BTCUSDT"
    assert event.update_data.additional_properties == {"xx": None}
    assert event.update_data.balances[0]["nb"] == "1.5"
    assert event.update_data.positions[0]["np"] is True
    assert event.to_dict() == payload


def test_decoding_leaves_the_payload_untouched() -> None:
    payload = sample("usdm/ORDER_TRADE_UPDATE.json")
    before = copy.deepcopy(payload)
    decode(payload)
    assert payload == before


def test_absent_optional_fields_stay_absent() -> None:
    payload = copy.deepcopy(sample("usdm/ORDER_TRADE_UPDATE.json"))
    for wire in ("N", "n", "AP", "cr", "si", "ss", "gtd", "er"):
        del payload["o"][wire]
    event = decode(payload)
    assert isinstance(event, OrderTradeUpdate)
    assert event.order.commission_asset is UNSET
    assert event.order.commission is UNSET
    assert event.order.activation_price is UNSET
    assert event.order.modify_id is UNSET
    assert event.account_alias is UNSET
    assert event.business_unit is UNSET
    out = event.to_dict()
    assert out == payload
    assert "N" not in out["o"]
    assert "M" not in out["o"]
    assert "fs" not in out


def test_an_unknown_field_in_place_of_an_absent_optional_one_is_kept() -> None:
    # from_dict counts the keys it knows instead of testing every key: the same number of keys,
    # one absent optional field and one unknown field, must still keep the unknown one.
    payload = copy.deepcopy(sample("usdm/ORDER_TRADE_UPDATE.json"))
    del payload["o"]["N"]
    payload["o"]["zz"] = "new"
    event = decode(payload)
    assert isinstance(event, OrderTradeUpdate)
    assert event.order.commission_asset is UNSET
    assert event.order.additional_properties == {"zz": "new"}
    assert event.to_dict() == payload


def _model_classes() -> list[type[Any]]:
    return [cls for _, cls in sorted(vars(models).items()) if inspect.isclass(cls) and attrs.has(cls)]


@pytest.mark.parametrize("cls", _model_classes(), ids=lambda cls: cls.__name__)
def test_a_model_has_nothing_for_its_constructor_to_run(cls: type[Any]) -> None:
    # The generated from_dict sets the attributes of cls.__new__(cls) itself, skipping the
    # constructor (the decoding hot path): sound only while the constructor does nothing else.
    assert not any(f.validator or f.converter for f in attrs.fields(cls))
    assert not hasattr(cls, "__attrs_post_init__")
    assert not hasattr(cls, "__attrs_pre_init__")
    assert "__setattr__" not in vars(cls)


def test_a_subclass_is_decoded_by_its_constructor() -> None:
    @attrs.define
    class Noted(OrderTradeUpdateOrder):
        note: str = "checked"

        def __attrs_post_init__(self) -> None:
            self.note += "!"

    payload = copy.deepcopy(sample("usdm/ORDER_TRADE_UPDATE.json")["o"])
    payload["zz"] = 1
    order = Noted.from_dict(payload)
    assert type(order) is Noted
    assert order.note == "checked!"
    assert order.order_id == payload["i"]
    assert order.additional_properties == {"zz": 1}
    assert order.to_dict() == payload


@pytest.mark.parametrize("path", SAMPLES, ids=sample_id)
def test_decoding_makes_the_model_the_constructor_makes(path: Path) -> None:
    event = decode_sample(path)

    def rebuilt(model: Any) -> Any:
        if isinstance(model, list):
            return [rebuilt(item) for item in model]
        if not attrs.has(type(model)):
            return model
        fields = attrs.fields(type(model))
        made = type(model)(**{f.name: rebuilt(getattr(model, f.name)) for f in fields if f.init})
        made.additional_properties = dict(model.additional_properties)
        return made

    assert rebuilt(event) == event
    assert repr(rebuilt(event)) == repr(event)


def test_a_null_stays_null() -> None:
    payload = sample("spot/executionReport.json")
    event = decode(payload)
    assert isinstance(event, ExecutionReport)
    assert event.commission_asset is None
    assert event.to_dict()["N"] is None
    filled = decode({**payload, "N": "BNB"})
    assert filled.commission_asset == "BNB"


def test_later_additions_decode_when_they_arrive() -> None:
    otu = copy.deepcopy(sample("usdm/ORDER_TRADE_UPDATE.json"))
    otu["o"].update({"x": "AMENDMENT", "M": "modify-1"})
    assert decode(otu).order.modify_id == "modify-1"
    algo = copy.deepcopy(sample("usdm/ALGO_UPDATE.json"))
    algo["o"]["ia"] = False
    assert decode(algo).order.is_activated is False
    report = {**sample("spot/executionReport.json"), "eR": "UNFILLED_IOC_QUANTITY_EXPIRED"}
    assert decode(report).expiry_reason == "UNFILLED_IOC_QUANTITY_EXPIRED"
    for payload in (otu, algo, report):
        assert decode(payload).to_dict() == payload


def test_an_event_type_the_spec_does_not_know_keeps_its_raw_payload() -> None:
    payload = {"e": "uniMMRDrop", "E": 1761700000000, "x": {"y": ["1.0"]}, "u": None}
    event = decode(payload)
    assert isinstance(event, UnknownEvent)
    assert event.event_type == "uniMMRDrop"
    assert event.event_time == 1761700000000
    assert event["x"] == {"y": ["1.0"]}
    assert event.to_dict() == payload


def test_an_unknown_payload_without_type_or_time_still_decodes() -> None:
    payload = {"result": None, "id": 1}
    event = decode(payload)
    assert isinstance(event, UnknownEvent)
    assert event.event_type is UNSET
    assert event.event_time is UNSET
    assert event.to_dict() == payload
