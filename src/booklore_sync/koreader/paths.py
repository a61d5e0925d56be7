"""File names are bytes (koreader-data §2.1): kept losslessly, stored reversibly, shown
with U+FFFD.

Inside the scan a path is a ``str`` whose undecodable bytes are surrogate escapes
(``os.fsdecode``'s form): every ``open``/``stat`` gets the original bytes back.  The
store keeps TEXT, which must be valid UTF-8, so a path that is not goes there as
``fsbytes:`` + its percent-encoded bytes (:func:`to_store`); :func:`from_store`
reverses it.  Valid UTF-8 paths are stored unchanged.
"""

from __future__ import annotations

import os
from urllib.parse import quote_from_bytes, unquote_to_bytes

__all__ = ["to_store", "from_store", "is_utf8", "decode_device_path"]

_PREFIX = "fsbytes:"


def is_utf8(s: str) -> bool:
    if s.isascii():
        return True
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def to_store(path: str | os.PathLike[str]) -> str:
    """A lossless, valid-UTF-8 text form of ``path`` for the store."""
    s = os.fspath(path)
    if is_utf8(s):
        return s
    try:
        raw = s.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # a lone surrogate that is no escaped byte
        raw = s.encode("utf-8", "surrogatepass")
    return _PREFIX + quote_from_bytes(raw, safe="/")


def from_store(text: str) -> str:
    """The path :func:`to_store` was given."""
    if text.startswith(_PREFIX):
        return unquote_to_bytes(text[len(_PREFIX):]).decode("utf-8", "surrogateescape")
    return text


def decode_device_path(value: bytes | str) -> str:
    """A device path read from a KOReader file, as a lossless ``str``."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "surrogateescape")
    return value
