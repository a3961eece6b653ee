"""Shared fixtures: the suite runs once per engine (C and pure Python)."""

from __future__ import annotations

import asyncio
import inspect
import os
import types

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
