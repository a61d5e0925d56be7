"""The rows and statements of the book cache that :mod:`booklore_sync.store.books` shares
between its single calls and its batches (``upsert_book`` / ``upsert_books``, the file memo)."""

from __future__ import annotations

from typing import Any, NamedTuple

IN_CHUNK = 500

INSERT_BOOK = ("INSERT INTO book_cache(file_hash, file_path, title, author, isbn10, isbn13,"
                " book_type, created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?)")
# ``None`` fields keep their stored value
UPDATE_BOOK = ("UPDATE book_cache SET file_path = COALESCE(?, file_path),"
                " title = COALESCE(?, title), author = COALESCE(?, author),"
                " isbn10 = COALESCE(?, isbn10), isbn13 = COALESCE(?, isbn13),"
                " book_type = COALESCE(?, book_type), updated_at = ? WHERE id = ?")
# a fingerprint another row already claims stays with that row
INSERT_HASH = "INSERT OR IGNORE INTO book_hashes(hash, cache_id) VALUES (?, ?)"
# the kept link of a row's fingerprints, the primary one first (spec §4.6)
_KEPT_OF_ROW = ("SELECT k.book_id, k.kind, k.kind FROM book_cache b"
                " JOIN book_hashes h ON h.cache_id = b.id"
                " JOIN kept_links k ON k.fingerprint = h.hash WHERE b.id = book_cache.id"
                " ORDER BY h.hash != b.file_hash, h.rowid LIMIT 1")
ATTACH_KEPT = ("UPDATE book_cache SET (book_id, match_method, matched_by) = (" + _KEPT_OF_ROW
                + "), match_confidence = NULL, matched_at = ?"
                " WHERE id IN ({}) AND book_id IS NULL AND EXISTS (" + _KEPT_OF_ROW + ")")

PUT_MEMO = ("INSERT INTO file_memo(path, size, mtime_ns, digest) VALUES (?,?,?,?)"
             " ON CONFLICT(path) DO UPDATE SET size = excluded.size,"
             " mtime_ns = excluded.mtime_ns, digest = excluded.digest")


class BookUpsert(NamedTuple):
    """One :meth:`BooksMixin.upsert_book` call, for :meth:`BooksMixin.upsert_books`."""
    file_hash: str
    file_path: str | None = None
    title: str | None = None
    author: str | None = None
    isbn10: str | None = None
    isbn13: str | None = None
    book_type: str | None = None
    extra_hashes: tuple[str, ...] = ()

    def hashes(self) -> list[str]:
        return [h for h in (self.file_hash, *self.extra_hashes) if h]

    def insert_params(self, now: str) -> tuple[Any, ...]:
        return (self.file_hash, self.file_path, self.title, self.author, self.isbn10,
                self.isbn13, self.book_type, now, now)

    def update_params(self, now: str, cache_id: int) -> tuple[Any, ...]:
        return (self.file_path, self.title, self.author, self.isbn10, self.isbn13,
                self.book_type, now, cache_id)

    def hash_params(self, cache_id: int) -> list[tuple[str, int]]:
        return [(h, cache_id) for h in self.hashes()]


def touches(up: BookUpsert, primary_of: dict[str, int],
             cache_of: dict[str, int]) -> list[str | int]:
    keys: list[str | int] = []
    for h in up.hashes():
        keys.append(h)
        for known in (primary_of.get(h), cache_of.get(h)):
            if known is not None:
                keys.append(known)
    return keys
