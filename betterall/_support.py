"""Helpers shared by both engines: real asyncio Tasks for in_task, reports.

Cold code: the C engine calls into it only for ``in_task`` tasks and when a
call is traced (``debug=``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
import contextvars
import logging
import sys
from typing import Any

from ._trace import Trace

__all__ = ("create_task", "in_task_coroutine", "report")


if sys.version_info >= (3, 12):

    def create_task(
        loop: asyncio.AbstractEventLoop,
        coro: Coroutine[Any, Any, Any],
        name: str,
        context: contextvars.Context | None = None,
    ) -> asyncio.Task[Any]:
        """``loop.create_task`` naming the task, in ``context`` (else a copy)."""
        return loop.create_task(coro, name=name, context=context)

else:

    class _Task(asyncio.Task):  # type: ignore[type-arg]
        """asyncio.Task with the ``get_context()`` that 3.12 added."""

        __slots__ = ("_betterall_context",)

        def __init__(
            self,
            coro: Coroutine[Any, Any, Any],
            *,
            loop: asyncio.AbstractEventLoop,
            name: str,
            context: contextvars.Context,
        ) -> None:
            super().__init__(coro, loop=loop, name=name, context=context)
            self._betterall_context = context

        def get_context(self) -> contextvars.Context:
            return self._betterall_context

    def create_task(
        loop: asyncio.AbstractEventLoop,
        coro: Coroutine[Any, Any, Any],
        name: str,
        context: contextvars.Context | None = None,
    ) -> asyncio.Task[Any]:
        """``loop.create_task`` naming the task, in ``context`` (else a copy).

        Made directly, not through ``loop.create_task()``: 3.11's Task has no
        ``get_context()``, which the contract promises (docs/api.md) (and 3.11 has no eager task
        factory that this would bypass).
        """
        if context is None:
            context = contextvars.copy_context()
        return _Task(coro, loop=loop, name=name, context=context)


async def _call(fn: Callable[..., Any], args: tuple[Any, ...]) -> Any:
    result = fn(*args)
    if hasattr(type(result), "__await__") or asyncio.iscoroutine(result):
        result = await result
    return result


async def _wait(task: asyncio.Task[Any]) -> Any:
    return await task


def in_task_coroutine(
    loop: asyncio.AbstractEventLoop,
    fn: Callable[..., Any],
    args: tuple[Any, ...],
    name: str,
    context: contextvars.Context,
) -> Coroutine[Any, Any, Any]:
    """For the C engine: run ``fn(*args)`` in a real asyncio.Task named
    ``name`` in ``context``, and return a coroutine that awaits it (the
    engine steps that coroutine as the graph task; cancelling it cancels
    the Task)."""
    return _wait(create_task(loop, _call(fn, args), name, context))


#: debug=True's charts go through this logger when it would emit them.
logger = logging.getLogger("betterall")


def report(trace: Trace, debug: Any, failing: bool) -> None:
    """Show the chart (``debug=True`` or a label) or hand the trace to ``debug``.

    The chart, with the critical path and the waits under it, goes to the
    ``betterall`` logger at INFO when logging would emit it there (a
    handler is configured and INFO is enabled for that logger), else to
    ``sys.stderr`` as before.  An error raised by a callable propagates,
    unless the call is already failing: then the call's own error wins.
    """
    if not trace.tasks:
        return
    if debug is True or isinstance(debug, str):
        from ._render import report as render

        text = render(trace, label=debug if isinstance(debug, str) else None)
        if logger.isEnabledFor(logging.INFO) and logger.hasHandlers():
            logger.info("%s", text)
        else:
            print(text, file=sys.stderr)
        return
    try:
        debug(trace)
    except Exception:
        if not failing:
            raise
