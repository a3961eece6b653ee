"""Helpers of the web integration tests (imported by conftest.py and the tests)."""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
if str(EXAMPLES) not in sys.path:
    sys.path.insert(0, str(EXAMPLES))

import aiohttp_app  # noqa: E402
import fastapi_app  # noqa: E402
import starlette_app  # noqa: E402
from webdemo.servers import serve_aiohttp, serve_uvicorn  # noqa: E402

FRAMEWORKS = ("starlette", "fastapi", "aiohttp")

#: Latencies for tests that check behaviour, not speed: every call answers
#: after 10 ms.
FAST = dict.fromkeys(
    ("user", "config", "profile", "posts", "comments", "likes", "trending", "recommendations", "article"), 0.01
)


class AppServer:
    """An app running on a loopback port: ``url``, ``framework``, ``handle``
    (the server helper's handle) and ``upstream_client`` (the app's own
    client to the upstream, which counts its calls in flight)."""

    def __init__(self, framework: str, app: Any, handle: Any) -> None:
        self.framework = framework
        self.app = app
        self.handle = handle
        self.url: str = handle.url

    @property
    def upstream_client(self) -> Any:
        if self.framework == "aiohttp":
            return self.app[aiohttp_app.UPSTREAM]
        return self.app.state.upstream


@contextlib.asynccontextmanager
async def start_app(
    framework: str, upstream_url: str, *, ba: Any = None, trace: Any = None, **app_options: Any
) -> AsyncIterator[AppServer]:
    """Start one of the example apps (its lifespan included) on a free port.

    ``ba``: the engine-bound API to build the app with (``None``: the app's
    default, for tests that run no graph); ``app_options`` go to its
    ``make_app``."""
    options: dict[str, Any] = {"trace": trace, **app_options}
    if ba is not None:
        options["ba"] = ba
    if framework == "aiohttp":
        app = aiohttp_app.make_app(upstream_url, **options)
        async with serve_aiohttp(app, handler_cancellation=True) as handle:
            yield AppServer(framework, app, handle)
    else:
        module = starlette_app if framework == "starlette" else fastapi_app
        app = module.make_app(upstream_url, **options)
        async with serve_uvicorn(app) as handle:
            yield AppServer(framework, app, handle)


async def eventually(predicate: Callable[[], bool], what: str, timeout: float = 5.0) -> float:
    """Wait until ``predicate()`` is true (polling); return how long it took."""
    t0 = time.perf_counter()
    while not predicate():
        if time.perf_counter() - t0 > timeout:
            raise AssertionError(f"still not true after {timeout} s: {what}")
        await asyncio.sleep(0.01)
    return time.perf_counter() - t0


async def timed(request: Awaitable[httpx.Response]) -> tuple[float, httpx.Response]:
    t0 = time.perf_counter()
    response = await request
    return time.perf_counter() - t0, response
