"""FastAPI integration (``pip install 'betterall[fastapi]'``).

``graph_dependency(Dashboard)`` turns a :class:`betterall.Graph` class into
a FastAPI dependency: its inputs become the dependency's parameters, which
FastAPI fills as it fills any dependency's (path, query, header, cookie and
body parameters with its own validation and 422 errors, ``Depends(...)``,
``Request``...), and its value is the run's typed :class:`betterall.Results`::

    class Dashboard(ba.Graph):
        user_id: int                                    # a query parameter
        token: Annotated[str, Header()]
        db: Annotated[Database, Depends(get_db)]

        @ba.task
        async def user(self) -> User: ...

    @app.get("/dashboard")
    async def dashboard(
        r: Annotated[ba.Results[Dashboard], Depends(graph_dependency(Dashboard))],
    ) -> Page:
        return Page(user=r[Dashboard.user], ...)

Nothing else imports this module; it needs FastAPI only for the parameter
markers the user writes (the dependency itself is a plain async function).
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Awaitable, Callable
from typing import Any, Literal, TypeVar, overload

try:
    import fastapi  # noqa: F401  (the extra this module is for)
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "betterall.fastapi needs FastAPI: pip install 'betterall[fastapi]'"
    ) from exc

from ._fastapi_route import GraphRoute
from ._graph import Graph, Results, SettledResults
from ._prepare import check_debug, check_timeout
from ._trace import Trace

__all__ = ("GraphRoute", "graph_dependency")

G = TypeVar("G", bound=Graph)


def _input_annotations(graph: type[Graph]) -> dict[str, Any]:
    """The annotations of the graph's inputs, evaluated (FastAPI reads the
    markers inside ``Annotated``), a subclass's over its bases'."""
    hints: dict[str, Any] = {}
    for klass in reversed(graph.__mro__):
        if isinstance(klass, type) and issubclass(klass, Graph) and klass is not Graph:
            try:
                hints.update(inspect.get_annotations(klass, eval_str=True))
            except NameError as exc:
                raise TypeError(
                    f"graph_dependency({graph.__qualname__}): an input annotation of"
                    f" {klass.__qualname__} names something that is not defined at run"
                    f" time ({exc}); FastAPI needs every input's type"
                ) from exc
    return hints


@overload
def graph_dependency(
    graph: type[G],
    *,
    mode: Literal["all"] = ...,
    timeout: float | None = ...,
    debug: bool | str | Callable[[Trace], object] = ...,
) -> Callable[..., Awaitable[Results[G]]]: ...
@overload
def graph_dependency(
    graph: type[G],
    *,
    mode: Literal["all_settled"],
    timeout: float | None = ...,
    debug: bool | str | Callable[[Trace], object] = ...,
) -> Callable[..., Awaitable[SettledResults[G]]]: ...
def graph_dependency(
    graph: type[G],
    *,
    mode: Literal["all", "all_settled"] = "all",
    timeout: float | None = None,
    debug: bool | str | Callable[[Trace], object] = False,
) -> Callable[..., Awaitable[Any]]:
    """A FastAPI dependency that runs ``graph`` per request.

    Its parameters are the graph's inputs, with their annotations (resolved,
    also under ``from __future__ import annotations``) and defaults, so
    FastAPI resolves and validates them before the graph starts; inputs
    with a ``default_factory`` are left to the class.  Its value is
    ``await graph(**inputs).all()`` (or ``.all_settled()`` with
    ``mode="all_settled"``), with ``timeout`` and ``debug`` as there.  An
    error of the run propagates as from any dependency: an
    ``HTTPException`` raised by a task becomes its response.
    """
    if not (isinstance(graph, type) and issubclass(graph, Graph)) or graph is Graph:
        raise TypeError(
            f"graph_dependency() takes a subclass of betterall.Graph, not {graph!r}"
        )
    if mode not in ("all", "all_settled"):
        raise ValueError(f"mode must be 'all' or 'all_settled', not {mode!r}")
    check_timeout(timeout)
    check_debug(debug)
    hints = _input_annotations(graph)
    parameters = []
    for field in dataclasses.fields(graph):  # type: ignore[arg-type]
        if not field.init or field.default_factory is not dataclasses.MISSING:
            continue
        default = inspect.Parameter.empty if field.default is dataclasses.MISSING else field.default
        parameters.append(
            inspect.Parameter(
                field.name,
                inspect.Parameter.KEYWORD_ONLY,
                default=default,
                annotation=hints.get(field.name, Any),
            )
        )

    async def dependency(**inputs: Any) -> Any:
        run = getattr(graph(**inputs), mode)
        return await run(timeout=timeout, debug=debug)

    result_type = Results[graph] if mode == "all" else SettledResults[graph]  # type: ignore[valid-type]
    dependency.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        parameters, return_annotation=result_type
    )
    dependency.__name__ = f"{graph.__name__}_{mode}"
    dependency.__qualname__ = f"graph_dependency({graph.__qualname__})"
    dependency.__doc__ = f"Run {graph.__qualname__}.{mode}() with the request's inputs."
    return dependency
