#!/usr/bin/env bash
# Installs what spanprof's builds, tests and format validators need on Debian 12.
#
#   source scripts/lib/install-deps.sh      # defines the functions below, runs nothing
#   scripts/lib/install-deps.sh             # runs spanprof_install_deps + spanprof_setup_validators
#
# Both steps are idempotent and print nothing when everything is already in place, so every
# script can call them unconditionally: a fresh CI machine gets what it needs, a warm one pays
# a few dpkg look-ups.

# Debian packages. nodejs/npm are only installed when `node`/`npm` are not already on PATH:
# this machine kind ships node 20 + npm 11 outside apt, and Debian's nodejs would fight them.
SPANPROF_APT_PACKAGES=(
  meson ninja-build pkg-config cmake g++ clang libclang-rt-14-dev
  libfmt-dev doctest-dev nlohmann-json3-dev libbenchmark-dev
  libsimdjson-dev  # spanprof-report: streams 10,000s of profiles through an on-demand parser (GB/s, little memory)
  libboost-context-dev libboost-dev libdw-dev libelf-dev zlib1g-dev
  libsqlite3-dev  # examples/service keeps its data in a real SQLite database (meson dependency('sqlite3'))
  binutils   # objcopy/readelf for the symbolizer tests, addr2line for its benchmark
  chromium   # drives the speedscope app headless (playwright-core, never `playwright install`)
  golang-go protobuf-compiler golang-github-google-pprof-dev  # go tool pprof + protoc --decode read .pb.gz
  libdevel-nytprof-perl libxml2-utils  # flamegraph.pl (NYTProf's copy) + xmllint read .folded / .svg
)

spanprof_log() { printf '%s\n' "$*" >&2; }

# Repo root = two levels above this file, wherever the clone lives (CI clones elsewhere).
spanprof_repo_root() {
  (cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)
}

# shared/ sits beside the clone, read-only in CI; SPANPROF_SHARED_DIR overrides.
spanprof_shared_dir() {
  if [[ -n "${SPANPROF_SHARED_DIR:-}" ]]; then
    printf '%s\n' "$SPANPROF_SHARED_DIR"
  else
    printf '%s\n' "$(spanprof_repo_root)/../shared"
  fi
}

# True when the package is fully installed. `dpkg -s` alone also succeeds for removed
# packages that left config files behind, so look at the Status line.
spanprof_pkg_installed() {
  local status
  status=$(dpkg -s "$1" 2>/dev/null) || return 1
  grep -qx 'Status: install ok installed' <<<"$status"   # no pipe: grep -q + pipefail could see SIGPIPE
}

spanprof_install_deps() {
  local wanted=("${SPANPROF_APT_PACKAGES[@]}") missing=() p
  command -v node >/dev/null 2>&1 || wanted+=(nodejs)
  command -v npm  >/dev/null 2>&1 || wanted+=(npm)
  for p in "${wanted[@]}"; do
    spanprof_pkg_installed "$p" || missing+=("$p")
  done
  ((${#missing[@]} == 0)) && return 0

  local sudo=()
  if ((EUID != 0)); then
    command -v sudo >/dev/null 2>&1 || { spanprof_log "install-deps: need root to install: ${missing[*]}"; return 1; }
    sudo=(sudo)
  fi
  local log
  log=$(mktemp "${TMPDIR:-/tmp}/spanprof-apt.XXXXXX.log")
  spanprof_log "install-deps: installing ${missing[*]} (log: $log)"
  # One `apt-get update` only when something is missing: it is the slow, network-bound part.
  if "${sudo[@]}" apt-get update >"$log" 2>&1 &&
     "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
       apt-get install -y --no-install-recommends "${missing[@]}" >>"$log" 2>&1 </dev/null; then
    rm -f "$log"
    return 0
  fi
  spanprof_log "install-deps: apt-get failed; its log follows"
  cat "$log" >&2
  return 1
}

# Copies shared/docs/validation into build/validators (shared/ is read-only in CI and npm
# needs to write node_modules next to package.json), installs the pinned npm packages when
# package.json changed, and exports SPANPROF_VALIDATORS_DIR for the 'clients' test suite and
# the tools/check-* scripts.
spanprof_setup_validators() {
  local root src dst
  root=$(spanprof_repo_root)
  src="$(spanprof_shared_dir)/docs/validation"
  dst="$root/build/validators"
  if [[ ! -f "$src/package.json" ]]; then
    spanprof_log "setup-validators: $src/package.json not found (set SPANPROF_SHARED_DIR to the shared/ folder)"
    return 1
  fi
  mkdir -p "$dst"
  # Refresh the scripts and schemas every time (cheap); node_modules is kept. The copy must be
  # writable even though the source has no write bits, hence --no-preserve=mode + chmod.
  cp -R --no-preserve=mode,ownership -f "$src/." "$dst/"
  chmod u+w "$dst" "$dst"/*.json "$dst"/*.mjs 2>/dev/null || true

  local sum stamp="$dst/.package.json.sha256"
  sum=$(sha256sum "$dst/package.json" | cut -d' ' -f1)
  if [[ ! -d "$dst/node_modules" || ! -x "$dst/node_modules/.bin/ajv" ||
        "$(cat "$stamp" 2>/dev/null)" != "$sum" ]]; then
    local log
    log=$(mktemp "${TMPDIR:-/tmp}/spanprof-npm.XXXXXX.log")
    spanprof_log "setup-validators: npm install in $dst (log: $log)"
    # PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD: belt and braces; the checkers use Debian's chromium and
    # a browser download cannot work here anyway.
    if ! (cd "$dst" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 \
            npm install --no-audit --no-fund --silent >"$log" 2>&1 </dev/null); then
      spanprof_log "setup-validators: npm install failed; its log follows"
      cat "$log" >&2
      rm -f "$stamp"
      return 1
    fi
    rm -f "$log"
    printf '%s\n' "$sum" >"$stamp"   # written last: an interrupted install is retried next time
  fi
  export SPANPROF_VALIDATORS_DIR="$dst"
}

# Executed (not sourced): do both steps.
if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
  set -euo pipefail
  spanprof_install_deps
  spanprof_setup_validators
  printf 'SPANPROF_VALIDATORS_DIR=%s\n' "$SPANPROF_VALIDATORS_DIR"
fi
