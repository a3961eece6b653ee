"""ba.in_thread: a synchronous task in a worker thread."""

from __future__ import annotations

import asyncio
import contextvars
import threading
import time
from typing import Any

import pytest

from helpers import LIMIT

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id")


async def test_blocking_tasks_run_at_the_same_time(ba):
    """Two tasks that block for 150 ms each take about 150 ms together, not
    300 ms, and the loop stays free meanwhile (a loop task ticks)."""
    ticks: list[float] = []

    def blocking() -> str:
        time.sleep(0.15)
        return threading.current_thread().name

    async def ticker() -> int:
        for _ in range(5):
            ticks.append(time.monotonic())
            await asyncio.sleep(0.02)
        return len(ticks)

    t0 = time.monotonic()
    r = await asyncio.wait_for(
        ba.all({"a": ba.in_thread(blocking), "b": ba.in_thread(blocking), "tick": ticker}), LIMIT
    )
    elapsed = time.monotonic() - t0
    assert elapsed < 0.25, elapsed
    assert r["a"] != threading.current_thread().name and r["tick"] == 5
    assert ticks[-1] - t0 < 0.14  # the loop ran while the threads slept


async def test_the_calling_rule_and_the_context(ba):
    """A function that needs an argument gets the task's context (its name,
    its signal); one that needs none gets none.  The thread sees the task's
    contextvars; what it sets stays there."""
    request_id.set("req-7")

    def no_args() -> str:
        value = request_id.get()
        request_id.set("changed in the thread")
        return value

    def with_self(self: Any) -> tuple:
        return self._name, self._signal.aborted, request_id.get()

    r = await asyncio.wait_for(
        ba.all({"plain": ba.in_thread(no_args), "ctx": ba.in_thread(with_self)}), LIMIT
    )
    assert r == {"plain": "req-7", "ctx": ("ctx", False, "req-7")}
    assert request_id.get() == "req-7"


async def test_an_error_in_the_thread_fails_the_task(ba):
    error = LookupError("no row")

    def failing() -> None:
        raise error

    r = await asyncio.wait_for(ba.all_settled({"q": ba.in_thread(failing)}), LIMIT)
    assert r["q"] == ba.Settled.rejected(error)


@pytest.mark.parametrize("mode", ["all", "flow"])
async def test_a_cancelled_thread_task_is_waited_for(ba, mode):
    """The graph cancels the task (a sibling failed): the thread cannot be
    interrupted, so the call returns only after the function has returned.
    It sees the signal aborted and may return early; the task is cancelled."""
    log: list[str] = []
    traces: list[Any] = []

    def worker(self: Any) -> str:
        for _ in range(40):  # up to 2 s, polling the signal
            if self._signal.aborted:
                log.append("saw the abort")
                return "stopped early"
            time.sleep(0.05)
        log.append("ran to the end")
        return "done"

    async def failing() -> None:
        await asyncio.sleep(0.1)
        raise KeyError("upstream")

    with pytest.raises(KeyError):
        await asyncio.wait_for(
            getattr(ba, mode)({"worker": ba.in_thread(worker), "fail": failing}, debug=traces.append),
            LIMIT,
        )
    assert log == ["saw the abort"]  # before the call returned
    assert traces[0].tasks["worker"].status == "cancelled"


async def test_a_caller_cancel_waits_for_the_thread(ba):
    """Cancelling the caller: the call raises CancelledError once the
    function has returned, never before."""
    log: list[str] = []

    def slow() -> None:
        time.sleep(0.15)
        log.append("returned")

    task = asyncio.create_task(ba.all({"slow": ba.in_thread(slow)}))
    await asyncio.sleep(0.03)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(asyncio.shield(task), LIMIT)
    assert log == ["returned"]


async def test_in_the_class_form(ba):
    class G(ba.Graph):
        n: int

        @ba.task
        @ba.in_thread
        def square(self) -> int:
            time.sleep(0.01)
            return self.n * self.n

        @ba.task
        async def plus_one(self) -> int:
            return await self.square + 1

    assert await asyncio.wait_for(G(n=3).all(), LIMIT) == {"square": 9, "plus_one": 10}


def test_in_thread_refuses_what_it_cannot_run(ba):
    async def coroutine_function() -> None:
        pass

    with pytest.raises(TypeError, match="synchronous"):
        ba.in_thread(coroutine_function)
    coro = coroutine_function()
    with pytest.raises(TypeError, match="synchronous"):
        ba.in_thread(coro)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="callable"):
        ba.in_thread(3)  # type: ignore[arg-type]
