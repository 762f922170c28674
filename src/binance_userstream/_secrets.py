"""Checking and redacting the two credentials: the API key and listenKeys.

A listenKey lets whoever holds it read the account's private event stream, so it is treated like
the API key: checked before anything is sent, and never written out whole.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import re
from collections.abc import Iterable
from urllib.parse import urlsplit

API_KEY_ENV = "BINANCE_API_KEY"

#: Printable ASCII without space: what Binance issues, and all that is safe in a header or a form.
_TOKEN = re.compile(r"[\x21-\x7e]+")
#: A listenKey in a URL or a form body, as the HTTP library logs them.
_LISTEN_KEY_PARAM = re.compile(r"(listenKey=)([^&\s'\"]+)")
#: A token shaped like a listenKey or an API key (Binance's are 60 to 64 letters and digits),
#: wherever it stands: server text may echo one we do not know of (a key from another request).
_KEY_LIKE = re.compile(r"[A-Za-z0-9]{60,}")
#: C0/C1 controls (terminal escapes, CR/LF), and the invisible formatting characters that can
#: reorder or hide text on a terminal (bidi overrides and isolates, zero-width characters).
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff]")
#: How much server text an exception message quotes.
SERVER_TEXT_LIMIT = 300


def redact(secret: str) -> str:
    """A short, recognisable prefix of `secret`: enough to tell keys apart in a log, no more."""
    return f"{secret[:4]}…" if len(secret) > 4 else "…"


def check_token(value: object, what: str) -> str:
    """Return `value` if it can be sent as an API key or listenKey, else raise ValueError."""
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a str, not {type(value).__name__}")
    if not value:
        raise ValueError(f"{what} is empty")
    if not _TOKEN.fullmatch(value):
        raise ValueError(f"{what} must be printable ASCII without whitespace or control characters")
    return value


def resolve_api_key(api_key: str | None) -> str:
    """The API key given, or else the one in $BINANCE_API_KEY, checked."""
    if api_key is None:
        api_key = os.environ.get(API_KEY_ENV)
        if api_key is None:
            raise ValueError(f"no API key: pass api_key= or set the {API_KEY_ENV} environment variable")
        return check_token(api_key, f"the API key in ${API_KEY_ENV}")
    return check_token(api_key, "api_key")


def check_base_url(url: str) -> str:
    """Return `url` if it is https, or plain http to a loopback host (a local simulator)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"base_url must be an http(s) URL or a host name, not {url!r}")
    if parts.scheme == "http" and not _is_loopback(parts.hostname):
        raise ValueError(f"refusing plain http to {parts.hostname}: the API key would travel unencrypted")
    return url.rstrip("/")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def scrub(text: str, secrets: Iterable[str] = ()) -> str:
    """`text` with each of `secrets`, every listenKey parameter and every key-like token cut to a prefix."""
    for secret in secrets:
        if secret and secret in text:
            text = text.replace(secret, redact(secret))
    text = _LISTEN_KEY_PARAM.sub(lambda m: m.group(1) + redact(m.group(2)), text)
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
    """Rewrites a record so that no listenKey in it (a DELETE's URL, say) is written out whole."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "listenKey" in message:
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


def install_log_redaction() -> None:
    """Attach the redacting filter to the HTTP libraries' loggers (idempotent)."""
    for name in _HTTP_LOGGERS:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
