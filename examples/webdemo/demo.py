"""The driver of the examples' ``main()``: start the upstream and an app on
free loopback ports, time its handlers over real HTTP, print, exit."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import httpx

from .handlers import PATTERNS, VARIANTS
from .upstream import Upstream, critical_paths

ROUNDS = 3


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:4.0f} ms"


async def _timed_get(client: httpx.AsyncClient, path: str) -> tuple[float, httpx.Response]:
    t0 = time.perf_counter()
    response = await client.get(path)
    elapsed = time.perf_counter() - t0
    response.raise_for_status()
    return elapsed, response


async def _demo(title: str, serve: Callable[[str], AbstractAsyncContextManager[Any]]) -> None:
    async with Upstream() as upstream, serve(upstream.url) as app:
        print(f"{title}\napp {app.url}, upstream {upstream.url}")
        lat = upstream.latencies
        print("upstream latencies: " + ", ".join(f"{name} {v * 1000:.0f} ms" for name, v in lat.items()))
        paths = critical_paths(lat)
        async with httpx.AsyncClient(base_url=app.url, timeout=10) as client:
            for variant in VARIANTS:  # warm-up: connections, imports, first-call costs
                for pattern in PATTERNS:
                    await client.get(f"/{variant}/{pattern}")
            times: dict[tuple[str, str], list[float]] = {}
            bodies: dict[tuple[str, str], Any] = {}
            for _ in range(ROUNDS):  # interleaved, so noise hits every handler alike
                for pattern in PATTERNS:
                    for variant in VARIANTS:
                        elapsed, response = await _timed_get(client, f"/{variant}/{pattern}")
                        times.setdefault((pattern, variant), []).append(elapsed)
                        bodies[pattern, variant] = response.json()

            print(f"\nmedian of {ROUNDS} requests per handler:")
            for pattern in PATTERNS:
                naive = statistics.median(times[pattern, "naive"])
                print(
                    f"  {pattern}: critical path {_ms(paths[pattern]['critical'])}, "
                    f"gather-then-await in theory {_ms(paths[pattern]['naive'])}"
                )
                for variant in VARIANTS:
                    median = statistics.median(times[pattern, variant])
                    same = "same JSON" if bodies[pattern, variant] == bodies[pattern, "naive"] else "DIFFERENT JSON"
                    print(f"    {variant:<10} {_ms(median)}  {naive / median:4.2f}x as fast as naive, {same}")

            upstream.latencies["recommendations"] = 1.0
            budget = 0.25
            elapsed, response = await _timed_get(client, f"/partial/dashboard?budget={budget}")
            print(
                f"\n/partial/dashboard with a {_ms(budget).strip()} budget, recommendations taking 1 s:"
                f" {_ms(elapsed).strip()}, degraded: {response.json()['degraded']}"
            )
            await asyncio.sleep(0)
            for attempt in ("first", "second"):
                elapsed, response = await _timed_get(client, "/articles/42")
                print(f"/articles/42, {attempt} request: from {response.json()['source']} in {_ms(elapsed).strip()}")
            response = await client.get("/betterall/dashboard?timeout=0.1")
            print(f"/betterall/dashboard?timeout=0.1 (critical path 200 ms): HTTP {response.status_code}")
            upstream.failures.add("config")
            response = await client.get("/betterall/dashboard")
            print(f"/betterall/dashboard with the config service down: HTTP {response.status_code} {response.json()}")
        print(f"upstream calls still in flight: {upstream.in_flight}")


def run_demo(title: str, serve: Callable[[str], AbstractAsyncContextManager[Any]]) -> None:
    """Run the demo on asyncio's default event loop (uvloop if ``--uvloop`` is given)."""
    import sys

    loop_factory = None
    if "--uvloop" in sys.argv[1:]:
        import uvloop

        loop_factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        runner.run(_demo(title, serve))
