"""The simulator's HTTP adapter: aiohttp requests in, `Exchange` answers and faults out.

Every method and path goes to one handler, which reads the (bounded) body, serves control requests
under `/_simulator/` to this machine only, applies the next fault, and otherwise asks the Exchange.
It holds no semantics of its own. The event-stream paths (see `_streams`) go to the streams, and
`/ws-api/v3` to the WebSocket API (see `_wsapi`), so REST, streams and the WebSocket API share one
port. Signatures, listenTokens and API keys in a logged URL are cut to a prefix (`quiet`).
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import re
import sys
from collections.abc import Awaitable, Callable, Mapping
from email.utils import formatdate
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from aiohttp import web
from multidict import CIMultiDict

from binance_userstream._clock import wall_time
from binance_userstream._secrets import redact, scrub
from binance_userstream.simulator._exchange import RETIRED, Answer, error
from binance_userstream.simulator._exchange import where as _where
from binance_userstream.simulator._faults import Fault
from binance_userstream.simulator._streams import is_stream_path
from binance_userstream.simulator._wsapi import CONNECT_WEIGHT
from binance_userstream.simulator._wsapi import PATH as WS_API_PATH

if TYPE_CHECKING:
    from binance_userstream.simulator._server import Simulator

log = logging.getLogger("binance_userstream.simulator")
#: The parameters of a signed request that are credentials, or as good as one: a signature lets
#: whoever holds it replay the request within its recvWindow; a listenToken reads an account.
_SECRET_PARAMS = re.compile(r"((?:^|[?&])(?:signature|listenToken|apiKey)=)([^&\s'\"]*)")
CONTROL = "/_simulator/"
#: A header no web page can send cross-origin without a CORS preflight (which the simulator never
#: grants), so a page cannot drive the control requests with a form or a `text/plain` fetch.
CONTROL_HEADER = "X-Simulator-Control"
#: The largest request body read; Binance's requests carry at most a listenKey.
MAX_BODY = 64 * 1024
#: The longest request line (method, path and query) and header line read. aiohttp's default, 8190
#: bytes, is refused by aiohttp itself, before any handler, with a text/plain 400 that is not
#: Binance's JSON error (a conformance run generated such a query); up to this bound the handler
#: answers, JSON as Binance does. Past it, aiohttp's 400 still keeps the server's memory bounded.
MAX_LINE = 1024 * 1024
SERVER = "binance-userstream-simulator"
#: The answer to a WebSocket upgrade from a web page of another origin: a browser sends `Origin`
#: with every upgrade (Python clients send none), and WebSockets know no CORS, so without this any
#: page a developer visits could open the WebSocket API with the published test key.
CROSS_ORIGIN = Answer(
    403,
    json.dumps(
        {
            "simulator": "binance-userstream",
            "msg": "The binance-userstream simulator refuses WebSocket upgrades from web pages of other "
            "origins than this machine's; allow one with Simulator(allowed_origins=[...]) "
            "or --allow-origin.",
        }
    ).encode(),
)
#: The answer when a handler fails: no traceback, no request text (the failure is logged at DEBUG).
BROKEN = error(500, -1000, "The simulator failed to answer this request; its DEBUG log says why.")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def handler(sim: Simulator) -> Handler:
    """The one request handler: every method, every path."""

    async def handle(request: web.Request) -> web.StreamResponse:
        if request.path == WS_API_PATH or is_stream_path(request.path):
            return await _stream(sim, request)
        try:
            answer = await _answer(sim, request)
        except Exception as exc:  # a bug here must not become a traceback on the wire
            log.debug("%s %s failed: %s", request.method, scrub(request.path), _where(exc))
            answer = BROKEN
        if answer is None:  # the drop fault: hang up without a word
            if request.transport is not None:
                request.transport.close()
            return web.Response()  # never written: the transport is closing
        log.debug("%s %s %s: %d", request.remote, request.method, quiet(request.path_qs), answer.status)
        response = web.Response(
            status=answer.status,
            body=answer.body,
            headers=CIMultiDict(
                [
                    ("Server", SERVER),
                    # The server's time, on the simulator's clock: a client that resyncs its
                    # timestamps from Date (after a -1021) must read the time it is judged by.
                    ("Date", formatdate(wall_time(sim.exchange.clock), usegmt=True)),
                    ("Content-Type", answer.content_type),
                    *answer.headers,
                ]
            ),
        )
        if answer.status in (408, 413):  # the rest of the body is not read: no further request
            response.force_close()
        return response

    return handle


async def _answer(sim: Simulator, request: web.Request) -> Answer | None:
    """The answer to `request`, or None to drop the connection without one."""
    method, path = request.method, request.path
    sim._record(method, path)
    if (request.content_length or 0) > MAX_BODY:
        return _too_large()
    try:
        async with asyncio.timeout(sim.request_timeout):
            body = await request.read()
    except web.HTTPRequestEntityTooLarge:
        return _too_large()
    except TimeoutError:
        return error(408, -1000, f"The request body did not arrive within {sim.request_timeout:g} s.")
    if path.startswith(CONTROL):
        return _refuse_control(request) or sim._control(method, path[len(CONTROL) :], body)
    fault = sim._next_fault()
    if fault is not None and fault.kind == "drop":
        return None
    if fault is not None and fault.kind == "delay":
        await asyncio.sleep(fault.delay)
        fault = None
    if fault is not None and fault.kind == "lose_keys":
        sim.exchange.forget_keys()
        fault = None
    if fault is not None:
        return _answer_fault(fault)
    form: Mapping[str, list[str]] = {}
    if "application/x-www-form-urlencoded" in request.headers.get("Content-Type", ""):
        form = parse_qs(body.decode("latin-1"), keep_blank_values=True)
    return sim.exchange.handle(
        method,
        path,
        parse_qs(request.rel_url.raw_query_string, keep_blank_values=True),
        form,
        request.headers.get("X-MBX-APIKEY"),
        request.remote or "",
        raw_query=request.rel_url.raw_query_string,
        raw_body=body.decode("latin-1") if form else "",
    )


async def _stream(sim: Simulator, request: web.Request) -> web.StreamResponse:
    """An event-stream path: a WebSocket upgrade is served by the streams, anything else is told so.
    The path may hold a listenKey: it is recorded and logged scrubbed."""
    sim._record(request.method, scrub(request.path))
    if request.method == "GET" and request.headers.get("Upgrade", "").lower() == "websocket":
        if not sim.origin_allowed(request.headers.get("Origin")):
            log.debug("%s upgrade on %s refused: Origin not allowed", request.remote, scrub(request.path))
            return _json_response(CROSS_ORIGIN)
        limited = sim.limits.admit(request.remote or "", CONNECT_WEIGHT if request.path == WS_API_PATH else 0)
        if limited is not None:
            log.debug("%s upgrade on %s refused: %d", request.remote, scrub(request.path), limited.status)
            answer = error(limited.status, limited.code, limited.msg)
            return _json_response(answer, ("Retry-After", str(limited.retry_after)))
        try:
            if request.path == WS_API_PATH:
                return await sim.wsapi.serve(request)
            return await sim.streams.serve(request)
        except Exception as exc:  # a bug here must not become a traceback on the wire
            log.debug("stream %s failed: %s", scrub(request.path), _where(exc))
            raise
    answer = error(426, -1000, "This path serves WebSocket event streams only (an Upgrade: websocket GET).")
    log.debug("%s %s %s: %d", request.remote, request.method, quiet(request.path_qs), answer.status)
    return _json_response(answer, ("Upgrade", "websocket"))


def _json_response(answer: Answer, *headers: tuple[str, str]) -> web.Response:
    return web.Response(
        status=answer.status,
        body=answer.body,
        headers=CIMultiDict([("Server", SERVER), ("Content-Type", answer.content_type), *headers]),
    )


def is_loopback_origin(origin: str) -> bool:
    """Whether a browser's `Origin` (`scheme://host[:port]`) names this machine: localhost or a
    loopback address. "null" (a file or a sandboxed page) does not."""
    try:
        host = urlsplit(origin).hostname or ""
    except ValueError:
        return False
    return host == "localhost" or host.endswith(".localhost") or _is_loopback(host)


def quiet(text: str) -> str:
    """`text` (a path and query, a log line) fit for a log: listenKeys, key-like tokens, signatures,
    listenTokens and API keys in parameters cut to a prefix."""
    return scrub(_SECRET_PARAMS.sub(lambda m: m.group(1) + redact(m.group(2)), text))


def _too_large() -> Answer:
    return error(413, -1000, f"The request body is larger than {MAX_BODY} bytes.")


def _refuse_control(request: web.Request) -> Answer | None:
    """Why this control request may not be served (None if it may): it must come from this machine,
    carry the control header, and name the simulator by address or `localhost` (a web page whose
    DNS name was rebound to 127.0.0.1 can send any header, but its Host is its own name)."""
    if not _is_loopback(request.remote):
        return error(403, -1000, "Control requests are served to loopback peers only.")
    if not request.headers.get(CONTROL_HEADER):
        return error(403, -1000, f"Control requests need the header '{CONTROL_HEADER}: 1'.")
    if not _names_an_address(request.headers.get("Host", "")):
        return error(403, -1000, "Control requests must name the simulator by IP address or localhost.")
    return None


def _is_loopback(peer: str | None) -> bool:
    try:
        address = ipaddress.ip_address((peer or "").partition("%")[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


def _names_an_address(host: str) -> bool:
    try:
        name = urlsplit(f"//{host}").hostname or ""
        ipaddress.ip_address(name)
    except ValueError:
        return name == "localhost"
    return True


def _answer_fault(fault: Fault) -> Answer:
    if fault.status == 410:
        return RETIRED
    headers: tuple[tuple[str, str], ...] = ()
    if fault.retry_after is not None:
        headers = (("Retry-After", f"{fault.retry_after:g}"),)
    if fault.status == 429:
        return error(429, -1003, "Too many requests; current limit is being exceeded.", headers)
    if fault.status == 418:
        return error(418, -1003, "Way too much request weight used; IP banned.", headers)
    return error(fault.status, -1001, "Internal error; unable to process your request. Please try again.")


class QuietLog(logging.LoggerAdapter[logging.Logger]):
    """aiohttp's server log, toned down: a peer's malformed request is the peer's problem, so it is
    logged at DEBUG, as one line naming the exception's type, with no traceback and no request text."""

    def __init__(self) -> None:
        super().__init__(log.getChild("http"), {})

    def log(self, level: int, msg: object, *args: object, **kwargs: Any) -> None:
        if not self.logger.isEnabledFor(logging.DEBUG):
            return
        exc = kwargs.get("exc_info")
        if exc is True:
            exc = sys.exc_info()[1]
        text = quiet(str(msg) % args if args else str(msg))
        if isinstance(exc, BaseException):
            text = f"{text}: {_where(exc)}"
        self.logger.debug("%s", text)
