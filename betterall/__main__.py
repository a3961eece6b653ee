"""``python -m betterall``: the critical path against gather-then-await.

Runs two request handlers with simulated upstream latencies, each written
twice: the naive way (``asyncio.gather`` of what is ready, then the next
"level") and with ``betterall.all``.  Prints the time of each and the
speed-up.  No network is used: ``asyncio.sleep`` stands in for the calls.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Awaitable, Callable
import statistics
import sys
import time
from typing import Any

import betterall as ba


async def call(name: str, ms: float, **payload: Any) -> dict[str, Any]:
    """A stand-in for an upstream call that answers after ``ms``."""
    await asyncio.sleep(ms / 1000)
    return {"from": name, **payload}


# -- the dashboard: user 30 ms, config 50 ms, profile after user 30 ms -------


async def dashboard_naive() -> dict[str, Any]:
    user, config = await asyncio.gather(call("user", 30, id=7), call("config", 50))
    profile = await call("profile", 30, user=user["id"])
    return {"user": user, "config": config, "profile": profile}


async def dashboard_betterall() -> dict[str, Any]:
    async def profile(self: Any) -> dict[str, Any]:
        user = await self.user
        return await call("profile", 30, user=user["id"])

    return await ba.all(
        {
            "user": lambda: call("user", 30, id=7),
            "config": lambda: call("config", 50),
            "profile": profile,
        }
    )


# -- a deeper API aggregation ---------------------------------------------
# user 30 -> posts 60 -> comments 50 and likes 20; config 80;
# recommendations 30 after user and config.


async def feed_naive() -> dict[str, Any]:
    user, config = await asyncio.gather(call("user", 30, id=7), call("config", 80))
    posts, recs = await asyncio.gather(
        call("posts", 60, user=user["id"]),
        call("recommendations", 30, user=user["id"], config=config["from"]),
    )
    comments, likes = await asyncio.gather(
        call("comments", 50, posts=posts["from"]),
        call("likes", 20, posts=posts["from"]),
    )
    return {
        "user": user,
        "config": config,
        "posts": posts,
        "recommendations": recs,
        "comments": comments,
        "likes": likes,
    }


async def feed_betterall() -> dict[str, Any]:
    async def posts(self: Any) -> dict[str, Any]:
        return await call("posts", 60, user=(await self.user)["id"])

    async def recommendations(self: Any) -> dict[str, Any]:
        user = await self.user
        config = await self.config
        return await call("recommendations", 30, user=user["id"], config=config["from"])

    async def comments(self: Any) -> dict[str, Any]:
        return await call("comments", 50, posts=(await self.posts)["from"])

    async def likes(self: Any) -> dict[str, Any]:
        return await call("likes", 20, posts=(await self.posts)["from"])

    return await ba.all(
        {
            "user": lambda: call("user", 30, id=7),
            "config": lambda: call("config", 80),
            "posts": posts,
            "recommendations": recommendations,
            "comments": comments,
            "likes": likes,
        }
    )


Handler = Callable[[], Awaitable[dict[str, Any]]]

SCENARIOS: list[tuple[str, str, Handler, Handler]] = [
    (
        "dashboard",
        "user 30 ms, config 50 ms, profile after user 30 ms",
        dashboard_naive,
        dashboard_betterall,
    ),
    (
        "feed",
        "user 30 -> posts 60 -> comments 50 / likes 20; config 80;"
        " recommendations after user + config 30",
        feed_naive,
        feed_betterall,
    ),
]


async def timed(handler: Handler, repeat: int) -> tuple[float, dict[str, Any]]:
    """Median wall time of ``repeat`` runs, in ms, and the last result."""
    times = []
    result: dict[str, Any] = {}
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = await handler()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times), result


async def main(repeat: int) -> int:
    print(f"betterall {ba.__version__} ({ba.ENGINE} engine), median of {repeat} runs\n")
    for name, shape, naive, better in SCENARIOS:
        naive_ms, naive_result = await timed(naive, repeat)
        better_ms, better_result = await timed(better, repeat)
        if naive_result != better_result:
            print(f"{name}: the two handlers disagree!", file=sys.stderr)
            return 1
        print(f"{name}: {shape}")
        print(f"  gather, then await : {naive_ms:7.1f} ms")
        print(f"  betterall.all      : {better_ms:7.1f} ms")
        print(f"  speed-up           : {naive_ms / better_ms:7.2f}x\n")
    return 0


def run(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m betterall",
        description="Compare gather-then-await handlers with betterall.all.",
    )
    parser.add_argument(
        "--repeat", type=int, default=5, help="runs per handler (default: 5)"
    )
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    return asyncio.run(main(args.repeat))


if __name__ == "__main__":
    sys.exit(run())
