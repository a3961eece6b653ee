"""Patterns of docs/web.md over real HTTP: time budgets with all_settled,
fallbacks, per-request deadlines, cache-first with flow, and what a client
disconnect does. Each test uses one framework (the patterns are the same code
in all three) and runs for each engine and event loop.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import httpx
import pytest
from webdemo.clients import tls_context
from webdemo.handlers import FALLBACKS
from webdemo.upstream import POSTS_PER_USER, Upstream

from .web_helpers import FAST, AppServer, eventually, timed


def _statuses(trace: Any) -> dict[str, str]:
    return {name: t.status for name, t in trace.tasks.items()}


@pytest.mark.parametrize("framework", ["starlette"])
@pytest.mark.parametrize("latencies", [{**FAST, "recommendations": 5.0}])
async def test_time_budget_returns_what_arrived_and_cancels_the_rest(
    app_server: AppServer, http: httpx.AsyncClient, upstream: Upstream, traces: list[Any]
) -> None:
    """all_settled with timeout=: the response comes at the budget, with a fallback for the late part."""
    # The budget leaves the 10 ms parts ample room on a loaded machine (a CI
    # run once needed 650 ms for them); the late part takes five times longer.
    elapsed, response = await timed(http.get("/partial/dashboard", params={"budget": 1.0}))
    assert response.status_code == 200
    body = response.json()
    assert 1.0 <= elapsed < 3.0  # at the budget, long before the recommendations (5 s)
    assert body["user"]["id"] == 7 and body["profile"]["user_id"] == 7 and body["config"]["theme"] == "dark"
    assert body["recommendations"] == FALLBACKS["recommendations"]
    assert body["degraded"] == {"recommendations": "timeout"}
    await eventually(lambda: upstream.in_flight == 0, "the upstream has no call in flight")
    late = upstream.stats["recommendations"]
    assert (late.started, late.cancelled, late.completed) == (1, 1, 0)
    (trace,) = traces
    assert _statuses(trace) == {
        "user": "fulfilled",
        "config": "fulfilled",
        "profile": "fulfilled",
        "recommendations": "cancelled",
    }


@pytest.mark.parametrize("framework", ["fastapi"])
async def test_time_budget_falls_back_on_a_failed_part_without_waiting(
    app_server: AppServer, http: httpx.AsyncClient, upstream: Upstream
) -> None:
    """all_settled: a failed part gets its fallback; the siblings still answer and nobody waits for the budget."""
    upstream.failures.add("config")
    elapsed, response = await timed(http.get("/partial/dashboard", params={"budget": 4.0}))
    assert response.status_code == 200
    body = response.json()
    assert elapsed < 2.0  # long before the budget
    assert body["config"] == FALLBACKS["config"]
    assert body["degraded"] == {"config": "error"}
    assert body["profile"]["user_id"] == 7
    assert [r["id"] for r in body["recommendations"]] == [901, 902]


@pytest.mark.parametrize("framework", ["fastapi"])
@pytest.mark.parametrize("latencies", [{**FAST, "config": 3.0, "profile": 3.0}])
async def test_graph_deadline_becomes_504_and_cancels_the_calls(
    app_server: AppServer, http: httpx.AsyncClient, upstream: Upstream, traces: list[Any]
) -> None:
    """ba.all(timeout=) shorter than the critical path: a 504 at the deadline, no call left in flight."""
    elapsed, response = await timed(http.get("/betterall/dashboard", params={"timeout": 0.1}))  # needs 3 s
    assert response.status_code == 504
    assert response.json() == {"error": "gateway timeout"}
    # At the deadline, long before the graph could finish (a loaded CI machine
    # has taken 0.79 s to answer, cancellations included).
    assert 0.1 <= elapsed < 2.0
    await eventually(lambda: upstream.in_flight == 0, "the upstream has no call in flight")
    assert app_server.upstream_client.in_flight == 0
    for name in ("config", "profile"):  # whatever reached the upstream was cancelled there
        stats = upstream.stats[name]
        assert stats.completed == 0 and stats.cancelled == stats.started, (name, stats)
    (trace,) = traces
    assert _statuses(trace)["config"] == "cancelled"


@pytest.mark.parametrize("framework", ["aiohttp"])
@pytest.mark.parametrize("latencies", [{**FAST, "article": 0.6}])
async def test_cache_first_flow_answers_a_hit_without_the_origin(
    app_server: AppServer, http: httpx.AsyncClient, upstream: Upstream, traces: list[Any]
) -> None:
    """flow: a miss goes to the origin and fills the cache; a hit ends the flow before the origin is called."""
    miss_time, miss = await timed(http.get("/articles/42"))
    hit_time, hit = await timed(http.get("/articles/42"))
    assert miss.status_code == hit.status_code == 200
    assert miss.json()["source"] == "origin" and hit.json()["source"] == "cache"
    assert miss.json()["article"] == hit.json()["article"]
    assert hit.json()["article"]["id"] == 42
    # The origin takes 0.6 s; a hit must not wait for it (wide margin: a loaded
    # machine has made a hit's round trip take 140 ms).
    assert miss_time >= 0.6
    assert hit_time < 0.45
    assert upstream.stats["article"].started == 1  # the origin was called once, for the miss
    assert [_statuses(t) for t in traces] == [
        {"cached": "fulfilled", "origin": "ended"},
        {"cached": "ended", "origin": "cancelled"},
    ]


def _assert_feed_cancelled_at_the_comments(traces: list[Any]) -> None:
    """One feed graph ran, and the disconnect cancelled it while the comment calls were in flight."""
    (trace,) = traces
    statuses = _statuses(trace)
    assert statuses.pop("likes") in ("fulfilled", "cancelled")  # 10 ms calls: it depends on the moment
    assert statuses == {
        "user": "fulfilled",
        "trending": "fulfilled",
        "posts": "fulfilled",
        "comments": "cancelled",
        "feed": "cancelled",
    }


async def _send_then_disconnect(url: str, path: str, until: Any) -> None:
    """Send a GET on a raw connection, wait until ``until()``, then close the connection."""
    parts = urlsplit(url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    try:
        writer.write(f"GET {path} HTTP/1.1\r\nHost: {parts.netloc}\r\n\r\n".encode())
        await writer.drain()
        await eventually(until, "the request reached the upstream")
    finally:
        writer.close()
        await writer.wait_closed()


@pytest.mark.parametrize("framework", ["aiohttp"])
@pytest.mark.parametrize("latencies", [{**FAST, "comments": 3.0}])
async def test_client_disconnect_cancels_the_graph_and_its_upstream_calls(
    app_server: AppServer, upstream: Upstream, traces: list[Any]
) -> None:
    """aiohttp (handler_cancellation=True) cancels the handler: no task keeps running, no call stays in flight."""
    comments = upstream.stats["comments"]
    await _send_then_disconnect(app_server.url, "/betterall/feed", lambda: comments.started == POSTS_PER_USER)
    took = await eventually(
        lambda: bool(traces) and upstream.in_flight == 0 and app_server.upstream_client.in_flight == 0,
        "the graph finished and no upstream call is in flight",
    )
    assert took < 1.5  # long before the comments would have answered (3 s)
    assert (comments.started, comments.cancelled, comments.completed) == (POSTS_PER_USER, POSTS_PER_USER, 0)
    _assert_feed_cancelled_at_the_comments(traces)


@pytest.mark.parametrize("framework", ["starlette", "fastapi"])
@pytest.mark.parametrize("latencies", [{**FAST, "comments": 3.0}])
async def test_cancel_on_disconnect_cancels_the_graph_when_the_client_times_out(
    app_server: AppServer, upstream: Upstream, traces: list[Any]
) -> None:
    """uvicorn + betterall.asgi.CancelOnDisconnect (the example apps' default):
    an httpx client that gives up cancels the graph and its upstream calls,
    and uvicorn logs nothing (the autouse fixture fails the test on an error log)."""
    comments = upstream.stats["comments"]
    async with httpx.AsyncClient(base_url=app_server.url) as client:
        with pytest.raises(httpx.ReadTimeout):
            await client.get("/betterall/feed", timeout=httpx.Timeout(5.0, read=0.5))
    assert comments.started == POSTS_PER_USER  # the client left while they were in flight
    took = await eventually(
        lambda: bool(traces) and upstream.in_flight == 0 and app_server.upstream_client.in_flight == 0,
        "the graph finished and no upstream call is in flight",
    )
    assert took < 1.5  # long before the comments would have answered (3 s after they started)
    assert (comments.cancelled, comments.completed) == (POSTS_PER_USER, 0)
    _assert_feed_cancelled_at_the_comments(traces)
    # The server is still serving, on a new connection.
    async with httpx.AsyncClient(base_url=app_server.url) as client:
        assert (await client.get("/healthz")).status_code == 200


@pytest.mark.parametrize("framework", ["starlette"])
@pytest.mark.parametrize("app_options", [{"cancel_on_disconnect": False}])
@pytest.mark.parametrize("latencies", [{**FAST, "comments": 0.3}])
async def test_uvicorn_lets_the_handler_finish_after_a_disconnect(
    app_server: AppServer, upstream: Upstream, traces: list[Any]
) -> None:
    """Without the middleware uvicorn does not cancel a handler whose client
    left: the graph completes, and leaves nothing behind."""
    comments = upstream.stats["comments"]
    await _send_then_disconnect(app_server.url, "/betterall/feed", lambda: comments.started > 0)
    await eventually(lambda: bool(traces), "the graph finished")
    (trace,) = traces
    assert set(_statuses(trace).values()) == {"fulfilled"}
    assert (comments.completed, comments.cancelled) == (POSTS_PER_USER, 0)
    assert upstream.in_flight == 0 and app_server.upstream_client.in_flight == 0


@pytest.mark.parametrize("latencies", [{**FAST, "config": 2.0}])
async def test_http_client_timeouts_work_inside_graph_tasks(ba: Any, upstream: Upstream) -> None:
    """httpx's timeouts (anyio cancel scopes) and aiohttp's fire inside graph tasks; siblings are unaffected."""
    async with (
        httpx.AsyncClient(base_url=upstream.url, verify=tls_context()) as hx,
        aiohttp.ClientSession(base_url=upstream.url) as session,
    ):

        async def with_httpx() -> Any:
            return (await hx.get("/config", timeout=0.1)).json()

        async def with_aiohttp() -> Any:
            async with session.get("/config", timeout=aiohttp.ClientTimeout(total=0.1)) as response:
                return await response.json()

        async def user() -> Any:
            return (await hx.get("/users/me")).json()

        t0 = time.perf_counter()
        settled = await ba.all_settled({"httpx": with_httpx, "aiohttp": with_aiohttp, "user": user})
        elapsed = time.perf_counter() - t0
    assert isinstance(settled["httpx"].reason, httpx.TimeoutException)
    assert isinstance(settled["aiohttp"].reason, TimeoutError)
    assert settled["user"].value == {"id": 7, "name": "Ada"}
    assert elapsed < 1.0  # the timeouts, not the 2 s answers
    await eventually(lambda: upstream.in_flight == 0, "the upstream has no call in flight")
    config = upstream.stats["config"]  # the calls that reached the upstream were abandoned there
    assert config.completed == 0 and config.cancelled == config.started, config
