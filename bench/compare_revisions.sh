#!/usr/bin/env bash
# Before/after table of the benchmarks for two revisions, measured side by side in one run
# (a move or a refactor must leave every ratio unchanged within noise).
#
#   bench/compare_revisions.sh OLD_REV NEW_REV [BENCH...]
#     NEW_REV  a revision, or . for the working tree as it is (uncommitted changes included)
#     BENCH    default: span_bench sample_bench fiber_bench gapfill_bench writers_bench
#   RUNS=2 (default) alternations old, new, old, new ...; REPETITIONS=5 per run
#
# Each revision is built in release (-Dbuild_tests=false) under ${TMPDIR:-/tmp}/spanprof-compare/.
# Prints, per benchmark case, the median CPU time per iteration of each revision over all its
# repetitions and runs, and new/old. The benchmarks' own "ratios (same run)" blocks, which divide
# cases measured in the same process, are kept in the logs beside the table.
set -euo pipefail

(($# >= 2)) || { sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
old_rev=$1 new_rev=$2; shift 2
[[ "$new_rev" == . ]] && new_rev=
benches=("$@")
((${#benches[@]})) || benches=(span_bench sample_bench fiber_bench gapfill_bench writers_bench)
runs=${RUNS:-2} repetitions=${REPETITIONS:-5}
work=${TMPDIR:-/tmp}/spanprof-compare
mkdir -p "$work"

# checkout REV DIR: a detached worktree of REV (or the working tree itself for "").
checkout() {
  local rev=$1 dir=$2
  if [[ -z "$rev" ]]; then echo "$root"; return; fi
  if [[ ! -d "$dir/.git" && ! -f "$dir/.git" ]]; then
    git -C "$root" worktree add --detach -f "$dir" "$rev" >/dev/null
  else
    git -C "$dir" checkout -q --detach "$rev"
  fi
  echo "$dir"
}

build() {  # build SOURCE BUILD_DIR
  local src=$1 dir=$2
  [[ -f "$dir/build.ninja" ]] || meson setup "$dir" "$src" --buildtype=release -Dbuild_tests=false \
    -Dbuild_examples=false -Dbuild_bench=true >"$dir.setup.log" 2>&1 ||
    { cat "$dir.setup.log"; exit 1; }
  ninja -C "$dir" "${benches[@]/#/bench/}" >"$dir.build.log" 2>&1 || { tail -30 "$dir.build.log"; exit 1; }
}

old_src=$(checkout "$old_rev" "$work/old-src")
new_src=$(checkout "$new_rev" "$work/new-src")
build "$old_src" "$work/old"
build "$new_src" "$work/new"
echo "old: $old_rev ($(git -C "$old_src" rev-parse --short HEAD))"
echo "new: ${new_rev:-working tree} ($(git -C "$new_src" rev-parse --short HEAD)$([[ -z "$new_rev" ]] && ! git -C "$root" diff --quiet && echo ', with changes'))"

for bench in "${benches[@]}"; do
  for ((run = 1; run <= runs; ++run)); do
    for side in old new; do
      "$work/$side/bench/$bench" --benchmark_repetitions="$repetitions" \
        --benchmark_out="$work/$bench.$side.$run.json" --benchmark_out_format=json \
        >"$work/$bench.$side.$run.log" 2>&1 || echo "($bench $side run $run exited $?: $work/$bench.$side.$run.log)"
    done
  done
done

python3 - "$work" "$runs" "${benches[@]}" <<'PY'
import json, statistics, sys
work, runs, benches = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
print(f"\n{'case':<52} {'old cpu':>12} {'new cpu':>12} {'new/old':>8}")
for bench in benches:
    times = {"old": {}, "new": {}}
    for side in times:
        for run in range(1, runs + 1):
            try:
                doc = json.load(open(f"{work}/{bench}.{side}.{run}.json"))
            except (OSError, ValueError):
                continue
            for b in doc.get("benchmarks", []):
                if b.get("run_type") != "iteration" or b.get("error_occurred"):
                    continue
                times[side].setdefault(b["run_name"], []).append(b["cpu_time"] * {"ns": 1, "us": 1e3, "ms": 1e6, "s": 1e9}[b["time_unit"]])
    print(bench)
    for case in times["new"]:
        if case not in times["old"]:
            print(f"  {case:<50} {'-':>12} {statistics.median(times["new"][case]):>10.1f}ns {'new':>8}")
            continue
        old, new = statistics.median(times["old"][case]), statistics.median(times["new"][case])
        print(f"  {case:<50} {old:>10.1f}ns {new:>10.1f}ns {new / old:>8.3f}")
PY
echo "logs (with each benchmark's own same-run ratios): $work/<bench>.<old|new>.<run>.log"
