#!/usr/bin/env python
"""One app server of the HTTP benchmark, in its own process.

    python benchmarks/http/server.py --framework starlette --upstream http://127.0.0.1:8001

serves one of the example apps (examples/*_app.py) on a free loopback port,
prints one JSON line ``{"url": ..., "pid": ...}`` on stdout, and runs until
its standard input is closed (then it shuts down cleanly). ``run.py``
starts it; you can too, to point your own load generator at it.

Each line ``stats`` on its standard input gets a JSON line back: the CPU time
the process has used so far (``time.process_time()``, user + system, all
threads), the number of HTTP requests its app has finished handling, and the
number still being handled.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
sys.path.insert(0, str(EXAMPLES))


def _engine(name: str) -> Any:
    try:
        import betterall
    except ImportError:  # not installed: use the checkout
        sys.path.insert(0, str(EXAMPLES.parent))
        import betterall
    engines = betterall._engines()
    if name not in engines:
        raise SystemExit(f"engine {name!r} is not available here (have: {', '.join(engines)})")
    return engines[name]


class Meter:
    """Counts the HTTP requests an app handles (as ASGI middleware, or as an
    aiohttp middleware with :meth:`aiohttp_middleware`)."""

    def __init__(self, app: Any = None) -> None:
        self.app = app
        self.finished = 0
        self.in_flight = 0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        self.in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1
            self.finished += 1

    def aiohttp_middleware(self) -> Any:
        from aiohttp import web

        @web.middleware
        async def count(request: web.Request, handler: Callable[[web.Request], Awaitable[Any]]) -> Any:
            self.in_flight += 1
            try:
                return await handler(request)
            finally:
                self.in_flight -= 1
                self.finished += 1

        return count


async def _serve(args: argparse.Namespace) -> None:
    from webdemo.servers import serve_aiohttp, serve_uvicorn

    ba = _engine(args.engine)
    meter = Meter()
    if args.framework == "aiohttp":
        import aiohttp_app

        app = aiohttp_app.make_app(args.upstream, ba=ba)
        app.middlewares.insert(0, meter.aiohttp_middleware())
        server = serve_aiohttp(app, handler_cancellation=True)
    else:
        import importlib

        module: Any = importlib.import_module(f"{args.framework}_app")
        options = {} if args.client is None else {"client": args.client}
        meter.app = module.make_app(args.upstream, ba=ba, **options)
        server = serve_uvicorn(meter, backlog=4096)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    def answer_stdin() -> None:
        for line in sys.stdin:
            if line.strip() == "stats":
                stats = {"cpu": time.process_time(), "requests": meter.finished, "in_flight": meter.in_flight}
                print(json.dumps(stats), flush=True)
        loop.call_soon_threadsafe(stop.set)

    async with server as handle:
        print(json.dumps({"url": handle.url, "pid": os.getpid()}), flush=True)
        threading.Thread(target=answer_stdin, daemon=True).start()
        await stop.wait()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--framework", choices=("starlette", "fastapi", "aiohttp"), required=True)
    parser.add_argument("--upstream", required=True, help="the upstream's base URL")
    parser.add_argument("--engine", default="c", help="betterall engine: c (default) or python")
    parser.add_argument("--client", choices=("httpx", "aiohttp"), help="the upstream client (default: the app's)")
    parser.add_argument("--loop", choices=("uvloop", "asyncio"), default="uvloop")
    args = parser.parse_args(argv)
    loop_factory = None
    if args.loop == "uvloop":
        import uvloop

        loop_factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        runner.run(_serve(args))


if __name__ == "__main__":
    main()
