"""The targets each run checks against its own numbers."""

from __future__ import annotations

from typing import Any

from .output import best_baseline, ratio, row_label

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
