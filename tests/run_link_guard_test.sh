#!/usr/bin/env bash
# The engine is compiled in exactly one TU: forgetting it, or compiling it twice, must fail at
# link time with a symbol that says what to do; one engine TU links and records a transaction;
# with SPANPROF_DISABLE no engine is needed at all.
#   run_link_guard_test.sh SOURCE_ROOT CXX [CXX args...]
set -euo pipefail
root=$1; shift
cxx=("$@")
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
cd "$work"
cat > user.cpp <<'CPP'
#include <spanprof/spanprof.hpp>
#include <cstdio>
#include <dirent.h>
int main() {
  spanprof::config cfg;
  cfg.output_dir = "out";
  cfg.sampling = false;
  if (!spanprof::init(cfg)) return 2;
  { SPANPROF_TRANSACTION("GET /link-guard"); SPANPROF_SPAN("db.sql.query", "select 1"); }
  spanprof::shutdown();
  std::printf("written %llu\n", static_cast<unsigned long long>(spanprof::stats().transactions_written));
  return spanprof::stats().transactions_written == 1 ? 0 : 1;
}
CPP
printf '#define SPANPROF_IMPLEMENTATION\n#include <spanprof/spanprof.hpp>\n' > engine.cpp
flags=(-std=c++20 -I"$root/include")
libs=($(pkg-config --libs fmt libdw zlib) -pthread)
# Each TU is compiled once (the engine TU is most of this test's time); a second engine TU is the
# same source compiled again, so a copy of its object stands for it.
"${cxx[@]}" "${flags[@]}" -c user.cpp -o user.o
"${cxx[@]}" "${flags[@]}" -c engine.cpp -o engine_a.o
cp engine_a.o engine_b.o
fail=0
expect_link_error() {  # NAME SYMBOL FILES...
  local name=$1 symbol=$2; shift 2
  if "${cxx[@]}" "$@" "${libs[@]}" -o "$name" 2> "$name.err"; then
    echo "FAIL $name: linked, expected an error naming $symbol"; fail=1
  elif ! grep -q "$symbol" "$name.err"; then
    echo "FAIL $name: the link error does not name $symbol:"; cat "$name.err"; fail=1
  else
    echo "ok   $name: $(grep -m1 -o "[^ ]*$symbol[^ ]*" "$name.err")"
  fi
}
expect_link_error no_engine spanprof_engine_missing__define_SPANPROF_IMPLEMENTATION_in_one_cpp_file user.o
expect_link_error two_engines spanprof_engine_defined_twice__define_SPANPROF_IMPLEMENTATION_in_only_one_cpp_file \
  user.o engine_a.o engine_b.o
if "${cxx[@]}" user.o engine_a.o "${libs[@]}" -o one_engine && ./one_engine; then
  echo "ok   one_engine: links and writes its transaction"
else
  echo "FAIL one_engine"; fail=1
fi
# Compiled out: the light header alone links, with no engine and no fmt/libdw/zlib.
if "${cxx[@]}" "${flags[@]}" -DSPANPROF_DISABLE user.cpp -o disabled 2> disabled.err &&
   [[ "$(./disabled || true)" == "written 0" ]]; then
  echo "ok   disabled: links without an engine"
else
  echo "FAIL disabled:"; cat disabled.err; fail=1
fi
exit "$fail"
