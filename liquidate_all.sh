#!/usr/bin/env bash
# EMERGENCY: set the global freeze, cancel every open order, flatten every position at
# market, close the database rows (reason liquidate_all). Asks for confirmation unless
# --yes. Works while the bots run and when the database is missing or corrupt (the
# broker is handled first). Arguments go to `daytrading liquidate-all`
# (global options such as --config or --port may be given anywhere).
# Exit code: 0 flat with nothing working, 1 the broker part failed, 2 bad input.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$ROOT"
source scripts/bootstrap.sh ""  # no extras (an empty argument keeps "$@" away from it)
exec python "$ROOT/scripts/liquidate_all.py" "$@"
