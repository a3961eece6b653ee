"""Issue 5, "Concurrency and environments": betterall where real programs run it.

- many threads, each with its own event loop, running graphs at the same time
  (no hidden global state), one loop fed from many threads, the signal polled
  from a worker thread;
- nested graphs (a task that runs its own all / all_settled / flow);
- a graph inside asyncio.TaskGroup, under asyncio.timeout and asyncio.wait_for;
- a graph on a loop with asyncio.eager_task_factory (3.12+);
- inside anyio running on asyncio (anyio.run(main, backend="asyncio")), also
  anyio's own primitives inside graph tasks (docs/api.md: "libraries built on them
  work inside a task exactly as in an asyncio.Task");
- on uvloop.

Every await of a call is bounded (asyncio.wait_for(..., LIMIT)) so that a hang
fails the test; anyio checks run in a subprocess with a timeout, since a
livelocked loop cannot be interrupted from inside.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
import contextvars
import inspect
import subprocess
import sys
import threading
import time
import types
from typing import Any

import pytest

from helpers import LIMIT, MODES, call, run, run_script
THREADS = 8
DURATION = 1.5  # seconds of concurrent graphs per engine

VAR: contextvars.ContextVar[str] = contextvars.ContextVar("betterall_env_var", default="unset")


async def _awaiting(aw: Any) -> Any:
    return await aw


def _expected_plain(mode: str, results: dict[str, Any], ba: types.SimpleNamespace) -> Any:
    """What `mode` returns for tasks that all succeed with `results`."""
    if mode == "all":
        return results
    if mode == "all_settled":
        return {k: ba.Settled.fulfilled(v) for k, v in results.items()}
    return None


# -- many threads, each with its own loop ------------------------------------------------


async def _one_round(ba: types.SimpleNamespace, tag: str) -> None:
    """One round of representative graphs whose outcome is exactly known."""
    # Results, sibling waits (direct and through gather), sync tasks, contextvars.
    VAR.set(tag)

    async def user() -> str:
        await asyncio.sleep(0)
        return tag

    async def profile(self: Any) -> str:
        return (await self.user) + ":profile"

    def config() -> str:
        VAR.set("changed by config")
        return VAR.get()

    async def both(self: Any) -> tuple[str, str, str]:
        u, p = await asyncio.gather(self.user, self.profile)
        return u, p, VAR.get()

    r = await ba.all({"user": user, "profile": profile, "config": config, "both": both})
    assert r == {
        "user": tag,
        "profile": tag + ":profile",
        "config": "changed by config",
        "both": (tag, tag + ":profile", tag),
    }
    assert VAR.get() == tag

    # The first error propagates after the sibling was cancelled and cleaned up.
    cleaned: list[str] = []

    async def sleeper(self: Any) -> None:
        try:
            await asyncio.sleep(10)
        finally:
            cleaned.append(self._name)

    async def bad() -> None:
        await asyncio.sleep(0)
        raise ValueError(tag)

    try:
        await ba.all({"sleeper": sleeper, "bad": bad})
    except ValueError as exc:
        assert exc.args == (tag,)
    else:
        raise AssertionError("all() did not raise")
    assert cleaned == ["sleeper"]

    settled = await ba.all_settled({"ok": user, "bad": bad})
    assert settled["ok"] == ba.Settled.fulfilled(tag)
    assert settled["bad"].status == "rejected"
    assert settled["bad"].reason.args == (tag,)

    async def winner(self: Any) -> None:
        await asyncio.sleep(0)
        self._end(tag)

    assert await ba.flow({"sleeper": sleeper, "winner": winner}) == tag
    assert cleaned == ["sleeper", "sleeper"]

    try:
        await ba.all({"sleeper": sleeper}, timeout=0.001)
    except TimeoutError:
        pass
    else:
        raise AssertionError("timeout= did not expire")
    assert cleaned == ["sleeper"] * 3

    task = asyncio.create_task(_awaiting(ba.all({"sleeper": sleeper})))
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        pass
    assert task.cancelled()
    assert cleaned == ["sleeper"] * 4

    async def a(self: Any) -> Any:
        return await self.b

    async def b(self: Any) -> Any:
        await asyncio.sleep(0)
        return await self.a

    try:
        await ba.all({"a": a, "b": b})
    except ba.CycleError as exc:
        assert exc.cycle == ("b", "a", "b")
    else:
        raise AssertionError("no CycleError")

    def typo(self: Any) -> Any:
        return self.usr

    try:
        await ba.all({"user": user, "typo": typo})
    except ba.UnknownTaskError as exc:
        assert "usr" in str(exc)
    else:
        raise AssertionError("no UnknownTaskError")

    async def outer(self: Any) -> Any:
        inner = await ba.all({"x": lambda: tag, "y": lambda self: self.x})
        return inner["y"] + (await self.user)

    assert await ba.all({"user": user, "outer": outer}) == {"user": tag, "outer": tag + tag}


def test_graphs_in_eight_threads_each_with_its_own_loop(ba):
    """8 threads, each running its own event loop (half in debug mode), run graphs
    for a while: every result is exact, nothing crashes or hangs, no task is left."""
    barrier = threading.Barrier(THREADS)
    errors: list[tuple[int, BaseException]] = []
    rounds = [0] * THREADS

    def thread_main(index: int) -> None:
        async def main() -> None:
            stop = time.monotonic() + DURATION
            n = 0
            while time.monotonic() < stop:
                await asyncio.wait_for(_one_round(ba, f"t{index}r{n}"), LIMIT)
                n += 1
            current = asyncio.current_task()
            assert [t for t in asyncio.all_tasks() if t is not current] == []
            rounds[index] = n

        try:
            barrier.wait(timeout=LIMIT)
            asyncio.run(main(), debug=index % 2 == 0)
        except BaseException as exc:  # reported by the main thread
            errors.append((index, exc))

    threads = [threading.Thread(target=thread_main, args=(i,), daemon=True) for i in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(DURATION + 4 * LIMIT)
    assert not [t for t in threads if t.is_alive()], "a thread hung"
    if errors:
        index, exc = errors[0]
        raise AssertionError(f"thread {index} failed ({len(errors)} failures)") from exc
    assert all(n >= 1 for n in rounds), rounds


def test_one_loop_fed_from_many_threads(ba):
    """Graphs submitted with run_coroutine_threadsafe from 4 threads to one loop
    running in another thread all give their own results."""
    loop = asyncio.new_event_loop()
    loop.set_debug(True)
    runner = threading.Thread(target=loop.run_forever, daemon=True)
    runner.start()
    try:

        def submit(i: int) -> list[Any]:
            async def graph(n: int) -> Any:
                async def a() -> tuple[int, int]:
                    await asyncio.sleep(0.001)
                    return i, n

                async def b(self: Any) -> tuple[int, int, str]:
                    return (*(await self.a), "b")

                return await asyncio.wait_for(ba.all({"a": a, "b": b}), LIMIT)

            futures = [asyncio.run_coroutine_threadsafe(graph(n), loop) for n in range(25)]
            return [f.result(LIMIT) for f in futures]

        with ThreadPoolExecutor(4) as pool:
            results = list(pool.map(submit, range(4)))
        assert results == [
            [{"a": (i, n), "b": (i, n, "b")} for n in range(25)] for i in range(4)
        ]
    finally:
        loop.call_soon_threadsafe(loop.stop)
        runner.join(LIMIT)
        loop.close()
    assert not runner.is_alive()


async def test_signal_polled_from_a_worker_thread_sees_the_abort(ba):
    """A task blocked in a thread (asyncio.to_thread) polls self._signal; when a
    sibling fails, the thread sees .aborted with that error and stops."""
    seen: list[BaseException | None] = []
    stopped = threading.Event()
    started = threading.Event()

    def blocking(signal: Any) -> None:
        started.set()
        deadline = time.monotonic() + LIMIT
        while not signal.aborted and time.monotonic() < deadline:
            time.sleep(0.002)
        seen.append(signal.reason)
        stopped.set()

    async def worker(self: Any) -> None:
        await asyncio.to_thread(blocking, self._signal)

    error = ValueError("stop the thread")

    async def bad() -> None:
        await asyncio.to_thread(started.wait, LIMIT)
        await asyncio.sleep(0.05)
        raise error

    with pytest.raises(ValueError) as info:
        await run(ba.all({"worker": worker, "bad": bad}))
    assert info.value is error
    assert await asyncio.to_thread(stopped.wait, LIMIT)
    assert seen == [error]


# -- nested graphs -------------------------------------------------------------------------


@pytest.mark.parametrize("inner_mode", MODES)
@pytest.mark.parametrize("outer_mode", MODES)
async def test_nested_graph_in_every_mode_combination(ba, outer_mode, inner_mode):
    """A task that runs its own all / all_settled / flow gets that call's result;
    the outer call gets the task's result."""

    async def x() -> int:
        await asyncio.sleep(0.01)
        return 1

    async def y(self: Any) -> int:
        return await self.x + 1

    async def nested(self: Any) -> Any:
        return await call(ba, inner_mode)({"x": x, "y": y})

    async def plain() -> str:
        await asyncio.sleep(0.01)
        return "plain"

    r = await run(call(ba, outer_mode)({"nested": nested, "plain": plain}))
    inner = _expected_plain(inner_mode, {"x": 1, "y": 2}, ba)
    assert r == _expected_plain(outer_mode, {"nested": inner, "plain": "plain"}, ba)


async def test_three_levels_of_nesting_awaiting_outer_siblings(ba):
    """Tasks of nested graphs await siblings of the enclosing graphs through the
    captured outer `self`: each gets the outer sibling's result."""

    async def base() -> int:
        await asyncio.sleep(0.02)
        return 10

    async def level1(self1: Any) -> Any:
        async def mid(self2: Any) -> Any:
            async def leaf(self3: Any) -> int:
                return (await self1.base) + (await self2.near) + (await self3.deep)

            async def deep() -> int:
                await asyncio.sleep(0.01)
                return 1

            r3 = await ba.all({"leaf": leaf, "deep": deep})
            return r3["leaf"]

        async def near() -> int:
            await asyncio.sleep(0.005)
            return 100

        r2 = await ba.all({"mid": mid, "near": near})
        return r2["mid"]

    r = await run(ba.all({"level1": level1, "base": base}))
    assert r == {"level1": 111, "base": 10}


async def test_nested_task_awaiting_its_own_parent_task_is_a_cycle_not_a_hang(ba):
    """A task of an inner graph that awaits the outer task running that graph
    (through the outer `self`) raises CycleError instead of waiting forever."""

    async def parent(self: Any) -> Any:
        outer = self

        async def inner(self: Any) -> Any:
            return await outer.parent

        return await ba.all({"inner": inner})

    with pytest.raises(ba.CycleError) as info:
        await run(ba.all({"parent": parent}))
    assert info.value.cycle == ("parent", "parent")


@pytest.mark.parametrize("inner_mode", MODES)
async def test_outer_failure_cancels_the_nested_graph_before_returning(ba, inner_mode):
    """When an outer sibling fails, the task running a nested graph is cancelled:
    every inner task is cancelled and has cleaned up before the outer call returns."""
    log: list[str] = []
    snapshot: list[str] = []

    async def inner_task(self: Any) -> None:
        try:
            await asyncio.sleep(10)
        finally:
            await asyncio.sleep(0.01)  # cleanup that itself takes loop turns
            log.append(self._name)

    async def runner() -> Any:
        return await call(ba, inner_mode)({"i1": inner_task, "i2": inner_task})

    async def bad() -> None:
        await asyncio.sleep(0.05)
        raise KeyError("outer")

    with pytest.raises(KeyError):
        try:
            await run(ba.all({"runner": runner, "bad": bad}))
        finally:
            snapshot.extend(log)
    assert sorted(snapshot) == ["i1", "i2"]


async def test_inner_flow_end_does_not_end_the_outer_flow(ba):
    """`_end` in a nested flow ends only that flow; the outer flow goes on and
    returns its own `_end` value."""

    async def runner(self: Any) -> None:
        async def quick(inner: Any) -> None:
            inner._end("inner")

        got = await ba.flow({"quick": quick})
        await asyncio.sleep(0.01)
        self._end(("outer", got))

    async def slow() -> None:
        await asyncio.sleep(10)

    assert await run(ba.flow({"runner": runner, "slow": slow})) == ("outer", "inner")


@pytest.mark.parametrize("inner_mode", ["all", "flow"])
async def test_outer_end_called_from_a_nested_task_ends_the_outer_flow(ba, inner_mode):
    """A nested task calling the outer task's `self._end(v)` ends the outer flow
    with v; the inner call stops on that FlowEnd and every task finishes."""
    cleaned: list[str] = []

    async def runner(self: Any) -> Any:
        outer = self

        async def ender() -> None:
            await asyncio.sleep(0.01)
            outer._end("outer value")

        async def inner_slow(inner: Any) -> None:
            try:
                await asyncio.sleep(10)
            finally:
                cleaned.append("inner")

        return await call(ba, inner_mode)({"ender": ender, "inner_slow": inner_slow})

    async def slow() -> None:
        try:
            await asyncio.sleep(10)
        finally:
            cleaned.append("outer")

    assert await run(ba.flow({"runner": runner, "slow": slow})) == "outer value"
    assert sorted(cleaned) == ["inner", "outer"]


async def test_outer_end_called_from_a_nested_all_settled_task(ba):
    """A nested all_settled reports the outer `_end`'s FlowEnd as its task's
    rejection and does not cancel the other inner task; the outer flow cancels
    its other tasks and returns v once the ending task has finished."""
    seen: list[Any] = []

    async def runner(self: Any) -> None:
        outer = self

        async def ender() -> None:
            await asyncio.sleep(0.01)
            outer._end("outer value")

        async def inner_slow() -> str:
            await asyncio.sleep(0.1)
            return "inner done"

        settled = await ba.all_settled({"ender": ender, "inner_slow": inner_slow})
        seen.append(settled)

    async def slow() -> None:
        await asyncio.sleep(10)

    assert await run(ba.flow({"runner": runner, "slow": slow})) == "outer value"
    [settled] = seen
    assert settled["inner_slow"] == ba.Settled.fulfilled("inner done")
    assert settled["ender"].status == "rejected"
    assert isinstance(settled["ender"].reason, ba.FlowEnd)
    assert settled["ender"].reason.value == "outer value"


async def test_nested_graph_timeout_shorter_than_outer(ba):
    """A nested call with timeout= raises TimeoutError in the task that runs it;
    the outer graph, with a longer timeout, is unaffected."""

    async def runner() -> str:
        async def slow() -> None:
            await asyncio.sleep(10)

        try:
            await ba.all({"slow": slow}, timeout=0.02)
        except TimeoutError:
            return "inner timed out"
        return "no timeout"

    r = await run(ba.all({"runner": runner, "other": lambda: 2}, timeout=5))
    assert r == {"runner": "inner timed out", "other": 2}


# -- TaskGroup -----------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
async def test_graphs_as_taskgroup_children(ba, mode):
    """Several graphs as children of one asyncio.TaskGroup each give their results."""

    async def a() -> int:
        await asyncio.sleep(0.01)
        return 1

    async def b(self: Any) -> int:
        return await self.a + 1

    async with asyncio.timeout(LIMIT):
        async with asyncio.TaskGroup() as tg:
            children = [tg.create_task(_awaiting(call(ba, mode)({"a": a, "b": b}))) for _ in range(5)]
    for child in children:
        assert child.result() == _expected_plain(mode, {"a": 1, "b": 2}, ba)


@pytest.mark.parametrize("mode", MODES)
async def test_failing_taskgroup_sibling_cancels_the_graph_cleanly(ba, mode):
    """A TaskGroup child failing cancels a graph running in another child: the
    graph's tasks clean up, and the ExceptionGroup holds only the child's error."""
    cleaned: list[str] = []

    async def slow(self: Any) -> None:
        try:
            await asyncio.sleep(10)
        finally:
            cleaned.append(self._name)

    async def failing_child() -> None:
        await asyncio.sleep(0.03)
        raise ValueError("tg child")

    async with asyncio.timeout(LIMIT):
        with pytest.raises(ExceptionGroup) as info:
            async with asyncio.TaskGroup() as tg:
                graph = tg.create_task(_awaiting(call(ba, mode)({"s1": slow, "s2": slow})))
                tg.create_task(failing_child())
    assert [type(e) for e in info.value.exceptions] == [ValueError]
    assert graph.cancelled()
    assert sorted(cleaned) == ["s1", "s2"]


@pytest.mark.parametrize("mode", ["all", "flow"])
async def test_failing_graph_in_taskgroup_cancels_its_siblings(ba, mode):
    """A graph whose task fails raises that error out of its TaskGroup child; the
    TaskGroup cancels its other children and reports exactly that error."""
    error = KeyError("graph task")
    other_cancelled: list[bool] = []

    async def bad() -> None:
        await asyncio.sleep(0.02)
        raise error

    async def other_child() -> None:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            other_cancelled.append(True)
            raise

    async with asyncio.timeout(LIMIT):
        with pytest.raises(ExceptionGroup) as info:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(_awaiting(call(ba, mode)({"bad": bad, "ok": lambda: 1})))
                tg.create_task(other_child())
    assert list(info.value.exceptions) == [error]
    assert other_cancelled == [True]


async def test_taskgroup_inside_a_graph_task_inside_a_taskgroup(ba):
    """TaskGroup -> graph -> task with its own TaskGroup whose children await
    graph siblings: results flow through every level."""

    async def base() -> int:
        await asyncio.sleep(0.01)
        return 3

    async def fan(self: Any) -> list[int]:
        async with asyncio.TaskGroup() as tg:
            kids = [tg.create_task(_awaiting(self.base)) for _ in range(3)]
        return [k.result() * i for i, k in enumerate(kids)]

    async with asyncio.timeout(LIMIT):
        async with asyncio.TaskGroup() as tg:
            g = tg.create_task(_awaiting(ba.all({"base": base, "fan": fan})))
    assert g.result() == {"base": 3, "fan": [0, 3, 6]}


# -- asyncio.timeout and asyncio.wait_for around a call ----------------------------------


@pytest.mark.parametrize("mode", MODES)
async def test_asyncio_timeout_expiring_around_a_call(ba, mode):
    """asyncio.timeout expiring around a call raises TimeoutError after every task
    has cleaned up; the timeout context reports it expired."""
    cleaned: list[str] = []
    snapshot: list[str] = []

    async def slow(self: Any) -> None:
        try:
            await asyncio.sleep(10)
        finally:
            await asyncio.sleep(0.01)
            cleaned.append(self._name)

    t0 = time.monotonic()
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.05) as cm:
            try:
                await call(ba, mode)({"a": slow, "b": slow, "c": lambda: 1})
            finally:
                snapshot.extend(cleaned)
    assert cm.expired()
    assert sorted(snapshot) == ["a", "b"]
    assert time.monotonic() - t0 < 2


@pytest.mark.parametrize("mode", MODES)
async def test_asyncio_timeout_not_expiring_around_a_call(ba, mode):
    """A call that finishes within asyncio.timeout returns its result normally."""

    async def quick() -> int:
        await asyncio.sleep(0.01)
        return 1

    async with asyncio.timeout(LIMIT) as cm:
        r = await call(ba, mode)({"q": quick, "s": lambda: 2})
    assert not cm.expired()
    assert r == _expected_plain(mode, {"q": 1, "s": 2}, ba)


async def test_graph_timeout_fires_before_enclosing_asyncio_timeout(ba):
    """timeout= shorter than an enclosing asyncio.timeout: the call's own
    TimeoutError propagates and the enclosing timeout has not expired."""

    async def slow() -> None:
        await asyncio.sleep(10)

    with pytest.raises(TimeoutError) as info:
        async with asyncio.timeout(LIMIT) as cm:
            await ba.all({"slow": slow}, timeout=0.02)
    assert not cm.expired()
    assert "timed out" in str(info.value)


async def test_enclosing_asyncio_timeout_fires_before_graph_timeout(ba):
    """An enclosing asyncio.timeout shorter than timeout=: the enclosing timeout
    expires (it owns the TimeoutError), and the tasks were cancelled."""
    cleaned: list[str] = []

    async def slow() -> None:
        try:
            await asyncio.sleep(10)
        finally:
            cleaned.append("slow")

    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.02) as cm:
            await ba.all_settled({"slow": slow}, timeout=LIMIT)
    assert cm.expired()
    assert cleaned == ["slow"]


async def test_asyncio_timeout_rescheduled_while_the_call_runs(ba):
    """A task that moves the enclosing asyncio.timeout's deadline later keeps the
    call alive past the original deadline."""
    holder: dict[str, Any] = {}

    async def extend() -> str:
        await asyncio.sleep(0.01)
        holder["cm"].reschedule(asyncio.get_running_loop().time() + LIMIT)
        await asyncio.sleep(0.08)
        return "survived"

    async with asyncio.timeout(0.04) as cm:
        holder["cm"] = cm
        r = await ba.all({"extend": extend})
    assert r == {"extend": "survived"}
    assert not cm.expired()


@pytest.mark.parametrize("mode", MODES)
async def test_wait_for_expiring_around_a_call(ba, mode):
    """asyncio.wait_for expiring raises TimeoutError once every task has cleaned up."""
    cleaned: list[str] = []
    snapshot: list[str] = []

    async def slow(self: Any) -> None:
        try:
            await asyncio.sleep(10)
        finally:
            await asyncio.sleep(0.01)
            cleaned.append(self._name)

    async def guarded() -> None:
        try:
            await asyncio.wait_for(call(ba, mode)({"a": slow, "b": slow}), 0.05)
        finally:
            snapshot.extend(cleaned)

    with pytest.raises(TimeoutError):
        await run(guarded())
    assert sorted(snapshot) == ["a", "b"]


@pytest.mark.parametrize("mode", MODES)
async def test_wait_for_not_expiring_around_a_call(ba, mode):
    """A call that finishes within asyncio.wait_for returns its result."""

    async def quick() -> int:
        await asyncio.sleep(0.01)
        return 1

    r = await asyncio.wait_for(call(ba, mode)({"q": quick, "s": lambda: 2}), LIMIT)
    assert r == _expected_plain(mode, {"q": 1, "s": 2}, ba)


@pytest.mark.parametrize("mode", MODES)
async def test_wait_for_zero_timeout_on_a_suspending_call(ba, mode):
    """wait_for(call, 0) on a call that suspends raises TimeoutError and leaves no
    task behind and no warning (the call is cancelled, possibly before it starts)."""
    started: list[str] = []

    async def slow() -> None:
        started.append("slow")
        await asyncio.sleep(10)

    with pytest.raises(TimeoutError):
        await asyncio.wait_for(call(ba, mode)({"slow": slow}), 0)
    assert started in ([], ["slow"])


async def test_wait_for_with_a_task_that_delays_its_cancellation(ba):
    """wait_for expiring while a task delays its cancellation (slow cleanup)
    still raises TimeoutError, after that cleanup."""
    done: list[str] = []

    async def stubborn() -> str:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            await asyncio.sleep(0.05)
            done.append("cleanup")
            raise
        return "never"

    with pytest.raises(TimeoutError):
        await asyncio.wait_for(ba.all({"stubborn": stubborn}), 0.02)
    assert done == ["cleanup"]


# -- eager task factory (3.12+) -------------------------------------------------------------


@pytest.mark.skipif(sys.version_info < (3, 12), reason="asyncio.eager_task_factory is 3.12+")
@pytest.mark.skip_on_uvloop(
    sys.version_info >= (3, 13)
    and "eager_start" not in inspect.signature(asyncio.eager_task_factory).parameters,
    reason="uvloop on 3.13 passes eager_start= to the task factory, which this CPython's "
    "asyncio.eager_task_factory does not accept: every loop.create_task() raises TypeError",
)
async def test_graphs_on_a_loop_with_eager_task_factory(ba):
    """With asyncio.eager_task_factory: start order, results, a failure at start
    (later tasks never start), caller cancellation and in_task all behave."""
    loop = asyncio.get_running_loop()
    old_factory = loop.get_task_factory()
    loop.set_task_factory(asyncio.eager_task_factory)
    try:
        order: list[str] = []

        async def a() -> int:
            order.append("a")
            await asyncio.sleep(0.01)
            order.append("a done")
            return 1

        async def b(self: Any) -> int:
            order.append("b")
            return await self.a + 1

        def c() -> int:
            order.append("c")
            return 3

        assert await run(ba.all({"a": a, "b": b, "c": c})) == {"a": 1, "b": 2, "c": 3}
        assert order == ["a", "b", "c", "a done"]

        ran: list[int] = []

        async def bad() -> None:
            raise KeyError("at start")

        with pytest.raises(KeyError):
            await run(ba.all({"bad": bad, "never": lambda: ran.append(1)}))
        assert ran == []

        cleaned: list[str] = []

        async def slow() -> None:
            try:
                await asyncio.sleep(10)
            finally:
                cleaned.append("slow")

        task = asyncio.create_task(_awaiting(ba.flow({"slow": slow})))
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await run(task)
        assert cleaned == ["slow"]

        r = await run(ba.all({"t": ba.in_task(lambda self: asyncio.sleep(0.01, "in task"))}))
        assert r == {"t": "in task"}
    finally:
        loop.set_task_factory(old_factory)


# -- anyio on asyncio (in a subprocess: a livelocked loop cannot be stopped from inside) ----


def _assert_ok(proc: subprocess.CompletedProcess[str]) -> None:
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1:] == ["OK"], proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def anyio_available() -> None:
    pytest.importorskip("anyio")


def test_anyio_graphs_inside_anyio_run(ba, anyio_available):
    """Inside anyio.run(backend="asyncio"): results, a failure, all_settled and
    flow, with tasks that use anyio.sleep."""
    proc = run_script(ba, """
        import anyio

        async def main():
            async def a():
                await anyio.sleep(0.01)
                return 1

            async def b(self):
                return await self.a + 1

            assert await ba.all({"a": a, "b": b}) == {"a": 1, "b": 2}

            async def bad():
                await anyio.sleep(0.01)
                raise KeyError("bad")

            try:
                await ba.all({"a": a, "bad": bad})
            except KeyError:
                pass
            else:
                raise AssertionError("no KeyError")

            s = await ba.all_settled({"a": a, "bad": bad})
            assert s["a"] == betterall.Settled.fulfilled(1) and s["bad"].status == "rejected"

            async def ender(self):
                await anyio.sleep(0.01)
                self._end("ended")

            async def slow():
                await anyio.sleep(10)

            assert await ba.flow({"ender": ender, "slow": slow}) == "ended"

        anyio.run(main, backend="asyncio", backend_options={"debug": True})
        print("OK")
    """)
    _assert_ok(proc)


def test_anyio_fail_after_around_a_call(ba, anyio_available):
    """anyio.fail_after expiring around a call (anyio re-cancels the caller on
    every loop turn) raises TimeoutError after the tasks cleaned up; no hang."""
    proc = run_script(ba, """
        import anyio

        async def main():
            cleaned = []

            async def slow(self):
                try:
                    await anyio.sleep(10)
                finally:
                    cleaned.append(self._name)

            for mode in ("all", "all_settled", "flow"):
                t0 = time.monotonic()
                try:
                    with anyio.fail_after(0.05):
                        await getattr(ba, mode)({"s": slow, "t": slow})
                except TimeoutError:
                    pass
                else:
                    raise AssertionError("fail_after did not fire")
                assert time.monotonic() - t0 < 2
                assert sorted(cleaned) == ["s", "t"], cleaned
                cleaned.clear()

            with anyio.move_on_after(0.05) as scope:
                await ba.all({"s": slow})
            assert scope.cancelled_caught

        anyio.run(main, backend="asyncio", backend_options={"debug": True})
        print("OK")
    """)
    _assert_ok(proc)


def test_anyio_task_group_cancelling_a_graph(ba, anyio_available):
    """A graph in an anyio task group whose other child fails is cancelled: its
    tasks clean up and the ExceptionGroup holds only the child's error."""
    proc = run_script(ba, """
        import anyio

        async def main():
            cleaned = []

            async def slow(self):
                try:
                    await anyio.sleep(10)
                finally:
                    cleaned.append(self._name)

            async def graph():
                await ba.all_settled({"s": slow})

            async def bad():
                await anyio.sleep(0.03)
                raise ValueError("bad child")

            try:
                async with anyio.create_task_group() as tg:
                    tg.start_soon(graph)
                    tg.start_soon(bad)
            except ExceptionGroup as eg:
                assert [type(e) for e in eg.exceptions] == [ValueError], eg.exceptions
            else:
                raise AssertionError("no ExceptionGroup")
            assert cleaned == ["s"]

        anyio.run(main, backend="asyncio", backend_options={"debug": True})
        print("OK")
    """)
    _assert_ok(proc)


_ANYIO_IN_TASKS = """
    import anyio

    wrap = {wrap}

    async def main():
        async def fa(self):
            try:
                with anyio.fail_after(0.03):
                    await anyio.sleep(10)
            except TimeoutError:
                return "timed out"
            return "not timed out"

        async def mo(self):
            with anyio.move_on_after(0.03) as scope:
                await anyio.sleep(10)
            return scope.cancelled_caught

        async def cs(self):
            with anyio.CancelScope() as scope:
                scope.cancel()
                await anyio.sleep(10)
            return scope.cancelled_caught

        async def tg_ok(self):
            got = []

            async def child(n):
                await anyio.sleep(0.01 * n)
                got.append(n)

            async with anyio.create_task_group() as tg:
                for n in (3, 1, 2):
                    tg.start_soon(child, n)
            return got

        async def tg_fail(self):
            async def bad():
                await anyio.sleep(0.01)
                raise KeyError("child")

            async def slow():
                await anyio.sleep(10)

            try:
                async with anyio.create_task_group() as tg:
                    tg.start_soon(bad)
                    tg.start_soon(slow)
            except ExceptionGroup as eg:
                return [type(e).__name__ for e in eg.exceptions]
            return "no error"

        async def thread(self):
            return await anyio.to_thread.run_sync(lambda: "from thread")

        t0 = time.monotonic()
        r = await ba.all({{
            "fa": wrap(fa), "mo": wrap(mo), "cs": wrap(cs),
            "tg_ok": wrap(tg_ok), "tg_fail": wrap(tg_fail), "thread": wrap(thread),
        }})
        assert r == {{
            "fa": "timed out", "mo": True, "cs": True, "tg_ok": [1, 2, 3],
            "tg_fail": ["KeyError"], "thread": "from thread",
        }}, r
        assert time.monotonic() - t0 < 2

        # The graph cancelling a task blocked in anyio code.
        async def blocked(self):
            with anyio.CancelScope():
                await anyio.sleep(10)

        async def failing():
            await anyio.sleep(0.02)
            raise ValueError("sibling")

        try:
            await ba.all({{"blocked": wrap(blocked), "failing": failing}})
        except ValueError:
            pass
        else:
            raise AssertionError("no ValueError")

    anyio.run(main, backend="asyncio", backend_options={{"debug": True}})
    print("OK")
"""


def test_anyio_cancel_scopes_and_task_groups_inside_graph_tasks(ba, anyio_available):
    """anyio.fail_after, move_on_after, CancelScope.cancel, task groups (also a
    failing child) and to_thread work inside plain graph tasks."""
    _assert_ok(run_script(ba, _ANYIO_IN_TASKS.format(wrap="lambda fn: fn")))


def test_anyio_cancel_scopes_and_task_groups_inside_in_task(ba, anyio_available):
    """The same anyio primitives work inside tasks wrapped with ba.in_task."""
    _assert_ok(run_script(ba, _ANYIO_IN_TASKS.format(wrap="betterall.in_task")))


# -- uvloop ----------------------------------------------------------------------------------


async def _uvloop_graphs(ba: types.SimpleNamespace, uvloop: bool = True) -> dict[str, Any]:
    """Representative graphs; returns what each gave, for one exact comparison."""
    out: dict[str, Any] = {}
    loop = asyncio.get_running_loop()
    assert type(loop).__module__.startswith("uvloop") == uvloop
    cleaned: list[str] = []

    async def a() -> int:
        await asyncio.sleep(0.01)
        return 1

    async def b(self: Any) -> int:
        return await self.a + 1

    async def gathered(self: Any) -> list[int]:
        return list(await asyncio.gather(self.a, self.b))

    out["deps"] = await run(ba.all({"a": a, "b": b, "g": gathered, "s": lambda: 0}))

    async def slow(self: Any) -> None:
        try:
            await asyncio.sleep(10)
        finally:
            cleaned.append(self._name)

    async def boom() -> None:
        await asyncio.sleep(0.01)
        raise KeyError("boom")

    try:
        await run(ba.all({"slow": slow, "boom": boom}))
    except KeyError as exc:
        out["failure"] = exc.args
    settled = await run(ba.all_settled({"a": a, "boom": boom}))
    out["settled"] = {k: v.status for k, v in settled.items()}

    async def ender(self: Any) -> None:
        await asyncio.sleep(0.01)
        self._end("ended")

    out["flow"] = await run(ba.flow({"slow": slow, "ender": ender}))

    try:
        await run(ba.all({"slow": slow}, timeout=0.02))
    except TimeoutError:
        out["timeout="] = "TimeoutError"
    settled = await run(ba.all_settled({"slow": slow, "a": a}, timeout=0.05))
    out["settled timeout="] = {k: (v.status, type(v.reason).__name__) for k, v in settled.items()}

    task = asyncio.create_task(_awaiting(ba.all({"slow": slow})))
    await asyncio.sleep(0.02)
    task.cancel()
    try:
        await run(task)
    except asyncio.CancelledError:
        out["caller cancel"] = task.cancelled()

    try:
        async with asyncio.timeout(0.02):
            await ba.flow({"slow": slow})
    except TimeoutError:
        out["asyncio.timeout"] = "TimeoutError"

    try:
        await asyncio.wait_for(ba.all_settled({"slow": slow}), 0.02)
    except TimeoutError:
        out["wait_for"] = "TimeoutError"

    async def inner_timeout() -> str:
        try:
            async with asyncio.timeout(0.01):
                await asyncio.sleep(10)
        except TimeoutError:
            return "inner timeout"
        return "no"

    async def tg(self: Any) -> int:
        async with asyncio.TaskGroup() as group:
            child = group.create_task(_awaiting(self.a))
        return child.result()

    async def cyc1(self: Any) -> Any:
        return await self.cyc2

    async def cyc2(self: Any) -> Any:
        await asyncio.sleep(0)
        return await self.cyc1

    out["in task"] = await run(ba.all({
        "a": a,
        "inner_timeout": inner_timeout,
        "tg": tg,
        "in_task": ba.in_task(lambda self: asyncio.sleep(0.01, asyncio.current_task().get_name())),
    }))
    try:
        await run(ba.all({"cyc1": cyc1, "cyc2": cyc2}))
    except ba.CycleError as exc:
        out["cycle"] = exc.cycle

    VAR.set("caller")

    def ctx_task() -> str:
        value = VAR.get()
        VAR.set("task")
        return value

    out["contextvars"] = (await run(ba.all({"c": ctx_task})))["c"], VAR.get()
    out["cleaned"] = cleaned
    return out


UVLOOP_EXPECTED = {
    "deps": {"a": 1, "b": 2, "g": [1, 2], "s": 0},
    "failure": ("boom",),
    "settled": {"a": "fulfilled", "boom": "rejected"},
    "flow": "ended",
    "timeout=": "TimeoutError",
    "settled timeout=": {"slow": ("rejected", "TimeoutError"), "a": ("fulfilled", "NoneType")},
    "caller cancel": True,
    "asyncio.timeout": "TimeoutError",
    "wait_for": "TimeoutError",
    "in task": {"a": 1, "inner_timeout": "inner timeout", "tg": 1, "in_task": "in_task"},
    "cycle": ("cyc2", "cyc1", "cyc2"),
    "contextvars": ("caller", "caller"),
    "cleaned": ["slow"] * 7,
}


def test_representative_graphs_on_uvloop(ba):
    """On uvloop (debug mode): results, failure, all_settled, flow, timeout=,
    caller cancellation, asyncio.timeout / wait_for around and inside a call,
    TaskGroup, in_task, cycles and contextvars behave as on asyncio's loop."""
    uvloop = pytest.importorskip("uvloop")
    with asyncio.Runner(loop_factory=uvloop.new_event_loop, debug=True) as runner:
        out = runner.run(_uvloop_graphs(ba))
    assert out == UVLOOP_EXPECTED


@pytest.mark.skipif(sys.version_info < (3, 12), reason="asyncio.run(loop_factory=) is 3.12+")
def test_representative_graphs_on_uvloop_via_asyncio_run(ba):
    """The same graphs under asyncio.run(..., loop_factory=uvloop.new_event_loop)."""
    uvloop = pytest.importorskip("uvloop")
    out = asyncio.run(_uvloop_graphs(ba), loop_factory=uvloop.new_event_loop, debug=True)
    assert out == UVLOOP_EXPECTED


def test_same_graphs_on_the_default_loop_match_uvloop(ba):
    """Control: the uvloop expectations are exactly what asyncio's own loop gives."""
    out = asyncio.run(_uvloop_graphs(ba, uvloop=False), debug=True)
    assert out == UVLOOP_EXPECTED
