"""Traces of a graph run (``debug=``): what ran when, and who waited on whom.

Recording is the engines' job and rendering is _render.py's (the chart, the
critical path, the Chrome trace): this module holds the public data types,
whose methods hand over to _render.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Literal, NamedTuple

__all__ = ("TaskStatus", "TaskTrace", "Trace")

TaskStatus = Literal["fulfilled", "rejected", "cancelled", "ended", "fallback"]


class _TaskTraceFields(NamedTuple):
    name: str
    start: float
    end: float
    status: TaskStatus
    deps: tuple[str, ...] = ()
    waits: tuple[tuple[float, float], ...] = ()


class TaskTrace(_TaskTraceFields):
    """What one task of a traced graph did (a named tuple).

    Times are seconds on :func:`time.monotonic`'s clock.  ``deps`` are the
    siblings the task awaited, in first-await order; ``waits`` the
    ``(start, end)`` periods it spent blocked on a sibling.  A task that
    never started (the outcome was decided before its turn) has status
    ``"cancelled"`` and ``start == end``: the moment it was dropped, after
    every task that did start.

    A named tuple so that the C engine can make one per task as cheaply as
    a tuple: tracing a run must cost little more than running it.
    """

    __slots__ = ()

    def __new__(
        cls,
        name: str,
        start: float,
        end: float,
        status: TaskStatus,
        deps: Iterable[str] = (),
        waits: Iterable[tuple[float, float]] = (),
    ) -> TaskTrace:
        return super().__new__(cls, name, start, end, status, tuple(deps), tuple(waits))

    @property
    def duration(self) -> float:
        """``end - start``, in seconds."""
        return self.end - self.start

    def __repr__(self) -> str:
        return (
            f"TaskTrace(name={self.name!r}, status={self.status!r},"
            f" duration={self.duration * 1000:.1f}ms, deps={self.deps!r})"
        )


class Trace:
    """The trace of one ``all``/``all_settled``/``flow`` call.

    ``tasks`` maps task names to :class:`TaskTrace`, in the mapping's order.
    """

    __slots__ = ("start", "end", "tasks")

    def __init__(
        self, start: float, end: float, tasks: Mapping[str, TaskTrace]
    ) -> None:
        self.start = start
        self.end = end
        self.tasks = dict(tasks)

    @classmethod
    def _adopt(cls, start: float, end: float, tasks: dict[str, TaskTrace]) -> Trace:
        """A Trace that keeps ``tasks`` itself: the engines build a fresh dict
        for every trace, and copying it would add to the cost of tracing."""
        trace = cls.__new__(cls)
        trace.start, trace.end, trace.tasks = start, end, tasks
        return trace

    @property
    def total(self) -> float:
        """``end - start``, in seconds."""
        return self.end - self.start

    def __repr__(self) -> str:
        return f"<Trace of {len(self.tasks)} tasks, {self.total * 1000:.1f}ms>"

    def __str__(self) -> str:
        return self.waterfall()

    def waterfall(self, width: int = 60, *, label: str | None = None) -> str:
        """The ASCII waterfall chart of the run (better-all's format);
        ``label`` is added to its title."""
        from ._render import waterfall

        return waterfall(self, width, label)

    def critical_path(self) -> list[str]:
        """Task names, first to last, of the chain that set the total time."""
        from ._render import critical_path

        return critical_path(self)

    def to_chrome_trace(self) -> dict[str, Any]:
        """A JSON-serialisable dict in the Chrome trace-event format."""
        from ._render import chrome_trace

        return chrome_trace(self)
