"""Every live listenKey market is in the spec, under its own tag, as Binance documents it.

Sources: Binance derivatives docs, "User Data Streams" of USD-M futures
(developers.binance.com/docs/derivatives/usds-margined-futures/user-data-streams), COIN-M,
Portfolio Margin and Options; each page documents POST/PUT/DELETE with weight 1, no parameter on
keepalive and close, USD-M's keepalive answering the extended key, COIN-M's the key or `{}` (Binance's
COIN-M SDK models it so since 2026-01-13), and the others `{}`.
"""

from __future__ import annotations

from http import HTTPStatus

import pytest
import yaml
from binance_userstream_client.models import Empty, ListenKey, ListenKeyForm
from binance_userstream_client.types import Response

from binance_userstream import MARKETS
from tests.conftest import ROOT

SPEC = yaml.safe_load((ROOT / "spec" / "userdatastream.yaml").read_text())
GENERATED = ROOT / "generated" / "binance-userstream-client"
SECRET = "pqia91ma19a5s61cv6a81va65sdf19v8a65a1a5s61cv6a81va65sdf19v8a65a1"

DERIVATIVES = {
    # market: (path, the keepalive's success schema)
    "usdm": ("/fapi/v1/listenKey", "ListenKey"),
    "coinm": ("/dapi/v1/listenKey", "KeepaliveAnswer"),
    "portfolio": ("/papi/v1/listenKey", "Empty"),
    "options": ("/eapi/v1/listenKey", "Empty"),
}
VERBS = {"post": "create", "put": "keepalive", "delete": "close"}


def _ok_schema(operation: dict) -> str:
    ref = operation["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
    return str(ref).rpartition("/")[2]


@pytest.mark.parametrize("market", DERIVATIVES)
@pytest.mark.parametrize("method", VERBS)
def test_each_derivatives_operation_is_tagged_and_named_after_its_market(market: str, method: str) -> None:
    operation = SPEC["paths"][DERIVATIVES[market][0]][method]
    assert operation["tags"] == [market]
    assert operation["operationId"] == f"{VERBS[method]}_{market}_listen_key"
    assert operation["security"] == [{"ApiKeyAuth": []}]
    assert "Weight: 1" in operation["description"]
    assert not operation.get("deprecated", False)


@pytest.mark.parametrize("market", DERIVATIVES)
@pytest.mark.parametrize("method", ["put", "delete"])
def test_derivatives_keepalive_and_close_take_no_parameter(market: str, method: str) -> None:
    operation = SPEC["paths"][DERIVATIVES[market][0]][method]
    assert "parameters" not in operation
    assert "requestBody" not in operation


@pytest.mark.parametrize("market", DERIVATIVES)
def test_each_market_keepalive_answers_as_documented(market: str) -> None:
    path, schema = DERIVATIVES[market]
    assert _ok_schema(SPEC["paths"][path]["put"]) == schema
    assert _ok_schema(SPEC["paths"][path]["post"]) == "ListenKey"
    assert _ok_schema(SPEC["paths"][path]["delete"]) == "Empty"


@pytest.mark.parametrize("market", list(MARKETS))
def test_the_market_table_names_the_hosts_the_spec_lists(market: str) -> None:
    """One truth: the facade's named hosts are the servers of the market's path in the spec."""
    row = MARKETS[market]
    path = SPEC["paths"][_path_of(market)]
    servers = [server["url"] for server in path["servers"]]
    assert servers[0] == row.production
    if market in KEY_OF:  # another market's key: the hosts it is served on (PM Pro has no testnet)
        assert set(row.hosts.values()) <= set(servers)
    else:
        assert set(servers) == set(row.hosts.values())


def _path_of(market: str) -> str:
    return next(p for p, item in SPEC["paths"].items() if item.get("post", {}).get("tags") == [_tag(market)])


#: Markets whose listenKey is another's: Portfolio Margin Pro's is USD-M's (POST /fapi/v1/listenKey,
#: https://developers.binance.com/docs/derivatives/portfolio-margin-pro/portfolio-margin-pro-user-data-stream).
KEY_OF = {"portfolio_pro": "usdm"}


def _tag(market: str) -> str:
    """The spec's tag of the operations a market calls: its own, or the market whose key it keeps."""
    return KEY_OF.get(market, market)


#: The markets whose listenKey operations are in the spec (margin's were retired before they were).
WITH_LISTEN_KEYS = [name for name, row in MARKETS.items() if row.create is not None]


@pytest.mark.parametrize("market", WITH_LISTEN_KEYS)
def test_the_market_table_calls_the_operations_generated_for_its_tag(market: str) -> None:
    row, tag = MARKETS[market], _tag(market)
    for verb in VERBS.values():
        module = getattr(row, verb)
        assert module.__name__ == f"binance_userstream_client.api.{tag}.{verb}_{tag}_listen_key"


def test_spot_stays_in_the_spec_deprecated_with_the_410_it_gets_today() -> None:
    item = SPEC["paths"]["/api/v3/userDataStream"]
    for method in VERBS:
        assert item[method]["tags"] == ["spot"]
        assert item[method]["deprecated"] is True
        assert item[method]["responses"]["410"] == {"$ref": "#/components/responses/Retired"}


def test_a_generated_model_keeps_the_listen_key_out_of_its_repr() -> None:
    for model in (ListenKey(listen_key=SECRET), ListenKeyForm(listen_key=SECRET)):
        assert SECRET not in repr(model)
        assert model.listen_key == SECRET
        assert model.to_dict()["listenKey"] == SECRET


def test_a_generated_response_keeps_its_raw_body_out_of_its_repr() -> None:
    body = b'{"listenKey": "' + SECRET.encode() + b'"}'
    response = Response(
        status_code=HTTPStatus.OK, content=body, headers={}, parsed=ListenKey(listen_key=SECRET)
    )
    assert SECRET not in repr(response)
    assert response.content == body


def test_models_without_a_credential_keep_their_usual_repr() -> None:
    assert repr(Empty()) == "Empty(additional_properties={})"


def test_the_generated_readme_says_how_to_send_the_key() -> None:
    """The generator's stock README says `token=` alone, which sends `Authorization: Bearer`."""
    readme = (GENERATED / "README.md").read_text()
    assert 'auth_header_name="X-MBX-APIKEY"' in readme
    assert 'prefix=""' in readme
    assert "SuperSecretToken" not in readme
    for tag in {_tag(market) for market in WITH_LISTEN_KEYS}:
        assert f"binance_userstream_client.api.{tag}`" in readme
        assert f"create_{tag}_listen_key" in readme
