"""ba.fallback: a task's value to fall back on when it fails or runs out of
its own time, on both engines."""

from __future__ import annotations

import asyncio
import functools
import time
from typing import Any

import pytest

from helpers import LIMIT


class UpstreamDown(Exception):
    pass


async def failing() -> str:
    await asyncio.sleep(0)
    raise UpstreamDown("recommendations are down")


async def slow(seconds: float = 5.0) -> str:
    await asyncio.sleep(seconds)
    return "late"


async def user() -> dict[str, int]:
    await asyncio.sleep(0.01)
    return {"id": 7}


def traced(ba: Any) -> tuple[list[Any], Any]:
    traces: list[Any] = []
    return traces, traces.append


async def test_a_failing_task_gives_its_default_and_all_succeeds(ba):
    traces, debug = traced(ba)
    r = await asyncio.wait_for(
        ba.all({"user": user, "recs": ba.fallback(failing, []), "sync": ba.fallback(lambda: 1 / 0, -1)}, debug=debug),
        LIMIT,
    )
    assert r == {"user": {"id": 7}, "recs": [], "sync": -1}
    statuses = {name: t.status for name, t in traces[0].tasks.items()}
    assert statuses == {"user": "fulfilled", "recs": "fallback", "sync": "fallback"}


async def test_the_value_is_computed_from_the_error(ba):
    seen: list[BaseException] = []

    def degraded(exc: Exception) -> dict[str, str]:
        seen.append(exc)
        return {"error": type(exc).__name__}

    r = await asyncio.wait_for(ba.all({"recs": ba.fallback(failing, compute=degraded)}), LIMIT)
    assert r == {"recs": {"error": "UpstreamDown"}}
    assert isinstance(seen[0], UpstreamDown) and str(seen[0]) == "recommendations are down"


async def test_a_task_that_succeeds_is_untouched(ba):
    traces, debug = traced(ba)

    async def fine(self: Any) -> str:
        return f"ran as {self._name}"

    r = await asyncio.wait_for(
        ba.all({"a": ba.fallback(fine, "fallback"), "b": ba.fallback(lambda: "sync", "fallback")}, debug=debug),
        LIMIT,
    )
    assert r == {"a": "ran as a", "b": "sync"}
    assert {t.status for t in traces[0].tasks.values()} == {"fulfilled"}


async def test_its_own_timeout_cancels_it_and_falls_back(ba):
    cancelled: list[str] = []

    async def stuck() -> str:
        try:
            await asyncio.sleep(5)
        except asyncio.CancelledError:
            cancelled.append("stuck")
            raise
        return "late"

    traces, debug = traced(ba)
    t0 = time.monotonic()
    r = await asyncio.wait_for(
        ba.all({"user": user, "recs": ba.fallback(stuck, ["popular"], timeout=0.1)}, debug=debug), LIMIT
    )
    elapsed = time.monotonic() - t0
    assert r == {"user": {"id": 7}, "recs": ["popular"]}
    assert 0.09 <= elapsed < 1.0  # its own deadline, not the 5 s
    assert cancelled == ["stuck"]
    assert traces[0].tasks["recs"].status == "fallback"


async def test_the_timeout_falls_back_whatever_on_says(ba):
    seen: list[BaseException] = []
    r = await asyncio.wait_for(
        ba.all({"x": ba.fallback(slow, compute=lambda e: seen.append(e) or "fb", on=KeyError, timeout=0.05)}),
        LIMIT,
    )
    assert r == {"x": "fb"}
    assert isinstance(seen[0], TimeoutError)


async def test_on_limits_which_errors_fall_back(ba):
    async def bad_request() -> None:
        raise ValueError("a bug, not an outage")

    with pytest.raises(ValueError, match="a bug, not an outage"):
        await asyncio.wait_for(ba.all({"x": ba.fallback(bad_request, None, on=UpstreamDown)}), LIMIT)
    r = await asyncio.wait_for(
        ba.all({"x": ba.fallback(failing, "fb", on=(KeyError, UpstreamDown))}), LIMIT
    )
    assert r == {"x": "fb"}


async def test_a_timeout_error_of_its_own_code_follows_on(ba):
    async def times_out() -> None:
        raise TimeoutError("the driver's own timeout")

    with pytest.raises(TimeoutError, match="the driver's own timeout"):
        await asyncio.wait_for(
            ba.all({"x": ba.fallback(times_out, None, on=UpstreamDown, timeout=5)}), LIMIT
        )


async def test_required_tasks_keep_fail_fast(ba):
    """A required task's failure still fails ``all`` and cancels the
    optional ones: their fallback does not stand in for the graph's own
    cancellation."""
    finished: list[str] = []

    async def optional() -> str:
        try:
            await asyncio.sleep(5)
        finally:
            finished.append("optional")
        return "never"

    async def required() -> None:
        await asyncio.sleep(0.02)
        raise UpstreamDown("the user service is down")

    traces, debug = traced(ba)
    with pytest.raises(UpstreamDown, match="user service"):
        await asyncio.wait_for(
            ba.all({"optional": ba.fallback(optional, "fb", timeout=2), "required": required}, debug=debug), LIMIT
        )
    assert finished == ["optional"]
    assert {n: t.status for n, t in traces[0].tasks.items()} == {"optional": "cancelled", "required": "rejected"}


async def test_the_callers_cancellation_and_timeout_are_not_replaced(ba):
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(ba.all({"x": ba.fallback(slow, "fb")}, timeout=0.05), LIMIT)
    call = asyncio.ensure_future(ba.all({"x": ba.fallback(slow, "fb")}))
    await asyncio.sleep(0.02)
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call


async def test_all_settled_reports_the_fallback_as_fulfilled(ba):
    r = await asyncio.wait_for(
        ba.all_settled({"recs": ba.fallback(failing, []), "bad": failing}), LIMIT
    )
    assert r["recs"] == ba.Fulfilled([])
    assert isinstance(r["bad"], ba.Rejected) and isinstance(r["bad"].reason, UpstreamDown)


async def test_a_sibling_awaiting_it_gets_the_fallback_value(ba):
    async def feed(self: Any) -> list[str]:
        return ["post", *await self.recs]

    r = await asyncio.wait_for(
        ba.all({"recs": ba.fallback(failing, ["popular"]), "feed": feed}), LIMIT
    )
    assert r["feed"] == ["post", "popular"]


async def test_it_falls_back_when_a_sibling_it_awaits_failed(ba):
    """In all_settled, an optional task whose input failed gives its fallback."""

    async def profile(self: Any) -> str:
        return "profile of " + await self.account

    r = await asyncio.wait_for(
        ba.all_settled({"account": failing, "profile": ba.fallback(profile, "anonymous")}), LIMIT
    )
    assert r["profile"] == ba.Fulfilled("anonymous")


async def test_programming_errors_are_never_hidden(ba):
    async def typo(self: Any) -> Any:
        return await self.usr

    async def a(self: Any) -> Any:
        return await self.b

    async def b(self: Any) -> Any:
        return await self.a

    with pytest.raises(ba.UnknownTaskError, match="usr"):
        await asyncio.wait_for(ba.all({"user": user, "x": ba.fallback(typo, None)}), LIMIT)
    with pytest.raises(ba.CycleError):
        await asyncio.wait_for(ba.all({"a": ba.fallback(a, None), "b": ba.fallback(b, None)}), LIMIT)


async def test_flow_end_is_not_caught(ba):
    async def winner(self: Any) -> None:
        self._end("won")

    assert await asyncio.wait_for(ba.flow({"w": ba.fallback(winner, "fb")}), LIMIT) == "won"


async def test_the_calling_rule_applies_to_the_wrapped_function(ba):
    async def fetch(i: int) -> int:
        raise UpstreamDown(str(i))

    tasks = {f"item{i}": ba.fallback(lambda i=i: fetch(i), compute=lambda e: f"fb {e}") for i in range(3)}
    tasks["partial"] = ba.fallback(functools.partial(fetch, 9), compute=lambda e: f"fb {e}")
    r = await asyncio.wait_for(ba.all(tasks), LIMIT)
    assert r == {"item0": "fb 0", "item1": "fb 1", "item2": "fb 2", "partial": "fb 9"}


async def test_a_compute_that_raises_fails_the_task(ba):
    def broken(exc: Exception) -> Any:
        raise RuntimeError("compute broke")

    with pytest.raises(RuntimeError, match="compute broke") as info:
        await asyncio.wait_for(ba.all({"x": ba.fallback(failing, compute=broken)}), LIMIT)
    assert isinstance(info.value.__context__, UpstreamDown)


async def test_an_async_compute_is_refused(ba):
    async def later(exc: Exception) -> str:
        return "never"

    with pytest.raises(TypeError, match="must return the value itself, not an awaitable"):
        await asyncio.wait_for(ba.all({"x": ba.fallback(failing, compute=later)}), LIMIT)


async def test_the_class_form(ba):
    class Page(ba.Graph):
        @ba.task
        async def user(self) -> dict[str, int]:
            return {"id": 7}

        @ba.task
        @ba.fallback(default=[])
        async def recs(self) -> list[str]:
            await self.user
            raise UpstreamDown("down")

        @ba.task
        @ba.fallback(default="slow", timeout=0.05)
        async def ads(self) -> str:
            await asyncio.sleep(5)
            return "ad"

    traces, debug = traced(ba)
    r = await asyncio.wait_for(Page().all(debug=debug), LIMIT)
    assert (r[Page.user], r[Page.recs], r[Page.ads]) == ({"id": 7}, [], "slow")
    assert traces[0].tasks["recs"].status == traces[0].tasks["ads"].status == "fallback"
    assert traces[0].tasks["recs"].deps == ("user",)


async def test_the_chart_shows_the_fallback(ba):
    traces, debug = traced(ba)
    await asyncio.wait_for(ba.all({"ok": user, "recs": ba.fallback(failing, [])}, debug=debug), LIMIT)
    chart = str(traces[0])
    (row,) = [line for line in chart.splitlines() if line.startswith("recs")]
    assert "fallback" in row and "▓" in row and "█" not in row
    assert traces[0].to_chrome_trace()["traceEvents"]  # renders


async def test_in_task_and_in_thread_combine(ba):
    def blocking() -> str:
        raise UpstreamDown("blocking driver down")

    r = await asyncio.wait_for(
        ba.all({
            "thread": ba.fallback(ba.in_thread(blocking), "fb thread"),
            "task": ba.in_task(ba.fallback(failing, "fb task")),
        }),
        LIMIT,
    )
    assert r == {"thread": "fb thread", "task": "fb task"}


def test_bad_arguments_are_refused_where_written(ba):
    with pytest.raises(TypeError, match="either a default value or compute=.*not neither"):
        ba.fallback(failing)
    with pytest.raises(TypeError, match="not both"):
        ba.fallback(failing, 1, compute=str)
    with pytest.raises(TypeError, match="not neither"):
        ba.fallback()
    with pytest.raises(TypeError, match="takes Exception subclasses.*not CancelledError"):
        ba.fallback(failing, 1, on=asyncio.CancelledError)
    with pytest.raises(TypeError, match="not BaseException"):
        ba.fallback(default=1, on=(KeyError, BaseException))
    with pytest.raises(TypeError, match="not 'x'"):
        ba.fallback(failing, 1, on="x")
    with pytest.raises(ValueError, match="timeout must be None or a number of seconds >= 0"):
        ba.fallback(failing, 1, timeout=-1)
    with pytest.raises(TypeError, match="takes a callable, not int"):
        ba.fallback(3, 1)
    with pytest.raises(TypeError, match="compute=...\\) takes a callable, not int"):
        ba.fallback(failing, compute=3)
    coro = failing()
    with pytest.raises(TypeError, match="not a coroutine object"):
        ba.fallback(coro, 1)
    assert coro.cr_frame is None  # closed: no "never awaited" warning


def test_repr(ba):
    assert repr(ba.fallback(failing, [])).startswith("fallback(<function failing")
    assert "compute=<class 'str'>" in repr(ba.fallback(failing, compute=str))


async def test_a_marker_without_its_value_fails_the_task(ba):
    """Hostile code that returns the engines' private marker without a
    value: the task fails with the AttributeError, the call never hangs."""
    from betterall._fallback import _FellBack

    broken = object.__new__(_FellBack)

    async def returns_it() -> Any:
        return broken

    r = await asyncio.wait_for(ba.all_settled({"x": returns_it, "ok": user}), LIMIT)
    assert isinstance(r["x"].reason, AttributeError)
    assert r["ok"] == ba.Fulfilled({"id": 7})
