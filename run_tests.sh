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
# The dashboard's browser tests drive the system Chromium (Playwright cannot download its own here).
if [ -z "${DAYTRADING_CHROMIUM:-}" ] && ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "[run_tests] installing headless Chromium for the browser tests (apt-get install chromium)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "run_tests: Chromium is missing and cannot be installed here (needs root and apt-get);" \
         "install the 'chromium' package, or set DAYTRADING_CHROMIUM to a Chromium executable" >&2
    exit 2
  fi
fi
exec python -m pytest -n 2 --dist loadfile -p no:cacheprovider "$@"
