"""Shared fixtures: the suite runs once per engine (C and pure Python), and every
async test once per event loop (asyncio's own and uvloop).

Set ``BETTERALL_TEST_LOOP=asyncio`` or ``=uvloop`` to run the async tests on one
loop only (unset: both), ``BETTERALL_TEST_ENGINE=c`` or ``=python`` to test one
engine only (unset: every engine). Where uvloop is not installed, its variants are skipped.
An async test that cannot run on uvloop takes
``@pytest.mark.skip_on_uvloop(condition, reason="why")``.

In a debug build of the C engine (``BETTERALL_DEBUG_BUILD=1``), the engine's
live objects are counted after every test, and a test that left any alive
fails the session (see ``pytest_runtest_protocol`` below).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
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
# Every engine by default; BETTERALL_TEST_ENGINE=c or =python picks one (the
# sanitizer run only needs the C engine's tests).
_wanted_engine = os.environ.get("BETTERALL_TEST_ENGINE", "").strip()
_live_objects = getattr(ENGINES.get("c"), "_live_objects", None)
if _wanted_engine:
    if _wanted_engine not in ENGINES:
        raise pytest.UsageError(
            f"BETTERALL_TEST_ENGINE={_wanted_engine!r}: expected one of {', '.join(ENGINES)}"
        )
    ENGINES = {_wanted_engine: ENGINES[_wanted_engine]}


def _uvloop_unavailable() -> asyncio.AbstractEventLoop:
    raise AssertionError("never called: the uvloop variants are skipped at collection")


_UVLOOP_MISSING = "uvloop is not installed (it does not support Windows or PyPy)"

_uvloop_factory: Callable[[], asyncio.AbstractEventLoop]
try:
    import uvloop

    _uvloop_factory = uvloop.new_event_loop
except ImportError:  # Windows, PyPy, or simply not installed
    _uvloop_factory = _uvloop_unavailable

_LOOPS: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {
    "asyncio": asyncio.new_event_loop,
    "uvloop": _uvloop_factory,
}


def _selected_loops() -> dict[str, Callable[[], asyncio.AbstractEventLoop]]:
    """The event loops the async tests run on: BETTERALL_TEST_LOOP, else all."""
    wanted = os.environ.get("BETTERALL_TEST_LOOP", "").strip()
    if not wanted:
        return dict(_LOOPS)
    if wanted not in _LOOPS:
        raise pytest.UsageError(
            f"BETTERALL_TEST_LOOP={wanted!r}: expected one of {', '.join(_LOOPS)} (or unset for all)"
        )
    return {wanted: _LOOPS[wanted]}


def pytest_configure(config: pytest.Config) -> None:
    _selected_loops()  # a bad BETTERALL_TEST_LOOP is a usage error, reported once
    config.addinivalue_line(
        "markers",
        "skip_on_uvloop(condition=True, *, reason): skip the uvloop variant of an async "
        "test (when condition is true); reason says why it cannot run on uvloop",
    )


def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> dict[str, Callable[[], asyncio.AbstractEventLoop]]:
    """pytest-asyncio (>= 1.4) runs each async test once per loop factory returned
    here, with the factory's name in the test id (``test_x[uvloop-c]``); with a
    single factory the id part is left out. Every loop runs in debug mode
    (``asyncio_debug = true`` in pyproject.toml)."""
    return _selected_loops()


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
        callspec = getattr(item, "callspec", None)
        factory = callspec.params.get("_asyncio_loop_factory") if callspec is not None else None
        if factory is not _LOOPS["uvloop"]:
            continue
        if factory is _uvloop_unavailable:
            item.add_marker(pytest.mark.skip(reason=_UVLOOP_MISSING))
        for mark in item.iter_markers("skip_on_uvloop"):
            if "reason" not in mark.kwargs:
                raise pytest.UsageError(f"{item.nodeid}: skip_on_uvloop needs reason=")
            if all(mark.args):
                item.add_marker(pytest.mark.skip(reason=mark.kwargs["reason"]))


async def no_other_tasks() -> None:
    """Assert that the only asyncio task still alive is the current one."""
    current = asyncio.current_task()
    others = [t for t in asyncio.all_tasks() if t is not current]
    assert not others, f"tasks left pending: {others}"
