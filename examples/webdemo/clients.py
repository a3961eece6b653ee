"""The HTTP clients the handlers use to call the upstream, and the request id.

Two implementations of one small interface, so the same handler code runs in
every framework: :class:`HttpxUpstream` (httpx, used by the Starlette and
FastAPI apps) and :class:`AiohttpUpstream` (aiohttp's client, used by the
aiohttp app). Both

- send the current request's id (the :data:`request_id` context variable,
  set by the app's middleware) as ``X-Request-ID`` on every call: this is
  how request-scoped context reaches the graph's tasks and, through them,
  the upstream;
- raise :class:`UpstreamError` for an answer of 400 or more (except a 404
  that the caller said it expects);
- count the calls in flight (:attr:`UpstreamClient.in_flight`), the number a
  service would export as a gauge, and tests use to check that nothing is
  left running.
"""

from __future__ import annotations

import contextvars
import functools
import ssl
from collections.abc import Callable
from types import TracebackType
from typing import Any, Self

import aiohttp
import httpx

#: The id of the request being handled. The app's middleware sets it; every
#: task of a betterall graph runs in a copy of the handler's context, so every
#: task sees it.
request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")


class UpstreamError(Exception):
    """An upstream service answered with an error status."""

    def __init__(self, method: str, path: str, status: int) -> None:
        super().__init__(f"{method} {path} answered {status}")
        self.method = method
        self.path = path
        self.status = status


class UpstreamClient:
    """What a handler needs from the upstream: JSON in, JSON out."""

    def __init__(self) -> None:
        self.in_flight = 0  # calls started and not yet finished (answered, failed or cancelled)
        self.calls = 0  # calls started

    async def get_json(self, path: str, *, missing_ok: bool = False) -> Any:
        """GET ``path`` and decode the JSON answer; ``None`` for a 404 when ``missing_ok``."""
        self.calls += 1
        self.in_flight += 1
        try:
            status, body = await self._request("GET", path, None)
        finally:
            self.in_flight -= 1
        if status == 404 and missing_ok:
            return None
        if status >= 400:
            raise UpstreamError("GET", path, status)
        return body

    async def put_json(self, path: str, value: Any) -> Any:
        self.calls += 1
        self.in_flight += 1
        try:
            status, body = await self._request("PUT", path, value)
        finally:
            self.in_flight -= 1
        if status >= 400:
            raise UpstreamError("PUT", path, status)
        return body

    async def _request(self, method: str, path: str, body: Any) -> tuple[int, Any]:
        raise NotImplementedError

    async def aclose(self) -> None:
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()


def _headers() -> dict[str, str]:
    return {"X-Request-ID": request_id.get()}


@functools.cache
def tls_context() -> ssl.SSLContext:
    """One TLS context per process, shared by every httpx client: loading the
    CA certificates takes tens of milliseconds, which httpx would otherwise
    pay again for each client it creates."""
    return ssl.create_default_context()


class HttpxUpstream(UpstreamClient):
    """The upstream over one shared ``httpx.AsyncClient`` (a connection pool)."""

    def __init__(self, base_url: str, *, max_connections: int = 1000) -> None:
        super().__init__()
        self.client = httpx.AsyncClient(
            base_url=base_url,
            # The default pool (100 connections, 20 kept alive) would queue the
            # calls of a busy handler behind each other: size it for the load.
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
            timeout=httpx.Timeout(10.0),
            verify=tls_context(),
        )

    async def _request(self, method: str, path: str, body: Any) -> tuple[int, Any]:
        response = await self.client.request(method, path, json=body, headers=_headers())
        if response.status_code >= 400:
            return response.status_code, None
        return response.status_code, response.json()

    async def aclose(self) -> None:
        await self.client.aclose()


class AiohttpUpstream(UpstreamClient):
    """The upstream over one shared ``aiohttp.ClientSession``."""

    def __init__(self, base_url: str, *, max_connections: int = 1000) -> None:
        super().__init__()
        self.session = aiohttp.ClientSession(
            base_url=base_url,
            connector=aiohttp.TCPConnector(limit=max_connections),
            timeout=aiohttp.ClientTimeout(total=10.0),
        )

    async def _request(self, method: str, path: str, body: Any) -> tuple[int, Any]:
        async with self.session.request(method, path, json=body, headers=_headers()) as response:
            if response.status >= 400:
                return response.status, None
            return response.status, await response.json()

    async def aclose(self) -> None:
        await self.session.close()


#: The clients by name, for the apps' ``client=`` argument.
CLIENTS: dict[str, Callable[[str], UpstreamClient]] = {"httpx": HttpxUpstream, "aiohttp": AiohttpUpstream}
