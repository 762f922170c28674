"""The stream benchmark's WebSocket server: USD-M ORDER_TRADE_UPDATE events, numbered and timed.

`python scripts/bench_stream_server.py PORT [--impl websockets|aiohttp]`, in its own process. It
serves the routes the contenders open:

- `/private/ws?listenKey=K[&events=...]`: this project (with `events=`) and python-binance 1.0.37
  (without): raw event frames.
- `/private/stream`: Binance's own SDK, which then sends a JSON `SUBSCRIBE` naming the listenKey;
  it is answered `{"result": null, "id": ...}` and gets `{"stream": K, "data": event}` frames.
- `/public/...`, `/market/...` (the SDK opens them too): accepted, SUBSCRIBEs answered, no events.

It does no bookkeeping: the benchmark orchestrator says what the next user-data connection gets
with `GET /_bench/plan?count=N&rate=R` (R events per second, 0 for as fast as it can send), and
reads what the last run cost the server with `GET /_bench/stats`: wall time from the first send to
the last, the server's CPU over it (its idle share is the time it waited on the client), and the
wall time spent inside `send` (blocked on the socket's buffer once the client falls behind).

Each event is the documented payload (developers.binance.com ... Event-Order-Update, decimals as
strings) with the sequence number 1..N in the order id `o.i` (and `o.c`), and the send time in
nanoseconds (`time.time_ns()`, shared by every process on the machine) in `T`; `E` is the wall
time in ms. Frames are rendered from one template, so sending costs the server little.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

#: The documented sample (USD-M Event-Order-Update), a trade fill; %(...)d are filled per event.
TEMPLATE = (
    '{"e":"ORDER_TRADE_UPDATE","E":%d,"T":%d,"o":{"s":"BTCUSDT","c":"bench-%d","S":"SELL",'
    '"o":"TRAILING_STOP_MARKET","f":"GTC","q":"0.001","p":"0","ap":"0","sp":"7103.04","x":"NEW",'
    '"X":"NEW","i":%d,"l":"0","z":"0","L":"0","N":"USDT","n":"0","T":1568879465650,"t":0,"b":"0",'
    '"a":"9.91","m":false,"R":false,"wt":"CONTRACT_PRICE","ot":"TRAILING_STOP_MARKET","ps":"LONG",'
    '"cp":false,"AP":"7476.89","cr":"5.0","pP":false,"si":0,"ss":0,"rp":"0","V":"EXPIRE_TAKER",'
    '"pm":"OPPONENT","gtd":0,"er":"0"}}'
)


def event(seq: int) -> str:
    now = time.time_ns()
    return TEMPLATE % (now // 1_000_000, now, seq, seq)


class Bench:
    """The plan for the next user-data connection, and what the last run cost."""

    def __init__(self, batch: int) -> None:
        self.batch = batch
        self.plan: dict[str, float] = {"count": 0, "rate": 0}
        self.stats: dict[str, Any] = {}
        self.runs = 0

    def set_plan(self, query: str) -> str:
        q = parse_qs(query)
        self.plan = {"count": int(q.get("count", ["0"])[0]), "rate": float(q.get("rate", ["0"])[0])}
        self.stats = {}
        return json.dumps(self.plan)

    async def run(self, out: Sender, wrap: str | None) -> None:
        """Send the plan's events through `out` (each wrapped in a stream envelope for `wrap`)."""
        count, rate = int(self.plan["count"]), self.plan["rate"]
        self.plan = {"count": 0, "rate": 0}  # a plan is for one connection
        if count <= 0:
            return
        self.runs += 1
        prefix = None if wrap is None else '{"stream":' + json.dumps(wrap) + ',"data":'
        in_send = 0.0
        cpu0, wall0 = time.process_time(), time.perf_counter()
        seq = 0
        while seq < count:
            due = count if rate <= 0 else min(count, int((time.perf_counter() - wall0) * rate) + 1)
            while seq < due:
                end = min(due, seq + self.batch)
                numbers = range(seq + 1, end + 1)
                batch = (
                    [event(n) for n in numbers]
                    if prefix is None
                    else [prefix + event(n) + "}" for n in numbers]
                )
                seq = end
                t = time.perf_counter()
                await out.send(batch)
                in_send += time.perf_counter() - t
            if seq < count:
                await asyncio.sleep(max(0.0, wall0 + seq / rate - time.perf_counter()))
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
        self.stats = {
            "events": count,
            "rate": rate,
            "batch": self.batch,
            "wall_s": round(wall, 4),
            "cpu_s": round(cpu, 4),
            "cpu_us_per_event": round(cpu / count * 1e6, 2),
            "idle_share": round(max(0.0, 1 - cpu / wall), 3) if wall > 0 else 0.0,
            "in_send_s": round(in_send, 4),
        }


class Sender:
    """Writes a batch of text frames: one by one through the library's `send` (batch 1), or framed
    here and written in one piece to the library's transport, then its flow control awaited."""

    def __init__(
        self,
        send_one: Callable[[str], Awaitable[None]],
        write: Callable[[bytes], None],
        drain: Callable[[], Awaitable[None]],
    ) -> None:
        self.send_one, self.write, self.drain = send_one, write, drain

    async def send(self, texts: list[str]) -> None:
        if len(texts) == 1:
            await self.send_one(texts[0])
            return
        self.write(b"".join(map(frame, texts)))
        await self.drain()


def frame(text: str) -> bytes:
    """An unmasked, final text frame (RFC 6455 5.2), as a server sends it."""
    data = text.encode()
    n = len(data)
    if n < 126:
        return bytes((0x81, n)) + data
    if n < 65536:
        return bytes((0x81, 126)) + n.to_bytes(2, "big") + data
    return bytes((0x81, 127)) + n.to_bytes(8, "big") + data


def subscribe_answer(text: str, listen_key: str | None) -> tuple[str | None, str | None]:
    """The answer to a JSON SUBSCRIBE and the listenKey it subscribes (None for market streams)."""
    try:
        request = json.loads(text)
    except ValueError:
        return None, None
    if not isinstance(request, dict) or "id" not in request:
        return None, None
    answer = json.dumps({"result": None, "id": request["id"]})
    if request.get("method") != "SUBSCRIBE":
        return answer, None
    for stream in request.get("params") or []:
        if isinstance(stream, str) and "@" not in stream and not stream.startswith("!"):
            return answer, stream.split("/")[0]  # a listenKey (or listenKey/events)
    return answer, None


async def serve_websockets(port: int, bench: Bench) -> None:
    from websockets.asyncio.server import ServerConnection, serve
    from websockets.http11 import Request, Response

    def control(connection: ServerConnection, request: Request) -> Response | None:
        url = urlsplit(request.path)
        if url.path == "/_bench/plan":
            return connection.respond(200, bench.set_plan(url.query))
        if url.path == "/_bench/stats":
            return connection.respond(200, json.dumps(bench.stats))
        return None

    async def handler(ws: ServerConnection) -> None:
        url = urlsplit(ws.request.path if ws.request is not None else "/")
        out = Sender(ws.send, ws.transport.write, ws.drain)
        try:
            if url.path.startswith("/private/ws"):
                await bench.run(out, None)
            async for message in ws:
                answer, key = subscribe_answer(str(message), None)
                if answer is not None:
                    await ws.send(answer)
                if key is not None and url.path.startswith("/private"):
                    await bench.run(out, key)
        except Exception:  # noqa: S110 (a client went away mid-run: the next run starts afresh)
            pass

    async with serve(
        handler, "127.0.0.1", port, process_request=control, max_size=2**20, backlog=2048, compression=None
    ):
        await asyncio.Future()


async def serve_aiohttp(port: int, bench: Bench) -> None:
    from aiohttp import WSMsgType, web

    async def plan(request: web.Request) -> web.Response:
        return web.Response(text=bench.set_plan(request.query_string))

    async def stats(request: web.Request) -> web.Response:
        return web.Response(text=json.dumps(bench.stats))

    async def stream(request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(max_msg_size=2**20, compress=False)
        await ws.prepare(request)
        transport = request.transport
        assert transport is not None
        out = Sender(ws.send_str, transport.write, request.protocol._drain_helper)
        try:
            if request.path.startswith("/private/ws"):
                await bench.run(out, None)
            async for message in ws:
                if message.type != WSMsgType.TEXT:
                    continue
                answer, key = subscribe_answer(message.data, None)
                if answer is not None:
                    await ws.send_str(answer)
                if key is not None and request.path.startswith("/private"):
                    await bench.run(out, key)
        except Exception:  # noqa: S110 (as above)
            pass
        return ws

    app = web.Application()
    app.router.add_get("/_bench/plan", plan)
    app.router.add_get("/_bench/stats", stats)
    app.router.add_get("/{tail:.*}", stream)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port, backlog=2048).start()
    await asyncio.Future()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("port", type=int)
    parser.add_argument("--impl", choices=["websockets", "aiohttp"], default="websockets")
    parser.add_argument("--batch", type=int, default=64, help="frames written at once (1: the library send)")
    args = parser.parse_args()
    bench = Bench(args.batch)
    serve = serve_websockets if args.impl == "websockets" else serve_aiohttp
    asyncio.run(serve(args.port, bench))


if __name__ == "__main__":
    main()
