#!/usr/bin/env bash
# Build the C engine with AddressSanitizer + UndefinedBehaviorSanitizer, as a
# debug build (BETTERALL_DEBUG_BUILD=1: invariant checks, and live-object
# counters that tests/conftest.py checks after every test), in a throwaway
# venv, and run the test suite under it.
#
#   scripts/sanitize.sh [python3.X] [pytest args...]
#
# PYTHONMALLOC=malloc routes Python's allocations through malloc so ASan sees
# them; the ASan runtime is preloaded because python itself is not built
# with it. Leak detection is off: CPython keeps memory alive at exit by
# design, and betterall's leaks are checked by tests/test_engine_design.py.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
py=${1:-python3}
shift || true
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$py" -m venv "$work/venv"
cp -r "$here" "$work/src"
rm -rf "$work/src/.venv" "$work/src/build" "$work/src"/betterall/*.so
"$work/venv/bin/pip" install -q "setuptools>=77" wheel
(cd "$work/src" && BETTERALL_SANITIZE=1 BETTERALL_DEBUG_BUILD=1 "$work/venv/bin/pip" install -q --no-build-isolation '.[test]')
asan=$(gcc -print-file-name=libasan.so)
ubsan=$(gcc -print-file-name=libubsan.so)
cd "$work/src"
rm -rf betterall  # test the installed, sanitized build
# tests/test_typing.py runs the type checkers (no engine code) in subprocesses
# that would inherit LD_PRELOAD; it runs in the normal stage only.
# The C engine's tests on asyncio's own loop: the pure-Python engine and
# uvloop's C code are not what this run is for, and would treble its time.
LD_PRELOAD="$asan:$ubsan" PYTHONMALLOC=malloc BETTERALL_TEST_LOOP=asyncio BETTERALL_TEST_ENGINE=c \
ASAN_OPTIONS=detect_leaks=0:abort_on_error=1:halt_on_error=1 \
UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    "$work/venv/bin/python" -m pytest -q -p no:cacheprovider --ignore=tests/test_typing.py "$@"
