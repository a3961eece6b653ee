"""betterall in Starlette handlers, served by uvicorn, calling a real upstream with httpx.

    python examples/starlette_app.py

starts the fake upstream and this app on free loopback ports, times the
naive, betterall and hand-optimised handlers over real HTTP, prints the
results and exits. ``make_app()`` builds the app for other uses, e.g.
``uvicorn --factory 'starlette_app:make_app'`` with ``UPSTREAM_URL`` set
(see docs/web.md).

Routes: ``/{naive,betterall,hand}/{dashboard,feed}``, ``/partial/dashboard``
(``?budget=`` seconds), ``/articles/{id}``, ``/healthz``.
``/betterall/dashboard?timeout=0.1`` gives the graph a deadline (504 when it
passes).
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

import betterall
from betterall.asgi import CancelOnDisconnect
from webdemo.clients import CLIENTS, UpstreamError, request_id
from webdemo.handlers import PATTERNS, VARIANTS, Handlers


class RequestIdMiddleware:
    """Pure ASGI middleware: the request's ``X-Request-ID`` (or a new id) goes
    into the ``request_id`` context variable for the whole request, and back
    in the response headers."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        rid = headers.get(b"x-request-id", b"").decode("latin-1") or uuid.uuid4().hex[:16]

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), (b"x-request-id", rid.encode("latin-1"))]
            await send(message)

        token = request_id.set(rid)
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            request_id.reset(token)


def _seconds(request: Request, name: str, default: float | None) -> float | None:
    """The query parameter ``name`` as a number of seconds >= 0 (400 if it is not one)."""
    text = request.query_params.get(name)
    if text is None:
        return default
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value >= 0:
        raise HTTPException(400, f"{name} must be a number of seconds")
    return value


def make_app(
    upstream_url: str | None = None,
    *,
    ba: Any = betterall,
    trace: Any = None,
    client: str = "httpx",
    cancel_on_disconnect: bool = True,
) -> Starlette:
    """The app. ``ba`` provides ``all``/``all_settled``/``flow`` (the
    ``betterall`` module by default); ``trace`` is given to every graph as
    ``debug=``. The upstream is ``upstream_url``, else ``$UPSTREAM_URL``,
    called with ``client`` (``"httpx"`` or ``"aiohttp"``). With
    ``cancel_on_disconnect`` (the default) a handler whose client hangs up is
    cancelled, graph and upstream calls included (``betterall.asgi``)."""
    upstream_url = upstream_url or os.environ["UPSTREAM_URL"]
    client_class = CLIENTS[client]

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # One client (one connection pool) for the whole app, closed at shutdown.
        async with client_class(upstream_url) as upstream:
            app.state.upstream = upstream
            app.state.handlers = Handlers(upstream, ba=ba, trace=trace)
            yield

    def handlers(request: Request) -> Handlers:
        return request.app.state.handlers

    def endpoint(method_name: str) -> Any:
        async def handle(request: Request) -> JSONResponse:
            return JSONResponse(await getattr(handlers(request), method_name)())

        handle.__name__ = method_name
        return handle

    async def dashboard_with_deadline(request: Request) -> JSONResponse:
        timeout = _seconds(request, "timeout", None)
        return JSONResponse(await handlers(request).dashboard_betterall(timeout=timeout))

    async def partial_dashboard(request: Request) -> JSONResponse:
        budget = _seconds(request, "budget", 0.25)
        assert budget is not None
        return JSONResponse(await handlers(request).dashboard_partial(budget))

    async def article(request: Request) -> JSONResponse:
        return JSONResponse(await handlers(request).article(request.path_params["article_id"]))

    async def healthz(request: Request) -> JSONResponse:
        return JSONResponse({"ok": True})

    async def upstream_failed(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"error": "bad gateway", "detail": str(exc)}, status_code=502)

    async def deadline_passed(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"error": "gateway timeout"}, status_code=504)

    routes = [
        Route(f"/{variant}/{pattern}", endpoint(f"{pattern}_{variant}"))
        for pattern in PATTERNS
        for variant in VARIANTS
        if (pattern, variant) != ("dashboard", "betterall")
    ]
    routes += [
        Route("/betterall/dashboard", dashboard_with_deadline),
        Route("/partial/dashboard", partial_dashboard),
        Route("/articles/{article_id:int}", article),
        Route("/healthz", healthz),
    ]
    return Starlette(
        routes=routes,
        middleware=[
            *([Middleware(CancelOnDisconnect)] if cancel_on_disconnect else []),
            Middleware(RequestIdMiddleware),
        ],
        exception_handlers={UpstreamError: upstream_failed, TimeoutError: deadline_passed},
        lifespan=lifespan,
    )


def main() -> None:
    from webdemo.demo import run_demo
    from webdemo.servers import serve_uvicorn

    def serve(upstream_url: str) -> Any:
        return serve_uvicorn(make_app(upstream_url))

    run_demo("Starlette on uvicorn, httpx to the upstream", serve)


if __name__ == "__main__":
    main()
