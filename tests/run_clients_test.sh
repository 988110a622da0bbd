#!/usr/bin/env bash
# The 'clients' suite: run the example, then open every profile it wrote with the independent
# validators (tools/check-chrome-trace, tools/check-sentry-transaction, tools/check-sentry-envelope,
# tools/check-speedscope, tools/check-pprof, tools/check-folded; formats.md). The example writes
# every format (SPANPROF_FORMATS below), whatever the default set is.
#
#   tests/run_clients_test.sh EXAMPLE_BINARY SOURCE_ROOT
#
# Exit 0 all files pass, 1 a check failed or nothing was written, 77 (meson: skipped) when the
# validators are not installed (SPANPROF_VALIDATORS_DIR unset or without node_modules; scripts/test
# sets it up) or a checker reports them missing.
set -uo pipefail

if (($# != 2)); then
  echo "usage: $0 EXAMPLE_BINARY SOURCE_ROOT" >&2
  exit 2
fi
example=$1
root=$2

# shellcheck source=tests/clients_common.sh
source "$(dirname "${BASH_SOURCE[0]}")/clients_common.sh"
require_validators
require_program "$example"

out=$(mktemp -d "${TMPDIR:-/tmp}/spanprof-clients.XXXXXX") || { echo "FAIL: mktemp -d failed" >&2; exit 1; }
trap 'rm -rf "$out"' EXIT

formats=chrome,sentry,envelope,speedscope,pprof,folded,flamegraph
echo "== running $example (SPANPROF_OUTPUT_DIR=$out SPANPROF_FORMATS=$formats)"
SPANPROF_OUTPUT_DIR=$out SPANPROF_FORMATS=$formats "$example"
rc=$?
if ((rc != 0)); then
  echo "FAIL: the example exited with status $rc" >&2
  exit 1
fi

shopt -s nullglob
traces=("$out"/*.trace.json)
transactions=("$out"/*.transaction.json)
envelopes=("$out"/*.envelope)
speedscopes=("$out"/*.speedscope.json)
pprofs=("$out"/*.pb.gz)
folded=("$out"/*.folded)  # per transaction and the per-name .aggregate.folded
svgs=("$out"/*.svg)       # likewise
echo "== wrote ${#traces[@]} Chrome trace(s), ${#transactions[@]} Sentry transaction(s), ${#envelopes[@]} envelope(s)," \
  "${#speedscopes[@]} speedscope file(s), ${#pprofs[@]} pprof profile(s), ${#folded[@]} folded file(s)," \
  "${#svgs[@]} SVG flame graph(s)"
# Every format asked for must be there: a writer that silently wrote nothing is a failure.
for kind in traces transactions envelopes speedscopes pprofs folded svgs; do
  declare -n files_of_kind=$kind
  if ((${#files_of_kind[@]} == 0)); then
    echo "FAIL: the example wrote no $kind into $out" >&2
    exit 1
  fi
done

failed=0 skipped=0 ran=0
check() {  # check TOOL FILE...: runs one checker over a set of files, tallies its verdict
  local tool=$1
  shift
  (($# > 0)) || return 0
  if [[ ! -x "$root/tools/$tool" ]]; then
    echo "FAIL: $root/tools/$tool is missing or not executable" >&2
    failed=1
    return 0
  fi
  echo "== tools/$tool ($# files)"
  "$root/tools/$tool" "$@"
  local rc=$?
  case $rc in
    0) ran=$((ran + 1)) ;;
    77) echo "SKIP: tools/$tool says its validators are not installed"; skipped=1 ;;
    *) echo "FAIL: tools/$tool exited with status $rc" >&2; failed=1 ;;
  esac
}
check check-chrome-trace "${traces[@]}"
check check-sentry-transaction "${transactions[@]}"
check check-sentry-envelope "${envelopes[@]}"
check check-speedscope "${speedscopes[@]}"
check check-pprof "${pprofs[@]}"
check check-folded "${folded[@]}" "${svgs[@]}"

((failed)) && exit 1
# A format that was not validated is not a pass.
((skipped)) && exit 77
echo "== all $ran checker(s) passed"
exit 0
