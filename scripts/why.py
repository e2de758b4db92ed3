#!/usr/bin/env python3
"""`daytrading why`: gate decisions for a symbol (or --summary).

Usage: python scripts/why.py [options]   (global options such as --config, --db, --port
may be given anywhere). Same as `daytrading why`; works from a checkout without installing.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from daytrading.ops import script_main  # noqa: E402

if __name__ == "__main__":
    sys.exit(script_main("why"))
