"""Memory: tracemalloc peaks and retained bytes, and peak RSS in a child process."""

from __future__ import annotations

import asyncio
import gc
import json
import os
import subprocess
import sys
import tracemalloc
from typing import Any

try:
    import resource
except ImportError:  # not on Windows
    resource = None  # type: ignore[assignment]

from .impls import ENGINES
from .shapes import Run, SHAPES, dep1, values_of
from .timing import _noop, _once, _timed
from .output import new_loop

#: The suite's entry point, which runs the RSS child processes.
RUN_PY = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "run.py")


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
        cmd = [sys.executable, RUN_PY, "--_rss-child", impl, "--graphs", str(graphs)]
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
