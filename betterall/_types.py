"""Public value types shared by every engine: Settled, Signal, in_task."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Iterator
import contextvars
import functools
import inspect
from typing import Any, Final, Generic, Literal, NoReturn, TypeAlias, TypeVar, Union, cast

__all__ = ("Fulfilled", "InTask", "Rejected", "Settled", "Signal", "in_task", "in_thread")

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)
V = TypeVar("V")
F = TypeVar("F", bound=Callable[..., Any])

FULFILLED: Final = "fulfilled"
REJECTED: Final = "rejected"


class Settled(Generic[T_co]):
    """The outcome of one task in :func:`betterall.all_settled`.

    Every instance is a :class:`Fulfilled` (``status`` ``"fulfilled"``,
    ``value`` the result, ``reason`` ``None``) or a :class:`Rejected`
    (``status`` ``"rejected"``, ``reason`` the exception, ``value``
    ``None``).  Type checkers narrow a ``Settled[T]`` with ``isinstance``
    or ``match`` on those two; :meth:`unwrap` gives the value or raises the
    reason.  Instances are immutable, compare equal when all three fields
    are equal, and ``dict(s)`` (or :meth:`to_dict`) gives a JSON-ready form,
    which FastAPI's encoder and ``json.dumps(..., default=dict)`` use.
    """

    __slots__ = ("_value", "_reason")

    _value: Any
    _reason: BaseException | None

    def __new__(
        cls,
        status: Literal["fulfilled", "rejected"],
        value: T_co | None = None,
        reason: BaseException | None = None,
    ) -> Settled[T_co]:
        if status == FULFILLED:
            if reason is not None:
                raise ValueError("a fulfilled Settled has no reason")
            return Fulfilled(cast("T_co", value))
        if status == REJECTED:
            if value is not None:
                raise ValueError("a rejected Settled has no value")
            if not isinstance(reason, BaseException):
                raise TypeError("a rejected Settled needs an exception as reason")
            return Rejected(reason)
        raise ValueError(f"status must be 'fulfilled' or 'rejected', not {status!r}")

    # A type variable of its own: with the class's T, pyright would type
    # ``Settled.fulfilled(3)`` as ``Settled[Unknown]``.
    @staticmethod
    def fulfilled(value: V) -> Fulfilled[V]:
        """A fulfilled outcome: ``Fulfilled(value)``."""
        return Fulfilled(value)

    @staticmethod
    def rejected(reason: BaseException) -> Rejected:
        """A rejected outcome: ``Rejected(reason)``."""
        return Rejected(reason)

    @property
    def status(self) -> Literal["fulfilled", "rejected"]:
        """``"fulfilled"`` or ``"rejected"``."""
        raise NotImplementedError  # every instance is a Fulfilled or a Rejected

    @property
    def value(self) -> T_co | None:
        """The task's result when it fulfilled, else ``None``."""
        return cast("T_co | None", self._value)

    @property
    def reason(self) -> BaseException | None:
        """The task's exception when it was rejected, else ``None``."""
        return self._reason

    @property
    def ok(self) -> bool:
        """``True`` when the task fulfilled."""
        return self.status == FULFILLED

    def unwrap(self) -> T_co:
        """The value if the task fulfilled; else raise its reason."""
        if self._reason is not None:
            raise self._reason
        return cast("T_co", self._value)

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready form: ``{"status": "fulfilled", "value": ...}`` or
        ``{"status": "rejected", "reason": {"type": "ValueError", "message": "..."}}``.

        The value is left as it is (the encoder that serialises the rest of
        the response encodes it); the reason becomes the exception's class
        name and ``str()``.
        """
        if self._reason is None:
            return {"status": FULFILLED, "value": self._value}
        error = self._reason
        return {
            "status": REJECTED,
            "reason": {"type": type(error).__qualname__, "message": str(error)},
        }

    # dict(s) uses keys() and [key]: FastAPI's jsonable_encoder falls back
    # to dict(obj) for objects it does not know.
    def keys(self) -> tuple[str, str]:
        return ("status", "value") if self._reason is None else ("status", "reason")

    def __getitem__(self, key: str) -> Any:
        return self.to_dict()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys())

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"Settled is immutable (cannot set {name!r})")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"Settled is immutable (cannot delete {name!r})")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Settled):
            return NotImplemented
        return (self.status, self._value, self._reason) == (
            other.status,
            other._value,
            other._reason,
        )

    def __hash__(self) -> int:
        return hash((self.status, self._value, self._reason))

    def __repr__(self) -> str:
        if self._reason is None:
            return f"Settled(status='fulfilled', value={self._value!r})"
        return f"Settled(status='rejected', reason={self._reason!r})"


class Fulfilled(Settled[T_co]):
    """A task that returned ``value``: ``status`` is ``"fulfilled"``."""

    __slots__ = ()
    __match_args__ = ("value",)

    def __new__(cls, value: T_co) -> Fulfilled[T_co]:
        self = object.__new__(cls)
        object.__setattr__(self, "_value", value)
        object.__setattr__(self, "_reason", None)
        return self

    @property
    def status(self) -> Literal["fulfilled"]:
        return FULFILLED

    @property
    def value(self) -> T_co:
        return cast("T_co", self._value)

    @property
    def reason(self) -> None:
        return None

    def unwrap(self) -> T_co:
        return cast("T_co", self._value)

    def __reduce__(self) -> tuple[Any, ...]:
        return (Fulfilled, (self._value,))


class Rejected(Settled[NoReturn]):
    """A task that raised ``reason`` (or was cancelled, or timed out):
    ``status`` is ``"rejected"``."""

    __slots__ = ()
    __match_args__ = ("reason",)

    def __new__(cls, reason: BaseException) -> Rejected:
        if not isinstance(reason, BaseException):
            raise TypeError("a rejected Settled needs an exception as reason")
        self = object.__new__(cls)
        object.__setattr__(self, "_value", None)
        object.__setattr__(self, "_reason", reason)
        return self

    @property
    def status(self) -> Literal["rejected"]:
        return REJECTED

    @property
    def value(self) -> None:
        return None

    @property
    def reason(self) -> BaseException:
        return cast(BaseException, self._reason)

    def unwrap(self) -> NoReturn:
        raise cast(BaseException, self._reason)

    def __reduce__(self) -> tuple[Any, ...]:
        return (Rejected, (self._reason,))


#: What all_settled() gives per task: a union that type checkers narrow
#: with isinstance or match (a Settled[T] annotation is the open base).
Outcome: TypeAlias = Union[Fulfilled[T], Rejected]  # noqa: UP007 (subscripted at runtime)


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


def check_task_function(fn: object, wrapper: str) -> None:
    """Refuse, for ``wrapper()``, what cannot be a task function: a coroutine
    object (closed, so that it warns of nothing) or anything not callable."""
    if inspect.iscoroutine(fn):
        fn.close()
        raise TypeError(
            f"{wrapper}() takes a function, not a coroutine object: "
            "pass the function itself (without calling it)"
        )
    if not callable(fn):
        raise TypeError(f"{wrapper}() takes a callable, not {type(fn).__name__}")


class InTask:
    """A task function that must run in a real :class:`asyncio.Task`.

    Made by :func:`in_task`; the engines recognise it and run the wrapped
    function in an ``asyncio.Task`` named after the graph task.  Calling it
    directly calls the wrapped function.
    """

    __slots__ = ("__wrapped__",)

    def __init__(self, fn: Callable[..., Any]) -> None:
        check_task_function(fn, "in_task")
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


async def _in_thread(fn: Callable[..., T], args: tuple[Any, ...]) -> T:
    """Run ``fn(*args)`` in the loop's default executor, in a copy of the
    task's context, and wait for it to return, also when cancelled."""
    loop = asyncio.get_running_loop()
    context = contextvars.copy_context()
    future: asyncio.Future[T] = loop.run_in_executor(
        None, cast(Callable[[], T], functools.partial(context.run, fn, *args))
    )
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        # A thread cannot be interrupted: the task ends when the function
        # returns (it can watch self._signal to return early), so that no
        # work of the graph outlives its call.  Then the cancellation stands.
        while not future.done():
            try:
                await asyncio.shield(future)
            except asyncio.CancelledError:
                continue
            except BaseException:  # noqa: BLE001 (dropped: the task was cancelled)
                break
        if not future.cancelled():
            future.exception()  # retrieved: the task was cancelled regardless
        raise


def in_thread(fn: Callable[..., T]) -> Callable[..., Coroutine[Any, Any, T]]:
    """Mark a synchronous task function to run in a worker thread.

    For blocking code (a synchronous database driver, an ORM call, file
    I/O) that would otherwise hold the event loop: the function runs in the
    loop's default executor (``loop.run_in_executor(None, ...)``) in a copy
    of the task's ``contextvars`` context.  It is called by the same rule
    as any task: with the context when it needs an argument, else with
    none.  A thread cannot be interrupted: when the graph cancels the task,
    the task still waits for the function to return (``self._signal`` is
    aborted by then, so the function can check it and return early), and
    then counts as cancelled.  Synchronous tasks without it run on the
    loop, as before.
    """
    if inspect.iscoroutinefunction(fn) or inspect.iscoroutine(fn):
        if inspect.iscoroutine(fn):
            fn.close()
        raise TypeError(
            "in_thread() takes a synchronous function: an async one does not block the loop"
        )
    check_task_function(fn, "in_thread")
    from ._prepare import takes_no_arguments  # _prepare imports this module

    wrapper: Callable[..., Coroutine[Any, Any, T]]
    if takes_no_arguments(fn):

        async def no_context() -> T:
            return await _in_thread(fn, ())

        wrapper = no_context
    else:

        async def with_context(self: Any) -> T:
            return await _in_thread(fn, (self,))

        wrapper = with_context
    # The wrapper's own code says whether it takes the context (the calling
    # rule reads code objects); its name, docs and __wrapped__ are fn's.
    functools.update_wrapper(cast(Any, wrapper), fn)
    return wrapper
