"""The handler logic, shared by the Starlette, FastAPI and aiohttp apps.

Two patterns, each written three ways:

- **dashboard**: the user, the site config, and the user's profile (which
  needs the user's id).
- **feed** (API aggregation): the user, then the user's posts, then the
  comments and the likes of every post; and the trending tags, which need
  nothing.

The three ways:

- ``naive``: what is usually written: ``asyncio.gather`` of what is ready,
  then the next ``await``. Every level waits for its slowest call.
- ``betterall``: one ``ba.all`` graph. Every task starts at once and awaits
  only the siblings it reads, so the handler takes its critical path.
- ``hand``: the fastest plain-asyncio code for these exact dependencies
  (chains as coroutines, ``gather`` over independent chains). It also takes
  the critical path, but its shape is tied to these dependencies: add one
  and it has to be worked out again.

The three return the same JSON. Then the patterns only betterall makes short:

- ``dashboard_partial``: a per-request time budget with ``ba.all_settled``
  and ``timeout=``; whatever did not arrive in time, or failed, gets a
  fallback, and the response says what is degraded.
- ``article``: cache-first with ``ba.flow``: a cache hit ends the flow; on a
  miss the origin is fetched and the cache filled.

The graph tasks here are functions nested in ``Handlers`` methods, so they
name their context ``ctx`` (betterall's docs call it ``self``, which here is
the ``Handlers`` object).
"""

from __future__ import annotations

import asyncio
from typing import Any

import betterall

from .clients import UpstreamClient

#: What a degraded dashboard shows instead of a part that is missing.
FALLBACKS: dict[str, Any] = {
    "config": {"theme": "light", "features": []},
    "profile": None,
    "recommendations": [],
}


def _feed_posts(posts: list[dict[str, Any]], comments: list[Any], likes: list[Any]) -> list[dict[str, Any]]:
    return [
        {**post, "comments": post_comments, "likes": post_likes["count"]}
        for post, post_comments, post_likes in zip(posts, comments, likes, strict=True)
    ]


class Handlers:
    """The handlers of one app: they share its upstream client.

    ``ba`` is anything with betterall's ``all``, ``all_settled`` and ``flow``
    (the ``betterall`` module itself in production; the tests pass each
    engine in turn). ``trace`` is passed to every graph as ``debug=``: ``None``
    for nothing, or a callable that receives a ``betterall.Trace`` of each
    call (a service might log the waterfall of its slow requests).
    """

    def __init__(self, upstream: UpstreamClient, *, ba: Any = betterall, trace: Any = None) -> None:
        self.upstream = upstream
        self.ba = ba
        self.trace = trace

    # -- dashboard: user, config, profile after user -----------------------------

    async def dashboard_naive(self) -> dict[str, Any]:
        up = self.upstream
        user, config = await asyncio.gather(up.get_json("/users/me"), up.get_json("/config"))
        profile = await up.get_json(f"/profiles/{user['id']}")  # waits for config too
        return {"user": user, "config": config, "profile": profile}

    async def dashboard_betterall(self, *, timeout: float | None = None) -> dict[str, Any]:
        up = self.upstream

        async def profile(ctx: Any) -> Any:
            user = await ctx.user  # waits for `user` only, not for `config`
            return await up.get_json(f"/profiles/{user['id']}")

        return await self.ba.all(
            {
                "user": lambda: up.get_json("/users/me"),
                "config": lambda: up.get_json("/config"),
                "profile": profile,
            },
            timeout=timeout,
            debug=self.trace,
        )

    async def dashboard_hand(self) -> dict[str, Any]:
        up = self.upstream

        async def user_then_profile() -> tuple[Any, Any]:
            user = await up.get_json("/users/me")
            return user, await up.get_json(f"/profiles/{user['id']}")

        (user, profile), config = await asyncio.gather(user_then_profile(), up.get_json("/config"))
        return {"user": user, "config": config, "profile": profile}

    # -- feed: user -> posts -> comments and likes; trending ------------------------

    async def feed_naive(self) -> dict[str, Any]:
        up = self.upstream
        user, trending = await asyncio.gather(up.get_json("/users/me"), up.get_json("/trending"))
        posts = await up.get_json(f"/users/{user['id']}/posts")  # waits for trending too
        n = len(posts)
        found = await asyncio.gather(
            *(up.get_json(f"/posts/{p['id']}/comments") for p in posts),
            *(up.get_json(f"/posts/{p['id']}/likes") for p in posts),
        )
        return {"user": user, "trending": trending, "posts": _feed_posts(posts, found[:n], found[n:])}

    async def feed_betterall(self) -> dict[str, Any]:
        up = self.upstream

        async def posts(ctx: Any) -> Any:
            user = await ctx.user
            return await up.get_json(f"/users/{user['id']}/posts")

        async def comments(ctx: Any) -> Any:
            return await asyncio.gather(*(up.get_json(f"/posts/{p['id']}/comments") for p in await ctx.posts))

        async def likes(ctx: Any) -> Any:
            return await asyncio.gather(*(up.get_json(f"/posts/{p['id']}/likes") for p in await ctx.posts))

        async def feed(ctx: Any) -> Any:
            return _feed_posts(await ctx.posts, await ctx.comments, await ctx.likes)

        r = await self.ba.all(
            {
                "user": lambda: up.get_json("/users/me"),
                "trending": lambda: up.get_json("/trending"),
                "posts": posts,
                "comments": comments,
                "likes": likes,
                "feed": feed,
            },
            debug=self.trace,
        )
        return {"user": r["user"], "trending": r["trending"], "posts": r["feed"]}

    async def feed_hand(self) -> dict[str, Any]:
        up = self.upstream

        async def user_chain() -> tuple[Any, Any]:
            user = await up.get_json("/users/me")
            posts = await up.get_json(f"/users/{user['id']}/posts")
            n = len(posts)
            found = await asyncio.gather(
                *(up.get_json(f"/posts/{p['id']}/comments") for p in posts),
                *(up.get_json(f"/posts/{p['id']}/likes") for p in posts),
            )
            return user, _feed_posts(posts, found[:n], found[n:])

        (user, feed), trending = await asyncio.gather(user_chain(), up.get_json("/trending"))
        return {"user": user, "trending": trending, "posts": feed}

    # -- a time budget with fallbacks: all_settled + timeout ---------------------

    async def dashboard_partial(self, budget: float) -> dict[str, Any]:
        """The dashboard plus recommendations, within ``budget`` seconds.

        Whatever has not arrived by then is cancelled and replaced by its
        fallback, as is whatever failed; ``degraded`` names those parts and
        why. Only a missing ``user`` fails the request (there is no page
        without it).
        """
        up = self.upstream

        async def profile(ctx: Any) -> Any:
            return await up.get_json(f"/profiles/{(await ctx.user)['id']}")

        async def recommendations(ctx: Any) -> Any:
            return await up.get_json(f"/users/{(await ctx.user)['id']}/recommendations")

        settled = await self.ba.all_settled(
            {
                "user": lambda: up.get_json("/users/me"),
                "config": lambda: up.get_json("/config"),
                "profile": profile,
                "recommendations": recommendations,
            },
            timeout=budget,
            debug=self.trace,
        )
        if not settled["user"].ok:
            raise settled["user"].reason
        body: dict[str, Any] = {}
        degraded: dict[str, str] = {}
        for name, outcome in settled.items():
            if outcome.ok:
                body[name] = outcome.value
            else:
                body[name] = FALLBACKS[name]
                degraded[name] = "timeout" if isinstance(outcome.reason, TimeoutError) else "error"
        body["degraded"] = degraded
        return body

    # -- cache-first: flow ----------------------------------------------------------

    async def article(self, article_id: int) -> dict[str, Any]:
        """An article, from the cache if it is there, else from the origin (then cached)."""
        up = self.upstream
        key = f"/cache/article-{article_id}"

        async def cached(ctx: Any) -> None:
            hit = await up.get_json(key, missing_ok=True)
            if hit is not None:
                ctx._end({"source": "cache", "article": hit})  # the flow ends here

        async def origin(ctx: Any) -> None:
            await ctx.cached  # comes back only on a miss: a hit ends the flow and cancels this task
            article = await up.get_json(f"/articles/{article_id}")
            await up.put_json(key, article)
            ctx._end({"source": "origin", "article": article})

        return await self.ba.flow({"cached": cached, "origin": origin}, debug=self.trace)


#: The apps route ``/{variant}/{pattern}`` to ``Handlers.{pattern}_{variant}``.
VARIANTS = ("naive", "betterall", "hand")
PATTERNS = ("dashboard", "feed")
