"""betterall: asyncio dependency graphs that finish on the critical path.

Every task of a graph starts at once; a task that needs a sibling's result
awaits it through its context (``await self.user``), so dependent work
starts at the earliest possible moment::

    import betterall as ba

    async def profile(self):
        user = await self.user
        return await fetch_profile(user.id)

    result = await ba.all({
        "user": lambda self: fetch_user(auth),
        "config": fetch_config,
        "profile": profile,
    })

See the documentation in ``docs/`` for the three entry points (``all``,
``all_settled``, ``flow``), the context and the error rules.
"""

from __future__ import annotations

import os
import warnings
from types import ModuleType
from typing import TYPE_CHECKING

from . import _graph, _py
from ._errors import CycleError, FlowEnd, UnknownTaskError
from ._graph import Graph, Results, SettledResults, Task, task
from ._trace import TaskTrace, Trace
from ._types import Settled, Signal, in_task
from ._version import __version__

__all__ = (
    "CycleError",
    "FlowEnd",
    "Graph",
    "Results",
    "Settled",
    "SettledResults",
    "Signal",
    "Task",
    "TaskTrace",
    "Trace",
    "UnknownTaskError",
    "__version__",
    "all",
    "all_settled",
    "flow",
    "in_task",
    "task",
)


def _engines() -> dict[str, ModuleType]:
    """The engines importable here, preferred first: ``"c"`` (the native
    engine, when the extension is built) and ``"python"`` (always).

    Every engine module exposes ``all``, ``all_settled`` and ``flow`` with
    the same behaviour; the test-suite runs against each of them.
    """
    engines: dict[str, ModuleType] = {}
    try:
        from . import _cengine
    except ImportError:
        pass
    else:
        engines["c"] = _cengine
    engines["python"] = _py
    return engines


def _select_engine() -> tuple[str, ModuleType]:
    if os.environ.get("BETTERALL_NO_EXTENSIONS", "") not in ("", "0"):
        return "python", _py
    try:
        from . import _cengine
    except ImportError as exc:
        warnings.warn(
            f"betterall: the C engine could not be imported ({exc}); using the"
            " slower pure-Python engine. Set BETTERALL_NO_EXTENSIONS=1 to choose"
            " it explicitly.",
            RuntimeWarning,
            stacklevel=2,
        )
        return "python", _py
    return "c", _cengine


#: Which engine this process uses: ``"c"`` or ``"python"``.
ENGINE, _engine = _select_engine()
_graph._engine = _engine  # the engine Graph.all/all_settled/flow run on

if TYPE_CHECKING:
    # Every engine has these signatures; the type checker reads them here.
    from ._py import all, all_settled, flow
else:
    all = _engine.all
    all_settled = _engine.all_settled
    flow = _engine.flow
