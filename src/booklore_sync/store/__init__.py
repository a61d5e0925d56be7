"""The local SQLite store (spec §3)."""

from booklore_sync.store.db import (
    ALREADY_QUEUED,
    ALREADY_SYNCED,
    DISCARDED,
    HISTORY_TABLES,
    LETTERS,
    NEW_OUTCOMES,
    QUEUE_TABLES,
    QUEUED,
    QUEUES,
    UPDATED,
    BookRow,
    CapabilityCache,
    QueueItem,
    Store,
    StoreError,
    StoreVersionError,
)
from booklore_sync.store.lock import LockBusy, SyncLock

__all__ = [
    "ALREADY_QUEUED", "ALREADY_SYNCED", "DISCARDED", "HISTORY_TABLES", "LETTERS",
    "NEW_OUTCOMES", "QUEUED", "QUEUES", "QUEUE_TABLES", "UPDATED", "BookRow",
    "CapabilityCache", "LockBusy", "QueueItem", "Store", "StoreError", "StoreVersionError",
    "SyncLock",
]
