"""`make bench`'s account part: what healing one gap costs, in request weight and wall time, for an
account active on 1, 10 and 100 symbols, on USD-M and spot.

Each run starts a fresh simulator (a fresh minute of weight) and an account with an open order,
partly filled, on each of N symbols (on USD-M, a position too); the mirror takes its first snapshot;
the exchange drops the stream and fills a part of every order while nobody listens; the stream comes
back with a StreamGap and the mirror heals it: a snapshot, then each symbol's trades since the gap
(`userTrades`, weight 5 on USD-M; `myTrades`, 20 on spot). Measured per run, by the client's own
transport:

- weight: how much the heal's answers moved the simulator's X-MBX-USED-WEIGHT-1M (its own count);
- budget: how much the client's WeightBudget counted for the same calls (it reserves each call's
  declared weight before sending and reads the header after), which should agree;
- wall time: from the StreamGap reaching the program to the Reconciled (the heal's REST reads,
  sent one after another);
- the run's peak X-MBX-USED-WEIGHT-1M against the market's limit, every answer's status (a 429 or
  418 would mean the budget let a call cross the limit), and every wait the budget made.

Medians over the runs (interleaved: sizes and markets take turns); each run also checks that the
mirror's state equals the simulator's ledger and that each trade reached the program once. Every
heal measured fits its minute, so the budget never waits there; a last run (`budget_bound`) makes
one heal that cannot fit, to see the budget hold calls until the minute rolls over, and no longer.
"""

from __future__ import annotations

import asyncio
import statistics
from typing import Any

from demo_account import LIMITS, Outcome, WeightClock, fill, heal_run, place

from binance_userstream import RetryPolicy

MARKETS = ("usdm", "spot")
SIZES = (1, 10, 100)
#: The budget-bound run: USD-M's 100-symbol heal (551 weight) under a limit of 250 a minute, whose
#: minutes last six seconds (the simulator and the budget share the clock; signatures stay on the
#: wall's time), so the heal must wait for a new minute at least once.
TIGHT_LIMIT = 250
TIGHT_SPEED = 10.0


def partly_filled(market: str) -> Any:
    """An open order on each symbol, a quarter filled (USD-M: a position on each)."""

    def run(sim: Any, symbols: list[str]) -> list[int]:
        ids = place(market)(sim, symbols)
        fill(market, "1")(sim, symbols, ids)
        return ids

    return run


def measure(outcome: Outcome) -> dict[str, Any]:
    """One run's figures (see the module's docstring)."""
    _, reconciled = outcome.reconciled
    heal = outcome.heal_answers()
    used = [a.used for a in outcome.answers if a.used is not None]
    checks = outcome.checks()
    return {
        "weight": outcome.heal_weight(),
        "budget_counted": outcome.budget_counted,
        "calls": len(heal),
        "trade_calls": sum(a.path.endswith(("userTrades", "myTrades")) for a in heal),
        "ms": outcome.heal_seconds() * 1000,
        "peak_used": max(used, default=0),
        "refused": sum(a.status in (418, 429) for a in outcome.answers),
        "budget_waits": len(outcome.waits),
        "recovered": len(reconciled.recovered_trades),
        "correct": all(value for name, value in checks.items() if "budget" not in name),
    }


def run(runs: int) -> dict[str, dict[int, dict[str, Any]]]:
    """Every (market, size) `runs` times, interleaved; each cell's medians and worst cases."""
    samples: dict[tuple[str, int], list[dict[str, Any]]] = {(m, n): [] for m in MARKETS for n in SIZES}
    for r in range(runs):
        cells = list(samples)
        for market, size in cells[r % len(cells) :] + cells[: r % len(cells)]:
            outcome = asyncio.run(
                heal_run(market, size, before=partly_filled(market), during=fill(market, "1"))
            )
            samples[market, size].append(measure(outcome))
    table: dict[str, dict[int, dict[str, Any]]] = {m: {} for m in MARKETS}
    for (market, size), rows in samples.items():
        limit = LIMITS[market]
        weight = statistics.median(row["weight"] for row in rows)
        table[market][size] = {
            "runs": len(rows),
            "heal_weight_median": weight,
            "heal_weight_max": max(row["weight"] for row in rows),
            "budget_counted_median": statistics.median(row["budget_counted"] for row in rows),
            "heal_calls_median": statistics.median(row["calls"] for row in rows),
            "trade_calls_median": statistics.median(row["trade_calls"] for row in rows),
            "heal_ms_median": round(statistics.median(row["ms"] for row in rows), 1),
            "heal_ms_min": round(min(row["ms"] for row in rows), 1),
            "heal_ms_max": round(max(row["ms"] for row in rows), 1),
            "limit_per_minute": limit,
            "peak_used_max": max(row["peak_used"] for row in rows),
            "heals_per_minute_within_limit": int(limit // weight) if weight else None,
            "answers_429_or_418": sum(row["refused"] for row in rows),
            "budget_waits": sum(row["budget_waits"] for row in rows),
            "recovered_trades_median": statistics.median(row["recovered"] for row in rows),
            "every_run_correct": all(row["correct"] for row in rows),
        }
    return table


def report(table: dict[str, dict[int, dict[str, Any]]], runs: int) -> bool:
    """Print the table; True if the budget held and every run was correct."""
    print(f"heal one gap: REST weight and wall time, by active symbols (medians of {runs} runs)")
    head = ("market", "symbols", "calls", "weight", "budget", "ms", "min", "max", "peak/limit", "fits/min")
    print("  " + "".join(f"{h:>11}" for h in head))
    ok = True
    for market, sizes in table.items():
        for size, cell in sizes.items():
            row = (
                market,
                size,
                cell["heal_calls_median"],
                cell["heal_weight_median"],
                cell["budget_counted_median"],
                cell["heal_ms_median"],
                cell["heal_ms_min"],
                cell["heal_ms_max"],
                f"{cell['peak_used_max']}/{cell['limit_per_minute']}",
                cell["heals_per_minute_within_limit"],
            )
            print("  " + "".join(f"{value:>11}" for value in row))
            ok = (
                ok
                and cell["every_run_correct"]
                and not cell["answers_429_or_418"]
                and not cell["budget_waits"]
            )
            ok = ok and cell["peak_used_max"] <= cell["limit_per_minute"]
    refused = sum(c["answers_429_or_418"] for s in table.values() for c in s.values())
    waits = sum(c["budget_waits"] for s in table.values() for c in s.values())
    correct = all(c["every_run_correct"] for s in table.values() for c in s.values())
    print(
        "  weight: the simulator's X-MBX-USED-WEIGHT-1M moved by the heal; budget: what the client's"
        " WeightBudget counted for it"
    )
    print(
        "  peak/limit: the highest X-MBX-USED-WEIGHT-1M of any run (first snapshot and heal in one minute);"
        " fits/min: heals of this size a minute allows"
    )
    fits = all(c["peak_used_max"] <= c["limit_per_minute"] for s in table.values() for c in s.values())
    verdict = "every run fit its minute, so none was due" if fits else "some runs needed the next minute"
    print(f"  answers 429/418: {refused}; weight-budget waits: {waits} ({verdict})")
    print(f"  every run: state equals the simulator's ledger, each trade delivered once: {correct}")
    return ok


def budget_bound() -> dict[str, Any]:
    """One heal that cannot fit a minute: did the budget hold each call until the minute rolled over,
    and no longer? For each wait, the first request sent after it is found (by the time it went out
    on the shared clock) and compared with the minute boundary: early would have drawn a 429; late
    is time the budget waited more than it had to."""
    clock = WeightClock(TIGHT_SPEED)
    outcome = asyncio.run(
        heal_run(
            "usdm",
            100,
            before=partly_filled("usdm"),
            during=fill("usdm", "1"),
            clock=clock,
            limit=TIGHT_LIMIT,
            retry=RetryPolicy(deadline=120.0),
        )
    )
    lateness = []
    for began, held in zip(outcome.waited_at, outcome.waits, strict=True):
        boundary = began + held.seconds
        after = min((a.sent for a in outcome.answers if a.sent >= began), default=None)
        if after is not None:
            lateness.append((after - boundary) / TIGHT_SPEED * 1000)
    checks = outcome.checks()
    return {
        "limit_per_minute": TIGHT_LIMIT,
        "minute_seconds": 60 / TIGHT_SPEED,
        "heal_weight": outcome.heal_weight(),
        "budget_waits": len(outcome.waits),
        "waited_s": round(sum(held.seconds for held in outcome.waits) / TIGHT_SPEED, 2),
        "next_call_after_minute_ms": [round(ms, 1) for ms in lateness],
        "heal_ms": round(outcome.heal_seconds() * 1000, 1),
        "peak_used": max((a.used for a in outcome.answers if a.used is not None), default=0),
        "answers_429_or_418": sum(a.status in (418, 429) for a in outcome.answers),
        "correct": all(value for name, value in checks.items() if "budget" not in name),
    }


def report_bound(row: dict[str, Any]) -> bool:
    """Print the budget-bound run; True if the budget waited, never early, never much late."""
    late = row["next_call_after_minute_ms"]
    print(
        f"budget-bound: USD-M, 100 symbols, a heal of {row['heal_weight']} weight under a limit of"
        f" {row['limit_per_minute']} a minute (minutes of {row['minute_seconds']:g} s)"
    )
    print(
        f"  the budget waited {row['budget_waits']} times, {row['waited_s']} s in all; the heal took"
        f" {row['heal_ms']} ms; peak weight {row['peak_used']}; answers 429/418: {row['answers_429_or_418']}"
    )
    print(f"  each held call went out this long after its minute began (ms): {late}")
    print(f"  state equals the simulator's ledger, each trade delivered once: {row['correct']}")
    return (
        row["budget_waits"] >= 1
        and not row["answers_429_or_418"]
        and row["peak_used"] <= row["limit_per_minute"]
        and all(0 <= ms < 100 for ms in late)
        and len(late) == row["budget_waits"]
        and row["correct"]
    )
