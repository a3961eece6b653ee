"""Fixtures of the web integration tests: a real upstream server and real app
servers (uvicorn for Starlette and FastAPI, aiohttp's runner), all on free
loopback ports, all in the test's own event loop (asyncio's or uvloop's).

The apps are the ones in ``examples/`` (imported from there, so the examples
are what is tested); each is built with the ``ba`` fixture's engine-bound
functions, and a ``trace`` hook that collects a ``betterall.Trace`` of every
graph the handlers run. Helpers shared by the test modules are in
``web_helpers.py``.
"""

from __future__ import annotations

import asyncio
import logging
import types
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

# web_helpers puts examples/ on sys.path, so it is imported before webdemo.
from .web_helpers import FAST, FRAMEWORKS, AppServer, start_app  # isort: skip
from webdemo.clients import tls_context  # isort: skip
from webdemo.upstream import Upstream  # isort: skip


@pytest.fixture(autouse=True)
async def _no_loop_errors(caplog: pytest.LogCaptureFixture) -> AsyncIterator[None]:
    """Nothing reaches the event loop's exception handler (a never-retrieved
    task exception, a callback that raised...) and no server logs an error."""
    loop = asyncio.get_running_loop()
    errors: list[dict[str, Any]] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda loop, context: errors.append(context))
    caplog.set_level(logging.ERROR)
    try:
        yield
    finally:
        loop.set_exception_handler(previous)
    assert not errors, f"errors reported to the event loop: {errors}"
    logged = [r for r in caplog.get_records("call") + caplog.get_records("teardown") if r.levelno >= logging.ERROR]
    assert not logged, f"errors logged: {[r.getMessage() for r in logged]}"


@pytest.fixture
def latencies() -> dict[str, float] | None:
    """The upstream's latencies (``None``: its defaults, 50-200 ms). A test
    overrides this fixture, or changes ``upstream.latencies`` directly."""
    return FAST


@pytest.fixture
async def upstream(latencies: dict[str, float] | None) -> AsyncIterator[Upstream]:
    async with Upstream(latencies) as server:
        yield server


@pytest.fixture
def traces() -> list[Any]:
    """Every ``betterall.Trace`` the app's graphs produced, in order."""
    return []


@pytest.fixture(params=FRAMEWORKS)
def framework(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def app_options() -> dict[str, Any]:
    """Extra keyword arguments of the app's ``make_app`` (a test overrides this)."""
    return {}


@pytest.fixture
async def app_server(
    framework: str,
    ba: types.SimpleNamespace,
    upstream: Upstream,
    traces: list[Any],
    app_options: dict[str, Any],
) -> AsyncIterator[AppServer]:
    async with start_app(framework, upstream.url, ba=ba, trace=traces.append, **app_options) as server:
        yield server


@pytest.fixture
async def http(app_server: AppServer) -> AsyncIterator[httpx.AsyncClient]:
    """A client for the app (closed before the app stops)."""
    async with httpx.AsyncClient(base_url=app_server.url, timeout=10, verify=tls_context()) as client:
        yield client
