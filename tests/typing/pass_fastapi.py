# pyright: strict
"""betterall.fastapi.graph_dependency keeps the graph's result types."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any, assert_type

from fastapi import APIRouter, Depends, FastAPI, Header

import betterall as ba
from betterall.fastapi import GraphRoute, graph_dependency


class Page(ba.Graph):
    token: Annotated[str, Header()]

    @ba.task
    async def user(self) -> int:
        return len(self.token)


assert_type(graph_dependency(Page), Callable[..., Awaitable[ba.Results[Page]]])
assert_type(
    graph_dependency(Page, mode="all_settled", timeout=0.5, debug="GET /page"),
    Callable[..., Awaitable[ba.SettledResults[Page]]],
)

app = FastAPI()


@app.get("/page")
async def page(r: Annotated[ba.Results[Page], Depends(graph_dependency(Page))]) -> dict[str, Any]:
    assert_type(r[Page.user], int)
    return {"user": r[Page.user]}


# GraphRoute: a route class; its options are class attributes.
class TracedRoute(GraphRoute):
    debug = True
    timeout = 2.0


class HookedRoute(GraphRoute):
    @staticmethod
    def debug(trace: ba.Trace) -> None:
        print(trace.critical_path())


router = APIRouter(route_class=TracedRoute)
app.router.route_class = HookedRoute
app.include_router(APIRouter(route_class=GraphRoute))
