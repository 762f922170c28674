"""The HTTP layer: httpx transports that add the API key, sign SIGNED requests, and apply the retry
policy, the backoff gate, weight tracking and typed errors.

They wrap an ordinary httpx transport, so every request the generated client sends goes through
them, including operations added to the spec later. A request is signed when the spec says so:
each generated request names its operation (the `OPERATION_EXTENSION` httpx extension), and the
generated table `binance_userstream_client.security.SIGNED_OPERATIONS` lists the operations whose
security requires the signature. Each attempt is signed anew (a fresh `timestamp`), and a -1021
answer (the timestamp outside recvWindow) teaches the client the server's clock from that
answer's `Date` header and is sent once more. Each attempt reads its answer's body too
(capped, and within the call's deadline), so a body that fails is retried like any other network
failure. Retries are tenacity's (full-jitter exponential wait, attempt and deadline stops,
injectable sleep, sync and async alike); the custom part is small: reading Retry-After into the
wait, and the per-host gate of `_gate`.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import email.utils
import logging
import re
import threading
import time
import zlib
from collections.abc import Awaitable, Callable, Mapping
from typing import Any
from urllib.parse import quote

import httpx
import tenacity
from binance_userstream_client.security import OPERATION_EXTENSION, SIGNED_OPERATIONS
from binance_userstream_client.weights import OPERATION_WEIGHTS

from binance_userstream._answers import error_code, error_for
from binance_userstream._budget import SHARED_BUDGET, WeightBudget, call_weight
from binance_userstream._gate import DEFAULT_BAN_SECONDS, BackoffGate
from binance_userstream._policy import RETRYABLE_ERRORS, RetryPolicy, is_retryable_status, retry_after
from binance_userstream._secrets import printable, scrub, server_text
from binance_userstream._signing import PRIVATE_KEY_ENV, SECRET_ENV, ClockOffsetError, Credentials
from binance_userstream.errors import (
    BinanceAPIError,
    MalformedAnswerError,
    NetworkError,
    SignerMissingError,
    UserStreamError,
    WeightBudgetError,
)

log = logging.getLogger("binance_userstream")

API_KEY_HEADER = "X-MBX-APIKEY"
#: The largest answer body read, decoded: a listenKey answer is about 80 bytes and Binance's error
#: bodies a few hundred, so 1 MiB is generous while a hostile answer (or a gzip bomb) stays small.
MAX_BODY_BYTES = 1 << 20
#: The encodings the layer decodes itself (bounded, see _Body); asked for in Accept-Encoding.
ACCEPT_ENCODING = "gzip, deflate"

_WEIGHT_PREFIX = b"x-mbx-used-weight-"
#: The headers that say how much weight the IP used this minute: Binance's, and SAPI's IP count.
_MINUTE_WEIGHT_HEADERS = frozenset({b"x-mbx-used-weight-1m", b"x-sapi-used-ip-weight-1m"})
_MINUTE_WEIGHT_LENGTHS = frozenset(len(name) for name in _MINUTE_WEIGHT_HEADERS)


def minute_weight(headers: httpx.Headers) -> int | None:
    """The IP's weight used this minute, as the answer says it, or None (raw bytes, as UsedWeight:
    no decoding of the headers skipped)."""
    for name, value in headers.raw:
        if len(name) in _MINUTE_WEIGHT_LENGTHS and name.lower() in _MINUTE_WEIGHT_HEADERS and value.isdigit():
            return int(value)
    return None


_PREFIX_LENGTH = len(_WEIGHT_PREFIX)


class UsedWeight:
    """The last `X-MBX-USED-WEIGHT-<interval>` values seen, by interval ("1M", ...)."""

    def __init__(self) -> None:
        self._values: dict[str, int] = {}
        self._lock = threading.Lock()

    def update(self, headers: httpx.Headers) -> None:
        seen = {}
        for name, value in headers.raw:  # raw bytes: no decoding of the headers we skip
            if (
                len(name) > _PREFIX_LENGTH
                and name[:_PREFIX_LENGTH].lower() == _WEIGHT_PREFIX
                and value.isdigit()
            ):
                seen[name[_PREFIX_LENGTH:].decode("ascii").upper()] = int(value)
        if seen:
            with self._lock:
                self._values.update(seen)

    def snapshot(self) -> Mapping[str, int]:
        with self._lock:
            return dict(self._values)


class _MaskedHeaders(httpx.Headers):
    """httpx.Headers whose repr hides the API key, as httpx hides only Authorization by itself."""

    def __repr__(self) -> str:
        items = [(k, "[secure]" if k.lower() == "x-mbx-apikey" else v) for k, v in self.multi_items()]
        return f"Headers({items!r})"


class _ScrubbedRequest(httpx.Request):
    """httpx.Request whose repr cuts a listenKey in its URL (an error tracker records reprs)."""

    def __repr__(self) -> str:
        return f"<Request({self.method!r}, {scrub(str(self.url))!r})>"


_LISTEN_KEY_VALUE = re.compile(rb"listenKey=([^&\s]+)")


class _Body:
    """Collects one answer's body, at most MAX_BODY_BYTES decoded, before the call's deadline.

    gzip and deflate are decoded here, not by httpx, so that decoding stops at the cap: httpx
    decodes each network chunk whole, and a 64 KiB chunk of gzip can decode to 64 MiB.
    """

    def __init__(self, request: httpx.Request, response: httpx.Response, ends_at: float) -> None:
        self.request = request
        self.ends_at = ends_at
        self.parts: list[bytes] = []
        self.size = 0
        self.fed = False
        coding = _content_encoding(response.headers)
        self.inflate: Any = None
        if coding in ("gzip", "x-gzip", "deflate"):
            self.inflate = zlib.decompressobj(32 + zlib.MAX_WBITS)  # zlib or gzip header, detected
        elif coding not in ("", "identity"):
            raise httpx.DecodingError(
                f"unsupported Content-Encoding {printable(coding, 40)!r}", request=request
            )

    def feed(self, chunk: bytes) -> None:
        self.fed = True
        if time.monotonic() > self.ends_at:
            raise httpx.ReadTimeout(
                "the call's deadline passed while the answer was read", request=self.request
            )
        if self.inflate is not None:
            try:
                chunk = self.inflate.decompress(chunk, MAX_BODY_BYTES - self.size + 1)
            except zlib.error as error:
                raise httpx.DecodingError(f"bad compressed body: {error}", request=self.request) from None
        self.size += len(chunk)
        if self.size > MAX_BODY_BYTES:
            raise MalformedAnswerError(
                f"{self.request.method} {self.request.url.path}: the answer is larger than "
                f"{MAX_BODY_BYTES} bytes (decoded); refusing to read it"
            )
        self.parts.append(chunk)

    def content(self) -> bytes:
        if self.inflate is not None and self.fed and not self.inflate.eof:
            raise httpx.DecodingError("compressed body cut short", request=self.request)
        return b"".join(self.parts)


#: Binance's code for a timestamp outside recvWindow (or more than a second ahead of its clock).
_TIMESTAMP_OUTSIDE_WINDOW = -1021
_FORM = "application/x-www-form-urlencoded"


class _Signing:
    """One SIGNED call's unsigned query and form body, from which each attempt is signed anew.

    Binance signs `totalParams`, the query string followed by the form body with no separator
    between them, as sent (percent-encoded). `timestamp` and then `signature` are appended to the
    body when there is one, else to the query, so the signature is the last parameter either way.
    """

    def __init__(self, request: httpx.Request, credentials: Credentials) -> None:
        self.credentials = credentials
        self.query = request.url.query.decode("ascii")
        try:
            self.body = request.content.decode("ascii")
        except (httpx.RequestNotRead, UnicodeDecodeError):
            raise UserStreamError(
                f"{request.method} {request.url.path}: a SIGNED request's body must be a form"
            ) from None
        if self.body and request.headers.get("content-type", "").split(";")[0].strip() != _FORM:
            raise UserStreamError(
                f"{request.method} {request.url.path}: a SIGNED request's body must be a form"
            )
        self.sent_at_ms = 0.0
        self.received_at_ms = 0.0
        self.resynced = False

    def apply(self, request: httpx.Request) -> None:
        """Sign `request` with a fresh timestamp, replacing any earlier attempt's."""
        credentials = self.credentials
        signer = credentials.signer
        assert signer is not None  # checked when the call began
        stamp = f"timestamp={credentials.timestamp()}"
        if self.body:
            body, query = f"{self.body}&{stamp}", self.query
        else:
            body, query = "", f"{self.query}&{stamp}" if self.query else stamp
        signature = quote(signer.sign(query + body), safe="")
        if body:
            content = f"{body}&signature={signature}".encode("ascii")
            request.stream = httpx.ByteStream(content)
            request._content = content  # what httpx's read() stores
            request.headers["Content-Length"] = str(len(content))
            request.url = request.url.copy_with(query=query.encode("ascii") or None)
        else:
            request.url = request.url.copy_with(query=f"{query}&signature={signature}".encode("ascii"))
        self.sent_at_ms = credentials.wall_ms()

    def answered(self) -> None:
        self.received_at_ms = self.credentials.wall_ms()


def _server_time_ms(headers: httpx.Headers) -> int | None:
    """The answer's `Date` in milliseconds since the epoch (whole seconds), or None."""
    value = headers.get("date")
    if value is None:
        return None
    try:
        return int(email.utils.parsedate_to_datetime(value).timestamp() * 1000)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


def _content_encoding(headers: httpx.Headers) -> str:
    """The Content-Encoding, read off the raw header bytes (httpx's lookup decodes every header)."""
    values = [
        value.decode("latin-1").strip().lower()
        for name, value in headers.raw
        if len(name) == 16 and name.lower() == b"content-encoding"
    ]
    return ", ".join(values)  # two encodings stacked are refused as unsupported, as before


class _Layer:
    """What the sync and async transports share: the credentials, the gate, the weights, the policy,
    the log lines."""

    def __init__(
        self,
        policy: RetryPolicy,
        gate: BackoffGate,
        weights: UsedWeight,
        credentials: Credentials,
        budget: WeightBudget,
    ) -> None:
        self.gate = gate
        self.budget = budget
        self.weights = weights
        self.deadline = policy.deadline
        self.credentials = credentials
        self.retrying_kwargs: dict[str, Any] = {
            **policy.tenacity_kwargs(),
            "before_sleep": self._before_sleep,
        }

    def prepare(self, request: httpx.Request) -> Mapping[str, Any]:
        """Add the key header (to this request only, never to a client's default headers), give
        the request and its headers reprs that hide the secrets; return the configured timeouts."""
        # Swapping the class in place costs nothing, where copying the headers would cost a
        # little on every call; both subclasses only override __repr__.
        if type(request.headers) is httpx.Headers:
            request.headers.__class__ = _MaskedHeaders
        if type(request) is httpx.Request:
            request.__class__ = _ScrubbedRequest
        request.headers[API_KEY_HEADER] = self.credentials.api_key
        timeouts: Mapping[str, Any] = request.extensions.get("timeout", {})
        return timeouts

    def signing(self, request: httpx.Request) -> _Signing | None:
        """How to sign this request's attempts, None if its operation is not SIGNED; a
        SignerMissingError before anything is sent if the client has no secret or private key."""
        operation = request.extensions.get(OPERATION_EXTENSION)
        if operation not in SIGNED_OPERATIONS:
            return None
        if self.credentials.signer is None:
            raise SignerMissingError(
                f"{operation} is a SIGNED operation (its security in the spec requires a signature): "
                f"pass api_secret= or private_key= to the client, or set ${SECRET_ENV} or ${PRIVATE_KEY_ENV}"
            )
        return _Signing(request, self.credentials)

    def resynced(self, signing: _Signing | None, response: httpx.Response) -> bool:
        """After a -1021 to a SIGNED request, learn the server's clock from the answer's `Date`
        (once a call) and say the request should be sent once more.

        `Date` has whole seconds, so the offset learned puts timestamps up to a second (and half
        the round trip) behind the server's clock, never ahead: inside Binance's window (5 s by
        default), and clear of its refusal of timestamps more than a second in the future. A `Date`
        more than an hour off is not learned (`MAX_CLOCK_OFFSET_MS`): the -1021 is the call's error.
        """
        if signing is None or signing.resynced or not 400 <= response.status_code < 500:
            return False
        if error_code(response) != _TIMESTAMP_OUTSIDE_WINDOW:
            return False
        server = _server_time_ms(response.headers)
        if server is None:
            return False
        signing.resynced = True
        before = self.credentials.offset_ms
        request = response.request
        try:
            after = self.credentials.resync(server, signing.sent_at_ms, signing.received_at_ms)
        except ClockOffsetError as refused:
            log.warning("%s %s answered -1021, and %s", request.method, request.url.path, refused)
            return False
        log.warning(
            "%s %s answered -1021: the local clock is %+.0f ms off the server's; resynced, sending once more",
            request.method,
            request.url.path,
            before - after,
        )
        return True

    @staticmethod
    def forget(request: httpx.Request) -> None:
        """Take the key out of a request that has been answered: the request lives on in the
        response and in any error's traceback, which error trackers record."""
        with contextlib.suppress(KeyError):
            del request.headers[API_KEY_HEADER]  # not pop(): that reads the header first

    @staticmethod
    def weight(request: httpx.Request) -> int:
        """The weight the request counts against its IP's budget (`_budget.call_weight`), from its
        operation's `x-weight` and the names of the parameters it sends (query and form)."""
        declared = OPERATION_WEIGHTS.get(request.extensions.get(OPERATION_EXTENSION, ""))
        if declared is None or not declared[1]:
            return call_weight(declared, ())
        try:
            body = request.content
        except httpx.RequestNotRead:
            body = b""
        sent = set(httpx.QueryParams(request.url.query.decode("ascii")).keys())
        if body and request.headers.get("content-type", "").split(";")[0].strip() == _FORM:
            sent |= set(httpx.QueryParams(body.decode("ascii", "replace")).keys())
        return call_weight(declared, sent)

    def hold(self, request: httpx.Request, weight: int, ends_at: float) -> float:
        """0 once the call's `weight` is counted in its ban group's budget; else the seconds to wait
        for the next minute first (reported: a log line at INFO and the budget's `on_wait`), or a
        WeightBudgetError, nothing sent, when that wait would pass the call's deadline."""
        if weight == 0:
            return 0.0
        held = self.budget.reserve(request.url.netloc.decode("ascii"), weight)
        if held is None:
            return 0.0
        left = ends_at - time.monotonic()
        if held.seconds > left:
            raise WeightBudgetError(
                429,
                None,
                f"{held.describe()}, past the call's deadline ({max(left, 0):.1f} s left); not sent",
                held.seconds,
                operation=f"{request.method} {request.url.path}",
            )
        self.budget.report(held)
        return held.seconds

    def before_attempt(
        self, request: httpx.Request, attempt: int, timeouts: Mapping[str, Any], ends_at: float
    ) -> None:
        """Check the gate, then cut this attempt's timeouts to the time the call has left."""
        self.gate.check(request.url.netloc.decode("ascii"), bans_only=attempt > 1)
        left = ends_at - time.monotonic()
        if left <= 0:
            raise httpx.TimeoutException("the call's deadline passed", request=request)
        if attempt > 1 or any(v is None or v > left for v in timeouts.values()) or not timeouts:
            cut = {k: left if v is None else min(v, left) for k, v in timeouts.items()}
            for name in ("connect", "read", "write", "pool"):
                cut.setdefault(name, left)
            request.extensions = {**request.extensions, "timeout": cut}

    def after_response(
        self, request: httpx.Request, response: httpx.Response, content: bytes, started: float
    ) -> None:
        response.request = request
        response._content = content  # what httpx's read() stores: the body counts as read
        elapsed = time.perf_counter() - started
        response.elapsed = datetime.timedelta(seconds=elapsed)
        self.weights.update(response.headers)
        used = minute_weight(response.headers)
        if used is not None:
            self.budget.observe(request.url.netloc.decode("ascii"), used)
        status = response.status_code
        if status in (418, 429):
            wait = retry_after(response.headers)
            if status == 418 and wait is None:
                wait = DEFAULT_BAN_SECONDS
            if wait is not None:
                self.gate.close(request.url.netloc.decode("ascii"), wait, banned=status == 418)
        log.debug("%s %s answered %d in %.1f ms", request.method, request.url.path, status, elapsed * 1000)

    def after_error(self, request: httpx.Request, error: Exception) -> None:
        log.debug("%s %s failed: %s", request.method, request.url.path, type(error).__name__)

    @staticmethod
    def _before_sleep(state: tenacity.RetryCallState) -> None:
        outcome = state.outcome
        assert outcome is not None
        what = (
            type(outcome.exception()).__name__ if outcome.failed else f"HTTP {outcome.result().status_code}"
        )
        log.debug(
            "attempt %d ended in %s; retrying in %.2f s", state.attempt_number, what, state.upcoming_sleep
        )

    @staticmethod
    def started_at(started: float) -> Callable[[tenacity.RetryCallState], None]:
        """A `before` hook that dates the call from its real first attempt.

        Retries start only once the first attempt has failed (so a call that succeeds never pays
        for tenacity); tenacity replays that attempt, and this keeps the deadline honest.
        """

        def before(state: tenacity.RetryCallState) -> None:
            if state.attempt_number == 1:
                state.start_time = started

        return before

    def secrets(self, request: httpx.Request) -> list[str]:
        """The secrets this request carries: the API key, and the listenKey of its query or form."""
        found = [self.credentials.api_key]
        try:
            body = request.content
        except httpx.RequestNotRead:
            body = b""
        for raw in _LISTEN_KEY_VALUE.findall(request.url.query + b"&" + body):
            found.append(raw.decode("ascii", "replace"))
        return found

    def finish(self, request: httpx.Request, response: httpx.Response) -> httpx.Response:
        """The response, or its typed error (the body was read in the attempt)."""
        status = response.status_code
        if status < 300:
            return response
        operation = f"{request.method} {request.url.path}"
        if status < 400:
            raise self._redirect(request, response, operation)
        raise error_for(response, operation, self.secrets(request))

    @staticmethod
    def _redirect(request: httpx.Request, response: httpx.Response, operation: str) -> BinanceAPIError:
        """Redirects are never followed: the key would go wherever the Location says."""
        location = response.headers.get("location")
        where = "without a Location"
        if location is not None:
            try:
                target = request.url.join(location)
                port = f":{target.port}" if target.port is not None else ""
                where = f"to {printable(f'{target.scheme}://{target.host}{port}', 100)}"
            except (httpx.InvalidURL, ValueError, TypeError):
                where = "to an invalid Location"
        reason = "redirects are never followed, so the API key never travels to another origin"
        msg = f"redirected {where}; {reason}"
        return BinanceAPIError(response.status_code, None, msg, operation=operation)

    def network_error(self, request: httpx.Request, error: Exception, attempts: int) -> NetworkError:
        """The NetworkError for `error`; raise it outside any `except` block, so that it carries no
        chained httpx error (whose request and traceback frames hold the full URL)."""
        tried = f" after {attempts} attempts" if attempts > 1 else ""
        detail = server_text(str(error), self.secrets(request)) or "no detail"
        return NetworkError(f"{request.method} {request.url.path}: {type(error).__name__}{tried}: {detail}")


class RetryingTransport(httpx.BaseTransport):
    """Sends each request through `inner` with the API key, under the retry policy and the backoff gate."""

    def __init__(
        self,
        inner: httpx.BaseTransport,
        policy: RetryPolicy,
        gate: BackoffGate,
        weights: UsedWeight,
        sleep: Callable[[float], None] = time.sleep,
        *,
        credentials: Credentials,
        budget: WeightBudget | None = None,
    ) -> None:
        self._inner = inner
        self._layer = _Layer(policy, gate, weights, credentials, SHARED_BUDGET if budget is None else budget)
        self._sleep = sleep

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        layer = self._layer
        try:
            signing = layer.signing(request)
            timeouts = layer.prepare(request)
            response = self._send(request, timeouts, signing)
            if layer.resynced(signing, response):
                response = self._send(request, timeouts, signing)
            return layer.finish(request, response)
        finally:
            layer.forget(request)

    def _send(
        self, request: httpx.Request, timeouts: Mapping[str, Any], signing: _Signing | None
    ) -> httpx.Response:
        """The answer after the retries (finish() turns an error answer into its exception)."""
        layer = self._layer
        started = time.monotonic()
        ends_at = started + layer.deadline
        failure: Exception | None = None
        try:
            first: httpx.Response | BaseException | None = self._attempt(
                request, 1, timeouts, ends_at, signing
            )
        except RETRYABLE_ERRORS as error:
            first = error
        except httpx.RequestError as error:
            failure = error
        if failure is not None:
            raised, failure = layer.network_error(request, failure, 1), None
            raise raised
        if isinstance(first, httpx.Response) and not is_retryable_status(first.status_code):
            return first  # the common case: no retry machinery at all
        attempts = 1

        def attempt() -> httpx.Response:
            nonlocal attempts, first
            if attempts == 1 and first is not None:
                outcome, first = first, None  # replay attempt 1 to tenacity
                if isinstance(outcome, BaseException):
                    raise outcome
                return outcome
            attempts += 1
            return self._attempt(request, attempts, timeouts, ends_at, signing)

        retrying = tenacity.Retrying(
            sleep=self._sleep, before=layer.started_at(started), **layer.retrying_kwargs
        )
        try:
            response: httpx.Response = retrying(attempt)
        except httpx.RequestError as error:
            failure = error
        if failure is not None:
            raised, failure = layer.network_error(request, failure, attempts), None
            raise raised
        return response

    def _attempt(
        self,
        request: httpx.Request,
        number: int,
        timeouts: Mapping[str, Any],
        ends_at: float,
        signing: _Signing | None,
    ) -> httpx.Response:
        layer = self._layer
        weight = layer.weight(request)
        while (wait := layer.hold(request, weight, ends_at)) > 0:
            layer.budget.wait(wait)
        layer.before_attempt(request, number, timeouts, ends_at)
        if signing is not None:
            signing.apply(request)
        started = time.perf_counter()
        try:
            response = self._inner.handle_request(request)
            try:
                body = _Body(request, response, ends_at)
                for chunk in response.stream:  # type: ignore[union-attr]
                    body.feed(chunk)
                content = body.content()
            finally:
                response.close()
        except Exception as error:
            layer.after_error(request, error)
            raise
        if signing is not None:
            signing.answered()
        layer.after_response(request, response, content, started)
        return response

    def close(self) -> None:
        self._inner.close()


class AsyncRetryingTransport(httpx.AsyncBaseTransport):
    """The asyncio twin of RetryingTransport."""

    def __init__(
        self,
        inner: httpx.AsyncBaseTransport,
        policy: RetryPolicy,
        gate: BackoffGate,
        weights: UsedWeight,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        *,
        credentials: Credentials,
        budget: WeightBudget | None = None,
    ) -> None:
        self._inner = inner
        self._layer = _Layer(policy, gate, weights, credentials, SHARED_BUDGET if budget is None else budget)
        self._sleep = sleep

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        layer = self._layer
        try:
            signing = layer.signing(request)
            timeouts = layer.prepare(request)
            response = await self._send(request, timeouts, signing)
            if layer.resynced(signing, response):
                response = await self._send(request, timeouts, signing)
            return layer.finish(request, response)
        finally:
            layer.forget(request)

    async def _send(
        self, request: httpx.Request, timeouts: Mapping[str, Any], signing: _Signing | None
    ) -> httpx.Response:
        layer = self._layer
        started = time.monotonic()
        ends_at = started + layer.deadline
        failure: Exception | None = None
        try:
            first: httpx.Response | BaseException | None = await self._attempt(
                request, 1, timeouts, ends_at, signing
            )
        except RETRYABLE_ERRORS as error:
            first = error
        except httpx.RequestError as error:
            failure = error
        if failure is not None:
            raised, failure = layer.network_error(request, failure, 1), None
            raise raised
        if isinstance(first, httpx.Response) and not is_retryable_status(first.status_code):
            return first
        attempts = 1

        async def attempt() -> httpx.Response:
            nonlocal attempts, first
            if attempts == 1 and first is not None:
                outcome, first = first, None
                if isinstance(outcome, BaseException):
                    raise outcome
                return outcome
            attempts += 1
            return await self._attempt(request, attempts, timeouts, ends_at, signing)

        retrying = tenacity.AsyncRetrying(
            sleep=self._sleep, before=layer.started_at(started), **layer.retrying_kwargs
        )
        try:
            response: httpx.Response = await retrying(attempt)
        except httpx.RequestError as error:
            failure = error
        if failure is not None:
            raised, failure = layer.network_error(request, failure, attempts), None
            raise raised
        return response

    async def _attempt(
        self,
        request: httpx.Request,
        number: int,
        timeouts: Mapping[str, Any],
        ends_at: float,
        signing: _Signing | None,
    ) -> httpx.Response:
        layer = self._layer
        weight = layer.weight(request)
        while (wait := layer.hold(request, weight, ends_at)) > 0:
            await layer.budget.sleep(wait)
        layer.before_attempt(request, number, timeouts, ends_at)
        if signing is not None:
            signing.apply(request)
        started = time.perf_counter()
        try:
            response = await self._inner.handle_async_request(request)
            try:
                body = _Body(request, response, ends_at)
                async for chunk in response.stream:  # type: ignore[union-attr]
                    body.feed(chunk)
                content = body.content()
            finally:
                await response.aclose()
        except Exception as error:
            layer.after_error(request, error)
            raise
        if signing is not None:
            signing.answered()
        layer.after_response(request, response, content, started)
        return response

    async def aclose(self) -> None:
        await self._inner.aclose()
