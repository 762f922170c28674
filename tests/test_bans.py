"""Waits and bans: Retry-After is capped at 3 days and a useless one means the usual backoff; hosts
that share a ban share one closure of the gate; base URLs carry no credentials.

Binance's bans last 2 minutes to 3 days, per IP (https://github.com/binance/binance-spot-api-docs,
rest-api.md, LIMITS).
"""

from __future__ import annotations

import email.utils
import time

import httpx
import pytest
import tenacity

from binance_userstream import BackoffGate, IPBannedError, RateLimitedError, RetryPolicy, UserDataStream
from binance_userstream._policy import MAX_RETRY_AFTER, retry_after
from tests._both import Facade
from tests._scripted import LISTEN_KEY, Reply, ScriptedServer
from tests.conftest import API_KEY, FakeClock

THREE_DAYS = 3 * 24 * 3600.0


# -- 3. Retry-After is capped at 3 days, and 0 means a short backoff --------------------------------


def http_date(seconds_from_now: float) -> str:
    return email.utils.formatdate(time.time() + seconds_from_now, usegmt=True)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("5", 5.0),
        ("1e12", THREE_DAYS),
        ("inf", THREE_DAYS),
        ("1e400", THREE_DAYS),
        ("Fri, 31 Dec 9999 23:59:59 GMT", THREE_DAYS),
        ("nan", None),
        ("0", None),
        ("-5", None),
        ("soon", None),
        ("Mon, 01 Jan 2001 00:00:00 GMT", None),
        ("Mon, 99 Foo 99999999999 99:99:99 GMT", None),
    ],
)
def test_retry_after_is_capped_at_three_days_and_unusable_values_are_none(
    value: str, expected: float | None
) -> None:
    """Binance's bans last 2 minutes to 3 days (https://github.com/binance/binance-spot-api-docs,
    rest-api.md, LIMITS): no Retry-After is obeyed past that."""
    assert MAX_RETRY_AFTER == THREE_DAYS
    assert retry_after(httpx.Headers({"Retry-After": value})) == expected


def test_an_http_date_retry_after_counts_from_now() -> None:
    assert retry_after(httpx.Headers({"Retry-After": http_date(60)})) == pytest.approx(60, abs=2)


def test_a_429_with_retry_after_0_backs_off_with_the_jittered_wait() -> None:
    """Not five back-to-back requests: the policy's own backoff applies."""
    wait = RetryPolicy(backoff_base=1.0, backoff_cap=1.0).tenacity_kwargs()["wait"]
    response = httpx.Response(429, headers={"Retry-After": "0"})
    samples = []
    for _ in range(100):
        state = tenacity.RetryCallState(None, None, (), {})
        state.attempt_number = 1
        state.outcome = tenacity.Future.construct(1, response, False)
        samples.append(wait(state))
    assert all(0 <= s <= 1.0 for s in samples)
    assert max(samples) > 0.5


@pytest.mark.parametrize("value", ["1e12", "inf", "Fri, 31 Dec 9999 23:59:59 GMT"])
def test_a_huge_retry_after_closes_the_host_for_three_days_not_forever(
    facade: Facade, server: ScriptedServer, clock: FakeClock, value: str
) -> None:
    server.script(Reply(status=418, body={"code": -1003, "msg": "banned"}, headers={"Retry-After": value}))
    with pytest.raises(IPBannedError) as caught:
        facade("create")
    assert caught.value.retry_after == THREE_DAYS
    clock.advance(THREE_DAYS)
    assert facade("create") == LISTEN_KEY


def test_a_429_with_a_huge_retry_after_fails_fast_with_the_capped_wait(
    facade: Facade, server: ScriptedServer
) -> None:
    server.script(
        Reply(status=429, body={"code": -1003, "msg": "slow down"}, headers={"Retry-After": "1e12"})
    )
    with pytest.raises(RateLimitedError) as caught:
        facade("create")
    assert caught.value.retry_after == THREE_DAYS


# -- 9. hosts that share a ban share a closure ------------------------------------------------------


SPOT = ["api.binance.com", "api-gcp.binance.com", "api1.binance.com", "api4.binance.com"]


@pytest.mark.parametrize("banned_by", SPOT)
@pytest.mark.parametrize(
    "other", [*SPOT, "api.binance.com.", "API2.Binance.COM", "api3.binance.com:443", "API.binance.com.:443"]
)
def test_a_ban_from_one_spot_host_closes_every_spot_host(
    banned_by: str, other: str, gate: BackoffGate
) -> None:
    """Binance bans per IP: every spot host (api, api-gcp, api1-4) sends nothing during the ban."""
    gate.close(banned_by, 120, banned=True)
    with pytest.raises(IPBannedError):
        gate.check(other)


@pytest.mark.parametrize(
    "other",
    ["testnet.binance.vision", "fapi.binance.com", "dapi.binance.com", "api.binance.com.evil.example"],
)
def test_a_spot_ban_leaves_other_api_families_and_other_hosts_open(other: str, gate: BackoffGate) -> None:
    gate.close("api.binance.com", 120, banned=True)
    gate.check(other)


def test_unknown_hosts_are_grouped_by_normalised_name_and_port(gate: BackoffGate) -> None:
    gate.close("Example.COM.:8080", 60, banned=False)
    with pytest.raises(RateLimitedError):
        gate.check("example.com:8080")
    gate.check("example.com:8081")


# -- base URLs ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    ["https://user:s3cretpw@api.binance.com", "http://user:s3cretpw@127.0.0.1:1", "https://s3cretpw@x.test"],
)
def test_a_base_url_with_userinfo_is_refused_without_echoing_it(url: str, gate: BackoffGate) -> None:
    with pytest.raises(ValueError, match="user name or password") as caught:
        UserDataStream(API_KEY, url, gate=gate)
    assert "s3cretpw" not in str(caught.value)
