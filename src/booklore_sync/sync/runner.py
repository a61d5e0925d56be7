"""Sync Pending Now as a library call: lock, store, client, engine (spec §4.1).

The set-up itself lives once, in :mod:`booklore_sync.actions.base`; this module
keeps the names other code imports (``sync_once``, ``sync_locked``,
``make_client``, ``upload_lock``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from booklore_sync.actions.base import (
    LOCK_WAIT_SECONDS,
    ActionError,
    make_client,
    store_lock,
)
from booklore_sync.config import Config
from booklore_sync.store import LockBusy, Store
from booklore_sync.sync.report import SyncReport

__all__ = ["LOCK_WAIT_SECONDS", "configured_accounts", "make_client", "sync_locked",
           "sync_once", "upload_lock"]


def configured_accounts(cfg: Config) -> set[str]:
    return {a for a in ("booklore", "koreader") if cfg.account_configured(a)}


def sync_locked(cfg: Config, store: Store, client: Any, *,
                only_fingerprints: Iterable[str] | None = None,
                on_progress: Callable[[int, int], None] | None = None) -> SyncReport:
    """One engine run; the caller holds the sync lock."""
    from booklore_sync.sync.engine import SyncEngine

    engine = SyncEngine(store, client, cfg.settings(), accounts=configured_accounts(cfg),
                        only_fingerprints=only_fingerprints, on_progress=on_progress)
    return engine.run()


@contextmanager
def upload_lock(cfg: Config) -> Iterator[None]:
    """Hold the store's sync lock (spec §3): waits up to 5 s, then raises LockBusy."""
    try:
        with store_lock(cfg):
            yield
    except ActionError as exc:
        if exc.kind == "locked":
            raise LockBusy(exc.message.split(";")[0]) from None
        raise


def sync_once(cfg: Config, *, only_fingerprints: Iterable[str] | None = None,
              on_progress: Callable[[int, int], None] | None = None) -> SyncReport:
    """Take the store's sync lock, run the engine, release the lock.

    Returns a report whose ``locked`` is set when another command holds the lock,
    and whose ``config_errors`` say what is missing when nothing could start.
    """
    from booklore_sync.actions.sync import run_sync

    return run_sync(cfg, only_fingerprints=only_fingerprints, on_progress=on_progress).report
