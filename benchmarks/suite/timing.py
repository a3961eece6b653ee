"""Timing: interleaved repetitions, medians, loop iterations per call."""

from __future__ import annotations

import asyncio
import gc
import math
import statistics
from typing import Any

from .impls import EAGER, EAGER_OF, perf_counter
from .shapes import FinishedSibling, Run, Shape, values_of

async def _timed(run: Run, loops: int, factory: Any = None) -> float:
    loop = asyncio.get_running_loop()
    if factory is not None:
        old = loop.get_task_factory()
        loop.set_task_factory(factory)
    try:
        t0 = perf_counter()
        for _ in range(loops):
            await run()
        return perf_counter() - t0
    finally:
        if factory is not None:
            loop.set_task_factory(old)


async def _once(run: Run, factory: Any = None) -> Any:
    loop = asyncio.get_running_loop()
    if factory is not None:
        old = loop.get_task_factory()
        loop.set_task_factory(factory)
    try:
        return await run()
    finally:
        if factory is not None:
            loop.set_task_factory(old)


class CountingLoop(asyncio.SelectorEventLoop):
    """asyncio's loop, counting its iterations (for 'loop iterations per call')."""

    iterations = 0

    def _run_once(self) -> None:
        self.iterations += 1
        super()._run_once()  # type: ignore[misc]


async def _noop() -> None:
    pass


def count_iterations(cloop: CountingLoop, run: Run, factory: Any) -> int:
    cloop.run_until_complete(_once(run, factory))  # warm
    start = cloop.iterations
    cloop.run_until_complete(_once(run, factory))
    used = cloop.iterations - start
    start = cloop.iterations
    cloop.run_until_complete(_once(_noop))
    return used - (cloop.iterations - start)


def factory_of(impl: str) -> Any:
    return EAGER if impl in EAGER_OF else None


def bench(
    loop: asyncio.AbstractEventLoop,
    cloop: CountingLoop,
    shape: Shape,
    impls: list[str],
    reps: int,
    target: float,
) -> dict[str, dict[str, Any]]:
    runs: dict[str, Run] = {}
    for impl in impls:
        run = shape.build(impl)
        if run is None:
            continue
        got = values_of(loop.run_until_complete(_once(run, factory_of(impl))))
        if sorted(got) != sorted(shape.expected()):
            raise AssertionError(f"{shape.name} N={shape.n}: {impl} computed a wrong result")
        runs[impl] = run
    per = shape.k if isinstance(shape, FinishedSibling) else shape.n
    return sample(loop, cloop, runs, reps, target, per)


def sample(
    loop: asyncio.AbstractEventLoop,
    cloop: CountingLoop,
    runs: dict[str, Run],
    reps: int,
    target: float,
    per: int,
) -> dict[str, dict[str, Any]]:
    """Time ``runs`` (already checked): calibrated, warmed up, interleaved
    round-robin over ``reps`` repetitions; medians per call and per task
    (``per`` tasks a call)."""
    out: dict[str, dict[str, Any]] = {}
    loops: dict[str, int] = {}
    for impl, run in runs.items():  # calibrate, then one discarded warm-up sample
        t = loop.run_until_complete(_timed(run, 3, factory_of(impl))) / 3
        loops[impl] = max(1, math.ceil(target / max(t, 1e-9)))
        loop.run_until_complete(_timed(run, loops[impl], factory_of(impl)))
        out[impl] = {"loops": loops[impl], "samples": []}
        out[impl]["loop_iterations"] = count_iterations(cloop, run, factory_of(impl))
    order = list(runs)
    for r in range(reps):
        k = r % len(order)
        for impl in order[k:] + order[:k]:
            gc.collect()
            dt = loop.run_until_complete(_timed(runs[impl], loops[impl], factory_of(impl)))
            out[impl]["samples"].append(dt / loops[impl])
    for impl, d in out.items():
        d["seconds_per_call"] = statistics.median(d["samples"])
        d["us_per_task"] = d["seconds_per_call"] / per * 1e6
    return out
