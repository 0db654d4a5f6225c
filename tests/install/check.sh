#!/usr/bin/env bash
# tests/install/check.sh - install the build into a temporary root, as a
# Debian package would, and use it the way a user does: a program built with
# nothing but pkg-config (shared and static), the installed CLI on its dump,
# and the man pages.
#
#   check.sh BUILD_DIR SOURCE_DIR CC SANITIZE
set -euo pipefail
build=$1 src=$2 cc=$3 sanitize=$4
root=$(mktemp -d "${TMPDIR:-/tmp}/frinstall-XXXXXX")
trap 'rm -rf "$root"' EXIT
fail() { echo "install: $*" >&2; exit 1; }

meson install -C "$build" --destdir "$root" --no-rebuild --quiet >/dev/null

pc=$(find "$root" -name flightrec.pc -print -quit)
[ -n "$pc" ] || fail "no flightrec.pc installed"
prefix=$(PKG_CONFIG_PATH=$(dirname "$pc") pkg-config --variable=prefix flightrec)
libdir=$(PKG_CONFIG_PATH=$(dirname "$pc") pkg-config --variable=libdir flightrec)
for f in "$prefix/include/flightrec.h" "$prefix/include/flightrec/format.h" \
         "$libdir/libflightrec.so" "$libdir/libflightrec.a" "$prefix/bin/flightrec" \
         "$prefix/share/man/man1/flightrec.1" "$prefix/share/man/man3/flightrec.3"; do
    [ -e "$root$f" ] || fail "$f was not installed"
done
# The adapters the build made are installed beside the library.
for a in "$build"/recorder/adapters/libflightrec-*.so; do
    [ -e "$a" ] || continue
    [ -e "$root$libdir/$(basename "$a")" ] || fail "$(basename "$a") was not installed in $libdir"
done

export PKG_CONFIG_PATH=$(dirname "$pc") PKG_CONFIG_SYSROOT_DIR=$root
flags=()
[ "$sanitize" = none ] || flags+=("-fsanitize=$sanitize")
work=$root/work
mkdir -p "$work/dumps"

# Shared: exactly what the README tells users to write.
# shellcheck disable=SC2046
"$cc" "${flags[@]}" -o "$work/hello" "$src/tests/install/hello.c" \
    $(pkg-config --cflags --libs flightrec)
path=$(LD_LIBRARY_PATH=$root$libdir "$work/hello" "$work/dumps")
[ -f "$path" ] || fail "the shared build printed '$path', not a dump"
# (ldd's output is captured first: grep -q closing the pipe early would fail
# the pipeline under pipefail)
deps=$(LD_LIBRARY_PATH=$root$libdir ldd "$work/hello")
grep -q "$root$libdir/libflightrec.so" <<<"$deps" ||
    fail "hello is not linked to the installed libflightrec.so: $deps"

# Static: the archive and its private dependencies from --static.
libs=$(pkg-config --static --libs flightrec | sed 's/-lflightrec\b/-l:libflightrec.a/')
# shellcheck disable=SC2046,SC2086
"$cc" "${flags[@]}" -o "$work/hello-static" "$src/tests/install/hello.c" \
    $(pkg-config --cflags flightrec) $libs
deps=$(ldd "$work/hello-static")
if grep -q libflightrec <<<"$deps"; then
    fail "hello-static still loads libflightrec.so: $deps"
fi
spath=$("$work/hello-static" "$work/dumps")
[ -f "$spath" ] || fail "the static build printed '$spath', not a dump"

# The installed CLI reads both.
for p in "$path" "$spath"; do
    out=$("$root$prefix/bin/flightrec" info "$p") || fail "flightrec info $p failed"
    grep -q '"installed"' <<<"$out" || fail "info does not show the dump's reason: $out"
    out=$("$root$prefix/bin/flightrec" tasks "$p")
    grep -q 'hello_task' <<<"$out" || fail "tasks does not show hello_task: $out"
done

# The man pages render without a warning.
for page in man1/flightrec.1 man3/flightrec.3; do
    warn=$(LC_ALL=C.UTF-8 groff -man -Tutf8 -ww -z "$root$prefix/share/man/$page" 2>&1)
    [ -z "$warn" ] || fail "$page: $warn"
done
# Every command `flightrec --help` lists has its entry in flightrec(1).
cmds=$("$root$prefix/bin/flightrec" --help | awk '/^commands:/ { on = 1; next }
    on && /^  [a-z]+ / && $1 != "flightrec" { print $1 }')
[ -n "$cmds" ] || fail "no commands in flightrec --help"
for c in $cmds; do
    grep -q "^\.B $c\$" "$root$prefix/share/man/man1/flightrec.1" ||
        fail "flightrec(1) does not describe the command '$c'"
done
echo "install: headers, libraries, flightrec.pc, CLI and man pages under $prefix; shared and static consumers built with pkg-config"
