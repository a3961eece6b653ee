"""Build script: setuptools reads the metadata from pyproject.toml; this
file adds the C engine.

Environment switches:
  BETTERALL_NO_EXTENSIONS=1  build without the C engine (pure Python only)
  BETTERALL_SANITIZE=1       -fsanitize=address,undefined (see scripts/sanitize.sh)
  BETTERALL_DEBUG_BUILD=1    -O0 -g3, invariant checks and live-object counters
                             (betterall._cengine._live_objects())

The flags below are gcc/clang flags; MSVC (Windows wheels) gets none of them
and compiles with its defaults (see build_ext below).
"""

import os

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext


def flag(name: str) -> bool:
    return os.environ.get(name, "") not in ("", "0")


extra_compile_args = ["-std=c11", "-Wall", "-Wextra", "-Wno-unused-parameter",
                      "-Wno-missing-field-initializers"]
extra_link_args = []
undef_macros = []
define_macros = []
if flag("BETTERALL_SANITIZE"):
    extra_compile_args += ["-fsanitize=address,undefined", "-fno-omit-frame-pointer",
                           "-fno-sanitize-recover=undefined", "-O1", "-g"]
    extra_link_args += ["-fsanitize=address,undefined"]
if flag("BETTERALL_DEBUG_BUILD"):
    extra_compile_args += ["-O0", "-g3"]
    undef_macros += ["NDEBUG"]
    define_macros += [("BA_DEBUG", "1")]

ext_modules = []
if not flag("BETTERALL_NO_EXTENSIONS"):
    ext_modules.append(
        Extension(
            "betterall._cengine",
            sources=["src/_cengine.c"],
            depends=[os.path.join("src", f) for f in
                     ("state.h", "node.h", "sibling.h", "context.h", "graph.h")],
            extra_compile_args=extra_compile_args,
            extra_link_args=extra_link_args,
            undef_macros=undef_macros,
            define_macros=define_macros,
        )
    )


class BuildExt(build_ext):
    """Passes the gcc/clang flags above only to compilers that take them:
    MSVC's cl would warn about each one it does not know (-std=c11, -Wextra,
    -Wno-...) and read -Wall as /Wall (every warning MSVC has)."""

    def build_extensions(self) -> None:
        if self.compiler.compiler_type == "msvc":
            for ext in self.extensions:
                ext.extra_compile_args = []
                ext.extra_link_args = []
        super().build_extensions()


setup(ext_modules=ext_modules, cmdclass={"build_ext": BuildExt})
