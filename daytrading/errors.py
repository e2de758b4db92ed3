"""Exceptions named by what the caller should do next (freqtrade's split).

* :class:`TemporaryError` and subclasses — retry (tenacity, one policy per place).
* :class:`SkipSymbol` — record the gate rejection / skip this symbol and go on.
* :class:`OperationalError` — stop cleanly with a message naming the setting or file.
"""

from __future__ import annotations


class DaytradingError(Exception):
    """Base of every error this package raises on purpose."""


class TemporaryError(DaytradingError):
    """A transient failure: retry with back-off."""


class TemporaryBrokerError(TemporaryError):
    """The broker connection is down or a request timed out: retry."""


class DatabaseUnavailableError(TemporaryError):
    """The shared database cannot be used right now: the disk is full, the file is damaged,
    read-only or unreadable (I/O error), or it stayed locked (:class:`DatabaseBusyError`).

    Retry later; a bot keeps trading safely from what it holds in memory meanwhile. The
    message names the file and SQLite's reason; the driver error is chained (``__cause__``).
    """


class DatabaseBusyError(DatabaseUnavailableError):
    """SQLite stayed locked beyond the retry budget (or the caller's fail-fast deadline)."""


class SkipSymbol(DaytradingError):
    """Skip this symbol (record why) and continue with the others."""

    def __init__(self, symbol: str, reason: str) -> None:
        super().__init__(f"{symbol}: {reason}")
        self.symbol = symbol
        self.reason = reason


class OperationalError(DaytradingError):
    """Stop and tell the user: bad configuration, unreadable file, refused mode."""


class ConfigError(OperationalError):
    """A setting has an invalid value; the message names the setting and the value."""


class DataError(OperationalError):
    """A data file is missing, malformed or out of order; the message names the file.

    Attributes (``None`` when not known): ``file`` (path text), ``line`` (1-based line of
    the file), ``field`` (column name) and ``value`` (the offending text), so a caller that
    skips the file can report exactly what was wrong.
    """

    def __init__(self, message: str, *, file: object = None, line: int | None = None,
                 field: str | None = None, value: object = None) -> None:
        super().__init__(message)
        self.file = None if file is None else str(file)
        self.line = line
        self.field = field
        self.value = None if value is None else str(value)

    def as_skip(self) -> dict[str, object]:
        """``{file, line, field, value, reason}`` for a report of skipped data."""
        return {"file": self.file, "line": self.line, "field": self.field, "value": self.value,
                "reason": str(self)}


class CoordinationError(DaytradingError):
    """A coordination invariant would be broken (e.g. claiming an active symbol)."""
