"""A scripted WebSocket server on loopback: it records each connection and sends what a test says.

Tests of the event stream use it where they need exact control of each frame and each fault (a
dropped connection, a silent one, pings) on the test's own event loop; the listenKey REST calls go
to the simulator. It is a real `websockets` server, spoken to over TCP.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
from collections.abc import Coroutine
from typing import Any
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.utils import accept_key

#: The server's own log (it stands for Binance: it sees the listenKey, as Binance does).
LOG = logging.getLogger("tests.scripted_ws")


class ScriptedStreamServer:
    """`async with ScriptedStreamServer() as ws:`; `ws.url` is the stream host to give `stream_url`."""

    def __init__(self) -> None:
        self.paths: list[str] = []
        """The request path (and query) of each connection, in order."""
        self.open: list[ServerConnection] = []
        self.closed_codes: list[int | None] = []
        self._changed = asyncio.Condition()
        self._server: Server | None = None

    async def __aenter__(self) -> ScriptedStreamServer:
        self._server = await serve(self._handle, "127.0.0.1", 0, ping_interval=None, logger=LOG)
        return self

    async def __aexit__(self, *exc: Any) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    @property
    def url(self) -> str:
        assert self._server is not None
        port = self._server.sockets[0].getsockname()[1]
        return f"ws://127.0.0.1:{port}"

    async def _handle(self, ws: ServerConnection) -> None:
        async with self._changed:
            self.paths.append(ws.request.path if ws.request else "")
            self.open.append(ws)
            self._changed.notify_all()
        try:
            await ws.wait_closed()
        finally:
            async with self._changed:
                self.open.remove(ws)
                self.closed_codes.append(ws.close_code)
                self._changed.notify_all()

    async def wait(self, connections: int, *, open_now: int | None = None, timeout: float = 5.0) -> None:
        """Until `connections` have been made in all (and `open_now` are open, if given)."""

        def done() -> bool:
            return len(self.paths) >= connections and (open_now is None or len(self.open) == open_now)

        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(done)

    def key_of(self, index: int) -> str:
        """The listenKey connection `index` asked for (query or last path segment)."""
        parts = urlsplit(self.paths[index])
        query = parse_qs(parts.query)
        return query["listenKey"][0] if "listenKey" in query else parts.path.rsplit("/", 1)[1]

    async def send(self, text: str) -> None:
        """Send `text` on every open connection (as the server sends each event to every one)."""
        for ws in list(self.open):
            await ws.send(text)

    async def ping(self) -> None:
        for ws in list(self.open):
            await ws.ping()

    async def round_trip(self) -> None:
        """Until the client has handled every frame sent before. A client answers a ping as it parses
        what it read, before it handles that read's other frames; a second ping, sent once the first
        is answered, comes in a later read, answered after the earlier one was handled."""
        for _ in range(2):
            for ws in list(self.open):
                await (await ws.ping())

    def drop(self) -> None:
        """Cut every open connection without a closing handshake (a network failure)."""
        for ws in list(self.open):
            ws.transport.abort()

    def deafen(self) -> None:
        """Stop reading every open connection: the client's close frame is never read, so never
        answered (a server that ignores the close handshake). `drop()` ends them."""
        for ws in list(self.open):
            ws.transport.pause_reading()


class ThreadedStreamServer:
    """The scripted server on a loop of its own, for sync tests: the same methods, blocking."""

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="scripted-ws")
        self.server = ScriptedStreamServer()

    def _run(self, coroutine: Coroutine[Any, Any, Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result()

    def __enter__(self) -> ThreadedStreamServer:
        self._thread.start()
        self._run(self.server.__aenter__())
        return self

    def __exit__(self, *exc: Any) -> None:
        try:
            self._run(self.server.__aexit__())
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join()
            self._loop.close()

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def paths(self) -> list[str]:
        return self.server.paths

    def key_of(self, index: int) -> str:
        return self.server.key_of(index)

    def wait(self, connections: int, *, open_now: int | None = None, timeout: float = 5.0) -> None:
        self._run(self.server.wait(connections, open_now=open_now, timeout=timeout))

    def send(self, text: str) -> None:
        self._run(self.server.send(text))

    def ping(self) -> None:
        self._run(self.server.ping())

    def round_trip(self) -> None:
        self._run(self.server.round_trip())

    def drop(self) -> None:
        self._loop.call_soon_threadsafe(self.server.drop)

    def deafen(self) -> None:
        self._loop.call_soon_threadsafe(self.server.deafen)


class DeafPingServer:
    """A hostile WebSocket server, raw asyncio: it completes the opening handshake, then sends ping
    frames (`flood` bytes of them, then the text frame `then`) and never reads again, so whatever
    the client writes (its pongs) stays unsent once the socket buffers are full.

    The listening socket's receive buffer is shrunk (accepted sockets inherit it), so the kernel
    takes little of the client's writes before they pile up in the client.
    """

    PING = b"\x89\x7d" + b"p" * 125  # FIN + ping, 125 bytes of payload (the most), unmasked

    def __init__(self, flood: int, then: str) -> None:
        self.flood = flood
        self.then = then
        self.connections = 0
        self._server: asyncio.Server | None = None
        self._ending = asyncio.Event()

    async def __aenter__(self) -> DeafPingServer:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        listener.bind(("127.0.0.1", 0))
        self._server = await asyncio.start_server(self._handle, sock=listener)
        return self

    async def __aexit__(self, *exc: Any) -> None:
        assert self._server is not None
        self._ending.set()
        self._server.close()
        await self._server.wait_closed()
        await asyncio.sleep(0)  # the handlers see the end

    @property
    def url(self) -> str:
        assert self._server is not None
        port = self._server.sockets[0].getsockname()[1]
        return f"ws://127.0.0.1:{port}"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            request = await reader.readuntil(b"\r\n\r\n")
            key = next(
                line.split(b":", 1)[1].strip().decode()
                for line in request.split(b"\r\n")
                if line.lower().startswith(b"sec-websocket-key:")
            )
            writer.write(
                b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                b"Sec-WebSocket-Accept: " + accept_key(key).encode() + b"\r\n\r\n"
            )
            pings = self.PING * 512
            for _ in range(0, self.flood, len(pings)):
                writer.write(pings)
                await writer.drain()
            text = self.then.encode()
            assert len(text) < 126
            writer.write(bytes([0x81, len(text)]) + text)
            await writer.drain()
            await self._ending.wait()  # reading nothing, until the test ends
        except ConnectionError:
            pass
        finally:
            writer.close()
