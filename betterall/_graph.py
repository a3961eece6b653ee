"""The class form: a graph declared once as a class, typed end to end.

::

    class Dashboard(ba.Graph):
        auth: str                          # an input, set by the constructor

        @ba.task
        async def user(self) -> User:
            return await fetch_user(self.auth)

        @ba.task
        async def profile(self) -> Profile:
            user = await self.user         # a type checker sees User here
            return await fetch_profile(user.id)

    result = await Dashboard(auth=token).all()
    result[Dashboard.profile]              # typed Profile

How it maps onto the engines: the class is checked once, when it is
defined (task names, task signatures, inputs), and keeps the task functions
in a plain dict.  A run hands that dict to the engine's ``all``/
``all_settled``/``flow`` with a *binding*: the type to use for each task's
``self`` and the dict of the graph object's attributes (its inputs).

That type is made once per class and engine: a subclass of both the engine's
context type and the graph class.  So inside a task, ``self`` is a real
instance of the graph class (``isinstance`` holds, helper methods and
properties bind to it), ``self.auth`` is an ordinary attribute read from the
shared attribute dict, and ``self.user`` still takes the engine's native
sibling path (the C context resolves task names before anything else).
Each task has its own ``self``: the engine must know which task is waiting
for which sibling to detect cycles and record traces.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine
import dataclasses
import inspect
import types
from typing import (
    TYPE_CHECKING,
    Any,
    ClassVar,
    Generic,
    NoReturn,
    TypeVar,
    dataclass_transform,
    overload,
)

from . import _engine as _selection
from ._prepare import Bind
from ._trace import Trace
from ._types import InTask, Outcome, Settled, Signal
from ._fallback import Fallback

if TYPE_CHECKING:
    from typing import Never, Protocol, Self

__all__ = ("Graph", "Results", "SettledResults", "Task", "task")

T = TypeVar("T")
D = TypeVar("D")
T_co = TypeVar("T_co", covariant=True)
G = TypeVar("G", bound="Graph")
G_co = TypeVar("G_co", bound="Graph", covariant=True)
G_contra = TypeVar("G_contra", bound="Graph", contravariant=True)

# Names a task or an input cannot take: the run methods, and the members a
# task's ``self`` has in every graph.
RESERVED = frozenset({"all", "all_settled", "flow", "_name", "_signal", "_end"})

# The engine whose entry points the class form calls: the one this process
# selected (the tests and benchmarks switch it).
_engine: types.ModuleType = _selection.ENGINE


class Task(Generic[G_co, T_co]):
    """A task of a :class:`Graph` class, made by :func:`task`.

    On the class (``Dashboard.user``) it is the task itself, and the key
    that reads the task's result from a run's :class:`Results`.  Inside a
    task, ``self.user`` is an awaitable for the sibling's result.
    """

    # Typing: ``Task[G, T]`` is a task that graph class ``G`` declares (or
    # overrides), whose result is a ``T``.  It is covariant in ``G`` so that a
    # subclass may override a task: ``Task[Sub, T]`` must be a
    # ``Task[Base, T]``, or pyright reports an incompatible override.  Which
    # results a task may index is the opposite relation (a base's task
    # indexes a subclass's results, a subclass's task not a base's), so
    # ``Results[G]`` does not take a ``Task[G, T]`` but a ``_TaskKey[G, T]``,
    # a protocol that sees the graph type contravariantly through
    # ``__ba_key__``.  (Typing the task with the class it is read from,
    # ``__get__(None, owner: type[G])``, fails under mypy: it infers ``G``
    # from the expected key type, so ``sub_results[Base.task]`` is rejected.)

    __slots__ = ("fn", "func", "name", "owner")

    fn: Callable[..., Any]  # what the engine calls (the function, or its InTask or Fallback)
    func: Callable[..., Any]  # the method itself (a Python function)
    name: str
    owner: type[Graph] | None

    def __init__(self, fn: Callable[..., Any]) -> None:
        func = fn
        while isinstance(func, (InTask, Fallback)):  # the method under its markers
            func = func.__wrapped__
        if not isinstance(func, types.FunctionType):
            raise TypeError(
                "@betterall.task goes on a method defined with def or async def"
                f" (one parameter, self), not on {type(func).__name__}"
            )
        self.fn = fn
        self.func = func
        self.name = func.__name__
        self.owner = None

    def __set_name__(self, owner: type[Any], name: str) -> None:
        self.name = name
        self.owner = owner
        if not (isinstance(owner, type) and issubclass(owner, Graph)):
            raise TypeError(
                f"@betterall.task method {owner.__qualname__}.{name} belongs in a"
                " subclass of betterall.Graph"
            )

    @overload
    def __get__(self, instance: None, owner: type[Any] | None = None) -> Self: ...
    @overload
    def __get__(
        self, instance: Graph, owner: type[Any] | None = None
    ) -> Awaitable[T_co]: ...
    def __get__(self, instance: Any, owner: Any = None) -> Any:
        if instance is None:
            return self
        if isinstance(instance, _context_bases()):
            # The pure-Python engine's context comes here; the C context
            # resolves task names itself, before any class attribute.
            return instance[self.name]
        cls = type(instance).__name__
        raise AttributeError(
            f"{cls}.{self.name} is a task: inside the graph's tasks await"
            f" self.{self.name}; after a run read it from the result, as"
            f" result[{cls}.{self.name}]"
        )

    def __set__(self, instance: object, value: Never) -> NoReturn:
        raise AttributeError(
            f"cannot assign to {type(instance).__name__}.{self.name}: it is a task"
        )

    def __repr__(self) -> str:
        where = f"{self.owner.__qualname__}." if self.owner is not None else ""
        return f"<betterall task {where}{self.name}>"

    if TYPE_CHECKING:
        # For the type checker only (see _TaskKey).
        @property
        def __ba_key__(self) -> Callable[[G_co], T_co]: ...


if TYPE_CHECKING:

    class _TaskKey(Protocol[G_contra, T_co]):
        """What indexes ``Results[G]``: a ``Task[B, T]`` where ``G`` is
        ``B`` or a subclass of ``B``."""

        @property
        def __ba_key__(self) -> Callable[[G_contra], T_co]: ...


@overload
def task(fn: Callable[[G], Awaitable[T]]) -> Task[G, T]: ...
@overload
def task(fn: Callable[[G], T]) -> Task[G, T]: ...
def task(fn: Callable[[Any], Any]) -> Task[Any, Any]:
    """Declare a method of a :class:`Graph` subclass as one of its tasks.

    The method takes ``self`` only and may be ``async def`` or ``def``.  Its
    return type is the type of ``await self.<name>`` in sibling tasks and of
    ``result[<Class>.<name>]`` after a run.  Stack it on top of
    :func:`betterall.in_task` to run the task in a real ``asyncio.Task``.
    """
    return Task(fn)


def _key(key: Any) -> Any:
    """A task used as a key of Results/SettledResults stands for its name."""
    return key.name if type(key) is not str and isinstance(key, Task) else key


class Results(dict[str, Any], Generic[G_co]):
    """The results of :meth:`Graph.all`: a dict from task name to result, in
    the class's task order, that a task also indexes with its own type::

        result = await Dashboard(auth=token).all()
        result[Dashboard.user]     # typed by the task's return annotation
        result["user"]             # the same value, typed Any
    """

    # Covariant in the graph type: a subclass's results are a base's results.
    __slots__ = ()

    @overload
    def __getitem__(self, key: _TaskKey[G_co, T]) -> T: ...
    @overload
    def __getitem__(self, key: str) -> Any: ...
    def __getitem__(self, key: Any) -> Any:
        return dict.__getitem__(self, _key(key))

    # dict's own signatures first, in its order (pyright checks the override).
    @overload
    def get(self, key: str, default: None = None, /) -> Any | None: ...
    @overload
    def get(self, key: str, default: Any, /) -> Any: ...
    @overload
    def get(self, key: _TaskKey[G_co, T], default: None = None, /) -> T | None: ...
    @overload
    def get(self, key: _TaskKey[G_co, T], default: D, /) -> T | D: ...
    # pyright cannot match dict[str, Any].get's third overload (default: T ->
    # Any | T) to the second, which takes the same arguments and returns Any.
    def get(  # pyright: ignore[reportIncompatibleMethodOverride]
        self, key: Any, default: Any = None, /
    ) -> Any:
        return dict.get(self, _key(key), default)

    def __contains__(self, key: object, /) -> bool:
        return dict.__contains__(self, _key(key))


class SettledResults(dict[str, Outcome[Any]], Generic[G_co]):
    """The outcomes of :meth:`Graph.all_settled`: a dict from task name to
    :class:`Settled`, indexed by task (typed ``Fulfilled[<return type>] |
    Rejected``, which ``isinstance`` and ``match`` narrow) or
    by name."""

    __slots__ = ()

    @overload
    def __getitem__(self, key: _TaskKey[G_co, T]) -> Outcome[T]: ...
    @overload
    def __getitem__(self, key: str) -> Outcome[Any]: ...
    def __getitem__(self, key: Any) -> Outcome[Any]:
        return dict.__getitem__(self, _key(key))

    @overload
    def get(self, key: str, default: None = None, /) -> Outcome[Any] | None: ...
    @overload
    def get(self, key: str, default: Outcome[Any], /) -> Outcome[Any]: ...
    @overload
    def get(self, key: str, default: D, /) -> Outcome[Any] | D: ...
    @overload
    def get(self, key: _TaskKey[G_co, T], default: None = None, /) -> Outcome[T] | None: ...
    @overload
    def get(self, key: _TaskKey[G_co, T], default: D, /) -> Outcome[T] | D: ...
    def get(self, key: Any, default: Any = None, /) -> Any:
        return dict.get(self, _key(key), default)

    def __contains__(self, key: object, /) -> bool:
        return dict.__contains__(self, _key(key))


@dataclass_transform(
    kw_only_default=True,
    eq_default=False,
    field_specifiers=(dataclasses.field, dataclasses.Field),
)
class Graph:
    """Base class of graphs declared as classes.

    Annotated class attributes are the graph's inputs (as in a dataclass,
    keyword-only, with optional defaults); methods decorated with
    :func:`task` are its tasks.  An instance holds one set of inputs and
    can be run any number of times, also concurrently::

        result = await Dashboard(auth=token).all()

    Inside a task, ``self`` is an instance of the class with the same inputs
    plus the context members of the dict form: ``self._name``,
    ``self._signal`` and, in :meth:`flow`, ``self._end(value)``.
    """

    __ba_tasks__: ClassVar[dict[str, Any]] = {}
    __ba_contexts__: ClassVar[dict[type, type]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "__ba_context_of__" in cls.__dict__:
            return  # a context type made by _context_type()
        _define(cls)

    def all(
        self,
        *,
        debug: bool | str | Callable[[Trace], object] = False,
        timeout: float | None = None,
    ) -> Coroutine[Any, Any, Results[Self]]:
        """Run the graph like :func:`betterall.all`; the result is a
        :class:`Results`."""
        engine = _engine
        return engine.all(  # type: ignore[no-any-return]
            type(self).__ba_tasks__, debug=debug, timeout=timeout, _bind=_binding(self, engine, Results)
        )

    def all_settled(
        self,
        *,
        debug: bool | str | Callable[[Trace], object] = False,
        timeout: float | None = None,
    ) -> Coroutine[Any, Any, SettledResults[Self]]:
        """Run the graph like :func:`betterall.all_settled`; the result is a
        :class:`SettledResults`."""
        engine = _engine
        return engine.all_settled(  # type: ignore[no-any-return]
            type(self).__ba_tasks__, debug=debug, timeout=timeout, _bind=_binding(self, engine, SettledResults)
        )

    def flow(
        self,
        *,
        debug: bool | str | Callable[[Trace], object] = False,
        timeout: float | None = None,
    ) -> Coroutine[Any, Any, Any]:
        """Run the graph like :func:`betterall.flow`: a task ends it with
        ``self._end(value)``, and the call returns that value."""
        engine = _engine
        return engine.flow(  # type: ignore[no-any-return]
            type(self).__ba_tasks__, debug=debug, timeout=timeout, _bind=_binding(self, engine, None)
        )

    if TYPE_CHECKING:
        # What a task's `self` has besides the class's own attributes; the
        # engine's context type provides them at run time.
        @property
        def _name(self) -> str: ...
        @property
        def _signal(self) -> Signal: ...
        def _end(self, value: object = None) -> NoReturn: ...


_CONTEXT_BASES: tuple[type[Any], ...] = ()


def _context_bases() -> tuple[type[Any], ...]:
    """Every engine's context type (found on first use)."""
    global _CONTEXT_BASES
    if not _CONTEXT_BASES:
        _CONTEXT_BASES = tuple(
            engine.Context for engine in _selection.engines().values() if hasattr(engine, "Context")
        )
    return _CONTEXT_BASES


def _binding(graph: Graph, engine: types.ModuleType, result: type | None) -> Bind:
    """What a run of ``graph`` passes to ``engine`` as ``_bind=``: the type of
    each task's ``self``, the attributes they share (the graph object's), and
    the type of the result (``None`` for ``flow``)."""
    cls = type(graph)
    context = cls.__ba_contexts__.get(engine.Context) or _context_type(cls, engine)
    return (context, graph.__dict__, result)


def _context_type(cls: type[Graph], engine: types.ModuleType) -> type:
    """The type of a task's ``self`` for graph class ``cls`` on ``engine``:
    a subclass of both, made on first use and kept on the class."""
    base = engine.Context
    contexts = cls.__ba_contexts__
    ctx = contexts.get(base)
    if ctx is None:
        graph = cls.__dict__.get("__ba_context_of__", cls)
        namespace = {
            "__ba_context_of__": graph,
            "__module__": graph.__module__,
            "__qualname__": graph.__qualname__,
            "__doc__": graph.__doc__,
        }
        ctx = types.new_class(graph.__name__, (base, graph), exec_body=lambda ns: ns.update(namespace))
        contexts[base] = ctx
    return ctx


def _define(cls: type[Graph]) -> None:
    """Check a new graph class once and record its tasks (the definition
    errors name the class and the offending member)."""
    qual = cls.__qualname__
    tasks: dict[str, Task[Any, Any]] = {}
    for klass in reversed(cls.__mro__):
        if not issubclass(klass, Graph) or klass is Graph:
            continue
        for name, value in vars(klass).items():
            if isinstance(value, Task):
                tasks[name] = value
            elif name in tasks:
                raise TypeError(
                    f"{klass.__qualname__}.{name} replaces the task"
                    f" {tasks[name].owner.__qualname__}.{name} with something that"  # type: ignore[union-attr]
                    " is not a task: decorate it with @betterall.task"
                )
    for name, t in tasks.items():
        if name.startswith("_") or name in RESERVED:
            raise ValueError(
                f"{qual}.{name} cannot be a task: "
                + (
                    "task names must not start with '_' (reserved for _name,"
                    " _signal, _end)"
                    if name.startswith("_")
                    else f"{name!r} is reserved for Graph.{name}()"
                )
            )
        func = t.func
        try:
            inspect.signature(func).bind(None)
        except TypeError:
            raise TypeError(
                f"task {qual}.{name} must take one parameter, self (any other"
                f" needs a default); it is declared as {name}{inspect.signature(func)}"
            ) from None
    own = cls.__dict__.get("__annotations__", {})
    for name in own:
        if name in tasks:
            raise TypeError(f"{qual}.{name} is declared both as an input and as a task")
        if name in RESERVED:
            raise ValueError(f"{qual}.{name} cannot be an input: the name is reserved")
    dataclasses.dataclass(cls, kw_only=True, eq=False)
    for field in dataclasses.fields(cls):  # type: ignore[arg-type]
        if field.name in tasks:
            raise TypeError(
                f"{qual}.{field.name} is a task, but a base class declares it as an input"
            )
    cls.__ba_tasks__ = {name: t.fn for name, t in tasks.items()}
    cls.__ba_contexts__ = {}
