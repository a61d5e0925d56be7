"""View Pending Sessions (spec §4.2): a read-only summary of the store.

The plain summary is read with the standard library's ``sqlite3`` and the
store's counting queries, so that ``status --json`` starts fast (spec §9 p4);
``--verbose`` opens the full store.  Without a store file nothing is created:
the state is empty.
"""

from __future__ import annotations

import os
import sqlite3
from collections import Counter
from typing import TYPE_CHECKING, Any

from booklore_sync.store import queries
from booklore_sync.store.queries import QUEUES

if TYPE_CHECKING:
    from booklore_sync.store.db import QueueItem, Store

QUEUE_NAMES = {
    "sessions": "Sessions",
    "annotations": "Annotations",
    "ratings": "Ratings",
    "bookmarks": "Bookmarks",
    "progress": "Progress updates",
}
NOT_TRIED = "not tried yet"
# while the book cache is empty (after Clear Cache), hints point to scan (spec §4.6)
MATCH_HINT = "run `booklore-sync match`"
SCAN_HINT = "the book cache is empty: run `booklore-sync scan SOURCE` first"


def empty_status() -> dict[str, Any]:
    return {"book_cache": {"total": 0, "matched": 0, "unmatched": 0},
            "pending": {q: 0 for q in QUEUES}, "progress_history": 0}


def quick_summary(store_path: str) -> dict[str, Any] | None:
    """The summary straight from the file when it is at the current schema; else None
    (the caller then opens the full store, which migrates or refuses a newer file)."""
    from booklore_sync.store.migrations import LATEST

    try:
        conn = sqlite3.connect(f"file:{store_path}?mode=ro", uri=True, timeout=30)
    except sqlite3.Error:
        return None
    try:
        conn.execute("PRAGMA busy_timeout = 30000")
        if queries.schema_version(conn) != LATEST:
            return None
        return queries.summary(conn)
    except sqlite3.Error:
        return None
    finally:
        conn.close()


def read_status(store_path: str, *, verbose: bool = False) -> dict[str, Any]:
    """``status`` / ``status --verbose`` data (StoreError for a store it cannot read)."""
    if not os.path.isfile(store_path):
        data = empty_status()
        if verbose:
            data.update(items=[], books=[])
        return data
    if not verbose:
        quick = quick_summary(store_path)
        if quick is not None:
            return quick
    from booklore_sync.store.db import Store

    with Store.open(store_path) as store:
        return status_data(store, verbose=verbose)


def reason(item: QueueItem) -> str:
    """Why an item is still queued, in a few words."""
    if item.last_error:
        return item.last_error
    if item.state == "uncertain":
        return "waiting for the server to settle an earlier upload"
    if item.state == "in_flight":
        return "being uploaded"
    return NOT_TRIED


def status_data(store: Store, *, verbose: bool = False) -> dict[str, Any]:
    data: dict[str, Any] = {
        "book_cache": store.cache_counts(),
        "pending": store.counts(),
        "progress_history": store.progress_history_count(),
    }
    if verbose:
        items = store.all_pending()
        if not data["book_cache"]["total"]:
            for item in items:
                if item.last_error and MATCH_HINT in item.last_error:
                    item.last_error = item.last_error.replace(MATCH_HINT, SCAN_HINT)
        data["items"] = [
            {
                "queue": item.queue,
                "fingerprint": item.fingerprint,
                "title": item.display_name if (item.title or item.file_path) else None,
                "book_id": item.book_id,
                "retry_count": item.retry_count,
                "last_error": item.last_error,
                "last_status": item.last_status,
                "state": item.state,
                "reason": reason(item),
            }
            for item in items
        ]
        data["books"] = group_by_book(items)
        uploaders = other_uploaders(store)
        if uploaders:  # the key only when a scan found another uploader (spec §5)
            data["uploaders"] = uploaders
    return data


def other_uploaders(store: Store) -> list[str]:
    """The two-uploader warnings of the last scan that found another uploader (spec §5)."""
    import json

    from booklore_sync.koreader.plugin_store import UPLOADERS_META

    try:
        seen = json.loads(store.get_meta(UPLOADERS_META) or "{}")
    except ValueError:
        return []
    warnings = seen.get("warnings") if isinstance(seen, dict) else None
    return [w for w in warnings if isinstance(w, str)] if isinstance(warnings, list) else []


def group_by_book(items: list[QueueItem]) -> list[dict[str, Any]]:
    """Pending items per book: counts per queue and each distinct reason with its count."""
    books: dict[Any, dict[str, Any]] = {}
    reasons: dict[Any, Counter[tuple[str, str]]] = {}
    retries: dict[Any, dict[str, int]] = {}
    for item in items:
        key = item.cache_id if item.cache_id is not None else item.fingerprint
        book = books.get(key)
        if book is None:
            book = books[key] = {
                "fingerprint": item.fingerprint,
                "title": item.display_name if (item.title or item.file_path) else None,
                "book_id": item.book_id,
                "pending": {q: 0 for q in QUEUES},
                "max_retries": {},
                "reasons": [],
            }
            reasons[key] = Counter()
            retries[key] = {}
        book["pending"][item.queue] += 1
        retries[key][item.queue] = max(retries[key].get(item.queue, 0), item.retry_count)
        reasons[key][(item.queue, reason(item))] += 1
    for key, book in books.items():
        book["max_retries"] = retries[key]
        book["reasons"] = [{"queue": q, "reason": r, "count": n}
                           for (q, r), n in sorted(reasons[key].items(),
                                                   key=lambda kv: (QUEUES.index(kv[0][0]),
                                                                   -kv[1]))]
    return list(books.values())


def menu_counts(store_path: str) -> tuple[dict[str, int], dict[str, int]]:
    """(queue counts, cache counts) for the menu labels; zeros without a store."""
    data = read_status(store_path)
    return data["pending"], data["book_cache"]
