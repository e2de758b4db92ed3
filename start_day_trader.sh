#!/usr/bin/env bash
# Run only the day-trader (IB clientId 2), without the supervisor. Start the exit-manager
# first (./start_exit_manager.sh): the day-trader never sells, so without the exit-manager
# its positions have no target and no stop. Creates .venv-daytrader on first run.
# Extra arguments are `daytrading` global options, e.g. ./start_day_trader.sh --mode paper
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$ROOT"
source scripts/bootstrap.sh ""  # no extras (an empty argument keeps "$@" away from it)
daytrading "$@" db init >/dev/null
exec daytrading "$@" day-trader
