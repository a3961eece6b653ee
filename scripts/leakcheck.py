#!/usr/bin/env python
"""Leak check: run many graphs of mixed shapes and outcomes on one event loop
and fail if memory keeps growing.

    python scripts/leakcheck.py [--engine c|python] [--graphs N] [--samples S]

Every graph goes through the public API (``all``, ``all_settled``, ``flow``)
of one engine, and every outcome is checked (a wrong outcome is a bug of its
own: exit status 2).  The shapes cover the contract's paths: successes (wide,
chain, diamond, gather/wait_for/shield over siblings, sync and async tasks,
``in_task``, asyncio.timeout/TaskGroup inside a task, concurrent graphs),
failure in ``all`` (also while the call's awaitable is held by the caller's
frame, ``asyncio.wait_for`` or ``ensure_future``), ``all_settled`` with failures, ``flow`` with ``_end``,
caller cancellation (also cancelled twice), ``timeout=`` expiring in all three
modes, a cycle, an unknown name, every kind of bad input, ``debug=`` (a
callable, a callable that raises, ``True``), and tasks that store their
``self``, a sibling awaitable or their task object in a global list that is
cleared later.

After a warm-up (a fifth of the run) the script samples, at the end of a
round of shapes, after ``gc.collect()``:

- ``sys.getallocatedblocks()``;
- RSS (from ``/proc/self/statm``);
- the number of objects per type in ``gc.get_objects()``: every type is
  checked, the summary shows the engine's own types, asyncio's Task, Future
  and Handle types, coroutines, frames, dicts, lists, ...;
- how many of the objects the tasks stored (self, sibling awaitables, task
  objects) are still alive after the stash was cleared (weak references).

A metric "keeps growing" when its last sample exceeds the highest value of
the first half of the samples by more than its tolerance, and the later half
of the run alone grew by more than half the tolerance (a plateau reached
early, or noise that comes and goes, does not count).  Exit status: 0 when
nothing grew, 1 when something did (with a table of what grew), 2 when a
graph gave a wrong outcome or asyncio reported an error.
"""

from __future__ import annotations

import argparse
import asyncio
from collections import Counter
import contextlib
import contextvars
import gc
import io
import json
import math
import os
import sys
import time
import traceback
import types
from typing import Any
import warnings
import weakref

import betterall

# --------------------------------------------------------------------------
# Shared state of the shapes
# --------------------------------------------------------------------------

STASH: list[Any] = []  # what tasks store "somewhere": cleared every few rounds
LIVE = weakref.WeakSet()  # weak references to stashed objects that allow them
TRACES: list[Any] = []
STDERR_SINK = io.StringIO()
REQUEST = contextvars.ContextVar("request", default="none")
PROBLEMS: list[str] = []  # asyncio errors, unraisable exceptions


class Boom(Exception):
    pass


def stash(*objs: Any) -> None:
    for obj in objs:
        STASH.append(obj)
        try:
            LIVE.add(obj)
        except TypeError:  # the type does not support weak references
            pass


def clear_stash() -> None:
    STASH.clear()
    TRACES.clear()
    STDERR_SINK.seek(0)
    STDERR_SINK.truncate()


def check(condition: bool, what: str) -> None:
    if not condition:
        raise WrongOutcome(what)


class WrongOutcome(AssertionError):
    pass


async def expect(exc_type: type[BaseException], awaitable_factory: Any) -> BaseException:
    """Await what the factory returns (calling it may raise at once, as the
    C engine does for bad input) and return the exception it raised."""
    try:
        await awaitable_factory()
    except exc_type as exc:
        return exc
    raise WrongOutcome(f"expected {exc_type.__name__}")


# --------------------------------------------------------------------------
# Task functions (module level, as in real code) and factories of closures
# --------------------------------------------------------------------------


async def leaf(self: Any) -> int:
    return 1


async def yielding(self: Any) -> int:
    await asyncio.sleep(0)
    return 2


async def sleeper(self: Any) -> None:
    await asyncio.sleep(10)
    raise WrongOutcome("a sleeper was not cancelled")


async def cleanup_sleeper(self: Any) -> None:
    try:
        await asyncio.sleep(10)
    finally:
        await asyncio.sleep(0)  # cleanup that suspends while cancelled


async def noisy_when_cancelled(self: Any) -> None:
    try:
        await asyncio.sleep(10)
    except asyncio.CancelledError:
        raise RuntimeError("error while being cancelled") from None


async def fails_later(self: Any) -> None:
    await asyncio.sleep(0)
    raise Boom("fails later")


def fails_now(self: Any) -> None:
    raise Boom("fails now")


async def waits_for_boom(self: Any) -> Any:
    return await self.boom


async def cancels_itself(self: Any) -> None:
    await asyncio.sleep(0)
    raise asyncio.CancelledError("by itself")


def sets_var(self: Any) -> str:
    REQUEST.set("changed")  # in the task's own context: the caller does not see it
    return "set"


async def future_waiter(self: Any) -> int:
    loop = asyncio.get_running_loop()
    fut = loop.create_future()
    loop.call_soon(fut.set_result, 7)
    return await fut


async def uses_asyncio_machinery(self: Any) -> int:
    async with asyncio.timeout(5):
        first = await self.leaf
    try:
        async with asyncio.timeout(0):
            await asyncio.sleep(1)
    except TimeoutError:
        pass
    async with asyncio.TaskGroup() as tg:
        t1 = tg.create_task(asyncio.sleep(0, 3))
    return first + t1.result() + await asyncio.wait_for(self.yielding, 5)


def leak_a_reference(self: Any) -> None:
    """--inject-leak: the bug this script exists to catch, a reference the
    engine forgets to release (here: one extra reference to the context)."""
    import ctypes

    ctypes.pythonapi.Py_IncRef(ctypes.py_object(self))


def chain_task(prev: str | None) -> Any:
    if prev is None:
        async def first(self: Any) -> int:
            await asyncio.sleep(0)
            return 1
        return first

    async def step(self: Any) -> int:
        return await self[prev] + 1
    return step


# --------------------------------------------------------------------------
# Shapes: each runs one round's variant and returns how many graphs it ran
# --------------------------------------------------------------------------

MODES = ("all", "all_settled", "flow")


class Shapes:
    def __init__(self, eng: Any, leak_every: int = 0) -> None:
        self.eng = eng
        self.leak_every = leak_every
        self.modes = {m: getattr(eng, m) for m in MODES}
        self.shapes = [getattr(self, n) for n in sorted(dir(self)) if n.startswith("shape_")]

    async def run_round(self, r: int) -> int:
        n = 0
        for shape in self.shapes:
            n += await shape(r)
        return n

    # -- successes ---------------------------------------------------------

    async def shape_wide(self, r: int) -> int:
        token = REQUEST.set(f"r{r}")
        try:
            tasks = {
                "sync_ctx": lambda self: 10,
                "sync_none": lambda: 20,
                "leaf": leaf,
                "yielding": yielding,
                "ctx": lambda self: REQUEST.get(),
                "sets_var": sets_var,
                "future": future_waiter,
            }
            for k in range(6):
                tasks[f"extra{k}"] = leaf if k % 2 else (lambda self, k=k: k)
            if self.leak_every and r % self.leak_every == 0:
                tasks["leaker"] = leak_a_reference
            result = await self.eng.all(tasks)
            check(result["sync_ctx"] == 10 and result["sync_none"] == 20, "wide: sync")
            check(result["ctx"] == f"r{r}" and REQUEST.get() == f"r{r}", "wide: contextvars")
            check(result["future"] == 7 and result["yielding"] == 2, "wide: async")
            check(list(result) == list(tasks), "wide: order")
        finally:
            REQUEST.reset(token)
        return 1

    async def shape_chain(self, r: int) -> int:
        names = [f"t{k}" for k in range(10)]
        tasks = {name: chain_task(names[k - 1] if k else None) for k, name in enumerate(names)}
        mode = MODES[r % 3]
        if mode == "flow":
            async def end(self: Any) -> None:
                self._end(await self.t9)
            tasks["end"] = end
            check(await self.eng.flow(tasks) == 10, "chain: flow")
        elif mode == "all_settled":
            result = await self.eng.all_settled(tasks)
            check(result["t9"] == betterall.Settled.fulfilled(10), "chain: settled")
        else:
            result = await self.eng.all(tasks)
            check(result["t9"] == 10, "chain: all")
        return 1

    async def shape_diamond(self, r: int) -> int:
        async def bottom(self: Any) -> int:
            left, right = await asyncio.gather(self.left, self.right)
            shielded = await asyncio.shield(self.top)
            timed = await asyncio.wait_for(self["left"], 5)
            return left + right + shielded + timed

        async def right(self: Any) -> int:
            check(not self._signal.aborted and self._name == "right", "diamond: context")
            return await self.top * 2

        tasks = {
            "top": yielding,
            "left": lambda self: self.top,  # a sync task returning an awaitable
            "right": right,
            "bottom": bottom,
            "machinery": uses_asyncio_machinery,
            "leaf": leaf,
            "yielding": yielding,
        }
        result = await self.eng.all(tasks)
        check(result["bottom"] == 2 + 4 + 2 + 2 and result["machinery"] == 6, "diamond")
        return 1

    async def shape_big(self, r: int) -> int:
        # Big enough that the engine's per-graph arrays leave pymalloc's
        # small-object sizes (a leak there shows in RSS, not in the blocks).
        tasks: dict[str, Any] = {}
        for k in range(64):
            if k % 2 == 0:
                tasks[f"n{k}"] = lambda self, k=k: k
            else:
                tasks[f"n{k}"] = lambda self, prev=f"n{k - 1}": self[prev]
        tasks["y"] = yielding
        mode = MODES[r % 3]
        result = await self.modes[mode](tasks)
        if mode == "all":
            check(result["n63"] == 62 and len(result) == 65, "big")
        elif mode == "all_settled":
            check(result["n63"].value == 62, "big: settled")
        else:
            check(result is None, "big: flow")
        return 1

    async def shape_fallback(self, r: int) -> int:
        """ba.fallback: a sync and an async failure, its own timeout, a
        computed value, a sibling reading it; traced every other round."""
        import betterall

        async def feed(self: Any) -> Any:
            return [await self.failed, await self.timed_out]

        traces: list[Any] = []
        tasks = {
            "sync": betterall.fallback(fails_now, 1),
            "failed": betterall.fallback(fails_later, compute=lambda exc: type(exc).__name__),
            "timed_out": betterall.fallback(sleeper, "late", timeout=0),
            "fine": betterall.fallback(leaf, None),
            "feed": feed,
        }
        mode = MODES[r % 2]  # all, all_settled
        result = await self.modes[mode](tasks, debug=traces.append if r % 2 else False)
        if mode == "all_settled":
            result = {name: outcome.value for name, outcome in result.items()}
        check(result == {"sync": 1, "failed": "Boom", "timed_out": "late", "fine": 1,
                         "feed": ["Boom", "late"]}, f"fallback: {result}")
        if traces:
            statuses = [t.status for t in traces[0].tasks.values()]
            check(statuses == ["fallback"] * 3 + ["fulfilled"] * 2, f"fallback trace: {statuses}")
        return 1

    async def shape_in_task(self, r: int) -> int:
        async def real(self: Any) -> str:
            task = asyncio.current_task()
            check(isinstance(task, asyncio.Task), "in_task: real task")
            return task.get_name() + str(await self.leaf)

        tasks = {"leaf": leaf, "real": betterall.in_task(real), "after": lambda self: self.real}
        result = await self.eng.all(tasks)
        check(result["after"] == "real1", "in_task")
        return 1

    async def shape_concurrent(self, r: int) -> int:
        a = self.eng.all({"leaf": leaf, "y": yielding, "w": lambda self: self.y})
        b = self.eng.all_settled({"boom": fails_later, "y": yielding})
        c = self.eng.flow({"y": yielding, "end": lambda self: self._end("e"), "s": sleeper})
        ra, rb, rc = await asyncio.gather(a, b, c)
        check(ra["w"] == 2 and rb["y"].value == 2 and rc == "e", "concurrent")
        return 3

    async def shape_empty(self, r: int) -> int:
        mode = MODES[r % 3]
        result = await self.modes[mode]({})
        check(result == (None if mode == "flow" else {}), "empty")
        return 1

    # -- failures ----------------------------------------------------------

    async def shape_all_failure(self, r: int) -> int:
        tasks = {
            "leaf": leaf,
            "s1": sleeper,
            "boom": fails_later,
            "w": waits_for_boom,
            "clean": cleanup_sleeper,
            "noisy": noisy_when_cancelled,
            "sync": lambda self: 5,
        }
        mode = "flow" if r % 4 == 3 else "all"
        exc = await expect(Boom, lambda: self.modes[mode](tasks))
        check(str(exc) == "fails later", "all failure: the first error wins")
        return 1

    async def shape_failure_at_start(self, r: int) -> int:
        started = []

        def later(self: Any) -> None:
            started.append("later")

        tasks = {"leaf": leaf, "y": yielding, "boom": fails_now, "later": later}
        mode = "flow" if r % 2 else "all"
        await expect(Boom, lambda: self.modes[mode](tasks))
        check(started == [], "failure at start: later tasks are not started")
        return 1

    async def shape_held_awaitable(self, r: int) -> int:
        # The call's awaitable kept somewhere while it fails: in a local of the
        # caller, or by asyncio.wait_for/ensure_future.  The error's traceback
        # then refers back to it (a reference cycle the collector must break).
        tasks = {"leaf": leaf, "boom": fails_later, "s": sleeper, "w": waits_for_boom}
        kind = r % 3
        call = self.modes["flow" if r % 2 else "all"]
        if kind == 0:
            async def caller() -> None:
                graph = call(tasks)
                try:
                    await graph
                except Boom:
                    pass
                else:
                    raise WrongOutcome("held awaitable: no failure")

            await caller()
        elif kind == 1:
            await expect(Boom, lambda: asyncio.wait_for(call(tasks), 5))
        else:
            await expect(Boom, lambda: asyncio.ensure_future(call(tasks)))
        return 1

    async def shape_settled_failures(self, r: int) -> int:
        tasks = {
            "boom": fails_later,
            "now": fails_now,
            "w": waits_for_boom,
            "self_cancel": cancels_itself,
            "leaf": leaf,
            "y": yielding,
            "sync": lambda: "s",
        }
        result = await self.eng.all_settled(tasks)
        statuses = [s.status for s in result.values()]
        check(statuses == ["rejected"] * 4 + ["fulfilled"] * 3, f"settled: {statuses}")
        check(isinstance(result["w"].reason, Boom), "settled: waiter gets the error")
        check(isinstance(result["self_cancel"].reason, asyncio.CancelledError), "settled: self-cancel")
        return 1

    async def shape_flow(self, r: int) -> int:
        kind = r % 4
        if kind == 0:  # _end after a suspension, losers cancelled
            async def winner(self: Any) -> None:
                await asyncio.sleep(0)
                self._end(await self.leaf + 41)

            tasks = {"leaf": leaf, "s": sleeper, "noisy": noisy_when_cancelled,
                     "clean": cleanup_sleeper, "winner": winner}
            check(await self.eng.flow(tasks) == 42, "flow: _end")
        elif kind == 1:  # _end during the start
            tasks = {"y": yielding, "end": lambda self: self._end("now"), "s": sleeper}
            check(await self.eng.flow(tasks) == "now", "flow: _end at start")
        elif kind == 2:  # nobody ends the flow
            check(await self.eng.flow({"leaf": leaf, "y": yielding}) is None, "flow: None")
        else:  # an error before _end
            async def late_end(self: Any) -> None:
                await asyncio.sleep(10)
                self._end("never")

            tasks = {"boom": fails_later, "late": late_end}
            await expect(Boom, lambda: self.eng.flow(tasks))
        return 1

    # -- cancellation and timeouts -----------------------------------------

    async def shape_caller_cancel(self, r: int) -> int:
        mode = MODES[r % 3]
        twice = r % 2 == 1
        tasks = {"leaf": leaf, "s": sleeper, "clean": cleanup_sleeper,
                 "w": lambda self: self.s, "noisy": noisy_when_cancelled}
        call = self.modes[mode]

        async def caller() -> Any:
            return await call(tasks)

        outer = asyncio.create_task(caller())
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        outer.cancel()
        if twice:
            await asyncio.sleep(0)  # the cleanup task is suspended now
            outer.cancel()
        try:
            await outer
        except asyncio.CancelledError:
            pass
        else:
            raise WrongOutcome("caller cancellation: no CancelledError")
        check(outer.cancelled(), "caller cancellation: outer not cancelled")
        return 1

    async def shape_timeout(self, r: int) -> int:
        mode = MODES[r % 3]
        timeout = 0.001 if (r // 3) % 8 == 0 else 0
        tasks = {"sync": lambda self: 1, "s": sleeper, "clean": cleanup_sleeper,
                 "w": lambda self: self.s}
        if mode == "all_settled":
            result = await self.eng.all_settled(tasks, timeout=timeout)
            check(result["sync"] == betterall.Settled.fulfilled(1), "timeout: settled ok")
            check(all(isinstance(result[k].reason, TimeoutError) for k in ("s", "clean", "w")),
                  "timeout: settled rejected with TimeoutError")
        else:
            await expect(TimeoutError, lambda: self.modes[mode](tasks, timeout=timeout))
        return 1

    # -- errors of the context ---------------------------------------------

    async def shape_cycle(self, r: int) -> int:
        async def a(self: Any) -> Any:
            return await self.b

        async def b(self: Any) -> Any:
            await asyncio.sleep(0)
            return await self.a

        async def me(self: Any) -> Any:
            return await self.me

        mode = MODES[r % 3]
        tasks = {"a": a, "b": b, "leaf": leaf} if r % 2 else {"me": me, "s": sleeper}
        if mode == "all_settled":
            if "s" in tasks:
                tasks = {"me": me, "leaf": leaf}
            result = await self.eng.all_settled(tasks)
            check(any(isinstance(s.reason, betterall.CycleError) for s in result.values()),
                  "cycle: settled")
        else:
            exc = await expect(betterall.CycleError, lambda: self.modes[mode](tasks))
            check(exc.cycle in (("b", "a", "b"), ("me", "me")), f"cycle: {exc.cycle}")
        return 1

    async def shape_unknown(self, r: int) -> int:
        async def usr_async(self: Any) -> Any:
            await asyncio.sleep(0)
            return await self.usr

        mode = MODES[r % 3]
        tasks = {"user": leaf, "s": sleeper,
                 "bad": usr_async if r % 2 else (lambda self: self["usr"])}
        if mode == "all_settled":
            del tasks["s"]
            result = await self.eng.all_settled(tasks)
            check(isinstance(result["bad"].reason, betterall.UnknownTaskError), "unknown: settled")
        else:
            exc = await expect(betterall.UnknownTaskError, lambda: self.modes[mode](tasks))
            check(exc.name == "usr", "unknown: name")
        return 1

    # -- bad input ---------------------------------------------------------

    BAD_INPUTS = (
        "list", "none", "int", "coroutine_as_tasks", "non_str_name", "empty_name",
        "underscore_name", "not_callable", "coroutine_value", "timeout_bool",
        "timeout_str", "timeout_nan", "timeout_negative", "debug_int", "debug_bytes",
        "debug_empty_label",
    )

    async def shape_bad_input(self, r: int) -> int:
        kind = self.BAD_INPUTS[r % len(self.BAD_INPUTS)]
        call = self.modes[MODES[(r // len(self.BAD_INPUTS)) % 3]]
        coro = None
        tasks: Any = {"ok": leaf}
        kwargs: dict[str, Any] = {}
        error: type[BaseException] = TypeError
        if kind == "list":
            tasks = [("ok", leaf)]
        elif kind == "none":
            tasks = None
        elif kind == "int":
            tasks = 42
        elif kind == "coroutine_as_tasks":
            tasks = coro = leaf(None)
        elif kind == "non_str_name":
            tasks = {"ok": leaf, 3: leaf}
        elif kind == "empty_name":
            tasks, error = {"": leaf}, ValueError
        elif kind == "underscore_name":
            tasks, error = {"ok": leaf, "_x": leaf}, ValueError
        elif kind == "not_callable":
            tasks = {"ok": leaf, "x": 42}
        elif kind == "coroutine_value":
            coro = yielding(None)
            tasks = {"ok": leaf, "x": coro}
        elif kind.startswith("timeout_"):
            error = ValueError
            kwargs["timeout"] = {"timeout_bool": True, "timeout_str": "1",
                                 "timeout_nan": math.nan, "timeout_negative": -1}[kind]
        elif kind == "debug_empty_label":
            kwargs["debug"], error = "", ValueError
        else:
            kwargs["debug"] = 1 if kind == "debug_int" else b"yes"
        await expect(error, lambda: call(tasks, **kwargs))
        if coro is not None:
            check(coro.cr_frame is None, f"bad input {kind}: coroutine not closed")
        return 1

    # -- debug --------------------------------------------------------------

    async def shape_debug(self, r: int) -> int:
        tasks = {"leaf": leaf, "y": yielding, "w": lambda self: self.y, "boom": fails_later}
        kind = r % 4
        if kind == 0:
            result = await self.eng.all_settled(tasks, debug=TRACES.append)
            check(result["w"].value == 2 and TRACES[-1].tasks["boom"].status == "rejected",
                  "debug: trace")
            TRACES[-1].to_chrome_trace()
            TRACES[-1].critical_path()
        elif kind == 1:  # the debug callable raises
            def raising(trace: Any) -> None:
                raise KeyError("from debug")

            del tasks["boom"]
            await expect(KeyError, lambda: self.eng.all(tasks, debug=raising))
        elif kind == 2:  # the call fails and the debug callable raises: the call's error wins
            def raising(trace: Any) -> None:
                raise KeyError("from debug")

            await expect(Boom, lambda: self.eng.all(tasks, debug=raising))
        else:
            with contextlib.redirect_stderr(STDERR_SINK):
                await expect(Boom, lambda: self.eng.flow(tasks, debug=True))
            check("boom" in STDERR_SINK.getvalue(), "debug=True: no chart")
        return 1

    # -- tasks that keep references to the graph's objects ---------------------

    async def shape_stash(self, r: int) -> int:
        async def keeper(self: Any) -> Any:
            stash(self, self.other, self.boom, asyncio.current_task())
            value = await self.other

            def closure() -> Any:  # a reference cycle through self
                return self, closure

            stash(closure)
            return lambda: (self, value)

        async def other(self: Any) -> int:
            stash(self, asyncio.current_task(), self.keeper)
            await asyncio.sleep(0)
            return 3

        async def boom(self: Any) -> None:
            stash(self)
            await asyncio.sleep(0)
            await asyncio.sleep(0)
            raise Boom("stash")

        async def slow(self: Any) -> None:
            stash(self, self.keeper)
            await asyncio.sleep(10)

        kind = r % 3
        if kind == 0:
            result = await self.eng.all_settled({"keeper": keeper, "other": other, "boom": boom})
            stash(result)
            check(result["keeper"].value()[1] == 3, "stash: settled")
        elif kind == 1:
            await expect(Boom, lambda: self.eng.all(
                {"keeper": keeper, "other": other, "boom": boom, "slow": slow}))
        else:
            async def caller() -> Any:
                return await self.eng.all({"keeper": keeper, "other": other, "slow": slow,
                                           "boom": sleeper})
            outer = asyncio.create_task(caller())
            await asyncio.sleep(0)
            outer.cancel()
            await expect(asyncio.CancelledError, lambda: outer)
        if r % 16 == 15:
            clear_stash()
        return 1


# --------------------------------------------------------------------------
# Sampling
# --------------------------------------------------------------------------

PAGE = os.sysconf("SC_PAGE_SIZE")


def rss_kib() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE // 1024


def type_label(tp: type) -> str:
    module = getattr(tp, "__module__", "") or ""
    if module == "builtins":
        return tp.__qualname__
    return f"{module}.{tp.__qualname__}"


ENGINE_TYPES: set[str] = set()  # labels of the engine's own types, shown even at 0


async def find_engine_types(eng: Any) -> None:
    """Record the types of the engine's objects: the awaitable a call returns,
    the context, a sibling awaitable, the task object, and the classes of
    the engine's Python modules."""
    seen: list[type] = []

    async def probe(self: Any) -> int:
        seen.extend((type(self), type(self.other), type(asyncio.current_task()),
                     type(self._signal)))
        return await self.other

    graph = eng.all({"probe": probe, "other": yielding})
    seen.append(type(graph))
    await graph
    other_engines = {m.__name__ for m in betterall._engines().values()} - {eng.__name__}
    modules = [sys.modules[name] for name in sorted(sys.modules)
               if name.startswith("betterall.") and name not in other_engines]
    for module in modules:
        seen.extend(v for v in vars(module).values()
                    if isinstance(v, type) and v.__module__ == module.__name__)
    ENGINE_TYPES.update(type_label(tp) for tp in seen if tp is not types.CoroutineType)


def is_shown(label: str) -> bool:
    """The types the summary shows (every type is checked)."""
    return label in ENGINE_TYPES or label in SHOWN


SHOWN = {
    "_asyncio.Task", "_asyncio.Future", "asyncio.events.Handle", "asyncio.events.TimerHandle",
    "asyncio.tasks._GatheringFuture", "coroutine", "frame", "dict", "list", "tuple", "cell",
    "function", "method", "builtin_function_or_method", "_contextvars.Context", "traceback",
    "weakref.ReferenceType", "exceptions",
}


def sample() -> dict[str, int]:
    for _ in range(3):
        if gc.collect() == 0:
            break
    values = {"allocated blocks": sys.getallocatedblocks(), "RSS (KiB)": rss_kib()}
    counts: Counter[str] = Counter()
    objects = gc.get_objects()
    values["gc objects (total)"] = len(objects)
    for obj in objects:
        tp = type(obj)
        counts[type_label(tp)] += 1
        if isinstance(obj, BaseException):
            counts["exceptions"] += 1
    del objects
    values["stashed objects still alive"] = len(LIVE)
    for label in ENGINE_TYPES | SHOWN:
        counts.setdefault(label, 0)
    for label, n in counts.items():
        values[f"type {label}"] = n
    return values


# How much a metric may grow over the later windows.  Measured without a
# leak (100k graphs, Python 3.11-3.13, both engines), every per-type count is
# exactly flat after the warm-up and the blocks drift by < 100 (caches
# filling up); a graph that leaks one context every 50 rounds of shapes is
# caught by the per-type counts.
TOLERANCE = {
    "allocated blocks": 500,
    "RSS (KiB)": 4096,  # malloc arenas and page granularity
    "gc objects (total)": 100,
    "stashed objects still alive": 0,  # zero right after the stash was cleared
}
TYPE_TOLERANCE = 10


# Under AddressSanitizer (scripts/sanitize.sh preloads its runtime), freed
# memory sits in ASan's quarantine instead of going back to malloc, so RSS
# grows until the quarantine is full whatever the program does: RSS is then
# shown but not judged (the allocated blocks and object counts still are).
UNDER_ASAN = "libasan" in os.environ.get("LD_PRELOAD", "")


def tolerance(metric: str) -> int:
    return TOLERANCE.get(metric, TYPE_TOLERANCE)


def analyse(samples: list[tuple[int, dict[str, int]]]) -> tuple[list[tuple], list[tuple]]:
    """Return (rows for the summary, rows of what kept growing)."""
    values = [v for _, v in samples]
    metrics = sorted(set().union(*values))
    half = len(values) // 2
    summary, grew = [], []
    for metric in metrics:
        series = [v.get(metric, 0) for v in values]
        tol = tolerance(metric)
        over_first_half = series[-1] - max(series[: half + 1])
        late_growth = series[-1] - series[half]
        growing = over_first_half > tol and late_growth > tol / 2
        if metric == "stashed objects still alive":
            growing = series[-1] > tol  # must be zero: the stash was just cleared
        if metric == "RSS (KiB)" and UNDER_ASAN:
            growing = False
        row = (metric, series[0], series[half], series[-1], series[-1] - series[0], tol,
               "GREW" if growing else "ok")
        shown = not metric.startswith("type ") or is_shown(metric[5:])
        if shown or growing:
            summary.append(row)
        if growing:
            grew.append((metric, series))
    return summary, grew


def table(header: tuple[str, ...], rows: list[tuple]) -> str:
    cells = [tuple(str(c) for c in header)] + [tuple(str(c) for c in r) for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = []
    for k, row in enumerate(cells):
        lines.append("  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                               for i, (c, w) in enumerate(zip(row, widths))))
        if k == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


# --------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------


async def run(eng: Any, graphs: int, samples: int, verbose: bool,
              leak_every: int) -> tuple[list, int, int]:
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(lambda loop, ctx: PROBLEMS.append(
        f"asyncio: {ctx.get('message')} {ctx.get('exception')!r}"))
    await find_engine_types(eng)
    shapes = Shapes(eng, leak_every)
    per_round = await shapes.run_round(0)  # also checks that every shape works
    rounds = max(samples * 2, -(-graphs // per_round))
    warmup = max(1, rounds // 5)
    every = max(1, (rounds - warmup) // samples)
    first = rounds - every * samples  # the first sample point: end of warm-up
    # Samples are kept as JSON strings in a list allocated up front: strings
    # this long are neither pymalloc blocks nor gc objects, so keeping them
    # does not show up in the next sample.
    stored: list[str | None] = [None] * (samples + 1)
    done = per_round
    k = 0
    for r in range(1, rounds):
        done += await shapes.run_round(r)
        if r >= first and (r - first) % every == 0:
            clear_stash()
            values = sample()
            values["graphs"] = done
            stored[k] = json.dumps(values)
            k += 1
            if verbose:
                print(f"  after {done:>7} graphs: {values['allocated blocks']} blocks,"
                      f" {values['RSS (KiB)']} KiB RSS, {values['gc objects (total)']} gc"
                      " objects", file=sys.stderr, flush=True)
            del values
    others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    if others:
        PROBLEMS.append(f"tasks left pending: {others!r}")
    taken = []
    for text in stored[:k]:
        values = json.loads(text)
        taken.append((values.pop("graphs"), values))
    return taken, done, rounds


def main() -> int:
    engines = betterall._engines()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--engine", choices=sorted(engines), default=betterall.ENGINE)
    parser.add_argument("--graphs", type=int, default=100_000, help="graphs to run (default 100000)")
    parser.add_argument("--samples", type=int, default=8,
                        help="sample windows after the warm-up (default 8)")
    parser.add_argument("--inject-leak", type=int, default=0, metavar="K",
                        help="self-test: leak one reference to a task's context every K"
                             " rounds; the check must then fail")
    parser.add_argument("-v", "--verbose", action="store_true", help="print every sample")
    args = parser.parse_args()
    if args.samples < 2:
        parser.error("--samples must be at least 2")

    warnings.simplefilter("error")
    sys.unraisablehook = lambda u: PROBLEMS.append(
        f"unraisable: {u.exc_type.__name__}: {u.exc_value} ({u.object!r})")
    eng = engines[args.engine]
    t0 = time.perf_counter()
    try:
        taken, done, rounds = asyncio.run(run(eng, args.graphs, args.samples, args.verbose,
                                                  args.inject_leak))
    except WrongOutcome as exc:
        print(f"leakcheck: wrong outcome with the {args.engine} engine: {exc}", file=sys.stderr)
        return 2
    except Exception:
        traceback.print_exc()
        print(f"leakcheck: unexpected error with the {args.engine} engine", file=sys.stderr)
        return 2
    elapsed = time.perf_counter() - t0
    gc.collect()

    summary, grew = analyse(taken)
    print(f"leakcheck: engine {args.engine}, Python {sys.version.split()[0]}, {done} graphs"
          f" in {rounds} rounds, {elapsed:.1f} s; {len(taken)} samples from graph"
          f" {taken[0][0]} to {taken[-1][0]}")
    print(table(("metric", "after warm-up", "middle", "end", "change", "tolerance", ""), summary))
    status = 0
    if grew:
        status = 1
        print("\nleakcheck: FAILED, these kept growing (value at each sample):")
        header = ("metric",) + tuple(f"@{g}" for g, _ in taken)
        print(table(header, [(m,) + tuple(s) for m, s in grew]))
    if PROBLEMS:
        status = 2
        print(f"\nleakcheck: {len(PROBLEMS)} problem(s) reported by asyncio or Python:")
        for p in PROBLEMS[:20]:
            print("  " + p)
    if status == 0:
        print("leakcheck: OK, nothing kept growing")
    return status


if __name__ == "__main__":
    sys.exit(main())
