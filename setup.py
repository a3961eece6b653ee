"""Build script: setuptools reads the metadata from pyproject.toml.

The C engine (``src/``) is added here as an extension module when it lands;
until then the package is pure Python.
"""

from setuptools import setup

setup()
