"""UserDataStream and AsyncUserDataStream: the generated client, configured, with typed results.

All behaviour lives below, in the HTTP layer (`_transport`): the key header, retries, the backoff
gate, typed errors. These classes check their arguments, call the generated operations, and turn
their models into plain values. `client` is the configured generated client: call any other
generated operation with it and it gets the same key, retries and errors.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import contextmanager
from http.cookiejar import CookieJar
from types import TracebackType
from typing import Any, Self, TypeVar, cast

import httpx
from binance_userstream_client import AuthenticatedClient
from binance_userstream_client.models import Empty, ListenKey
from binance_userstream_client.types import Response

from binance_userstream._gate import SHARED_GATE, BackoffGate
from binance_userstream._hosts import resolve_base_url
from binance_userstream._markets import DEFAULT_MARKET, Market, market_named
from binance_userstream._policy import RetryPolicy
from binance_userstream._secrets import check_token, install_log_redaction, redact, resolve_api_key
from binance_userstream._session import AsyncKeepaliveSession, KeepaliveSession
from binance_userstream._transport import AsyncRetryingTransport, RetryingTransport, UsedWeight
from binance_userstream.errors import ListenKeyNotFoundError, UserStreamError

API_KEY_HEADER = "X-MBX-APIKEY"
DEFAULT_TIMEOUT = 10.0

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
    """Turn a 2XX body the generated parser cannot read into UserStreamError."""
    try:
        yield
    except (KeyError, TypeError, ValueError) as error:
        raise UserStreamError(f"{operation}: malformed answer ({type(error).__name__})") from None


def _expect(response: Response[Any], model: type[_T], operation: str) -> _T:
    """The parsed success model, or UserStreamError for an answer the spec does not describe."""
    if not isinstance(response.parsed, model):
        raise UserStreamError(f"{operation}: unexpected answer (HTTP {int(response.status_code)})")
    return response.parsed


def _operation_name(operation: Callable[..., Any]) -> str:
    """`create_usdm_listen_key` for the generated `...api.usdm.create_usdm_listen_key.sync_detailed`."""
    return getattr(operation, "__module__", "operation").rpartition(".")[2]


def _check_echo(answer: object, listen_key: str) -> None:
    """USD-M's keepalive answers the key it extended; another key means the one held is gone."""
    if isinstance(answer, ListenKey) and answer.listen_key != listen_key:
        raise ListenKeyNotFoundError(
            200, None, "keepalive extended another listenKey of the account: the one given has expired"
        )


class _Base:
    """Configuration shared by the sync and async clients."""

    client: AuthenticatedClient
    """The generated client, configured with the key and the HTTP layer; use it for any operation."""

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
    ) -> None:
        install_log_redaction()
        self.market = market_named(market)
        key = resolve_api_key(api_key)
        self.base_url = resolve_base_url(base_url, self.market)
        self.retry = retry
        self.gate = SHARED_GATE if gate is None else gate
        self._weights = UsedWeight()
        self._key_hint = redact(key)
        self.client = AuthenticatedClient(
            base_url=self.base_url,
            token=key,
            prefix="",
            auth_header_name=API_KEY_HEADER,
            cookies=cast(dict[str, str], _NoCookies()),  # httpx takes a CookieJar as it is
            timeout=timeout if isinstance(timeout, httpx.Timeout) else httpx.Timeout(timeout),
            httpx_args={**(httpx_args or {}), "transport": self._layer()},
        )

    def _layer(self) -> Any:
        raise NotImplementedError

    @property
    def used_weight(self) -> Mapping[str, int]:
        """The last `X-MBX-USED-WEIGHT-<interval>` values Binance sent, e.g. `{"1M": 12}`."""
        return self._weights.snapshot()

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(market={self.market.name!r}, base_url={self.base_url!r},"
            f" api_key={self._key_hint!r})"
        )


class UserDataStream(_Base):
    """Start, keep alive and close Binance user data streams (listenKeys), synchronously.

    `market` is a name from `MARKETS` ("usdm", "coinm", "portfolio", "options", or "spot", the
    retired default). `api_key` defaults to $BINANCE_API_KEY. `base_url` is None (the market's
    production host), a name from the market's hosts ("testnet", "demo", ...) or a URL; plain
    http is refused except to loopback. `transport` replaces the
    httpx transport underneath (proxies, a mock); `httpx_args` go to the httpx.Client. `gate`
    defaults to the process-wide per-host gate (see BackoffGate).
    """

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
    ) -> None:
        self._inner = transport
        super().__init__(api_key, base_url, market, timeout, retry, gate, httpx_args)

    def _layer(self) -> RetryingTransport:
        return RetryingTransport(self._inner or httpx.HTTPTransport(), self.retry, self.gate, self._weights)

    def call(self, operation: Callable[..., Response[Any]], model: type[_T], /, **arguments: Any) -> _T:
        """Call any generated operation's `sync_detailed` with this client; return its success model.

        `uds.call(create_usdm_listen_key.sync_detailed, ListenKey)`: the request gets the key,
        the retries and the typed errors; an answer that is not `model` raises UserStreamError.
        """
        name = _operation_name(operation)
        with _answer(name):
            response = operation(client=self.client, **arguments)
        return _expect(response, model, name)

    def create(self) -> str:
        """Start a stream (or extend the account's active one) and return its listenKey."""
        return self.call(self.market.create.sync_detailed, ListenKey).listen_key

    def keepalive(self, listen_key: str) -> None:
        """Extend `listen_key` by 60 minutes. Raises ListenKeyNotFoundError if it is gone."""
        key, market = check_token(listen_key, "listen_key"), self.market
        answer = self.call(
            market.keepalive.sync_detailed, market.keepalive_answer, **market.keepalive_arguments(key)
        )
        _check_echo(answer, key)

    def close(self, listen_key: str) -> None:
        """Close `listen_key`, for every consumer of the account."""
        key, market = check_token(listen_key, "listen_key"), self.market
        self.call(market.close.sync_detailed, Empty, **market.close_arguments(key))

    def session(self, **options: Any) -> KeepaliveSession:
        """A context manager that creates (or adopts) a key and keeps it alive in a thread.

        Options: `listen_key` (adopt this key), `interval` (seconds, default 30 minutes),
        `close_on_exit` (default False: the key is shared by every consumer of the account),
        `on_event` (called with each SessionEvent), `clock`. See KeepaliveSession.
        """
        return KeepaliveSession(self, **options)

    def shutdown(self) -> None:
        """Release the connections (what leaving the `with` block does). `close` is the operation."""
        self.client.get_httpx_client().close()

    def __enter__(self) -> Self:
        self.client.__enter__()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.client.__exit__(exc_type, exc, tb)


class AsyncUserDataStream(_Base):
    """The asyncio twin of UserDataStream: the same options, `async with`, and awaited operations."""

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
    ) -> None:
        self._inner = transport
        super().__init__(api_key, base_url, market, timeout, retry, gate, httpx_args)

    def _layer(self) -> AsyncRetryingTransport:
        inner = self._inner or httpx.AsyncHTTPTransport()
        return AsyncRetryingTransport(inner, self.retry, self.gate, self._weights)

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
        return (await self.call(self.market.create.asyncio_detailed, ListenKey)).listen_key

    async def keepalive(self, listen_key: str) -> None:
        """Extend `listen_key` by 60 minutes. Raises ListenKeyNotFoundError if it is gone."""
        key, market = check_token(listen_key, "listen_key"), self.market
        operation = market.keepalive.asyncio_detailed
        answer = await self.call(operation, market.keepalive_answer, **market.keepalive_arguments(key))
        _check_echo(answer, key)

    async def close(self, listen_key: str) -> None:
        """Close `listen_key`, for every consumer of the account."""
        key, market = check_token(listen_key, "listen_key"), self.market
        await self.call(market.close.asyncio_detailed, Empty, **market.close_arguments(key))

    def session(self, **options: Any) -> AsyncKeepaliveSession:
        """An async context manager that keeps a key alive in an asyncio task; as `UserDataStream.session`."""
        return AsyncKeepaliveSession(self, **options)

    async def shutdown(self) -> None:
        """Release the connections (what leaving the `async with` block does)."""
        await self.client.get_async_httpx_client().aclose()

    async def __aenter__(self) -> Self:
        await self.client.__aenter__()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.client.__aexit__(exc_type, exc, tb)
