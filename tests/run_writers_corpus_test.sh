#!/usr/bin/env bash
# The 'clients' suite, corpus half: writers_corpus writes a seeded corpus of synthetic
# transactions (hostile names, invalid UTF-8, 1 MiB strings, 500+ frame stacks, 0/1/3000 samples,
# thousands of spans...) in every format, then each format's files go through its real client,
# tools/<checker> (formats.md). The formats and their checkers come from the corpus program
# (writers_table.hpp), so a new writer without a checker in tools/ fails here.
#
#   tests/run_writers_corpus_test.sh CORPUS_BINARY SOURCE_ROOT [COUNT]
#
# Exit 0 all files pass, 1 a check failed or a format has no checker, 77 (meson: skipped) when
# the validators are not installed (same rule as run_clients_test.sh).
set -uo pipefail

if (($# < 2 || $# > 3)); then
  echo "usage: $0 CORPUS_BINARY SOURCE_ROOT [COUNT]" >&2
  exit 2
fi
corpus=$1
root=$2
count=${3:-30}

# shellcheck source=tests/clients_common.sh
source "$(dirname "${BASH_SOURCE[0]}")/clients_common.sh"
require_validators
require_program "$corpus"

out=$(mktemp -d "${TMPDIR:-/tmp}/spanprof-corpus.XXXXXX") || { echo "FAIL: mktemp -d failed" >&2; exit 1; }
trap 'rm -rf "$out"' EXIT

echo "== $corpus $out $count"
"$corpus" "$out" "$count" || { echo "FAIL: the corpus program exited with status $?" >&2; exit 1; }
formats=$("$corpus" --formats) || { echo "FAIL: $corpus --formats failed" >&2; exit 1; }

failed=0 skipped=0 ran=0
shopt -s nullglob
while read -r name extension checker; do
  files=("$out"/*"$extension")
  # As many as the corpus program says it wrote (it leaves out the empty ones, as the collector
  # does), and at least one: a writer that wrote nothing is a failure.
  expected=$(awk -v ext="$extension" '$1 == ext { print $2 }' "$out/expected-files")
  if [[ -z "$expected" ]] || ((expected == 0 || ${#files[@]} != expected)); then
    echo "FAIL: $name: expected ${expected:-?} (> 0) *$extension files, found ${#files[@]}" >&2
    failed=1
    continue
  fi
  if [[ -z "$checker" || ! -x "$root/tools/$checker" ]]; then
    echo "FAIL: $name has no checker: tools/${checker:-?} is missing or not executable" >&2
    failed=1
    continue
  fi
  # One call per format: the Chromium-based checks launch the browser once for all the files.
  echo "== tools/$checker (${#files[@]} $name files)"
  "$root/tools/$checker" "${files[@]}"
  rc=$?
  case $rc in
    0) ran=$((ran + 1)) ;;
    77) echo "SKIP: tools/$checker says its validators are not installed"; skipped=1 ;;
    *) echo "FAIL: tools/$checker exited with status $rc" >&2; failed=1 ;;
  esac
done <<<"$formats"

((failed)) && exit 1
((skipped)) && exit 77
echo "== all $ran checker(s) passed on $count transactions"
exit 0
