"""ASGI middleware that cancels a request's handler when its client hangs up.

uvicorn (and with it Starlette and FastAPI) keeps running a handler whose
client has disconnected: the response is dropped, but every upstream call
of the handler's graph runs to its end.  :class:`CancelOnDisconnect` does
for ASGI what aiohttp's ``handler_cancellation=True`` does: when the server
reports ``http.disconnect`` before the response is complete, the handler's
task is cancelled, so a betterall call inside it cancels its tasks (and
their HTTP calls) and returns once they have finished.

How it watches without taking the body away from the handler: a small
watcher task is the only reader of the server's ``receive``.  It hands
every ``http.request`` message on to the handler unchanged, through the
``receive`` the handler gets, and keeps reading after the body is complete,
which is where the server answers ``http.disconnect`` once the client has
gone.  It reads ahead of the handler only up to ``max_body_buffer`` bytes of
body, and not at all before the handler first reads when the client sent
``Expect: 100-continue`` (reading is what makes the server answer
``100 Continue``).

The cancellation ends at this middleware: the handler's ``CancelledError``
is not passed to the server (uvicorn would log it as "Exception in ASGI
application"), and the middleware returns as a handler of a gone client
does.  A cancellation that comes from elsewhere (the server shutting down,
an outer timeout) propagates as before.  Only the standard library is used.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

__all__ = ("CancelOnDisconnect",)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_DISCONNECT: dict[str, Any] = {"type": "http.disconnect"}


class CancelOnDisconnect:
    """Cancel an HTTP request's handler when its client disconnects.

    ``app = CancelOnDisconnect(app)``, or with Starlette and FastAPI
    ``app.add_middleware(CancelOnDisconnect)``.  Only ``http`` requests are
    watched; lifespan and websocket scopes pass through untouched.

    ``max_body_buffer`` bounds how many bytes of request body the watcher
    reads ahead of the handler (1 MiB by default); past it, a disconnect is
    noticed once the handler reads on.
    """

    __slots__ = ("app", "max_body_buffer")

    def __init__(self, app: ASGIApp, *, max_body_buffer: int = 1 << 20) -> None:
        if isinstance(max_body_buffer, bool) or not isinstance(max_body_buffer, int):
            raise TypeError(
                f"max_body_buffer must be a number of bytes, not {type(max_body_buffer).__name__}"
            )
        if max_body_buffer < 0:
            raise ValueError(f"max_body_buffer must be >= 0, not {max_body_buffer}")
        self.app = app
        self.max_body_buffer = max_body_buffer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        task = asyncio.current_task()
        if task is None:  # pragma: no cover - an ASGI server always runs apps in a task
            await self.app(scope, receive, send)
            return
        expects_continue = any(
            name.lower() == b"expect" and value.lower() == b"100-continue"
            for name, value in scope.get("headers", ())
        )
        request = _Request(task, receive, send, self.max_body_buffer, expects_continue)
        watcher = asyncio.get_running_loop().create_task(
            request.watch(), name=f"betterall disconnect watcher of {task.get_name()}"
        )
        try:
            await self.app(scope, request.receive, request.send)
        except asyncio.CancelledError:
            # Ours (the client left) unless a cancellation from elsewhere
            # is pending too: then it goes on up, as it would without us.
            if not request.cancelled or task.uncancel() > 0:
                raise
        else:
            if request.cancelled:
                # The handler swallowed our cancellation (or returned
                # before it arrived): take the request back.
                task.uncancel()
        finally:
            request.finished = True
            # Not awaited: it ends on the loop's next turn by itself, never
            # with an error to retrieve, and holds nothing of the handler's.
            # Awaiting it would cost every request a loop turn (about 5 % of
            # a trivial endpoint's time under uvicorn).
            watcher.cancel()


class _Request:
    """The state of one watched request: the body read ahead of the
    handler, and whether its client has gone."""

    def __init__(
        self,
        task: asyncio.Task[Any],
        receive: Receive,
        send: Send,
        max_buffer: int,
        expects_continue: bool,
    ) -> None:
        self._task = task
        self._receive = receive
        self._send = send
        self._max_buffer = max_buffer
        self._messages: deque[Message] = deque()
        self._buffered = 0  # bytes of body in _messages
        self._error: BaseException | None = None  # what the server's receive raised
        self._arrived: asyncio.Future[None] | None = None  # the handler waits for a message
        self._room: asyncio.Future[None] | None = None  # the watcher waits for the handler
        self._handler_read = not expects_continue
        self.disconnected = False
        self.complete = False  # the response has been sent in full
        self.finished = False  # the handler has returned
        self.cancelled = False  # the middleware cancelled the handler's task

    async def watch(self) -> None:
        """The one reader of the server's ``receive``."""
        loop = asyncio.get_running_loop()
        while True:
            if not self._handler_read or (self._messages and self._buffered >= self._max_buffer):
                self._room = loop.create_future()
                await self._room
                continue
            try:
                message = await self._receive()
            except Exception as exc:  # noqa: BLE001 (handed to the handler's next receive)
                self._error = exc
                self._wake()
                return
            if message["type"] == "http.disconnect":
                self.disconnected = True
                self._wake()
                if not (self.complete or self.finished):
                    self.cancelled = True
                    self._task.cancel("the client disconnected")
                return
            self._messages.append(message)
            self._buffered += len(message.get("body", b""))
            self._wake()

    def _wake(self) -> None:
        arrived, self._arrived = self._arrived, None
        if arrived is not None and not arrived.done():
            arrived.set_result(None)

    def _make_room(self) -> None:
        room, self._room = self._room, None
        if room is not None and not room.done():
            room.set_result(None)

    async def receive(self) -> Message:
        """The ``receive`` the handler gets: the server's messages, in order."""
        if not self._handler_read:
            self._handler_read = True
            self._make_room()
        while not self._messages:
            if self._error is not None:
                raise self._error
            if self.disconnected:
                return dict(_DISCONNECT)
            if self._arrived is None:
                self._arrived = asyncio.get_running_loop().create_future()
            await asyncio.shield(self._arrived)
        message = self._messages.popleft()
        self._buffered -= len(message.get("body", b""))
        self._make_room()
        return message

    async def send(self, message: Message) -> None:
        """The ``send`` the handler gets: notes when the response is complete
        (after that, the server's ``http.disconnect`` only says so)."""
        kind = message["type"]
        if (kind == "http.response.body" and not message.get("more_body", False)) or (
            kind == "http.response.pathsend"
        ):
            self.complete = True
        await self._send(message)
