"""Reading device files safely: only regular files are opened (a FIFO, socket or
device node never blocks the scan), a size limit holds, and every failure is one
:class:`UnreadableFile` whose message says why (koreader-data §4.2, §12)."""

from __future__ import annotations

import errno
import os
import stat as stat_mod
from pathlib import Path

__all__ = ["UnreadableFile", "read_regular", "describe_os_error", "link_problem"]

DEFAULT_LIMIT = 64 * 1024 * 1024


class UnreadableFile(Exception):
    """A device file that cannot be read; ``str()`` is the reason."""


def describe_os_error(exc: BaseException) -> str:
    if isinstance(exc, OSError):
        if exc.errno == errno.ELOOP:
            return "a symbolic link that loops"
        if exc.errno == errno.ENOENT:
            return "no such file (or a dangling symbolic link)"
        return exc.strerror or str(exc)
    return str(exc)


def link_problem(path: str | os.PathLike[str]) -> str | None:
    """Why ``path`` (a symbolic link) cannot be followed, or None when it can."""
    try:
        os.stat(path)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "symbolic link loops: skipped"
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            return "dangling symbolic link: skipped"
        return f"symbolic link cannot be followed ({describe_os_error(exc)}): skipped"
    except ValueError:
        return "invalid path: skipped"
    return None


def read_regular(path: str | os.PathLike[str], limit: int = DEFAULT_LIMIT) -> bytes:
    """The bytes of a regular file (symlinks followed).  Raises :class:`UnreadableFile`."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    except OSError as exc:
        raise UnreadableFile(f"cannot read: {describe_os_error(exc)}") from None
    except ValueError as exc:  # an embedded NUL
        raise UnreadableFile(f"cannot read: {exc}") from None
    try:
        st = os.fstat(fd)
        if not stat_mod.S_ISREG(st.st_mode):
            kind = "a directory" if stat_mod.S_ISDIR(st.st_mode) else "not a regular file"
            raise UnreadableFile(f"cannot read: {kind}")
        if st.st_size > limit:
            raise UnreadableFile(f"cannot read: larger than {limit // (1024 * 1024)} MiB")
        chunks = []
        total = 0
        while True:
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                break
            total += len(chunk)
            if total > limit:
                raise UnreadableFile(f"cannot read: larger than {limit // (1024 * 1024)} MiB")
            chunks.append(chunk)
        return b"".join(chunks)
    except OSError as exc:
        raise UnreadableFile(f"cannot read: {describe_os_error(exc)}") from None
    finally:
        os.close(fd)


def is_regular(path: str | os.PathLike[str] | Path) -> bool:
    try:
        return stat_mod.S_ISREG(os.stat(path).st_mode)
    except (OSError, ValueError):
        return False
