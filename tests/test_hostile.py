"""Issue 5, "Hostile user code": a clear outcome every time, never a crash or hang.

Results and errors with a ``__del__`` / ``__eq__`` / ``__hash__`` / ``__repr__``
that raises or re-enters the graph; tasks that swallow ``CancelledError``; ``_end``
twice or after catching ``FlowEnd``; awaiting a sibling after the call returned;
a stored ``current_task()`` cancelled later; tasks raising ``StopIteration``,
``GeneratorExit``, ``SystemExit`` or ``KeyboardInterrupt`` (the last two in a
subprocess, under ``asyncio.run``); a caller cancelled on every loop turn;
debug callables that raise or re-enter; hostile task mappings; unusual task
callables.

Every call is bounded by ``asyncio.wait_for(..., LIMIT)`` (or a subprocess
timeout) so that a hang fails the test.  Where docs/api.md fixes the behaviour, the
test asserts it for both engines.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Mapping
import functools
import gc
import logging
import signal
import subprocess
import sys
import threading
from typing import Any

import pytest

import betterall

from helpers import LIMIT, MODES, call, run_script


async def run(aw: Any) -> Any:
    # Not helpers.run: asyncio.timeout rather than wait_for: on 3.11 wait_for wraps the call in
    # a Task, and a broken Task never finishes, so wait_for would hang too.
    async with asyncio.timeout(LIMIT):
        return await aw


async def _awaiting(aw: Any) -> Any:
    return await aw


@pytest.fixture
def unraisable(monkeypatch: pytest.MonkeyPatch) -> list[BaseException]:
    """Errors reported through sys.unraisablehook (e.g. raised by __del__)."""
    seen: list[BaseException] = []
    monkeypatch.setattr(sys, "unraisablehook", lambda u: seen.append(u.exc_value))
    return seen


def asyncio_errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    """Messages the asyncio logger reported at ERROR level (e.g. "never retrieved")."""
    return [r.getMessage() for r in caplog.records if r.name == "asyncio" and r.levelno >= logging.ERROR]


# -- results and errors with hostile special methods -------------------------------------------


class DelRaises:
    """A value whose __del__ optionally runs `action`, then raises."""

    def __init__(self, tag: str, action: Any = None) -> None:
        self.tag = tag
        self.action = action

    def __del__(self) -> None:
        if self.action is not None:
            self.action()
        raise ValueError(f"__del__ of {self.tag}")


class Untouchable:
    """A value on which every special method and attribute access raises."""

    def __getattribute__(self, name: str) -> Any:
        raise ZeroDivisionError(f"__getattribute__({name!r})")

    def __eq__(self, other: object) -> bool:
        raise ZeroDivisionError("__eq__")

    def __hash__(self) -> int:
        raise ZeroDivisionError("__hash__")

    def __repr__(self) -> str:
        raise ZeroDivisionError("__repr__")

    def __str__(self) -> str:
        raise ZeroDivisionError("__str__")

    def __bool__(self) -> bool:
        raise ZeroDivisionError("__bool__")

    def __len__(self) -> int:
        raise ZeroDivisionError("__len__")

    def __iter__(self) -> Iterator[Any]:
        raise ZeroDivisionError("__iter__")


class HostileError(Exception):
    """An error whose str/repr/eq/hash raise."""

    def __str__(self) -> str:
        raise ZeroDivisionError("__str__ of the error")

    def __repr__(self) -> str:
        raise ZeroDivisionError("__repr__ of the error")

    def __eq__(self, other: object) -> bool:
        raise ZeroDivisionError("__eq__ of the error")

    def __hash__(self) -> int:
        raise ZeroDivisionError("__hash__ of the error")


@pytest.mark.parametrize("mode", MODES)
async def test_result_with_raising_del_is_returned_and_its_error_is_unraisable(ba, mode, unraisable):
    """A result whose __del__ raises is returned untouched; when dropped, its error
    goes to sys.unraisablehook (no crash, the call is not affected)."""

    def make() -> DelRaises:
        return DelRaises("result")

    r = await run(call(ba, mode)({"a": make, "b": lambda self: self.a}))
    if mode == "all":
        assert r["a"].tag == "result" and r["b"] is r["a"]
    elif mode == "all_settled":
        assert r["a"].value.tag == "result" and r["b"].value is r["a"].value
    else:
        assert r is None
    del r
    gc.collect()
    assert [str(e) for e in unraisable] == ["__del__ of result"]


@pytest.mark.parametrize("mode", MODES)
async def test_dropped_late_result_whose_del_reenters_the_graph(ba, mode, unraisable):
    """A task cancelled by the graph swallows the cancellation and returns a value
    whose __del__ re-enters the graph (cancels the current task, reads the
    signal, takes a sibling awaitable, calls _end) and raises: the decided outcome
    stands, the __del__ ran once, and its error went to sys.unraisablehook."""
    test_task = asyncio.current_task()
    observed: list[Any] = []

    async def swallower(self: Any) -> DelRaises:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            pass

        def reenter() -> None:
            current = asyncio.current_task()
            if current is not None and current is not test_task:
                current.cancel()
            try:
                observed.append(("aborted", self._signal.aborted))
                self.other  # a sibling awaitable, never awaited
                self._end("from __del__")
            except BaseException as exc:
                observed.append(type(exc).__name__)

        return DelRaises("late", reenter)

    async def other(self: Any) -> Any:
        await asyncio.sleep(0.02)
        if mode == "all":
            raise KeyError("decides all")
        if mode == "flow":
            self._end("winner")
        return "other"

    tasks = {"swallower": swallower, "other": other}
    if mode == "all":
        with pytest.raises(KeyError):
            await run(ba.all(tasks))
    elif mode == "flow":
        assert await run(ba.flow(tasks)) == "winner"
    else:
        r = await run(ba.all_settled(tasks, timeout=0.1))
        assert r["other"] == ba.Settled.fulfilled("other")
        assert r["swallower"].status == "rejected"
        assert isinstance(r["swallower"].reason, TimeoutError)
        del r
    gc.collect()
    assert [str(e) for e in unraisable] == ["__del__ of late"]
    assert len(observed) == 2
    # Outside flow, _end raises RuntimeError; in a decided flow (or after the
    # call), it raises FlowEnd or RuntimeError: never anything else.
    assert observed[1] in ("RuntimeError", "FlowEnd")


@pytest.mark.parametrize("debug", [False, True, "callable"])
@pytest.mark.parametrize("mode", MODES)
async def test_engine_never_touches_a_results_special_methods(ba, mode, debug, capsys):
    """A result on which __eq__, __hash__, __repr__, __bool__, __len__, __iter__
    and every attribute access raise is returned as is (also from a sync task
    and through a sibling await), with or without debug."""
    value = Untouchable()
    traces: list[Any] = []
    debug_arg = traces.append if debug == "callable" else debug

    async def async_task() -> Untouchable:
        await asyncio.sleep(0)
        return value

    async def via_sibling(self: Any) -> Untouchable:
        return await self.sync

    tasks = {"sync": lambda: value, "async": async_task, "via": via_sibling}
    r = await run(call(ba, mode)(tasks, debug=debug_arg))
    if mode == "all":
        assert all(r[k] is value for k in tasks)
    elif mode == "all_settled":
        assert all(r[k].status == "fulfilled" and r[k].value is value for k in tasks)
        with pytest.raises(ZeroDivisionError):
            repr(r["sync"])  # Settled's repr shows the value: its error propagates
    else:
        assert r is None
    if debug == "callable":
        [trace] = traces
        assert [t.status for t in trace.tasks.values()] == ["fulfilled"] * 3
    if debug is True:
        assert "via" in capsys.readouterr().err


@pytest.mark.parametrize("debug", [False, True])
@pytest.mark.parametrize("mode", MODES)
async def test_error_with_raising_str_repr_eq_hash(ba, mode, debug, capsys, caplog):
    """An error whose __str__, __repr__, __eq__ and __hash__ raise propagates
    unchanged from all/flow (or is the Settled reason), also with debug=True;
    nothing is logged."""
    error = HostileError()

    async def bad() -> None:
        await asyncio.sleep(0.01)
        raise error

    async def slow() -> None:
        await asyncio.sleep(10)

    tasks = {"bad": bad, "slow": slow} if mode != "all_settled" else {"bad": bad}
    if mode == "all_settled":
        r = await run(ba.all_settled(tasks, debug=debug))
        assert r["bad"].status == "rejected"
        assert r["bad"].reason is error
    else:
        with pytest.raises(HostileError) as info:
            await run(call(ba, mode)(tasks, debug=debug))
        assert info.value is error
    if debug:
        assert "bad" in capsys.readouterr().err
    assert asyncio_errors(caplog) == []


async def test_result_eq_cancelling_the_comparing_task(ba):
    """A result whose __eq__ cancels asyncio.current_task(): the task that compares
    it is cancelled by its own code, so it is rejected with CancelledError (not
    cancelled by the graph); the result's own task is fulfilled."""

    class CancelOnEq:
        def __eq__(self, other: object) -> bool:
            asyncio.current_task().cancel()
            return False

        __hash__ = None  # type: ignore[assignment]

    value = CancelOnEq()

    async def source() -> CancelOnEq:
        await asyncio.sleep(0.01)
        return value

    async def compare(self: Any) -> str:
        same = (await self.source) == 1
        await asyncio.sleep(0)
        return f"not cancelled ({same})"

    async def bystander() -> str:
        await asyncio.sleep(0.05)
        return "bystander"

    r = await run(ba.all_settled({"source": source, "compare": compare, "bystander": bystander}))
    assert r["source"].value is value
    assert r["compare"].status == "rejected"
    assert isinstance(r["compare"].reason, asyncio.CancelledError)
    assert r["bystander"] == ba.Settled.fulfilled("bystander")


async def test_result_hash_ending_the_flow(ba):
    """A result whose __hash__ calls the hashing task's self._end(v): the FlowEnd
    comes out of hash(), ends the flow with v, and that task is "ended"."""
    traces: list[Any] = []

    class EndOnHash:
        def __init__(self) -> None:
            self.ctx: Any = None

        def __hash__(self) -> int:
            self.ctx._end("from __hash__")
            return 0

    value = EndOnHash()

    async def source() -> EndOnHash:
        await asyncio.sleep(0.01)
        return value

    async def hasher(self: Any) -> dict[Any, int]:
        obj = await self.source
        obj.ctx = self
        return {obj: 1}

    async def slow() -> None:
        await asyncio.sleep(10)

    r = await run(ba.flow({"source": source, "hasher": hasher, "slow": slow}, debug=traces.append))
    assert r == "from __hash__"
    statuses = {k: t.status for k, t in traces[0].tasks.items()}
    assert statuses == {"source": "fulfilled", "hasher": "ended", "slow": "cancelled"}


async def test_error_with_raising_del_dropped_by_the_graph(ba, unraisable, caplog):
    """Errors raised while being cancelled are dropped by the graph; if their
    __del__ raises, that goes to sys.unraisablehook and the first error wins."""

    class DelError(Exception):
        def __del__(self) -> None:
            raise ValueError("__del__ of a dropped error")

    first = KeyError("first")

    async def bad() -> None:
        await asyncio.sleep(0.01)
        raise first

    async def raises_when_cancelled() -> None:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            raise DelError("while cancelled") from None

    with pytest.raises(KeyError) as info:
        await run(ba.all({"bad": bad, "other": raises_when_cancelled}))
    assert info.value is first
    del info
    gc.collect()
    assert [str(e) for e in unraisable] == ["__del__ of a dropped error"]
    assert asyncio_errors(caplog) == []


# -- tasks that swallow CancelledError -------------------------------------------------------


def swallowing(log: list[str], late: float = 0.0, then: Any = "late result") -> Any:
    """A task that swallows the graph's cancellation, optionally works `late`
    seconds more, then returns `then` (or raises it, if it is an exception)."""

    async def task(self: Any) -> Any:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            log.append("swallowed")
        if late:
            await asyncio.sleep(late)
        log.append("finished")
        if isinstance(then, BaseException):
            raise then
        return then

    return task


async def _fail_after(delay: float, error: BaseException) -> None:
    await asyncio.sleep(delay)
    raise error


async def test_swallowed_cancellation_in_all_the_first_error_still_wins(ba, caplog):
    """all: a task that swallows its cancellation and returns late does not stop
    the call; the call waits for it, then raises the first error."""
    log: list[str] = []
    snapshot: list[str] = []
    traces: list[Any] = []
    error = ValueError("first")
    tasks = {"swallower": swallowing(log, late=0.05), "bad": lambda: _fail_after(0.01, error)}
    with pytest.raises(ValueError) as info:
        try:
            await run(ba.all(tasks, debug=traces.append))
        finally:
            snapshot.extend(log)
    assert info.value is error
    assert snapshot == ["swallowed", "finished"]
    assert {k: t.status for k, t in traces[0].tasks.items()} == {"swallower": "cancelled", "bad": "rejected"}
    assert asyncio_errors(caplog) == []


async def test_swallowed_cancellation_in_flow_returns_the_end_value(ba):
    """flow: a task that swallows the cancellation after _end and returns a value
    does not change the flow's value; it counts as cancelled."""
    log: list[str] = []
    traces: list[Any] = []

    async def ender(self: Any) -> None:
        await asyncio.sleep(0.01)
        self._end("the end")

    r = await run(ba.flow({"swallower": swallowing(log, late=0.02), "ender": ender}, debug=traces.append))
    assert r == "the end"
    assert log == ["swallowed", "finished"]
    assert {k: t.status for k, t in traces[0].tasks.items()} == {"swallower": "cancelled", "ender": "ended"}


async def test_swallowed_cancellation_at_the_timeout_of_all_settled(ba):
    """all_settled with timeout=: a task that swallows the deadline's cancellation
    and returns is still reported as rejected with a TimeoutError."""
    log: list[str] = []
    r = await run(ba.all_settled({"swallower": swallowing(log), "quick": lambda: 1}, timeout=0.03))
    assert r["quick"] == ba.Settled.fulfilled(1)
    assert r["swallower"].status == "rejected"
    assert isinstance(r["swallower"].reason, TimeoutError)
    assert log == ["swallowed", "finished"]


@pytest.mark.parametrize("mode", MODES)
async def test_swallowed_cancellation_at_caller_cancel(ba, mode):
    """Caller cancelled: a task that swallows the cancellation and returns late
    is waited for, then the call raises CancelledError."""
    log: list[str] = []
    snapshot: list[str] = []

    async def caller() -> Any:
        try:
            return await call(ba, mode)({"swallower": swallowing(log, late=0.05)})
        finally:
            snapshot.extend(log)

    task = asyncio.create_task(caller())
    await asyncio.sleep(0.02)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run(task)
    assert snapshot == ["swallowed", "finished"]


@pytest.mark.parametrize("mode", ["all", "flow"])
async def test_swallower_raising_another_error_does_not_replace_the_outcome(ba, mode, caplog):
    """A task that swallows its cancellation and then raises another error: the
    first error stays the call's error, and nothing is logged."""
    log: list[str] = []
    first = KeyError("first")
    tasks = {
        "swallower": swallowing(log, late=0.01, then=RuntimeError("raised after swallowing")),
        "bad": lambda: _fail_after(0.01, first),
    }
    with pytest.raises(KeyError) as info:
        await run(call(ba, mode)(tasks))
    assert info.value is first
    assert log == ["swallowed", "finished"]
    assert asyncio_errors(caplog) == []


async def test_task_swallowing_the_first_caller_cancel_is_not_cancelled_again(ba):
    """A task that swallows the graph's cancellation and keeps working: the
    graph cancels each task once (docs/api.md, as asyncio.TaskGroup does), so
    cancelling the caller again is not passed on.  The call waits for the
    task to end on its own, then raises CancelledError."""
    log: list[str] = []

    async def stubborn() -> str:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            log.append("swallowed once")
        try:
            await asyncio.sleep(0.15)
        except asyncio.CancelledError:
            log.append("cancelled again")
            raise
        log.append("slept on")
        return "late"

    task = asyncio.create_task(_awaiting(ba.all({"stubborn": stubborn})))
    await asyncio.sleep(0.02)
    task.cancel()
    await asyncio.sleep(0.05)
    assert not task.done()
    assert log == ["swallowed once"]
    task.cancel()
    await asyncio.sleep(0.02)
    assert not task.done()  # still waiting for stubborn's own end
    with pytest.raises(asyncio.CancelledError):
        await run(task)
    assert log == ["swallowed once", "slept on"]


async def test_swallower_that_uncancels_itself_still_counts_as_cancelled(ba):
    """A task that swallows the graph's cancellation and calls uncancel() on its
    current task still counts as cancelled, and the call still ends."""
    traces: list[Any] = []

    async def uncanceller() -> str:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            asyncio.current_task().uncancel()
        await asyncio.sleep(0.01)
        return "after uncancel"

    with pytest.raises(ValueError):
        await run(ba.all({"u": uncanceller, "bad": lambda: _fail_after(0.01, ValueError())}, debug=traces.append))
    assert traces[0].tasks["u"].status == "cancelled"


async def test_caller_cancelled_on_every_loop_turn_still_returns(ba):
    """A caller cancelled again on every loop turn (as anyio's cancel scopes do):
    the call returns as soon as its tasks have finished, raising CancelledError."""
    cleaned: list[str] = []

    async def slow() -> None:
        try:
            await asyncio.sleep(10)
        finally:
            cleaned.append("slow")

    task = asyncio.create_task(_awaiting(ba.all({"slow": slow})))
    await asyncio.sleep(0.01)
    turns = 0
    while not task.done() and turns < 2000:
        task.cancel()
        turns += 1
        await asyncio.sleep(0)
    finished_under_fire = task.done()
    # Stop cancelling: let the call end in any case, so that no task is left.
    with pytest.raises(asyncio.CancelledError):
        await run(task)
    assert finished_under_fire, f"still running after {turns} cancellations"
    assert cleaned == ["slow"]


# -- _end twice, _end after catching FlowEnd ---------------------------------------------------


async def test_end_twice_in_one_task_first_value_wins(ba):
    """A task that catches its FlowEnd and calls _end again: the first value wins
    and the task is "ended"."""
    traces: list[Any] = []

    async def twice(self: Any) -> None:
        try:
            self._end("first")
        except ba.FlowEnd:
            pass
        self._end("second")

    assert await run(ba.flow({"twice": twice}, debug=traces.append)) == "first"
    assert traces[0].tasks["twice"].status == "ended"


@pytest.mark.parametrize("after", ["return", "raise"])
async def test_end_after_catching_flow_end_then_returning_or_raising(ba, after, caplog):
    """A task that calls _end, catches the FlowEnd and then returns a value or
    raises an error: the flow returns the _end value, the error is neither
    raised nor logged, and the task's trace status is "ended" (it called _end)."""
    traces: list[Any] = []

    async def ender(self: Any) -> str:
        try:
            self._end("ended")
        except ba.FlowEnd:
            pass
        await asyncio.sleep(0.01)
        if after == "raise":
            raise RuntimeError("after _end")
        return "returned"

    async def slow() -> None:
        await asyncio.sleep(10)

    assert await run(ba.flow({"ender": ender, "slow": slow}, debug=traces.append)) == "ended"
    assert asyncio_errors(caplog) == []
    assert {k: t.status for k, t in traces[0].tasks.items()} == {"ender": "ended", "slow": "cancelled"}


async def test_end_called_by_another_task_while_being_cancelled(ba):
    """A task that calls _end while handling the cancellation caused by an earlier
    _end: the first value wins; the late caller counts as cancelled."""
    traces: list[Any] = []

    async def first(self: Any) -> None:
        await asyncio.sleep(0.01)
        self._end(1)

    async def second(self: Any) -> None:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            self._end(2)

    assert await run(ba.flow({"first": first, "second": second}, debug=traces.append)) == 1
    assert {k: t.status for k, t in traces[0].tasks.items()} == {"first": "ended", "second": "cancelled"}


async def test_end_called_after_a_failure_decided_the_flow(ba):
    """A task that calls _end while being cancelled after a failure decided the
    flow: the failure stays the call's error."""
    error = KeyError("decides")

    async def late_ender(self: Any) -> None:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            self._end("too late")

    with pytest.raises(KeyError) as info:
        await run(ba.flow({"late": late_ender, "bad": lambda: _fail_after(0.01, error)}))
    assert info.value is error


@pytest.mark.parametrize("ended", [True, False])
async def test_end_through_a_stored_self_after_the_flow_returned(ba, ended):
    """_end through a `self` kept after the flow returned raises RuntimeError and
    changes nothing (whether or not a task ended that flow)."""
    kept: list[Any] = []

    async def keeper(self: Any) -> None:
        kept.append(self)
        await asyncio.sleep(0.01)
        if ended:
            self._end("value")

    r = await run(ba.flow({"keeper": keeper}))
    assert r == ("value" if ended else None)
    with pytest.raises(RuntimeError, match="no longer running"):
        kept[0]._end("after the call")


# -- the objects an await hands out -------------------------------------------------------------


async def test_stop_iteration_caught_by_hand_keeps_its_value(ba):
    """Driving a finished sibling's awaitable by hand gives StopIteration(value);
    keeping that exception does not change what later awaits return."""
    caught: list[StopIteration] = []

    async def waiter(self: Any) -> tuple:
        for name in ("a", "b"):
            it = self[name].__await__()
            try:
                it.send(None)
            except StopIteration as exc:
                caught.append(exc)
        return (await self.a, await self.b, await self.a)

    r = await ba.all({"a": lambda: ("A",), "b": lambda: ["B"], "waiter": waiter})
    assert r["waiter"] == (("A",), ["B"], ("A",))
    assert [(e.value, e.args) for e in caught] == [(("A",), (("A",),)), (["B"], (["B"],))]


async def test_stop_iteration_from_next_has_a_fresh_state(ba):
    """next() on a finished sibling's awaitable raises a StopIteration with the
    value, no leftover traceback chain and no context, every time."""
    seen: list[tuple] = []

    async def waiter(self: Any) -> int:
        for _ in range(3):
            try:
                raise KeyError("handled")
            except KeyError:
                try:
                    next(self.a.__await__())
                except StopIteration as exc:
                    depth = 0
                    tb = exc.__traceback__
                    while tb is not None:
                        depth, tb = depth + 1, tb.tb_next
                    seen.append((exc.value, exc.__cause__, depth))
        return await self.a

    r = await ba.all({"a": lambda: 7, "waiter": waiter})
    assert r["waiter"] == 7
    assert seen == [(7, None, 1)] * 3


async def test_awaitables_kept_while_taking_others(ba):
    """Awaitables of several siblings held at once stay distinct; each one
    still gives its own sibling after others were taken and awaited."""

    async def a() -> str:
        await asyncio.sleep(0.01)
        return "A"

    async def waiter(self: Any) -> tuple:
        first = self.a
        second = self.b
        assert first is not second
        got_b = await second
        third = self.c
        return (await first, got_b, await third, await first, await second)

    r = await ba.all({"a": a, "b": lambda: "B", "c": lambda: "C", "waiter": waiter})
    assert r["waiter"] == ("A", "B", "C", "A", "B")


async def test_awaitable_with_a_weak_reference_is_not_recycled(ba):
    """A weak reference to an awaited sibling awaitable keeps pointing at
    that awaitable, not at one taken later."""
    import weakref

    async def waiter(self: Any) -> tuple:
        first = self.a
        ref = weakref.ref(first)
        value = await first
        del first
        later = self.b
        return (value, await later, ref() is None or ref() is not later)

    r = await ba.all({"a": lambda: "A", "b": lambda: "B", "waiter": waiter})
    assert r["waiter"] == ("A", "B", True)


@pytest.mark.parametrize("mode", ["all", "flow"])
async def test_failed_call_held_by_its_own_traceback_is_collected(ba, mode):
    """A failed call kept alive only by a cycle through its error's traceback
    (a frame that held the call in a local, as wait_for does) is freed by gc."""
    import weakref

    async def scenario() -> Any:
        async def failing() -> None:
            raise ValueError("boom")

        async def holder(aw: Any) -> Any:
            return await aw

        probe = weakref.ref(failing)
        with pytest.raises(ValueError):
            await holder(getattr(ba, mode)({"failing": failing, "ok": lambda: 1}))
        return probe

    probe = await scenario()
    gc.collect()
    assert probe() is None, "the failed call's tasks were never freed"


# -- awaiting a sibling after the call returned -----------------------------------------------


async def test_stored_sibling_awaitables_after_the_call(ba):
    """Awaitables taken during a call, awaited after it returned: a fulfilled
    sibling gives its result (every time, also a task's own), a sibling the graph
    cancelled while running or before it started raises CancelledError."""
    kept: dict[str, Any] = {}
    started: list[str] = []

    async def ok() -> str:
        return "ok"

    async def running() -> None:
        await asyncio.sleep(10)

    async def keeper(self: Any) -> None:
        kept.update(ok=self.ok, running=self.running)
        await asyncio.sleep(0.02)
        raise KeyError("decides the call")

    with pytest.raises(KeyError):
        await run(ba.all({"ok": ok, "keeper": keeper, "running": running}))
    assert await kept["ok"] == "ok"
    assert await kept["ok"] == "ok"
    with pytest.raises(asyncio.CancelledError):
        await kept["running"]

    def grab(self: Any) -> str:
        kept.update(never=self.never, me=self.grab)
        return "grabbed"

    def fails_at_start() -> None:
        raise ValueError("at start")

    def never() -> None:
        started.append("never")

    # The failure during the start decides the call: `never` is not started.
    with pytest.raises(ValueError, match="at start"):
        await run(ba.all({"grab": grab, "fails": fails_at_start, "never": never}))
    assert started == []
    assert await kept["me"] == "grabbed"
    with pytest.raises(asyncio.CancelledError):
        await kept["never"]


async def test_stored_awaitable_of_a_failed_sibling_raises_its_error(ba):
    """After all_settled returned, a stored awaitable of a failed sibling raises
    that very error."""
    kept: dict[str, Any] = {}
    error = LookupError("sibling error")

    async def failing() -> None:
        await asyncio.sleep(0.01)
        raise error

    def keeper(self: Any) -> None:
        kept["failing"] = self.failing

    await run(ba.all_settled({"failing": failing, "keeper": keeper}))
    with pytest.raises(LookupError) as info:
        await kept["failing"]
    assert info.value is error


async def test_stored_awaitable_of_the_task_that_ended_the_flow(ba):
    """After a flow returned, a stored awaitable of the task that called _end
    raises CancelledError (it did not fulfil); one of a fulfilled task gives its value."""
    kept: dict[str, Any] = {}

    def keeper(self: Any) -> str:
        kept.update(ender=self.ender, keeper=self.keeper)
        return "kept"

    async def ender(self: Any) -> None:
        await asyncio.sleep(0.01)
        self._end("v")

    assert await run(ba.flow({"keeper": keeper, "ender": ender})) == "v"
    assert await kept["keeper"] == "kept"
    with pytest.raises(asyncio.CancelledError):
        await kept["ender"]


async def test_stored_self_after_the_call_raises_at_access(ba):
    """`await stored_self.sibling` after the call: RuntimeError at the access."""
    kept: list[Any] = []

    def keeper(self: Any) -> int:
        kept.append(self)
        return 1

    await run(ba.all({"keeper": keeper, "other": lambda: 2}))
    with pytest.raises(RuntimeError, match="no longer running"):
        await kept[0].other
    with pytest.raises(RuntimeError, match="no longer running"):
        await kept[0]["other"]


async def test_stored_awaitable_awaited_from_another_graph(ba):
    """A sibling awaitable of a finished call, awaited by a task of another call,
    gives its result there."""
    kept: dict[str, Any] = {}

    async def source() -> str:
        await asyncio.sleep(0.01)
        return "from the first call"

    def keeper(self: Any) -> None:
        kept["source"] = self.source

    await run(ba.all({"source": source, "keeper": keeper}))

    async def reader() -> str:
        return await kept["source"]

    assert await run(ba.all({"reader": reader})) == {"reader": "from the first call"}


async def test_foreign_task_awaiting_a_sibling_after_its_task_finished(ba):
    """A task spawns asyncio tasks that await a sibling (directly and through
    gather) and returns at once: they get the sibling's result when it comes; a
    spawned wait on a sibling the graph cancels raises CancelledError."""
    kept: dict[str, Any] = {}

    async def slow() -> str:
        await asyncio.sleep(0.03)
        return "slow"

    def spawner(self: Any) -> str:
        kept["direct"] = asyncio.ensure_future(_awaiting(self.slow))
        kept["gather"] = asyncio.ensure_future(asyncio.gather(self.slow, self.slow))
        return "spawned"

    assert await run(ba.all({"spawner": spawner, "slow": slow})) == {"spawner": "spawned", "slow": "slow"}
    assert await run(kept["direct"]) == "slow"
    assert await run(kept["gather"]) == ["slow", "slow"]

    async def hanging() -> None:
        await asyncio.sleep(10)

    def spawner2(self: Any) -> int:
        kept["doomed"] = asyncio.ensure_future(_awaiting(self.hanging))
        return 1

    with pytest.raises(KeyError):
        await run(ba.all({"spawner2": spawner2, "hanging": hanging, "bad": lambda: _fail_after(0.01, KeyError())}))
    with pytest.raises(asyncio.CancelledError):
        await run(kept["doomed"])


# -- a stored current_task(), cancelled later --------------------------------------------------


async def test_stored_current_task_cancelled_by_a_sibling(ba):
    """A sibling cancels a task through its stored current_task(): that task is
    rejected with CancelledError (not cancelled by the graph); all raises it."""
    kept: dict[str, Any] = {}

    async def victim() -> str:
        kept["victim"] = asyncio.current_task()
        await asyncio.sleep(0.1)
        return "victim"

    async def killer() -> str:
        await asyncio.sleep(0.01)
        assert kept["victim"].cancel() is True
        return "killer"

    r = await run(ba.all_settled({"victim": victim, "killer": killer}))
    assert r["victim"].status == "rejected"
    assert isinstance(r["victim"].reason, asyncio.CancelledError)
    assert r["killer"] == ba.Settled.fulfilled("killer")

    with pytest.raises(asyncio.CancelledError):
        await run(ba.all({"victim": victim, "killer": killer}))


async def test_stored_current_task_cancelled_while_parked_on_a_sibling(ba):
    """Cancelling a task parked on a sibling withdraws only its wait: it is
    rejected with CancelledError; the awaited sibling runs on and fulfils."""
    kept: dict[str, Any] = {}

    async def target() -> str:
        await asyncio.sleep(0.05)
        return "target"

    async def parked(self: Any) -> Any:
        kept["parked"] = asyncio.current_task()
        return await self.target

    async def canceller() -> str:
        await asyncio.sleep(0.01)
        kept["parked"].cancel()
        return "cancelled it"

    r = await run(ba.all_settled({"target": target, "parked": parked, "canceller": canceller}))
    assert r["target"] == ba.Settled.fulfilled("target")
    assert r["parked"].status == "rejected"
    assert isinstance(r["parked"].reason, asyncio.CancelledError)


async def test_stored_current_task_after_the_call(ba):
    """After the call, a stored current_task() is done: cancel() returns False,
    cancelling() is 0, and add_done_callback still calls back with it."""
    kept: dict[str, Any] = {}

    async def task() -> int:
        kept["task"] = asyncio.current_task()
        await asyncio.sleep(0)
        return 1

    assert await run(ba.all({"task": task})) == {"task": 1}
    t = kept["task"]
    assert t.done()
    assert t.cancel() is False
    assert t.cancelling() == 0
    called = asyncio.get_running_loop().create_future()
    t.add_done_callback(called.set_result)
    assert await run(called) is t


async def test_task_cancelling_itself_and_catching_it(ba):
    """A task that cancels its own current task and catches the CancelledError
    carries on and fulfils."""

    async def selfish() -> str:
        asyncio.current_task().cancel()
        try:
            await asyncio.sleep(0)
        except asyncio.CancelledError:
            return "caught"
        return "not cancelled"

    assert await run(ba.all_settled({"selfish": selfish})) == {"selfish": ba.Settled.fulfilled("caught")}


# -- StopIteration, GeneratorExit ---------------------------------------------------------------


def _chain(exc: BaseException | None) -> list[BaseException]:
    out = []
    while exc is not None and exc not in out:
        out.append(exc)
        exc = exc.__cause__ or exc.__context__
    return out


@pytest.mark.parametrize("mode", ["all", "flow"])
async def test_sync_task_raising_stop_iteration(ba, mode):
    """A sync task raising StopIteration (e.g. next() on an empty iterator) fails
    the call: the caller gets a RuntimeError caused by that StopIteration (as a
    coroutine would), never a return value and never a hang."""
    stop = StopIteration("empty")

    def first_item() -> Any:
        raise stop

    with pytest.raises(RuntimeError) as info:
        await run(call(ba, mode)({"first": first_item}))
    assert stop in _chain(info.value)


@pytest.mark.parametrize("mode", ["all", "flow"])
async def test_sync_stop_iteration_after_the_call_suspended(ba, mode):
    """The same when the call had to suspend first (a sibling was running)."""
    stop = StopIteration("empty")

    async def sleeper() -> None:
        await asyncio.sleep(0.02)

    def first_item() -> Any:
        raise stop

    with pytest.raises(RuntimeError) as info:
        await run(call(ba, mode)({"sleeper": sleeper, "first": first_item}))
    assert stop in _chain(info.value)


def test_sync_stop_iteration_in_a_task_wrapping_the_call(ba):
    """The call run as its own asyncio task (create_task / ensure_future, as
    wait_for does on 3.11): the task fails with RuntimeError caused by the
    StopIteration; it does not hang (run in a subprocess: a broken task hangs)."""
    proc = run_script(ba, """
        async def main():
            stop = StopIteration("empty")

            def first_item():
                raise stop

            for wrap in (asyncio.ensure_future, lambda aw: asyncio.wait_for(aw, 5)):
                try:
                    r = await asyncio.wait_for(wrap(ba.all({"first": first_item})), 5)
                except RuntimeError as exc:
                    assert exc.__cause__ is stop or exc.__context__ is stop, repr(exc)
                else:
                    raise AssertionError(f"returned {r!r}")

        asyncio.run(main())
        print("OK")
    """)
    assert proc.returncode == 0 and proc.stdout.strip() == "OK", proc.stdout + proc.stderr


async def test_stop_iteration_reported_by_all_settled(ba):
    """all_settled reports a sync task's StopIteration as its rejection."""
    stop = StopIteration("empty")

    def first_item() -> Any:
        raise stop

    r = await run(ba.all_settled({"first": first_item, "ok": lambda: 1}))
    assert r == {"first": ba.Settled.rejected(stop), "ok": ba.Settled.fulfilled(1)}


@pytest.mark.parametrize("mode", MODES)
async def test_async_task_raising_stop_iteration_is_a_runtime_error(ba, mode):
    """An async task raising StopIteration fails with RuntimeError (PEP 479)."""

    async def gen_like() -> None:
        await asyncio.sleep(0)
        raise StopIteration("inside a coroutine")

    if mode == "all_settled":
        r = await run(ba.all_settled({"g": gen_like}))
        assert isinstance(r["g"].reason, RuntimeError)
    else:
        with pytest.raises(RuntimeError):
            await run(call(ba, mode)({"g": gen_like}))


@pytest.mark.parametrize("sync", [True, False])
@pytest.mark.parametrize("mode", MODES)
async def test_task_raising_generator_exit(ba, mode, sync):
    """A task raising GeneratorExit: all/flow raise that very exception after
    cancelling the others; all_settled reports it."""
    error = GeneratorExit("odd")
    cleaned: list[str] = []

    def sync_task() -> None:
        raise error

    async def async_task() -> None:
        await asyncio.sleep(0.01)
        raise error

    async def slow() -> None:
        try:
            await asyncio.sleep(0.2 if mode == "all_settled" else 10)
        finally:
            cleaned.append("slow")

    tasks = {"slow": slow, "g": sync_task if sync else async_task}
    if mode == "all_settled":
        r = await run(ba.all_settled(tasks))
        assert r["g"] == ba.Settled.rejected(error)
    else:
        with pytest.raises(GeneratorExit) as info:
            await run(call(ba, mode)(tasks))
        assert info.value is error
    assert cleaned == ["slow"]


# -- KeyboardInterrupt and SystemExit under asyncio.run (subprocess) ---------------------------


_NOISE = ("never retrieved", "was destroyed but it is pending", "Fatal Python error",
          "Segmentation fault", "Exception ignored", "never awaited", "SystemError")


def _assert_clean_exit(proc: subprocess.CompletedProcess[str], *, returncodes: tuple[int, ...], last_line: str) -> None:
    detail = f"rc={proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    assert proc.returncode in returncodes, detail
    lines = proc.stderr.strip().splitlines()
    assert lines and lines[-1] == last_line, detail
    assert not any(noise in proc.stderr for noise in _NOISE), detail
    assert "returned" not in proc.stdout, detail
    assert "cleanup ran" in proc.stdout, detail


_INTERRUPT_SCRIPT = """
async def slow():
    try:
        await asyncio.sleep(10)
    finally:
        print("cleanup ran", flush=True)

async def raiser_async():
    await asyncio.sleep(0.05)
    raise {exc}

def raiser_sync():
    raise {exc}

async def main():
    # `slow` first, so that it is running when the sync raiser starts.
    r = await ba.{mode}({{"slow": slow, "x": raiser_{kind}}})
    print("returned", r, flush=True)

asyncio.run(main())
print("returned from asyncio.run", flush=True)
"""

_KI_CODES = (-signal.SIGINT, 128 + signal.SIGINT, 1)


@pytest.mark.parametrize("kind", ["async", "sync"])
@pytest.mark.parametrize("mode", MODES)
def test_keyboard_interrupt_raised_by_a_task_propagates_out_of_asyncio_run(ba, mode, kind):
    """A task raising KeyboardInterrupt under asyncio.run: the process ends with
    that KeyboardInterrupt propagating out of asyncio.run (not swallowed into a
    result), the running sibling cleaned up, no hang, no crash, no noise."""
    proc = run_script(ba, _INTERRUPT_SCRIPT.format(exc="KeyboardInterrupt", mode=mode, kind=kind))
    _assert_clean_exit(proc, returncodes=_KI_CODES, last_line="KeyboardInterrupt")


@pytest.mark.parametrize("kind", ["async", "sync"])
@pytest.mark.parametrize("mode", MODES)
def test_system_exit_raised_by_a_task_ends_the_process(ba, mode, kind):
    """A task calling sys.exit(3) under asyncio.run: the process exits with code
    3, the running sibling cleaned up, no hang, no crash, no noise."""
    proc = run_script(ba, _INTERRUPT_SCRIPT.format(exc="SystemExit(3)", mode=mode, kind=kind))
    detail = f"rc={proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    assert proc.returncode == 3, detail
    assert "returned" not in proc.stdout, detail
    assert "cleanup ran" in proc.stdout, detail
    assert not any(noise in proc.stderr for noise in _NOISE), detail


@pytest.mark.parametrize("mode", MODES)
def test_sigint_during_a_call_under_asyncio_run(ba, mode):
    """A real SIGINT (Ctrl-C) while a call runs under asyncio.run: the call's
    tasks are cancelled and clean up, then KeyboardInterrupt propagates."""
    proc = run_script(ba, f"""
        async def slow():
            try:
                await asyncio.sleep(10)
            finally:
                print("cleanup ran", flush=True)

        async def interrupter():
            await asyncio.sleep(0.05)
            signal.raise_signal(signal.SIGINT)
            await asyncio.sleep(10)

        async def main():
            r = await ba.{mode}({{"slow": slow, "interrupter": interrupter}})
            print("returned", r, flush=True)

        asyncio.run(main())
    """)
    _assert_clean_exit(proc, returncodes=_KI_CODES, last_line="KeyboardInterrupt")


@pytest.mark.parametrize("mode", MODES)
def test_sigint_raised_inside_a_sync_task(ba, mode):
    """SIGINT delivered while a synchronous task runs (during the call's start):
    KeyboardInterrupt propagates out of asyncio.run, the sibling cleaned up."""
    proc = run_script(ba, f"""
        async def slow():
            try:
                await asyncio.sleep(10)
            finally:
                print("cleanup ran", flush=True)

        def interrupter():
            signal.raise_signal(signal.SIGINT)
            return "interrupter done"

        async def main():
            r = await ba.{mode}({{"slow": slow, "interrupter": interrupter}})
            await asyncio.sleep(10)
            print("returned", r, flush=True)

        asyncio.run(main())
    """)
    _assert_clean_exit(proc, returncodes=_KI_CODES, last_line="KeyboardInterrupt")


def test_second_sigint_during_slow_cleanup(ba):
    """A second SIGINT while tasks are still cleaning up after the first: the
    process still ends with KeyboardInterrupt, promptly."""
    proc = run_script(ba, """
        async def slow():
            try:
                await asyncio.sleep(10)
            finally:
                print("cleanup ran", flush=True)
                signal.raise_signal(signal.SIGINT)  # the impatient second Ctrl-C
                await asyncio.sleep(10)

        async def interrupter():
            await asyncio.sleep(0.05)
            signal.raise_signal(signal.SIGINT)
            await asyncio.sleep(10)

        async def main():
            await ba.all({"slow": slow, "interrupter": interrupter})
            print("returned", flush=True)

        t0 = time.monotonic()
        try:
            asyncio.run(main())
        finally:
            print(f"elapsed {time.monotonic() - t0:.1f}", flush=True)
    """)
    assert proc.returncode in _KI_CODES, proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == "KeyboardInterrupt", proc.stderr
    assert "cleanup ran" in proc.stdout
    elapsed = float(proc.stdout.split("elapsed ")[1].split()[0])
    assert elapsed < 5, proc.stdout


# -- debug callables that raise or re-enter ------------------------------------------------------


async def test_debug_callable_raising_on_success(ba):
    """A debug callable that raises: its error propagates after the tasks finished."""
    log: list[str] = []

    async def task() -> int:
        await asyncio.sleep(0.01)
        log.append("task done")
        return 1

    def debug(trace: Any) -> None:
        log.append("debug called")
        raise LookupError("from debug")

    with pytest.raises(LookupError, match="from debug"):
        await run(ba.all({"task": task}, debug=debug))
    assert log == ["task done", "debug called"]


@pytest.mark.parametrize("mode", ["all", "flow"])
async def test_debug_callable_raising_while_the_call_fails(ba, mode):
    """A debug callable that raises while the call is failing: the call's own error wins."""
    error = KeyError("the call's error")
    called: list[Any] = []

    def debug(trace: Any) -> None:
        called.append(trace)
        raise LookupError("from debug")

    with pytest.raises(KeyError) as info:
        await run(call(ba, mode)({"bad": lambda: _fail_after(0.01, error)}, debug=debug))
    assert info.value is error
    assert len(called) == 1


async def test_debug_callable_raising_at_timeout_and_caller_cancel(ba):
    """A debug callable that raises does not replace a TimeoutError or the
    caller's CancelledError."""

    def debug(trace: Any) -> None:
        raise LookupError("from debug")

    async def slow() -> None:
        await asyncio.sleep(10)

    with pytest.raises(TimeoutError):
        await run(ba.all({"slow": slow}, debug=debug, timeout=0.01))
    task = asyncio.create_task(_awaiting(ba.all_settled({"slow": slow}, debug=debug)))
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run(task)


async def test_debug_callable_starting_another_call(ba):
    """A debug callable that starts another call (whose own debug callable does
    the same once more): every call completes with its own result and trace."""
    spawned: list[asyncio.Task[Any]] = []
    traces: list[Any] = []

    def debug(depth: int) -> Any:
        def report(trace: Any) -> None:
            traces.append((depth, tuple(trace.tasks)))
            if depth < 2:
                name = f"level{depth + 1}"
                spawned.append(asyncio.ensure_future(ba.all({name: lambda: depth + 1}, debug=debug(depth + 1))))

        return report

    assert await run(ba.all({"level0": lambda: 0}, debug=debug(0))) == {"level0": 0}
    assert await run(spawned[0]) == {"level1": 1}
    assert await run(spawned[1]) == {"level2": 2}
    assert traces == [(0, ("level0",)), (1, ("level1",)), (2, ("level2",))]


async def test_debug_callable_running_a_call_on_another_loop(ba):
    """A debug callable that synchronously runs a whole call on a new loop in
    another thread (asyncio.run) gets its result; the outer call completes."""
    inner: list[Any] = []

    def debug(trace: Any) -> None:
        async def nested() -> Any:
            async def x() -> int:
                await asyncio.sleep(0.01)
                return 42

            return await ba.all({"x": x, "y": lambda self: self.x})

        t = threading.Thread(target=lambda: inner.append(asyncio.run(nested())))
        t.start()
        t.join(LIMIT)

    assert await run(ba.all({"a": lambda: 1}, debug=debug)) == {"a": 1}
    assert inner == [{"x": 42, "y": 42}]


# -- hostile task mappings ----------------------------------------------------------------------


class _BaseMapping(Mapping):  # type: ignore[type-arg]
    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data

    def __getitem__(self, key: str) -> Any:
        return self.data[key]

    def __len__(self) -> int:
        return len(self.data)

    def __iter__(self) -> Iterator[str]:
        return iter(self.data)


class GetItemRaises(_BaseMapping):
    def __getitem__(self, key: str) -> Any:
        raise ZeroDivisionError("__getitem__")


class IterRaisesMidway(_BaseMapping):
    def __iter__(self) -> Iterator[str]:
        yield from list(self.data)[:1]
        raise ZeroDivisionError("__iter__")


class ItemsRaises(dict):  # type: ignore[type-arg]
    def items(self) -> Any:
        raise ZeroDivisionError("items")


class MutatesOnGetItem(_BaseMapping):
    def __getitem__(self, key: str) -> Any:
        self.data["added_" + key] = lambda: "added"
        return self.data[key]


class LyingLen(_BaseMapping):
    def __len__(self) -> int:
        return 1


class LenRaises(_BaseMapping):
    def __len__(self) -> int:
        raise ZeroDivisionError("__len__")


@pytest.mark.parametrize(
    "make, error",
    [
        (lambda d: GetItemRaises(d), ZeroDivisionError),
        (lambda d: IterRaisesMidway(d), ZeroDivisionError),
        (lambda d: ItemsRaises(d), ZeroDivisionError),
        (lambda d: MutatesOnGetItem(d), RuntimeError),
    ],
    ids=["getitem-raises", "iter-raises-midway", "dict-items-raises", "mutates-during-validation"],
)
@pytest.mark.parametrize("mode", MODES)
async def test_hostile_mapping_fails_at_the_call_before_any_task(ba, mode, make, error):
    """A mapping whose __getitem__ / __iter__ / items() raise, or that changes
    size while being read: the error is raised at the call, no task runs."""
    ran: list[str] = []
    data = {"a": lambda: ran.append("a"), "b": lambda: ran.append("b")}
    with pytest.raises(error):
        call(ba, mode)(make(data))
    await asyncio.sleep(0)
    assert ran == []


@pytest.mark.parametrize("make", [LyingLen, LenRaises], ids=["len-lies", "len-raises"])
@pytest.mark.parametrize("mode", MODES)
async def test_mapping_with_a_lying_len_runs_every_entry(ba, mode, make):
    """A mapping whose __len__ lies or raises: every entry it yields is a task
    (the length is not trusted), no crash."""
    names = [f"t{i}" for i in range(50)]

    def returning(n: str) -> Any:
        return lambda: n

    data = {name: returning(name) for name in names}
    r = await run(call(ba, mode)(make(data)))
    if mode == "all":
        assert r == {n: n for n in names}
    elif mode == "all_settled":
        assert r == {n: ba.Settled.fulfilled(n) for n in names}
    else:
        assert r is None


class DuplicateKeys(_BaseMapping):
    """Yields "a" twice: first with `first`, then with `second`."""

    def __init__(self, first: Any, second: Any) -> None:
        super().__init__({"a": second, "b": lambda: "b"})
        self.first = first
        self.reads = 0

    def __getitem__(self, key: str) -> Any:
        if key == "a":
            self.reads += 1
            if self.reads == 1:
                return self.first
        return self.data[key]

    def __len__(self) -> int:
        return 3

    def __iter__(self) -> Iterator[str]:
        return iter(["a", "b", "a"])


@pytest.mark.parametrize("mode", MODES)
async def test_mapping_yielding_a_name_twice(ba, mode):
    """A broken mapping that yields a name twice: either a ValueError at the call
    naming it, or dict semantics (the last entry wins and the superseded callable
    never runs) - never a task that runs under a name the result omits."""
    ran: list[str] = []

    def first() -> str:
        ran.append("first")
        raise KeyError("the superseded entry ran")

    def second() -> str:
        ran.append("second")
        return "second"

    try:
        pending = call(ba, mode)(DuplicateKeys(first, second))
    except ValueError as exc:
        assert "'a'" in str(exc)
        assert ran == []
        return
    r = await run(pending)
    assert ran == ["second"]
    if mode == "all":
        assert r == {"a": "second", "b": "b"}
    elif mode == "all_settled":
        assert r == {"a": ba.Settled.fulfilled("second"), "b": ba.Settled.fulfilled("b")}


@pytest.mark.parametrize("mode", MODES)
async def test_plain_dict_mutated_by_a_value_during_validation(ba, mode):
    """A task value whose __class__ lookup mutates the dict being validated:
    either RuntimeError at the call (nothing runs), or a consistent graph: the
    tasks that ran are exactly the call's tasks (in its trace and result), each
    ran once - no crash, no task running outside the graph."""
    ran: list[str] = []
    traces: list[Any] = []
    tasks: dict[str, Any] = {}

    class Sneaky:
        @property  # type: ignore[misc]
        def __class__(self) -> type:
            tasks["intruder"] = lambda: ran.append("intruder") or "intruder"
            tasks.pop("b", None)
            return Sneaky

        def __call__(self, ctx: Any) -> str:
            ran.append("a")
            return "sneaky"

    tasks["a"] = Sneaky()
    tasks["b"] = lambda: ran.append("b") or "b"
    try:
        pending = call(ba, mode)(tasks, debug=traces.append)
    except RuntimeError:
        await asyncio.sleep(0)
        assert ran == []
        return
    r = await run(pending)
    [trace] = traces
    assert sorted(ran) == sorted(trace.tasks)
    assert all(t.status == "fulfilled" for t in trace.tasks.values())
    if mode == "all":
        assert list(r) == list(trace.tasks)


@pytest.mark.parametrize("mode", MODES)
async def test_mapping_items_yielding_non_pairs(ba, mode):
    """A mapping whose items() yields something that is not a (name, fn) pair:
    an error at the call, before any task."""

    class BadItems(dict):  # type: ignore[type-arg]
        def items(self) -> Any:
            return iter([("a", lambda: 1), "not a pair of two"])

    with pytest.raises((TypeError, ValueError)):
        call(ba, mode)(BadItems(a=lambda: 1))


# -- unusual task callables ---------------------------------------------------------------------


async def test_class_as_task(ba):
    """A class is called with the context: its instance is the result; a class
    with __await__ is awaited; a class taking no argument fails that task."""

    class Record:
        def __init__(self, ctx: Any) -> None:
            self.name = ctx._name

    class Awaitable:
        def __init__(self, ctx: Any) -> None:
            self.ctx = ctx

        def __await__(self) -> Any:
            value = yield from asyncio.sleep(0.01, "awaited").__await__()
            return value

    class NoArgs:
        def __init__(self) -> None:
            pass

    r = await run(ba.all_settled({"record": Record, "awaitable": Awaitable, "noargs": NoArgs}))
    assert r["record"].value.name == "record"
    assert r["awaitable"] == ba.Settled.fulfilled("awaited")
    assert r["noargs"].status == "rejected"
    assert isinstance(r["noargs"].reason, TypeError)


async def test_partial_as_task(ba):
    """functools.partial is called with the context appended when its function
    needs one more argument, and with none when it needs no more."""

    async def fetch(prefix: str, self: Any) -> str:
        await asyncio.sleep(0)
        return prefix + self._name

    def no_more(x: int) -> int:
        return x

    r = await run(ba.all_settled({
        "p": functools.partial(fetch, "task "),
        "full": functools.partial(no_more, 1),
    }))
    assert r["p"] == ba.Settled.fulfilled("task p")
    assert r["full"] == ba.Settled.fulfilled(1)


async def test_bound_method_of_an_object_whose_call_raises(ba):
    """A bound method of an object whose __call__ raises runs the method (the
    object's __call__ is never used); the object itself as a task fails with
    its __call__'s error; a __call__ property that raises fails the same way."""
    error = ArithmeticError("__call__ of the object")

    class Service:
        def __call__(self, ctx: Any) -> Any:
            raise error

        async def fetch(self, ctx: Any) -> str:
            await asyncio.sleep(0)
            return "fetched " + ctx._name

        def no_param(self) -> str:
            return "no param"

    class CallProperty:
        @property
        def __call__(self) -> Any:
            raise error

    svc = Service()
    r = await run(ba.all_settled({
        "method": svc.fetch,
        "no_param": svc.no_param,
        "object": svc,
        "call_property": CallProperty(),
    }))
    assert r["method"] == ba.Settled.fulfilled("fetched method")
    assert r["no_param"] == ba.Settled.fulfilled("no param")
    assert r["object"] == ba.Settled.rejected(error)
    assert r["call_property"] == ba.Settled.rejected(error)

    with pytest.raises(ArithmeticError) as info:
        await run(ba.all({"method": svc.fetch, "object": svc}))
    assert info.value is error


async def test_returned_awaitable_whose_await_raises(ba):
    """A task returning an object whose __await__ raises, or returns a
    non-iterator, fails that task with an error; siblings are unaffected."""
    error = LookupError("__await__")

    class AwaitRaises:
        def __await__(self) -> Any:
            raise error

    class AwaitNotIterator:
        def __await__(self) -> Any:
            return 42

    r = await run(ba.all_settled({
        "raises": lambda: AwaitRaises(),
        "not_iter": lambda: AwaitNotIterator(),
        "ok": lambda: "ok",
    }))
    assert r["raises"] == ba.Settled.rejected(error)
    assert r["not_iter"].status == "rejected"
    assert isinstance(r["not_iter"].reason, TypeError)
    assert r["ok"] == ba.Settled.fulfilled("ok")


async def test_task_whose_coroutine_yields_garbage(ba):
    """A task whose awaitable yields a bare value (not a future) fails with
    RuntimeError, as in an asyncio.Task; the call does not hang."""

    class BadYield:
        def __await__(self) -> Any:
            yield "not a future"
            return "never"

    r = await run(ba.all_settled({"bad": lambda: BadYield(), "ok": lambda: 1}))
    assert r["bad"].status == "rejected"
    assert isinstance(r["bad"].reason, RuntimeError)
    assert r["ok"] == ba.Settled.fulfilled(1)


# -- objects found through the collector, and a call awaited from inside -------------------


def test_contexts_found_through_the_collector_are_safe(ba):
    """A task's `self` reached through gc.get_objects() (a memory profiler, a
    debugger) is safe to look at, including a finished synchronous task's
    `self` that the C engine keeps to hand on to the next task: repr, dir,
    _name, _signal, a sibling, _end all answer or raise a clear error."""
    context_types = tuple(
        getattr(engine, "Context") for engine in betterall._engines().values() if hasattr(engine, "Context")
    )
    seen: list[str] = []

    def a(self: Any) -> int:
        return 1  # used `self`, ended in its first step: a spare in the C engine

    def b() -> int:
        for obj in gc.get_objects():
            if isinstance(obj, context_types) or type(obj).__name__ == "_Context":
                seen.append(repr(obj))
                dir(obj)
                for attempt in (lambda: obj._name, lambda: obj._signal, lambda: obj.a,
                                lambda: obj["a"], lambda: obj._end(1)):
                    try:
                        attempt()
                    except (RuntimeError, AttributeError, KeyError):
                        pass
        return 2

    for mode in MODES:
        asyncio.run(_run_once(call(ba, mode)({"a": a, "b": b, "c": lambda self: 3})))
    assert seen and all("betterall context" in text or "context" in text.lower() for text in seen)


async def _run_once(aw: Any) -> Any:
    return await aw


@pytest.mark.parametrize("mode", MODES)
async def test_a_task_awaiting_its_own_call_fails_at_once(ba, mode):
    """A task that awaits the very call it belongs to would wait for itself:
    the await raises RuntimeError at once (a call has one waiter, as a
    coroutine does), and the call ends by its usual rules, no hang."""
    holder: list[Any] = []

    async def selfish() -> None:
        await holder[0]

    async def slow() -> str:
        await asyncio.sleep(0.05)
        return "slow"

    holder.append(call(ba, mode)({"selfish": selfish, "slow": slow}))
    if mode == "all_settled":
        r = await asyncio.wait_for(holder[0], 5)
        assert isinstance(r["selfish"].reason, RuntimeError)
        assert "awaited already" in str(r["selfish"].reason)
        assert r["slow"] == ba.Settled.fulfilled("slow")
    else:
        with pytest.raises(RuntimeError, match="awaited already"):
            await asyncio.wait_for(holder[0], 5)


@pytest.mark.parametrize("mode", MODES)
async def test_a_future_of_another_loop_fails_the_task(ba, mode):
    """A task awaiting a future that belongs to a loop running in another
    thread fails with asyncio's own RuntimeError (it would be woken on that
    loop's thread otherwise); the call ends by its usual rules."""
    other = asyncio.new_event_loop()
    thread = threading.Thread(target=other.run_forever, daemon=True)
    thread.start()
    try:
        async def make() -> asyncio.Future[int]:
            return asyncio.get_running_loop().create_future()

        foreign = asyncio.run_coroutine_threadsafe(make(), other).result(5)

        async def wrong() -> int:
            return await foreign

        async def fine() -> str:
            await asyncio.sleep(0.01)
            return "fine"

        tasks = {"wrong": wrong, "fine": fine}
        if mode == "all_settled":
            r = await run(ba.all_settled(tasks))
            assert isinstance(r["wrong"].reason, RuntimeError)
            assert "attached to a different loop" in str(r["wrong"].reason)
            assert r["fine"] == ba.Settled.fulfilled("fine")
        else:
            with pytest.raises(RuntimeError, match="attached to a different loop"):
                await run(call(ba, mode)(tasks))
    finally:
        other.call_soon_threadsafe(other.stop)
        thread.join(5)
        other.close()


@pytest.mark.parametrize("mode", MODES)
async def test_an_awaitable_yielding_a_bad_value_fails_with_asyncios_words(ba, mode):
    """An awaitable whose __await__ is a plain iterator yielding a bad value
    fails its task as asyncio says it: RuntimeError('Task got bad yield: 1'),
    on both engines (not an AttributeError about throw)."""

    class Bad:
        def __await__(self) -> Any:
            return iter([1])

    async def fine() -> str:
        await asyncio.sleep(0.01)
        return "fine"

    tasks = {"bad": lambda: Bad(), "fine": fine}
    if mode == "all_settled":
        r = await run(ba.all_settled(tasks))
        assert isinstance(r["bad"].reason, RuntimeError)
        assert str(r["bad"].reason) == "Task got bad yield: 1"
        assert r["fine"] == ba.Settled.fulfilled("fine")
    else:
        with pytest.raises(RuntimeError, match=r"^Task got bad yield: 1$"):
            await run(call(ba, mode)(tasks))


# -- yielded objects that break the future protocol ------------------


class _BlockingRaises:
    """Yields itself; reading its _asyncio_future_blocking raises."""

    def __init__(self, error: BaseException) -> None:
        self.error = error

    @property
    def _asyncio_future_blocking(self) -> bool:
        raise self.error

    def __await__(self) -> Any:
        yield self


class _CallbackRaises:
    """A future-like object that asks to block, then refuses the callback."""

    def __init__(self, error: BaseException) -> None:
        self.error = error
        self._asyncio_future_blocking = False
        self._loop = asyncio.get_running_loop()

    def get_loop(self) -> asyncio.AbstractEventLoop:
        return self._loop

    def add_done_callback(self, fn: Any, *, context: Any = None) -> None:
        raise self.error

    def cancel(self, msg: Any = None) -> bool:
        return False

    def done(self) -> bool:
        return False

    def __await__(self) -> Any:
        self._asyncio_future_blocking = True
        yield self
        return "never"


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("breaker", ["blocking", "callback"])
@pytest.mark.parametrize("first", [True, False], ids=["at-start", "later"])
async def test_a_yield_that_breaks_the_future_protocol_fails_its_task(ba, mode, breaker, first):
    """A yielded object whose _asyncio_future_blocking or add_done_callback()
    raises fails its task with that error (asyncio.Task would log it and never
    finish); the call follows its usual rules: in all and flow the others are
    cancelled, see the signal aborted, and finish before the call returns."""
    error = LookupError(f"broken {breaker}")
    cleaned: list[bool] = []

    async def broken() -> Any:
        if not first:
            await asyncio.sleep(0)
        if breaker == "blocking":
            return await _BlockingRaises(error)
        return await _CallbackRaises(error)

    async def slow(self: Any) -> str:
        try:
            await asyncio.sleep(0.2)
        finally:
            cleaned.append(self._signal.aborted)
        return "slow"

    tasks = {"broken": broken, "slow": slow}
    if mode == "all_settled":
        r = await run(ba.all_settled(tasks))
        assert r["broken"] == ba.Settled.rejected(error)
        assert r["slow"] == ba.Settled.fulfilled("slow")
        assert cleaned == [False]
    else:
        with pytest.raises(LookupError) as info:
            await run(call(ba, mode)(tasks))
        assert info.value is error
        # slow ran (the error comes at a loop turn, as a bad yield's does),
        # was cancelled, and finished before the call returned
        assert cleaned == [True]


async def test_a_task_may_catch_the_error_of_a_broken_yield(ba):
    """The error is thrown in at the await, so the task can handle it."""

    async def careful() -> str:
        try:
            await _CallbackRaises(KeyError("no callbacks"))
        except KeyError as exc:
            return f"recovered from {exc}"
        return "not reached"

    r = await run(ba.all({"careful": careful}))
    assert r == {"careful": "recovered from 'no callbacks'"}


async def test_a_subclassed_asyncio_future_is_awaited_as_asyncio_does(ba):
    """asyncio's own futures and their subclasses (gather's, a task of a
    subclass) still go to asyncio as they are: results, errors and
    cancellation as in an asyncio.Task."""

    class MyFuture(asyncio.Future):  # type: ignore[type-arg]
        pass

    async def sub() -> int:
        fut = MyFuture()
        asyncio.get_running_loop().call_later(0.01, fut.set_result, 7)
        return await fut

    async def gathered() -> list[int]:
        async def one(i: int) -> int:
            await asyncio.sleep(0.01)
            return i

        return await asyncio.gather(one(1), one(2))

    r = await run(ba.all({"sub": sub, "gathered": gathered}))
    assert r == {"sub": 7, "gathered": [1, 2]}


# -- a wait counts for the task that awaits ---------------------------------


async def test_a_handed_over_awaitable_counts_for_the_task_that_awaits_it(ba):
    """x takes self.y and hands it to z, which awaits it; y then awaits x.
    No task waits for itself: no CycleError, and the trace shows each wait
    where it was made (z on y, y on x)."""
    shared: list[Any] = []
    traces: list[Any] = []

    async def x(self: Any) -> str:
        shared.append(self.y)
        await asyncio.sleep(0.1)
        return "x"

    async def z() -> str:
        await asyncio.sleep(0.02)
        return "z saw " + await shared[0]

    async def y(self: Any) -> str:
        await asyncio.sleep(0.05)
        return "y+" + await self.x

    r = await run(ba.all({"x": x, "z": z, "y": y}, debug=traces.append))
    assert r == {"x": "x", "z": "z saw y+x", "y": "y+x"}
    deps = {name: t.deps for name, t in traces[0].tasks.items()}
    assert deps == {"x": (), "z": ("y",), "y": ("x",)}
    assert traces[0].tasks["z"].waits and not traces[0].tasks["x"].waits


async def test_a_real_cycle_through_a_handed_over_awaitable_is_found(ba):
    """p hands over self.q; r awaits it (r waits on q) while q awaits r: a
    real cycle, reported in the task that closes it, naming q and r."""
    box: list[Any] = []

    async def p(self: Any) -> int:
        box.append(self.q)
        return 1

    async def q(self: Any) -> int:
        await asyncio.sleep(0.05)
        return await self.r

    async def r(self: Any) -> int:
        await asyncio.sleep(0.01)
        return await box[0]

    with pytest.raises(ba.CycleError) as info:
        await run(ba.all({"p": p, "q": q, "r": r}))
    assert info.value.cycle == ("q", "r", "q")


# -- asyncio.wait and odd names ----------------------------------------------


async def test_asyncio_wait_takes_siblings(ba):
    """asyncio.wait() takes sibling awaitables as it takes futures, on both
    engines: FIRST_COMPLETED gives the finished one, the result is read with
    result() or await, and the pending one is still awaited normally."""

    async def fast() -> str:
        await asyncio.sleep(0.01)
        return "fast"

    async def slow() -> str:
        await asyncio.sleep(0.2)
        return "slow"

    async def race(self: Any) -> tuple:
        a, b = self.fast, self.slow
        done, pending = await asyncio.wait([a, b], return_when=asyncio.FIRST_COMPLETED)
        assert done == {a} and pending == {b}
        assert a.done() and not a.cancelled() and a.exception() is None
        first = a.result()
        return first, await a, await b

    r = await run(ba.all({"fast": fast, "slow": slow, "race": race}))
    assert r["race"] == ("fast", "fast", "slow")


async def test_asyncio_wait_sees_a_failed_sibling(ba):
    """FIRST_EXCEPTION stops at a failed sibling; its exception() is the error."""
    error = ValueError("bad")

    async def bad() -> None:
        await asyncio.sleep(0.01)
        raise error

    async def slow() -> str:
        await asyncio.sleep(0.2)
        return "slow"

    async def watch(self: Any) -> Any:
        done, _ = await asyncio.wait([self.bad, self.slow], return_when=asyncio.FIRST_EXCEPTION)
        (failed,) = done
        return failed.exception()

    r = await run(ba.all_settled({"bad": bad, "slow": slow, "watch": watch}))
    assert r["watch"] == ba.Settled.fulfilled(error)


async def test_a_sibling_awaitable_is_not_a_coroutine(ba):
    """To asyncio a sibling awaitable is awaitable but not a coroutine, on
    both engines (asyncio.wait() refuses coroutines); its iterator can still
    be driven by hand with send(None)."""
    seen: list[Any] = []

    async def look(self: Any) -> int:
        aw = self.a
        seen.append((asyncio.iscoroutine(aw), hasattr(aw, "__await__")))
        it = aw.__await__()
        try:
            it.send(None)
        except StopIteration as stop:
            return stop.value
        raise AssertionError("a finished sibling's awaitable returns at once")

    r = await run(ba.all({"a": lambda: 41, "look": look}))
    assert r["look"] == 41
    assert seen == [(False, True)]


class _ConstantHash(str):
    def __hash__(self) -> int:
        return 1


@pytest.mark.parametrize("where", ["key", "lookup"])
async def test_a_str_subclass_name_that_hashes_unlike_str_is_explained(ba, where):
    """A name whose text matches a task's but whose hash does not (a str
    subclass with its own __hash__) is reported as such, not as "unknown
    task 'a' (did you mean 'a'?)"."""
    key = _ConstantHash("a") if where == "key" else "a"
    lookup = "a" if where == "key" else _ConstantHash("a")

    async def user(self: Any) -> Any:
        return await self[lookup]

    with pytest.raises(ba.UnknownTaskError) as info:
        await run(ba.all({key: lambda: 1, "user": user}))
    message = str(info.value)
    assert "did you mean" not in message
    assert "_ConstantHash" in message and "plain str" in message
