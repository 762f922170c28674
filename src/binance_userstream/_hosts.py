"""Named Binance REST hosts, so callers can say `base_url="testnet"` (the spec's `servers` list)."""

from __future__ import annotations

from types import MappingProxyType

from binance_userstream._secrets import check_base_url

HOSTS = MappingProxyType(
    {
        "production": "https://api.binance.com",
        "gcp": "https://api-gcp.binance.com",
        "api1": "https://api1.binance.com",
        "api2": "https://api2.binance.com",
        "api3": "https://api3.binance.com",
        "api4": "https://api4.binance.com",
        "testnet": "https://testnet.binance.vision",
    }
)


def resolve_base_url(base_url: str) -> str:
    """A host name from HOSTS, or a URL (https, or http to loopback), as a checked base URL."""
    return check_base_url(HOSTS.get(base_url, base_url))
