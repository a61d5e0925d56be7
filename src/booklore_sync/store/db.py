"""Former home of the whole store; kept so that old imports still work.

The store now lives in ``core``, ``books``, ``queues``, ``ledger``, ``server``
and ``facade`` (see ``booklore_sync.store``).
"""

from __future__ import annotations

from booklore_sync.store.core import split_sql as _split_sql
from booklore_sync.store.facade import Store
from booklore_sync.store.queries import KEY_COLUMNS
from booklore_sync.store.server import CapabilityCache
from booklore_sync.store.types import (
    ALREADY_QUEUED,
    ALREADY_SYNCED,
    DISCARDED,
    NEW_OUTCOMES,
    QUEUED,
    UPDATED,
    BookRow,
    QueueItem,
    StoreError,
    StoreVersionError,
    utcnow,
)

__all__ = [
    "ALREADY_QUEUED", "ALREADY_SYNCED", "DISCARDED", "KEY_COLUMNS", "NEW_OUTCOMES", "QUEUED",
    "UPDATED", "BookRow", "CapabilityCache", "QueueItem", "Store", "StoreError",
    "StoreVersionError", "_split_sql", "utcnow",
]
