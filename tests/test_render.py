"""Rendering of traces: waterfall chart, critical path, Chrome trace export.

Traces are built by hand (``Trace`` and ``TaskTrace`` are plain data, not
bound to an engine), so most tests need no ``ba`` fixture; the last ones
render a real traced run through each engine.
"""

from __future__ import annotations

import asyncio
import json
import re
import unicodedata
from typing import Any

import pytest

from betterall import TaskTrace, Trace

RUN, FAIL, WAIT = "█", "▓", "░"


# --- helpers ---------------------------------------------------------------


def cells(text: str) -> int:
    """Terminal cells taken by ``text`` (wide chars 2, combining marks 0)."""
    total = 0
    for ch in text:
        if unicodedata.combining(ch):
            continue
        total += 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1
    return total


def table(chart: str) -> list[str]:
    """The table lines of a chart: column header, rule, then one per task."""
    lines = chart.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("Task"))
    end = start
    while end < len(lines) and lines[end]:
        end += 1
    return lines[start:end]


def rows(chart: str) -> list[list[str]]:
    """Task rows split into [name, deps, duration, timeline] cells."""
    out = []
    for line in table(chart)[2:]:
        name, deps, duration, timeline = line.split(" │ ")
        out.append([name.rstrip(), deps.rstrip(), duration.strip(), timeline])
    return out


def row_of(chart: str, name: str) -> list[str]:
    return next(row for row in rows(chart) if row[0] == name)


def trace_of(total: float, *tasks: TaskTrace) -> Trace:
    return Trace(100.0, 100.0 + total, {t.name: t for t in tasks})


def task(
    name: str,
    start: float,
    end: float,
    status: Any = "fulfilled",
    deps: tuple[str, ...] = (),
    waits: tuple[tuple[float, float], ...] = (),
) -> TaskTrace:
    """A TaskTrace with times relative to the trace start used by trace_of."""
    return TaskTrace(
        name,
        100.0 + start,
        100.0 + end,
        status,
        deps,
        tuple((100.0 + a, 100.0 + b) for a, b in waits),
    )


def known_trace() -> Trace:
    """1 s run: a 0–0.5 s; b waits on a 0–0.5 s then runs; c fails 0.2–0.6 s."""
    return trace_of(
        1.0,
        task("a", 0.0, 0.5),
        task("b", 0.0, 1.0, deps=("a",), waits=((0.0, 0.5),)),
        task("c", 0.2, 0.6, "rejected"),
    )


def diamond() -> Trace:
    """a → b, a → c, (b, c) → d, with c slower than b."""
    return trace_of(
        0.4,
        task("a", 0.0, 0.1),
        task("b", 0.0, 0.2, deps=("a",), waits=((0.0, 0.1),)),
        task("c", 0.0, 0.3, deps=("a",), waits=((0.0, 0.1),)),
        task("d", 0.0, 0.4, deps=("b", "c"), waits=((0.0, 0.2), (0.2, 0.3))),
    )


def chain(n: int) -> Trace:
    """t0 → t1 → ... → t(n-1), each running 10 ms after its predecessor."""
    tasks = [task("t0", 0.0, 0.01)]
    for i in range(1, n):
        tasks.append(
            task(
                f"t{i}",
                0.0,
                (i + 1) * 0.01,
                deps=(f"t{i - 1}",),
                waits=((0.0, i * 0.01),),
            )
        )
    return trace_of(n * 0.01, *tasks)


# --- waterfall: layout ------------------------------------------------------


def test_header_shows_title_and_total_duration() -> None:
    """The chart opens with a box holding the title and the total in ms."""
    chart = known_trace().waterfall()
    lines = chart.splitlines()
    assert lines[0].startswith("╔") and lines[0].endswith("╗")
    assert "Task Execution Waterfall" in lines[1]
    assert "Total Duration: 1000.00ms" in chart
    assert lines[4].startswith("╚")


def test_box_lines_have_equal_width() -> None:
    """Every line of the header box has the same width."""
    lines = known_trace().waterfall().splitlines()[:5]
    assert len({cells(line) for line in lines}) == 1


def test_legend_is_the_last_line() -> None:
    """The chart ends with a legend naming the three glyphs."""
    last = known_trace().waterfall().splitlines()[-1]
    assert last.startswith("Legend:")
    for glyph in (RUN, FAIL, WAIT):
        assert glyph in last


def test_column_header_and_rule() -> None:
    """The table starts with Task/Deps/Duration/Timeline and a ┼ rule."""
    header, rule = table(known_trace().waterfall())[:2]
    assert [c.strip() for c in header.split("│")] == [
        "Task",
        "Deps",
        "Duration",
        "Timeline",
    ]
    assert set(rule) == {"─", "┼"} and rule.count("┼") == 3


def test_all_table_lines_have_equal_width() -> None:
    """Header, rule and every task row have the same display width."""
    lines = table(known_trace().waterfall())
    assert len(lines) == 5
    assert len({cells(line) for line in lines}) == 1


def test_str_is_the_default_waterfall() -> None:
    """str(trace) is trace.waterfall() with the default 60 columns."""
    trace = known_trace()
    assert str(trace) == trace.waterfall() == trace.waterfall(60)
    assert all(len(row[3]) == 60 for row in rows(str(trace)))


def test_deps_column_lists_awaited_siblings_or_dash() -> None:
    """Deps are comma-separated in first-await order; '-' when none."""
    chart = diamond().waterfall()
    assert row_of(chart, "a")[1] == "-"
    assert row_of(chart, "b")[1] == "a"
    assert row_of(chart, "d")[1] == "b, c"


def test_duration_in_ms_with_one_decimal() -> None:
    """Durations are printed in milliseconds with one decimal."""
    trace = trace_of(0.2, task("x", 0.0, 0.12345), task("y", 0.0, 0.2))
    chart = trace.waterfall()
    assert row_of(chart, "x")[2] == "123.5ms"
    assert row_of(chart, "y")[2] == "200.0ms"


def test_status_written_after_duration_unless_fulfilled() -> None:
    """rejected/cancelled/ended tasks show their status after the duration."""
    trace = trace_of(
        0.1,
        task("ok", 0.0, 0.05),
        task("bad", 0.0, 0.05, "rejected"),
        task("stopped", 0.0, 0.1, "cancelled"),
        task("winner", 0.0, 0.05, "ended"),
    )
    chart = trace.waterfall()
    assert row_of(chart, "ok")[2] == "50.0ms"
    assert row_of(chart, "bad")[2] == "50.0ms rejected"
    assert row_of(chart, "stopped")[2] == "100.0ms cancelled"
    assert row_of(chart, "winner")[2] == "50.0ms ended"
    assert len({cells(line) for line in table(chart)}) == 1


def test_rows_sorted_by_start_ties_in_mapping_order() -> None:
    """Rows follow start time; equal starts keep the mapping's order."""
    trace = trace_of(
        1.0,
        task("late", 0.5, 1.0),
        task("zeta", 0.0, 0.2),
        task("mid", 0.3, 0.4),
        task("alpha", 0.0, 0.1),
    )
    assert [row[0] for row in rows(trace.waterfall())] == [
        "zeta",
        "alpha",
        "mid",
        "late",
    ]


# --- waterfall: glyphs ------------------------------------------------------


def test_glyphs_at_the_right_columns() -> None:
    """█ running, ░ waiting, ▓ failed, spaces outside, at the right columns."""
    chart = known_trace().waterfall(10)
    assert row_of(chart, "a")[3] == RUN * 5 + " " * 5
    assert row_of(chart, "b")[3] == WAIT * 5 + RUN * 5
    assert row_of(chart, "c")[3] == " " * 2 + FAIL * 4 + " " * 4


def test_failed_task_row_uses_only_the_failed_glyph() -> None:
    """A rejected task's running time is drawn with ▓, never █."""
    timeline = row_of(known_trace().waterfall(), "c")[3]
    assert FAIL in timeline and RUN not in timeline


def test_task_waiting_on_a_failed_task() -> None:
    """The waiter shows ░ while the failing sibling shows ▓, then runs."""
    trace = trace_of(
        1.0,
        task("boom", 0.0, 0.4, "rejected"),
        task("fallback", 0.0, 1.0, deps=("boom",), waits=((0.0, 0.4),)),
        task("doomed", 0.0, 0.4, "rejected", deps=("boom",), waits=((0.0, 0.4),)),
    )
    chart = trace.waterfall(10)
    assert row_of(chart, "boom")[3] == FAIL * 4 + " " * 6
    assert row_of(chart, "fallback")[1] == "boom"
    assert row_of(chart, "fallback")[3] == WAIT * 4 + RUN * 6
    # It failed while waiting: all waiting, no running glyph.
    assert row_of(chart, "doomed")[3] == WAIT * 4 + " " * 6


def test_cancelled_and_ended_tasks_draw_running_glyph() -> None:
    """Tasks cancelled or ending the flow ran: their time is drawn with █."""
    trace = trace_of(
        1.0,
        task("winner", 0.0, 0.5, "ended"),
        task("loser", 0.0, 0.5, "cancelled"),
    )
    chart = trace.waterfall(10)
    assert row_of(chart, "winner")[3] == RUN * 5 + " " * 5
    assert row_of(chart, "loser")[3] == RUN * 5 + " " * 5


def test_short_task_takes_at_least_one_column() -> None:
    """A task shorter than a column is still drawn, where it started."""
    trace = trace_of(
        1.0,
        task("long", 0.0, 1.0),
        task("blip", 0.42, 0.4201),
        task("sync", 0.0, 0.0),
        task("fails_at_once", 0.0, 0.0, "rejected"),
    )
    chart = trace.waterfall(10)
    assert row_of(chart, "blip")[3] == " " * 4 + RUN + " " * 5
    assert row_of(chart, "sync")[3] == RUN + " " * 9
    assert row_of(chart, "fails_at_once")[3] == FAIL + " " * 9


def test_never_started_task_has_empty_timeline() -> None:
    """A task that never started is listed last, cancelled, with no glyph."""
    trace = trace_of(
        0.5,
        task("fails", 0.0, 0.0, "rejected"),
        task("skipped", 0.5, 0.5, "cancelled"),
    )
    chart = trace.waterfall(10)
    assert [row[0] for row in rows(chart)] == ["fails", "skipped"]
    skipped = row_of(chart, "skipped")
    assert skipped[2] == "0.0ms cancelled"
    assert skipped[3] == " " * 10


def test_zero_length_trace_draws_tasks_in_first_column() -> None:
    """A run where all tasks were synchronous (total 0) still renders."""
    trace = trace_of(0.0, task("a", 0.0, 0.0), task("b", 0.0, 0.0))
    chart = trace.waterfall(10)
    assert "Total Duration: 0.00ms" in chart
    assert [row[3] for row in rows(chart)] == [RUN + " " * 9] * 2


# --- waterfall: names and sizes ---------------------------------------------


def separator_columns(line: str) -> list[int]:
    """Display columns of the '│' separators in a table line."""
    positions, column = [], 0
    for ch in line:
        if ch in "│┼":
            positions.append(column)
        column += cells(ch)
    return positions


def test_alignment_with_long_names() -> None:
    """A very long name widens the Task column; every row stays aligned."""
    long = "fetch_the_user_profile_from_the_primary_database_" * 3
    trace = trace_of(
        0.2,
        task("a", 0.0, 0.1),
        task(long, 0.0, 0.2, deps=("a",), waits=((0.0, 0.1),)),
    )
    lines = table(trace.waterfall())
    assert len({tuple(separator_columns(line)) for line in lines}) == 1
    assert len({cells(line) for line in lines}) == 1
    assert any(line.startswith(long + " │") for line in lines)


def test_alignment_with_wide_and_combining_names() -> None:
    """CJK (2 cells), emoji and combining accents keep columns aligned."""
    names = ["用户", "プロフィール", "café", "cafe\u0301", "😀x", "plain"]
    trace = trace_of(
        0.6,
        *[task(n, i * 0.1, 0.6, deps=tuple(names[:i])) for i, n in enumerate(names)],
    )
    chart = trace.waterfall(20)
    lines = table(chart)
    assert len(lines) == 2 + len(names)
    assert len({tuple(separator_columns(line)) for line in lines}) == 1
    assert len({cells(line) for line in lines}) == 1
    box = chart.splitlines()[:5]
    assert len({cells(line) for line in box}) == 1
    assert [row[0] for row in rows(chart)] == names


def test_control_characters_in_names_are_escaped() -> None:
    """A newline or NUL in a name is escaped, so it cannot break the table."""
    trace = trace_of(0.1, task("two\nlines", 0.0, 0.1), task("nul\x00", 0.0, 0.1))
    chart = trace.waterfall()
    assert [row[0] for row in rows(chart)] == ["two\\nlines", "nul\\x00"]
    assert len({cells(line) for line in table(chart)}) == 1


def test_one_task() -> None:
    """A single task fills the whole timeline."""
    chart = trace_of(0.25, task("only", 0.0, 0.25)).waterfall()
    assert rows(chart) == [["only", "-", "250.0ms", RUN * 60]]


def test_empty_trace_renders_header_only() -> None:
    """No tasks: the boxed header with the total, no table and no legend."""
    chart = Trace(5.0, 5.01, {}).waterfall()
    lines = chart.splitlines()
    assert len(lines) == 5
    assert "Total Duration: 10.00ms" in chart
    assert "Legend" not in chart and "│" not in chart


def test_long_dependency_chain() -> None:
    """50 chained tasks: 50 aligned rows, each visible, waiting then running."""
    chart = chain(50).waterfall()
    body = rows(chart)
    assert [row[0] for row in body] == [f"t{i}" for i in range(50)]
    assert len({cells(line) for line in table(chart)}) == 1
    for i, (_, deps, _, timeline) in enumerate(body):
        assert deps == ("-" if i == 0 else f"t{i - 1}")
        assert len(timeline) == 60
        assert RUN in timeline
        # Waiting first, then running to the end of the task, then blank.
        assert timeline.rstrip(" ").lstrip(WAIT).strip(RUN) == ""
    assert body[-1][3].endswith(RUN)


@pytest.mark.parametrize("width", [10, 24, 60, 100])
def test_custom_width(width: int) -> None:
    """The timeline has exactly `width` columns, and the glyphs scale."""
    chart = known_trace().waterfall(width)
    for row in rows(chart):
        assert len(row[3]) == width
    assert row_of(chart, "b")[3].count(WAIT) == round(width / 2)
    assert len({cells(line) for line in table(chart)}) == 1


@pytest.mark.parametrize("width", [9, 0, -5])
def test_width_below_ten_is_rejected(width: int) -> None:
    """width < 10 raises ValueError."""
    with pytest.raises(ValueError, match="width"):
        known_trace().waterfall(width)


def test_width_must_be_an_integer() -> None:
    """A non-integer width raises TypeError."""
    with pytest.raises(TypeError):
        known_trace().waterfall(20.0)  # type: ignore[arg-type]


# --- critical path ---------------------------------------------------------


def test_critical_path_of_a_diamond() -> None:
    """a → (b, c) → d with c slower: the path goes through c."""
    assert diamond().critical_path() == ["a", "c", "d"]


def test_critical_path_of_a_chain() -> None:
    """A 50-task chain is its own critical path, first to last."""
    assert chain(50).critical_path() == [f"t{i}" for i in range(50)]


def test_critical_path_of_independent_tasks() -> None:
    """Without dependencies the path is the task that ended last."""
    trace = trace_of(0.3, task("a", 0.0, 0.1), task("b", 0.0, 0.3), task("c", 0.0, 0.2))
    assert trace.critical_path() == ["b"]


def test_critical_path_of_empty_trace() -> None:
    """No tasks: an empty path."""
    assert Trace(1.0, 1.0, {}).critical_path() == []


def test_critical_path_ignores_deps_that_ended_after_the_wait() -> None:
    """A dep that was already done when awaited, or ended later, is skipped."""
    trace = trace_of(
        0.5,
        task("slow", 0.0, 0.4),
        task("fast", 0.0, 0.1),
        # Waited on fast only; slow was awaited later without waiting
        # (an impossible order for slow, but it must not be picked).
        task("top", 0.0, 0.5, deps=("fast", "slow"), waits=((0.0, 0.1),)),
    )
    assert trace.critical_path() == ["fast", "top"]


def test_critical_path_stops_at_a_task_that_never_waited() -> None:
    """Deps that were already done when awaited did not delay the task."""
    trace = trace_of(
        0.5,
        task("a", 0.0, 0.1),
        task("b", 0.0, 0.5, deps=("a",)),
    )
    assert trace.critical_path() == ["b"]


def test_critical_path_ignores_never_started_tasks() -> None:
    """Tasks that never started (ending at the trace end) are not the tail."""
    trace = trace_of(
        0.3,
        task("a", 0.0, 0.1),
        task("b", 0.0, 0.2, "rejected", deps=("a",), waits=((0.0, 0.1),)),
        task("never", 0.3, 0.3, "cancelled"),
    )
    assert trace.critical_path() == ["a", "b"]


def test_critical_path_tolerates_dep_ending_just_after_wait() -> None:
    """A dep recorded as ending a hair after the wait still counts."""
    trace = trace_of(
        0.3,
        task("a", 0.0, 0.1002),
        task("b", 0.0, 0.3, deps=("a",), waits=((0.0, 0.1),)),
    )
    assert trace.critical_path() == ["a", "b"]


# --- Chrome trace ----------------------------------------------------------


def chrome(trace: Trace) -> dict[str, Any]:
    """to_chrome_trace(), round-tripped through JSON."""
    result: dict[str, Any] = json.loads(json.dumps(trace.to_chrome_trace()))
    return result


def test_chrome_trace_round_trips_through_json() -> None:
    """The export is plain JSON data, identical after dumps/loads."""
    data = diamond().to_chrome_trace()
    assert json.loads(json.dumps(data)) == data
    assert data["displayTimeUnit"] == "ms"
    assert isinstance(data["traceEvents"], list)


def test_chrome_trace_has_one_task_event_per_task() -> None:
    """One complete 'task' event per task, tid = index in the mapping."""
    events = chrome(diamond())["traceEvents"]
    tasks = [e for e in events if e.get("cat") == "task"]
    assert [e["name"] for e in tasks] == ["a", "b", "c", "d"]
    assert all(e["ph"] == "X" and e["pid"] == 1 for e in tasks)
    assert [e["tid"] for e in tasks] == [0, 1, 2, 3]


def test_chrome_trace_times_in_microseconds_from_start() -> None:
    """ts and dur are microseconds relative to the trace start."""
    events = chrome(known_trace())["traceEvents"]
    c = next(e for e in events if e.get("cat") == "task" and e["name"] == "c")
    assert c["ts"] == pytest.approx(200_000)
    assert c["dur"] == pytest.approx(400_000)


def test_chrome_trace_args() -> None:
    """args carry status, deps and whether the task is on the critical path."""
    events = chrome(diamond())["traceEvents"]
    args = {e["name"]: e["args"] for e in events if e.get("cat") == "task"}
    assert args["d"] == {"status": "fulfilled", "deps": ["b", "c"], "critical": True}
    assert args["b"]["critical"] is False
    assert [n for n in "abcd" if args[n]["critical"]] == ["a", "c", "d"]


def test_chrome_trace_waits_nested_in_their_task() -> None:
    """Each wait is an 'X' event on its task's tid, inside the task's span."""
    events = chrome(diamond())["traceEvents"]
    spans = {e["tid"]: e for e in events if e.get("cat") == "task"}
    waits = [e for e in events if e.get("cat") == "wait"]
    assert len(waits) == 1 + 1 + 2  # b, c, d (twice)
    for wait in waits:
        parent = spans[wait["tid"]]
        assert wait["ph"] == "X" and wait["dur"] > 0
        assert parent["ts"] <= wait["ts"]
        assert wait["ts"] + wait["dur"] <= parent["ts"] + parent["dur"] + 1e-6
    assert sorted(spans[w["tid"]]["name"] for w in waits) == ["b", "c", "d", "d"]


def test_chrome_trace_merges_overlapping_waits() -> None:
    """Waits that overlap (gather over siblings) become one event; touching ones stay apart."""
    trace = trace_of(
        1.0,
        task("a", 0.0, 0.5),
        task("b", 0.0, 0.6),
        task(
            "g",
            0.0,
            1.0,
            deps=("a", "b"),
            waits=((0.0, 0.5), (0.001, 0.6), (0.6, 0.7), (0.8, 0.9), (0.85, 0.88)),
        ),
    )
    data = chrome(trace)
    waits = [(e["ts"], e["dur"]) for e in data["traceEvents"] if e.get("cat") == "wait"]
    assert waits == [
        (0.0, pytest.approx(600_000)),
        (pytest.approx(600_000), pytest.approx(100_000)),
        (pytest.approx(800_000), pytest.approx(100_000)),
    ]
    assert_waits_do_not_overlap(data)


def test_chrome_trace_names_threads_after_tasks() -> None:
    """thread_name metadata events label each tid with its task's name."""
    events = chrome(known_trace())["traceEvents"]
    names = {
        e["tid"]: e["args"]["name"]
        for e in events
        if e["ph"] == "M" and e["name"] == "thread_name"
    }
    assert names == {0: "a", 1: "b", 2: "c"}


def test_chrome_trace_of_empty_trace() -> None:
    """No tasks: no task events, still a valid document."""
    data = chrome(Trace(1.0, 1.0, {}))
    assert data["displayTimeUnit"] == "ms"
    assert not [e for e in data["traceEvents"] if e["ph"] == "X"]


# --- a real traced run (through each engine) --------------------------------


async def test_real_run_renders_and_finds_critical_path(ba: Any) -> None:
    """A traced run renders one row per task and its chain a → b."""
    traces: list[Any] = []

    async def a() -> int:
        await asyncio.sleep(0.1)
        return 1

    async def b(self: Any) -> int:
        value: int = await self.a
        await asyncio.sleep(0.1)
        return value + 1

    async def c() -> None:
        await asyncio.sleep(0.05)

    result = await ba.all({"a": a, "b": b, "c": c}, debug=traces.append)
    assert result == {"a": 1, "b": 2, "c": None}
    (trace,) = traces
    chart = trace.waterfall()
    assert sorted(row[0] for row in rows(chart)) == ["a", "b", "c"]
    assert row_of(chart, "b")[1] == "a"
    assert WAIT in row_of(chart, "b")[3]
    assert trace.critical_path() == ["a", "b"]
    data = json.loads(json.dumps(trace.to_chrome_trace()))
    assert len([e for e in data["traceEvents"] if e.get("cat") == "task"]) == 3


async def test_debug_true_prints_the_chart(
    ba: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """debug=True prints the waterfall, with a row per task, to stderr."""
    await ba.all({"x": lambda: 1, "y": lambda self: self.x}, debug=True)
    err = capsys.readouterr().err
    assert "Task Execution Waterfall" in err and "Legend:" in err
    assert sorted(row[0] for row in rows(err)) == ["x", "y"]


# --- real runs, through each engine: chart structure -----------------------------


async def traced(ba: Any, mode: str, tasks: dict[str, Any], **kwargs: Any) -> tuple[Any, Trace]:
    """Run ``tasks`` with a debug callable; the result (or error) and the Trace."""
    traces: list[Trace] = []
    try:
        result: Any = await getattr(ba, mode)(tasks, debug=traces.append, **kwargs)
    except Exception as exc:  # noqa: BLE001 - the caller checks it
        result = exc
    (trace,) = traces
    return result, trace


def assert_chart_structure(chart: str, width: int = 60) -> None:
    """Boxed header, aligned table, `width`-column timelines, legend last."""
    lines = chart.splitlines()
    box = lines[:5]
    assert box[0][0] + box[0][-1] == "╔╗" and set(box[0][1:-1]) == {"═"}
    assert box[2][0] + box[2][-1] == "╠╣" and set(box[2][1:-1]) == {"═"}
    assert box[4][0] + box[4][-1] == "╚╝" and set(box[4][1:-1]) == {"═"}
    assert box[1].strip("║ ") == "Task Execution Waterfall"
    assert box[1].startswith("║") and box[3].startswith("║") and box[3].endswith("║")
    assert box[3].strip("║ ").startswith("Total Duration: ")
    number = box[3].strip("║ ")[len("Total Duration: ") :]
    assert number.endswith("ms") and len(number.split(".")[1]) == 4  # two decimals + "ms"
    assert len({cells(line) for line in box}) == 1
    assert lines[5] == ""
    tbl = table(chart)
    assert len({cells(line) for line in tbl}) == 1
    assert len({tuple(separator_columns(line)) for line in tbl}) == 1
    for row in rows(chart):
        assert len(row[3]) == width
        assert set(row[3]) <= {RUN, FAIL, WAIT, " "}
        assert row[1] == "-" or row[1]
        number = row[2].split()[0]
        assert number.endswith("ms") and len(number[:-2].split(".")[1]) == 1
    assert lines[-2] == ""
    assert lines[-1].startswith("Legend:")


def drawn(timeline: str, pattern: str) -> bool:
    """Whether ``timeline`` matches ``pattern`` (a regex over the glyphs).

    A real task runs a little before its first wait (while the engine starts
    it) and after its last one: ``" *█*░+█* *"`` is a task that waited.
    """
    return re.fullmatch(pattern, timeline) is not None


def assert_cells_match_trace(chart: str, trace: Trace, width: int = 60) -> None:
    """Each row has as many ░ cells as the task's share of the run spent
    waiting, and as many █ (▓ if it failed) as the rest of its span, give or
    take the columns where a block starts or ends."""
    shown = {row[0]: row[3] for row in rows(chart)}
    assert len(shown) == len(trace.tasks)
    for t in trace.tasks.values():
        # Unprintable characters are shown escaped (\n, \t...).
        timeline = shown["".join(c if c.isprintable() else repr(c)[1:-1] for c in t.name)]
        if t.status == "cancelled" and t.duration == 0:  # never started
            assert timeline == " " * width
            continue
        waited = 0.0
        reach = t.start
        for start, end in sorted(t.waits):  # union, clipped to the task
            start, end = max(start, reach, t.start), min(end, t.end)
            if end > start:
                waited += end - start
                reach = end
        run = FAIL if t.status == "rejected" else RUN
        scale = width / trace.total
        assert abs(timeline.count(WAIT) - waited * scale) <= 2, (t, timeline)
        assert abs(timeline.count(run) - (t.duration - waited) * scale) <= 2, (t, timeline)
        assert (RUN if run == FAIL else FAIL) not in timeline


def assert_rows_sorted_by_start(chart: str, trace: Trace) -> None:
    shown = [row[0] for row in rows(chart)]
    assert shown == sorted(trace.tasks, key=lambda name: trace.tasks[name].start)


async def test_real_chart_structure(ba: Any) -> None:
    """A real run's chart: header box, aligned columns, 60-column timelines, sorted rows."""

    # Sleeps of 150-200 ms: a pause of the whole process (a full garbage
    # collection in a long test session once took 50 ms) must not let user
    # finish before profile starts waiting on it.
    async def user() -> str:
        await asyncio.sleep(0.15)
        return "ada"

    async def config() -> int:
        await asyncio.sleep(0.2)
        return 1

    async def profile(self: Any) -> str:
        name: str = await self.user
        await asyncio.sleep(0.1)
        return name

    async def feed(self: Any) -> int:
        await self.profile
        value: int = await self.config
        return value

    _, trace = await traced(ba, "all", {"feed": feed, "user": user, "config": config, "profile": profile})
    chart = str(trace)
    assert_chart_structure(chart)
    assert_rows_sorted_by_start(chart, trace)
    assert row_of(chart, "feed")[1] == "profile, config"
    assert row_of(chart, "profile")[1] == "user"
    assert row_of(chart, "user")[1] == "-"
    for name in ("user", "config"):
        assert set(row_of(chart, name)[3].strip()) == {RUN}
    assert_cells_match_trace(chart, trace)
    # profile waits on user, then runs to (nearly) the end; feed waits on
    # profile nearly the whole time.
    assert drawn(row_of(chart, "profile")[3], f" *{RUN}*{WAIT}+{RUN}+ *"), chart
    assert drawn(row_of(chart, "feed")[3], f" *{RUN}*{WAIT}+{RUN}* *"), chart
    assert row_of(chart, "feed")[3].count(WAIT) > row_of(chart, "profile")[3].count(WAIT)
    assert trace.critical_path() == ["user", "profile", "feed"]
    assert "Total Duration: " in chart
    shown = float(chart.splitlines()[3].split("Total Duration: ")[1].split("ms")[0])
    assert shown == pytest.approx(trace.total * 1000, abs=0.01)


@pytest.mark.parametrize("mode", ["all", "all_settled", "flow"])
async def test_debug_true_output_has_the_chart_structure(
    ba: Any, mode: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """What debug=True prints is a well-formed chart, one row per task, then
    the critical path and the waits."""

    async def a() -> int:
        await asyncio.sleep(0.05)
        return 1

    async def b(self: Any) -> int:
        value: int = await self.a
        return value

    await getattr(ba, mode)({"a": a, "b": b, "c": lambda: 3}, debug=True)
    err = capsys.readouterr().err
    chart, _, after = err.rstrip("\n").partition("\n\nCritical path: ")
    assert_chart_structure(chart + "\n")
    assert [row[0] for row in rows(chart)] == ["a", "b", "c"]
    path, waits = after.split("\n")
    assert path.startswith("a -> b (") and waits.startswith("Waited on siblings: b ")


async def test_real_chart_of_a_failing_task_and_its_waiters(ba: Any) -> None:
    """The failed task is drawn with ▓, a waiter that fails with it with ░ only,
    a waiter that recovers with ░ then █; statuses follow the durations."""

    async def boom() -> None:
        await asyncio.sleep(0.05)
        raise ValueError("boom")

    async def doomed(self: Any) -> Any:
        return await self.boom

    async def fallback(self: Any) -> str:
        try:
            await self.boom
        except ValueError:
            await asyncio.sleep(0.05)
        return "fallback"

    _, trace = await traced(ba, "all_settled", {"boom": boom, "doomed": doomed, "fallback": fallback})
    chart = trace.waterfall()
    assert_chart_structure(chart)
    boom_row, doomed_row, fallback_row = (row_of(chart, n) for n in ("boom", "doomed", "fallback"))
    assert boom_row[2].endswith(" rejected") and doomed_row[2].endswith(" rejected")
    assert fallback_row[2].endswith("ms")
    # The run takes 100 ms: boom fails at 50 ms, fallback runs 50 ms more.
    assert drawn(boom_row[3], f" *{FAIL}+ +")
    assert drawn(doomed_row[3], f" *{FAIL}*{WAIT}+{FAIL}* +")
    assert doomed_row[1] == fallback_row[1] == "boom"
    assert drawn(fallback_row[3], f" *{RUN}*{WAIT}+{RUN}+ *")
    assert_cells_match_trace(chart, trace)


async def test_real_chart_of_flow_statuses(ba: Any) -> None:
    """ended, cancelled and never-started tasks all get a row with their status."""

    async def slow() -> None:
        await asyncio.sleep(5)

    async def winner(self: Any) -> None:
        await asyncio.sleep(0.05)
        self._end("won")

    result, trace = await traced(ba, "flow", {"slow": slow, "winner": winner})
    assert result == "won"
    chart = trace.waterfall()
    assert_chart_structure(chart)
    assert_cells_match_trace(chart, trace)
    assert row_of(chart, "winner")[2].endswith(" ended")
    assert row_of(chart, "slow")[2].endswith(" cancelled")
    assert set(row_of(chart, "slow")[3].strip()) == {RUN}

    def ender(self: Any) -> None:
        self._end("at once")

    result, trace = await traced(ba, "flow", {"ender": ender, "later": lambda: 1})
    assert result == "at once"
    chart = trace.waterfall()
    assert_chart_structure(chart)
    assert_cells_match_trace(chart, trace)
    assert [row[0] for row in rows(chart)] == ["ender", "later"]
    assert row_of(chart, "later")[2] == "0.0ms cancelled"
    assert row_of(chart, "later")[3] == " " * 60


async def test_real_chart_of_one_task(ba: Any) -> None:
    """A one-task graph: one row, running over (nearly) the whole timeline."""

    async def only() -> int:
        await asyncio.sleep(0.1)
        return 1

    _, trace = await traced(ba, "all", {"only": only})
    chart = trace.waterfall()
    assert_chart_structure(chart)
    ((name, deps, duration, timeline),) = rows(chart)
    assert (name, deps) == ("only", "-")
    assert float(duration[:-2]) >= 95
    # One block of █ as long as the task's share of the run (all of it,
    # unless the machine is very busy).
    assert drawn(timeline, f" *{RUN}+ *")
    assert_cells_match_trace(chart, trace)


SPECIAL_NAMES = [
    "with space",
    "dash-dot.colon:",
    'quote"\'back\\slash',
    "ünïcödé",
    "用户资料",
    "プロフィール",
    "😀emoji",
    "cafe\u0301",
    "tab\there",
    "new\nline",
    "x" * 70,
]


async def test_real_chart_with_special_and_wide_names(ba: Any) -> None:
    """Names with spaces, quotes, accents, CJK, emoji, tabs and newlines: the
    trace keeps them as they are, the chart stays aligned and escapes the
    unprintable ones."""

    def task(i: int) -> Any:
        if i == 0:
            return lambda: sleep_value(0.05, 0)

        async def f(self: Any) -> int:
            value: int = await self[SPECIAL_NAMES[i - 1]]
            return value + 1

        return f

    graph = {name: task(i) for i, name in enumerate(SPECIAL_NAMES)}
    result, trace = await traced(ba, "all", graph)
    assert result[SPECIAL_NAMES[-1]] == len(SPECIAL_NAMES) - 1
    assert list(trace.tasks) == SPECIAL_NAMES
    for i, name in enumerate(SPECIAL_NAMES[1:], 1):
        assert trace.tasks[name].deps == (SPECIAL_NAMES[i - 1],)
    chart = trace.waterfall()
    assert_chart_structure(chart)
    assert_cells_match_trace(chart, trace)
    shown = [name.replace("\t", "\\t").replace("\n", "\\n") for name in SPECIAL_NAMES]
    assert [row[0] for row in rows(chart)] == shown
    assert row_of(chart, "new\\nline")[1] == "tab\\there"
    assert trace.critical_path() == SPECIAL_NAMES
    data = json.loads(json.dumps(trace.to_chrome_trace()))
    assert [e["name"] for e in data["traceEvents"] if e.get("cat") == "task"] == SPECIAL_NAMES


async def sleep_value(seconds: float, value: int) -> int:
    await asyncio.sleep(seconds)
    return value


async def test_real_chart_of_a_long_chain(ba: Any) -> None:
    """200 chained tasks declared dependents first: 200 aligned rows, each waiting
    from the start, the last link ending the chart."""
    n = 200

    def link(i: int) -> Any:
        async def f(self: Any) -> int:
            value: int = await self[f"t{i + 1}"]
            return value + 1

        return f

    graph = {f"t{i}": link(i) for i in range(n - 1)}
    graph[f"t{n - 1}"] = lambda: sleep_value(0.05, 0)
    result, trace = await traced(ba, "all", graph)
    assert result["t0"] == n - 1
    chart = trace.waterfall()
    assert_chart_structure(chart)
    assert_cells_match_trace(chart, trace)
    assert_rows_sorted_by_start(chart, trace)
    body = rows(chart)
    assert len(body) == n
    for name, deps, _, timeline in body:
        if name == f"t{n - 1}":
            assert deps == "-" and drawn(timeline, f" *{RUN}+ *")
        else:
            assert deps == f"t{int(name[1:]) + 1}"
            assert drawn(timeline, f" *{RUN}*{WAIT}+{RUN}* *")
    # t0 starts first and ends last: its row reaches furthest right.
    assert body[0][0] == "t0"
    assert len(body[0][3].rstrip()) == max(len(row[3].rstrip()) for row in body)
    assert trace.critical_path() == [f"t{i}" for i in reversed(range(n))]


async def test_real_chart_at_other_widths(ba: Any) -> None:
    """trace.waterfall(width) of a real run has `width`-column timelines."""
    _, trace = await traced(ba, "all", {"a": lambda: sleep_value(0.05, 1), "b": lambda self: self.a})
    for width in (10, 33, 120):
        assert_chart_structure(trace.waterfall(width), width)
        assert_cells_match_trace(trace.waterfall(width), trace, width)
    assert str(trace) == trace.waterfall(60)


# --- real runs, through each engine: Chrome trace ------------------------------------


def task_events(data: dict[str, Any]) -> list[dict[str, Any]]:
    return [e for e in data["traceEvents"] if e.get("cat") == "task"]


def assert_chrome_trace_of(trace: Trace) -> dict[str, Any]:
    """Round-trips through JSON, one complete event per task (mapping order),
    waits nested in their task, the critical path marked."""
    exported = trace.to_chrome_trace()
    text = json.dumps(exported)
    data: dict[str, Any] = json.loads(text)
    assert data == exported
    assert isinstance(data["traceEvents"], list)
    tasks = task_events(data)
    assert [e["name"] for e in tasks] == list(trace.tasks)
    assert len({e["tid"] for e in tasks}) == len(tasks)
    critical = set(trace.critical_path())
    for event in tasks:
        t = trace.tasks[event["name"]]
        assert event["ph"] == "X"
        assert event["ts"] >= 0 and event["dur"] >= 0
        assert event["ts"] == pytest.approx((t.start - trace.start) * 1e6, abs=1)
        assert event["dur"] == pytest.approx(t.duration * 1e6, abs=1)
        assert event["args"]["status"] == t.status
        assert event["args"]["deps"] == list(t.deps)
        assert event["args"]["critical"] is (t.name in critical)
    spans = {e["tid"]: e for e in tasks}
    for wait in (e for e in data["traceEvents"] if e.get("cat") == "wait"):
        parent = spans[wait["tid"]]
        assert wait["ph"] == "X" and wait["dur"] > 0
        assert parent["ts"] <= wait["ts"]
        assert wait["ts"] + wait["dur"] <= parent["ts"] + parent["dur"] + 1e-6
    assert_waits_do_not_overlap(data)
    return data


def assert_waits_do_not_overlap(data: dict[str, Any]) -> None:
    """The wait events of one thread are disjoint, so every event nests
    (the viewers cannot show events that partly overlap)."""
    by_tid: dict[int, list[tuple[float, float]]] = {}
    for e in data["traceEvents"]:
        if e.get("cat") == "wait":
            by_tid.setdefault(e["tid"], []).append((e["ts"], e["ts"] + e["dur"]))
    for periods in by_tid.values():
        periods.sort()
        for (_, end), (start, _) in zip(periods, periods[1:]):
            assert end <= start + 1e-6, periods


async def test_real_chrome_trace_of_a_diamond(ba: Any) -> None:
    """A diamond's export: one task event per task, the path a → c → d marked, a wait per blocked await."""

    async def a() -> int:
        return await sleep_value(0.05, 1)

    async def b(self: Any) -> int:
        return await self.a + await sleep_value(0.05, 1)

    async def c(self: Any) -> int:
        return await self.a + await sleep_value(0.12, 1)

    async def d(self: Any) -> int:
        return await self.b + await self.c

    _, trace = await traced(ba, "all", {"a": a, "b": b, "c": c, "d": d})
    assert trace.critical_path() == ["a", "c", "d"]
    data = assert_chrome_trace_of(trace)
    marked = [e["name"] for e in task_events(data) if e["args"]["critical"]]
    assert marked == ["a", "c", "d"]
    waits = [e for e in data["traceEvents"] if e.get("cat") == "wait"]
    by_tid = {e["tid"]: e["name"] for e in task_events(data)}
    assert sorted(by_tid[w["tid"]] for w in waits) == ["b", "c", "d", "d"]


async def test_real_chrome_trace_keeps_failed_cancelled_ended_and_never_started_tasks(ba: Any) -> None:
    """Failed, cancelled, ended and never-started tasks each have their complete event."""

    async def slow() -> None:
        await asyncio.sleep(5)

    async def bad() -> None:
        await asyncio.sleep(0.05)
        raise ValueError("bad")

    async def waiter(self: Any) -> None:
        await self.slow

    error, trace = await traced(ba, "all", {"slow": slow, "waiter": waiter, "bad": bad})
    assert isinstance(error, ValueError)
    data = assert_chrome_trace_of(trace)
    assert {e["name"]: e["args"]["status"] for e in task_events(data)} == {
        "slow": "cancelled",
        "waiter": "cancelled",
        "bad": "rejected",
    }

    def ender(self: Any) -> None:
        self._end(1)

    _, trace = await traced(ba, "flow", {"slow": slow, "ender": ender, "never": lambda: 2})
    data = assert_chrome_trace_of(trace)
    assert {e["name"]: e["args"]["status"] for e in task_events(data)} == {
        "slow": "cancelled",
        "ender": "ended",
        "never": "cancelled",
    }
    never = next(e for e in task_events(data) if e["name"] == "never")
    assert never["dur"] == 0


async def test_real_chrome_trace_of_a_gather_over_siblings(ba: Any) -> None:
    """A task gathering two siblings waits on both at once: its wait events still nest."""

    async def gatherer(self: Any) -> list[int]:
        return list(await asyncio.gather(self.fast, self.slow))

    _, trace = await traced(
        ba,
        "all",
        {"fast": lambda: sleep_value(0.05, 1), "slow": lambda: sleep_value(0.1, 2), "gatherer": gatherer},
    )
    assert trace.tasks["gatherer"].deps == ("fast", "slow")
    data = assert_chrome_trace_of(trace)
    tid = next(e["tid"] for e in task_events(data) if e["name"] == "gatherer")
    (wait,) = [e for e in data["traceEvents"] if e.get("cat") == "wait" and e["tid"] == tid]
    # One event, from the start of the gather to the end of the slower sibling.
    assert wait["ts"] < (trace.tasks["fast"].end - trace.start) * 1e6
    assert wait["ts"] + wait["dur"] == pytest.approx((trace.tasks["slow"].end - trace.start) * 1e6, abs=20_000)
    assert trace.critical_path() == ["slow", "gatherer"]


async def test_real_chrome_trace_of_a_long_chain(ba: Any) -> None:
    """500 chained tasks: 500 task events, all on the critical path, 499 waits."""
    n = 500

    def link(i: int) -> Any:
        async def f(self: Any) -> int:
            value: int = await self[f"t{i + 1}"]
            return value + 1

        return f

    graph: dict[str, Any] = {f"t{i}": link(i) for i in range(n - 1)}
    graph[f"t{n - 1}"] = lambda: sleep_value(0.05, 0)
    _, trace = await traced(ba, "all", graph)
    data = assert_chrome_trace_of(trace)
    assert len(task_events(data)) == n
    assert all(e["args"]["critical"] for e in task_events(data))
    assert len([e for e in data["traceEvents"] if e.get("cat") == "wait"]) == n - 1
