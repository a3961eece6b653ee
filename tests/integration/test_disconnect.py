"""betterall.asgi.CancelOnDisconnect under uvicorn with real clients: what
the handler still gets (its whole request body, its background tasks, no
premature ``100 Continue``) and what a client that leaves mid-response stops.
Its effect on a graph is tested with the example apps, in
test_web_patterns.py; the corner cases of the protocol without a server, in
tests/test_asgi.py.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route
from webdemo.servers import serve_uvicorn

from betterall.asgi import CancelOnDisconnect

from .web_helpers import eventually


def _app(events: list[str]) -> CancelOnDisconnect:
    async def echo(request: Request) -> JSONResponse:
        # The watcher reads ahead while the handler is busy: the body must
        # still reach the handler whole.
        await asyncio.sleep(0.2)
        body = await request.body()
        return JSONResponse({"size": len(body), "sha256": hashlib.sha256(body).hexdigest()})

    async def background(request: Request) -> JSONResponse:
        async def later() -> None:
            try:
                await asyncio.sleep(0.3)
            except asyncio.CancelledError:
                events.append("background cancelled")
                raise
            events.append("background done")

        return JSONResponse({"ok": True}, background=BackgroundTask(later))

    async def reject(request: Request) -> JSONResponse:
        await asyncio.sleep(0.1)  # an auth check: the watcher runs meanwhile
        return JSONResponse({"error": "not allowed"}, status_code=401)  # never reads the body

    async def ticks(request: Request) -> StreamingResponse:
        async def chunks() -> AsyncIterator[bytes]:
            try:
                for i in range(100):
                    yield f"tick {i}\n".encode()
                    await asyncio.sleep(0.05)
            except asyncio.CancelledError:
                events.append("stream cancelled")
                raise
            events.append("stream finished")

        return StreamingResponse(chunks(), media_type="text/plain")

    routes = [
        Route("/echo", echo, methods=["POST"]),
        Route("/background", background),
        Route("/reject", reject, methods=["POST"]),
        Route("/ticks", ticks),
    ]
    return CancelOnDisconnect(Starlette(routes=routes))


@pytest.fixture
def events() -> list[str]:
    return []


@pytest.fixture
async def url(events: list[str]) -> AsyncIterator[str]:
    async with serve_uvicorn(_app(events)) as handle:
        yield handle.url


@pytest.mark.parametrize("size", [0, 100_000, 3_000_000])  # the last is over max_body_buffer (1 MiB)
async def test_the_handler_gets_the_whole_body(url: str, size: int) -> None:
    body = os.urandom(size)
    async with httpx.AsyncClient(base_url=url) as client:
        response = await client.post("/echo", content=body)
    assert response.status_code == 200
    assert response.json() == {"size": size, "sha256": hashlib.sha256(body).hexdigest()}


async def test_a_streamed_upload_arrives_whole(url: str) -> None:
    parts = [os.urandom(50_000) for _ in range(8)]

    async def upload() -> AsyncIterator[bytes]:
        for part in parts:
            yield part
            await asyncio.sleep(0.01)

    async with httpx.AsyncClient(base_url=url) as client:
        response = await client.post("/echo", content=upload())
    body = b"".join(parts)
    assert response.json() == {"size": len(body), "sha256": hashlib.sha256(body).hexdigest()}


async def test_background_tasks_run_after_the_client_has_left(url: str, events: list[str]) -> None:
    """The response is complete when the client leaves: the server's
    ``http.disconnect`` then means nothing, and the background task runs on."""
    async with httpx.AsyncClient(base_url=url) as client:
        assert (await client.get("/background")).json() == {"ok": True}
    await eventually(lambda: bool(events), "the background task ended")
    assert events == ["background done"]


async def test_no_100_continue_before_the_handler_reads(url: str) -> None:
    """Reading the body is what makes uvicorn answer ``Expect: 100-continue``:
    a handler that answers without reading must not have asked the client
    for its body."""
    parts = urlsplit(url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    try:
        writer.write(
            b"POST /reject HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n"
            b"Expect: 100-continue\r\n\r\n"
        )
        await writer.drain()
        status_line = await asyncio.wait_for(reader.readline(), 5)
    finally:
        writer.close()
        await writer.wait_closed()
    assert status_line.startswith(b"HTTP/1.1 401"), status_line


async def test_a_client_that_leaves_a_stream_stops_it(url: str, events: list[str]) -> None:
    """Starlette stops a streamed response itself when its ``receive`` says
    the client left; it reads that through the middleware's ``receive``."""
    seen: list[str] = []
    async with httpx.AsyncClient(base_url=url) as client:
        async with client.stream("GET", "/ticks") as response:
            async for line in response.aiter_lines():
                seen.append(line)
                if len(seen) == 3:
                    break
    assert seen == ["tick 0", "tick 1", "tick 2"]
    took = await eventually(lambda: bool(events), "the stream stopped")
    assert took < 1.0  # the full stream takes 5 s
    assert events == ["stream cancelled"]


async def test_requests_on_one_connection_each_get_their_own_watch(url: str, events: list[str]) -> None:
    """Keep-alive: the second request's watcher must not take the first's
    completed state, and nothing stays behind between them."""
    async with httpx.AsyncClient(base_url=url) as client:
        for size in (10, 20_000, 0):
            body = os.urandom(size)
            response = await client.post("/echo", content=body)
            assert response.json()["size"] == size
        assert (await client.get("/background")).status_code == 200
    await eventually(lambda: bool(events), "the background task ended")
    assert events == ["background done"]
    tasks: set[Any] = {t for t in asyncio.all_tasks() if "disconnect watcher" in t.get_name()}
    assert not tasks, tasks
