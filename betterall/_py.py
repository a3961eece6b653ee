"""The pure-Python engine: the reference implementation of betterall.

It favours being obviously correct over being fast: each graph task runs in
its own :class:`asyncio.Task` (named after the task, in its own copy of the
caller's context), and the C engine is tested against the same suite.  It is
selected with ``BETTERALL_NO_EXTENSIONS=1`` and is the fallback when the C
extension is not installed or cannot be used (see ``_engine.py``).

How a call runs
---------------
``_Graph.run`` validates the input, creates one ``asyncio.Task`` per graph
task (they start on the loop's next iteration, in the mapping's order, and
each runs until its first suspension before the next one starts), then waits
until every one of them has finished, whatever happens.  The outcome is
decided *inside* the tasks, synchronously, by ``_Graph._decide``: the first
failure (``all``/``flow``), the first ``_end`` (``flow``), the timeout or the
caller's cancellation aborts the signal and cancels every task still running.
A task cancelled before its first step never runs its function at all.

Sibling waits
-------------
``self.user`` returns a :class:`_Sibling` awaitable.  Awaiting a finished
sibling returns at once (the ``__await__`` generator never yields).  Awaiting
a running one first looks for a cycle along the wait-for edges (which task is
blocked on which), then parks on a private future of the waiter's own, so
that cancelling the waiter never cancels the sibling.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
from collections.abc import Callable, Coroutine, Generator, Mapping
import inspect
import time
import types
import weakref
from typing import Any, Final

from ._errors import CycleError, FlowEnd, UnknownTaskError
from ._fallback import _FellBack
from ._prepare import Bind, Spec, check_bind, check_debug, check_timeout, prepare
from ._trace import TaskStatus, TaskTrace, Trace
from ._support import create_task, report
from ._types import Outcome, Settled, Signal

__all__ = ("all", "all_settled", "flow")

_builtin_all = all

ALL: Final = "all"
SETTLED: Final = "all_settled"
FLOW: Final = "flow"

# Node states.
PENDING: Final = 0  # created, function not called yet
RUNNING: Final = 1  # function called, not finished
DONE: Final = 2  # finished: see .status


class _Node:
    """One task of a graph, with its result and the futures waiting on it."""

    __slots__ = (
        "graph",
        "spec",
        "name",
        "state",
        "status",
        "result",
        "error",
        "task",
        "context",
        "waiters",
        "blocked_on",
        "cancelled_by_graph",
        "timed_out",
        "ended",
        "fell_back",
        "start",
        "end",
        "deps",
        "waits",
    )

    def __init__(self, graph: _Graph, spec: Spec) -> None:
        self.graph = graph
        self.spec = spec
        self.name = spec.name
        self.state = PENDING
        self.status: TaskStatus = "cancelled"
        self.fell_back = False  # fulfilled with a ba.fallback value
        self.result: Any = None
        self.error: BaseException | None = None
        self.task: asyncio.Task[None] | None = None
        self.context = _Context(self)
        # Futures of tasks blocked on this node, woken when it finishes.
        self.waiters: list[asyncio.Future[None]] = []
        # Nodes this node is blocked on right now (the wait-for edges).  A
        # list, not a set: one task may wait on the same sibling twice at
        # once (``gather(self.a, self.a)``).
        self.blocked_on: list[_Node] = []
        self.cancelled_by_graph = False
        self.timed_out = False
        self.ended = False
        self.start = 0.0
        self.end = 0.0
        self.deps: dict[str, None] = {}  # an ordered set: first-await order
        self.waits: list[tuple[float, float]] = []

    def outcome(self) -> Any:
        """The result, or raise the error, of a finished node."""
        if self.status == "fulfilled":
            return self.result
        if self.status == "rejected":
            assert self.error is not None
            raise self.error
        # Cancelled by the graph, or ended the flow: whoever waits on it is
        # being torn down as well.
        raise asyncio.CancelledError(f"task {self.name!r} was cancelled")

    def __repr__(self) -> str:
        return f"<node {self.name!r} state={self.state} status={self.status}>"


def _is_awaitable(value: object) -> bool:
    # Looks at the type only, as the C engine does: a result is returned as
    # it is, without touching its own attributes (which may raise).
    tp = type(value)
    if tp is types.CoroutineType:
        return True
    if tp is types.GeneratorType:
        return bool(value.gi_code.co_flags & inspect.CO_ITERABLE_COROUTINE)  # type: ignore[attr-defined]
    return getattr(tp, "__await__", None) is not None


# asyncio's own futures and tasks, whose protocol asyncio implements:
# yielded to the node's asyncio.Task as they are.  A subclass (a gather()
# future, a task factory's task) passes too unless it redefines what
# asyncio.Task calls on a yielded future (see _Guard).
_ASYNCIO_FUTURES: Final = (
    asyncio.Task,
    asyncio.tasks._PyTask,  # type: ignore[attr-defined]
    asyncio.Future,
    asyncio.futures._PyFuture,  # type: ignore[attr-defined]
)
_NATIVE_FUTURES: Final = frozenset(_ASYNCIO_FUTURES)
_future_types: weakref.WeakKeyDictionary[type, bool] = weakref.WeakKeyDictionary()


def _is_asyncio_future_type(tp: type) -> bool:
    known = _future_types.get(tp)
    if known is None:
        base = next((b for b in _ASYNCIO_FUTURES if issubclass(tp, b)), None)
        known = base is not None and _builtin_all(
            inspect.getattr_static(tp, name) is inspect.getattr_static(base, name)
            for name in ("_asyncio_future_blocking", "add_done_callback", "get_loop")
        )
        _future_types[tp] = known
    return known


def _settle(bridge: asyncio.Future[None], _fut: object) -> None:
    if not bridge.done():
        bridge.set_result(None)


class _Guard:
    """Runs a task's awaitable inside its asyncio.Task and checks what it yields.

    asyncio.Task reads ``_asyncio_future_blocking`` of what the coroutine
    yields and calls its ``add_done_callback()``; if either raises, the error
    goes to the loop's exception handler and the task never finishes, nor
    does the call.  Here the task fails with that error instead, thrown in
    at its await, as the C engine does.  asyncio's own futures pass through
    as they are; any other future-like object is waited on through a bridge
    future of the loop's, so that its methods are called here, where their
    errors can be thrown in.  ``cr_await`` lets asyncio's call-graph
    introspection (3.14+) see through to the awaitable.
    """

    __slots__ = ("_awaitable", "_error", "_it", "_node", "_send", "_waiting")

    def __init__(self, awaitable: Any, node: _Node) -> None:
        self._awaitable = awaitable
        self._node = node
        self._waiting: Any = None  # the foreign future a bridge stands for
        self._error: Exception | None = None  # to throw in at the next step
        tp = type(awaitable)
        if tp is types.CoroutineType or tp is types.GeneratorType:
            it = awaitable  # a coroutine, or @types.coroutine: driven directly
        else:
            it = awaitable.__await__()
            # The same checks, and errors, as the C engine and Python's await.
            if type(it) is types.CoroutineType:
                raise TypeError("__await__() returned a coroutine")
            if not hasattr(type(it), "__next__"):
                raise TypeError(f"__await__() returned non-iterator of type {type(it).__name__!r}")
        self._it: Any = it
        send = getattr(it, "send", None)
        self._send: Callable[[Any], Any] = (
            send if send is not None else (lambda _value: next(it))
        )

    @property
    def cr_await(self) -> Any:
        return self._awaitable

    cr_frame = None

    def __await__(self) -> Generator[Any, None, Any]:
        return self  # type: ignore[return-value]  # pyright: ignore[reportReturnType]

    def __next__(self) -> Any:
        # Every step of the task comes here (asyncio.Task sends None): the
        # common case inline.
        if self._error is not None:
            return self.send(None)
        self._waiting = None
        yielded = self._send(None)
        if yielded is None or type(yielded) in _NATIVE_FUTURES:
            return yielded
        return self._check(yielded)

    def send(self, value: Any) -> Any:
        self._waiting = None
        error, self._error = self._error, None
        if error is not None:
            return self._check(self._throw_in(error))
        return self._check(self._send(value))

    def throw(self, exc: BaseException, *args: Any) -> Any:  # noqa: ARG002
        waiting, self._waiting = self._waiting, None
        self._error = None  # a cancellation replaces it, as in asyncio.Task
        if waiting is not None and isinstance(exc, asyncio.CancelledError) and not waiting.done():
            # The task was cancelled while it waited on a foreign future:
            # cancel that one and, as asyncio.Task does, wait for it to end.
            try:
                if waiting.cancel(*exc.args[:1]):
                    return self._wait_on(waiting)
            except Exception as error:  # noqa: BLE001
                exc = error
        return self._check(self._throw_in(exc))

    def close(self) -> None:
        close = getattr(self._it, "close", None)
        if close is not None:
            close()

    def _throw_in(self, exc: BaseException) -> Any:
        throw = getattr(self._it, "throw", None)
        if throw is None:
            raise exc
        return throw(exc)

    def _check(self, yielded: Any) -> Any:
        if (
            yielded is None
            or type(yielded) in _NATIVE_FUTURES
            or _is_asyncio_future_type(type(yielded))
        ):
            return yielded
        try:
            if not getattr(yielded, "_asyncio_future_blocking", None):
                return yielded  # a bad yield: asyncio.Task handles it
            yielded._asyncio_future_blocking = False
            return self._wait_on(yielded)
        except Exception as error:  # noqa: BLE001
            # Thrown in on the next loop turn, as asyncio.Task (and the C
            # engine) do with a bad yield: a bare yield until then.
            self._error = error
            return None

    def _wait_on(self, fut: Any) -> asyncio.Future[None]:
        loop = self._node.graph.loop
        assert loop is not None
        if asyncio.futures._get_loop(fut) is not loop:  # type: ignore[attr-defined]
            raise RuntimeError(
                f"Task {self._node.task!r} got Future {fut!r} attached to a different loop"
            )
        bridge: asyncio.Future[None] = loop.create_future()
        fut.add_done_callback(functools.partial(_settle, bridge))
        bridge._asyncio_future_blocking = True
        self._waiting = fut
        return bridge


class _Graph:
    __slots__ = (
        "mode",
        "nodes",
        "signal",
        "decided",
        "error",
        "end_value",
        "caller_exc",
        "timeout",
        "report",
        "start",
        "loop",
        "finished",
        "by_task",
    )

    def __init__(
        self, mode: str, specs: list[Spec], report: Any, bind: Bind | None = None
    ) -> None:
        self.mode = mode
        self.signal = Signal()
        self.decided = False
        self.error: BaseException | None = None
        self.end_value: Any = None
        self.caller_exc: asyncio.CancelledError | None = None
        self.timeout: float | None = None
        self.report = report  # debug=: the chart's label, True or a callable; None when off
        self.start = 0.0
        self.loop: asyncio.AbstractEventLoop | None = None
        # Which node runs in which asyncio.Task: a wait counts for the task
        # that awaits (see _Sibling.__await__).
        self.by_task: dict[asyncio.Task[None], _Node] = {}
        self.finished = False
        self.nodes: dict[str, _Node] = {}
        for spec in specs:
            self.nodes[spec.name] = _Node(self, spec)
        if bind is not None:
            # The class form: each task's `self` is an instance of the graph
            # class's context type, sharing the graph object's attributes.
            context_type, attributes, _ = bind
            for node in self.nodes.values():
                if not node.spec.wants_context:
                    # The class form's tasks are methods: they always get self.
                    node.spec = node.spec._replace(wants_context=True)
                context = context_type(node)
                object.__setattr__(context, "__dict__", attributes)
                node.context = context

    # -- deciding the outcome -------------------------------------------

    def _decide(self, reason: BaseException, *, except_node: _Node | None = None) -> None:
        """Stop the remaining tasks: abort the signal, then cancel them.

        The signal is aborted first, so that a task sees ``aborted`` when its
        cancellation arrives.
        """
        self.decided = True
        self.signal._abort(reason)
        self._cancel_running(except_node)

    def _cancel_running(self, except_node: _Node | None = None) -> None:
        # Each task is cancelled once, as asyncio.TaskGroup cancels its
        # children: one cancelled already is left to its clean-up, whatever
        # happens to the call meanwhile (another cancel, a timeout, ...).
        for node in self.nodes.values():
            if node.state == DONE or node is except_node or node.cancelled_by_graph:
                continue
            node.cancelled_by_graph = True
            if node.state == PENDING:
                # Its function never runs: a task cancelled before its first
                # step never enters its coroutine.  Finish it now so that
                # anything waiting on it wakes up.
                self._finish(node, "cancelled")
            if node.task is not None:
                node.task.cancel()

    def fail(self, node: _Node, error: BaseException) -> None:
        self._finish(node, "rejected", error=error)
        if self.mode != SETTLED and not self.decided:
            self.error = error
            self._decide(error)

    def end_flow(self, node: _Node, end: FlowEnd) -> bool:
        """Record ``_end``; True if this call won (the first one does)."""
        if self.decided:
            return False
        node.ended = True
        self.end_value = end.value
        self._decide(end, except_node=node)
        return True

    def on_timeout(self) -> None:
        if self.decided or _builtin_all(n.state == DONE for n in self.nodes.values()):
            # Decided already, or every task finished in time (the caller
            # just has not woken up yet): the deadline changes nothing.
            return
        error = TimeoutError(
            f"{self.mode}() timed out after {self.timeout:g} s"
        )
        if self.mode == SETTLED:
            for node in self.nodes.values():
                if node.state != DONE:
                    node.timed_out = True
            self.decided = True
            self.signal._abort(error)
            self._cancel_running()
        else:
            self.error = error
            self._decide(error)

    def on_caller_cancelled(self, exc: asyncio.CancelledError) -> None:
        if self.caller_exc is None:
            self.caller_exc = exc
        if not self.decided:
            self._decide(exc)
        else:
            # Cancelled again: only a task the graph has not cancelled yet
            # (a flow's winner that swallowed its FlowEnd) is cancelled now.
            self._cancel_running()

    # -- a task finishing --------------------------------------------------

    def _finish(
        self,
        node: _Node,
        status: TaskStatus,
        value: Any = None,
        error: BaseException | None = None,
    ) -> None:
        if self.report:
            node.end = time.monotonic()
            if node.state == PENDING:
                # Never started: an empty span at the moment it was dropped.
                node.start = node.end
        node.state = DONE
        node.status = status
        node.result = value
        node.error = error
        waiters, node.waiters = node.waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    async def _run(self, node: _Node) -> None:
        """The body of the asyncio.Task of one graph task."""
        spec = node.spec
        node.state = RUNNING
        if self.report:
            node.start = time.monotonic()
        try:
            result = spec.fn(node.context) if spec.wants_context else spec.fn()
            if _is_awaitable(result):
                result = await _Guard(result, node)
            fell_back = type(result) is _FellBack  # ba.fallback gave its value
            if fell_back:
                result = result.value
        except FlowEnd as end:
            if self.mode == FLOW:
                won = node.ended or self.end_flow(node, end)
                self._finish(node, "ended" if won else "cancelled")
            else:
                self.fail(node, end)
        except asyncio.CancelledError as exc:
            if node.ended:
                self._finish(node, "ended")
            elif node.cancelled_by_graph:
                self._finish(node, "cancelled")
            else:
                # Cancelled by something else than the graph (its own code,
                # or a cancel() on its task): a failure, as in gather().
                self.fail(node, exc)
        except BaseException as exc:
            if node.ended:
                # It called _end() and then raised something else: it ended
                # the flow all the same.
                self._finish(node, "ended")
            elif node.cancelled_by_graph:
                # An error raised while being torn down never replaces the
                # outcome already decided.
                self._finish(node, "cancelled")
            else:
                self.fail(node, exc)
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                raise
        else:
            if node.ended:
                # It called _end() and swallowed the FlowEnd.
                self._finish(node, "ended")
            elif node.cancelled_by_graph:
                # It swallowed the graph's cancellation: its result comes
                # too late to count.
                self._finish(node, "cancelled")
            else:
                node.fell_back = fell_back
                self._finish(node, "fulfilled", value=result)

    # -- the call ------------------------------------------------------------

    async def run(self, timeout: float | None) -> None:
        loop = self.loop = asyncio.get_running_loop()
        self.timeout = timeout
        if self.report:
            self.start = time.monotonic()
        tasks: list[asyncio.Task[None]] = []
        for node in self.nodes.values():
            if node.state == DONE:
                # Decided while an earlier task started eagerly (a loop with
                # asyncio.eager_task_factory): this one never starts.
                continue
            # Each task runs in its own copy of the caller's context (the
            # default of create_task), named after the graph task.
            node.task = create_task(loop, self._run(node), node.name)
            self.by_task[node.task] = node
            tasks.append(node.task)
        handle = None
        if timeout is not None:
            handle = loop.call_later(timeout, self.on_timeout)
        try:
            # Wait for every task, whatever happens: a cancelled caller
            # cancels them and goes on waiting (also when cancelled again).
            pending: set[asyncio.Task[None]] = set(tasks)
            while pending:
                try:
                    _, pending = await asyncio.wait(pending)
                except asyncio.CancelledError as exc:
                    self.on_caller_cancelled(exc)
                    # Drop what finished meanwhile: a caller cancelled on
                    # every loop turn must still see the wait come to an end.
                    pending = {t for t in pending if not t.done()}
        finally:
            if handle is not None:
                handle.cancel()
        self.by_task.clear()
        for task in tasks:
            # Mark every exception retrieved: the runner only lets
            # KeyboardInterrupt and SystemExit through, already recorded.
            if not task.cancelled():
                task.exception()

    def trace(self) -> Trace:
        end = time.monotonic()
        tasks: dict[str, TaskTrace] = {}
        for name, node in self.nodes.items():
            tasks[name] = TaskTrace(
                name,
                node.start,
                node.end,
                "fallback" if node.fell_back else node.status,
                tuple(node.deps),
                tuple(node.waits),
            )
        return Trace._adopt(self.start, end, tasks)


def _call_finished(node: _Node) -> RuntimeError:
    # A sibling awaitable taken during the call still gives its result.
    return RuntimeError(
        f"the betterall call of task {node.name!r} is no longer running"
    )


class _Context:
    """``self`` in a task: the lazy proxy to its siblings.

    ``self.user`` / ``self["user"]`` return an awaitable for sibling
    ``user``; nothing runs and nothing is registered until it is awaited,
    so an awaitable that is never awaited is harmless.
    """

    # Double underscores (mangled to _Context__node...): in the class form,
    # `self` is also an instance of the user's graph class, whose own
    # attributes must not meet the engine's.
    __slots__ = ("__node",)

    def __init__(self, node: _Node) -> None:
        self.__node = node

    def __getattr__(self, name: str) -> _Sibling:
        if name.startswith("_"):
            raise AttributeError(
                f"{type(self).__name__!r} object has no attribute {name!r}"
            )
        return self.__sibling(name)

    def __getitem__(self, name: str) -> _Sibling:
        if not isinstance(name, str):
            raise TypeError(
                f"task names are str, not {type(name).__name__}"
            )
        return self.__sibling(name)

    __iter__ = None  # not a sequence, despite __getitem__

    def __sibling(self, name: str) -> _Sibling:
        graph = self.__node.graph
        if graph.finished:
            raise _call_finished(self.__node)
        nodes = graph.nodes
        target = nodes.get(name)
        if target is None:
            raise UnknownTaskError.for_name(name, nodes)
        return _Sibling(self.__node, target)

    @property
    def _name(self) -> str:
        """This task's name."""
        return self.__node.name

    @property
    def _signal(self) -> Signal:
        """The graph's :class:`Signal`."""
        return self.__node.graph.signal

    def _end(self, value: Any = None) -> None:
        """End the flow with ``value`` (``flow`` only); never returns."""
        graph = self.__node.graph
        if graph.finished:
            raise _call_finished(self.__node)
        if graph.mode != FLOW:
            raise RuntimeError(
                f"self._end() is only available in betterall.flow(), not in"
                f" betterall.{graph.mode}(): return the value instead"
            )
        end = FlowEnd(value)
        graph.end_flow(self.__node, end)
        raise end

    def __dir__(self) -> list[str]:
        return ["_end", "_name", "_signal", *self.__node.graph.nodes]

    def __repr__(self) -> str:
        return f"<betterall context of task {self.__node.name!r}>"


#: The base of the class form's context types (betterall/_graph.py).
Context = _Context


# asyncio's record of which task waits for which (3.14+), read by
# asyncio.capture_call_graph(): its add and discard functions.
def _no_awaited_by(awaited: Any, awaiting: Any) -> None:
    """Stands for asyncio's functions before 3.14; never called there."""


_HAS_AWAITED_BY: Final = hasattr(asyncio.futures, "future_add_to_awaited_by")
_add_awaited_by: Callable[[Any, Any], None] = getattr(
    asyncio.futures, "future_add_to_awaited_by", _no_awaited_by
)
_discard_awaited_by: Callable[[Any, Any], None] = getattr(
    asyncio.futures, "future_discard_from_awaited_by", _no_awaited_by
)


class _Sibling:
    """The awaitable ``self.<name>``: the result of a sibling task."""

    __slots__ = ("_waiter", "_target", "_callbacks", "__weakref__")

    def __init__(self, waiter: _Node, target: _Node) -> None:
        self._waiter = waiter
        self._target = target
        # (fn, relay, future) for each add_done_callback()
        self._callbacks: list[tuple[Callable[..., Any], Callable[..., Any], asyncio.Future[None]]] = []

    def __await__(self) -> Generator[Any, None, Any]:
        target = self._target
        waiter = self._waiter
        if target.state == DONE and not waiter.graph.report:
            return target.outcome()  # nothing to record: who awaits does not matter
        # The wait counts for the graph task that awaits, which need not be
        # the one that took `self.x`: a task may hand the awaitable to a
        # sibling.  Awaited from a task of the user's own, it stays with its
        # maker (as in the C engine).
        try:
            runner = waiter.graph.by_task.get(asyncio.current_task())  # type: ignore[arg-type]
        except RuntimeError:  # driven by hand, outside a running loop
            runner = None
        if runner is not None:
            waiter = runner
        if waiter.graph.report:
            waiter.deps.setdefault(target.name)
        if target.state == DONE:
            return target.outcome()
        cycle = _find_cycle(waiter, target)
        if cycle is not None:
            raise CycleError(cycle)
        loop = waiter.graph.loop
        assert loop is not None
        future: asyncio.Future[None] = loop.create_future()
        target.waiters.append(future)
        waiter.blocked_on.append(target)
        # 3.14's call-graph introspection: the waiter waits for the target.
        awaited, awaiting = target.task, waiter.task
        link = _HAS_AWAITED_BY and awaited is not None and awaiting is not None
        if link:
            _add_awaited_by(awaited, awaiting)
        started = time.monotonic() if waiter.graph.report else 0.0
        try:
            yield from future
        finally:
            if link:
                _discard_awaited_by(awaited, awaiting)
            waiter.blocked_on.remove(target)
            if not future.done() or future.cancelled():
                try:
                    target.waiters.remove(future)
                except ValueError:
                    pass
            if waiter.graph.report:
                waiter.waits.append((started, time.monotonic()))
        return target.outcome()

    def __repr__(self) -> str:
        return f"<betterall sibling {self._target.name!r} of {self._waiter.name!r}>"

    # The part of the Future interface that asyncio.wait() uses, so that
    # asyncio.wait([self.a, self.b]) works here as on the C engine (where the
    # sibling is a full future).  gather(), wait_for() and friends wrap the
    # awaitable in a task instead, as they do any awaitable.

    def done(self) -> bool:
        return self._target.state == DONE

    def cancelled(self) -> bool:
        return self.done() and self._target.status not in ("fulfilled", "rejected")

    def result(self) -> Any:
        if not self.done():
            raise asyncio.InvalidStateError("Result is not set.")
        return self._target.outcome()

    def exception(self) -> BaseException | None:
        if not self.done():
            raise asyncio.InvalidStateError("Exception is not set.")
        if self.cancelled():
            self._target.outcome()  # raises the CancelledError
        return self._target.error

    def get_loop(self) -> asyncio.AbstractEventLoop:
        loop = self._waiter.graph.loop
        assert loop is not None
        return loop

    def add_done_callback(
        self, fn: Callable[..., Any], *, context: contextvars.Context | None = None
    ) -> None:
        if self._waiter.graph.report:
            self._waiter.deps.setdefault(self._target.name)  # a wait, as in the C engine
        loop = self.get_loop()
        if self.done():
            loop.call_soon(fn, self, context=context)
            return
        future: asyncio.Future[None] = loop.create_future()
        self._target.waiters.append(future)

        def relay(_: object) -> None:
            fn(self)

        future.add_done_callback(relay, context=context)
        self._callbacks.append((fn, relay, future))

    def remove_done_callback(self, fn: Callable[..., Any]) -> int:
        kept = []
        for entry in self._callbacks:
            if entry[0] == fn:
                entry[2].remove_done_callback(entry[1])
                try:
                    self._target.waiters.remove(entry[2])
                except ValueError:
                    pass
            else:
                kept.append(entry)
        removed = len(self._callbacks) - len(kept)
        self._callbacks[:] = kept
        return removed


def _find_cycle(waiter: _Node, target: _Node) -> list[str] | None:
    """The cycle that ``waiter`` waiting on ``target`` would close, if any.

    Follows the wait-for edges from ``target``; a path back to ``waiter``
    means the wait could never end.
    """
    if target is waiter:
        return [waiter.name, waiter.name]
    if not target.blocked_on or not waiter.waiters:
        # No path target -> ... -> waiter can exist when the target waits on
        # nobody or nobody waits on the waiter: O(1) for nearly every wait.
        return None
    # Depth-first search over blocked_on edges, keeping the path.
    stack: list[tuple[_Node, int]] = [(target, 0)]
    path = [target]
    seen = {id(target)}
    while stack:
        node, index = stack[-1]
        if index < len(node.blocked_on):
            stack[-1] = (node, index + 1)
            nxt = node.blocked_on[index]
            if nxt is waiter:
                return [waiter.name, *(n.name for n in path), waiter.name]
            if id(nxt) not in seen:
                seen.add(id(nxt))
                stack.append((nxt, 0))
                path.append(nxt)
        else:
            stack.pop()
            path.pop()
    return None


# -- entry points ----------------------------------------------------------


def _start(
    mode: str, tasks: object, debug: object, timeout: object, bind: object
) -> Coroutine[Any, Any, Any]:
    # Bad input is rejected here, at the call, before any task exists; the
    # coroutine returned runs the graph when awaited.
    specs = prepare(tasks)
    seconds = check_timeout(timeout)
    report = check_debug(debug)
    return _call(mode, specs, seconds, report, check_bind(bind, Context))


async def _call(
    mode: str, specs: list[Spec], seconds: float | None, report: Any, bind: Bind | None
) -> Any:
    graph = _Graph(mode, specs, report=report or None, bind=bind)
    if specs:
        try:
            await graph.run(seconds)
        finally:
            graph.finished = True
    error: BaseException | None
    if graph.caller_exc is not None:
        error = graph.caller_exc
    else:
        error = graph.error
    if report:
        _report(graph, report, failing=error is not None)
    if error is not None:
        raise error
    nodes = graph.nodes
    if mode == FLOW:
        return graph.end_value
    if mode == ALL:
        result = {name: node.result for name, node in nodes.items()}
    else:
        result = {name: _settled(node) for name, node in nodes.items()}
    # The class form's Results/SettledResults; the dict form keeps its dict.
    return result if bind is None or bind[2] is None else bind[2](result)


def _settled(node: _Node) -> Outcome[Any]:
    if node.timed_out:
        return Settled.rejected(
            TimeoutError(f"task {node.name!r} was still running at the deadline")
        )
    if node.status == "fulfilled":
        return Settled.fulfilled(node.result)
    if node.status == "rejected":
        assert node.error is not None
        return Settled.rejected(node.error)
    # Only the caller's cancellation cancels a task of all_settled besides
    # the timeout, and then the call raises instead of returning.
    return Settled.rejected(asyncio.CancelledError(f"task {node.name!r} was cancelled"))


def _report(graph: _Graph, debug: Any, failing: bool) -> None:
    if graph.nodes:
        report(graph.trace(), debug, failing)


def all(
    tasks: Mapping[str, Callable[[Any], Any] | Callable[[], Any]],
    *,
    debug: bool | str | Callable[[Trace], object] = False,
    timeout: float | None = None,
    _bind: Bind | None = None,
) -> Coroutine[Any, Any, dict[str, Any]]:
    """Run every task at once; await the result to get their results, in the
    mapping's order.  Bad input raises here, before any task starts.

    The first error raised by a task propagates unchanged, after every other
    task still running has been cancelled and has finished.
    """
    return _start(ALL, tasks, debug, timeout, _bind)


def all_settled(
    tasks: Mapping[str, Callable[[Any], Any] | Callable[[], Any]],
    *,
    debug: bool | str | Callable[[Trace], object] = False,
    timeout: float | None = None,
    _bind: Bind | None = None,
) -> Coroutine[Any, Any, dict[str, Outcome[Any]]]:
    """Run every task at once; return a :class:`Settled` per task.

    Never raises for a task's error, and does not cancel the siblings of a
    task that fails.
    """
    return _start(SETTLED, tasks, debug, timeout, _bind)


def flow(
    tasks: Mapping[str, Callable[[Any], Any] | Callable[[], Any]],
    *,
    debug: bool | str | Callable[[Trace], object] = False,
    timeout: float | None = None,
    _bind: Bind | None = None,
) -> Coroutine[Any, Any, Any]:
    """Run every task at once until one calls ``self._end(value)``.

    Returns that value (``None`` if no task ended the flow), as soon as the
    other tasks, cancelled at that moment, have finished.
    """
    return _start(FLOW, tasks, debug, timeout, _bind)
