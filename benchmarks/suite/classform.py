"""The class form (betterall.Graph) against the dict form on the same functions."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from typing import Any

from .impls import ENGINES, betterall
from .shapes import Run
from .timing import CountingLoop, _once, sample
from .tracing import print_paired_legend
from .output import fmt, ratio, row_label

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
