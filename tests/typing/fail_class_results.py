# pyright: strict
"""Reading the results of the class form: each line marked ``# error`` must
be reported by both checkers (tests/test_typing.py), and no other line."""

from __future__ import annotations

import betterall as ba


class User:
    name: str = "ada"


class Dashboard(ba.Graph):
    auth: str

    @ba.task
    async def user(self) -> User:
        return User()

    @ba.task
    def count(self) -> int:
        return 1


class Premium(Dashboard):
    @ba.task
    def badge(self) -> str:
        return "gold"


class Other(ba.Graph):
    @ba.task
    def user(self) -> User:
        return User()


async def result_used_as_wrong_type() -> None:
    r = await Dashboard(auth="t").all()
    name: str = r[Dashboard.user]  # error
    print(name)


async def task_of_an_unrelated_graph() -> None:
    r = await Dashboard(auth="t").all()
    print(r[Other.user])  # error


async def subclass_task_on_base_results() -> None:
    r = await Dashboard(auth="t").all()
    print(r[Premium.badge])  # error


async def results_indexed_by_position() -> None:
    r = await Dashboard(auth="t").all()
    print(r[0])  # error


async def dict_form_results_indexed_by_task() -> None:
    r = await ba.all({"user": lambda: User()})
    print(r[Dashboard.user])  # error


async def settled_used_as_the_value() -> None:
    s = await Dashboard(auth="t").all_settled()
    user: User = s[Dashboard.user]  # error
    print(user)


async def settled_value_of_wrong_type() -> None:
    s = await Dashboard(auth="t").all_settled()
    count: str | None = s[Dashboard.count].value  # error
    print(count)


async def settled_value_may_be_none() -> None:
    s = await Dashboard(auth="t").all_settled()
    print(s[Dashboard.user].value.name)  # error


async def unknown_run_option() -> None:
    await Dashboard(auth="t").all(timout=1)  # error


def needs_premium_results(results: ba.Results[Premium]) -> None:
    print(results[Premium.badge])


async def base_results_where_subclass_results_are_needed() -> None:
    needs_premium_results(await Dashboard(auth="t").all())  # error
