"""`make demo`: the main job, end to end, against the local simulator, in about a minute.

Five parts: the keepalive session through the CLI (below), the event stream (`demo_stream.py`),
spot and margin on the WebSocket API (`demo_spot.py`), the account mirror healing a gap
(`demo_account.py`), then two workers publishing into NATS JetStream, one killed and the other
taking over, read by a durable consumer (`demo_durable.py`).

It starts the simulator (`binance-userstream simulator`) on a free loopback port with a clock 720
times faster than real time, runs the real CLI (`binance-userstream run`) for four simulated hours,
and injects faults into the simulator as the session goes: a 429 with Retry-After, a 503, a dropped
connection, and a lost key. It prints the transcript, checks that the client rode out every fault
(and that no secret was printed), and exits non-zero if anything did not happen as it should.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from typing import IO

import demo_account
import demo_durable
import demo_spot
import demo_stream
import httpx

SPEED = 720  # a simulated hour takes five real seconds
API_KEY = "DemoApiKey0000000000000000000000000000000000000000000000000000000"
CLI = [sys.executable, "-m", "binance_userstream"]


def say(text: str) -> None:
    print(f"demo │ {text}", flush=True)


def main() -> int:
    started = time.monotonic()
    simulator = subprocess.Popen(
        [*CLI, "simulator", "--port", "0", "--speed", str(SPEED)], stdout=subprocess.PIPE, text=True
    )
    try:
        code = run_demo(simulator.stdout, started)
        stream_ok = demo_stream.main()
        spot_ok = demo_spot.main()
        account_ok = demo_account.main()
        durable_ok = demo_durable.main()
        return code if stream_ok and spot_ok and account_ok and durable_ok else 1
    finally:
        simulator.terminate()
        simulator.wait(timeout=10)
        say(f"simulator stopped; demo took {time.monotonic() - started:.1f} s of real time")


def run_demo(simulator_out: IO[str] | None, started: float) -> int:
    assert simulator_out is not None
    url = simulator_out.readline().split()[-1]
    say(f"simulator on {url}, clock x{SPEED} (30 simulated minutes = {1800 / SPEED:.1f} s)")
    # Control requests need this header (it keeps web pages from sending them).
    control = httpx.Client(base_url=url, headers={"X-Simulator-Control": "1"})

    def inject(*faults: dict[str, object]) -> Callable[[], None]:
        return lambda: control.post("/_simulator/faults", content=json.dumps(list(faults))).raise_for_status()

    def lose_keys() -> None:
        control.post("/_simulator/forget-keys").raise_for_status()

    # After the n-th keepalive, what to break next (and what the client must do about it).
    plan: dict[int, tuple[str, Callable[[], None]]] = {
        1: ("next answer: 429 with Retry-After: 1 (the client must wait, then retry)",
            inject({"kind": "status", "status": 429, "retry_after": 1})),
        2: ("next answer: 503 (the client must retry)", inject({"kind": "status", "status": 503})),
        3: ("next answer: the connection is dropped, no answer (the client must retry)",
            inject({"kind": "drop"})),
        4: ("the exchange loses every listenKey (the session must create a new one and say so)", lose_keys),
    }  # fmt: skip
    env = {**os.environ, "BINANCE_API_KEY": API_KEY}
    command = [
        *CLI,
        "run",
        "--market",
        "usdm",
        "--base-url",
        url,
        "--speed",
        str(SPEED),
        "--for",
        "4h",
        "--close-on-exit",
        "-v",
    ]
    say("$ BINANCE_API_KEY=… binance-userstream " + " ".join(command[3:]))
    run = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    assert run.stdout is not None
    transcript: list[str] = []
    kept_alive = 0
    for line in run.stdout:
        line = line.rstrip("\n")
        transcript.append(line)
        print(f" run │ {line}", flush=True)
        if " kept_alive " in f" {line} ":
            kept_alive += 1
            if kept_alive in plan:
                what, act = plan.pop(kept_alive)
                say(what)
                act()
    code = run.wait(timeout=30)
    state = control.get("/_simulator/state").json()
    text = "\n".join(transcript)
    checks = {
        "run exited 0": code == 0,
        "the 429's Retry-After was waited out": "HTTP 429; retrying in 1.00 s" in text,
        "the 503 was retried": "HTTP 503; retrying in" in text,
        "the dropped connection was retried": "RemoteProtocolError; retrying in" in text,
        "the lost key was announced and replaced by a new one": replaced_by_new(text),
        "the key was kept alive all along (>= 6 keepalives in 4 simulated hours)": text.count(" kept_alive ")
        >= 6,
        "the key was closed on exit": " closed key=" in text,
        "no live key is left on the simulator": state["live_keys"] == 0,
        "every fault was consumed": state["pending_faults"] == 0 and not plan,
        "no API key or full listenKey was printed": API_KEY not in text
        and re.search(r"[A-Za-z0-9]{60}", text) is None,
    }
    for name, ok in checks.items():
        say(f"{'ok  ' if ok else 'FAIL'} {name}")
    return 0 if all(checks.values()) else 1


def replaced_by_new(text: str) -> bool:
    found = re.search(r" key_lost key=(\S+).*? replaced key=(\S+)", text, re.DOTALL)
    return found is not None and found[1] != found[2]


if __name__ == "__main__":
    sys.exit(main())
