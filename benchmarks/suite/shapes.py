"""The graph shapes: each builds the same graph for every implementation."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from typing import Any

from .impls import EAGER_OF, ENGINES, aiodag

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
