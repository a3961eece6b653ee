"""``python -m betterall``: the critical path against gather-then-await.

Runs two request handlers with simulated upstream latencies, each written
twice: the naive way (``asyncio.gather`` of what is ready, then the next
"level") and with ``betterall.all``.  Prints the time of each and the
speed-up, then the waterfall chart of one traced ``betterall.all`` run of
each handler and its critical path (``--chrome-trace DIR`` also saves each
trace as a Chrome trace-event file).  No network is used: ``asyncio.sleep``
stands in for the calls.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Awaitable, Callable
import json
import os
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


async def dashboard_betterall(debug: Any = False) -> dict[str, Any]:
    async def profile(self: Any) -> dict[str, Any]:
        user = await self.user
        return await call("profile", 30, user=user["id"])

    return await ba.all(
        {
            "user": lambda: call("user", 30, id=7),
            "config": lambda: call("config", 50),
            "profile": profile,
        },
        debug=debug,
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


async def feed_betterall(debug: Any = False) -> dict[str, Any]:
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
        },
        debug=debug,
    )


Handler = Callable[[], Awaitable[dict[str, Any]]]
#: A betterall handler: ``debug=`` is passed on to its ``ba.all`` call.
TracedHandler = Callable[..., Awaitable[dict[str, Any]]]

SCENARIOS: list[tuple[str, str, Handler, TracedHandler]] = [
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
    times: list[float] = []
    result: dict[str, Any] = {}
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = await handler()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times), result


async def show_trace(name: str, better: TracedHandler, chrome_dir: str | None) -> None:
    """Run ``better`` once more, traced, and print its chart and critical path."""
    traces: list[ba.Trace] = []
    await better(debug=traces.append)
    (trace,) = traces
    print(f"{name}: the chart of one traced run (debug=...)")
    print(trace.waterfall())
    print(f"critical path: {' -> '.join(trace.critical_path())}")
    if chrome_dir is not None:
        path = os.path.join(chrome_dir, f"{name}.json")
        with open(path, "w", encoding="utf-8") as f:
            json.dump(trace.to_chrome_trace(), f)
        print(f"Chrome trace written to {path}")
    print()


async def main(repeat: int, chart: bool = True, chrome_dir: str | None = None) -> int:
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
        if chart:
            await show_trace(name, better, chrome_dir)
    return 0


def run(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m betterall",
        description="Compare gather-then-await handlers with betterall.all, and"
        " show the waterfall chart and critical path of each betterall run.",
    )
    parser.add_argument(
        "--repeat", type=int, default=5, help="runs per handler (default: 5)"
    )
    parser.add_argument(
        "--no-chart",
        action="store_true",
        help="only the timings: no waterfall chart or critical path",
    )
    parser.add_argument(
        "--chrome-trace",
        metavar="DIR",
        help="also write each traced run to DIR/<handler>.json (Chrome"
        " trace-event format: open it in https://ui.perfetto.dev or"
        " chrome://tracing); DIR is created if missing",
    )
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    if args.chrome_trace is not None:
        if args.no_chart:
            parser.error("--chrome-trace needs the traced runs: drop --no-chart")
        try:
            os.makedirs(args.chrome_trace, exist_ok=True)
        except OSError as exc:
            parser.error(f"--chrome-trace: cannot use {args.chrome_trace!r} as a directory: {exc}")
    return asyncio.run(main(args.repeat, not args.no_chart, args.chrome_trace))


if __name__ == "__main__":
    sys.exit(run())
