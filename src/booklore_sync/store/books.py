"""The book cache, the kept links and the file memo (spec §2, §4.3, §4.5, §4.6).

A ``book_cache`` row keeps its id for life.  Kept links are the user's
decisions (manual links, adopted plugin matches), kept by fingerprint beside
the cache: Clear Cache leaves them, a rebuilt row whose fingerprint has one
gets its BookLore ID back, Re-match All forgets them.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from typing import Any

from booklore_sync.common.vocab import LinkKind, MatchedBy
from booklore_sync.store import queries
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
        hashes = [h for h in (file_hash, *extra_hashes) if h]
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
                    cur = self._execute(
                        "INSERT INTO book_cache(file_hash, file_path, title, author, isbn10,"
                        " isbn13, book_type, created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?)",
                        (file_hash, file_path, title, author, isbn10, isbn13, book_type, now, now),
                    )
                    cache_id = int(cur.lastrowid or 0)
            else:
                cache_id = int(row[0])
            self._execute(
                "UPDATE book_cache SET file_path = COALESCE(?, file_path),"
                " title = COALESCE(?, title), author = COALESCE(?, author),"
                " isbn10 = COALESCE(?, isbn10), isbn13 = COALESCE(?, isbn13),"
                " book_type = COALESCE(?, book_type), updated_at = ? WHERE id = ?",
                (file_path, title, author, isbn10, isbn13, book_type, now, cache_id),
            )
            self._conn.executemany(
                "INSERT OR IGNORE INTO book_hashes(hash, cache_id) VALUES (?, ?)",
                [(h, cache_id) for h in hashes])
            self._attach_kept_link(cache_id, now)
        return cache_id

    def _attach_kept_link(self, cache_id: int, now: str) -> None:
        """Give an unmatched row the kept link of one of its fingerprints (primary first)."""
        link = self._execute(
            "SELECT k.book_id, k.kind FROM book_cache b"
            " JOIN book_hashes h ON h.cache_id = b.id JOIN kept_links k ON k.fingerprint = h.hash"
            " WHERE b.id = ? AND b.book_id IS NULL"
            " ORDER BY h.hash != b.file_hash, h.rowid LIMIT 1", (cache_id,)).fetchone()
        if link is not None:
            self._execute(
                "UPDATE book_cache SET book_id = ?, match_method = ?, matched_by = ?,"
                " match_confidence = NULL, matched_at = ? WHERE id = ?",
                (int(link[0]), link[1], link[1], now, cache_id))

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

    def put_file_memo(self, path: str, size: int, mtime_ns: int, digest: str) -> None:
        self._execute(
            "INSERT INTO file_memo(path, size, mtime_ns, digest) VALUES (?,?,?,?)"
            " ON CONFLICT(path) DO UPDATE SET size = excluded.size,"
            " mtime_ns = excluded.mtime_ns, digest = excluded.digest",
            (path, size, mtime_ns, digest))
