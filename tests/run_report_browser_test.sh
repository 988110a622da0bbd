#!/usr/bin/env bash
# The 'clients' suite's browser test of spanprof-report (issue 15, part 4): runs the workload
# slow and fixed, writes a report of the slow run and one of the fixed run with the slow one as
# baseline, and opens both in headless Chromium (tests/report_browser_check.mjs).
#
#   tests/run_report_browser_test.sh SPANPROF_REPORT REPORT_WORKLOAD SOURCE_ROOT SCREENSHOT_DIR
# Exit 0 pass, 1 fail, 77 (skipped) without the validators (SPANPROF_VALIDATORS_DIR) or chromium.
set -uo pipefail
if (($# != 4)); then
  echo "usage: $0 SPANPROF_REPORT REPORT_WORKLOAD SOURCE_ROOT SCREENSHOT_DIR" >&2
  exit 2
fi
report=$1 workload=$2 root=$3 shots=$4
# shellcheck source=tests/clients_common.sh
source "$(dirname "${BASH_SOURCE[0]}")/clients_common.sh"
require_validators
require_program "$report"
require_program "$workload"
if [[ ! -x ${CHROMIUM:-/usr/bin/chromium} ]]; then
  echo "SKIP: no chromium at ${CHROMIUM:-/usr/bin/chromium}"
  exit 77
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/spanprof-report-browser.XXXXXX") || exit 1
trap 'rm -rf "$work"' EXIT
export SPANPROF_FORMATS=sentry,envelope SPANPROF_SAMPLE_RATE_HZ=250
line=$(SPANPROF_OUTPUT_DIR=$work/slow "$workload" 12 0 2>/dev/null) || { echo "FAIL: the workload failed" >&2; exit 1; }
SPANPROF_OUTPUT_DIR=$work/fixed "$workload" 12 1 >/dev/null 2>&1 || { echo "FAIL: the fixed workload failed" >&2; exit 1; }
site=${line##* at }   # "report_workload.cpp:48"
echo "== $line"
"$report" --sample-rate-hz 250 --out "$work/report" "$work/slow" || { echo "FAIL: spanprof-report failed" >&2; exit 1; }
"$report" --sample-rate-hz 250 --out "$work/compare" --baseline "$work/slow" "$work/fixed" >/dev/null ||
  { echo "FAIL: spanprof-report --baseline failed" >&2; exit 1; }
mkdir -p "$shots"
node "$root/tests/report_browser_check.mjs" "$work/report/report.html" "GET /api/users" report_workload_join_in_memory \
  "$site" "$shots/report.png" "$work/compare/report.html"
