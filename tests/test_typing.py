"""Static typing: ``mypy --strict`` and basedpyright over betterall and tests/typing.

Each checker runs once per session over the package and every file of
tests/typing (a subprocess each, a few seconds in all); the tests then read
its diagnostics per file:

- ``betterall/``: no error (mypy ``--strict``; basedpyright in standard mode,
  tests/typing/pyrightconfig.json).
- ``tests/typing/pass_*.py``: no error (both checkers strict: mypy ``--strict``,
  ``# pyright: strict`` at the top of each file); their ``assert_type`` calls
  check the types the API gives.
- ``tests/typing/fail_*.py``: an error on exactly the lines that end with the
  comment ``# error`` (each such line is one deliberate mistake), and on no
  other line. ``# error: mypy only`` / ``# error: basedpyright only`` mark a case
  that only one checker catches (the file says why).

Both checkers come with the test extra (``pip install -e .[test]``); a missing
checker fails these tests instead of skipping them.
"""

from __future__ import annotations

from dataclasses import dataclass
import importlib.util
import json
import os
from pathlib import Path
import re
import subprocess
import sys

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "betterall"
TYPING = ROOT / "tests" / "typing"
PASS_FILES = sorted(TYPING.glob("pass_*.py"))
FAIL_FILES = sorted(TYPING.glob("fail_*.py"))
CHECKERS = ("mypy", "basedpyright")
INSTALL = "pip install -e .[test]"
TIMEOUT = 300  # seconds per checker run; a normal run takes a few

# A trailing "# error" comment, optionally "# error: mypy only" or
# "# error: basedpyright only".
MARK = re.compile(r"#\s*error(?::\s*(?P<only>mypy|basedpyright)\s+only)?\s*$")
MYPY_LINE = re.compile(r"^(?P<path>.+?):(?P<line>\d+): (?P<severity>error|warning|note): (?P<message>.*)$")
MYPY_SUMMARY = re.compile(r"\(checked (?P<count>\d+) source files?\)|no issues found in (?P<ok>\d+) source files?")


@dataclass
class Report:
    """One checker's run: its diagnostics per file and line."""

    checker: str
    command: list[str]
    output: str
    errors: dict[Path, dict[int, list[str]]]  # file -> line (1-based) -> messages
    files_checked: int

    def errors_in(self, path: Path) -> dict[int, list[str]]:
        return self.errors.get(path.resolve(), {})

    def describe(self, errors: dict[int, list[str]], path: Path) -> str:
        lines = path.read_text(encoding="utf-8").splitlines()
        return "\n".join(
            f"  {path.name}:{line}: {lines[line - 1].strip() if line <= len(lines) else ''}\n"
            + "\n".join(f"      {self.checker}: {message}" for message in messages)
            for line, messages in sorted(errors.items())
        )


def _require(module: str, what: str) -> None:
    if importlib.util.find_spec(module) is None:
        pytest.fail(
            f"{what} is not installed in {sys.executable}: the typing tests need it"
            f" ({INSTALL})",
            pytrace=False,
        )


def _run(command: list[str]) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env.pop("MYPYPATH", None)
    env["MYPY_FORCE_COLOR"] = "0"
    env["NO_COLOR"] = "1"
    return subprocess.run(
        command,
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=TIMEOUT,
        check=False,
    )


def _source_count() -> int:
    """How many files each checker must analyse: the package and tests/typing."""
    package = [p for p in PACKAGE.rglob("*.py*") if p.suffix in (".py", ".pyi")]
    return len(package) + len(list(TYPING.glob("*.py")))


def _mypy(tmp_path_factory: pytest.TempPathFactory) -> Report:
    _require("mypy", "mypy")
    command = [
        sys.executable,
        "-m",
        "mypy",
        "--config-file",
        str(TYPING / "mypy.ini"),
        "--strict",
        "--cache-dir",
        str(tmp_path_factory.mktemp("mypy_cache")),
        "--show-absolute-path",
        "--no-pretty",
        "--no-color-output",
        "--show-error-codes",
        "betterall",
        "tests/typing",
    ]
    proc = _run(command)
    output = proc.stdout + proc.stderr
    errors: dict[Path, dict[int, list[str]]] = {}
    for raw in proc.stdout.splitlines():
        match = MYPY_LINE.match(raw)
        if match and match["severity"] != "note":
            path = Path(match["path"]).resolve()
            errors.setdefault(path, {}).setdefault(int(match["line"]), []).append(match["message"])
    summary = MYPY_SUMMARY.search(proc.stdout)
    if proc.returncode not in (0, 1) or summary is None:
        pytest.fail(f"mypy did not run (exit {proc.returncode}):\n{output}", pytrace=False)
    count = int(summary["count"] or summary["ok"])
    return Report("mypy", command, output, errors, count)


def _basedpyright(tmp_path_factory: pytest.TempPathFactory) -> Report:
    _require("basedpyright", "basedpyright")
    command = [
        sys.executable,
        "-m",
        "basedpyright",
        "--project",
        str(TYPING / "pyrightconfig.json"),
        "--pythonpath",
        sys.executable,
        "--outputjson",
    ]
    proc = _run(command)
    output = proc.stdout + proc.stderr
    try:
        result = json.loads(proc.stdout)
    except ValueError:
        result = None
    if proc.returncode not in (0, 1) or not isinstance(result, dict):
        pytest.fail(f"basedpyright did not run (exit {proc.returncode}):\n{output}", pytrace=False)
    errors: dict[Path, dict[int, list[str]]] = {}
    for diag in result.get("generalDiagnostics", []):
        if diag.get("severity") not in ("error", "warning"):
            continue
        path = Path(diag["file"]).resolve()
        line = int(diag["range"]["start"]["line"]) + 1
        message = diag["message"].splitlines()[0] + f" ({diag.get('rule', '')})"
        errors.setdefault(path, {}).setdefault(line, []).append(message)
    return Report("basedpyright", command, output, errors, int(result["summary"]["filesAnalyzed"]))


_RUNS = {"mypy": _mypy, "basedpyright": _basedpyright}
_reports: dict[str, Report | str] = {}  # checker -> its report, or why it did not run


def _report(checker: str, tmp_path_factory: pytest.TempPathFactory) -> Report:
    """The checker's report, from one run per session.  A checker that is
    missing or does not run fails every test that needs it (in the test,
    not as a set-up error)."""
    if checker not in _reports:
        try:
            _reports[checker] = _RUNS[checker](tmp_path_factory)
        except pytest.fail.Exception as exc:
            _reports[checker] = str(exc)
    report = _reports[checker]
    if isinstance(report, str):
        pytest.fail(report, pytrace=False)
    return report


def _marked_lines(path: Path, checker: str) -> dict[int, str]:
    """The lines of a fail file that ``checker`` must report, with their text."""
    marked = {}
    for number, text in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        match = MARK.search(text)
        if match and match["only"] in (None, checker):
            marked[number] = text.strip()
    return marked


def test_typing_files_exist() -> None:
    """tests/typing holds pass and fail files, and every fail file marks cases."""
    assert PASS_FILES, f"no pass_*.py in {TYPING}"
    assert FAIL_FILES, f"no fail_*.py in {TYPING}"
    for path in FAIL_FILES:
        assert any(_marked_lines(path, checker) for checker in CHECKERS), (
            f"{path.name} marks no line with '# error'"
        )


@pytest.mark.parametrize("checker", CHECKERS)
def test_checker_saw_every_file(checker: str, tmp_path_factory: pytest.TempPathFactory) -> None:
    """The checker analysed the whole package and every file of tests/typing."""
    report = _report(checker, tmp_path_factory)
    assert report.files_checked == _source_count(), (
        f"{report.checker} analysed {report.files_checked} files, expected"
        f" {_source_count()} (betterall/ and tests/typing/):\n{report.output}"
    )


@pytest.mark.parametrize("checker", CHECKERS)
def test_package_is_clean(checker: str, tmp_path_factory: pytest.TempPathFactory) -> None:
    """betterall itself type-checks: mypy --strict, basedpyright standard."""
    report = _report(checker, tmp_path_factory)
    found = {
        path: errors
        for path, errors in report.errors.items()
        if path.is_relative_to(PACKAGE)
    }
    if found:
        pytest.fail(
            f"{report.checker} reports errors in betterall/:\n"
            + "\n".join(report.describe(errors, path) for path, errors in sorted(found.items())),
            pytrace=False,
        )


@pytest.mark.parametrize("path", PASS_FILES, ids=[p.name for p in PASS_FILES])
@pytest.mark.parametrize("checker", CHECKERS)
def test_pass_file(checker: str, path: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    """Realistic use of the API type-checks cleanly, with the types asserted."""
    report = _report(checker, tmp_path_factory)
    errors = report.errors_in(path)
    if errors:
        pytest.fail(
            f"{report.checker} reports errors in {path.name} (expected none):\n"
            + report.describe(errors, path),
            pytrace=False,
        )


@pytest.mark.parametrize("path", FAIL_FILES, ids=[p.name for p in FAIL_FILES])
@pytest.mark.parametrize("checker", CHECKERS)
def test_fail_file(checker: str, path: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    """Each deliberate mistake (a line marked '# error') is reported, and
    nothing else is."""
    report = _report(checker, tmp_path_factory)
    expected = _marked_lines(path, report.checker)
    errors = report.errors_in(path)
    missed = {line: text for line, text in expected.items() if line not in errors}
    unexpected = {line: msgs for line, msgs in errors.items() if line not in expected}
    problems = []
    if missed:
        problems.append(
            f"{report.checker} no longer reports these mistakes in {path.name}:\n"
            + "\n".join(f"  {path.name}:{line}: {text}" for line, text in sorted(missed.items()))
        )
    if unexpected:
        problems.append(
            f"{report.checker} reports errors on unmarked lines of {path.name}:\n"
            + report.describe(unexpected, path)
        )
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)


@pytest.mark.parametrize("checker", CHECKERS)
def test_no_errors_elsewhere(checker: str, tmp_path_factory: pytest.TempPathFactory) -> None:
    """Errors appear in fail_*.py files only (not in a helper module of
    tests/typing, for instance)."""
    report = _report(checker, tmp_path_factory)
    known = {p.resolve() for p in FAIL_FILES + PASS_FILES}
    found = {
        path: errors
        for path, errors in report.errors.items()
        if path not in known and not path.is_relative_to(PACKAGE)
    }
    if found:
        pytest.fail(
            f"{report.checker} reports errors outside the fail files:\n"
            + "\n".join(report.describe(errors, path) for path, errors in sorted(found.items())),
            pytrace=False,
        )
