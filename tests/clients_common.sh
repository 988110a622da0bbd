# Sourced by the 'clients' suite's scripts: what they share.
#
#   require_validators    exit 77 (meson: skipped) unless SPANPROF_VALIDATORS_DIR has the
#                         validators (scripts/test sets it up via scripts/lib/install-deps.sh)
#   require_program FILE  exit 1 unless FILE is an executable (the program under test)

require_validators() {
  local v=${SPANPROF_VALIDATORS_DIR:-}
  if [[ -z "$v" ]]; then
    echo "SKIP: SPANPROF_VALIDATORS_DIR is not set (scripts/test sets it up via scripts/lib/install-deps.sh)"
    exit 77
  fi
  if [[ ! -d "$v/node_modules" ]]; then
    echo "SKIP: SPANPROF_VALIDATORS_DIR=$v has no node_modules (run scripts/lib/install-deps.sh)"
    exit 77
  fi
}

require_program() {
  if [[ ! -x "$1" ]]; then
    echo "FAIL: '$1' is missing or not executable" >&2
    exit 1
  fi
}
