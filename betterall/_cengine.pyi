"""Type stubs of the C engine (src/_cengine.c); same API as betterall._py."""

from collections.abc import Awaitable, Callable, Coroutine, Mapping
from typing import Any, NoReturn

from ._prepare import Bind
from ._trace import Trace
from ._types import Outcome, Signal

class Context:
    """``self`` in a task: the lazy proxy to its siblings; the base of the
    class form's context types (not instantiable from Python)."""

    @property
    def _name(self) -> str: ...
    @property
    def _signal(self) -> Signal: ...
    def _end(self, value: object = None) -> NoReturn: ...
    def __getattr__(self, name: str) -> Awaitable[Any]: ...
    def __getitem__(self, name: str) -> Awaitable[Any]: ...

def all(
    tasks: Mapping[str, Callable[[Any], Any] | Callable[[], Any]],
    *,
    debug: bool | str | Callable[[Trace], object] = False,
    timeout: float | None = None,
    _bind: Bind | None = None,
) -> Coroutine[Any, Any, dict[str, Any]]: ...
def all_settled(
    tasks: Mapping[str, Callable[[Any], Any] | Callable[[], Any]],
    *,
    debug: bool | str | Callable[[Trace], object] = False,
    timeout: float | None = None,
    _bind: Bind | None = None,
) -> Coroutine[Any, Any, dict[str, Outcome[Any]]]: ...
def flow(
    tasks: Mapping[str, Callable[[Any], Any] | Callable[[], Any]],
    *,
    debug: bool | str | Callable[[Trace], object] = False,
    timeout: float | None = None,
    _bind: Bind | None = None,
) -> Coroutine[Any, Any, Any]: ...
