# pyright: strict
"""Wrong uses of betterall.asgi.CancelOnDisconnect."""

from starlette.applications import Starlette

from betterall.asgi import CancelOnDisconnect

app = Starlette()
app.add_middleware(CancelOnDisconnect, max_body_buffer="1 MiB")  # error
CancelOnDisconnect(app, 1024)  # error
