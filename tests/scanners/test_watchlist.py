"""Watchlist file: accepted shapes, validation messages, and the never-raising refresh."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pytest

from daytrading.errors import DataError
from daytrading.scanners.watchlist import (
    WatchlistError,
    WatchlistFile,
    load_watchlist,
    normalize_symbol,
    parse_watchlist,
)


def write(path: Path, content: str | object) -> Path:
    text = content if isinstance(content, str) else json.dumps(content)
    path.write_text(text, encoding="utf-8")
    return path


def bump_mtime(path: Path, seconds: int) -> None:
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + seconds * 1_000_000_000))


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("TSLA", "TSLA"),
        (" amd ", "AMD"),
        ("BRK B", "BRK B"),
        ("BRK.B", "BRK B"),
        ("brk-b", "BRK B"),
        ("BF/B", "BF B"),
        ("F", "F"),
    ],
)
def test_normalize_symbol_accepts_ib_and_other_spellings(raw: str, expected: str) -> None:
    assert normalize_symbol(raw) == expected


@pytest.mark.parametrize("raw", ["", "   ", "TOOLONG", "BRK..B", "BRK B C", "12AB", "AB$", "BRK BBB"])
def test_normalize_symbol_rejects_non_symbols(raw: str) -> None:
    with pytest.raises(ValueError, match="not a US stock symbol"):
        normalize_symbol(raw)


def test_three_shapes_give_the_same_symbols() -> None:
    a = parse_watchlist(["TSLA", "amd", "BRK.B"])
    b = parse_watchlist({"symbols": ["TSLA", "AMD", "BRK B"]})
    c = parse_watchlist(
        {"comment": "mine", "symbols": [{"symbol": "TSLA", "note": "earnings"}, "AMD", {"symbol": "brk-b"}]}
    )
    assert a.symbols == b.symbols == c.symbols == ("TSLA", "AMD", "BRK B")
    assert c.entries[0].note == "earnings"
    cands = c.candidates()
    assert [x.rank for x in cands] == [0, 1, 2]
    assert {x.source for x in cands} == {"watchlist"}
    assert cands[0].extra == {"note": "earnings"} and cands[1].extra == {}
    assert "AMD" in c and len(c) == 3


def test_empty_list_is_a_valid_empty_watchlist(tmp_path: Path) -> None:
    assert len(parse_watchlist([])) == 0
    assert len(load_watchlist(write(tmp_path / "w.json", {"symbols": []}))) == 0


@pytest.mark.parametrize(
    ("data", "fragments"),
    [
        (["TSLA", "BRK..B"], ["symbols[1]", "'BRK..B'", "not a US stock symbol"]),
        (["TSLA", 42], ["symbols[1]", "= 42", "must be a string"]),
        (["TSLA", None], ["symbols[1]", "= None", "must be a string"]),
        (["TSLA", "AMD", "tsla"], ["symbols[2]", "'tsla'", "duplicate of symbols[0]"]),
        (["BRK B", "BRK.B"], ["symbols[1]", "duplicate of symbols[0]", "'BRK B'"]),
        ({"symbol": ["TSLA"]}, ["symbol", "unknown key", "['TSLA']"]),
        ({"comment": "x"}, ["symbols", "missing"]),
        ({"symbols": "TSLA"}, ["symbols", "'TSLA'", "must be a list"]),
        ({"symbols": [], "comment": 3}, ["comment", "= 3", "must be a string"]),
        ({"symbols": [{"symbol": "TSLA", "notes": "x"}]}, ["symbols[0].notes", "unknown key", "'x'"]),
        ({"symbols": [{"note": "x"}]}, ["symbols[0].symbol", "missing"]),
        ({"symbols": [{"symbol": "TSLA", "note": 5}]}, ["symbols[0].note", "= 5", "must be a string"]),
        ({"symbols": [{"symbol": "TS LA X"}]}, ["symbols[0].symbol", "'TS LA X'"]),
        ("TSLA", ["<top level>", "'TSLA'", "JSON list"]),
    ],
)
def test_errors_name_field_index_and_value(data: object, fragments: list[str]) -> None:
    with pytest.raises(WatchlistError) as info:
        parse_watchlist(data, "wl.json")
    message = str(info.value)
    assert message.startswith("watchlist wl.json: ")
    for fragment in fragments:
        assert fragment in message, message
    assert isinstance(info.value, DataError)


def test_error_attributes() -> None:
    with pytest.raises(WatchlistError) as info:
        parse_watchlist(["A", "B", "!!"], "f.json")
    err = info.value
    assert (err.path, err.field, err.index, err.key, err.value) == ("f.json", "symbols", 2, None, "!!")
    with pytest.raises(WatchlistError) as info:
        parse_watchlist(["A", "B", "a"], "f.json")
    assert (info.value.field, info.value.index, info.value.value) == ("symbols", 2, "a")
    with pytest.raises(WatchlistError) as info:
        parse_watchlist({"symbols": ["A", {"symbol": "B", "colour": "red"}]}, "f.json")
    assert (info.value.field, info.value.index, info.value.key, info.value.value) == ("symbols", 1, "colour", "red")


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        ("", "empty file"),
        ("  \n", "empty file"),
        ('["TSLA",', "not valid JSON"),
        ('{"symbols": [TSLA]}', "line 1 column 14"),
    ],
)
def test_file_level_errors(tmp_path: Path, content: str, fragment: str) -> None:
    path = write(tmp_path / "day_trading_watchlist.json", content)
    with pytest.raises(WatchlistError, match="day_trading_watchlist.json") as info:
        load_watchlist(path)
    assert fragment in str(info.value)


def test_missing_and_non_utf8_files(tmp_path: Path) -> None:
    with pytest.raises(WatchlistError, match="not found"):
        load_watchlist(tmp_path / "nope.json")
    bad = tmp_path / "latin1.json"
    bad.write_bytes('["CAF\xc9"]'.encode("latin-1"))
    with pytest.raises(WatchlistError, match="not UTF-8"):
        load_watchlist(bad)


def test_bom_from_windows_notepad_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "w.json"
    path.write_bytes(b"\xef\xbb\xbf" + b'["TSLA"]')
    assert load_watchlist(path).symbols == ("TSLA",)


def test_refresh_keeps_last_good_list_and_logs_once_per_change(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = write(tmp_path / "w.json", ["TSLA", "AMD"])
    wf = WatchlistFile(path)
    assert wf.refresh().symbols == ("TSLA", "AMD")

    # Mid-session the file is broken (half-written / typo): the good list stays, one error line.
    write(path, '["TSLA", "AMD", "NVDA"')
    bump_mtime(path, 1)
    caplog.clear()
    with caplog.at_level(logging.ERROR, logger="daytrading.scanners.watchlist"):
        for _ in range(5):
            assert wf.refresh().symbols == ("TSLA", "AMD")
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1
    assert "not valid JSON" in errors[0].getMessage()
    assert "keeping the last good watchlist (2 symbols)" in errors[0].getMessage()
    assert wf.last_error is not None

    # A different broken version is a change: logged once more.
    write(path, ["TSLA", "AMD", "BAD..SYM"])
    bump_mtime(path, 2)
    caplog.clear()
    with caplog.at_level(logging.ERROR, logger="daytrading.scanners.watchlist"):
        assert wf.refresh().symbols == ("TSLA", "AMD")
        assert wf.refresh().symbols == ("TSLA", "AMD")
    assert [r.getMessage().count("symbols[2]") for r in caplog.records] == [1]

    # Fixed: the new list is used and the error cleared.
    write(path, ["TSLA", "AMD", "NVDA"])
    bump_mtime(path, 3)
    assert wf.refresh().symbols == ("TSLA", "AMD", "NVDA")
    assert wf.last_error is None


def test_refresh_on_missing_file_never_raises(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    wf = WatchlistFile(tmp_path / "missing.json")
    with caplog.at_level(logging.ERROR, logger="daytrading.scanners.watchlist"):
        assert len(wf.refresh()) == 0
        assert len(wf.refresh()) == 0
    assert len(caplog.records) == 1 and "not found" in caplog.records[0].getMessage()
    # Deleting a good file keeps the last good list (documented).
    path = write(tmp_path / "w.json", ["TSLA"])
    wf = WatchlistFile(path)
    assert wf.refresh().symbols == ("TSLA",)
    path.unlink()
    assert wf.refresh().symbols == ("TSLA",)


def test_refresh_does_not_reparse_an_unchanged_file(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = write(tmp_path / "w.json", ["TSLA"])
    wf = WatchlistFile(path)
    with caplog.at_level(logging.INFO, logger="daytrading.scanners.watchlist"):
        wf.refresh()
        wf.refresh()
        wf.refresh()
    assert sum("loaded" in r.getMessage() for r in caplog.records) == 1


def test_load_raises_but_refresh_does_not_on_unreadable_file(tmp_path: Path) -> None:
    directory = tmp_path / "w.json"
    directory.mkdir()  # a directory where the file should be: read fails with OSError
    wf = WatchlistFile(directory)
    with pytest.raises(WatchlistError, match="cannot be read"):
        wf.load()
    assert len(wf.refresh()) == 0
