"""Where the scan's queue rows go: the store, in batches (one ``enqueue_many`` per
queue) with the same outcomes as the single ``enqueue_<queue>`` calls in the same order.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from booklore_sync.koreader.paths import is_utf8
from booklore_sync.koreader.report import QUEUE_NAMES, ScanReport, display_text
from booklore_sync.store.queue_rows import Row, batchable

__all__ = ["Sink"]

_BATCH = 4000

_SINGLE: dict[str, Callable[..., str]] = {
    "annotations": lambda store, *a: store.enqueue_annotation(*a),
    "bookmarks": lambda store, *a: store.enqueue_bookmark(*a),
    "ratings": lambda store, *a: store.enqueue_rating(*a),
    "progress": lambda store, *a: store.enqueue_progress(*a),
    "sessions": lambda store, *a: store.enqueue_session(*a),
}


class Sink:
    def __init__(self, store: Any, report: ScanReport):
        self.store = store
        self.report = report
        self.pending_rows: dict[str, list[Any]] = {q: [] for q in QUEUE_NAMES}
        self.pending_count = 0
        self.batched = callable(getattr(store, "enqueue_many", None))
        # rows checked and normalised here once (``batchable``), then applied as they are
        self.normalised = callable(getattr(store, "enqueue_rows", None))

    def enqueue(self, queue: str, row: tuple[Any, ...]) -> None:
        """Queue one item: ``row`` holds the arguments of ``store.enqueue_<queue>``.

        Rows wait for a batched ``enqueue_many``.  A row the store could refuse (text
        SQLite cannot encode) goes through the single method right away, after the
        waiting rows, so that its error surfaces in its book.  Texts that are not valid
        UTF-8 (a sidecar cut inside a sequence) get U+FFFD: the store and the server
        take UTF-8 only.
        """
        if self.normalised:
            norm = batchable(queue, row)
            if norm is not None:
                self.add(queue, norm)
                return
        storable = _storable(row)
        if not storable:
            row = _sanitised(row)
        if not self.batched or not storable or self.normalised:
            self.flush()
            self.report.count(queue, _SINGLE[queue](self.store, *row))
            return
        self.pending_rows[queue].append(row)
        self.pending_count += 1
        if self.pending_count >= _BATCH:
            self.flush()

    def add(self, queue: str, norm: Row) -> None:
        """A row already normalised by ``batchable``: it waits for ``enqueue_rows``."""
        self.pending_rows[queue].append(norm)
        self.pending_count += 1
        if self.pending_count >= _BATCH:
            self.flush()

    def flush(self) -> None:
        if not self.pending_count:
            return
        apply = self.store.enqueue_rows if self.normalised else self.store.enqueue_many
        for queue, rows in self.pending_rows.items():
            if rows:
                for outcome in apply(queue, rows):
                    self.report.count(queue, outcome)
                rows.clear()
        self.pending_count = 0


def _storable(row: tuple[Any, ...]) -> bool:
    """Every text of a queue row (payload values included) can be stored as UTF-8."""
    for v in row:
        t = type(v)
        if t is str:
            if not is_utf8(v):
                return False
        elif t is dict:
            for x in v.values():
                t = type(x)
                if t is str:
                    if not is_utf8(x):
                        return False
                elif t is dict or t is list or t is tuple:
                    return False  # not in our payloads: let the single method decide
        elif t is not int and t is not float and v is not None and t is not bool:
            return False
    return True


def _sanitised(value: Any) -> Any:
    if isinstance(value, str):
        return display_text(value)
    if isinstance(value, tuple):
        return tuple(_sanitised(v) for v in value)
    if isinstance(value, list):
        return [_sanitised(v) for v in value]
    if isinstance(value, dict):
        return {_sanitised(k): _sanitised(v) for k, v in value.items()}
    return value
