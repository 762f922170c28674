"""UserDataStream and AsyncUserDataStream: the generated client, configured, with typed results.

All behaviour lives below, in the HTTP layer (`_transport`): the key header, retries, the backoff
gate, typed errors. These classes check their arguments, call the generated operations, and turn
their models into plain values. `client` is the configured generated client: call any other
generated operation with it and it gets the same key, retries and errors.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from http.cookiejar import CookieJar
from types import TracebackType
from typing import Any, Self, TypeVar, cast

import httpx
from binance_userstream_client import AuthenticatedClient
from binance_userstream_client.api.user_data_stream import close, create, keepalive
from binance_userstream_client.models import Empty, ListenKey, ListenKeyForm
from binance_userstream_client.types import Response

from binance_userstream._gate import SHARED_GATE, BackoffGate
from binance_userstream._hosts import resolve_base_url
from binance_userstream._policy import RetryPolicy
from binance_userstream._secrets import check_token, install_log_redaction, redact, resolve_api_key
from binance_userstream._session import AsyncKeepaliveSession, KeepaliveSession
from binance_userstream._transport import AsyncRetryingTransport, RetryingTransport, UsedWeight
from binance_userstream.errors import UserStreamError

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


class _Base:
    """Configuration shared by the sync and async clients."""

    client: AuthenticatedClient
    """The generated client, configured with the key and the HTTP layer; use it for any operation."""

    def __init__(
        self,
        api_key: str | None,
        base_url: str,
        timeout: float | httpx.Timeout,
        retry: RetryPolicy,
        gate: BackoffGate | None,
        httpx_args: Mapping[str, Any] | None,
    ) -> None:
        install_log_redaction()
        key = resolve_api_key(api_key)
        self.base_url = resolve_base_url(base_url)
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
        return f"{type(self).__name__}(base_url={self.base_url!r}, api_key={self._key_hint!r})"


class UserDataStream(_Base):
    """Start, keep alive and close Binance user data streams (listenKeys), synchronously.

    `api_key` defaults to $BINANCE_API_KEY. `base_url` is a URL or a name from `HOSTS`
    ("testnet", "api1", ...); plain http is refused except to loopback. `transport` replaces the
    httpx transport underneath (proxies, a mock); `httpx_args` go to the httpx.Client. `gate`
    defaults to the process-wide per-host gate (see BackoffGate).
    """

    def __init__(
        self,
        api_key: str | None = None,
        base_url: str = "https://api.binance.com",
        *,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
        retry: RetryPolicy = RetryPolicy(),  # noqa: B008 (frozen, so one shared default is safe)
        transport: httpx.BaseTransport | None = None,
        gate: BackoffGate | None = None,
        httpx_args: Mapping[str, Any] | None = None,
    ) -> None:
        self._inner = transport
        super().__init__(api_key, base_url, timeout, retry, gate, httpx_args)

    def _layer(self) -> RetryingTransport:
        return RetryingTransport(self._inner or httpx.HTTPTransport(), self.retry, self.gate, self._weights)

    def create(self) -> str:
        """Start a stream (or extend the account's active one) and return its listenKey."""
        with _answer("create"):
            response = create.sync_detailed(client=self.client)
        return _expect(response, ListenKey, "create").listen_key

    def keepalive(self, listen_key: str) -> None:
        """Extend `listen_key` by 60 minutes. Raises ListenKeyNotFoundError if it is gone."""
        body = ListenKeyForm(listen_key=check_token(listen_key, "listen_key"))
        with _answer("keepalive"):
            response = keepalive.sync_detailed(client=self.client, body=body)
        _expect(response, Empty, "keepalive")

    def close(self, listen_key: str) -> None:
        """Close `listen_key`, for every consumer of the account."""
        key = check_token(listen_key, "listen_key")
        with _answer("close"):
            response = close.sync_detailed(client=self.client, listen_key=key)
        _expect(response, Empty, "close")

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
        base_url: str = "https://api.binance.com",
        *,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
        retry: RetryPolicy = RetryPolicy(),  # noqa: B008 (frozen, so one shared default is safe)
        transport: httpx.AsyncBaseTransport | None = None,
        gate: BackoffGate | None = None,
        httpx_args: Mapping[str, Any] | None = None,
    ) -> None:
        self._inner = transport
        super().__init__(api_key, base_url, timeout, retry, gate, httpx_args)

    def _layer(self) -> AsyncRetryingTransport:
        inner = self._inner or httpx.AsyncHTTPTransport()
        return AsyncRetryingTransport(inner, self.retry, self.gate, self._weights)

    async def create(self) -> str:
        """Start a stream (or extend the account's active one) and return its listenKey."""
        with _answer("create"):
            response = await create.asyncio_detailed(client=self.client)
        return _expect(response, ListenKey, "create").listen_key

    async def keepalive(self, listen_key: str) -> None:
        """Extend `listen_key` by 60 minutes. Raises ListenKeyNotFoundError if it is gone."""
        body = ListenKeyForm(listen_key=check_token(listen_key, "listen_key"))
        with _answer("keepalive"):
            response = await keepalive.asyncio_detailed(client=self.client, body=body)
        _expect(response, Empty, "keepalive")

    async def close(self, listen_key: str) -> None:
        """Close `listen_key`, for every consumer of the account."""
        key = check_token(listen_key, "listen_key")
        with _answer("close"):
            response = await close.asyncio_detailed(client=self.client, listen_key=key)
        _expect(response, Empty, "close")

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
