"""Shared parts of the web examples: a fake upstream service on loopback, the
HTTP clients that call it, the handler logic (naive, betterall and
hand-optimised twins) and small helpers to run servers in-process.

The framework apps are ``examples/starlette_app.py``, ``examples/fastapi_app.py``
and ``examples/aiohttp_app.py``; see docs/web.md.
"""
