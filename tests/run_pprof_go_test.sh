#!/usr/bin/env bash
# The 'clients' suite's pprof_go cases: pprof_test's cases that run `go tool pprof` on a profile
# they record. Exit 77 (meson: skipped) when a client is not installed, else pprof_test's status.
#
#   tests/run_pprof_go_test.sh PPROF_TEST_BINARY
set -uo pipefail
if (($# != 1)); then
  echo "usage: $0 PPROF_TEST_BINARY" >&2
  exit 2
fi
# The cases run go tool pprof and tools/check-pprof (go, protoc, node + pprof-format).
for tool in go protoc node; do
  if ! command -v "$tool" >/dev/null; then
    echo "SKIP: $tool is not on PATH (scripts/lib/install-deps.sh installs it)"
    exit 77
  fi
done
if [[ -z "${SPANPROF_VALIDATORS_DIR:-}" || ! -d "$SPANPROF_VALIDATORS_DIR/node_modules/pprof-format" ]]; then
  echo "SKIP: SPANPROF_VALIDATORS_DIR unset or without node_modules/pprof-format (scripts/test sets it up)"
  exit 77
fi
exec "$1" --test-case='pprof_go*'
