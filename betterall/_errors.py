"""The exceptions of betterall's public API."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
import difflib
from typing import Any

__all__ = ("CycleError", "FlowEnd", "UnknownTaskError")


class UnknownTaskError(AttributeError, KeyError):
    """A task asked its context for a sibling that the graph does not have.

    It derives from both :class:`AttributeError` (``self.name``) and
    :class:`KeyError` (``self["name"]``), so code written for either spelling
    catches it.  ``.name`` is the unknown name, ``.suggestion`` the closest
    known task name (``None`` when the graph has no other name to offer).
    """

    def __init__(self, name: str, suggestion: str | None = None) -> None:
        # AttributeError.__init__ would set .name, but a KeyError-style
        # positional signature keeps the exception picklable.
        BaseException.__init__(self, name, suggestion)
        self.name = name
        self.suggestion = suggestion

    @classmethod
    def for_name(cls, name: str, known: Iterable[str]) -> UnknownTaskError:
        """Build the error for ``name``, suggesting the closest of ``known``."""
        known = list(known)
        match = difflib.get_close_matches(name, known, n=1, cutoff=0.0)
        return cls(name, match[0] if match else None)

    def __str__(self) -> str:
        # KeyError.__str__ would repr() the message; say it plainly instead.
        msg = f"unknown task {self.name!r}"
        suggestion = self.suggestion
        if suggestion is None:
            return msg
        if isinstance(self.name, str) and str.__eq__(self.name, suggestion) is True:
            # The same text, and still not found: a str subclass whose hash
            # or == differs from str's, on one side or the other.
            odd = self.name if type(self.name) is not str else suggestion
            return (
                f"{msg}: a task named {suggestion!r} exists, but the name is an instance"
                f" of {type(odd).__qualname__}, a str subclass that hashes or compares"
                " unlike str; name tasks with plain str"
            )
        return f"{msg} (did you mean {suggestion!r}?)"


class CycleError(RuntimeError):
    """A task's wait on a sibling would close a cycle of waits.

    Raised in the task whose ``await`` would close the cycle, instead of
    letting the tasks wait on each other for ever.  ``.cycle`` is the tuple
    of task names along the cycle, starting and ending with that task, e.g.
    ``("a", "b", "a")``.
    """

    def __init__(self, cycle: Sequence[str]) -> None:
        cycle = tuple(cycle)
        super().__init__(cycle)
        self.cycle = cycle

    def __str__(self) -> str:
        return "dependency cycle: " + " -> ".join(self.cycle)


class FlowEnd(BaseException):
    """Raised by ``self._end(value)`` to stop the task that ended a flow.

    It is a :class:`BaseException`, like :class:`asyncio.CancelledError`, so
    that ``except Exception`` blocks in user code do not swallow it.  The
    engine catches it; users see it only if they catch ``BaseException``.
    """

    def __init__(self, value: Any = None) -> None:
        super().__init__(value)
        self.value = value

    def __str__(self) -> str:
        return f"flow ended with {self.value!r}"
