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

from typing import TYPE_CHECKING

from . import _engine
from ._engine import engines as _engines
from ._errors import CycleError, FlowEnd, UnknownTaskError
from ._fallback import fallback
from ._graph import Graph, Results, SettledResults, Task, task
from ._trace import TaskTrace, Trace
from ._types import Fulfilled, Rejected, Settled, Signal, in_task, in_thread
from ._version import __version__

__all__ = (
    "CycleError",
    "FlowEnd",
    "Fulfilled",
    "Graph",
    "Rejected",
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
    "fallback",
    "flow",
    "in_task",
    "in_thread",
    "task",
)


# The public classes say they live where users import them from: a
# traceback prints betterall.CycleError, not betterall._errors.CycleError
# (pickle finds them here as well).
for _public in (
    CycleError, FlowEnd, UnknownTaskError, Graph, Results, SettledResults, Task,
    TaskTrace, Trace, Settled, Fulfilled, Rejected, Signal,
):
    _public.__module__ = __name__
del _public

#: Which engine this process uses: ``"c"`` or ``"python"`` (see _engine.py).
ENGINE = _engine.NAME

if TYPE_CHECKING:
    # Every engine has these signatures; the type checker reads them here.
    from ._py import all, all_settled, flow
else:
    all = _engine.ENGINE.all
    all_settled = _engine.ENGINE.all_settled
    flow = _engine.ENGINE.flow
