#!/usr/bin/env python
"""Turn the JSON files of ``benchmarks/run.py --json`` into Markdown tables.

    python benchmarks/run.py --json b311.json      # with Python 3.11
    python benchmarks/run.py --json b313.json      # with Python 3.13
    python benchmarks/report.py b311.json b313.json

Prints, for each file, a summary table (betterall C, pure Python and the best
asyncio baseline per shape) and the makespan, memory, RSS and tracing numbers; then
one table of the targets of issues 4 and 6 with a column per file.  Used to
update docs/performance-log.md.
"""

from __future__ import annotations

import json
import sys
from typing import Any

sys.path.insert(0, __file__.rsplit("/", 1)[0] if "/" in __file__ else ".")
from suite.output import best_baseline, fmt, fmt_x, ratio  # noqa: E402


def title(meta: dict[str, Any]) -> str:
    py = meta["python"].split()[0]
    return f"Python {py}, {meta['loop']}"


def summary(data: dict[str, Any]) -> list[str]:
    meta = data["meta"]
    out = [
        f"### {title(meta)}",
        "",
        f"{meta['date']}, {meta['platform']}, {meta['cpu']}, {meta['cpu_count']} CPUs;"
        f" betterall {meta['betterall']} (commit {meta.get('git_commit')}), C engine built {meta.get('cengine_built')};"
        f" median of {meta['reps']} repetitions; run took {meta.get('seconds')} s"
        + (
            f", CPUs busy {meta['cpu_busy_percent']}%, steal {meta['cpu_steal_percent']}%."
            if "cpu_busy_percent" in meta
            else "."
        ),
        "",
        "| shape | ba-c µs/task | ba-py µs/task | best asyncio µs/task | ba-c vs ba-py | ba-c vs best asyncio |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for key, res in data.get("timing", {}).items():
        if key.startswith("finished-sibling") or "ba-c" not in res:
            continue
        c = res["ba-c"]["us_per_task"]
        py = res.get("ba-py", {}).get("us_per_task")
        bb = best_baseline(res)
        best = f"{fmt(res[bb[0]]['us_per_task'])} ({bb[0]})" if bb else "-"
        out.append(
            f"| {key} | {fmt(c)} | {fmt(py)} | {best} | "
            f"{fmt_x(ratio(res, 'ba-py')) if py else '-'} | {fmt_x(bb[1]) if bb else '-'} |"
        )
    for key, res in data.get("timing", {}).items():
        if key.startswith("finished-sibling"):
            cells = ", ".join(f"{impl} {r['us_per_task'] * 1000:.0f} ns" for impl, r in res.items())
            out += ["", f"Awaiting a finished sibling ({key}), per await: {cells}."]
    if data.get("makespan"):
        out += ["", "| makespan | critical path | " + " | ".join(next(iter(data["makespan"].values()))["impls"]) + " |"]
        out.append("|---|---:|" + "---:|" * len(next(iter(data["makespan"].values()))["impls"]))
        for g, d in data["makespan"].items():
            cp = d["critical_path_ms"]
            cells = " | ".join(f"{r['median_ms']:.1f} ms ({r['median_ms'] - cp:+.1f})" for r in d["impls"].values())
            out.append(f"| {g} | {cp:.0f} ms | {cells} |")
    if data.get("memory"):
        out += ["", "| tracemalloc | impl | peak, call of N=10 | peak per task | retained after 10 calls |",
                "|---|---|---:|---:|---:|"]
        for s, d in data["memory"].items():
            for impl, r in d.items():
                out.append(
                    f"| {s} | {impl} | {r['peak_bytes']['10']} B | {r['bytes_per_task']:.0f} B |"
                    f" {r['retained_after_10_calls']} B |"
                )
    if data.get("rss"):
        out += ["", "| peak RSS, graphs of 3 tasks in flight | " + " | ".join(data["rss"]) + " |",
                "|---|" + "---:|" * len(data["rss"])]
        out.append(
            "| bytes per graph | "
            + " | ".join(f"{r['bytes_per_graph']:.0f}" if "bytes_per_graph" in r else "failed" for r in data["rss"].values())
            + " |"
        )
    if data.get("tracing"):
        out += ["", "| tracing, C engine | ba-c µs/task | debug=False µs/task | debug=callable µs/task"
                " | on/off | off/ba-c | ba-c of the timing table |",
                "|---|---:|---:|---:|---:|---:|---:|"]
        for key, v in data["tracing"].items():
            table = data.get("timing", {}).get(key, {}).get("ba-c")
            out.append(
                f"| {key} | {fmt(v['ba-c']['us_per_task'])} | {fmt(v['off']['us_per_task'])} |"
                f" {fmt(v['on']['us_per_task'])} | {ratio(v, 'on', 'off'):.2f}x |"
                f" {ratio(v, 'off', 'ba-c'):.2f}x | {fmt(table['us_per_task']) if table else '-'} |"
            )
    return out


def targets(files: list[tuple[str, dict[str, Any]]]) -> list[str]:
    names: list[str] = []
    by_file = []
    for _, data in files:
        rows = {t["target"]: t for t in data.get("targets", []) + data.get("targets_issue6", [])}
        by_file.append(rows)
        names += [n for n in rows if n not in names]
    out = ["| target | " + " | ".join(title(d["meta"]) for _, d in files) + " |",
           "|---|" + "---|" * len(files)]
    for n in names:
        cells = []
        for rows in by_file:
            t = rows.get(n)
            cells.append(f"{'met' if t['met'] else '**missed**'}: {t['measured']}" if t else "-")
        out.append(f"| {n} | " + " | ".join(cells) + " |")
    return out


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__)
        return 2
    files = []
    for path in argv:
        with open(path) as f:
            files.append((path, json.load(f)))
    for _, data in files:
        print("\n".join(summary(data)))
        print()
    print("\n".join(targets(files)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
