"""View Pending Sessions (spec §4.2): a read-only summary of the store."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from booklore_sync.store.queries import QUEUES

if TYPE_CHECKING:
    from booklore_sync.store.db import Store

QUEUE_NAMES = {
    "sessions": "Sessions",
    "annotations": "Annotations",
    "ratings": "Ratings",
    "bookmarks": "Bookmarks",
    "progress": "Progress updates",
}


def status_data(store: Store, *, verbose: bool = False) -> dict[str, Any]:
    data: dict[str, Any] = {
        "book_cache": store.cache_counts(),
        "pending": store.counts(),
        "progress_history": store.progress_history_count(),
    }
    if verbose:
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
            }
            for item in store.all_pending()
        ]
    return data


def status_text(data: dict[str, Any]) -> str:
    cache = data["book_cache"]
    lines = [
        "Book cache",
        f"  Total books seen: {cache['total']}",
        f"  Matched:          {cache['matched']}",
        f"  Unmatched:        {cache['unmatched']}",
        "Pending uploads",
    ]
    width = max(len(n) for n in QUEUE_NAMES.values()) + 1
    for q in QUEUES:
        lines.append(f"  {(QUEUE_NAMES[q] + ':').ljust(width)} {data['pending'][q]}")
    lines += ["Progress history", f"  Synced progress rows: {data['progress_history']}"]
    items = data.get("items")
    if items is not None:
        lines.append("Pending items")
        if not items:
            lines.append("  (none)")
        for it in items:
            book = it["title"] or it["fingerprint"]
            state = "" if it["state"] == "pending" else f" [{it['state'].replace('_', ' ')}]"
            status = f" (HTTP {it['last_status']})" if it["last_status"] else ""
            why = f" — {it['last_error']}{status}" if it["last_error"] else ""
            lines.append(f"  {it['queue'][:-1] if it['queue'] != 'progress' else 'progress'}"
                         f" · {book} · retries {it['retry_count']}{state}{why}")
    return "\n".join(lines)
