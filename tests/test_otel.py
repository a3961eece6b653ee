"""betterall.otel: graph calls as OpenTelemetry spans, checked with the
SDK's in-memory exporter, on both engines (and both loops)."""

from __future__ import annotations

import asyncio
import types
from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("opentelemetry.sdk")

from opentelemetry import trace  # noqa: E402
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import SimpleSpanProcessor  # noqa: E402
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter  # noqa: E402
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF  # noqa: E402

import betterall  # noqa: E402
import betterall._graph  # noqa: E402
from betterall import otel  # noqa: E402
from betterall._engine import engines  # noqa: E402

from helpers import run  # noqa: E402

DELAY = 0.05


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    otel.instrument(tracer_provider=provider)
    try:
        yield exporter
    finally:
        otel.uninstrument()


@pytest.fixture
def tba(ba: types.SimpleNamespace, exporter: InMemorySpanExporter, monkeypatch: pytest.MonkeyPatch) -> types.SimpleNamespace:
    """The engine under test's entry points, instrumented as instrument()
    instruments the default engine's (and the class form on that engine)."""
    engine = engines()[ba.ENGINE]
    monkeypatch.setattr(betterall._graph, "_engine", otel._TracedEngine(engine))
    return types.SimpleNamespace(
        **{mode: otel._traced(getattr(engine, mode), mode) for mode in ("all", "all_settled", "flow")}
    )


def spans_by_name(exporter: InMemorySpanExporter) -> dict[str, ReadableSpan]:
    spans = exporter.get_finished_spans()
    by_name = {span.name: span for span in spans}
    assert len(by_name) == len(spans), [s.name for s in spans]
    return by_name


def parent_of(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent is not None else None


def sid(span: ReadableSpan) -> int:
    assert span.context is not None
    return span.context.span_id


async def test_one_span_per_task_under_the_call_span_under_the_callers(
    tba: types.SimpleNamespace, exporter: InMemorySpanExporter
) -> None:
    user_tracer = trace.get_tracer_provider()  # the global one: no SDK here
    inner: list[Any] = []
    provider = otel._state.provider
    assert provider is not None
    tracer = provider.get_tracer("test")

    async def user(self: Any) -> str:
        await asyncio.sleep(DELAY)
        return "ada"

    async def profile(self: Any) -> str:
        name = await self.user
        with tracer.start_as_current_span("fetch profile") as span:  # user code's own span
            inner.append(span)
            await asyncio.sleep(DELAY)
        return f"profile of {name}"

    def config() -> dict[str, str]:
        return {"theme": "dark"}

    traces: list[betterall.Trace] = []
    with tracer.start_as_current_span("request"):
        result = await run(tba.all({"user": user, "profile": profile, "config": config}, debug=traces.append))
    assert result == {"user": "ada", "profile": "profile of ada", "config": {"theme": "dark"}}
    assert user_tracer is trace.get_tracer_provider()
    spans = spans_by_name(exporter)
    assert set(spans) == {"request", "betterall.all", "user", "profile", "config", "fetch profile"}
    call = spans["betterall.all"]
    assert parent_of(call) == sid(spans["request"])
    for name in ("user", "profile", "config"):
        assert parent_of(spans[name]) == sid(call), name
        assert spans[name].context.trace_id == spans["request"].context.trace_id  # type: ignore[union-attr]
    assert parent_of(spans["fetch profile"]) == sid(spans["profile"])
    assert call.attributes == {"betterall.mode": "all", "betterall.tasks": 3}

    # The spans' times are the trace's: a span ends when the trace says its
    # task ended, and starts when the task's code started (the moment the
    # engine noted, within the wrapper's own few microseconds).
    (run_trace,) = traces
    for name, task in run_trace.tasks.items():
        span = spans[name]
        assert span.end_time is not None and span.start_time is not None
        assert (span.end_time - span.start_time) / 1e9 == pytest.approx(task.duration, abs=1e-3)
    ends = {name: spans[name].end_time for name in run_trace.tasks}
    assert ends["profile"] - ends["user"] == pytest.approx(  # type: ignore[operator]
        (run_trace.tasks["profile"].end - run_trace.tasks["user"].end) * 1e9, abs=2e3
    )
    assert (call.end_time - call.start_time) / 1e9 == pytest.approx(run_trace.total, abs=5e-3)  # type: ignore[operator]
    # The sibling wait: deps, a link, an event at its time, the seconds.
    profile_span = spans["profile"]
    assert profile_span.attributes is not None
    assert profile_span.attributes["betterall.task.deps"] == ("user",)
    assert profile_span.attributes["betterall.task.status"] == "fulfilled"
    assert profile_span.attributes["betterall.task.wait_seconds"] == pytest.approx(DELAY, rel=0.5)
    assert [link.context.span_id for link in profile_span.links] == [sid(spans["user"])]
    (wait,) = profile_span.events
    assert wait.name == "betterall.wait"
    (start, end), = run_trace.tasks["profile"].waits
    assert wait.attributes == {"betterall.wait.seconds": end - start}
    assert spans["user"].attributes["betterall.task.deps"] == ()  # type: ignore[index]
    assert profile_span.status.status_code is trace.StatusCode.UNSET


async def test_a_failed_task_records_its_error_and_the_others_say_cancelled(
    tba: types.SimpleNamespace, exporter: InMemorySpanExporter
) -> None:
    async def slow() -> None:
        await asyncio.sleep(1)

    async def boom() -> None:
        await asyncio.sleep(DELAY)
        raise LookupError("no such user")

    with pytest.raises(LookupError):
        await run(tba.all({"slow": slow, "boom": boom}))
    spans = spans_by_name(exporter)
    boom_span, slow_span, call = spans["boom"], spans["slow"], spans["betterall.all"]
    assert boom_span.status.status_code is trace.StatusCode.ERROR
    assert boom_span.status.description == "LookupError: no such user"
    (event,) = boom_span.events
    assert event.name == "exception"
    assert event.attributes["exception.type"] == "LookupError"  # type: ignore[index]
    assert slow_span.attributes["betterall.task.status"] == "cancelled"  # type: ignore[index]
    assert slow_span.status.status_code is trace.StatusCode.UNSET
    assert call.status.status_code is trace.StatusCode.ERROR


async def test_all_settled_flow_timeouts_and_tasks_that_never_started(
    tba: types.SimpleNamespace, exporter: InMemorySpanExporter
) -> None:
    async def ok() -> int:
        return 1

    async def bad() -> int:
        raise ValueError("bad")

    settled = await run(tba.all_settled({"ok": ok, "bad": bad}))
    assert settled["bad"].status == "rejected"
    spans = spans_by_name(exporter)
    assert spans["bad"].status.status_code is trace.StatusCode.ERROR
    assert spans["betterall.all_settled"].status.status_code is trace.StatusCode.UNSET
    exporter.clear()

    def winner(self: Any) -> None:
        self._end("fast")

    async def loser() -> None:
        await asyncio.sleep(1)

    assert await run(tba.flow({"winner": winner, "loser": loser, "later": loser})) == "fast"
    spans = spans_by_name(exporter)
    assert spans["winner"].attributes["betterall.task.status"] == "ended"  # type: ignore[index]
    # Decided during the start: "loser" and "later" never started, and are
    # reported as cancelled spans of no length.
    for name in ("loser", "later"):
        assert spans[name].attributes["betterall.task.status"] == "cancelled"  # type: ignore[index]
    exporter.clear()

    with pytest.raises(TimeoutError):
        await run(tba.all({"loser": loser}, timeout=DELAY))
    spans = spans_by_name(exporter)
    assert spans["loser"].attributes["betterall.task.status"] == "cancelled"  # type: ignore[index]
    assert spans["betterall.all"].status.description.startswith("TimeoutError")  # type: ignore[union-attr]


async def test_a_task_that_fell_back_is_not_an_error(tba: types.SimpleNamespace, exporter: InMemorySpanExporter) -> None:
    async def flaky() -> int:
        raise ConnectionError("down")

    assert await run(tba.all({"flaky": betterall.fallback(flaky, default=0)})) == {"flaky": 0}
    span = spans_by_name(exporter)["flaky"]
    assert span.attributes["betterall.task.status"] == "fallback"  # type: ignore[index]
    assert span.status.status_code is trace.StatusCode.UNSET


async def test_caller_cancellation(tba: types.SimpleNamespace, exporter: InMemorySpanExporter) -> None:
    started = asyncio.Event()

    async def waits() -> None:
        started.set()
        await asyncio.sleep(10)

    call = asyncio.ensure_future(tba.all({"waits": waits}))
    await asyncio.wait_for(started.wait(), 5)
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    spans = spans_by_name(exporter)
    assert spans["waits"].attributes["betterall.task.status"] == "cancelled"  # type: ignore[index]
    assert spans["waits"].end_time is not None


async def test_many_calls_at_once_and_nested_graphs(tba: types.SimpleNamespace, exporter: InMemorySpanExporter) -> None:
    provider = otel._state.provider
    assert provider is not None
    tracer = provider.get_tracer("test")

    async def request(i: int) -> Any:
        async def outer() -> Any:
            async def leaf() -> int:
                await asyncio.sleep(DELAY * (i % 3) / 3)
                return i

            return await tba.all({f"leaf{i}": leaf})

        with tracer.start_as_current_span(f"request{i}"):
            return await tba.all({f"outer{i}": outer})

    results = await run(asyncio.gather(*(request(i) for i in range(20))))
    assert results == [{f"outer{i}": {f"leaf{i}": i}} for i in range(20)]
    spans = exporter.get_finished_spans()
    by_id = {sid(s): s for s in spans}
    for i in range(20):
        (leaf,) = [s for s in spans if s.name == f"leaf{i}"]
        chain = [leaf.name]
        node = leaf
        while node.parent is not None:
            node = by_id[node.parent.span_id]
            chain.append(node.name)
        assert chain == [f"leaf{i}", "betterall.all", f"outer{i}", "betterall.all", f"request{i}"]


async def test_the_class_form_names_its_spans_after_the_graph(
    tba: types.SimpleNamespace, exporter: InMemorySpanExporter
) -> None:
    class Dashboard(betterall.Graph):
        user_id: int

        @betterall.task
        async def user(self) -> int:
            return self.user_id

        @betterall.task
        async def profile(self) -> str:
            return f"p{await self.user}"

    result = await run(Dashboard(user_id=3).all())
    assert result[Dashboard.profile] == "p3"
    spans = spans_by_name(exporter)
    assert set(spans) == {"Dashboard.all", "Dashboard.user", "Dashboard.profile"}
    qualname = Dashboard.__qualname__
    assert spans["Dashboard.all"].attributes["betterall.graph"] == qualname  # type: ignore[index]
    assert spans["Dashboard.profile"].attributes["betterall.task.deps"] == ("user",)  # type: ignore[index]


async def test_in_task_and_in_thread_tasks_see_their_span(
    tba: types.SimpleNamespace, exporter: InMemorySpanExporter
) -> None:
    seen: dict[str, int] = {}

    async def real_task() -> None:
        seen["real"] = trace.get_current_span().get_span_context().span_id

    def threaded() -> None:
        seen["thread"] = trace.get_current_span().get_span_context().span_id

    await run(tba.all({"real": betterall.in_task(real_task), "thread": betterall.in_thread(threaded)}))
    spans = spans_by_name(exporter)
    assert seen == {"real": sid(spans["real"]), "thread": sid(spans["thread"])}


async def test_the_callers_context_is_left_alone(tba: types.SimpleNamespace, exporter: InMemorySpanExporter) -> None:
    before = trace.get_current_span()

    def sync_task() -> int:
        return 1

    await run(tba.all({"a": sync_task, "b": sync_task}))
    assert trace.get_current_span() is before


async def test_debug_still_works_and_its_errors_propagate(
    tba: types.SimpleNamespace, exporter: InMemorySpanExporter, capsys: pytest.CaptureFixture[str]
) -> None:
    async def task() -> int:
        return 1

    traces: list[betterall.Trace] = []
    await run(tba.all({"t": task}, debug=traces.append))
    assert list(traces[0].tasks) == ["t"]
    await run(tba.all({"t": task}, debug="GET /x"))
    assert "GET /x" in capsys.readouterr().err

    def broken(trace: betterall.Trace) -> None:
        raise RuntimeError("hook failed")

    with pytest.raises(RuntimeError, match="hook failed"):
        await run(tba.all({"t": task}, debug=broken))
    with pytest.raises(TypeError, match="debug"):
        await run(tba.all({"t": task}, debug=3))
    with pytest.raises(TypeError, match="'t'"):
        await run(tba.all({"t": 3}))


async def test_sampled_out_calls_make_no_spans(ba: types.SimpleNamespace) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(sampler=ALWAYS_OFF)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    engine = engines()[ba.ENGINE]

    async def task() -> int:
        return 1

    otel.instrument(tracer_provider=provider)
    try:
        assert await run(otel._traced(engine.all, "all")({"t": task})) == {"t": 1}
        assert exporter.get_finished_spans() == ()
    finally:
        otel.uninstrument()


def test_instrument_and_uninstrument_swap_the_public_functions() -> None:
    plain = (betterall.all, betterall.all_settled, betterall.flow, betterall._graph._engine)
    assert not otel.is_instrumented()
    instrumentor = otel.BetterallInstrumentor()
    instrumentor.instrument()
    try:
        assert otel.is_instrumented() and instrumentor.is_instrumented_by_opentelemetry
        assert betterall.all is not plain[0] and betterall.all.__wrapped__ is plain[0]  # type: ignore[attr-defined]
        assert isinstance(betterall._graph._engine, otel._TracedEngine)
        otel.instrument()  # twice: still one layer
        assert betterall.all.__wrapped__ is plain[0]  # type: ignore[attr-defined]
    finally:
        instrumentor.uninstrument()
    assert (betterall.all, betterall.all_settled, betterall.flow, betterall._graph._engine) == plain
    assert not otel.is_instrumented()


async def test_without_an_sdk_the_engines_own_call_runs(ba: types.SimpleNamespace) -> None:
    """No tracer provider configured: the instrumented function hands back
    the engine's own call, with nothing in between (benchmarks/ measure
    what the check costs)."""
    engine = engines()[ba.ENGINE]
    otel.instrument()
    try:
        assert isinstance(trace.get_tracer_provider(), otel._NO_SDK)
        traced = otel._traced(engine.all, "all")
        plain_call = engine.all({"t": lambda: 1})
        call = traced({"t": lambda: 1})
        assert type(call) is type(plain_call)
        assert getattr(call, "cr_code", None) is not otel._traced_call.__code__
        assert await run(asyncio.gather(plain_call, call)) == [{"t": 1}, {"t": 1}]
    finally:
        otel.uninstrument()
