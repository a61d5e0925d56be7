"""KOReader's partial MD5 document fingerprint (koreader-data.md §1.1), shared by the
KOReader readers and the emulator (which fingerprints its library the same way).

KOReader samples 1 KiB at offsets 0 and 1 KiB * 4**k (k = 0..10) and hashes the
concatenation.  Python cannot shift by a negative count the way LuaJIT does, so
the offsets are written out.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
from typing import BinaryIO

__all__ = ["OFFSETS", "SAMPLE_SIZE", "filename_md5", "partial_md5", "partial_md5_bytes",
           "partial_md5_stream"]

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
    """Partial MD5 of the file at ``path`` (reads at most 12 KiB: ``pread`` of each
    sample, no buffered read-ahead)."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):  # as open(path, "rb") does
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), os.fspath(path))
        size = st.st_size
        digest = hashlib.md5()
        for offset in OFFSETS:
            if offset >= size:
                break
            digest.update(_read_at(fd, offset))
        return digest.hexdigest()
    finally:
        os.close(fd)


def _read_at(fd: int, offset: int) -> bytes:
    """Up to SAMPLE_SIZE bytes at ``offset`` (short only at the end of the file)."""
    if _pread is not None:
        chunk = _pread(fd, SAMPLE_SIZE, offset)
        if len(chunk) == SAMPLE_SIZE:
            return chunk
        parts = [chunk]
        got = len(chunk)
        while chunk and got < SAMPLE_SIZE:  # a short read before the end: read on
            chunk = _pread(fd, SAMPLE_SIZE - got, offset + got)
            parts.append(chunk)
            got += len(chunk)
        return b"".join(parts)
    os.lseek(fd, offset, os.SEEK_SET)
    parts = []
    got = 0
    while got < SAMPLE_SIZE:
        chunk = os.read(fd, SAMPLE_SIZE - got)
        if not chunk:
            break
        parts.append(chunk)
        got += len(chunk)
    return b"".join(parts)


_pread = getattr(os, "pread", None)


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
