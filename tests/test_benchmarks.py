"""Smoke test of the benchmark suite (benchmarks/run.py --quick); no timing is asserted."""

from __future__ import annotations

import os
import pathlib
import re
import subprocess
import sys

import betterall

ROOT = pathlib.Path(__file__).resolve().parent.parent

# Every shape of the suite (docs/performance-log.md); each must have a row in a table.
SHAPES = (
    "wide-sync",
    "wide-async",
    "wide-async-nosuspend",
    "chain",
    "chain-rev",
    "fan-in",
    "fan-in-rev",
    "diamond",
    "diamond-rev",
    "dashboard",
    "finished-sibling",
)


def test_quick_benchmark_runs_and_prints_a_row_per_shape() -> None:
    """`python benchmarks/run.py --quick` exits 0 and prints a table row for every shape."""
    env = dict(os.environ)
    # conftest.py turns asyncio debug mode on for this process; the benchmark
    # must run in normal mode (debug mode would only make it slower).
    env.pop("PYTHONASYNCIODEBUG", None)
    env.pop("BETTERALL_DEBUG", None)
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "run.py"), "--quick"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = proc.stdout
    for shape in SHAPES:
        assert re.search(rf"^{re.escape(shape)} [NK]=\d+ ", out, re.M), f"no row for {shape}:\n{out}"
    for graph in ("dashboard", "feed"):
        assert f"makespan {graph}: critical path" in out
    assert "Targets (N=" in out
    if "c" in betterall._engines():
        # The class-form section: one row per graph, with both ratios.
        assert "Class form against dict form" in out
        for label in ("wide-sync N=10", "wide-sync N=1000", "chain N=1000", "dashboard N=3"):
            assert re.search(rf"^{label} .*x .*x$", out, re.M), f"no class-form row {label}:\n{out}"
