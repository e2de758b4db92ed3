"""Operations commands: status, liquidate-all, analysis, session report, diagnose, tools.

Every command here is a ``cli(args, settings) -> int`` wired through
:data:`daytrading.cli.EXTERNAL_COMMANDS` (optionally with ``cli_args(parser)``).
They reach the database only through the :class:`~daytrading.coordination.Coordinator`
and the broker only through :func:`daytrading.broker.connection.connect` with
``ib.tools_client_id`` (99), so they can run while both bots are running.

Exit codes follow :mod:`daytrading.cli`: 0 success, 1 a failed check or action,
2 bad input or configuration.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from daytrading.config import Settings
from daytrading.coordination import Coordinator

#: Global options of ``daytrading`` that take a value (they must precede the command).
_GLOBAL_VALUE_OPTIONS = ("--config", "--mode", "--db", "--log-dir", "--host", "--port", "--log-level")


def open_db(settings: Settings, bot: str = "ops", *, create: bool = False) -> Coordinator:
    """Open the shared database for an operations command.

    Args:
        create: when False (the default for read-only commands) a missing database file
            is an error instead of silently creating an empty one.

    Raises:
        daytrading.errors.OperationalError: the file is missing (and ``create`` is False),
            or it is not a usable SQLite database (the message names the file and the fix).
    """
    from daytrading.errors import OperationalError
    from daytrading.runtime import build_clock, open_coordinator

    path = Path(settings.paths.database)
    if not create and not path.exists():
        raise OperationalError(
            f"database {path} does not exist (nothing has run with this configuration yet); "
            "check paths.database / --db, or run `daytrading db init`"
        )
    return open_coordinator(settings, bot, build_clock(settings))


def console(**kwargs: Any) -> Any:
    """A rich console on stdout (wide enough for the tables when output is not a terminal)."""
    from rich.console import Console

    if not sys.stdout.isatty():
        kwargs.setdefault("width", 160)
    return Console(**kwargs)


def script_main(command: str, argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``scripts/*.py`` wrappers: ``daytrading <command> …``.

    Global options (``--config``, ``--db``, ``--port``…) may be written anywhere; they
    are moved in front of ``command`` as :mod:`daytrading.cli` expects.
    """
    from daytrading.cli import main

    rest = list(sys.argv[1:] if argv is None else argv)
    front: list[str] = []
    back: list[str] = []
    i = 0
    while i < len(rest):
        token = rest[i]
        name = token.split("=", 1)[0]
        if name in _GLOBAL_VALUE_OPTIONS:
            front.append(token)
            if "=" not in token and i + 1 < len(rest):
                front.append(rest[i + 1])
                i += 1
        else:
            back.append(token)
        i += 1
    return main([*front, command, *back])
