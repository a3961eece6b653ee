# pyright: strict
"""The dict form, written as a user writes it: both checkers must accept
every line, and every ``assert_type`` must hold."""

from __future__ import annotations

import asyncio
from typing import Any, Literal, NoReturn, assert_type

import betterall as ba


async def fetch_user(auth: str) -> dict[str, int]:
    await asyncio.sleep(0)
    return {"id": len(auth)}


async def fetch_config() -> dict[str, str]:
    return {"theme": "dark"}


# A task function of the dict form takes the context (typed Any: the dict
# form knows no task names statically) or no argument at all.
async def profile(self: Any) -> str:
    user = await self.user
    assert_type(user, Any)
    assert_type(self._name, Any)
    return f"profile of {user['id']}"


def sync_task(self: Any) -> int:
    return 1


async def watchdog(self: Any) -> None:
    signal = self._signal
    if signal.aborted:
        return


async def dashboard(auth: str) -> tuple[dict[str, int], str]:
    r = await ba.all(
        {
            "user": lambda self: fetch_user(auth),
            "config": fetch_config,
            "profile": profile,
            "count": sync_task,
            "watchdog": watchdog,
            "real_task": ba.in_task(fetch_config),
        },
        timeout=2.5,
    )
    assert_type(r, dict[str, Any])
    user: dict[str, int] = r["user"]
    text: str = r["profile"]
    return user, text


async def settled() -> None:
    async def boom() -> int:
        raise ValueError("boom")

    outcomes = await ba.all_settled({"ok": fetch_config, "bad": boom}, timeout=None)
    assert_type(outcomes, dict[str, ba.Fulfilled[Any] | ba.Rejected])
    for name, outcome in outcomes.items():
        assert_type(name, str)
        assert_type(outcome.status, Literal["fulfilled", "rejected"])
        assert_type(outcome.ok, bool)
        assert_type(outcome.reason, BaseException | None)
        if outcome.ok:
            print(outcome.value)
        elif isinstance(outcome.reason, ValueError):
            print("failed:", outcome.reason.args)

    done = ba.Settled.fulfilled(3)
    assert_type(done, ba.Fulfilled[int])
    assert_type(done.value, int)
    failed = ba.Settled.rejected(KeyError("k"))
    assert_type(failed, ba.Rejected)
    assert_type(failed.reason, BaseException)
    manual: ba.Settled[str] = ba.Settled("fulfilled", "x")
    assert manual == ba.Settled("fulfilled", value="x", reason=None)
    assert_type(ba.Fulfilled("y"), ba.Fulfilled[str])
    assert_type(ba.Rejected(ValueError()), ba.Rejected)


def narrowed(outcome: ba.Fulfilled[int] | ba.Rejected) -> int:
    assert_type(outcome.unwrap(), int)
    assert_type(outcome.value, int | None)
    if isinstance(outcome, ba.Rejected):
        assert_type(outcome.reason, BaseException)
        assert_type(outcome.value, None)
        raise outcome.reason
    assert_type(outcome, ba.Fulfilled[int])
    assert_type(outcome.status, Literal["fulfilled"])
    assert_type(outcome.reason, None)
    return outcome.value + 1


def matched(outcome: ba.Fulfilled[str] | ba.Rejected) -> str:
    match outcome:
        case ba.Fulfilled(value):
            assert_type(value, str)
            return value
        case ba.Rejected(reason):
            assert_type(reason, BaseException)
            return type(reason).__name__


def as_json(outcome: ba.Settled[int]) -> dict[str, Any]:
    form: dict[str, Any] = outcome.to_dict()
    assert dict(outcome) == form
    return form


async def race() -> str:
    async def fast(self: Any) -> NoReturn:
        await asyncio.sleep(0.01)
        self._end("fast")
        raise AssertionError("unreachable")

    async def slow(self: Any) -> None:
        await asyncio.sleep(1)
        self._end("slow")

    winner = await ba.flow({"fast": fast, "slow": slow}, debug=False)
    assert_type(winner, Any)
    return str(winner)


def show(trace: ba.Trace) -> None:
    assert_type(trace.total, float)
    assert_type(trace.start, float)
    assert_type(trace.tasks, dict[str, ba.TaskTrace])
    assert_type(trace.critical_path(), list[str])
    assert_type(trace.waterfall(width=40), str)
    assert_type(trace.to_chrome_trace(), dict[str, Any])
    for task in trace.tasks.values():
        assert_type(task, ba.TaskTrace)
        assert_type(task.name, str)
        assert_type(task.duration, float)
        assert_type(task.status, Literal["fulfilled", "rejected", "cancelled", "ended", "fallback"])
        assert_type(task.deps, tuple[str, ...])
        assert_type(task.waits, tuple[tuple[float, float], ...])


async def traced() -> None:
    await ba.all({"config": fetch_config}, debug=show)
    await ba.all({"config": fetch_config}, debug=True)
    await ba.all_settled({"config": fetch_config}, debug=lambda trace: print(trace.total))
    traces: list[ba.Trace] = []
    await ba.flow({"config": fetch_config}, debug=traces.append)


async def errors() -> None:
    async def loop_a(self: Any) -> int:
        return int(await self.b)

    try:
        await ba.all({"a": loop_a, "b": lambda self: self.a})
    except ba.CycleError as exc:
        assert_type(exc.cycle, tuple[str, ...])
    except ba.UnknownTaskError as exc:
        # Inherited from AttributeError: str | None in recent typeshed, str
        # in older ones (so no assert_type here).
        name: str | None = exc.name
        print(name)
        assert_type(exc.suggestion, str | None)
    try:
        await ba.flow({"a": loop_a})
    except ba.FlowEnd as end:  # a BaseException
        assert_type(end.value, Any)

    signal = ba.Signal()
    assert_type(signal.aborted, bool)
    assert_type(signal.reason, BaseException | None)
    signal.raise_if_aborted()
    assert_type(ba.__version__, str)


def run() -> None:
    asyncio.run(dashboard("token"))


def read_row() -> dict[str, int]:
    return {"id": 1}


async def threaded() -> None:
    wrapped = ba.in_thread(read_row)
    assert_type(await wrapped(), dict[str, int])
    r = await ba.all({"row": ba.in_thread(read_row)})
    print(r["row"])
