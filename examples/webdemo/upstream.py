"""A fake upstream: the services a web handler calls, as a real HTTP server.

Every endpoint answers after a configurable latency (``asyncio.sleep`` on the
*server* side, so the handlers under test make real HTTP calls over loopback
and wait for real responses). The server counts the requests it is serving,
per endpoint, and records the ``X-Request-ID`` header of each one, so tests
can check that a handler left no call in flight and propagated its request id.

Run it on its own (the HTTP benchmark does)::

    python examples/webdemo/upstream.py --port 8001 --latency config=0.2 --fail trending

Endpoints (``name``: path):

==================  =====================================  =====================
name                path                                   answer
==================  =====================================  =====================
``user``            ``GET /users/me``                      ``{"id", "name"}``
``config``          ``GET /config``                        ``{"theme", ...}``
``profile``         ``GET /profiles/{user_id}``            ``{"user_id", "bio"}``
``posts``           ``GET /users/{user_id}/posts``         list of ``{"id", "title"}``
``comments``        ``GET /posts/{post_id}/comments``      list of ``{"post_id", "text"}``
``likes``           ``GET /posts/{post_id}/likes``         ``{"post_id", "count"}``
``trending``        ``GET /trending``                      list of tags
``recommendations`` ``GET /users/{user_id}/recommendations`` list of ``{"id", "title"}``
``article``         ``GET /articles/{article_id}``         ``{"id", "title", "body"}``
``cache``           ``GET|PUT /cache/{key}``               a stored JSON value, 404 if none
==================  =====================================  =====================
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import signal
from collections.abc import Callable, Mapping
from typing import Any

from aiohttp import web

#: Seconds each endpoint waits before answering (50-200 ms, as in a real
#: service mesh). With these, the dashboard's critical path is 200 ms
#: (``config``, or ``user`` then ``profile``) and the gather-then-await
#: version takes 350 ms; the feed's is 200 ms against 350 ms.
DEFAULT_LATENCIES: dict[str, float] = {
    "user": 0.05,
    "config": 0.2,
    "profile": 0.15,
    "posts": 0.05,
    "comments": 0.1,
    "likes": 0.05,
    "trending": 0.2,
    "recommendations": 0.1,
    "article": 0.15,
    "cache": 0.005,
}

POSTS_PER_USER = 3


def _user() -> dict[str, Any]:
    return {"id": 7, "name": "Ada"}


def _config() -> dict[str, Any]:
    return {"theme": "dark", "features": ["feed", "search"]}


def _profile(user_id: int) -> dict[str, Any]:
    return {"user_id": user_id, "bio": f"user {user_id} likes graphs"}


def _posts(user_id: int) -> list[dict[str, Any]]:
    return [
        {"id": user_id * 100 + i, "title": f"post {i} of user {user_id}"}
        for i in range(1, POSTS_PER_USER + 1)
    ]


def _comments(post_id: int) -> list[dict[str, Any]]:
    return [{"post_id": post_id, "text": f"comment {i} on {post_id}"} for i in range(1, 3)]


def _likes(post_id: int) -> dict[str, Any]:
    return {"post_id": post_id, "count": post_id % 17}


def _trending() -> list[str]:
    return ["#asyncio", "#graphs", "#python"]


def _recommendations(user_id: int) -> list[dict[str, Any]]:
    return [{"id": 900 + i, "title": f"pick {i} for {user_id}"} for i in range(1, 3)]


def _article(article_id: int) -> dict[str, Any]:
    return {"id": article_id, "title": f"article {article_id}", "body": "lorem ipsum " * 8}


class EndpointStats:
    """What happened to the requests of one endpoint."""

    __slots__ = ("cancelled", "completed", "failed", "in_flight", "started")

    def __init__(self) -> None:
        self.started = 0  # requests received
        self.completed = 0  # answered 2xx
        self.failed = 0  # answered 503 (a configured failure)
        self.cancelled = 0  # the caller went away before the answer
        self.in_flight = 0  # being served right now

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)}" for name in self.__slots__)
        return f"EndpointStats({fields})"


class Upstream:
    """The fake upstream service, as an aiohttp application.

    ``latencies`` and ``failures`` may be changed while it runs (a test sets
    them before sending its requests)::

        async with Upstream(latencies={"config": 0.1}) as upstream:
            upstream.url        # "http://127.0.0.1:<free port>"
            upstream.failures.add("trending")   # now answers 503

    The server cancels a handler whose client disconnects
    (``handler_cancellation=True``), so a call that the app abandons shows up
    as ``cancelled`` in :attr:`stats` and leaves :attr:`in_flight` at once.
    """

    def __init__(
        self,
        latencies: Mapping[str, float] | None = None,
        *,
        failures: set[str] | frozenset[str] = frozenset(),
    ) -> None:
        unknown = set(latencies or ()) - set(DEFAULT_LATENCIES)
        unknown |= set(failures) - set(DEFAULT_LATENCIES)
        if unknown:
            raise ValueError(f"unknown upstream endpoint(s): {sorted(unknown)}")
        self.latencies: dict[str, float] = {**DEFAULT_LATENCIES, **(latencies or {})}
        self.failures: set[str] = set(failures)
        self.stats: dict[str, EndpointStats] = collections.defaultdict(EndpointStats)
        #: ``(endpoint name, X-Request-ID header or None)`` for every request, in arrival order.
        self.requests: list[tuple[str, str | None]] = []
        self.cache: dict[str, Any] = {}
        self.url = ""
        self._runner: web.AppRunner | None = None
        self.app = self._make_app()

    @property
    def in_flight(self) -> int:
        """Requests being served right now, all endpoints together."""
        return sum(s.in_flight for s in self.stats.values())

    # -- the HTTP side -------------------------------------------------------

    def _make_app(self) -> web.Application:
        def route(name: str, make: Callable[[web.Request], Any]) -> Callable[..., Any]:
            async def handler(request: web.Request) -> web.StreamResponse:
                return await self._answer(name, request, make)

            return handler

        def num(request: web.Request, key: str) -> int:
            try:
                return int(request.match_info[key])
            except ValueError:
                raise web.HTTPNotFound() from None

        app = web.Application()
        app.router.add_get("/users/me", route("user", lambda r: _user()))
        app.router.add_get("/config", route("config", lambda r: _config()))
        app.router.add_get("/profiles/{user_id}", route("profile", lambda r: _profile(num(r, "user_id"))))
        app.router.add_get("/users/{user_id}/posts", route("posts", lambda r: _posts(num(r, "user_id"))))
        app.router.add_get("/posts/{post_id}/comments", route("comments", lambda r: _comments(num(r, "post_id"))))
        app.router.add_get("/posts/{post_id}/likes", route("likes", lambda r: _likes(num(r, "post_id"))))
        app.router.add_get("/trending", route("trending", lambda r: _trending()))
        app.router.add_get(
            "/users/{user_id}/recommendations",
            route("recommendations", lambda r: _recommendations(num(r, "user_id"))),
        )
        app.router.add_get("/articles/{article_id}", route("article", lambda r: _article(num(r, "article_id"))))
        app.router.add_get("/cache/{key}", self._cache_get)
        app.router.add_put("/cache/{key}", self._cache_put)
        return app

    async def _answer(
        self, name: str, request: web.Request, make: Callable[[web.Request], Any]
    ) -> web.StreamResponse:
        stats = self.stats[name]
        stats.started += 1
        stats.in_flight += 1
        self.requests.append((name, request.headers.get("X-Request-ID")))
        try:
            await asyncio.sleep(self.latencies[name])
        except asyncio.CancelledError:
            stats.cancelled += 1
            raise
        finally:
            stats.in_flight -= 1
        if name in self.failures:
            stats.failed += 1
            return web.json_response({"error": f"{name} is unavailable"}, status=503)
        body = make(request)
        stats.completed += 1
        return web.json_response(body)

    async def _cache_get(self, request: web.Request) -> web.StreamResponse:
        key = request.match_info["key"]

        def lookup(_: web.Request) -> Any:
            if key not in self.cache:
                raise web.HTTPNotFound()
            return self.cache[key]

        return await self._answer("cache", request, lookup)

    async def _cache_put(self, request: web.Request) -> web.StreamResponse:
        key = request.match_info["key"]
        value = await request.json()

        def store(_: web.Request) -> Any:
            self.cache[key] = value
            return {"stored": key}

        return await self._answer("cache", request, store)

    # -- running it ------------------------------------------------------------

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve on ``host:port`` (``port=0``: a free port); return the base URL."""
        # handler_cancellation: aiohttp (3.9+) no longer cancels a handler whose
        # client disconnects unless asked to. We ask, so that a call the app
        # abandons stops here too and is counted as cancelled.
        runner = web.AppRunner(self.app, handler_cancellation=True, access_log=None, shutdown_timeout=5)
        await runner.setup()
        try:
            site = web.TCPSite(runner, host, port)
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        bound_host, bound_port = runner.addresses[0][:2]
        self.url = f"http://{bound_host}:{bound_port}"
        return self.url

    async def stop(self) -> None:
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    async def __aenter__(self) -> Upstream:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()


def critical_paths(latencies: Mapping[str, float]) -> dict[str, dict[str, float]]:
    """The time each pattern needs in theory, per handler style (seconds).

    ``naive`` is gather-then-await, level by level; ``critical`` is the
    longest dependency chain, what betterall and the hand-optimised handler
    should take.
    """
    u, c, p = latencies["user"], latencies["config"], latencies["profile"]
    posts, t = latencies["posts"], latencies["trending"]
    comments_likes = max(latencies["comments"], latencies["likes"])
    return {
        "dashboard": {"naive": max(u, c) + p, "critical": max(c, u + p)},
        "feed": {
            "naive": max(u, t) + posts + comments_likes,
            "critical": max(t, u + posts + comments_likes),
        },
    }


def _parse_latency(text: str) -> tuple[str, float]:
    name, sep, seconds = text.partition("=")
    if not sep or name not in DEFAULT_LATENCIES:
        raise argparse.ArgumentTypeError(f"expected NAME=SECONDS with NAME in {sorted(DEFAULT_LATENCIES)}")
    return name, float(seconds)


async def _serve_forever(args: argparse.Namespace) -> None:
    upstream = Upstream(dict(args.latency), failures=set(args.fail))
    url = await upstream.start(args.host, args.port)
    # One line on stdout that a parent process can read: the URL to call.
    print(json.dumps({"url": url, "latencies": upstream.latencies}), flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await upstream.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 (default): a free port, printed on stdout")
    parser.add_argument("--latency", type=_parse_latency, action="append", default=[], metavar="NAME=SECONDS")
    parser.add_argument("--fail", action="append", default=[], metavar="NAME", help="answer 503 on this endpoint")
    parser.add_argument("--uvloop", action="store_true", help="run on uvloop's event loop")
    args = parser.parse_args(argv)
    loop_factory = None
    if args.uvloop:
        import uvloop

        loop_factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        runner.run(_serve_forever(args))


if __name__ == "__main__":
    main()
