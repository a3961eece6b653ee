"""The class form: graphs declared as ``ba.Graph`` subclasses.

Inputs are annotated class attributes (a keyword-only dataclass, eq=False),
tasks are methods decorated with ``@ba.task``.  ``await G(**inputs).all()``
gives a ``ba.Results`` (a dict, indexed by task or name), ``.all_settled()``
a ``ba.SettledResults``, ``.flow()`` the ``_end`` value.  Inside a task,
``self`` is an instance of the class (one per task) that shares the graph
object's attribute dict and has the dict form's context members; helper
methods and properties work on it and may await siblings.

The runs reuse the dict form's contract (docs/api.md), so besides the class
form's own rules these tests check that a class-form graph behaves exactly
like the equivalent dict-form graph (results, errors, traces).
"""

from __future__ import annotations

import asyncio
import contextvars
import dataclasses
import functools
import gc
import json
import time
from typing import Any
import weakref

from conftest import ENGINES
import pytest

import betterall  # Graph and task are engine-independent (the module-level class below)
import betterall._graph

from helpers import run

REQUEST = contextvars.ContextVar("REQUEST", default="unset")


@pytest.fixture(autouse=True)
def _class_form_engine(ba, monkeypatch):
    """Graph.all/all_settled/flow run on the engine under test."""
    monkeypatch.setattr(betterall._graph, "_engine", ENGINES[ba.ENGINE])


def definition_error(excinfo: pytest.ExceptionInfo[BaseException]) -> BaseException:
    """The error a class definition raised: Python 3.11 wraps an error raised
    by ``__set_name__`` in a RuntimeError (its cause); 3.12+ does not."""
    exc = excinfo.value
    if isinstance(exc, RuntimeError) and exc.__cause__ is not None:
        return exc.__cause__
    return exc


# -- results and their order ----------------------------------------------------------


async def test_all_returns_results_in_task_order(ba):
    """all() gives every task's result, in the class's task order (not completion order)."""

    class G(ba.Graph):
        @ba.task
        async def slow(self):
            await asyncio.sleep(0.05)
            return "slow"

        @ba.task
        async def middle(self):
            await asyncio.sleep(0.02)
            return "middle"

        @ba.task
        async def fast(self):
            return "fast"

    r = await run(G().all())
    assert list(r) == ["slow", "middle", "fast"]
    assert list(r.values()) == ["slow", "middle", "fast"]


async def test_results_is_a_json_serialisable_dict_subclass(ba):
    """Results is a dict subclass: == a plain dict, json-serialisable, same order."""

    class G(ba.Graph):
        n: int

        @ba.task
        async def a(self):
            return self.n

        @ba.task
        async def b(self):
            return [await self.a, "b"]

    r = await run(G(n=1).all())
    assert type(r) is ba.Results
    assert isinstance(r, dict)
    assert r == {"a": 1, "b": [1, "b"]}
    assert {"a": 1, "b": [1, "b"]} == r
    assert json.dumps(r) == json.dumps({"a": 1, "b": [1, "b"]})
    assert dict(r) == {"a": 1, "b": [1, "b"]}


async def test_results_indexed_by_task_and_by_name(ba):
    """r[G.task] and r["task"] give the same value, in Results and SettledResults."""

    class G(ba.Graph):
        @ba.task
        async def user(self):
            return {"id": 7}

        @ba.task
        def config(self):
            return "cfg"

    r = await run(G().all())
    assert r[G.user] == r["user"] == {"id": 7}
    assert r[G.config] == r["config"] == "cfg"
    s = await run(G().all_settled())
    assert type(s) is ba.SettledResults
    assert isinstance(s, dict)
    assert s[G.user] == s["user"] == ba.Settled.fulfilled({"id": 7})
    assert s[G.config] == ba.Settled.fulfilled("cfg")
    assert list(s) == ["user", "config"]


async def test_results_get_and_in_accept_tasks(ba):
    """Results/SettledResults .get() and `in` take a task as they take its name."""

    class G(ba.Graph):
        @ba.task
        def user(self):
            return 7

    class Other(ba.Graph):
        @ba.task
        def nope(self):
            return 0

    r = await run(G().all())
    assert r.get(G.user) == r.get("user") == 7
    assert G.user in r and "user" in r
    assert r.get(Other.nope) is None and r.get(Other.nope, "d") == "d"
    assert Other.nope not in r
    s = await run(G().all_settled())
    assert s.get(G.user) == ba.Settled.fulfilled(7)
    assert G.user in s and Other.nope not in s
    assert s.get(Other.nope, 1) == 1


async def test_results_unknown_key_raises_key_error(ba):
    """Indexing Results/SettledResults with an unknown name or a foreign task raises KeyError."""

    class G(ba.Graph):
        @ba.task
        def a(self):
            return 1

    class Other(ba.Graph):
        @ba.task
        def nope(self):
            return 2

    r = await run(G().all())
    s = await run(G().all_settled())
    for results in (r, s):
        with pytest.raises(KeyError):
            results["nope"]
        with pytest.raises(KeyError):
            results[Other.nope]
        with pytest.raises(KeyError):
            results[1]


async def test_graph_without_tasks(ba):
    """A graph class with inputs but no task runs to empty results ({} / None for flow), as an empty mapping does."""

    class Empty(ba.Graph):
        x: int

    g = Empty(x=1)
    r = await run(g.all())
    assert type(r) is ba.Results and r == {}
    s = await run(g.all_settled())
    assert type(s) is ba.SettledResults and s == {}
    assert await run(g.flow()) is None


async def test_sync_tasks(ba):
    """def tasks return their value at once; one returning an awaitable is awaited; async siblings await them."""

    class G(ba.Graph):
        base: int

        @ba.task
        def plain(self):
            return self.base + 1

        @ba.task
        def deferred(self):
            return self._twice()  # a coroutine: the task awaits it

        @ba.task
        async def total(self):
            return await self.plain + await self.deferred

        async def _twice(self):
            return 2 * await self.plain

    r = await run(G(base=10).all())
    assert r == {"plain": 11, "deferred": 22, "total": 33}


async def test_lambda_task(ba):
    """ba.task(lambda self: ...) assigned to a class attribute is a task named after the attribute."""

    class G(ba.Graph):
        n: int
        double = ba.task(lambda self: self.n * 2)

    assert isinstance(G.double, ba.Task)
    assert G.double.name == "double"
    assert await run(G(n=4).all()) == {"double": 8}


async def test_tasks_that_could_be_called_with_none_still_get_self(ba):
    """The dict form calls a function that needs no argument with none; the
    class form's tasks are methods, so they always get self, also when self
    has a default or comes through *args (with the in_task wrapper too)."""

    class G(ba.Graph):
        n: int

        @ba.task
        def defaulted(self=None):
            return self.n

        @ba.task
        async def star(*args):
            return args[0].n + 1

        @ba.task
        @ba.in_task
        async def wrapped(self=None):
            return self.n + 2

    assert await run(G(n=1).all()) == {"defaulted": 1, "star": 2, "wrapped": 3}


# -- inputs ---------------------------------------------------------------------------


async def test_inputs_with_defaults_and_default_factory(ba):
    """Inputs take defaults and dataclasses.field(default_factory=...), one fresh value per object."""

    class G(ba.Graph):
        name: str
        retries: int = 3
        seen: list = dataclasses.field(default_factory=list)

        @ba.task
        def record(self):
            self.seen.append(self.name)
            return (self.name, self.retries, list(self.seen))

    one, two = G(name="one"), G(name="two", retries=5)
    assert one.seen is not two.seen
    assert await run(one.all()) == {"record": ("one", 3, ["one"])}
    assert await run(two.all()) == {"record": ("two", 5, ["two"])}
    assert one.seen == ["one"] and two.seen == ["two"]


async def test_construction_errors_name_the_input(ba):
    """A missing input, an unknown one, or a positional argument raises TypeError at construction."""

    class G(ba.Graph):
        auth: str
        retries: int = 3

        @ba.task
        def a(self):
            return 1

    with pytest.raises(TypeError, match="'auth'"):
        G()
    with pytest.raises(TypeError, match="'nope'"):
        G(auth="t", nope=1)
    with pytest.raises(TypeError):
        G("t")  # keyword-only
    with pytest.raises(TypeError, match="'auth'"):
        G(retries=1)


async def test_graph_object_is_a_keyword_only_dataclass_without_eq(ba):
    """The class is a dataclass: repr shows the inputs, eq=False (identity), inputs are fields."""

    class G(ba.Graph):
        auth: str
        retries: int = 3

        @ba.task
        def a(self):
            return 1

    g = G(auth="t")
    assert dataclasses.is_dataclass(G)
    assert [f.name for f in dataclasses.fields(G)] == ["auth", "retries"]
    assert all(f.kw_only for f in dataclasses.fields(G))
    assert "auth='t'" in repr(g) and "retries=3" in repr(g)
    assert g == g
    assert g != G(auth="t")


# -- self inside a task ---------------------------------------------------------------


async def test_self_is_an_instance_of_the_graph_class(ba):
    """Inside a task, self is an instance of the class, one per task, not the graph object, with the context members."""
    selves: dict[str, Any] = {}

    class G(ba.Graph):
        auth: str

        @ba.task
        async def user(self):
            selves["user"] = self
            await asyncio.sleep(0)
            return (isinstance(self, G), self._name, self.auth, isinstance(self._signal, ba.Signal))

        @ba.task
        def profile(self):
            selves["profile"] = self
            return (isinstance(self, G), self._name, self.auth, self._signal.aborted)

        @ba.task
        async def both(self):
            return (await self.user, await self["profile"])

    g = G(auth="t")
    r = await run(g.all())
    assert r["user"] == (True, "user", "t", True)
    assert r["profile"] == (True, "profile", "t", False)
    assert r["both"] == (r["user"], r["profile"])
    assert selves["user"] is not selves["profile"]
    assert g is not selves["user"] and g is not selves["profile"]


async def test_helper_methods_and_properties_await_siblings(ba):
    """Plain helper methods and properties work on self and may await siblings; the wait counts for the calling task."""
    traces: list[Any] = []

    class G(ba.Graph):
        factor: int

        @ba.task
        async def user(self):
            await asyncio.sleep(0.01)
            return {"id": 7}

        @ba.task
        async def config(self):
            await asyncio.sleep(0.02)
            return {"scale": 2}

        @ba.task
        async def profile(self):
            return await self._user_id() * (await self.scale) * self.factor

        async def _user_id(self):
            return (await self.user)["id"]

        @property
        def scale(self):
            return self._scale()

        async def _scale(self):
            return (await self.config)["scale"]

    r = await run(G(factor=3).all(debug=traces.append))
    assert r == {"user": {"id": 7}, "config": {"scale": 2}, "profile": 42}
    (trace,) = traces
    assert trace.tasks["profile"].deps == ("user", "config")
    assert trace.tasks["user"].deps == () and trace.tasks["config"].deps == ()


async def test_cycle_through_helper_methods_raises_cycle_error(ba):
    """A cycle closed through helper methods raises CycleError naming it, as in the dict form."""

    class G(ba.Graph):
        @ba.task
        async def a(self):
            return await self._need_b()

        @ba.task
        async def b(self):
            await asyncio.sleep(0)
            return await self.needs_a

        async def _need_b(self):
            return await self.b

        @property
        def needs_a(self):
            return self.a

    with pytest.raises(ba.CycleError) as excinfo:
        await run(G().all())
    assert excinfo.value.cycle == ("b", "a", "b")
    assert "b -> a -> b" in str(excinfo.value)

    async def a(self):
        return await self.b

    async def b(self):
        await asyncio.sleep(0)
        return await self.a

    with pytest.raises(ba.CycleError) as dict_excinfo:
        await run(ba.all({"a": a, "b": b}))
    assert dict_excinfo.value.cycle == excinfo.value.cycle


async def test_self_await_raises_cycle_error(ba):
    """A task that awaits itself through a helper gets CycleError ('a', 'a')."""

    class G(ba.Graph):
        @ba.task
        async def a(self):
            return await self._me()

        async def _me(self):
            return await self.a

    with pytest.raises(ba.CycleError) as excinfo:
        await run(G().all())
    assert excinfo.value.cycle == ("a", "a")


async def test_unknown_sibling_raises_unknown_task_error(ba):
    """self.nope / self["nope"] raise UnknownTaskError (AttributeError + KeyError) with a suggestion; self._nope plain AttributeError."""

    class G(ba.Graph):
        @ba.task
        async def user(self):
            return 1

        @ba.task
        def probe(self):
            out = []
            for access in (lambda: self.usr, lambda: self["usr"]):
                try:
                    access()
                except ba.UnknownTaskError as exc:
                    out.append((isinstance(exc, AttributeError), isinstance(exc, KeyError), str(exc)))
            try:
                self._nope
            except AttributeError as exc:
                out.append(type(exc) is not ba.UnknownTaskError)
            return out

    r = await run(G().all())
    message = "unknown task 'usr' (did you mean 'user'?)"
    assert r["probe"] == [(True, True, message), (True, True, message), True]


async def test_task_on_class_and_on_graph_object(ba):
    """G.user is the ba.Task; G(...).user outside a run raises AttributeError saying to await it or read the result."""

    class G(ba.Graph):
        @ba.task
        async def user(self):
            return 1

    assert isinstance(G.user, ba.Task)
    assert G.user.name == "user"
    assert "G.user" in repr(G.user)
    with pytest.raises(AttributeError) as excinfo:
        G().user
    message = str(excinfo.value)
    assert "await self.user" in message
    assert "result[G.user]" in message


async def test_assigning_a_task_attribute_raises(ba):
    """self.<task> = x in a task, and graph.<task> = x, raise AttributeError naming the task."""

    class G(ba.Graph):
        @ba.task
        async def user(self):
            return 1

        @ba.task
        def other(self):
            try:
                self.user = 2
            except AttributeError as exc:
                return str(exc)
            return "assigned"

    r = await run(G().all())
    assert r == {"user": 1, "other": r["other"]}
    assert "G.user" in r["other"]
    g = G()
    with pytest.raises(AttributeError, match="G.user"):
        g.user = 2
    assert await run(g.all()) == r


async def test_attributes_set_by_a_task_are_shared(ba):
    """An attribute a task sets on self is seen by siblings in the run and by the graph object afterwards."""

    class G(ba.Graph):
        auth: str

        @ba.task
        def first(self):
            self.note = f"set by first for {self.auth}"
            return 1

        @ba.task
        async def second(self):
            await self.first
            return self.note

    g = G(auth="t")
    r = await run(g.all())
    assert r["second"] == "set by first for t"
    assert g.note == "set by first for t"


# -- all_settled, flow ----------------------------------------------------------------


async def test_all_settled_with_a_failing_task_does_not_cancel_siblings(ba):
    """all_settled reports a failure as rejected, its dependants too, and lets the other tasks finish."""
    boom = ValueError("boom")

    class G(ba.Graph):
        @ba.task
        async def bad(self):
            await asyncio.sleep(0.01)
            raise boom

        @ba.task
        async def slow(self):
            await asyncio.sleep(0.05)
            return ("slow", self._signal.aborted)

        @ba.task
        async def dependant(self):
            return await self.bad

    s = await run(G().all_settled())
    assert s == {
        "bad": ba.Settled.rejected(boom),
        "slow": ba.Settled.fulfilled(("slow", False)),
        "dependant": ba.Settled.rejected(boom),
    }
    assert s[G.bad].reason is boom


async def test_flow_end_returns_value_and_cancels_losers(ba):
    """flow(): the first self._end(v) wins, the losers are cancelled, the call returns v without waiting for them."""
    log: list[str] = []

    class Race(ba.Graph):
        @ba.task
        async def slow(self):
            try:
                await asyncio.sleep(10)
            except asyncio.CancelledError:
                log.append(f"slow cancelled, aborted={self._signal.aborted}")
                raise
            self._end("slow")

        @ba.task
        async def fast(self):
            await asyncio.sleep(0.02)
            self._end("fast")

        @ba.task
        async def later(self):
            await asyncio.sleep(0.05)
            self._end("later")

    traces: list[Any] = []
    start = time.monotonic()
    assert await run(Race().flow(debug=traces.append)) == "fast"
    assert time.monotonic() - start < 2
    assert log == ["slow cancelled, aborted=True"]
    (trace,) = traces
    assert {name: t.status for name, t in trace.tasks.items()} == {
        "slow": "cancelled",
        "fast": "ended",
        "later": "cancelled",
    }


async def test_flow_without_end_returns_none(ba):
    """flow() where no task calls _end runs every task and returns None."""
    done: list[str] = []

    class G(ba.Graph):
        @ba.task
        async def a(self):
            await asyncio.sleep(0.01)
            done.append("a")

        @ba.task
        async def b(self):
            await self.a
            done.append("b")

    assert await run(G().flow()) is None
    assert done == ["a", "b"]


async def test_end_outside_flow_raises_runtime_error(ba):
    """self._end() in all() raises RuntimeError (the call's error), in all_settled() it rejects the task."""

    class G(ba.Graph):
        @ba.task
        async def a(self):
            await asyncio.sleep(0)
            self._end(1)

    with pytest.raises(RuntimeError, match="flow"):
        await run(G().all())
    s = await run(G().all_settled())
    assert s[G.a].status == "rejected"
    assert isinstance(s[G.a].reason, RuntimeError)


# -- failures, cancellation, timeouts -------------------------------------------------


async def test_first_error_propagates_and_aborts_the_others(ba):
    """all(): the first error propagates unchanged; the others are cancelled, seeing _signal aborted with that error."""
    log: list[Any] = []
    first_error = ValueError("first")

    class G(ba.Graph):
        @ba.task
        async def slow(self):
            try:
                await asyncio.sleep(10)
            except asyncio.CancelledError:
                log.append(("slow", self._signal.aborted, self._signal.reason))
                raise

        @ba.task
        async def first(self):
            await asyncio.sleep(0.02)
            raise first_error

        @ba.task
        async def second(self):
            try:
                await asyncio.sleep(0.5)
            except asyncio.CancelledError:
                log.append(("second", self._signal.aborted, self._signal.reason))
                raise
            raise KeyError("second")

    start = time.monotonic()
    with pytest.raises(ValueError) as excinfo:
        await run(G().all())
    assert excinfo.value is first_error
    assert time.monotonic() - start < 0.4  # did not wait for `second`
    assert sorted(log, key=lambda e: e[0]) == [
        ("second", True, first_error),
        ("slow", True, first_error),
    ]


async def test_timeout_in_all_raises_timeout_error(ba):
    """all(timeout=) raises TimeoutError and cancels the running tasks."""
    log: list[str] = []

    class G(ba.Graph):
        @ba.task
        async def fast(self):
            return 1

        @ba.task
        async def slow(self):
            try:
                await asyncio.sleep(10)
            except asyncio.CancelledError:
                log.append(f"cancelled, reason {type(self._signal.reason).__name__}")
                raise

    start = time.monotonic()
    with pytest.raises(TimeoutError):
        await run(G().all(timeout=0.05))
    assert time.monotonic() - start < 2
    assert log == ["cancelled, reason TimeoutError"]


async def test_timeout_in_all_settled_rejects_running_tasks(ba):
    """all_settled(timeout=) returns what settled; tasks still running are rejected with TimeoutError."""

    class G(ba.Graph):
        @ba.task
        async def fast(self):
            return 1

        @ba.task
        async def slow(self):
            await asyncio.sleep(10)

        @ba.task
        async def waiting(self):
            return await self.slow

    s = await run(G().all_settled(timeout=0.05))
    assert s[G.fast] == ba.Settled.fulfilled(1)
    for name in ("slow", "waiting"):
        assert s[name].status == "rejected"
        assert isinstance(s[name].reason, TimeoutError)


async def test_caller_cancellation_cancels_the_tasks(ba):
    """Cancelling the caller cancels every task (they finish first), then raises CancelledError."""
    log: list[str] = []
    started = asyncio.Event()

    class G(ba.Graph):
        @ba.task
        async def slow(self):
            started.set()
            try:
                await asyncio.sleep(10)
            except asyncio.CancelledError:
                log.append(f"slow cancelled, aborted={self._signal.aborted}")
                raise

        @ba.task
        async def waiting(self):
            try:
                return await self.slow
            except asyncio.CancelledError:
                log.append("waiting cancelled")
                raise

    call = asyncio.create_task(G().all())
    await run(started.wait())
    await asyncio.sleep(0.02)
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    assert sorted(log) == ["slow cancelled, aborted=True", "waiting cancelled"]


async def test_graph_object_usable_after_a_failing_run(ba):
    """A graph object whose run failed can be run again, in any mode."""

    class G(ba.Graph):
        fail: bool

        @ba.task
        async def a(self):
            await asyncio.sleep(0)
            if self.fail:
                raise ValueError("failing")
            return 1

        @ba.task
        async def b(self):
            return await self.a + 1

    g = G(fail=True)
    with pytest.raises(ValueError, match="failing"):
        await run(g.all())
    s = await run(g.all_settled())
    assert [(v.status, type(v.reason)) for v in s.values()] == [
        ("rejected", ValueError),
        ("rejected", ValueError),
    ]
    g.fail = False
    assert await run(g.all()) == {"a": 1, "b": 2}
    assert await run(g.flow()) is None


# -- debug ----------------------------------------------------------------------------


async def test_debug_callable_gets_a_trace_of_the_class_tasks(ba):
    """debug=callable gets a ba.Trace with the class's task names in order, statuses and deps."""
    traces: list[Any] = []

    class G(ba.Graph):
        @ba.task
        async def config(self):
            await asyncio.sleep(0.01)
            return 1

        @ba.task
        async def user(self):
            await asyncio.sleep(0.02)
            return 2

        @ba.task
        async def profile(self):
            return await self.user + await self["config"]

        @ba.task
        def plain(self):
            return 0

    assert await run(G().all(debug=traces.append)) == {"config": 1, "user": 2, "profile": 3, "plain": 0}
    (trace,) = traces
    assert isinstance(trace, ba.Trace)
    assert list(trace.tasks) == ["config", "user", "profile", "plain"]
    assert [t.name for t in trace.tasks.values()] == ["config", "user", "profile", "plain"]
    assert all(t.status == "fulfilled" for t in trace.tasks.values())
    assert {name: t.deps for name, t in trace.tasks.items()} == {
        "config": (),
        "user": (),
        "profile": ("user", "config"),
        "plain": (),
    }
    assert len(trace.tasks["profile"].waits) >= 1


async def test_debug_true_prints_the_chart_with_the_task_names(ba, capsys):
    """debug=True prints the waterfall, naming the class's tasks, to stderr."""

    class G(ba.Graph):
        @ba.task
        async def fetch_user(self):
            await asyncio.sleep(0.01)
            return 1

        @ba.task
        async def fetch_profile(self):
            return await self.fetch_user

    await run(G().all(debug=True))
    out, err = capsys.readouterr()
    assert out == ""
    assert "fetch_user" in err and "fetch_profile" in err


# -- asyncio integration --------------------------------------------------------------


async def test_context_variables_seen_and_not_leaking(ba):
    """Tasks see the caller's context variables; a task's changes reach neither siblings nor the caller."""

    class G(ba.Graph):
        @ba.task
        async def writer(self):
            seen = REQUEST.get()
            REQUEST.set("writer")
            await asyncio.sleep(0.01)
            return seen, REQUEST.get()

        @ba.task
        async def reader(self):
            await self.writer
            return REQUEST.get()

    token = REQUEST.set("caller")
    try:
        r = await run(G().all())
        assert r == {"writer": ("caller", "writer"), "reader": "caller"}
        assert REQUEST.get() == "caller"
    finally:
        REQUEST.reset(token)


async def test_in_task_under_task_runs_in_a_named_asyncio_task(ba):
    """@ba.task over @ba.in_task runs the task in a real asyncio.Task named after it, self still the graph's."""

    class G(ba.Graph):
        n: int

        @ba.task
        async def base(self):
            await asyncio.sleep(0)
            return self.n

        @ba.task
        @ba.in_task
        async def worker(self):
            t = asyncio.current_task()
            value = await self.base
            return (isinstance(t, asyncio.Task), t.get_name(), t in asyncio.all_tasks(), isinstance(self, G), value)

        @ba.task
        @ba.in_task
        def sync_worker(self):
            t = asyncio.current_task()
            return (isinstance(t, asyncio.Task), t.get_name(), self._name)

    r = await run(G(n=5).all())
    assert r["worker"] == (True, "worker", True, True, 5)
    assert r["sync_worker"] == (True, "sync_worker", "sync_worker")


# -- definition errors ----------------------------------------------------------------


def test_task_name_starting_with_underscore_is_rejected(ba):
    """A task named _x raises ValueError naming Class._x at class definition."""
    with pytest.raises(ValueError, match=r"Bad\._hidden"):

        class Bad(ba.Graph):
            @ba.task
            async def _hidden(self):
                return 1


@pytest.mark.parametrize("name", ["all", "all_settled", "flow"])
def test_task_named_after_a_run_method_is_rejected(ba, name):
    """A task named all/all_settled/flow raises ValueError naming Class.name."""
    with pytest.raises(ValueError, match=rf"Bad\.{name}\b"):
        type("Bad", (ba.Graph,), {name: ba.task(lambda self: 1)})


@pytest.mark.parametrize(
    "fn",
    [
        lambda: 1,
        lambda self, other: 1,
        lambda self, *, key: 1,
    ],
    ids=["no-self", "two-parameters", "required-keyword"],
)
def test_task_signature_must_take_exactly_self(ba, fn):
    """A task that cannot be called with self alone raises TypeError naming Class.name."""
    with pytest.raises(TypeError, match=r"Bad\.work\b"):
        type("Bad", (ba.Graph,), {"work": ba.task(fn)})


def test_task_signature_error_for_def(ba):
    """def work(self, other) under @ba.task raises TypeError naming Class.work and the signature."""
    with pytest.raises(TypeError, match=r"Bad\.work\b") as excinfo:

        class Bad(ba.Graph):
            @ba.task
            async def work(self, other):
                return other

    assert "self" in str(excinfo.value)


def test_input_that_is_also_a_task_is_rejected(ba):
    """An input that is also a task raises TypeError naming Class.name."""
    with pytest.raises(TypeError, match=r"Bad\.user\b"):

        class Bad(ba.Graph):
            user: str

            @ba.task  # type: ignore[misc]
            async def user(self):
                return 1


def test_subclass_input_over_a_base_task_is_rejected(ba):
    """A subclass declaring an input named like a base task raises TypeError naming it."""

    class Base(ba.Graph):
        @ba.task
        async def user(self):
            return 1

    with pytest.raises(TypeError, match=r"Bad\.user\b"):

        class Bad(Base):
            user: str


def test_subclass_task_over_a_base_input_is_rejected(ba):
    """A subclass task named like a base input raises TypeError naming it."""

    class Base(ba.Graph):
        user: str

    with pytest.raises(TypeError, match=r"Bad\.user\b"):

        class Bad(Base):
            @ba.task  # type: ignore[misc]
            async def user(self):
                return 1


def test_subclass_replacing_a_task_with_a_non_task_is_rejected(ba):
    """A subclass that overrides a task with a plain method raises TypeError naming both."""

    class Base(ba.Graph):
        @ba.task
        async def user(self):
            return 1

    with pytest.raises(TypeError, match=r"Bad\.user\b") as excinfo:

        class Bad(Base):
            async def user(self):  # type: ignore[override]
                return 2

    assert "Base.user" in str(excinfo.value)


@pytest.mark.parametrize(
    "make",
    [
        lambda: staticmethod(lambda self: 1),
        lambda: classmethod(lambda cls: 1),
        lambda: functools.partial(lambda self, x: x, x=1),
        lambda: print,
        lambda: 42,
    ],
    ids=["staticmethod", "classmethod", "partial", "builtin", "int"],
)
def test_task_on_a_non_function_is_rejected(ba, make):
    """@ba.task on anything but a def/lambda function raises TypeError at the decoration."""
    with pytest.raises(TypeError, match="def or async def"):
        ba.task(make())


def test_task_outside_a_graph_subclass_is_rejected(ba):
    """@ba.task in a class that is not a Graph subclass fails at class creation, naming Class.name."""
    with pytest.raises((TypeError, RuntimeError)) as excinfo:

        class NotAGraph:
            @ba.task
            async def user(self):
                return 1

    error = definition_error(excinfo)
    assert isinstance(error, TypeError)
    assert "NotAGraph.user" in str(error)
    assert "Graph" in str(error)


@pytest.mark.parametrize("name", ["all", "flow", "_name", "_signal", "_end"])
def test_reserved_input_name_is_rejected(ba, name):
    """An input named like a run method or a context member raises ValueError naming Class.name."""
    with pytest.raises(ValueError, match=rf"Bad\.{name}\b"):
        type("Bad", (ba.Graph,), {"__annotations__": {name: int}})


# -- inheritance ----------------------------------------------------------------------


async def test_subclass_inherits_adds_and_overrides_tasks(ba):
    """A subclass inherits inputs and tasks, adds tasks after the base's, an override keeps the base's position."""

    class Base(ba.Graph):
        x: int

        @ba.task
        async def a(self):
            return ("base a", self.x)

        @ba.task
        async def b(self):
            return ("b sees", await self.a)

    class Sub(Base):
        y: int = 0

        @ba.task
        async def c(self):
            return ("c", await self.b, self.y, isinstance(self, Sub), isinstance(self, Base))

        @ba.task
        async def a(self):
            return ("sub a", self.x)

    assert [f.name for f in dataclasses.fields(Sub)] == ["x", "y"]
    r = await run(Sub(x=1, y=2).all())
    assert list(r) == ["a", "b", "c"]
    assert r == {
        "a": ("sub a", 1),
        "b": ("b sees", ("sub a", 1)),  # the base's task sees the override
        "c": ("c", ("b sees", ("sub a", 1)), 2, True, True),
    }
    assert r[Sub.a] == r[Base.a] == ("sub a", 1)
    assert Sub.a is not Base.a and Sub.b is Base.b
    # The base class is unaffected by its subclass.
    assert await run(Base(x=1).all()) == {"a": ("base a", 1), "b": ("b sees", ("base a", 1))}


async def test_subclass_of_subclass_keeps_order(ba):
    """Three levels: tasks in base-first order, each override in its original place."""

    class A(ba.Graph):
        @ba.task
        def one(self):
            return "A1"

        @ba.task
        def two(self):
            return "A2"

    class B(A):
        @ba.task
        def three(self):
            return "B3"

        @ba.task
        def one(self):
            return "B1"

    class C(B):
        @ba.task
        def two(self):
            return "C2"

        @ba.task
        def four(self):
            return "C4"

    assert list((await run(C().all())).items()) == [
        ("one", "B1"),
        ("two", "C2"),
        ("three", "B3"),
        ("four", "C4"),
    ]


# -- concurrency ----------------------------------------------------------------------


class Counter(betterall.Graph):
    """A graph whose results depend on its input and on the run's context."""

    base: int
    calls: list = dataclasses.field(default_factory=list)

    @betterall.task
    async def a(self):
        self.calls.append(("a", REQUEST.get()))
        await asyncio.sleep(0.05)
        return (self.base, REQUEST.get())

    @betterall.task
    async def b(self):
        self.calls.append(("b", REQUEST.get()))
        base, request = await self.a
        await asyncio.sleep(0)
        return (base * 2, request, self._name)


async def test_many_concurrent_runs_of_one_object_are_independent(ba):
    """50 concurrent runs of one graph object: each runs every task once and gets its own results."""
    g = Counter(base=3)

    async def one_run(i):
        REQUEST.set(f"run {i}")
        return await g.all()

    start = time.monotonic()
    results = await run(asyncio.gather(*(one_run(i) for i in range(50))))
    assert time.monotonic() - start < 0.8 * 50 * 0.05
    for i, r in enumerate(results):
        assert r == {"a": (3, f"run {i}"), "b": (6, f"run {i}", "b")}
    assert sorted(g.calls) == sorted([("a", f"run {i}") for i in range(50)] + [("b", f"run {i}") for i in range(50)])


async def test_concurrent_runs_of_many_objects_do_not_mix_inputs(ba):
    """Concurrent all() and all_settled() runs of many objects of one class each see their own inputs."""
    graphs = [Counter(base=i) for i in range(30)]
    results = await run(
        asyncio.gather(
            *(g.all() for g in graphs),
            *(g.all_settled() for g in graphs),
        )
    )
    for i, r in enumerate(results[:30]):
        assert r == {"a": (i, "unset"), "b": (2 * i, "unset", "b")}
    for i, s in enumerate(results[30:]):
        assert s == {
            "a": ba.Settled.fulfilled((i, "unset")),
            "b": ba.Settled.fulfilled((2 * i, "unset", "b")),
        }
    for g in graphs:
        assert sorted(g.calls) == [("a", "unset"), ("a", "unset"), ("b", "unset"), ("b", "unset")]


# -- collectable after a run ----------------------------------------------------------


class Box:
    """A result value that refers back to the task's self (a reference cycle)."""

    def __init__(self, owner: Any) -> None:
        self.owner = owner


@pytest.mark.parametrize("mode", ["all", "all_settled", "flow", "failure"])
async def test_graph_results_and_selves_collectable_after_a_run(ba, mode):
    """After a run, the graph object, its results and every task's self die on gc.collect()."""
    refs: list[tuple[str, weakref.ref[Any]]] = []
    result_ids: list[int] = []

    class G(ba.Graph):
        fail: bool

        @ba.task
        async def a(self):
            refs.append(("a: self", weakref.ref(self)))
            await asyncio.sleep(0)
            box = Box(self)
            refs.append(("a: result", weakref.ref(box)))
            return box

        @ba.task
        async def b(self):
            refs.append(("b: self", weakref.ref(self)))
            self.kept = self  # in the shared attribute dict: a cycle through the graph object
            box = Box((self, await self.a))
            refs.append(("b: result", weakref.ref(box)))
            if self.fail:
                raise ValueError("failing")
            return box

        @ba.task
        def c(self):
            refs.append(("c: self", weakref.ref(self)))
            return Box(self.a)  # an awaitable of a sibling, never awaited

    async def go():
        g = G(fail=mode == "failure")
        refs.append(("graph object", weakref.ref(g)))
        if mode == "all":
            r = await g.all()
            assert isinstance(r["b"], Box)
            result_ids.append(id(r))
        elif mode == "all_settled":
            r = await g.all_settled()
            assert r["b"].ok
            result_ids.append(id(r))
        elif mode == "flow":
            assert await g.flow() is None
        else:
            try:
                await g.all()
            except ValueError:
                pass
            else:
                raise AssertionError("the run did not fail")

    await run(go())
    for _ in range(2):
        await asyncio.sleep(0)
    assert len(refs) >= 6, "the graph did not run its tasks"
    gc.collect()
    alive = [what for what, ref in refs if ref() is not None]
    assert not alive, f"still alive after the run ({mode}) and gc.collect(): {alive}"
    if result_ids:
        still = [
            o
            for o in gc.get_objects()
            if id(o) in result_ids and type(o) in (ba.Results, ba.SettledResults)
        ]
        assert not still, "the results dict is still alive"


# -- the same graph in both forms -----------------------------------------------------


async def eq_a(self):
    await asyncio.sleep(0.01)
    return 1


async def eq_b(self):
    return await self.a + 1


def eq_c(self):
    return 3


async def eq_d(self):
    return (await self["b"], await self.c)


async def eq_bad(self):
    await self.a
    raise ValueError("bad")


async def eq_slow(self):
    await asyncio.sleep(0.1)
    return "slow"


async def eq_cycle_a(self):
    return await self.b


async def eq_cycle_b(self):
    await asyncio.sleep(0)
    return await self.a


async def eq_ender(self):
    await self.a
    self._end("ended")


async def eq_unknown(self):
    await asyncio.sleep(0)
    return await self.bb


SHAPES = {
    "success": {"a": eq_a, "b": eq_b, "c": eq_c, "d": eq_d},
    "failure": {"a": eq_a, "bad": eq_bad, "slow": eq_slow, "b": eq_b},
    "cycle": {"a": eq_cycle_a, "b": eq_cycle_b, "slow": eq_slow},
    "end": {"a": eq_a, "ender": eq_ender, "slow": eq_slow},
    "unknown": {"a": eq_a, "b": eq_unknown, "slow": eq_slow},
}


def _plain(value: Any) -> Any:
    if isinstance(value, BaseException):
        return (type(value), str(value), getattr(value, "cycle", None))
    if isinstance(value, (tuple, list)):
        return type(value)(_plain(v) for v in value)
    return value


async def _outcome(ba: Any, call: Any) -> tuple[Any, Any]:
    """What a call returned or raised, comparable across forms, and its trace."""
    traces: list[Any] = []
    try:
        value = await run(call(traces.append))
    except Exception as exc:
        outcome: Any = ("raised", _plain(exc))
    else:
        if isinstance(value, dict):
            value = {
                name: (v.status, _plain(v.value), _plain(v.reason)) if isinstance(v, ba.Settled) else v
                for name, v in value.items()
            }
        outcome = ("returned", value)
    (trace,) = traces
    return outcome, [(t.name, t.status, t.deps) for t in trace.tasks.values()]


@pytest.mark.parametrize("shape", list(SHAPES))
@pytest.mark.parametrize("mode", ["all", "all_settled", "flow"])
async def test_class_form_matches_dict_form(ba, shape, mode):
    """The same task functions as a class and as a dict give the same results, errors and traces."""
    tasks = SHAPES[shape]
    G = type(f"Eq_{shape}", (ba.Graph,), {name: ba.task(fn) for name, fn in tasks.items()})
    dict_form = await _outcome(ba, lambda debug: getattr(ba, mode)(tasks, debug=debug))
    class_form = await _outcome(ba, lambda debug: getattr(G(), mode)(debug=debug))
    assert class_form == dict_form
    # The comparison is not vacuous: every shape runs (or fails) as expected.
    outcome, trace = class_form
    assert [name for name, _, _ in trace] == list(tasks)
    if shape == "success" and mode == "all":
        assert outcome == ("returned", {"a": 1, "b": 2, "c": 3, "d": (2, 3)})
    if shape == "cycle" and mode != "all_settled":
        assert outcome[0] == "raised" and outcome[1][0] is ba.CycleError
    if shape == "end" and mode == "flow":
        assert outcome == ("returned", "ended")


async def test_each_task_self_is_finalized_when_the_class_has_del(ba):
    """A class with __del__ gets one finalization per task's `self` (none is reused)."""
    finalized: list[str] = []

    class G(ba.Graph):
        def __del__(self) -> None:
            finalized.append(type(self).__name__)

        @ba.task
        def a(self) -> int:
            return 1

        @ba.task
        async def b(self) -> int:
            return await self.a + 1

        @ba.task
        async def c(self) -> int:
            return await self.b + 1

    g = G()
    assert dict(await run(g.all())) == {"a": 1, "b": 2, "c": 3}
    gc.collect()
    # Three task contexts, each finalized once; the graph object is still alive.
    assert len(finalized) == 3
