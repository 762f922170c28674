"""The generated operations on the wire: method, path, key header, listenKey placement, parsing.

Wire facts (Binance's docs): POST/PUT/DELETE /api/v3/userDataStream; the key in X-MBX-APIKEY;
keepalive sends listenKey as a form body, close as a query parameter (as the seed renders them).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from binance_userstream_client import AuthenticatedClient
from binance_userstream_client.api.spot import close_spot_listen_key as close
from binance_userstream_client.api.spot import create_spot_listen_key as create
from binance_userstream_client.api.spot import keepalive_spot_listen_key as keepalive
from binance_userstream_client.models import BinanceError, Empty, ListenKey, ListenKeyForm

from tests._scripted import LISTEN_KEY, Reply, ScriptedServer
from tests.conftest import API_KEY


@pytest.fixture
def client(server: ScriptedServer) -> Iterator[AuthenticatedClient]:
    with AuthenticatedClient(
        base_url=server.url, token=API_KEY, prefix="", auth_header_name="X-MBX-APIKEY"
    ) as c:
        yield c


def test_create_posts_with_the_key_header_and_parses_the_listen_key(
    server: ScriptedServer, client: AuthenticatedClient
) -> None:
    parsed = create.sync(client=client)
    assert isinstance(parsed, ListenKey)
    assert parsed.listen_key == LISTEN_KEY
    [seen] = server.requests
    assert (seen.method, seen.path, seen.query, seen.body) == ("POST", "/api/v3/userDataStream", {}, b"")
    assert seen.headers["x-mbx-apikey"] == API_KEY


def test_keepalive_puts_the_listen_key_in_a_form_body(
    server: ScriptedServer, client: AuthenticatedClient
) -> None:
    parsed = keepalive.sync(client=client, body=ListenKeyForm(listen_key=LISTEN_KEY))
    assert isinstance(parsed, Empty)
    [seen] = server.requests
    assert (seen.method, seen.path, seen.query) == ("PUT", "/api/v3/userDataStream", {})
    assert seen.headers["content-type"] == "application/x-www-form-urlencoded"
    assert seen.form == {"listenKey": [LISTEN_KEY]}
    assert seen.headers["x-mbx-apikey"] == API_KEY


def test_close_deletes_with_the_listen_key_in_the_query(
    server: ScriptedServer, client: AuthenticatedClient
) -> None:
    parsed = close.sync(client=client, listen_key=LISTEN_KEY)
    assert isinstance(parsed, Empty)
    [seen] = server.requests
    assert (seen.method, seen.path, seen.query, seen.body) == (
        "DELETE",
        "/api/v3/userDataStream",
        {"listenKey": [LISTEN_KEY]},
        b"",
    )
    assert seen.headers["x-mbx-apikey"] == API_KEY


@pytest.mark.parametrize("status", [400, 401, 403, 418, 429, 500, 503])
def test_error_bodies_parse_into_binance_error(
    server: ScriptedServer, client: AuthenticatedClient, status: int
) -> None:
    server.script(Reply(status=status, body={"code": -1125, "msg": "This listenKey does not exist."}))
    response = keepalive.sync_detailed(client=client, body=ListenKeyForm(listen_key=LISTEN_KEY))
    assert response.status_code == status
    assert response.parsed == BinanceError(code=-1125, msg="This listenKey does not exist.")


def test_retired_answer_parses_as_html_text(server: ScriptedServer, client: AuthenticatedClient) -> None:
    """Production answers 410 with an HTML body since 2026-02-20 (spot CHANGELOG 2026-01-21)."""
    html = b"<html><body><h1>410 Gone</h1></body></html>"
    server.script(Reply(status=410, raw=html, content_type="text/html"))
    response = close.sync_detailed(client=client, listen_key=LISTEN_KEY)
    assert response.status_code == 410
    assert response.parsed == html.decode()


@pytest.mark.anyio
async def test_async_operations_speak_the_same_wire_format(server: ScriptedServer) -> None:
    async with AuthenticatedClient(
        base_url=server.url, token=API_KEY, prefix="", auth_header_name="X-MBX-APIKEY"
    ) as c:
        created = await create.asyncio(client=c)
        assert isinstance(created, ListenKey)
        assert isinstance(await keepalive.asyncio(client=c, body=ListenKeyForm(listen_key=LISTEN_KEY)), Empty)
        assert isinstance(await close.asyncio(client=c, listen_key=LISTEN_KEY), Empty)
    assert [(s.method, s.headers["x-mbx-apikey"]) for s in server.requests] == [
        ("POST", API_KEY),
        ("PUT", API_KEY),
        ("DELETE", API_KEY),
    ]


def test_the_generated_client_keeps_the_api_key_out_of_its_repr(client: AuthenticatedClient) -> None:
    client.get_httpx_client()  # fills the default headers with the key
    assert API_KEY not in repr(client)
