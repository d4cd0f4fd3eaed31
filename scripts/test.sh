#!/usr/bin/env bash
# The whole test suite: unit, property, contract (SQLite and PostgreSQL), HTTP and browser tests.
# PostgreSQL: uses TIERCARE_TEST_POSTGRES_URL (default postgres://postgres@127.0.0.1:5432/test);
# the contract suite creates its own database there. Set TIERCARE_REQUIRE_POSTGRES=1 to
# fail instead of skipping the PostgreSQL half when no server answers (CI does).
# Browser tests (tests/e2e, node --test): run when /usr/bin/chromium exists and npm's
# playwright-core is installed (`npm ci` is run here when node_modules is missing); set
# TIERCARE_REQUIRE_BROWSER=1 to fail instead of skipping them (CI does).
set -euo pipefail
cd "$(dirname "$0")/.."

url="${TIERCARE_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test}"
pg_up() { command -v pg_isready >/dev/null 2>&1 && pg_isready -q -h 127.0.0.1 -p 5432; }
if ! pg_up && command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ]; then
  echo "starting PostgreSQL…"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
  for _ in $(seq 1 30); do pg_up && break; sleep 1; done
fi
if pg_up; then
  export TIERCARE_TEST_POSTGRES_URL="$url"
  echo "PostgreSQL contract suite: on ($url)"
elif [ "${TIERCARE_REQUIRE_POSTGRES:-0}" = 1 ]; then
  echo "PostgreSQL is required (TIERCARE_REQUIRE_POSTGRES=1) but does not answer at 127.0.0.1:5432" >&2
  exit 1
else
  unset TIERCARE_TEST_POSTGRES_URL
  echo "PostgreSQL contract suite: SKIPPED (no server at 127.0.0.1:5432)" >&2
fi

log="$(mktemp)"
trap 'rm -f "$log"' EXIT
set +e
cargo test --workspace --locked --no-fail-fast "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e

# browser tests: headless Chromium from Debian, driven by playwright-core (never a downloaded browser)
browser_missing=""
if [ ! -x /usr/bin/chromium ]; then
  browser_missing="no /usr/bin/chromium (apt-get install chromium)"
elif ! command -v node >/dev/null 2>&1; then
  browser_missing="no node"
else
  if [ ! -d node_modules/playwright-core ] && [ -f package-lock.json ] && command -v npm >/dev/null 2>&1; then
    echo "installing the browser-test dependencies (npm ci)…"
    npm ci --no-audit --no-fund || true
  fi
  [ -d node_modules/playwright-core ] || browser_missing="no node_modules/playwright-core (npm ci)"
fi
extra_failed=0
if [ -z "$browser_missing" ]; then
  echo "browser tests: on (node --test tests/e2e/)"
  set +e
  node --test tests/e2e/ 2>&1 | tee -a "$log"
  browser_status=${PIPESTATUS[0]}
  set -e
  [ "$browser_status" = 0 ] || status=1
elif [ "${TIERCARE_REQUIRE_BROWSER:-0}" = 1 ]; then
  echo "browser tests are required (TIERCARE_REQUIRE_BROWSER=1) but cannot run: $browser_missing" >&2
  extra_failed=1
  status=1
else
  echo "browser tests: SKIPPED ($browser_missing)" >&2
fi

# one closing line for the whole suite (cargo prints one per test binary, node --test one summary)
awk -v extra="$extra_failed" '
     /^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i; if ($(i+1) ~ /^ignored/) s += $i } }
     /^# pass [0-9]+$/ { p += $3 }
     /^# (fail|cancelled) [0-9]+$/ { f += $3 }
     /^# (skipped|todo) [0-9]+$/ { s += $3 }
     END { printf "%d passed, %d failed, %d skipped\n", p, f + extra, s }' "$log"
exit "$status"
