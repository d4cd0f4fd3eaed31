#!/usr/bin/env bash
# The whole test suite: unit, property, contract (SQLite and PostgreSQL) and HTTP tests.
# PostgreSQL: uses TIERCARE_TEST_POSTGRES_URL (default postgres://postgres@127.0.0.1:5432/test);
# the contract suite creates its own database there. Set TIERCARE_REQUIRE_POSTGRES=1 to
# fail instead of skipping the PostgreSQL half when no server answers (CI does).
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
cargo test --workspace --locked "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
# one closing line for the whole suite (cargo prints one per test binary)
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i; if ($(i+1) ~ /^ignored/) s += $i } }
     END { printf "%d passed, %d failed, %d skipped\n", p, f, s }' "$log"
exit "$status"
