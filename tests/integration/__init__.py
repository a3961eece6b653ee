"""Integration tests: the web examples in real servers (see docs/web.md).

A package, so that this directory's conftest.py is imported as
``integration.conftest`` and does not take the name ``conftest`` from
tests/conftest.py, which other test modules import from.
"""
