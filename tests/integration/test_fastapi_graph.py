"""betterall.fastapi.graph_dependency: a ba.Graph class as a FastAPI
dependency, served by uvicorn and called over HTTP with httpx, on both
engines. The graph's inputs are FastAPI parameters (query, path, header,
Depends) with FastAPI's own validation; its tasks run concurrently."""

from __future__ import annotations

import asyncio
import time
import types
import typing
from collections.abc import AsyncIterator
from typing import Annotated, Any

import httpx
import pytest
from fastapi import Depends, FastAPI, Header, HTTPException, Path
from webdemo.servers import serve_uvicorn

import betterall
import betterall._graph
from betterall._engine import engines
from betterall.fastapi import graph_dependency

from .web_helpers import eventually  # noqa: F401  (puts examples/ on sys.path)

DELAY = 0.15  # each task's upstream call


class Database:
    """A stand-in for a connection pool that a dependency provides."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    async def fetch(self, what: str) -> str:
        self.calls.append(what)
        await asyncio.sleep(DELAY)
        return what


DB = Database()


async def get_db() -> Database:
    return DB


class Dashboard(betterall.Graph):
    user_id: Annotated[int, Path(ge=1)]
    token: Annotated[str, Header()]
    db: Annotated[Database, Depends(get_db)]
    theme: str = "light"  # a query parameter with a default

    @betterall.task
    async def user(self) -> dict[str, Any]:
        if self.user_id == 404:
            raise HTTPException(404, f"no user {self.user_id}")
        return {"id": self.user_id, "name": await self.db.fetch("user")}

    @betterall.task
    async def config(self) -> dict[str, str]:
        return {"theme": self.theme, "source": await self.db.fetch("config")}

    @betterall.task
    async def profile(self) -> str:
        user = await self.user
        return f"profile of {user['id']} ({await self.db.fetch('profile')})"


def make_app() -> FastAPI:
    app = FastAPI()

    @app.get("/users/{user_id}/dashboard")
    async def dashboard(
        r: Annotated[betterall.Results[Dashboard], Depends(graph_dependency(Dashboard))],
    ) -> dict[str, Any]:
        return {"user": r[Dashboard.user], "config": r[Dashboard.config], "profile": r[Dashboard.profile]}

    @app.get("/users/{user_id}/settled")
    async def settled(
        r: Annotated[
            betterall.SettledResults[Dashboard],
            Depends(graph_dependency(Dashboard, mode="all_settled")),
        ],
    ) -> dict[str, Any]:
        return {name: dict(outcome) for name, outcome in r.items()}

    return app


@pytest.fixture(autouse=True)
def _class_form_engine(ba: types.SimpleNamespace, monkeypatch: pytest.MonkeyPatch) -> None:
    """Graph runs use the engine under test."""
    monkeypatch.setattr(betterall._graph, "_engine", engines()[ba.ENGINE])


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    DB.calls.clear()
    async with serve_uvicorn(make_app()) as handle:
        async with httpx.AsyncClient(base_url=handle.url) as http:
            yield http


async def test_the_inputs_come_from_the_request_and_the_tasks_run_at_once(client: httpx.AsyncClient) -> None:
    t0 = time.perf_counter()
    response = await client.get("/users/7/dashboard", params={"theme": "dark"}, headers={"token": "t"})
    elapsed = time.perf_counter() - t0
    assert response.status_code == 200, response.text
    assert response.json() == {
        "user": {"id": 7, "name": "user"},
        "config": {"theme": "dark", "source": "config"},
        "profile": "profile of 7 (profile)",
    }
    # The critical path is user -> profile (2 x 0.15 s); config runs beside
    # it. Sequentially the three calls take 0.45 s.
    assert 2 * DELAY <= elapsed < 3 * DELAY, elapsed
    assert sorted(DB.calls) == ["config", "profile", "user"]


async def test_defaults_apply(client: httpx.AsyncClient) -> None:
    response = await client.get("/users/7/dashboard", headers={"token": "t"})
    assert response.json()["config"]["theme"] == "light"


async def test_fastapi_validates_the_inputs_before_the_graph_starts(client: httpx.AsyncClient) -> None:
    response = await client.get("/users/0/dashboard")
    assert response.status_code == 422
    errors = {tuple(e["loc"]): e["type"] for e in response.json()["detail"]}
    assert errors == {("path", "user_id"): "greater_than_equal", ("header", "token"): "missing"}
    assert DB.calls == []  # no task ran


async def test_an_http_exception_of_a_task_is_the_response(client: httpx.AsyncClient) -> None:
    response = await client.get("/users/404/dashboard", headers={"token": "t"})
    assert response.status_code == 404
    assert response.json() == {"detail": "no user 404"}


async def test_all_settled_mode(client: httpx.AsyncClient) -> None:
    response = await client.get("/users/404/settled", headers={"token": "t"})
    assert response.status_code == 200
    body = response.json()
    assert body["config"] == {"status": "fulfilled", "value": {"theme": "light", "source": "config"}}
    assert body["user"]["status"] == "rejected" and body["user"]["reason"]["type"] == "HTTPException"
    assert body["profile"]["status"] == "rejected"


def test_the_dependency_signature_is_the_graphs_inputs() -> None:
    import inspect

    dependency = graph_dependency(Dashboard)
    signature = inspect.signature(dependency)
    assert list(signature.parameters) == ["user_id", "token", "db", "theme"]
    assert signature.parameters["theme"].default == "light"
    token = signature.parameters["token"].annotation  # evaluated, though this module's are strings
    assert typing.get_origin(token) is Annotated and typing.get_args(token)[0] is str
    assert type(typing.get_args(token)[1]).__name__ == "Header"
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in signature.parameters.values())
    assert "Dashboard" in repr(dependency)


def test_bad_arguments() -> None:
    with pytest.raises(TypeError, match="takes a subclass of betterall.Graph, not <class 'int'>"):
        graph_dependency(int)  # type: ignore[type-var]
    with pytest.raises(ValueError, match="mode must be 'all' or 'all_settled', not 'flow'"):
        graph_dependency(Dashboard, mode="flow")  # type: ignore[call-overload]
    with pytest.raises(ValueError, match="timeout must be None or a number of seconds >= 0"):
        graph_dependency(Dashboard, timeout=-1)


def test_an_input_type_that_only_exists_for_type_checkers_is_reported() -> None:
    namespace: dict[str, Any] = {}
    exec(
        "from __future__ import annotations\n"
        "import betterall\n"
        "class Broken(betterall.Graph):\n"
        "    session: OnlyForTypeCheckers\n",
        namespace,
    )
    with pytest.raises(TypeError, match=r"graph_dependency\(Broken\): an input annotation of Broken names"):
        graph_dependency(namespace["Broken"])
