"""The local SQLite store (spec §3).

Layout: ``core`` (connection, pragmas, migrations runner, transactions),
``books`` (book cache, kept links, file memo), ``queues`` (the one enqueue
implementation, reading queues), ``ledger`` (synced history, engine updates,
clearing), ``server`` (capability cache, reconciliation, status observations,
server identity), ``lock`` (the sync lock), ``queries`` (names and the
read-only counting queries), ``facade`` (:class:`Store`).

The names below are imported on first use (PEP 562) so that
``booklore_sync.store.queries`` stays importable by the start-up fast path of
``status --json`` without loading the rest of the store; the
``TYPE_CHECKING`` block gives a type checker the real names and types.
"""

from __future__ import annotations

TYPE_CHECKING = False  # not typing's: importing typing costs the fast path ~5 ms
if TYPE_CHECKING:
    from booklore_sync.store.facade import Store as Store
    from booklore_sync.store.lock import LockBusy as LockBusy
    from booklore_sync.store.lock import SyncLock as SyncLock
    from booklore_sync.store.queries import HISTORY_TABLES as HISTORY_TABLES
    from booklore_sync.store.queries import KEY_COLUMNS as KEY_COLUMNS
    from booklore_sync.store.queries import LETTERS as LETTERS
    from booklore_sync.store.queries import QUEUE_TABLES as QUEUE_TABLES
    from booklore_sync.store.queries import QUEUES as QUEUES
    from booklore_sync.store.queries import STORE_FILE as STORE_FILE
    from booklore_sync.store.server import CapabilityCache as CapabilityCache
    from booklore_sync.store.server import StatusObservation as StatusObservation
    from booklore_sync.store.types import ALREADY_QUEUED as ALREADY_QUEUED
    from booklore_sync.store.types import ALREADY_SYNCED as ALREADY_SYNCED
    from booklore_sync.store.types import DISCARDED as DISCARDED
    from booklore_sync.store.types import NEW_OUTCOMES as NEW_OUTCOMES
    from booklore_sync.store.types import QUEUED as QUEUED
    from booklore_sync.store.types import UPDATED as UPDATED
    from booklore_sync.store.types import BookRow as BookRow
    from booklore_sync.store.types import CacheCleared as CacheCleared
    from booklore_sync.store.types import KeptLink as KeptLink
    from booklore_sync.store.types import MatchesForgotten as MatchesForgotten
    from booklore_sync.store.types import QueueItem as QueueItem
    from booklore_sync.store.types import ServerIdentity as ServerIdentity
    from booklore_sync.store.types import StoreError as StoreError
    from booklore_sync.store.types import StoreVersionError as StoreVersionError

_WHERE = {
    "booklore_sync.store.facade": ("Store",),
    "booklore_sync.store.lock": ("LockBusy", "SyncLock"),
    "booklore_sync.store.queries": ("HISTORY_TABLES", "KEY_COLUMNS", "LETTERS", "QUEUES",
                                    "QUEUE_TABLES", "STORE_FILE"),
    "booklore_sync.store.server": ("CapabilityCache", "StatusObservation"),
    "booklore_sync.store.types": (
        "ALREADY_QUEUED", "ALREADY_SYNCED", "DISCARDED", "NEW_OUTCOMES", "QUEUED", "UPDATED",
        "BookRow", "CacheCleared", "KeptLink", "MatchesForgotten", "QueueItem",
        "ServerIdentity", "StoreError", "StoreVersionError"),
}
_MODULE_OF = {name: module for module, names in _WHERE.items() for name in names}

__all__ = sorted(_MODULE_OF)


def __getattr__(name: str) -> object:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module 'booklore_sync.store' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later look-ups skip this function
    return value
