"""betterall in aiohttp.web handlers, calling a real upstream with aiohttp's client.

    python examples/aiohttp_app.py

starts the fake upstream and this app on free loopback ports, times the
naive, betterall and hand-optimised handlers over real HTTP, prints the
results and exits. ``make_app()`` builds the app for other uses;
``gunicorn_app()`` is the entry point for gunicorn's aiohttp worker
(see docs/web.md).

Routes: those of ``starlette_app.py``.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from aiohttp import web

import betterall
from webdemo.clients import AiohttpUpstream, UpstreamError, request_id
from webdemo.handlers import PATTERNS, VARIANTS, Handlers

HANDLERS = web.AppKey("handlers", Handlers)
UPSTREAM = web.AppKey("upstream", AiohttpUpstream)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def request_id_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The request's ``X-Request-ID`` (or a new id) in the ``request_id``
    context variable while the handler runs, and in the response."""
    rid = request.headers.get("X-Request-ID") or uuid.uuid4().hex[:16]
    token = request_id.set(rid)
    try:
        response = await handler(request)
    finally:
        request_id.reset(token)
    response.headers["X-Request-ID"] = rid
    return response


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Upstream errors become 502, passed deadlines 504."""
    try:
        return await handler(request)
    except UpstreamError as exc:
        return web.json_response({"error": "bad gateway", "detail": str(exc)}, status=502)
    except TimeoutError:
        return web.json_response({"error": "gateway timeout"}, status=504)


def _seconds(request: web.Request, name: str, default: float | None) -> float | None:
    """The query parameter ``name`` as a number of seconds >= 0 (400 if it is not one)."""
    text = request.query.get(name)
    if text is None:
        return default
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value >= 0:
        raise web.HTTPBadRequest(text=f"{name} must be a number of seconds")
    return value


def make_app(upstream_url: str | None = None, *, ba: Any = betterall, trace: Any = None) -> web.Application:
    """The app; the arguments are those of ``starlette_app.make_app``."""
    upstream_url = upstream_url or os.environ["UPSTREAM_URL"]
    app = web.Application(middlewares=[request_id_middleware, error_middleware])

    async def upstream_client(app: web.Application) -> AsyncIterator[None]:
        # One client session (one connection pool) for the whole app.
        async with AiohttpUpstream(upstream_url) as upstream:
            app[UPSTREAM] = upstream
            app[HANDLERS] = Handlers(upstream, ba=ba, trace=trace)
            yield

    app.cleanup_ctx.append(upstream_client)

    def endpoint(method_name: str) -> Handler:
        async def handle(request: web.Request) -> web.StreamResponse:
            return web.json_response(await getattr(request.app[HANDLERS], method_name)())

        return handle

    async def dashboard_with_deadline(request: web.Request) -> web.StreamResponse:
        timeout = _seconds(request, "timeout", None)
        return web.json_response(await request.app[HANDLERS].dashboard_betterall(timeout=timeout))

    async def partial_dashboard(request: web.Request) -> web.StreamResponse:
        budget = _seconds(request, "budget", 0.25)
        assert budget is not None
        return web.json_response(await request.app[HANDLERS].dashboard_partial(budget))

    async def article(request: web.Request) -> web.StreamResponse:
        try:
            article_id = int(request.match_info["article_id"])
        except ValueError:
            raise web.HTTPNotFound() from None
        return web.json_response(await request.app[HANDLERS].article(article_id))

    async def healthz(request: web.Request) -> web.StreamResponse:
        return web.json_response({"ok": True})

    for pattern in PATTERNS:
        for variant in VARIANTS:
            if (pattern, variant) != ("dashboard", "betterall"):
                app.router.add_get(f"/{variant}/{pattern}", endpoint(f"{pattern}_{variant}"))
    app.router.add_get("/betterall/dashboard", dashboard_with_deadline)
    app.router.add_get("/partial/dashboard", partial_dashboard)
    app.router.add_get("/articles/{article_id}", article)
    app.router.add_get("/healthz", healthz)
    return app


async def gunicorn_app() -> web.AppRunner:
    """For ``gunicorn aiohttp_app:gunicorn_app --worker-class aiohttp.GunicornWebWorker``:
    the worker uses the runner it is given, so handler cancellation stays on."""
    return web.AppRunner(make_app(), handler_cancellation=True)


def main() -> None:
    from webdemo.demo import run_demo
    from webdemo.servers import serve_aiohttp

    def serve(upstream_url: str) -> Any:
        # handler_cancellation=True: a client that disconnects cancels its
        # handler, and so the betterall graph and its upstream calls.
        return serve_aiohttp(make_app(upstream_url), handler_cancellation=True)

    run_demo("aiohttp.web, aiohttp's client to the upstream", serve)


if __name__ == "__main__":
    main()
