"""debug=: what the engines record in a Trace, and how it is reported."""

from __future__ import annotations

import asyncio

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
