"""The package's layer rules (import-linter contracts in pyproject.toml) hold: the engine imports
neither the protocol nor the server, nor anything that sees a connection (session, handlers,
contracts, the fault runner, the delay line, test helpers), nothing outside the sim-gateway imports its internals, the
trading bots, coordination and the database never import it, and it has no import cycle apart
from TYPE_CHECKING back-references. Runs the real ``lint-imports`` as CI does."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_import_linter_contracts_are_kept():
    lint = Path(sys.executable).with_name("lint-imports")
    res = subprocess.run([str(lint), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-2000:]
    assert "5 kept, 0 broken" in res.stdout
