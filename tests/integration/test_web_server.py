"""The servers themselves: keep-alive responses must not wait on Nagle's algorithm.

A listening socket created as ``socket.socket(AF_INET, SOCK_STREAM)``
(protocol 0) and handed to uvicorn makes asyncio skip ``TCP_NODELAY`` on the
connections it accepts; every keep-alive response then waits ~40 ms for the
client's delayed ACK. These tests run for each framework and event loop (no
betterall graph is involved, so not per engine).
"""

from __future__ import annotations

import socket
import statistics
import time

import httpx
import starlette_app
from webdemo.clients import tls_context
from webdemo.servers import serve_uvicorn
from webdemo.upstream import Upstream

from .web_helpers import AppServer, start_app

REQUESTS = 20


async def _keep_alive_latency(url: str) -> float:
    """The median time of REQUESTS sequential requests on one kept-alive connection.

    Without TCP_NODELAY nearly every request waits ~40 ms for the client's
    delayed ACK (the first one or two may not, while Linux acknowledges at
    once on a new connection); the median ignores those and the odd hiccup
    of a busy machine."""
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    async with httpx.AsyncClient(base_url=url, limits=limits, verify=tls_context()) as client:
        assert (await client.get("/healthz")).status_code == 200  # connect first
        times = []
        for _ in range(REQUESTS):
            t0 = time.perf_counter()
            response = await client.get("/healthz")
            times.append(time.perf_counter() - t0)
            assert response.status_code == 200
            assert response.json() == {"ok": True}
        return statistics.median(times)


def _nodelay(sock: socket.socket) -> bool:
    return bool(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))


async def test_keep_alive_responses_are_not_delayed_by_nagle(framework: str, upstream: Upstream) -> None:
    """Sequential requests on one keep-alive connection to a zero-latency endpoint take well under 40 ms."""
    async with start_app(framework, upstream.url) as server:
        median = await _keep_alive_latency(server.url)
        if framework != "aiohttp":  # aiohttp sets TCP_NODELAY itself; uvicorn relies on asyncio
            accepted = _accepted(server)
            assert accepted and all(map(_nodelay, accepted))
    assert median < 0.025, f"{median * 1000:.1f} ms per keep-alive request"


def _accepted(server: AppServer) -> list[socket.socket]:
    return server.handle.accepted_sockets()


async def test_keep_alive_check_catches_a_listening_socket_made_with_protocol_zero(upstream: Upstream) -> None:
    """The check above fails when a connection lacks TCP_NODELAY, as with a protocol-0 listening socket."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)  # the trap: protocol 0, not IPPROTO_TCP
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    sock.setblocking(False)
    async with serve_uvicorn(starlette_app.make_app(upstream.url), sock=sock) as handle:
        median = await _keep_alive_latency(handle.url)
        accepted = handle.accepted_sockets()
        assert accepted
        nodelay = all(map(_nodelay, accepted))
    assert sock.fileno() == -1  # uvicorn closed it
    # asyncio's loop leaves TCP_NODELAY off on such connections (uvloop sets it anyway):
    # without it every response waits for the client's delayed ACK.
    if nodelay:
        assert median < 0.025, f"{median * 1000:.1f} ms per keep-alive request"
    else:
        assert median > 0.035, f"{median * 1000:.1f} ms per keep-alive request without TCP_NODELAY"

