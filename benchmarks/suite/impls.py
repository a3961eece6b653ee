"""The implementations compared, and the betterall under test."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from typing import Any


def _import_betterall() -> Any:
    """Import betterall; retry the C engine a few times (it may be rebuilding)."""
    try:
        import betterall
    except ImportError:  # not installed: use the checkout this file is in
        sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
        import betterall
    for _ in range(20):
        try:
            import betterall._cengine  # noqa: F401
        except ImportError:
            time.sleep(0.5)
        else:
            break
    return betterall


betterall = _import_betterall()
ENGINES: dict[str, Any] = betterall._engines()

try:
    import aiodag
except ImportError:
    aiodag = None

EAGER = getattr(asyncio, "eager_task_factory", None)  # 3.12+

perf_counter = time.perf_counter

# -- implementations --------------------------------------------------------

#: name -> description; the order is the column order of the tables.
IMPLS: dict[str, str] = {
    "ba-c": "betterall, C engine",
    "ba-py": "betterall, pure-Python engine",
    "hand": "hand-wired asyncio: Tasks created up front (Futures in reverse order)",
    "gather": "asyncio.gather (level by level for fan-in, diamond, dashboard)",
    "tgroup": "asyncio.TaskGroup, tasks awaiting earlier Tasks (Futures in reverse order)",
    "hand-e": "hand, with asyncio.eager_task_factory set on the loop",
    "gather-e": "gather, with asyncio.eager_task_factory",
    "tgroup-e": "tgroup, with asyncio.eager_task_factory",
    "aiodag": "aiodag (PyPI), dependency-order shapes only",
    "loop": "reference, no asyncio task: wide-sync, the functions called in a plain loop;"
    " wide-async-nosuspend, each coroutine driven by hand with send(None);"
    " wide-async, one loop.call_soon callback per task (the loop work an asyncio.Task"
    " pays per suspension);"
    " finished-sibling, the same loop adding a local",
}
#: The asyncio baselines of the "best asyncio" column and the targets.
ASYNCIO_BASELINES = ("hand", "gather", "tgroup", "hand-e", "gather-e", "tgroup-e")
EAGER_OF = {"hand-e": "hand", "gather-e": "gather", "tgroup-e": "tgroup"}


def available_impls() -> list[str]:
    out = []
    for name in IMPLS:
        if name == "ba-c" and "c" not in ENGINES:
            continue
        if name in EAGER_OF and EAGER is None:
            continue
        if name == "aiodag" and aiodag is None:
            continue
        out.append(name)
    return out
