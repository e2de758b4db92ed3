"""TWS API socket framing and field encoding (server side; the same at every server version).

Protocol facts (docs/tws-protocol.md §2; ib_async 2.1.0 ``client.py``
``send``/``_onSocketHasData`` and ``decoder.py`` ``parse``):

* The client opens with the raw bytes ``API\\0`` followed by one framed message whose
  payload is ``v<min>..<max>`` (optionally `` +OPTIONS``), no NUL inside.
* Every other message, both directions: 4-byte big-endian length, then the payload;
  the payload is a sequence of fields, each followed by one NUL byte.
* The server's version reply has exactly two fields: the chosen version and a
  connection-time string.

Field encoding of outgoing values (:func:`encode_field`): ``None`` → empty,
``bool`` → ``1``/``0`` (ib_async parses booleans as ``bool(int(v))``), ``int`` →
decimal (ib_async's integer fields need integer literals), ``float`` → Python's
shortest ``repr`` (``150.5``, ``100.0``) with :data:`UNSET_DOUBLE`, NaN and infinities
sent as empty (= unset), ``UNSET_INTEGER`` as empty, anything else ``str()``.
"""

from __future__ import annotations

import asyncio
import math
import struct
from collections.abc import Iterable
from typing import Any

__all__ = [
    "UNSET_DOUBLE",
    "UNSET_INTEGER",
    "HandshakeError",
    "encode_field",
    "encode_message",
    "parse_float",
    "parse_int",
    "read_handshake",
    "read_message",
]

#: ib_async's "unset" sentinels (``util.py``).
UNSET_DOUBLE = 1.7976931348623157e308
UNSET_INTEGER = 2**31 - 1
#: Largest message we accept from a client (IB's own limit is 16 MB).
MAX_MESSAGE = 16 * 1024 * 1024

_LEN = struct.Struct(">I")


class HandshakeError(Exception):
    """The peer did not open with a valid ``API\\0`` + version range."""


def encode_field(value: Any) -> str:
    """Encode one outgoing field as text (rules in the module docstring)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return "" if value == UNSET_INTEGER else str(value)
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value) or value >= UNSET_DOUBLE:
            return ""
        return repr(value)
    return str(value)


def encode_message(fields: Iterable[Any]) -> bytes:
    """One framed message: length prefix + NUL-terminated encoded fields.

    Raises:
        ValueError: a field contains a NUL byte (the protocol cannot carry it).
    """
    parts = [encode_field(f) for f in fields]
    for p in parts:
        if "\0" in p:
            raise ValueError(f"field contains NUL: {p!r}")
    payload = ("\0".join(parts) + "\0").encode()
    return _LEN.pack(len(payload)) + payload


async def read_frame(reader: asyncio.StreamReader) -> bytes:
    """Read one length-prefixed frame; raises ``asyncio.IncompleteReadError`` on EOF."""
    head = await reader.readexactly(4)
    (size,) = _LEN.unpack(head)
    if size > MAX_MESSAGE:
        raise HandshakeError(f"message length {size} exceeds {MAX_MESSAGE}")
    return await reader.readexactly(size)


async def read_message(reader: asyncio.StreamReader) -> list[str]:
    """Read one message and split it into fields (the trailing empty element dropped)."""
    payload = await read_frame(reader)
    text = payload.decode(errors="backslashreplace")
    fields = text.split("\0")
    if fields and fields[-1] == "":
        fields.pop()
    return fields


async def read_handshake(reader: asyncio.StreamReader) -> tuple[int, int, str]:
    """Read ``API\\0`` + ``v<min>..<max>[ options]``; return ``(min, max, options)``.

    Raises:
        HandshakeError: wrong prefix or unparseable version range.
        asyncio.IncompleteReadError: the peer closed early.
    """
    prefix = await reader.readexactly(4)
    if prefix != b"API\0":
        raise HandshakeError(f"expected b'API\\x00', got {prefix!r}")
    text = (await read_frame(reader)).decode(errors="replace").rstrip("\0")
    spec, _, options = text.partition(" ")
    if not spec.startswith("v"):
        raise HandshakeError(f"bad version range {text!r}")
    lo, sep, hi = spec[1:].partition("..")
    try:
        vmin = int(lo)
        vmax = int(hi) if sep else vmin
    except ValueError as exc:
        raise HandshakeError(f"bad version range {text!r}") from exc
    return vmin, vmax, options


def parse_float(text: str, default: float = 0.0) -> float:
    """A client numeric field: empty → ``default``; ``Infinite`` → inf (ib_async's encoding)."""
    if text == "":
        return default
    if text == "Infinite":
        return math.inf
    return float(text)


def parse_int(text: str, default: int = 0) -> int:
    """A client integer field (may arrive as ``100.0``); empty → ``default``."""
    if text == "":
        return default
    try:
        return int(text)
    except ValueError:
        return int(float(text))
