"""Per-task fallbacks: ``ba.fallback(fn, default)`` gives a task a value to
fall back on when it fails or runs out of its own time.

The wrapper is an ordinary callable, so the engines call it with the task's
context like any callable object; it calls ``fn`` by the calling rule.  When
it falls back it returns the value inside a :class:`_FellBack`, which both
engines unwrap when the task ends (one type check per returned value) and
record in the trace as status ``"fallback"``; nothing else sees the marker.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
import inspect
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, Protocol, TypeVar, overload

from ._errors import CycleError, UnknownTaskError
from ._prepare import check_timeout, takes_no_arguments
from ._types import check_task_function

__all__ = ("Fallback", "fallback")

T = TypeVar("T")
D = TypeVar("D")
D_co = TypeVar("D_co", covariant=True)
P = ParamSpec("P")

#: Errors that say the graph itself is wrong, not that a task failed: a
#: fallback never hides them.
_PROGRAMMING_ERRORS = (CycleError, UnknownTaskError)

ErrorTypes = type[Exception] | tuple[type[Exception], ...]

_NO_DEFAULT: Any = object()


class _FellBack:
    """A fallback's value on its way to the engine (which unwraps it)."""

    __slots__ = ("value", "error")

    def __init__(self, value: Any, error: Exception) -> None:
        self.value = value
        self.error = error

    def __repr__(self) -> str:
        return f"<betterall fallback value {self.value!r} for {self.error!r}>"


def _check_on(on: object) -> tuple[type[Exception], ...]:
    classes: tuple[object, ...] = on if isinstance(on, tuple) else (on,)  # pyright: ignore[reportUnknownVariableType]
    checked: list[type[Exception]] = []
    for cls in classes:
        if isinstance(cls, type) and issubclass(cls, Exception):
            checked.append(cls)
        else:
            what = cls.__name__ if isinstance(cls, type) else repr(cls)
            raise TypeError(
                "fallback(on=...) takes Exception subclasses (or a tuple of them), not"
                f" {what}: cancellation, FlowEnd and other BaseExceptions are never"
                " replaced by a fallback"
            )
    return tuple(checked)


class Fallback(Generic[D_co]):
    """A task function with a fallback value, made by :func:`fallback`.

    Called with the task's context (as any callable object is), it calls the
    wrapped function by the calling rule and returns its result, or the
    fallback value when the function raised one of ``on`` or exceeded its own
    ``timeout``.
    """

    __slots__ = ("__wrapped__", "default", "compute", "on", "timeout", "_no_context")

    def __init__(
        self,
        fn: Callable[..., Any],
        default: Any = _NO_DEFAULT,
        *,
        compute: Callable[[Exception], Any] | None = None,
        on: ErrorTypes = Exception,
        timeout: float | None = None,
    ) -> None:
        check_task_function(fn, "fallback")
        if (default is _NO_DEFAULT) == (compute is None):
            raise TypeError(
                "fallback() takes either a default value or compute= (a function of the"
                " error that returns the value), not "
                + ("both" if compute is not None else "neither")
            )
        if compute is not None and not callable(compute):
            raise TypeError(f"fallback(compute=...) takes a callable, not {type(compute).__name__}")
        self.__wrapped__ = fn
        self.default = None if default is _NO_DEFAULT else default
        self.compute = compute
        self.on = _check_on(on)
        self.timeout = check_timeout(timeout)
        self._no_context = takes_no_arguments(fn)

    def __call__(self, context: Any = None) -> Any:
        try:
            result = self.__wrapped__() if self._no_context else self.__wrapped__(context)
        except Exception as exc:
            if not self._falls_back_on(exc):
                raise
            return self._fall_back(exc)
        if inspect.isawaitable(result):
            return self._await(result)
        return result

    async def _await(self, awaitable: Awaitable[Any]) -> Any:
        scope = asyncio.timeout(self.timeout) if self.timeout is not None else None
        try:
            if scope is None:
                return await awaitable
            async with scope:
                return await awaitable
        except Exception as exc:
            # Its own time is up: always a fallback, whatever ``on`` says.
            if not ((scope is not None and scope.expired()) or self._falls_back_on(exc)):
                raise
            return self._fall_back(exc)

    def _falls_back_on(self, error: Exception) -> bool:
        """Whether ``error``, raised by the task, gives the fallback value."""
        return isinstance(error, self.on) and not isinstance(error, _PROGRAMMING_ERRORS)

    def _fall_back(self, error: Exception) -> _FellBack:
        if self.compute is None:
            return _FellBack(self.default, error)
        value = self.compute(error)
        if inspect.isawaitable(value):
            if inspect.iscoroutine(value):
                value.close()
            raise TypeError(
                "fallback(compute=...) must return the value itself, not an awaitable"
            ) from error
        return _FellBack(value, error)

    def __repr__(self) -> str:
        what = f"compute={self.compute!r}" if self.compute is not None else repr(self.default)
        return f"fallback({self.__wrapped__!r}, {what})"


if TYPE_CHECKING:  # for the type checker only: nothing to build at import

    class _Decorator(Protocol[D_co]):
        @overload
        def __call__(self, fn: Callable[P, Awaitable[T]], /) -> Callable[P, Awaitable[T | D_co]]: ...
        @overload
        def __call__(self, fn: Callable[P, T], /) -> Callable[P, T | D_co]: ...


@overload
def fallback(
    fn: Callable[P, Awaitable[T]],
    /,
    default: D,
    *,
    on: ErrorTypes = ...,
    timeout: float | None = ...,
) -> Callable[P, Awaitable[T | D]]: ...
@overload
def fallback(
    fn: Callable[P, Awaitable[T]],
    /,
    *,
    compute: Callable[[Exception], D],
    on: ErrorTypes = ...,
    timeout: float | None = ...,
) -> Callable[P, Awaitable[T | D]]: ...
@overload
def fallback(
    fn: Callable[P, T],
    /,
    default: D,
    *,
    on: ErrorTypes = ...,
    timeout: float | None = ...,
) -> Callable[P, T | D]: ...
@overload
def fallback(
    fn: Callable[P, T],
    /,
    *,
    compute: Callable[[Exception], D],
    on: ErrorTypes = ...,
    timeout: float | None = ...,
) -> Callable[P, T | D]: ...
@overload
def fallback(
    *, default: D, on: ErrorTypes = ..., timeout: float | None = ...
) -> _Decorator[D]: ...
@overload
def fallback(
    *, compute: Callable[[Exception], D], on: ErrorTypes = ..., timeout: float | None = ...
) -> _Decorator[D]: ...
def fallback(
    fn: Any = None,
    /,
    default: Any = _NO_DEFAULT,
    *,
    compute: Callable[[Exception], Any] | None = None,
    on: ErrorTypes = Exception,
    timeout: float | None = None,
) -> Any:
    """Give a task a value to fall back on.

    ``ba.fallback(fn, default)`` is a task that runs ``fn`` (called by the
    calling rule) and gives its result, or ``default`` when ``fn`` raises
    an exception of ``on`` (any ``Exception`` by default) or runs longer
    than ``timeout`` seconds (its own deadline; then it is cancelled and
    falls back whatever ``on`` says).  ``compute=`` instead of ``default``
    computes the value from the exception (synchronously).  Without ``fn``
    it is a decorator: ``@ba.fallback(default=[])``, also under
    ``@ba.task`` in the class form.

    In ``ba.all`` such a task never fails the call for those errors, so the
    required tasks keep ``all``'s fail-fast meaning.  Never replaced by a
    fallback: the graph's own cancellation (a sibling failed, the caller was
    cancelled, the call's ``timeout=``), ``FlowEnd``, other
    ``BaseException``\\ s, :class:`CycleError` and :class:`UnknownTaskError`
    (they mean the graph is wrong).  Traces give such a task the status
    ``"fallback"``.
    """
    if fn is None:
        # Checked now, so that the decorator fails where it is written.
        Fallback(_check_only, default, compute=compute, on=on, timeout=timeout)

        def decorate(fn: Callable[..., Any]) -> Any:
            return Fallback(fn, default, compute=compute, on=on, timeout=timeout)

        return decorate
    return Fallback(fn, default, compute=compute, on=on, timeout=timeout)


def _check_only() -> None:  # pragma: no cover - never called
    """Stands in for the function while a decorator's options are checked."""
