#!/usr/bin/env python3
"""`daytrading test-connection`: connect with the tools client id and print server version, account, paper/live, market data type.

Usage: python scripts/test_connection.py [options]   (global options such as --config, --db, --port
may be given anywhere). Same as `daytrading test-connection`; works from a checkout without installing.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from daytrading.ops import script_main  # noqa: E402

if __name__ == "__main__":
    sys.exit(script_main("test-connection"))
