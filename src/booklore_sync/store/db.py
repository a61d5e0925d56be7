"""The local SQLite store: queues, book cache, synced history (spec §3).

Everything that touches the database goes through :class:`Store`.  The rest
of the program (importer, engine, matcher, CLI) never writes SQL.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from booklore_sync.store import queries
from booklore_sync.store.migrations import LATEST, MIGRATIONS
from booklore_sync.store.queries import HISTORY_TABLES, QUEUE_TABLES, QUEUES

# the natural-key columns of each queue (besides the fingerprint), spec §3
KEY_COLUMNS: dict[str, tuple[str, ...]] = {
    "sessions": ("start_epoch",),
    "annotations": ("datetime", "kind", "position"),
    "bookmarks": ("datetime",),
    "ratings": ("rating",),
    "progress": ("progress", "percentage"),
}

# Outcomes of an enqueue call.
QUEUED = "queued"
UPDATED = "updated"
ALREADY_QUEUED = "already_queued"
ALREADY_SYNCED = "already_synced"
DISCARDED = "discarded"
NEW_OUTCOMES = frozenset({QUEUED, UPDATED})


class StoreError(Exception):
    """A problem with the store file itself (its path is in the message)."""


class StoreVersionError(StoreError):
    """The store file was written by a newer booklore-sync."""


def utcnow() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class BookRow:
    id: int
    file_path: str | None
    file_hash: str
    book_id: int | None
    title: str | None
    author: str | None
    isbn10: str | None
    isbn13: str | None
    book_type: str | None
    match_method: str | None
    match_confidence: float | None
    matched_at: str | None

    @property
    def display_name(self) -> str:
        if self.title:
            return self.title
        if self.file_path:
            return Path(self.file_path).name
        return self.file_hash


@dataclass
class QueueItem:
    """One queue row, with the cached book its fingerprint points to (if any)."""

    queue: str
    id: int
    fingerprint: str
    payload: dict[str, Any]
    created_at: str
    retry_count: int
    last_attempt_at: str | None
    last_error: str | None
    last_status: int | None
    state: str
    key: dict[str, Any]
    cache_id: int | None = None
    book_id: int | None = None
    title: str | None = None
    file_path: str | None = None
    book_type: str | None = None
    done_parts: list[str] = field(default_factory=list)

    @property
    def display_name(self) -> str:
        if self.title:
            return self.title
        if self.file_path:
            return Path(self.file_path).name
        return self.fingerprint


def _key_text(queue: str, fingerprint: str, key: Sequence[Any]) -> str:
    """The natural key as one string (for the discard list)."""
    return json.dumps([fingerprint, *key], separators=(",", ":"), ensure_ascii=False)


class Store:
    """A connection to one store file.  Not shared across threads: open one per thread."""

    def __init__(self, conn: sqlite3.Connection, path: Path):
        self._conn = conn
        self.path = path
        self._depth = 0
        self._lock = threading.RLock()

    # ------------------------------------------------------------------ opening
    @classmethod
    def open(cls, path: str | Path, *, migrate: bool = True) -> Store:
        path = Path(path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(str(path), timeout=30, isolation_level=None,
                                   check_same_thread=False)
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"cannot open the store {path}: {exc}") from exc
        conn.row_factory = sqlite3.Row
        store = cls(conn, path)
        try:
            conn.execute("PRAGMA busy_timeout = 30000")
            conn.execute("PRAGMA foreign_keys = ON")
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if mode.lower() != "wal":  # pragma: no cover - exotic filesystems
                raise StoreError(f"the store {path} cannot use WAL mode (got {mode})")
            conn.execute("PRAGMA synchronous = NORMAL")
            if migrate:
                store._migrate()
        except sqlite3.DatabaseError as exc:
            conn.close()
            raise StoreError(f"the store {path} is not a readable booklore-sync database: {exc}") from exc
        except StoreError:
            conn.close()
            raise
        return store

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def schema_version(self) -> int:
        has = self._conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type='table' AND name='schema_migrations'"
        ).fetchone()
        if not has:
            return 0
        row = self._conn.execute("SELECT MAX(version) FROM schema_migrations").fetchone()
        return int(row[0] or 0)

    def _migrate(self) -> None:
        current = self.schema_version()
        if current == 0:
            # a file with tables but no migration record is not ours
            other = self._conn.execute(
                "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%'"
            ).fetchone()
            if other is not None:
                raise StoreError(
                    f"{self.path} is an SQLite file but not a booklore-sync store "
                    f"(it has a table {other[0]!r} and no schema record)"
                )
        if current > LATEST:
            raise StoreVersionError(
                f"the store {self.path} has schema version {current}, written by a newer "
                f"booklore-sync; this version understands up to {LATEST}. "
                "Upgrade booklore-sync (the file was left untouched)."
            )
        if current == LATEST:
            return
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            self._conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                "version INTEGER PRIMARY KEY, description TEXT NOT NULL, applied_at TEXT NOT NULL)"
            )
            # re-read under the write lock: another process may have migrated meanwhile
            current = int(self._conn.execute(
                "SELECT COALESCE(MAX(version), 0) FROM schema_migrations").fetchone()[0])
            for version, description, script in MIGRATIONS:
                if version <= current:
                    continue
                for statement in _split_sql(script):
                    self._conn.execute(statement)
                self._conn.execute(
                    "INSERT INTO schema_migrations(version, description, applied_at) VALUES (?,?,?)",
                    (version, description, utcnow()),
                )
            self._conn.execute(f"PRAGMA user_version = {LATEST}")
            self._conn.execute("COMMIT")
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise

    # ------------------------------------------------------------- transactions
    @contextmanager
    def transaction(self, rollback: bool = False) -> Iterator[Store]:
        """Group writes into one transaction; nested calls use savepoints.

        ``rollback=True`` discards everything done inside (used by dry runs).
        """
        with self._lock:
            if self._depth == 0:
                self._conn.execute("BEGIN IMMEDIATE")
                name = None
            else:
                name = f"sp{self._depth}"
                self._conn.execute(f"SAVEPOINT {name}")
            self._depth += 1
            try:
                yield self
            except BaseException:
                self._depth -= 1
                if name is None:
                    self._conn.execute("ROLLBACK")
                else:
                    self._conn.execute(f"ROLLBACK TO {name}")
                    self._conn.execute(f"RELEASE {name}")
                raise
            self._depth -= 1
            if name is None:
                self._conn.execute("ROLLBACK" if rollback else "COMMIT")
            else:
                if rollback:
                    self._conn.execute(f"ROLLBACK TO {name}")
                self._conn.execute(f"RELEASE {name}")

    def _execute(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Cursor:
        return self._conn.execute(sql, params)

    # ------------------------------------------------------------------ books
    def upsert_book(
        self,
        file_hash: str,
        *,
        file_path: str | None = None,
        title: str | None = None,
        author: str | None = None,
        isbn10: str | None = None,
        isbn13: str | None = None,
        book_type: str | None = None,
        extra_hashes: Iterable[str] = (),
    ) -> int:
        """Insert or update the cache row of ``file_hash``; returns its (stable) id.

        ``None`` fields keep their stored value.  Extra fingerprints are
        attached to the row unless another row already claims them.
        """
        now = utcnow()
        with self.transaction():
            row = self._execute("SELECT id FROM book_cache WHERE file_hash = ?", (file_hash,)).fetchone()
            if row is None:
                # A secondary fingerprint may already point at a row (e.g. the file digest
                # was cached before the sidecar's value became known): keep that row.
                alias = self._execute(
                    "SELECT cache_id FROM book_hashes WHERE hash = ?", (file_hash,)).fetchone()
                if alias is not None:
                    cache_id = int(alias[0])
                    self._execute("UPDATE book_cache SET file_hash = ? WHERE id = ?",
                                  (file_hash, cache_id))
                else:
                    cur = self._execute(
                        "INSERT INTO book_cache(file_hash, file_path, title, author, isbn10, isbn13,"
                        " book_type, created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?)",
                        (file_hash, file_path, title, author, isbn10, isbn13, book_type, now, now),
                    )
                    cache_id = int(cur.lastrowid)
            else:
                cache_id = int(row[0])
            self._execute(
                "UPDATE book_cache SET file_path = COALESCE(?, file_path), title = COALESCE(?, title),"
                " author = COALESCE(?, author), isbn10 = COALESCE(?, isbn10),"
                " isbn13 = COALESCE(?, isbn13), book_type = COALESCE(?, book_type), updated_at = ?"
                " WHERE id = ?",
                (file_path, title, author, isbn10, isbn13, book_type, now, cache_id),
            )
            for h in (file_hash, *extra_hashes):
                if h:
                    self._execute("INSERT OR IGNORE INTO book_hashes(hash, cache_id) VALUES (?, ?)",
                                  (h, cache_id))
        return cache_id

    def _book(self, row: sqlite3.Row | None) -> BookRow | None:
        if row is None:
            return None
        return BookRow(**{k: row[k] for k in BookRow.__dataclass_fields__})

    _BOOK_COLS = ("id, file_path, file_hash, book_id, title, author, isbn10, isbn13, book_type,"
                  " match_method, match_confidence, matched_at")

    def get_book(self, cache_id: int) -> BookRow | None:
        return self._book(self._execute(
            f"SELECT {self._BOOK_COLS} FROM book_cache WHERE id = ?", (cache_id,)).fetchone())

    def get_book_by_hash(self, fingerprint: str) -> BookRow | None:
        """The cached book that has ``fingerprint`` among its fingerprints."""
        return self._book(self._execute(
            f"SELECT {', '.join('b.' + c.strip() for c in self._BOOK_COLS.split(','))}"
            " FROM book_hashes h JOIN book_cache b ON b.id = h.cache_id WHERE h.hash = ?",
            (fingerprint,)).fetchone())

    def get_book_by_path(self, file_path: str) -> BookRow | None:
        return self._book(self._execute(
            f"SELECT {self._BOOK_COLS} FROM book_cache WHERE file_path = ? ORDER BY id LIMIT 1",
            (file_path,)).fetchone())

    def books(self, *, unmatched_only: bool = False) -> list[BookRow]:
        where = " WHERE book_id IS NULL" if unmatched_only else ""
        return [self._book(r) for r in self._execute(
            f"SELECT {self._BOOK_COLS} FROM book_cache{where} ORDER BY id")]  # type: ignore[misc]

    def book_hashes(self, cache_id: int) -> list[str]:
        """Every fingerprint of a cached book, the primary one first."""
        book = self.get_book(cache_id)
        if book is None:
            return []
        rest = [r[0] for r in self._execute(
            "SELECT hash FROM book_hashes WHERE cache_id = ? AND hash != ? ORDER BY rowid",
            (cache_id, book.file_hash))]
        return [book.file_hash, *rest]

    def set_book_id(self, cache_id: int, book_id: int | None, method: str | None,
                    confidence: float | None = None) -> None:
        """Store (or forget, with ``None``) the BookLore ID of a cached book; logs the match."""
        now = utcnow()
        with self.transaction():
            book = self.get_book(cache_id)
            if book is None:
                raise StoreError(f"no cached book with id {cache_id}")
            self._execute(
                "UPDATE book_cache SET book_id = ?, match_method = ?, match_confidence = ?,"
                " matched_at = ?, updated_at = ? WHERE id = ?",
                (book_id, method if book_id is not None else None,
                 confidence if book_id is not None else None,
                 now if book_id is not None else None, now, cache_id),
            )
            if book_id is not None:
                self._execute(
                    "INSERT INTO match_history(cache_id, file_hash, book_id, method, confidence,"
                    " matched_at) VALUES (?,?,?,?,?,?)",
                    (cache_id, book.file_hash, book_id, method or "unknown", confidence, now),
                )

    def forget_all_book_ids(self) -> int:
        with self.transaction():
            cur = self._execute(
                "UPDATE book_cache SET book_id = NULL, match_method = NULL, match_confidence = NULL,"
                " matched_at = NULL, updated_at = ? WHERE book_id IS NOT NULL", (utcnow(),))
            return cur.rowcount

    def match_history(self, cache_id: int | None = None) -> list[dict[str, Any]]:
        sql = "SELECT * FROM match_history"
        params: tuple[Any, ...] = ()
        if cache_id is not None:
            sql += " WHERE cache_id = ?"
            params = (cache_id,)
        return [dict(r) for r in self._execute(sql + " ORDER BY id", params)]

    def clear_cache(self) -> int:
        """Clear Cache (§4.6): every cache row goes; queues and history stay."""
        with self.transaction():
            self._execute("DELETE FROM book_hashes")
            cur = self._execute("DELETE FROM book_cache")
            # fingerprints are recomputed on the next scan (spec §4.6)
            self._execute("DELETE FROM file_memo")
            return cur.rowcount

    def cache_counts(self) -> dict[str, int]:
        return queries.cache_counts(self._conn)

    # ------------------------------------------------------------------ memo
    def get_file_memo(self, path: str) -> tuple[int, int, str] | None:
        row = self._execute("SELECT size, mtime_ns, digest FROM file_memo WHERE path = ?",
                            (path,)).fetchone()
        return (int(row[0]), int(row[1]), row[2]) if row else None

    def put_file_memo(self, path: str, size: int, mtime_ns: int, digest: str) -> None:
        self._execute(
            "INSERT INTO file_memo(path, size, mtime_ns, digest) VALUES (?,?,?,?)"
            " ON CONFLICT(path) DO UPDATE SET size = excluded.size, mtime_ns = excluded.mtime_ns,"
            " digest = excluded.digest", (path, size, mtime_ns, digest))

    # --------------------------------------------------------------- enqueue
    def _is_discarded(self, queue: str, fingerprint: str, key: Sequence[Any]) -> bool:
        return self._execute(
            "SELECT 1 FROM discarded_items WHERE queue = ? AND item_key = ?",
            (queue, _key_text(queue, fingerprint, key))).fetchone() is not None

    def _insert_queue_row(self, queue: str, fingerprint: str, cols: dict[str, Any],
                          payload: dict[str, Any] | None, last_error: str | None) -> None:
        values = {
            "fingerprint": fingerprint,
            "payload": json.dumps(payload or {}, ensure_ascii=False, sort_keys=True),
            "created_at": utcnow(),
            "last_error": last_error,
            **cols,
        }
        names = ", ".join(values)
        marks = ", ".join("?" for _ in values)
        self._execute(f"INSERT INTO {QUEUE_TABLES[queue]}({names}) VALUES ({marks})",
                      tuple(values.values()))

    def _enqueue_keyed(self, queue: str, fingerprint: str, key: dict[str, Any],
                       payload: dict[str, Any] | None, last_error: str | None) -> str:
        """Queue an item unless it is queued, synced or discarded (one statement when new)."""
        table = QUEUE_TABLES[queue]
        history = HISTORY_TABLES[queue]
        where = " AND ".join(f"{c} = ?" for c in ("fingerprint", *key))
        params = (fingerprint, *key.values())
        values = {
            "fingerprint": fingerprint,
            "payload": json.dumps(payload or {}, ensure_ascii=False, sort_keys=True),
            "created_at": utcnow(),
            "last_error": last_error,
            **key,
        }
        cols = ", ".join(values)
        marks = ", ".join("?" for _ in values)
        cur = self._execute(
            f"INSERT INTO {table}({cols}) SELECT {marks}"
            f" WHERE NOT EXISTS (SELECT 1 FROM {history} WHERE {where})"
            " AND NOT EXISTS (SELECT 1 FROM discarded_items WHERE queue = ? AND item_key = ?)"
            " ON CONFLICT DO NOTHING",
            (*values.values(), *params, queue, _key_text(queue, fingerprint, list(key.values()))))
        if cur.rowcount == 1:
            return QUEUED
        row = self._execute(f"SELECT id, state, payload, last_error FROM {table} WHERE {where}",
                            params).fetchone()
        if row is not None:
            # a row queued without a position (no CFI yet) gets it once the book is at hand
            if (row["state"] == "pending" and last_error is None and row["last_error"]
                    and queue in ("annotations", "bookmarks")
                    and (payload or {}).get("cfi") and not json.loads(row["payload"]).get("cfi")):
                self._execute(f"UPDATE {table} SET payload = ?, last_error = NULL WHERE id = ?",
                              (values["payload"], row["id"]))
                return UPDATED
            return ALREADY_QUEUED
        if self._execute(f"SELECT 1 FROM {history} WHERE {where}", params).fetchone():
            return ALREADY_SYNCED
        return DISCARDED

    def enqueue_session(self, fingerprint: str, start_epoch: int, payload: dict[str, Any]) -> str:
        return self._enqueue_keyed("sessions", fingerprint, {"start_epoch": int(start_epoch)},
                                   payload, None)

    def enqueue_annotation(self, fingerprint: str, datetime: str, kind: str, position: str,
                           payload: dict[str, Any], last_error: str | None = None) -> str:
        return self._enqueue_keyed(
            "annotations", fingerprint,
            {"datetime": datetime, "kind": kind, "position": position}, payload, last_error)

    def enqueue_bookmark(self, fingerprint: str, datetime: str, payload: dict[str, Any],
                         last_error: str | None = None) -> str:
        return self._enqueue_keyed("bookmarks", fingerprint, {"datetime": datetime},
                                   payload, last_error)

    def _enqueue_latest(self, queue: str, fingerprint: str, value: dict[str, Any],
                        last_synced: tuple[Any, ...] | None,
                        payload: dict[str, Any] | None) -> str:
        """Ratings and progress: one row per book, the latest value wins."""
        table = QUEUE_TABLES[queue]
        vals = tuple(value.values())
        with self.transaction():
            row = self._execute(
                f"SELECT id, {', '.join(value)} FROM {table} WHERE fingerprint = ?",
                (fingerprint,)).fetchone()
            if row is not None and tuple(row[c] for c in value) == vals:
                return ALREADY_QUEUED
            if last_synced is not None and tuple(last_synced) == vals:
                # the value is what the server already has from us: a queued, different
                # value would overwrite it with something older, so it goes too
                if row is not None:
                    self._execute(f"DELETE FROM {table} WHERE id = ?", (row["id"],))
                return ALREADY_SYNCED
            if self._is_discarded(queue, fingerprint, list(vals)):
                return DISCARDED
            if row is not None:
                sets = ", ".join(f"{c} = ?" for c in value)
                self._execute(
                    f"UPDATE {table} SET {sets}, payload = ?, retry_count = 0, last_error = NULL,"
                    " last_status = NULL, last_attempt_at = NULL, state = 'pending' WHERE id = ?",
                    (*vals, json.dumps(payload or {}, ensure_ascii=False, sort_keys=True),
                     row["id"]))
                # an engine that is sending the old value meanwhile will not move this row
                # to history: move_to_history(expected=...) checks the value it sent
                return UPDATED
            self._insert_queue_row(queue, fingerprint, value, payload, None)
            return QUEUED

    def last_synced_rating(self, fingerprint: str) -> int | None:
        row = self._execute(
            "SELECT rating FROM rating_sync_history WHERE fingerprint = ? ORDER BY id DESC LIMIT 1",
            (fingerprint,)).fetchone()
        return None if row is None else int(row[0])

    def last_synced_progress(self, fingerprint: str, *, pushed_only: bool = False
                             ) -> tuple[str, float] | None:
        extra = " AND outcome = 'pushed'" if pushed_only else ""
        row = self._execute(
            "SELECT progress, percentage FROM synced_koreader_progress WHERE fingerprint = ?"
            f"{extra} ORDER BY id DESC LIMIT 1", (fingerprint,)).fetchone()
        return None if row is None else (row[0], float(row[1]))

    def enqueue_rating(self, fingerprint: str, rating: int,
                       payload: dict[str, Any] | None = None) -> str:
        last = self.last_synced_rating(fingerprint)
        return self._enqueue_latest("ratings", fingerprint, {"rating": int(rating)},
                                    None if last is None else (last,), payload)

    def enqueue_progress(self, fingerprint: str, progress: str, percentage: float,
                         payload: dict[str, Any] | None = None) -> str:
        return self._enqueue_latest(
            "progress", fingerprint, {"progress": progress, "percentage": float(percentage)},
            self.last_synced_progress(fingerprint), payload)

    # ----------------------------------------------------------- batch enqueue
    _MANY_CHUNK = 400
    # json.dumps(payload, ensure_ascii=False, sort_keys=True), as above, without making an
    # encoder per call (C encoder when there is one; no circular check: a circular
    # payload fails here either way and goes to the single method, which says so)
    _MANY_JSON = json.JSONEncoder(ensure_ascii=False, sort_keys=True).encode
    try:
        from json.encoder import c_make_encoder as _c_make_encoder
        from json.encoder import encode_basestring as _encode_basestring

        if _c_make_encoder is not None:
            _MANY_JSON = (lambda enc: lambda o: "".join(enc(o, 0)))(_c_make_encoder(
                None, json.JSONEncoder().default, _encode_basestring, None, ": ", ", ",
                True, False, True))
        del _c_make_encoder, _encode_basestring
    except ImportError:  # pragma: no cover - other Pythons
        pass

    def enqueue_many(self, queue: str, rows: Iterable[Sequence[Any]]) -> list[str]:
        """Many ``enqueue_<queue>`` calls in a few statements; their outcomes, in order.

        Each row holds the positional arguments of the single method, fingerprint
        first (``enqueue_annotation``: fingerprint, datetime, kind, position,
        payload[, last_error]; ``enqueue_bookmark``: fingerprint, datetime,
        payload[, last_error]; ``enqueue_session``: fingerprint, start_epoch,
        payload; ``enqueue_rating``: fingerprint, rating[, payload];
        ``enqueue_progress``: fingerprint, progress, percentage[, payload]).
        Outcomes and the rows left in the queue are those of calling the single
        method for each row in order (natural keys; already queued / already
        synced / discarded; the CFI refresh of unconvertible annotations and
        bookmarks; latest-value-wins for ratings and progress), duplicates within
        the batch included.  Rows whose values are not of their columns' natural
        types (or not storable: lone surrogates, NaN, out-of-range integers) go
        through the single method, in their place in the order, so they fail
        where it fails.  ``created_at`` is read once per batch.
        """
        single = {"sessions": self.enqueue_session, "annotations": self.enqueue_annotation,
                  "bookmarks": self.enqueue_bookmark, "ratings": self.enqueue_rating,
                  "progress": self.enqueue_progress}[queue]
        flush = self._many_latest if queue in ("ratings", "progress") else self._many_keyed
        # one lookup binds up to 6 values a row: stay under SQLite's variable limit
        chunk = max(1, min(self._MANY_CHUNK, self._conn.getlimit(
            sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) // 8))
        out: list[str] = []
        batch: list[tuple[Any, ...]] = []
        for row in rows:
            norm = self._many_row(queue, row)
            if norm is None or len(batch) >= chunk:
                if batch:
                    with self.transaction():
                        out += flush(queue, batch)
                    batch = []
            if norm is None:
                out.append(single(*row))
            else:
                batch.append(norm)
        if batch:
            with self.transaction():
                out += flush(queue, batch)
        return out

    def _many_row(self, queue: str, row: Sequence[Any]) -> tuple[Any, ...] | None:
        """(fingerprint, key values, payload, payload JSON, last_error), or None for the
        single-method path."""
        text = self._many_text
        try:
            n = len(row)
            fp = row[0]
            last_error = None
            if queue == "annotations":
                if not 5 <= n <= 6:
                    return None
                keys = (row[1], row[2], row[3])
                payload = row[4]
                if n == 6:
                    last_error = row[5]
                if not (text(keys[0]) and text(keys[1]) and text(keys[2])):
                    return None
            elif queue == "bookmarks":
                if not 3 <= n <= 4:
                    return None
                keys = (row[1],)
                payload = row[2]
                if n == 4:
                    last_error = row[3]
                if not text(keys[0]):
                    return None
            elif queue == "sessions":
                if n != 3:
                    return None
                keys, payload = (int(row[1]),), row[2]
            elif queue == "ratings":
                if not 2 <= n <= 3:
                    return None
                keys, payload = (int(row[1]),), row[2] if n == 3 else None
            else:  # progress
                if not 3 <= n <= 4:
                    return None
                pct = float(row[2])
                if not text(row[1]) or pct != pct:
                    return None
                keys, payload = (row[1], pct), row[3] if n == 4 else None
            if not text(fp) or not (last_error is None or text(last_error)):
                return None
            if type(keys[0]) is int and not -(1 << 63) <= keys[0] < (1 << 63):
                return None
            if payload is not None and type(payload) is not dict:
                return None
            pjson = Store._MANY_JSON(payload or {})
            if not text(pjson):
                return None
        except Exception:  # noqa: BLE001 - let the single method raise it in its place
            return None
        return fp, keys, payload, pjson, last_error

    @staticmethod
    def _many_text(v: Any) -> bool:
        """A str SQLite can store (UTF-8: no lone surrogates)."""
        if type(v) is not str:
            return False
        if v.isascii():
            return True
        try:
            v.encode("utf-8")
        except UnicodeEncodeError:
            return False
        return True

    def _many_keyed(self, queue: str, batch: list[tuple[Any, ...]]) -> list[str]:
        """_enqueue_keyed for a batch: one lookup statement, then executemany."""
        table, history = QUEUE_TABLES[queue], HISTORY_TABLES[queue]
        cols = KEY_COLUMNS[queue]
        n = len(cols)
        discards = self._execute("SELECT 1 FROM discarded_items WHERE queue = ? LIMIT 1",
                                 (queue,)).fetchone() is not None
        width = 2 + n + (1 if discards else 0)
        params: list[Any] = [queue] if discards else []  # the ? of `disc` comes first
        for i, (fp, keys, _p, _j, _e) in enumerate(batch):
            params += (i, fp, *keys)
            if discards:
                params.append(_key_text(queue, fp, list(keys)))
        match = " AND ".join(f"{{t}}.{c} = v.column{3 + j}" for j, c in enumerate(cols))
        disc = (f"EXISTS (SELECT 1 FROM discarded_items d WHERE d.queue = ?"
                f" AND d.item_key = v.column{3 + n})" if discards else "0")
        rows_sql = ",".join(["(" + ",".join("?" * width) + ")"] * len(batch))
        found = self._execute(
            f"SELECT v.column1, q.id, q.state, q.payload, q.last_error,"
            f" EXISTS (SELECT 1 FROM {history} h WHERE h.fingerprint = v.column2"
            f" AND {match.format(t='h')}), {disc}"
            f" FROM (VALUES {rows_sql}) AS v LEFT JOIN {table} q"
            f" ON q.fingerprint = v.column2 AND {match.format(t='q')}", params).fetchall()
        found_by = {r[0]: r for r in found}
        now = utcnow()
        state: dict[tuple[Any, ...], list[Any]] = {}
        inserts: list[tuple[Any, ...]] = []
        updates: list[tuple[Any, ...]] = []
        out = []
        for i, (fp, keys, payload, pjson, last_error) in enumerate(batch):
            key = (fp, *keys)
            cur = state.get(key)
            r = found_by[i]
            if cur is None and r[1] is not None:
                cur = state[key] = [r[2], r[3], r[4]]
            if cur is None:
                if r[5]:
                    out.append(ALREADY_SYNCED)
                elif r[6]:
                    out.append(DISCARDED)
                else:
                    inserts.append((fp, pjson, now, last_error, *keys))
                    state[key] = ["pending", pjson, last_error]
                    out.append(QUEUED)
            elif (cur[0] == "pending" and last_error is None and cur[2]
                  and queue in ("annotations", "bookmarks")
                  and (payload or {}).get("cfi") and not json.loads(cur[1]).get("cfi")):
                updates.append((pjson, *key))
                cur[1], cur[2] = pjson, None
                out.append(UPDATED)
            else:
                out.append(ALREADY_QUEUED)
        if inserts:
            self._conn.executemany(
                f"INSERT INTO {table}(fingerprint, payload, created_at, last_error,"
                f" {', '.join(cols)}) VALUES ({','.join('?' * (4 + n))})", inserts)
        if updates:
            self._conn.executemany(
                f"UPDATE {table} SET payload = ?, last_error = NULL WHERE fingerprint = ?"
                f" AND {' AND '.join(f'{c} = ?' for c in cols)}", updates)
        return out

    def _many_latest(self, queue: str, batch: list[tuple[Any, ...]]) -> list[str]:
        """_enqueue_latest (with last_synced_rating / last_synced_progress) for a batch."""
        table, history = QUEUE_TABLES[queue], HISTORY_TABLES[queue]
        cols = KEY_COLUMNS[queue]
        params: list[Any] = []
        for i, (fp, *_rest) in enumerate(batch):
            params += (i, fp)
        rows_sql = ",".join(["(?,?)"] * len(batch))
        found = self._execute(
            f"SELECT v.column1, q.id, {', '.join('q.' + c for c in cols)},"
            f" h.id, {', '.join('h.' + c for c in cols)}"
            f" FROM (VALUES {rows_sql}) AS v LEFT JOIN {table} q ON q.fingerprint = v.column2"
            f" LEFT JOIN {history} h ON h.id = (SELECT id FROM {history}"
            f" WHERE fingerprint = v.column2 ORDER BY id DESC LIMIT 1)", params).fetchall()
        found_by = {r[0]: r for r in found}
        n = len(cols)
        discards = self._execute("SELECT 1 FROM discarded_items WHERE queue = ? LIMIT 1",
                                 (queue,)).fetchone() is not None
        now = utcnow()
        sets = ", ".join(f"{c} = ?" for c in cols)
        sql = {
            "insert": f"INSERT INTO {table}(fingerprint, payload, created_at, last_error,"
                      f" {', '.join(cols)}) VALUES ({','.join('?' * (4 + n))})",
            "update": f"UPDATE {table} SET {sets}, payload = ?, retry_count = 0,"
                      " last_error = NULL, last_status = NULL, last_attempt_at = NULL,"
                      " state = 'pending' WHERE fingerprint = ?",
            "delete": f"DELETE FROM {table} WHERE fingerprint = ?",
        }
        state: dict[str, tuple[Any, ...] | None] = {}
        ops: list[tuple[str, tuple[Any, ...]]] = []
        out = []
        for i, (fp, vals, _payload, pjson, _e) in enumerate(batch):
            r = found_by[i]
            row = state[fp] if fp in state else (tuple(r[2:2 + n]) if r[1] is not None
                                                 else None)
            if r[2 + n] is None:
                last = None
            elif queue == "ratings":
                last = (int(r[3 + n]),)
            else:
                last = (r[3 + n], float(r[4 + n]))
            if row is not None and row == vals:
                out.append(ALREADY_QUEUED)
            elif last is not None and last == vals:
                if row is not None:
                    ops.append(("delete", (fp,)))
                    state[fp] = None
                out.append(ALREADY_SYNCED)
            elif discards and self._is_discarded(queue, fp, list(vals)):
                out.append(DISCARDED)
            elif row is not None:
                ops.append(("update", (*vals, pjson, fp)))
                state[fp] = vals
                out.append(UPDATED)
            else:
                ops.append(("insert", (fp, pjson, now, None, *vals)))
                state[fp] = vals
                out.append(QUEUED)
        i = 0
        while i < len(ops):
            j = i
            while j < len(ops) and ops[j][0] == ops[i][0]:
                j += 1
            self._conn.executemany(sql[ops[i][0]], [p for _k, p in ops[i:j]])
            i = j
        return out

    # ------------------------------------------------------------------ read
    def counts(self) -> dict[str, int]:
        return queries.queue_counts(self._conn)

    def progress_history_count(self) -> int:
        return queries.progress_history_count(self._conn)

    def history_counts(self) -> dict[str, int]:
        out = {q: int(self._execute(f"SELECT COUNT(*) FROM {HISTORY_TABLES[q]}").fetchone()[0])
               for q in QUEUES}
        out["discarded"] = int(self._execute("SELECT COUNT(*) FROM discarded_items").fetchone()[0])
        return out

    def pending(self, queue: str, *, fingerprint: str | None = None,
                ids: Iterable[int] | None = None) -> list[QueueItem]:
        """Queue rows in insertion order, joined to the cache through any fingerprint."""
        table = QUEUE_TABLES[queue]
        where, params = [], []
        if fingerprint is not None:
            where.append("q.fingerprint = ?")
            params.append(fingerprint)
        if ids is not None:
            id_list = list(ids)
            where.append(f"q.id IN ({','.join('?' * len(id_list))})")
            params.extend(id_list)
        clause = (" WHERE " + " AND ".join(where)) if where else ""
        key_cols = KEY_COLUMNS[queue]
        parts = ", q.done_parts" if queue == "annotations" else ", '[]'"
        # a plain tuple cursor: the store's Row factory costs more than the rest per row
        cur = self._conn.cursor()
        cur.row_factory = None
        rows = cur.execute(
            f"SELECT q.id, q.fingerprint, q.payload, q.created_at, q.retry_count,"
            f" q.last_attempt_at, q.last_error, q.last_status, q.state,"
            f" b.id, b.book_id, b.title, b.file_path, b.book_type{parts},"
            f" {', '.join('q.' + c for c in key_cols)} FROM {table} q"
            f" LEFT JOIN book_hashes h ON h.hash = q.fingerprint"
            f" LEFT JOIN book_cache b ON b.id = h.cache_id{clause} ORDER BY q.id", params)
        loads = json.loads
        items = []
        for (rid, fp, payload, created, retries, attempted, error, status, state, cache_id,
             book_id, title, path, book_type, done, *key) in rows:
            items.append(QueueItem(
                queue, rid, fp, loads(payload), created, retries, attempted, error, status,
                state, dict(zip(key_cols, key, strict=True)), cache_id, book_id, title, path,
                book_type, loads(done)))
        return items

    def all_pending(self) -> list[QueueItem]:
        return [item for q in QUEUES for item in self.pending(q)]

    # -------------------------------------------------------- engine updates
    def _ids_clause(self, ids: Sequence[int]) -> str:
        return f"id IN ({','.join('?' * len(ids))})"

    def set_state(self, queue: str, ids: Sequence[int], state: str) -> None:
        """Durably mark rows 'pending', 'in_flight' or 'uncertain'."""
        if not ids:
            return
        with self.transaction():
            self._execute(f"UPDATE {QUEUE_TABLES[queue]} SET state = ? WHERE id IN"
                          " (SELECT value FROM json_each(?))", (state, json.dumps(list(ids))))

    def record_attempt(self, queue: str, ids: Sequence[int], *, error: str | None,
                       status: int | None = None, count_attempt: bool = True,
                       state: str | None = "pending") -> None:
        """A failed (or inconclusive) attempt: the rows stay queued with the reason."""
        if not ids:
            return
        inc = 1 if count_attempt else 0
        with self.transaction():
            self._execute(
                f"UPDATE {QUEUE_TABLES[queue]} SET retry_count = retry_count + ?,"
                " last_attempt_at = CASE WHEN ? THEN ? ELSE last_attempt_at END,"
                " last_error = ?, last_status = ?, state = COALESCE(?, state) WHERE "
                f"{self._ids_clause(ids)}",
                (inc, inc, utcnow(), error, status, state, *ids))

    def record_skip(self, queue: str, ids: Sequence[int], reason: str) -> None:
        """Not attempted through no failure: retry_count unchanged, reason kept."""
        if not ids:
            return
        with self.transaction():
            self._execute(f"UPDATE {QUEUE_TABLES[queue]} SET last_error = ? WHERE "
                          f"{self._ids_clause(ids)}", (reason, *ids))

    def mark_annotation_part(self, item_id: int, part: str, *, book_id: int | None,
                             remote_id: int | None = None) -> None:
        """Record one half of a 'both' note as delivered (spec koreader-data §6.7)."""
        with self.transaction():
            row = self._execute("SELECT * FROM pending_annotations WHERE id = ?",
                                (item_id,)).fetchone()
            if row is None:
                return
            parts = json.loads(row["done_parts"])
            if part not in parts:
                parts.append(part)
            self._execute("UPDATE pending_annotations SET done_parts = ? WHERE id = ?",
                          (json.dumps(parts), item_id))
            self._execute(
                "INSERT OR IGNORE INTO synced_annotations(fingerprint, datetime, kind, position,"
                " destination, book_id, remote_id, synced_at) VALUES (?,?,?,?,?,?,?,?)",
                (row["fingerprint"], row["datetime"], row["kind"], row["position"], part,
                 book_id, remote_id, utcnow()))

    def move_to_history(self, queue: str, ids: Sequence[int], *, book_id: int | None = None,
                        destination: str | None = None, remote_id: int | None = None,
                        outcome: str = "pushed",
                        expected: dict[int, tuple[Any, ...]] | None = None) -> int:
        """Upload confirmed: copy the rows into synced history and delete them, atomically.

        ``expected`` maps a row id to the key values that were sent (ratings,
        progress): a row whose value changed meanwhile (a scan queued a newer
        one) stays queued, since that newer value was not sent.
        """
        if not ids:
            return 0
        table = QUEUE_TABLES[queue]
        history, columns, values = _HISTORY_COPY[queue]
        with self.transaction():
            if expected is not None:
                cols = KEY_COLUMNS[queue]
                rows = self._execute(
                    f"SELECT id, {', '.join(cols)} FROM {table}"
                    " WHERE id IN (SELECT value FROM json_each(?))", (json.dumps(list(ids)),))
                ids = [r["id"] for r in rows
                       if r["id"] not in expected
                       or tuple(r[c] for c in cols) == tuple(expected[r["id"]])]
                if not ids:
                    return 0
            params = {"ids": json.dumps(list(ids)), "book_id": book_id, "remote_id": remote_id,
                      "destination": destination or "annotation", "outcome": outcome,
                      "now": utcnow()}
            self._execute(
                f"INSERT OR IGNORE INTO {history}({columns}) SELECT {values} FROM {table}"
                " WHERE id IN (SELECT value FROM json_each(:ids)) ORDER BY id", params)
            return self._execute(f"DELETE FROM {table} WHERE id IN (SELECT value FROM"
                                 " json_each(?))", (params["ids"],)).rowcount

    def move_many_to_history(self, queue: str,
                             moves: Sequence[tuple[Sequence[int], dict[str, Any]]]) -> int:
        """Several confirmed uploads (ids, move_to_history keywords) in one transaction.

        Moves that differ only in their ``remote_id`` share one statement: the ids
        and remote ids travel as a JSON array of pairs.
        """
        groups: dict[tuple[Any, ...], list[list[Any]]] = {}
        singles = []
        for ids, kw in moves:
            if kw.get("expected") is not None:
                singles.append((ids, kw))
                continue
            key = (kw.get("book_id"), kw.get("destination"), kw.get("outcome", "pushed"))
            groups.setdefault(key, []).extend([i, kw.get("remote_id")] for i in ids)
        table = QUEUE_TABLES[queue]
        history, columns, values = _HISTORY_COPY[queue]
        values = values.replace(":remote_id", "json_extract(j.value, '$[1]')")
        moved = 0
        with self.transaction():
            for (book_id, destination, outcome), pairs in groups.items():
                params = {"pairs": json.dumps(pairs), "book_id": book_id,
                          "destination": destination or "annotation", "outcome": outcome,
                          "now": utcnow()}
                self._execute(
                    f"INSERT OR IGNORE INTO {history}({columns}) SELECT {values} FROM {table} q"
                    " JOIN json_each(:pairs) j ON q.id = json_extract(j.value, '$[0]')"
                    " ORDER BY q.id",
                    params)
                moved += self._execute(
                    f"DELETE FROM {table} WHERE id IN (SELECT json_extract(value, '$[0]')"
                    " FROM json_each(?))", (params["pairs"],)).rowcount
            for ids, kw in singles:
                moved += self.move_to_history(queue, ids, **kw)
        return moved

    def ensure_book_for_hash(self, fingerprint: str) -> int:
        """A cache row for a queued fingerprint that has none (spec §2, after Clear Cache)."""
        book = self.get_book_by_hash(fingerprint)
        if book is not None:
            return book.id
        return self.upsert_book(fingerprint)

    # ------------------------------------------------------------------ clear
    def clear_pending(self, queues: Iterable[str]) -> dict[str, int]:
        """Clear Pending (§4.4): delete the queues, remembering their keys as discarded."""
        out: dict[str, int] = {}
        now = utcnow()
        with self.transaction():
            for q in queues:
                table = QUEUE_TABLES[q]
                cols = KEY_COLUMNS[q]
                rows = self._execute(f"SELECT fingerprint, {', '.join(cols)} FROM {table}").fetchall()
                self._conn.executemany(
                    "INSERT OR IGNORE INTO discarded_items(queue, item_key, discarded_at)"
                    " VALUES (?,?,?)",
                    [(q, _key_text(q, r[0], [r[c] for c in cols]), now) for r in rows])
                out[q] = self._execute(f"DELETE FROM {table}").rowcount
        return out

    def clear_history(self, ledgers: Iterable[str]) -> dict[str, int]:
        """Advanced → Clear: synced-history ledgers and/or the discard list ('discarded')."""
        out: dict[str, int] = {}
        with self.transaction():
            for name in ledgers:
                table = "discarded_items" if name == "discarded" else HISTORY_TABLES[name]
                out[name] = self._execute(f"DELETE FROM {table}").rowcount
            self._execute("UPDATE store_meta SET value = CAST(value AS INTEGER) + 1"
                          " WHERE key = 'history_generation'")
        return out

    def history_generation(self) -> int:
        """Goes up whenever synced history or the discard list is cleared: what was
        skipped as 'already synced' or 'discarded' may be queued again."""
        row = self._execute(
            "SELECT value FROM store_meta WHERE key = 'history_generation'").fetchone()
        return int(row[0]) if row else 0

    def session_ranges(self, fingerprint: str) -> list[tuple[int, int]]:
        """(start, end) epochs of the sessions queued or synced for a book."""
        out = []
        for table in ("pending_sessions", "historical_sessions"):
            for start, payload in self._execute(
                    f"SELECT start_epoch, payload FROM {table} WHERE fingerprint = ?",
                    (fingerprint,)):
                end = _epoch(json.loads(payload).get("endTime"))
                if end is not None:
                    out.append((int(start), end))
        return out

    def remote_ids(self, queue: str, book_id: int) -> set[int]:
        """Server ids of the v1 book notes (queue 'annotations') or bookmarks (queue
        'bookmarks') this store has recorded as delivered for a book: an earlier
        upload's unknown outcome is resolved only against the server's other items."""
        if queue == "bookmarks":
            sql = ("SELECT remote_id FROM synced_bookmarks WHERE book_id = ?"
                   " AND remote_id IS NOT NULL")
        else:
            sql = ("SELECT remote_id FROM synced_annotations WHERE book_id = ?"
                   " AND destination IN ('book_note', 'both') AND remote_id IS NOT NULL")
        return {int(r[0]) for r in self._execute(sql, (book_id,))}

    # ----------------------------------------------------------- capabilities
    def get_capabilities(self, server_url: str) -> dict[str, Any] | None:
        row = self._execute("SELECT data FROM server_capabilities WHERE server_url = ?",
                            (server_url,)).fetchone()
        return None if row is None else json.loads(row[0])

    def put_capabilities(self, server_url: str, data: dict[str, Any]) -> None:
        self._execute(
            "INSERT INTO server_capabilities(server_url, data, stored_at) VALUES (?,?,?)"
            " ON CONFLICT(server_url) DO UPDATE SET data = excluded.data,"
            " stored_at = excluded.stored_at", (server_url, json.dumps(data), utcnow()))

    def drop_capabilities(self, server_url: str) -> None:
        self._execute("DELETE FROM server_capabilities WHERE server_url = ?", (server_url,))


class CapabilityCache:
    """Adapter giving the client's capability-cache protocol (get/put/drop) over a store."""

    def __init__(self, store: Store):
        self._store = store

    def get(self, server_url: str) -> dict[str, Any] | None:
        return self._store.get_capabilities(server_url)

    def put(self, server_url: str, data: dict[str, Any]) -> None:
        self._store.put_capabilities(server_url, data)

    def drop(self, server_url: str) -> None:
        self._store.drop_capabilities(server_url)


# queue → (history table, its columns, the SELECT list that fills them from a queue row)
_HISTORY_COPY: dict[str, tuple[str, str, str]] = {
    "sessions": ("historical_sessions", "fingerprint, start_epoch, book_id, payload, synced_at",
                 "fingerprint, start_epoch, :book_id, payload, :now"),
    "annotations": ("synced_annotations",
                    "fingerprint, datetime, kind, position, destination, book_id, remote_id,"
                    " synced_at",
                    "fingerprint, datetime, kind, position, :destination, :book_id, :remote_id,"
                    " :now"),
    "bookmarks": ("synced_bookmarks", "fingerprint, datetime, book_id, remote_id, synced_at",
                  "fingerprint, datetime, :book_id, :remote_id, :now"),
    "ratings": ("rating_sync_history", "fingerprint, rating, book_id, synced_at",
                "fingerprint, rating, :book_id, :now"),
    "progress": ("synced_koreader_progress",
                 "fingerprint, progress, percentage, outcome, synced_at",
                 "fingerprint, progress, percentage, :outcome, :now"),
}


def _epoch(text: Any) -> int | None:
    """``YYYY-MM-DDTHH:MM:SSZ`` as epoch seconds (None if absent or malformed)."""
    if not isinstance(text, str):
        return None
    try:
        return int(datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ")
                   .replace(tzinfo=timezone.utc).timestamp())
    except ValueError:
        return None


def _split_sql(script: str) -> list[str]:
    """Split a migration script into statements (our scripts have no ';' in literals)."""
    out, buf = [], []
    for line in script.splitlines():
        stripped = line.strip()
        if stripped.startswith("--"):
            continue
        buf.append(line)
        if stripped.endswith(";"):
            stmt = "\n".join(buf).strip().rstrip(";")
            if stmt:
                out.append(stmt)
            buf = []
    tail = "\n".join(buf).strip()
    if tail:
        out.append(tail)
    return out
