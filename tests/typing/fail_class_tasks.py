# pyright: strict
"""Declaring the tasks of the class form: each line marked ``# error`` must
be reported by both checkers (tests/test_typing.py), and no other line."""

from __future__ import annotations

import betterall as ba


class User:
    id: int = 1


class Config:
    theme: str = "dark"


class Dashboard(ba.Graph):
    auth: str

    @ba.task
    async def user(self) -> User:
        return User()

    @ba.task
    def config(self) -> Config:
        return Config()

    @ba.task
    async def sibling_used_as_wrong_type(self) -> str:
        user = await self.user
        return user.id  # error

    @ba.task
    async def sync_sibling_used_as_wrong_type(self) -> int:
        config = await self.config
        return config.theme + 1  # error

    @ba.task
    async def sibling_not_awaited(self) -> int:
        user: User = self.user  # error
        return user.id

    @ba.task
    async def unknown_sibling(self) -> int:
        return await self.usr  # error

    @ba.task
    async def name_used_as_wrong_type(self) -> int:
        return self._name + 1  # error

    @ba.task
    async def signal_used_wrongly(self) -> bool:
        return self._signal.aborted()  # error

    @ba.task
    async def wrong_return(self) -> int:
        return "not an int"  # error


class Premium(Dashboard):
    @ba.task
    async def user(self) -> str:  # error
        return "an override must keep the result type"


class ExtraParameter(ba.Graph):
    @ba.task  # error
    async def user(self, auth: str) -> str:
        return auth


class NotAGraph:
    @ba.task  # error
    async def user(self) -> int:
        return 1


class ReservedName(ba.Graph):
    @ba.task
    async def flow(self) -> int:  # error
        return 1


class InputAndTask(ba.Graph):
    # Both checkers catch it, on different lines: basedpyright on the input
    # (obscured by the task), mypy on the task (a redefinition).
    user: int  # error: basedpyright only
    @ba.task  # error: mypy only
    async def user(self) -> int:
        return 1


def assign_to_a_task(graph: Dashboard) -> None:
    graph.user = User()  # error


# Not caught by either checker (limitations, so not cases here; each fails
# at run time instead):
# - a task read on the graph object outside a run, `await Dashboard(auth="t").user`,
#   is typed like a sibling read inside a task, but raises AttributeError;
# - a task name starting with "_" (ValueError when the class is defined);
# - self._end() in a task run by .all() or .all_settled() (RuntimeError);
# - a cycle of sibling awaits (CycleError).
