#!/usr/bin/env python3
"""Run FastAPI's own dependency-related tests with betterall's GraphRoute.

FastAPI's test suite ships in its source distribution.  This script

1. downloads the FastAPI sdist of the version installed for the given
   interpreter (or ``--fastapi VERSION``) from PyPI with
   ``pip download --no-binary :all: --no-deps`` and unpacks it;
2. makes a venv with that interpreter (kept in a cache folder and reused)
   and installs into it FastAPI, the test requirements the selected test
   files import (with the version ranges of the sdist's own ``tests``
   dependency group) and betterall from this checkout (``pip install -e``)
   or from ``--betterall PATH``;
3. runs the selected test files with pytest twice, in the sdist's folder
   and with its own pytest configuration (``filterwarnings = error``
   included): once as they are (baseline, FastAPI's ``APIRoute``) and once
   with a plugin that makes :class:`betterall.fastapi.GraphRoute` the
   default ``route_class`` of every ``APIRouter`` (so of every ``FastAPI()``
   app too);
4. prints a table per file (tests, passed/failed/skipped for each run) and
   every test whose outcome differs, with the end of its failure report.

The plugin checks that the swap is real: at the start of the session it
builds an app, checks that ``app.router.route_class`` is GraphRoute and its
routes GraphRoute instances and sends one request through it; it counts
the requests that went through betterall's resolver
(``betterall._fastapi_route._solve``) and fails the session if tests ran
but none did.  It also counts routes built with a class other than
GraphRoute (tests that pass their own ``route_class``).

Standard library only; run it with any Python 3.11+::

    python3 scripts/fastapi_conformance.py                 # default set
    python3 scripts/fastapi_conformance.py --all-dependency-tests
    python3 scripts/fastapi_conformance.py --fastapi 0.115.14 --with 'anyio<4.10'
    python3 scripts/fastapi_conformance.py --files tests/test_dependency_cache.py

See docs/fastapi-conformance.md for the results and the differences.
"""

from __future__ import annotations

import argparse
import ast
import collections
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import textwrap
import time
import tomllib
from pathlib import Path

CHECKOUT = Path(__file__).resolve().parent.parent
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "betterall-fastapi-conformance"

# The default set: every test file about dependencies, security, overrides,
# yield dependencies and background tasks.  All of it runs in well under a
# minute per pass on a 2-core machine, so the default is the full selection
# (--all-dependency-tests is kept as an explicit name for it).
DEPENDENCY_TESTS = [
    "tests/test_*depend*.py",  # test_dependency_*, test_dependencies_utils, yield deps...
    "tests/test_concurrency.py",  # sync and yield dependencies in the thread pool
    "tests/test_*security*.py",  # test_security_* (~50 small files), Security scopes
    "tests/test_*override*.py",  # dependency_overrides, router defaults
    "tests/test_*background*.py",
    "tests/test_tutorial/test_dependencies/",
    "tests/test_tutorial/test_security/",
    "tests/test_tutorial/test_background_tasks/",
    "tests/test_tutorial/test_testing_dependencies/",
]
DEFAULT_TESTS = DEPENDENCY_TESTS

# Top-level import name -> distribution, for the test files' imports that
# FastAPI itself does not bring.
IMPORT_TO_DIST = {
    "pytest": "pytest",
    "inline_snapshot": "inline-snapshot",
    "dirty_equals": "dirty-equals",
    "httpx": "httpx",
    "trio": "anyio[trio]",
    "jwt": "pyjwt",
    "pwdlib": "pwdlib[argon2]",
    "passlib": "passlib[bcrypt]",
    "yaml": "pyyaml",
    "sqlmodel": "sqlmodel",
    "sqlalchemy": "sqlalchemy",
    "flask": "flask",
    "a2wsgi": "a2wsgi",
    "strawberry": "strawberry-graphql",
    "typer": "typer",
    "orjson": "orjson",
    "ujson": "ujson",
    "multipart": "python-multipart",
    "python_multipart": "python-multipart",
    "email_validator": "email-validator",
    "pydantic_settings": "pydantic-settings",
    "jinja2": "jinja2",
}
# Uses that need a distribution without importing it.
USE_TO_DIST = [
    (re.compile(r"\bForm\b|OAuth2PasswordRequestForm|UploadFile|\bFile\("), "python-multipart"),
    (re.compile(r"backend=\"trio\"|\btrio\b"), "anyio[trio]"),
    (re.compile(r"\bEmailStr\b"), "email-validator"),
    (re.compile(r"xdist_group"), "pytest-xdist"),  # a marker, strict-markers
]

PLUGIN = r'''
"""pytest plugin written by scripts/fastapi_conformance.py (betterall)."""
import collections
import functools
import inspect
import json
import os

import pytest

SWAP = os.environ.get("BA_CONFORMANCE_SWAP") == "1"
OUT = os.environ["BA_CONFORMANCE_OUT"]

_results = {}
_counts = {"graph_requests": 0}
_route_types = collections.Counter()

import fastapi.routing as _routing

_original_route_init = _routing.APIRoute.__init__


@functools.wraps(_original_route_init)
def _route_init(self, *args, **kwargs):
    _route_types[type(self).__module__ + "." + type(self).__qualname__] += 1
    _original_route_init(self, *args, **kwargs)


_routing.APIRoute.__init__ = _route_init

if SWAP:
    import betterall._fastapi_route as _fr
    from betterall.fastapi import GraphRoute

    _original_router_init = _routing.APIRouter.__init__
    # Position of route_class among the positional arguments after self.
    _position = list(inspect.signature(_original_router_init).parameters).index("route_class") - 1

    @functools.wraps(_original_router_init)
    def _router_init(self, *args, **kwargs):
        swapped = False
        if len(args) > _position:
            if args[_position] is _routing.APIRoute:
                args = args[:_position] + (GraphRoute,) + args[_position + 1 :]
                swapped = True
        elif kwargs.get("route_class", _routing.APIRoute) is _routing.APIRoute:
            kwargs["route_class"] = GraphRoute
            swapped = True
        _original_router_init(self, *args, **kwargs)
        if swapped:
            assert self.route_class is GraphRoute, self.route_class

    _routing.APIRouter.__init__ = _router_init

    _original_solve = _fr._solve

    async def _counting_solve(state, options):
        _counts["graph_requests"] += 1
        return await _original_solve(state, options)

    _fr._solve = _counting_solve


def pytest_sessionstart(session):
    if not SWAP:
        return
    from fastapi import APIRouter, Depends, FastAPI
    from fastapi.testclient import TestClient

    async def dep():
        return 1

    app = FastAPI()
    assert app.router.route_class is GraphRoute, app.router.route_class
    assert APIRouter().route_class is GraphRoute

    @app.get("/check")
    async def check(value: int = Depends(dep)):
        return value

    assert type(app.router.routes[-1]) is GraphRoute, type(app.router.routes[-1])
    with TestClient(app) as client:
        assert client.get("/check").json() == 1
    assert _counts["graph_requests"] == 1, "the request did not go through GraphRoute"
    _counts["graph_requests"] = 0
    _route_types.clear()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    before = _counts["graph_requests"]
    yield
    entry = _results.get(item.nodeid)
    if entry is not None:
        entry["graph_requests"] = _counts["graph_requests"] - before


def pytest_runtest_logreport(report):
    entry = _results.setdefault(
        report.nodeid, {"outcome": "passed", "phase": "", "text": "", "graph_requests": 0}
    )
    if report.failed:
        if entry["outcome"] != "failed":
            entry["outcome"] = "failed"
            entry["phase"] = report.when
            entry["text"] = report.longreprtext[-6000:]
    elif report.skipped and entry["outcome"] == "passed":
        entry["outcome"] = "skipped"
        entry["phase"] = report.when


def pytest_collectreport(report):
    if report.failed:
        _results[report.nodeid or "<collection>"] = {
            "outcome": "failed", "phase": "collect",
            "text": report.longreprtext[-6000:], "graph_requests": 0,
        }


def pytest_sessionfinish(session, exitstatus):
    ran = sum(1 for r in _results.values() if r["outcome"] != "skipped")
    problems = []
    if SWAP and ran and not _counts["graph_requests"]:
        problems.append("tests ran but no request went through GraphRoute")
        session.exitstatus = 3
    with open(OUT, "w") as f:
        json.dump(
            {
                "swap": SWAP,
                "results": _results,
                "graph_requests": _counts["graph_requests"],
                "route_types": dict(_route_types),
                "problems": problems,
            },
            f,
            indent=1,
        )


def pytest_terminal_summary(terminalreporter):
    if SWAP:
        terminalreporter.write_line(
            f"betterall: {_counts['graph_requests']} requests resolved by GraphRoute;"
            f" routes built: {dict(_route_types)}"
        )
'''


def run(cmd: list[str], **kwargs) -> subprocess.CompletedProcess:
    print("+", " ".join(str(c) for c in cmd), flush=True)
    return subprocess.run(cmd, check=True, **kwargs)


def installed_fastapi(python: str) -> str:
    out = subprocess.run(
        [python, "-c", "import fastapi; print(fastapi.__version__)"],
        capture_output=True,
        text=True,
    )
    if out.returncode:
        sys.exit(f"FastAPI is not installed for {python}: pass --fastapi VERSION")
    return out.stdout.strip()


def fetch_sdist(python: str, version: str, fresh: bool) -> Path:
    """The unpacked sdist (cached under CACHE)."""
    root = CACHE / f"fastapi-{version}"
    if root.is_dir() and (root / "tests").is_dir() and not fresh:
        return root
    with tempfile.TemporaryDirectory() as tmp:
        run(
            [python, "-m", "pip", "download", "--quiet", "--no-binary", ":all:", "--no-deps",
             f"fastapi=={version}", "-d", tmp]
        )
        archives = list(Path(tmp).glob("fastapi-*.tar.gz"))
        if not archives:
            sys.exit(f"pip download gave no fastapi sdist: {os.listdir(tmp)}")
        unpack = Path(tmp) / "unpacked"
        with tarfile.open(archives[0]) as tar:
            tar.extractall(unpack, filter="data")
        (top,) = unpack.iterdir()
        if root.exists():
            shutil.rmtree(root)
        root.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(top), root)
    return root


def select_files(sdist: Path, patterns: list[str]) -> list[str]:
    files: list[str] = []
    for pattern in patterns:
        path = sdist / pattern
        if pattern.endswith("/") or path.is_dir():
            matches = sorted(str(p.relative_to(sdist)) for p in path.rglob("test_*.py"))
        else:
            matches = sorted(
                str(Path(p).relative_to(sdist)) for p in glob.glob(str(sdist / pattern))
            )
        for match in matches:
            if match not in files:
                files.append(match)
    return files


def test_requirements(sdist: Path, files: list[str]) -> list[str]:
    """The distributions the selected files need beyond FastAPI, with the
    sdist's own version ranges where it has them."""
    config = tomllib.loads((sdist / "pyproject.toml").read_text())
    specs: dict[str, str] = {}

    def note(requirement: object) -> None:
        if isinstance(requirement, str):
            name = re.split(r"[\s<>=!~;\[]", requirement, maxsplit=1)[0].lower()
            specs.setdefault(name, requirement)

    groups = config.get("dependency-groups", {})
    for group in ("tests", "docs-tests"):
        for requirement in groups.get(group, []):
            note(requirement)
    for extra in config.get("project", {}).get("optional-dependencies", {}).values():
        for requirement in extra:
            note(requirement)
    def legacy(path: Path, seen: set[Path]) -> None:  # older sdists' requirements files
        if not path.exists() or path in seen:
            return
        seen.add(path)
        for line in path.read_text().splitlines():
            line = line.split(" #", 1)[0].strip()
            if line.startswith("-r "):
                legacy(path.parent / line[3:].strip(), seen)
            elif line and not line.startswith(("#", "-")):
                note(line)

    legacy(sdist / "requirements-tests.txt", set())

    sources = [sdist / f for f in files]
    if (sdist / "tests" / "utils.py").exists():
        sources.append(sdist / "tests" / "utils.py")
    for f in files:
        # The docs_src modules a tutorial test imports (by name, or by a
        # parameter: importlib.import_module(f"docs_src.security.{name}")).
        text = (sdist / f).read_text()
        stems = set(re.findall(r"\b(tutorial\w*)", text))
        for package, module in re.findall(r"docs_src\.([A-Za-z0-9_]+)(?:\.([A-Za-z0-9_]+))?", text):
            stems.add(module)
            for source in sorted((sdist / "docs_src" / package).rglob("*.py")):
                if source.stem in stems:
                    sources.append(source)
    needed: set[str] = {"pytest", "httpx"}  # httpx: Starlette's TestClient
    if "httpx2" in specs:  # Starlette's TestClient asks for it (a warning, an error here)
        needed.add("httpx2")
    if "timeout" in config.get("tool", {}).get("pytest", {}) or "timeout" in config.get(
        "tool", {}
    ).get("pytest", {}).get("ini_options", {}):
        needed.add("pytest-timeout")
    for source in sources:
        text = source.read_text()
        try:
            tree = ast.parse(text)
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names = [node.module]
            for name in names:
                dist = IMPORT_TO_DIST.get(name.split(".")[0])
                if dist:
                    needed.add(dist)
        for pattern, dist in USE_TO_DIST:
            if pattern.search(text):
                needed.add(dist)
    out = []
    for dist in sorted(needed):
        base = dist.split("[")[0].lower()
        spec = specs.get(base)
        if spec is None:
            out.append(dist)
        elif "[" in dist and "[" not in spec:
            out.append(dist + spec[len(base) :])
        else:
            out.append(spec)
    return out


def make_venv(args: argparse.Namespace, version: str, requirements: list[str]) -> Path:
    py = subprocess.run(
        [args.python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()
    venv = Path(args.venv) if args.venv else CACHE / f"venv-py{py}-fastapi-{version}"
    python = venv / "bin" / "python"
    marker = venv / "betterall-conformance.json"
    want = {"fastapi": version, "requirements": requirements, "betterall": str(args.betterall)}
    if python.exists() and marker.exists() and not args.fresh:
        have = json.loads(marker.read_text())
        if (have["fastapi"], have["betterall"]) == (want["fastapi"], want["betterall"]):
            # Reused; what another selection of files needs is added to it.
            missing = [r for r in requirements if r not in have["requirements"]]
            if missing:
                run([str(python), "-m", "pip", "install", "--quiet", *missing])
                have["requirements"] += missing
                marker.write_text(json.dumps(have))
            return python
    if venv.exists():
        shutil.rmtree(venv)
    run([args.python, "-m", "venv", str(venv)])
    run([str(python), "-m", "pip", "install", "--quiet", f"fastapi=={version}", *requirements])
    # Editable: the venv uses the checkout's code (and its built C engine).
    run([str(python), "-m", "pip", "install", "--quiet", "-e", str(args.betterall)])
    marker.write_text(json.dumps(want))
    return python


def run_pytest(python: Path, sdist: Path, files: list[str], swap: bool, workdir: Path,
               extra: list[str]) -> tuple[dict, float]:
    out = workdir / ("graphroute.json" if swap else "baseline.json")
    env = dict(os.environ)
    env["BA_CONFORMANCE_SWAP"] = "1" if swap else "0"
    env["BA_CONFORMANCE_OUT"] = str(out)
    # As FastAPI's scripts/test.sh; the sdist's root for docs_src and tests.
    env["PYTHONPATH"] = os.pathsep.join([str(workdir), str(sdist), str(sdist / "docs_src")])
    env.pop("PYTEST_ADDOPTS", None)
    cmd = [str(python), "-m", "pytest", "-p", "betterall_conformance_plugin",
           "-p", "no:cacheprovider", "-q", "--no-header", "-rN", *extra, *files]
    label = "GraphRoute" if swap else "FastAPI's APIRoute (baseline)"
    print(f"\n=== {label}: {len(files)} files", flush=True)
    started = time.perf_counter()
    proc = subprocess.run(cmd, cwd=sdist, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    tail = proc.stdout.strip().splitlines()[-3:]
    print("\n".join(tail), f"\n({elapsed:.1f} s, pytest exit {proc.returncode})", flush=True)
    if not out.exists():
        print(proc.stdout[-5000:], proc.stderr[-5000:], sep="\n")
        sys.exit(f"pytest did not finish the {label} run")
    data = json.loads(out.read_text())
    if data["problems"]:
        sys.exit(f"{label}: " + "; ".join(data["problems"]))
    return data, elapsed


# Tests that AnyIO runs on Trio (its backend is in the test's id).  A
# GraphRoute served by Trio hands its requests to FastAPI's resolver.
TRIO = re.compile(r"\[trio\b|-trio\b")


def file_of(nodeid: str) -> str:
    return nodeid.split("::", 1)[0]


def table(files: list[str], base: dict, graph: dict) -> str:
    rows = []
    totals = collections.Counter()
    for f in files:
        ids = sorted({n for n in [*base["results"], *graph["results"]] if file_of(n) == f})
        b = collections.Counter(base["results"][n]["outcome"] for n in ids if n in base["results"])
        g = collections.Counter(graph["results"][n]["outcome"] for n in ids if n in graph["results"])
        used = sum(1 for n in ids if graph["results"].get(n, {}).get("graph_requests", 0))
        trio = sum(1 for n in ids if TRIO.search(n))
        differ = sum(
            1 for n in ids
            if base["results"].get(n, {}).get("outcome") != graph["results"].get(n, {}).get("outcome")
        )
        name = f[len("tests/"):] if f.startswith("tests/") else f
        rows.append((name, len(ids), b["passed"], b["failed"], b["skipped"],
                     g["passed"], g["failed"], g["skipped"], used, trio, differ))
        totals.update({"tests": len(ids), "bp": b["passed"], "bf": b["failed"],
                       "bs": b["skipped"], "gp": g["passed"], "gf": g["failed"],
                       "gs": g["skipped"], "used": used, "trio": trio, "differ": differ})
    head = ("| file | tests | FastAPI route: passed / failed / skipped"
            " | GraphRoute: passed / failed / skipped | through the graph | on Trio | differ |\n"
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: |\n")
    lines = [
        f"| {r[0]} | {r[1]} | {r[2]} / {r[3]} / {r[4]} | {r[5]} / {r[6]} / {r[7]} | {r[8]} | {r[9]}"
        f" | {r[10]} |"
        for r in rows
    ]
    t = totals
    lines.append(
        f"| **total ({len(files)} files)** | {t['tests']} | {t['bp']} / {t['bf']} / {t['bs']}"
        f" | {t['gp']} / {t['gf']} / {t['gs']} | {t['used']} | {t['trio']} | {t['differ']} |"
    )
    return head + "\n".join(lines)


#: The tests whose outcome differs by design (docs/fastapi-conformance.md,
#: "The differences"), as pytest names them with FastAPI 0.165.
KNOWN_DIFFERENCES = frozenset({
    # Independent dependencies start together: the failing one fails before
    # the yield dependency declared before it is entered.
    "tests/test_async_dependency_cleanup.py::test_cleanup_after_later_dependency_fails"
    "[asyncio-http-error-function]",
    "tests/test_async_dependency_cleanup.py::test_cleanup_after_later_dependency_fails"
    "[asyncio-http-error-request]",
    # Overrides are read when the request starts.
    "tests/test_dependency_concurrency.py::"
    "test_override_installed_by_earlier_dependency_applies_immediately[asyncio]",
})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--python", default=sys.executable,
                        help="interpreter for the test venv (default: this one)")
    parser.add_argument("--fastapi", metavar="VERSION",
                        help="FastAPI version (default: the one installed for --python)")
    parser.add_argument("--betterall", type=Path, default=CHECKOUT,
                        help="betterall to install (editable; default: this checkout)")
    parser.add_argument("--venv", help=f"venv folder (default: under {CACHE})")
    parser.add_argument("--files", nargs="+", metavar="GLOB",
                        help="test files, folders or globs, relative to the sdist's root")
    parser.add_argument("--all-dependency-tests", action="store_true",
                        help="the full dependency-related selection (the default today)")
    parser.add_argument("--with", dest="extra", action="append", default=[], metavar="REQ",
                        help="one more requirement for the venv, e.g. a pin that an older"
                        " FastAPI's tests need: --fastapi 0.115.14 --with 'anyio<4.10'")
    parser.add_argument("--only", choices=("both", "baseline", "graphroute"), default="both")
    parser.add_argument("--fresh", action="store_true",
                        help="download the sdist and make the venv again")
    parser.add_argument("--json", type=Path, help="write every outcome to this file")
    parser.add_argument("--quiet-differences", action="store_true",
                        help="list differing tests without their failure reports")
    parser.add_argument("--check", action="store_true",
                        help="exit 1 if a test differs that KNOWN_DIFFERENCES does not list"
                        " (what CI runs)")
    parser.add_argument("pytest_args", nargs="*", help="after --: extra pytest arguments")
    args = parser.parse_args()
    args.betterall = args.betterall.resolve()

    started = time.perf_counter()
    version = args.fastapi or installed_fastapi(args.python)
    sdist = fetch_sdist(args.python, version, args.fresh)
    patterns = args.files or (DEPENDENCY_TESTS if args.all_dependency_tests else DEFAULT_TESTS)
    files = select_files(sdist, patterns)
    if not files:
        sys.exit(f"no test file matches {patterns} in {sdist}")
    requirements = test_requirements(sdist, files) + args.extra
    print(f"FastAPI {version}: {len(files)} test files; test requirements: {requirements}")
    python = make_venv(args, version, requirements)
    setup = time.perf_counter() - started

    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        (workdir / "betterall_conformance_plugin.py").write_text(PLUGIN)
        empty = {"results": {}, "graph_requests": 0, "route_types": {}}
        base, t_base = (run_pytest(python, sdist, files, False, workdir, args.pytest_args)
                        if args.only != "graphroute" else (empty, 0.0))
        graph, t_graph = (run_pytest(python, sdist, files, True, workdir, args.pytest_args)
                          if args.only != "baseline" else (empty, 0.0))

    versions = subprocess.run(
        [str(python), "-c", "import fastapi, starlette, pydantic, sys, pytest;"
         "print(f'FastAPI {fastapi.__version__}, Starlette {starlette.__version__},"
         " Pydantic {pydantic.VERSION}, pytest {pytest.__version__}, Python {sys.version.split()[0]}')"],
        capture_output=True, text=True,
    ).stdout.strip()
    print(f"\n{versions}\n")
    print(table(files, base, graph))
    print(f"\nRequests resolved by GraphRoute: {graph['graph_requests']}.")
    others = {k: v for k, v in graph["route_types"].items() if not k.endswith(".GraphRoute")}
    if others:
        print(f"Routes built with another class in the GraphRoute run (the test chose it): {others}")

    differences = [
        n for n in sorted({*base["results"], *graph["results"]})
        if base["results"].get(n, {}).get("outcome") != graph["results"].get(n, {}).get("outcome")
    ]
    if args.only == "both":
        print(f"\n{len(differences)} tests differ:")
        for n in differences:
            b = base["results"].get(n, {}).get("outcome", "-")
            g = graph["results"].get(n, {})
            print(f"- {n}: FastAPI route {b}, GraphRoute {g.get('outcome', '-')}")
            if g.get("text") and not args.quiet_differences:
                print(textwrap.indent("\n".join(g["text"].splitlines()[-25:]), "    | "))
    if args.json:
        args.json.write_text(json.dumps({"fastapi": version, "versions": versions,
                                         "files": files, "baseline": base,
                                         "graphroute": graph}, indent=1))
    total = time.perf_counter() - started
    print(f"\nTime: setup {setup:.1f} s, baseline {t_base:.1f} s, GraphRoute {t_graph:.1f} s,"
          f" total {total:.1f} s")
    if args.check:
        unexplained = [n for n in differences if n not in KNOWN_DIFFERENCES]
        if unexplained:
            sys.exit(f"{len(unexplained)} tests differ that docs/fastapi-conformance.md does not"
                     f" explain: {unexplained}")
        print("check: every difference is a documented one")


if __name__ == "__main__":
    main()
