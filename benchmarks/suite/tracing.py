"""What tracing (debug=) costs the C engine, paired with tracing off."""

from __future__ import annotations

import asyncio
import functools
from typing import Any

from .impls import ENGINES
from .shapes import Run, SHAPES, values_of
from .timing import CountingLoop, _once, sample
from .output import fmt, ratio, row_label

#: The shapes of the tracing section: synchronous tasks (the cheapest, so the
#: largest relative cost), waits that block (each records a wait period),
#: and a fan-in (one task recording N deps).
TRACING_SHAPES = ("wide-sync", "chain-rev", "diamond-rev", "fan-in")
#: name -> description of the runs of the tracing section.
TRACING_RUNS = {
    "ba-c": "the call of the timing tables (no debug argument)",
    "off": "the same with debug=False given explicitly: tracing off",
    "on": "debug=<a no-op callable>: timestamps, deps and waits recorded and a Trace"
    " built, nothing rendered",
}


def _ignore_trace(trace: Any) -> None:
    """The debug callable of the tracing section: it does nothing, so what is
    timed is recording the trace and building the Trace, not rendering it."""


def tracing(
    loop: asyncio.AbstractEventLoop,
    cloop: CountingLoop,
    shapes: list[str],
    n: int,
    reps: int,
    target: float,
) -> dict[str, Any]:
    """The C engine without a debug argument (the ``ba-c`` call of the timing
    tables), with ``debug=False`` and with ``debug=<no-op callable>``, on the
    same graph, interleaved like the timing tables."""
    engine = ENGINES.get("c")
    if engine is None:
        return {}
    out: dict[str, Any] = {}
    for s in shapes:
        shape = SHAPES[s](n)
        graph = shape.graph()
        runs: dict[str, Run] = {
            "ba-c": shape.impl_ba(engine),
            "off": functools.partial(engine.all, graph, debug=False),
            "on": functools.partial(engine.all, graph, debug=_ignore_trace),
        }
        for impl, run in runs.items():
            got = values_of(loop.run_until_complete(_once(run)))
            if sorted(got) != sorted(shape.expected()):
                raise AssertionError(f"tracing {s} N={shape.n}: {impl} computed a wrong result")
        traces: list[Any] = []
        loop.run_until_complete(engine.all(graph, debug=traces.append))
        if len(traces) != 1 or len(traces[0].tasks) != shape.n:
            raise AssertionError(f"tracing {s} N={shape.n}: debug= did not get a full Trace")
        out[row_label(s, shape.n)] = sample(loop, cloop, runs, reps, target, shape.n)
    return out


def print_paired_legend(title: str, runs: dict[str, str]) -> None:
    """The heading of a section that interleaves a few runs of the same graph
    and reports paired ratios, and what each run is."""
    print(f"\n{title} are the")
    print("medians of the paired ratios (the runs interleaved in every repetition)")
    w = max(len(k) for k in runs)
    for k, v in runs.items():
        print(f"  {k:<{w}} {v}")


def print_tracing(tr: dict[str, Any], timing: dict[str, Any]) -> None:
    if not tr:
        print("\nTracing overhead: skipped (the C engine is not available)")
        return
    lw = max([len(k) for k in tr] + [26])
    print_paired_legend("Tracing overhead, C engine: median µs per task; on/off and off/ba-c", TRACING_RUNS)
    print(f"{'shape':<{lw}}{'ba-c':>10}{'off':>10}{'on':>10}{'on/off':>10}{'off/ba-c':>10}{'table ba-c':>12}")
    for k, v in tr.items():
        table = timing.get(k, {}).get("ba-c")
        print(
            f"{k:<{lw}}{fmt(v['ba-c']['us_per_task']):>10}{fmt(v['off']['us_per_task']):>10}"
            f"{fmt(v['on']['us_per_task']):>10}{ratio(v, 'on', 'off'):>9.2f}x"
            f"{ratio(v, 'off', 'ba-c'):>9.2f}x{fmt(table['us_per_task'] if table else None):>12}"
        )
    print("  (table ba-c: the ba-c figure of the timing tables above, measured earlier in this run)")
