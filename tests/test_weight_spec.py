"""`x-weight` in the spec: each operation's request weight, read by scripts/generate.py into the
generated table the HTTP layer counts from (`binance_userstream_client.weights`), and checked.

The agreed shape: an integer, or `{default: <int>, with: {<parameter>: <int>}}` (the weight when
that parameter is sent, e.g. spot's open orders, 6 with a symbol and 80 without:
https://developers.binance.com/docs/binance-spot-api-docs/rest-api/trading-endpoints); and
`x-weight-per: uid` where Binance counts per UID (the margin listenToken: "Weight (UID): 1",
https://developers.binance.com/docs/margin_trading/trade-data-stream).
"""

from __future__ import annotations

import copy
import importlib.util
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from binance_userstream_client.weights import OPERATION_WEIGHTS

from tests.conftest import ROOT

SPEC = yaml.safe_load((ROOT / "spec" / "userdatastream.yaml").read_text())
_GENERATE_SPEC = importlib.util.spec_from_file_location("_generate_script", ROOT / "scripts" / "generate.py")
assert _GENERATE_SPEC is not None
assert _GENERATE_SPEC.loader is not None
GENERATE = importlib.util.module_from_spec(_GENERATE_SPEC)
_GENERATE_SPEC.loader.exec_module(GENERATE)

LISTEN_KEY_WEIGHTS = {"spot": 2, "usdm": 1, "coinm": 1, "portfolio": 1, "options": 1}


def with_weight(path: str, method: str, **extensions: Any) -> dict[str, Any]:
    spec = copy.deepcopy(SPEC)
    spec["paths"][path][method].update(extensions)
    return spec


@pytest.mark.parametrize("market", sorted(LISTEN_KEY_WEIGHTS))
@pytest.mark.parametrize("action", ["create", "keepalive", "close"])
def test_each_listen_key_operation_has_its_documented_weight_per_ip(market: str, action: str) -> None:
    """Spot 2 since 2023-08-25 (binance-spot-api-docs CHANGELOG); the derivatives 1 each
    (https://developers.binance.com/docs/derivatives/usds-margined-futures/user-data-streams and the
    COIN-M, Portfolio Margin and Options user-data-streams pages)."""
    assert OPERATION_WEIGHTS[f"{action}_{market}_listen_key"] == (LISTEN_KEY_WEIGHTS[market], (), "ip")


def test_the_margin_listen_token_weighs_1_per_uid() -> None:
    assert OPERATION_WEIGHTS["create_margin_listen_token"] == (1, (), "uid")


def test_the_generated_table_is_the_spec_read() -> None:
    assert dict(OPERATION_WEIGHTS) == GENERATE.weight_table(SPEC)


def test_a_weight_by_parameter_is_read_in_the_specs_order() -> None:
    spec = with_weight(
        "/sapi/v1/userListenToken", "post", **{"x-weight": {"default": 80, "with": {"symbol": 6}}}
    )
    assert GENERATE.weight_table(spec)["create_margin_listen_token"] == (80, (("symbol", 6),), "uid")


def test_the_spec_as_committed_has_no_weight_problem() -> None:
    assert GENERATE.weight_problems(SPEC) == []


@pytest.mark.parametrize(
    ("extensions", "problem"),
    [
        ({"x-weight": "2"}, "x-weight must be an integer or {default: <int>, with: {<parameter>: <int>}}"),
        ({"x-weight": -1}, "x-weight must be"),
        ({"x-weight": True}, "x-weight must be"),
        ({"x-weight": {"with": {"symbol": 6}}}, "x-weight must be"),
        ({"x-weight": {"default": 80, "by": {"symbol": 6}}}, "x-weight must be"),
        ({"x-weight": {"default": "80", "with": {"symbol": 6}}}, "x-weight's default must be"),
        ({"x-weight": {"default": 80, "with": {}}}, "with must map parameters to weights"),
        ({"x-weight": {"default": 80, "with": {"limit": 6}}}, "with names 'limit', not a parameter of it"),
        ({"x-weight": {"default": 80, "with": {"symbol": 1.5}}}, "with gives 'symbol' 1.5"),
        ({"x-weight": 1, "x-weight-per": "account"}, "x-weight-per must be one of ip, uid"),
    ],
)
def test_a_malformed_weight_is_named_with_its_operation(extensions: dict[str, Any], problem: str) -> None:
    spec = with_weight("/sapi/v1/userListenToken", "post", **extensions)
    (found,) = GENERATE.weight_problems(spec)
    assert found.startswith("POST /sapi/v1/userListenToken (create_margin_listen_token): ")
    assert problem in found


def test_the_generator_stops_on_a_malformed_weight(tmp_path: Path) -> None:
    spec = with_weight("/fapi/v1/listenKey", "post", **{"x-weight": "heavy"})
    edited = tmp_path / "spec.yaml"
    edited.write_text(yaml.safe_dump(spec, sort_keys=False))
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "generate.py"),
            "--spec",
            str(edited),
            "--out",
            str(tmp_path / "o"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode != 0
    assert "POST /fapi/v1/listenKey (create_usdm_listen_key): x-weight must be" in proc.stderr
    assert not (tmp_path / "o").exists()
