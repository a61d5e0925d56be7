"""A BookLore Sync plugin store of schema version 21, built from plugin-database.md §3,
and the plugin folders of §5, for the tests of ``koreader/plugin_store.py``."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

from tests.conftest import FIXTURES

# the kobo fixture's books (their sidecars' partial MD5)
LEAVES = "59d481d168cca6267322f150c5f6a2a3"
TALL = "41cce710f34e5ec21315e19c99821415"
TWO_COL = "e7105714c0e372d7815d9651ed726b28"
JULIET = "cf7ce9b8d4e135c8ac340f18d1e58c85"

# values that must never leave the plugin's file
SECRETS = ("pl41n-s3cret-pw", "b00klore-pw-xyz", "eyJhbGciOiJIUzI1NiJ9.tok3n.sig")

SCHEMA_V21 = """
CREATE TABLE schema_version (version INTEGER PRIMARY KEY, applied_at INTEGER);
CREATE TABLE book_cache (
    id INTEGER PRIMARY KEY AUTOINCREMENT, file_path TEXT UNIQUE NOT NULL,
    file_hash TEXT NOT NULL, book_id INTEGER, title TEXT, author TEXT,
    last_accessed INTEGER, created_at INTEGER DEFAULT (strftime('%s','now')),
    updated_at INTEGER DEFAULT (strftime('%s','now')), isbn10 TEXT, isbn13 TEXT,
    hardcover_id INTEGER, tracking_enabled INTEGER DEFAULT 1);
CREATE INDEX idx_book_cache_hash ON book_cache(file_hash);
CREATE TABLE pending_sessions (
    id INTEGER PRIMARY KEY AUTOINCREMENT, book_id INTEGER, book_hash TEXT NOT NULL,
    book_type TEXT DEFAULT 'EPUB', start_time TEXT NOT NULL, end_time TEXT NOT NULL,
    duration_seconds INTEGER NOT NULL, start_progress REAL, end_progress REAL,
    progress_delta REAL, start_location TEXT, end_location TEXT, created_at INTEGER,
    retry_count INTEGER DEFAULT 0, last_retry_at INTEGER, book_title TEXT,
    koreader_book_id INTEGER);
CREATE TABLE historical_sessions (
    id INTEGER PRIMARY KEY AUTOINCREMENT, koreader_book_id INTEGER NOT NULL,
    koreader_book_title TEXT NOT NULL, book_id INTEGER, book_hash TEXT, book_type TEXT,
    start_time TEXT NOT NULL, end_time TEXT NOT NULL, duration_seconds INTEGER NOT NULL,
    start_progress REAL, end_progress REAL, progress_delta REAL, start_location TEXT,
    end_location TEXT, created_at INTEGER, matched BOOLEAN DEFAULT 0, synced BOOLEAN DEFAULT 0,
    UNIQUE(koreader_book_id, start_time, end_time));
CREATE TABLE bearer_tokens (
    id INTEGER PRIMARY KEY AUTOINCREMENT, username TEXT UNIQUE NOT NULL, token TEXT NOT NULL,
    created_at INTEGER, expires_at INTEGER NOT NULL);
CREATE TABLE updater_cache (key TEXT PRIMARY KEY, value TEXT NOT NULL, cached_at INTEGER NOT NULL);
CREATE TABLE book_metadata (
    id INTEGER PRIMARY KEY AUTOINCREMENT, book_cache_id INTEGER NOT NULL UNIQUE, sdr_path TEXT,
    rating INTEGER, rating_synced INTEGER DEFAULT 0, created_at INTEGER, updated_at INTEGER,
    pending_rating_prompt INTEGER DEFAULT 0);
CREATE TABLE synced_annotations (
    id INTEGER PRIMARY KEY AUTOINCREMENT, book_cache_id INTEGER NOT NULL,
    koreader_datetime TEXT NOT NULL, annotation_type TEXT NOT NULL, destination TEXT NOT NULL,
    server_id INTEGER, synced_at INTEGER,
    UNIQUE(book_cache_id, koreader_datetime, annotation_type));
CREATE TABLE plugin_settings (key TEXT PRIMARY KEY, value TEXT, updated_at INTEGER);
CREATE TABLE rating_sync_history (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    book_cache_id INTEGER NOT NULL REFERENCES book_cache(id), rating INTEGER NOT NULL,
    synced_at INTEGER, status TEXT DEFAULT 'success', error_message TEXT);
CREATE TABLE pending_ratings (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    book_cache_id INTEGER NOT NULL UNIQUE REFERENCES book_cache(id), book_id INTEGER,
    rating INTEGER NOT NULL, retry_count INTEGER DEFAULT 0, last_retry_at INTEGER,
    created_at INTEGER);
CREATE TABLE pending_annotations (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    book_cache_id INTEGER NOT NULL REFERENCES book_cache(id), book_id INTEGER,
    ann_type TEXT NOT NULL, datetime TEXT NOT NULL, payload TEXT NOT NULL,
    retry_count INTEGER DEFAULT 0, last_retry_at INTEGER, created_at INTEGER,
    UNIQUE(book_cache_id, datetime, ann_type));
CREATE TABLE pending_bookmarks (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    book_cache_id INTEGER NOT NULL REFERENCES book_cache(id), book_id INTEGER,
    datetime TEXT NOT NULL, payload TEXT NOT NULL, retry_count INTEGER DEFAULT 0,
    last_retry_at INTEGER, created_at INTEGER, UNIQUE(book_cache_id, datetime));
CREATE TABLE synced_bookmarks (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    book_cache_id INTEGER NOT NULL REFERENCES book_cache(id), datetime TEXT NOT NULL,
    server_id INTEGER DEFAULT 0, synced_at INTEGER, UNIQUE(book_cache_id, datetime));
CREATE TABLE pending_deletions (
    id INTEGER PRIMARY KEY AUTOINCREMENT, file_hash TEXT NOT NULL UNIQUE, stem TEXT NOT NULL,
    book_id INTEGER, retry_count INTEGER DEFAULT 0, created_at INTEGER);
"""

# (file_path, file_hash, book_id, title): a manual match, the same hash on a pseudo path,
# an ambiguous hash, an unmatched row, a failed hash and rows that are no candidates
DEFAULT_ROWS: list[tuple[str, str, object, str | None]] = [
    ("/mnt/onboard/Books/leaves.epub", LEAVES.upper(), 42, "Leaves of Grass"),
    (f"historical://{LEAVES}", LEAVES, 42, "Leaves of Grass"),
    ("/mnt/onboard/Books/tall.pdf", TALL, 7, "Tall"),
    ("/mnt/onboard/old/tall-copy.pdf", TALL, 8, "Tall (copy)"),
    ("/mnt/onboard/Books/2col.pdf", TWO_COL, None, "Two columns"),
    ("/mnt/onboard/Books/broken.epub", "", 99, "No hash"),
    (f"historical://{JULIET}", JULIET, 0, "Juliet"),
]


def make_plugin_db(path: Path, rows=DEFAULT_ROWS, *, server_url: str | None = "http://nas:6060",
                   is_enabled: str | None = "true", journal: str = "TRUNCATE") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute(f"PRAGMA journal_mode = {journal}")
    conn.executescript(SCHEMA_V21)
    conn.executemany("INSERT INTO schema_version(version, applied_at) VALUES (?, 0)",
                     [(v,) for v in range(1, 22)])
    conn.executemany("INSERT INTO book_cache(file_path, file_hash, book_id, title, author)"
                     " VALUES (?,?,?,?, 'Someone')", rows)
    settings = [("username", "reader"), ("password", SECRETS[0]),
                ("booklore_username", "reader"), ("booklore_password", SECRETS[1]),
                ("notes_destination", "in_book")]
    if server_url is not None:
        settings.append(("server_url", server_url))
    if is_enabled is not None:
        settings.append(("is_enabled", is_enabled))
    conn.executemany("INSERT INTO plugin_settings(key, value, updated_at) VALUES (?,?,0)",
                     settings)
    conn.execute("INSERT INTO bearer_tokens(username, token, created_at, expires_at)"
                 " VALUES ('reader', ?, 0, 9999999999)", (SECRETS[2],))
    conn.execute("INSERT INTO pending_sessions(book_id, book_hash, start_time, end_time,"
                 " duration_seconds) VALUES (42, ?, '2026-01-01T10:00:00Z',"
                 " '2026-01-01T10:30:00Z', 1800)", (LEAVES,))
    conn.close()
    return path


def kobo(tmp_path: Path) -> tuple[Path, Path]:
    """A copy of the kobo fixture: (device root, data directory)."""
    root = tmp_path / "kobo"
    shutil.copytree(FIXTURES / "kobo", root)
    return root, root / ".adds" / "koreader"


def plugin_db_path(data_dir: Path) -> Path:
    return data_dir / "settings" / "booklore-sync.sqlite"


def install_plugin(data_dir: Path, folder: str, file: str = "_meta.lua") -> Path:
    d = data_dir / "plugins" / f"{folder}.koplugin"
    d.mkdir(parents=True, exist_ok=True)
    (d / file).write_text("return { name = 'x' }\n")
    return d


def disable_plugins(data_dir: Path, **names: bool) -> None:
    """Add ``plugins_disabled`` to the fixture's settings.reader.lua."""
    path = data_dir / "settings.reader.lua"
    text = path.read_text(encoding="utf-8")
    entries = "".join(f'        ["{k}"] = {"true" if v else "false"},\n' for k, v in names.items())
    head, _, _ = text.rpartition("}")
    path.write_text(head + f'    ["plugins_disabled"] = {{\n{entries}    }},\n}}\n',
                    encoding="utf-8")
