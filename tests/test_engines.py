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


def test_a_broken_extension_falls_back_with_a_warning():
    """If the extension cannot be imported, betterall warns and uses Python."""
    code = (
        "import sys, warnings\n"
        "sys.modules['betterall._cengine'] = None  # makes the import fail\n"
        "with warnings.catch_warnings(record=True) as w:\n"
        "    warnings.simplefilter('always')\n"
        "    import betterall\n"
        "print(betterall.ENGINE)\n"
        "print(w[0].category.__name__, 'C engine could not be imported' in str(w[0].message))\n"
    )
    r = run(code, BETTERALL_NO_EXTENSIONS="")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["python", "RuntimeWarning", "True"]


def test_the_engines_table_lists_python_last():
    """_engines() puts the preferred engine first and always has Python."""
    engines = list(betterall._engines())
    assert engines[-1] == "python"
    assert betterall.ENGINE in engines
