#!/usr/bin/env python
"""What ``betterall.otel`` costs a graph call.

    python benchmarks/otel_cost.py [--tasks 10] [--calls 2000] [--reps 7]

One graph of ``--tasks`` async tasks (each awaits the one before it, none
suspends), run ``--calls`` times in one event loop, in four ways,
interleaved, in this process:

- plain: the engine's own ``betterall.all``;
- no SDK: after ``otel.instrument()`` with no tracer provider configured
  (what a service that has the OpenTelemetry API installed but does not
  trace gets): the call checks that and runs the plain call;
- SDK: after ``otel.instrument(tracer_provider=...)`` with the SDK's
  ``TracerProvider`` and a ``BatchSpanProcessor`` whose exporter drops the
  spans: a span per task and one per call;
- by hand: the plain call, each task opening one span itself with
  ``tracer.start_as_current_span`` (the cost of one span made by hand, to
  set the SDK figure against).

Prints the median time per call of each, the ratios to plain, and the
SDK's and the hand-made spans' cost per task.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult  # noqa: E402

import betterall  # noqa: E402
from betterall import otel  # noqa: E402


class Drop(SpanExporter):
    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS


def chain(n: int, tracer: Any = None) -> dict[str, Callable[..., Any]]:
    tasks: dict[str, Callable[..., Any]] = {}
    for i in range(n):
        before = f"t{i - 1}" if i else None

        async def task(self: Any, before: str | None = before, name: str = f"t{i}") -> int:
            if tracer is not None:
                with tracer.start_as_current_span(name):
                    return 1 + (await self[before] if before else 0)
            return 1 + (await self[before] if before else 0)

        tasks[f"t{i}"] = task
    return tasks


async def per_call(run: Callable[..., Any], tasks: dict[str, Any], calls: int) -> float:
    """Microseconds per call."""
    for _ in range(50):
        await run(tasks)
    t0 = time.perf_counter()
    for _ in range(calls):
        await run(tasks)
    return (time.perf_counter() - t0) / calls * 1e6


async def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=10)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--reps", type=int, default=7)
    args = parser.parse_args(argv)

    provider = TracerProvider()
    processor = BatchSpanProcessor(Drop(), max_queue_size=1 << 16)
    provider.add_span_processor(processor)
    hand_tracer = provider.get_tracer("by-hand")
    plain_all = betterall.all
    plain_tasks, hand_tasks = chain(args.tasks), chain(args.tasks, hand_tracer)

    async def plain() -> float:
        return await per_call(plain_all, plain_tasks, args.calls)

    async def no_sdk() -> float:
        otel.instrument()
        try:
            return await per_call(betterall.all, plain_tasks, args.calls)
        finally:
            otel.uninstrument()

    async def sdk() -> float:
        otel.instrument(tracer_provider=provider)
        try:
            return await per_call(betterall.all, plain_tasks, args.calls)
        finally:
            otel.uninstrument()

    async def by_hand() -> float:
        return await per_call(plain_all, hand_tasks, args.calls)

    variants = {"plain": plain, "no SDK": no_sdk, "SDK": sdk, "by hand": by_hand}
    results: dict[str, list[float]] = {name: [] for name in variants}
    for rep in range(args.reps):
        names = list(variants)
        names = names[rep % len(names):] + names[: rep % len(names)]
        for name in names:
            results[name].append(await variants[name]())
    processor.shutdown()

    med = {name: statistics.median(values) for name, values in results.items()}
    print(
        f"Python {sys.version.split()[0]}, engine {betterall.ENGINE}, a chain of {args.tasks} tasks,"
        f" {args.calls} calls x {args.reps} reps (medians)"
    )
    for name, value in med.items():
        print(f"  {name:<8} {value:8.1f} us/call   {value / med['plain']:5.2f}x plain")
    print(
        f"  per task: betterall.otel with the SDK {(med['SDK'] - med['plain']) / args.tasks:.1f} us,"
        f" one span by hand {(med['by hand'] - med['plain']) / args.tasks:.1f} us"
    )


if __name__ == "__main__":
    asyncio.run(main())
