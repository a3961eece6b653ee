"""Which engine `import betterall` picks, and the fallback."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

import betterall


def run(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-W", "error", "-c", code],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=60,
    )


def test_no_extensions_switch_selects_the_pure_python_engine():
    """BETTERALL_NO_EXTENSIONS=1 picks the pure-Python engine, silently."""
    r = run("import betterall; print(betterall.ENGINE)", BETTERALL_NO_EXTENSIONS="1")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "python"
    assert r.stderr == ""


@pytest.mark.skipif("c" not in betterall._engines(), reason="C engine not built")
def test_the_c_engine_is_the_default_when_built():
    """With the extension built, the C engine is used."""
    r = run("import betterall; print(betterall.ENGINE, betterall.all.__module__)",
            BETTERALL_NO_EXTENSIONS="")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["c", "betterall._cengine"]


# Makes betterall._cengine importable-looking but failing, as an extension
# built for another Python or missing a shared library does.
_BROKEN_EXTENSION = """
import importlib.abc, importlib.machinery, sys
class Broken(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, name, path=None, target=None):
        if name == "betterall._cengine":
            return importlib.machinery.ModuleSpec(name, self)
        return None
    def create_module(self, spec):
        raise ImportError("undefined symbol: PyFoo_Bar")
    def exec_module(self, module):
        raise AssertionError("never reached")
sys.meta_path.insert(0, Broken())
"""

_IMPORT_RECORDING_WARNINGS = """
import warnings
with warnings.catch_warnings(record=True) as w:
    warnings.simplefilter("always")
    import betterall
print(betterall.ENGINE, list(betterall._engines()))
for warning in w:
    print(warning.category.__name__, str(warning.message))
    print("at", warning.filename)
"""


def test_a_broken_extension_falls_back_with_a_warning():
    """If the extension is there but cannot be imported, betterall warns and uses Python."""
    r = run(_BROKEN_EXTENSION + _IMPORT_RECORDING_WARNINGS, BETTERALL_NO_EXTENSIONS="")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "python ['python']"
    assert len(lines) == 3, lines
    assert lines[1].startswith("RuntimeWarning betterall: the C engine is installed but not used")
    assert "could not be imported (undefined symbol: PyFoo_Bar)" in lines[1]
    # Attributed to the user's `import betterall`, not to betterall's own code.
    assert lines[2] == "at <string>"


def test_an_install_without_the_extension_is_silent():
    """No extension at all (a pure-Python install) is a normal state: no warning,
    also under -W error."""
    code = "import sys\nsys.modules['betterall._cengine'] = None\n" + _IMPORT_RECORDING_WARNINGS
    r = run(code, BETTERALL_NO_EXTENSIONS="")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["python ['python']"]
    assert r.stderr == ""


_C_BUILT = pytest.mark.skipif("c" not in betterall._engines(), reason="C engine not built")


def _graph_still_works() -> str:
    return (
        "import asyncio\n"
        "async def main():\n"
        "    async def b(self):\n"
        "        await asyncio.sleep(0)\n"
        "        return (await self.a) + 1, asyncio.current_task().get_name()\n"
        "    return await betterall.all({'a': lambda: 1, 'b': b})\n"
        "print(asyncio.run(main()))\n"
    )


@_C_BUILT
def test_a_free_threaded_interpreter_without_the_gil_falls_back_with_a_warning():
    """On a free-threaded build, importing the extension turns the GIL on
    (it declares no Py_mod_gil slot); if the user kept it off, the C engine
    is not used: a RuntimeWarning says why, and the pure-Python engine runs.
    (Only a free-threaded build can show it for real; here the interpreter
    says the GIL is off.)"""
    code = "import sys\nsys._is_gil_enabled = lambda: False\n" + _IMPORT_RECORDING_WARNINGS + _graph_still_works()
    r = run(code, BETTERALL_NO_EXTENSIONS="")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "python ['python']"
    assert lines[1].startswith("RuntimeWarning betterall: the C engine is installed but not used")
    assert "told to keep it off (PYTHON_GIL=0 or -X gil=0)" in lines[1]
    assert lines[3] == "{'a': 1, 'b': (2, 'b')}"


@_C_BUILT
def test_a_current_task_swap_that_does_not_take_falls_back_with_a_warning():
    """Where making a node asyncio's current task has no visible effect (as
    writing the 3.11-3.13 table did on 3.14), the import-time check refuses the
    C engine: a RuntimeWarning says why, and the pure-Python engine runs."""
    if sys.version_info >= (3, 12):
        broken = "asyncio.tasks._swap_current_task = lambda loop, task: asyncio.tasks.current_task(loop)\n"
    else:
        broken = "asyncio.tasks._enter_task = asyncio.tasks._leave_task = lambda loop, task: None\n"
    code = "import asyncio, asyncio.tasks\n" + broken + _IMPORT_RECORDING_WARNINGS + _graph_still_works()
    r = run(code, BETTERALL_NO_EXTENSIONS="", BETTERALL_SWAP_CALLS="1")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "python ['python']"
    assert lines[1].startswith("RuntimeWarning betterall: the C engine is installed but not used")
    v = sys.version_info
    assert f"does not work on this Python ({v.major}.{v.minor}.{v.micro}" in lines[1]
    assert "inside a task, asyncio.current_task() is None, not the task" in lines[1]
    assert lines[2] == "at <string>"
    assert lines[3] == "{'a': 1, 'b': (2, 'b')}"


@_C_BUILT
@pytest.mark.skipif(
    not (3, 12) <= sys.version_info < (3, 14),
    reason="3.12-3.13: C asyncio's current_task() reads its own table (3.11's reads the"
    " module global, 3.14+ has no table the engine writes)",
)
def test_a_current_task_table_that_is_not_read_falls_back_with_a_warning():
    """The 3.14 failure, reproduced on 3.12-3.13: the engine stores into a
    table of current tasks that asyncio.current_task() does not read."""
    code = (
        "import asyncio, asyncio.tasks\n"
        "asyncio.tasks._current_tasks = {}  # no longer the table current_task() reads\n"
        + _IMPORT_RECORDING_WARNINGS + _graph_still_works()
    )
    r = run(code, BETTERALL_NO_EXTENSIONS="", BETTERALL_SWAP_CALLS="")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "python ['python']"
    assert "inside a task, asyncio.current_task() is None, not the task" in lines[1]
    assert lines[2] == "at <string>"
    assert lines[3] == "{'a': 1, 'b': (2, 'b')}"


@_C_BUILT
@pytest.mark.parametrize("calls", ["", "1"], ids=["default", "swap-calls"])
def test_the_import_check_passes_and_restores_the_running_loop(calls):
    """On this interpreter the check passes (both swap mechanisms), leaves no
    running loop behind, and also passes when betterall is first imported
    inside a running task, which stays current."""
    code = (
        "import asyncio\n"
        "async def main():\n"
        "    me = asyncio.current_task()\n"
        "    import betterall\n"
        "    from betterall import _engine\n"
        "    assert asyncio.current_task() is me\n"
        "    return betterall.ENGINE, _engine.current_task_problem(_engine.engines()['c'])\n"
        "print(*asyncio.run(main()))\n"
        "from asyncio import events\n"
        "print(events._get_running_loop())\n"
    )
    r = run(code, BETTERALL_NO_EXTENSIONS="", BETTERALL_SWAP_CALLS=calls)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["c None", "None"]
    r = run("import betterall, asyncio.events\nprint(betterall.ENGINE, asyncio.events._get_running_loop())",
            BETTERALL_NO_EXTENSIONS="", BETTERALL_SWAP_CALLS=calls)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["c", "None"]
    assert r.stderr == ""


def test_the_engines_table_lists_python_last():
    """_engines() puts the preferred engine first and always has Python."""
    engines = list(betterall._engines())
    assert engines[-1] == "python"
    assert betterall.ENGINE in engines
