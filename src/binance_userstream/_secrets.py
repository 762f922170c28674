"""Checking and redacting the two credentials: the API key and listenKeys.

A listenKey lets whoever holds it read the account's private event stream, so it is treated like
the API key: checked before anything is sent, and never written out whole.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import ipaddress
import logging
import os
import re
import sys
import threading
from collections import Counter
from collections.abc import Callable, Iterable
from typing import ParamSpec, TypeVar
from urllib.parse import urlsplit

API_KEY_ENV = "BINANCE_API_KEY"
#: The longest API key or listenKey accepted. Binance issues 64-character API keys and 60-character
#: listenKeys; 256 leaves room for a longer format and still refuses a file pasted by mistake.
MAX_TOKEN_LENGTH = 256
#: Bytes read from a key file or stdin at most: a key, its newline and a BOM fit many times over.
_MAX_SECRET_BYTES = 4096
_BOM = "\ufeff"

#: Printable ASCII without space: what Binance issues, and all that is safe in a header or a form.
_TOKEN = re.compile(r"[\x21-\x7e]+")
#: What Binance issues as a listenKey: letters and digits (60 of them; 64 in older documentation).
#: A key goes into a stream URL, where `&`, `/`, `?`, `#` or `%` would change what is asked for.
_LISTEN_KEY = re.compile(r"[A-Za-z0-9]+")
#: A listenKey in a URL or a form body, as the HTTP library logs them.
_LISTEN_KEY_PARAM = re.compile(r"(listenKey=)([^&\s'\"]+)")
#: A SIGNED request's signature in its URL: no secret, but nothing a log needs either.
_SIGNATURE_PARAM = re.compile(r"(signature=)([^&\s'\"]+)")
#: A credential in a JSON text: a WebSocket API request (apiKey, signature, listenToken) or answer
#: (token), as the WebSocket library logs frames at DEBUG.
_JSON_SECRET = re.compile(r'("(?:apiKey|signature|listenToken|token|listenKey)"\s*:\s*")([^"]+)')
#: A token shaped like a listenKey or an API key (Binance's are 60 to 64 letters and digits),
#: wherever it stands: server text may echo one we do not know of (a key from another request).
_KEY_LIKE = re.compile(r"[A-Za-z0-9]{60,}")
#: C0/C1 controls (terminal escapes, CR/LF), and the invisible formatting characters that can
#: reorder or hide text on a terminal (bidi overrides and isolates, zero-width characters).
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff]")
#: How much server text an exception message quotes.
SERVER_TEXT_LIMIT = 300


_P = ParamSpec("_P")
_R = TypeVar("_R")


def clears_locals_on_error(function: Callable[_P, _R]) -> Callable[_P, _R]:
    """`function`, except that an exception leaving it leaves no locals in its frame nor in the
    package's frames below: they hold what it was given (a secret, a private key's PEM, a passphrase,
    a key file's text), and error trackers that record a traceback's locals (Sentry does by default)
    would send them. Other code's frames keep theirs.
    """

    @functools.wraps(function)
    def clearing(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        try:
            return function(*args, **kwargs)
        except BaseException as error:
            del args, kwargs  # this frame stays in the traceback: it keeps neither
            _clear_locals(error)
            raise

    return clearing


#: The package's own source files: the frames whose locals `clears_locals_on_error` clears.
_PACKAGE = os.path.dirname(os.path.abspath(__file__)) + os.sep
_RESUMABLE = inspect.CO_GENERATOR | inspect.CO_COROUTINE | inspect.CO_ASYNC_GENERATOR


def _clear_locals(error: BaseException) -> None:
    """Clear the locals of the package's finished frames in the tracebacks of `error` and of the
    exceptions it chains (an error raised `from None` still holds the one it replaced)."""
    pending, seen = [error], set()
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        entry = current.__traceback__
        while entry is not None:
            code = entry.tb_frame.f_code
            # Not a generator's or a coroutine's frame: clearing one that is suspended would close it.
            if code.co_filename.startswith(_PACKAGE) and not code.co_flags & _RESUMABLE:
                with contextlib.suppress(RuntimeError):  # a frame still running (the wrapper's) is kept
                    entry.tb_frame.clear()
            entry = entry.tb_next
        pending.extend(e for e in (current.__cause__, current.__context__) if e is not None)


def redact(secret: str) -> str:
    """A short, recognisable prefix of `secret`: enough to tell keys apart in a log, no more."""
    return f"{secret[:4]}…" if len(secret) > 4 else "…"


def check_token(value: object, what: str) -> str:
    """Return `value` if it can be sent as an API key or listenKey, else raise ValueError."""
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a str, not {type(value).__name__}")
    if not value:
        raise ValueError(f"{what} is empty")
    if len(value) > MAX_TOKEN_LENGTH:
        raise ValueError(f"{what} is {len(value)} characters long; at most {MAX_TOKEN_LENGTH} are accepted")
    if not _TOKEN.fullmatch(value):
        raise ValueError(f"{what} must be printable ASCII without whitespace or control characters")
    return value


def check_listen_key(value: object, what: str) -> str:
    """Return `value` if it is shaped like a listenKey Binance issues: letters and digits, at most
    MAX_TOKEN_LENGTH of them. Else ValueError (TypeError for a non-str), with no part of the value
    in the message: a key of another shape would change the stream URL it stands in."""
    key = check_token(value, what)
    if not _LISTEN_KEY.fullmatch(key):
        raise ValueError(f"{what} must be letters and digits only, as Binance's listenKeys are")
    return key


def clean_secret(text: str) -> str:
    """`text` without a leading UTF-8 byte order mark and surrounding whitespace: how an editor or
    `echo` leaves a key in a file or a variable. The same rule for $BINANCE_API_KEY and key files."""
    return text.strip().removeprefix(_BOM).strip()


def resolve_api_key(api_key: str | None) -> str:
    """The API key given, or else the one in $BINANCE_API_KEY (cleaned like a key file), checked."""
    if api_key is None:
        api_key = os.environ.get(API_KEY_ENV)
        if api_key is None:
            raise ValueError(f"no API key: pass api_key= or set the {API_KEY_ENV} environment variable")
        return check_token(clean_secret(api_key), f"the API key in ${API_KEY_ENV}")
    return check_token(api_key, "api_key")


@clears_locals_on_error
def read_secret(source: str, what: str, *, token: bool = True) -> str:
    """The API key or listenKey held in the file `source` (`-`: one line of stdin), cleaned and checked.

    The file holds the key alone (surrounding whitespace and a UTF-8 BOM are dropped); at most a few
    KB are read, so a wrong file is refused rather than sent. `token=False` reads a passphrase
    instead: the first line as it stands, spaces included (as `openssl -passin file:` reads one).
    Errors never show the content; they name the file, unless its name is shaped like a key (one
    pasted in place of the path).
    """
    name = "stdin" if source == "-" else f"the {what} file"
    if source != "-":
        name = f"{name} {source!r}" if not _KEY_LIKE.search(source) else f"{name} (name not shown: key-like)"
    try:
        if source == "-":
            raw = sys.stdin.buffer.readline(_MAX_SECRET_BYTES + 1)
        else:
            with open(source, "rb") as file:
                raw = file.read(_MAX_SECRET_BYTES + 1)
    except OSError as error:
        raise ValueError(f"cannot read {name}: {error.strerror or type(error).__name__}") from None
    if len(raw) > _MAX_SECRET_BYTES:
        raise ValueError(f"{name} is too large to hold a {what} (more than {_MAX_SECRET_BYTES} bytes)")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError(f"{name} is not UTF-8 text, so it cannot hold a {what}") from None
    if not token:
        lines = text.removeprefix(_BOM).splitlines()
        if not lines or not lines[0]:
            raise ValueError(f"no {what} in {name} (its first line is empty)")
        return lines[0]
    key = clean_secret(text)
    if not key:
        raise ValueError(f"no {what} in {name}")
    return check_token(key, f"the {what} in {name}")


def check_base_url(url: str) -> str:
    """Return `url` if it is https, or plain http to a loopback host (a local simulator)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"base_url must be an http(s) URL or a host name, not {url!r}")
    if parts.scheme == "http" and not is_loopback(parts.hostname):
        raise ValueError(f"refusing plain http to {parts.hostname}: the API key would travel unencrypted")
    return url.rstrip("/")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def scrub(text: str, secrets: Iterable[str] = ()) -> str:
    """`text` with each of `secrets`, every listenKey and signature parameter and every key-like token
    cut to a prefix."""
    for secret in secrets:
        if secret and secret in text:
            text = text.replace(secret, redact(secret))
    text = _LISTEN_KEY_PARAM.sub(lambda m: m.group(1) + redact(m.group(2)), text)
    text = _SIGNATURE_PARAM.sub(lambda m: m.group(1) + redact(m.group(2)), text)
    text = _JSON_SECRET.sub(lambda m: m.group(1) + redact(m.group(2)), text)
    return _KEY_LIKE.sub(lambda m: redact(m.group(0)), text)


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group(0))
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: str, limit: int = SERVER_TEXT_LIMIT) -> str:
    """`text` safe to print on a terminal or a log line: control characters escaped, at most `limit`
    characters (and a count of the rest)."""
    text = _CONTROL.sub(_escape, text)
    if len(text) > limit:
        text = f"{text[:limit]}… ({len(text) - limit} more characters)"
    return text


def server_text(text: str, secrets: Iterable[str] = ()) -> str:
    """Text a server sent (a message, a reason phrase), fit for an exception message: scrubbed of
    every secret, control characters escaped, length bounded."""
    return printable(scrub(text, secrets))


class RedactingFilter(logging.Filter):
    """Rewrites a record so that no listenKey (a DELETE's URL, say) nor a SIGNED request's signature
    in it is written out whole."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "listenKey" in message or "signature=" in message:
            record.msg, record.args = scrub(message), None
        return True


#: httpx logs each request's URL at INFO, httpcore its traffic at DEBUG.
_HTTP_LOGGERS = (
    "httpx",
    "httpcore",
    "httpcore.connection",
    "httpcore.http11",
    "httpcore.http2",
    "httpcore.proxy",
)
_FILTER = RedactingFilter()


def _attach(log_filter: logging.Filter, names: Iterable[str]) -> None:
    """Attach `log_filter` to each named logger, once."""
    for name in names:
        logger = logging.getLogger(name)
        if log_filter not in logger.filters:
            logger.addFilter(log_filter)


def install_log_redaction() -> None:
    """Attach the redacting filter to the HTTP libraries' loggers (idempotent)."""
    _attach(_FILTER, _HTTP_LOGGERS)


#: listenKeys in use by open event streams: they stand whole in WebSocket URLs (COIN-M's
#: `/ws/<key>` without the word listenKey), so the WebSocket library's records are scrubbed of each.
_WATCHED: Counter[str] = Counter()
_WATCHED_LOCK = threading.Lock()
#: The shortest piece of a watched secret scrubbed on its own. websockets logs a long frame as its
#: head and tail (`'{"e":"listenKeyExp...Fhx3AAX1c"}'`), which can cut a secret anywhere and leave
#: a piece with neither a key name before it nor a key's length. 8 letters and digits are 47 bits:
#: too little to matter, too much to turn up in other text by chance.
FRAGMENT = 8
#: Where websockets left out the middle of a long frame or close reason (websockets.frames.Frame).
_CUT = "..."


def watch_secret(secret: str, watch: bool) -> None:
    """Start (or stop) scrubbing `secret`, and any piece of it, from the WebSocket library's log records."""
    with _WATCHED_LOCK:
        if watch:
            _WATCHED[secret] += 1
        else:
            _WATCHED[secret] -= 1
            if _WATCHED[secret] <= 0:
                del _WATCHED[secret]


def scrub_pieces(text: str, secrets: Iterable[str]) -> str:
    """`text` with each piece of one of `secrets` (FRAGMENT characters or more) that ends or starts
    at a cut replaced by `…`. Elsewhere a secret stands whole, as `scrub` finds it: the cut is the
    only place that splits one."""
    hidden: list[tuple[int, int]] = []
    cut = text.find(_CUT)
    while cut != -1:
        after = cut + len(_CUT)
        for secret in secrets:
            if cut >= FRAGMENT and text[cut - FRAGMENT : cut] in secret:
                first = cut - FRAGMENT
                while first > 0 and text[first - 1 : cut] in secret:
                    first -= 1
                hidden.append((first, cut))
            if text[after : after + FRAGMENT] in secret and len(text) - after >= FRAGMENT:
                last = after + FRAGMENT
                while last < len(text) and text[after : last + 1] in secret:
                    last += 1
                hidden.append((after, last))
        cut = text.find(_CUT, after)
    if not hidden:
        return text
    merged: list[tuple[int, int]] = []  # two secrets may share a piece
    for first, last in sorted(hidden):
        if merged and first <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], last))
        else:
            merged.append((first, last))
    kept, end = [], 0
    for first, last in merged:
        kept.append(text[end:first])
        end = last
    kept.append(text[end:])
    return "…".join(kept)


#: A WebSocket API request that carries credentials, as the WebSocket library logs the frame.
_SUBSCRIPTION_REQUEST = "userDataStream.subscribe"
_SUBSCRIPTION_FRAME = re.compile(r"(TEXT )'.*userDataStream\.subscribe.*'", re.DOTALL)


class StreamRedactingFilter(logging.Filter):
    """Rewrites a WebSocket library's record so that no listenKey (watched, key-like, or after
    `listenKey=`) is written out whole, nor any piece of a watched secret that a cut frame left;
    its exception text, if any, too."""

    def filter(self, record: logging.LogRecord) -> bool:
        with _WATCHED_LOCK:
            secrets = list(_WATCHED)
        message = record.getMessage()
        if _SUBSCRIPTION_REQUEST in message:
            # The library logs a long frame as its head and tail: the tail of a signed subscription
            # or a listenToken has no key name left to scrub by. The whole frame is withheld.
            message = _SUBSCRIPTION_FRAME.sub(r"\1[a user-data subscription request, withheld]", message)
        # Always flattened: the arguments (a frame, whose repr holds its whole payload) must not
        # reach a handler that records them as they are.
        record.msg, record.args = scrub_pieces(scrub(message, secrets), secrets), None
        if record.exc_info and record.exc_info[1] is not None:
            text = logging.Formatter().formatException(record.exc_info)
            record.exc_info, record.exc_text = None, scrub_pieces(scrub(text, secrets), secrets)
        return True


#: websockets logs handshakes (the request line: the URL) and closes at DEBUG.
_WS_LOGGERS = (
    "websockets",
    "websockets.client",
    "websockets.protocol",
    "binance_userstream.stream.websockets",
)
_STREAM_FILTER = StreamRedactingFilter()


def install_stream_log_redaction() -> None:
    """Attach the stream filter to the WebSocket library's loggers (idempotent)."""
    _attach(_STREAM_FILTER, _WS_LOGGERS)
