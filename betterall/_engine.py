"""Which engine this process runs on, chosen once, when betterall is imported.

The native engine (``betterall._cengine``) is preferred.  The pure-Python
engine (``betterall._py``) is used instead:

- when ``BETTERALL_NO_EXTENSIONS=1`` is set (silently: it was asked for);
- when the extension is not installed (silently: an install without it, such
  as ``BETTERALL_NO_EXTENSIONS=1 pip install .``, is a normal state);
- when the extension is installed but cannot be used: it fails to import, or
  the check below finds that a graph task does not become asyncio's current
  task on this interpreter.  Then with a ``RuntimeWarning`` that says why:
  the C engine is never used where it cannot be sure to be right.

The check runs one graph of one synchronous task through the native engine
(a few microseconds) and looks at what ``asyncio.current_task()`` returns
inside it and after it.  That is the part of the engine that depends most on
the interpreter's internals (see docs/design.md, "The current task"): asyncio
keeps the current task in a table on 3.11-3.13 and in the thread state from
3.14 on, and a future version may move it again.
"""

from __future__ import annotations

import asyncio
from asyncio import events
import importlib
import importlib.util
import os
import sys
from types import ModuleType
from typing import Any
import warnings

from . import _py

__all__ = ("ENGINE", "NAME", "current_task_problem", "engines")


class _ProbeLoop:
    """Stands for the running loop while the check runs outside of one: the
    check makes no call on it (a synchronous task needs no loop)."""

    def __repr__(self) -> str:
        return "<betterall engine check>"


def current_task_problem(engine: ModuleType) -> str | None:
    """``None`` if, in a graph run by ``engine``, a task is asyncio's current
    task while it runs and the caller's current task is back afterwards;
    else what went wrong, in words."""
    loop: Any = events._get_running_loop()
    own_loop = loop is None
    if own_loop:
        loop = _ProbeLoop()
        events._set_running_loop(loop)
    try:
        before = asyncio.current_task(loop)
        call = engine.all({"probe": lambda: asyncio.current_task(loop)})
        try:
            call.send(None)
        except StopIteration as stop:
            seen = stop.value["probe"]
        else:  # pragma: no cover - a synchronous task never suspends
            call.close()
            return "a synchronous task suspended"
        after = asyncio.current_task(loop)
    except Exception as exc:  # the engine failed outright: say how
        return f"a check graph failed: {exc!r}"
    finally:
        if own_loop:
            events._set_running_loop(None)
    if seen is None or seen is before or getattr(seen, "get_name", lambda: None)() != "probe":
        return f"inside a task, asyncio.current_task() is {seen!r}, not the task"
    if after is not before:
        return f"after a call, asyncio.current_task() is {after!r}, not the caller {before!r}"
    return None


def _native() -> ModuleType | None:
    """The native engine if it is installed and usable here, else ``None``
    (with a warning if it is installed but unusable)."""
    if importlib.util.find_spec("betterall._cengine") is None:
        return None  # built without it: a normal install
    try:
        native = importlib.import_module("betterall._cengine")
    except ImportError as exc:
        why = f"it could not be imported ({exc})"
    else:
        # A free-threaded CPython turns the GIL back on when it imports an
        # extension that does not declare itself free-threading safe, as
        # this one does not; it stays off only if the user forced it
        # (PYTHON_GIL=0, -X gil=0), and then the engine's objects would be
        # used without the lock they were written for.
        gil_enabled = getattr(sys, "_is_gil_enabled", None)
        problem = (
            "it runs with the GIL, and this free-threaded interpreter was told to keep it"
            " off (PYTHON_GIL=0 or -X gil=0)"
            if gil_enabled is not None and not gil_enabled()
            else current_task_problem(native)
        )
        if problem is None:
            return native
        v = sys.version_info
        why = (
            f"it does not work on this Python ({v.major}.{v.minor}.{v.micro},"
            f" {sys.implementation.name}): {problem}"
        )
    warnings.warn(
        f"betterall: the C engine is installed but not used, because {why}; using"
        " the slower pure-Python engine. Set BETTERALL_NO_EXTENSIONS=1 to choose"
        " it explicitly, and please report this with your Python version.",
        RuntimeWarning,
        stacklevel=_outside_stacklevel(),
    )
    return None


def _outside_stacklevel() -> int:
    """The stacklevel, for a warning raised by our caller, of the first frame
    outside betterall and the import system: the user's ``import betterall``
    (or first call), where the warning belongs and where filters match it."""
    package = os.path.dirname(os.path.abspath(__file__)) + os.sep
    level, frame = 1, sys._getframe(1)
    while frame.f_back is not None:
        name = frame.f_code.co_filename
        if name.startswith(package):
            level += 1
        elif not name.startswith("<frozen importlib"):
            break
        # (warnings.warn does not count the import system's frames itself)
        frame = frame.f_back
    return level


_engines: dict[str, ModuleType] | None = None


def engines() -> dict[str, ModuleType]:
    """The usable engines, preferred first: ``"c"`` (when the extension is
    installed and works on this interpreter) and ``"python"`` (always).  Each
    has ``all``, ``all_settled`` and ``flow`` with the same behaviour; the test
    suite runs against each of them.  Looked for on first use."""
    global _engines
    if _engines is None:
        native = _native()
        _engines = {"c": native} if native is not None else {}
        _engines["python"] = _py
    return dict(_engines)


def _select() -> tuple[str, ModuleType]:
    if os.environ.get("BETTERALL_NO_EXTENSIONS", "") not in ("", "0"):
        return "python", _py  # asked for: the extension is not even looked at
    return next(iter(engines().items()))


#: The engine this process uses, and its name (``"c"`` or ``"python"``).
NAME, ENGINE = _select()
