"""Shared fixtures: the suite runs once per engine (C and pure Python)."""

from __future__ import annotations

import asyncio
import gc
import inspect
import os
import types
from typing import Any

# Every event loop of the suite runs in asyncio debug mode (slow callbacks,
# never-retrieved exceptions and never-awaited coroutines are reported; with
# filterwarnings=error in pyproject.toml they fail the test).
os.environ["PYTHONASYNCIODEBUG"] = "1"

import pytest

import betterall

ENGINES = betterall._engines()


@pytest.fixture(params=list(ENGINES), scope="session")
def engine_name(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture(scope="session")
def ba(engine_name: str) -> types.SimpleNamespace:
    """The public API of ``betterall``, bound to one engine.

    Tests use it exactly as users use the module: ``await ba.all({...})``,
    ``ba.CycleError``, ``ba.Settled``...
    """
    engine = ENGINES[engine_name]
    api = {name: getattr(betterall, name) for name in betterall.__all__}
    api.update(all=engine.all, all_settled=engine.all_settled, flow=engine.flow)
    return types.SimpleNamespace(ENGINE=engine_name, **api)


_live_objects = getattr(ENGINES.get("c"), "_live_objects", None)
_DEBUG_BUILD = _live_objects is not None and _live_objects() is not None


_leaks: list[tuple[str, dict[str, int]]] = []
_counts: list[dict[str, int]] = []  # live objects after the last test


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> object:
    """In a debug build of the C engine, no test leaves an engine object alive.

    Counted around the whole protocol of a test (set-up, call, tear-down of
    every fixture, its event loop included), then reported at the end."""
    if not _DEBUG_BUILD:
        yield
        return
    if not _counts:
        gc.collect()
        _counts.append(_live_objects())
    yield
    gc.collect()  # one collection per test: the next test starts from here
    before, after = _counts[-1], _live_objects()
    _counts[-1] = after
    grown = {kind: after[kind] - before[kind] for kind in after if after[kind] > before[kind]}
    if grown:
        _leaks.append((item.nodeid, grown))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _leaks:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _DEBUG_BUILD:
        terminalreporter.write_line(
            f"C engine debug build: live engine objects checked after every test;"
            f" {len(_leaks)} test(s) left some alive"
        )
    for nodeid, grown in _leaks:
        terminalreporter.write_line(f"LEAK {nodeid}: {grown}", red=True)


@pytest.fixture
async def _asyncio_hygiene() -> object:
    """Async tests run on a loop in debug mode and leave no task behind."""
    assert asyncio.get_running_loop().get_debug(), "asyncio debug mode is off"
    yield
    current = asyncio.current_task()
    leftover = [t for t in asyncio.all_tasks() if t is not current and not t.done()]
    assert not leftover, f"tasks left pending after the test: {leftover}"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        function = getattr(item, "function", None)
        if inspect.iscoroutinefunction(function):
            item.fixturenames.insert(0, "_asyncio_hygiene")


async def no_other_tasks() -> None:
    """Assert that the only asyncio task still alive is the current one."""
    current = asyncio.current_task()
    others = [t for t in asyncio.all_tasks() if t is not current]
    assert not others, f"tasks left pending: {others}"
