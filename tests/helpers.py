"""What many test modules share: the three modes, a bound on every await so
that a hang fails the test instead of blocking the suite, and scripts run in
a fresh interpreter."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
import types
from collections.abc import Awaitable
from typing import Any

import pytest

MODES = ("all", "all_settled", "flow")

#: Seconds: a test whose call takes longer has hung.
LIMIT = 10


def call(ba: types.SimpleNamespace, mode: str) -> Any:
    """The entry point ``mode`` of the engine-bound API ``ba``."""
    return getattr(ba, mode)


async def run(aw: Awaitable[Any]) -> Any:
    """Await ``aw``, failing with TimeoutError after LIMIT seconds."""
    return await asyncio.wait_for(aw, LIMIT)


def run_script(ba: types.SimpleNamespace, body: str, timeout: float = 20) -> subprocess.CompletedProcess[str]:
    """Run ``body`` in a fresh interpreter (``-W error``, asyncio debug mode)
    with ``ba`` bound to this test's engine; fail clearly if it hangs."""
    prelude = (
        "import asyncio, os, signal, sys, time\n"
        "import betterall\n"
        f"ba = betterall._engines()[{ba.ENGINE!r}]\n"
        # Ctrl-C as in a terminal, even when the suite itself runs where SIGINT
        # is ignored (a background job of a non-interactive shell, which the
        # interpreter inherits): asyncio.run() only handles it when it is.
        "signal.signal(signal.SIGINT, signal.default_int_handler)\n"
    )
    env = dict(os.environ, PYTHONASYNCIODEBUG="1")
    try:
        return subprocess.run(
            [sys.executable, "-W", "error", "-c", prelude + textwrap.dedent(body)],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
        )
    except subprocess.TimeoutExpired as exc:
        stderr = exc.stderr.decode() if isinstance(exc.stderr, bytes) else exc.stderr
        pytest.fail(f"the script hung (killed after {timeout} s); stderr:\n{stderr or ''}")
