"""KOReader's partial MD5 document fingerprint (koreader-data.md §1.1).

KOReader samples 1 KiB at offsets 0 and 1 KiB * 4**k (k = 0..10) and hashes the
concatenation.  Python cannot shift by a negative count the way LuaJIT does, so
the offsets are written out.
"""

from __future__ import annotations

import hashlib
import os
from typing import BinaryIO

SAMPLE_SIZE = 1024
OFFSETS: tuple[int, ...] = (0,) + tuple(1024 << (2 * k) for k in range(11))


def partial_md5_stream(fh: BinaryIO, size: int | None = None) -> str:
    """Partial MD5 of an open binary file."""
    if size is None:
        fh.seek(0, os.SEEK_END)
        size = fh.tell()
    digest = hashlib.md5()
    for offset in OFFSETS:
        if offset >= size:
            break
        fh.seek(offset)
        digest.update(fh.read(SAMPLE_SIZE))
    return digest.hexdigest()


def partial_md5(path: str | os.PathLike[str]) -> str:
    """Partial MD5 of the file at ``path`` (reads at most 12 KiB)."""
    with open(path, "rb") as fh:
        return partial_md5_stream(fh, os.fstat(fh.fileno()).st_size)


def partial_md5_bytes(data: bytes) -> str:
    digest = hashlib.md5()
    for offset in OFFSETS:
        if offset >= len(data):
            break
        digest.update(data[offset : offset + SAMPLE_SIZE])
    return digest.hexdigest()


def filename_md5(basename: str) -> str:
    """kosync's "filename" digest: MD5 of the basename's UTF-8 bytes (§1.2)."""
    return hashlib.md5(basename.encode("utf-8")).hexdigest()
