#!/usr/bin/env bash
# The 'packaging' suite: spanprof consumed the ways a user outside this build would.
#   (a) find_package: `meson install --destdir` of this build into a temp folder, then
#       tests/cmake_consumer configured with CMAKE_PREFIX_PATH=<destdir><prefix>, built, run
#   (b) add_subdirectory: the same consumer on the source tree's CMakeLists.txt
#   (c) pkg-config: c++ main.cpp $(pkg-config --cflags --libs spanprof), PKG_CONFIG_PATH into
#       the destdir (PKG_CONFIG_SYSROOT_DIR=<destdir>: the .pc file names the final prefix)
# Each consumer inits spanprof with an output folder, runs one transaction with a span, shuts
# down and exits non-zero unless a file was written; this script also wants a transaction file.
#
#   tests/run_packaging_test.sh BUILD_DIR SOURCE_ROOT
# Exit 0 all pass, 1 any failure (named), 77 (meson: skipped) without cmake or pkg-config.
set -uo pipefail
if (($# != 2)); then
  echo "usage: $0 BUILD_DIR SOURCE_ROOT" >&2
  exit 2
fi
build=$1 root=$2
for tool in cmake pkg-config meson; do
  command -v "$tool" >/dev/null || { echo "SKIP: $tool is not on PATH"; exit 77; }
done
CXX=${CXX:-c++}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/spanprof-packaging.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
failed=0
fail() { echo "FAIL: $*" >&2; failed=1; }
run_consumer() {  # run_consumer NAME BINARY
  local out="$tmp/out-$1"
  mkdir -p "$out"
  if ! "$2" "$out"; then fail "$1: the consumer exited non-zero"; return; fi
  if compgen -G "$out/*.transaction.json" >/dev/null || compgen -G "$out/*.envelope" >/dev/null ||
     compgen -G "$out/*.trace.json" >/dev/null; then
    echo "OK   $1: $(find "$out" -type f | wc -l) file(s) written"
  else
    fail "$1: no transaction file in $out: $(ls "$out")"
  fi
}

dest="$tmp/dest"
echo "== meson install -C $build --destdir $dest"
if ! meson install -C "$build" --no-rebuild --destdir "$dest" >"$tmp/install.log" 2>&1; then
  cat "$tmp/install.log" >&2
  echo "FAIL: meson install failed" >&2
  exit 1
fi
prefix=$(meson introspect "$build" --buildoptions | python3 -c \
  'import json, sys; print(next(o["value"] for o in json.load(sys.stdin) if o["name"] == "prefix"))')
pfx="$dest$prefix"

# cmake_consumer NAME BUILD_DIR -D...: configures, builds and runs the consumer one way.
cmake_consumer() {
  local name=$1 dir=$2; shift 2
  if cmake -S "$root/tests/cmake_consumer" -B "$dir" -DCMAKE_CXX_COMPILER="$CXX" "$@" \
       -DCMAKE_BUILD_TYPE=RelWithDebInfo >"$dir.log" 2>&1 &&
     cmake --build "$dir" -j2 >>"$dir.log" 2>&1; then
    run_consumer "$name" "$dir/consumer"
  else
    cat "$dir.log" >&2; fail "$name: configure or build failed"
  fi
}

echo "== (a) find_package(spanprof) against $pfx"
cmake_consumer find_package "$tmp/a" -DCMAKE_PREFIX_PATH="$pfx"

echo "== (b) add_subdirectory($root)"
cmake_consumer add_subdirectory "$tmp/b" -DSPANPROF_SOURCE_DIR="$root"

echo "== (c) pkg-config spanprof from $pfx"
pcdir=$(dirname "$(find "$pfx" -name spanprof.pc | head -n 1)")
if [[ -z "$pcdir" || ! -f "$pcdir/spanprof.pc" ]]; then
  fail "pkg-config: no spanprof.pc installed under $pfx"
elif flags=$(PKG_CONFIG_PATH="$pcdir" PKG_CONFIG_SYSROOT_DIR="$dest" pkg-config --cflags --libs spanprof 2>&1); then
  # shellcheck disable=SC2086  # pkg-config's output is words
  if "$CXX" -O1 "$root/tests/cmake_consumer/main.cpp" -o "$tmp/pc-consumer" $flags >"$tmp/c.log" 2>&1; then
    run_consumer pkg-config "$tmp/pc-consumer"
  else
    cat "$tmp/c.log" >&2; fail "pkg-config: c++ main.cpp \$(pkg-config --cflags --libs spanprof) failed ($flags)"
  fi
else
  fail "pkg-config: $flags"
fi
((failed)) && exit 1
echo "== packaging: all consumers built and wrote profiles"
exit 0
