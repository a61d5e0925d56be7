"""Builds statistics databases with KOReader's DDL (taken from the fixture file)."""

from __future__ import annotations

import shutil
import sqlite3
import tempfile
from pathlib import Path

from .conftest import KOBO

FIXTURE_DB = KOBO / ".adds/koreader/settings/statistics.sqlite3"


def koreader_ddl() -> list[str]:
    tmp = Path(tempfile.mkdtemp())
    try:
        shutil.copyfile(FIXTURE_DB, tmp / "s.sqlite3")
        conn = sqlite3.connect(tmp / "s.sqlite3")
        rows = [r[0] for r in conn.execute(
            "SELECT sql FROM sqlite_master WHERE sql IS NOT NULL AND name != 'sqlite_sequence'"
            " ORDER BY CASE type WHEN 'table' THEN 0 WHEN 'index' THEN 1 ELSE 2 END, rowid")]
        conn.close()
        return rows
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def make_db(path: Path, books: list[tuple], rows: list[tuple], version: int = 20221111,
            wal: bool = False) -> Path:
    """books: (id, title, authors, md5); rows: (id_book, page, start_time, duration, total)."""
    conn = sqlite3.connect(path)
    for sql in koreader_ddl():
        conn.execute(sql)
    conn.execute(f"PRAGMA user_version = {version}")
    if wal:
        conn.execute("PRAGMA journal_mode = WAL")
    conn.executemany("INSERT INTO book(id, title, authors, md5) VALUES (?,?,?,?)", books)
    conn.executemany("INSERT INTO page_stat_data VALUES (?,?,?,?,?)", rows)
    conn.commit()
    conn.close()
    return path
