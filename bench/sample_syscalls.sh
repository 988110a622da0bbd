#!/usr/bin/env bash
# Syscalls per SIGPROF sample, counted by strace: is the handler path syscall-free?
#
#   bench/sample_syscalls.sh [build/bench-rel/bench/sample_bench] [round trips]
#
# For each handler (bare = an empty SA_SIGINFO handler in place of spanprof's, fp, dwarf)
# and stack depth (10, 50) it runs
#   strace -f -c -e trace=all -o OUT sample_bench --syscalls=KIND --count=N --depth=D
# twice, with N round trips and with 0, and prints (calls(N) - calls(0)) / N for every syscall
# whose count grows with N. A syscall-free handler shows only the round trip itself: tgkill and
# rt_sigreturn, 1.00 each. Counts under 0.05 per sample come from the other threads, whose
# syscalls scale with the run's duration, not with samples (the collector's 20 ms futex poll,
# the 1 Hz ticker's clock_nanosleep and its tgkill), and strace slows every signal down.
set -euo pipefail

bench=${1:-build/bench-rel/bench/sample_bench}
count=${2:-2000}
command -v strace >/dev/null || { echo "sample_syscalls.sh: strace not installed (apt-get install strace)" >&2; exit 1; }
[[ -x "$bench" ]] || { echo "sample_syscalls.sh: $bench is not built" >&2; exit 1; }
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

# "calls syscall" pairs from a strace -c summary (the errors column is optional).
calls() {
  awk '/^-+/ {section++; next} section == 1 && NF >= 5 { print $(NF), $4 }' "$1"
}

printf '%-10s %5s  %s\n' handler depth "syscalls per sample (strace -f -c; only those that grow with samples)"
for kind in bare fp dwarf; do
  for depth in 10 50; do
    for n in 0 "$count"; do
      strace -f -c -e trace=all -o "$out/$kind-$depth-$n.txt" \
        "$bench" --syscalls="$kind" --count="$n" --depth="$depth" >"$out/$kind-$depth-$n.log"
    done
    line=$(join -a 2 -e 0 -o 0,1.2,2.2 <(calls "$out/$kind-$depth-0.txt" | sort) <(calls "$out/$kind-$depth-$count.txt" | sort) |
      awk -v n="$count" '{ d = ($3 - $2) / n; if (d >= 0.05) printf "%s %.2f  ", $1, d }')
    printf '%-10s %5s  %s\n' "$kind" "$depth" "$line"
  done
done
echo "($count round trips per run; $(basename "$bench") --syscalls=KIND --count=N --depth=D under strace -f -c -e trace=all)"
