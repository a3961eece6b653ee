#!/usr/bin/env python
"""The HTTP load benchmark: what a user of a web service sees.

    python benchmarks/http/run.py             # the full run: about 4 minutes
    python benchmarks/http/run.py --quick     # a smoke run: about 30 s
    python benchmarks/http/run.py --frameworks fastapi --patterns account \
        --variants depends-fastapi,depends-betterall --concurrency 1,16
                                              # FastAPI's Depends resolver
                                              # against GraphRoute

Starts the fake upstream (examples/webdemo/upstream.py, fixed latencies of
50-200 ms) and one app server per framework and engine
(benchmarks/http/server.py), each in its own process on loopback, then loads
the naive, betterall and hand-optimised handlers of each pattern with ``wrk``
(or, without it, benchmarks/http/load.py) at several concurrency levels,
twice, interleaved, and prints requests per second, p50/p99 latency and the
server process's CPU time per request (all the server's CPU time during a cell, over the
requests it handled). See docs/web.md for the results and how to read them.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
UPSTREAM = ROOT / "examples" / "webdemo" / "upstream.py"

#: variant -> (engine of the server, route prefix)
VARIANTS: dict[str, tuple[str, str]] = {
    "naive": ("c", "naive"),
    "betterall": ("c", "betterall"),
    "hand": ("c", "hand"),
    "betterall-py": ("python", "betterall"),
    # FastAPI's dependency resolver against betterall.fastapi.GraphRoute: the
    # pattern "account" of examples/fastapi_app.py (--frameworks fastapi).
    "depends-fastapi": ("c", "depends/fastapi"),
    "depends-betterall": ("c", "depends/betterall"),
}


# -- processes -----------------------------------------------------------------


class Child:
    """A child process that prints one JSON line when it is ready."""

    def __init__(self, argv: list[str], env: dict[str, str] | None = None) -> None:
        self.proc = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env, cwd=ROOT
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            self.proc.wait()
            raise RuntimeError(f"{' '.join(argv)} exited with {self.proc.returncode} before it was ready")
        self.info: dict[str, Any] = json.loads(line)

    def stats(self) -> dict[str, Any]:
        """Ask a server.py process for its CPU time and request counts."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write("stats\n")
        self.proc.stdin.flush()
        return json.loads(self.proc.stdout.readline())

    def quiet_stats(self, timeout: float = 10.0) -> dict[str, Any]:
        """stats(), once the server has no request in flight any more."""
        deadline = time.monotonic() + timeout
        while True:
            stats = self.stats()
            if stats["in_flight"] == 0 or time.monotonic() > deadline:
                return stats
            time.sleep(0.05)

    def stop(self, by_signal: bool = False) -> None:
        if self.proc.poll() is None:
            if by_signal:
                self.proc.terminate()
            else:
                assert self.proc.stdin is not None
                self.proc.stdin.close()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


# -- load generation -------------------------------------------------------------

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


def _wrk_ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if not m:
        raise ValueError(f"unexpected wrk latency {text!r}")
    return float(m.group(1)) * _UNITS[m.group(2)]


def run_wrk(url: str, connections: int, duration: float) -> dict[str, Any]:
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(duration))}s", "--timeout", "10s", "--latency", url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    requests = int(re.search(r"(\d+) requests in ([\d.]+)(\w+)", out).group(1))  # type: ignore[union-attr]
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    dist = dict(re.findall(r"^\s+(50|90|99)%\s+(\S+)\s*$", out, re.MULTILINE))
    if set(dist) != {"50", "90", "99"}:
        raise RuntimeError(f"could not read wrk's latency distribution:\n{out}")
    errors = 0
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if m:
        errors += int(m.group(1))
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if m:
        errors += sum(int(g) for g in m.groups())
    return {
        "requests": requests,
        "errors": errors,
        "rps": rps,
        "latency_ms": {q: _wrk_ms(v) for q, v in dist.items()},
    }


def run_python_load(url: str, connections: int, duration: float) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, str(HERE / "load.py"), url, "--connections", str(connections), "--duration", str(duration)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return json.loads(out)


# -- the run -------------------------------------------------------------------------


def _get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


def _machine() -> dict[str, Any]:
    model = platform.processor()
    try:
        with open("/proc/cpuinfo") as f:
            model = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": model,
        "cpus": os.cpu_count(),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }


def _fmt_row(cells: list[str], widths: list[int]) -> str:
    return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"


def print_table(results: list[dict[str, Any]]) -> None:
    header = ["framework", "pattern", "conc.", "handler", "req/s", "p50 ms", "p99 ms", "CPU ms/req", "errors"]
    rows = [
        [
            r["framework"],
            r["pattern"],
            str(r["concurrency"]),
            r["variant"],
            f"{r['rps']:.1f}",
            f"{r['latency_ms']['50']:.0f}",
            f"{r['latency_ms']['99']:.0f}",
            f"{r['cpu_ms_per_request']:.2f}" if r["cpu_ms_per_request"] is not None else "-",
            str(r["errors"]),
        ]
        for r in results
    ]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    print(_fmt_row(header, widths))
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in rows:
        print(_fmt_row(row, widths))


def aggregate(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (framework, pattern, concurrency, handler): the mean over the
    repetitions of req/s and of the latency percentiles, and the CPU time of
    all repetitions over all their requests."""
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for r in runs:
        groups.setdefault((r["framework"], r["pattern"], r["concurrency"], r["variant"]), []).append(r)
    rows = []
    for (framework, pattern, level, variant), rs in groups.items():
        handled = sum(r["handled"] for r in rs)
        rows.append(
            {
                "framework": framework,
                "pattern": pattern,
                "concurrency": level,
                "variant": variant,
                "rps": sum(r["rps"] for r in rs) / len(rs),
                "latency_ms": {q: sum(r["latency_ms"][q] for r in rs) / len(rs) for q in ("50", "90", "99")},
                "cpu_ms_per_request": sum(r["cpu_seconds"] for r in rs) * 1000 / handled if handled else None,
                "errors": sum(r["errors"] for r in rs),
                "repetitions": len(rs),
            }
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run: one framework, short cells")
    parser.add_argument("--frameworks", default="starlette,aiohttp", help="comma-separated (also: fastapi)")
    parser.add_argument("--patterns", default="dashboard,feed")
    parser.add_argument("--concurrency", default="1,16,64", help="comma-separated connection counts")
    parser.add_argument("--duration", type=float, default=3.0, help="seconds of load per cell (wrk: whole seconds)")
    parser.add_argument("--reps", type=int, default=2, help="repetitions of every cell, interleaved")
    parser.add_argument("--variants", default="naive,betterall,hand", help=f"from {', '.join(VARIANTS)}")
    parser.add_argument(
        "--client",
        choices=("aiohttp", "httpx"),
        default="aiohttp",
        help="the apps' upstream client (default aiohttp's, for every framework)",
    )
    parser.add_argument("--load", choices=("auto", "wrk", "python"), default="auto")
    parser.add_argument("--loop", choices=("uvloop", "asyncio"), default="uvloop", help="the servers' event loop")
    parser.add_argument("--json", metavar="FILE", help="also write every number to FILE")
    args = parser.parse_args(argv)
    if args.quick:
        args.frameworks, args.concurrency, args.duration, args.reps = "aiohttp", "1,16", 1.0, 1
    frameworks = args.frameworks.split(",")
    patterns = args.patterns.split(",")
    levels = [int(c) for c in args.concurrency.split(",")]
    variants = args.variants.split(",")
    unknown = set(variants) - set(VARIANTS)
    if unknown:
        parser.error(f"unknown variants: {sorted(unknown)}")
    load_tool = args.load
    if load_tool == "auto":
        load_tool = "wrk" if shutil.which("wrk") else "python"
    load = run_wrk if load_tool == "wrk" else run_python_load

    machine = _machine()
    print(
        f"Python {machine['python']} on {machine['platform']}, {machine['cpus']} x {machine['cpu']}, "
        f"{machine['date']}\nload generator: {load_tool}, servers on {args.loop}, upstream client: {args.client}, "
        f"{args.reps} x {args.duration:g} s per cell; load average before: {os.getloadavg()[0]:.2f}",
        flush=True,
    )
    upstream = Child([sys.executable, str(UPSTREAM), "--uvloop"])
    print(f"upstream {upstream.info['url']}, latencies (s): {upstream.info['latencies']}", flush=True)
    runs: list[dict[str, Any]] = []
    servers: dict[str, Child] = {}
    try:
        for framework in frameworks:
            servers = {}
            for engine in sorted({VARIANTS[v][0] for v in variants}):
                argv = [sys.executable, str(HERE / "server.py"), "--framework", framework]
                argv += ["--upstream", upstream.info["url"], "--engine", engine, "--loop", args.loop]
                if framework != "aiohttp":
                    argv += ["--client", args.client]
                servers[engine] = Child(argv)

            def url(variant: str, pattern: str) -> str:
                engine, prefix = VARIANTS[variant]
                return f"{servers[engine].info['url']}/{prefix}/{pattern}"

            for pattern in patterns:
                # Every handler gives the same answer; then a short warm-up of each.
                bodies = {v: _get_json(url(v, pattern)) for v in variants}
                if any(body != bodies[variants[0]] for body in bodies.values()):
                    raise RuntimeError(f"{framework} {pattern}: the handlers disagree: {bodies}")
                for variant in variants:
                    load(url(variant, pattern), 4, 1.0)
                for rep in range(args.reps):
                    for i, level in enumerate(levels):
                        # Rotate the order so that drift hits every handler alike.
                        shift = (rep + i) % len(variants)
                        for variant in variants[shift:] + variants[:shift]:
                            server = servers[VARIANTS[variant][0]]
                            before = server.quiet_stats()
                            result = load(url(variant, pattern), level, args.duration)
                            after = server.quiet_stats()  # the requests still in flight count too
                            result.update(
                                framework=framework,
                                pattern=pattern,
                                concurrency=level,
                                variant=variant,
                                handled=after["requests"] - before["requests"],
                                cpu_seconds=after["cpu"] - before["cpu"],
                            )
                            runs.append(result)
                            cpu_ms = result["cpu_seconds"] * 1000 / max(1, result["handled"])
                            print(
                                f"  {framework:<9} {pattern:<9} c={level:<3} {variant:<12} "
                                f"{result['rps']:7.1f} req/s  p50 {result['latency_ms']['50']:6.0f} ms  "
                                f"p99 {result['latency_ms']['99']:6.0f} ms  CPU {cpu_ms:5.2f} ms/req  "
                                f"errors {result['errors']}",
                                flush=True,
                            )
            for server in servers.values():
                server.stop()
            servers = {}
    finally:
        for server in servers.values():
            server.stop()
        upstream.stop(by_signal=True)
    order = {"framework": frameworks, "pattern": patterns, "concurrency": levels, "variant": variants}
    rows = sorted(aggregate(runs), key=lambda row: [order[k].index(row[k]) for k in order])
    print(f"\nload average after: {os.getloadavg()[0]:.2f}; mean of {args.reps} repetition(s):\n")
    print_table(rows)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                {"machine": machine, "args": vars(args), "load": load_tool, "rows": rows, "runs": runs}, f, indent=1
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
