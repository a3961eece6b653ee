"""betterall.asgi.CancelOnDisconnect against a scripted ASGI server: the
protocol's corner cases, one at a time (tests/integration/test_disconnect.py
runs it under uvicorn with real clients)."""

from __future__ import annotations

import asyncio
import types
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import pytest

from betterall.asgi import CancelOnDisconnect

HTTP: dict[str, Any] = {"type": "http", "headers": []}
Message = MutableMapping[str, Any]


class Server:
    """A scripted server side: ``receive`` hands out the queued messages
    (blocking when there are none, as a server does), ``send`` records."""

    def __init__(self, *messages: Message) -> None:
        self.inbox: asyncio.Queue[Message] = asyncio.Queue()
        for message in messages:
            self.inbox.put_nowait(message)
        self.reads = 0
        self.sent: list[Message] = []

    async def receive(self) -> Message:
        message = await self.inbox.get()
        self.reads += 1
        return message

    async def send(self, message: Message) -> None:
        self.sent.append(message)

    def disconnect(self) -> None:
        self.inbox.put_nowait({"type": "http.disconnect"})


def body(data: bytes, more: bool = False) -> Message:
    return {"type": "http.request", "body": data, "more_body": more}


async def respond(send: Callable[[Message], Awaitable[None]], text: bytes = b"ok") -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": text})


async def turns(n: int = 5) -> None:
    for _ in range(n):
        await asyncio.sleep(0)


def test_bad_max_body_buffer() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None: ...

    with pytest.raises(TypeError, match="max_body_buffer must be a number of bytes, not str"):
        CancelOnDisconnect(app, max_body_buffer="1")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="not bool"):
        CancelOnDisconnect(app, max_body_buffer=True)
    with pytest.raises(ValueError, match="max_body_buffer must be >= 0, not -1"):
        CancelOnDisconnect(app, max_body_buffer=-1)


@pytest.mark.parametrize("kind", ["lifespan", "websocket"])
async def test_other_scopes_pass_through_untouched(kind: str) -> None:
    got: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        got.extend((scope, receive, send))

    server = Server()
    scope = {"type": kind}
    await CancelOnDisconnect(app)(scope, server.receive, server.send)
    assert got == [scope, server.receive, server.send]


async def test_a_disconnect_cancels_the_handler_and_ends_there() -> None:
    seen: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        assert await receive() == body(b"")
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            seen.append("cancelled")
            raise

    server = Server(body(b""))
    task = asyncio.create_task(CancelOnDisconnect(app)(HTTP, server.receive, server.send))
    await turns()
    server.disconnect()
    await asyncio.wait_for(task, 5)  # no CancelledError reaches the server
    assert seen == ["cancelled"]
    assert task.cancelling() == 0
    assert server.sent == []


async def test_the_graph_in_the_handler_is_cancelled(ba: types.SimpleNamespace) -> None:
    finished: list[str] = []

    async def slow() -> None:
        try:
            await asyncio.sleep(10)
        finally:
            finished.append("slow")

    async def fast() -> str:
        return "done"

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await ba.all({"slow": slow, "fast": fast})

    server = Server(body(b""))
    task = asyncio.create_task(CancelOnDisconnect(app)(HTTP, server.receive, server.send))
    await turns()
    server.disconnect()
    await asyncio.wait_for(task, 5)
    assert finished == ["slow"]


async def test_a_cancellation_from_the_server_still_propagates() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await asyncio.sleep(10)

    server = Server(body(b""))
    task = asyncio.create_task(CancelOnDisconnect(app)(HTTP, server.receive, server.send))
    await turns()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_a_server_cancel_during_ours_is_not_swallowed() -> None:
    """The client leaves and the server cancels too (shutdown): the
    server's cancellation goes on up."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        try:
            await asyncio.sleep(10)
        finally:
            await asyncio.sleep(0.01)  # clean-up that takes a moment

    server = Server(body(b""))
    task = asyncio.create_task(CancelOnDisconnect(app)(HTTP, server.receive, server.send))
    await turns()
    server.disconnect()
    await turns(3)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_a_handler_that_swallows_the_cancellation_finishes() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            pass
        await respond(send, b"late")

    server = Server(body(b""))
    task = asyncio.create_task(CancelOnDisconnect(app)(HTTP, server.receive, server.send))
    await turns()
    server.disconnect()
    await asyncio.wait_for(task, 5)
    assert task.cancelling() == 0  # the request taken back
    assert server.sent[-1]["body"] == b"late"


async def test_a_disconnect_after_the_response_is_complete_cancels_nothing() -> None:
    steps: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        assert await receive() == body(b"")
        await respond(send)
        server.disconnect()  # what uvicorn's receive says once the response is out
        await asyncio.sleep(0.05)  # background work after the response
        steps.append("background done")
        assert await receive() == {"type": "http.disconnect"}

    server = Server(body(b""))
    await asyncio.wait_for(CancelOnDisconnect(app)(HTTP, server.receive, server.send), 5)
    assert steps == ["background done"]


async def test_the_handler_gets_every_message_in_order() -> None:
    chunks = [body(b"a" * 10, True), body(b"b" * 10, True), body(b"c", False)]

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await asyncio.sleep(0.02)  # the watcher reads ahead meanwhile
        got = [await receive() for _ in chunks]
        assert got == chunks
        await respond(send)

    server = Server(*chunks)
    await asyncio.wait_for(CancelOnDisconnect(app)(HTTP, server.receive, server.send), 5)
    assert server.sent[-1]["body"] == b"ok"


async def test_it_reads_ahead_only_up_to_max_body_buffer() -> None:
    chunks = [body(b"x" * 10, True) for _ in range(9)] + [body(b"", False)]
    reads_before_handler: list[int] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await asyncio.sleep(0.02)
        reads_before_handler.append(server.reads)
        for chunk in chunks:
            assert await receive() == chunk
        await respond(send)

    server = Server(*chunks)
    await asyncio.wait_for(
        CancelOnDisconnect(app, max_body_buffer=25)(HTTP, server.receive, server.send), 5
    )
    assert reads_before_handler == [3]  # 30 bytes >= 25: it stops there
    assert server.reads == len(chunks)  # then all of it (the watch after it still waits)


async def test_with_expect_100_continue_it_waits_for_the_handler_to_read() -> None:
    scope = {"type": "http", "headers": [(b"expect", b"100-continue")]}
    reads: list[int] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await asyncio.sleep(0.02)
        reads.append(server.reads)
        assert await receive() == body(b"data")
        await respond(send)

    server = Server(body(b"data"))
    await asyncio.wait_for(CancelOnDisconnect(app)(scope, server.receive, server.send), 5)
    assert reads == [0]


async def test_an_error_of_the_servers_receive_reaches_the_handler() -> None:
    class Broken(Exception):
        pass

    async def receive() -> Message:
        raise Broken("gone wrong")

    async def app(scope: Any, receive: Any, send: Any) -> None:
        with pytest.raises(Broken, match="gone wrong"):
            await receive()
        await respond(send)

    server = Server()
    await asyncio.wait_for(CancelOnDisconnect(app)(HTTP, receive, server.send), 5)
    assert server.sent[-1]["body"] == b"ok"


async def test_concurrent_receives_each_get_a_message() -> None:
    """Starlette reads the body and watches for a disconnect at the same time."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        first, second = await asyncio.gather(receive(), receive())
        assert sorted([first["type"], second["type"]]) == ["http.disconnect", "http.request"]

    server = Server()
    task = asyncio.create_task(CancelOnDisconnect(app)(HTTP, server.receive, server.send))
    await turns()
    server.inbox.put_nowait(body(b"payload"))
    await turns()
    server.disconnect()
    await asyncio.wait_for(task, 5)  # cancelled by the disconnect, or done: either way no error


async def test_the_watcher_is_gone_by_the_next_loop_turn() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await respond(send)

    server = Server(body(b""))
    await CancelOnDisconnect(app)(HTTP, server.receive, server.send)
    watchers = [t for t in asyncio.all_tasks() if "disconnect watcher" in t.get_name()]
    assert len(watchers) == 1 and watchers[0].cancelling()  # being cancelled: it ends by itself
    await turns(2)
    assert watchers[0].cancelled()
    assert not [t for t in asyncio.all_tasks() if "disconnect watcher" in t.get_name()]
