"""Public value types shared by every engine: Settled, Signal, in_task."""

from __future__ import annotations

from collections.abc import Callable
import inspect
from typing import Any, Final, Generic, Literal, TypeVar, cast

__all__ = ("InTask", "Settled", "Signal", "in_task")

T = TypeVar("T")
V = TypeVar("V")
F = TypeVar("F", bound=Callable[..., Any])

FULFILLED: Final = "fulfilled"
REJECTED: Final = "rejected"


class Settled(Generic[T]):
    """The outcome of one task in :func:`betterall.all_settled`.

    ``status`` is ``"fulfilled"`` (then ``value`` holds the result and
    ``reason`` is ``None``) or ``"rejected"`` (then ``reason`` holds the
    exception and ``value`` is ``None``).  Instances are immutable and
    compare equal when all three fields are equal.
    """

    __slots__ = ("status", "value", "reason")

    status: Literal["fulfilled", "rejected"]
    value: T | None
    reason: BaseException | None

    def __init__(
        self,
        status: Literal["fulfilled", "rejected"],
        value: T | None = None,
        reason: BaseException | None = None,
    ) -> None:
        if status == FULFILLED:
            if reason is not None:
                raise ValueError("a fulfilled Settled has no reason")
        elif status == REJECTED:
            if value is not None:
                raise ValueError("a rejected Settled has no value")
            if not isinstance(reason, BaseException):
                raise TypeError("a rejected Settled needs an exception as reason")
        else:
            raise ValueError(
                f"status must be 'fulfilled' or 'rejected', not {status!r}"
            )
        object.__setattr__(self, "status", status)
        object.__setattr__(self, "value", value)
        object.__setattr__(self, "reason", reason)

    # A type variable of its own: with the class's T, pyright would type
    # ``Settled.fulfilled(3)`` as ``Settled[Unknown]``.
    @classmethod
    def fulfilled(cls: type[Settled[Any]], value: V) -> Settled[V]:
        return cls(FULFILLED, value, None)

    @classmethod
    def rejected(cls, reason: BaseException) -> Settled[Any]:
        return cls(REJECTED, None, reason)

    @property
    def ok(self) -> bool:
        """``True`` when the task fulfilled."""
        return self.status == FULFILLED

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"Settled is immutable (cannot set {name!r})")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"Settled is immutable (cannot delete {name!r})")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Settled):
            return NotImplemented
        return (self.status, self.value, self.reason) == (
            other.status,
            other.value,
            other.reason,
        )

    def __hash__(self) -> int:
        return hash((self.status, self.value, self.reason))

    def __repr__(self) -> str:
        if self.status == FULFILLED:
            return f"Settled(status='fulfilled', value={self.value!r})"
        return f"Settled(status='rejected', reason={self.reason!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (Settled, (self.status, self.value, self.reason))


class Signal:
    """Tells a graph's tasks that the graph has stopped the remaining tasks.

    One signal is shared by all tasks of a graph (``self._signal``).  It
    becomes aborted when the graph cancels the tasks still running: on the
    first failure in ``all``/``flow``, on ``_end`` in ``flow``, when the
    caller is cancelled or when ``timeout=`` expires.  Tasks that cannot be
    cancelled (threads, CPU loops) poll ``aborted`` to stop early.
    """

    __slots__ = ("_aborted", "_reason")

    def __init__(self) -> None:
        self._aborted = False
        self._reason: BaseException | None = None

    @property
    def aborted(self) -> bool:
        """``True`` once the graph has stopped its remaining tasks."""
        return self._aborted

    @property
    def reason(self) -> BaseException | None:
        """Why the graph stopped: the error, ``FlowEnd``, ``CancelledError``
        or ``TimeoutError``; ``None`` while not aborted."""
        return self._reason

    def raise_if_aborted(self) -> None:
        """Raise :attr:`reason` if the signal is aborted, else do nothing."""
        if self._aborted:
            assert self._reason is not None
            raise self._reason

    def _abort(self, reason: BaseException) -> bool:
        # Engine-internal: the first reason wins.
        if self._aborted:
            return False
        self._aborted = True
        self._reason = reason
        return True

    def __repr__(self) -> str:
        if self._aborted:
            return f"<Signal aborted reason={self._reason!r}>"
        return "<Signal not aborted>"


class InTask:
    """A task function that must run in a real :class:`asyncio.Task`.

    Made by :func:`in_task`; the engines recognise it and run the wrapped
    function in an ``asyncio.Task`` named after the graph task.  Calling it
    directly calls the wrapped function.
    """

    __slots__ = ("__wrapped__",)

    def __init__(self, fn: Callable[..., Any]) -> None:
        if inspect.iscoroutine(fn):
            fn.close()
            raise TypeError(
                "in_task() takes a function, not a coroutine object: "
                "pass the function itself (without calling it)"
            )
        if not callable(fn):
            raise TypeError(
                f"in_task() takes a callable, not {type(fn).__name__}"
            )
        self.__wrapped__ = fn

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.__wrapped__(*args, **kwargs)

    def __repr__(self) -> str:
        return f"in_task({self.__wrapped__!r})"


def in_task(fn: F) -> F:
    """Mark a task function to run in a real :class:`asyncio.Task`.

    For code that insists on ``asyncio.current_task()`` being an
    ``asyncio.Task`` (or on appearing in ``asyncio.all_tasks()``).  The
    task is named after the graph task, runs in the graph task's copy of
    the caller's context, and is called with the same convention as ``fn``.

    It is typed as returning ``fn``'s own type (the :class:`InTask` it
    returns calls ``fn`` when called), so that a type checker still sees the
    task's signature, for instance under :func:`betterall.task`.
    """
    return cast(F, InTask(fn))
