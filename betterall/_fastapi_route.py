"""The dependency resolver behind :class:`betterall.fastapi.GraphRoute`.

FastAPI resolves a route's dependencies depth-first, one ``await`` after
another.  Here a route's dependency tree becomes one betterall graph per
request: every dependency (one per cache key, as FastAPI caches them) is a
task that awaits the tasks of its own sub-dependencies, so the request
waits for its critical path.

What is kept from FastAPI, by calling FastAPI itself wherever it can:

- request parameters (path, query, header, cookie, body), ``Request``,
  ``Response``, ``BackgroundTasks`` and ``SecurityScopes`` are extracted
  and validated by FastAPI's own ``solve_dependencies``, run on each
  dependency with its sub-dependencies taken off; all of it happens before
  any dependency runs, and a request with an invalid parameter is handed to
  FastAPI's own resolver, so that its response is FastAPI's;
- ``yield`` dependencies are entered by FastAPI's own code, in the
  request's task and its contextvars context (their clean-up runs there
  after the response, as FastAPI arranges it); the request task runs them
  one at a time while the graph goes on;
- overrides, ``use_cache``, Security scopes in the cache key, sync
  dependencies in the thread pool, ``concurrency`` limits.

Context variables: each task runs in its own copy of the request's
context (betterall's contract).  What a dependency sets is passed on to
the dependencies that use it and, at the end, to the request (so the
endpoint sees what its dependencies set, as with FastAPI).

Nothing here changes FastAPI for other routes: the one global it touches,
``fastapi.routing.solve_dependencies``, is replaced by a dispatcher that
passes every call through unchanged unless the request was routed by a
:class:`GraphRoute`.  A GraphRoute's request served by another event loop
than asyncio's (Trio, through AnyIO) goes to FastAPI's resolver too: the
graph needs asyncio.
"""

from __future__ import annotations

import asyncio
import contextvars
import copy
import dataclasses
import functools
import inspect
from collections import deque
from collections.abc import Callable
from typing import Any, cast


import fastapi.dependencies.utils as _utils
import fastapi.routing as _routing
from fastapi.dependencies.models import Dependant
from starlette.concurrency import run_in_threadpool

from . import _graph
from ._prepare import check_debug, check_timeout

__all__ = ("GraphRoute",)

# The key under which a GraphRoute's handler marks its request's ASGI scope
# for the dispatcher (popped at once, so only that route's top-level call
# is taken over).
_SCOPE_KEY = "betterall.graph_route"

# FastAPI's own resolver, which this module calls on single dependencies.
_fastapi_solve = _utils.solve_dependencies


def _fastapi_function(*names: str) -> Callable[..., Any]:
    """A helper of fastapi.dependencies.utils under the name it has in the
    installed FastAPI (some lost or gained a leading underscore)."""
    for name in names:
        function = getattr(_utils, name, None)
        if function is not None:
            return cast("Callable[..., Any]", function)
    raise ImportError(  # pragma: no cover - depends on the FastAPI release
        f"betterall.fastapi.GraphRoute does not support FastAPI {_fastapi_version()}:"
        f" fastapi.dependencies.utils has no {names[0]}"
    )


def _fastapi_version() -> str:
    import fastapi

    return fastapi.__version__


_is_gen = _fastapi_function("_is_gen_callable", "is_gen_callable")
_is_async_gen = _fastapi_function("_is_async_gen_callable", "is_async_gen_callable")
_is_coroutine = _fastapi_function("_is_coroutine_callable", "is_coroutine_callable")
_get_cache_key = getattr(_utils, "_get_cache_key", None)
_get_oauth_scopes = getattr(_utils, "_get_oauth_scopes", None)
_GET_DEPENDANT_PARAMETERS = frozenset(inspect.signature(_utils.get_dependant).parameters)

_MISSING: Any = object()


# The name under which a yield dependency's value comes back from FastAPI.
_VALUE = "value"

# Kinds of dependency.
_ASYNC, _SYNC, _GENERATOR = "async", "sync", "generator"


def _cache_key(dependant: Dependant, uses_scopes_cache: dict[Any, Any]) -> Any:
    if _get_cache_key is not None:
        return _get_cache_key(dependant=dependant, uses_scopes_cache=uses_scopes_cache)
    return dependant.cache_key  # type: ignore[attr-defined]  # older FastAPI


def _overridden(sub: Dependant, overrides: dict[Any, Any]) -> Dependant:
    """What FastAPI calls for ``sub`` under ``app.dependency_overrides``:
    the override's own dependant (its own parameters and sub-dependencies)."""
    call = overrides.get(sub.call, sub.call)
    if call is sub.call:
        return sub
    options: dict[str, Any] = {"path": sub.path, "call": call, "name": sub.name}
    if _get_oauth_scopes is not None and "parent_oauth_scopes" in _GET_DEPENDANT_PARAMETERS:
        options["parent_oauth_scopes"] = _get_oauth_scopes(dependant=sub)
    elif "security_scopes" in _GET_DEPENDANT_PARAMETERS:  # pragma: no cover - older FastAPI
        options["security_scopes"] = getattr(sub, "security_scopes", None)
    for option in ("scope", "concurrency"):
        if option in _GET_DEPENDANT_PARAMETERS:
            options[option] = getattr(sub, option, None)
    return _utils.get_dependant(**options)


def _with(dependant: Dependant, **changes: Any) -> Dependant:
    """A copy of ``dependant`` with ``changes`` (a dataclass from FastAPI
    0.112 on, a plain class before)."""
    if dataclasses.is_dataclass(dependant):
        return dataclasses.replace(dependant, **changes)
    other = copy.copy(dependant)
    for name, value in changes.items():
        setattr(other, name, value)
    return other


def _const_dependency(name: str, values: contextvars.ContextVar[dict[str, Any]]) -> Dependant:
    """A dependency that gives ``values.get()[name]``: how a yield
    dependency run by FastAPI receives the values its sub-dependencies
    already produced in the graph."""

    async def value() -> Any:
        return values.get()[name]

    return Dependant(call=value, name=name, use_cache=False)


class _Node:
    """One dependency of a route (one per cache key, or per use with
    ``use_cache=False``): one task of the graph."""

    __slots__ = ("name", "dependant", "own", "edges", "kind", "call", "concurrency", "shell")

    def __init__(self, name: str, dependant: Dependant) -> None:
        self.name = name
        self.dependant = dependant
        # FastAPI's own resolver on this dependency alone: its parameters.
        self.own = _with(dependant, dependencies=[])
        # (parameter name or None, sub-dependency), in declaration order.
        self.edges: list[tuple[str | None, _Node]] = []
        call = dependant.call
        assert call is not None  # every dependency FastAPI makes has one
        self.call: Callable[..., Any] = call
        self.concurrency = getattr(dependant, "concurrency", None)
        if _is_gen(call) or _is_async_gen(call):
            self.kind = _GENERATOR
        elif _is_coroutine(call):
            self.kind = _ASYNC
        else:
            self.kind = _SYNC
        self.shell: Dependant | None = None

    async def run(self, request: _Request, ctx: Any) -> tuple[Any, list[tuple[Any, Any]]]:
        """The task: the sub-dependencies' values, then the call."""
        # What this task's code changes in its context from here on (its
        # sub-dependencies' changes included, applied below) is passed on;
        # what a wrapper around the task set before (a tracing span) is not.
        start = contextvars.copy_context()
        values = request.own[self]
        if self.edges:
            values = dict(values)
            subs: dict[str, Any] = {}
            for parameter, node in self.edges:
                value, changes = await ctx[node.name]
                for var, var_value in changes:
                    var.set(var_value)
                if parameter is not None:
                    values[parameter] = value
                    subs[parameter] = value
        else:
            subs = {}
        if self.kind is _GENERATOR:
            return await request.enter(self, subs, _changes(start))
        call = self.call
        if self.concurrency is None:
            if self.kind is _ASYNC:
                value = await call(**values)
            else:
                value = await run_in_threadpool(call, **values)
        else:
            async with self.concurrency.get_semaphore():
                if self.kind is _ASYNC:
                    value = await call(**values)
                else:
                    value = await run_in_threadpool(call, **values)
        return value, _changes(start)


def _changes(base: contextvars.Context) -> list[tuple[Any, Any]]:
    """The context variables the current context holds with other values
    than ``base``."""
    return [
        (var, value)
        for var, value in contextvars.copy_context().items()
        if base.get(var, _MISSING) is not value
    ]


class _Plan:
    """A route's dependency tree, flattened into graph nodes (made once per
    route and set of overrides)."""

    def __init__(self, root: Dependant, overrides: dict[Any, Any]) -> None:
        self.root = _Node("endpoint", root)
        self.nodes: list[_Node] = []  # in FastAPI's first-use order
        # Parameter validation order: FastAPI's (sub-dependencies first).
        self.validation: list[_Node] = []
        self.generators = False
        self.values_var: contextvars.ContextVar[dict[str, Any]] = contextvars.ContextVar(
            "betterall_fastapi_sub_values"
        )
        by_key: dict[Any, _Node] = {}
        names: dict[str, int] = {}
        uses_scopes_cache: dict[Any, Any] = {}

        def visit(parent: _Node) -> None:
            for sub in parent.dependant.dependencies:
                used = _overridden(sub, overrides) if overrides else sub
                key = _cache_key(sub, uses_scopes_cache)
                node = by_key.get(key) if sub.use_cache else None
                if node is None:
                    node = _Node(self._name(used, names), used)
                    if sub.use_cache:
                        by_key[key] = node
                    self.nodes.append(node)
                    visit(node)
                    self.validation.append(node)
                    if node.kind is _GENERATOR:
                        self.generators = True
                        node.shell = Dependant(
                            dependencies=[
                                _with(
                                    used,
                                    name=_VALUE,
                                    dependencies=[
                                        _const_dependency(parameter, self.values_var)
                                        for parameter, _ in node.edges
                                        if parameter is not None
                                    ],
                                )
                            ]
                        )
                parent.edges.append((sub.name, node))

        visit(self.root)
        self.validation.append(self.root)

    @staticmethod
    def _name(dependant: Dependant, names: dict[str, int]) -> str:
        call = dependant.call
        base = getattr(call, "__name__", None) or type(call).__name__
        base = base.lstrip("_") or "dependency"
        count = names.get(base, 0) + 1
        names[base] = count
        return base if count == 1 else f"{base}#{count}"


class _Request:
    """One request's run of a plan."""

    __slots__ = ("plan", "options", "own", "base", "queue", "wake")

    def __init__(self, plan: _Plan, options: dict[str, Any]) -> None:
        self.plan = plan
        self.options = options
        self.own: dict[_Node, dict[str, Any]] = {}
        self.base = contextvars.copy_context()
        # Yield dependencies waiting for the request task to enter them.
        self.queue: deque[
            tuple[
                _Node,
                dict[str, Any],
                list[tuple[Any, Any]],
                asyncio.Future[tuple[Any, list[tuple[Any, Any]]]],
            ]
        ] = deque()
        self.wake: asyncio.Future[None] | None = None

    async def enter(
        self, node: _Node, subs: dict[str, Any], inherited: list[tuple[Any, Any]]
    ) -> tuple[Any, list[tuple[Any, Any]]]:
        """Have the request task enter yield dependency ``node``."""
        future: asyncio.Future[tuple[Any, list[tuple[Any, Any]]]] = (
            asyncio.get_running_loop().create_future()
        )
        self.queue.append((node, subs, inherited, future))
        self._wake()
        return await future

    def _wake(self, _: object = None) -> None:
        if self.wake is not None and not self.wake.done():
            self.wake.set_result(None)

    async def serve(self, graph: asyncio.Future[Any]) -> None:
        """Enter the yield dependencies the graph asks for, in the request's
        task and context, one after another, until the graph is done."""
        loop = asyncio.get_running_loop()
        graph.add_done_callback(self._wake)
        while True:
            while self.queue:
                node, subs, inherited, future = self.queue.popleft()
                if future.done():  # its task was cancelled meanwhile
                    continue
                # What its sub-dependencies set, it sees (as in FastAPI).
                for var, value in inherited:
                    var.set(value)
                try:
                    value = await self._enter(node, subs)
                except (asyncio.CancelledError, KeyboardInterrupt, SystemExit):
                    future.cancel()  # the request itself is being stopped
                    raise
                except BaseException as exc:  # noqa: B036 - handed to the task
                    if not future.done():
                        future.set_exception(exc)
                else:
                    if not future.done():
                        future.set_result((value, _changes(self.base)))
            if graph.done():
                return
            self.wake = loop.create_future()
            await self.wake

    async def _enter(self, node: _Node, subs: dict[str, Any]) -> Any:
        plan = self.plan
        assert node.shell is not None  # made for every yield dependency
        token = plan.values_var.set(subs)
        try:
            solved = await _fastapi_solve(
                **self.options,
                dependant=node.shell,
                dependency_overrides_provider=None,
                dependency_cache={},
            )
        finally:
            plan.values_var.reset(token)
        if solved.errors:  # pragma: no cover - its parameters were validated before
            from fastapi.exceptions import RequestValidationError

            raise RequestValidationError(solved.errors)
        return solved.values[_VALUE]


class _RouteState:
    """What a GraphRoute's handler keeps between requests: the plans, per
    dependant (FastAPI may build one per router inclusion) and overrides."""

    __slots__ = ("route", "plans")

    def __init__(self, route: Any) -> None:
        self.route = route
        self.plans: dict[int, tuple[Dependant, tuple[Any, ...], _Plan]] = {}

    def plan(self, dependant: Dependant, provider: Any) -> _Plan:
        overrides = getattr(provider, "dependency_overrides", None) or {}
        snapshot = tuple(overrides.items())
        entry = self.plans.get(id(dependant))
        if entry is not None and entry[0] is dependant and entry[1] == snapshot:
            return entry[2]
        plan = _Plan(dependant, overrides)
        if len(self.plans) > 16:  # overrides changing all the time (tests)
            self.plans.clear()
        self.plans[id(dependant)] = (dependant, snapshot, plan)
        return plan


async def _solve(state: _RouteState, options: dict[str, Any]) -> Any:
    """Resolve a GraphRoute's dependencies for one request."""
    original = dict(options)
    dependant = options.pop("dependant")
    provider = options.pop("dependency_overrides_provider", None)
    options.pop("dependency_cache", None)
    plan = state.plan(dependant, provider)
    run = _Request(plan, options)

    # Every parameter of every dependency, with FastAPI's validation, before
    # any dependency runs; one BackgroundTasks and one Response for all.
    # With an invalid parameter anywhere, FastAPI's own resolver answers, so
    # that the response is FastAPI's: it runs the dependencies it can, one
    # after another, and one of them (an authentication check) may answer
    # first, with its own error rather than the 422.
    errors: list[Any] = []
    solved = None
    for node in plan.validation:
        solved = await _fastapi_solve(
            **options, dependant=node.own, dependency_overrides_provider=None
        )
        options["background_tasks"] = solved.background_tasks
        options["response"] = solved.response
        errors.extend(solved.errors)
        run.own[node] = solved.values
    assert solved is not None
    if errors:
        return await _previous(**original)
    if not plan.nodes:
        return solved

    route = state.route
    debug = route.debug
    if debug is True:
        methods = ",".join(sorted(route.methods or ()))
        debug = f"{methods} {route.path}"
    tasks = {node.name: functools.partial(node.run, run) for node in plan.nodes}
    # The engine of the library's own runs (the class form's): tests set it
    # to the engine under test, betterall.otel to a traced one.
    graph = _graph._engine.all(tasks, debug=debug, timeout=route.timeout)
    if plan.generators:
        results = await _with_request_task(run, graph)
    else:
        results = await graph

    values = dict(run.own[plan.root])
    for parameter, node in plan.root.edges:
        value, changes = results[node.name]
        for var, var_value in changes:
            var.set(var_value)
        if parameter is not None:
            values[parameter] = value
    return dataclasses.replace(solved, values=values, errors=[], dependency_cache={})


async def _with_request_task(run: _Request, graph: Any) -> Any:
    """Run ``graph`` in a task of its own while this task (the request's)
    enters the yield dependencies it asks for."""
    task = asyncio.ensure_future(graph)
    try:
        await run.serve(task)
    except BaseException:
        task.cancel()
        # The graph finishes its clean-up before the error goes on.
        while not task.done():
            try:
                await asyncio.shield(task)
            except BaseException:  # noqa: B036 - the graph's own outcome is task's
                pass
        if not task.cancelled():
            task.exception()  # retrieved: the request's error wins
        raise
    return task.result()


async def _dispatch(**options: Any) -> Any:
    """``fastapi.routing.solve_dependencies`` while a GraphRoute exists."""
    request = options.get("request")
    state = request.scope.pop(_SCOPE_KEY, None) if request is not None else None
    if state is None or asyncio._get_running_loop() is None:
        # Not a GraphRoute's request, or one served by another event loop
        # than asyncio's (Trio, through AnyIO): betterall runs on asyncio
        # only, so FastAPI resolves it, one dependency after another.
        return await _previous(**options)
    return await _solve(state, options)


_previous: Callable[..., Any] = _fastapi_solve


def _install() -> None:
    """Route FastAPI's request handlers through :func:`_dispatch` (once)."""
    global _previous
    current = getattr(_routing, "solve_dependencies")  # noqa: B009 - not re-exported
    if current is not _dispatch:
        _previous = current
        setattr(_routing, "solve_dependencies", _dispatch)  # noqa: B010


class GraphRoute(_routing.APIRoute):
    """An ``APIRoute`` whose dependency tree runs as one betterall graph
    per request.  Use it as ``APIRouter(route_class=GraphRoute)`` or
    ``app.router.route_class = GraphRoute`` before the routes are added.

    ``debug`` and ``timeout`` (class attributes: subclass to set them) are
    passed to the graph as to :func:`betterall.all`; ``debug = True``
    labels the chart with the route's methods and path.
    """

    debug: bool | str | Callable[..., object] = False
    timeout: float | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        if not hasattr(_utils, "SolvedDependency"):
            # Older resolvers return a bare tuple this module does not read.
            raise RuntimeError(
                f"betterall.fastapi.GraphRoute needs FastAPI 0.115 or newer, not"
                f" {_fastapi_version()}; pip install -U 'betterall[fastapi]'"
            )
        check_debug(self.debug)
        check_timeout(self.timeout)
        _install()
        super().__init__(*args, **kwargs)

    def get_route_handler(self) -> Callable[[Any], Any]:
        handler = super().get_route_handler()
        state = _RouteState(self)

        async def graph_route_handler(request: Any) -> Any:
            request.scope[_SCOPE_KEY] = state
            return await handler(request)

        return graph_route_handler
