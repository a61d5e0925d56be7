"""The book cache, the kept links and the file memo (spec §2, §4.3, §4.5, §4.6).

A ``book_cache`` row keeps its id for life.  Kept links are the user's
decisions (manual links, adopted plugin matches), kept by fingerprint beside
the cache: Clear Cache leaves them, a rebuilt row whose fingerprint has one
gets its BookLore ID back, Re-match All forgets them.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from typing import Any

from booklore_sync.common.vocab import LinkKind, MatchedBy
from booklore_sync.store import queries
from booklore_sync.store.book_rows import (
    ATTACH_KEPT,
    IN_CHUNK,
    INSERT_BOOK,
    INSERT_HASH,
    PUT_MEMO,
    UPDATE_BOOK,
    BookUpsert,
    touches,
)
from booklore_sync.store.core import StoreCore
from booklore_sync.store.types import (
    BookRow,
    CacheCleared,
    KeptLink,
    MatchesForgotten,
    StoreError,
    utcnow,
)

_BOOK_FIELDS = ("id", "file_path", "file_hash", "book_id", "title", "author", "isbn10",
                "isbn13", "book_type", "match_method", "match_confidence", "matched_at",
                "matched_by")
_BOOK_COLS = ", ".join(_BOOK_FIELDS)
_BOOK_COLS_B = ", ".join("b." + c for c in _BOOK_FIELDS)

# the matcher's methods (match_method) and the kind of match they are (matched_by)
_MATCHED_BY = {"hash": MatchedBy.FINGERPRINT, "fingerprint": MatchedBy.FINGERPRINT,
               "isbn": MatchedBy.ISBN, "plugin": MatchedBy.PLUGIN}


def matched_by(method: str | None) -> MatchedBy:
    """``book_cache.matched_by`` for a matcher method: anything a person chose is manual."""
    return _MATCHED_BY.get(method or "", MatchedBy.MANUAL)


def _book(row: sqlite3.Row | None) -> BookRow | None:
    if row is None:
        return None
    return BookRow(*(row[i] for i in range(len(_BOOK_FIELDS))))


def _link(row: sqlite3.Row | None) -> KeptLink | None:
    if row is None:
        return None
    return KeptLink(row[0], int(row[1]), LinkKind(row[2]), row[3])


class BooksMixin(StoreCore):
    # ------------------------------------------------------------------ cache
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
        attached to the row unless another row already claims them.  A row
        without a BookLore ID whose fingerprints have a kept link gets the
        link's ID (spec §4.6).
        """
        now = utcnow()
        up = BookUpsert(file_hash, file_path, title, author, isbn10, isbn13, book_type,
                        tuple(extra_hashes))
        with self.transaction():
            row = self._execute("SELECT id FROM book_cache WHERE file_hash = ?",
                                (file_hash,)).fetchone()
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
                    cur = self._execute(INSERT_BOOK, up.insert_params(now))
                    cache_id = int(cur.lastrowid or 0)
            else:
                cache_id = int(row[0])
            self._execute(UPDATE_BOOK, up.update_params(now, cache_id))
            self._conn.executemany(INSERT_HASH, up.hash_params(cache_id))
            self._attach_kept_links([cache_id], now)
        return cache_id

    def upsert_books(self, books: Sequence[BookUpsert]) -> list[int]:
        """Many :meth:`upsert_book` calls in a few set-based statements; the cache ids,
        in order.  The outcome is that of the single calls in the same order: a book
        whose fingerprints touch another one of the batch, or whose primary fingerprint
        is only a secondary one of a cached row, goes through :meth:`upsert_book`."""
        if not books:
            return []
        now = utcnow()
        ids: list[int | None] = [None] * len(books)
        with self.transaction():
            hashes = list(dict.fromkeys(h for up in books for h in up.hashes()))
            primary_of = self._book_lookup(
                "SELECT file_hash, id FROM book_cache WHERE file_hash IN", hashes)
            cache_of = self._book_lookup("SELECT hash, cache_id FROM book_hashes WHERE hash IN",
                                    hashes)
            # what each row touches: its fingerprints and the cached rows they belong to;
            # a row that shares any of that with another row of the batch goes alone
            owners: dict[str | int, int] = {}
            for i, up in enumerate(books):
                for key in touches(up, primary_of, cache_of):
                    owners[key] = -1 if owners.get(key, i) != i else i
            alias_of = {h for h in cache_of if h not in primary_of}
            # rows in order; a row that goes alone ends the run before it, so that new
            # rows get their ids in the order of the single calls
            run: list[int] = []
            for i, up in enumerate(books):
                if (not up.file_hash or up.file_hash in alias_of
                        or any(owners[k] != i for k in touches(up, primary_of, cache_of))):
                    self._upsert_run(books, run, primary_of, ids, now)
                    run = []
                    ids[i] = self.upsert_book(
                        up.file_hash, file_path=up.file_path, title=up.title, author=up.author,
                        isbn10=up.isbn10, isbn13=up.isbn13, book_type=up.book_type,
                        extra_hashes=up.extra_hashes)
                else:
                    run.append(i)
            self._upsert_run(books, run, primary_of, ids, now)
        return [int(i or 0) for i in ids]

    def _upsert_run(self, books: Sequence[BookUpsert], run: list[int],
                    primary_of: dict[str, int], ids: list[int | None], now: str) -> None:
        """Rows of a batch that touch no other row: inserted or updated all at once."""
        if not run:
            return
        new = [i for i in run if books[i].file_hash not in primary_of]
        known = [i for i in run if books[i].file_hash in primary_of]
        if new:
            self._conn.executemany(INSERT_BOOK, [books[i].insert_params(now) for i in new])
            inserted = self._book_lookup("SELECT file_hash, id FROM book_cache WHERE file_hash IN",
                                    [books[i].file_hash for i in new])
            for i in new:
                ids[i] = inserted[books[i].file_hash]
        for i in known:
            ids[i] = primary_of[books[i].file_hash]
        if known:
            self._conn.executemany(UPDATE_BOOK, [books[i].update_params(now, ids[i] or 0)
                                                  for i in known])
        self._conn.executemany(INSERT_HASH, [p for i in run
                                              for p in books[i].hash_params(ids[i] or 0)])
        self._attach_kept_links([ids[i] or 0 for i in run], now)

    def _book_lookup(self, sql: str, keys: Sequence[str]) -> dict[str, int]:
        """``key -> id`` for ``sql`` (ending in ``IN``) over ``keys``, in chunks."""
        out: dict[str, int] = {}
        for start in range(0, len(keys), IN_CHUNK):
            part = keys[start:start + IN_CHUNK]
            marks = ",".join("?" * len(part))
            out.update((k, int(v)) for k, v in self._execute(f"{sql} ({marks})", part))
        return out

    def _attach_kept_links(self, cache_ids: Sequence[int], now: str) -> None:
        """Give each unmatched row the kept link of one of its fingerprints (primary
        first), in one statement for all of ``cache_ids``."""
        for start in range(0, len(cache_ids), IN_CHUNK):
            part = cache_ids[start:start + IN_CHUNK]
            self._execute(ATTACH_KEPT.format(",".join("?" * len(part))), (now, *part))

    def _attach_kept_link(self, cache_id: int, now: str) -> None:
        self._attach_kept_links([cache_id], now)

    def get_book(self, cache_id: int) -> BookRow | None:
        return _book(self._execute(
            f"SELECT {_BOOK_COLS} FROM book_cache WHERE id = ?", (cache_id,)).fetchone())

    def get_book_by_hash(self, fingerprint: str) -> BookRow | None:
        """The cached book that has ``fingerprint`` among its fingerprints."""
        return _book(self._execute(
            f"SELECT {_BOOK_COLS_B} FROM book_hashes h JOIN book_cache b ON b.id = h.cache_id"
            " WHERE h.hash = ?", (fingerprint,)).fetchone())

    def get_book_by_path(self, file_path: str) -> BookRow | None:
        return _book(self._execute(
            f"SELECT {_BOOK_COLS} FROM book_cache WHERE file_path = ? ORDER BY id LIMIT 1",
            (file_path,)).fetchone())

    def books(self, *, unmatched_only: bool = False) -> list[BookRow]:
        where = " WHERE book_id IS NULL" if unmatched_only else ""
        rows = self._execute(f"SELECT {_BOOK_COLS} FROM book_cache{where} ORDER BY id")
        return [b for b in map(_book, rows) if b is not None]

    def book_hashes(self, cache_id: int) -> list[str]:
        """Every fingerprint of a cached book, the primary one first."""
        book = self.get_book(cache_id)
        if book is None:
            return []
        rest = [r[0] for r in self._execute(
            "SELECT hash FROM book_hashes WHERE cache_id = ? AND hash != ? ORDER BY rowid",
            (cache_id, book.file_hash))]
        return [book.file_hash, *rest]

    def ensure_book_for_hash(self, fingerprint: str) -> int:
        """A cache row for a queued fingerprint that has none (spec §2, after Clear Cache)."""
        book = self.get_book_by_hash(fingerprint)
        if book is not None:
            return book.id
        return self.upsert_book(fingerprint)

    def cache_counts(self) -> dict[str, int]:
        return queries.cache_counts(self._conn)

    # ---------------------------------------------------------------- matches
    def set_book_id(self, cache_id: int, book_id: int | None, method: str | None,
                    confidence: float | None = None) -> None:
        """Store (or forget, with ``None``) the BookLore ID of a cached book; logs the match.

        A manual choice (``method`` "manual", or anything not automatic) or an
        adopted plugin match ("plugin") is also kept as a link by the book's
        fingerprint, so that it survives Clear Cache; a plugin link it replaces
        is recorded as replaced.
        """
        now = utcnow()
        with self.transaction():
            book = self.get_book(cache_id)
            if book is None:
                raise StoreError(f"no cached book with id {cache_id}")
            by = matched_by(method) if book_id is not None else None
            self._execute(
                "UPDATE book_cache SET book_id = ?, match_method = ?, match_confidence = ?,"
                " matched_at = ?, matched_by = ?, updated_at = ? WHERE id = ?",
                (book_id, method if book_id is not None else None,
                 confidence if book_id is not None else None,
                 now if book_id is not None else None, by, now, cache_id),
            )
            if book_id is None:
                return
            self._execute(
                "INSERT INTO match_history(cache_id, file_hash, book_id, method, confidence,"
                " matched_at) VALUES (?,?,?,?,?,?)",
                (cache_id, book.file_hash, book_id, method or "unknown", confidence, now),
            )
            if by in (MatchedBy.MANUAL, MatchedBy.PLUGIN):
                self.set_kept_link(book.file_hash, book_id, LinkKind(by.value))

    def link(self, cache_id: int, book_id: int) -> None:
        """``link`` / the manual dialog: the book is this BookLore book, kept as a manual link."""
        self.set_book_id(cache_id, book_id, MatchedBy.MANUAL.value, None)

    def book_not_found(self, book_id: int) -> int:
        """The server answered 404 "book not found" for ``book_id``: the ID is stale.

        Every cached book with that ID becomes unmatched and kept links to it
        are dropped (they would bring the stale ID back).  Returns the number
        of cache rows changed.
        """
        with self.transaction():
            # a plugin match to the stale ID is not adopted again (plugin-database §4)
            self._execute(
                "INSERT OR IGNORE INTO replaced_plugin_matches(fingerprint, book_id, replaced_at)"
                " SELECT fingerprint, book_id, ? FROM kept_links WHERE book_id = ?"
                " AND kind = 'plugin'", (utcnow(), book_id))
            self._execute("DELETE FROM kept_links WHERE book_id = ?", (book_id,))
            return self._execute(
                "UPDATE book_cache SET book_id = NULL, match_method = NULL, matched_by = NULL,"
                " match_confidence = NULL, matched_at = NULL, updated_at = ? WHERE book_id = ?",
                (utcnow(), book_id)).rowcount

    def forget_all_book_ids(self) -> int:
        """Re-match All's forgetting step (see ``forget_all_matches``); the book IDs cleared."""
        return self.forget_all_matches().book_ids

    def match_history(self, cache_id: int | None = None) -> list[dict[str, Any]]:
        sql = "SELECT * FROM match_history"
        params: tuple[Any, ...] = ()
        if cache_id is not None:
            sql += " WHERE cache_id = ?"
            params = (cache_id,)
        return [dict(r) for r in self._execute(sql + " ORDER BY id", params)]

    def clear_cache(self) -> CacheCleared:
        """Clear Cache (§4.6): every cache row goes; queues, history and kept links stay."""
        with self.transaction():
            self._execute("DELETE FROM book_hashes")
            books = self._execute("DELETE FROM book_cache").rowcount
            # fingerprints are recomputed on the next scan (spec §4.6)
            self._execute("DELETE FROM file_memo")
            kept = int(self._execute("SELECT COUNT(*) FROM kept_links").fetchone()[0])
        return CacheCleared(books, kept)

    # ------------------------------------------------------------- kept links
    def set_kept_link(self, fingerprint: str, book_id: int, kind: LinkKind | str) -> None:
        """Keep ``fingerprint`` → ``book_id``; replacing a plugin link records it as replaced."""
        kind = LinkKind(kind)
        now = utcnow()
        with self.transaction():
            old = self.get_kept_link(fingerprint)
            if (old is not None and old.kind is LinkKind.PLUGIN
                    and (kind is LinkKind.MANUAL or old.book_id != book_id)):
                self._record_replaced(fingerprint, old.book_id, now)
            self._execute(
                "INSERT INTO kept_links(fingerprint, book_id, kind, linked_at) VALUES (?,?,?,?)"
                " ON CONFLICT(fingerprint) DO UPDATE SET book_id = excluded.book_id,"
                " kind = excluded.kind, linked_at = excluded.linked_at",
                (fingerprint, book_id, kind.value, now))

    def get_kept_link(self, fingerprint: str) -> KeptLink | None:
        return _link(self._execute(
            "SELECT fingerprint, book_id, kind, linked_at FROM kept_links WHERE fingerprint = ?",
            (fingerprint,)).fetchone())

    def kept_links(self) -> list[KeptLink]:
        rows = self._execute("SELECT fingerprint, book_id, kind, linked_at FROM kept_links"
                             " ORDER BY linked_at, fingerprint")
        return [k for k in map(_link, rows) if k is not None]

    def drop_kept_link(self, fingerprint: str) -> bool:
        """Forget one kept link (True when there was one).  The cache row keeps its ID."""
        with self.transaction():
            return self._execute("DELETE FROM kept_links WHERE fingerprint = ?",
                                 (fingerprint,)).rowcount > 0

    def _record_replaced(self, fingerprint: str, book_id: int, now: str) -> None:
        self._execute("INSERT OR IGNORE INTO replaced_plugin_matches(fingerprint, book_id,"
                      " replaced_at) VALUES (?,?,?)", (fingerprint, book_id, now))

    def plugin_match_replaced(self, fingerprint: str, book_id: int) -> bool:
        """Re-match All or ``link`` replaced this plugin match: it is not adopted again."""
        return self._execute(
            "SELECT 1 FROM replaced_plugin_matches WHERE fingerprint = ? AND book_id = ?",
            (fingerprint, book_id)).fetchone() is not None

    def adopt_plugin_match(self, fingerprint: str, book_id: int) -> bool:
        """Adopt a match from the plugin's store (spec §5) if the book has none yet.

        Not adopted: a fingerprint with a kept link or a matched cache row, or a
        plugin match that was replaced before.  Returns True when adopted.
        """
        with self.transaction():
            if self.get_kept_link(fingerprint) is not None:
                return False
            if self.plugin_match_replaced(fingerprint, book_id):
                return False
            book = self.get_book_by_hash(fingerprint)
            if book is not None and book.book_id is not None:
                return False
            self.set_kept_link(fingerprint, book_id, LinkKind.PLUGIN)
            if book is not None:
                self._attach_kept_link(book.id, utcnow())
            return True

    def forget_all_matches(self) -> MatchesForgotten:
        """Re-match All (§4.5) forgets every match before resolving again.

        Every stored book ID, every kept link (plugin ones recorded as
        replaced, so later scans do not adopt them again) and every
        reconciliation record go, in one transaction.
        """
        now = utcnow()
        with self.transaction():
            replaced = self._execute(
                "INSERT OR IGNORE INTO replaced_plugin_matches(fingerprint, book_id, replaced_at)"
                " SELECT fingerprint, book_id, ? FROM kept_links WHERE kind = 'plugin'",
                (now,)).rowcount
            links = self._execute("DELETE FROM kept_links").rowcount
            recs = self._execute("DELETE FROM reconciliations").rowcount
            ids = self._execute(
                "UPDATE book_cache SET book_id = NULL, match_method = NULL, matched_by = NULL,"
                " match_confidence = NULL, matched_at = NULL, updated_at = ?"
                " WHERE book_id IS NOT NULL", (now,)).rowcount
        return MatchesForgotten(ids, links, replaced, recs)

    # ------------------------------------------------------------------ memo
    def get_file_memo(self, path: str) -> tuple[int, int, str] | None:
        row = self._execute("SELECT size, mtime_ns, digest FROM file_memo WHERE path = ?",
                            (path,)).fetchone()
        return (int(row[0]), int(row[1]), row[2]) if row else None

    def get_file_memos(self, paths: Iterable[str]) -> dict[str, tuple[int, int, str]]:
        """:meth:`get_file_memo` for many paths in one query per 500: the known ones."""
        keys = list(dict.fromkeys(paths))
        out: dict[str, tuple[int, int, str]] = {}
        for start in range(0, len(keys), IN_CHUNK):
            part = keys[start:start + IN_CHUNK]
            rows = self._execute("SELECT path, size, mtime_ns, digest FROM file_memo"
                                 f" WHERE path IN ({','.join('?' * len(part))})", part)
            out.update((r[0], (int(r[1]), int(r[2]), r[3])) for r in rows)
        return out

    def put_file_memos(self, rows: Iterable[tuple[str, int, int, str]]) -> None:
        """:meth:`put_file_memo` for many ``(path, size, mtime_ns, digest)`` rows."""
        self._conn.executemany(PUT_MEMO, rows)

    def put_file_memo(self, path: str, size: int, mtime_ns: int, digest: str) -> None:
        self._execute(PUT_MEMO, (path, size, mtime_ns, digest))
