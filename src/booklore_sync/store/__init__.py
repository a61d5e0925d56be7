"""The local SQLite store (spec §3).

Names are imported lazily (PEP 562) so that ``booklore_sync.store.queries``
can be used by the start-up fast path without loading the whole store.
"""

from __future__ import annotations

_FROM_DB = {
    "ALREADY_QUEUED", "ALREADY_SYNCED", "DISCARDED", "NEW_OUTCOMES", "QUEUED", "UPDATED",
    "BookRow", "CapabilityCache", "QueueItem", "Store", "StoreError", "StoreVersionError",
}
_FROM_QUERIES = {"HISTORY_TABLES", "LETTERS", "QUEUES", "QUEUE_TABLES"}
_FROM_LOCK = {"LockBusy", "SyncLock"}

__all__ = sorted(_FROM_DB | _FROM_QUERIES | _FROM_LOCK)


def __getattr__(name: str) -> object:
    if name in _FROM_DB:
        from booklore_sync.store import db as module
    elif name in _FROM_QUERIES:
        from booklore_sync.store import queries as module
    elif name in _FROM_LOCK:
        from booklore_sync.store import lock as module
    else:
        raise AttributeError(f"module 'booklore_sync.store' has no attribute {name!r}")
    return getattr(module, name)
