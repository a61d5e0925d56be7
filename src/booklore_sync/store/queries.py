"""Names of the queues and tables, and the read-only counting queries.

Standard library ``sqlite3`` only, nothing else imported: the start-up fast
path of ``status`` and ``menu --dump`` uses this module without the rest of
the store.
"""

from __future__ import annotations

import sqlite3

QUEUES = ("sessions", "annotations", "ratings", "bookmarks", "progress")
LETTERS = {"sessions": "S", "annotations": "A", "ratings": "R", "bookmarks": "B", "progress": "P"}
QUEUE_TABLES = {
    "sessions": "pending_sessions",
    "annotations": "pending_annotations",
    "ratings": "pending_ratings",
    "bookmarks": "pending_bookmarks",
    "progress": "pending_koreader_progress",
}
HISTORY_TABLES = {
    "sessions": "historical_sessions",
    "annotations": "synced_annotations",
    "bookmarks": "synced_bookmarks",
    "ratings": "rating_sync_history",
    "progress": "synced_koreader_progress",
}
STORE_FILE = "booklore-sync.db"

_COUNTS_SQL = " UNION ALL ".join(f"SELECT COUNT(*) FROM {QUEUE_TABLES[q]}" for q in QUEUES)


def queue_counts(conn: sqlite3.Connection) -> dict[str, int]:
    rows = conn.execute(_COUNTS_SQL).fetchall()
    return {q: int(r[0]) for q, r in zip(QUEUES, rows, strict=True)}


def cache_counts(conn: sqlite3.Connection) -> dict[str, int]:
    total, matched = conn.execute("SELECT COUNT(*), COUNT(book_id) FROM book_cache").fetchone()
    return {"total": int(total), "matched": int(matched), "unmatched": int(total - matched)}


def progress_history_count(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT COUNT(*) FROM synced_koreader_progress").fetchone()[0])


def summary(conn: sqlite3.Connection) -> dict:
    """The data of ``status --json`` (spec §6.4)."""
    return {
        "book_cache": cache_counts(conn),
        "pending": queue_counts(conn),
        "progress_history": progress_history_count(conn),
    }


def schema_version(conn: sqlite3.Connection) -> int | None:
    """The store's schema version (the highest applied migration)."""
    row = conn.execute("SELECT MAX(version) FROM schema_migrations").fetchone()
    return None if row is None or row[0] is None else int(row[0])
