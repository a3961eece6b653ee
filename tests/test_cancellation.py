"""Contract: cancellation, timeouts, the signal, and how the outcome is decided.

docs/api.md: the entry-point table (all / all_settled / flow "on failure"), the
bullets on start order, `timeout`, caller cancellation and "errors that
other tasks raise while being cancelled do not replace it", and the
`self._signal` / `self._end` rows of the context table.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time

import pytest

from helpers import LIMIT, MODES, call, run


async def cancel_caller_after(coro, delay=0.05, snapshot=None, log=None):
    """Run `coro` in a task, cancel it after `delay`; return the CancelledError it raised.

    `snapshot` receives a copy of `log` taken the moment the call raised.
    """

    async def caller():
        try:
            return await coro
        except asyncio.CancelledError:
            if snapshot is not None:
                snapshot.extend(log)
            raise

    task = asyncio.create_task(caller())
    await asyncio.sleep(delay)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(asyncio.shield(task), LIMIT)
    assert task.cancelled()


# -- cancelling the caller ------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
async def test_caller_cancel_cancels_every_running_task(ba, mode):
    """Cancelling the caller cancels every running task; their finally ran before the call returns."""
    log, snapshot = [], []

    async def sleeper(self):
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            log.append(("cancelled", self._name))
            raise
        finally:
            log.append(("finally", self._name))

    tasks = {"a": sleeper, "b": sleeper, "c": sleeper, "done": lambda: 1}
    t0 = time.monotonic()
    await cancel_caller_after(call(ba, mode)(tasks), snapshot=snapshot, log=log)
    assert time.monotonic() - t0 < 2
    for name in "abc":
        assert ("cancelled", name) in snapshot
        assert ("finally", name) in snapshot
    assert len(snapshot) == 6


@pytest.mark.parametrize("mode", MODES)
async def test_caller_cancel_raises_cancelled_error(ba, mode):
    """Cancelling the caller makes the call raise CancelledError (not a task error, not TimeoutError)."""
    raised = []

    async def sleeper():
        await asyncio.sleep(10)

    async def caller():
        try:
            await call(ba, mode)({"a": sleeper}, timeout=8)
        except BaseException as exc:
            raised.append(exc)
            raise

    task = asyncio.create_task(caller())
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run(task)
    assert len(raised) == 1
    assert type(raised[0]) is asyncio.CancelledError


@pytest.mark.parametrize("mode", MODES)
async def test_caller_cancel_waits_for_slow_cleanup(ba, mode):
    """The call does not return before a cancelled task has finished its (slow) cleanup."""
    log, snapshot = [], []

    async def slow_cleanup(self):
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            await asyncio.sleep(0.1)
            log.append("cleaned")
            raise

    async def quick(self):
        try:
            await asyncio.sleep(10)
        finally:
            log.append("quick")

    t0 = time.monotonic()
    await cancel_caller_after(
        call(ba, mode)({"slow": slow_cleanup, "quick": quick}), snapshot=snapshot, log=log
    )
    assert time.monotonic() - t0 >= 0.14
    assert sorted(snapshot) == ["cleaned", "quick"]


@pytest.mark.parametrize("mode", MODES)
async def test_caller_cancelled_twice_still_waits_for_cleanup(ba, mode):
    """Cancelled again while tasks clean up, the call still waits for them to finish."""
    log, snapshot = [], []
    loop = asyncio.get_running_loop()

    async def slow_cleanup(self):
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            # ~0.15 s of cleanup that survives further cancellations.
            t0 = loop.time()
            while loop.time() - t0 < 0.15:
                try:
                    await asyncio.sleep(0.02)
                except asyncio.CancelledError:
                    log.append("cancelled again")
            log.append("cleaned")
            raise

    async def caller():
        try:
            await call(ba, mode)({"slow": slow_cleanup, "other": lambda: 1})
        except asyncio.CancelledError:
            snapshot.extend(log)
            raise

    task = asyncio.create_task(caller())
    await asyncio.sleep(0.05)
    task.cancel()
    await asyncio.sleep(0.05)
    assert not task.done()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(asyncio.shield(task), LIMIT)
    assert "cleaned" in snapshot
    assert snapshot[-1] == "cleaned"
    # The graph cancels each task once: the second cancel of the caller
    # never reached the clean-up.
    assert "cancelled again" not in snapshot


@pytest.mark.parametrize("mode", MODES)
async def test_caller_cancel_never_runs_tasks_past_the_call(ba, mode):
    """After the cancelled call returns, no task of the graph does anything more."""
    log = []

    async def ticker(self):
        while True:
            await asyncio.sleep(0.01)
            log.append(self._name)

    await cancel_caller_after(call(ba, mode)({"a": ticker, "b": ticker}))
    n = len(log)
    await asyncio.sleep(0.05)
    assert len(log) == n


@pytest.mark.parametrize("mode", MODES)
async def test_asyncio_timeout_around_call_cancels_and_waits(ba, mode):
    """asyncio.timeout() around the call cancels the tasks, waits for them, and gives TimeoutError."""
    log, snapshot = [], []

    async def slow(self):
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            await asyncio.sleep(0.05)
            log.append(self._name)
            raise

    t0 = time.monotonic()
    with pytest.raises(TimeoutError):
        try:
            async with asyncio.timeout(0.05):
                await call(ba, mode)({"a": slow, "b": slow})
        finally:
            snapshot.extend(log)
    assert time.monotonic() - t0 < 2
    assert sorted(snapshot) == ["a", "b"]


@pytest.mark.parametrize("mode", MODES)
async def test_wait_for_around_call_cancels_and_waits(ba, mode):
    """asyncio.wait_for() around the call cancels the tasks and waits for them to finish."""
    log = []

    async def slow(self):
        try:
            await asyncio.sleep(10)
        finally:
            log.append(self._name)

    with pytest.raises(TimeoutError):
        await asyncio.wait_for(call(ba, mode)({"a": slow, "b": slow}), 0.05)
    assert sorted(log) == ["a", "b"]


# -- timeout ------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["all", "flow"])
async def test_timeout_raises_timeout_error(ba, mode):
    """With timeout=, all and flow raise TimeoutError when tasks are still running."""
    log = []

    async def slow(self):
        try:
            await asyncio.sleep(10)
        finally:
            log.append("finally")

    t0 = time.monotonic()
    with pytest.raises(TimeoutError):
        await run(call(ba, mode)({"slow": slow, "fast": lambda: 1}, timeout=0.05))
    assert time.monotonic() - t0 < 1
    assert log == ["finally"]


@pytest.mark.parametrize("mode", ["all", "flow"])
async def test_timeout_waits_for_cleanup(ba, mode):
    """On timeout the call returns only after the cancelled tasks have finished cleaning up."""
    log = []

    async def slow(self):
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            await asyncio.sleep(0.1)
            log.append("cleaned")
            raise

    with pytest.raises(TimeoutError):
        await run(call(ba, mode)({"slow": slow}, timeout=0.05))
    assert log == ["cleaned"]


@pytest.mark.parametrize("mode", ["all", "flow"])
async def test_no_timeout_when_finished_in_time(ba, mode):
    """A graph that finishes before the deadline is not affected by timeout=."""

    async def quick(self):
        await asyncio.sleep(0.01)
        if mode == "flow":
            self._end("done")
        return "done"

    r = await run(call(ba, mode)({"q": quick}, timeout=1))
    assert r == ("done" if mode == "flow" else {"q": "done"})


async def test_timeout_all_settled_reports_running_tasks_as_timeout(ba):
    """all_settled with timeout= returns what finished, and TimeoutError for what was running."""
    log = []
    boom = ValueError("boom")

    async def fast():
        await asyncio.sleep(0.01)
        return "fast"

    async def failing():
        await asyncio.sleep(0.01)
        raise boom

    async def slow():
        try:
            await asyncio.sleep(10)
        finally:
            log.append("slow finally")

    async def dependent(self):
        return await self.slow

    t0 = time.monotonic()
    r = await run(
        ba.all_settled(
            {"fast": fast, "failing": failing, "slow": slow, "dependent": dependent, "sync": lambda: 0},
            timeout=0.1,
        )
    )
    assert time.monotonic() - t0 < 1
    assert list(r) == ["fast", "failing", "slow", "dependent", "sync"]
    assert r["fast"] == ba.Settled.fulfilled("fast")
    assert r["sync"] == ba.Settled.fulfilled(0)
    assert r["failing"] == ba.Settled.rejected(boom)
    for name in ("slow", "dependent"):
        assert r[name].status == "rejected"
        assert isinstance(r[name].reason, TimeoutError), r[name]
    assert log == ["slow finally"]


async def test_timeout_zero_all_settled(ba):
    """timeout=0: synchronous tasks still fulfil; async ones that suspend are cancelled (TimeoutError)."""
    log = []

    async def no_suspend():
        return "ns"

    async def suspends():
        try:
            await asyncio.sleep(0.05)
            log.append("ran to completion")
        finally:
            log.append("finally")

    r = await run(
        ba.all_settled(
            {"sync": lambda: "s", "ctx": lambda self: self._name, "ns": no_suspend, "susp": suspends},
            timeout=0,
        )
    )
    assert r["sync"] == ba.Settled.fulfilled("s")
    assert r["ctx"] == ba.Settled.fulfilled("ctx")
    assert r["ns"] == ba.Settled.fulfilled("ns")
    assert r["susp"].status == "rejected"
    assert isinstance(r["susp"].reason, TimeoutError)
    assert log == ["finally"]


async def test_timeout_zero_all_synchronous_tasks_fulfil(ba):
    """timeout=0 in all: a graph of tasks that finish during the start returns their results."""

    async def no_suspend():
        return "ns"

    r = await run(ba.all({"sync": lambda: "s", "ns": no_suspend}, timeout=0))
    assert r == {"sync": "s", "ns": "ns"}


@pytest.mark.parametrize("mode", ["all", "flow"])
async def test_timeout_zero_with_suspending_task_raises(ba, mode):
    """timeout=0 in all/flow: a task that suspends is cancelled and the call raises TimeoutError."""
    log = []

    async def suspends():
        try:
            await asyncio.sleep(0.05)
            log.append("ran to completion")
        finally:
            log.append("finally")

    with pytest.raises(TimeoutError):
        await run(call(ba, mode)({"sync": lambda: 1, "susp": suspends}, timeout=0))
    assert log == ["finally"]


async def test_timeout_zero_flow_synchronous_tasks_without_end(ba):
    """timeout=0 in flow: tasks that all finish during the start, none ending it, give None."""
    log = []
    assert await run(ba.flow({"a": lambda: log.append("a"), "b": lambda: 2}, timeout=0)) is None
    assert log == ["a"]


async def test_timeout_zero_flow_sync_end(ba):
    """timeout=0 in flow: a synchronous _end still wins."""
    assert await run(ba.flow({"e": lambda self: self._end("won")}, timeout=0)) == "won"


# -- the signal -------------------------------------------------------------------------


async def test_signal_not_aborted_while_running(ba):
    """While nothing has stopped the graph, the signal is not aborted and has no reason."""
    seen = []

    async def t(self):
        seen.append((self._signal.aborted, self._signal.reason))
        await asyncio.sleep(0.01)
        seen.append((self._signal.aborted, self._signal.reason))

    await ba.all({"a": t, "b": t})
    assert seen == [(False, None)] * 4


async def test_signal_shared_by_all_tasks(ba):
    """All tasks of a graph see the same Signal, an instance of ba.Signal."""
    r = await ba.all({"a": lambda self: self._signal, "b": lambda self: self._signal})
    assert r["a"] is r["b"]
    assert isinstance(r["a"], ba.Signal)


async def test_signal_all_aborted_on_first_failure(ba):
    """In all, the first failure aborts the signal with that error; a cancelled task sees it."""
    boom = ValueError("boom")
    seen = []

    async def failing():
        await asyncio.sleep(0.02)
        raise boom

    async def victim(self):
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            seen.append((self._signal.aborted, self._signal.reason))
            raise

    with pytest.raises(ValueError) as info:
        await run(ba.all({"failing": failing, "victim": victim}))
    assert info.value is boom
    assert len(seen) == 1
    assert seen[0][0] is True
    assert seen[0][1] is boom


async def test_signal_flow_aborted_on_end_with_flow_end(ba):
    """In flow, _end aborts the signal with a FlowEnd carrying the value; losers see it."""
    seen = []

    async def winner(self):
        await asyncio.sleep(0.02)
        self._end("v")

    async def loser(self):
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            seen.append((self._signal.aborted, self._signal.reason))
            raise

    assert await run(ba.flow({"winner": winner, "loser": loser})) == "v"
    assert len(seen) == 1
    aborted, reason = seen[0]
    assert aborted is True
    assert isinstance(reason, ba.FlowEnd)
    assert reason.value == "v"


async def test_signal_flow_aborted_on_failure(ba):
    """In flow, a failure before _end aborts the signal with that error."""
    boom = KeyError("k")
    seen = []

    async def failing():
        await asyncio.sleep(0.02)
        raise boom

    async def victim(self):
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            seen.append(self._signal.reason)
            raise

    with pytest.raises(KeyError) as info:
        await run(ba.flow({"failing": failing, "victim": victim}))
    assert info.value is boom
    assert seen == [boom]


@pytest.mark.parametrize("mode", MODES)
async def test_signal_aborted_on_caller_cancel(ba, mode):
    """In every mode, cancelling the caller aborts the signal with a CancelledError."""
    seen = []

    async def victim(self):
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            seen.append((self._signal.aborted, self._signal.reason))
            raise

    await cancel_caller_after(call(ba, mode)({"victim": victim}))
    assert len(seen) == 1
    assert seen[0][0] is True
    assert isinstance(seen[0][1], asyncio.CancelledError)


@pytest.mark.parametrize("mode", MODES)
async def test_signal_aborted_on_timeout(ba, mode):
    """In every mode, the timeout aborts the signal with a TimeoutError."""
    seen = []

    async def victim(self):
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            seen.append((self._signal.aborted, self._signal.reason))
            raise

    try:
        await run(call(ba, mode)({"victim": victim}, timeout=0.05))
    except TimeoutError:
        assert mode != "all_settled"
    assert len(seen) == 1
    assert seen[0][0] is True
    assert isinstance(seen[0][1], TimeoutError)


async def test_signal_polled_by_uncancellable_work(ba):
    """Work that is not cancellable (a thread) can poll the signal to stop early."""
    import threading

    stopped = threading.Event()

    def worker(signal):
        for _ in range(500):
            if signal.aborted:
                stopped.set()
                return
            time.sleep(0.01)

    async def thread_task(self):
        await asyncio.to_thread(worker, self._signal)

    async def failing():
        await asyncio.sleep(0.03)
        raise ValueError("stop")

    t0 = time.monotonic()
    with pytest.raises(ValueError):
        await run(ba.all({"thread": thread_task, "failing": failing}))
    # The call waits for the thread task, which ends once the thread saw the signal.
    assert time.monotonic() - t0 < 2
    assert stopped.wait(2)


async def test_all_settled_failure_does_not_abort_signal_or_cancel(ba):
    """all_settled: a failing task neither aborts the signal nor cancels its siblings."""
    boom = ValueError("boom")
    seen = []

    async def failing():
        await asyncio.sleep(0.01)
        raise boom

    async def sibling(self):
        await asyncio.sleep(0.06)
        seen.append((self._signal.aborted, self._signal.reason))
        return "finished"

    r = await run(ba.all_settled({"failing": failing, "sibling": sibling}))
    assert r == {
        "failing": ba.Settled.rejected(boom),
        "sibling": ba.Settled.fulfilled("finished"),
    }
    assert seen == [(False, None)]


async def test_all_settled_sync_failure_does_not_stop_later_tasks(ba):
    """all_settled: a task failing during the start does not prevent later tasks from running."""
    log = []

    def failing():
        raise ValueError("boom")

    r = await ba.all_settled({"failing": failing, "later": lambda: log.append("later")})
    assert log == ["later"]
    assert r["later"] == ba.Settled.fulfilled(None)
    assert r["failing"].status == "rejected"


# -- all: the first error wins ---------------------------------------------------------


async def test_all_first_error_propagates_unchanged(ba):
    """In all, the first error raised by a task propagates as the same object."""
    boom = ValueError("boom")

    async def failing():
        await asyncio.sleep(0.01)
        raise boom

    async def ok():
        await asyncio.sleep(0.01)
        return 1

    with pytest.raises(ValueError) as info:
        await run(ba.all({"ok": ok, "failing": failing}))
    assert info.value is boom


async def test_all_first_error_of_several(ba):
    """In all, when several tasks fail, the first (in time) is the one that propagates."""
    first = ValueError("first")
    second = TypeError("second")

    async def early():
        await asyncio.sleep(0.01)
        raise first

    async def late():
        await asyncio.sleep(0.05)
        raise second

    with pytest.raises(ValueError) as info:
        await run(ba.all({"late": late, "early": early}))
    assert info.value is first


async def test_all_cancels_others_and_waits_for_them(ba):
    """In all, other tasks are cancelled and have finished (finally ran) before the call raises."""
    log, snapshot = [], []

    async def failing():
        await asyncio.sleep(0.02)
        raise ValueError("boom")

    async def other(self):
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            await asyncio.sleep(0.05)  # slow cleanup
            log.append(("cleaned", self._name))
            raise
        finally:
            log.append(("finally", self._name))

    t0 = time.monotonic()
    try:
        await run(ba.all({"x": other, "failing": failing, "y": other}))
    except ValueError:
        snapshot.extend(log)
    assert time.monotonic() - t0 < 2
    assert sorted(snapshot) == [
        ("cleaned", "x"),
        ("cleaned", "y"),
        ("finally", "x"),
        ("finally", "y"),
    ]


async def test_all_errors_during_cancellation_do_not_replace_first(ba, caplog):
    """Errors raised by tasks while being cancelled do not replace the first, and are not logged."""
    boom = ValueError("boom")

    async def failing():
        await asyncio.sleep(0.02)
        raise boom

    async def noisy_cleanup():
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            raise RuntimeError("error while cancelled") from None

    async def noisy_finally():
        try:
            await asyncio.sleep(10)
        finally:
            raise KeyError("error in finally")

    async def waiter_of_failing(self):
        return await self.failing

    caplog.set_level(logging.DEBUG, logger="asyncio")
    with pytest.raises(ValueError) as info:
        await run(
            ba.all(
                {
                    "noisy1": noisy_cleanup,
                    "failing": failing,
                    "noisy2": noisy_finally,
                    "waiter": waiter_of_failing,
                }
            )
        )
    assert info.value is boom
    await asyncio.sleep(0.01)
    gc.collect()
    await asyncio.sleep(0)
    messages = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert not [m for m in messages if "never retrieved" in m], messages
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], messages


async def test_flow_errors_after_end_do_not_replace_value(ba, caplog):
    """In flow, errors raised by losers while being cancelled do not replace the _end value."""

    async def winner(self):
        await asyncio.sleep(0.02)
        self._end("v")

    async def noisy():
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            raise RuntimeError("error while cancelled") from None

    caplog.set_level(logging.DEBUG, logger="asyncio")
    assert await run(ba.flow({"noisy": noisy, "winner": winner})) == "v"
    await asyncio.sleep(0.01)
    gc.collect()
    await asyncio.sleep(0)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


# -- flow ------------------------------------------------------------------------------


async def test_flow_returns_first_end_value(ba):
    """flow returns the value of the first _end."""

    async def fast(self):
        await asyncio.sleep(0.01)
        self._end("fast")

    async def slow(self):
        await asyncio.sleep(0.05)
        self._end("slow")

    assert await run(ba.flow({"slow": slow, "fast": fast})) == "fast"


async def test_flow_second_end_from_cancelled_loser_ignored(ba):
    """A second _end (from a loser, while being cancelled) is ignored."""
    log = []

    async def winner(self):
        await asyncio.sleep(0.01)
        self._end("first")

    async def loser(self):
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            log.append("loser cancelled")
            self._end("second")

    assert await run(ba.flow({"loser": loser, "winner": winner})) == "first"
    assert log == ["loser cancelled"]


async def test_flow_second_end_in_same_task_ignored(ba):
    """A task calling _end twice (catching the first FlowEnd) keeps the first value."""

    async def t(self):
        await asyncio.sleep(0)
        try:
            self._end(1)
        except ba.FlowEnd:
            self._end(2)

    assert await run(ba.flow({"t": t})) == 1


async def test_flow_losers_cancelled_without_waiting_for_completion(ba):
    """After _end the losers are cancelled: the call returns in well under their run time."""
    log, snapshot = [], []

    async def winner(self):
        await asyncio.sleep(0.02)
        self._end("won")

    async def loser(self):
        try:
            await asyncio.sleep(10)
            log.append("completed")
        finally:
            log.append(("finally", self._name))

    t0 = time.monotonic()
    r = await run(ba.flow({"l1": loser, "winner": winner, "l2": loser}))
    snapshot.extend(log)
    assert time.monotonic() - t0 < 1
    assert r == "won"
    assert sorted(snapshot) == [("finally", "l1"), ("finally", "l2")]


async def test_flow_waits_for_loser_cleanup(ba):
    """After _end the call returns only once the cancelled losers have finished cleaning up."""
    log = []

    async def winner(self):
        await asyncio.sleep(0.01)
        self._end("won")

    async def loser():
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            await asyncio.sleep(0.05)
            log.append("cleaned")
            raise

    assert await run(ba.flow({"winner": winner, "loser": loser})) == "won"
    assert log == ["cleaned"]


async def test_flow_waiter_of_ended_task_is_cancelled(ba):
    """A task awaiting the task that ended the flow is cancelled, not given a result."""
    log = []

    async def winner(self):
        await asyncio.sleep(0.01)
        self._end("won")

    async def dependent(self):
        try:
            await self.winner
            log.append("got result")
        except asyncio.CancelledError:
            log.append("cancelled")
            raise

    assert await run(ba.flow({"dependent": dependent, "winner": winner})) == "won"
    assert log == ["cancelled"]


async def test_flow_without_end_returns_none(ba):
    """flow where no task calls _end returns None after every task has finished."""
    log = []

    async def t(self):
        await asyncio.sleep(0.01)
        log.append(self._name)
        return "ignored"

    assert await run(ba.flow({"a": t, "b": t, "c": lambda: 3})) is None
    assert sorted(log) == ["a", "b"]


async def test_flow_error_before_end_propagates(ba):
    """A real error raised before the flow ended propagates unchanged; others are cancelled."""
    boom = ValueError("boom")
    log = []

    async def failing():
        await asyncio.sleep(0.01)
        raise boom

    async def ender(self):
        try:
            await asyncio.sleep(0.1)
        finally:
            log.append("ender finally")
        self._end("too late")

    with pytest.raises(ValueError) as info:
        await run(ba.flow({"ender": ender, "failing": failing}))
    assert info.value is boom
    assert log == ["ender finally"]


async def test_flow_error_after_end_is_ignored(ba):
    """An error that a task would raise after the flow ended does not replace the value."""

    async def ender(self):
        await asyncio.sleep(0.01)
        self._end("v")

    async def late_failure():
        await asyncio.sleep(0.1)
        raise ValueError("late")

    assert await run(ba.flow({"late": late_failure, "ender": ender})) == "v"


async def test_flow_end_from_synchronous_task(ba):
    """_end called from a synchronous task ends the flow with its value."""
    log = []

    async def other():
        try:
            await asyncio.sleep(10)
        finally:
            log.append("other")

    assert await run(ba.flow({"other": other, "sync": lambda self: self._end({"k": 1})})) == {
        "k": 1
    }
    assert log == ["other"]


async def test_flow_end_from_async_task_before_suspension(ba):
    """_end called by an async task before its first suspension ends the flow."""

    async def t(self):
        self._end("early")

    assert await run(ba.flow({"t": t})) == "early"


# -- decided during the start ------------------------------------------------------------


@pytest.mark.parametrize("mode", ["all", "flow"])
async def test_sync_failure_during_start_prevents_later_tasks(ba, mode):
    """A synchronous failure during the start: later tasks are not started at all."""
    boom = ValueError("boom")
    log = []

    def failing():
        raise boom

    async def later_async(self):
        log.append("later_async")
        await asyncio.sleep(0)

    with pytest.raises(ValueError) as info:
        await run(
            call(ba, mode)(
                {
                    "failing": failing,
                    "later_sync": lambda: log.append("later_sync"),
                    "later_async": later_async,
                }
            )
        )
    assert info.value is boom
    await asyncio.sleep(0.01)
    assert log == []


@pytest.mark.parametrize("mode", ["all", "flow"])
async def test_async_failure_before_suspension_prevents_later_tasks(ba, mode):
    """An async task failing before its first suspension decides the outcome during the start."""
    boom = ValueError("boom")
    log = []

    async def failing():
        raise boom

    with pytest.raises(ValueError) as info:
        await run(call(ba, mode)({"failing": failing, "later": lambda: log.append("later")}))
    assert info.value is boom
    await asyncio.sleep(0.01)
    assert log == []


async def test_earlier_tasks_cancelled_when_start_decided(ba):
    """Tasks started before the deciding failure are cancelled; later ones never run."""
    log = []

    async def earlier():
        try:
            await asyncio.sleep(10)
        finally:
            log.append("earlier finally")

    def failing():
        raise ValueError("boom")

    with pytest.raises(ValueError):
        await run(
            ba.all({"earlier": earlier, "failing": failing, "later": lambda: log.append("later")})
        )
    assert log == ["earlier finally"]


async def test_flow_sync_end_during_start_prevents_later_tasks(ba):
    """flow: a synchronous _end during the start means later tasks are not started at all."""
    log = []

    async def later_async(self):
        log.append("later_async")
        await asyncio.sleep(0)

    r = await run(
        ba.flow(
            {
                "end": lambda self: self._end("early"),
                "later_sync": lambda self: log.append("later_sync"),
                "later_async": later_async,
                "later_end": lambda self: self._end("second"),
            }
        )
    )
    assert r == "early"
    await asyncio.sleep(0.01)
    assert log == []


async def test_tasks_start_in_mapping_order_until_first_suspension(ba):
    """Tasks start in mapping order, each running until its first suspension before the next."""
    log = []

    def make(name):
        async def t():
            log.append((name, "start"))
            await asyncio.sleep(0)
            log.append((name, "resumed"))

        return t

    await ba.all({"c": make("c"), "a": make("a"), "b": make("b")})
    assert log[:3] == [("c", "start"), ("a", "start"), ("b", "start")]


# -- each task is cancelled once ---------------------------------------------------


def _cleaning_tasks(log: list, turns: int = 2, n: int = 3) -> dict:
    """n tasks that each wait on a future and, when cancelled, clean up over
    `turns` loop turns (closing a connection, rolling back) and re-raise."""

    def make(name: str):
        async def task(self):
            try:
                await asyncio.get_running_loop().create_future()
            except asyncio.CancelledError:
                log.append(f"{name} cancelled")
                for _ in range(turns):
                    await asyncio.sleep(0)
                log.append(f"{name} cleaned")
                raise

        return task

    return {f"t{i}": make(f"t{i}") for i in range(n)}


def _cleaned(log: list, n: int = 3) -> None:
    for i in range(n):
        assert log.count(f"t{i} cancelled") == 1, log
        assert f"t{i} cleaned" in log, log


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("gap", [0, 1], ids=["same-turn", "next-turn"])
async def test_a_second_caller_cancel_does_not_cut_the_clean_up_short(ba, mode, gap):
    """The caller is cancelled, then again (in the same loop turn, or the next
    one) while the tasks clean up: each task is cancelled once and its
    clean-up runs to its end; the call then raises CancelledError."""
    log: list = []
    loop = asyncio.get_running_loop()
    task = asyncio.create_task(call(ba, mode)(_cleaning_tasks(log)))
    await asyncio.sleep(0.02)
    task.cancel()
    if gap:
        loop.call_soon(task.cancel)
    else:
        task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(asyncio.shield(task), LIMIT)
    assert task.cancelled()
    _cleaned(log)


@pytest.mark.parametrize("mode", MODES)
async def test_a_caller_cancelled_on_every_turn_of_the_clean_up(ba, mode):
    """Cancels that keep coming while the tasks clean up change nothing."""
    log: list = []
    task = asyncio.create_task(call(ba, mode)(_cleaning_tasks(log, turns=5)))
    await asyncio.sleep(0.02)
    for _ in range(8):
        task.cancel()
        await asyncio.sleep(0)
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(asyncio.shield(task), LIMIT)
    _cleaned(log)


@pytest.mark.parametrize("mode", MODES)
async def test_a_timeout_expiring_during_the_clean_up_cancels_nobody_again(ba, mode):
    """The caller is cancelled; the call's own timeout= expires while the tasks
    clean up: no task is cancelled again, and the call raises CancelledError
    (the caller's cancellation came first)."""
    log: list = []

    def slow_cleaner(name: str):
        async def task(self):
            try:
                await asyncio.sleep(10)
            except asyncio.CancelledError:
                log.append(f"{name} cancelled")
                try:
                    await asyncio.sleep(0.1)  # the deadline passes meanwhile
                except asyncio.CancelledError:
                    log.append(f"{name} cancelled again")
                    raise
                log.append(f"{name} cleaned")
                raise

        return task

    tasks = {f"t{i}": slow_cleaner(f"t{i}") for i in range(3)}
    task = asyncio.create_task(call(ba, mode)(tasks, timeout=0.08))
    await asyncio.sleep(0.02)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(asyncio.shield(task), LIMIT)
    assert not [entry for entry in log if "again" in entry], log
    _cleaned(log)


@pytest.mark.parametrize("mode", MODES)
async def test_a_caller_cancel_during_the_clean_up_after_a_timeout(ba, mode):
    """timeout= expires and the tasks clean up; the caller is cancelled
    meanwhile: the clean-ups still run to their end, and the caller's
    cancellation is not lost (CancelledError)."""
    log: list = []
    task = asyncio.create_task(call(ba, mode)(_cleaning_tasks(log, turns=4), timeout=0.03))
    await asyncio.sleep(0.03)
    while not log:  # the deadline has passed and the clean-ups have begun
        await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(asyncio.shield(task), LIMIT)
    _cleaned(log)


@pytest.mark.parametrize("mode", ["all", "flow"])
async def test_a_failure_or_an_end_during_the_clean_up_cancels_nobody_again(ba, mode):
    """The caller is cancelled; while the tasks clean up, one fails and (in
    flow) one calls _end: neither is a reason to cancel the others again, and
    the call still raises CancelledError."""
    log: list = []
    tasks = _cleaning_tasks(log, turns=4)

    async def fails_in_clean_up(self):
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            await asyncio.sleep(0)
            raise ValueError("failed while cleaning up") from None

    async def ends_in_clean_up(self):
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            await asyncio.sleep(0)
            if mode == "flow":
                self._end("too late")
            raise

    tasks["fails"] = fails_in_clean_up
    tasks["ends"] = ends_in_clean_up
    task = asyncio.create_task(call(ba, mode)(tasks))
    await asyncio.sleep(0.02)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(asyncio.shield(task), LIMIT)
    _cleaned(log)


async def test_an_outer_timeout_around_the_call_still_works(ba):
    """asyncio.timeout() around the call: the tasks clean up to their end, the
    timeout raises TimeoutError, and the caller's cancelling() count is back
    to zero, as asyncio expects."""
    log: list = []
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.03):
            await ba.all(_cleaning_tasks(log))
    _cleaned(log)
    assert asyncio.current_task().cancelling() == 0


async def test_an_outer_task_group_cancels_the_call_once(ba):
    """A sibling in a TaskGroup fails: the group cancels the task running the
    call (and may cancel it again); the graph's tasks clean up to their end
    and the group raises the sibling's error."""
    log: list = []

    async def failing():
        await asyncio.sleep(0.02)
        raise KeyError("sibling failed")

    with pytest.raises(ExceptionGroup) as info:
        async with asyncio.TaskGroup() as group:
            group.create_task(ba.all(_cleaning_tasks(log, turns=4)))
            group.create_task(failing())
    assert [type(e) for e in info.value.exceptions] == [KeyError]
    _cleaned(log)
