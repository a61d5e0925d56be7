"""Private files and folders: the store holds the reader's notes (spec §3).

The store file (SQLite makes its ``-wal``/``-shm`` with the same mode),
``sync.lock`` are created 0600, the folders that hold them 0700.
"""

from __future__ import annotations

import os
from pathlib import Path

FILE_MODE = 0o600
DIR_MODE = 0o700


def private_dir(path: Path) -> None:
    """Create ``path`` and any missing parent as 0700 (existing folders are left alone)."""
    missing: list[Path] = []
    p = path
    while not p.exists():
        missing.append(p)
        if p.parent == p:
            break
        p = p.parent
    for folder in reversed(missing):
        try:
            folder.mkdir(mode=DIR_MODE)
        except FileExistsError:
            continue
        os.chmod(folder, DIR_MODE)  # mkdir's mode is filtered by the umask; be exact


def private_file(path: Path) -> bool:
    """Create ``path`` empty as 0600 unless it exists; True when it was created."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0),
                     FILE_MODE)
    except FileExistsError:
        return False
    os.close(fd)
    return True
