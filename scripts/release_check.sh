#!/usr/bin/env bash
# Release check (RELEASING.md): what users get from `pip install betterall`,
# built and tested the way they install it, away from the checkout.
#
#   scripts/release_check.sh [python3.X]      (default: python3)
#
# In a temporary folder:
#  1. builds the sdist and, from it, the wheel (`python -m build`, from a copy
#     of the checkout's files that git tracks or would track), with build,
#     twine and auditwheel in a venv of their own;
#  2. `auditwheel show`s the wheel and prints the manylinux tag it meets, and
#     `twine check --strict`s both;
#  3. installs the wheel into a fresh venv with no compiler reachable (CC=false,
#     CXX=false, and a PATH whose only folders are the venv's bin and one of
#     symlinks to a few basic tools: no gcc, cc or clang) and binary packages
#     only, so that anything that would need building fails loudly;
#  4. installs the sdist into another fresh venv (that one builds the C engine,
#     so with the compiler);
#  and for each install, from a folder outside the checkout that holds copies of
#  tests/ and what they read (pyproject.toml for pytest's settings, scripts/;
#  never betterall/ or src/), and still with no compiler reachable: checks that
#  betterall is imported from site-packages, that the C engine is the one in
#  use, that py.typed and the stubs are installed, and runs the test suite
#  against it (tests/test_release.py checks the same from inside, through
#  BETTERALL_EXPECT_ENGINE and BETTERALL_EXPECT_INSTALLED).
#
# Which tests: the whole suite takes ~5.5 minutes per install on 2 cores (both
# engines, both loops), too long to run twice in CI. Each install runs the
# C engine's tests on asyncio's loop (~1 minute): every test file but
#   tests/integration/   real servers running examples/ (~1 minute more); the
#                        web layer is pure Python, the same in every install;
#   test_typing.py       type-checks the checkout's betterall/ by path, so it
#                        cannot run outside a checkout;
#   test_benchmarks.py   a smoke run of benchmarks/, not a test of the install.
# The pure-Python engine and uvloop's variants are the same code in every
# install and run in CI's main loop. To choose otherwise: BETTERALL_RELEASE_TESTS
# (pytest's arguments), BETTERALL_RELEASE_ENGINE and BETTERALL_RELEASE_LOOP
# (BETTERALL_TEST_ENGINE and BETTERALL_TEST_LOOP for the run; empty: all).
#
# Needs network access to PyPI (the tools, the test extras, setuptools for the
# isolated builds). Takes about 3.5 minutes on 2 cores with pip's cache warm.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
py=$(command -v "${1:-python3}") || { echo "release_check: no ${1:-python3}" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
step() { printf '\n=== release check: %s\n' "$*"; }

# -- 1. build ----------------------------------------------------------------
step "tools (build, twine, auditwheel) into $work/tools"
"$py" -m venv "$work/tools"
# pip's output goes to a log, shown if it fails.
quiet() {
    local log="$work/last.log"
    "$@" >"$log" 2>&1 || { cat "$log"; echo "release_check: failed: $*" >&2; return 1; }
}
quiet "$work/tools/bin/pip" install --disable-pip-version-check build twine auditwheel

# The files git tracks plus the new ones it does not ignore: no build/, no
# stale .so or egg-info from an editable install.
mkdir -p "$work/src"
(cd "$here" && git ls-files -z --cached --others --exclude-standard) |
    (cd "$here" && while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done) |
    (cd "$here" && xargs -0 cp --parents -t "$work/src")

step "python -m build (sdist, then the wheel from the sdist)"
"$work/tools/bin/python" -m build --outdir "$work/dist" "$work/src" >"$work/build.log" 2>&1 ||
    { cat "$work/build.log"; exit 1; }
sdist=$(echo "$work"/dist/betterall-*.tar.gz)
wheel=$(echo "$work"/dist/betterall-*.whl)
[ -f "$sdist" ] && [ -f "$wheel" ] || { ls -l "$work/dist"; echo "expected one sdist and one wheel" >&2; exit 1; }
ls -l "$work/dist"
tar -tzf "$sdist" >"$work/sdist-files.txt"
for member in src/_cengine.c src/state.h src/node.h src/sibling.h src/context.h src/graph.h \
    betterall/py.typed betterall/_cengine.pyi; do
    grep -qx "betterall-[^/]*/$member" "$work/sdist-files.txt" || { echo "the sdist lacks $member" >&2; exit 1; }
done

# -- 2. auditwheel, twine ------------------------------------------------------
step "auditwheel show $(basename "$wheel")"
"$work/tools/bin/auditwheel" show "$wheel" | tee "$work/auditwheel.txt"
tag=$(tr -s ' \n' ' ' <"$work/auditwheel.txt" |
    grep -oE 'consistent with the following platform tag: "[^"]+"' | grep -oE '"[^"]+"' | tr -d '"') ||
    { echo "auditwheel found no manylinux tag this wheel meets" >&2; exit 1; }
echo "manylinux tag the wheel meets: $tag"

step "twine check --strict"
"$work/tools/bin/twine" check --strict "$sdist" "$wheel"

# -- 3, 4. install and test --------------------------------------------------
# A PATH with no compiler: the venv's bin (python, pytest, the type checkers
# the tests run) and a folder of symlinks to the few tools a test or pip
# may spawn.
nocc="$work/nocc-bin"
mkdir -p "$nocc"
for tool in sh bash env uname cat ls rm mkdir cp mv sleep true false; do
    target=$(command -v "$tool") && ln -s "$target" "$nocc/$tool"
done

# The folder the tests run from: everything they read, nothing importable as betterall.
mkdir -p "$work/run"
cp -r "$work/src/tests" "$work/src/scripts" "$work/src/pyproject.toml" "$work/run/"

# The tests each install runs (see the top of this file).
if [ -n "${BETTERALL_RELEASE_TESTS:-}" ]; then
    read -ra selection <<<"$BETTERALL_RELEASE_TESTS"
else
    selection=(tests --ignore=tests/integration --ignore=tests/test_typing.py
               --ignore=tests/test_benchmarks.py)
fi

# check_install NAME: the checks and the test suite in $work/venv-NAME, from $work/run.
check_install() {
    local venv="$work/venv-$1"
    (
        cd "$work/run"
        export PATH="$venv/bin:$nocc" CC=false CXX=false
        unset PYTHONPATH
        for compiler in gcc cc c++ clang x86_64-linux-gnu-gcc; do
            if command -v "$compiler" >/dev/null; then
                echo "a compiler is reachable: $(command -v "$compiler")" >&2; exit 1
            fi
        done
        python - <<'EOF'
import os, sys, sysconfig
from pathlib import Path

import betterall
from betterall import _engine

package = Path(betterall.__file__).resolve().parent
site = {Path(sysconfig.get_paths()[k]).resolve() for k in ("purelib", "platlib")}
assert package.parent in site, f"betterall imported from {package}, not from site-packages {site}"
assert _engine.NAME == "c", f"the {_engine.NAME} engine is in use, not the C engine"
native = betterall._engines()["c"]
assert Path(native.__file__).resolve().parent == package, native.__file__
for name in ("py.typed", "_cengine.pyi"):
    assert (package / name).is_file(), f"{name} is not installed"
print(f"betterall {betterall.__version__} from {package}: engine {_engine.NAME}"
      f" ({Path(native.__file__).name}); py.typed and _cengine.pyi installed")
EOF
        start=$SECONDS
        BETTERALL_EXPECT_ENGINE=c BETTERALL_EXPECT_INSTALLED=1 \
        BETTERALL_TEST_ENGINE=${BETTERALL_RELEASE_ENGINE-c} BETTERALL_TEST_LOOP=${BETTERALL_RELEASE_LOOP-asyncio} \
            python -m pytest -q -p no:cacheprovider "${selection[@]}"
        echo "test suite against the $1 install: $((SECONDS - start)) s"
    )
}

step "install the wheel, binaries only, no compiler reachable"
"$py" -m venv "$work/venv-wheel"
(
    export PATH="$work/venv-wheel/bin:$nocc" CC=false CXX=false
    cd "$work/run"
    quiet pip install --disable-pip-version-check --only-binary=:all: "$wheel[test]"
)
step "the wheel's install, from $work/run"
check_install wheel

step "install the sdist (builds the C engine: compiler reachable)"
"$py" -m venv "$work/venv-sdist"
(cd "$work/run" && quiet "$work/venv-sdist/bin/pip" install --disable-pip-version-check "$sdist[test]")
step "the sdist's install, from $work/run (no compiler reachable)"
check_install sdist

step "passed: sdist and wheel ($tag) build, check, install and pass the tests"
