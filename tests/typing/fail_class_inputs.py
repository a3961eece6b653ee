# pyright: strict
"""The class form's inputs: each line marked ``# error`` must be reported by
both checkers (tests/test_typing.py), and no other line."""

from __future__ import annotations

import betterall as ba


class Dashboard(ba.Graph):
    auth: str
    retries: int = 3

    @ba.task
    async def user(self) -> str:
        return self.auth


class BadDefault(ba.Graph):
    retries: int = "3"  # error


def missing_required_input() -> None:
    Dashboard()  # error


def unknown_input_keyword() -> None:
    Dashboard(auth="t", bogus=1)  # error


def wrong_input_type() -> None:
    Dashboard(auth=1)  # error


def input_given_positionally() -> None:
    Dashboard("t")  # error


def wrong_type_for_defaulted_input() -> None:
    Dashboard(auth="t", retries="many")  # error


def input_read_as_wrong_type(graph: Dashboard) -> None:
    count: int = graph.auth  # error
    print(count)
