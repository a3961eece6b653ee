"""Type stubs of the C engine (src/_cengine.c); same API as betterall._py."""

from collections.abc import Callable, Coroutine, Mapping
from typing import Any

from ._trace import Trace
from ._types import Settled

def all(
    tasks: Mapping[str, Callable[..., Any]],
    *,
    debug: bool | Callable[[Trace], object] = False,
    timeout: float | None = None,
) -> Coroutine[Any, Any, dict[str, Any]]: ...
def all_settled(
    tasks: Mapping[str, Callable[..., Any]],
    *,
    debug: bool | Callable[[Trace], object] = False,
    timeout: float | None = None,
) -> Coroutine[Any, Any, dict[str, Settled[Any]]]: ...
def flow(
    tasks: Mapping[str, Callable[..., Any]],
    *,
    debug: bool | Callable[[Trace], object] = False,
    timeout: float | None = None,
) -> Coroutine[Any, Any, Any]: ...
