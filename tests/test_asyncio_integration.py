"""How graph tasks behave as asyncio tasks.

Contract tests (docs/api.md: "Every task starts at once...", "Each task, synchronous
or not, runs as its own asyncio task...", the context table, ``ba.in_task``):
start order, result order, the critical path, contextvars, the object that
``asyncio.current_task()`` returns, asyncio's own tools (timeout, wait_for,
TaskGroup, shield, gather) used inside tasks, zero-round-trip sibling awaits,
non-coroutine awaitables, cleanup on every kind of exit, and nested graphs.

Only the public API is used: nothing here assumes that a graph task is an
``asyncio.Task`` or appears in ``asyncio.all_tasks()``, except under
``ba.in_task``.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import io
import sys
import time
from typing import Any

import pytest

from conftest import no_other_tasks

request_id: contextvars.ContextVar[str] = contextvars.ContextVar(
    "request_id", default="unset"
)


def set_request_id(value: str) -> contextvars.Token[str]:
    return request_id.set(value)


async def value_after(delay: float, value: Any) -> Any:
    await asyncio.sleep(delay)
    return value


async def no_suspension(value: Any) -> Any:
    """A coroutine that finishes without ever yielding to the loop."""
    return value


class Ticker:
    """A plain asyncio.Task that counts event-loop iterations.

    Between two reads of ``count``, the count only changes if the reader
    yielded to the event loop.
    """

    def __init__(self) -> None:
        self.count = 0
        self._stop = False
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while not self._stop:
            self.count += 1
            await asyncio.sleep(0)

    async def __aenter__(self) -> Ticker:
        self._task = asyncio.create_task(self._run(), name="ticker")
        await asyncio.sleep(0)  # let it start
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._stop = True
        assert self._task is not None
        await self._task


# -- start order -----------------------------------------------------------


async def test_async_tasks_start_in_mapping_order_until_first_suspension(ba):
    """Each task runs until its first real suspension before the next starts."""
    events: list[str] = []

    def make(name: str):
        async def task(self):
            events.append(f"{name}0")
            await asyncio.sleep(0)
            events.append(f"{name}1")
            return name

        return task

    # Mapping order on purpose differs from alphabetical order.
    r = await ba.all({"c": make("c"), "a": make("a"), "b": make("b")})
    assert events[:3] == ["c0", "a0", "b0"]
    assert sorted(events[3:]) == ["a1", "b1", "c1"]
    assert r == {"c": "c", "a": "a", "b": "b"}


async def test_await_without_suspension_does_not_let_next_task_start(ba):
    """Awaiting a coroutine that never yields is not a suspension: the next task waits."""
    events: list[str] = []

    async def a(self):
        events.append("a0")
        events.append(await no_suspension("a-mid"))
        await asyncio.sleep(0)
        events.append("a1")

    async def b(self):
        events.append("b0")
        await asyncio.sleep(0)
        events.append("b1")

    await ba.all({"a": a, "b": b})
    assert events[:3] == ["a0", "a-mid", "b0"]


async def test_awaiting_finished_sibling_at_start_is_not_a_suspension(ba):
    """A task that awaits an already finished sibling goes on before the next task starts."""
    events: list[str] = []

    def first():
        events.append("first")
        return 1

    async def second(self):
        events.append("second0")
        value = await self.first
        events.append(f"second-got-{value}")
        await asyncio.sleep(0)
        events.append("second1")

    async def third(self):
        events.append("third0")

    await ba.all({"first": first, "second": second, "third": third})
    assert events[:4] == ["first", "second0", "second-got-1", "third0"]


async def test_sync_tasks_run_in_mapping_order(ba):
    """Synchronous tasks run in the mapping's order."""
    events: list[str] = []
    r = await ba.all(
        {
            "z": lambda: events.append("z") or "Z",
            "m": lambda self: events.append("m") or "M",
            "a": lambda: events.append("a") or "A",
        }
    )
    assert events == ["z", "m", "a"]
    assert r == {"z": "Z", "m": "M", "a": "A"}


async def test_mixed_sync_and_async_tasks_start_in_mapping_order(ba):
    """Sync and async tasks interleave at start exactly in the mapping's order."""
    events: list[str] = []

    async def b(self):
        events.append("b0")
        await asyncio.sleep(0)
        events.append("b1")

    def c(self):
        events.append("c")

    async def d():
        events.append("d0")
        await asyncio.sleep(0)
        events.append("d1")

    await ba.all({"a": lambda: events.append("a"), "b": b, "c": c, "d": d})
    assert events[:4] == ["a", "b0", "c", "d0"]


# -- result order ------------------------------------------------------------


async def test_all_results_keep_mapping_order_when_finishing_in_reverse(ba):
    """ba.all's dict follows the mapping's order, not the finishing order."""
    finished: list[str] = []

    def make(name: str, delay: float):
        async def task():
            await asyncio.sleep(delay)
            finished.append(name)
            return name.upper()

        return task

    r = await ba.all(
        {"a": make("a", 0.06), "b": make("b", 0.03), "c": make("c", 0.0)}
    )
    assert finished == ["c", "b", "a"]
    assert list(r) == ["a", "b", "c"]
    assert list(r.values()) == ["A", "B", "C"]


async def test_all_settled_results_keep_mapping_order(ba):
    """ba.all_settled's dict follows the mapping's order, not the finishing order."""

    async def fails_late():
        await asyncio.sleep(0.05)
        raise ValueError("late")

    r = await ba.all_settled(
        {
            "slow": fails_late,
            "mid": lambda: value_after(0.02, "mid"),
            "fast": lambda: "fast",
        }
    )
    assert list(r) == ["slow", "mid", "fast"]
    assert r["mid"] == ba.Settled.fulfilled("mid")
    assert r["fast"] == ba.Settled.fulfilled("fast")
    assert r["slow"].status == "rejected"
    assert isinstance(r["slow"].reason, ValueError)


# -- critical path -------------------------------------------------------------


async def test_dashboard_finishes_on_the_critical_path(ba):
    """user 100 ms -> profile 100 ms, config 150 ms: about 200 ms, not gather's 250 ms."""
    profile_started: list[float] = []

    async def user():
        await asyncio.sleep(0.1)
        return {"id": 7}

    async def config():
        await asyncio.sleep(0.15)
        return "cfg"

    async def profile(self):
        u = await self.user
        profile_started.append(time.monotonic())
        await asyncio.sleep(0.1)
        return ("profile", u["id"])

    start = time.monotonic()
    r = await ba.all({"user": user, "config": config, "profile": profile})
    elapsed = time.monotonic() - start
    assert r == {"user": {"id": 7}, "config": "cfg", "profile": ("profile", 7)}

    # The naive code: gather the first level, then the dependent call.
    t0 = time.monotonic()
    u, c = await asyncio.gather(user(), config())
    await asyncio.sleep(0.1)  # profile
    naive = time.monotonic() - t0

    assert naive >= 0.245
    # profile cannot start before user is done, and does not wait for config.
    assert 0.095 <= profile_started[0] - start < 0.14
    assert elapsed >= 0.19
    assert elapsed < 0.24, f"graph took {elapsed:.3f} s, naive {naive:.3f} s"


async def test_dependent_task_starts_when_its_dependency_ends(ba):
    """A task waiting on a sibling resumes right after it, not after unrelated siblings."""
    marks: dict[str, float] = {}

    async def fast():
        await asyncio.sleep(0.05)
        return 1

    async def slow():
        await asyncio.sleep(0.2)
        return 2

    async def dependent(self):
        await self.fast
        marks["resumed"] = time.monotonic()
        return 3

    t0 = time.monotonic()
    await ba.all({"slow": slow, "fast": fast, "dependent": dependent})
    resumed = marks["resumed"] - t0
    assert 0.045 <= resumed < 0.15


async def test_critical_path_beats_levels_by_a_wide_margin(ba):
    """user 50 ms -> profile 150 ms, config 200 ms: ~200 ms, well under levels' 350 ms."""

    async def profile(self):
        await self.user
        await asyncio.sleep(0.15)
        return "p"

    t0 = time.monotonic()
    await ba.all(
        {
            "user": lambda: value_after(0.05, "u"),
            "config": lambda: value_after(0.2, "c"),
            "profile": profile,
        }
    )
    elapsed = time.monotonic() - t0
    assert 0.195 <= elapsed < 0.8 * 0.35


# -- contextvars -----------------------------------------------------------------


async def test_tasks_see_callers_context_variables(ba):
    """Async and sync tasks see the caller's context variables."""
    token = set_request_id("req-1")
    try:

        async def async_task():
            await asyncio.sleep(0)
            return request_id.get()

        r = await ba.all(
            {
                "async_task": async_task,
                "sync_task": lambda: request_id.get(),
                "with_context": lambda self: request_id.get(),
            }
        )
        assert r == {"async_task": "req-1", "sync_task": "req-1", "with_context": "req-1"}
    finally:
        request_id.reset(token)


async def test_async_task_context_change_does_not_leak(ba):
    """A var.set in one async task is not seen by siblings nor by the caller."""
    token = set_request_id("caller")
    try:

        async def setter():
            request_id.set("setter")
            await asyncio.sleep(0.01)
            return request_id.get()

        async def reader():
            # Starts after setter has set its value.
            first = request_id.get()
            await asyncio.sleep(0.02)  # setter has finished by now
            return first, request_id.get()

        r = await ba.all({"setter": setter, "reader": reader})
        assert r == {"setter": "setter", "reader": ("caller", "caller")}
        assert request_id.get() == "caller"
    finally:
        request_id.reset(token)


async def test_sync_task_context_change_does_not_leak(ba):
    """A var.set in a sync task is not seen by siblings nor by the caller."""
    token = set_request_id("caller")
    try:

        def setter():
            request_id.set("setter")
            return request_id.get()

        r = await ba.all(
            {
                "setter": setter,
                "sync_reader": lambda: request_id.get(),
                "async_reader": lambda: no_suspension(request_id.get()),
            }
        )
        assert r == {"setter": "setter", "sync_reader": "caller", "async_reader": "caller"}
        assert request_id.get() == "caller"
    finally:
        request_id.reset(token)


async def test_context_change_persists_across_own_awaits(ba):
    """A task's own var.set survives its awaits of sleeps and of siblings."""

    async def dep():
        request_id.set("dep")
        await asyncio.sleep(0.02)
        return request_id.get()

    async def own(self):
        request_id.set("own")
        seen = [request_id.get()]
        await asyncio.sleep(0.01)
        seen.append(request_id.get())
        seen.append(await self.dep)
        seen.append(request_id.get())
        return seen

    r = await ba.all({"dep": dep, "own": own})
    assert r["own"] == ["own", "own", "dep", "own"]
    assert request_id.get() == "unset"


async def test_context_isolated_in_all_settled_and_flow(ba):
    """all_settled and flow give each task its own copy of the caller's context too."""
    token = set_request_id("caller")
    try:

        def setter():
            request_id.set("setter")
            return "set"

        async def ender(self):
            await asyncio.sleep(0.01)
            self._end(request_id.get())

        settled = await ba.all_settled({"setter": setter, "reader": lambda: request_id.get()})
        assert settled["reader"] == ba.Settled.fulfilled("caller")
        ended = await ba.flow({"setter": setter, "ender": ender})
        assert ended == "caller"
        assert request_id.get() == "caller"
    finally:
        request_id.reset(token)


# -- asyncio.current_task() inside a task --------------------------------------


async def test_current_task_has_the_task_interface(ba):
    """current_task() in a task: name, done/cancelled/cancelling, loop, coro, cancel/uncancel."""
    loop = asyncio.get_running_loop()
    seen: dict[str, Any] = {}

    async def worker():
        t = asyncio.current_task()
        assert t is not None
        seen["name"] = t.get_name()
        seen["done"] = t.done()
        seen["cancelled"] = t.cancelled()
        seen["cancelling"] = t.cancelling()
        seen["loop"] = t.get_loop()
        seen["get_coro"] = callable(t.get_coro)
        t.get_coro()
        seen["uncancel"] = callable(getattr(t, "uncancel", None))
        seen["cancel"] = callable(getattr(t, "cancel", None))
        await asyncio.sleep(0)
        seen["same_after_await"] = asyncio.current_task() is t
        seen["done_after_await"] = t.done()
        return "ok"

    r = await ba.all({"worker": worker})
    assert r == {"worker": "ok"}
    assert seen == {
        "name": "worker",
        "done": False,
        "cancelled": False,
        "cancelling": 0,
        "loop": loop,
        "get_coro": True,
        "uncancel": True,
        "cancel": True,
        "same_after_await": True,
        "done_after_await": False,
    }


async def test_current_task_differs_per_task_and_is_named_after_it(ba):
    """Each task, sync or async, has its own current_task() named after it."""
    tasks: dict[str, Any] = {}

    async def a(self):
        tasks["a"] = asyncio.current_task()
        await asyncio.sleep(0)

    def b(self):
        tasks["b"] = asyncio.current_task()

    async def c():
        tasks["c"] = asyncio.current_task()

    await ba.all({"a": a, "b": b, "c": c})
    assert {name: t.get_name() for name, t in tasks.items()} == {"a": "a", "b": "b", "c": "c"}
    assert len({id(t) for t in tasks.values()}) == 3
    assert all(t is not asyncio.current_task() for t in tasks.values())


async def test_current_task_get_context_holds_the_tasks_variables(ba):
    """current_task().get_context() exists and is the context the task runs in."""

    async def worker():
        request_id.set("worker")
        ctx = asyncio.current_task().get_context()
        return isinstance(ctx, contextvars.Context), ctx.get(request_id)

    r = await ba.all({"worker": worker})
    assert r == {"worker": (True, "worker")}


async def test_current_task_result_and_exception_while_running(ba):
    """result() and exception() of the running task raise InvalidStateError."""

    async def worker():
        t = asyncio.current_task()
        with pytest.raises(asyncio.InvalidStateError):
            t.result()
        with pytest.raises(asyncio.InvalidStateError):
            t.exception()
        return "ok"

    assert await ba.all({"worker": worker}) == {"worker": "ok"}


async def test_current_task_done_callback_runs_after_task_finishes(ba):
    """add_done_callback on current_task() is called once, after the task finishes."""
    calls: list[tuple[Any, bool]] = []
    holder: dict[str, Any] = {}

    async def worker():
        t = asyncio.current_task()
        holder["t"] = t
        t.add_done_callback(lambda task: calls.append((task, task.done())))
        await asyncio.sleep(0.01)
        holder["calls_while_running"] = list(calls)
        return "ok"

    r = await ba.all({"worker": worker, "other": lambda: value_after(0.03, 1)})
    assert r == {"worker": "ok", "other": 1}
    for _ in range(5):  # the callback may be scheduled with call_soon
        if calls:
            break
        await asyncio.sleep(0)
    assert holder["calls_while_running"] == []
    assert len(calls) == 1
    task, was_done = calls[0]
    assert task is holder["t"]
    assert was_done is True


# -- asyncio tools inside a task ---------------------------------------------------


async def test_inner_timeout_expiring_is_caught_inside_task(ba):
    """An asyncio.timeout() that expires in a task raises TimeoutError there; siblings go on."""

    async def guarded():
        try:
            async with asyncio.timeout(0.03):
                await asyncio.sleep(1)
        except TimeoutError:
            return "fallback", asyncio.current_task().cancelling()
        return "no timeout", None

    async def sibling():
        await asyncio.sleep(0.08)
        return "sibling"

    t0 = time.monotonic()
    r = await ba.all({"guarded": guarded, "sibling": sibling})
    assert r == {"guarded": ("fallback", 0), "sibling": "sibling"}
    assert time.monotonic() - t0 < 0.5


async def test_inner_timeout_not_expiring(ba):
    """An asyncio.timeout() that does not expire lets the task's value through."""

    async def guarded():
        async with asyncio.timeout(1):
            await asyncio.sleep(0.01)
        return "done"

    assert await ba.all({"guarded": guarded}) == {"guarded": "done"}


async def test_inner_timeout_uncaught_fails_only_that_task_in_all_settled(ba):
    """An uncaught inner TimeoutError rejects that task; its siblings still fulfil."""

    async def guarded():
        async with asyncio.timeout(0.02):
            await asyncio.sleep(1)

    r = await ba.all_settled({"guarded": guarded, "sibling": lambda: value_after(0.06, "s")})
    assert r["guarded"].status == "rejected"
    assert isinstance(r["guarded"].reason, TimeoutError)
    assert r["sibling"] == ba.Settled.fulfilled("s")


async def test_inner_timeout_uncaught_propagates_from_all(ba):
    """An uncaught inner TimeoutError is the task's error, raised by ba.all."""

    async def guarded():
        async with asyncio.timeout(0.02):
            await asyncio.sleep(1)

    with pytest.raises(TimeoutError):
        await ba.all({"guarded": guarded, "sibling": lambda: value_after(1, "s")})
    await no_other_tasks()


async def test_wait_for_inside_task_expiring(ba):
    """asyncio.wait_for that expires in a task raises TimeoutError there."""

    async def guarded():
        try:
            await asyncio.wait_for(asyncio.sleep(1), 0.03)
        except TimeoutError:
            return "fallback"
        return "no timeout"

    r = await ba.all({"guarded": guarded, "sibling": lambda: value_after(0.05, "s")})
    assert r == {"guarded": "fallback", "sibling": "s"}


async def test_wait_for_inside_task_not_expiring(ba):
    """asyncio.wait_for that does not expire gives the awaited value."""

    async def guarded():
        return await asyncio.wait_for(value_after(0.01, 42), 1)

    assert await ba.all({"guarded": guarded}) == {"guarded": 42}


async def test_taskgroup_inside_task_results(ba):
    """asyncio.TaskGroup inside a task runs its children and gives their results."""

    async def grouped():
        async with asyncio.TaskGroup() as tg:
            x = tg.create_task(value_after(0.02, 1))
            y = tg.create_task(value_after(0.01, 2))
        return x.result() + y.result()

    assert await ba.all({"grouped": grouped, "other": lambda: 3}) == {
        "grouped": 3,
        "other": 3,
    }


async def test_taskgroup_inside_task_failing_child_cancels_sibling(ba):
    """A failing TaskGroup child cancels its sibling; the ExceptionGroup propagates from ba.all."""
    child_cancelled: list[bool] = []
    graph_sibling_finally: list[str] = []

    async def failing_child():
        await asyncio.sleep(0.02)
        raise ValueError("child failed")

    async def slow_child():
        try:
            await asyncio.sleep(1)
        except asyncio.CancelledError:
            child_cancelled.append(True)
            raise

    async def grouped():
        async with asyncio.TaskGroup() as tg:
            tg.create_task(failing_child())
            tg.create_task(slow_child())

    async def other():
        try:
            await asyncio.sleep(1)
        finally:
            graph_sibling_finally.append("other")

    t0 = time.monotonic()
    with pytest.raises(ExceptionGroup) as info:
        await ba.all({"grouped": grouped, "other": other})
    assert time.monotonic() - t0 < 0.5
    assert child_cancelled == [True]
    assert graph_sibling_finally == ["other"]
    assert len(info.value.exceptions) == 1
    assert isinstance(info.value.exceptions[0], ValueError)
    await no_other_tasks()


async def test_taskgroup_failure_while_awaiting_sibling_does_not_cancel_sibling(ba):
    """A TaskGroup child failing while its body awaits a sibling cancels the wait, not the sibling."""

    async def failing_child():
        await asyncio.sleep(0.02)
        raise ValueError("child failed")

    async def grouped(self):
        async with asyncio.TaskGroup() as tg:
            tg.create_task(failing_child())
            await self.slow

    r = await ba.all_settled({"slow": lambda: value_after(0.06, "slow"), "grouped": grouped})
    assert r["slow"] == ba.Settled.fulfilled("slow")
    assert r["grouped"].status == "rejected"
    assert isinstance(r["grouped"].reason, ExceptionGroup)


async def test_shield_inside_task(ba):
    """asyncio.shield in a task protects the inner work from the task's own timeout."""

    async def shielded():
        inner = asyncio.ensure_future(value_after(0.06, "inner"))
        timed_out = False
        try:
            async with asyncio.timeout(0.02):
                await asyncio.shield(inner)
        except TimeoutError:
            timed_out = True
        return timed_out, await inner

    async def plain():
        return await asyncio.shield(value_after(0.01, "plain"))

    r = await ba.all({"shielded": shielded, "plain": plain})
    assert r == {"shielded": (True, "inner"), "plain": "plain"}


# -- awaiting siblings through asyncio tools -------------------------------------


async def test_gather_of_siblings(ba):
    """asyncio.gather(self.a, self.b) gives both siblings' results."""

    async def both(self):
        return await asyncio.gather(self.a, self["b"])

    r = await ba.all(
        {"a": lambda: value_after(0.02, "A"), "b": lambda: "B", "both": both}
    )
    assert r == {"a": "A", "b": "B", "both": ["A", "B"]}


async def test_gather_of_failing_sibling_raises_its_error(ba):
    """asyncio.gather of a failing sibling raises that sibling's error in the waiter."""
    error = ValueError("a failed")

    async def a():
        await asyncio.sleep(0.01)
        raise error

    async def waiter(self):
        try:
            await asyncio.gather(self.a, self.b)
        except ValueError as exc:
            return exc
        return None

    r = await ba.all_settled({"a": a, "b": lambda: value_after(0.03, "B"), "waiter": waiter})
    assert r["waiter"] == ba.Settled.fulfilled(error)
    assert r["b"] == ba.Settled.fulfilled("B")


async def test_gather_of_finished_sibling_is_a_traced_dependency(ba):
    """A sibling awaited through gather() counts in .deps, also when it had already finished."""
    traces: list[Any] = []

    async def waiter(self):
        return await asyncio.gather(self.done_first)

    await ba.all({"done_first": lambda: 1, "waiter": waiter}, debug=traces.append)
    assert traces[0].tasks["waiter"].deps == ("done_first",)


async def test_gather_of_a_sibling_the_graph_cancelled_is_cancelled(ba):
    """Seen through gather(), a sibling the graph cancelled is a cancelled future, not an error."""
    seen: list[Any] = []

    async def slow():
        await asyncio.sleep(1)

    async def cleaner(self):
        try:
            await asyncio.sleep(1)
        except asyncio.CancelledError:
            await asyncio.sleep(0.02)  # `slow` has finished being cancelled by now
            seen.extend(await asyncio.gather(self.slow, return_exceptions=True))
            raise

    async def failing():
        await asyncio.sleep(0.01)
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        await ba.all({"slow": slow, "cleaner": cleaner, "failing": failing})
    assert len(seen) == 1 and isinstance(seen[0], asyncio.CancelledError), seen


async def test_gather_with_return_exceptions_in_a_stopped_task_ends(ba):
    """gather(self.x, return_exceptions=True) in a task the graph stops ends (3.11 reads _cancel_message)."""

    async def slow():
        await asyncio.sleep(1)

    async def watcher(self):
        return await asyncio.gather(self.slow, return_exceptions=True)

    def ender(self):
        self._end("done")

    started = time.monotonic()
    assert await ba.flow({"slow": slow, "watcher": watcher, "end": ender}) == "done"
    assert time.monotonic() - started < 0.5


async def test_graph_stop_is_not_lost_in_a_gather_whose_child_failed(ba):
    """A task in gather() still stops when the failure that stops the graph also ends its gather."""
    after: list[str] = []

    async def waiter(self):
        try:
            await asyncio.gather(self.ready, self.failing)
        except Exception:
            # gather() handed the failure on instead of the cancellation;
            # the graph's stop must still reach this task.
            await asyncio.sleep(0.2)
            after.append("kept running")

    async def failing(self):
        await self.ready
        raise ValueError("boom")

    started = time.monotonic()
    with pytest.raises(ValueError, match="boom"):
        await ba.all({"ready": lambda: 1, "waiter": waiter, "failing": failing})
    assert time.monotonic() - started < 0.15
    assert after == []


async def test_wait_for_sibling_not_expiring(ba):
    """asyncio.wait_for(self.a, 1) gives the sibling's result."""

    async def waiter(self):
        return await asyncio.wait_for(self.a, 1)

    r = await ba.all({"a": lambda: value_after(0.02, "A"), "waiter": waiter})
    assert r == {"a": "A", "waiter": "A"}


async def test_wait_for_sibling_expiring_does_not_cancel_sibling(ba):
    """A wait_for on a slow sibling times out in the waiter; the sibling still fulfils."""
    slow_finished: list[bool] = []

    async def slow():
        await asyncio.sleep(0.08)
        slow_finished.append(True)
        return "slow"

    async def impatient(self):
        try:
            await asyncio.wait_for(self.slow, 0.02)
        except TimeoutError:
            return "gave up"
        return "got it"

    async def raising(self):
        await asyncio.wait_for(self.slow, 0.02)

    r = await ba.all_settled({"slow": slow, "impatient": impatient, "raising": raising})
    assert r["slow"] == ba.Settled.fulfilled("slow")
    assert slow_finished == [True]
    assert r["impatient"] == ba.Settled.fulfilled("gave up")
    assert r["raising"].status == "rejected"
    assert isinstance(r["raising"].reason, TimeoutError)


async def test_timeout_around_sibling_wait_does_not_cancel_sibling(ba):
    """asyncio.timeout() expiring while awaiting a sibling leaves the sibling running."""

    async def impatient(self):
        try:
            async with asyncio.timeout(0.02):
                await self.slow
        except TimeoutError:
            pass
        # The sibling is still there: wait for it properly now.
        return "after timeout", await self.slow

    r = await ba.all({"slow": lambda: value_after(0.06, "slow"), "impatient": impatient})
    assert r == {"slow": "slow", "impatient": ("after timeout", "slow")}


async def test_shield_of_sibling_under_timeout(ba):
    """asyncio.shield(self.slow) under a timeout: the waiter times out, the sibling fulfils."""

    async def impatient(self):
        try:
            async with asyncio.timeout(0.02):
                await asyncio.shield(self.slow)
        except TimeoutError:
            return "timed out"
        return "no timeout"

    r = await ba.all({"slow": lambda: value_after(0.06, "slow"), "impatient": impatient})
    assert r == {"slow": "slow", "impatient": "timed out"}


# -- zero round trip --------------------------------------------------------------


async def test_awaiting_finished_async_sibling_does_not_yield(ba):
    """Awaiting an async sibling that has finished never yields to the event loop."""

    async def src():
        await asyncio.sleep(0.01)
        return 42

    async with Ticker() as ticker:

        async def reader(self):
            first = await self.src  # really waits: src is still running
            before = ticker.count
            values = [await self.src for _ in range(200)]
            values += [await self["src"] for _ in range(200)]
            after = ticker.count
            # Control: a real suspension does let the ticker run.
            await asyncio.sleep(0)
            await asyncio.sleep(0)
            control = ticker.count
            return first, set(values), after - before, control - after

        r = await ba.all({"src": src, "reader": reader})

    first, values, ticks_during, ticks_control = r["reader"]
    assert (first, values) == (42, {42})
    assert ticks_during == 0
    assert ticks_control > 0


async def test_awaiting_finished_sync_sibling_does_not_yield(ba):
    """Awaiting a sync sibling (finished at once) never yields: a call_soon callback has not run."""

    async def reader(self):
        loop = asyncio.get_running_loop()
        ran: list[int] = []
        loop.call_soon(ran.append, 1)
        values = [await self.src for _ in range(200)]
        ran_during = list(ran)
        await asyncio.sleep(0)  # control: a real suspension runs it
        return set(values), ran_during, list(ran)

    r = await ba.all({"src": lambda: "v", "reader": reader})
    assert r["reader"] == ({"v"}, [], [1])


async def test_awaiting_failed_sibling_does_not_yield(ba):
    """Awaiting a sibling that has already failed raises at once, without a round trip."""

    def src():
        raise KeyError("src")

    async with Ticker() as ticker:

        async def reader(self):
            await asyncio.sleep(0.01)
            before = ticker.count
            errors = 0
            for _ in range(100):
                try:
                    await self.src
                except KeyError:
                    errors += 1
            return errors, ticker.count - before

        r = await ba.all_settled({"src": src, "reader": reader})

    assert r["reader"] == ba.Settled.fulfilled((100, 0))


# -- one run per task --------------------------------------------------------------


async def test_same_sibling_awaited_by_many_runs_once(ba):
    """Awaiting one sibling from many tasks, many times, runs it once."""
    calls: list[str] = []

    async def shared(self):
        calls.append(self._name)
        await asyncio.sleep(0.02)
        return "S"

    async def reader(self):
        a = await self.shared
        b, c = await asyncio.gather(self.shared, self.shared)
        return a + b + c + await self.shared

    tasks: dict[str, Any] = {f"early{i}": reader for i in range(5)}  # before shared starts
    tasks["shared"] = shared
    tasks.update({f"late{i}": reader for i in range(5)})
    r = await ba.all(tasks)
    assert calls == ["shared"]
    assert all(r[name] == "SSSS" for name in tasks if name != "shared")


# -- ba.in_task ------------------------------------------------------------------------


async def test_in_task_runs_in_a_real_named_asyncio_task(ba):
    """Under ba.in_task, current_task() is an asyncio.Task named after the task, in all_tasks()."""

    async def worker():
        t = asyncio.current_task()
        return isinstance(t, asyncio.Task), t.get_name(), t in asyncio.all_tasks()

    def sync_worker(self):
        t = asyncio.current_task()
        return isinstance(t, asyncio.Task), t.get_name(), t in asyncio.all_tasks()

    r = await ba.all(
        {"worker": ba.in_task(worker), "sync_worker": ba.in_task(sync_worker)}
    )
    assert r == {"worker": (True, "worker", True), "sync_worker": (True, "sync_worker", True)}


async def test_in_task_keeps_calling_convention(ba):
    """ba.in_task keeps fn's convention: no argument for zero-parameter fns, else the context."""

    async def with_context(self):
        return self._name

    async def without():
        return "none"

    r = await ba.all(
        {
            "with_context": ba.in_task(with_context),
            "without": ba.in_task(without),
            "lam0": ba.in_task(lambda: "lam0"),
            "lam1": ba.in_task(lambda self: self._name),
        }
    )
    assert r == {"with_context": "with_context", "without": "none", "lam0": "lam0", "lam1": "lam1"}


async def test_in_task_awaits_siblings_and_its_result_is_the_tasks(ba):
    """A task under ba.in_task can await siblings (and be awaited); its result is the task's."""

    async def mid(self):
        return await self.base + 1

    async def top(self):
        return await self.mid * 10

    r = await ba.all(
        {"base": lambda: value_after(0.01, 1), "mid": ba.in_task(mid), "top": top}
    )
    assert r == {"base": 1, "mid": 2, "top": 20}


async def test_in_task_errors_propagate(ba):
    """An error raised under ba.in_task is the task's error."""

    async def failing():
        await asyncio.sleep(0.01)
        raise ValueError("in task")

    with pytest.raises(ValueError, match="in task"):
        await ba.all({"failing": ba.in_task(failing), "other": lambda: value_after(1, 1)})
    await no_other_tasks()


async def test_in_task_context_variables(ba):
    """Under ba.in_task, tasks see the caller's context and their changes do not leak."""
    token = set_request_id("caller")
    try:

        async def setter():
            seen = request_id.get()
            request_id.set("setter")
            await asyncio.sleep(0.01)
            return seen, request_id.get()

        async def reader():
            await asyncio.sleep(0.02)
            return request_id.get()

        r = await ba.all({"setter": ba.in_task(setter), "reader": ba.in_task(reader)})
        assert r == {"setter": ("caller", "setter"), "reader": "caller"}
        assert request_id.get() == "caller"
    finally:
        request_id.reset(token)


async def test_in_task_rejects_non_callable(ba):
    """ba.in_task of a non-callable raises TypeError."""
    with pytest.raises(TypeError):
        ba.in_task(42)
    with pytest.raises(TypeError):
        ba.in_task("fn")


async def test_in_task_rejects_and_closes_coroutine(ba):
    """ba.in_task of a coroutine object raises TypeError and closes the coroutine."""
    coro = value_after(0, 1)
    with pytest.raises(TypeError):
        ba.in_task(coro)
    assert inspect.getcoroutinestate(coro) == inspect.CORO_CLOSED


# -- what a task returns ----------------------------------------------------------------


async def test_task_returning_future_resolved_later(ba):
    """A task returning an asyncio.Future (resolved by call_later) gets its result."""

    def later(self):
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        loop.call_later(0.02, fut.set_result, "late")
        return fut

    async def waiter(self):
        return await self.later

    assert await ba.all({"later": later, "waiter": waiter}) == {"later": "late", "waiter": "late"}


async def test_task_returning_failing_future(ba):
    """A task returning a Future that fails raises the Future's exception."""

    def later():
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        loop.call_later(0.01, fut.set_exception, ValueError("future failed"))
        return fut

    with pytest.raises(ValueError, match="future failed"):
        await ba.all({"later": later})


class CustomAwaitable:
    """An awaitable that is not a coroutine: only ``__await__``."""

    def __init__(self, value: Any) -> None:
        self.value = value

    def __await__(self):
        yield from asyncio.sleep(0.01).__await__()
        return self.value


async def test_task_returning_custom_awaitable(ba):
    """A task returning an object with __await__ gets what awaiting it gives."""
    r = await ba.all({"custom": lambda: CustomAwaitable("custom"), "ctx": lambda self: CustomAwaitable(2)})
    assert r == {"custom": "custom", "ctx": 2}


async def test_sync_task_returning_plain_values(ba):
    """A sync task's plain return value (None, a list, a generator) is its result as is."""
    items = [1, 2]

    def gen():
        yield 1

    g = gen()
    r = await ba.all({"none": lambda: None, "list": lambda: items, "gen": lambda: g})
    assert r == {"none": None, "list": items, "gen": g}
    assert r["list"] is items
    assert r["gen"] is g
    g.close()


async def test_sync_task_returning_coroutine_is_awaited(ba):
    """A sync function returning a coroutine (lambda self: coro()) gets the coroutine's result."""

    async def waiter(self):
        return await self.lam

    r = await ba.all({"lam": lambda self: value_after(0.01, "coro"), "waiter": waiter})
    assert r == {"lam": "coro", "waiter": "coro"}


# -- nothing left behind -------------------------------------------------------------------


def tracked(finals: list[str], name: str, delay: float, value: Any = None, error: BaseException | None = None):
    async def task():
        try:
            await asyncio.sleep(delay)
            if error is not None:
                raise error
            return value
        finally:
            finals.append(name)

    return task


async def test_nothing_pending_after_success(ba):
    """After a successful call every task's finally ran and no task is left."""
    finals: list[str] = []
    await ba.all({"a": tracked(finals, "a", 0.01), "b": tracked(finals, "b", 0.02)})
    assert sorted(finals) == ["a", "b"]
    await no_other_tasks()


async def test_nothing_pending_after_failure(ba):
    """After a failing call every task's finally ran and no task is left."""
    finals: list[str] = []
    with pytest.raises(ValueError):
        await ba.all(
            {
                "bad": tracked(finals, "bad", 0.01, error=ValueError("bad")),
                "slow1": tracked(finals, "slow1", 1),
                "slow2": tracked(finals, "slow2", 1),
            }
        )
    assert sorted(finals) == ["bad", "slow1", "slow2"]
    await no_other_tasks()


@pytest.mark.parametrize("mode", ["all", "all_settled", "flow"])
async def test_nothing_pending_after_timeout(ba, mode):
    """After timeout= expires every task's finally ran and no task is left."""
    finals: list[str] = []
    tasks = {"fast": tracked(finals, "fast", 0.0), "slow": tracked(finals, "slow", 1)}
    call = getattr(ba, mode)
    t0 = time.monotonic()
    if mode == "all_settled":
        r = await call(tasks, timeout=0.03)
        assert isinstance(r["slow"].reason, TimeoutError)
    else:
        with pytest.raises(TimeoutError):
            await call(tasks, timeout=0.03)
    assert time.monotonic() - t0 < 0.5
    assert sorted(finals) == ["fast", "slow"]
    await no_other_tasks()


@pytest.mark.parametrize("mode", ["all", "all_settled", "flow"])
async def test_nothing_pending_after_caller_cancel(ba, mode):
    """After the caller is cancelled every task's finally ran and no task is left."""
    finals: list[str] = []
    tasks = {"a": tracked(finals, "a", 1), "b": tracked(finals, "b", 1)}
    outer = asyncio.create_task(getattr(ba, mode)(tasks))
    await asyncio.sleep(0.02)
    outer.cancel()
    with pytest.raises(asyncio.CancelledError):
        await outer
    assert sorted(finals) == ["a", "b"]
    await no_other_tasks()


async def test_nothing_pending_after_flow_end(ba):
    """After a flow _end every task's finally ran and no task is left."""
    finals: list[str] = []

    async def winner(self):
        try:
            await asyncio.sleep(0.01)
            self._end("won")
        finally:
            finals.append("winner")

    r = await ba.flow(
        {"winner": winner, "loser1": tracked(finals, "loser1", 1), "loser2": tracked(finals, "loser2", 1)}
    )
    assert r == "won"
    assert sorted(finals) == ["loser1", "loser2", "winner"]
    await no_other_tasks()


async def test_nothing_pending_with_inner_taskgroup_and_in_task_on_failure(ba):
    """Children of a TaskGroup in a task and in_task tasks are all finished after a failure."""
    finals: list[str] = []

    async def grouped():
        async with asyncio.TaskGroup() as tg:
            tg.create_task(tracked(finals, "child1", 1)())
            tg.create_task(tracked(finals, "child2", 1)())

    with pytest.raises(ValueError):
        await ba.all(
            {
                "grouped": grouped,
                "real": ba.in_task(tracked(finals, "real", 1)),
                "bad": tracked(finals, "bad", 0.02, error=ValueError("bad")),
            }
        )
    assert sorted(finals) == ["bad", "child1", "child2", "real"]
    await no_other_tasks()


# -- nested graphs ------------------------------------------------------------------------------


async def test_task_running_its_own_graph(ba):
    """A task can run its own ba.all; the inner graph sees the task's context variables."""

    async def outer_user():
        return await value_after(0.01, "u")

    async def nested(self):
        request_id.set("nested")
        user = await self.user

        async def inner_b(self):
            return (await self.inner_a) + user

        inner = await ba.all(
            {"inner_a": lambda: value_after(0.01, "a"), "inner_b": inner_b, "var": lambda: request_id.get()}
        )
        return inner

    r = await ba.all({"user": outer_user, "nested": nested})
    assert r == {"user": "u", "nested": {"inner_a": "a", "inner_b": "au", "var": "nested"}}


async def test_nested_graph_failure_propagates_through_outer(ba):
    """An inner graph's error fails the outer task, and everything is cleaned up."""
    finals: list[str] = []

    async def nested():
        await ba.all(
            {
                "bad": tracked(finals, "inner-bad", 0.01, error=ValueError("inner")),
                "slow": tracked(finals, "inner-slow", 1),
            }
        )

    with pytest.raises(ValueError, match="inner"):
        await ba.all({"nested": nested, "outer_slow": tracked(finals, "outer-slow", 1)})
    assert sorted(finals) == ["inner-bad", "inner-slow", "outer-slow"]
    await no_other_tasks()


async def test_graphs_inside_taskgroup(ba):
    """Graphs run as TaskGroup children give their results."""
    async with asyncio.TaskGroup() as tg:
        g1 = tg.create_task(ba.all({"a": lambda: value_after(0.02, 1), "b": lambda: 2}))
        g2 = tg.create_task(ba.all_settled({"c": lambda: value_after(0.01, 3)}))
    assert g1.result() == {"a": 1, "b": 2}
    assert g2.result() == {"c": ba.Settled.fulfilled(3)}


async def test_failing_graph_inside_taskgroup_cancels_other_graph(ba):
    """A failing graph in a TaskGroup cancels the other graph, whose tasks all finish."""
    finals: list[str] = []
    with pytest.raises(ExceptionGroup) as info:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(ba.all({"bad": tracked(finals, "bad", 0.02, error=ValueError("bad"))}))
            tg.create_task(ba.all({"x": tracked(finals, "x", 1), "y": tracked(finals, "y", 1)}))
    assert [type(e) for e in info.value.exceptions] == [ValueError]
    assert sorted(finals) == ["bad", "x", "y"]
    await no_other_tasks()


@pytest.mark.parametrize("mode", ["all", "all_settled", "flow"])
async def test_graph_under_caller_timeout(ba, mode):
    """ba.* under asyncio.timeout() in the caller: the outer timeout raises, all tasks finish."""
    finals: list[str] = []
    tasks = {"fast": tracked(finals, "fast", 0.0, value=1), "slow": tracked(finals, "slow", 5)}
    t0 = time.monotonic()
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.03) as cm:
            await getattr(ba, mode)(tasks)
    assert cm.expired()
    assert time.monotonic() - t0 < 2.5  # not the slow task's 5 s (wide: shared machines stall)
    assert sorted(finals) == ["fast", "slow"]
    assert asyncio.current_task().cancelling() == 0
    await no_other_tasks()


async def test_graph_under_caller_timeout_not_expiring(ba):
    """ba.all under a caller's asyncio.timeout() that does not expire returns normally."""
    async with asyncio.timeout(1) as cm:
        r = await ba.all({"a": lambda: value_after(0.01, "a")})
    assert not cm.expired()
    assert r == {"a": "a"}


async def test_graph_under_caller_wait_for(ba):
    """asyncio.wait_for(ba.all(...)) expiring raises TimeoutError after every task finished."""
    finals: list[str] = []
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(ba.all({"slow": tracked(finals, "slow", 1)}), 0.03)
    assert finals == ["slow"]
    await no_other_tasks()


# -- 3.14's call-graph introspection -----------------------------------------------


def _names(graph: Any) -> list[str]:
    return [parent.future.get_name() for parent in graph.awaited_by]


@pytest.mark.skipif(sys.version_info < (3, 14), reason="asyncio.capture_call_graph() is new in 3.14")
async def test_call_graph_introspection_inside_a_task(ba):
    """asyncio.capture_call_graph() and print_call_graph() inside a graph task show
    the task, where it is in its code, and who waits for it up to the caller."""
    caller = asyncio.current_task()
    seen: dict[str, Any] = {}

    async def a(self: Any) -> int:
        await asyncio.sleep(0.05)  # b is waiting for a by now
        seen["graph"] = asyncio.capture_call_graph()
        out = io.StringIO()
        asyncio.print_call_graph(file=out)
        seen["text"] = out.getvalue()
        return 1

    async def b(self: Any) -> int:
        return await self.a + 1

    assert await ba.all({"a": a, "b": b}) == {"a": 1, "b": 2}
    graph = seen["graph"]
    assert graph.future.get_name() == "a"
    assert isinstance(graph.future, asyncio.Task)
    assert "a" in [entry.frame.f_code.co_name for entry in graph.call_stack]
    # b waits for a; the caller waits for the call, so for a and b in the end.
    assert "b" in _names(graph)
    (b_graph,) = [p for p in graph.awaited_by if p.future.get_name() == "b"]
    chain = {name for p in (graph, b_graph) for name in _names(p)}
    assert caller.get_name() in chain
    text = seen["text"]
    assert "Task(name='a'" in text and "Task(name='b'" in text
    assert f"Task(name='{caller.get_name()}'" in text
    assert "in async test_call_graph_introspection_inside_a_task()" in text


@pytest.mark.skipif(sys.version_info < (3, 14), reason="asyncio.capture_call_graph() is new in 3.14")
async def test_call_graph_introspection_of_a_task_from_outside(ba):
    """A graph task seen from a sibling (capture_call_graph(task)) while it waits:
    its coroutine's frames, and no error once the call has ended."""
    seen: dict[str, Any] = {}
    gate = asyncio.Event()

    async def slow(self: Any) -> str:
        seen["task"] = asyncio.current_task()
        await gate.wait()
        return "slow"

    async def peek(self: Any) -> str:
        await asyncio.sleep(0)
        seen["graph"] = asyncio.capture_call_graph(seen["task"])
        gate.set()
        return "peek"

    assert await ba.all({"slow": slow, "peek": peek}) == {"slow": "slow", "peek": "peek"}
    graph = seen["graph"]
    assert graph.future is seen["task"]
    assert "slow" in [entry.frame.f_code.co_name for entry in graph.call_stack]
    after = asyncio.capture_call_graph(seen["task"])
    assert after is not None and after.future is seen["task"]
    assert after.awaited_by == ()
