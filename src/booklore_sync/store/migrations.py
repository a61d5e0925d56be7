"""Numbered schema migrations of the local store.

Each entry is (version, description, SQL script).  Versions are applied in
order inside one transaction each and recorded in ``schema_migrations`` (and
mirrored in ``PRAGMA user_version``).  Never edit a released migration: add a
new one.
"""

from __future__ import annotations

_QUEUE_COLUMNS = """
    fingerprint TEXT NOT NULL,
    payload TEXT NOT NULL DEFAULT '{}',
    created_at TEXT NOT NULL,
    retry_count INTEGER NOT NULL DEFAULT 0,
    last_attempt_at TEXT,
    last_error TEXT,
    last_status INTEGER,
    state TEXT NOT NULL DEFAULT 'pending'
        CHECK (state IN ('pending', 'in_flight', 'uncertain'))
"""

V1 = f"""
CREATE TABLE book_cache (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    file_path TEXT,
    file_hash TEXT NOT NULL UNIQUE,
    book_id INTEGER,
    title TEXT,
    author TEXT,
    isbn10 TEXT,
    isbn13 TEXT,
    book_type TEXT,
    match_method TEXT,
    match_confidence REAL,
    matched_at TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX book_cache_path ON book_cache(file_path);

-- every fingerprint known for a cached book (the primary one included)
CREATE TABLE book_hashes (
    hash TEXT PRIMARY KEY,
    cache_id INTEGER NOT NULL REFERENCES book_cache(id) ON DELETE CASCADE
);
CREATE INDEX book_hashes_cache ON book_hashes(cache_id);

CREATE TABLE pending_sessions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    {_QUEUE_COLUMNS},
    start_epoch INTEGER NOT NULL,
    UNIQUE (fingerprint, start_epoch)
);
CREATE TABLE pending_annotations (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    {_QUEUE_COLUMNS},
    datetime TEXT NOT NULL,
    kind TEXT NOT NULL,
    position TEXT NOT NULL,
    done_parts TEXT NOT NULL DEFAULT '[]',
    UNIQUE (fingerprint, datetime, kind, position)
);
CREATE TABLE pending_bookmarks (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    {_QUEUE_COLUMNS},
    datetime TEXT NOT NULL,
    UNIQUE (fingerprint, datetime)
);
CREATE TABLE pending_ratings (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    {_QUEUE_COLUMNS},
    rating INTEGER NOT NULL,
    UNIQUE (fingerprint)
);
CREATE TABLE pending_koreader_progress (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    {_QUEUE_COLUMNS},
    progress TEXT NOT NULL,
    percentage REAL NOT NULL,
    UNIQUE (fingerprint)
);

CREATE TABLE historical_sessions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    fingerprint TEXT NOT NULL,
    start_epoch INTEGER NOT NULL,
    book_id INTEGER,
    payload TEXT NOT NULL DEFAULT '{{}}',
    synced_at TEXT NOT NULL,
    UNIQUE (fingerprint, start_epoch)
);
CREATE TABLE synced_annotations (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    fingerprint TEXT NOT NULL,
    datetime TEXT NOT NULL,
    kind TEXT NOT NULL,
    position TEXT NOT NULL,
    destination TEXT NOT NULL,
    book_id INTEGER,
    remote_id INTEGER,
    synced_at TEXT NOT NULL,
    UNIQUE (fingerprint, datetime, kind, position, destination)
);
CREATE TABLE synced_bookmarks (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    fingerprint TEXT NOT NULL,
    datetime TEXT NOT NULL,
    book_id INTEGER,
    remote_id INTEGER,
    synced_at TEXT NOT NULL,
    UNIQUE (fingerprint, datetime)
);
CREATE TABLE rating_sync_history (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    fingerprint TEXT NOT NULL,
    rating INTEGER NOT NULL,
    book_id INTEGER,
    synced_at TEXT NOT NULL
);
CREATE INDEX rating_sync_history_fp ON rating_sync_history(fingerprint, id);
CREATE TABLE synced_koreader_progress (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    fingerprint TEXT NOT NULL,
    progress TEXT NOT NULL,
    percentage REAL NOT NULL,
    outcome TEXT NOT NULL DEFAULT 'pushed' CHECK (outcome IN ('pushed', 'server_ahead')),
    synced_at TEXT NOT NULL
);
CREATE INDEX synced_koreader_progress_fp ON synced_koreader_progress(fingerprint, id);

CREATE TABLE match_history (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    cache_id INTEGER,
    file_hash TEXT NOT NULL,
    book_id INTEGER,
    method TEXT NOT NULL,
    confidence REAL,
    matched_at TEXT NOT NULL
);

-- natural keys of items removed by Clear Pending (spec §4.4)
CREATE TABLE discarded_items (
    queue TEXT NOT NULL,
    item_key TEXT NOT NULL,
    discarded_at TEXT NOT NULL,
    PRIMARY KEY (queue, item_key)
);

-- size + mtime of files already fingerprinted (rescans do not re-read them)
CREATE TABLE file_memo (
    path TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    digest TEXT NOT NULL
);

-- per-server capability probe results (booklore-api.md §6)
CREATE TABLE server_capabilities (
    server_url TEXT PRIMARY KEY,
    data TEXT NOT NULL,
    stored_at TEXT NOT NULL
);
"""

V2 = """
-- small key/value facts about the store itself (e.g. the history generation that
-- invalidates the importer's memo when synced history is cleared)
CREATE TABLE store_meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
INSERT INTO store_meta(key, value) VALUES ('history_generation', '0');
"""

# Version 3 (spec §2, §3, §4.1): how each book was matched, the kept links (the
# user's decisions that survive Clear Cache), first-contact reconciliation
# records, read-status observations, and the ledger columns of synced history.
_LEDGER_TABLES = ("historical_sessions", "synced_annotations", "synced_bookmarks",
                  "rating_sync_history", "synced_koreader_progress")
_QUEUE_TABLES = ("pending_sessions", "pending_annotations", "pending_ratings",
                 "pending_bookmarks", "pending_koreader_progress")
_SETTLED = "'uploaded', 'found_on_server', 'server_newer', 'deleted_on_server'"

V3 = "\n".join([
    """
ALTER TABLE book_cache ADD COLUMN matched_by TEXT
    CHECK (matched_by IN ('fingerprint', 'isbn', 'manual', 'plugin'));
UPDATE book_cache SET matched_by = CASE match_method
    WHEN 'hash' THEN 'fingerprint' WHEN 'fingerprint' THEN 'fingerprint'
    WHEN 'isbn' THEN 'isbn' WHEN 'plugin' THEN 'plugin' ELSE 'manual' END
    WHERE book_id IS NOT NULL;
CREATE INDEX book_cache_book_id ON book_cache(book_id);

-- the user's decisions, by fingerprint: they survive Clear Cache (spec §4.6)
CREATE TABLE kept_links (
    fingerprint TEXT PRIMARY KEY,
    book_id INTEGER NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('manual', 'plugin')),
    linked_at TEXT NOT NULL
);
CREATE INDEX kept_links_book_id ON kept_links(book_id);

-- plugin matches that Re-match All or `link` replaced: never adopted again (spec §5)
CREATE TABLE replaced_plugin_matches (
    fingerprint TEXT NOT NULL,
    book_id INTEGER NOT NULL,
    replaced_at TEXT NOT NULL,
    PRIMARY KEY (fingerprint, book_id)
);

-- first-contact reconciliation done, per server identity, book and kind (spec §4.1)
CREATE TABLE reconciliations (
    server TEXT NOT NULL,
    book_id INTEGER NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('sessions', 'book_notes', 'pdf_bookmarks')),
    reconciled_at TEXT NOT NULL,
    PRIMARY KEY (server, book_id, kind)
);

-- the read status last seen on the server per book, and when it was first seen (§4.1)
CREATE TABLE status_observations (
    server TEXT NOT NULL,
    book_id INTEGER NOT NULL,
    status TEXT NOT NULL,
    first_seen TEXT NOT NULL,
    PRIMARY KEY (server, book_id)
);
""",
    *(f"ALTER TABLE {t} ADD COLUMN in_flight_at TEXT;\n"
      f"ALTER TABLE {t} ADD COLUMN abandoned_at TEXT;" for t in _QUEUE_TABLES),
    "ALTER TABLE historical_sessions ADD COLUMN remote_id INTEGER;",
    "ALTER TABLE rating_sync_history ADD COLUMN remote_id INTEGER;",
    "ALTER TABLE synced_koreader_progress ADD COLUMN remote_id INTEGER;",
    *(f"ALTER TABLE {t} ADD COLUMN sent TEXT;\n"
      f"ALTER TABLE {t} ADD COLUMN settled TEXT NOT NULL DEFAULT 'uploaded'"
      f" CHECK (settled IN ({_SETTLED}));" for t in _LEDGER_TABLES),
    "UPDATE synced_koreader_progress SET settled = 'server_newer' WHERE outcome = 'server_ahead';",
])

MIGRATIONS: list[tuple[int, str, str]] = [
    (1, "queues, book cache, synced history, memo, capabilities", V1),
    (2, "store_meta (history generation)", V2),
    (3, "matched_by, kept links, reconciliation, status observations, ledger columns", V3),
]

LATEST = MIGRATIONS[-1][0]
