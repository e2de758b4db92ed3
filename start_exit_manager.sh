#!/usr/bin/env bash
# Run only the exit-manager (IB clientId 10), without the supervisor: e.g. to keep every
# position protected while the day-trader is off. Creates .venv-daytrader and installs on
# first run, initialises the database. Extra arguments go to `daytrading` global options
# first, e.g. ./start_exit_manager.sh --mode paper
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$ROOT"
source scripts/bootstrap.sh ""  # no extras (an empty argument keeps "$@" away from it)
daytrading "$@" db init >/dev/null
exec daytrading "$@" exit-manager
