"""The stream faults that the soak and the fault matrix inject, per market family, on the simulator."""

from __future__ import annotations

from typing import Any

from binance_userstream import AsyncUserDataStream, BackoffGate, RetryPolicy, SteppedClock, UserDataStream
from binance_userstream.simulator import TEST_API_KEY, TEST_API_SECRET, Fault, Simulator

#: The families whose events come from the WebSocket API (their connections count as "spot").
WS_API = ("spot", "margin")
#: Quick REST retries: the runs measure streams, not the HTTP layer's waits.
RETRY = RetryPolicy(backoff_base=0.001, backoff_cap=0.005)


def client(family: str, sim: Simulator, clock: SteppedClock, *, sync: bool = False) -> Any:
    """A client of `family` against `sim`: quick REST retries, a backoff gate on the run's clock,
    the test account's key and secret (spot's subscriptions are signed; margin's listenTokens need none)."""
    cls = UserDataStream if sync else AsyncUserDataStream
    return cls(
        TEST_API_KEY,
        sim.url,
        market=family,
        stream_url=sim.url.replace("http://", "ws://"),
        retry=RETRY,
        gate=BackoffGate(clock=clock.now),
        api_secret=TEST_API_SECRET,
    )


def streams_of(family: str) -> str:
    """The simulator's name for a family's connections: margin's are on the spot WebSocket API."""
    return "spot" if family == "margin" else family


def event_for(family: str, n: int) -> dict[str, Any]:
    """The n-th event of a run (`E` = n), a real event type of the family."""
    if family in WS_API:
        return {"e": "balanceUpdate", "E": n, "a": "BTC", "d": "0.1", "T": n}
    return {"e": "ACCOUNT_UPDATE", "E": n, "T": n, "a": {"m": "ORDER", "B": [], "P": []}}


def inject(sim: Simulator, family: str, fault: str) -> None:
    """One fault: a dropped connection, a clean cut, a stall past the ping rules, a lost credential
    ("loss": a listenKey expired; spot's and margin's subscriptions ended, margin's tokens revoked),
    a 429 on the next create with a lost credential, a serverShutdown notice, or a refusal no
    reconnect can mend (the secret rotated for spot; for margin, whose listenToken is minted with
    the API key alone, and the derivatives, the next mint or create answered 410 Gone)."""
    streams = streams_of(family)
    if fault == "drop":
        sim.drop_streams(streams)
    elif fault == "cut":
        sim.cut_streams(streams)
    elif fault == "stall":
        sim.stall_streams(600.0, streams)
    elif fault == "shutdown":
        sim.shutdown_notice(streams)
    elif fault == "refused":
        if family == "spot":
            sim.register_key(TEST_API_KEY, secret="R" * 64)
            sim.drop_streams(streams)
        elif family == "margin":
            sim.inject(Fault.retired())
            sim.end_subscriptions(family)
        else:
            sim.inject(Fault.retired())
            sim.expire_key(market=family)
    elif fault in ("loss", "429"):
        if fault == "429":
            sim.inject(Fault.rate_limited(retry_after=0.01))
        if family in WS_API:
            sim.end_subscriptions(family)
        else:
            sim.expire_key(market=family)
    else:
        raise ValueError(f"unknown fault {fault!r}")
