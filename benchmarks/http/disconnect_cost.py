#!/usr/bin/env python
"""What ``betterall.asgi.CancelOnDisconnect`` costs a request.

    python benchmarks/http/disconnect_cost.py [--requests 1000] [--reps 5]

A trivial Starlette endpoint (it answers "ok") on uvicorn, loaded over one
keep-alive connection by an httpx client in the same process, with and
without the middleware, interleaved. Prints the time per request of each
(median of the repetitions; client and server share the process, so it is
the whole round trip's CPU) and the ratio. A trivial endpoint is the worst
case: the middleware's cost is fixed per request (a watcher task and a few
futures), and a real handler's own work dwarfs it.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "examples"))

import httpx  # noqa: E402
from starlette.applications import Starlette  # noqa: E402
from starlette.middleware import Middleware  # noqa: E402
from starlette.requests import Request  # noqa: E402
from starlette.responses import PlainTextResponse  # noqa: E402
from starlette.routing import Route  # noqa: E402
from webdemo.servers import serve_uvicorn  # noqa: E402

from betterall.asgi import CancelOnDisconnect  # noqa: E402


async def hello(request: Request) -> PlainTextResponse:
    return PlainTextResponse("ok")


def make_app(watch: bool) -> Starlette:
    middleware = [Middleware(CancelOnDisconnect)] if watch else []
    return Starlette(routes=[Route("/", hello)], middleware=middleware)


async def per_request(watch: bool, requests: int) -> float:
    """Microseconds per request, after a warm-up."""
    async with serve_uvicorn(make_app(watch)) as handle:
        async with httpx.AsyncClient(base_url=handle.url) as client:
            for _ in range(200):
                await client.get("/")
            t0 = time.perf_counter()
            for _ in range(requests):
                response = await client.get("/")
                assert response.text == "ok"
            return (time.perf_counter() - t0) / requests * 1e6


async def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--reps", type=int, default=5)
    args = parser.parse_args(argv)
    times: dict[bool, list[float]] = {False: [], True: []}
    for _ in range(args.reps):
        for watch in (False, True):
            times[watch].append(await per_request(watch, args.requests))
    plain, watched = statistics.median(times[False]), statistics.median(times[True])
    print(f"without the middleware: {plain:8.1f} us per request")
    print(f"with CancelOnDisconnect: {watched:8.1f} us per request")
    print(f"ratio: {watched / plain:.3f} (median of {args.reps} interleaved runs of {args.requests})")


if __name__ == "__main__":
    asyncio.run(main())
