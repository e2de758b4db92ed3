#!/usr/bin/env bash
# Create .venv-daytrader when missing and (re)install the project when pyproject.toml changed.
# Usage: source scripts/bootstrap.sh [extras]   (extras: "dev" for the test tools)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${DAYTRADING_VENV:-$ROOT/.venv-daytrader}"
EXTRAS="${1:-}"
PY="${PYTHON:-python3}"
if [ ! -x "$VENV/bin/python" ]; then
  echo "[bootstrap] creating virtual environment $VENV"
  "$PY" -m venv "$VENV"
  "$VENV/bin/python" -m pip install --quiet --upgrade pip
fi
SPEC="."
[ -n "$EXTRAS" ] && SPEC=".[$EXTRAS]"
STAMP="$VENV/.daytrading-installed-$(echo "$EXTRAS" | tr -c 'a-z' '_')"
HASH="$(cat "$ROOT/pyproject.toml" | sha256sum | cut -c1-16)"
if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$HASH" ]; then
  echo "[bootstrap] installing daytrading $SPEC into $VENV (first run downloads the dependencies)"
  (cd "$ROOT" && "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -e "$SPEC")
  echo "$HASH" > "$STAMP"
fi
export PATH="$VENV/bin:$PATH"
