#!/usr/bin/env bash
# Portable C (docs/reliability.md): compile the C engine (src/_cengine.c, its
# only translation unit) with -Wall -Wextra -Wpedantic -Wvla -std=c11 against
# a Python's headers (-O2, as a release build, for gcc's flow-based warnings), and fail on any warning except the one class the
# PyType_Slot tables need: ISO C has no conversion between a function pointer
# and `void *` (the `pfunc` field), which -Wpedantic reports for each slot.
# Then look for what MSVC lacks and no compiler flag here reports: GCC's
# __attribute__, __builtin_*, __typeof__ and statement expressions outside a
# guard, and headers that are not ISO C or Python's.
#
#   scripts/compile_warnings.sh [python3.X] [compiler...]   (default: python3 clang gcc)
#
# clang is installed from Debian when it is missing (as root, as CI runs).
# Takes a few seconds.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
py=${1:-python3}
shift || true
compilers=("$@")
[ ${#compilers[@]} -gt 0 ] || compilers=(clang gcc)
include=$("$py" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
[ -f "$include/Python.h" ] || { echo "compile_warnings: no Python.h in $include" >&2; exit 1; }

# The flags setup.py builds with, plus -Wpedantic (ISO C only) and -Wvla (no
# variable-length arrays: MSVC has none).
flags=(-std=c11 -Wall -Wextra -Wpedantic -Wvla -Wno-unused-parameter
       -Wno-missing-field-initializers -O2 -c -o /dev/null)
# The one allowed warning, as gcc and clang word it.
allowed='ISO C forbids (initialization|conversion) between function pointer and .void \*.|converts between void pointer and function pointer'

status=0
for cc in "${compilers[@]}"; do
    if ! command -v "$cc" >/dev/null; then
        if [ "$cc" = clang ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
            echo "compile_warnings: installing clang from Debian" >&2
            (apt-get update -qq || true) >/dev/null 2>&1
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq clang >/dev/null
        else
            echo "compile_warnings: $cc is not installed" >&2
            status=1
            continue
        fi
    fi
    out=$("$cc" "${flags[@]}" -I"$include" "$here/src/_cengine.c" 2>&1) || {
        printf '%s\n' "$out"
        echo "compile_warnings: $cc failed to compile src/_cengine.c" >&2
        status=1
        continue
    }
    warnings=$(printf '%s\n' "$out" | grep -E 'warning:' || true)
    others=$(printf '%s\n' "$warnings" | grep -vE "$allowed" | grep . || true)
    n_allowed=$(printf '%s\n' "$warnings" | grep -cE "$allowed" || true)
    version=$("$cc" --version | head -n 1)
    if [ -n "$others" ]; then
        printf '%s\n' "$out"
        echo "compile_warnings: $version: warnings other than the PyType_Slot casts:" >&2
        printf '%s\n' "$others" >&2
        status=1
    else
        echo "compile_warnings: $version, $("$py" -c 'import sys; print("Python %d.%d" % sys.version_info[:2])') headers: no warnings but the $n_allowed PyType_Slot function-pointer casts"
    fi
done

# What MSVC lacks. A GCC extension is allowed only inside a preprocessor
# conditional that names __GNUC__, __clang__, __has_attribute or __has_builtin.
msvc=$(awk '
    /^[ \t]*#[ \t]*if/    { depth++; guard[depth] = ($0 ~ /__GNUC__|__clang__|__has_attribute|__has_builtin/) ; next }
    /^[ \t]*#[ \t]*elif/  { guard[depth] = ($0 ~ /__GNUC__|__clang__|__has_attribute|__has_builtin/); next }
    /^[ \t]*#[ \t]*else/  { guard[depth] = 0; next }
    /^[ \t]*#[ \t]*endif/ { depth--; next }
    {
        line = $0                                # comments: drop what they say
        if (incomment) {
            if ((end = index(line, "*/")) == 0) next
            line = substr(line, end + 2); incomment = 0
        }
        while ((start = index(line, "/*")) > 0) {
            rest = substr(line, start + 2)
            if ((end = index(rest, "*/")) == 0) { line = substr(line, 1, start - 1); incomment = 1; break }
            line = substr(line, 1, start - 1) " " substr(rest, end + 2)
        }
        sub(/\/\/.*/, "", line)
        if (line !~ /__attribute__|__builtin_|__typeof__|[^_a-zA-Z]typeof[ \t]*\(|\([ \t]*\{|__extension__|__asm__/) next
        guarded = 0
        for (i = 1; i <= depth; i++) if (guard[i]) guarded = 1
        if (!guarded) printf "%s:%d: %s\n", FILENAME, FNR, $0
    }' "$here"/src/*.c "$here"/src/*.h)
if [ -n "$msvc" ]; then
    echo "compile_warnings: GCC extensions MSVC lacks, outside a __GNUC__/__clang__ guard:" >&2
    printf '%s\n' "$msvc" >&2
    status=1
fi
headers=$(grep -hoE '^[ \t]*#[ \t]*include[ \t]*<[^>]+>' "$here"/src/*.c "$here"/src/*.h |
    grep -oE '<[^>]+>' | sort -u)
iso='<(assert|complex|ctype|errno|fenv|float|inttypes|iso646|limits|locale|math|setjmp|signal|stdalign|stdarg|stdbool|stddef|stdint|stdio|stdlib|stdnoreturn|string|tgmath|time|uchar|wchar|wctype)\.h>'
python_headers='<(Python|structmember)\.h>'
foreign=$(printf '%s\n' "$headers" | grep -vE "^($iso|$python_headers)\$" || true)
if [ -n "$foreign" ]; then
    echo "compile_warnings: headers that are neither ISO C nor Python's (POSIX-only?): $foreign" >&2
    status=1
fi
[ $status = 0 ] && echo "compile_warnings: no GCC-only constructs outside a guard; headers: $(echo $headers)"
exit $status
