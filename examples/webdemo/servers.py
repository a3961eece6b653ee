"""Run an app server inside the current event loop, on a free loopback port.

Used by the examples' ``main()``, by the integration tests and by the HTTP
benchmark's server process. Both helpers are async context managers that
yield the server's base URL and shut the server down cleanly on exit (the
app's shutdown hooks run, no task is left behind). They work on any asyncio
event loop, uvloop's included.

About ports: let the server bind ``port=0`` itself and read the port back,
as these helpers do. Do **not** create the listening socket yourself with
``socket.socket(AF_INET, SOCK_STREAM)`` and hand it to uvicorn: a socket made
with protocol 0 makes asyncio skip ``TCP_NODELAY`` on every accepted
connection, and each keep-alive response then waits ~40 ms for the client's
delayed ACK (Nagle's algorithm). If you must pre-bind a socket (for several
workers, say), use :func:`listening_socket`, which passes ``IPPROTO_TCP``.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from typing import Any

import uvicorn
from aiohttp import web


def listening_socket(host: str = "127.0.0.1", port: int = 0) -> socket.socket:
    """A listening TCP socket that asyncio will set ``TCP_NODELAY`` on.

    The explicit ``IPPROTO_TCP`` matters: asyncio only sets ``TCP_NODELAY`` on
    an accepted connection whose socket object says ``proto == IPPROTO_TCP``,
    and accepted sockets copy that field from the listening one.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(1024)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


class UvicornHandle:
    """A running uvicorn server: ``url``, and the ``server`` itself."""

    def __init__(self, server: uvicorn.Server, url: str) -> None:
        self.server = server
        self.url = url

    def accepted_sockets(self) -> list[socket.socket]:
        """The server side of every open client connection."""
        socks = []
        for protocol in self.server.server_state.connections:
            transport = getattr(protocol, "transport", None)
            sock = transport.get_extra_info("socket") if transport is not None else None
            if sock is not None:
                socks.append(sock)
        return socks


@contextlib.asynccontextmanager
async def serve_uvicorn(
    app: Any,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    sock: socket.socket | None = None,
    **config: Any,
) -> AsyncIterator[UvicornHandle]:
    """Serve an ASGI app with uvicorn in this event loop, as a task.

    The app's lifespan runs (startup before the URL is yielded, shutdown on
    exit). ``sock``, if given, is a listening socket to serve on instead of
    binding ``host:port`` (see the module's note on ``TCP_NODELAY``). Extra
    keyword arguments go to ``uvicorn.Config``.
    """
    settings: dict[str, Any] = {
        "lifespan": "on",
        "log_config": None,  # leave the process's logging alone
        "access_log": False,
        "ws": "none",
        "timeout_graceful_shutdown": 5,
    }
    settings.update(config)
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, **settings))
    task = asyncio.create_task(server.serve(sockets=None if sock is None else [sock]), name="uvicorn")
    try:
        while not server.started:
            if task.done():  # startup failed: re-raise its error here
                await task
                raise RuntimeError("uvicorn stopped during startup")
            await asyncio.sleep(0.005)
        bound_host, bound_port = server.servers[0].sockets[0].getsockname()[:2]
        yield UvicornHandle(server, f"http://{bound_host}:{bound_port}")
    finally:
        server.should_exit = True
        await task


class AiohttpHandle:
    """A running aiohttp server: ``url``, and its ``runner``."""

    def __init__(self, runner: web.AppRunner, url: str) -> None:
        self.runner = runner
        self.url = url


@contextlib.asynccontextmanager
async def serve_aiohttp(
    app: web.Application,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    handler_cancellation: bool = True,
    **runner_kwargs: Any,
) -> AsyncIterator[AiohttpHandle]:
    """Serve an aiohttp app in this event loop.

    ``handler_cancellation=True`` (aiohttp's default is ``False`` since 3.9)
    cancels a handler whose client disconnects: a betterall graph running in
    it is then cancelled, and with it every upstream call still in flight.
    """
    runner_kwargs.setdefault("access_log", None)
    runner_kwargs.setdefault("shutdown_timeout", 5)
    runner = web.AppRunner(app, handler_cancellation=handler_cancellation, **runner_kwargs)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound_host, bound_port = runner.addresses[0][:2]
        yield AiohttpHandle(runner, f"http://{bound_host}:{bound_port}")
    finally:
        await runner.cleanup()
