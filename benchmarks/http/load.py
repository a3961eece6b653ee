#!/usr/bin/env python
"""A closed-loop HTTP load generator, for machines without ``wrk``.

    python benchmarks/http/load.py http://127.0.0.1:8000/betterall/feed --connections 16 --duration 5

``--connections`` workers each send the next request on their own kept-alive
connection as soon as the previous answer has arrived (as ``wrk`` does), for
``--duration`` seconds. Prints one JSON line: requests, errors, seconds,
requests per second and latency percentiles in milliseconds. It runs on
uvloop when it is installed; it uses much more CPU than ``wrk``, so on a small
machine prefer ``wrk`` (``apt-get install wrk``), which ``run.py`` picks when
it is on the PATH.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

import aiohttp


def percentile(sorted_values: list[float], q: float) -> float:
    """The q-th percentile (0-100) of sorted values, nearest-rank."""
    if not sorted_values:
        return float("nan")
    rank = max(1, round(q / 100 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


async def _load(url: str, connections: int, duration: float) -> dict[str, object]:
    latencies: list[float] = []
    errors = 0
    connector = aiohttp.TCPConnector(limit=connections)
    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        start = time.perf_counter()
        deadline = start + duration

        async def worker() -> None:
            nonlocal errors
            while time.perf_counter() < deadline:
                t0 = time.perf_counter()
                try:
                    async with session.get(url) as response:
                        await response.read()
                        ok = response.status < 400
                except (aiohttp.ClientError, TimeoutError):
                    ok = False
                if ok:
                    latencies.append(time.perf_counter() - t0)
                else:
                    errors += 1

        await asyncio.gather(*(worker() for _ in range(connections)))
        elapsed = time.perf_counter() - start
    latencies.sort()
    return {
        "requests": len(latencies),
        "errors": errors,
        "seconds": elapsed,
        "rps": len(latencies) / elapsed,
        "latency_ms": {str(q): percentile(latencies, q) * 1000 for q in (50, 90, 99)},
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("url")
    parser.add_argument("--connections", type=int, default=10)
    parser.add_argument("--duration", type=float, default=5.0)
    args = parser.parse_args(argv)
    try:
        import uvloop

        loop_factory = uvloop.new_event_loop
    except ImportError:
        loop_factory = None
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        result = runner.run(_load(args.url, args.connections, args.duration))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
