"""The derivatives' account reads (issue 18, part 1): USD-M, COIN-M, Portfolio Margin and Options.

Each operation is in the spec at the path Binance documents today (USD-M's v3 account and position
risk), with the request weight its page states in `x-weight` and its page in `externalDocs`; it is
generated SIGNED (USER_DATA) or, for the server time, NONE; and the documented sample answer of its
page (tests/data/derivatives_read_samples.json, one per operationId), served over loopback, parses
through `uds.call(...)` into the generated model, every field under its readable name and type.
"""

from __future__ import annotations

import hashlib
import hmac
import importlib
import json
import time
from typing import Any
from unittest.mock import ANY
from urllib.parse import parse_qs

import pytest
from attrs import field, frozen
from binance_userstream_client import models
from binance_userstream_client.security import OPERATION_SECURITY, SIGNED_OPERATIONS

from binance_userstream import UserDataStream
from tests._scripted import Reply, ScriptedServer
from tests.conftest import API_KEY, FAST_RETRY, ROOT
from tests.test_spec_markets import SPEC

SECRET = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"
SAMPLES: dict[str, Any] = json.loads((ROOT / "tests" / "data" / "derivatives_read_samples.json").read_text())
SCHEMAS: dict[str, Any] = SPEC["components"]["schemas"]


@frozen
class Read:
    operation: str
    market: str
    path: str
    weight: int | dict[str, Any]
    signed: bool
    answer: str
    """The answer's schema; a list of them when `listed`."""
    listed: bool
    arguments: dict[str, Any] = field(factory=dict)
    """What the call sends: the parameters the operation requires."""


def _open_orders(symbol_weight: int = 1) -> dict[str, Any]:
    """Open orders: 1 for one symbol, 40 for all of them (every market's page says so)."""
    return {"default": 40, "with": {"symbol": symbol_weight}}


READS = [
    Read("get_usdm_account", "usdm", "/fapi/v3/account", 5, True, "UsdmAccount", False),
    Read("get_usdm_position_risk", "usdm", "/fapi/v3/positionRisk", 5, True, "UsdmPositionRisk", True),
    Read("get_usdm_open_orders", "usdm", "/fapi/v1/openOrders", _open_orders(), True, "UsdmOpenOrder", True),
    Read(
        "get_usdm_user_trades",
        "usdm",
        "/fapi/v1/userTrades",
        5,
        True,
        "UsdmTrade",
        True,
        {"symbol": "BTCUSDT"},
    ),
    Read("get_usdm_server_time", "usdm", "/fapi/v1/time", 1, False, "UsdmServerTime", False),
    Read("get_coinm_account", "coinm", "/dapi/v1/account", 5, True, "CoinmAccount", False),
    Read("get_coinm_position_risk", "coinm", "/dapi/v1/positionRisk", 1, True, "CoinmPositionRisk", True),
    Read(
        "get_coinm_open_orders", "coinm", "/dapi/v1/openOrders", _open_orders(), True, "CoinmOpenOrder", True
    ),
    Read(
        "get_coinm_user_trades",
        "coinm",
        "/dapi/v1/userTrades",
        _open_orders(20),
        True,
        "CoinmTrade",
        True,
        {"symbol": "BTCUSD_200626"},
    ),
    Read("get_coinm_server_time", "coinm", "/dapi/v1/time", 1, False, "CoinmServerTime", False),
    Read("get_portfolio_balance", "portfolio", "/papi/v1/balance", 20, True, "PortfolioBalance", True),
    Read(
        "get_portfolio_um_position_risk",
        "portfolio",
        "/papi/v1/um/positionRisk",
        5,
        True,
        "PortfolioUmPositionRisk",
        True,
    ),
    Read(
        "get_portfolio_cm_position_risk",
        "portfolio",
        "/papi/v1/cm/positionRisk",
        1,
        True,
        "PortfolioCmPositionRisk",
        True,
    ),
    Read(
        "get_portfolio_um_open_orders",
        "portfolio",
        "/papi/v1/um/openOrders",
        _open_orders(),
        True,
        "PortfolioUmOpenOrder",
        True,
    ),
    Read(
        "get_portfolio_cm_open_orders",
        "portfolio",
        "/papi/v1/cm/openOrders",
        _open_orders(),
        True,
        "PortfolioCmOpenOrder",
        True,
    ),
    Read(
        "get_portfolio_um_user_trades",
        "portfolio",
        "/papi/v1/um/userTrades",
        5,
        True,
        "PortfolioUmTrade",
        True,
        {"symbol": "BTCUSDT"},
    ),
    Read(
        "get_portfolio_cm_user_trades",
        "portfolio",
        "/papi/v1/cm/userTrades",
        _open_orders(20),
        True,
        "PortfolioCmTrade",
        True,
        {"symbol": "BTCUSD_200626"},
    ),
    Read("get_options_margin_account", "options", "/eapi/v1/marginAccount", 3, True, "OptionsAccount", False),
    Read("get_options_positions", "options", "/eapi/v1/position", 5, True, "OptionsPosition", True),
    Read(
        "get_options_open_orders",
        "options",
        "/eapi/v1/openOrders",
        _open_orders(),
        True,
        "OptionsOpenOrder",
        True,
    ),
    Read("get_options_user_trades", "options", "/eapi/v1/userTrades", 5, True, "OptionsTrade", True),
]
IDS = [read.operation for read in READS]
SIGNED = [read for read in READS if read.signed]
UNSIGNED = [read for read in READS if not read.signed]


def _call(read: Read, server: ScriptedServer) -> Any:
    module = importlib.import_module(f"binance_userstream_client.api.{read.market}.{read.operation}")
    model = list if read.listed else getattr(models, read.answer)
    with UserDataStream(API_KEY, server.url, market=read.market, api_secret=SECRET, retry=FAST_RETRY) as uds:
        return uds.call(module.sync_detailed, model, **read.arguments)


def _check_fields(value: Any, schema_name: str, payload: dict[str, Any]) -> None:
    """Every field of `payload` is a declared property of the schema, found on the model under its
    `x-python-name` with the payload's value and JSON type (nested objects likewise)."""
    properties = SCHEMAS[schema_name]["properties"]
    assert isinstance(value, getattr(models, schema_name))
    assert value.additional_properties == {}, (
        f"{schema_name} does not declare {set(value.additional_properties)}"
    )
    for wire, sent in payload.items():
        declared = properties[wire]
        got = getattr(value, declared["x-python-name"])
        if declared["type"] == "array":
            item = declared["items"]["$ref"].rpartition("/")[2]
            assert len(got) == len(sent)
            for one, one_sent in zip(got, sent, strict=True):
                _check_fields(one, item, one_sent)
        else:
            assert (type(got), got) == (type(sent), sent), f"{schema_name}.{wire}"


@pytest.mark.parametrize("read", READS, ids=IDS)
def test_each_read_is_in_the_spec_at_its_path_with_its_documented_weight_and_page(read: Read) -> None:
    operation = SPEC["paths"][read.path]["get"]
    assert operation["operationId"] == read.operation
    assert operation["tags"] == [read.market]
    assert operation["x-weight"] == read.weight
    assert operation["externalDocs"]["url"].startswith("https://developers.binance.com/docs/derivatives/")
    assert operation["externalDocs"]["description"]


@pytest.mark.parametrize("read", READS, ids=IDS)
def test_each_read_is_generated_signed_or_for_the_server_time_with_no_security(read: Read) -> None:
    assert OPERATION_SECURITY[read.operation] == ((("ApiKeyAuth", "Signature"),) if read.signed else ())
    assert (read.operation in SIGNED_OPERATIONS) is read.signed


@pytest.mark.parametrize("read", READS, ids=IDS)
def test_each_read_parses_binances_documented_sample_into_its_model_field_by_field(
    read: Read, server: ScriptedServer
) -> None:
    sample = SAMPLES[read.operation]
    server.script(Reply(body=sample))
    answer = _call(read, server)
    if read.listed:
        assert len(answer) == len(sample)
        for item, sent in zip(answer, sample, strict=True):
            _check_fields(item, read.answer, sent)
    else:
        _check_fields(answer, read.answer, sample)
    assert [(seen.method, seen.path) for seen in server.requests] == [("GET", read.path)]


@pytest.mark.parametrize("read", SIGNED, ids=[read.operation for read in SIGNED])
def test_a_signed_read_carries_a_timestamp_and_its_signature_last(read: Read, server: ScriptedServer) -> None:
    server.script(Reply(body=SAMPLES[read.operation]))
    before = int(time.time() * 1000)
    _call(read, server)
    (seen,) = server.requests
    assert seen.headers["x-mbx-apikey"] == API_KEY
    signed, _, last = seen.raw_query.rpartition("&")
    assert parse_qs(signed) == {**{k: [v] for k, v in read.arguments.items()}, "timestamp": [ANY]}
    assert before <= int(parse_qs(signed)["timestamp"][0]) <= int(time.time() * 1000)
    assert last == "signature=" + hmac.new(SECRET.encode(), signed.encode(), hashlib.sha256).hexdigest()


@pytest.mark.parametrize("read", UNSIGNED, ids=[read.operation for read in UNSIGNED])
def test_the_server_time_is_read_without_timestamp_or_signature(read: Read, server: ScriptedServer) -> None:
    server.script(Reply(body=SAMPLES[read.operation]))
    assert _call(read, server).server_time == 1499827319559
    (seen,) = server.requests
    assert seen.raw_query == ""


@pytest.mark.parametrize("read", READS, ids=IDS)
def test_the_operations_page_names_each_reads_answer_model_a_list_where_binance_answers_one(
    read: Read,
) -> None:
    page = (ROOT / "docs" / "reference" / "operations.md").read_text()
    text = page.split(f"\n### {read.operation}\n", 1)[1].split("\n### ", 1)[0]
    answer = f"list[{read.answer}]" if read.listed else read.answer
    assert f"- Answer: `{answer}`\n" in text


def test_an_options_position_parses_as_binances_newer_options_trading_page_shows_it(
    server: ScriptedServer,
) -> None:
    """Binance's Options docs now also live under options-trading/ (its trade/Option-Position-Information
    page): that sample adds `time`, `bidQuantity` and `askQuantity`, and drops `reducibleQty`, `ror`
    and `positionCost`. https://developers.binance.com/docs/derivatives/options-trading/trade/Option-Position-Information"""
    (read,) = [read for read in READS if read.operation == "get_options_positions"]
    sample = SAMPLES["get_options_positions, options-trading page"]
    server.script(Reply(body=sample))
    (position,) = _call(read, server)
    _check_fields(position, "OptionsPosition", sample[0])
    assert (position.bid_quantity, position.ask_quantity, position.time) == (
        "0.0000",
        "0.0000",
        1762872654561,
    )
