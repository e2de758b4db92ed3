#!/usr/bin/env bash
# Main job (POSIX). Creates .venv-daytrader and installs on first run, initialises the
# database, then runs the supervisor (sim mode by default: embedded sim-gateway on
# recorded data). Extra arguments go to `daytrading supervisor`.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$ROOT"
source scripts/bootstrap.sh ""
daytrading db init
if daytrading supervisor --help >/dev/null 2>&1; then
  exec daytrading supervisor --allocation "${DAYTRADING_ALLOCATION:-0.25}" "$@"
fi
echo "[start_supervisor] the supervisor is not part of this build yet; database ready:"
daytrading db positions
