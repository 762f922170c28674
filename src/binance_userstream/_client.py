"""UserDataStream and AsyncUserDataStream: the generated client, configured, with typed results.

All behaviour lives below, in the HTTP layer (`_transport`): the key header, retries, the backoff
gate, typed errors. These classes check their arguments, call the generated operations, and turn
their models into plain values. `client` is the configured generated client: call any other
generated operation with it and it gets the same key, retries and errors.
"""

from __future__ import annotations

import math
import os
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from http.cookiejar import CookieJar
from types import TracebackType
from typing import Any, Literal, Self, TypeVar, cast

import httpx
from binance_userstream_client import AuthenticatedClient
from binance_userstream_client.api.margin import create_margin_listen_token
from binance_userstream_client.models import Empty, KeepaliveAnswer, ListenKey, ListenToken
from binance_userstream_client.types import Response

from binance_userstream._budget import SHARED_BUDGET, WeightBudget
from binance_userstream._clock import Clock
from binance_userstream._gate import SHARED_GATE, BackoffGate
from binance_userstream._hosts import resolve_base_url, resolve_stream_url
from binance_userstream._markets import DEFAULT_MARKET, Market, market_named
from binance_userstream._policy import RetryPolicy
from binance_userstream._secrets import (
    MAX_TOKEN_LENGTH,
    check_listen_key,
    clears_locals_on_error,
    install_log_redaction,
    install_stream_log_redaction,
    redact,
    resolve_api_key,
)
from binance_userstream._session import (
    KEEPALIVE_INTERVAL,
    AsyncEventCallback,
    AsyncKeepaliveSession,
    EventCallback,
    KeepaliveSession,
)
from binance_userstream._signing import Credentials, load_signer
from binance_userstream._transport import (
    ACCEPT_ENCODING,
    API_KEY_HEADER,
    AsyncRetryingTransport,
    RetryingTransport,
    UsedWeight,
)
from binance_userstream.account._async import AsyncAccountMirror
from binance_userstream.account._sync import AccountMirror
from binance_userstream.errors import ListenKeyNotFoundError, MalformedAnswerError, UserStreamError
from binance_userstream.stream._async import AsyncEventStream, StreamCallback
from binance_userstream.stream._core import DEFAULT_MAX_BYTES, DEFAULT_MAXSIZE, StreamTiming
from binance_userstream.stream._sync import EventStream

DEFAULT_TIMEOUT = 10.0

#: httpx_args the facade accepts. The transport options configure the default inner transport
#: (with `transport=` given, configure that transport instead); `headers` may set User-Agent.
_TRANSPORT_OPTIONS = frozenset({"verify", "cert", "trust_env", "proxy", "http1", "http2", "limits"})
_ACCEPTED = "headers (User-Agent only), " + ", ".join(sorted(_TRANSPORT_OPTIONS))
#: Why the others are refused, for the ones a user is likely to try.
_REFUSED = {
    "transport": "pass transport= to the client itself",
    "mounts": "mounted transports would bypass the retries, the backoff gate and the typed errors",
    "base_url": "pass base_url= to the client itself",
    "timeout": "pass timeout= to the client itself",
    "follow_redirects": "redirects are never followed, so the API key never travels to another origin",
    "max_redirects": "redirects are never followed",
    "auth": "the client sends the API key itself",
    "cookies": "Binance's REST API uses no cookies",
    "event_hooks": "hooks would see requests that carry the API key and listenKeys",
}
_Phase = Literal["new", "open", "closed"]

_T = TypeVar("_T")


class _NoCookies(CookieJar):
    """A cookie jar that keeps nothing and sends nothing: Binance's REST API uses no cookies, and
    httpx's cookie handling costs about 10 µs a call (scripts/bench.py measured it)."""

    def extract_cookies(self, response: Any, request: Any) -> None:
        pass

    def add_cookie_header(self, request: Any) -> None:
        pass


@contextmanager
def _answer(operation: str) -> Iterator[None]:
    """Turn a 2XX body the generated parser cannot read into MalformedAnswerError."""
    try:
        yield
    except UserStreamError:
        raise  # the HTTP layer's own errors (SignerMissingError is a ValueError too)
    except (KeyError, TypeError, ValueError, RecursionError) as error:
        raise MalformedAnswerError(f"{operation}: malformed answer ({type(error).__name__})") from None


def _expect(response: Response[Any], model: type[_T], operation: str) -> _T:
    """The parsed success model, or MalformedAnswerError for an answer the spec does not describe."""
    if not isinstance(response.parsed, model):
        raise MalformedAnswerError(f"{operation}: unexpected answer (HTTP {int(response.status_code)})")
    return response.parsed


def _listen_key(answer: ListenKey) -> str:
    """The answer's listenKey if it is one the client could send back (see `check_listen_key`)."""
    try:
        return check_listen_key(answer.listen_key, "listenKey")
    except (TypeError, ValueError):
        raise MalformedAnswerError(
            f"create: the answer's listenKey is not letters and digits, at most {MAX_TOKEN_LENGTH} of them"
        ) from None


#: A listenToken's longest validity (Binance: default and maximum 24 hours), in seconds.
MAX_LISTEN_TOKEN_VALIDITY = 86_400.0


def _listen_token_arguments(symbol: str | None, validity: float | None) -> dict[str, Any]:
    """The arguments of create_margin_listen_token: isolated margin for `symbol`, cross without;
    `validity` in seconds, sent in milliseconds. ValueError before anything is sent."""
    arguments: dict[str, Any] = {}
    if symbol is not None:
        arguments.update(symbol=_pair(symbol), is_isolated=True)
    if validity is not None:
        if isinstance(validity, bool) or not isinstance(validity, int | float) or not math.isfinite(validity):
            raise ValueError("validity must be a number of seconds")
        milliseconds = round(validity * 1000)
        if not 1 <= milliseconds <= MAX_LISTEN_TOKEN_VALIDITY * 1000:
            raise ValueError(
                f"validity must be more than 0 and at most {MAX_LISTEN_TOKEN_VALIDITY:g} seconds"
            )
        arguments["validity"] = milliseconds
    return arguments


def _operation_name(operation: Callable[..., Any]) -> str:
    """`create_usdm_listen_key` for the generated `...api.usdm.create_usdm_listen_key.sync_detailed`."""
    return getattr(operation, "__module__", "operation").rpartition(".")[2]


def _check_echo(answer: object, listen_key: str) -> None:
    """USD-M's keepalive answers the key it extended, COIN-M's may (or answer `{}`); another key
    means the one held is gone."""
    echo = answer.listen_key if isinstance(answer, ListenKey | KeepaliveAnswer) else None
    if isinstance(echo, str) and echo != listen_key:
        raise ListenKeyNotFoundError(
            200, None, "keepalive extended another listenKey of the account: the one given has expired"
        )


def _httpx_options(
    httpx_args: Mapping[str, Any] | None, own_transport: bool
) -> tuple[dict[str, str], dict[str, Any]]:
    """Check `httpx_args`: (the extra default headers, the default transport's options), or ValueError.

    Values are never repeated in an error: they may hold a secret (a proxy URL's password).
    """
    args = dict(httpx_args or {})
    for name in args:
        if name != "headers" and name not in _TRANSPORT_OPTIONS:
            why = _REFUSED.get(name, "not supported") if isinstance(name, str) else "not supported"
            raise ValueError(f"httpx_args[{name!r}] is refused: {why}; accepted: {_ACCEPTED}")
    options = {k: v for k, v in args.items() if k in _TRANSPORT_OPTIONS}
    if options and own_transport:
        raise ValueError(
            f"httpx_args {', '.join(sorted(options))} configure the default transport: "
            "with transport= given, configure that transport instead"
        )
    headers = args.get("headers") or {}
    if not isinstance(headers, Mapping):
        raise ValueError("httpx_args['headers'] must be a mapping (of User-Agent only)")
    extra: dict[str, str] = {}
    for name, value in headers.items():
        if not isinstance(name, str) or name.lower() != "user-agent":
            raise ValueError(f"httpx_args['headers'] may set User-Agent only, not {name!r}")
        if not isinstance(value, str) or not value.isprintable() or not value.isascii() or len(value) > 256:
            raise ValueError("the User-Agent must be printable ASCII of at most 256 characters")
        extra["User-Agent"] = value
    return extra, options


def _check_symbol(symbol: str | None, market: Market) -> str | None:
    """`symbol` if it names an isolated-margin pair ("BTCUSDT") on a listenToken market, else ValueError."""
    if symbol is None:
        return None
    if market.subscription != "listen_token":
        raise ValueError(f"symbol= names an isolated margin account: market {market.name!r} takes none")
    return _pair(symbol)


def _pair(symbol: object) -> str:
    """`symbol` as Binance names a trading pair ("BTCUSDT"), or ValueError before anything is sent."""
    if (
        not isinstance(symbol, str)
        or not (1 <= len(symbol) <= 20)
        or not symbol.isascii()
        or not symbol.isalnum()
    ):
        raise ValueError("symbol must be a trading pair of 1 to 20 ASCII letters and digits, as BTCUSDT")
    return symbol.upper()


def _unusable(owner: str, phase: _Phase, enter: str) -> UserStreamError:
    if phase == "new":
        return UserStreamError(f"{owner} is not open: use it inside `{enter} {owner}(...) as uds:`")
    return UserStreamError(
        f"{owner} is closed: its `{enter}` block has ended (or shutdown() ran); make a new one"
    )


class _Client(httpx.Client):
    """httpx.Client that sends only while its `with` block runs, and says so with a UserStreamError."""

    def __init__(self, owner: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._owner = owner
        self._phase: _Phase = "new"

    def __enter__(self) -> Self:
        if self._phase != "new":
            raise UserStreamError(f"{self._owner} can be entered once; make a new one")
        super().__enter__()
        self._phase = "open"
        return self

    def __exit__(self, *args: Any) -> None:
        self._phase = "closed"
        super().__exit__(*args)

    def close(self) -> None:
        self._phase = "closed"
        super().close()

    def send(self, request: httpx.Request, **kwargs: Any) -> httpx.Response:
        if self._phase != "open":
            raise _unusable(self._owner, self._phase, "with")
        return super().send(request, **kwargs)


class _AsyncClient(httpx.AsyncClient):
    """The asyncio twin of _Client."""

    def __init__(self, owner: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._owner = owner
        self._phase: _Phase = "new"

    async def __aenter__(self) -> Self:
        if self._phase != "new":
            raise UserStreamError(f"{self._owner} can be entered once; make a new one")
        await super().__aenter__()
        self._phase = "open"
        return self

    async def __aexit__(self, *args: Any) -> None:
        self._phase = "closed"
        await super().__aexit__(*args)

    async def aclose(self) -> None:
        self._phase = "closed"
        await super().aclose()

    async def send(self, request: httpx.Request, **kwargs: Any) -> httpx.Response:
        if self._phase != "open":
            raise _unusable(self._owner, self._phase, "async with")
        return await super().send(request, **kwargs)


class _Base:
    """Configuration shared by the sync and async clients."""

    client: AuthenticatedClient
    """The generated client, configured with the key and the HTTP layer; use it for any operation.

    Its httpx client holds no key: the HTTP layer adds the header to each request it sends."""

    market: Market
    """The market's row: its generated operations, hosts and wire rules (see `MARKETS`)."""

    def __init__(
        self,
        api_key: str | None,
        base_url: str | None,
        market: str,
        timeout: float | httpx.Timeout,
        retry: RetryPolicy,
        gate: BackoffGate | None,
        httpx_args: Mapping[str, Any] | None,
        own_transport: bool,
        stream_url: str | None,
        *,
        api_secret: str | None,
        private_key: bytes | str | os.PathLike[str] | None,
        private_key_passphrase: bytes | str | None,
        symbol: str | None,
        budget: WeightBudget | None,
    ) -> None:
        install_log_redaction()
        install_stream_log_redaction()
        self.market = market_named(market)
        key = resolve_api_key(api_key)
        signer = load_signer(api_secret, private_key, private_key_passphrase)
        self.base_url = resolve_base_url(base_url, self.market)
        self.stream_url: str | None = (
            None
            if stream_url is None and self.market.stream_path is None
            else resolve_stream_url(stream_url, self.market)
        )
        """The market's stream host (scheme, host, port) events() connects to; None: no stream."""
        headers, transport_options = _httpx_options(httpx_args, own_transport)
        self.retry = retry
        self.gate = SHARED_GATE if gate is None else gate
        self.budget = SHARED_BUDGET if budget is None else budget
        self._weights = UsedWeight()
        self._key_hint = redact(key)
        self._credentials = Credentials(key, signer)
        """The API key, the signer and the clock offset, one object shared with the HTTP layer."""
        layer = self._layer(transport_options, self._credentials)
        http_timeout = timeout if isinstance(timeout, httpx.Timeout) else httpx.Timeout(timeout)
        self.client = AuthenticatedClient(
            base_url=self.base_url,
            token="",  # never used: the client gets its httpx client below, and the layer adds the key
            prefix="",
            auth_header_name=API_KEY_HEADER,
            cookies=cast(dict[str, str], _NoCookies()),  # httpx takes a CookieJar as it is
            timeout=http_timeout,
            httpx_args={"transport": layer},
        )
        self._attach(
            base_url=self.base_url,
            headers={"Accept-Encoding": ACCEPT_ENCODING, **headers},
            cookies=_NoCookies(),
            timeout=http_timeout,
            transport=layer,
            follow_redirects=False,
            trust_env=False,  # env proxies would be mounts, around the layer; the transport has its own
        )
        self.symbol = _check_symbol(symbol, self.market)
        """The isolated-margin symbol whose account market="margin" streams; None: cross margin."""

    def _layer(self, options: dict[str, Any], credentials: Credentials) -> Any:
        raise NotImplementedError

    def _attach(self, **kwargs: Any) -> None:
        raise NotImplementedError

    @property
    def used_weight(self) -> Mapping[str, int]:
        """The last `X-MBX-USED-WEIGHT-<interval>` values Binance sent, e.g. `{"1M": 12}`."""
        return self._weights.snapshot()

    def __repr__(self) -> str:
        signer = self._credentials.signer
        kind = "" if signer is None else f", signer={signer.kind!r}"
        return (
            f"{type(self).__name__}(market={self.market.name!r}, base_url={self.base_url!r},"
            f" api_key={self._key_hint!r}{kind})"
        )


class UserDataStream(_Base):
    """Start, keep alive and close Binance user data streams (listenKeys), synchronously.

    `market` is a name from `MARKETS` ("usdm", "coinm", "portfolio", "portfolio_pro", "options",
    or "spot", the retired default). `api_key` defaults to $BINANCE_API_KEY. `base_url` is None (the market's
    production host), a name from the market's hosts ("testnet", "demo", ...) or a URL; plain
    http is refused except to loopback, and so is a URL with a user or password. `transport`
    replaces the httpx transport underneath (proxies, a mock);
    `httpx_args` may hold a User-Agent header and the default transport's `verify`, `cert`,
    `trust_env`, `proxy`, `http1`, `http2` and `limits`; anything else is a ValueError. `gate`
    defaults to the process-wide per-host gate (see BackoffGate), and `budget` to the process-wide
    per-host request-weight budget (see WeightBudget). `api_secret` (an HMAC secret) or
    `private_key` (Ed25519 or RSA: PEM bytes, PEM text or a PEM file's path, with
    `private_key_passphrase` if encrypted) sign the SIGNED operations; they default to
    $BINANCE_API_SECRET, $BINANCE_PRIVATE_KEY_FILE and $BINANCE_PRIVATE_KEY_PASSPHRASE. Use it
    inside `with`.
    """

    @clears_locals_on_error  # its arguments and what loading them made may be secrets
    def __init__(
        self,
        api_key: str | None = None,
        base_url: str | None = None,
        *,
        market: str = DEFAULT_MARKET,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
        retry: RetryPolicy = RetryPolicy(),  # noqa: B008 (frozen, so one shared default is safe)
        transport: httpx.BaseTransport | None = None,
        gate: BackoffGate | None = None,
        httpx_args: Mapping[str, Any] | None = None,
        stream_url: str | None = None,
        api_secret: str | None = None,
        private_key: bytes | str | os.PathLike[str] | None = None,
        private_key_passphrase: bytes | str | None = None,
        symbol: str | None = None,
        budget: WeightBudget | None = None,
    ) -> None:
        self._inner = transport
        super().__init__(
            api_key,
            base_url,
            market,
            timeout,
            retry,
            gate,
            httpx_args,
            transport is not None,
            stream_url,
            api_secret=api_secret,
            private_key=private_key,
            private_key_passphrase=private_key_passphrase,
            symbol=symbol,
            budget=budget,
        )

    def _layer(self, options: dict[str, Any], credentials: Credentials) -> RetryingTransport:
        inner = self._inner or httpx.HTTPTransport(**options)
        return RetryingTransport(
            inner, self.retry, self.gate, self._weights, credentials=credentials, budget=self.budget
        )

    def _attach(self, **kwargs: Any) -> None:
        self.client.set_httpx_client(_Client(type(self).__name__, **kwargs))

    def call(self, operation: Callable[..., Response[Any]], model: type[_T], /, **arguments: Any) -> _T:
        """Call any generated operation's `sync_detailed` with this client; return its success model.

        `uds.call(create_usdm_listen_key.sync_detailed, ListenKey)`: the request gets the key,
        the retries and the typed errors; an answer that is not `model` is a MalformedAnswerError.
        """
        name = _operation_name(operation)
        with _answer(name):
            response = operation(client=self.client, **arguments)
        return _expect(response, model, name)

    def create(self) -> str:
        """Start a stream (or extend the account's active one) and return its listenKey."""
        return _listen_key(self.call(self.market.operation("create").sync_detailed, ListenKey))

    def keepalive(self, listen_key: str) -> None:
        """Extend `listen_key` by 60 minutes. Raises ListenKeyNotFoundError if it is gone."""
        key, market = check_listen_key(listen_key, "listen_key"), self.market
        operation = market.operation("keepalive").sync_detailed
        _check_echo(self.call(operation, market.keepalive_answer, **market.keepalive_arguments(key)), key)

    def close(self, listen_key: str) -> None:
        """Close `listen_key`, for every consumer of the account."""
        key, market = check_listen_key(listen_key, "listen_key"), self.market
        self.call(market.operation("close").sync_detailed, Empty, **market.close_arguments(key))

    def create_listen_token(self, symbol: str | None = None, *, validity: float | None = None) -> ListenToken:
        """Create a margin listenToken (USER_STREAM: the API key alone, unsigned) on this client's host.

        Cross margin, or the isolated margin account of `symbol`; `validity` in seconds (Binance's
        default and maximum: 24 hours). The token, for `userDataStream.subscribe.listenToken`, is
        kept out of the answer's repr.
        """
        operation = create_margin_listen_token.sync_detailed
        return self.call(operation, ListenToken, **_listen_token_arguments(symbol, validity))

    def session(
        self,
        *,
        listen_key: str | None = None,
        interval: float = KEEPALIVE_INTERVAL,
        close_on_exit: bool = False,
        on_event: EventCallback | None = None,
        clock: Clock | None = None,
    ) -> KeepaliveSession:
        """A context manager that creates (or adopts) a key and keeps it alive in a thread.

        `listen_key` adopts that key; `interval` is in seconds (1 to 3000, default 30 minutes);
        `close_on_exit` defaults to False, since the key is shared by every consumer of the
        account; `on_event` is called with each SessionEvent. See KeepaliveSession.
        """
        return KeepaliveSession(
            self,
            listen_key=listen_key,
            interval=interval,
            close_on_exit=close_on_exit,
            on_event=on_event,
            clock=clock,
        )

    def shutdown(self) -> None:
        """Release the connections (what leaving the `with` block does). `close` is the operation."""
        self.client.get_httpx_client().close()

    def events(
        self,
        *,
        listen_key: str | None = None,
        interval: float = KEEPALIVE_INTERVAL,
        maxsize: int = DEFAULT_MAXSIZE,
        max_bytes: int = DEFAULT_MAX_BYTES,
        on_event: StreamCallback | None = None,
        timing: StreamTiming | None = None,
        jitter: Callable[[], float] | None = None,
        clock: Clock | None = None,
    ) -> EventStream:
        """The account's events: `with uds.events() as stream: for item in stream:`.

        As `AsyncUserDataStream.events`: the key is kept alive by a KeepaliveSession (its thread),
        the connections run on the stream's own thread, where `on_event` is called too. The items
        `next()` takes from that thread at once count against `maxsize` and `max_bytes` until handed out.
        """
        return EventStream(
            self,
            listen_key=listen_key,
            interval=interval,
            maxsize=maxsize,
            max_bytes=max_bytes,
            on_event=on_event,
            timing=timing,
            jitter=jitter,
            clock=clock,
        )

    def account(self, *, symbols: Iterable[str] = (), **options: Any) -> AccountMirror:
        """The account's mirror: `with uds.account() as account: for item in account:`.

        As `AsyncUserDataStream.account`, synchronously: `options` are `events()`'s (the stream
        runs on its own thread, where `on_event` is called; the heal's own stream events are
        reported from the consumer's thread).
        """
        return AccountMirror(self, symbols=symbols, **options)

    def __enter__(self) -> Self:
        self.client.__enter__()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.client.__exit__(exc_type, exc, tb)


class AsyncUserDataStream(_Base):
    """The asyncio twin of UserDataStream: the same options, `async with`, and awaited operations."""

    @clears_locals_on_error  # its arguments and what loading them made may be secrets
    def __init__(
        self,
        api_key: str | None = None,
        base_url: str | None = None,
        *,
        market: str = DEFAULT_MARKET,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
        retry: RetryPolicy = RetryPolicy(),  # noqa: B008 (frozen, so one shared default is safe)
        transport: httpx.AsyncBaseTransport | None = None,
        gate: BackoffGate | None = None,
        httpx_args: Mapping[str, Any] | None = None,
        stream_url: str | None = None,
        api_secret: str | None = None,
        private_key: bytes | str | os.PathLike[str] | None = None,
        private_key_passphrase: bytes | str | None = None,
        symbol: str | None = None,
        budget: WeightBudget | None = None,
    ) -> None:
        self._inner = transport
        super().__init__(
            api_key,
            base_url,
            market,
            timeout,
            retry,
            gate,
            httpx_args,
            transport is not None,
            stream_url,
            api_secret=api_secret,
            private_key=private_key,
            private_key_passphrase=private_key_passphrase,
            symbol=symbol,
            budget=budget,
        )

    def _layer(self, options: dict[str, Any], credentials: Credentials) -> AsyncRetryingTransport:
        inner = self._inner or httpx.AsyncHTTPTransport(**options)
        return AsyncRetryingTransport(
            inner, self.retry, self.gate, self._weights, credentials=credentials, budget=self.budget
        )

    def _attach(self, **kwargs: Any) -> None:
        self.client.set_async_httpx_client(_AsyncClient(type(self).__name__, **kwargs))

    async def call(
        self, operation: Callable[..., Awaitable[Response[Any]]], model: type[_T], /, **arguments: Any
    ) -> _T:
        """Await any generated operation's `asyncio_detailed` with this client; as `UserDataStream.call`."""
        name = _operation_name(operation)
        with _answer(name):
            response = await operation(client=self.client, **arguments)
        return _expect(response, model, name)

    async def create(self) -> str:
        """Start a stream (or extend the account's active one) and return its listenKey."""
        return _listen_key(await self.call(self.market.operation("create").asyncio_detailed, ListenKey))

    async def keepalive(self, listen_key: str) -> None:
        """Extend `listen_key` by 60 minutes. Raises ListenKeyNotFoundError if it is gone."""
        key, market = check_listen_key(listen_key, "listen_key"), self.market
        operation = market.operation("keepalive").asyncio_detailed
        answer = await self.call(operation, market.keepalive_answer, **market.keepalive_arguments(key))
        _check_echo(answer, key)

    async def close(self, listen_key: str) -> None:
        """Close `listen_key`, for every consumer of the account."""
        key, market = check_listen_key(listen_key, "listen_key"), self.market
        await self.call(market.operation("close").asyncio_detailed, Empty, **market.close_arguments(key))

    async def create_listen_token(
        self, symbol: str | None = None, *, validity: float | None = None
    ) -> ListenToken:
        """Create a margin listenToken; as `UserDataStream.create_listen_token`."""
        operation = create_margin_listen_token.asyncio_detailed
        return await self.call(operation, ListenToken, **_listen_token_arguments(symbol, validity))

    def session(
        self,
        *,
        listen_key: str | None = None,
        interval: float = KEEPALIVE_INTERVAL,
        close_on_exit: bool = False,
        on_event: AsyncEventCallback | None = None,
        clock: Clock | None = None,
    ) -> AsyncKeepaliveSession:
        """An async context manager that keeps a key alive in an asyncio task; as `UserDataStream.session`.

        `on_event` may be an `async def`: it is awaited before the session goes on."""
        return AsyncKeepaliveSession(
            self,
            listen_key=listen_key,
            interval=interval,
            close_on_exit=close_on_exit,
            on_event=on_event,
            clock=clock,
        )

    def events(
        self,
        *,
        listen_key: str | None = None,
        interval: float = KEEPALIVE_INTERVAL,
        maxsize: int = DEFAULT_MAXSIZE,
        max_bytes: int = DEFAULT_MAX_BYTES,
        on_event: StreamCallback | None = None,
        timing: StreamTiming | None = None,
        jitter: Callable[[], float] | None = None,
        clock: Clock | None = None,
    ) -> AsyncEventStream:
        """The account's events: `async with uds.events() as stream: async for item in stream:`.

        Creates (or adopts `listen_key`) the key and keeps it alive with a session (a keepalive every
        `interval` seconds; a lost key is replaced and reconnected, with a gap), connects to
        `stream_url` plus the market's path, and yields generated event models and StreamGap
        markers in order. `maxsize` bounds the buffer in events, `max_bytes` in frame text (each
        event counts its frame's length in characters; 1 MiB at least, the largest frame): past
        either, events are dropped until the consumer has drained half, and a gap counts them
        (an overflow is a gap). `on_event` gets each
        SessionEvent and StreamEvent (a plain function, in the loop); `timing` and `jitter`
        (a `random.random` stand-in) bend the stream's clock rules, for tests and demos; `clock`
        (an `AcceleratedClock`, shared with a simulator) runs the session and the stream's rules,
        24-hour rotation included, faster than real time.
        """
        return AsyncEventStream(
            self,
            listen_key=listen_key,
            interval=interval,
            maxsize=maxsize,
            max_bytes=max_bytes,
            on_event=on_event,
            timing=timing,
            jitter=jitter,
            clock=clock,
        )

    async def shutdown(self) -> None:
        """Release the connections (what leaving the `async with` block does)."""
        await self.client.get_async_httpx_client().aclose()

    def account(self, *, symbols: Iterable[str] = (), **options: Any) -> AsyncAccountMirror:
        """The account's mirror: `async with uds.account() as account: async for item in account:`.

        Opens `events()` (with `options`: `maxsize`, `on_event`, `timing`, `clock`, ...), waits
        until it is connected, then takes a snapshot from REST (the exchange's time first);
        `account.state` is the AccountState the events keep current on top of it. It yields
        every item `events()` yields, and after each StreamGap a `Reconciled` once a fresh snapshot
        and the trades the stream missed (for the symbols with open orders or positions, those
        traded, and `symbols`) have healed it. A heal's failed REST reads are retried with the
        client's RetryPolicy backoff (a WARNING, a RECONCILE_RETRY stream event); a refused key
        or signature ends the iteration with its typed error. Portfolio Margin Pro has no mirror.
        """
        return AsyncAccountMirror(self, symbols=symbols, **options)

    async def __aenter__(self) -> Self:
        await self.client.__aenter__()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.client.__aexit__(exc_type, exc, tb)
