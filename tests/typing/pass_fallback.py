# pyright: strict
"""ba.fallback keeps the task's types: the result is the task's type or the
fallback's, in the dict form, the decorator form and the class form."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, assert_type

import betterall as ba


async def recommendations() -> list[str]:
    return ["a"]


async def profile(self: ba.Graph) -> dict[str, int]:
    return {"id": 1}


def config() -> dict[str, str]:
    return {}


assert_type(ba.fallback(recommendations, None), Callable[[], Awaitable[list[str] | None]])
assert_type(
    ba.fallback(recommendations, compute=lambda exc: str(exc), on=ConnectionError, timeout=0.2),
    Callable[[], Awaitable[list[str] | str]],
)
assert_type(ba.fallback(config, 0), Callable[[], dict[str, str] | int])
with_context: Callable[[ba.Graph], Awaitable[dict[str, int] | None]] = ba.fallback(
    profile, None, on=(KeyError, TimeoutError)
)


class Page(ba.Graph):
    @ba.task
    @ba.fallback(default=None, timeout=0.1)
    async def recs(self) -> list[str]:
        return ["a"]

    @ba.task
    async def feed(self) -> list[str]:
        recs = await self.recs
        assert_type(recs, list[str] | None)
        return recs or []


async def run() -> None:
    r = await Page().all()
    assert_type(r[Page.recs], list[str] | None)
    d = await ba.all({"recs": ba.fallback(recommendations, [])})
    assert_type(d, dict[str, Any])
