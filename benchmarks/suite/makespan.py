"""Makespan: a handler's wall time against its critical path."""

from __future__ import annotations

import asyncio
import functools
import gc
import statistics
from collections.abc import Callable
from typing import Any

from .impls import ENGINES
from .shapes import Run
from .timing import _timed

MAKESPAN_GRAPHS: dict[str, list[tuple[str, tuple[str, ...], float]]] = {
    "dashboard": [("user", (), 30), ("config", (), 50), ("profile", ("user",), 30)],
    # the feed graph of betterall/__main__.py
    "feed": [
        ("user", (), 30),
        ("config", (), 80),
        ("posts", ("user",), 60),
        ("recommendations", ("user", "config"), 30),
        ("comments", ("posts",), 50),
        ("likes", ("posts",), 20),
    ],
}


def critical_path(spec: list[tuple[str, tuple[str, ...], float]]) -> float:
    finish: dict[str, float] = {}
    for name, deps, ms in spec:
        finish[name] = max((finish[d] for d in deps), default=0.0) + ms
    return max(finish.values())


def critical_chain(spec: list[tuple[str, tuple[str, ...], float]]) -> list[tuple[str, float]]:
    """The tasks of the critical path, first to last, with their latencies."""
    finish: dict[str, float] = {}
    before: dict[str, str | None] = {}
    ms_of = {name: ms for name, _, ms in spec}
    for name, deps, ms in spec:
        dep = max(deps, key=lambda d: finish[d], default=None)
        before[name] = dep
        finish[name] = (finish[dep] if dep else 0.0) + ms
    last: str | None = max(finish, key=lambda k: finish[k])
    chain = []
    while last is not None:
        chain.append((last, ms_of[last]))
        last = before[last]
    return chain[::-1]


def depth_levels(spec: list[tuple[str, tuple[str, ...], float]]) -> list[list[tuple[str, float]]]:
    depth: dict[str, int] = {}
    for name, deps, _ in spec:
        depth[name] = max((depth[d] + 1 for d in deps), default=0)
    levels: list[list[tuple[str, float]]] = [[] for _ in range(max(depth.values()) + 1)]
    for name, _, ms in spec:
        levels[depth[name]].append((name, ms))
    return levels


async def upstream(name: str, ms: float) -> str:
    await asyncio.sleep(ms / 1000)
    return name


def makespan_impls(
    spec: list[tuple[str, tuple[str, ...], float]], impls: list[str]
) -> dict[str, Run]:
    def ba_fn(name: str, deps: tuple[str, ...], ms: float) -> Callable[..., Any]:
        if not deps:
            return lambda: upstream(name, ms)

        async def f(self: Any) -> str:
            for d in deps:
                await self[d]
            return await upstream(name, ms)

        return f

    graph = {name: ba_fn(name, deps, ms) for name, deps, ms in spec}
    levels = depth_levels(spec)

    async def naive() -> list[str]:  # gather what is ready, then the next level
        out: list[str] = []
        for level in levels:
            out += await asyncio.gather(*[upstream(n, ms) for n, ms in level])
        return out

    async def node(deps: list[asyncio.Task[str]], name: str, ms: float) -> str:
        for t in deps:
            await t
        return await upstream(name, ms)

    async def hand() -> list[str]:  # Tasks up front, each awaiting its deps' Tasks
        create = asyncio.get_running_loop().create_task
        ts: dict[str, asyncio.Task[str]] = {}
        for name, deps, ms in spec:
            ts[name] = create(node([ts[d] for d in deps], name, ms))
        return [await t for t in ts.values()]

    chain = critical_chain(spec)

    async def cp_seq() -> list[str]:  # only the critical path's calls, one after another
        return [await upstream(n, ms) for n, ms in chain]

    runs: dict[str, Run] = {"cp-seq": cp_seq}
    if "ba-c" in impls:
        runs["ba-c"] = functools.partial(ENGINES["c"].all, graph)
    if "ba-py" in impls:
        runs["ba-py"] = functools.partial(ENGINES["python"].all, graph)
    runs["naive"] = naive
    if "hand" in impls:
        runs["hand"] = hand
    return runs


def makespan(loop: asyncio.AbstractEventLoop, impls: list[str], reps: int) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for gname, spec in MAKESPAN_GRAPHS.items():
        runs = makespan_impls(spec, impls)
        samples: dict[str, list[float]] = {k: [] for k in runs}
        for impl, run in runs.items():  # warm-up
            loop.run_until_complete(_timed(run, 1))
        order = list(runs)
        for r in range(reps):
            k = r % len(order)
            for impl in order[k:] + order[:k]:
                gc.collect()
                samples[impl].append(loop.run_until_complete(_timed(runs[impl], 1)) * 1000)
        results[gname] = {
            "critical_path_ms": critical_path(spec),
            "impls": {
                k: {"median_ms": statistics.median(v), "max_ms": max(v), "samples_ms": v}
                for k, v in samples.items()
            },
        }
    return results
