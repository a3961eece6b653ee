"""Output: the loop, the machine, and the tables."""

from __future__ import annotations

import asyncio
import datetime
import os
import platform
import statistics
import subprocess
import sys
from typing import Any

from .impls import ASYNCIO_BASELINES, ENGINES, betterall
from .makespan import MAKESPAN_GRAPHS

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
