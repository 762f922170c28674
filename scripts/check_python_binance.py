"""python-binance 1.0.37 against the simulator, unchanged but for its URLs: `AsyncClient.create()` and
every user socket it has, each receiving pushed events.

- `AsyncClient.create()` pings (`GET /api/v3/ping`) and reads the server time (`GET /api/v3/time`).
- `user_socket()` (spot) subscribes with `userDataStream.subscribe.signature` on the WebSocket API;
  `margin_socket()` and `isolated_margin_socket(symbol)` mint a listenToken with
  `POST /sapi/v1/userListenToken` and subscribe with `userDataStream.subscribe.listenToken`.
- `futures_user_socket()` (USD-M; `futures_socket()` is the same socket) mints a listenKey with
  `POST /fapi/v1/listenKey` and connects to `<FSTREAM_URL>private/ws?listenKey=<key>`, with no
  `events=` list: unicorn's maintainers report (their PR #446, 2026-05-21, tested on production)
  that production delivers nothing to such a socket. That is python-binance's to fix; this check
  runs the simulator with its lenient switch, `strict_events=False`, which delivers every event
  to a socket without a list, so that the rest of the socket is checked.
- `coin_futures_user_socket()` (COIN-M; `coin_futures_socket()` is the same) mints one with
  `POST /dapi/v1/listenKey` and connects to `<DSTREAM_URL>ws/<key>`.
- `portfolio_margin_socket()` mints one with `POST /papi/v1/listenKey` and connects to
  `<FSTREAM_URL>pm/ws/<key>`.
- Options: python-binance 1.0.37 has no Options user socket (no `/eapi/v1/listenKey` call), so there is
  none to check.
- The account reads its users call to reconcile, answered from the simulator's ledger: `get_account`,
  `get_open_orders`, `get_my_trades` (spot), `futures_account_trades`, `futures_position_information`,
  `futures_get_open_orders` (USD-M), each signed and checked against `sim.ledger`.

Only the class attributes for the URLs point at the simulator; the key pair is the test account's
documented one. Not part of `make test` (python-binance lives in the bench's venv): run it with

    make .venv-bench/.installed && .venv-bench/bin/python scripts/check_python_binance.py
"""

import asyncio
from collections.abc import Callable
from typing import Any

from binance import AsyncClient, BinanceSocketManager

from binance_userstream.simulator import TEST_API_KEY, TEST_API_SECRET, Simulator

#: Real seconds a socket may take to connect, or an event to arrive.
WAIT = 5.0


def point_at(sim: Simulator) -> None:
    """Every REST and stream URL python-binance's user sockets use, on the simulator."""
    AsyncClient.API_URL = sim.url + "/api"
    AsyncClient.MARGIN_API_URL = sim.url + "/sapi"
    AsyncClient.FUTURES_URL = sim.url + "/fapi"
    AsyncClient.FUTURES_COIN_URL = sim.url + "/dapi"
    AsyncClient.PAPI_URL = sim.url + "/papi"
    AsyncClient.WS_API_URL = sim.ws_api_url
    streams = sim.stream_url + "/"
    BinanceSocketManager.FSTREAM_URL = streams
    BinanceSocketManager.DSTREAM_URL = streams


async def connected(count: Callable[[], int]) -> None:
    """Wait until the simulator counts the socket's connection (`count()` positive)."""
    async with asyncio.timeout(WAIT):
        while count() == 0:
            await asyncio.sleep(0.02)


async def receive(socket: Any, count: int) -> list[dict[str, Any]]:
    return [await asyncio.wait_for(socket.recv(), WAIT) for _ in range(count)]


async def main(sim: Simulator) -> dict[str, list[dict[str, Any]]]:
    client = await AsyncClient.create(TEST_API_KEY, TEST_API_SECRET)
    got: dict[str, list[dict[str, Any]]] = {}
    try:
        manager = BinanceSocketManager(client)
        async with manager.user_socket() as spot:
            got["spot"] = await receive(spot, len(sim.traffic("spot", TEST_API_KEY)))
        async with manager.margin_socket() as margin:
            sim.push("margin", {"e": "balanceUpdate", "E": 1, "a": "BTC", "d": "1.00000000", "T": 1})
            got["margin"] = await receive(margin, 1)
        async with manager.isolated_margin_socket("ETHBTC") as isolated:
            event = {"e": "balanceUpdate", "E": 2, "a": "ETH", "d": "2.00000000", "T": 2}
            sim.push("margin", event, symbol="ETHBTC")
            got["isolated margin"] = await receive(isolated, 1)
        async with manager.futures_user_socket() as usdm:
            await connected(lambda: sim.stream_connections("usdm"))
            got["usdm"] = await receive(usdm, len(sim.traffic("usdm")))
        async with manager.coin_futures_user_socket() as coinm:
            await connected(lambda: sim.stream_connections("coinm"))
            order = {"symbol": "BTCUSD_PERP", "asset": "BTC", "quantity": "2", "balance": "100.00000000"}
            got["coinm"] = await receive(coinm, len(sim.traffic("coinm", **order)))
        async with manager.portfolio_margin_socket() as portfolio:
            await connected(lambda: sim.stream_connections("portfolio"))
            got["portfolio"] = await receive(portfolio, len(sim.traffic("portfolio")))
    finally:
        await client.close_connection()
    return got


async def reads(sim: Simulator) -> None:
    """The signed account reads, after an open spot order and a filled USD-M one, agree with the ledger."""
    spot_order = sim.place_order("spot", symbol="BTCUSDT", side="BUY", quantity="0.01", price="43000")
    usdm_order = sim.place_order("usdm", symbol="ETHUSDT", side="SELL", quantity="0.5", price="2300")
    sim.fill_order("usdm", usdm_order)
    client = await AsyncClient.create(TEST_API_KEY, TEST_API_SECRET)
    try:
        balances = {b["asset"]: b for b in (await client.get_account())["balances"]}
        assert balances["USDT"]["locked"].startswith("430"), balances
        opened = await client.get_open_orders(symbol="BTCUSDT")
        assert [o["orderId"] for o in opened] == [spot_order], opened  # the traffic's orders filled
        spot_trades = await client.get_my_trades(symbol="BTCUSDT")
        assert [t["id"] for t in spot_trades] == [
            t.trade_id for t in sim.ledger("spot").trades if t.symbol == "BTCUSDT"
        ], spot_trades
        trades = await client.futures_account_trades(symbol="ETHUSDT")
        ledger = sim.ledger("usdm")
        assert [t["id"] for t in trades] == [t.trade_id for t in ledger.trades if t.symbol == "ETHUSDT"]
        positions = await client.futures_position_information(symbol="ETHUSDT")
        assert [p["positionAmt"] for p in positions] == ["-0.5"], positions
        assert await client.futures_get_open_orders(symbol="ETHUSDT") == []
    finally:
        await client.close_connection()
    print(
        "account reads: get_account, get_open_orders, get_my_trades, futures_account_trades,",
        "futures_position_information, futures_get_open_orders agree with the ledger",
    )


def check(got: dict[str, list[dict[str, Any]]]) -> None:
    for socket, events in got.items():
        print(f"{socket}:", [(e["e"], e.get("X") or e.get("o", {}).get("X")) for e in events])
    assert [e["e"] for e in got["spot"]] == ["executionReport", "outboundAccountPosition"] * 3
    assert got["spot"][-2]["X"] == "FILLED"
    assert got["margin"][0]["a"] == "BTC"
    assert got["isolated margin"][0]["a"] == "ETH"
    for socket, symbol in (("usdm", "BTCUSDT"), ("coinm", "BTCUSD_PERP"), ("portfolio", "BTCUSDT")):
        updates = [e for e in got[socket] if e["e"] == "ORDER_TRADE_UPDATE"]
        assert [u["o"]["X"] for u in updates] == ["NEW", "PARTIALLY_FILLED", "FILLED"], socket
        assert updates[0]["o"]["s"] == symbol, socket
        assert any(e["e"] == "ACCOUNT_UPDATE" for e in got[socket]), socket


if __name__ == "__main__":
    with Simulator(strict_events=False) as sim:  # python-binance's USD-M socket sends no events= (above)
        point_at(sim)
        check(asyncio.run(main(sim)))
        asyncio.run(reads(sim))
    print("python-binance 1.0.37 (AsyncClient.create(), every user socket, the account reads): OK")
