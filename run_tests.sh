#!/usr/bin/env bash
# The test command of the README's Quick start (and of .ci/run): installs what it needs, runs pytest.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$ROOT"
source scripts/bootstrap.sh dev
if [ ! -d "$ROOT/../shared/data/market" ] && [ -z "${DAYTRADING_MARKET_DATA:-}" ]; then
  echo "run_tests: recorded market data not found at $ROOT/../shared/data/market (set DAYTRADING_MARKET_DATA)" >&2
  exit 2
fi
exec python -m pytest -n 2 --dist loadfile -p no:cacheprovider "$@"
