"""Checking and redacting the two credentials: the API key and listenKeys.

A listenKey lets whoever holds it read the account's private event stream, so it is treated like
the API key: checked before anything is sent, and never written out whole.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import re
from urllib.parse import urlsplit

API_KEY_ENV = "BINANCE_API_KEY"

#: Printable ASCII without space: what Binance issues, and all that is safe in a header or a form.
_TOKEN = re.compile(r"[\x21-\x7e]+")
#: A listenKey in a URL or a form body, as the HTTP library logs them.
_LISTEN_KEY_PARAM = re.compile(r"(listenKey=)([^&\s'\"]+)")


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


def scrub(text: str) -> str:
    """`text` with every listenKey parameter cut to its prefix."""
    return _LISTEN_KEY_PARAM.sub(lambda m: m.group(1) + redact(m.group(2)), text)


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
