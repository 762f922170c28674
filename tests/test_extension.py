"""An operation added to the YAML gets the key header, retries and typed errors with no facade change.

The test does what a user does: copy the spec, add an operation, regenerate (into a temporary
folder, under another package name so that it can be imported beside the installed one), and
call the new operation with the facade's `client`.
"""

from __future__ import annotations

import asyncio
import importlib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
import yaml

from binance_userstream import AsyncUserDataStream, BackoffGate, ListenKeyNotFoundError, UserDataStream
from tests._scripted import LISTEN_KEY, Reply, ScriptedServer
from tests.conftest import API_KEY, FAST_RETRY, ROOT

FUTURES_OPERATION = {
    "tags": ["futures"],
    "operationId": "create_futures_listen_key",
    "summary": "Start a USD-M futures user data stream (USER_STREAM)",
    "security": [{"ApiKeyAuth": []}],
    "responses": {
        "200": {
            "description": "The listenKey.",
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ListenKey"}}},
        },
        "400": {"$ref": "#/components/responses/BadRequest"},
        "5XX": {"$ref": "#/components/responses/ServerError"},
    },
}


@pytest.fixture(scope="module")
def extended(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModuleType]:
    tmp = tmp_path_factory.mktemp("extended")
    spec = yaml.safe_load((ROOT / "spec" / "userdatastream.yaml").read_text())
    spec["paths"]["/fapi/v1/listenKey"] = {"post": FUTURES_OPERATION}
    (tmp / "spec.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    config = yaml.safe_load((ROOT / "spec" / "generator-config.yaml").read_text())
    config["package_name_override"] = "extended_client"
    (tmp / "config.yaml").write_text(yaml.safe_dump(config))
    out = tmp / "extended-client"
    subprocess.run(
        [
            *(sys.executable, str(ROOT / "scripts" / "generate.py")),
            *("--spec", str(tmp / "spec.yaml"), "--config", str(tmp / "config.yaml"), "--out", str(out)),
        ],
        check=True,
        capture_output=True,
    )
    sys.path.insert(0, str(out))
    try:
        yield importlib.import_module("extended_client.api.futures.create_futures_listen_key")
    finally:
        sys.path.remove(str(out))


def test_a_new_operation_is_sent_with_the_key_header_and_retried(
    extended: ModuleType, server: ScriptedServer, gate: BackoffGate
) -> None:
    server.script(Reply(status=503, body={"code": -1001, "msg": "busy"}), Reply(drop=True))
    with UserDataStream(API_KEY, server.url, retry=FAST_RETRY, gate=gate) as uds:
        parsed = extended.sync(client=uds.client)
    assert parsed.listen_key == LISTEN_KEY
    assert [(s.method, s.path) for s in server.requests] == [("POST", "/fapi/v1/listenKey")] * 3
    assert all(s.headers["x-mbx-apikey"] == API_KEY for s in server.requests)


def test_a_new_operation_raises_the_typed_errors(
    extended: ModuleType, server: ScriptedServer, gate: BackoffGate
) -> None:
    server.script(Reply(status=400, body={"code": -1125, "msg": "This listenKey does not exist."}))
    with UserDataStream(API_KEY, server.url, gate=gate) as uds, pytest.raises(ListenKeyNotFoundError):
        extended.sync(client=uds.client)


def test_a_new_operation_works_through_the_async_client_too(
    extended: ModuleType, server: ScriptedServer, gate: BackoffGate
) -> None:
    server.script(Reply(status=502, body={"code": -1001, "msg": "busy"}))

    async def go() -> str:
        async with AsyncUserDataStream(API_KEY, server.url, retry=FAST_RETRY, gate=gate) as uds:
            parsed = await extended.asyncio(client=uds.client)
            return str(parsed.listen_key)

    assert asyncio.run(go()) == LISTEN_KEY
    assert len(server.requests) == 2
    assert server.requests[-1].headers["x-mbx-apikey"] == API_KEY


def test_the_extension_really_came_from_the_edited_spec(extended: ModuleType) -> None:
    assert "USD-M futures" in (extended.sync.__doc__ or "")
    assert "extended-client" in Path(extended.__file__).parts
