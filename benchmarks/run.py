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
import datetime
import json
import os
import platform
import sys
import time
from typing import Any

from suite.impls import ENGINES, IMPLS, aiodag, available_impls, betterall
from suite.shapes import SHAPES, SIZED, FinishedSibling, Shape
from suite.timing import CountingLoop, bench
from suite.tracing import TRACING_SHAPES, print_tracing, tracing
from suite.classform import class_form, print_class_form
from suite.makespan import makespan
from suite.memory import memory, rss, rss_child
from suite.output import (
    _built_at,
    _git_commit,
    cpu_model,
    cpu_times,
    new_loop,
    print_makespan,
    print_memory,
    print_tables,
    row_label,
)
from suite.targets import print_targets, targets, tracing_targets


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
