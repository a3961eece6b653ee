"""betterall.fastapi.GraphRoute: a FastAPI route whose dependency tree runs
as one betterall graph per request, served by uvicorn and called over HTTP
with httpx, on both engines. The same app built with FastAPI's own route
class is the reference: same responses, but the dependencies one after
another."""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import threading
import time
import types
from collections.abc import AsyncIterator, Iterator
from typing import Annotated, Any

import httpx
import pytest
from fastapi import (
    APIRouter,
    BackgroundTasks,
    Depends,
    FastAPI,
    Header,
    HTTPException,
    Response,
    Security,
)
from fastapi.routing import APIRoute
from fastapi.security import SecurityScopes
from webdemo.servers import serve_uvicorn

import betterall._graph
from betterall._engine import engines
from betterall.asgi import CancelOnDisconnect
from betterall.fastapi import GraphRoute

from .web_helpers import eventually  # noqa: F401  (puts examples/ on sys.path)

DELAY = 0.15  # each slow dependency's "upstream call"

request_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_var", default="unset")


class Events:
    """What the dependencies did, in order, with the thread they ran on."""

    def __init__(self) -> None:
        self.items: list[str] = []
        self.calls: dict[str, int] = {}
        self.threads: dict[str, int] = {}

    def called(self, name: str) -> None:
        self.items.append(name)
        self.calls[name] = self.calls.get(name, 0) + 1
        self.threads[name] = threading.get_ident()


EVENTS = Events()


# A realistic tree: auth -> user -> permissions; settings and flags on
# their own; a sync "database" call in the thread pool.
async def auth(authorization: Annotated[str, Header()] = "token-1") -> str:
    EVENTS.called("auth")
    await asyncio.sleep(DELAY)
    if authorization == "bad":
        raise HTTPException(401, "bad token")
    return authorization.removeprefix("token-")


async def user(user_id: Annotated[str, Depends(auth)]) -> dict[str, Any]:
    EVENTS.called("user")
    await asyncio.sleep(DELAY)
    return {"id": user_id}


async def permissions(u: Annotated[dict[str, Any], Depends(user)]) -> list[str]:
    EVENTS.called("permissions")
    return ["read"] if u["id"] != "0" else []


async def settings(theme: str = "light") -> dict[str, str]:
    EVENTS.called("settings")
    await asyncio.sleep(DELAY)
    return {"theme": theme}


async def flags() -> list[str]:
    EVENTS.called("flags")
    await asyncio.sleep(DELAY)
    return ["beta"]


def database(limit: int = 3) -> list[int]:
    EVENTS.called("database")
    time.sleep(DELAY)
    return list(range(limit))


async def session() -> AsyncIterator[str]:
    """A yield dependency that scopes a context variable to the request."""
    EVENTS.called("session-enter")
    token = request_var.set("in-session")
    try:
        yield "session-1"
    finally:
        request_var.reset(token)
        EVENTS.called("session-exit")


def sync_session() -> Iterator[str]:
    EVENTS.called("sync-session-enter")
    try:
        yield "sync-session-1"
    finally:
        EVENTS.called("sync-session-exit")


async def sees_session(s: Annotated[str, Depends(session)]) -> str:
    EVENTS.called("sees-session")
    return f"{s}:{request_var.get()}"


async def sets_var() -> str:
    request_var.set("set-by-dependency")
    return "ok"


async def reads_var(_: Annotated[str, Depends(sets_var)]) -> str:
    return request_var.get()


async def yield_reads_var(_: Annotated[str, Depends(sets_var)]) -> AsyncIterator[str]:
    yield request_var.get()


async def fails() -> None:
    EVENTS.called("fails")
    await asyncio.sleep(DELAY / 3)
    raise HTTPException(418, "no coffee")


cancelled: list[str] = []


async def slow() -> str:
    EVENTS.called("slow")
    try:
        await asyncio.sleep(1)
    except asyncio.CancelledError:
        cancelled.append("slow")
        raise
    return "slow"


async def slow_session() -> AsyncIterator[str]:
    """A yield dependency whose set-up takes long (a pool at its limit)."""
    try:
        await asyncio.sleep(1)
    except asyncio.CancelledError:
        cancelled.append("slow_session")
        raise
    yield "never"


class Counter:
    """A class dependency (called with its own parameter)."""

    def __init__(self, step: int = 1) -> None:
        EVENTS.called("Counter")
        self.step = step


def scoped(scopes: SecurityScopes) -> list[str]:
    return scopes.scopes


async def adds_background(tasks: BackgroundTasks, response: Response) -> str:
    response.headers["x-dependency"] = "yes"
    tasks.add_task(EVENTS.called, "background")
    return "ok"


async def counted() -> int:
    EVENTS.called("counted")
    return EVENTS.calls["counted"]


async def function_scoped() -> AsyncIterator[str]:
    EVENTS.called("function-enter")
    try:
        yield "function-scoped"
    finally:
        EVENTS.called("function-exit")


async def limited() -> int:
    EVENTS.called("limited")
    await asyncio.sleep(DELAY)
    return 1


_DEPENDS = inspect.signature(Depends).parameters
NEW_OPTIONS = pytest.mark.skipif(
    not {"scope", "max_concurrency"} <= set(_DEPENDS),
    reason="this FastAPI has no Depends(scope=, max_concurrency=)",
)


if {"scope", "max_concurrency"} <= set(_DEPENDS):
    Limited = Annotated[int, Depends(limited, max_concurrency=1)]  # one limit, shared


def routes(router: APIRouter) -> None:
    @router.get("/dashboard")
    async def dashboard(
        perms: Annotated[list[str], Depends(permissions)],
        u: Annotated[dict[str, Any], Depends(user)],
        s: Annotated[dict[str, str], Depends(settings)],
        f: Annotated[list[str], Depends(flags)],
        rows: Annotated[list[int], Depends(database)],
    ) -> dict[str, Any]:
        return {"user": u, "permissions": perms, "settings": s, "flags": f, "rows": rows}

    @router.get("/session")
    async def with_session(
        seen: Annotated[str, Depends(sees_session)],
        s: Annotated[str, Depends(session)],
        sync: Annotated[str, Depends(sync_session)],
        f: Annotated[list[str], Depends(flags)],
    ) -> dict[str, str]:
        EVENTS.called("endpoint")
        return {"seen": seen, "session": s, "sync": sync, "var": request_var.get()}

    @router.get("/context")
    async def context(
        seen: Annotated[str, Depends(reads_var)], seen_by_yield: Annotated[str, Depends(yield_reads_var)]
    ) -> dict[str, str]:
        return {"dependency": seen, "yield dependency": seen_by_yield, "endpoint": request_var.get()}

    @router.get("/fails")
    async def failing(
        s: Annotated[str, Depends(slow)],
        _: Annotated[None, Depends(fails)],
        session: Annotated[str, Depends(session)],
    ) -> str:
        return "unreachable"

    @router.get("/validation")
    async def validation(
        rows: Annotated[list[int], Depends(database)],
        u: Annotated[dict[str, Any], Depends(user)],
        page: int,
    ) -> int:
        return page

    @router.get("/cache")
    async def cache(
        a: Annotated[int, Depends(counted)],
        b: Annotated[int, Depends(counted)],
        c: Annotated[int, Depends(counted, use_cache=False)],
        counter: Annotated[Counter, Depends()],
    ) -> list[int]:
        return [a, b, c, counter.step]

    @router.get("/security")
    async def security(
        read: Annotated[list[str], Security(scoped, scopes=["items:read"])],
        write: Annotated[list[str], Security(scoped, scopes=["items:write"])],
    ) -> dict[str, list[str]]:
        return {"read": read, "write": write}

    if {"scope", "max_concurrency"} <= set(_DEPENDS):
        @router.get("/scoped")
        async def scoped_route(
            f: Annotated[str, Depends(function_scoped, scope="function")],
            s: Annotated[str, Depends(session, scope="request")],
        ) -> list[str]:
            EVENTS.called("endpoint")
            return [f, s]

        @router.get("/limited")
        async def limited_route(one: Limited, again: Limited) -> int:
            return one + again

    @router.get("/slow")
    async def slow_route(s: Annotated[str, Depends(slow)], f: Annotated[list[str], Depends(flags)]) -> str:
        return s

    @router.get("/slow-session")
    async def slow_session_route(
        s: Annotated[str, Depends(slow_session)], other: Annotated[str, Depends(slow)]
    ) -> str:
        return s

    @router.get("/background", dependencies=[Depends(adds_background)])
    async def background() -> str:
        return "done"


def make_app(route_class: type[APIRoute]) -> FastAPI:
    app = FastAPI()
    router = APIRouter(route_class=route_class)
    routes(router)
    app.include_router(router)
    return app


@pytest.fixture(autouse=True)
def _engine_under_test(ba: types.SimpleNamespace, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(betterall._graph, "_engine", engines()[ba.ENGINE])
    EVENTS.__init__()  # type: ignore[misc]
    cancelled.clear()


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with serve_uvicorn(make_app(GraphRoute)) as handle:
        async with httpx.AsyncClient(base_url=handle.url) as http:
            yield http


@pytest.fixture
async def reference() -> AsyncIterator[httpx.AsyncClient]:
    """The same routes with FastAPI's own APIRoute."""
    async with serve_uvicorn(make_app(APIRoute)) as handle:
        async with httpx.AsyncClient(base_url=handle.url) as http:
            yield http


async def timed_get(http: httpx.AsyncClient, url: str, **options: Any) -> tuple[float, httpx.Response]:
    t0 = time.perf_counter()
    response = await http.get(url, **options)
    return time.perf_counter() - t0, response


async def test_the_request_waits_for_its_critical_path(
    client: httpx.AsyncClient, reference: httpx.AsyncClient
) -> None:
    ours, response = await timed_get(client, "/dashboard", params={"theme": "dark", "limit": 2})
    assert response.status_code == 200, response.text
    theirs, expected = await timed_get(reference, "/dashboard", params={"theme": "dark", "limit": 2})
    assert response.json() == expected.json() == {
        "user": {"id": "1"},
        "permissions": ["read"],
        "settings": {"theme": "dark"},
        "flags": ["beta"],
        "rows": [0, 1],
    }
    # auth -> user is the critical path (2 x DELAY); FastAPI awaits all five
    # slow calls one after another (5 x DELAY).
    assert ours < 3.5 * DELAY, ours
    assert theirs >= 5 * DELAY, theirs


async def test_each_dependency_runs_once_and_sync_ones_in_the_thread_pool(client: httpx.AsyncClient) -> None:
    response = await client.get("/dashboard")
    assert response.status_code == 200, response.text
    assert EVENTS.calls == {
        "auth": 1, "user": 1, "permissions": 1, "settings": 1, "flags": 1, "database": 1
    }
    assert EVENTS.threads["database"] != EVENTS.threads["auth"]
    # A dependency starts once its own sub-dependencies are done, not later.
    assert EVENTS.items.index("user") > EVENTS.items.index("auth")
    assert EVENTS.items.index("permissions") > EVENTS.items.index("user")


async def test_cache_use_cache_false_and_class_dependencies_as_fastapi(
    client: httpx.AsyncClient, reference: httpx.AsyncClient
) -> None:
    response = await client.get("/cache", params={"step": 5})
    EVENTS.__init__()  # type: ignore[misc]
    expected = await reference.get("/cache", params={"step": 5})
    assert response.status_code == 200, response.text
    assert response.json() == expected.json() == [1, 1, 2, 5]


async def test_yield_dependencies_around_the_response(
    client: httpx.AsyncClient, reference: httpx.AsyncClient
) -> None:
    response = await client.get("/session")
    assert response.status_code == 200, response.text
    assert response.json() == {
        "seen": "session-1:in-session",  # a dependent sees the variable it set
        "session": "session-1",
        "sync": "sync-session-1",
        "var": "in-session",  # the endpoint too
    }
    await eventually(lambda: "session-exit" in EVENTS.items, "the clean-up")
    order = EVENTS.items
    assert order.index("session-enter") < order.index("sees-session") < order.index("endpoint")
    assert order.index("endpoint") < order.index("session-exit")
    assert order.index("endpoint") < order.index("sync-session-exit")
    assert EVENTS.calls["session-enter"] == EVENTS.calls["session-exit"] == 1
    expected = await reference.get("/session")
    assert expected.json() == response.json()


async def test_a_dependencys_context_changes_reach_its_dependents_and_the_endpoint(
    client: httpx.AsyncClient, reference: httpx.AsyncClient
) -> None:
    response = await client.get("/context")
    expected = await reference.get("/context")
    assert response.json() == expected.json() == {
        "dependency": "set-by-dependency",
        "yield dependency": "set-by-dependency",
        "endpoint": "set-by-dependency",
    }


async def test_an_http_exception_is_the_response_and_the_others_are_cancelled(
    client: httpx.AsyncClient, reference: httpx.AsyncClient
) -> None:
    elapsed, response = await timed_get(client, "/fails")
    assert (response.status_code, response.json()) == (418, {"detail": "no coffee"})
    assert cancelled == ["slow"]  # it was running, and did not run on
    assert elapsed < 0.8, elapsed
    # The yield dependency entered meanwhile is cleaned up as FastAPI does.
    await eventually(lambda: "session-exit" in EVENTS.items, "the clean-up")
    assert EVENTS.calls["session-enter"] == EVENTS.calls["session-exit"] == 1
    expected = await reference.get("/fails")
    assert (expected.status_code, expected.json()) == (418, {"detail": "no coffee"})


async def test_an_invalid_request_gets_fastapis_own_answer(
    client: httpx.AsyncClient, reference: httpx.AsyncClient
) -> None:
    """A request with an invalid parameter is resolved by FastAPI's own
    resolver: the same 422 with every error, and, where a dependency that
    can run fails first (an authentication check), its error instead."""
    params = {"limit": "many", "page": "first"}
    response = await client.get("/validation", params=params)
    ran = dict(EVENTS.calls)
    EVENTS.__init__()  # type: ignore[misc]
    expected = await reference.get("/validation", params=params)
    assert response.status_code == expected.status_code == 422
    assert response.json() == expected.json()
    assert [e["loc"] for e in response.json()["detail"]] == [["query", "limit"], ["query", "page"]]
    assert ran == EVENTS.calls == {"auth": 1, "user": 1}  # what FastAPI runs: the valid ones

    headers = {"authorization": "bad"}
    response = await client.get("/validation", params=params, headers=headers)
    expected = await reference.get("/validation", params=params, headers=headers)
    assert (response.status_code, response.json()) == (expected.status_code, expected.json()) == (
        401, {"detail": "bad token"}
    )


async def test_security_scopes(client: httpx.AsyncClient, reference: httpx.AsyncClient) -> None:
    response = await client.get("/security")
    expected = await reference.get("/security")
    assert response.json() == expected.json() == {"read": ["items:read"], "write": ["items:write"]}


async def test_response_and_background_tasks_of_a_dependency(client: httpx.AsyncClient) -> None:
    response = await client.get("/background")
    assert response.status_code == 200
    assert response.headers["x-dependency"] == "yes"
    await eventually(lambda: "background" in EVENTS.items, "the background task")


async def test_overrides_are_followed_and_changes_to_them_seen() -> None:
    app = make_app(GraphRoute)

    async def fake_auth(who: str = "tester") -> str:
        return who

    async with serve_uvicorn(app) as handle, httpx.AsyncClient(base_url=handle.url) as http:
        app.dependency_overrides[auth] = fake_auth
        response = await http.get("/dashboard", params={"who": "7"})
        assert response.json()["user"] == {"id": "7"}
        assert "auth" not in EVENTS.calls
        app.dependency_overrides.clear()
        response = await http.get("/dashboard")
        assert response.json()["user"] == {"id": "1"}
        assert EVENTS.calls["auth"] == 1


@pytest.mark.parametrize(
    ("path", "stopped"),
    [
        ("/slow", ["slow"]),
        # The request's task is entering the yield dependency when it is cancelled.
        ("/slow-session", ["slow", "slow_session"]),
    ],
)
async def test_a_client_that_leaves_cancels_the_graph(path: str, stopped: list[str]) -> None:
    async with serve_uvicorn(CancelOnDisconnect(make_app(GraphRoute))) as handle:
        async with httpx.AsyncClient(base_url=handle.url, timeout=httpx.Timeout(5, read=0.2)) as http:
            with pytest.raises(httpx.ReadTimeout):
                await http.get(path)
        await eventually(lambda: sorted(cancelled) == stopped, "the cancellation", timeout=0.7)


async def test_debug_charts_the_request(caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]) -> None:
    traces: list[Any] = []

    class Traced(GraphRoute):
        debug = staticmethod(traces.append)

    class Charted(GraphRoute):
        debug = True

    for route_class in (Traced, Charted):
        async with serve_uvicorn(make_app(route_class)) as handle, httpx.AsyncClient(base_url=handle.url) as http:
            assert (await http.get("/dashboard")).status_code == 200
    (trace,) = traces
    assert list(trace.tasks) == ["permissions", "user", "auth", "settings", "flags", "database"]
    assert trace.critical_path() == ["auth", "user", "permissions"]
    assert trace.tasks["user"].deps == ("auth",)
    assert "GET /dashboard" in capsys.readouterr().err


def test_bad_class_options_are_reported_when_the_route_is_made() -> None:
    class Bad(GraphRoute):
        timeout = -1

    router = APIRouter(route_class=Bad)
    with pytest.raises(ValueError, match="timeout"):
        router.add_api_route("/x", lambda: None)

    class Worse(GraphRoute):
        debug = 3  # type: ignore[assignment]

    router = APIRouter(route_class=Worse)
    with pytest.raises(TypeError, match="debug"):
        router.add_api_route("/x", lambda: None)


async def test_other_routes_keep_fastapis_resolver() -> None:
    app = FastAPI()
    solved: list[Any] = []

    @app.get("/plain")
    async def plain(s: Annotated[dict[str, str], Depends(settings)], f: Annotated[list[str], Depends(flags)]) -> str:
        solved.append((s, f))
        return "plain"

    router = APIRouter(route_class=GraphRoute)
    routes(router)
    app.include_router(router)
    async with serve_uvicorn(app) as handle, httpx.AsyncClient(base_url=handle.url) as http:
        elapsed, response = await timed_get(http, "/plain")
        assert response.json() == "plain"
        assert elapsed >= 2 * DELAY  # one after the other: FastAPI's own resolver
        elapsed, response = await timed_get(http, "/dashboard")
        assert response.status_code == 200 and elapsed < 3.5 * DELAY



@NEW_OPTIONS
async def test_function_scoped_yield_dependencies_end_before_the_response(
    client: httpx.AsyncClient, reference: httpx.AsyncClient
) -> None:
    for http in (client, reference):
        EVENTS.__init__()  # type: ignore[misc]
        response = await http.get("/scoped")
        assert response.json() == ["function-scoped", "session-1"]
        # Ended before the response was sent, so before the client has it.
        assert EVENTS.items.index("endpoint") < EVENTS.items.index("function-exit")
        await eventually(lambda: "session-exit" in EVENTS.items, "the request-scoped clean-up")


@NEW_OPTIONS
async def test_max_concurrency_holds_across_requests(client: httpx.AsyncClient) -> None:
    t0 = time.perf_counter()
    responses = await asyncio.gather(*(client.get("/limited") for _ in range(3)))
    elapsed = time.perf_counter() - t0
    assert [r.json() for r in responses] == [2, 2, 2]
    assert EVENTS.calls["limited"] == 3  # once per request: the cached value
    assert elapsed >= 3 * DELAY * 0.9, elapsed  # one at a time


def test_an_older_fastapi_is_refused_when_the_route_is_made(monkeypatch: pytest.MonkeyPatch) -> None:
    """FastAPI before 0.115 returns a bare tuple from its resolver: GraphRoute
    says so rather than fail on the first request."""
    import fastapi.dependencies.utils

    monkeypatch.delattr(fastapi.dependencies.utils, "SolvedDependency")
    router = APIRouter(route_class=GraphRoute)
    with pytest.raises(RuntimeError, match="needs FastAPI 0.115 or newer"):
        router.add_api_route("/x", flags)


def test_a_request_served_by_trio_is_resolved_by_fastapi() -> None:
    """betterall runs on asyncio; under Trio (AnyIO's other backend) a
    GraphRoute's request goes to FastAPI's own resolver and gets the same
    answer, with no graph made (none left unawaited either)."""
    trio = pytest.importorskip("trio")
    import anyio

    app = make_app(GraphRoute)

    async def main() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            return await http.get("/cache", params={"step": 5})  # no asyncio in its dependencies

    response = anyio.run(main, backend="trio")
    assert trio is not None
    assert response.status_code == 200, response.text
    assert response.json() == [1, 1, 2, 5]
