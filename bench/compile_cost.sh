#!/usr/bin/env bash
# What including spanprof costs a user's translation unit (issue 13 targets: CPU ratio <= 2.0,
# peak memory ratio <= 1.6). Compiles, with `$CXX -std=c++20 -O2 -c`:
#   spanprof  a TU that includes <spanprof/spanprof.hpp> and opens a transaction and a span
#             (SPANPROF_TRANSACTION + SPANPROF_SPAN inside a function)
#   baseline  the same TU with that include replaced by <atomic>, <cstdint>, <string>,
#             <string_view> (and the macros by nothing)
#   engine    include/spanprof/engine.cpp, the one TU that compiles the engine, if it exists
#   tracy     optionally, the same TU against Tracy (ZoneScoped, -DTRACY_ENABLE) when
#             TRACY_PUBLIC=/path/to/tracy/public is given (never commit Tracy's code)
# RUNS (default 3) runs each, interleaved (spanprof, baseline, [tracy,] spanprof, ...), so a
# machine that gets busier slows all of them alike. Measures user+sys CPU and peak RSS with
# /usr/bin/time -f; prints medians and the two ratios spanprof/baseline.
#
#   bench/compile_cost.sh                       # from the source root; CXX=g++ by default
#   RUNS=5 CXX=clang++ bench/compile_cost.sh
#   TRACY_PUBLIC=/tmp/tracy/public bench/compile_cost.sh
#   meson compile -C build compile_cost         # the same, as a run_target
# Exit status: 0 when measured (whatever the ratios), 1 when a compile failed.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
CXX=${CXX:-g++}
RUNS=${RUNS:-3}
TIME=/usr/bin/time
[[ -x $TIME ]] || { echo "compile_cost: $TIME missing (apt-get install time)" >&2; exit 1; }
tmp=$(mktemp -d "${TMPDIR:-/tmp}/compile_cost.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

body='
int handle_request(int n) {
  SPANPROF_TRANSACTION("handle_request");
  int sum = 0;
  {
    SPANPROF_SPAN("work", "loop");
    for (int i = 0; i < n; ++i) sum += i * i;
  }
  return sum;
}'
printf '#include <spanprof/spanprof.hpp>\n%s\n' "$body" >"$tmp/spanprof.cpp"
printf '#include <atomic>\n#include <cstdint>\n#include <string>\n#include <string_view>\n#define SPANPROF_TRANSACTION(n)\n#define SPANPROF_SPAN(o, d)\n%s\n' \
  "$body" >"$tmp/baseline.cpp"
kinds=(spanprof baseline)
declare -A flags=([spanprof]="-I$root/include" [baseline]="")
if [[ -f "$root/include/spanprof/engine.cpp" ]]; then
  # In place: it includes "spanprof.hpp" beside it.
  ln -s "$root/include/spanprof/engine.cpp" "$tmp/engine.cpp"
  kinds+=(engine) flags[engine]="-I$root/include -I$root/include/spanprof"
fi
if [[ -n "${TRACY_PUBLIC:-}" ]]; then
  printf '#include <tracy/Tracy.hpp>\n#define SPANPROF_TRANSACTION(n) ZoneScopedN(n)\n#define SPANPROF_SPAN(o, d) ZoneScopedN(o)\n%s\n' \
    "$body" >"$tmp/tracy.cpp"
  kinds+=(tracy) flags[tracy]="-I$TRACY_PUBLIC -DTRACY_ENABLE"
fi

declare -A cpu mem
for ((r = 1; r <= RUNS; r++)); do
  for k in "${kinds[@]}"; do
    # shellcheck disable=SC2086  # flags are words
    if ! "$TIME" -f '%U %S %M' -o "$tmp/$k.time" "$CXX" -std=c++20 -O2 ${flags[$k]} -c "$tmp/$k.cpp" \
         -o "$tmp/$k.o" 2>"$tmp/$k.err"; then
      echo "compile_cost: $k failed to compile:" >&2
      head -n 20 "$tmp/$k.err" >&2
      exit 1
    fi
    read -r u s m <"$tmp/$k.time"
    cpu[$k]+="$(awk -v u="$u" -v s="$s" 'BEGIN { printf "%.2f", u + s }') "
    mem[$k]+="$m "
  done
done

median() { tr ' ' '\n' | sed '/^$/d' | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
printf '%s -std=c++20 -O2 -c, %d runs each, medians\n' "$CXX" "$RUNS"
printf '%-10s %12s %14s   %s\n' TU 'cpu (s)' 'peak RSS (MiB)' 'all runs: cpu s / RSS KiB'
declare -A mcpu mmem
for k in "${kinds[@]}"; do
  mcpu[$k]=$(median <<<"${cpu[$k]}")
  mmem[$k]=$(median <<<"${mem[$k]}")
  printf '%-10s %12.2f %14.1f   %s/ %s\n' "$k" "${mcpu[$k]}" "$(awk -v m="${mmem[$k]}" 'BEGIN { print m / 1024 }')" \
    "${cpu[$k]}" "${mem[$k]}"
done
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b > 0) ? a / b : 0 }'; }
echo "CPU ratio spanprof/baseline:    $(ratio "${mcpu[spanprof]}" "${mcpu[baseline]}") (target <= 2.0)"
echo "memory ratio spanprof/baseline: $(ratio "${mmem[spanprof]}" "${mmem[baseline]}") (target <= 1.6)"
if [[ -n "${mcpu[tracy]:-}" ]]; then
  echo "CPU ratio tracy/baseline:       $(ratio "${mcpu[tracy]}" "${mcpu[baseline]}")"
  echo "memory ratio tracy/baseline:    $(ratio "${mmem[tracy]}" "${mmem[baseline]}")"
fi
