# pyright: strict
"""The dict form and the shared value types: each line marked ``# error``
must be reported by both checkers (tests/test_typing.py), and no other line."""

from __future__ import annotations

from typing import Any

import betterall as ba


async def fetch() -> int:
    return 1


def two_parameters(self: Any, extra: int) -> int:
    return extra


def show(trace: int) -> None:
    print(trace)


async def task_with_two_required_parameters() -> None:
    await ba.all({"x": two_parameters})  # error


async def coroutine_object_instead_of_function() -> None:
    await ba.all({"x": fetch()})  # error


async def tasks_not_a_mapping() -> None:
    await ba.all([fetch])  # error


async def task_name_not_a_str() -> None:
    await ba.all_settled({1: fetch})  # error


async def timeout_not_a_number() -> None:
    await ba.flow({"x": fetch}, timeout="1")  # error


async def debug_not_bool_or_callable() -> None:
    await ba.all({"x": fetch}, debug=b"yes")  # error


async def debug_callable_of_wrong_type() -> None:
    await ba.all({"x": fetch}, debug=show)  # error


async def settled_results_read_as_values() -> None:
    outcomes = await ba.all_settled({"x": fetch})
    value: int = outcomes["x"]  # error
    print(value)


def settled_of_wrong_type() -> None:
    done: ba.Settled[str] = ba.Settled.fulfilled(1)  # error
    print(done)


def settled_with_unknown_status() -> None:
    print(ba.Settled("done", 1))  # error


def value_of_a_settled_is_optional(outcome: ba.Settled[int]) -> int:
    return outcome.value + 1  # error


def reason_of_a_settled_is_optional(outcome: ba.Settled[int]) -> None:
    raise outcome.reason  # error


def fulfilled_of_the_wrong_type() -> None:
    done: ba.Fulfilled[str] = ba.Fulfilled(1)  # error
    print(done)


def in_task_on_a_non_callable() -> None:
    print(ba.in_task(3))  # error


def cycle_read_as_str(exc: ba.CycleError) -> None:
    first: str = exc.cycle  # error
    print(first)
