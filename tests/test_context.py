"""Contract: the context (`self`), the lazy sibling-proxy.

docs/api.md, "The context (`self`) — the lazy sibling-proxy": sibling access by
attribute and item, run-once, unknown names, un-awaited access, `_name`,
`_end` outside flow, `FlowEnd`, and cycle detection.
"""

from __future__ import annotations

import asyncio
import gc

import pytest

from helpers import MODES, call, run


# -- awaiting siblings -----------------------------------------------------------


async def test_await_attribute_gives_sibling_result(ba):
    """`await self.name` gives the sibling's result."""

    async def user():
        await asyncio.sleep(0.01)
        return {"id": 7}

    async def profile(self):
        return ("profile", (await self.user)["id"])

    r = await ba.all({"user": user, "profile": profile})
    assert r["profile"] == ("profile", 7)


async def test_await_item_gives_sibling_result(ba):
    """`await self["name"]` gives the sibling's result."""

    async def user():
        await asyncio.sleep(0.01)
        return 7

    async def profile(self):
        return await self["user"] + 1

    assert await ba.all({"user": user, "profile": profile}) == {"user": 7, "profile": 8}


async def test_await_sibling_that_is_later_in_the_mapping(ba):
    """A task can await a sibling defined after it in the mapping."""

    async def first(self):
        return await self.second * 2

    assert await ba.all({"first": first, "second": lambda: 21}) == {
        "first": 42,
        "second": 21,
    }


async def test_await_failed_sibling_raises_its_exception(ba):
    """Awaiting a sibling that failed raises its exception (all_settled, so both are reported)."""
    boom = ValueError("boom")

    async def bad():
        await asyncio.sleep(0.01)
        raise boom

    async def user(self):
        try:
            await self.bad
        except ValueError as exc:
            return exc

    r = await ba.all_settled({"bad": bad, "user": user})
    assert r["bad"].reason is boom
    assert r["user"].value is boom


async def test_await_finished_sibling_costs_no_loop_round_trip(ba):
    """Awaiting a sibling that has already finished returns without yielding to the loop."""
    observed = []

    async def later(self):
        await asyncio.sleep(0.01)  # `done` has finished by now
        ran = []
        asyncio.get_running_loop().call_soon(ran.append, 1)
        value = await self.done
        value2 = await self["done"]
        observed.append(list(ran))
        return value + value2

    r = await ba.all({"done": lambda: 3, "later": later})
    assert r["later"] == 6
    assert observed == [[]]


@pytest.mark.parametrize("mode", ["all", "all_settled"])
async def test_sibling_awaited_many_times_runs_once(ba, mode):
    """Awaiting the same sibling many times from many tasks runs it once."""
    calls = []

    async def shared():
        calls.append(1)
        await asyncio.sleep(0.02)
        return "v"

    async def user(self):
        a = await self.shared
        b = await self["shared"]
        c, d = await asyncio.gather(self.shared, self.shared)
        await asyncio.sleep(0.03)  # shared is done now
        e = await self.shared
        return [a, b, c, d, e]

    tasks = {"shared": shared}
    for i in range(5):
        tasks[f"u{i}"] = user
    r = await call(ba, mode)(tasks)
    assert calls == [1]
    values = [r[f"u{i}"] for i in range(5)]
    if mode == "all_settled":
        values = [s.value for s in values]
    assert values == [["v"] * 5] * 5


async def test_sync_sibling_awaited_many_times_runs_once(ba):
    """A synchronous sibling awaited from many tasks runs once."""
    calls = []

    def shared():
        calls.append(1)
        return 5

    async def user(self):
        return await self.shared + await self.shared

    r = await ba.all({"a": user, "b": user, "shared": shared, "c": user})
    assert calls == [1]
    assert r == {"a": 10, "b": 10, "shared": 5, "c": 10}


# -- unknown names -----------------------------------------------------------------


async def test_unknown_attribute_raises_at_access(ba):
    """`self.unknown` raises UnknownTaskError at the access itself, before any await."""
    caught = []

    def t(self):
        try:
            self.usr  # noqa: B018 - the access alone must raise
        except ba.UnknownTaskError as exc:
            caught.append(exc)
        return "went on"

    r = await ba.all({"user": lambda: 1, "t": t})
    assert r["t"] == "went on"
    assert len(caught) == 1


async def test_unknown_item_raises_at_access(ba):
    """`self["unknown"]` raises UnknownTaskError at the access itself, before any await."""
    caught = []

    def t(self):
        try:
            self["usr"]
        except ba.UnknownTaskError as exc:
            caught.append(exc)
        return "went on"

    r = await ba.all({"user": lambda: 1, "t": t})
    assert r["t"] == "went on"
    assert len(caught) == 1


async def test_unknown_task_error_is_attribute_and_key_error(ba):
    """UnknownTaskError derives from both AttributeError and KeyError."""
    assert issubclass(ba.UnknownTaskError, AttributeError)
    assert issubclass(ba.UnknownTaskError, KeyError)
    seen = {}

    def t(self):
        try:
            self.usr  # noqa: B018
        except AttributeError as exc:
            seen["attr"] = exc
        try:
            self["usr"]
        except KeyError as exc:
            seen["key"] = exc
        return None

    await ba.all({"user": lambda: 1, "t": t})
    assert isinstance(seen["attr"], ba.UnknownTaskError)
    assert isinstance(seen["key"], ba.UnknownTaskError)


async def test_unknown_task_error_message_names_unknown_and_closest(ba):
    """The message names the unknown task and the closest known name."""
    errors = []

    def t(self):
        for access in (lambda: self.usr, lambda: self["usr"]):
            try:
                access()
            except ba.UnknownTaskError as exc:
                errors.append(exc)

    await ba.all({"user": lambda: 1, "config": lambda: 2, "t": t})
    assert len(errors) == 2
    for exc in errors:
        assert str(exc) == "unknown task 'usr' (did you mean 'user'?)"
        assert exc.name == "usr"
        assert exc.suggestion == "user"


async def test_unknown_task_error_closest_name_among_many(ba):
    """The suggestion is the closest known name, not just any."""
    errors = []

    def t(self):
        try:
            self.confgi  # noqa: B018
        except ba.UnknownTaskError as exc:
            errors.append(exc)

    await ba.all({"user": lambda: 1, "config": lambda: 2, "profile": lambda: 3, "t": t})
    assert "confgi" in str(errors[0])
    assert "config" in str(errors[0])
    assert errors[0].suggestion == "config"


@pytest.mark.parametrize("mode", MODES)
async def test_uncaught_unknown_access_fails_the_task(ba, mode):
    """An uncaught UnknownTaskError is that task's failure."""

    async def t(self):
        return await self.nope

    if mode == "all_settled":
        r = await ba.all_settled({"t": t, "other": lambda: 1})
        assert isinstance(r["t"].reason, ba.UnknownTaskError)
        assert r["other"] == ba.Settled.fulfilled(1)
    else:
        with pytest.raises(ba.UnknownTaskError, match="nope"):
            await call(ba, mode)({"t": t, "other": lambda: 1})


async def test_private_unknown_attribute_is_plain_attribute_error(ba):
    """`self._anything_unknown` raises a plain AttributeError, not UnknownTaskError."""
    seen = []

    def t(self):
        try:
            self._nothing_here  # noqa: B018
        except AttributeError as exc:
            seen.append(exc)

    await ba.all({"t": t})
    assert len(seen) == 1
    assert not isinstance(seen[0], ba.UnknownTaskError)


# -- un-awaited access --------------------------------------------------------------


@pytest.mark.parametrize("mode", ["all", "all_settled"])
async def test_sibling_access_without_await_is_harmless(ba, mode):
    """`self.name` without await gives no warning and no error; the sibling runs once."""
    calls = []

    async def shared():
        calls.append(1)
        await asyncio.sleep(0.01)
        return "v"

    def t(self):
        self.shared  # noqa: B018
        self["shared"]
        unused = self.shared
        del unused
        return "ok"

    r = await call(ba, mode)({"t": t, "shared": shared})
    gc.collect()
    await asyncio.sleep(0.01)
    gc.collect()
    assert calls == [1]
    if mode == "all":
        assert r == {"t": "ok", "shared": "v"}
    else:
        assert r == {"t": ba.Settled.fulfilled("ok"), "shared": ba.Settled.fulfilled("v")}


async def test_sibling_access_without_await_does_not_wait(ba):
    """An un-awaited `self.name` does not block the task on the sibling."""
    order = []

    async def slow():
        await asyncio.sleep(0.05)
        order.append("slow")

    async def t(self):
        self.slow  # noqa: B018
        order.append("t")

    await ba.all({"slow": slow, "t": t})
    assert order == ["t", "slow"]


# -- _name, _end, FlowEnd -------------------------------------------------------------


@pytest.mark.parametrize("mode", ["all", "all_settled"])
async def test_underscore_name_is_task_name(ba, mode):
    """`self._name` is the task's own name."""

    async def t(self):
        await asyncio.sleep(0)
        return self._name

    r = await call(ba, mode)({"alpha": t, "beta": t, "gamma": lambda self: self._name})
    if mode == "all_settled":
        r = {k: v.value for k, v in r.items()}
    assert r == {"alpha": "alpha", "beta": "beta", "gamma": "gamma"}


async def test_underscore_name_in_flow(ba):
    """`self._name` works in flow too."""
    assert await ba.flow({"winner": lambda self: self._end(self._name)}) == "winner"


async def test_end_outside_flow_raises_runtime_error_in_all(ba):
    """`self._end()` in all raises RuntimeError (which then fails the call)."""
    with pytest.raises(RuntimeError):
        await ba.all({"t": lambda self: self._end(1)})


async def test_end_outside_flow_raises_runtime_error_in_all_settled(ba):
    """`self._end()` in all_settled raises RuntimeError in the task."""

    async def t(self):
        await asyncio.sleep(0)
        self._end("v")

    r = await ba.all_settled({"t": t, "u": lambda self: self._end()})
    for name in ("t", "u"):
        assert r[name].status == "rejected"
        assert type(r[name].reason) is RuntimeError
        assert not isinstance(r[name].reason, ba.FlowEnd)


async def test_end_outside_flow_is_catchable(ba):
    """The RuntimeError from `_end` outside flow is raised at the call and can be caught."""

    def t(self):
        try:
            self._end(1)
        except RuntimeError:
            return "caught"
        return "not raised"

    assert await ba.all({"t": t}) == {"t": "caught"}


def test_flow_end_is_base_exception_not_exception(ba):
    """FlowEnd is a BaseException but not an Exception."""
    assert issubclass(ba.FlowEnd, BaseException)
    assert not issubclass(ba.FlowEnd, Exception)
    assert ba.FlowEnd(3).value == 3


async def test_flow_end_not_swallowed_by_except_exception(ba):
    """`except Exception` around `self._end(v)` does not swallow it: flow returns v."""

    async def t(self):
        await asyncio.sleep(0)
        try:
            self._end("v")
        except Exception:
            return "swallowed"
        return "after"

    assert await ba.flow({"t": t}) == "v"


async def test_end_raises_flow_end_with_value(ba):
    """`self._end(v)` raises FlowEnd carrying v."""
    seen = []

    def t(self):
        try:
            self._end(42)
        except ba.FlowEnd as end:
            seen.append(end.value)
            raise

    assert await ba.flow({"t": t}) == 42
    assert seen == [42]


async def test_end_default_value_is_none(ba):
    """`self._end()` ends the flow with None."""
    log = []

    async def other():
        try:
            await asyncio.sleep(10)
        finally:
            log.append("other")

    async def t(self):
        await asyncio.sleep(0.01)
        self._end()

    assert await ba.flow({"other": other, "t": t}) is None
    assert log == ["other"]


# -- cycles -------------------------------------------------------------------------


def two_cycle():
    # a awaits b (a's first step), then b awaits a: b closes the cycle.
    async def a(self):
        return await self.b

    async def b(self):
        return await self.a

    return {"a": a, "b": b}


def three_cycle():
    # a -> b, b -> c, then c awaits a: c closes the cycle.
    async def a(self):
        return await self.b

    async def b(self):
        return await self.c

    async def c(self):
        return await self["a"]

    return {"a": a, "b": b, "c": c}


def self_cycle():
    async def a(self):
        return await self.a

    return {"a": a, "z": lambda: 1}


CYCLES = [
    pytest.param(two_cycle, ("b", "a", "b"), "dependency cycle: b -> a -> b", id="2-cycle"),
    pytest.param(
        three_cycle, ("c", "a", "b", "c"), "dependency cycle: c -> a -> b -> c", id="3-cycle"
    ),
    pytest.param(self_cycle, ("a", "a"), "dependency cycle: a -> a", id="self"),
]


def test_cycle_error_public_type(ba):
    """CycleError is an exception with .cycle and the documented message."""
    exc = ba.CycleError(("x", "y", "x"))
    assert isinstance(exc, Exception)
    assert exc.cycle == ("x", "y", "x")
    assert str(exc) == "dependency cycle: x -> y -> x"


@pytest.mark.parametrize(("graph", "cycle", "message"), CYCLES)
async def test_cycle_in_all_raises_cycle_error(ba, graph, cycle, message):
    """In all, a cycle makes the call raise CycleError naming it, without hanging."""
    with pytest.raises(ba.CycleError) as info:
        await run(ba.all(graph()))
    assert info.value.cycle == cycle
    assert str(info.value) == message


@pytest.mark.parametrize(("graph", "cycle", "message"), CYCLES)
async def test_cycle_in_flow_raises_cycle_error(ba, graph, cycle, message):
    """In flow, a cycle is a real error: the call raises CycleError naming it."""
    with pytest.raises(ba.CycleError) as info:
        await run(ba.flow(graph()))
    assert info.value.cycle == cycle
    assert str(info.value) == message


@pytest.mark.parametrize(("graph", "cycle", "message"), CYCLES)
async def test_cycle_in_all_settled_rejects_every_member(ba, graph, cycle, message):
    """In all_settled, the closing task is rejected with CycleError, and members awaiting it too."""
    r = await run(ba.all_settled(graph()))
    closer = cycle[0]
    assert r[closer].status == "rejected"
    assert isinstance(r[closer].reason, ba.CycleError)
    assert r[closer].reason.cycle == cycle
    assert str(r[closer].reason) == message
    for name in set(cycle):
        assert r[name].status == "rejected", name
        assert isinstance(r[name].reason, ba.CycleError), name
        assert r[name].reason.cycle == cycle
    if "z" in r:
        assert r["z"] == ba.Settled.fulfilled(1)


async def test_cycle_error_is_raised_in_closing_task(ba):
    """The CycleError is raised at the closing task's await, where it can be caught."""

    async def a(self):
        return await self.b

    async def b(self):
        try:
            return await self.a
        except ba.CycleError as exc:
            return ("broke", exc.cycle)

    r = await run(ba.all({"a": a, "b": b}))
    assert r == {"a": ("broke", ("b", "a", "b")), "b": ("broke", ("b", "a", "b"))}


async def test_cycle_after_a_suspension_is_detected(ba):
    """A cycle closed after both tasks have suspended once is detected too."""

    async def a(self):
        await asyncio.sleep(0.02)
        return await self.b

    async def b(self):
        await asyncio.sleep(0.01)
        return await self.a

    with pytest.raises(ba.CycleError) as info:
        await run(ba.all({"a": a, "b": b}))
    assert info.value.cycle == ("a", "b", "a")


async def test_cycle_through_gather_is_detected(ba):
    """A cycle through asyncio.gather (a awaits gather(b, c); c awaits a) raises CycleError."""

    async def a(self):
        return await asyncio.gather(self.b, self.c)

    async def c(self):
        return await self.a

    with pytest.raises(ba.CycleError) as info:
        await run(ba.all({"a": a, "b": lambda: 1, "c": c}))
    assert info.value.cycle in (("a", "c", "a"), ("c", "a", "c"))
    await asyncio.sleep(0.01)  # let gather's own helper tasks finish


async def test_no_false_cycle_for_diamond(ba):
    """A diamond (b and c await a, d awaits b and c) is not a cycle."""

    async def a():
        await asyncio.sleep(0.01)
        return 1

    async def b(self):
        return await self.a + 1

    async def c(self):
        return await self.a + 2

    async def d(self):
        x, y = await asyncio.gather(self.b, self.c)
        return x + y

    r = await run(ba.all({"d": d, "c": c, "b": b, "a": a}))
    assert r == {"d": 5, "c": 3, "b": 2, "a": 1}


async def test_a_stored_self_after_the_call_raises_but_stored_awaitables_work(ba):
    """After the call, `self.x` raises RuntimeError; an awaitable taken during
    the call still gives the sibling's result (or raises its error)."""
    kept = {}

    async def a():
        return 1

    async def b(self):
        kept["self"] = self
        kept["awaitable"] = self.a
        return await self.a

    assert await ba.all({"a": a, "b": b}) == {"a": 1, "b": 1}
    assert await kept["awaitable"] == 1
    with pytest.raises(RuntimeError, match="no longer running"):
        kept["self"].a
    assert kept["self"]._name == "b"


async def test_a_stored_self_keeps_its_signal_after_the_call(ba):
    """A thread polling `self._signal` after the call still can: the signal
    stays readable, aborted with the reason the graph stopped for."""
    kept = {}

    async def slow(self):
        kept["self"] = self
        await asyncio.sleep(5)

    def bad():
        raise ValueError("stop")

    async def later(self):
        await asyncio.sleep(0.01)
        bad()

    with pytest.raises(ValueError):
        await ba.all({"slow": slow, "later": later})
    gc.collect()
    signal = kept["self"]._signal
    assert signal.aborted
    assert isinstance(signal.reason, ValueError)


@pytest.mark.parametrize("mode", ["all", "flow"])
async def test_a_gather_of_siblings_is_torn_down_when_the_graph_stops(ba, mode):
    """A task waiting in asyncio.gather(self.a, self.b) when a sibling fails is
    cancelled and the call returns (gather's bookkeeping on the cancelled
    waits must work)."""

    async def slow():
        await asyncio.sleep(5)

    async def waiter(self):
        return await asyncio.gather(self.slow, self.slow2)

    async def bad():
        await asyncio.sleep(0.01)
        raise ValueError("stop")

    tasks = {"slow": slow, "slow2": slow, "waiter": waiter, "bad": bad}
    with pytest.raises(ValueError):
        await asyncio.wait_for(getattr(ba, mode)(tasks), 3)
