"""Checking a call's arguments, shared by every engine.

Everything here runs before any task starts, so that bad input is reported
with an error that names the offending task and no task ever runs half a
graph.  The result is a list of :class:`Spec`, one per task, in the
mapping's order.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
import functools
import inspect
import math
import numbers
import os
import types
from typing import Any, NamedTuple

from ._types import InTask

__all__ = (
    "Bind",
    "Spec",
    "check_bind",
    "check_debug",
    "check_timeout",
    "prepare",
    "takes_no_arguments",
)

#: The class form's binding, the entry points' private ``_bind=`` argument
#: (see betterall/_graph.py): the type of each task's ``self`` (a subclass
#: of the engine's context type), the dict of attributes every ``self``
#: shares, and the dict subclass the result is made as (``None``: dict).
Bind = tuple[type, dict[str, Any], "type | None"]


class Spec(NamedTuple):
    name: str
    fn: Callable[..., Any]  # the function to call (unwrapped from InTask)
    wants_context: bool  # called with the context, else with no argument
    in_task: bool  # run in a real asyncio.Task


def takes_no_arguments(fn: object) -> bool:
    """The calling rule: True if ``fn`` is called with no argument.

    That is a Python function (or lambda), a bound method of one, or a
    ``functools.partial`` of either, that can be called with no argument at
    all: every parameter that the method binding and the partial do not
    fill has a default, or is ``*args`` / ``**kwargs``.  So ``lambda i=i:
    fetch(i)`` and ``functools.partial(fetch, i)`` are called with none.
    Every other callable (a class, a builtin, an object with ``__call__``)
    gets the task's context.  Only code objects and defaults are read: no
    user code runs.  The C engine applies the same rule to functions and
    bound methods itself (src/graph.h, function_takes_no_arguments) and
    hands partials to this function.
    """
    given = 0  # positional arguments given already
    keywords: frozenset[str] = frozenset()
    target: Any = fn
    while type(target) is functools.partial:
        given += len(target.args)
        keywords |= target.keywords.keys()
        target = target.func
    if type(target) is types.MethodType:
        given += 1
        target = target.__func__
    if type(target) is not types.FunctionType:
        return False
    code = target.__code__
    names = code.co_varnames
    count = code.co_argcount
    first_default = count - len(target.__defaults__ or ())
    for i in range(given, first_default):
        if i < code.co_posonlyargcount or names[i] not in keywords:
            return False
    kwdefaults = target.__kwdefaults__ or {}
    return all(
        name in kwdefaults or name in keywords
        for name in names[count : count + code.co_kwonlyargcount]
    )


def _close_coroutines(tasks: Mapping[Any, Any]) -> None:
    # A coroutine object passed instead of a function will never be awaited;
    # close it so that Python does not warn "coroutine ... was never awaited"
    # on top of our TypeError.
    for value in tasks.values():
        if inspect.iscoroutine(value):
            value.close()


def _check_entry(name: object, fn: object) -> Spec:
    if not isinstance(name, str):
        raise TypeError(
            f"task names must be str, got {name!r} ({type(name).__name__})"
        )
    if not name:
        raise ValueError("task names must not be empty: got ''")
    if name.startswith("_"):
        raise ValueError(
            f"task name {name!r} starts with '_': names starting with '_' are"
            " reserved for the context's own members (_name, _signal, _end)"
        )
    if inspect.iscoroutine(fn):
        raise TypeError(
            f"task {name!r} is a coroutine object, not a function: pass the"
            f" function itself (e.g. {name!r}: fetch, not {name!r}: fetch()),"
            " or a lambda that calls it"
        )
    if not callable(fn):
        raise TypeError(
            f"task {name!r} is not callable: got {type(fn).__name__}; a task"
            " must be a function (sync or async) called with its context"
        )
    if isinstance(fn, InTask):
        inner = fn.__wrapped__
        return Spec(name, inner, not takes_no_arguments(inner), True)
    return Spec(name, fn, not takes_no_arguments(fn), False)


def prepare(tasks: object) -> list[Spec]:
    """Check ``tasks`` and return one Spec per task, in the mapping's order."""
    if not isinstance(tasks, Mapping):
        if inspect.iscoroutine(tasks):
            tasks.close()
        raise TypeError(
            "tasks must be a mapping of task names to functions (usually a"
            f" dict), not {type(tasks).__name__}"
        )
    try:
        specs = [_check_entry(name, fn) for name, fn in tasks.items()]
        if len({spec.name for spec in specs}) != len(specs):
            # Only a broken Mapping can do this; dicts cannot.
            seen: set[str] = set()
            for spec in specs:
                if spec.name in seen:
                    raise ValueError(
                        f"task name {spec.name!r} appears twice in the mapping"
                    )
                seen.add(spec.name)
        return specs
    except BaseException:
        _close_coroutines(tasks)
        raise


def check_timeout(timeout: object) -> float | None:
    """Return the timeout in seconds (``None`` for no timeout)."""
    if timeout is None:
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, numbers.Real):
        raise ValueError(
            "timeout must be None or a number of seconds >= 0, got"
            f" {timeout!r} ({type(timeout).__name__})"
        )
    seconds = float(timeout)
    if not seconds >= 0:  # also rejects NaN
        raise ValueError(
            f"timeout must be None or a number of seconds >= 0, got {timeout!r}"
        )
    if math.isinf(seconds):
        return None
    return seconds


def _env_debug() -> bool:
    value = os.environ.get("BETTERALL_DEBUG", "")
    return value.strip().lower() not in ("", "0", "false", "no", "off")


def check_debug(debug: object) -> Callable[..., Any] | bool | str:
    """Return ``False``, ``True`` (show the chart), a label (show the chart
    with that title) or the callable to call with the :class:`Trace`.
    ``BETTERALL_DEBUG=1`` turns ``False`` into ``True`` for every call."""
    if debug is False or debug is None:
        return _env_debug()
    if debug is True:
        return True
    if isinstance(debug, str):
        if not debug:
            raise ValueError("debug= as a label must not be empty (use True for no label)")
        return debug
    if callable(debug):
        return debug
    raise TypeError(
        "debug must be a bool, a label (str) or a callable that takes a"
        f" betterall.Trace, not {type(debug).__name__}"
    )


def check_bind(bind: object, context_base: type) -> Bind | None:
    """Check the private ``_bind=`` argument that :class:`betterall.Graph`
    passes to an engine (``None`` for the dict form)."""
    if bind is None:
        return None
    if not (
        type(bind) is tuple
        and len(bind) == 3
        and isinstance(bind[0], type)
        and issubclass(bind[0], context_base)
        and type(bind[1]) is dict
        and (bind[2] is None or (isinstance(bind[2], type) and issubclass(bind[2], dict)))
    ):
        raise TypeError(
            "_bind= is private to betterall.Graph: (context type, attribute"
            f" dict, result type or None), got {bind!r}"
        )
    return bind
