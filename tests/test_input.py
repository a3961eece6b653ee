"""Contract: bad input gets a clear error before any task starts; calling convention.

docs/api.md, "Bad input gets a clear error, before any task starts", the rows on
``timeout``/``debug``, and the calling rule: "A task callable is called with
one positional argument, its context, when it requires one. A Python
function, lambda, bound method, or ``functools.partial`` of one, that can be
called with no argument at all ... is called with none.  Any other callable
... gets the context."
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Mapping
import functools
import gc
import inspect
import types
import warnings

import pytest

from helpers import MODES, call


async def fetch_user():
    return "user"


def make_coro():
    """A fresh coroutine object, as a user would get from `fetch_user()`."""
    return fetch_user()


def assert_closed(coro) -> None:
    assert coro.cr_frame is None
    assert inspect.getcoroutinestate(coro) == inspect.CORO_CLOSED


# -- tasks is not a mapping -------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("tasks", [[("a", lambda: 1)], None, "abc", 42, {"a", "b"}])
async def test_tasks_not_a_mapping_is_type_error(ba, mode, tasks):
    """`tasks` that is not a mapping raises TypeError."""
    with pytest.raises(TypeError):
        await call(ba, mode)(tasks)


@pytest.mark.parametrize("mode", MODES)
async def test_list_of_pairs_runs_nothing(ba, mode):
    """A list of (name, fn) pairs is rejected without calling the functions."""
    log = []
    with pytest.raises(TypeError):
        await call(ba, mode)([("a", lambda: log.append("a"))])
    await asyncio.sleep(0.01)
    assert log == []


@pytest.mark.parametrize("mode", MODES)
async def test_coroutine_passed_as_tasks_is_closed(ba, mode):
    """A coroutine object passed as `tasks` raises TypeError and is closed."""
    coro = make_coro()
    with pytest.raises(TypeError):
        await call(ba, mode)(coro)
    assert_closed(coro)


# -- bad names ----------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", [42, b"user", ("a", "b"), None])
async def test_non_str_name_is_type_error_naming_it(ba, mode, name):
    """A name that is not a str raises TypeError whose message names it."""
    with pytest.raises(TypeError) as info:
        await call(ba, mode)({"ok": lambda: 1, name: lambda: 2})
    assert repr(name) in str(info.value) or str(name) in str(info.value)


@pytest.mark.parametrize("mode", MODES)
async def test_empty_name_is_value_error(ba, mode):
    """An empty name raises ValueError that names it (the empty string)."""
    with pytest.raises(ValueError) as info:
        await call(ba, mode)({"ok": lambda: 1, "": lambda: 2})
    msg = str(info.value)
    assert "''" in msg or '""' in msg or "empty" in msg.lower()


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", ["_private", "_", "__dunder__", "_end"])
async def test_underscore_name_is_value_error_naming_it(ba, mode, name):
    """A name starting with `_` raises ValueError whose message names it."""
    with pytest.raises(ValueError) as info:
        await call(ba, mode)({"ok": lambda: 1, name: lambda: 2})
    assert name in str(info.value)


# -- bad values ---------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("value", [42, None, "fetch_user", [1, 2]])
async def test_non_callable_value_is_type_error_naming_task(ba, mode, value):
    """A value that is not callable raises TypeError naming the task."""
    with pytest.raises(TypeError) as info:
        await call(ba, mode)({"ok": lambda: 1, "the_user": value})
    assert "the_user" in str(info.value)


@pytest.mark.parametrize("mode", MODES)
async def test_coroutine_object_value_is_type_error_saying_pass_function(ba, mode):
    """A coroutine object as a value: TypeError naming the task, saying to pass the function."""
    coro = make_coro()
    with pytest.raises(TypeError) as info:
        await call(ba, mode)({"ok": lambda: 1, "the_user": coro})
    msg = str(info.value)
    assert "the_user" in msg
    assert "function" in msg
    assert "coroutine" in msg
    assert_closed(coro)


@pytest.mark.parametrize("mode", MODES)
async def test_coroutine_object_value_gives_no_never_awaited_warning(ba, mode):
    """The rejected coroutine object is closed: no 'never awaited' RuntimeWarning."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(TypeError):
            await call(ba, mode)({"the_user": make_coro()})
        gc.collect()
    assert [w for w in caught if issubclass(w.category, RuntimeWarning)] == []


@pytest.mark.parametrize("mode", MODES)
async def test_coroutine_value_closed_when_another_entry_is_the_error(ba, mode):
    """A coroutine value is closed even when the error reported is about another entry."""
    coro = make_coro()
    with pytest.raises((TypeError, ValueError)):
        await call(ba, mode)({"_bad": lambda: 1, "the_user": coro})
    assert_closed(coro)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    "bad_entry",
    [
        pytest.param(("zzz", 42), id="non-callable"),
        pytest.param((7, lambda: 1), id="non-str-name"),
        pytest.param(("", lambda: 1), id="empty-name"),
        pytest.param(("_zzz", lambda: 1), id="underscore-name"),
        pytest.param(("zzz", "coro"), id="coroutine-object"),
    ],
)
async def test_no_task_starts_when_last_entry_is_bad(ba, mode, bad_entry):
    """When any entry is bad (even the last), no task starts at all."""
    log = []

    async def started(self):
        log.append(self._name)
        await asyncio.sleep(0)
        log.append("after-suspension")

    name, value = bad_entry
    if value == "coro":
        value = make_coro()
    tasks = {
        "sync": lambda: log.append("sync"),
        "async_": started,
        name: value,
    }
    with pytest.raises((TypeError, ValueError)):
        await call(ba, mode)(tasks)
    await asyncio.sleep(0.02)
    assert log == []


# -- any Mapping works ----------------------------------------------------------


class OrderedMapping(Mapping):
    """A minimal user-defined Mapping (not a dict)."""

    def __init__(self, items):
        self._items = list(items)

    def __getitem__(self, key):
        for k, v in self._items:
            if k == key:
                return v
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        return (k for k, _ in self._items)

    def __len__(self) -> int:
        return len(self._items)


async def _slow_two():
    await asyncio.sleep(0.01)
    return 2


async def test_mapping_proxy_works_in_all(ba):
    """A types.MappingProxyType is accepted; results follow its order."""
    tasks = types.MappingProxyType({"b": _slow_two, "a": lambda: 1})
    r = await ba.all(tasks)
    assert r == {"b": 2, "a": 1}
    assert list(r) == ["b", "a"]


async def test_custom_mapping_works_in_all(ba):
    """A user-defined collections.abc.Mapping subclass is accepted; its order is kept."""

    async def c(self):
        return (await self.a) + (await self.b)

    tasks = OrderedMapping([("c", c), ("a", lambda: 1), ("b", _slow_two)])
    r = await ba.all(tasks)
    assert r == {"c": 3, "a": 1, "b": 2}
    assert list(r) == ["c", "a", "b"]


async def test_custom_mapping_works_in_all_settled(ba):
    """all_settled accepts a custom Mapping and keeps its order."""
    tasks = OrderedMapping([("z", lambda: 1), ("y", _slow_two)])
    r = await ba.all_settled(tasks)
    assert list(r) == ["z", "y"]
    assert r["z"] == ba.Settled.fulfilled(1)
    assert r["y"] == ba.Settled.fulfilled(2)


async def test_custom_mapping_works_in_flow(ba):
    """flow accepts a MappingProxyType and a custom Mapping."""
    r1 = await ba.flow(types.MappingProxyType({"a": lambda self: self._end("p")}))
    r2 = await ba.flow(OrderedMapping([("a", lambda self: self._end("m"))]))
    assert (r1, r2) == ("p", "m")


# -- empty mapping --------------------------------------------------------------


@pytest.mark.parametrize(
    "tasks", [{}, types.MappingProxyType({}), OrderedMapping([])], ids=["dict", "proxy", "custom"]
)
async def test_empty_mapping_results(ba, tasks):
    """An empty mapping is not an error: {} for all/all_settled, None for flow."""
    assert await ba.all(tasks) == {}
    assert await ba.all_settled(tasks) == {}
    assert await ba.flow(tasks) is None


async def test_empty_mapping_result_types(ba):
    """The empty results are real dicts."""
    assert type(await ba.all({})) is dict
    assert type(await ba.all_settled({})) is dict


@pytest.mark.parametrize("mode", MODES)
async def test_empty_mapping_debug_prints_nothing(ba, mode, capsys):
    """debug=True with an empty mapping prints nothing."""
    await call(ba, mode)({}, debug=True)
    out, err = capsys.readouterr()
    assert out == ""
    assert err == ""


# -- timeout ----------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    "timeout",
    [-1, -0.001, float("nan"), float("-inf"), "1", True, False, [], b"1"],
    ids=repr,
)
async def test_bad_timeout_is_value_error_before_any_task(ba, mode, timeout):
    """A timeout that is not None or a real number >= 0 raises ValueError; no task starts."""
    log = []

    async def t(self):
        log.append("t")

    with pytest.raises(ValueError):
        await call(ba, mode)({"s": lambda: log.append("s"), "t": t}, timeout=timeout)
    await asyncio.sleep(0.01)
    assert log == []


@pytest.mark.parametrize("timeout", [0, 0.5, 1, 0.0, float("inf"), None], ids=repr)
async def test_good_timeout_accepted_all(ba, timeout):
    """timeout 0, 0.5, 1 (int), inf and None are accepted by all."""
    assert await ba.all({"a": lambda: 1, "b": lambda self: 2}, timeout=timeout) == {
        "a": 1,
        "b": 2,
    }


@pytest.mark.parametrize("timeout", [0, 0.5, 1], ids=repr)
async def test_good_timeout_accepted_all_settled_and_flow(ba, timeout):
    """timeout 0, 0.5, 1 (int) are accepted by all_settled and flow."""
    r = await ba.all_settled({"a": lambda: 1}, timeout=timeout)
    assert r == {"a": ba.Settled.fulfilled(1)}
    assert await ba.flow({"a": lambda self: self._end(3)}, timeout=timeout) == 3


# -- debug ------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("debug", [3, b"yes", 0.5, [print]], ids=repr)
async def test_bad_debug_is_type_error_before_any_task(ba, mode, debug):
    """debug that is not a bool, None, a label (str) or a callable raises
    TypeError; no task starts."""
    log = []
    with pytest.raises(TypeError):
        await call(ba, mode)({"s": lambda: log.append("s")}, debug=debug)
    await asyncio.sleep(0.01)
    assert log == []


@pytest.mark.parametrize("mode", MODES)
async def test_empty_debug_label_is_value_error_before_any_task(ba, mode):
    """debug="" is neither a label nor a switch: ValueError, no task starts."""
    log = []
    with pytest.raises(ValueError, match="label"):
        await call(ba, mode)({"s": lambda: log.append("s")}, debug="")
    await asyncio.sleep(0.01)
    assert log == []


@pytest.mark.parametrize("debug", [False, None])
async def test_debug_false_or_none_accepted(ba, debug):
    """debug=False and debug=None are accepted."""
    assert await ba.all({"a": lambda: 1}, debug=debug) == {"a": 1}


# -- calling convention -------------------------------------------------------------


async def test_zero_parameter_def_called_with_no_args(ba):
    """A def with no parameter is called with no argument."""

    def sync():
        return "s"

    async def coro():
        return "c"

    assert await ba.all({"s": sync, "c": coro}) == {"s": "s", "c": "c"}


async def test_zero_parameter_lambda_called_with_no_args(ba):
    """A lambda with no parameter is called with no argument."""
    assert await ba.all({"a": lambda: 1, "b": lambda: _slow_two()}) == {"a": 1, "b": 2}


async def test_zero_parameter_bound_method_called_with_no_args(ba):
    """A bound method declaring only `self` is called with no argument."""

    class Service:
        def __init__(self):
            self.n = 5

        def sync(self):
            return self.n

        async def coro(self):
            return self.n * 2

    svc = Service()
    assert await ba.all({"a": svc.sync, "b": svc.coro}) == {"a": 5, "b": 10}


def _is_context(obj, name):
    return obj._name == name


async def test_one_parameter_def_gets_context(ba):
    """A def with one parameter is called with its context."""
    seen = {}

    def sync(ctx):
        seen["sync"] = ctx._name

    async def coro(ctx):
        seen["coro"] = ctx._name

    await ba.all({"sync": sync, "coro": coro})
    assert seen == {"sync": "sync", "coro": "coro"}


async def test_defaulted_parameter_is_called_with_none(ba):
    """A function whose only parameter has a default can be called with no
    argument: it is (the default stays)."""

    def f(x="default"):
        return x

    r = await ba.all({"t": f})
    assert r == {"t": "default"}


async def test_loop_idiom_lambda_is_called_with_none(ba):
    """`lambda i=i: fetch(i)` in a comprehension gets its own i, not the
    context (the bug users reported: "item <betterall context ...>")."""

    async def fetch(i):
        await asyncio.sleep(0)
        return f"item {i}"

    r = await ba.all({f"item{i}": (lambda i=i: fetch(i)) for i in range(3)})
    assert r == {"item0": "item 0", "item1": "item 1", "item2": "item 2"}


async def test_star_args_is_called_with_none(ba):
    """A function with only *args and **kwargs needs no argument: it gets none."""

    def f(*args, **kwargs):
        return args, kwargs

    assert await ba.all({"t": f}) == {"t": ((), {})}


async def test_star_args_lambda_is_called_with_none(ba):
    """A lambda with *args gets no argument."""
    assert await ba.all({"t": lambda *a: a}) == {"t": ()}


async def test_kwargs_only_function_is_called_with_none(ba):
    """A function with only **kwargs gets no argument."""

    def f(**kwargs):
        return kwargs

    assert await ba.all({"t": f}) == {"t": {}}


async def test_defaulted_keyword_only_function_is_called_with_none(ba):
    """A function with only a defaulted keyword-only parameter gets no argument."""

    def f(*, flag="kw"):
        return flag

    assert await ba.all({"t": f}) == {"t": "kw"}


async def test_required_keyword_only_function_gets_the_context(ba):
    """A required keyword-only parameter cannot be filled without an argument:
    the function gets the context, positionally, and that task fails."""

    def f(*, flag):
        return flag

    r = await ba.all_settled({"t": f})
    assert isinstance(r["t"].reason, TypeError)


async def test_context_then_defaults_gets_the_context(ba):
    """A required first parameter followed by defaulted ones gets the context."""

    def f(ctx, x=1, *args, flag="kw", **kwargs):
        return ctx._name, x, args, flag, kwargs

    assert await ba.all({"t": f}) == {"t": ("t", 1, (), "kw", {})}


async def test_keyword_only_after_positional_gets_context(ba):
    """A function with a positional and a keyword-only parameter gets the context, keyword default kept."""

    def f(ctx, *, flag="kw"):
        return ctx._name, flag

    assert await ba.all({"t": f}) == {"t": ("t", "kw")}


async def test_bound_method_with_parameter_gets_context(ba):
    """A bound method declaring a parameter besides `self` gets the context."""

    class Service:
        async def run(self, ctx):
            return ctx._name

    assert await ba.all({"t": Service().run}) == {"t": "t"}


async def test_partial_follows_the_calling_rule(ba):
    """A functools.partial gets the context when the function still needs an
    argument after the partial's own, and none when it does not: its
    positional and keyword arguments, and defaults, all count."""

    def f(prefix, ctx):
        return prefix + ctx._name

    async def fetch(i, scale=1):
        await asyncio.sleep(0)
        return i * scale

    def kw_only(*, a, b=2):
        return a + b

    r = await ba.all({
        "t": functools.partial(f, "p-"),
        "by_position": functools.partial(fetch, 3),
        "by_keyword": functools.partial(fetch, scale=2, i=4),
        "all_keywords": functools.partial(kw_only, a=1),
        **{f"i{i}": functools.partial(fetch, i) for i in range(2)},
    })
    assert r == {
        "t": "p-t", "by_position": 3, "by_keyword": 8, "all_keywords": 3, "i0": 0, "i1": 1,
    }


async def test_partial_of_a_bound_method_and_of_a_partial(ba):
    """The method's self and every layer of partial count as given."""

    class Service:
        async def get(self, i):
            return ("get", i)

        def tag(self, prefix, ctx):
            return prefix + ctx._name

    svc = Service()
    inner = functools.partial(svc.tag, "x-")
    r = await ba.all({
        "get": functools.partial(svc.get, 1),
        "tag": inner,
        "nested": functools.partial(functools.partial(svc.get), 2),
    })
    assert r == {"get": ("get", 1), "tag": "x-tag", "nested": ("get", 2)}


async def test_callable_instance_gets_context(ba):
    """An object with __call__ is called with the context."""

    class Job:
        def __call__(self, ctx):
            return ctx._name

    class AsyncJob:
        async def __call__(self, ctx):
            await asyncio.sleep(0)
            return ctx._name + "!"

    assert await ba.all({"j": Job(), "k": AsyncJob()}) == {"j": "j", "k": "k!"}


async def test_class_gets_context(ba):
    """A class used as a task is instantiated with the context."""

    class Result:
        def __init__(self, ctx):
            self.name = ctx._name

    r = await ba.all({"t": Result})
    assert isinstance(r["t"], Result)
    assert r["t"].name == "t"


async def test_builtin_gets_context(ba):
    """A builtin callable (here a list's bound append) is called with the context."""
    received = []
    r = await ba.all({"t": received.append})
    assert r == {"t": None}
    assert len(received) == 1
    assert _is_context(received[0], "t")


async def test_builtin_type_gets_context(ba):
    """The builtin `type` is called with the context, giving the context's type."""
    r = await ba.all({"t": type, "u": lambda self: type(self)})
    assert r["t"] is r["u"]


@pytest.mark.parametrize("mode", ["all", "all_settled", "flow"])
def test_bad_input_raises_at_the_call_not_at_the_await(ba, mode):
    """The error comes from the call itself, so nothing needs awaiting."""
    with pytest.raises(TypeError, match="'bad'"):
        getattr(ba, mode)({"bad": 1})


@pytest.mark.parametrize("mode", ["all", "all_settled", "flow"])
def test_the_call_is_a_coroutine_for_asyncio_run_and_create_task(ba, mode):
    """asyncio.run() and create_task() accept what the call returns."""

    async def main():
        task = asyncio.create_task(getattr(ba, mode)({"a": lambda: 1}))
        return await task

    result = asyncio.run(main())
    assert result in ({"a": 1}, {"a": ba.Settled.fulfilled(1)}, None)
    assert asyncio.run(getattr(ba, mode)({"a": lambda: 2})) in (
        {"a": 2},
        {"a": ba.Settled.fulfilled(2)},
        None,
    )


@pytest.mark.parametrize("mode", ["all", "all_settled", "flow"])
def test_a_call_never_awaited_warns_and_runs_nothing(ba, mode):
    """Forgetting `await` runs no task and warns, as a coroutine does."""
    ran = []
    with pytest.warns(RuntimeWarning, match="never awaited"):
        getattr(ba, mode)({"a": lambda: ran.append(1)})
        gc.collect()
    assert ran == []


class _TwiceA(Mapping):
    """A broken Mapping whose items() yields the name 'a' twice."""

    def __getitem__(self, key):
        return lambda: 1

    def __iter__(self):
        return iter(["a", "a"])

    def __len__(self):
        return 2


@pytest.mark.parametrize("mode", ["all", "all_settled", "flow"])
def test_a_mapping_yielding_a_name_twice_is_rejected(ba, mode):
    """A name seen twice is a ValueError naming it, before any task starts."""
    with pytest.raises(ValueError, match="'a' appears twice"):
        getattr(ba, mode)(_TwiceA())


async def test_await_returning_a_non_iterator_is_a_type_error(ba):
    """A task result whose __await__ returns no iterator fails as Python's
    own await does: TypeError."""

    class Bad:
        def __await__(self):
            return 5

    r = await ba.all_settled({"bad": lambda: Bad()})
    assert isinstance(r["bad"].reason, TypeError)
    # 3.11-3.14 say "returned non-iterator of type 'int'", 3.15 "must return
    # an iterator, not int".
    message = str(r["bad"].reason)
    assert "iterator" in message and "int" in message, message
