"""betterall.otel in a real app: Starlette (and FastAPI with GraphRoute) on
uvicorn, traced by OpenTelemetry's own ASGI instrumentation, called over
HTTP with httpx: the graph's task spans hang under the request's span."""

from __future__ import annotations

import asyncio
import types
from collections.abc import Iterator
from typing import Annotated, Any

import httpx
import pytest

pytest.importorskip("opentelemetry.sdk")
pytest.importorskip("opentelemetry.instrumentation.asgi")

from fastapi import APIRouter, Depends, FastAPI  # noqa: E402
from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware  # noqa: E402
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import SimpleSpanProcessor  # noqa: E402
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter  # noqa: E402
from starlette.applications import Starlette  # noqa: E402
from starlette.requests import Request  # noqa: E402
from starlette.responses import JSONResponse  # noqa: E402
from starlette.routing import Route  # noqa: E402
from webdemo.servers import serve_uvicorn  # noqa: E402

import betterall  # noqa: E402
import betterall._graph  # noqa: E402
from betterall import otel  # noqa: E402
from betterall._engine import engines  # noqa: E402
from betterall.fastapi import GraphRoute  # noqa: E402

from .web_helpers import eventually  # noqa: E402

DELAY = 0.05


@pytest.fixture
def provider() -> Iterator[tuple[TracerProvider, InMemorySpanExporter]]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    otel.instrument(tracer_provider=provider)
    try:
        yield provider, exporter
    finally:
        otel.uninstrument()


def tree(spans: tuple[ReadableSpan, ...], root: ReadableSpan) -> dict[str, Any]:
    """The names under ``root``, as nested dicts."""
    assert root.context is not None
    children = [s for s in spans if s.parent is not None and s.parent.span_id == root.context.span_id]
    return {s.name: tree(spans, s) for s in sorted(children, key=lambda s: s.name)}


async def test_task_spans_hang_under_the_request_span(
    ba: types.SimpleNamespace, provider: tuple[TracerProvider, InMemorySpanExporter]
) -> None:
    tracer_provider, exporter = provider
    traced_all = otel._traced(ba.all, "all")

    async def dashboard(request: Request) -> JSONResponse:
        async def user() -> str:
            await asyncio.sleep(DELAY)
            return "ada"

        async def profile(self: Any) -> str:
            with tracer_provider.get_tracer("app").start_as_current_span("db query"):
                return f"profile of {await self.user}"

        return JSONResponse(await traced_all({"user": user, "profile": profile}))

    app = OpenTelemetryMiddleware(Starlette(routes=[Route("/dashboard", dashboard)]), tracer_provider=tracer_provider)
    async with serve_uvicorn(app) as handle, httpx.AsyncClient(base_url=handle.url) as http:
        responses = await asyncio.gather(*(http.get("/dashboard") for _ in range(3)))
    assert [r.json() for r in responses] == 3 * [{"user": "ada", "profile": "profile of ada"}]
    spans = exporter.get_finished_spans()
    requests = [s for s in spans if s.parent is None]
    assert len(requests) == 3
    for request_span in requests:
        assert request_span.name == "GET /dashboard"
        graph = tree(spans, request_span)
        # The ASGI instrumentation's own send spans sit beside the call.
        assert graph["betterall.all"] == {"profile": {"db query": {}}, "user": {}}


async def auth() -> str:
    await asyncio.sleep(DELAY)
    return "token"


async def user(token: Annotated[str, Depends(auth)]) -> str:
    return f"user of {token}"


async def test_graph_route_dependencies_are_spans(
    ba: types.SimpleNamespace,
    provider: tuple[TracerProvider, InMemorySpanExporter],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    tracer_provider, exporter = provider
    monkeypatch.setattr(betterall._graph, "_engine", otel._TracedEngine(engines()[ba.ENGINE]))
    router = APIRouter(route_class=GraphRoute)

    @router.get("/me")
    async def me(u: Annotated[str, Depends(user)], again: Annotated[str, Depends(auth)]) -> str:
        return u

    fastapi_app = FastAPI()
    fastapi_app.include_router(router)
    app = OpenTelemetryMiddleware(fastapi_app, tracer_provider=tracer_provider)
    async with serve_uvicorn(app) as handle, httpx.AsyncClient(base_url=handle.url) as http:
        assert (await http.get("/me")).json() == "user of token"
    spans = exporter.get_finished_spans()
    await eventually(lambda: any(s.parent is None for s in exporter.get_finished_spans()), "the request span")
    (request_span,) = [s for s in exporter.get_finished_spans() if s.parent is None]
    graph = tree(exporter.get_finished_spans(), request_span)
    assert graph["betterall.all"] == {"auth": {}, "user": {}}
    user_span = next(s for s in spans if s.name == "user")
    assert user_span.attributes["betterall.task.deps"] == ("auth",)  # type: ignore[index]
