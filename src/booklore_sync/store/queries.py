"""Names of the queues and tables, and the read-only counting queries.

Standard library ``sqlite3`` and the vocabulary only, nothing else of the
store imported: the start-up fast path of ``status`` and ``menu --dump`` uses
this module without the rest of the store.  The names below are aliases
derived from the queue registry (:mod:`booklore_sync.common.vocab`).
"""

from __future__ import annotations

import sqlite3

from booklore_sync.common.vocab import QUEUE_KINDS

QUEUES: tuple[str, ...] = tuple(k.name for k in QUEUE_KINDS)
LETTERS: dict[str, str] = {k.name: k.letter for k in QUEUE_KINDS}
QUEUE_TABLES: dict[str, str] = {k.name: k.queue_table for k in QUEUE_KINDS}
HISTORY_TABLES: dict[str, str] = {k.name: k.history_table for k in QUEUE_KINDS}
# the natural-key columns of each queue (besides the fingerprint), spec §3
KEY_COLUMNS: dict[str, tuple[str, ...]] = {k.name: k.key_columns for k in QUEUE_KINDS}
STORE_FILE = "booklore-sync.db"
LOCK_FILE = "sync.lock"

_COUNTS_SQL = " UNION ALL ".join(f"SELECT COUNT(*) FROM {QUEUE_TABLES[q]}" for q in QUEUES)


def queue_counts(conn: sqlite3.Connection) -> dict[str, int]:
    rows = conn.execute(_COUNTS_SQL).fetchall()
    return {q: int(r[0]) for q, r in zip(QUEUES, rows, strict=True)}


def cache_counts(conn: sqlite3.Connection) -> dict[str, int]:
    total, matched = conn.execute("SELECT COUNT(*), COUNT(book_id) FROM book_cache").fetchone()
    return {"total": int(total), "matched": int(matched), "unmatched": int(total - matched)}


def progress_history_count(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT COUNT(*) FROM synced_koreader_progress").fetchone()[0])


def empty_summary() -> dict:
    """``summary`` of a store that does not exist yet (read-only commands create none)."""
    return {
        "book_cache": {"total": 0, "matched": 0, "unmatched": 0},
        "pending": {q: 0 for q in QUEUES},
        "progress_history": 0,
    }


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
