#!/usr/bin/env bash
# Throughput of the example service with profiling on (101 Hz wall, default formats + the
# Sentry envelope) against off (SPANPROF_ENABLED=0), on the same load, alternating runs so
# that drift in the machine's load hits both sides alike.
#
#   measure_overhead.sh BUILD_DIR [RUNS_PER_SIDE=4] [SECONDS_PER_RUN=8] [MIX=both]
set -euo pipefail
build=$1
runs=${2:-4}
seconds=${3:-8}
mix=${4:-both}
service=$build/examples/service/service
load=$build/examples/service/service-load
tmp=$(mktemp -d "${TMPDIR:-/tmp}/spanprof-overhead.XXXXXX")
pids=()
trap 'for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done; rm -rf "$tmp"' EXIT

# Both services run side by side (idle while the other one is loaded); each prints its port.
start() {  # start NAME ENV...
  local name=$1
  shift
  mkfifo "$tmp/$name.out"
  env "$@" "$service" --port 0 --threads 2 --db-dir "$tmp/$name-db" --output-dir "$tmp/$name-profiles" \
    >"$tmp/$name.out" 2>"$tmp/$name.err" &
  pids+=($!)
  local line
  read -r -t 120 line <"$tmp/$name.out"
  port=${line##*:}
}
start on SPANPROF_ENABLED=1
port_on=$port
start off SPANPROF_ENABLED=0
port_off=$port

rps() { "$load" --port "$1" --mix "$mix" --connections 4 --duration "$seconds" --json |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["throughput_rps"])'; }
"$load" --port "$port_on" --mix "$mix" --requests 40 >/dev/null  # warm both (page cache, first requests)
"$load" --port "$port_off" --mix "$mix" --requests 40 >/dev/null
on=() off=()
for ((i = 0; i < runs; ++i)); do
  on+=("$(rps "$port_on")")
  off+=("$(rps "$port_off")")
  echo "run $((i + 1)): on ${on[-1]} rps, off ${off[-1]} rps"
done
for p in "${pids[@]}"; do kill -TERM "$p"; done
for p in "${pids[@]}"; do wait "$p" || true; done
pids=()
python3 - "${on[*]}" "${off[*]}" <<'PY'
import statistics, sys
on = [float(x) for x in sys.argv[1].split()]
off = [float(x) for x in sys.argv[2].split()]
print("profiling on : mean %.1f rps, median %.1f (%s)" % (statistics.mean(on), statistics.median(on), on))
print("profiling off: mean %.1f rps, median %.1f (%s)" % (statistics.mean(off), statistics.median(off), off))
print("ratio on/off: %.3f (means), %.3f (medians)" % (statistics.mean(on) / statistics.mean(off),
                                                      statistics.median(on) / statistics.median(off)))
PY
ls "$tmp/on-profiles" | wc -l | xargs echo "files written with profiling on:"
