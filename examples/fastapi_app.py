"""betterall in FastAPI endpoints, served by uvicorn, calling a real upstream with aiohttp's client.

    python examples/fastapi_app.py

starts the fake upstream and this app on free loopback ports, times the
naive, betterall and hand-optimised handlers over real HTTP, prints the
results and exits. ``make_app()`` builds the app for other uses (see
docs/web.md).

The routes are those of ``starlette_app.py``; the handlers get their
``Handlers`` object through a dependency, and FastAPI parses the query
parameters. ``/typed/dashboard`` is the dashboard declared once as a
``betterall.Graph`` class and taken by the route as a dependency, with typed
results (``betterall.fastapi.graph_dependency``). ``/depends/fastapi/account``
and ``/depends/betterall/account`` are one route written with plain
``Depends`` (auth -> user -> permissions, settings, feature flags, recent
posts), under FastAPI's resolver and under ``betterall.fastapi.GraphRoute``
(docs/fastapi.md). The upstream client is aiohttp's by default
(``client="httpx"`` for httpx's, as in ``starlette_app.py``), which costs less
CPU time per call (see docs/web.md).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Header, Query, Request
from fastapi.responses import JSONResponse

import betterall
from betterall.asgi import CancelOnDisconnect
from betterall.fastapi import GraphRoute, graph_dependency
from starlette_app import RequestIdMiddleware
from webdemo.clients import CLIENTS, UpstreamError
from webdemo.handlers import Handlers


def get_handlers(request: Request) -> Handlers:
    return request.app.state.handlers


HandlersDep = Annotated[Handlers, Depends(get_handlers)]


def get_upstream(request: Request) -> Any:
    return request.app.state.upstream


class Dashboard(betterall.Graph):
    """The dashboard of ``Handlers.dashboard_betterall``, declared once: its
    input comes from a FastAPI dependency, its tasks' results are typed."""

    upstream: Annotated[Any, Depends(get_upstream)]

    @betterall.task
    async def user(self) -> dict[str, Any]:
        return await self.upstream.get_json("/users/me")  # type: ignore[no-any-return]

    @betterall.task
    async def config(self) -> dict[str, Any]:
        return await self.upstream.get_json("/config")  # type: ignore[no-any-return]

    @betterall.task
    async def profile(self) -> dict[str, Any]:
        user = await self.user  # waits for `user` only, not for `config`
        return await self.upstream.get_json(f"/profiles/{user['id']}")  # type: ignore[no-any-return]


# -- a dependency tree in plain FastAPI -----------------------------------------
# The same functions serve both routers; only the route class differs.

Upstream = Annotated[Any, Depends(get_upstream)]


async def auth(upstream: Upstream, authorization: Annotated[str, Header()] = "Bearer demo") -> int:
    """Who the token belongs to (50 ms upstream)."""
    me = await upstream.get_json("/users/me")
    return int(me["id"])


async def current_user(upstream: Upstream, user_id: Annotated[int, Depends(auth)]) -> dict[str, Any]:
    """The user's profile (150 ms), once auth is known."""
    return await upstream.get_json(f"/profiles/{user_id}")  # type: ignore[no-any-return]


async def permissions(user: Annotated[dict[str, Any], Depends(current_user)]) -> list[str]:
    """Computed from the profile: no I/O."""
    return ["read", "write"] if "graphs" in user["bio"] else ["read"]


async def settings(upstream: Upstream) -> dict[str, Any]:
    return await upstream.get_json("/config")  # type: ignore[no-any-return]  (200 ms)


async def feature_flags(upstream: Upstream) -> list[str]:
    return await upstream.get_json("/trending")  # type: ignore[no-any-return]  (200 ms)


async def recent_posts(upstream: Upstream, user_id: Annotated[int, Depends(auth)]) -> list[dict[str, Any]]:
    return await upstream.get_json(f"/users/{user_id}/posts")  # type: ignore[no-any-return]  (50 ms)


def account_routes(router: APIRouter) -> APIRouter:
    @router.get("/account")
    async def account(
        user: Annotated[dict[str, Any], Depends(current_user)],
        allowed: Annotated[list[str], Depends(permissions)],
        config: Annotated[dict[str, Any], Depends(settings)],
        flags: Annotated[list[str], Depends(feature_flags)],
        posts: Annotated[list[dict[str, Any]], Depends(recent_posts)],
    ) -> dict[str, Any]:
        return {"user": user, "permissions": allowed, "config": config, "flags": flags, "posts": posts}

    return router


def make_app(
    upstream_url: str | None = None,
    *,
    ba: Any = betterall,
    trace: Any = None,
    client: str = "aiohttp",
    cancel_on_disconnect: bool = True,
) -> FastAPI:
    """The app; the arguments are those of ``starlette_app.make_app``."""
    upstream_url = upstream_url or os.environ["UPSTREAM_URL"]
    client_class = CLIENTS[client]

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with client_class(upstream_url) as upstream:
            app.state.upstream = upstream
            app.state.handlers = Handlers(upstream, ba=ba, trace=trace)
            yield

    app = FastAPI(lifespan=lifespan, openapi_url=None, docs_url=None, redoc_url=None)
    app.add_middleware(RequestIdMiddleware)
    if cancel_on_disconnect:
        # Added last, so outermost: a client that hangs up cancels the handler.
        app.add_middleware(CancelOnDisconnect)

    @app.exception_handler(UpstreamError)
    async def upstream_failed(request: Request, exc: UpstreamError) -> JSONResponse:
        return JSONResponse({"error": "bad gateway", "detail": str(exc)}, status_code=502)

    @app.exception_handler(TimeoutError)
    async def deadline_passed(request: Request, exc: TimeoutError) -> JSONResponse:
        return JSONResponse({"error": "gateway timeout"}, status_code=504)

    # -- the dashboard ----------------------------------------------------------

    @app.get("/naive/dashboard")
    async def dashboard_naive(handlers: HandlersDep) -> dict[str, Any]:
        return await handlers.dashboard_naive()

    @app.get("/betterall/dashboard")
    async def dashboard_betterall(
        handlers: HandlersDep, timeout: Annotated[float | None, Query(ge=0)] = None
    ) -> dict[str, Any]:
        return await handlers.dashboard_betterall(timeout=timeout)

    @app.get("/hand/dashboard")
    async def dashboard_hand(handlers: HandlersDep) -> dict[str, Any]:
        return await handlers.dashboard_hand()

    # A dependency made here, with this app's trace hook: it goes in the
    # parameter's default, which Python evaluates here, because FastAPI
    # evaluates string annotations (this module's) in the module's globals.
    dashboard_graph = Depends(graph_dependency(Dashboard, debug=trace or False))

    @app.get("/typed/dashboard")
    async def dashboard_typed(r: betterall.Results[Dashboard] = dashboard_graph) -> dict[str, Any]:
        return {"user": r[Dashboard.user], "config": r[Dashboard.config], "profile": r[Dashboard.profile]}

    # -- the feed -----------------------------------------------------------------

    @app.get("/naive/feed")
    async def feed_naive(handlers: HandlersDep) -> dict[str, Any]:
        return await handlers.feed_naive()

    @app.get("/betterall/feed")
    async def feed_betterall(handlers: HandlersDep) -> dict[str, Any]:
        return await handlers.feed_betterall()

    @app.get("/hand/feed")
    async def feed_hand(handlers: HandlersDep) -> dict[str, Any]:
        return await handlers.feed_hand()

    # -- budgets and caches ----------------------------------------------------------

    @app.get("/partial/dashboard")
    async def partial_dashboard(handlers: HandlersDep, budget: Annotated[float, Query(ge=0)] = 0.25) -> dict[str, Any]:
        return await handlers.dashboard_partial(budget)

    @app.get("/articles/{article_id}")
    async def article(handlers: HandlersDep, article_id: int) -> dict[str, Any]:
        return await handlers.article(article_id)

    # -- the dependency tree: FastAPI's resolver, then betterall's -------------------
    # FastAPI awaits the five upstream calls one after another (650 ms); with
    # GraphRoute the request takes its critical path (200 ms).

    app.include_router(account_routes(APIRouter(prefix="/depends/fastapi")))
    app.include_router(account_routes(APIRouter(prefix="/depends/betterall", route_class=GraphRoute)))

    @app.get("/healthz")
    async def healthz() -> dict[str, bool]:
        return {"ok": True}

    return app


def main() -> None:
    from webdemo.demo import run_demo
    from webdemo.servers import serve_uvicorn

    def serve(upstream_url: str) -> Any:
        return serve_uvicorn(make_app(upstream_url))

    run_demo("FastAPI on uvicorn, aiohttp's client to the upstream", serve)


if __name__ == "__main__":
    main()
