"""``python -m daytrading`` runs the command line."""

import sys

from daytrading.cli import main

sys.exit(main())
