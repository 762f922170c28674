"""python-binance 1.0.37 against the simulator's WebSocket API, unchanged but for its URLs.

Its spot `user_socket()` subscribes with `userDataStream.subscribe.signature` on the WebSocket API,
its `margin_socket()` and `isolated_margin_socket(symbol)` mint a listenToken with
`POST /sapi/v1/userListenToken` and subscribe with `userDataStream.subscribe.listenToken`. Only the
class attributes for the URLs point at the simulator; the key pair is the test account's documented
one. Not part of `make test` (python-binance lives in the bench's venv): run it with

    make .venv-bench/.installed && .venv-bench/bin/python scripts/check_python_binance.py
"""

import asyncio

from binance import AsyncClient, BinanceSocketManager

from binance_userstream.simulator import TEST_API_KEY, TEST_API_SECRET, Simulator


async def main(sim: Simulator) -> None:
    AsyncClient.WS_API_URL = sim.ws_api_url
    AsyncClient.MARGIN_API_URL = sim.url + "/sapi"
    client = AsyncClient(TEST_API_KEY, TEST_API_SECRET)  # create() would GET /api/v3/ping and /time
    try:
        manager = BinanceSocketManager(client)
        async with manager.user_socket() as spot:
            sent = sim.traffic("spot", TEST_API_KEY)
            spot_events = [await asyncio.wait_for(spot.recv(), 5) for _ in sent]
        async with manager.margin_socket() as margin:
            sim.push("margin", {"e": "balanceUpdate", "E": 1, "a": "BTC", "d": "1.00000000", "T": 1})
            margin_event = await asyncio.wait_for(margin.recv(), 5)
        async with manager.isolated_margin_socket("ETHBTC") as isolated:
            event = {"e": "balanceUpdate", "E": 2, "a": "ETH", "d": "2.00000000", "T": 2}
            sim.push("margin", event, symbol="ETHBTC")
            isolated_event = await asyncio.wait_for(isolated.recv(), 5)
    finally:
        await client.close_connection()
    print("spot:", [(e["e"], e.get("X")) for e in spot_events])
    print("margin:", margin_event)
    print("isolated:", isolated_event)
    assert [e["e"] for e in spot_events] == ["executionReport", "outboundAccountPosition"] * 3
    assert spot_events[-2]["X"] == "FILLED"
    assert margin_event["a"] == "BTC"
    assert isolated_event["a"] == "ETH"


if __name__ == "__main__":
    with Simulator() as sim:
        asyncio.run(main(sim))
    print("python-binance 1.0.37: OK")
