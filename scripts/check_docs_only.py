"""A client written from Binance's documentation alone (httpx and `websockets`), against the simulator.

Nothing of this project's client is used: each step is what a page of Binance's docs says.

- USD-M (https://developers.binance.com/docs/derivatives/usds-margined-futures/user-data-streams and
  its WebSocket "Important WebSocket Change Notice"): `POST /fapi/v1/listenKey` with the API key in
  `X-MBX-APIKEY`, then `wss://fstream.binance.com/private/ws?listenKey=<key>&events=A/B/...` naming
  the events wanted, `PUT` to keep the key alive, `DELETE` to close it.
- Spot (https://github.com/binance/binance-spot-api-docs, web-socket-api.md "User Data Stream
  requests" and "SIGNED request security"): on `wss://ws-api.binance.com:443/ws-api/v3`,
  `userDataStream.subscribe.signature` with `apiKey`, `timestamp` and the HMAC-SHA256 hex signature
  of the params sorted by name as `k=v&...`; events arrive as `{"subscriptionId": N, "event": ...}`;
  `userDataStream.unsubscribe` ends the subscription.

Only the hosts are the simulator's. The key pair is the example pair of Binance's documentation.
Not part of `make test`: `make peers` runs it in the bench's venv.
"""

import asyncio
import hashlib
import hmac
import json
import time
import uuid
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection, connect

from binance_userstream.simulator import TEST_API_KEY, TEST_API_SECRET, Simulator

WAIT = 5.0
USDM_EVENTS = "ORDER_TRADE_UPDATE/ACCOUNT_UPDATE/listenKeyExpired"


async def next_json(ws: ClientConnection) -> Any:
    return json.loads(await asyncio.wait_for(ws.recv(), WAIT))


async def usdm(sim: Simulator, rest_url: str, stream_url: str) -> list[str]:
    headers = {"X-MBX-APIKEY": TEST_API_KEY}
    async with httpx.AsyncClient(base_url=rest_url, headers=headers) as rest:
        created = await rest.post("/fapi/v1/listenKey")
        created.raise_for_status()
        key = created.json()["listenKey"]
        async with connect(f"{stream_url}/private/ws?listenKey={key}&events={USDM_EVENTS}") as ws:
            sent = sim.traffic("usdm", TEST_API_KEY)
            events = [(await next_json(ws))["e"] for _ in sent]
        kept = await rest.put("/fapi/v1/listenKey")
        assert kept.json() == {"listenKey": key}, kept.text  # USD-M's keepalive echoes the key
        closed = await rest.delete("/fapi/v1/listenKey")
        assert closed.json() == {}, closed.text
    return events


def signed(params: dict[str, Any]) -> dict[str, Any]:
    payload = "&".join(f"{name}={params[name]}" for name in sorted(params))
    signature = hmac.new(TEST_API_SECRET.encode(), payload.encode(), hashlib.sha256).hexdigest()
    return {**params, "signature": signature}


async def request(ws: ClientConnection, method: str, params: dict[str, Any]) -> Any:
    """Send one request and return its result (the answer with the same id; events may come first)."""
    ident = str(uuid.uuid4())
    await ws.send(json.dumps({"id": ident, "method": method, "params": params}))
    while True:
        answer = await next_json(ws)
        if answer.get("id") == ident:
            assert answer["status"] == 200, answer
            return answer["result"]


async def spot(sim: Simulator, ws_api_url: str) -> list[str]:
    async with connect(ws_api_url) as ws:
        params = signed({"apiKey": TEST_API_KEY, "timestamp": int(time.time() * 1000)})
        subscription = (await request(ws, "userDataStream.subscribe.signature", params))["subscriptionId"]
        sent = sim.traffic("spot", TEST_API_KEY)
        frames = [await next_json(ws) for _ in sent]
        assert all(frame["subscriptionId"] == subscription for frame in frames), frames
        assert await request(ws, "userDataStream.unsubscribe", {"subscriptionId": subscription}) == {}
        ended = await next_json(ws)
        assert ended["event"]["e"] == "eventStreamTerminated", ended
    return [frame["event"]["e"] for frame in frames]


async def main(sim: Simulator) -> None:
    stream_url = sim.stream_url
    usdm_events = await usdm(sim, sim.url, stream_url)
    spot_events = await spot(sim, sim.ws_api_url)
    print("usdm:", usdm_events)
    print("spot:", spot_events)
    assert usdm_events.count("ORDER_TRADE_UPDATE") == 3, usdm_events
    assert spot_events == ["executionReport", "outboundAccountPosition"] * 3, spot_events


if __name__ == "__main__":
    with Simulator() as sim:
        asyncio.run(main(sim))
    print("a client written from Binance's docs alone: OK")
