"""What a release relies on (RELEASING.md): one version, and an install that
is what it says it is.

- The version is written once, in ``betterall/_version.py``; setuptools reads
  it from there (``[tool.setuptools.dynamic]`` in pyproject.toml), so the
  installed metadata and ``betterall.__version__`` agree, and no other module
  of the package spells it out.
- The package ships its typing markers: ``py.typed`` and the C engine's stub.
- When an installed build is under test (scripts/release_check.sh and the
  wheel builds in .github/workflows/wheels.yml set these), two more checks:
  ``BETTERALL_EXPECT_ENGINE=c`` (or ``python``): this process runs on that
  engine, so a wheel whose C engine is missing or unusable fails instead of
  passing on the pure-Python fallback; ``BETTERALL_EXPECT_INSTALLED=1``:
  betterall is imported from an installation (site-packages), not from a
  checkout.
"""

from __future__ import annotations

import importlib.metadata
import os
from pathlib import Path
import sysconfig

import pytest

import betterall
from betterall import _engine

PACKAGE = Path(betterall.__file__).resolve().parent


def test_installed_metadata_has_the_package_version():
    assert importlib.metadata.version("betterall") == betterall.__version__


def test_version_is_written_only_in_version_py():
    assert betterall.__version__ and isinstance(betterall.__version__, str)
    literal = f'"{betterall.__version__}"'
    spelled = [
        path.name
        for path in sorted(PACKAGE.glob("*.py*"))
        if path.name != "_version.py" and literal in path.read_text(encoding="utf-8")
    ]
    assert spelled == [], f"the version is hard-coded outside _version.py in {spelled}"


def test_pyproject_reads_the_version_from_version_py():
    pyproject = PACKAGE.parent / "pyproject.toml"
    if not pyproject.exists():
        pytest.skip("no pyproject.toml beside the package (an installed package is under test)")
    import tomllib

    config = tomllib.loads(pyproject.read_text(encoding="utf-8"))
    assert "version" not in config["project"]
    assert "version" in config["project"]["dynamic"]
    dynamic = config["tool"]["setuptools"]["dynamic"]["version"]
    assert dynamic == {"attr": "betterall._version.__version__"}


def test_typing_markers_ship_with_the_package():
    assert (PACKAGE / "py.typed").is_file()
    assert (PACKAGE / "_cengine.pyi").is_file()


@pytest.mark.skipif(
    not os.environ.get("BETTERALL_EXPECT_ENGINE"), reason="BETTERALL_EXPECT_ENGINE is not set"
)
def test_the_expected_engine_is_in_use():
    expected = os.environ["BETTERALL_EXPECT_ENGINE"]
    assert _engine.NAME == expected, f"betterall runs on the {_engine.NAME!r} engine"
    if expected == "c":
        assert "c" in _engine.engines()
        assert betterall._engines()["c"].__name__ == "betterall._cengine"


@pytest.mark.skipif(
    os.environ.get("BETTERALL_EXPECT_INSTALLED", "") in ("", "0"),
    reason="BETTERALL_EXPECT_INSTALLED is not set",
)
def test_betterall_is_imported_from_an_installation():
    installed = {Path(sysconfig.get_paths()[key]).resolve() for key in ("purelib", "platlib")}
    assert PACKAGE.parent in installed, f"betterall is imported from {PACKAGE}, not {installed}"
    assert not (PACKAGE.parent / "setup.py").exists()
