"""Rendering of :class:`~betterall._trace.Trace`: waterfall chart, critical
path and Chrome trace-event export.

Cold code: it runs once per traced call, so it favours clarity over speed.

Waterfall chart (``Trace.waterfall(width)``, ``str(trace)``, ``debug=True``)
--------------------------------------------------------------------------
The layout follows better-all's chart (trailing spaces trimmed here)::

    ╔══════════════════════════════════════════════════════════════╗
    ║                   Task Execution Waterfall                   ║
    ╠══════════════════════════════════════════════════════════════╣
    ║ Total Duration: 300.00ms                                     ║
    ╚══════════════════════════════════════════════════════════════╝

    Task │ Deps │ Duration          │ Timeline
    ─────┼──────┼───────────────────┼───────────────────────────────
    a    │ -    │  100.0ms          │ ██████████
    b    │ a    │  300.0ms rejected │ ░░░░░░░░░░▓▓▓▓▓▓▓▓▓▓▓▓▓▓▓▓▓▓▓▓

    Legend: █ = running, ▓ = running (task failed), ░ = waiting on a sibling

* Rows are sorted by start time; ties keep the mapping's order.  A task
  that never started (the outcome was decided before its turn) has an empty
  span at the moment it was dropped, after every task that did start, so it
  comes after them.
* ``Deps`` lists the siblings the task awaited, in first-await order, or
  ``-`` for none.
* ``Duration`` is in milliseconds with one decimal.  A task whose status is
  not ``"fulfilled"`` has its status written after the duration
  (``rejected``, ``cancelled``, ``ended`` for the task that called
  ``_end``, or ``fallback`` for a task that failed or ran out of its own
  time and gave its ``ba.fallback`` value), so cancelled and ended tasks are
  told apart from finished ones.
* The timeline has ``width`` columns spanning the trace from its start to
  its end (``Trace.total``); each column shows the task's state at the
  column's midpoint: ``█`` running, ``▓`` running in a task that failed
  (status ``"rejected"``, or ``"fallback"``: it failed, then fell back),
  ``░`` waiting on a sibling (one of the task's
  ``waits``), a space outside the task.  A task that ran at all takes at
  least one column, however short it was; a task that never started
  (status ``"cancelled"`` and zero duration) takes none.
* Columns align for any name: widths are measured in terminal cells
  (East Asian wide and fullwidth characters take two, combining marks
  none), and characters that are not printable (newlines, control and
  format characters) are shown escaped (``\\n``, ``\\x00``...).
* A trace without tasks renders as the boxed header only (the engines do
  not print anything for an empty mapping).

Critical path
-------------
See :func:`critical_path`.

Chrome trace
------------
See :func:`chrome_trace`; load the JSON into https://ui.perfetto.dev or
``chrome://tracing``.
"""

from __future__ import annotations

import math
import operator
import unicodedata
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._trace import TaskTrace, Trace

__all__ = ("waterfall", "critical_path", "chrome_trace")

RUNNING = "█"
FAILED = "▓"
WAITING = "░"
IDLE = " "

TITLE = "Task Execution Waterfall"
LEGEND = (
    f"Legend: {RUNNING} = running, {FAILED} = running (task failed),"
    f" {WAITING} = waiting on a sibling"
)
MIN_WIDTH = 10

#: Seconds of slack when matching a dependency's end to the end of a wait:
#: the engine records the two moments separately.
CRITICAL_TOLERANCE = 1e-3


# --- text measurement ---------------------------------------------------


def _printable(text: str) -> str:
    """``text`` with every non-printable character escaped."""
    return "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in text)


def _char_width(ch: str) -> int:
    """Terminal cells taken by one (printable) character."""
    if unicodedata.combining(ch):
        return 0
    if unicodedata.east_asian_width(ch) in ("W", "F"):
        return 2
    return 1


def display_width(text: str) -> int:
    """Terminal cells taken by ``text`` (assumed printable)."""
    return sum(_char_width(ch) for ch in text)


def _ljust(text: str, width: int) -> str:
    return text + " " * max(0, width - display_width(text))


def _rjust(text: str, width: int) -> str:
    return " " * max(0, width - display_width(text)) + text


def _center(text: str, width: int) -> str:
    free = max(0, width - display_width(text))
    left = free // 2
    return " " * left + text + " " * (free - left)


# --- waterfall -------------------------------------------------------------


def _ran(task: TaskTrace) -> bool:
    """Whether the task ran at all (a never-started task is cancelled with
    zero duration)."""
    return task.status != "cancelled" or task.end > task.start


def _timeline(task: TaskTrace, origin: float, span: float, width: int) -> str:
    """The ``width`` timeline cells of one task.

    Column ``i`` covers ``[origin + i*step, origin + (i+1)*step)`` and shows
    the task's state at its midpoint.
    """
    if not _ran(task):
        return IDLE * width
    run = FAILED if task.status in ("rejected", "fallback") else RUNNING

    def state_at(moment: float) -> str:
        for wait_start, wait_end in task.waits:
            if wait_start <= moment < wait_end:
                return WAITING
        return run

    cells = [IDLE] * width
    step = span / width
    if step > 0:
        for i in range(width):
            middle = origin + (i + 0.5) * step
            if task.start <= middle < task.end:
                cells[i] = state_at(middle)
    if all(cell == IDLE for cell in cells):
        # Too short to cover a column's midpoint: still show it, in the
        # column where it started.
        if step > 0:
            column = math.floor((task.start - origin) / step)
        else:
            column = 0
        column = min(max(column, 0), width - 1)
        cells[column] = state_at((task.start + task.end) / 2)
    return "".join(cells)


def waterfall(trace: Trace, width: int = 60, label: str | None = None) -> str:
    """The ASCII waterfall chart of ``trace``, with a ``width``-column
    timeline (see the module docstring for the format).  ``label`` (a
    route, a request id) is added to the title.

    Raises :class:`ValueError` if ``width`` is below 10, :class:`TypeError`
    if it is not an integer.  The result has no trailing newline.
    """
    width = operator.index(width)
    if width < MIN_WIDTH:
        raise ValueError(f"width must be at least {MIN_WIDTH}, got {width}")

    tasks = sorted(trace.tasks.values(), key=lambda task: task.start)
    rows: list[tuple[str, str, str, str]] = []
    for task in tasks:
        name = _printable(task.name)
        deps = ", ".join(_printable(dep) for dep in task.deps) or "-"
        duration = f"{task.duration * 1000:.1f}ms"
        status: str = "" if task.status == "fulfilled" else task.status
        rows.append((name, deps, duration, status))

    name_w = max([display_width("Task")] + [display_width(r[0]) for r in rows])
    deps_w = max([display_width("Deps")] + [display_width(r[1]) for r in rows])
    # Duration cell: the number right-aligned (8 cells at least, as in
    # better-all), then the status, if any, left-aligned.
    number_w = max([8] + [len(r[2]) for r in rows])
    status_w = max([0] + [len(r[3]) for r in rows])
    duration_w = number_w + (status_w + 1 if status_w else 0)

    def line(name: str, deps: str, duration: str, timeline: str) -> str:
        return (
            f"{_ljust(name, name_w)} │ {_ljust(deps, deps_w)}"
            f" │ {_ljust(duration, duration_w)} │ {timeline}"
        )

    header = line("Task", "Deps", "Duration", _ljust("Timeline", width))
    rule = "─┼─".join(
        "─" * w for w in (name_w, deps_w, duration_w, width)
    )

    # The timeline spans the trace (extended, defensively, to any task
    # recorded outside it; the engines never do that).
    origin = min([trace.start] + [task.start for task in tasks])
    finish = max([trace.end] + [task.end for task in tasks])
    span = finish - origin

    body: list[str] = []
    for task, (name, deps, duration, status) in zip(tasks, rows):
        cell = _rjust(duration, number_w)
        if status_w:
            cell += " " + status
        body.append(line(name, deps, cell, _timeline(task, origin, span, width)))

    # The box is as wide as the table, or as its own text if that is wider.
    total = f" Total Duration: {trace.total * 1000:.2f}ms "
    title = TITLE if label is None else f"{TITLE}: {_printable(label)}"
    inner = max(display_width(header) - 2, display_width(title) + 4, len(total))
    box = [
        "╔" + "═" * inner + "╗",
        "║" + _center(title, inner) + "║",
        "╠" + "═" * inner + "╣",
        "║" + _ljust(total, inner) + "║",
        "╚" + "═" * inner + "╝",
    ]
    if not tasks:
        return "\n".join(box)
    return "\n".join(box + ["", header, rule] + body + ["", LEGEND])


def report(trace: Trace, label: str | None = None) -> str:
    """What ``debug=True`` (or a label) shows: the chart, then the critical
    path with its length, then how long each task waited on siblings (the
    ``░`` part of its row), largest first."""
    lines = [waterfall(trace, label=label), ""]
    path = critical_path(trace)
    if path:
        first, last = trace.tasks[path[0]], trace.tasks[path[-1]]
        length = (last.end - first.start) * 1000
        lines.append(f"Critical path: {' -> '.join(map(_printable, path))} ({length:.1f}ms)")
    waited = sorted(
        ((sum(end - start for start, end in task.waits), task.name) for task in trace.tasks.values()),
        key=lambda pair: -pair[0],
    )
    waited = [(seconds, name) for seconds, name in waited if seconds > 0]
    if waited:
        parts = ", ".join(f"{_printable(name)} {seconds * 1000:.1f}ms" for seconds, name in waited)
        lines.append(f"Waited on siblings: {parts}")
    return "\n".join(lines)


# --- critical path ---------------------------------------------------------


def critical_path(trace: Trace) -> list[str]:
    """Task names, first to last, of the chain that set the total time.

    Starts from the task that ended last (ties: the first in the mapping's
    order; tasks that never started are ignored), then repeatedly steps to
    the dependency that held it up: among the task's ``deps``, the one that
    ended last no later than the end of the task's last wait (give or take
    :data:`CRITICAL_TOLERANCE`).  The chain stops at a task without deps, or
    one that never waited (its deps were already done when it awaited
    them, so none of them delayed it).  An empty trace gives ``[]``.
    """
    ran = [task for task in trace.tasks.values() if _ran(task)]
    if not ran:
        return []
    current = max(ran, key=lambda task: task.end)  # max keeps the first tie
    path = [current.name]
    seen = {current.name}
    while current.waits:
        limit = max(wait_end for _, wait_end in current.waits)
        candidates = [
            trace.tasks[dep]
            for dep in current.deps
            if dep in trace.tasks
            and dep not in seen
            and _ran(trace.tasks[dep])
            and trace.tasks[dep].end <= limit + CRITICAL_TOLERANCE
        ]
        if not candidates:
            break
        current = max(candidates, key=lambda task: task.end)
        path.append(current.name)
        seen.add(current.name)
    path.reverse()
    return path


# --- Chrome trace-event format ------------------------------------------


def _micros(seconds: float) -> float:
    """Seconds to microseconds, rounded to the nanosecond."""
    return round(seconds * 1_000_000, 3)


def _merged(periods: Iterable[tuple[float, float]]) -> list[tuple[float, float]]:
    """The union of ``periods`` as sorted, non-empty periods that do not
    overlap (periods that only touch stay apart)."""
    out: list[tuple[float, float]] = []
    for start, end in sorted(periods):
        if end <= start:
            continue
        if out and start < out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        else:
            out.append((start, end))
    return out


def chrome_trace(trace: Trace) -> dict[str, Any]:
    """``trace`` in the Chrome trace-event format, as a JSON-serialisable dict.

    ``{"traceEvents": [...], "displayTimeUnit": "ms"}`` with, for the task
    at index ``i`` of the mapping (its ``tid``, under ``pid`` 1):

    * a ``thread_name`` metadata event (``"ph": "M"``) naming the row after
      the task, and a ``thread_sort_index`` one keeping the mapping's order;
    * one complete event (``"ph": "X"``, ``"cat": "task"``) with ``ts`` and
      ``dur`` in microseconds from the trace's start, and ``args``
      ``{"status", "deps", "critical"}`` (``critical``: on the
      :func:`critical_path`);
    * one nested complete event (``"cat": "wait"``, named ``"waiting"``)
      per wait period, clipped to the task's span.  Periods that overlap
      (a task that waits on several siblings at once, e.g. through
      ``asyncio.gather``) are merged into one event: the trace viewers need
      the events of one thread to nest, and cannot show partial overlaps.

    A ``process_name`` metadata event names process 1 ``betterall``.
    """
    critical = set(critical_path(trace))
    events: list[dict[str, Any]] = [
        {
            "ph": "M",
            "name": "process_name",
            "pid": 1,
            "tid": 0,
            "args": {"name": "betterall"},
        }
    ]
    for tid, task in enumerate(trace.tasks.values()):
        events.append(
            {
                "ph": "M",
                "name": "thread_name",
                "pid": 1,
                "tid": tid,
                "args": {"name": task.name},
            }
        )
        events.append(
            {
                "ph": "M",
                "name": "thread_sort_index",
                "pid": 1,
                "tid": tid,
                "args": {"sort_index": tid},
            }
        )
        start = _micros(task.start - trace.start)
        end = max(start, _micros(task.end - trace.start))
        events.append(
            {
                "ph": "X",
                "name": task.name,
                "cat": "task",
                "ts": start,
                "dur": round(end - start, 3),
                "pid": 1,
                "tid": tid,
                "args": {
                    "status": task.status,
                    "deps": list(task.deps),
                    "critical": task.name in critical,
                },
            }
        )
        for ws, we in _merged(
            (
                min(max(_micros(wait_start - trace.start), start), end),
                min(max(_micros(wait_end - trace.start), start), end),
            )
            for wait_start, wait_end in task.waits
        ):
            events.append(
                {
                    "ph": "X",
                    "name": "waiting",
                    "cat": "wait",
                    "ts": ws,
                    "dur": round(we - ws, 3),
                    "pid": 1,
                    "tid": tid,
                }
            )
    return {"traceEvents": events, "displayTimeUnit": "ms"}
