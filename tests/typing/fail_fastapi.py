# pyright: strict
"""Wrong uses of betterall.fastapi.graph_dependency."""

from __future__ import annotations

import betterall as ba
from betterall.fastapi import GraphRoute, graph_dependency


class Page(ba.Graph):
    @ba.task
    async def user(self) -> int:
        return 1


graph_dependency(int)  # error
graph_dependency(Page, mode="flow")  # error
graph_dependency(Page, timeout="soon")  # error


class BadRoute(GraphRoute):
    timeout = "soon"  # error
