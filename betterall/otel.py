"""OpenTelemetry tracing (``pip install 'betterall[otel]'``).

``instrument()`` makes every graph call emit spans: one for the call
(``betterall.all``, or ``Dashboard.all`` for a class-form graph), child of
the span current where the call is awaited, and one per task under it,
current inside the task, so that spans the task's own code opens (an HTTP
client's, a database driver's) hang under it::

    from betterall import otel

    otel.instrument()           # once, at start-up, like the
                                # opentelemetry-instrumentation-* packages
    ...
    otel.uninstrument()         # back to the plain functions

A task's span carries its outcome (``betterall.task.status``, the error
recorded on a failed task), the siblings it awaited
(``betterall.task.deps``, and a link to each of their spans) and how long it
waited on them (``betterall.task.wait_seconds``, and one
``betterall.wait`` event per wait).  Times come from the call's own
:class:`betterall.Trace`, so a span lasts exactly what the trace says.

Only ``opentelemetry-api`` is needed.  Without an SDK (no tracer provider
configured) an instrumented call checks that and runs as if it were not
instrumented.
"""

from __future__ import annotations

import inspect
import os
import time
import types
from collections.abc import Callable, Mapping
from typing import Any, cast

try:
    from opentelemetry import context as otel_context
    from opentelemetry import trace
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "betterall.otel needs the OpenTelemetry API: pip install 'betterall[otel]'"
    ) from exc

from . import _engine as _selection
from . import _graph
from ._prepare import check_debug, prepare
from ._support import report
from ._trace import Trace
from ._types import in_task
from ._version import __version__

__all__ = ("BetterallInstrumentor", "instrument", "is_instrumented", "uninstrument")

_MODES = ("all", "all_settled", "flow")

# Providers that make no spans: with one of them, a call is not traced.
_NO_SDK = (trace.ProxyTracerProvider, trace.NoOpTracerProvider)


def _global_provider() -> trace.TracerProvider | None:
    """The global tracer provider, ``None`` while none is set.

    A call of an instrumented function with no SDK must cost what a plain
    call costs, and ``trace.get_tracer_provider()`` looks the environment
    up each time (for ``OTEL_PYTHON_TRACER_PROVIDER``): the API's module
    global is read directly where it exists and that variable is unset."""
    if _state.read_global:
        return cast("trace.TracerProvider | None", getattr(trace, "_TRACER_PROVIDER"))  # noqa: B009
    return trace.get_tracer_provider()


class _Call:
    """One traced graph call: its spans, and what the tasks raised."""

    __slots__ = ("tracer", "prefix", "parent", "offset", "spans", "errors")

    def __init__(self, tracer: trace.Tracer, prefix: str, parent: Any, offset: int) -> None:
        self.tracer = tracer
        self.prefix = prefix
        self.parent = parent  # the OpenTelemetry context with the call's span
        self.offset = offset  # monotonic nanoseconds -> epoch nanoseconds
        self.spans: dict[str, trace.Span] = {}
        self.errors: dict[str, BaseException] = {}

    def ns(self, monotonic: float) -> int:
        return self.offset + int(monotonic * 1e9)

    def wrap(self, name: str, fn: Callable[..., Any], wants_context: bool) -> Callable[[Any], Any]:
        """``fn`` as a task that runs in its own span (called by the engine
        with its context, whatever ``fn`` itself wants)."""

        def task(ctx: Any) -> Any:
            span = self.tracer.start_span(
                self.prefix + name,
                context=self.parent,
                attributes={"betterall.task": name},
                start_time=self.ns(time.monotonic()),
                record_exception=False,
                set_status_on_exception=False,
            )
            self.spans[name] = span
            # Current for the task's whole run (in the task's own copy of
            # the context), and no longer: whatever copies the task's
            # context at its end (GraphRoute does) must not find it there.
            token = otel_context.attach(trace.set_span_in_context(span))
            try:
                result = fn(ctx) if wants_context else fn()
            except BaseException as exc:
                self.errors[name] = exc
                otel_context.detach(token)
                raise
            if inspect.isawaitable(result):
                return self._awaiting(name, result, token)
            otel_context.detach(token)
            return result

        return task

    async def _awaiting(self, name: str, awaitable: Any, token: Any) -> Any:
        try:
            return await awaitable
        except BaseException as exc:
            self.errors[name] = exc
            raise
        finally:
            otel_context.detach(token)

    def finish(self, run: Trace | None) -> None:
        """End the task spans with the trace's times, outcomes and waits."""
        if run is None:  # the call failed before any task started
            return
        for name, task in run.tasks.items():
            span = self.spans.get(name)
            if span is None:  # never started: the outcome came first
                span = self.tracer.start_span(
                    self.prefix + name,
                    context=self.parent,
                    attributes={"betterall.task": name},
                    start_time=self.ns(task.start),
                )
            waited = sum(end - start for start, end in task.waits)
            span.set_attribute("betterall.task.status", task.status)
            span.set_attribute("betterall.task.deps", list(task.deps))
            span.set_attribute("betterall.task.wait_seconds", waited)
            for dep in task.deps:
                other = self.spans.get(dep)
                if other is not None and hasattr(span, "add_link"):
                    span.add_link(other.get_span_context(), {"betterall.relation": "awaited"})
            for start, end in task.waits:
                span.add_event(
                    "betterall.wait",
                    {"betterall.wait.seconds": end - start},
                    timestamp=self.ns(start),
                )
            error = self.errors.get(name)
            if task.status == "rejected" and error is not None:
                span.record_exception(error)
                span.set_status(trace.StatusCode.ERROR, f"{type(error).__name__}: {error}")
            span.end(end_time=self.ns(task.end))


def _traced(run: Callable[..., Any], mode: str) -> Callable[..., Any]:
    """Entry point ``run`` (an engine's all/all_settled/flow), tracing
    each call when a tracer provider is configured."""

    def call(tasks: Mapping[str, Any], *, debug: Any = False, timeout: Any = None, _bind: Any = None) -> Any:
        provider = _state.provider or _global_provider()
        if provider is None or isinstance(provider, _NO_SDK):
            return run(tasks, debug=debug, timeout=timeout, _bind=_bind)
        return _traced_call(provider, run, mode, tasks, debug, timeout, _bind)

    call.__name__ = call.__qualname__ = mode
    call.__doc__ = run.__doc__
    call.__wrapped__ = run  # type: ignore[attr-defined]
    return call


async def _traced_call(
    provider: trace.TracerProvider,
    run: Callable[..., Any],
    mode: str,
    tasks: Mapping[str, Any],
    debug: Any,
    timeout: Any,
    bind: Any,
) -> Any:
    show = check_debug(debug)  # bad input fails here, before any task starts
    specs = prepare(tasks)
    graph = bind[0].__name__ if bind else None  # the class form's class
    tracer = provider.get_tracer("betterall", __version__)
    attributes: dict[str, Any] = {"betterall.mode": mode, "betterall.tasks": len(specs)}
    if bind:
        attributes["betterall.graph"] = bind[0].__qualname__
    call_span = tracer.start_span(f"{graph or 'betterall'}.{mode}", attributes=attributes)
    if not call_span.is_recording():  # sampled out: the tasks would be too
        call_span.end()
        return await run(tasks, debug=debug, timeout=timeout, _bind=bind)
    offset = time.time_ns() - int(time.monotonic() * 1e9)
    state = _Call(tracer, f"{graph}." if graph else "", trace.set_span_in_context(call_span), offset)
    wrapped: dict[str, Any] = {}
    for spec in specs:
        task = state.wrap(spec.name, spec.fn, spec.wants_context)
        wrapped[spec.name] = in_task(task) if spec.in_task else task
    traces: list[Trace] = []
    failing = True
    try:
        with trace.use_span(call_span, end_on_exit=False, record_exception=False, set_status_on_exception=False):
            result = await run(wrapped, debug=traces.append, timeout=timeout, _bind=bind)
        failing = False
        return result
    except BaseException as exc:
        call_span.record_exception(exc)
        call_span.set_status(trace.StatusCode.ERROR, f"{type(exc).__name__}: {exc}")
        raise
    finally:
        run_trace = traces[0] if traces else None
        state.finish(run_trace)
        call_span.end(end_time=state.ns(run_trace.end) if run_trace else None)
        if show and run_trace is not None:
            report(run_trace, show, failing)


class _State:
    __slots__ = ("original", "provider", "read_global")

    def __init__(self) -> None:
        # What instrument() replaced: (namespace, attribute) -> value.
        self.original: dict[tuple[Any, str], Any] = {}
        self.provider: trace.TracerProvider | None = None
        self.read_global = False


_state = _State()


class _TracedEngine:
    """An engine whose entry points are traced (the class form's runs go
    through it); everything else is the engine's."""

    def __init__(self, engine: types.ModuleType) -> None:
        self.__wrapped__ = engine
        for mode in _MODES:
            setattr(self, mode, _traced(getattr(engine, mode), mode))

    def __getattr__(self, name: str) -> Any:
        return getattr(self.__wrapped__, name)


def instrument(*, tracer_provider: trace.TracerProvider | None = None) -> None:
    """Make every graph call emit spans (``betterall.all``,
    ``betterall.all_settled``, ``betterall.flow`` and the class form's
    runs), through ``tracer_provider`` or the global one.  Calling it again
    only changes the provider."""
    import betterall

    _state.provider = tracer_provider
    _state.read_global = hasattr(trace, "_TRACER_PROVIDER") and (
        "OTEL_PYTHON_TRACER_PROVIDER" not in os.environ
    )
    if _state.original:
        return
    engine = _selection.ENGINE
    for mode in _MODES:
        _state.original[(betterall, mode)] = getattr(betterall, mode)
        setattr(betterall, mode, _traced(getattr(engine, mode), mode))
    _state.original[(_graph, "_engine")] = _graph._engine
    _graph._engine = _TracedEngine(_graph._engine)  # type: ignore[assignment]


def uninstrument() -> None:
    """Undo :func:`instrument`: calls made from now on emit no spans."""
    for (namespace, name), value in _state.original.items():
        setattr(namespace, name, value)
    _state.original.clear()
    _state.provider = None


def is_instrumented() -> bool:
    """Whether :func:`instrument` is in effect."""
    return bool(_state.original)


class BetterallInstrumentor:
    """The same switch in the shape of the ``opentelemetry-instrumentation``
    packages' instrumentors: ``BetterallInstrumentor().instrument()``."""

    def instrument(self, **kwargs: Any) -> None:
        instrument(tracer_provider=kwargs.get("tracer_provider"))

    def uninstrument(self, **kwargs: Any) -> None:
        uninstrument()

    @property
    def is_instrumented_by_opentelemetry(self) -> bool:
        return is_instrumented()

