# pyright: strict
"""betterall.asgi.CancelOnDisconnect wraps any ASGI app and is accepted by
Starlette's and FastAPI's add_middleware."""

from fastapi import FastAPI
from starlette.applications import Starlette
from starlette.middleware import Middleware

from betterall.asgi import CancelOnDisconnect

starlette_app = Starlette(middleware=[Middleware(CancelOnDisconnect)])
starlette_app.add_middleware(CancelOnDisconnect, max_body_buffer=64 * 1024)

fastapi_app = FastAPI()
fastapi_app.add_middleware(CancelOnDisconnect)

wrapped = CancelOnDisconnect(fastapi_app)
