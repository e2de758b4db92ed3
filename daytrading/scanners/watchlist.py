"""The watchlist file (``day_trading_watchlist.json``): symbols the user always wants scanned.

Accepted shapes (UTF-8, a leading BOM is tolerated because Windows Notepad writes one)::

    ["TSLA", "AMD", "BRK.B"]                                   # 1. a plain list

    {"symbols": ["TSLA", "AMD"]}                               # 2. an object with "symbols"

    {"comment": "anything",                                    # 3. entries with notes
     "symbols": [{"symbol": "TSLA", "note": "earnings"}, "AMD"]}

* Top-level object keys: ``symbols`` (required) and ``comment`` (optional string);
  anything else is an error naming the key (a typo such as ``"symbol"`` must not
  silently give an empty list).
* An entry is a string or an object with ``symbol`` (required string) and ``note``
  (optional string); other keys are errors.
* Symbols are normalised by :func:`normalize_symbol` (upper case, IB's share-class
  spelling ``"BRK B"``). Two entries that normalise to the same symbol are a
  duplicate error naming both indexes.
* ``[]`` and ``{"symbols": []}`` are valid: no watchlist symbols. An empty file (no
  JSON at all) is an error.

Every problem raises :class:`WatchlistError` (a :class:`~daytrading.errors.DataError`)
whose message names the file, the field, the index and the offending value, e.g.
``watchlist day_trading_watchlist.json: symbols[2] = 'BRK..B': not a US stock symbol …``.

A running bot uses :class:`WatchlistFile`, whose :meth:`WatchlistFile.refresh` never
raises: a broken file keeps the last good list and logs the error once per change of
the file.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from daytrading.errors import DataError
from daytrading.scanners.candidate import SOURCE_WATCHLIST, Candidate

log = logging.getLogger(__name__)

#: Root of 1–5 letters, optionally a share class of 1–2 letters after one separator
#: (space as IB writes it, ``.`` as Polygon/CRSP, ``-`` as Yahoo, ``/`` as some brokers).
_SYMBOL_RE = re.compile(r"^([A-Z]{1,5})(?:[ .\-/]([A-Z]{1,2}))?$")
_EXPECTED = (
    "expected 1-5 letters, optionally a share class of 1-2 letters after a space, "
    "'.', '-' or '/', e.g. 'TSLA' or 'BRK B'"
)
_TOP_KEYS = frozenset({"symbols", "comment"})
_ENTRY_KEYS = frozenset({"symbol", "note"})


_NO_VALUE: Any = object()


class WatchlistError(DataError):
    """The watchlist file is unreadable or invalid.

    Attributes:
        path: the file (or ``"<memory>"``).
        field: the top-level JSON field at fault (``"symbols"``, ``"comment"``, ``"<file>"``, …).
        index: index of the entry at fault in ``symbols``, or ``None``.
        key: key inside an object entry (``"symbol"``, ``"note"``, an unknown key) or ``None``.
        value: the offending value (``None`` when there is none, e.g. a missing file).
            The message shows it (``= 'BRK..B'``) whenever one was given, JSON ``null`` included.
    """

    def __init__(
        self,
        path: str | Path,
        field: str,
        problem: str,
        *,
        index: int | None = None,
        key: str | None = None,
        value: Any = _NO_VALUE,
    ) -> None:
        where = field + ("" if index is None else f"[{index}]") + ("" if key is None else f".{key}")
        shown = "" if value is _NO_VALUE else f" = {value!r}"
        super().__init__(f"watchlist {path}: {where}{shown}: {problem}")
        self.path = str(path)
        self.field = field
        self.index = index
        self.key = key
        self.value = None if value is _NO_VALUE else value


def normalize_symbol(raw: str) -> str:
    """Normalise a US stock symbol to IB's spelling.

    Surrounding blanks are stripped and letters upper-cased; a share class written
    ``BRK.B``, ``BRK-B``, ``BRK/B`` or ``BRK B`` becomes ``"BRK B"`` (IB's ``Stock``
    contract symbol for Berkshire class B). The root is 1–5 letters and the class
    1–2 letters (the NYSE/Nasdaq symbology limits).

    Raises:
        ValueError: not a string or not of that form (the message names the value).
    """
    if not isinstance(raw, str):
        raise ValueError(f"symbol must be a string, got {type(raw).__name__} {raw!r}")
    text = raw.strip().upper()
    match = _SYMBOL_RE.match(text)
    if not match:
        raise ValueError(f"not a US stock symbol: {raw!r} ({_EXPECTED})")
    root, share_class = match.groups()
    return f"{root} {share_class}" if share_class else root


@dataclass(frozen=True, slots=True)
class WatchlistEntry:
    """One symbol of the watchlist and the user's note (may be empty)."""

    symbol: str
    note: str = ""


@dataclass(frozen=True, slots=True)
class Watchlist:
    """A validated watchlist: entries in file order, symbols unique and normalised."""

    entries: tuple[WatchlistEntry, ...] = ()
    path: str = "<memory>"

    @property
    def symbols(self) -> tuple[str, ...]:
        """The symbols in file order."""
        return tuple(e.symbol for e in self.entries)

    def __len__(self) -> int:
        return len(self.entries)

    def __iter__(self) -> Iterator[str]:
        return iter(self.symbols)

    def __contains__(self, symbol: object) -> bool:
        return symbol in self.symbols

    def candidates(self) -> list[Candidate]:
        """One :class:`Candidate` per entry (source ``"watchlist"``, rank = file position)."""
        return [
            Candidate(
                symbol=e.symbol,
                source=SOURCE_WATCHLIST,
                rank=i,
                extra={"note": e.note} if e.note else {},
            )
            for i, e in enumerate(self.entries)
        ]


def parse_watchlist(data: Any, path: str | Path = "<memory>") -> Watchlist:
    """Validate decoded JSON ``data`` in one of the documented shapes.

    Raises:
        WatchlistError: wrong shape, unknown key, bad symbol or note, duplicate symbol.
    """
    if isinstance(data, list):
        items, field = data, "symbols"
    elif isinstance(data, dict):
        for key in data:
            if key not in _TOP_KEYS:
                raise WatchlistError(
                    path, str(key), f"unknown key (allowed: {', '.join(sorted(_TOP_KEYS))})",
                    value=data[key],
                )
        if "symbols" not in data:
            raise WatchlistError(path, "symbols", "missing (an object needs a 'symbols' list)")
        comment = data.get("comment")
        if comment is not None and not isinstance(comment, str):
            raise WatchlistError(path, "comment", "must be a string", value=comment)
        items, field = data["symbols"], "symbols"
        if not isinstance(items, list):
            raise WatchlistError(path, field, "must be a list of symbols", value=items)
    else:
        raise WatchlistError(
            path, "<top level>",
            "must be a JSON list of symbols or an object with a 'symbols' list", value=data,
        )

    entries: list[WatchlistEntry] = []
    first_seen: dict[str, int] = {}
    for index, item in enumerate(items):
        entry = _parse_entry(item, index, path)
        if entry.symbol in first_seen:
            raise WatchlistError(
                path, field,
                f"duplicate of {field}[{first_seen[entry.symbol]}] (both are {entry.symbol!r})",
                index=index, value=item,
            )
        first_seen[entry.symbol] = index
        entries.append(entry)
    return Watchlist(entries=tuple(entries), path=str(path))


def _parse_entry(item: Any, index: int, path: str | Path) -> WatchlistEntry:
    key: str | None = None
    if isinstance(item, dict):
        for name in item:
            if name not in _ENTRY_KEYS:
                raise WatchlistError(
                    path, "symbols", f"unknown key (allowed: {', '.join(sorted(_ENTRY_KEYS))})",
                    index=index, key=str(name), value=item[name],
                )
        if "symbol" not in item:
            raise WatchlistError(path, "symbols", "missing", index=index, key="symbol")
        raw, note, key = item["symbol"], item.get("note", ""), "symbol"
        if note is None:
            note = ""
        if not isinstance(note, str):
            raise WatchlistError(path, "symbols", "must be a string", index=index, key="note", value=note)
    else:
        raw, note = item, ""
    if not isinstance(raw, str):
        raise WatchlistError(
            path, "symbols", f"must be a string, not {type(raw).__name__}", index=index, key=key, value=raw
        )
    try:
        symbol = normalize_symbol(raw)
    except ValueError:
        raise WatchlistError(
            path, "symbols", f"not a US stock symbol ({_EXPECTED})", index=index, key=key, value=raw
        ) from None
    return WatchlistEntry(symbol=symbol, note=note.strip())


def load_watchlist(path: str | Path) -> Watchlist:
    """Read and validate the watchlist file.

    Raises:
        WatchlistError: missing or unreadable file, not UTF-8, empty, not JSON (with line
            and column), or invalid content (see :func:`parse_watchlist`).
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise WatchlistError(path, "<file>", "not found") from None
    except OSError as exc:
        raise WatchlistError(path, "<file>", f"cannot be read: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise WatchlistError(path, "<file>", f"not UTF-8 text (byte {exc.start})") from None
    if not text.strip():
        raise WatchlistError(path, "<file>", "empty file (write [] for an empty watchlist)")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise WatchlistError(
            path, "<file>", f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    return parse_watchlist(data, path)


class WatchlistFile:
    """The watchlist file as a running bot sees it.

    * :meth:`load` reads and validates (raises :class:`WatchlistError`); a good result
      becomes the *last good* list.
    * :meth:`refresh` re-reads only when the file changed (mtime in ns, size, or
      existence), never raises, and on a broken or missing file keeps the last good
      list (empty before the first good read) and logs the problem once per change.
      A deleted file therefore keeps the last good list too; write ``[]`` to clear it.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._good = Watchlist(path=str(self.path))
        self._seen: object = object()  # stat key of the last attempt (sentinel = never)
        self.last_error: str | None = None

    @property
    def last_good(self) -> Watchlist:
        """The last successfully loaded watchlist (empty before the first)."""
        return self._good

    def load(self) -> Watchlist:
        """Read and validate the file now.

        Raises:
            WatchlistError: see :func:`load_watchlist`.
        """
        self._seen = self._stat_key()
        watchlist = load_watchlist(self.path)
        self._good = watchlist
        self.last_error = None
        return watchlist

    def refresh(self) -> Watchlist:
        """The current watchlist: re-read if the file changed, else the cached one. Never raises."""
        key = self._stat_key()
        if key == self._seen:
            return self._good
        try:
            watchlist = self.load()
        except WatchlistError as exc:
            self._seen = key
            self.last_error = str(exc)
            log.error(
                "%s; keeping the last good watchlist (%d symbols)", exc, len(self._good),
                extra={"path": str(self.path), "symbols": list(self._good.symbols)},
            )
        except Exception as exc:  # never stop a running bot over the watchlist
            self._seen = key
            self.last_error = f"{type(exc).__name__}: {exc}"
            log.exception(
                "watchlist %s could not be read; keeping the last good watchlist (%d symbols)",
                self.path, len(self._good),
            )
        else:
            log.info(
                "watchlist %s loaded: %d symbols", self.path, len(watchlist),
                extra={"path": str(self.path), "symbols": list(watchlist.symbols)},
            )
        return self._good

    def _stat_key(self) -> object:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return None
        except OSError as exc:
            return ("error", exc.errno)
        return (st.st_mtime_ns, st.st_size, st.st_ino)
