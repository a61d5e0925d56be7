"""The cached books (`books`) and finding one of them from what a user types (`link`).

BOOK is tried as (spec §6.2): a fingerprint (any known for the book); a local
path (absolute or relative) or a device path (``/mnt/onboard/…``) of a cached
book; a file name unique among cached books; a title (case-insensitive, exact,
else a unique substring).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from booklore_sync.actions.base import EXIT_USAGE, NOT_FOUND, ActionError
from booklore_sync.store import BookRow, Store

MAX_LISTED = 10
_FP = re.compile(r"^[0-9a-fA-F]{32}$")
DEVICE_PREFIXES = ("/mnt/onboard/", "/mnt/us/", "/mnt/sd/", "/storage/emulated/0/",
                   "/sdcard/", "/mnt/ext1/")


@dataclass(frozen=True)
class BookInfo:
    path: str | None
    device_path: str | None
    fingerprint: str
    title: str | None
    author: str | None
    book_id: int | None
    matched_by: str | None
    pending: dict[str, int]

    def to_json(self) -> dict[str, Any]:
        return {"path": self.path, "device_path": self.device_path,
                "fingerprint": self.fingerprint, "title": self.title, "author": self.author,
                "book_id": self.book_id, "matched_by": self.matched_by,
                "pending": self.pending}


def matched_by(method: str | None) -> str | None:
    """The stored match method in the words of `books` (fingerprint, isbn, manual, plugin)."""
    if method is None:
        return None
    return {"hash": "fingerprint"}.get(method, method)


def list_books(store: Store, *, unmatched_only: bool = False) -> list[BookInfo]:
    pending: dict[str, dict[str, int]] = {}
    for item in store.all_pending():
        per = pending.setdefault(item.fingerprint, {})
        per[item.queue] = per.get(item.queue, 0) + 1
    out = []
    for book in store.books(unmatched_only=unmatched_only):
        counts: dict[str, int] = {}
        for fp in store.book_hashes(book.id):
            for q, n in pending.get(fp, {}).items():
                counts[q] = counts.get(q, 0) + n
        out.append(BookInfo(book.file_path, None, book.file_hash, book.title, book.author,
                            book.book_id, matched_by(book.match_method) if book.book_id else None,
                            counts))
    return out


def _device_suffix(ref: str) -> str | None:
    for prefix in DEVICE_PREFIXES:
        if ref.startswith(prefix):
            return ref[len(prefix):]
    return None


def _describe(book: BookRow) -> str:
    return f"{book.file_hash}  {book.display_name}" + (
        f"  ({book.file_path})" if book.file_path and book.title else "")


def _one(ref: str, found: list[BookRow]) -> BookRow | None:
    if not found:
        return None
    unique = {b.id: b for b in found}
    if len(unique) == 1:
        return next(iter(unique.values()))
    listed = list(unique.values())
    lines = "\n".join("  " + _describe(b) for b in listed[:MAX_LISTED])
    more = f"\n  … and {len(listed) - MAX_LISTED} more" if len(listed) > MAX_LISTED else ""
    raise ActionError(NOT_FOUND, f"{ref!r} matches {len(listed)} cached books; give one of "
                      f"these fingerprints instead:\n{lines}{more}", EXIT_USAGE)


def find_book(store: Store, ref: str) -> BookRow:
    """The one cached book that BOOK names; ActionError ``not_found`` (exit 2) otherwise."""
    ref = ref.strip()
    if _FP.match(ref):
        book = store.get_book_by_hash(ref.lower())
        if book is not None:
            return book
    books = store.books()
    if not books:
        raise ActionError(NOT_FOUND, "the book cache is empty; run `booklore-sync scan "
                          "SOURCE` first", EXIT_USAGE)
    # a path: as cached, as a local path (absolute or relative), or a device path
    candidates = {ref, os.path.abspath(os.path.expanduser(ref))}
    try:
        candidates.add(str(Path(ref).expanduser().resolve()))
    except OSError:
        pass
    hit = _one(ref, [b for b in books if b.file_path in candidates])
    if hit is not None:
        return hit
    suffix = _device_suffix(ref)
    if suffix:
        hit = _one(ref, [b for b in books if b.file_path and
                         b.file_path.replace(os.sep, "/").endswith("/" + suffix)])
        if hit is not None:
            return hit
    # a file name
    if "/" not in ref and os.sep not in ref:
        hit = _one(ref, [b for b in books if b.file_path and Path(b.file_path).name == ref])
        if hit is not None:
            return hit
    # a title: exact (case-insensitive), else a unique substring
    low = ref.casefold()
    hit = _one(ref, [b for b in books if b.title and b.title.casefold() == low])
    if hit is not None:
        return hit
    if low:
        hit = _one(ref, [b for b in books if b.title and low in b.title.casefold()])
        if hit is not None:
            return hit
    raise ActionError(NOT_FOUND, f"no cached book matches {ref!r} (give a fingerprint, a path, "
                      "a file name or a title; `booklore-sync books` lists them)", EXIT_USAGE)
