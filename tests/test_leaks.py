"""Leaks and memory: nothing a call creates outlives it.

- scripts/leakcheck.py, run in a subprocess for each engine, runs tens of
  thousands of graphs of mixed shapes and outcomes and fails if allocated
  blocks, RSS or the population of any object type keeps growing; a
  self-test checks that it does catch an injected reference leak.
- After a call returns (on success, failure, also under asyncio.wait_for,
  caller cancellation, timeout, ``_end`` in flow, and failures in
  all_settled), the contexts (``self``), sibling awaitables, task objects
  and the call's awaitable are collectable, also when a task stored them in
  a global list (once the list is cleared).

tests/test_engine_design.py covers the C engine alone (GC tracking, freeing
without the collector, a stash on success and failure); these run for every
engine through the public API, on every path.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
import gc
import os
from pathlib import Path
import subprocess
import sys
from typing import Any
import weakref

import pytest

import betterall  # only to find the package the subprocess must import

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "leakcheck.py"

# -- the leak check script ----------------------------------------------------------------

# Enough graphs for every shape to run ~2000 times (~2 s with the C engine,
# ~6 s with the pure-Python one).
CI_GRAPHS = "40000"


def run_leakcheck(engine: str, *args: str) -> subprocess.CompletedProcess[str]:
    # No asyncio debug mode (slow, and not what is measured), no debug charts.
    drop = ("PYTHONASYNCIODEBUG", "BETTERALL_DEBUG", "PYTHONMALLOC", "PYTHONWARNINGS")
    env = {k: v for k, v in os.environ.items() if k not in drop}
    # The script imports the same betterall as this test process.
    package_root = str(Path(betterall.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, env.get("PYTHONPATH")]))
    return subprocess.run(
        [sys.executable, str(SCRIPT), "--engine", engine, *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )


def test_leakcheck_finds_no_growth(ba):
    """Mixed graphs of every shape and outcome: memory and object counts stay flat."""
    proc = run_leakcheck(ba.ENGINE, "--graphs", CI_GRAPHS)
    report = f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    assert proc.returncode == 0, report
    assert "leakcheck: OK, nothing kept growing" in proc.stdout, report
    assert proc.stderr == "", report


def test_leakcheck_catches_a_leaked_reference(ba):
    """The check fails (status 1), naming betterall's types, when a context leaks every 2nd round."""
    proc = run_leakcheck(ba.ENGINE, "--graphs", "8000", "--inject-leak", "2")
    report = f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    assert proc.returncode == 1, report
    assert "leakcheck: FAILED" in proc.stdout, report
    failed = proc.stdout.split("leakcheck: FAILED", 1)[1]
    assert "type betterall." in failed, report


# -- weak references: the objects of a call die with it ------------------------------------

STASH: list[Any] = []  # "somewhere global" where a task stores its objects


class Tracker:
    """Follows objects without keeping them alive: by weak reference where the
    type allows it, else by identity among the objects the collector knows."""

    def __init__(self) -> None:
        self.refs: list[tuple[str, weakref.ref[Any]]] = []
        self.ids: dict[int, tuple[type, str]] = {}

    def add(self, what: str, obj: Any) -> None:
        try:
            self.refs.append((what, weakref.ref(obj)))
        except TypeError:
            self.ids[id(obj)] = (type(obj), what)

    def __len__(self) -> int:
        return len(self.refs) + len(self.ids)

    def alive(self) -> list[str]:
        """What is still alive after one full collection."""
        gc.collect()
        found = [f"{what}: {type(ref()).__name__}" for what, ref in self.refs if ref() is not None]
        if self.ids:
            for obj in gc.get_objects():
                entry = self.ids.get(id(obj))
                if entry is not None and type(obj) is entry[0]:
                    found.append(f"{entry[1]}: {entry[0].__name__}")
        return found


PATHS = [
    "success",
    "failure",
    "failure_in_wait_for",
    "caller_cancelled",
    "timeout",
    "flow_end",
    "settled_failure",
]


def make_tasks(path: str, keep: Callable[[str, Any], None]) -> dict[str, Any]:
    """A graph whose tasks hand their context, sibling awaitables and task
    object to ``keep``; ``slow`` is cancelled by the graph except on success."""

    async def a(self: Any) -> Any:
        keep("a: self", self)
        keep("a: task", asyncio.current_task())
        b = self.b
        keep("a: awaitable of b (awaited)", b)
        gathered = self.fast
        keep("a: awaitable of fast (gathered)", gathered)
        never = self.slow
        keep("a: awaitable of slow (never awaited)", never)
        value, fast = await asyncio.gather(b, gathered)

        def closure() -> Any:  # a reference cycle through self
            return self, closure

        return lambda: (self, value + fast, closure)  # the result refers to self

    async def b(self: Any) -> int:
        keep("b: self", self)
        keep("b: task", asyncio.current_task())
        keep("b: awaitable of a", self.a)
        await asyncio.sleep(0)
        return 2

    def fast(self: Any) -> int:
        keep("fast: self", self)
        return 1

    async def slow(self: Any) -> str:
        keep("slow: self", self)
        keep("slow: task", asyncio.current_task())
        keep("slow: awaitable of b", self.b)
        await asyncio.sleep(0 if path in ("success", "settled_failure") else 10)
        return "slow"

    tasks: dict[str, Any] = {"a": a, "b": b, "fast": fast, "slow": slow}
    if path in ("failure", "failure_in_wait_for", "settled_failure"):

        async def bad(self: Any) -> None:
            keep("bad: self", self)
            keep("bad: task", asyncio.current_task())
            await self.b
            raise ValueError("bad")

        tasks["bad"] = bad
    if path == "flow_end":

        async def ender(self: Any) -> None:
            keep("ender: self", self)
            keep("ender: task", asyncio.current_task())
            self._end(await self.a)

        tasks["ender"] = ender
    return tasks


async def run_path(ba: Any, path: str, keep: Callable[[str, Any], None]) -> None:
    """Run the graph of ``path`` to its outcome, checking the outcome, then let
    the loop run the callbacks already scheduled (done callbacks of finished
    tasks may still refer to them).  Nothing of the call is kept: the result
    and any error are dropped on return.

    The call's awaitable is kept in a local variable while it is awaited, as
    in ``call = ba.all(...); await call``: an error's traceback then refers
    to this frame, which refers to the awaitable (a reference cycle that the
    collector must be able to break).
    """
    await _run_path(ba, path, keep)
    for _ in range(2):
        await asyncio.sleep(0)


async def _run_path(ba: Any, path: str, keep: Callable[[str, Any], None]) -> None:
    tasks = make_tasks(path, keep)
    if path == "success":
        call = ba.all(tasks)
        keep("the call's awaitable", call)
        result = await call
        assert result["a"]()[1] == 3
    elif path == "failure":
        call = ba.all(tasks)
        keep("the call's awaitable", call)
        try:
            await call
        except ValueError:
            pass
        else:
            raise AssertionError("the graph did not fail")
    elif path == "failure_in_wait_for":
        # Held by asyncio.wait_for (its frame and the task it wraps the
        # awaitable in) rather than by a local variable.
        call = ba.all(tasks)
        keep("the call's awaitable", call)
        waiting = asyncio.wait_for(call, 5)
        del call
        try:
            await waiting
        except ValueError:
            pass
        else:
            raise AssertionError("the graph did not fail")
    elif path == "caller_cancelled":

        async def caller() -> Any:
            call = ba.all(tasks)
            keep("the call's awaitable", call)
            return await call

        outer = asyncio.create_task(caller())
        for _ in range(3):
            await asyncio.sleep(0)
        outer.cancel()
        try:
            await outer
        except asyncio.CancelledError:
            pass
        assert outer.cancelled()
    elif path == "timeout":
        call = ba.all_settled(tasks, timeout=0.05)
        keep("the call's awaitable", call)
        result = await call
        assert isinstance(result["slow"].reason, TimeoutError)
        assert result["a"].value()[1] == 3
    elif path == "flow_end":
        call = ba.flow(tasks)
        keep("the call's awaitable", call)
        assert (await call)()[1] == 3
    else:
        call = ba.all_settled(tasks)
        keep("the call's awaitable", call)
        result = await call
        assert isinstance(result["bad"].reason, ValueError)
        assert result["slow"].value == "slow"


@pytest.mark.parametrize("path", PATHS)
async def test_objects_of_a_call_are_collectable_after_it(ba, path):
    """After the call, its contexts, sibling awaitables, tasks and awaitable die on gc.collect()."""
    tracker = Tracker()
    await run_path(ba, path, tracker.add)
    assert len(tracker) >= 10, "the graph did not run its tasks"
    alive = tracker.alive()
    assert not alive, f"still alive after the call ({path}) and gc.collect(): {alive}"


@pytest.mark.parametrize("path", PATHS)
async def test_objects_stored_by_tasks_are_collectable_once_released(ba, path):
    """Tasks that store self, sibling awaitables and their task globally: all die once the store is cleared."""
    tracker = Tracker()

    def keep(what: str, obj: Any) -> None:
        STASH.append(obj)
        tracker.add(what, obj)

    STASH.clear()
    try:
        await run_path(ba, path, keep)
        assert len(tracker) >= 10, "the graph did not run its tasks"
        assert tracker.alive(), "the stored objects died while stored: the tracker is broken"
    finally:
        STASH.clear()
    alive = tracker.alive()
    assert not alive, f"still alive after the call ({path}), the store cleared and gc.collect(): {alive}"


class Marker:
    """An object that a task holds, to see whether it is freed."""


async def test_a_call_abandoned_while_it_waits_is_collectable(ba):
    """A caller dropped while its graph waits on a future nobody resolves: all of it dies on gc.collect().

    Nothing references the caller's task, the graph or the future any more,
    only the cycle between them (as with an asyncio.Task abandoned on a
    future). asyncio reports each destroyed pending task; the test collects
    those reports instead of letting them fail it."""
    loop = asyncio.get_running_loop()
    # Only the messages: keeping the contexts would keep (resurrect) the
    # destroyed tasks, which 3.14's asyncio.all_tasks() would then list.
    destroyed: list[str] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, context: destroyed.append(context["message"]))
    tracker = Tracker()
    try:
        for _ in range(3):
            never = loop.create_future()
            marker = Marker()
            tracker.add("an object a waiting task holds", marker)

            async def waiter(self: Any, never: Any = never, marker: Marker = marker) -> None:
                tracker.add("the waiting task's self", self)
                await never

            async def caller() -> None:
                await ba.all({"waiter": waiter, "done": lambda self: 1})

            task = loop.create_task(caller())
            tracker.add("the caller's task", task)
            await asyncio.sleep(0.01)  # the caller now waits on the graph
            assert not task.done()
            del task, never, marker, waiter, caller
        # Collecting the abandoned caller may close its coroutine, which
        # stops the graph's tasks (3.15 does): their wake-ups then wait on
        # the loop, so give it a few turns between collections.
        for _ in range(3):
            gc.collect()
            await asyncio.sleep(0.01)
        gc.collect()
        alive = tracker.alive()
        assert not alive, f"an abandoned call is still alive after gc.collect(): {alive}"
        assert destroyed and all("destroyed but it is pending" in m for m in destroyed)
    finally:
        loop.set_exception_handler(previous)
