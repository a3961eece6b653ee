"""debug=: what the engines record in a Trace, and how it is reported."""

from __future__ import annotations

import asyncio
import logging
import re
import json
import os
import subprocess
import sys
import time
import types
from typing import Any

import pytest


def collect() -> tuple[list, object]:
    seen: list = []
    return seen, seen.append


async def test_trace_of_a_dependency_records_deps_and_waits(ba):
    """deps are in first-await order; waits lie inside the task's span."""
    seen, report = collect()

    async def a():
        await asyncio.sleep(0.06)
        return 1

    async def b():
        await asyncio.sleep(0.01)
        return 2

    async def c(self):
        await self.b
        await self.a
        await self.b
        return 3

    await ba.all({"a": a, "b": b, "c": c}, debug=report)
    (trace,) = seen
    assert isinstance(trace, ba.Trace)
    assert list(trace.tasks) == ["a", "b", "c"]
    tc = trace.tasks["c"]
    assert isinstance(tc, ba.TaskTrace)
    assert tc.deps == ("b", "a")
    assert tc.status == "fulfilled"
    assert len(tc.waits) == 2  # the second await of b was already done
    for start, end in tc.waits:
        assert tc.start <= start <= end <= tc.end
    assert tc.waits[1][1] - tc.waits[0][0] >= 0.04
    assert trace.start <= min(t.start for t in trace.tasks.values())
    assert trace.end >= max(t.end for t in trace.tasks.values())
    assert trace.total == pytest.approx(trace.end - trace.start)
    assert trace.tasks["a"].duration >= 0.05
    assert trace.critical_path() == ["a", "c"]


@pytest.mark.parametrize("width", [1, 2, 8, 9, 30])
async def test_trace_deps_keep_first_await_order_without_repeats(ba, width):
    """One, a few or many siblings, each awaited several times and blocking or
    not: deps lists each once, in first-await order; waits has one pair per
    blocking await."""
    seen, report = collect()
    order = [f"s{i}" for i in reversed(range(width))]  # not the declaration order

    def sibling(i: int) -> Any:
        async def s() -> int:
            if i % 2:
                await asyncio.sleep(0)  # odd ones block their first awaiter
            return i

        return s

    async def sink(self: Any) -> int:
        total = 0
        for _ in range(3):
            for name in order:
                total += await self[name]
        return total

    tasks = {f"s{i}": sibling(i) for i in range(width)}
    r = await ba.all({"sink": sink, **tasks}, debug=report)
    assert r["sink"] == 3 * sum(range(width))
    (trace,) = seen
    sink_trace = trace.tasks["sink"]
    assert sink_trace.deps == tuple(order)
    assert isinstance(sink_trace.waits, tuple)
    # The sink starts first, so its first await blocks; later ones block only
    # on siblings still sleeping: one to `width` waits, each inside its span.
    assert 1 <= len(sink_trace.waits) <= width
    for start, end in sink_trace.waits:
        assert sink_trace.start <= start <= end <= sink_trace.end



async def test_trace_deps_with_str_subclass_names_from_a_mapping(ba):
    """Names may be str subclasses (in a mapping that is not a dict): deps still
    list each awaited sibling once, in order."""

    class Name(str):
        pass

    async def sink(self: Any) -> int:
        return await self.b + await self.a + await self.b + await self.c

    seen, report = collect()
    # A read-only view: a mapping that is not a dict, so its names are kept as given.
    tasks = types.MappingProxyType(
        {Name("sink"): sink, Name("a"): lambda: 1, Name("b"): lambda: 2, Name("c"): lambda: 3}
    )
    assert (await ba.all(tasks, debug=report))["sink"] == 8
    (trace,) = seen
    assert trace.tasks["sink"].deps == ("b", "a", "c")

async def test_trace_statuses(ba):
    """rejected, cancelled and never-started tasks all appear in the trace."""
    seen, report = collect()

    async def slow():
        await asyncio.sleep(5)

    async def fails():
        await asyncio.sleep(0.01)
        raise ValueError("boom")

    with pytest.raises(ValueError):
        await ba.all({"slow": slow, "fails": fails}, debug=report)
    (trace,) = seen
    assert trace.tasks["slow"].status == "cancelled"
    assert trace.tasks["fails"].status == "rejected"


async def test_never_started_task_has_an_empty_span(ba):
    """A task dropped before its start is 'cancelled' with zero duration."""
    seen, report = collect()

    def fails():
        raise ValueError("at once")

    with pytest.raises(ValueError):
        await ba.all({"fails": fails, "later": lambda: 1}, debug=report)
    later = seen[0].tasks["later"]
    assert later.status == "cancelled"
    assert later.duration == 0
    assert seen[0].start <= later.start <= seen[0].end


async def test_flow_trace_marks_the_ender(ba):
    """The task that called _end is 'ended'; the losers are 'cancelled'."""
    seen, report = collect()

    async def loser():
        await asyncio.sleep(5)

    async def winner(self):
        await asyncio.sleep(0.01)
        self._end("won")

    assert await ba.flow({"loser": loser, "winner": winner}, debug=report) == "won"
    tasks = seen[0].tasks
    assert (tasks["loser"].status, tasks["winner"].status) == ("cancelled", "ended")


async def test_debug_true_prints_the_chart_even_when_failing(ba, capsys):
    """debug=True writes the waterfall to stderr when the call raises."""

    async def ok():
        return 1

    async def bad(self):
        await self.ok
        raise KeyError("nope")

    with pytest.raises(KeyError):
        await ba.all({"ok": ok, "bad": bad}, debug=True)
    err = capsys.readouterr().err
    assert "Total Duration" in err
    assert "▓" in err  # the failed task
    assert "bad" in err and "ok" in err


async def test_debug_callable_error_propagates_after_tasks_finished(ba):
    """A failing debug callable raises from the call, after every task ran."""
    finished = []

    async def task():
        try:
            await asyncio.sleep(0.01)
        finally:
            finished.append(True)

    def report(trace):
        raise RuntimeError("reporter broke")

    with pytest.raises(RuntimeError, match="reporter broke"):
        await ba.all({"t": task}, debug=report)
    assert finished == [True]


async def test_debug_callable_error_does_not_replace_the_calls_error(ba):
    """When the call is already failing, its own error wins."""

    def report(trace):
        raise RuntimeError("reporter broke")

    async def bad():
        raise LookupError("task error")

    with pytest.raises(LookupError, match="task error"):
        await ba.all({"bad": bad}, debug=report)


async def test_env_switch_turns_debug_on(ba, monkeypatch, capsys):
    """BETTERALL_DEBUG=1 prints the chart without debug= in the code."""
    monkeypatch.setenv("BETTERALL_DEBUG", "1")
    assert await ba.all({"a": lambda: 1}) == {"a": 1}
    assert "Total Duration" in capsys.readouterr().err
    monkeypatch.setenv("BETTERALL_DEBUG", "0")
    await ba.all({"a": lambda: 1})
    assert capsys.readouterr().err == ""


# --- helpers for the tests below ---------------------------------------------

from helpers import MODES, call


def rel(trace, moment):
    """Seconds from the trace's start."""
    return moment - trace.start


def assert_well_formed(trace):
    """Every span lies inside the trace, every wait inside its task's span."""
    for t in trace.tasks.values():
        assert t.status in ("fulfilled", "rejected", "cancelled", "ended"), t
        assert trace.start <= t.start <= t.end <= trace.end, t
        assert t.duration == pytest.approx(t.end - t.start)
        assert isinstance(t.deps, tuple) and isinstance(t.waits, tuple)
        assert len(set(t.deps)) == len(t.deps), t.deps
        assert all(dep in trace.tasks and dep != t.name for dep in t.deps), t.deps
        for start, end in t.waits:
            assert t.start <= start <= end <= t.end, (t, start, end)


async def sleep_then(seconds, value=None):
    await asyncio.sleep(seconds)
    return value


# --- debug=True: when and where the chart is printed -------------------------


@pytest.mark.parametrize("mode", MODES)
async def test_debug_true_prints_one_chart_to_stderr_in_every_mode(ba, mode, capsys):
    """all/all_settled/flow with debug=True print one chart to stderr, nothing to stdout."""

    async def user():
        return await sleep_then(0.05, "ada")

    async def greeting(self):
        return f"hi {await self.user}"

    await call(ba, mode)({"user": user, "greeting": greeting}, debug=True)
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("Task Execution Waterfall") == 1
    lines = err.splitlines()
    # The chart, then the critical path and the waits under it.
    legend = next(i for i, line in enumerate(lines) if line.startswith("Legend:"))
    assert lines[legend + 1 :] == [
        "",
        lines[legend + 2],
        lines[-1],
    ]
    assert re.fullmatch(r"Critical path: user -> greeting \(\d+\.\dms\)", lines[legend + 2])
    assert re.fullmatch(r"Waited on siblings: greeting \d+\.\dms", lines[-1])
    assert err.endswith("\n")
    assert any(line.startswith("user ") for line in lines)
    assert any(line.startswith("greeting ") for line in lines)


async def test_debug_true_prints_when_a_flow_fails(ba, capsys):
    """A flow that raises still prints its chart, the failed task drawn with ▓."""

    async def bad():
        await asyncio.sleep(0.05)
        raise LookupError("no")

    async def slow():
        await asyncio.sleep(5)

    with pytest.raises(LookupError):
        await ba.flow({"bad": bad, "slow": slow}, debug=True)
    err = capsys.readouterr().err
    assert "Total Duration" in err
    row = next(line for line in err.splitlines() if line.startswith("bad "))
    assert "▓" in row and "█" not in row.split("│")[-1]
    assert "rejected" in row
    assert "cancelled" in next(line for line in err.splitlines() if line.startswith("slow "))


async def test_debug_true_prints_at_timeout_and_caller_cancel(ba, capsys):
    """The chart is printed when the timeout expires and when the caller is cancelled."""

    async def slow():
        await asyncio.sleep(5)

    with pytest.raises(TimeoutError):
        await ba.all({"slow": slow}, debug=True, timeout=0.05)
    assert capsys.readouterr().err.count("Total Duration") == 1

    task = asyncio.ensure_future(ba.all_settled({"slow": slow}, debug=True))
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    err = capsys.readouterr().err
    assert err.count("Total Duration") == 1
    assert "cancelled" in err


async def test_debug_true_chart_is_printed_after_the_tasks_ended(ba, capsys):
    """The chart is printed when the call ends: not before a task's own output."""

    async def talker():
        await asyncio.sleep(0.05)
        print("task output", file=sys.stderr)

    await ba.all({"talker": talker}, debug=True)
    err = capsys.readouterr().err
    assert err.index("task output") < err.index("Task Execution Waterfall")


# --- debug=callable -----------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
async def test_debug_callable_gets_one_trace_and_nothing_is_printed(ba, mode, capsys):
    """debug=callable is called once with a ba.Trace, in every mode; nothing is printed."""
    seen, report = collect()

    async def a():
        return await sleep_then(0.05, 1)

    result = await call(ba, mode)({"a": a, "b": lambda: 2}, debug=report)
    if mode == "all":
        assert result == {"a": 1, "b": 2}
    (trace,) = seen
    assert isinstance(trace, ba.Trace)
    assert list(trace.tasks) == ["a", "b"]
    assert all(isinstance(t, ba.TaskTrace) for t in trace.tasks.values())
    assert [t.name for t in trace.tasks.values()] == ["a", "b"]
    assert capsys.readouterr() == ("", "")


@pytest.mark.parametrize("mode", MODES)
async def test_debug_callable_is_not_called_for_an_empty_graph(ba, mode, monkeypatch):
    """An empty graph reports nothing, also with BETTERALL_DEBUG set."""
    seen, report = collect()
    monkeypatch.setenv("BETTERALL_DEBUG", "1")
    await call(ba, mode)({}, debug=report)
    assert seen == []


async def test_debug_callable_is_called_when_the_call_fails(ba):
    """The callable gets the trace when the call raises, before the error reaches the caller."""
    seen, report = collect()

    async def bad():
        await asyncio.sleep(0.05)
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        await ba.all({"bad": bad, "ok": lambda: 1}, debug=report)
    (trace,) = seen
    assert trace.tasks["bad"].status == "rejected"
    assert trace.tasks["ok"].status == "fulfilled"


async def test_debug_callable_sees_a_finished_graph(ba):
    """When the callable runs, every task of the graph has finished."""
    finished = []
    checked = []

    async def slow():
        try:
            await asyncio.sleep(5)
        finally:
            finished.append("slow")

    async def fails():
        await asyncio.sleep(0.05)
        raise KeyError("x")

    def report(trace):
        checked.append(list(finished))

    with pytest.raises(KeyError):
        await ba.all({"slow": slow, "fails": fails}, debug=report)
    assert checked == [["slow"]]


# --- BETTERALL_DEBUG ----------------------------------------------------------


@pytest.mark.parametrize("value", ["1", "true", "yes", "on", "TRUE"])
@pytest.mark.parametrize("mode", MODES)
async def test_env_switch_on_for_every_mode(ba, mode, value, monkeypatch, capsys):
    """BETTERALL_DEBUG with an 'on' value prints the chart for every entry point."""
    monkeypatch.setenv("BETTERALL_DEBUG", value)
    await call(ba, mode)({"only": lambda: 1})
    err = capsys.readouterr().err
    assert err.count("Task Execution Waterfall") == 1
    assert "only " in err


@pytest.mark.parametrize("value", ["", "0", "false", "no", "off", "OFF", "False"])
async def test_env_switch_off_values(ba, value, monkeypatch, capsys):
    """'', 0, false, no and off (any case) leave debugging off."""
    monkeypatch.setenv("BETTERALL_DEBUG", value)
    await ba.all({"a": lambda: 1})
    await ba.flow({"a": lambda: 1}, debug=None)
    assert capsys.readouterr() == ("", "")


async def test_env_switch_turns_explicit_false_and_none_on(ba, monkeypatch, capsys):
    """With BETTERALL_DEBUG=1, debug=False and debug=None print the chart too."""
    monkeypatch.setenv("BETTERALL_DEBUG", "1")
    await ba.all({"a": lambda: 1}, debug=False)
    await ba.all_settled({"a": lambda: 1}, debug=None)
    assert capsys.readouterr().err.count("Task Execution Waterfall") == 2


async def test_env_switch_keeps_a_debug_callable(ba, monkeypatch, capsys):
    """With BETTERALL_DEBUG=1 a debug callable still gets the trace; nothing is printed."""
    monkeypatch.setenv("BETTERALL_DEBUG", "1")
    seen, report = collect()
    await ba.all({"a": lambda: 1}, debug=report)
    assert len(seen) == 1 and list(seen[0].tasks) == ["a"]
    assert capsys.readouterr() == ("", "")


async def test_env_switch_without_the_variable(ba, monkeypatch, capsys):
    """Without BETTERALL_DEBUG nothing is printed."""
    monkeypatch.delenv("BETTERALL_DEBUG", raising=False)
    await ba.all({"a": lambda: 1})
    assert capsys.readouterr() == ("", "")


# --- the content of a trace -------------------------------------------------------


async def test_trace_times_are_on_the_monotonic_clock(ba):
    """start/end are time.monotonic() values taken during the call."""
    seen, report = collect()
    before = time.monotonic()
    await ba.all({"a": lambda: sleep_then(0.05)}, debug=report)
    after = time.monotonic()
    (trace,) = seen
    assert before <= trace.start <= trace.tasks["a"].start
    assert trace.tasks["a"].end <= trace.end <= after
    assert trace.total == pytest.approx(trace.end - trace.start)
    assert 0.045 <= trace.total <= after - before
    assert trace.tasks["a"].duration >= 0.045


async def test_trace_of_one_task(ba):
    """A single task: one TaskTrace, no deps, no waits, its own critical path."""
    seen, report = collect()
    await ba.all({"only": lambda: sleep_then(0.05, 1)}, debug=report)
    (trace,) = seen
    (only,) = trace.tasks.values()
    assert (only.name, only.status, only.deps, only.waits) == ("only", "fulfilled", (), ())
    assert only.duration >= 0.045
    assert trace.critical_path() == ["only"]
    assert_well_formed(trace)


async def test_sync_task_has_a_short_span(ba):
    """A synchronous task is traced too, with a span of (nearly) no time."""
    seen, report = collect()
    await ba.all({"sync": lambda: 1, "slow": lambda: sleep_then(0.1)}, debug=report)
    sync, slow = seen[0].tasks["sync"], seen[0].tasks["slow"]
    assert sync.status == "fulfilled"
    assert 0 <= sync.duration < 0.05 < slow.duration


async def test_waits_lie_inside_the_task_and_end_with_the_awaited_sibling(ba):
    """Each wait starts after the task started, and ends when the sibling it waited on ended."""
    seen, report = collect()

    async def a():
        return await sleep_then(0.05, 1)

    async def b(self):
        await self.a
        return await sleep_then(0.05, 2)

    async def c(self):
        await asyncio.sleep(0.02)  # runs before it first waits
        await self.b
        await self.a  # already finished: a dep, not a wait
        return await sleep_then(0.05, 3)

    await ba.all({"a": a, "b": b, "c": c}, debug=report)
    (trace,) = seen
    assert_well_formed(trace)
    ta, tb, tc = trace.tasks["a"], trace.tasks["b"], trace.tasks["c"]
    assert (tb.deps, tc.deps) == (("a",), ("b", "a"))
    ((b_from, b_to),) = tb.waits
    ((c_from, c_to),) = tc.waits
    assert b_to == pytest.approx(ta.end, abs=0.02)
    assert c_to == pytest.approx(tb.end, abs=0.02)
    assert rel(trace, c_from) >= 0.015  # c ran for 20 ms before it waited
    assert tc.end - c_to >= 0.045  # and ran again after the wait
    assert trace.critical_path() == ["a", "b", "c"]


async def test_deps_include_siblings_that_were_already_finished(ba):
    """Awaiting a finished sibling records it in deps, without a wait period."""
    seen, report = collect()

    async def user(self):
        return await self.done + 1

    await ba.all({"done": lambda: 1, "user": user}, debug=report)
    t = seen[0].tasks["user"]
    assert (t.deps, t.waits) == (("done",), ())


async def test_deps_in_first_await_order_with_item_access_and_repeats(ba):
    """deps keep first-await order across self.x, self["x"] and repeated awaits."""
    seen, report = collect()

    async def a():
        return await sleep_then(0.05, 1)

    async def b():
        return await sleep_then(0.06, 2)

    async def c():
        return 3

    async def sink(self):
        total = await self["c"]
        total += await self.b
        total += await self.c + await self["a"] + await self.b
        return total

    assert (await ba.all({"a": a, "b": b, "c": c, "sink": sink}, debug=report))["sink"] == 11
    assert seen[0].tasks["sink"].deps == ("c", "b", "a")


@pytest.mark.parametrize("wrap", ["wait_for", "shield"])
async def test_deps_and_waits_through_asyncio_helpers(ba, wrap):
    """A sibling awaited through asyncio.wait_for or asyncio.shield is a dep with a wait."""
    seen, report = collect()

    async def user(self):
        if wrap == "wait_for":
            return await asyncio.wait_for(self.slow, 1)
        return await asyncio.shield(self.slow)

    r = await ba.all({"slow": lambda: sleep_then(0.05, 1), "user": user}, debug=report)
    assert r["user"] == 1
    (trace,) = seen
    assert_well_formed(trace)
    t = trace.tasks["user"]
    assert (t.deps, len(t.waits)) == (("slow",), 1)
    ((wait_start, wait_end),) = t.waits
    assert wait_start < wait_end == pytest.approx(trace.tasks["slow"].end, abs=0.02)
    assert trace.critical_path() == ["slow", "user"]


async def test_a_sibling_taken_but_not_awaited_is_not_a_dep(ba):
    """self.x without await is not recorded: deps are the siblings awaited."""
    seen, report = collect()

    async def lazy(self):
        self.other  # noqa: B018 - taken, never awaited
        return await sleep_then(0.05, 1)

    await ba.all({"other": lambda: sleep_then(0.05), "lazy": lazy}, debug=report)
    assert seen[0].tasks["lazy"].deps == ()


async def test_waiting_on_a_failed_sibling(ba):
    """A task waiting on a failed sibling records the dep and a wait that ends with the failure."""
    seen, report = collect()

    async def boom():
        await asyncio.sleep(0.05)
        raise ValueError("boom")

    async def doomed(self):
        return await self.boom

    async def fallback(self):
        try:
            await self.boom
        except ValueError:
            return await sleep_then(0.05, "fallback")

    r = await ba.all_settled({"boom": boom, "doomed": doomed, "fallback": fallback}, debug=report)
    assert r["fallback"] == ba.Settled.fulfilled("fallback")
    (trace,) = seen
    assert_well_formed(trace)
    boom_t, doomed_t, fallback_t = (trace.tasks[n] for n in ("boom", "doomed", "fallback"))
    assert (boom_t.status, doomed_t.status, fallback_t.status) == ("rejected", "rejected", "fulfilled")
    assert doomed_t.deps == fallback_t.deps == ("boom",)
    for t in (doomed_t, fallback_t):
        ((_, wait_end),) = t.waits
        assert wait_end == pytest.approx(boom_t.end, abs=0.02)
    assert doomed_t.end == pytest.approx(boom_t.end, abs=0.02)
    assert fallback_t.end - boom_t.end >= 0.045
    assert trace.critical_path() == ["boom", "fallback"]


async def test_a_task_cancelled_while_waiting(ba):
    """A waiter cancelled by the graph keeps its dep and a wait that ends when it was cancelled."""
    seen, report = collect()

    async def slow():
        await asyncio.sleep(5)

    async def waiter(self):
        await self.slow

    async def bad():
        await asyncio.sleep(0.05)
        raise OSError("down")

    with pytest.raises(OSError):
        await ba.all({"slow": slow, "waiter": waiter, "bad": bad}, debug=report)
    (trace,) = seen
    assert_well_formed(trace)
    w = trace.tasks["waiter"]
    assert (w.status, w.deps, len(w.waits)) == ("cancelled", ("slow",), 1)
    assert w.waits[0][1] - w.waits[0][0] >= 0.045
    assert trace.tasks["slow"].status == "cancelled"


# --- every way a task can end appears in the trace ---------------------------------


async def test_flow_trace_has_ended_cancelled_and_never_started_tasks(ba):
    """_end during the start: the ender is 'ended', a running task 'cancelled',
    tasks after it never started ('cancelled', empty span) - all in the trace."""
    seen, report = collect()

    async def running():
        await asyncio.sleep(5)

    def ender(self):
        self._end("early")

    async def never():
        raise AssertionError("never started")

    r = await ba.flow({"running": running, "ender": ender, "never": never, "sync": lambda: 1}, debug=report)
    assert r == "early"
    (trace,) = seen
    assert_well_formed(trace)
    assert list(trace.tasks) == ["running", "ender", "never", "sync"]
    statuses = {n: t.status for n, t in trace.tasks.items()}
    assert statuses == {"running": "cancelled", "ender": "ended", "never": "cancelled", "sync": "cancelled"}
    assert trace.tasks["never"].duration == trace.tasks["sync"].duration == 0
    assert trace.tasks["never"].start >= trace.tasks["ender"].start


async def test_timed_out_tasks_are_cancelled_in_the_trace(ba):
    """Tasks still running at the timeout appear as 'cancelled'; finished ones keep their status."""
    seen, report = collect()

    async def slow():
        await asyncio.sleep(5)

    with pytest.raises(TimeoutError):
        await ba.all({"slow": slow, "quick": lambda: 1}, debug=report, timeout=0.08)
    (trace,) = seen
    assert_well_formed(trace)
    assert trace.tasks["slow"].status == "cancelled"
    assert trace.tasks["quick"].status == "fulfilled"
    assert trace.tasks["slow"].end - trace.start >= 0.075


async def test_caller_cancellation_is_in_the_trace(ba):
    """When the caller is cancelled, the callable still gets the trace of every task, cancelled."""
    seen, report = collect()

    async def slow():
        await asyncio.sleep(5)

    async def waiter(self):
        await self.slow

    task = asyncio.ensure_future(ba.all({"slow": slow, "waiter": waiter}, debug=report))
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    (trace,) = seen
    assert_well_formed(trace)
    assert {t.status for t in trace.tasks.values()} == {"cancelled"}
    assert trace.tasks["waiter"].deps == ("slow",)


# --- long chains and many tasks ----------------------------------------------------


@pytest.mark.parametrize("reverse", [False, True], ids=["dependency-order", "dependents-first"])
async def test_trace_of_a_long_chain(ba, reverse):
    """A chain of 300 tasks: every link is a dep, and the critical path is the whole chain."""
    n = 300
    seen, report = collect()

    def link(i):
        async def f(self):
            return await self[f"t{i - 1}"] + 1

        return f

    async def first():
        return await sleep_then(0.05, 0)

    graph = {"t0": first, **{f"t{i}": link(i) for i in range(1, n)}}
    if reverse:
        graph = dict(reversed(list(graph.items())))
    result = await ba.all(graph, debug=report)
    assert result[f"t{n - 1}"] == n - 1
    (trace,) = seen
    assert_well_formed(trace)
    assert list(trace.tasks) == list(graph)
    for i in range(1, n):
        t = trace.tasks[f"t{i}"]
        assert t.deps == (f"t{i - 1}",)
        assert len(t.waits) == 1
    assert trace.critical_path() == [f"t{i}" for i in range(n)]


# --- critical path of real runs ------------------------------------------------------


def diamond_graph(b_ms, c_ms):
    """a 50 ms; b and c after a; d after b and c, then 50 ms."""

    async def a():
        return await sleep_then(0.05, 1)

    async def b(self):
        await self.a
        return await sleep_then(b_ms / 1000, 2)

    async def c(self):
        await self.a
        return await sleep_then(c_ms / 1000, 3)

    async def d(self):
        return await self.b + await self.c + await sleep_then(0.05, 0)

    return {"a": a, "b": b, "c": c, "d": d}


@pytest.mark.parametrize(
    ("b_ms", "c_ms", "reverse", "path"),
    [
        (50, 150, False, ["a", "c", "d"]),
        (150, 50, False, ["a", "b", "d"]),
        (50, 150, True, ["a", "c", "d"]),
        (150, 50, True, ["a", "b", "d"]),
    ],
)
async def test_critical_path_of_a_diamond_with_known_sleeps(ba, b_ms, c_ms, reverse, path):
    """a -> (b, c) -> d: the path goes through the slower middle task, whatever the mapping order."""
    seen, report = collect()
    graph = diamond_graph(b_ms, c_ms)
    if reverse:
        graph = dict(reversed(list(graph.items())))
    assert (await ba.all(graph, debug=report))["d"] == 5
    (trace,) = seen
    assert_well_formed(trace)
    assert trace.critical_path() == path
    assert trace.tasks["d"].deps == ("b", "c")
    assert trace.total >= 0.24


async def test_critical_path_ends_with_the_task_that_ended_last(ba):
    """A lone slow task that ended last is the whole path, though another chain has more tasks."""
    seen, report = collect()

    async def a():
        return await sleep_then(0.05)

    async def b(self):
        await self.a
        return await sleep_then(0.03)

    async def lone():
        return await sleep_then(0.15)

    await ba.all({"a": a, "b": b, "lone": lone}, debug=report)
    assert seen[0].critical_path() == ["lone"]


# --- python -m betterall ------------------------------------------------------------


def run_demo(ba, *args):
    """``python -m betterall *args`` in a fresh interpreter using ba's engine."""
    env = dict(os.environ)
    env.pop("PYTHONASYNCIODEBUG", None)
    env.pop("BETTERALL_DEBUG", None)
    env["BETTERALL_NO_EXTENSIONS"] = "1" if ba.ENGINE == "python" else "0"
    proc = subprocess.run(
        [sys.executable, "-m", "betterall", "--repeat", "1", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert f"({ba.ENGINE} engine)" in proc.stdout
    return proc.stdout


def test_demo_shows_charts_and_critical_paths(ba, tmp_path):
    """python -m betterall prints the waterfall and critical path of each demo graph,
    and --chrome-trace writes loadable Chrome traces."""
    out = run_demo(ba, "--chrome-trace", str(tmp_path))
    assert out.count("Task Execution Waterfall") == 2
    assert out.count("Legend:") == 2
    assert "critical path: user -> profile" in out
    assert "critical path: user -> posts -> comments" in out
    for name, tasks in (("dashboard", 3), ("feed", 6)):
        data = json.loads((tmp_path / f"{name}.json").read_text(encoding="utf-8"))
        events = [e for e in data["traceEvents"] if e.get("cat") == "task"]
        assert len(events) == tasks


def test_demo_creates_the_chrome_trace_directory(ba, tmp_path):
    """--chrome-trace DIR creates DIR (and its parents) when missing; a path
    that cannot be a directory is a usage error naming it."""
    target = tmp_path / "traces" / "today"
    run_demo(ba, "--chrome-trace", str(target))
    assert sorted(p.name for p in target.iterdir()) == ["dashboard.json", "feed.json"]
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    proc = subprocess.run(
        [sys.executable, "-m", "betterall", "--repeat", "1", "--chrome-trace", str(blocker)],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2
    assert "--chrome-trace" in proc.stderr and "a-file" in proc.stderr


def test_demo_without_chart(ba):
    """python -m betterall --no-chart prints only the timings."""
    out = run_demo(ba, "--no-chart")
    assert out.count("speed-up") == 2
    assert "Waterfall" not in out and "critical path" not in out


# --- debug="label", logging -----------------------------------------------


async def test_a_label_titles_the_chart(ba, capsys):
    """debug="GET /dashboard" shows the chart as debug=True does, with the
    label in its title, so a server's charts can be told apart."""

    async def user():
        return await sleep_then(0.02, "ada")

    await ba.all({"user": user}, debug="GET /dashboard req=7")
    err = capsys.readouterr().err
    assert err.count("Task Execution Waterfall: GET /dashboard req=7") == 1
    assert "Critical path: user (" in err


async def test_the_chart_goes_to_the_betterall_logger_when_logging_would_emit_it(ba, capsys):
    """With a handler on the betterall logger and INFO enabled, the chart is
    one INFO record there, and nothing is printed; otherwise it goes to
    stderr, as before."""
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    logger = logging.getLogger("betterall")
    handler = Keep()
    old_level = logger.level
    logger.addHandler(handler)
    try:
        logger.setLevel(logging.WARNING)  # INFO filtered out: stderr, as before
        await ba.all({"a": lambda: 1}, debug=True)
        assert "Task Execution Waterfall" in capsys.readouterr().err and records == []
        logger.setLevel(logging.INFO)
        await ba.all({"a": lambda: 1}, debug="POST /orders")
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
    assert capsys.readouterr().err == ""
    assert len(records) == 1
    assert records[0].levelno == logging.INFO and records[0].name == "betterall"
    assert "Task Execution Waterfall: POST /orders" in records[0].getMessage()


def test_trace_waterfall_takes_a_label():
    """Trace.waterfall(label=...) puts the label in the title; the box grows to fit it."""
    import betterall

    trace = betterall.Trace(
        start=0.0, end=0.01,
        tasks={"a": betterall.TaskTrace("a", 0.0, 0.01, "fulfilled", (), ())},
    )
    long_label = "GET /a/very/long/route/that/is/wider/than/the/table/itself?with=query"
    chart = trace.waterfall(label=long_label)
    top, title = chart.splitlines()[:2]
    assert long_label in title and len(top) == len(title)
    assert trace.waterfall() == str(trace)
