"""Keepalive sessions against the simulator, on virtual time: hours of keepalives in milliseconds.

Binance's docs: a key lives 60 minutes after its last keepalive; keep alive about every 30
minutes; -1125 means the key is gone and a new one must be created; keys are shared per account.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import threading

import pytest

from binance_userstream import (
    AsyncUserDataStream,
    AuthenticationError,
    BackoffGate,
    EndpointRetiredError,
    EventKind,
    RetryPolicy,
    SessionEvent,
    SessionState,
    UserDataStream,
    UserStreamError,
    VirtualClock,
)
from binance_userstream.simulator import Fault, Simulator
from tests._events import Recorder
from tests._scripted import Reply, ScriptedServer, default_reply
from tests.conftest import API_KEY, FAST_RETRY

HOUR = 3600.0
#: The session's create, answered as usual (late by nothing), ahead of the faults meant for its
#: keepalives. Faults are queued before the session starts: on virtual time its thread's first wait
#: ends at once, so its keepalive can go out before a fault queued after `session()` returned.
CREATED = Fault.slow(0)
#: Spot's retired lifecycle is the one these sessions keep (the client's default market).
pytestmark = pytest.mark.simulator(retired=False)


@pytest.fixture
def uds(sim: Simulator, gate: BackoffGate) -> UserDataStream:
    return UserDataStream(API_KEY, sim.url, retry=FAST_RETRY, gate=gate)


def test_a_session_keeps_its_key_alive_for_hours_every_30_minutes(
    uds: UserDataStream, sim: Simulator, vclock: VirtualClock
) -> None:
    rec = Recorder()
    live_at_each_keepalive = []

    def on_event(event: object) -> None:
        rec(event)  # type: ignore[arg-type]
        live_at_each_keepalive.append(sim.exchange.is_live(session.listen_key or ""))

    with uds, uds.session(on_event=on_event, clock=vclock) as session:
        rec.wait_for(lambda events: events[-1].at >= 8 * HOUR)
        key = session.listen_key
        assert session.state is SessionState.ACTIVE
    kept = rec.of(EventKind.KEPT_ALIVE)
    assert rec.kinds()[0] is EventKind.CREATED
    assert len(kept) >= 16
    assert {e.listen_key for e in rec.events} == {key}
    assert [b.at - a.at for a, b in itertools.pairwise(kept)] == [1800.0] * (len(kept) - 1)
    assert all(live_at_each_keepalive)
    assert EventKind.KEY_LOST not in rec.kinds()


def test_a_lost_key_is_replaced_and_announced_before_it_is_used(
    uds: UserDataStream, sim: Simulator, vclock: VirtualClock
) -> None:
    rec = Recorder()
    puts_when_announced: list[int] = []

    def on_event(event: object) -> None:
        rec(event)  # type: ignore[arg-type]
        if rec.events[-1].kind is EventKind.REPLACED:
            puts_when_announced.append(sum(1 for m, _ in sim.requests if m == "PUT"))

    with uds, uds.session(on_event=on_event, clock=vclock) as session:
        rec.wait_for_count(EventKind.KEPT_ALIVE, 2)
        old = session.listen_key
        sim.exchange.forget_keys()
        rec.wait_for_count(EventKind.KEPT_ALIVE, 5)
        new = session.listen_key
    assert new != old
    assert new is not None
    kinds = rec.kinds()
    lost = kinds.index(EventKind.KEY_LOST)
    assert kinds[lost + 1] is EventKind.REPLACED
    replaced = rec.events[lost + 1]
    assert replaced.listen_key == new
    assert all(e.listen_key == new for e in rec.events[lost + 1 :])
    assert isinstance(rec.events[lost].error, Exception)
    [puts_before] = puts_when_announced
    assert sum(1 for m, _ in sim.requests if m == "PUT") > puts_before


def test_a_failed_keepalive_is_retried_within_minutes_not_at_the_next_tick(
    sim: Simulator, vclock: VirtualClock, gate: BackoffGate
) -> None:
    rec = Recorder()
    uds = UserDataStream(API_KEY, sim.url, retry=RetryPolicy.off(), gate=gate)
    sim.inject(CREATED, Fault.server_error(503), Fault.server_error(503), Fault.drop())
    with uds, uds.session(on_event=rec, clock=vclock) as session:
        rec.wait_for_count(EventKind.KEPT_ALIVE, 2)
        key = session.listen_key
    failed = rec.of(EventKind.KEEPALIVE_FAILED)
    assert [e.retry_in for e in failed] == [60.0, 120.0, 240.0]
    first_ok = rec.of(EventKind.KEPT_ALIVE)[0]
    assert first_ok.at - failed[0].at == 60 + 120 + 240
    assert first_ok.at - rec.events[0].at < HOUR  # still inside the 60 minutes: the same key lives
    assert first_ok.listen_key == key == rec.events[0].listen_key


def test_retries_after_failures_never_wait_more_than_five_minutes(
    sim: Simulator, vclock: VirtualClock, gate: BackoffGate
) -> None:
    rec = Recorder()
    uds = UserDataStream(API_KEY, sim.url, retry=RetryPolicy.off(), gate=gate)
    sim.inject(CREATED, *[Fault.server_error(500)] * 6)
    with uds, uds.session(on_event=rec, clock=vclock):
        rec.wait_for_count(EventKind.KEPT_ALIVE, 1)
    assert [e.retry_in for e in rec.of(EventKind.KEEPALIVE_FAILED)] == [60, 120, 240, 300, 300, 300]


def test_a_rate_limited_keepalive_waits_at_least_retry_after(
    sim: Simulator, vclock: VirtualClock, gate: BackoffGate
) -> None:
    rec = Recorder()
    uds = UserDataStream(API_KEY, sim.url, retry=RetryPolicy(deadline=1), gate=gate)
    sim.inject(CREATED, Fault.rate_limited(600))
    with uds, uds.session(on_event=rec, clock=vclock):
        rec.wait_for_count(EventKind.KEEPALIVE_FAILED, 1)
    assert rec.of(EventKind.KEEPALIVE_FAILED)[0].retry_in == 600


@pytest.mark.parametrize(
    ("fault_or_keys", "error"),
    [("retired", EndpointRetiredError), ("unknown-key", AuthenticationError)],
)
def test_a_fatal_answer_ends_the_session_loudly(
    vclock: VirtualClock, gate: BackoffGate, fault_or_keys: str, error: type[Exception]
) -> None:
    rec = Recorder()
    keys = [API_KEY]
    with Simulator(clock=vclock, api_keys=keys, retired=False) as sim:
        uds = UserDataStream(API_KEY, sim.url, retry=FAST_RETRY, gate=gate)
        with uds, uds.session(on_event=rec, clock=vclock) as session:
            if fault_or_keys == "retired":
                sim.exchange.retired = True
            else:
                keys.clear()
                sim.exchange._accounts = {}
            rec.wait_for_count(EventKind.FAILED, 1)
            assert session.state is SessionState.FAILED
            assert isinstance(session.last_error, error)
    assert rec.kinds()[-1] is EventKind.STOPPED
    assert session.state is SessionState.FAILED


def test_a_session_on_retired_endpoints_fails_at_once_with_the_retirement_error(
    vclock: VirtualClock, gate: BackoffGate
) -> None:
    with Simulator(clock=vclock, retired=True) as sim:
        uds = UserDataStream(API_KEY, sim.url, gate=gate)
        with uds, pytest.raises(EndpointRetiredError, match="2026-02-20"):
            uds.session(clock=vclock).__enter__()


def test_by_default_the_key_is_left_open_on_exit_because_it_is_shared(
    uds: UserDataStream, sim: Simulator, vclock: VirtualClock
) -> None:
    with uds, uds.session(clock=vclock) as session:
        key = session.listen_key
    assert key is not None
    assert sim.exchange.is_live(key)
    assert session.state is SessionState.STOPPED


def test_close_on_exit_closes_the_key(uds: UserDataStream, sim: Simulator, vclock: VirtualClock) -> None:
    rec = Recorder()
    with uds, uds.session(close_on_exit=True, on_event=rec, clock=vclock) as session:
        key = session.listen_key
    assert key is not None
    assert not sim.exchange.is_live(key)
    assert rec.kinds()[-2:] == [EventKind.CLOSED, EventKind.STOPPED]


def test_a_session_adopts_a_given_key(uds: UserDataStream, vclock: VirtualClock) -> None:
    rec = Recorder()
    with uds:
        key = uds.create()
        with uds.session(listen_key=key, on_event=rec, clock=vclock) as session:
            assert session.listen_key == key
    assert rec.kinds()[0] is EventKind.ADOPTED


def test_adopting_a_dead_key_replaces_it(uds: UserDataStream, vclock: VirtualClock) -> None:
    rec = Recorder()
    dead = "d" * 60
    with uds, uds.session(listen_key=dead, on_event=rec, clock=vclock) as session:
        assert session.listen_key != dead
    assert rec.kinds()[:2] == [EventKind.KEY_LOST, EventKind.REPLACED]


def test_a_callback_that_raises_does_not_stop_the_session(
    uds: UserDataStream, vclock: VirtualClock, caplog: pytest.LogCaptureFixture
) -> None:
    rec = Recorder()

    def on_event(event: object) -> None:
        rec(event)  # type: ignore[arg-type]
        raise RuntimeError("callback bug")

    with uds, uds.session(on_event=on_event, clock=vclock):
        rec.wait_for_count(EventKind.KEPT_ALIVE, 3)
    assert "on_event callback raised" in caplog.text


def test_events_and_sessions_show_only_a_key_prefix(uds: UserDataStream, vclock: VirtualClock) -> None:
    rec = Recorder()
    with uds, uds.session(on_event=rec, clock=vclock) as session:
        key = session.listen_key
        assert key is not None
        assert key not in repr(session)
    for event in rec.events:
        assert key not in repr(event)
        assert key not in event.describe()
        assert key not in str(event.to_json())
        assert event.key_hint == key[:4] + "…"


@pytest.mark.parametrize("interval", [0, -1, 0.5, math.nan, math.inf, -math.inf, 3001, HOUR, 10 * HOUR])
def test_an_interval_that_could_let_the_key_expire_or_spin_is_refused(
    uds: UserDataStream, interval: float
) -> None:
    """A key lives 60 minutes past its last keepalive: more than 50 minutes leaves no time to retry."""
    with pytest.raises(ValueError, match="interval must be between 1 and 3000 seconds"):
        uds.session(interval=interval)


def test_an_async_session_checks_its_interval_too(sim: Simulator, gate: BackoffGate) -> None:
    with pytest.raises(ValueError, match="interval"):
        AsyncUserDataStream(API_KEY, sim.url, gate=gate).session(interval=math.nan)


@pytest.mark.parametrize("interval", [1, 60, 3000])
def test_intervals_within_the_bounds_are_kept(
    uds: UserDataStream, vclock: VirtualClock, interval: float
) -> None:
    rec = Recorder()
    with uds, uds.session(interval=interval, on_event=rec, clock=vclock):
        rec.wait_for_count(EventKind.KEPT_ALIVE, 2)
    kept = rec.of(EventKind.KEPT_ALIVE)
    assert kept[1].at - kept[0].at == interval


def test_leaving_a_session_stops_its_thread(uds: UserDataStream, vclock: VirtualClock) -> None:
    def keepers() -> list[threading.Thread]:
        return [t for t in threading.enumerate() if t.name == "binance-userstream-keepalive"]

    with uds, uds.session(clock=vclock):
        assert len(keepers()) == 1
    assert keepers() == []


# -- async -----------------------------------------------------------------------------------------


def test_an_async_session_keeps_its_key_alive_for_hours(
    sim: Simulator, vclock: VirtualClock, gate: BackoffGate
) -> None:
    rec = Recorder()

    async def main() -> str | None:
        async with (
            AsyncUserDataStream(API_KEY, sim.url, retry=FAST_RETRY, gate=gate) as uds,
            uds.session(on_event=rec, clock=vclock) as session,
        ):
            while len(rec.of(EventKind.KEPT_ALIVE)) < 12:  # six hours
                await asyncio.sleep(0.001)
            return session.listen_key

    key = asyncio.run(main())
    assert rec.of(EventKind.KEPT_ALIVE)[11].at - rec.events[0].at == 6 * HOUR
    assert {e.listen_key for e in rec.events} == {key}
    assert key is not None
    assert sim.exchange.is_live(key)


def test_an_async_session_replaces_a_lost_key(
    sim: Simulator, vclock: VirtualClock, gate: BackoffGate
) -> None:
    rec = Recorder()

    async def main() -> None:
        async with (
            AsyncUserDataStream(API_KEY, sim.url, retry=FAST_RETRY, gate=gate) as uds,
            uds.session(on_event=rec, clock=vclock, close_on_exit=True),
        ):
            while len(rec.of(EventKind.KEPT_ALIVE)) < 2:
                await asyncio.sleep(0.001)
            sim.exchange.forget_keys()
            while len(rec.of(EventKind.KEPT_ALIVE)) < 4:
                await asyncio.sleep(0.001)

    asyncio.run(main())
    kinds = rec.kinds()
    assert kinds[kinds.index(EventKind.KEY_LOST) + 1] is EventKind.REPLACED
    assert kinds[-2:] == [EventKind.CLOSED, EventKind.STOPPED]
    assert sim.exchange.live_keys() == 0


# -- a create() answered -1125, callbacks that are coroutines or raise BaseException, wait() -------

NOT_FOUND = Reply(status=400, body={"code": -1125, "msg": "This listenKey does not exist."})


def test_a_replacement_answered_minus_1125_is_retried_with_backoff_not_recursion(
    server: ScriptedServer, vclock: VirtualClock, gate: BackoffGate
) -> None:
    rec = Recorder()
    uds = UserDataStream(API_KEY, server.url, retry=RetryPolicy.off(), gate=gate)
    # the session's create, then its first keepalive and three creates answered -1125
    server.script(default_reply("POST"), NOT_FOUND, NOT_FOUND, NOT_FOUND, NOT_FOUND)
    with uds, uds.session(on_event=rec, clock=vclock):
        rec.wait_for_count(EventKind.KEPT_ALIVE, 1)
    kinds = rec.kinds()
    assert kinds[:6] == [
        EventKind.CREATED,
        EventKind.KEY_LOST,
        EventKind.KEEPALIVE_FAILED,
        EventKind.KEEPALIVE_FAILED,
        EventKind.KEEPALIVE_FAILED,
        EventKind.REPLACED,
    ]
    assert [e.retry_in for e in rec.of(EventKind.KEEPALIVE_FAILED)] == [60, 120, 240]
    creates = [r for r in server.requests if r.method == "POST"]
    assert len(creates) == 1 + 4
    replaced = rec.of(EventKind.REPLACED)[0]
    assert replaced.at - rec.of(EventKind.KEY_LOST)[0].at == 60 + 120 + 240


def test_an_async_replacement_answered_minus_1125_is_retried_with_backoff(
    server: ScriptedServer, vclock: VirtualClock, gate: BackoffGate
) -> None:
    rec = Recorder()

    async def main() -> None:
        async with (
            AsyncUserDataStream(API_KEY, server.url, retry=RetryPolicy.off(), gate=gate) as uds,
            uds.session(on_event=rec, clock=vclock),
        ):
            server.script(NOT_FOUND, NOT_FOUND, NOT_FOUND)
            while not rec.of(EventKind.KEPT_ALIVE):
                await asyncio.sleep(0.001)

    asyncio.run(main())
    assert [e.retry_in for e in rec.of(EventKind.KEEPALIVE_FAILED)] == [60, 120]
    assert rec.kinds().count(EventKind.KEY_LOST) == 1


def test_an_async_session_awaits_a_coroutine_callback_before_it_goes_on(
    sim: Simulator, vclock: VirtualClock, gate: BackoffGate
) -> None:
    handled: list[EventKind] = []

    async def on_event(event: SessionEvent) -> None:
        await asyncio.sleep(0)
        handled.append(event.kind)

    async def main() -> None:
        async with (
            AsyncUserDataStream(API_KEY, sim.url, retry=FAST_RETRY, gate=gate) as uds,
            uds.session(on_event=on_event, clock=vclock, close_on_exit=True),
        ):
            async with asyncio.timeout(10):
                while handled.count(EventKind.KEPT_ALIVE) < 2:
                    await asyncio.sleep(0.001)

    asyncio.run(main())
    assert handled[0] is EventKind.CREATED
    assert handled[-2:] == [EventKind.CLOSED, EventKind.STOPPED]


def test_a_coroutine_callback_that_raises_is_logged_and_the_session_goes_on(
    sim: Simulator, vclock: VirtualClock, gate: BackoffGate, caplog: pytest.LogCaptureFixture
) -> None:
    seen: list[EventKind] = []

    async def on_event(event: SessionEvent) -> None:
        seen.append(event.kind)
        raise RuntimeError("handler bug")

    async def main() -> None:
        async with (
            AsyncUserDataStream(API_KEY, sim.url, retry=FAST_RETRY, gate=gate) as uds,
            uds.session(on_event=on_event, clock=vclock),
        ):
            async with asyncio.timeout(10):
                while seen.count(EventKind.KEPT_ALIVE) < 3:
                    await asyncio.sleep(0.001)

    asyncio.run(main())
    assert "on_event callback raised" in caplog.text


def test_a_thread_session_refuses_a_coroutine_callback(uds: UserDataStream) -> None:
    async def on_event(event: SessionEvent) -> None:
        pass

    with pytest.raises(TypeError, match="coroutine function"):
        uds.session(on_event=on_event)  # type: ignore[arg-type]


def test_a_callback_raising_system_exit_leaves_the_session_failed_and_says_so(
    uds: UserDataStream, vclock: VirtualClock, caplog: pytest.LogCaptureFixture
) -> None:
    rec = Recorder()

    def on_event(event: SessionEvent) -> None:
        rec(event)
        if event.kind is EventKind.KEPT_ALIVE:
            raise SystemExit(3)

    with uds, uds.session(on_event=on_event, clock=vclock) as session:
        with pytest.raises(UserStreamError, match="ended on SystemExit") as caught:
            session.wait(timeout=10)
        assert session.state is SessionState.FAILED
        assert isinstance(caught.value.__cause__, SystemExit)
    assert rec.kinds()[-3:] == [EventKind.KEPT_ALIVE, EventKind.FAILED, EventKind.STOPPED]
    assert "no longer kept alive" in caplog.text


class Fatal(BaseException):
    pass


def test_an_async_callback_raising_a_base_exception_leaves_the_session_failed(
    sim: Simulator, vclock: VirtualClock, gate: BackoffGate
) -> None:
    rec = Recorder()

    async def on_event(event: SessionEvent) -> None:
        rec(event)
        if event.kind is EventKind.KEPT_ALIVE:
            raise Fatal

    async def main() -> SessionState:
        async with (
            AsyncUserDataStream(API_KEY, sim.url, retry=FAST_RETRY, gate=gate) as uds,
            uds.session(on_event=on_event, clock=vclock) as session,
        ):
            with pytest.raises(UserStreamError, match="ended on Fatal"):
                await asyncio.wait_for(session.wait(), 10)
            return session.state

    assert asyncio.run(main()) is SessionState.FAILED
    assert EventKind.FAILED in rec.kinds()


def test_wait_raises_the_error_a_session_failed_on(vclock: VirtualClock, gate: BackoffGate) -> None:
    with Simulator(clock=vclock, retired=False) as sim:
        uds = UserDataStream(API_KEY, sim.url, retry=FAST_RETRY, gate=gate)
        with uds, uds.session(clock=vclock) as session:
            assert session.wait(timeout=0.01) is False  # alive: the timeout passes
            sim.exchange.retired = True
            with pytest.raises(EndpointRetiredError):
                session.wait()


def test_wait_returns_once_the_session_is_left(uds: UserDataStream, vclock: VirtualClock) -> None:
    with uds, uds.session(clock=vclock) as session:
        pass
    assert session.wait() is True


def test_wait_before_entering_is_an_error(uds: UserDataStream) -> None:
    with pytest.raises(UserStreamError, match="not been entered"):
        uds.session().wait()


def test_an_async_wait_raises_the_error_a_session_failed_on(vclock: VirtualClock, gate: BackoffGate) -> None:
    async def main(sim: Simulator) -> None:
        async with (
            AsyncUserDataStream(API_KEY, sim.url, retry=FAST_RETRY, gate=gate) as uds,
            uds.session(clock=vclock) as session,
        ):
            sim.exchange.retired = True
            await asyncio.wait_for(session.wait(), 10)

    with Simulator(clock=vclock, retired=False) as sim, pytest.raises(EndpointRetiredError):
        asyncio.run(main(sim))


def test_renew_replaces_a_key_closed_elsewhere_at_once_and_keeps_the_new_one_alive(
    sim: Simulator, gate: BackoffGate
) -> None:
    """What a stream whose server refused the key calls: no waiting for the next keepalive."""
    rec = Recorder()
    uds = UserDataStream(API_KEY, sim.url, retry=FAST_RETRY, gate=gate, market="usdm")
    with uds, uds.session(on_event=rec, interval=3000.0) as session:
        old = session.listen_key
        assert old is not None
        uds.close(old)  # as another program would
        new = session.renew()
        assert session.listen_key == new
    assert new != old
    assert [e.kind for e in rec.events][:2] == [EventKind.CREATED, EventKind.REPLACED]
    assert rec.events[1].listen_key == new


def test_renew_of_a_key_that_lives_returns_it_and_announces_nothing(
    sim: Simulator, gate: BackoffGate
) -> None:
    rec = Recorder()
    uds = UserDataStream(API_KEY, sim.url, retry=FAST_RETRY, gate=gate, market="usdm")
    with uds, uds.session(on_event=rec, interval=3000.0) as session:
        assert session.renew() == session.listen_key
    assert EventKind.REPLACED not in [e.kind for e in rec.events]


def test_renew_after_the_session_stopped_is_refused_and_the_session_stays_stopped(
    sim: Simulator, gate: BackoffGate
) -> None:
    """A stream's renewal can come late, from its own thread: nothing may follow STOPPED."""
    rec = Recorder()
    uds = UserDataStream(API_KEY, sim.url, retry=FAST_RETRY, gate=gate, market="usdm")
    with uds:
        with uds.session(on_event=rec, interval=3000.0) as session:
            pass
        requests = sim.request_count
        with pytest.raises(UserStreamError, match="the session has ended"):
            session.renew()
        assert sim.request_count == requests  # nothing sent
    assert session.state is SessionState.STOPPED
    assert rec.events[-1].kind is EventKind.STOPPED


@pytest.mark.anyio
async def test_the_async_session_renews_a_key_closed_elsewhere_at_once(
    sim: Simulator, gate: BackoffGate
) -> None:
    async with AsyncUserDataStream(API_KEY, sim.url, gate=gate, retry=FAST_RETRY, market="usdm") as auds:
        async with auds.session(interval=3000.0) as session:
            old = session.listen_key
            assert old is not None
            await auds.close(old)
            new = await session.renew()
            assert session.listen_key == new
    assert new != old
