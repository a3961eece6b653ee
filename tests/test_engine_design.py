"""Tests that prove the C engine's design (docs/design.md); they run only for the C engine.

The public contract (docs/api.md) is tested for every engine elsewhere.  Here we check
what makes the C engine fast and sound, with instruments that count what the
event loop is asked for:

- a graph task that finishes without suspending creates no ``asyncio.Task`` and
  schedules no loop callback, and such a graph returns from ``await`` without the
  caller suspending;
- waits between siblings never go through the loop (the count of loop callbacks
  does not grow with the length of a chain of sibling waits);
- the ready queue is a loop: chains of 100k tasks neither recurse nor crash;
- while a node runs it is asyncio's current task (a native object, not an
  ``asyncio.Task``), and the outer current task is restored on every path;
- the extension uses multi-phase init (it can be imported twice, side by side);
- the graph, nodes, contexts and sibling awaitables are collected (GC support,
  no reference leaks), also in a 20k-call leak loop run in a subprocess.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
import contextlib
import gc
import importlib
import json
import os
import subprocess
import sys
import textwrap
from typing import Any
import weakref

import pytest

import betterall

ENGINES = betterall._engines()
if "c" not in ENGINES:
    pytest.skip("the C engine is not built here", allow_module_level=True)

C = ENGINES["c"]

_TASK_TYPES: tuple[type, ...] = tuple(
    t for t in (asyncio.Task, getattr(asyncio.tasks, "_PyTask", None)) if t is not None
)


# -- instruments ---------------------------------------------------------------


class LoopCalls:
    """Counts loop.call_soon / call_later / call_at on one running loop instance.

    The loop's methods are replaced on the instance by wrappers that count and
    delegate, so calls made by asyncio's C Future/Task (which look the method up
    on the loop object) are counted too.  ``call_later`` calls ``call_at``
    internally, so one call_later counts in both.
    """

    METHODS = ("call_soon", "call_later", "call_at")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.counts = dict.fromkeys(self.METHODS, 0)
        self.callbacks: list[str] = []
        self._saved: dict[str, Any] = {}

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def _wrap(self, name: str, original: Callable[..., Any]) -> Callable[..., Any]:
        def counting(*args: Any, **kwargs: Any) -> Any:
            self.counts[name] += 1
            callback = args[1] if name in ("call_later", "call_at") else args[0]
            self.callbacks.append(f"{name}({callback!r})")
            return original(*args, **kwargs)

        return counting

    def __enter__(self) -> LoopCalls:
        missing = object()
        for name in self.METHODS:
            self._saved[name] = self.loop.__dict__.get(name, missing)
            setattr(self.loop, name, self._wrap(name, getattr(self.loop, name)))
        self._missing = missing
        return self

    def __exit__(self, *exc: object) -> None:
        for name, saved in self._saved.items():
            if saved is self._missing:
                delattr(self.loop, name)
            else:
                setattr(self.loop, name, saved)


@contextlib.contextmanager
def counting_task_factory(loop: asyncio.AbstractEventLoop) -> Iterator[list[Any]]:
    """Installs a task factory that records every task it is asked for."""
    created: list[Any] = []
    previous = loop.get_task_factory()

    def factory(loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any) -> Any:
        created.append(coro)
        if previous is not None:
            return previous(loop, coro, **kwargs)
        return asyncio.Task(coro, loop=loop, **kwargs)

    loop.set_task_factory(factory)
    try:
        yield created
    finally:
        loop.set_task_factory(previous)


def sync_async_graph(n: int) -> tuple[dict[str, Callable[..., Any]], dict[str, int]]:
    """n async tasks that all finish without suspending; some await earlier siblings.

    Returns the graph and the expected results.
    """
    tasks: dict[str, Callable[..., Any]] = {}
    expected: dict[str, int] = {}

    def leaf(i: int) -> Callable[..., Any]:
        async def task(self: Any) -> int:
            return i

        return task

    def by_attribute(dep: str, i: int) -> Callable[..., Any]:
        async def task(self: Any) -> int:
            return await getattr(self, dep) + i

        return task

    def by_item_twice(dep1: str, dep2: str) -> Callable[..., Any]:
        async def task(self: Any) -> int:
            return await self[dep1] + await self[dep2] + await self[dep1]

        return task

    def no_argument(i: int) -> Callable[..., Any]:
        async def task() -> int:
            return -i

        return task

    for i in range(n):
        name = f"t{i}"
        if i % 4 == 0 or i < 2:
            tasks[name], expected[name] = leaf(i), i
        elif i % 4 == 1:
            dep = f"t{i - 1}"
            tasks[name], expected[name] = by_attribute(dep, i), expected[dep] + i
        elif i % 4 == 2:
            d1, d2 = f"t{i - 1}", f"t{i // 2}"
            tasks[name] = by_item_twice(d1, d2)
            expected[name] = 2 * expected[d1] + expected[d2]
        else:
            tasks[name], expected[name] = no_argument(i), -i
    return tasks, expected


def reverse_chain(n: int, last: Callable[..., Any]) -> dict[str, Callable[..., Any]]:
    """t0 awaits t1, t1 awaits t2, ... each task awaits one declared after it."""

    def link(nxt: str) -> Callable[..., Any]:
        async def task(self: Any) -> int:
            return await self[nxt] + 1

        return task

    tasks = {f"t{i}": link(f"t{i + 1}") for i in range(n - 1)}
    tasks[f"t{n - 1}"] = last
    return tasks


def forward_chain(n: int, first: Callable[..., Any]) -> dict[str, Callable[..., Any]]:
    """t1 awaits t0, t2 awaits t1, ... each task awaits the one declared before it."""

    def link(prev: str) -> Callable[..., Any]:
        async def task(self: Any) -> int:
            return await self[prev] + 1

        return task

    tasks = {"t0": first}
    tasks.update({f"t{i}": link(f"t{i - 1}") for i in range(1, n)})
    return tasks


async def zero_after_bare_yield(self: Any) -> int:
    await asyncio.sleep(0)
    return 0


# -- 1. tasks that never suspend cost no event-loop work --------------------------


@pytest.mark.parametrize("entry", ["all", "all_settled", "flow", "flow_end"])
async def test_non_suspending_graph_creates_no_task_and_schedules_nothing(entry):
    """1000 async tasks that never suspend: no asyncio.Task, no loop callback, no caller suspension."""
    loop = asyncio.get_running_loop()
    tasks, expected = sync_async_graph(1000)
    if entry == "flow_end":

        async def ender(self: Any) -> None:
            self._end(await self.t999 + await self.t0)

        tasks["end"] = ender
    probe: list[str] = []
    loop.call_soon(probe.append, "probe")
    tasks_before = len(asyncio.all_tasks())
    with counting_task_factory(loop) as created, LoopCalls(loop) as calls:
        if entry == "all":
            result = await C.all(tasks)
        elif entry == "all_settled":
            result = await C.all_settled(tasks)
        else:
            result = await C.flow(tasks)
        probe_ran_during_call = list(probe)
        tasks_after = len(asyncio.all_tasks())
    assert probe_ran_during_call == [], "the caller suspended during the await"
    assert created == [], f"{len(created)} asyncio tasks were created"
    assert calls.total == 0, f"loop callbacks scheduled: {calls.counts} {calls.callbacks[:5]}"
    assert tasks_after == tasks_before
    if entry == "all":
        assert result == expected
        assert list(result) == list(expected)
    elif entry == "all_settled":
        assert result == {k: betterall.Settled.fulfilled(v) for k, v in expected.items()}
    elif entry == "flow":
        assert result is None
    else:
        assert result == expected["t999"] + expected["t0"]
    # The probe is real: it runs as soon as the caller yields to the loop.
    await asyncio.sleep(0)
    assert probe == ["probe"]


async def test_sync_tasks_create_no_task_and_schedule_nothing():
    """1000 synchronous tasks (functions returning values) cost no loop work either."""
    loop = asyncio.get_running_loop()

    def make(i: int) -> Callable[..., Any]:
        return (lambda: i) if i % 2 else (lambda self: i)

    tasks = {f"s{i}": make(i) for i in range(1000)}
    probe: list[str] = []
    loop.call_soon(probe.append, "probe")
    with counting_task_factory(loop) as created, LoopCalls(loop) as calls:
        result = await C.all(tasks)
        probe_ran_during_call = list(probe)
    assert probe_ran_during_call == [], "the caller suspended during the await"
    assert created == []
    assert calls.total == 0, f"loop callbacks scheduled: {calls.counts} {calls.callbacks[:5]}"
    assert result == {f"s{i}": i for i in range(1000)}
    await asyncio.sleep(0)
    assert probe == ["probe"]


async def test_failure_at_start_raises_without_loop_work():
    """A graph decided by a failure during its start raises without any loop work."""
    loop = asyncio.get_running_loop()
    tasks, _ = sync_async_graph(500)
    started_late: list[str] = []

    async def fails(self: Any) -> None:
        await self.t10
        raise ValueError("boom")

    async def late(self: Any) -> None:
        started_late.append(self._name)

    tasks["fails"] = fails
    tasks.update({f"late{i}": late for i in range(10)})
    probe: list[str] = []
    loop.call_soon(probe.append, "probe")
    with counting_task_factory(loop) as created, LoopCalls(loop) as calls:
        with pytest.raises(ValueError, match="boom"):
            await C.all(tasks)
        probe_ran_during_call = list(probe)
    assert probe_ran_during_call == [], "the caller suspended during the await"
    assert created == []
    assert calls.total == 0, f"loop callbacks scheduled: {calls.counts} {calls.callbacks[:5]}"
    assert started_late == []
    await asyncio.sleep(0)
    assert probe == ["probe"]


# -- 2. sibling waits never go through the loop ----------------------------------


async def _count_reverse_chain(n: int, last_kind: str) -> tuple[dict[str, int], Any]:
    loop = asyncio.get_running_loop()
    if last_kind == "sleep0":
        last = zero_after_bare_yield
    else:
        fut = loop.create_future()
        # Scheduled before counting starts: resolves the future on the next iteration.
        loop.call_soon(fut.set_result, 0)

        async def last(self: Any) -> int:
            return await fut

    tasks = reverse_chain(n, last)
    with counting_task_factory(loop) as created, LoopCalls(loop) as calls:
        result = await C.all(tasks)
    assert created == []
    return dict(calls.counts), result


@pytest.mark.parametrize("last_kind", ["sleep0", "future"])
async def test_reverse_chain_sibling_waits_schedule_no_loop_callback(last_kind):
    """Chain waits (task i awaits i+1, declared later) add no loop callbacks: counts do not grow with N."""
    counts_100, result_100 = await _count_reverse_chain(100, last_kind)
    counts_1000, result_1000 = await _count_reverse_chain(1000, last_kind)
    assert result_100 == {f"t{i}": 99 - i for i in range(100)}
    assert result_1000 == {f"t{i}": 999 - i for i in range(1000)}
    assert counts_100 == counts_1000, f"N=100: {counts_100}, N=1000: {counts_1000}"
    assert sum(counts_1000.values()) <= 4, f"too many loop callbacks: {counts_1000}"


async def test_forward_chain_with_suspending_head_schedules_no_loop_callback_per_wait():
    """Each task awaits the previous one, the first suspends: callbacks do not grow with N."""
    loop = asyncio.get_running_loop()
    counts = {}
    for n in (100, 1000):
        with counting_task_factory(loop) as created, LoopCalls(loop) as calls:
            result = await C.all(forward_chain(n, zero_after_bare_yield))
        assert created == []
        assert result == {f"t{i}": i for i in range(n)}
        counts[n] = dict(calls.counts)
    assert counts[100] == counts[1000], counts
    assert sum(counts[1000].values()) <= 4, counts


async def test_fan_in_on_a_suspending_sibling_schedules_no_callback_per_waiter():
    """1000 tasks parked on one suspending sibling are resumed without loop callbacks."""
    loop = asyncio.get_running_loop()
    counts = {}

    async def waiter(self: Any) -> int:
        return await self.root + 1

    for n in (100, 1000):
        tasks: dict[str, Callable[..., Any]] = {f"w{i}": waiter for i in range(n)}
        tasks["root"] = zero_after_bare_yield
        with counting_task_factory(loop) as created, LoopCalls(loop) as calls:
            result = await C.all(tasks)
        assert created == []
        assert result == {**{f"w{i}": 1 for i in range(n)}, "root": 0}
        counts[n] = dict(calls.counts)
    assert counts[100] == counts[1000], counts
    assert sum(counts[1000].values()) <= 4, counts


# -- 3. the ready queue is a loop, not recursion ------------------------------------


async def test_reverse_chain_of_100k_tasks_resumed_after_suspension():
    """100k tasks, each awaiting the next; the last suspends once: no RecursionError, right results."""
    n = 100_000
    result = await C.all(reverse_chain(n, zero_after_bare_yield))
    assert len(result) == n
    assert result["t0"] == n - 1
    assert result[f"t{n - 1}"] == 0


async def test_reverse_chain_of_100k_tasks_resolved_during_start():
    """100k tasks, each awaiting the next; the last finishes at once: the start drains the queue."""
    n = 100_000

    async def last(self: Any) -> int:
        return 0

    result = await C.all(reverse_chain(n, last))
    assert len(result) == n
    assert result["t0"] == n - 1


async def test_dependency_ordered_chain_of_100k_tasks():
    """100k tasks, each awaiting the previous one (already finished): no recursion."""
    n = 100_000

    async def first(self: Any) -> int:
        return 0

    result = await C.all(forward_chain(n, first))
    assert result[f"t{n - 1}"] == n - 1


async def test_dependency_ordered_chain_of_100k_tasks_with_suspending_head():
    """100k tasks, each parked on the previous one until the first resumes: no recursion."""
    n = 100_000
    result = await C.all(forward_chain(n, zero_after_bare_yield))
    assert result[f"t{n - 1}"] == n - 1


async def test_failure_through_100k_chain_propagates_without_recursion():
    """A failure at the end of a 100k reverse chain reaches every waiter without recursion."""
    n = 100_000

    async def last(self: Any) -> int:
        await asyncio.sleep(0)
        raise ValueError("end of chain")

    with pytest.raises(ValueError, match="end of chain"):
        await C.all(reverse_chain(n, last))
    settled = await C.all_settled(reverse_chain(n, last))
    assert all(s.status == "rejected" for s in settled.values())
    assert isinstance(settled["t0"].reason, ValueError)


# -- 4. the node is the current task while it runs ----------------------------------


async def test_current_task_inside_a_node_is_the_native_node():
    """Inside a task current_task() is the node: not an asyncio.Task, named, stable across awaits."""
    loop = asyncio.get_running_loop()
    outer = asyncio.current_task()
    gate = loop.create_future()
    seen: dict[str, Any] = {}
    outside: dict[str, Any] = {}

    async def a(self: Any) -> str:
        me = asyncio.current_task()
        seen["a0"] = me
        seen["a_in_all_tasks"] = me in asyncio.all_tasks()
        await self.b  # parked on a pending sibling, resumed from the ready queue
        seen["a1"] = asyncio.current_task()
        await gate  # a future outside the graph, resumed by a loop callback
        seen["a2"] = asyncio.current_task()
        await asyncio.sleep(0)  # a bare yield
        seen["a3"] = asyncio.current_task()
        return me.get_name()

    async def b(self: Any) -> int:
        seen["b0"] = asyncio.current_task()
        await asyncio.sleep(0)
        seen["b1"] = asyncio.current_task()
        return 1

    async def watcher() -> None:
        me = asyncio.current_task()
        # Runs while the graph is suspended: the current task is this plain task.
        outside["watcher_sees_itself"] = asyncio.current_task() is me
        loop.call_soon(
            lambda: outside.setdefault("in_callback", asyncio.current_task(loop))
        )
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        outside["watcher_sees_itself_later"] = asyncio.current_task() is me
        gate.set_result(None)

    watch = asyncio.create_task(watcher())
    result = await C.all({"a": a, "b": b})
    assert asyncio.current_task() is outer
    await watch
    assert asyncio.current_task() is outer

    assert result == {"a": "a", "b": 1}
    node_a, node_b = seen["a0"], seen["b0"]
    for node, name in ((node_a, "a"), (node_b, "b")):
        assert node is not None
        # A native node, not an asyncio.Task, that says it is one (its
        # __class__) so that code checking for a Task accepts it.
        assert not issubclass(type(node), _TASK_TYPES), type(node)
        assert isinstance(node, asyncio.Task) and node.__class__ is asyncio.Task
        assert node is not outer
        assert node.get_name() == name
    assert seen["a_in_all_tasks"] is False
    assert node_a not in asyncio.all_tasks()
    assert node_a is not node_b
    assert seen["a1"] is node_a and seen["a2"] is node_a and seen["a3"] is node_a
    assert seen["b1"] is node_b
    assert outside == {
        "watcher_sees_itself": True,
        "in_callback": None,
        "watcher_sees_itself_later": True,
    }


async def test_current_task_inside_sync_task_is_the_node():
    """A synchronous task also runs with its node as the current task."""
    outer = asyncio.current_task()
    seen: dict[str, Any] = {}

    def sync(self: Any) -> int:
        seen["node"] = asyncio.current_task()
        return 1

    await C.all({"sync": sync})
    assert seen["node"] is not outer
    assert not issubclass(type(seen["node"]), _TASK_TYPES)
    assert seen["node"].get_name() == "sync"
    assert asyncio.current_task() is outer


def _failing_graphs() -> dict[str, tuple[dict[str, Any], type[BaseException]]]:
    async def boom(self: Any) -> None:
        raise ValueError("boom")

    async def late_boom(self: Any) -> None:
        await asyncio.sleep(0)
        raise ValueError("late")

    async def cyc_a(self: Any) -> Any:
        return await self.b

    async def cyc_b(self: Any) -> Any:
        await asyncio.sleep(0)
        return await self.a

    async def unknown(self: Any) -> Any:
        return await self.nope

    async def ender(self: Any) -> None:
        self._end(1)

    async def sleeper(self: Any) -> None:
        await asyncio.sleep(10)

    return {
        "sync_failure": ({"a": boom, "s": sleeper}, ValueError),
        "late_failure": ({"s": sleeper, "a": late_boom}, ValueError),
        "cycle": ({"a": cyc_a, "b": cyc_b}, betterall.CycleError),
        "unknown": ({"u": unknown}, betterall.UnknownTaskError),
        "timeout0": ({"s": sleeper}, TimeoutError),
        "flow_end": ({"s": sleeper, "e": ender}, type(None)),
    }


@pytest.mark.parametrize("kind", list(_failing_graphs()))
async def test_outer_current_task_restored_after_every_outcome(kind):
    """After failures, cycles, unknown names, timeouts and _end, the caller is current again."""
    loop = asyncio.get_running_loop()
    outer = asyncio.current_task()
    tasks, error = _failing_graphs()[kind]
    seen_in_callback: list[Any] = []
    if kind == "flow_end":
        assert await C.flow(tasks) == 1
    elif kind == "timeout0":
        with pytest.raises(TimeoutError):
            await C.all(tasks, timeout=0)
    else:
        with pytest.raises(error):
            await C.all(tasks)
    assert asyncio.current_task() is outer
    loop.call_soon(lambda: seen_in_callback.append(asyncio.current_task(loop)))
    await asyncio.sleep(0)
    assert seen_in_callback == [None]
    assert asyncio.current_task() is outer


SWAP_SCRIPT = textwrap.dedent(
    """
    import asyncio, asyncio.tasks as at, json

    # Count asyncio's task-swapping functions before the engine imports them.
    calls = {"n": 0}
    def counted(fn):
        def wrapper(*args):
            calls["n"] += 1
            return fn(*args)
        return wrapper
    for name in ("_swap_current_task", "_enter_task", "_leave_task"):
        if hasattr(at, name):
            setattr(at, name, counted(getattr(at, name)))

    import betterall
    C = betterall._engines()["c"]

    async def main():
        loop = asyncio.get_running_loop()
        outer = asyncio.current_task()
        seen = {}
        def sync(self):
            seen["sync"] = asyncio.current_task().get_name()
            return 1
        async def slow(self):
            await asyncio.sleep(0)
            seen["slow"] = asyncio.current_task().get_name()
            return 2
        async def dep(self):
            v = await self.slow
            seen["dep"] = asyncio.current_task().get_name()
            return v + 1
        async def boom(self):
            await self.slow
            raise ValueError("boom")
        r = await C.all({"dep": dep, "sync": sync, "slow": slow})
        seen["outer_after"] = asyncio.current_task() is outer
        try:
            await C.all({"boom": boom, "slow": slow})
        except ValueError:
            seen["outer_after_error"] = asyncio.current_task() is outer
        got = []
        loop.call_soon(lambda: got.append(asyncio.current_task(loop)))
        await asyncio.sleep(0)
        seen["callback_sees_none"] = got == [None]
        # Driven by hand outside any task: nobody is current afterwards.
        async def bare():
            return await C.all({"sync": sync, "slow": slow})
        fut = loop.create_future()
        def drive(coro, value=None):
            try:
                coro.send(value)
            except StopIteration as stop:
                fut.set_result((stop.value, asyncio.current_task(loop)))
            else:
                loop.call_soon(drive, coro)
        loop.call_soon(drive, bare())
        value, current = await fut
        seen["bare"] = [value, current is None]
        return {"result": r, "seen": seen, "calls": calls["n"]}

    print(json.dumps(asyncio.run(main())))
    """
)


def run_script(script: str, env: dict[str, str], timeout: float) -> tuple[Any, Any]:
    """Run `script` in a fresh interpreter with warnings as errors; it must
    succeed and print JSON.  Returns the process and the decoded output."""
    proc = subprocess.run(
        [sys.executable, "-W", "error", "-c", script],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )
    assert proc.returncode == 0, f"script failed:\n{proc.stdout}\n{proc.stderr}"
    return proc, json.loads(proc.stdout)


@pytest.mark.parametrize("calls", [False, True], ids=["table", "calls"])
def test_current_task_swaps_with_and_without_asyncio_table(calls):
    """Nodes become current through asyncio's table (by default) or its functions; same results."""
    env = {k: v for k, v in os.environ.items() if k != "BETTERALL_SWAP_CALLS"}
    if calls:
        env["BETTERALL_SWAP_CALLS"] = "1"
    _, out = run_script(SWAP_SCRIPT, env, timeout=60)
    assert out["result"] == {"dep": 3, "sync": 1, "slow": 2}
    assert out["seen"] == {
        "sync": "sync",
        "slow": "slow",
        "dep": "dep",
        "outer_after": True,
        "outer_after_error": True,
        "callback_sees_none": True,
        "bare": [{"sync": 1, "slow": 2}, True],
    }
    if calls:
        assert out["calls"] > 0, out
    else:
        # Python 3.11-3.13 have the table: no call of asyncio's functions.
        # 3.14 keeps the current task in the thread state (its table is read
        # only by the pure-Python asyncio): the engine calls asyncio there.
        has_table = sys.version_info < (3, 14)
        assert (out["calls"] == 0) == has_table, out


# -- 5. multi-phase init: the extension can be imported twice ------------------------


def test_cengine_can_be_reimported_and_both_modules_work():
    """Re-importing betterall._cengine gives a distinct, working module with its own types."""
    import betterall._cengine as old

    saved_attr = betterall.__dict__.get("_cengine")
    try:
        del sys.modules["betterall._cengine"]
        new = importlib.import_module("betterall._cengine")
    finally:
        sys.modules["betterall._cengine"] = old
        if saved_attr is not None:
            betterall._cengine = saved_attr
    assert new is not old
    assert new.all is not old.all

    async def use(module: Any) -> tuple[Any, type, type]:
        async def later(self: Any) -> int:
            await asyncio.sleep(0)
            return 2

        async def cyc_a(self: Any) -> Any:
            return await self.b

        async def cyc_b(self: Any) -> Any:
            return await self.a

        async def ender(self: Any) -> None:
            self._end(await self.later)

        graph = module.all({"one": lambda: 1, "later": later})
        graph_type = type(graph)
        result = await graph
        ctx_types: list[type] = []
        settled = await module.all_settled(
            {"x": lambda self: ctx_types.append(type(self)) or 3}
        )
        assert settled == {"x": betterall.Settled.fulfilled(3)}
        with pytest.raises(betterall.CycleError):
            await module.all({"a": cyc_a, "b": cyc_b})
        assert await module.flow({"later": later, "e": ender}) == 2
        return result, graph_type, ctx_types[0]

    async def main() -> list[tuple[Any, type, type]]:
        return [await use(old), await use(new), await use(old), await use(new)]

    runs = asyncio.run(main(), debug=True)
    for result, _, _ in runs:
        assert result == {"one": 1, "later": 2}
    (_, old_graph, old_ctx), (_, new_graph, new_ctx) = runs[0], runs[1]
    assert old_graph is not new_graph, "both modules share one static Graph type"
    assert old_ctx is not new_ctx, "both modules share one static Context type"

    # Dropping the second module (and its state) leaves the first one intact.
    del new, runs, new_graph, new_ctx
    gc.collect()
    assert asyncio.run(main_old_only(old), debug=True) == {"one": 1}


async def main_old_only(module: Any) -> Any:
    return await module.all({"one": lambda: 1})


# -- 6. GC: graph objects die with the call ------------------------------------------

_STASH: list[Any] = []


def _weakrefs(objs: list[Any]) -> tuple[list[weakref.ref[Any]], list[type]]:
    """Weak references to the objects that allow them, and the types that do not."""
    refs, unweakrefable = [], []
    for obj in objs:
        try:
            refs.append(weakref.ref(obj))
        except TypeError:
            unweakrefable.append(type(obj))
    return refs, unweakrefable


def _count_of(types: list[type]) -> dict[str, int]:
    gc.collect()
    wanted = tuple(set(types))
    counts = dict.fromkeys((t.__qualname__ for t in wanted), 0)
    for obj in gc.get_objects():
        if type(obj) in wanted:
            counts[type(obj).__qualname__] += 1
    return counts


async def _stashing_graph(fail: bool) -> None:
    """A graph whose task stashes self, a sibling awaitable and its node in a global list."""

    async def a(self: Any) -> Any:
        _STASH.append(self)
        _STASH.append(self.b)  # a sibling awaitable, never awaited
        _STASH.append(asyncio.current_task())
        value = await self.b

        def again() -> Any:  # a closure cycle that holds self
            return self, again

        if fail:
            raise ValueError(again)  # traceback -> frame -> self
        return lambda: (self, value, again)  # the result holds self

    async def b(self: Any) -> int:
        await asyncio.sleep(0)
        return 2

    if fail:
        try:
            await C.all({"a": a, "b": b})
        except ValueError:
            pass
        else:
            raise AssertionError("the graph did not fail")
    else:
        result = await C.all({"a": a, "b": b})
        assert result["a"]()[1] == 2


@pytest.mark.parametrize("fail", [False, True], ids=["success", "failure"])
async def test_context_sibling_and_node_die_after_the_call(fail):
    """After a call, self, a stashed sibling awaitable and the node die once unreferenced."""
    _STASH.clear()
    await _stashing_graph(fail)
    assert len(_STASH) == 3
    refs, unweakrefable = _weakrefs(_STASH)
    _STASH.clear()
    gc.collect()
    alive = [r() for r in refs if r() is not None]
    assert not alive, f"still alive after gc.collect(): {alive!r}"
    if unweakrefable:
        # Fallback for types without weakref support: their population must not grow.
        before = _count_of(unweakrefable)
        for _ in range(200):
            await _stashing_graph(fail)
            _STASH.clear()
        after = _count_of(unweakrefable)
        assert after == before, f"live objects before: {before}, after 200 calls: {after}"


async def test_engine_object_population_does_not_grow():
    """200 graph calls leave no Graph, node, context or sibling awaitable behind."""
    types: set[type] = set()

    async def a(self: Any) -> Any:
        types.add(type(self))
        types.add(type(self.b))
        types.add(type(asyncio.current_task()))
        return await self.b

    async def b(self: Any) -> int:
        await asyncio.sleep(0)
        return 1

    graph = C.all({"a": a, "b": b})
    types.add(type(graph))
    await graph
    del graph
    types.discard(type(None))
    before = _count_of(list(types))
    for i in range(200):
        if i % 2:
            await C.all({"a": a, "b": b})
        else:
            await C.all_settled({"a": a, "b": b, "c": lambda: 1 / 0})
    after = _count_of(list(types))
    assert after == before, f"live objects before: {before}, after 200 calls: {after}"


async def test_engine_objects_that_hold_references_are_gc_tracked():
    """The graph, context and sibling awaitable are GC-tracked (they can be in
    cycles); a node (and, until the caller suspends, its coroutine and
    context: see the next test) is left to its tracked graph while the graph
    runs, and is tracked itself once it outlives the graph."""
    seen: dict[str, Any] = {}

    async def a(self: Any) -> Any:
        seen["sibling awaitable"] = gc.is_tracked(self.b)
        seen["node object"] = asyncio.current_task()
        v = await self.b
        seen["context"] = gc.is_tracked(self)
        return v

    async def b(self: Any) -> int:
        await asyncio.sleep(0)
        return 1

    graph = C.all({"a": a, "b": b})
    seen["graph"] = gc.is_tracked(graph)
    await graph
    del graph
    node = seen.pop("node object")
    seen["node"] = gc.is_tracked(node)
    assert seen == dict.fromkeys(("graph", "context", "sibling awaitable", "node"), True)


@pytest.mark.parametrize("entry", ["all", "all_settled"])
async def test_result_dict_is_tracked_when_it_holds_containers(entry):
    """The engine keeps its copy of the tasks dict away from the collector while
    the graph runs; the result it becomes is tracked as soon as a value can be in
    a cycle, and a cycle through it is collected."""
    run = getattr(C, entry)

    async def slow() -> int:
        await asyncio.sleep(0)
        return 1

    class Box(list):  # type: ignore[type-arg]  # a list that takes weak references
        pass

    box = Box()
    r = await run({"n": lambda: 1, "box": lambda: box, "slow": slow})
    assert gc.is_tracked(r)
    box.append(r)  # result -> box -> result
    probe = weakref.ref(box)
    del r, box
    gc.collect()
    assert probe() is None

    atoms = await C.all({"a": lambda: 1, "b": lambda: "x"})
    assert atoms == {"a": 1, "b": "x"}
    # Only atoms: tracked as any dict of atoms is (not before 3.14, where
    # such a dict has nothing for the collector to see; always from 3.14 on).
    assert gc.is_tracked(atoms) == gc.is_tracked(dict(a=1, b="x"))


async def test_coroutines_and_self_skip_the_collector_only_while_the_caller_has_not_suspended():
    """A task that suspends while the graph runs in the caller's own step leaves
    its coroutine and context to the graph (untracked, like the nodes); once the
    caller suspends, and after the call, the collector sees them again, and a
    coroutine kept by user code outlives the call and dies cleanly."""
    seen: dict[str, Any] = {}
    kept: dict[str, Any] = {}

    async def early(self: Any) -> int:
        kept["coro"] = asyncio.current_task().get_coro()
        kept["self"] = self
        seen["early, running"] = gc.is_tracked(kept["coro"])
        await self.late  # blocks: late has not started yet
        seen["early coro, resumed"] = gc.is_tracked(kept["coro"])
        seen["early self, resumed"] = gc.is_tracked(self)
        return 1

    def observer() -> int:
        # Runs in the caller's step, after early suspended.
        seen["early coro, suspended"] = gc.is_tracked(kept["coro"])
        seen["early self, suspended"] = gc.is_tracked(kept["self"])
        return 0

    async def late(self: Any) -> int:
        await asyncio.sleep(0)  # the caller suspends here
        seen["late coro"] = gc.is_tracked(asyncio.current_task().get_coro())
        return 2

    r = await C.all({"early": early, "observer": observer, "late": late})
    assert r == {"early": 1, "observer": 0, "late": 2}
    assert seen == {
        "early, running": True,
        "early coro, suspended": False,
        "early self, suspended": False,
        "early coro, resumed": True,
        "early self, resumed": True,
        "late coro": True,
    }
    coro = kept.pop("coro")
    kept.clear()
    assert gc.is_tracked(coro)
    probe = weakref.ref(coro)
    del coro
    gc.collect()
    assert probe() is None


async def test_a_finished_call_is_freed_without_the_collector():
    """Graph, nodes, contexts and awaitables of a finished call form no
    reference cycle: reference counting alone frees them."""
    refs: list[weakref.ref[Any]] = []

    async def a(self: Any) -> int:
        refs.append(weakref.ref(self))
        refs.append(weakref.ref(asyncio.current_task()))
        return await self.b

    async def b(self: Any) -> int:
        await asyncio.sleep(0)
        return 1

    gc.disable()
    try:
        graph = C.all({"a": a, "b": b})
        refs.append(weakref.ref(graph))
        assert await graph == {"a": 1, "b": 1}
        del graph
        assert [r() for r in refs] == [None, None, None]
    finally:
        gc.enable()


async def test_a_finished_tasks_self_is_reused_by_the_next_task():
    """A task that ends in its first step and kept no `self` hands it to the next
    task (the engine makes one context per call, not per task, in a chain in
    dependency order): everything it says and does is the new task's."""
    names: list[str] = []
    signals: list[Any] = []

    def body(dep: str | None) -> Callable[[Any], Any]:
        async def t(self: Any) -> int:
            names.append(self._name)
            signals.append(self._signal)
            if dep is None:
                return 0
            v = await self[dep] + 1
            assert await self[dep] == v - 1  # the same sibling again (its fast path)
            return v

        return t

    tasks = {"t0": body(None)} | {f"t{i}": body(f"t{i - 1}") for i in range(1, 50)}
    assert await C.all(tasks) == {f"t{i}": i for i in range(50)}
    assert names == [f"t{i}" for i in range(50)]
    assert all(s is signals[0] for s in signals)

    # Synchronous tasks that take self, and a sibling read after a reuse.
    def sync(self: Any) -> str:
        return self._name

    async def reads(self: Any) -> str:
        return await self.s3 + "!"

    r = await C.all({**{f"s{i}": sync for i in range(5)}, "reads": reads})
    assert r == {**{f"s{i}": f"s{i}" for i in range(5)}, "reads": "s3!"}
    with pytest.raises(betterall.UnknownTaskError):
        await C.all({"a": sync, "b": lambda self: self.nope})


async def test_a_self_that_is_kept_is_never_reused():
    """A `self` kept by user code (a reference, a weak reference, a sibling
    awaitable it made that is still held) stays that task's own."""
    kept: dict[str, Any] = {}
    weak: dict[str, Any] = {}
    awaitables: dict[str, Any] = {}

    async def keeper(self: Any) -> str:
        kept["keeper"] = self
        return self._name

    async def weakly(self: Any) -> str:
        weak["weakly"] = weakref.ref(self)
        return self._name

    async def holder(self: Any) -> int:
        aw = self.keeper
        awaitables["holder"] = aw
        await aw
        return 1

    async def after(self: Any) -> tuple[str, bool, bool]:
        mine = self.keeper
        return (
            self._name,
            self is kept["keeper"] or self is weak["weakly"](),
            mine is awaitables["holder"],
        )

    r = await C.all({"keeper": keeper, "weakly": weakly, "holder": holder, "after": after})
    assert r == {"keeper": "keeper", "weakly": "weakly", "holder": 1, "after": ("after", False, False)}
    assert kept["keeper"]._name == "keeper"
    assert awaitables["holder"].done() and awaitables["holder"].result() == "keeper"
    # The weakly referenced context was not handed on (the weak reference kept
    # it out); it died with its task.
    assert weak["weakly"]() is None


async def test_node_supports_weak_references_like_a_task():
    """current_task() inside a node can key a WeakKeyDictionary, as anyio does with tasks."""
    states: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()

    async def a(self: Any) -> str:
        states[asyncio.current_task()] = "a-state"
        await asyncio.sleep(0)
        return states[asyncio.current_task()]

    assert await C.all({"a": a}) == {"a": "a-state"}
    gc.collect()
    assert len(states) == 0


# -- 7. leak loop in a subprocess -----------------------------------------------------

LEAK_SCRIPT = textwrap.dedent(
    """
    import asyncio, gc, json, sys
    import betterall

    eng = betterall._engines()["c"]
    CALLS, MARKS = 20_000, (2_000, 5_000, 20_000)

    async def leaf(self):
        return 1

    async def slow(self):
        await asyncio.sleep(0)
        return 2

    async def uses(self):
        return await self.leaf + await self.slow + await self["leaf"]

    async def boom(self):
        await asyncio.sleep(0)
        raise ValueError("boom")

    async def waits_boom(self):
        return await self.boom

    async def sleeper(self):
        await asyncio.sleep(10)

    async def cyc_a(self):
        return await self.b

    async def cyc_b(self):
        await asyncio.sleep(0)
        return await self.a

    async def unknown(self):
        return await self.nope

    async def ender(self):
        await asyncio.sleep(0)
        self._end(await self.leaf + 41)

    SUCCESS = {"leaf": leaf, "slow": slow, "uses": uses,
               "sync": lambda self: 3, "noarg": lambda: 4}
    FAILURE = {"boom": boom, "w": waits_boom, "s": sleeper, "leaf": leaf}
    SETTLED = {"boom": boom, "w": waits_boom, "leaf": leaf, "slow": slow}
    CYCLE = {"a": cyc_a, "b": cyc_b, "leaf": leaf}
    UNKNOWN = {"leaf": leaf, "u": unknown, "s": sleeper}
    FLOW = {"leaf": leaf, "end": ender, "s": sleeper}
    TIMEOUT = {"leaf": leaf, "s": sleeper, "slow": slow}
    traces = []

    async def one(i):
        k = i % 8
        if k == 0:
            r = await eng.all(SUCCESS)
            assert r == {"leaf": 1, "slow": 2, "uses": 4, "sync": 3, "noarg": 4}, r
        elif k == 1:
            try:
                await eng.all(FAILURE)
            except ValueError:
                pass
            else:
                raise AssertionError("no failure")
        elif k == 2:
            try:
                await eng.all(CYCLE)
            except betterall.CycleError:
                pass
            else:
                raise AssertionError("no cycle")
        elif k == 3:
            try:
                await eng.all(UNKNOWN)
            except betterall.UnknownTaskError:
                pass
            else:
                raise AssertionError("no unknown-name error")
        elif k == 4:
            r = await eng.all_settled(SETTLED)
            assert [s.status for s in r.values()] == [
                "rejected", "rejected", "fulfilled", "fulfilled"], r
        elif k == 5:
            assert await eng.flow(FLOW) == 42
        elif k == 6:
            try:
                await eng.all(TIMEOUT, timeout=0)
            except TimeoutError:
                pass
            else:
                raise AssertionError("no timeout")
        else:
            r = await eng.all(SUCCESS, debug=traces.append)
            assert r["uses"] == 4
            traces.clear()

    async def main():
        marks = {}
        for i in range(1, CALLS + 1):
            await one(i)
            if i in MARKS:
                gc.collect()
                marks[i] = {"blocks": sys.getallocatedblocks(),
                            "objects": len(gc.get_objects())}
        assert asyncio.all_tasks() == {asyncio.current_task()}
        return marks

    print(json.dumps(asyncio.run(main())))
    """
)


def test_no_leak_over_20000_mixed_graph_calls():
    """20k mixed calls: allocated blocks and GC objects stay flat after warm-up."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONASYNCIODEBUG",)}
    proc, out = run_script(LEAK_SCRIPT, env, timeout=120)
    assert proc.stderr == "", f"leak script wrote to stderr:\n{proc.stderr}"
    marks = {int(k): v for k, v in out.items()}
    blocks = marks[20_000]["blocks"] - marks[5_000]["blocks"]
    objects = marks[20_000]["objects"] - marks[5_000]["objects"]
    report = f"growth from call 5000 to 20000: {blocks} blocks, {objects} objects; marks {marks}"
    assert blocks <= 2_000, report
    assert objects <= 2_000, report


async def test_tracing_reads_the_clock_once_per_synchronous_task():
    """With tracing on, a node that starts right after the previous one ended starts at that end;
    after a node suspends, the next start is read afresh."""
    import time

    def busy(self: Any) -> str:
        time.sleep(0.02)  # a synchronous task that takes 20 ms
        return "busy"

    async def suspends(self: Any) -> str:
        time.sleep(0.02)  # 20 ms of work, then a real suspension
        await asyncio.sleep(0)
        return "suspends"

    traces: list[Any] = []
    await C.all(
        {"a": lambda self: 1, "b": busy, "c": suspends, "d": lambda self: 4, "e": lambda self: 5},
        debug=traces.append,
    )
    t = traces[0].tasks
    assert t["b"].start == t["a"].end  # nothing ran between them
    assert t["c"].start == t["b"].end
    assert t["b"].end - t["b"].start >= 0.02
    # c suspended after 20 ms of work: d's start is a fresh reading, not c's start
    assert t["d"].start - t["c"].start >= 0.02
    assert t["e"].start == t["d"].end


# -- the C sources: each header compiles on its own ------------------------------

SRC = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "src")
HEADERS = ("state.h", "node.h", "sibling.h", "context.h", "graph.h")


def _compiler() -> list[str] | None:
    import shlex
    import shutil
    import sysconfig

    for candidate in (sysconfig.get_config_var("CC"), "cc", "gcc", "clang"):
        if candidate:
            command = shlex.split(candidate)
            if shutil.which(command[0]):
                return command
    return None


@pytest.mark.parametrize("header", HEADERS)
def test_each_c_header_compiles_on_its_own(header, tmp_path):
    """Every header has its include guard and includes what it uses: a C file
    that includes it alone, twice, compiles without an error (an isolated
    header only warns that the functions of the others are declared and not
    defined)."""
    import sysconfig

    if not os.path.exists(os.path.join(SRC, header)):
        pytest.skip("the C sources are not here (an installed package is under test)")
    compiler = _compiler()
    if compiler is None:
        pytest.skip("no C compiler found")
    source = tmp_path / "alone.c"
    source.write_text(f'#include "{header}"\n#include "{header}"\n')
    proc = subprocess.run(
        [*compiler, "-fsyntax-only", "-std=c11", "-I", SRC,
         "-I", sysconfig.get_paths()["include"], str(source)],
        capture_output=True, text=True, timeout=120,
    )
    errors = [line for line in proc.stderr.splitlines() if "error" in line]
    assert proc.returncode == 0 and not errors, proc.stderr
