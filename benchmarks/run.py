#!/usr/bin/env python
"""The betterall benchmark suite: one command, one process per Python version.

    python benchmarks/run.py            # full run (a few minutes)
    python benchmarks/run.py --quick    # smoke run: tiny N, few repetitions

Compares betterall's C engine with its pure-Python twin, with the best
hand-wired asyncio code for the same graph, with ``asyncio.gather`` and
``asyncio.TaskGroup``, with all three under ``asyncio.eager_task_factory``
(3.12+), with aiodag (if installed) and, for synchronous tasks, with a plain
loop.  Implementations are interleaved round-robin within each repetition
(so machine noise hits all alike), warmed up, and the median of the
repetitions is reported.  The ``tracing`` section times the C engine with
tracing off and with ``debug=<a no-op callable>`` on the same graphs;
the ``classform`` section times ``betterall.Graph`` runs against the dict form
on the same task functions.
See docs/performance-log.md for what every shape and baseline is.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import functools
import gc
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Awaitable, Callable
from typing import Any

try:
    import resource
except ImportError:  # not on Windows
    resource = None  # type: ignore[assignment]


def _import_betterall() -> Any:
    """Import betterall; retry the C engine a few times (it may be rebuilding)."""
    try:
        import betterall
    except ImportError:  # not installed: use the checkout this file is in
        sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        import betterall
    for _ in range(20):
        try:
            import betterall._cengine  # noqa: F401
        except ImportError:
            time.sleep(0.5)
        else:
            break
    return betterall


betterall = _import_betterall()
ENGINES: dict[str, Any] = betterall._engines()

try:
    import aiodag
except ImportError:
    aiodag = None

EAGER = getattr(asyncio, "eager_task_factory", None)  # 3.12+

perf_counter = time.perf_counter

# -- implementations --------------------------------------------------------

#: name -> description; the order is the column order of the tables.
IMPLS: dict[str, str] = {
    "ba-c": "betterall, C engine",
    "ba-py": "betterall, pure-Python engine",
    "hand": "hand-wired asyncio: Tasks created up front (Futures in reverse order)",
    "gather": "asyncio.gather (level by level for fan-in, diamond, dashboard)",
    "tgroup": "asyncio.TaskGroup, tasks awaiting earlier Tasks (Futures in reverse order)",
    "hand-e": "hand, with asyncio.eager_task_factory set on the loop",
    "gather-e": "gather, with asyncio.eager_task_factory",
    "tgroup-e": "tgroup, with asyncio.eager_task_factory",
    "aiodag": "aiodag (PyPI), dependency-order shapes only",
    "loop": "reference, no asyncio task: wide-sync, the functions called in a plain loop;"
    " wide-async-nosuspend, each coroutine driven by hand with send(None);"
    " wide-async, one loop.call_soon callback per task (the loop work an asyncio.Task"
    " pays per suspension);"
    " finished-sibling, the same loop adding a local",
}
#: The asyncio baselines of the "best asyncio" column and the targets.
ASYNCIO_BASELINES = ("hand", "gather", "tgroup", "hand-e", "gather-e", "tgroup-e")
EAGER_OF = {"hand-e": "hand", "gather-e": "gather", "tgroup-e": "tgroup"}


def available_impls() -> list[str]:
    out = []
    for name in IMPLS:
        if name == "ba-c" and "c" not in ENGINES:
            continue
        if name in EAGER_OF and EAGER is None:
            continue
        if name == "aiodag" and aiodag is None:
            continue
        out.append(name)
    return out


# -- building blocks shared by the shapes ----------------------------------


def const(v: int) -> Callable[[], Any]:
    """A synchronous zero-argument task function (``lambda: v``)."""
    return lambda: v


def aconst(v: int) -> Callable[[], Any]:
    """An async task function that returns at once."""

    async def f() -> int:
        return v

    return f


def asleep0(v: int) -> Callable[[], Any]:
    """An async task function that suspends once (``await asyncio.sleep(0)``)."""

    async def f() -> int:
        await asyncio.sleep(0)
        return v

    return f


# betterall task functions that await siblings by name.
def ba_dep1(d: str) -> Callable[[Any], Awaitable[int]]:
    async def f(self: Any) -> int:
        return await self[d] + 1

    return f


def ba_dep2(a: str, b: str) -> Callable[[Any], Awaitable[int]]:
    async def f(self: Any) -> int:
        return await self[a] + await self[b]

    return f


def ba_depn(names: list[str]) -> Callable[[Any], Awaitable[int]]:
    async def f(self: Any) -> int:
        s = 0
        for d in names:
            s += await self[d]
        return s

    return f


# asyncio coroutines for the baselines: awaiting Tasks or Futures...
async def call_sync(f: Callable[[], Any]) -> Any:
    return f()


async def dep1(a: Awaitable[int]) -> int:
    return await a + 1


async def dep2(a: Awaitable[int], b: Awaitable[int]) -> int:
    return await a + await b


async def depn(ts: list[Awaitable[int]]) -> int:
    s = 0
    for t in ts:
        s += await t
    return s


# ...resolving a Future of their own (reverse order)...
async def leaf_f(f: Callable[[], Awaitable[int]], out: asyncio.Future[int]) -> int:
    v = await f()
    out.set_result(v)
    return v


async def dep1_f(a: Awaitable[int], out: asyncio.Future[int]) -> int:
    v = await a + 1
    out.set_result(v)
    return v


async def dep2_f(a: Awaitable[int], b: Awaitable[int], out: asyncio.Future[int]) -> int:
    v = await a + await b
    out.set_result(v)
    return v


# ...or taking plain values (gather, level by level; aiodag).
async def add1(a: int) -> int:
    return a + 1


async def add2(a: int, b: int) -> int:
    return a + b


async def sum_values(vals: list[int]) -> int:
    s = 0
    for v in vals:
        s += v
    return s


def values_of(result: Any) -> list[Any]:
    if isinstance(result, dict):
        return list(result.values())
    return list(result)


Run = Callable[[], Awaitable[Any]]


class Shape:
    """One benchmark graph of ``n`` tasks, buildable by every implementation.

    Each ``impl_*`` method returns an async callable that runs the whole graph
    once and returns its values (in any order), or ``None`` when that
    implementation cannot express the shape.
    """

    name = ""
    fixed_n: int | None = None

    def __init__(self, n: int) -> None:
        self.n = self.fixed_n or n

    def expected(self) -> list[int]:
        raise NotImplementedError

    def graph(self) -> dict[str, Callable[..., Any]]:
        raise NotImplementedError

    def impl_ba(self, engine: Any) -> Run:
        return functools.partial(engine.all, self.graph())

    def impl_hand(self) -> Run | None:
        return None

    def impl_gather(self) -> Run | None:
        return None

    def impl_tgroup(self) -> Run | None:
        return None

    def impl_aiodag(self) -> Run | None:
        return None

    def impl_loop(self) -> Run | None:
        return None

    def build(self, impl: str) -> Run | None:
        if impl == "ba-c":
            return self.impl_ba(ENGINES["c"])
        if impl == "ba-py":
            return self.impl_ba(ENGINES["python"])
        return getattr(self, "impl_" + EAGER_OF.get(impl, impl))()


class Wide(Shape):
    """Independent tasks."""

    kind = ""
    make = staticmethod(aconst)

    def __init__(self, n: int) -> None:
        super().__init__(n)
        self.fns = [self.make(i) for i in range(self.n)]

    def expected(self) -> list[int]:
        return list(range(self.n))

    def graph(self) -> dict[str, Callable[..., Any]]:
        return {f"t{i}": f for i, f in enumerate(self.fns)}

    def coros(self) -> Callable[[], list[Any]]:
        fns = self.fns
        return lambda: [f() for f in fns]

    def impl_hand(self) -> Run:
        coros = self.coros()

        async def run() -> list[int]:
            create = asyncio.get_running_loop().create_task
            ts = [create(c) for c in coros()]
            return [await t for t in ts]

        return run

    def impl_gather(self) -> Run:
        coros = self.coros()

        async def run() -> list[int]:
            return await asyncio.gather(*coros())

        return run

    def impl_tgroup(self) -> Run:
        coros = self.coros()

        async def run() -> list[int]:
            async with asyncio.TaskGroup() as tg:
                ts = [tg.create_task(c) for c in coros()]
            return [t.result() for t in ts]

        return run


class WideSync(Wide):
    name = "wide-sync"
    make = staticmethod(const)

    def coros(self) -> Callable[[], list[Any]]:
        fns = self.fns
        return lambda: [call_sync(f) for f in fns]

    def impl_loop(self) -> Run:
        items = list(self.graph().items())

        async def run() -> dict[str, int]:
            return {k: f() for k, f in items}

        return run


class WideAsync(Wide):
    name = "wide-async"
    make = staticmethod(asleep0)

    def impl_aiodag(self) -> Run:
        wrapped = [aiodag.task(f) for f in self.fns]

        async def run() -> list[int]:
            ts = [w() for w in wrapped]
            return [await t for t in ts]

        return run


    def impl_loop(self) -> Run:
        n = self.n

        async def run() -> list[int]:  # the loop work alone: one callback per task
            loop = asyncio.get_running_loop()
            call_soon = loop.call_soon
            vals: list[int] = []
            add = vals.append
            for i in range(n):
                call_soon(add, i)
            done = loop.create_future()
            call_soon(done.set_result, None)
            await done
            return vals

        return run


class WideAsyncNoSuspend(WideAsync):
    name = "wide-async-nosuspend"
    make = staticmethod(aconst)

    def impl_loop(self) -> Run:
        fns = self.fns

        async def run() -> list[int]:  # the coroutines driven by hand
            vals = []
            for f in fns:
                try:
                    f().send(None)  # type: ignore[attr-defined]
                except StopIteration as e:
                    vals.append(e.value)
            return vals

        return run


class Chain(Shape):
    """t_k awaits t_(k-1); reverse: t_k awaits t_(k+1), declared dependents first."""

    name = "chain"
    reverse = False

    def expected(self) -> list[int]:
        return list(range(self.n))

    def graph(self) -> dict[str, Callable[..., Any]]:
        n = self.n
        if not self.reverse:
            g: dict[str, Callable[..., Any]] = {"t0": aconst(0)}
            g.update({f"t{i}": ba_dep1(f"t{i - 1}") for i in range(1, n)})
        else:
            g = {f"t{i}": ba_dep1(f"t{i + 1}") for i in range(n - 1)}
            g[f"t{n - 1}"] = aconst(0)
        return g

    def _hand(self, group: bool) -> Run:
        n = self.n
        base = aconst(0)
        if not self.reverse:

            def wire(create: Callable[..., Any], loop: Any) -> list[Any]:
                t = create(base())
                ts = [t]
                for _ in range(n - 1):
                    t = create(dep1(t))
                    ts.append(t)
                return ts

        else:

            def wire(create: Callable[..., Any], loop: Any) -> list[Any]:
                fut = loop.create_future
                futs = [fut() for _ in range(n)]
                ts = [create(dep1_f(futs[i + 1], futs[i])) for i in range(n - 1)]
                ts.append(create(leaf_f(base, futs[n - 1])))
                return ts

        return _wired(wire, group)

    def impl_hand(self) -> Run:
        return self._hand(False)

    def impl_tgroup(self) -> Run:
        return self._hand(True)

    def impl_aiodag(self) -> Run | None:
        if self.reverse:
            return None
        n = self.n
        base, step = aiodag.task(aconst(0)), aiodag.task(add1)

        async def run() -> list[int]:
            t = base()
            ts = [t]
            for _ in range(n - 1):
                t = step(t)
                ts.append(t)
            return [await t for t in ts]

        return run


class ChainRev(Chain):
    name = "chain-rev"
    reverse = True


def _wired(wire: Callable[[Any, Any], list[Any]], group: bool) -> Run:
    """Hand-wired (``group=False``) or TaskGroup version of a wiring."""
    if not group:

        async def run() -> list[int]:
            loop = asyncio.get_running_loop()
            ts = wire(loop.create_task, loop)
            return [await t for t in ts]

    else:

        async def run() -> list[int]:
            async with asyncio.TaskGroup() as tg:
                ts = wire(tg.create_task, asyncio.get_running_loop())
            return [t.result() for t in ts]

    return run


class FanIn(Shape):
    """n-1 independent async tasks and a sink that awaits them all."""

    name = "fan-in"
    reverse = False

    def __init__(self, n: int) -> None:
        super().__init__(n)
        self.fns = [aconst(i) for i in range(self.n - 1)]

    def expected(self) -> list[int]:
        m = self.n - 1
        return list(range(m)) + [m * (m - 1) // 2]

    def graph(self) -> dict[str, Callable[..., Any]]:
        leaves = {f"t{i}": f for i, f in enumerate(self.fns)}
        sink = ba_depn(list(leaves))
        return {**leaves, "sink": sink} if not self.reverse else {"sink": sink, **leaves}

    def _hand(self, group: bool) -> Run:
        fns = self.fns
        if not self.reverse:

            def wire(create: Callable[..., Any], loop: Any) -> list[Any]:
                ts = [create(f()) for f in fns]
                ts.append(create(depn(ts[:])))
                return ts

        else:

            def wire(create: Callable[..., Any], loop: Any) -> list[Any]:
                fut = loop.create_future
                futs = [fut() for _ in fns]
                ts = [create(depn(futs))]
                ts += [create(leaf_f(f, o)) for f, o in zip(fns, futs)]
                return ts

        return _wired(wire, group)

    def impl_hand(self) -> Run:
        return self._hand(False)

    def impl_tgroup(self) -> Run:
        return self._hand(True)

    def impl_gather(self) -> Run:
        fns = self.fns

        async def run() -> list[int]:
            vals = await asyncio.gather(*[f() for f in fns])
            return [*vals, await sum_values(vals)]

        return run

    def impl_aiodag(self) -> Run | None:
        if self.reverse:
            return None
        wrapped = [aiodag.task(f) for f in self.fns]

        async def run() -> list[int]:
            leaves = [w() for w in wrapped]

            async def sink() -> int:
                return await sum_values([t.result() for t in leaves])

            ts = [*leaves, aiodag.task(sink, *leaves)()]
            return [await t for t in ts]

        return run


class FanInRev(FanIn):
    name = "fan-in-rev"
    reverse = True


class Diamond(Shape):
    """Layers of width W (n=1000: 10 layers of 100); each task awaits two of the
    previous layer.  Reverse: the last layer is declared first."""

    name = "diamond"
    reverse = False

    def __init__(self, n: int) -> None:
        super().__init__(n)
        self.width = max(2, self.n // 10)
        self.layers = self.n // self.width
        self.n = self.width * self.layers
        self.leaves = [aconst(1) for _ in range(self.width)]

    def expected(self) -> list[int]:
        return [2**k for k in range(self.layers) for _ in range(self.width)]

    def graph(self) -> dict[str, Callable[..., Any]]:
        W, L = self.width, self.layers
        layers: list[dict[str, Callable[..., Any]]] = [
            {f"l0_{j}": f for j, f in enumerate(self.leaves)}
        ]
        for k in range(1, L):
            layers.append(
                {f"l{k}_{j}": ba_dep2(f"l{k - 1}_{j}", f"l{k - 1}_{(j + 1) % W}") for j in range(W)}
            )
        if self.reverse:
            layers.reverse()
        return {k: v for layer in layers for k, v in layer.items()}

    def _hand(self, group: bool) -> Run:
        W, L, leaves = self.width, self.layers, self.leaves
        if not self.reverse:

            def wire(create: Callable[..., Any], loop: Any) -> list[Any]:
                prev = [create(f()) for f in leaves]
                ts = prev[:]
                for _ in range(1, L):
                    prev = [create(dep2(prev[j], prev[(j + 1) % W])) for j in range(W)]
                    ts += prev
                return ts

        else:

            def wire(create: Callable[..., Any], loop: Any) -> list[Any]:
                fut = loop.create_future
                futs = [[fut() for _ in range(W)] for _ in range(L - 1)]
                ts = []
                for k in range(L - 1, 0, -1):
                    src = futs[k - 1]
                    if k == L - 1:
                        ts += [create(dep2(src[j], src[(j + 1) % W])) for j in range(W)]
                    else:
                        out = futs[k]
                        ts += [
                            create(dep2_f(src[j], src[(j + 1) % W], out[j])) for j in range(W)
                        ]
                ts += [create(leaf_f(f, o)) for f, o in zip(leaves, futs[0])]
                return ts

        return _wired(wire, group)

    def impl_hand(self) -> Run:
        return self._hand(False)

    def impl_tgroup(self) -> Run:
        return self._hand(True)

    def impl_gather(self) -> Run:
        W, L, leaves = self.width, self.layers, self.leaves

        async def run() -> list[int]:
            vals = await asyncio.gather(*[f() for f in leaves])
            out = list(vals)
            for _ in range(1, L):
                vals = await asyncio.gather(*[add2(vals[j], vals[(j + 1) % W]) for j in range(W)])
                out += vals
            return out

        return run

    def impl_aiodag(self) -> Run | None:
        if self.reverse:
            return None
        W, L = self.width, self.layers
        leaves = [aiodag.task(f) for f in self.leaves]
        node = aiodag.task(add2)

        async def run() -> list[int]:
            prev = [w() for w in leaves]
            ts = prev[:]
            for _ in range(1, L):
                prev = [node(prev[j], prev[(j + 1) % W]) for j in range(W)]
                ts += prev
            return [await t for t in ts]

        return run


class DiamondRev(Diamond):
    name = "diamond-rev"
    reverse = True


async def d_user() -> int:
    return 7


async def d_config() -> int:
    return 1


async def d_profile_ba(self: Any) -> int:
    return await self.user + 1


class Dashboard(Shape):
    """user, config, and profile after user: no sleeps, so only overhead."""

    name = "dashboard"
    fixed_n = 3

    def expected(self) -> list[int]:
        return [7, 1, 8]

    def graph(self) -> dict[str, Callable[..., Any]]:
        return {"user": d_user, "config": d_config, "profile": d_profile_ba}

    def _hand(self, group: bool) -> Run:
        def wire(create: Callable[..., Any], loop: Any) -> list[Any]:
            u = create(d_user())
            return [u, create(d_config()), create(dep1(u))]

        return _wired(wire, group)

    def impl_hand(self) -> Run:
        return self._hand(False)

    def impl_tgroup(self) -> Run:
        return self._hand(True)

    def impl_gather(self) -> Run:
        async def run() -> list[int]:  # the naive gather-then-await code
            user, config = await asyncio.gather(d_user(), d_config())
            return [user, config, await add1(user)]

        return run

    def impl_aiodag(self) -> Run:
        U, C, P = aiodag.task(d_user), aiodag.task(d_config), aiodag.task(add1)

        async def run() -> list[int]:
            u = U()
            ts = [u, C(), P(u)]
            return [await t for t in ts]

        return run


class FinishedSibling(Shape):
    """One task awaits an already-finished sibling K times (time per await)."""

    name = "finished-sibling"
    fixed_n = 2

    def __init__(self, k: int) -> None:
        super().__init__(2)
        self.k = k

    def expected(self) -> list[int]:
        return [1, self.k]

    def graph(self) -> dict[str, Callable[..., Any]]:
        k = self.k

        async def b(self: Any) -> int:
            s = 0
            for _ in range(k):
                s += await self.a
            return s

        return {"a": const(1), "b": b}

    def impl_hand(self) -> Run:
        k = self.k

        async def b(t: Awaitable[int]) -> int:
            s = 0
            for _ in range(k):
                s += await t
            return s

        async def run() -> list[int]:
            create = asyncio.get_running_loop().create_task
            a = create(call_sync(const(1)))
            tb = create(b(a))
            return [await a, await tb]

        return run

    def impl_loop(self) -> Run:
        k = self.k

        async def run() -> list[int]:  # the same loop with a local value
            v = 1
            s = 0
            for _ in range(k):
                s += v
            return [1, s]

        return run


SHAPES: dict[str, type[Shape]] = {
    cls.name: cls
    for cls in (
        WideSync,
        WideAsync,
        WideAsyncNoSuspend,
        Chain,
        ChainRev,
        FanIn,
        FanInRev,
        Diamond,
        DiamondRev,
        Dashboard,
        FinishedSibling,
    )
}
SIZED = [s for s in SHAPES if SHAPES[s].fixed_n is None]

# -- timing -----------------------------------------------------------------


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


# -- tracing overhead ------------------------------------------------------------

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


# -- the class form ----------------------------------------------------------------

#: The graphs of the class-form section: (shape, N).  Each uses the same task
#: functions (each takes ``self``) in both forms.
CLASS_FORM_SHAPES = (("wide-sync", 10), ("wide-sync", 1000), ("chain", 1000), ("dashboard", 3))
#: name -> description of the runs of the class-form section.
CLASS_FORM_RUNS = {
    "dict": "ba.all({name: function}) (the dict form)",
    "class": "Bench(token=...).all(): a graph object made for every call",
    "object": "bench.all() on one graph object made once",
}


def class_form_functions(shape: str, n: int) -> dict[str, Callable[[Any], Any]]:
    """The task functions of a class-form graph, each taking ``self``."""
    if shape == "wide-sync":
        return {f"t{i}": (lambda v: lambda self: v)(i) for i in range(n)}
    if shape == "chain":

        def link(prev: str) -> Callable[[Any], Awaitable[int]]:
            async def task(self: Any) -> int:
                return await getattr(self, prev) + 1

            return task

        async def first(self: Any) -> int:
            return 0

        return {"t0": first, **{f"t{i}": link(f"t{i - 1}") for i in range(1, n)}}
    if shape == "dashboard":

        async def user(self: Any) -> int:
            return 1

        async def config(self: Any) -> int:
            return 2

        async def profile(self: Any) -> int:
            return await self.user + 1

        return {"user": user, "config": config, "profile": profile}
    raise ValueError(shape)


def class_form(
    loop: asyncio.AbstractEventLoop, cloop: CountingLoop, reps: int, target: float
) -> dict[str, Any]:
    """The C engine's dict form against the class form on the same task
    functions: a class made once, a graph object made per call (with one
    input) or once, interleaved like the timing tables."""
    engine = ENGINES.get("c")
    if engine is None:
        return {}
    previous = betterall._graph._engine
    betterall._graph._engine = engine
    try:
        out: dict[str, Any] = {}
        for shape, n in CLASS_FORM_SHAPES:
            functions = class_form_functions(shape, n)
            namespace: dict[str, Any] = {"__annotations__": {"token": "str"}}
            namespace.update((name, betterall.task(fn)) for name, fn in functions.items())
            bench_class: Any = type("Bench", (betterall.Graph,), namespace)
            graph = bench_class(token="t")
            runs: dict[str, Run] = {
                "dict": functools.partial(engine.all, functions),
                "class": lambda bench_class=bench_class: bench_class(token="t").all(),
                "object": graph.all,
            }
            expected = loop.run_until_complete(_once(runs["dict"]))
            for impl, run in runs.items():
                if dict(loop.run_until_complete(_once(run))) != expected:
                    raise AssertionError(f"class form {shape} N={n}: {impl} computed a wrong result")
            out[row_label(shape, n)] = sample(loop, cloop, runs, reps, target, n)
        return out
    finally:
        betterall._graph._engine = previous


def print_class_form(cf: dict[str, Any]) -> None:
    if not cf:
        print("\nClass form: skipped (the C engine is not available)")
        return
    lw = max([len(k) for k in cf] + [26])
    print_paired_legend("Class form against dict form, C engine: median µs per call; the ratios", CLASS_FORM_RUNS)
    print(f"{'graph':<{lw}}{'dict':>10}{'class':>10}{'object':>10}{'class/dict':>12}{'object/dict':>12}")
    for k, v in cf.items():
        per_call = {i: v[i]["seconds_per_call"] * 1e6 for i in CLASS_FORM_RUNS}
        print(
            f"{k:<{lw}}{fmt(per_call['dict']):>10}{fmt(per_call['class']):>10}{fmt(per_call['object']):>10}"
            f"{ratio(v, 'class', 'dict'):>11.2f}x{ratio(v, 'object', 'dict'):>11.2f}x"
        )


# -- makespan ---------------------------------------------------------------

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


# -- memory -----------------------------------------------------------------


async def _peak(run: Run) -> int:
    base = tracemalloc.get_traced_memory()[0]
    tracemalloc.reset_peak()
    r = await run()
    peak = tracemalloc.get_traced_memory()[1]
    del r
    return peak - base


def traced(loop: asyncio.AbstractEventLoop, run: Run) -> tuple[int, int]:
    """(peak bytes during one call, bytes still allocated after 10 calls)."""
    for _ in range(3):
        loop.run_until_complete(_once(run))
    gc.collect()
    tracemalloc.start()
    try:
        peaks = []
        for _ in range(3):
            gc.collect()
            gc.disable()
            try:
                peaks.append(loop.run_until_complete(_peak(run)))
            finally:
                gc.enable()
        retained = []
        for r in (_noop, run, _noop, run):  # _noop: what the harness itself keeps
            gc.collect()
            before = tracemalloc.get_traced_memory()[0]
            loop.run_until_complete(_timed(r, 10))
            gc.collect()
            retained.append(tracemalloc.get_traced_memory()[0] - before)
    finally:
        tracemalloc.stop()
    return min(peaks), retained[3] - retained[2]


def memory(loop: asyncio.AbstractEventLoop, impls: list[str], n_big: int) -> dict[str, Any]:
    n_small = 10
    out: dict[str, Any] = {}
    for sname in ("wide-async-nosuspend", "chain"):
        out[sname] = {}
        for impl in ("ba-c", "ba-py", "hand", "gather"):
            if impl not in impls:
                continue
            peaks, retained = {}, 0
            for n in (n_small, n_big):
                run = SHAPES[sname](n).build(impl)
                if run is None:
                    break
                peaks[n], r = traced(loop, run)
                retained = max(retained, r)
            if len(peaks) < 2:
                continue
            out[sname][impl] = {
                "peak_bytes": {str(k): v for k, v in peaks.items()},
                "bytes_per_task": (peaks[n_big] - peaks[n_small]) / (n_big - n_small),
                "retained_after_10_calls": retained,
            }
    return out


def current_rss() -> int:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return peak_rss()


def peak_rss() -> int:
    if resource is None:
        return 0
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return r if sys.platform == "darwin" else r * 1024


RSS_IMPLS = ("ba-c", "ba-py", "hand", "gather")


def rss_child(impl: str, graphs: int, use_uvloop: bool) -> None:
    """In a fresh process: ``graphs`` graphs of 3 tasks in flight at once."""
    loop = new_loop(use_uvloop)[0]

    async def main() -> int:
        ev = asyncio.Event()

        async def a() -> int:
            await ev.wait()
            return 1

        async def b(self: Any) -> int:
            return await self.a + 1

        async def c() -> int:
            return 3

        if impl in ("ba-c", "ba-py"):
            graph = {"a": a, "b": b, "c": c}
            all_ = ENGINES["c" if impl == "ba-c" else "python"].all

            async def one() -> Any:
                return values_of(await all_(graph))

        elif impl == "hand":

            async def one() -> Any:
                create = asyncio.get_running_loop().create_task
                ta = create(a())
                ts = [ta, create(dep1(ta)), create(c())]
                return [await t for t in ts]

        else:

            async def one() -> Any:
                ta = asyncio.get_running_loop().create_task(a())
                return await asyncio.gather(ta, dep1(ta), c())

        create = asyncio.get_running_loop().create_task
        calls = [create(one()) for _ in range(graphs)]
        for _ in range(5):
            await asyncio.sleep(0)
        in_flight = current_rss()
        ev.set()
        results = await asyncio.gather(*calls)
        assert all(r == [1, 2, 3] for r in results), results[:3]
        return in_flight

    gc.collect()
    base = current_rss()
    in_flight = loop.run_until_complete(main())
    print(json.dumps({"base": base, "in_flight": in_flight, "peak": peak_rss()}))


def rss(impls: list[str], graphs: int, use_uvloop: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for impl in RSS_IMPLS:
        if impl not in impls:
            continue
        cmd = [sys.executable, os.path.abspath(__file__), "--_rss-child", impl, "--graphs", str(graphs)]
        if use_uvloop:
            cmd.append("--uvloop")
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        if p.returncode != 0:
            out[impl] = {"error": p.stderr.strip().splitlines()[-1:] or ["?"]}
            continue
        d = json.loads(p.stdout.strip().splitlines()[-1])
        d["bytes_per_graph"] = (d["peak"] - d["base"]) / graphs
        out[impl] = d
    return out


# -- output -----------------------------------------------------------------


def new_loop(use_uvloop: bool) -> tuple[asyncio.AbstractEventLoop, str]:
    if use_uvloop:
        try:
            import uvloop
        except ImportError:
            print("note: --uvloop given but uvloop is not importable; using asyncio's loop",
                  file=sys.stderr)
        else:
            uvl: asyncio.AbstractEventLoop = uvloop.new_event_loop()
            asyncio.set_event_loop(uvl)
            return uvl, f"uvloop {uvloop.__version__}"
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    return loop, f"asyncio ({type(loop).__name__})"


def _built_at() -> str | None:
    mod = ENGINES.get("c")
    if mod is None or not getattr(mod, "__file__", None):
        return None
    t = os.path.getmtime(mod.__file__)
    return datetime.datetime.fromtimestamp(t, datetime.timezone.utc).isoformat(timespec="seconds")


def _git_commit() -> str | None:
    """The commit of the checkout betterall is imported from, if it is one."""
    here = os.path.dirname(os.path.dirname(os.path.abspath(betterall.__file__)))
    try:
        p = subprocess.run(
            ["git", "-C", here, "rev-parse", "--short", "HEAD"],
            capture_output=True, text=True, timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if p.returncode != 0:
        return None
    dirty = subprocess.run(
        ["git", "-C", here, "status", "--porcelain", "--untracked-files=no"],
        capture_output=True, text=True, timeout=10,
    ).stdout.strip()
    return p.stdout.strip() + ("+changes" if dirty else "")


def cpu_times() -> list[int] | None:
    """The 'cpu' line of /proc/stat (user nice system idle iowait irq softirq steal ...)."""
    try:
        with open("/proc/stat") as f:
            return [int(x) for x in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def fmt(v: float | None) -> str:
    if v is None:
        return "-"
    if v < 1:
        return f"{v:.3f}"
    if v < 10:
        return f"{v:.2f}"
    return f"{v:.1f}"


def fmt_x(v: float | None) -> str:
    if v is None:
        return "-"
    return f"{v:.1f}x" if v >= 1 else f"{v:.2f}x"


def row_label(shape: str, n: int) -> str:
    if shape == "finished-sibling":
        return f"{shape} K={n}"
    return f"{shape} N={n}"


def best_baseline(res: dict[str, Any]) -> tuple[str, float] | None:
    """The fastest asyncio baseline (by median) and its speed-up ratio over ba-c."""
    cands = [(res[i]["us_per_task"], i) for i in ASYNCIO_BASELINES if i in res]
    if not cands or "ba-c" not in res:
        return None
    i = min(cands)[1]
    return i, ratio(res, i)


def ratio(res: dict[str, Any], other: str, impl: str = "ba-c") -> float:
    """How many times faster ``impl`` is than ``other``: the median of the
    per-repetition ratios (both were measured in the same repetition, so
    machine noise that hits a whole repetition cancels out)."""
    return statistics.median(o / c for o, c in zip(res[other]["samples"], res[impl]["samples"]))


def print_tables(timing: dict[str, Any], impls: list[str]) -> None:
    rows = [(k, v) for k, v in timing.items() if not k.startswith("finished-sibling")]
    cols = [i for i in impls if any(i in v for _, v in rows)]
    lw = max([len(k) for k, _ in rows] + [26])
    if rows:
        print("\nMicroseconds per task (median; lower is better)")
        print(f"{'shape':<{lw}}" + "".join(f"{c:>10}" for c in cols))
        for k, v in rows:
            print(f"{k:<{lw}}" + "".join(f"{fmt(v[c]['us_per_task']) if c in v else '-':>10}" for c in cols))

        others = [c for c in cols if c != "ba-c"]
        print("\nba-c is this many times faster than ... (baseline time / ba-c time)")
        print(
            f"{'shape':<{lw}}"
            + "".join(f"{c:>10}" for c in others)
            + f"{'best asyncio':>22}"
            + f"{'ba-c loop it/call':>19}"
        )
        for k, v in rows:
            if "ba-c" not in v:
                continue
            line = f"{k:<{lw}}" + "".join(
                f"{fmt_x(ratio(v, o)) if o in v else '-':>10}" for o in others
            )
            bb = best_baseline(v)
            line += f"{(fmt_x(bb[1]) + ' (' + bb[0] + ')') if bb else '-':>22}"
            line += f"{v['ba-c']['loop_iterations']:>19}"
            print(line)

        print("\nasyncio loop iterations per call (counted on a separate asyncio loop)")
        print(f"{'shape':<{lw}}" + "".join(f"{c:>10}" for c in cols))
        for k, v in rows:
            print(f"{k:<{lw}}" + "".join(f"{v[c]['loop_iterations'] if c in v else '-':>10}" for c in cols))

    fs = [(k, v) for k, v in timing.items() if k.startswith("finished-sibling")]
    for k, v in fs:
        print("\nAwaiting an already-finished sibling: nanoseconds per await (median)")
        fcols = [c for c in impls if c in v]
        print(f"{'shape':<{lw}}" + "".join(f"{c:>10}" for c in fcols))
        print(f"{k:<{lw}}" + "".join(f"{v[c]['us_per_task'] * 1000:>10.1f}" for c in fcols))
        print(f"{'  loop iterations per call':<{lw}}" + "".join(f"{v[c]['loop_iterations']:>10}" for c in fcols))


def print_makespan(ms: dict[str, Any]) -> None:
    print("\nMakespan with real asyncio.sleep latencies (ms, median; +x = above the critical path)")
    for g, d in ms.items():
        cp = d["critical_path_ms"]
        spec = ", ".join(
            f"{n}{'(' + '+'.join(deps) + ')' if deps else ''} {int(t)}" for n, deps, t in MAKESPAN_GRAPHS[g]
        )
        print(f"makespan {g}: critical path {cp:.0f} ms  [{spec}]")
        for impl, r in d["impls"].items():
            extra = ""
            if impl == "cp-seq":
                extra = "   (the critical path's sleeps awaited one after another: the floor)"
            elif impl != "naive" and "naive" in d["impls"]:
                extra = f"   naive/this {d['impls']['naive']['median_ms'] / r['median_ms']:.2f}x"
            print(
                f"    {impl:<8} {r['median_ms']:8.2f} ms  {r['median_ms'] - cp:+7.2f}"
                f"  (max {r['max_ms'] - cp:+.2f}){extra}"
            )


def print_memory(mem: dict[str, Any], rss_res: dict[str, Any], n_big: int, graphs: int) -> None:
    if mem:
        print("\nMemory (tracemalloc): peak bytes allocated during one call (gc paused),")
        print(f"per task = (peak at N={n_big} - peak at N=10) / {n_big - 10}")
        print(f"{'shape':<24}{'impl':<8}{'call N=10':>11}{f'call N={n_big}':>13}{'per task':>10}{'retained':>10}")
        for s, d in mem.items():
            for impl, r in d.items():
                print(
                    f"{s:<24}{impl:<8}{r['peak_bytes']['10']:>11}{r['peak_bytes'][str(n_big)]:>13}"
                    f"{r['bytes_per_task']:>10.0f}{r['retained_after_10_calls']:>10}"
                )
        print("  (retained = bytes still allocated after 10 more calls and gc.collect(),")
        print("   less what the same harness keeps for an empty coroutine)")
    if rss_res:
        print(f"\nPeak RSS, {graphs} graphs of 3 tasks in flight at once (one subprocess each)")
        print(f"{'impl':<8}{'peak MiB':>10}{'base MiB':>10}{'bytes/graph':>13}")
        for impl, r in rss_res.items():
            if "error" in r:
                print(f"{impl:<8}  failed: {r['error']}")
                continue
            print(
                f"{impl:<8}{r['peak'] / 2**20:>10.1f}{r['base'] / 2**20:>10.1f}{r['bytes_per_graph']:>13.0f}"
            )


# -- targets -----------------------------------------------------------------


def targets(data: dict[str, Any], n: int) -> list[tuple[str, str, bool | None]]:
    """(target, measured, met) for each target this run can check."""
    t = data.get("timing", {})
    out: list[tuple[str, str, bool | None]] = []

    def us(shape: str, impl: str = "ba-c") -> float | None:
        r = t.get(row_label(shape, n), {}).get(impl)
        return r["us_per_task"] if r else None

    def limit(label: str, shapes: list[str], bound: float) -> None:
        for s in shapes:
            v = us(s)
            if v is not None:
                out.append((f"{label}: {s} <= {bound} us/task", f"{v:.3f} us", v <= bound))

    limit("sync tasks", ["wide-sync"], 0.15)
    ws = t.get(row_label("wide-sync", n), {})
    if "ba-c" in ws and "loop" in ws:
        x = 1 / ratio(ws, "loop")
        out.append(("sync tasks: within 3x of a plain loop", f"{x:.2f}x the loop's time", x <= 3))
    limit("async, no blocking", ["wide-async-nosuspend", "chain", "fan-in", "diamond"], 0.5)
    limit("waits that block", ["chain-rev", "fan-in-rev", "diamond-rev"], 0.7)
    for s in ("chain-rev", "fan-in-rev", "diamond-rev"):
        r = t.get(row_label(s, n), {}).get("ba-c")
        if r:
            it = r["loop_iterations"]
            out.append((f"no loop iteration per wait: {s}", f"{it} iterations per call", it <= 1))
    limit("wide-async", ["wide-async"], 1.0)
    for key, res in t.items():
        if key.startswith("finished-sibling") or "ba-c" not in res:
            continue
        if not (key.endswith(f"N={n}") or key.startswith("dashboard")):
            continue
        bb = best_baseline(res)
        if bb:
            out.append((f">= 4x the best asyncio baseline: {key}", f"{bb[1]:.2f}x ({bb[0]})", bb[1] >= 4))
        if "ba-py" in res:
            r = ratio(res, "ba-py")
            out.append((f">= 5x the pure-Python engine: {key}", f"{r:.2f}x", r >= 5))
    for key, res in t.items():
        if key.startswith("finished-sibling") and "ba-c" in res:
            ns = res["ba-c"]["us_per_task"] * 1000
            out.append(("finished sibling: < 50 ns per await", f"{ns:.1f} ns", ns < 50))
            it = res["ba-c"]["loop_iterations"]
            out.append(("finished sibling: no loop iteration", f"{it} iterations per call", it == 0))
    for g, d in data.get("makespan", {}).items():
        r = d["impls"].get("ba-c")
        if r:
            cp = d["critical_path_ms"]
            out.append(
                (f"makespan {g}: median within 2 ms of the critical path",
                 f"median {r['median_ms'] - cp:+.2f} ms (max {r['max_ms'] - cp:+.2f} ms)",
                 r["median_ms"] - cp <= 2),
            )
    for s, d in data.get("memory", {}).items():
        r = d.get("ba-c")
        if r:
            out.append((f"memory {s}: <= 400 bytes per task", f"{r['bytes_per_task']:.0f} B", r["bytes_per_task"] <= 400))
            out.append(
                (f"memory {s}: nothing retained after a call",
                 f"{r['retained_after_10_calls']} B after 10 calls", r["retained_after_10_calls"] <= 0)
            )
    return out


def tracing_targets(data: dict[str, Any]) -> list[tuple[str, str, bool | None]]:
    """(target, measured, met) for the tracing target: with tracing
    on, a graph costs at most 2x (paired ratio on/off)."""
    out: list[tuple[str, str, bool | None]] = []
    for key, v in data.get("tracing", {}).items():
        r = ratio(v, "on", "off")
        out.append((f"tracing on costs <= 2x: {key}", f"{r:.2f}x", r <= 2))
    return out


def print_targets(rows: list[tuple[str, str, bool | None]], n: int) -> None:
    print(f"\nTargets (N={n}, ba-c; docs/performance-log.md#targets)")
    if not rows:
        print("  nothing to check (the targets need ba-c and N=1000 rows)")
        return
    w = max(len(r[0]) for r in rows)
    for name, measured, met in rows:
        print(f"  {'met   ' if met else 'MISSED'}  {name:<{w}}  {measured}")


# -- main -------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="smoke run: tiny N, few repetitions (seconds)")
    p.add_argument("--n", help="comma-separated task counts (default 1000,10; --quick: 100,10)")
    p.add_argument("--reps", type=int, help="repetitions per implementation (default 25; --quick: 3)")
    p.add_argument("--shapes", help=f"comma-separated shapes (default all): {','.join(SHAPES)}")
    p.add_argument("--impls", help=f"comma-separated implementations (default all available): {','.join(IMPLS)}")
    p.add_argument(
        "--sections",
        default="timing,makespan,memory,rss,tracing,classform",
        help="what to run (default: timing,makespan,memory,rss,tracing,classform)",
    )
    p.add_argument(
        "--tracing-shapes",
        default=",".join(TRACING_SHAPES),
        help=f"shapes of the tracing section (default {','.join(TRACING_SHAPES)}; N: the largest --n)",
    )
    p.add_argument("--json", metavar="FILE", help="also write every number (and every sample) here")
    p.add_argument("--uvloop", action="store_true", help="run on uvloop's event loop (if importable)")
    p.add_argument("--_rss-child", dest="rss_child", help=argparse.SUPPRESS)
    p.add_argument("--graphs", type=int, help="graphs in flight for the RSS section (default 100000; --quick: 2000)")
    args = p.parse_args(argv)

    if args.rss_child:
        rss_child(args.rss_child, args.graphs or 100_000, args.uvloop)
        return 0

    ns = [int(x) for x in (args.n or ("100,10" if args.quick else "1000,10")).split(",")]
    if any(n < 10 for n in ns):
        p.error("--n: every N must be at least 10")
    reps = args.reps or (3 if args.quick else 25)
    target = 0.001 if args.quick else 0.01  # seconds per sample
    k_finished = 1000 if args.quick else 10_000
    graphs = args.graphs or (2000 if args.quick else 100_000)
    ms_reps = args.reps or (1 if args.quick else 15)
    shapes = list(SHAPES) if not args.shapes else args.shapes.split(",")
    for s in shapes:
        if s not in SHAPES:
            p.error(f"--shapes: unknown shape {s!r}")
    avail = available_impls()
    impls = avail if not args.impls else args.impls.split(",")
    for i in impls:
        if i not in IMPLS:
            p.error(f"--impls: unknown implementation {i!r}")
    missing = [i for i in impls if i not in avail]
    impls = [i for i in impls if i in avail]
    sections = set(args.sections.split(","))
    for sec in sections:
        if sec not in ("timing", "makespan", "memory", "rss", "tracing", "classform"):
            p.error(f"--sections: unknown section {sec!r}")
    tracing_shapes = args.tracing_shapes.split(",")
    for s in tracing_shapes:
        if s not in SIZED:
            p.error(f"--tracing-shapes: {s!r} is not a sized shape ({','.join(SIZED)})")

    loop, loop_name = new_loop(args.uvloop)
    cloop = CountingLoop()
    started = time.monotonic()
    cpu0 = cpu_times()
    now = datetime.datetime.now(datetime.timezone.utc)
    meta = {
        "date": now.isoformat(timespec="seconds"),
        "python": sys.version.replace("\n", " "),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "loadavg": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "betterall": betterall.__version__,
        "engines": list(ENGINES),
        "cengine_built": _built_at(),
        "git_commit": _git_commit(),
        "loop": loop_name,
        "aiodag": getattr(aiodag, "__version__", "installed") if aiodag else None,
        "reps": reps,
        "sample_seconds": target,
        "n": ns,
        "quick": args.quick,
    }
    print(f"betterall benchmarks — {meta['date']}")
    print(f"Python {meta['python']} ({meta['implementation']})")
    print(f"machine: {meta['platform']}, {meta['cpu']}, {meta['cpu_count']} CPUs, load {meta['loadavg']}")
    print(
        f"betterall {meta['betterall']}, engines {meta['engines']}"
        f" (C engine built {meta['cengine_built']}), commit {meta['git_commit']}, loop {loop_name}"
    )
    print(f"median of {reps} repetitions, implementations interleaved, ~{target * 1000:g} ms per sample")
    if missing:
        print(f"not available here (skipped): {', '.join(missing)}")
    if os.environ.get("BETTERALL_DEBUG") or os.environ.get("PYTHONASYNCIODEBUG"):
        print("WARNING: BETTERALL_DEBUG or PYTHONASYNCIODEBUG is set: timings are not representative")
    print("implementations:")
    for k in impls:
        print(f"  {k:<9} {IMPLS[k]}")
    sys.stdout.flush()

    data: dict[str, Any] = {"meta": meta, "timing": {}}
    try:
        if "timing" in sections:
            for s in shapes:
                cls = SHAPES[s]
                if cls is FinishedSibling:
                    shape_list: list[Shape] = [FinishedSibling(k_finished)]
                elif cls.fixed_n is not None:
                    shape_list = [cls(cls.fixed_n)]
                else:
                    shape_list = [cls(n) for n in ns]
                for shape in shape_list:
                    label = row_label(s, shape.k if isinstance(shape, FinishedSibling) else shape.n)
                    data["timing"][label] = bench(loop, cloop, shape, impls, reps, target)
            print_tables(data["timing"], impls)
        if "makespan" in sections:
            data["makespan"] = makespan(loop, impls, ms_reps)
            print_makespan(data["makespan"])
        n_big = max(ns)
        if "memory" in sections:
            data["memory"] = memory(loop, impls, n_big)
        if "rss" in sections:
            data["rss"] = rss(impls, graphs, args.uvloop)
        print_memory(data.get("memory", {}), data.get("rss", {}), n_big, graphs)
        if "tracing" in sections:
            data["tracing"] = tracing(loop, cloop, tracing_shapes, n_big, reps, target)
            print_tracing(data["tracing"], data["timing"])
        if "classform" in sections:
            data["classform"] = class_form(loop, cloop, reps, target)
            print_class_form(data["classform"])
        rows = targets(data, n_big)
        data["targets"] = [{"target": a, "measured": b, "met": c} for a, b, c in rows]
        print_targets(rows, n_big)
        rows6 = tracing_targets(data)
        data["targets_issue6"] = [{"target": a, "measured": b, "met": c} for a, b, c in rows6]
        if rows6:
            print("\nTracing target (ba-c, paired ratio tracing on / off)")
            w = max(len(r[0]) for r in rows6)
            for name, measured, met in rows6:
                print(f"  {'met   ' if met else 'MISSED'}  {name:<{w}}  {measured}")
    finally:
        loop.close()
        cloop.close()
    meta["seconds"] = round(time.monotonic() - started, 1)
    meta["loadavg_end"] = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    if _built_at() != meta["cengine_built"]:
        meta["cengine_rebuilt_during_run"] = _built_at()
        print(f"\nWARNING: the C engine was rebuilt during this run ({_built_at()}); this process"
              " kept the old build, the RSS subprocesses may have used the new one")
    cpu1 = cpu_times()
    steal = ""
    if cpu0 and cpu1 and len(cpu1) > 7:
        d = [b - a for a, b in zip(cpu0, cpu1)]
        meta["cpu_steal_percent"] = round(100 * d[7] / max(1, sum(d[:8])), 2)
        meta["cpu_busy_percent"] = round(100 * (sum(d[:8]) - d[3] - d[4]) / max(1, sum(d[:8])), 1)
        steal = (f"; all CPUs busy {meta['cpu_busy_percent']}% (this run uses one),"
                 f" stolen by the hypervisor {meta['cpu_steal_percent']}%")
    print(f"\nfinished in {meta['seconds']} s; load average at the end {meta['loadavg_end']}{steal}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(data, f, indent=1)
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
